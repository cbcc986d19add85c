package cloudhsm_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/clock"
	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
	"github.com/cloudhsm-local/cloudhsm-local/internal/network"
	"github.com/cloudhsm-local/cloudhsm-local/internal/records"
	"github.com/cloudhsm-local/cloudhsm-local/internal/store"
)

// The domain's shared mode, with several services (replicas) in one
// process on one store.SharedMemory estate: the rules hold across them.

var sharedTenant = cloudhsm.Tenant{Account: "111122223333", Region: "us-east-1"}

type replica struct {
	svc  *cloudhsm.Service
	conn *store.SharedMemoryConn
}

// startReplicas starts n services on one shared estate whose clock is
// storeNow; each replica's clock runs on it (clock.New: the service makes
// it follow the store's).
func startReplicas(t *testing.T, db *store.SharedMemory, n int, cfg cloudhsm.Config) []*replica {
	t.Helper()
	out := make([]*replica, n)
	for i := range out {
		out[i] = startReplica(t, db, cfg)
	}
	return out
}

func startReplica(t *testing.T, db *store.SharedMemory, cfg cloudhsm.Config) *replica {
	t.Helper()
	conn := db.Open()
	codec := records.Codec{}
	svc, err := cloudhsm.New(cloudhsm.Options{
		Codec: codec, Config: cfg, Clock: clock.New(), Store: conn,
		Network: network.NewLearned(cloudhsm.SubnetPlacements(conn, codec)),
	})
	if err != nil {
		t.Fatalf("start replica: %v", err)
	}
	r := &replica{svc: svc, conn: conn}
	t.Cleanup(r.stop)
	return r
}

func (r *replica) stop() {
	r.svc.Close()
	_ = r.conn.Close()
}

func sharedConfig() cloudhsm.Config {
	cfg := cloudhsm.DefaultConfig()
	cfg.Delays = cloudhsm.UniformDelays(time.Hour) // nothing falls due by itself
	cfg.RefreshInterval = 20 * time.Millisecond
	return cfg
}

func createIn(t *testing.T, r *replica, subnets ...string) *cloudhsm.Cluster {
	t.Helper()
	c, err := r.svc.CreateCluster(context.Background(), sharedTenant, cloudhsm.CreateClusterInput{HsmType: cloudhsm.HsmTypeHsm2m, SubnetIDs: subnets})
	if err != nil {
		t.Fatalf("CreateCluster: %v", err)
	}
	return c
}

func clustersOf(t *testing.T, r *replica) []*cloudhsm.Cluster {
	t.Helper()
	var out []*cloudhsm.Cluster
	if _, err := r.svc.VisitClusters(sharedTenant, cloudhsm.ClusterFilter{}, 0, 1000, func(c *cloudhsm.Cluster) {
		cp := *c
		out = append(out, &cp)
	}); err != nil {
		t.Fatalf("VisitClusters: %v", err)
	}
	return out
}

// TestSharedReadYourWritesAcrossReplicas: a cluster created through one
// replica is there, in the same state, for the very next request on
// another; so is a change.
func TestSharedReadYourWritesAcrossReplicas(t *testing.T) {
	rs := startReplicas(t, store.NewSharedMemory(nil), 3, sharedConfig())
	for i := range 12 {
		c := createIn(t, rs[i%3], fmt.Sprintf("subnet-%08x", i))
		got := clustersOf(t, rs[(i+1)%3])
		j := slices.IndexFunc(got, func(o *cloudhsm.Cluster) bool { return o.ID == c.ID })
		if j < 0 {
			t.Fatalf("cluster %s created on replica %d is not on replica %d", c.ID, i%3, (i+1)%3)
		}
		if got[j].State != c.State || got[j].VpcID != c.VpcID || !got[j].Created.Equal(c.Created) {
			t.Errorf("replica %d sees %s %s %s, created as %s %s %s", (i+1)%3, got[j].State, got[j].VpcID, got[j].Created, c.State, c.VpcID, c.Created)
		}
	}
	if err := rs[2].svc.TagResource(sharedTenant, clustersOf(t, rs[0])[0].ID, []cloudhsm.Tag{{Key: "k", Value: "v"}}); err != nil {
		t.Fatal(err)
	}
	if got := clustersOf(t, rs[1])[0].Tags; len(got) != 1 || got[0].Value != "v" {
		t.Errorf("a tag made on replica 2 is %v on replica 1", got)
	}
	// Every replica lists the same clusters in the same order.
	want := clustersOf(t, rs[0])
	for _, r := range rs[1:] {
		got := clustersOf(t, r)
		if len(got) != len(want) {
			t.Fatalf("%d clusters on one replica, %d on another", len(got), len(want))
		}
		for i := range got {
			if got[i].ID != want[i].ID || got[i].Seq != want[i].Seq {
				t.Fatalf("listing %d differs: %s/%d vs %s/%d", i, got[i].ID, got[i].Seq, want[i].ID, want[i].Seq)
			}
		}
	}
}

