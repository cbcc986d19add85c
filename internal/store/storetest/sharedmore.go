package storetest

import (
	"context"
	"fmt"
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
