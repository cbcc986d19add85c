package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/store"
	"github.com/cloudhsm-local/cloudhsm-local/internal/store/postgres"
	"github.com/cloudhsm-local/cloudhsm-local/internal/testkit/pgtest"
)

// deadline is the context deadline of the calls made while the database
// is away; slack is what a call may take beyond it (a loaded machine).
const (
	deadline = 500 * time.Millisecond
	slack    = 3 * time.Second
)

// awayCalls makes every call of s with a short deadline and checks that
// each fails, promptly.
func awayCalls(t *testing.T, when string, s *postgres.Store) {
	t.Helper()
	calls := map[string]func(ctx context.Context) error{
		"Ping": s.Ping,
		"Refresh": func(ctx context.Context) error {
			_, err := s.Refresh(ctx, 0, newView())
			return err
		},
		"Exclusive": func(ctx context.Context) error {
			_, err := s.Exclusive(ctx, 0, newView(), func(time.Time) ([]store.Mutation, error) {
				return []store.Mutation{set("cluster", "lost", "x")}, nil
			})
			return err
		},
		"SavePlacements": func(ctx context.Context) error {
			_, err := s.SavePlacements(ctx, "p/", 0, []store.Mutation{set("subnet", "p/lost", "x")})
			return err
		},
		"Submit": func(context.Context) error { return s.Submit([]store.Mutation{set("cluster", "lost", "x")})() },
	}
	for name, call := range calls {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		start := time.Now()
		err := call(ctx)
		took := time.Since(start)
		cancel()
		limit := deadline + slack
		if name == "Submit" {
			limit = awayOpts.Timeout + slack // Submit has no context: Options.Timeout bounds it
		}
		if err == nil {
			t.Errorf("%s: %s succeeded", when, name)
		} else if took > limit {
			t.Errorf("%s: %s took %v to fail (%v), more than %v", when, name, took, err, limit)
		} else {
			t.Logf("%s: %s failed in %v: %v", when, name, took.Round(time.Millisecond), err)
		}
	}
}

var awayOpts = postgres.Options{Timeout: time.Second, LeaseEvery: 50 * time.Millisecond}

// waitFor polls cond (state outside the test's control: a server, a
// lease) until it holds or 30 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("not %s after 30 s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDatabaseAway: while the database is stopped, or hangs, every call
// fails within its deadline; once it is back the store works again by
// itself, with everything acknowledged before kept, and takes the lease
// again.
func TestDatabaseAway(t *testing.T) {
	srv := pgtest.Start(t)
	url := srv.NewDatabase(t)
	s := open(t, url, awayOpts)
	v := newView()
	sy := exclusive(t, s, 0, v, set("cluster", "kept", "1"))
	waitFor(t, "the leader", s.Leader)

	srv.Stop(true) // as a crash
	awayCalls(t, "stopped", s)
	waitFor(t, "rid of the lease", func() bool { return !s.Leader() })

	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "answering", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		return s.Ping(ctx) == nil
	})
	exclusive(t, s, sy.Version, v, set("cluster", "after", "2"))
	if err := s.Submit([]store.Mutation{set("backup", "after", "3")})(); err != nil {
		t.Errorf("Submit after the restart: %v (a failed commit must not fail later groups)", err)
	}
	fresh := newView()
	if _, err := s.Refresh(context.Background(), 0, fresh); err != nil || fresh.records["cluster/kept"] != "1" {
		t.Errorf("after the restart the estate is %v (%v)", fresh.records, err)
	}
	waitFor(t, "the leader again", s.Leader)

	srv.Freeze() // connections stay open, nothing answers
	awayCalls(t, "frozen", s)
	srv.Thaw()
	waitFor(t, "answering after the freeze", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		return s.Ping(ctx) == nil
	})
	fresh = newView()
	if _, err := s.Refresh(context.Background(), 0, fresh); err != nil {
		t.Fatal(err)
	}
	if fresh.records["cluster/kept"] != "1" || fresh.records["cluster/after"] != "2" || fresh.records["backup/after"] != "3" {
		t.Errorf("after the freeze the estate is %v", fresh.records)
	}
}

// TestCommitOutcomeUnknown: a commit whose answer never comes (the
// database hangs once the commit is sent) fails with ErrOutcomeUnknown,
// within the deadline; a wait for the lock that ends with the deadline
// fails plainly (nothing was sent to commit).
func TestCommitOutcomeUnknown(t *testing.T) {
	srv := pgtest.Start(t)
	url := srv.NewDatabase(t)
	a, b := open(t, url, awayOpts), open(t, url, awayOpts)

	// b waits for the lock that a holds, past its deadline.
	holding, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := a.Exclusive(context.Background(), 0, newView(), func(time.Time) ([]store.Mutation, error) {
			close(holding)
			<-release
			return []store.Mutation{set("cluster", "a", "1")}, nil
		})
		done <- err
	}()
	<-holding
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	start := time.Now()
	_, err := b.Exclusive(ctx, 0, newView(), func(time.Time) ([]store.Mutation, error) {
		t.Error("decide ran without the lock")
		return nil, nil
	})
	cancel()
	if err == nil || errors.Is(err, store.ErrOutcomeUnknown) || time.Since(start) > deadline+slack {
		t.Errorf("waiting for the lock past the deadline: %v after %v; want a plain error", err, time.Since(start))
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("the holder's commit: %v", err)
	}

	// The database hangs between decide and the commit.
	ctx, cancel = context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start = time.Now()
	_, err = a.Exclusive(ctx, 0, newView(), func(time.Time) ([]store.Mutation, error) {
		srv.Freeze()
		return []store.Mutation{set("cluster", "b", "2")}, nil
	})
	srv.Thaw()
	if !errors.Is(err, store.ErrOutcomeUnknown) {
		t.Errorf("a commit without an answer: %v, want ErrOutcomeUnknown", err)
	}
	if took := time.Since(start); took > 2*time.Second+slack {
		t.Errorf("the commit without an answer took %v", took)
	}
}
