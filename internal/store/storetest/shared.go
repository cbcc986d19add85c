package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/store"
)

// RunShared runs the conformance suite of store.Shared, one subtest per
// case. newEstate must return a function that opens connections (one
// process's store each) to one new, empty estate; the suite closes every
// connection it opens. Every Shared store must also pass Run.
func RunShared(t *testing.T, newEstate func(t *testing.T) (connect func() store.Shared)) {
	cases := []struct {
		name string
		fn   func(t *testing.T, connect func() store.Shared)
	}{
		{"RefreshFromZeroResets", testRefreshFromZero},
		{"RefreshDelta", testRefreshDelta},
		{"RefreshSeesAcknowledged", testRefreshSeesAcknowledged},
		{"ExclusiveSerializes", testExclusiveSerializes},
		{"ExclusiveDecideErrorCommitsNothing", testExclusiveDecideError},
		{"ExclusiveInvalidMutation", testExclusiveInvalid},
		{"SavePlacements", testSavePlacements},
		{"SavePlacementsConcurrent", testSavePlacementsConcurrent},
		{"SavePlacementsDelete", testSavePlacementsDelete},
		{"SavePlacementsInsideExclusive", testSavePlacementsInsideExclusive},
		{"RefreshViewAhead", testRefreshViewAhead},
		{"ExclusiveSeesOtherDeletion", testExclusiveSeesOtherDeletion},
		{"ExclusiveClock", testExclusiveClock},
		{"SubmitVisibleToRefresh", testSubmitVisibleToRefresh},
		{"OneLeader", testOneLeader},
		{"SharedClock", testSharedClock},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			open := newEstate(t)
			connect := func() store.Shared {
				s := open()
				t.Cleanup(func() { _ = s.Close() })
				return s
			}
			c.fn(t, connect)
		})
	}
}

// view is a store.View that keeps the records it is handed.
type view struct {
	mu      sync.Mutex
	records map[string]string // kind/key -> value
	resets  int
	applied []string // kind/key=value or kind/key (deleted), in order
}

func newView() *view { return &view{records: map[string]string{}} }

func (v *view) Reset() {
	v.records = map[string]string{}
	v.resets++
}

func (v *view) Apply(kind, key string, value []byte) error {
	k := kind + "/" + key
	if value == nil {
		delete(v.records, k)
		v.applied = append(v.applied, k)
		return nil
	}
	v.records[k] = string(value)
	v.applied = append(v.applied, k+"="+string(value))
	return nil
}

func exclusive(t *testing.T, s store.Shared, since uint64, v *view, muts ...store.Mutation) store.Sync {
	t.Helper()
	sy, err := s.Exclusive(context.Background(), since, v, func(time.Time) ([]store.Mutation, error) { return muts, nil })
	if err != nil {
		t.Fatalf("Exclusive: %v", err)
	}
	return sy
}

func refresh(t *testing.T, s store.Shared, since uint64, v *view) store.Sync {
	t.Helper()
	sy, err := s.Refresh(context.Background(), since, v)
	if err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	return sy
}

func testRefreshFromZero(t *testing.T, connect func() store.Shared) {
	a, b := connect(), connect()
	exclusive(t, a, 0, newView(), set("cluster", "k1", "v1"), set("meta", "m", "x"))
	if _, err := a.SavePlacements(context.Background(), "acct/", 0, []store.Mutation{set(store.KindPlacement, "acct/subnet-1", "p")}); err != nil {
		t.Fatal(err)
	}
	v := newView()
	sy := refresh(t, b, 0, v)
	if v.resets != 1 {
		t.Errorf("Refresh from 0 reset the view %d times, want 1", v.resets)
	}
	want := map[string]string{"cluster/k1": "v1", "meta/m": "x"}
	if !mapsEqual(v.records, want) {
		t.Errorf("Refresh from 0 gave %v, want %v (placements are never refreshed)", v.records, want)
	}
	if sy.Version == 0 {
		t.Errorf("version 0 after a commit")
	}
	// Load gives placements too.
	recs, err := LoadAll(b)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(recs, func(r Record) bool { return r.Kind == store.KindPlacement }) {
		t.Errorf("Load did not return the placement: %v", recs)
	}
}

