package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/cloudhsm-local/cloudhsm-local/internal/store"
	"github.com/cloudhsm-local/cloudhsm-local/internal/store/postgres"
	"github.com/cloudhsm-local/cloudhsm-local/internal/store/storetest"
	"github.com/cloudhsm-local/cloudhsm-local/internal/testkit/pgtest"
)

func openBolt(t *testing.T, path string) *store.Bolt {
	t.Helper()
	b, err := store.OpenBolt(path, store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// estate is records of every kind the domain keeps, with values of every
// byte and an empty one.
func estate() []store.Mutation {
	var muts []store.Mutation
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	for i := range 300 {
		muts = append(muts,
			store.Mutation{Kind: "cluster", Key: fmt.Sprintf("111122223333/us-east-1/cluster-%05d", i), Value: append([]byte(fmt.Sprint(i)), all...)},
			store.Mutation{Kind: "backup", Key: fmt.Sprintf("111122223333/us-east-1/backup-%05d", i), Value: []byte(fmt.Sprintf(`{"due":%d}`, i))},
		)
	}
	return append(muts,
		store.Mutation{Kind: "meta", Key: "token-secret", Value: all},
		store.Mutation{Kind: "meta", Key: "clock", Value: []byte("offset=3600s")},
		store.Mutation{Kind: "meta", Key: "empty", Value: []byte{}},
		store.Mutation{Kind: "pki", Key: "root", Value: []byte("-----BEGIN CERTIFICATE-----")},
		store.Mutation{Kind: store.KindPlacement, Key: "111122223333/us-east-1/subnet-1", Value: []byte("vpc-1 us-east-1a 10.0.0.0/24")},
		store.Mutation{Kind: store.KindPlacement, Key: "111122223333/us-east-1/subnet-2", Value: []byte("vpc-1 us-east-1b 10.0.1.0/24")},
	)
}

func sameRecords(t *testing.T, what string, a, b store.Store) int {
	t.Helper()
	ra, err := storetest.LoadAll(a)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := storetest.LoadAll(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(ra) != len(rb) {
		t.Fatalf("%s: %d records, want %d", what, len(rb), len(ra))
	}
	for i := range ra {
		if ra[i].Kind != rb[i].Kind || ra[i].Key != rb[i].Key || !bytes.Equal(ra[i].Value, rb[i].Value) || (ra[i].Value == nil) != (rb[i].Value == nil) {
			t.Fatalf("%s: record %d is %q/%q=%q, want %q/%q=%q", what, i, rb[i].Kind, rb[i].Key, rb[i].Value, ra[i].Kind, ra[i].Key, ra[i].Value)
		}
	}
	return len(ra)
}

// TestCopyLossless: an estate copied from bbolt to PostgreSQL and back is
// the same, record for record, every kind.
func TestCopyLossless(t *testing.T) {
	ctx := context.Background()
	src := openBolt(t, filepath.Join(t.TempDir(), "state.db"))
	if err := src.Submit(estate())(); err != nil {
		t.Fatal(err)
	}
	pg := open(t, pgtest.Shared(t).NewDatabase(t), postgres.Options{})
	n, err := postgres.Copy(ctx, src, pg)
	if err != nil {
		t.Fatal(err)
	}
	if want := sameRecords(t, "bbolt -> postgres", src, pg); n != want {
		t.Errorf("Copy reported %d records, want %d", n, want)
	}
	// The copy is a version replicas refresh to (placements apart).
	v := newView()
	if _, err := pg.Refresh(ctx, 0, v); err != nil || len(v.records) != len(estate())-2 {
		t.Errorf("a replica refreshes %d records (%v), want %d", len(v.records), err, len(estate())-2)
	}

	back := openBolt(t, filepath.Join(t.TempDir(), "state.db"))
	if _, err := postgres.Copy(ctx, pg, back); err != nil {
		t.Fatal(err)
	}
	sameRecords(t, "postgres -> bbolt", src, back)

	pg2 := open(t, pgtest.Shared(t).NewDatabase(t), postgres.Options{})
	if _, err := postgres.Copy(ctx, pg, pg2); err != nil {
		t.Fatal(err)
	}
	sameRecords(t, "postgres -> postgres", src, pg2)
}

// TestCopyRefusesNonEmpty: a target holding records (or placements) is
// left alone.
func TestCopyRefusesNonEmpty(t *testing.T) {
	ctx := context.Background()
	src := openBolt(t, filepath.Join(t.TempDir(), "state.db"))
	if err := src.Submit(estate())(); err != nil {
		t.Fatal(err)
	}
	srv := pgtest.Shared(t)
	for name, seed := range map[string]store.Mutation{
		"a record":    set("cluster", "other", "x"),
		"a placement": set(store.KindPlacement, "other/subnet", "x"),
	} {
		pg := open(t, srv.NewDatabase(t), postgres.Options{})
		if err := pg.Submit([]store.Mutation{seed})(); err != nil {
			t.Fatal(err)
		}
		if _, err := postgres.Copy(ctx, src, pg); !errors.Is(err, postgres.ErrNotEmpty) {
			t.Errorf("copy into a database holding %s: %v, want ErrNotEmpty", name, err)
		}
		if recs, _ := storetest.LoadAll(pg); len(recs) != 1 {
			t.Errorf("the refused copy changed the target: %d records", len(recs))
		}
	}
	// A database whose records were all deleted is empty.
	pg := open(t, srv.NewDatabase(t), postgres.Options{})
	if err := pg.Submit([]store.Mutation{set("cluster", "gone", "x")})(); err != nil {
		t.Fatal(err)
	}
	if err := pg.Submit([]store.Mutation{del("cluster", "gone")})(); err != nil {
		t.Fatal(err)
	}
	if _, err := postgres.Copy(ctx, src, pg); err != nil {
		t.Errorf("copy into a database whose records were deleted: %v", err)
	}
	dst := openBolt(t, filepath.Join(t.TempDir(), "state.db"))
	if err := dst.Submit([]store.Mutation{set("meta", "x", "y")})(); err != nil {
		t.Fatal(err)
	}
	if _, err := postgres.Copy(ctx, pg, dst); !errors.Is(err, postgres.ErrNotEmpty) {
		t.Errorf("copy into a data directory holding a record: %v, want ErrNotEmpty", err)
	}
}

// TestCopyOverTombstones: a database whose records were all deleted (it
// holds only their tombstones) takes a copy that holds some of the same
// keys, and a replica's view from before the copy reloads rather than
// keeping a record whose tombstone the copy removed.
func TestCopyOverTombstones(t *testing.T) {
	ctx := context.Background()
	src := openBolt(t, filepath.Join(t.TempDir(), "state.db"))
	if err := src.Submit(estate())(); err != nil {
		t.Fatal(err)
	}
	url := pgtest.Shared(t).NewDatabase(t)
	pg := open(t, url, postgres.Options{})
	again := estate()[0] // a key the copy brings back
	old := exclusive(t, pg, 0, newView(), set(again.Kind, again.Key, "old"), set("cluster", "gone", "x"))
	v := newView()
	if _, err := pg.Refresh(ctx, 0, v); err != nil || v.records["cluster/gone"] != "x" {
		t.Fatalf("a replica's view before the deletions: %v %v", v.records, err)
	}
	exclusive(t, pg, old.Version, newView(), del(again.Kind, again.Key), del("cluster", "gone"))
	n, err := postgres.Copy(ctx, src, pg)
	if err != nil {
		t.Fatalf("copy into a database holding only tombstones: %v", err)
	}
	if want := sameRecords(t, "bbolt -> postgres over tombstones", src, pg); n != want {
		t.Errorf("Copy reported %d records, want %d", n, want)
	}
	if got := scalar[int64](t, url, "SELECT count(*) FROM records WHERE value IS NULL"); got != 0 {
		t.Errorf("%d tombstones left after the copy", got)
	}
	// The view from before the deletions must not keep cluster/gone.
	sy, err := pg.Refresh(ctx, old.Version, v)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := v.records["cluster/gone"]; ok || v.resets != 2 || len(v.records) != len(estate())-2 {
		t.Errorf("a view from before the copy: %d resets, %d records (gone kept: %v) at version %d; want a reload to %d records",
			v.resets, len(v.records), ok, sy.Version, len(estate())-2)
	}
}
