package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

func openTestBolt(t *testing.T) *Bolt {
	t.Helper()
	b, err := OpenBolt(filepath.Join(t.TempDir(), "state.db"), BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// A failed commit fails every group in it, rolls all of them back, and
// fails every later group (the store is no longer in step with its caller).
func TestBoltCommitFailureIsSticky(t *testing.T) {
	b := openTestBolt(t)
	if err := b.Submit([]Mutation{{Kind: "k", Key: "before", Value: []byte("1")}})(); err != nil {
		t.Fatal(err)
	}

	injected := errors.New("injected disk failure")
	entered := make(chan struct{})
	release := make(chan struct{})
	var calls atomic.Int32
	b.inTxHook = func() error { // set before the next Submit: no race with the committer
		if calls.Add(1) == 1 {
			close(entered)
			<-release
		}
		return injected
	}

	// The first group's commit blocks in the hook; the next ones queue up.
	first := b.Submit([]Mutation{{Kind: "k", Key: "g0", Value: []byte("x")}})
	<-entered
	var waits []func() error
	for i := 1; i <= 5; i++ {
		waits = append(waits, b.Submit([]Mutation{{Kind: "k", Key: fmt.Sprint("g", i), Value: []byte("x")}}))
	}
	close(release)
	if err := first(); !errors.Is(err, injected) {
		t.Fatalf("group in the failed commit: %v, want the injected error", err)
	}
	for i, w := range waits {
		if err := w(); !errors.Is(err, injected) {
			t.Errorf("group %d queued behind the failed commit: %v, want the injected error", i+1, err)
		}
	}
	if err := b.Submit([]Mutation{{Kind: "k", Key: "later", Value: []byte("x")}})(); !errors.Is(err, injected) {
		t.Errorf("group after the failed commit: %v, want the injected error", err)
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("%d commits attempted after the failure, want 1", got)
	}

	var keys []string
	if err := b.Load(func(_, key string, _ []byte) error { keys = append(keys, key); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0] != "before" {
		t.Errorf("after the failed commit the store holds %q, want only \"before\"", keys)
	}
	if err := b.Close(); !errors.Is(err, injected) {
		t.Errorf("Close = %v, want the commit error", err)
	}
}

// Concurrent groups share transactions (and fsyncs).
func TestBoltGroupCommit(t *testing.T) {
	b := openTestBolt(t)
	var commits atomic.Int64
	b.inTxHook = func() error { commits.Add(1); return nil }

	const writers, perWriter = 32, 30
	var wg sync.WaitGroup
	var failures atomic.Int64
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				if err := b.Submit([]Mutation{{Kind: "k", Key: fmt.Sprint(w, "-", i), Value: []byte("v")}})(); err != nil {
					failures.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := failures.Load(); n > 0 {
		t.Fatalf("%d groups failed", n)
	}
	groups, txs := int64(writers*perWriter), commits.Load()
	t.Logf("%d groups in %d transactions (%.1f per transaction)", groups, txs, float64(groups)/float64(txs))
	if txs >= groups/2 {
		t.Errorf("%d groups took %d transactions: concurrent groups are not batched", groups, txs)
	}
}