// TestSharedQuotaUnderConcurrency: a quota holds when replicas create at
// once, and ids never repeat.
func TestSharedQuotaUnderConcurrency(t *testing.T) {
	cfg := sharedConfig()
	cfg.ClustersPerRegion = 5
	rs := startReplicas(t, store.NewSharedMemory(nil), 3, cfg)
	var (
		mu   sync.Mutex
		ok   []string
		errs int
		wg   sync.WaitGroup
	)
	for w := range 12 {
		wg.Go(func() {
			c, err := rs[w%3].svc.CreateCluster(context.Background(), sharedTenant, cloudhsm.CreateClusterInput{HsmType: cloudhsm.HsmTypeHsm2m, SubnetIDs: []string{"subnet-0000000a"}})
			mu.Lock()
			defer mu.Unlock()
			var de *cloudhsm.Error
			switch {
			case err == nil:
				ok = append(ok, c.ID)
			case errors.As(err, &de) && de.Kind == cloudhsm.KindLimitExceeded:
				errs++
			default:
				t.Errorf("CreateCluster: %v", err)
			}
		})
	}
	wg.Wait()
	if len(ok) != 5 || errs != 7 {
		t.Fatalf("%d clusters created and %d refused under a quota of 5 (12 attempts)", len(ok), errs)
	}
	slices.Sort(ok)
	if len(slices.Compact(ok)) != 5 {
		t.Errorf("ids repeat: %v", ok)
	}
	if got := clustersOf(t, rs[1]); len(got) != 5 {
		t.Errorf("replica 1 lists %d clusters", len(got))
	}
}

// TestSharedLearnedSubnets: a subnet means the same VPC, zone and CIDR on
// every replica, however they learn it.
func TestSharedLearnedSubnets(t *testing.T) {
	rs := startReplicas(t, store.NewSharedMemory(nil), 3, sharedConfig())
	var wg sync.WaitGroup
	got := make([]*cloudhsm.Cluster, 9)
	for i := range got {
		wg.Go(func() {
			c, err := rs[i%3].svc.CreateCluster(context.Background(), sharedTenant, cloudhsm.CreateClusterInput{HsmType: cloudhsm.HsmTypeHsm2m, SubnetIDs: []string{"subnet-aaaaaaaa", fmt.Sprintf("subnet-b%07x", i)}})
			if err != nil {
				t.Error(err)
				return
			}
			got[i] = c
		})
	}
	wg.Wait()
	for _, c := range got[1:] {
		if c == nil || got[0] == nil {
			t.FailNow()
		}
		if c.Subnets[0] != got[0].Subnets[0] || c.VpcID != got[0].VpcID {
			t.Errorf("subnet-aaaaaaaa is %+v in one cluster, %+v in another", c.Subnets[0], got[0].Subnets[0])
		}
	}
	// And the new subnets of that VPC do not overlap.
	seen := map[string]string{}
	for _, c := range got {
		for _, sn := range c.Subnets[1:] {
			if prev, ok := seen[sn.CIDR.String()]; ok && prev != sn.ID {
				t.Errorf("%s and %s share %s", sn.ID, prev, sn.CIDR)
			}
			seen[sn.CIDR.String()] = sn.ID
		}
	}
}

// TestSharedClock: one clock: an advance on one replica is every replica's,
// and so is freezing.
func TestSharedClock(t *testing.T) {
	rs := startReplicas(t, store.NewSharedMemory(nil), 2, sharedConfig())
	c := createIn(t, rs[0], "subnet-0000000a")
	if _, err := rs[1].svc.AdvanceClock(time.Hour + time.Second); err != nil {
		t.Fatal(err)
	}
	got := clustersOf(t, rs[0])
	if got[0].ID != c.ID || got[0].State != cloudhsm.ClusterUninitialized {
		t.Fatalf("after an advance on replica 1, replica 0 sees %s %s", got[0].ID, got[0].State)
	}
	if d := rs[0].svc.Clock().Now().Sub(c.Created); d < time.Hour {
		t.Errorf("replica 0's clock is %v past the creation after a 1h advance on replica 1", d)
	}
	at, err := rs[0].svc.FreezeClock()
	if err != nil {
		t.Fatal(err)
	}
	clustersOf(t, rs[1]) // a request: refreshes
	if !rs[1].svc.Clock().Frozen() || !rs[1].svc.Clock().Now().Equal(at) {
		t.Errorf("replica 1's clock: frozen %v at %s, want frozen at %s", rs[1].svc.Clock().Frozen(), rs[1].svc.Clock().Now(), at)
	}
}