func testRefreshDelta(t *testing.T, connect func() store.Shared) {
	a, b := connect(), connect()
	exclusive(t, a, 0, newView(), set("cluster", "k1", "v1"), set("cluster", "k2", "v2"))
	v := newView()
	sy := refresh(t, b, 0, v)
	va := newView()
	s1 := exclusive(t, a, 0, va, set("cluster", "k1", "v1b"), del("cluster", "k2"), store.Mutation{Kind: "backup", Key: "e", Value: []byte{}})
	s2 := exclusive(t, a, s1.Version, va, set("cluster", "k3", "v3"))
	if s2.Version <= s1.Version || s1.Version <= sy.Version {
		t.Errorf("versions do not grow: %d, %d, %d", sy.Version, s1.Version, s2.Version)
	}
	v.applied = nil
	got := refresh(t, b, sy.Version, v)
	if v.resets != 1 {
		t.Errorf("a delta refresh reset the view")
	}
	if got.Version != s2.Version {
		t.Errorf("refresh reached version %d, want %d", got.Version, s2.Version)
	}
	want := map[string]string{"cluster/k1": "v1b", "cluster/k3": "v3", "backup/e": ""}
	if !mapsEqual(v.records, want) {
		t.Errorf("after the delta: %v, want %v", v.records, want)
	}
	// Changes come in version order: k3 (the later commit) last.
	if len(v.applied) == 0 || v.applied[len(v.applied)-1] != "cluster/k3=v3" {
		t.Errorf("changes applied in the order %v: the later commit must come last", v.applied)
	}
	if !slices.Contains(v.applied, "cluster/k2") {
		t.Errorf("the deletion of k2 was not handed over: %v", v.applied)
	}
	// Nothing new: nothing applied.
	v.applied = nil
	again := refresh(t, b, got.Version, v)
	if len(v.applied) != 0 || again.Version != got.Version {
		t.Errorf("an idle refresh applied %v and moved to version %d", v.applied, again.Version)
	}
}

func testRefreshSeesAcknowledged(t *testing.T, connect func() store.Shared) {
	conns := []store.Shared{connect(), connect(), connect()}
	views := make([]*view, len(conns))
	vers := make([]uint64, len(conns))
	for i := range views {
		views[i] = newView()
	}
	for i := range 30 {
		w := i % len(conns)
		sy := exclusive(t, conns[w], vers[w], views[w], set("cluster", "n", strconv.Itoa(i)))
		vers[w] = sy.Version
		r := (i + 1) % len(conns)
		rs := refresh(t, conns[r], vers[r], views[r])
		vers[r] = rs.Version
		if got := views[r].records["cluster/n"]; got != strconv.Itoa(i) {
			t.Fatalf("write %d acknowledged by connection %d; a refresh of connection %d started after it sees %q", i, w, r, got)
		}
	}
}

