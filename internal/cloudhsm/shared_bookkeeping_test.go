package cloudhsm_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/clock"
	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
	"github.com/cloudhsm-local/cloudhsm-local/internal/network"
	"github.com/cloudhsm-local/cloudhsm-local/internal/records"
	"github.com/cloudhsm-local/cloudhsm-local/internal/store"
)

// The shared mode's bookkeeping: clock changes through different
// replicas add up, and what one replica learns of another's writes costs
// no more than the writes themselves.

// TestSharedClockChangesAddUp: clock changes made through different
// replicas, one after the other, all count: none is undone by a replica
// that had not seen it yet.
func TestSharedClockChangesAddUp(t *testing.T) {
	rs := startReplicas(t, store.NewSharedMemory(nil), 2, sharedConfig())
	start := rs[0].svc.Clock().Now()
	for i, r := range []*replica{rs[0], rs[1], rs[0], rs[1]} {
		rep, err := r.svc.AdvanceClock(time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if moved := rep.To.Sub(rep.From); moved != time.Hour {
			t.Errorf("advance %d reports %v moved, want 1h", i, moved)
		}
	}
	for i, r := range rs {
		clustersOf(t, r)
		if d := r.svc.Clock().Now().Sub(start); d < 4*time.Hour {
			t.Errorf("replica %d: four advances of 1h through two replicas moved the clock %v", i, d)
		}
	}
	at, err := rs[0].svc.FreezeClock()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rs[1].svc.AdvanceClock(time.Hour); err != nil {
		t.Fatal(err)
	}
	clustersOf(t, rs[0])
	if c := rs[0].svc.Clock(); !c.Frozen() || !c.Now().Equal(at.Add(time.Hour)) {
		t.Errorf("frozen on replica 0, advanced 1h on replica 1: replica 0 says frozen %v at %s, want frozen at %s", c.Frozen(), c.Now(), at.Add(time.Hour))
	}
}

// TestSharedRemoteWritesQueueNoEventTwice: another replica's writes to a
// cluster (here its tags) do not queue its due events again.
func TestSharedRemoteWritesQueueNoEventTwice(t *testing.T) {
	rs := startReplicas(t, store.NewSharedMemory(nil), 2, sharedConfig())
	c := createIn(t, rs[0], "subnet-0000000a")
	clustersOf(t, rs[1])
	before := cloudhsm.AgendaLen(rs[1].svc)
	if before == 0 {
		t.Fatal("replica 1 queued nothing for a cluster being created")
	}
	for i := range 50 {
		if err := rs[0].svc.TagResource(sharedTenant, c.ID, []cloudhsm.Tag{{Key: "k", Value: string(rune('a' + i%26))}}); err != nil {
			t.Fatal(err)
		}
		clustersOf(t, rs[1])
	}
	if after := cloudhsm.AgendaLen(rs[1].svc); after != before {
		t.Errorf("replica 1's agenda went from %d to %d events over 50 tag changes on replica 0", before, after)
	}
}

// TestSharedFollowerSleepsTheInterval: a replica that does not hold the
// lease, with due work in its agenda that the leader applies, waits the
// refresh interval between refreshes rather than waking at once for work
// it leaves to the leader.
func TestSharedFollowerSleepsTheInterval(t *testing.T) {
	db := store.NewSharedMemory(nil)
	cfg := sharedConfig()
	cfg.RefreshInterval = time.Hour // no background refresh during the test
	leader := startReplica(t, db, cfg)
	follower := startReplica(t, db, cfg)
	if !leader.conn.Leader() || follower.conn.Leader() {
		t.Fatal("the first replica does not hold the lease alone")
	}
	createIn(t, leader, "subnet-0000000a")
	mustOK(t, cloudhsm.RefreshNow(follower.svc))
	if _, err := leader.svc.AdvanceClock(2 * time.Hour); err != nil {
		t.Fatal(err)
	}
	mustOK(t, cloudhsm.RefreshNow(follower.svc)) // the creation's event is due now
	if d := cloudhsm.SchedulerSleep(follower.svc); d != cfg.RefreshInterval {
		t.Errorf("the follower would sleep %v, want the refresh interval %v", d, cfg.RefreshInterval)
	}
}

// failingConn fails the next Exclusive after decide ran (its outcome
// unknown), and counts the full reloads it hands over.
type failingConn struct {
	*store.SharedMemoryConn
	failNext atomic.Bool
	resets   atomic.Int32
}

type resetCounter struct {
	store.View
	n *atomic.Int32
}

func (v resetCounter) Reset() { v.n.Add(1); v.View.Reset() }

func (f *failingConn) Exclusive(ctx context.Context, since uint64, view store.View, decide func(time.Time) ([]store.Mutation, error)) (store.Sync, error) {
	fail := f.failNext.Swap(false)
	return f.SharedMemoryConn.Exclusive(ctx, since, resetCounter{view, &f.resets}, func(now time.Time) ([]store.Mutation, error) {
		m, err := decide(now)
		if fail {
			return nil, errors.New("connection lost during the commit")
		}
		return m, err
	})
}

func (f *failingConn) Refresh(ctx context.Context, since uint64, view store.View) (store.Sync, error) {
	return f.SharedMemoryConn.Refresh(ctx, since, resetCounter{view, &f.resets})
}

// TestSharedOneReloadAfterAFailedCommit: after a commit that failed once
// decided, the cache is reloaded once, by the next commit, not by every
// one after it.
func TestSharedOneReloadAfterAFailedCommit(t *testing.T) {
	cfg := sharedConfig()
	cfg.RefreshInterval = time.Hour
	conn := &failingConn{SharedMemoryConn: store.NewSharedMemory(nil).Open()}
	codec := records.Codec{}
	svc, err := cloudhsm.New(cloudhsm.Options{Codec: codec, Config: cfg, Clock: clock.New(), Store: conn,
		Network: network.NewLearned(cloudhsm.SubnetPlacements(conn, codec))})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	r := &replica{svc: svc}
	createIn(t, r, "subnet-0000000a")
	conn.failNext.Store(true)
	if _, err := svc.CreateCluster(context.Background(), sharedTenant, cloudhsm.CreateClusterInput{HsmType: cloudhsm.HsmTypeHsm2m, SubnetIDs: []string{"subnet-0000000a"}}); err == nil {
		t.Fatal("a commit the store failed succeeded")
	}
	if !cloudhsm.CacheStale(svc) {
		t.Fatal("the cache is not marked for a reload after a failed commit")
	}
	conn.resets.Store(0)
	for range 3 {
		createIn(t, r, "subnet-0000000a")
	}
	if n := conn.resets.Load(); n != 1 || cloudhsm.CacheStale(svc) {
		t.Errorf("three commits after a failed one reloaded the whole estate %d times (still stale: %v), want once", n, cloudhsm.CacheStale(svc))
	}
	if got := clustersOf(t, r); len(got) != 4 {
		t.Errorf("%d clusters, want 4 (the failed one not among them)", len(got))
	}
}

// TestSharedRemoteDeletionAnnouncesHsms: a cluster deleted through one
// replica is announced gone with its HSMs on every replica alike.
func TestSharedRemoteDeletionAnnouncesHsms(t *testing.T) {
	rs := startReplicas(t, store.NewSharedMemory(nil), 2, sharedConfig())
	c := snapCluster(sharedTenant, cloudhsm.HsmTypeHsm2m, cloudhsm.ClusterActive, 2, cloudhsm.HsmActive)
	c.Subnets = []network.Subnet{{ID: testSubnet.ID, AZ: testSubnet.AZ}}
	c.VpcID = ""
	for i, h := range c.Hsms {
		h.EniIP = "10.9.1." + string(rune('1'+i))
	}
	mustOK(t, rs[0].svc.Import(&cloudhsm.Snapshot{Clusters: []*cloudhsm.Cluster{c}}))
	clustersOf(t, rs[1])
	subs := []*cloudhsm.Subscription{rs[0].svc.Feed().Subscribe(256), rs[1].svc.Feed().Subscribe(256)}
	mustOK(t, rs[0].svc.Reset(""))
	clustersOf(t, rs[1]) // applies the deletion (and announces it) before it returns
	for i, sub := range subs {
		gone := 0
	drain:
		for {
			select {
			case ch := <-sub.C:
				if ch.Resource == cloudhsm.ResourceHsm && ch.To == "" {
					gone++
				}
			default:
				break drain
			}
		}
		sub.Close()
		if gone != 2 {
			t.Errorf("replica %d announced %d HSMs gone, want 2", i, gone)
		}
	}
}