// TestSharedFeedSeesOtherReplicas: a replica's feed announces what another
// replica changed, without any request to it.
func TestSharedFeedSeesOtherReplicas(t *testing.T) {
	rs := startReplicas(t, store.NewSharedMemory(nil), 2, sharedConfig())
	sub := rs[1].svc.Feed().Subscribe(64)
	defer sub.Close()
	c := createIn(t, rs[0], "subnet-0000000a")
	deadline := time.After(5 * time.Second)
	for {
		select {
		case ch := <-sub.C:
			if ch.Resource == cloudhsm.ResourceCluster && ch.ID == c.ID {
				if ch.Cause != cloudhsm.CauseReplica || ch.To != cloudhsm.ClusterCreateInProgress {
					t.Errorf("change %+v: want cause replica, to CREATE_IN_PROGRESS", ch)
				}
				return
			}
		case <-deadline:
			t.Fatalf("replica 1's feed did not announce the cluster replica 0 created")
		}
	}
}

// TestSharedTimedWorkTakenOver: when the replica holding the lease goes
// away, another applies due transitions without any request asking.
func TestSharedTimedWorkTakenOver(t *testing.T) {
	db := store.NewSharedMemory(nil)
	cfg := sharedConfig()
	cfg.Delays = cloudhsm.UniformDelays(100 * time.Millisecond)
	leader := startReplica(t, db, cfg)
	if !leader.conn.Leader() {
		t.Fatal("the first replica does not hold the lease")
	}
	other := startReplica(t, db, cfg)
	sub := other.svc.Feed().Subscribe(64)
	defer sub.Close()
	c := createIn(t, leader, "subnet-0000000a")
	leader.stop()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ch := <-sub.C:
			if ch.ID == c.ID && ch.To == cloudhsm.ClusterUninitialized {
				if !other.conn.Leader() {
					t.Errorf("the transition was applied, but not by the lease holder")
				}
				return
			}
		case <-deadline:
			t.Fatalf("no replica applied the due transition after the leader went away")
		}
	}
}

// TestSharedStoreAway: while the store is away, calls fail promptly with an
// error that is not a refusal; afterwards, everything acknowledged is there.
func TestSharedStoreAway(t *testing.T) {
	db := store.NewSharedMemory(nil)
	rs := startReplicas(t, db, 2, sharedConfig())
	c := createIn(t, rs[0], "subnet-0000000a")
	db.SetDown(true)
	start := time.Now()
	_, err := rs[1].svc.CreateCluster(context.Background(), sharedTenant, cloudhsm.CreateClusterInput{HsmType: cloudhsm.HsmTypeHsm2m, SubnetIDs: []string{"subnet-0000000a"}})
	var de *cloudhsm.Error
	if err == nil || errors.As(err, &de) {
		t.Fatalf("CreateCluster with the store away: %v, want a store error", err)
	}
	if _, err := rs[0].svc.VisitClusters(sharedTenant, cloudhsm.ClusterFilter{}, 0, 10, func(*cloudhsm.Cluster) {}); err == nil {
		t.Errorf("a read with the store away succeeded: it cannot know it is current")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("failing took %v", d)
	}
	db.SetDown(false)
	got := clustersOf(t, rs[1])
	if len(got) != 1 || got[0].ID != c.ID {
		t.Fatalf("after the store came back: %d clusters", len(got))
	}
	createIn(t, rs[1], "subnet-0000000a")
	if got := clustersOf(t, rs[0]); len(got) != 2 {
		t.Errorf("after the store came back, a new cluster is missing: %d", len(got))
	}
}

// TestSharedSeedOnce: replicas starting together with one seed file seed
// the estate once.
func TestSharedSeedOnce(t *testing.T) {
	rs := startReplicas(t, store.NewSharedMemory(nil), 3, sharedConfig())
	var wg sync.WaitGroup
	var mu sync.Mutex
	seeded := 0
	for _, r := range rs {
		wg.Go(func() {
			snap := &cloudhsm.Snapshot{Clusters: []*cloudhsm.Cluster{
				{Tenant: sharedTenant, Subnets: []network.Subnet{{ID: "subnet-0000000a", AZ: "us-east-1a"}}},
				{Tenant: sharedTenant, Subnets: []network.Subnet{{ID: "subnet-0000000b", AZ: "us-east-1b"}}},
			}}
			ok, err := r.svc.Seed(snap)
			if err != nil {
				t.Error(err)
				return
			}
			if ok {
				mu.Lock()
				seeded++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if seeded != 1 {
		t.Errorf("%d replicas seeded the estate, want 1", seeded)
	}
	if got := clustersOf(t, rs[2]); len(got) != 2 {
		t.Errorf("%d clusters after three replicas seeded with two", len(got))
	}
}
