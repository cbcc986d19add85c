package postgres_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/store"
	"github.com/cloudhsm-local/cloudhsm-local/internal/store/postgres"
	"github.com/cloudhsm-local/cloudhsm-local/internal/store/storetest"
	"github.com/cloudhsm-local/cloudhsm-local/internal/testkit/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// open opens a store on url for t, closed when t ends.
func open(t *testing.T, url string, opts postgres.Options) *postgres.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := postgres.Open(ctx, url, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// fastLease makes the lease change hands quickly in tests.
var fastLease = postgres.Options{LeaseEvery: 100 * time.Millisecond}

func TestConformance(t *testing.T) {
	srv := pgtest.Shared(t)
	storetest.Run(t, func(t *testing.T) (store.Store, func() store.Store) {
		url := srv.NewDatabase(t)
		return open(t, url, postgres.Options{}), func() store.Store { return open(t, url, postgres.Options{}) }
	})
}

func TestSharedConformance(t *testing.T) {
	srv := pgtest.Shared(t)
	storetest.RunShared(t, func(t *testing.T) func() store.Shared {
		url := srv.NewDatabase(t)
		return func() store.Shared { return open(t, url, fastLease) }
	})
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://app:s3cret@db.example:5432/estate?sslmode=disable": "postgres://app:xxxxx@db.example:5432/estate?sslmode=disable",
		"postgres://app@db/estate":                                     "postgres://app@db/estate",
		"host=db user=app password=s3cret dbname=estate":               "host=db user=app password=xxxxx dbname=estate",
	} {
		if got := postgres.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}
