package pgtest_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cloudhsm-local/cloudhsm-local/internal/testkit/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func query(t *testing.T, url, sql string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		return "", err
	}
	defer c.Close(ctx)
	var s string
	err = c.QueryRow(ctx, sql).Scan(&s)
	return s, err
}

// TestSharedServer: the shared server is durable (fsync on), runs as a
// user PostgreSQL accepts, and gives each test its own database.
func TestSharedServer(t *testing.T) {
	s := pgtest.Shared(t)
	a, b := s.NewDatabase(t), s.NewDatabase(t)
	if a == b {
		t.Fatalf("two databases share the URL %s", a)
	}
	for sql, want := range map[string]string{
		"SHOW fsync":              "on",
		"SHOW synchronous_commit": "on",
		"SELECT (current_setting('server_version_num')::int >= 150000)::text": "true",
		"SHOW lc_collate": "C",
	} {
		got, err := query(t, a, sql)
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		if got != want {
			t.Errorf("%s = %q, want %q", sql, got, want)
		}
	}
	if pgtest.Shared(t) != s {
		t.Errorf("Shared started a second server")
	}
}

// TestStopStart: a stopped server refuses connections; started again, on
// the same port, it has kept what was committed, even after a crash.
func TestStopStart(t *testing.T) {
	s := pgtest.Start(t)
	url := s.NewDatabase(t)
	if _, err := query(t, url, "CREATE TABLE x AS SELECT 'kept' AS v"); err != pgx.ErrNoRows {
		t.Fatalf("create: %v", err) // CREATE TABLE AS returns no row to scan
	}
	port := s.Port()
	s.Stop(true) // a crash: recovery from the WAL at the next start
	if _, err := query(t, url, "SELECT 1::text"); err == nil {
		t.Fatalf("a stopped server answered")
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if s.Port() != port {
		t.Fatalf("restarted on port %d, was %d", s.Port(), port)
	}
	if got, err := query(t, url, "SELECT v FROM x"); err != nil || got != "kept" {
		t.Fatalf("after a crash and a start: %q %v", got, err)
	}
}
