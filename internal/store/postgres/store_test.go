package postgres_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cloudhsm-local/cloudhsm-local/internal/store"
	"github.com/cloudhsm-local/cloudhsm-local/internal/store/postgres"
	"github.com/cloudhsm-local/cloudhsm-local/internal/store/storetest"
	"github.com/cloudhsm-local/cloudhsm-local/internal/testkit/pgtest"
)

// view is a store.View that keeps what it is handed.
type view struct {
	records map[string]string
	resets  int
}

func newView() *view { return &view{records: map[string]string{}} }

func (v *view) Reset() { v.records = map[string]string{}; v.resets++ }

func (v *view) Apply(kind, key string, value []byte) error {
	if value == nil {
		delete(v.records, kind+"/"+key)
	} else {
		v.records[kind+"/"+key] = string(value)
	}
	return nil
}

func set(kind, key, value string) store.Mutation {
	return store.Mutation{Kind: kind, Key: key, Value: []byte(value)}
}

func del(kind, key string) store.Mutation { return store.Mutation{Kind: kind, Key: key} }

func exclusive(t *testing.T, s store.Shared, since uint64, v store.View, muts ...store.Mutation) store.Sync {
	t.Helper()
	sy, err := s.Exclusive(context.Background(), since, v, func(time.Time) ([]store.Mutation, error) { return muts, nil })
	if err != nil {
		t.Fatalf("Exclusive: %v", err)
	}
	return sy
}

// scalar runs one query on url, outside the store, and scans one value.
func scalar[T any](t *testing.T, url, sql string, args ...any) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var v T
	if err := c.QueryRow(ctx, sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

func TestSchemaVersionsNumbered(t *testing.T) {
	if v := postgres.SchemaVersion(); v < 1 {
		t.Fatalf("SchemaVersion() = %d", v) // it panics when the files are misnumbered
	}
}

// TestConcurrentStartMigratesOnce: replicas starting together on a new
// database all start, and the schema is made once.
func TestConcurrentStartMigratesOnce(t *testing.T) {
	url := pgtest.Shared(t).NewDatabase(t)
	const n = 5
	stores := make([]*postgres.Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			stores[i], errs[i] = postgres.Open(ctx, url, postgres.Options{})
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d: Open: %v", i, err)
		} else {
			t.Cleanup(func() { _ = stores[i].Close() })
		}
	}
	if t.Failed() {
		return
	}
	if got := scalar[int64](t, url, "SELECT count(*) FROM schema_version"); got != int64(postgres.SchemaVersion()) {
		t.Errorf("schema_version has %d rows, want %d", got, postgres.SchemaVersion())
	}
	if got := scalar[int64](t, url, "SELECT count(*) FROM estate"); got != 1 {
		t.Errorf("estate has %d rows", got)
	}
	exclusive(t, stores[0], 0, newView(), set("cluster", "c", "v"))
	v := newView()
	if _, err := stores[n-1].Refresh(context.Background(), 0, v); err != nil || v.records["cluster/c"] != "v" {
		t.Errorf("another replica sees %v (%v)", v.records, err)
	}
}

// TestRefusesNewerSchema: a binary older than the database's schema does
// not start, says why, and leaves the database alone.
func TestRefusesNewerSchema(t *testing.T) {
	url := pgtest.Shared(t).NewDatabase(t)
	s := open(t, url, postgres.Options{})
	exclusive(t, s, 0, newView(), set("cluster", "c", "v"))
	_ = s.Close()
	known := postgres.SchemaVersion()
	newer := known + 1
	_ = scalar[int](t, url, "INSERT INTO schema_version (version, name) VALUES ($1, 'from a newer binary') RETURNING version", newer)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := postgres.Open(ctx, url, postgres.Options{})
	if !errors.Is(err, postgres.ErrSchemaTooNew) {
		t.Fatalf("Open on a newer schema: %v, want ErrSchemaTooNew", err)
	}
	for _, want := range []string{fmt.Sprintf("schema version %d", newer), fmt.Sprintf("up to %d", known), "upgrade cloudhsm-local"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error %q does not say %q", err, want)
		}
	}
	if got := scalar[int64](t, url, "SELECT count(*) FROM records"); got != 1 {
		t.Errorf("the refused start changed the records: %d", got)
	}
	if got := scalar[int](t, url, "SELECT max(version) FROM schema_version"); got != newer {
		t.Errorf("schema version %d after a refused start, want %d", got, newer)
	}
}

// TestPurgedTombstonesReload: a view older than the purged tombstones
// reloads the whole estate (it would keep a deleted record otherwise); a
// view newer than them gets a delta.
func TestPurgedTombstonesReload(t *testing.T) {
	url := pgtest.Shared(t).NewDatabase(t)
	a, b := open(t, url, postgres.Options{}), open(t, url, postgres.Options{})
	ctx := context.Background()
	va := newView()
	sa := exclusive(t, a, 0, va, set("cluster", "k1", "1"), set("cluster", "k2", "2"))
	old := newView()
	so, err := b.Refresh(ctx, 0, old)
	if err != nil {
		t.Fatal(err)
	}
	sa = exclusive(t, a, sa.Version, va, del("cluster", "k1"), set("cluster", "k3", "3"))
	recent := newView()
	sr, err := b.Refresh(ctx, 0, recent)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := a.PurgeTombstones(ctx, 0); err != nil || n != 1 {
		t.Fatalf("PurgeTombstones = %d, %v; want 1 tombstone purged", n, err)
	}
	if got := scalar[int64](t, url, "SELECT count(*) FROM records WHERE value IS NULL"); got != 0 {
		t.Fatalf("%d tombstones left", got)
	}
	want := map[string]string{"cluster/k2": "2", "cluster/k3": "3"}

	sy, err := b.Refresh(ctx, so.Version, old)
	if err != nil {
		t.Fatal(err)
	}
	if old.resets != 2 || !mapsEqual(old.records, want) || sy.Version != sa.Version {
		t.Errorf("a view older than the purge: %d resets, %v at version %d; want a reload to %v at %d", old.resets, old.records, sy.Version, want, sa.Version)
	}
	exclusive(t, a, sa.Version, va, set("cluster", "k4", "4"))
	want["cluster/k4"] = "4"
	if _, err := b.Refresh(ctx, sr.Version, recent); err != nil {
		t.Fatal(err)
	}
	if recent.resets != 1 || !mapsEqual(recent.records, want) {
		t.Errorf("a view newer than the purge: %d resets, %v; want a delta to %v", recent.resets, recent.records, want)
	}
	// Exclusive reloads as Refresh does.
	stale := newView()
	stale.records = map[string]string{"cluster/k1": "1", "cluster/k2": "2"}
	exclusive(t, b, so.Version, stale)
	if !mapsEqual(stale.records, want) || stale.resets != 1 {
		t.Errorf("Exclusive from before the purge: %d resets, %v; want %v", stale.resets, stale.records, want)
	}
}