// testExclusiveSerializes: increments decided from each connection's view
// under Exclusive are never lost, whatever the interleaving.
func testExclusiveSerializes(t *testing.T, connect func() store.Shared) {
	const workers, each = 6, 25
	conns := []store.Shared{connect(), connect(), connect()}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			s := conns[w%len(conns)]
			v := newView()
			var since uint64
			for range each {
				sy, err := s.Exclusive(context.Background(), since, v, func(time.Time) ([]store.Mutation, error) {
					n, _ := strconv.Atoi(v.records["meta/counter"])
					runtime.Gosched() // let another writer in, if the lock lets it
					return []store.Mutation{set("meta", "counter", strconv.Itoa(n+1))}, nil
				})
				if err != nil {
					errs <- err
					return
				}
				since = sy.Version
				// The view holds what decide wrote only after the next
				// refresh: apply it as a domain would have, in memory.
				n, _ := strconv.Atoi(v.records["meta/counter"])
				v.records["meta/counter"] = strconv.Itoa(n + 1)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	v := newView()
	refresh(t, connect(), 0, v)
	if got := v.records["meta/counter"]; got != strconv.Itoa(workers*each) {
		t.Errorf("counter %s after %d serialized increments", got, workers*each)
	}
}

func testExclusiveDecideError(t *testing.T, connect func() store.Shared) {
	a, b := connect(), connect()
	boom := errors.New("boom")
	_, err := a.Exclusive(context.Background(), 0, newView(), func(time.Time) ([]store.Mutation, error) {
		return []store.Mutation{set("cluster", "k", "v")}, boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Exclusive returned %v, want decide's error", err)
	}
	v := newView()
	refresh(t, b, 0, v)
	if len(v.records) != 0 {
		t.Errorf("a failed decide committed %v", v.records)
	}
}

func testExclusiveInvalid(t *testing.T, connect func() store.Shared) {
	a := connect()
	_, err := a.Exclusive(context.Background(), 0, newView(), func(time.Time) ([]store.Mutation, error) {
		return []store.Mutation{set("cluster", "ok", "v"), set("cluster", "", "v")}, nil
	})
	if !errors.Is(err, store.ErrInvalidMutation) {
		t.Fatalf("Exclusive with an empty key returned %v, want ErrInvalidMutation", err)
	}
	v := newView()
	refresh(t, a, 0, v)
	if len(v.records) != 0 {
		t.Errorf("an invalid group committed %v", v.records)
	}
}

func testSavePlacements(t *testing.T, connect func() store.Shared) {
	a, b := connect(), connect()
	ctx := context.Background()
	held, err := a.SavePlacements(ctx, "111/us-east-1/", 0, []store.Mutation{set(store.KindPlacement, "111/us-east-1/subnet-a", "A")})
	if err != nil || held != nil {
		t.Fatalf("first save: %v %v", held, err)
	}
	// b knows none of the tenant's placements: it is told, nothing is saved.
	held, err = b.SavePlacements(ctx, "111/us-east-1/", 0, []store.Mutation{set(store.KindPlacement, "111/us-east-1/subnet-b", "B")})
	if err != nil || len(held) != 1 || held[0].Key != "111/us-east-1/subnet-a" || string(held[0].Value) != "A" {
		t.Fatalf("save by a process that missed a placement: %v %v, want subnet-a returned", held, err)
	}
	// Another tenant is not concerned.
	if held, err := b.SavePlacements(ctx, "111/eu-west-1/", 0, []store.Mutation{set(store.KindPlacement, "111/eu-west-1/subnet-b", "C")}); err != nil || held != nil {
		t.Fatalf("save in another tenant: %v %v", held, err)
	}
	// Knowing it, b saves.
	if held, err := b.SavePlacements(ctx, "111/us-east-1/", 1, []store.Mutation{set(store.KindPlacement, "111/us-east-1/subnet-b", "B")}); err != nil || held != nil {
		t.Fatalf("save knowing the placement: %v %v", held, err)
	}
	recs, err := LoadAll(connect())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		got = append(got, r.Key+"="+string(r.Value))
	}
	want := []string{"111/eu-west-1/subnet-b=C", "111/us-east-1/subnet-a=A", "111/us-east-1/subnet-b=B"}
	if !slices.Equal(got, want) {
		t.Errorf("placements %v, want %v", got, want)
	}
}

// testSavePlacementsConcurrent: processes racing to place subnets of one
// tenant never both save while one missed the other's.
func testSavePlacementsConcurrent(t *testing.T, connect func() store.Shared) {
	const procs = 4
	conns := make([]store.Shared, procs)
	for i := range conns {
		conns[i] = connect()
	}
	var wg sync.WaitGroup
	for p := range procs {
		wg.Go(func() {
			known := map[string]bool{}
			for i := range 5 {
				key := fmt.Sprintf("t/subnet-%d-%d", p, i)
				for {
					held, err := conns[p].SavePlacements(context.Background(), "t/", len(known), []store.Mutation{set(store.KindPlacement, key, "x")})
					if err != nil {
						t.Error(err)
						return
					}
					if held == nil {
						known[key] = true
						break
					}
					for _, r := range held {
						known[r.Key] = true
					}
				}
			}
		})
	}
	wg.Wait()
	recs, err := LoadAll(connect())
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != procs*5 {
		t.Errorf("%d placements saved, want %d", len(recs), procs*5)
	}
}

func testOneLeader(t *testing.T, connect func() store.Shared) {
	conns := []store.Shared{connect(), connect(), connect()}
	leader := func() []int {
		var out []int
		for i, c := range conns {
			if c.Leader() {
				out = append(out, i)
			}
		}
		return out
	}
	deadline := time.Now().Add(20 * time.Second)
	var got []int
	for got = leader(); len(got) != 1 && time.Now().Before(deadline); got = leader() {
		time.Sleep(50 * time.Millisecond) // a lease is taken in the background
	}
	if len(got) != 1 {
		t.Fatalf("leaders %v, want exactly one", got)
	}
	first := got[0]
	if err := conns[first].Close(); err != nil {
		t.Fatal(err)
	}
	rest := slices.Delete(slices.Clone(conns), first, first+1)
	for time.Now().Before(deadline) {
		n := 0
		for _, c := range rest {
			if c.Leader() {
				n++
			}
		}
		if n == 1 {
			return
		}
		if n > 1 {
			t.Fatalf("%d leaders after the first closed", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no connection took the lease over within 20s of the leader closing")
}

func testSharedClock(t *testing.T, connect func() store.Shared) {
	a, b := connect(), connect()
	sa := refresh(t, a, 0, newView())
	sb := refresh(t, b, 0, newView())
	if sa.Now.IsZero() || sb.Now.IsZero() {
		t.Fatalf("no clock: %v %v", sa.Now, sb.Now)
	}
	if d := sb.Now.Sub(sa.Now); d < 0 || d > 5*time.Second {
		t.Errorf("the second refresh's clock is %v after the first's: both read one clock", d)
	}
	if err := a.Ping(context.Background()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !bytes.Equal([]byte(v), []byte(w)) {
			return false
		}
	}
	return true
}
