package storetest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/store"
)

// placementKeys returns key=value of every placement a Load of s gives.
func placementKeys(t *testing.T, s store.Store) []string {
	t.Helper()
	recs, err := LoadAll(s)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		if r.Kind == store.KindPlacement {
			got = append(got, r.Key+"="+string(r.Value))
		}
	}
	return got
}

// testSavePlacementsDelete: a deletion among the mutations removes the
// placement when the caller knows every placement, and nothing when it
// does not.
func testSavePlacementsDelete(t *testing.T, connect func() store.Shared) {
	a, b := connect(), connect()
	ctx := context.Background()
	const prefix = "222/us-east-1/"
	if held, err := a.SavePlacements(ctx, prefix, 0, []store.Mutation{
		set(store.KindPlacement, prefix+"subnet-a", "A"), set(store.KindPlacement, prefix+"subnet-b", "B"),
	}); err != nil || held != nil {
		t.Fatalf("first save: %v %v", held, err)
	}
	// Knowing one of two: told, nothing deleted.
	held, err := b.SavePlacements(ctx, prefix, 1, []store.Mutation{del(store.KindPlacement, prefix+"subnet-a")})
	if err != nil || len(held) != 2 {
		t.Fatalf("a deletion by a process that missed a placement: %v %v, want both returned", held, err)
	}
	if got, want := placementKeys(t, connect()), []string{prefix + "subnet-a=A", prefix + "subnet-b=B"}; !slices.Equal(got, want) {
		t.Fatalf("after a refused deletion: %v, want %v", got, want)
	}
	// Knowing both: a deleted, c set, in one save.
	held, err = b.SavePlacements(ctx, prefix, 2, []store.Mutation{
		del(store.KindPlacement, prefix+"subnet-a"), set(store.KindPlacement, prefix+"subnet-c", "C"),
	})
	if err != nil || held != nil {
		t.Fatalf("a deletion knowing every placement: %v %v", held, err)
	}
	if got, want := placementKeys(t, connect()), []string{prefix + "subnet-b=B", prefix + "subnet-c=C"}; !slices.Equal(got, want) {
		t.Errorf("after the deletion: %v, want %v", got, want)
	}
}

// testSavePlacementsInsideExclusive: SavePlacements called from inside
// Exclusive's decide (as an import adopts the subnets of its clusters)
// returns, and both commit.
func testSavePlacementsInsideExclusive(t *testing.T, connect func() store.Shared) {
	a := connect()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := a.Exclusive(ctx, 0, newView(), func(time.Time) ([]store.Mutation, error) {
			held, err := a.SavePlacements(ctx, "333/", 0, []store.Mutation{set(store.KindPlacement, "333/subnet-a", "A")})
			if err != nil || held != nil {
				return nil, fmt.Errorf("SavePlacements inside decide: %v %v", held, err)
			}
			return []store.Mutation{set("cluster", "imported", "x")}, nil
		})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("SavePlacements called from inside Exclusive's decide has not returned in 20 s: a deadlock")
	}
	b := connect()
	v := newView()
	refresh(t, b, 0, v)
	if v.records["cluster/imported"] != "x" {
		t.Errorf("the Exclusive around SavePlacements did not commit: %v", v.records)
	}
	if got, want := placementKeys(t, b), []string{"333/subnet-a=A"}; !slices.Equal(got, want) {
		t.Errorf("placements %v, want %v", got, want)
	}
}

// testRefreshViewAhead: a view at a version the store has not reached (an
// estate replaced under it) is reset and given every record.
func testRefreshViewAhead(t *testing.T, connect func() store.Shared) {
	a, b := connect(), connect()
	sa := exclusive(t, a, 0, newView(), set("cluster", "k1", "v1"))
	v := newView()
	v.records["cluster/stale"] = "from another estate"
	sy := refresh(t, b, sa.Version+100, v)
	want := map[string]string{"cluster/k1": "v1"}
	if v.resets != 1 || !mapsEqual(v.records, want) || sy.Version != sa.Version {
		t.Errorf("a view ahead of the store: %d resets, %v at version %d; want a reset to %v at version %d",
			v.resets, v.records, sy.Version, want, sa.Version)
	}
}

// testExclusiveSeesOtherDeletion: before decide runs, Exclusive hands the
// view a deletion another connection committed since its version.
func testExclusiveSeesOtherDeletion(t *testing.T, connect func() store.Shared) {
	a, b := connect(), connect()
	exclusive(t, b, 0, newView(), set("cluster", "k1", "v1"), set("cluster", "k2", "v2"))
	va := newView()
	sa := refresh(t, a, 0, va)
	exclusive(t, b, 0, newView(), del("cluster", "k1"))
	va.applied = nil
	var seen map[string]string
	_, err := a.Exclusive(context.Background(), sa.Version, va, func(time.Time) ([]store.Mutation, error) {
		seen = maps.Clone(va.records)
		return []store.Mutation{set("cluster", "k3", "v3")}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"cluster/k2": "v2"}; !mapsEqual(seen, want) {
		t.Errorf("decide saw %v, want %v (k1 deleted by another connection)", seen, want)
	}
	if !slices.Contains(va.applied, "cluster/k1") || va.resets != 1 {
		t.Errorf("the view was handed %v after %d resets, want the deletion of cluster/k1 in a delta", va.applied, va.resets)
	}
}

// testExclusiveClock: decide's now is the Sync's Now, and is the store's
// clock: between the clocks of refreshes just before and just after.
func testExclusiveClock(t *testing.T, connect func() store.Shared) {
	a, b := connect(), connect()
	before := refresh(t, b, 0, newView())
	var now time.Time
	sy, err := a.Exclusive(context.Background(), 0, newView(), func(n time.Time) ([]store.Mutation, error) {
		now = n
		return []store.Mutation{set("meta", "m", "x")}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	after := refresh(t, b, 0, newView())
	if now.IsZero() || !sy.Now.Equal(now) {
		t.Errorf("decide was given %v, the Sync says %v: the same clock reading", now, sy.Now)
	}
	if now.Before(before.Now) || after.Now.Before(now) {
		t.Errorf("decide's now %v is not between the store clock's %v before and %v after", now, before.Now, after.Now)
	}
}

// testSubmitVisibleToRefresh: a group of Submit, once its wait returns, is
// in another connection's next Refresh, whole, at a newer version.
func testSubmitVisibleToRefresh(t *testing.T, connect func() store.Shared) {
	a, b := connect(), connect()
	sa := exclusive(t, a, 0, newView(), set("cluster", "gone", "x"))
	v := newView()
	sb := refresh(t, b, 0, v)
	if err := a.Submit([]store.Mutation{set("cluster", "k1", "v1"), set("backup", "b1", "w1"), del("cluster", "gone")})(); err != nil {
		t.Fatal(err)
	}
	sy := refresh(t, b, sb.Version, v)
	want := map[string]string{"cluster/k1": "v1", "backup/b1": "w1"}
	if !mapsEqual(v.records, want) || v.resets != 1 || sy.Version <= sa.Version {
		t.Errorf("after a Submit by another connection: %v (%d resets) at version %d; want %v in a delta past version %d",
			v.records, v.resets, sy.Version, want, sa.Version)
	}
}