// TestLeaderPurges: the lease holder purges old tombstones by itself.
func TestLeaderPurges(t *testing.T) {
	url := pgtest.Shared(t).NewDatabase(t)
	s := open(t, url, postgres.Options{LeaseEvery: 20 * time.Millisecond, PurgeEvery: 20 * time.Millisecond, TombstoneTTL: time.Nanosecond})
	v := newView()
	sy := exclusive(t, s, 0, v, set("backup", "b", "x"))
	exclusive(t, s, sy.Version, v, del("backup", "b"))
	deadline := time.Now().Add(20 * time.Second)
	for scalar[int64](t, url, "SELECT count(*) FROM records") != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the tombstone is still there 20 s later (leader: %v)", s.Leader())
		}
		time.Sleep(20 * time.Millisecond) // the lease holder works in the background
	}
	if got := scalar[int64](t, url, "SELECT purged_to FROM estate"); got != int64(sy.Version+1) {
		t.Errorf("purged_to = %d, want %d", got, sy.Version+1)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestPlacementsApart: records of kind "subnet" are placements whichever
// way they are written: Load gives them in byte order among the other
// kinds, Refresh never does.
func TestPlacementsApart(t *testing.T) {
	url := pgtest.Shared(t).NewDatabase(t)
	s := open(t, url, postgres.Options{})
	ctx := context.Background()
	if err := s.Submit([]store.Mutation{set("sub", "1", "a"), set("subnet", "p/1", "b"), set("subnets", "1", "c"), set("z", "1", "d"), set("subnet", "p/2", "x")})(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SavePlacements(ctx, "p/", 2, []store.Mutation{set("subnet", "p/3", "e")}); err != nil {
		t.Fatal(err)
	}
	exclusive(t, s, 0, newView(), del("subnet", "p/2"), set("a", "1", "f"))
	recs, err := storetest.LoadAll(s)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		got = append(got, r.Kind+"/"+r.Key+"="+string(r.Value))
	}
	want := []string{"a/1=f", "sub/1=a", "subnet/p/1=b", "subnet/p/3=e", "subnets/1=c", "z/1=d"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("Load gave %v, want %v", got, want)
	}
	v := newView()
	if _, err := s.Refresh(ctx, 0, v); err != nil {
		t.Fatal(err)
	}
	for k := range v.records {
		if strings.HasPrefix(k, "subnet/") {
			t.Errorf("Refresh handed over the placement %s", k)
		}
	}
	if _, err := s.SavePlacements(ctx, "p/", 5, []store.Mutation{set("cluster", "p/4", "e")}); !errors.Is(err, store.ErrInvalidMutation) {
		t.Errorf("SavePlacements of a cluster record: %v, want ErrInvalidMutation", err)
	}
}

// TestKeyLimits: the longest kind and key this store keeps, of bytes that
// do not compress, are kept; one byte more is refused as invalid, before
// anything is sent.
func TestKeyLimits(t *testing.T) {
	url := pgtest.Shared(t).NewDatabase(t)
	s := open(t, url, postgres.Options{})
	noise := make([]byte, 2048)
	_, _ = rand.Read(noise)
	kind, key := string(noise[:48]), string(noise[48:])
	if err := s.Submit([]store.Mutation{{Kind: kind, Key: key, Value: noise}})(); err != nil {
		t.Fatalf("a kind and key of 2,048 bytes together: %v", err)
	}
	if err := s.Submit([]store.Mutation{{Kind: kind, Key: key + "x", Value: noise}})(); !errors.Is(err, store.ErrInvalidMutation) {
		t.Fatalf("a kind and key of 2,049 bytes together: %v, want ErrInvalidMutation", err)
	}
	recs, err := storetest.LoadAll(s)
	if err != nil || len(recs) != 1 || recs[0].Key != key || string(recs[0].Value) != string(noise) {
		t.Fatalf("Load after the long key: %d records, %v", len(recs), err)
	}
}

// TestRefusesTextResults: a URL that asks for text results (which would
// garble bytes) is refused at Open, saying why.
func TestRefusesTextResults(t *testing.T) {
	url := pgtest.Shared(t).NewDatabase(t) + "&default_query_exec_mode=simple_protocol"
	s, err := postgres.Open(context.Background(), url, postgres.Options{})
	if err == nil {
		_ = s.Close()
		t.Fatal("Open accepted default_query_exec_mode=simple_protocol")
	}
	if !strings.Contains(err.Error(), "default_query_exec_mode") {
		t.Errorf("the error %q does not name the setting", err)
	}
}
