// Package storetest is the conformance suite that every store.Store
// implementation must pass. It lives in a non-test file so that any package
// providing a Store can run it from its own tests.
package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cloudhsm-local/cloudhsm-local/internal/store"
)

// Record is one stored record, as passed to Load's callback.
type Record struct {
	Kind, Key string
	Value     []byte
}

// Run runs the conformance suite, one subtest per case.
//
// open must return a new, empty store (on fresh data, e.g. in t.TempDir())
// and a reopen function. The suite may Close s at any time; it always closes
// s before it calls reopen, which must then open a new store on the same data
// without closing anything itself. The suite closes whatever reopen returns.
//
// For a store that does not persist anything (store.Memory), reopen is nil or
// returns nil: the suite then skips its after-reopen checks. open may call
// t.Fatal; reopen is called on the subtest's goroutine and may too.
func Run(t *testing.T, open func(t *testing.T) (s store.Store, reopen func() store.Store)) {
	cases := []struct {
		name string
		fn   func(t *testing.T, h *harness)
	}{
		{"EmptyLoad", testEmptyLoad},
		{"SetOverwriteDelete", testSetOverwriteDelete},
		{"OrderWithinGroup", testOrderWithinGroup},
		{"EmptyGroup", testEmptyGroup},
		{"InvalidGroupRejected", testInvalidGroupRejected},
		{"CallerMayReuseBuffers", testCallerMayReuseBuffers},
		{"LoadOrder", testLoadOrder},
		{"LoadCallbackError", testLoadCallbackError},
		{"GroupOrderConcurrent", testGroupOrderConcurrent},
		{"GroupAtomicity", testGroupAtomicity},
		{"ManyConcurrentWriters", testManyConcurrentWriters},
		{"CloseFlushesPendingGroups", testCloseFlushes},
		{"CloseIdempotent", testCloseIdempotent},
		{"UseAfterClose", testUseAfterClose},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, reopen := open(t)
			if s == nil {
				t.Fatal("open returned a nil store")
			}
			t.Cleanup(func() { _ = s.Close() })
			c.fn(t, &harness{s: s, reopen: reopen})
		})
	}
}

// harness is the store under test and the way to reopen its data.
type harness struct {
	s      store.Store
	reopen func() store.Store
}

// reopened closes the store under test and returns a store reopened on the
// same data, or nil if the store is not durable.
func (h *harness) reopened(t *testing.T) store.Store {
	t.Helper()
	if err := h.s.Close(); err != nil {
		t.Fatalf("Close before reopen: %v", err)
	}
	if h.reopen == nil {
		return nil
	}
	r := h.reopen()
	if r == nil {
		return nil
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close of reopened store: %v", err)
		}
	})
	return r
}

// checkDurable reopens the store and checks that it holds exactly want.
func (h *harness) checkDurable(t *testing.T, want map[string]string) {
	t.Helper()
	if r := h.reopened(t); r != nil {
		checkState(t, "after reopen", r, want)
	}
}

// submit submits muts and waits, failing the test on error.
func submit(t *testing.T, s store.Store, muts ...store.Mutation) {
	t.Helper()
	if err := s.Submit(muts)(); err != nil {
		t.Fatalf("Submit(%v): %v", muts, err)
	}
}

func set(kind, key, value string) store.Mutation {
	return store.Mutation{Kind: kind, Key: key, Value: []byte(value)}
}

func del(kind, key string) store.Mutation {
	return store.Mutation{Kind: kind, Key: key}
}

// LoadAll returns every record of s, in the order Load produced them.
func LoadAll(s store.Store) ([]Record, error) {
	var recs []Record
	err := s.Load(func(kind, key string, value []byte) error {
		recs = append(recs, Record{kind, key, value})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	return recs, nil
}

// state loads s into a map from "kind/key" to value, checking Load order and
// that no value is nil.
func state(t *testing.T, s store.Store) map[string]string {
	t.Helper()
	recs, err := LoadAll(s)
	if err != nil {
		t.Fatal(err)
	}
	got := make(map[string]string, len(recs))
	for i, r := range recs {
		if r.Value == nil {
			t.Errorf("Load gave a nil value for %q/%q", r.Kind, r.Key)
		}
		if i > 0 {
			p := recs[i-1]
			if p.Kind > r.Kind || (p.Kind == r.Kind && p.Key >= r.Key) {
				t.Errorf("Load order: %q/%q came before %q/%q", p.Kind, p.Key, r.Kind, r.Key)
			}
		}
		got[r.Kind+"/"+r.Key] = string(r.Value)
	}
	return got
}

// checkState checks that s holds exactly want ("kind/key" -> value).
func checkState(t *testing.T, when string, s store.Store, want map[string]string) {
	t.Helper()
	got := state(t, s)
	if maps.Equal(got, want) {
		return
	}
	var diffs []string
	for k, w := range want {
		if g, ok := got[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("missing %s (want %q)", k, w))
		} else if g != w {
			diffs = append(diffs, fmt.Sprintf("%s = %q, want %q", k, g, w))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("unexpected %s = %q", k, g))
		}
	}
	slices.Sort(diffs)
	if len(diffs) > 20 {
		diffs = append(diffs[:20], fmt.Sprintf("... and %d more", len(diffs)-20))
	}
	t.Errorf("%s: state differs:\n  %s", when, strings.Join(diffs, "\n  "))
}

func testEmptyLoad(t *testing.T, h *harness) {
	n := 0
	if err := h.s.Load(func(string, string, []byte) error { n++; return nil }); err != nil {
		t.Fatalf("Load on an empty store: %v", err)
	}
	if n != 0 {
		t.Fatalf("Load on an empty store gave %d records", n)
	}
	h.checkDurable(t, map[string]string{})
}

func testSetOverwriteDelete(t *testing.T, h *harness) {
	s := h.s
	submit(t, s, set("cluster", "c-1", "v1"))
	checkState(t, "after set", s, map[string]string{"cluster/c-1": "v1"})

	submit(t, s, set("cluster", "c-1", "v2"))
	submit(t, s, set("cluster", "c-2", "x"), set("backup", "b-1", "y"))
	checkState(t, "after overwrite", s, map[string]string{"cluster/c-1": "v2", "cluster/c-2": "x", "backup/b-1": "y"})

	submit(t, s, del("cluster", "c-2"))
	submit(t, s, del("cluster", "missing"), del("no-such-kind", "k")) // deleting nothing is fine
	submit(t, s, del("backup", "b-1"))
	// An empty, non-nil value is a record, not a delete.
	submit(t, s, store.Mutation{Kind: "meta", Key: "empty", Value: []byte{}})
	want := map[string]string{"cluster/c-1": "v2", "meta/empty": ""}
	checkState(t, "after delete", s, want)

	// Re-creating a kind whose records were all deleted works.
	submit(t, s, set("backup", "b-2", "z"))
	want["backup/b-2"] = "z"
	checkState(t, "after re-create", s, want)
	h.checkDurable(t, want)
}

func testOrderWithinGroup(t *testing.T, h *harness) {
	s := h.s
	submit(t, s, set("k", "y", "old"))
	submit(t, s,
		set("k", "x", "1"), set("k", "x", "2"), // last set wins
		set("k", "y", "1"), del("k", "y"), // delete after set wins
		del("k", "z"), set("k", "z", "3"), // set after delete wins
		set("j", "a", "1"), set("k", "w", "1"), set("j", "a", "2"), // interleaved kinds
	)
	want := map[string]string{"k/x": "2", "k/z": "3", "k/w": "1", "j/a": "2"}
	checkState(t, "after group", s, want)
	h.checkDurable(t, want)
}

func testEmptyGroup(t *testing.T, h *harness) {
	s := h.s
	w1 := s.Submit([]store.Mutation{set("k", "a", "1")})
	// An empty group is a barrier: once its wait returns nil, every group
	// submitted before it is durable.
	if err := s.Submit(nil)(); err != nil {
		t.Fatalf("Submit(nil): %v", err)
	}
	if err := s.Submit([]store.Mutation{})(); err != nil {
		t.Fatalf("Submit(empty): %v", err)
	}
	if err := w1(); err != nil {
		t.Fatalf("group before the barrier: %v", err)
	}
	want := map[string]string{"k/a": "1"}
	checkState(t, "after barrier", s, want)
	h.checkDurable(t, want)
}

func testInvalidGroupRejected(t *testing.T, h *harness) {
	s := h.s
	long := strings.Repeat("k", 32769)
	bad := [][]store.Mutation{
		{set("k", "ok", "1"), {Kind: "", Key: "a", Value: []byte("1")}},
		{set("k", "ok", "1"), {Kind: "k", Key: "", Value: []byte("1")}},
		{set("k", "ok", "1"), {Kind: "k", Key: ""}},
		{set("k", "ok", "1"), {Kind: long, Key: "a", Value: []byte("1")}},
		{set("k", "ok", "1"), {Kind: "k", Key: long, Value: []byte("1")}},
	}
	// Interleave valid and invalid groups: the invalid ones must not affect
	// the valid ones, whether batched together or not.
	var waits []func() error
	for i, g := range bad {
		waits = append(waits, s.Submit([]store.Mutation{set("good", fmt.Sprint(i), "v")}))
		if err := s.Submit(g)(); !errors.Is(err, store.ErrInvalidMutation) {
			t.Errorf("invalid group %d: wait = %v, want ErrInvalidMutation", i, err)
		}
	}
	want := map[string]string{}
	for i, w := range waits {
		if err := w(); err != nil {
			t.Fatalf("valid group %d: %v", i, err)
		}
		want["good/"+fmt.Sprint(i)] = "v"
	}
	checkState(t, "after invalid groups", s, want)
	h.checkDurable(t, want)
}

func testCallerMayReuseBuffers(t *testing.T, h *harness) {
	s := h.s
	buf := []byte("original")
	muts := []store.Mutation{{Kind: "k", Key: "a", Value: buf}}
	wait := s.Submit(muts)
	copy(buf, "XXXXXXXX")
	muts[0] = store.Mutation{Kind: "other", Key: "b", Value: []byte("1")}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"k/a": "original"}
	checkState(t, "after reuse", s, want)

	// Values handed to Load's callback belong to the callback.
	err := s.Load(func(_, _ string, v []byte) error {
		for i := range v {
			v[i] = 'Z'
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	checkState(t, "after scribbling on loaded values", s, want)
	h.checkDurable(t, want)
}

func testLoadOrder(t *testing.T, h *harness) {
	s := h.s
	// Byte order, not locale or length order: upper case before lower case,
	// 0x00 first, 0xff last, prefixes before their extensions.
	kinds := []string{"b", "B", "a", "ab", "a\xff", "\x00"}
	keys := []string{"z", "Z", "10", "9", "1", "", "\x00", "\xff", "a/b", "a", "ab"}
	for i, k := range kinds {
		var muts []store.Mutation
		for j := len(keys) - 1; j >= 0; j-- { // reverse order within the group
			if keys[j] == "" {
				continue
			}
			muts = append(muts, set(k, keys[j], fmt.Sprintf("%d.%d", i, j)))
		}
		submit(t, s, muts...)
	}
	var want []Record
	for i, k := range kinds {
		for j, key := range keys {
			if key != "" {
				want = append(want, Record{k, key, []byte(fmt.Sprintf("%d.%d", i, j))})
			}
		}
	}
	slices.SortFunc(want, func(a, b Record) int {
		if c := strings.Compare(a.Kind, b.Kind); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
	check := func(when string, s store.Store) {
		t.Helper()
		got, err := LoadAll(s)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.EqualFunc(got, want, func(a, b Record) bool {
			return a.Kind == b.Kind && a.Key == b.Key && bytes.Equal(a.Value, b.Value)
		}) {
			t.Errorf("%s: Load order:\n got  %q\n want %q", when, got, want)
		}
	}
	check("before reopen", s)
	if r := h.reopened(t); r != nil {
		check("after reopen", r)
	}
}

func testLoadCallbackError(t *testing.T, h *harness) {
	s := h.s
	submit(t, s, set("k", "a", "1"), set("k", "b", "2"), set("k", "c", "3"))
	stop := errors.New("stop here")
	var seen []string
	err := s.Load(func(_, key string, _ []byte) error {
		seen = append(seen, key)
		if key == "b" {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Fatalf("Load = %v, want an error wrapping the callback's", err)
	}
	if !slices.Equal(seen, []string{"a", "b"}) {
		t.Fatalf("Load went on after the callback failed: saw %q", seen)
	}
}

// testGroupOrderConcurrent has many goroutines submit conflicting groups
// under a caller mutex (as the domain does); the store must end up exactly
// like the caller's model, updated under that same mutex.
func testGroupOrderConcurrent(t *testing.T, h *harness) {
	s := h.s
	const writers, perWriter, nkeys = 32, 40, 6
	var (
		mu    sync.Mutex
		model = map[string]string{}
		wg    sync.WaitGroup
		errs  = make(chan error, writers)
	)
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				v := fmt.Sprintf("w%d-%d", w, i)
				k1 := fmt.Sprint((w + i) % nkeys)
				k2 := fmt.Sprint((w*7 + i*3) % nkeys)
				muts := []store.Mutation{set("a", k1, v), set("b", k2, v)}
				if i%5 == 4 {
					muts = append(muts, del("a", k2))
				}
				mu.Lock()
				for _, m := range muts {
					if m.Value == nil {
						delete(model, m.Kind+"/"+m.Key)
					} else {
						model[m.Kind+"/"+m.Key] = string(m.Value)
					}
				}
				wait := s.Submit(muts)
				mu.Unlock()
				if err := wait(); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("wait: %v", err)
	}
	checkState(t, "after concurrent groups", s, model)
	h.checkDurable(t, model)
}

// testGroupAtomicity checks, with concurrent Loads, that a group's mutations
// become visible together: every group sets (or deletes) the same four keys
// across two kinds.
func testGroupAtomicity(t *testing.T, h *harness) {
	s := h.s
	const writers, perWriter = 8, 40
	keys := [][2]string{{"a", "1"}, {"a", "2"}, {"b", "1"}, {"b", "2"}}
	group := func(v string) []store.Mutation {
		var muts []store.Mutation
		for _, k := range keys {
			if v == "" {
				muts = append(muts, del(k[0], k[1]))
			} else {
				muts = append(muts, set(k[0], k[1], v))
			}
		}
		return muts
	}
	check := func(when string, s store.Store) error {
		recs, err := LoadAll(s)
		if err != nil {
			return err
		}
		if len(recs) != 0 && len(recs) != len(keys) {
			return fmt.Errorf("%s: saw a partial group: %q", when, recs)
		}
		for _, r := range recs {
			if !bytes.Equal(r.Value, recs[0].Value) {
				return fmt.Errorf("%s: saw mixed groups: %q", when, recs)
			}
		}
		return nil
	}

	var (
		mu     sync.Mutex
		last   string
		wg     sync.WaitGroup
		done   = make(chan struct{})
		errs   = make(chan error, writers+1)
		reader sync.WaitGroup
	)
	reader.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			if err := check("concurrent Load", s); err != nil {
				errs <- err
				return
			}
		}
	})
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				v := fmt.Sprintf("w%d-%d", w, i)
				if i%7 == 6 {
					v = "" // delete the whole group
				}
				mu.Lock()
				last = v
				wait := s.Submit(group(v))
				mu.Unlock()
				if err := wait(); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(done)
	reader.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	want := map[string]string{}
	if last != "" {
		for _, k := range keys {
			want[k[0]+"/"+k[1]] = last
		}
	}
	checkState(t, "after writers", s, want)
	h.checkDurable(t, want)
}

// testManyConcurrentWriters has many goroutines submit without any caller
// lock; Submit itself must be safe for concurrent use.
func testManyConcurrentWriters(t *testing.T, h *harness) {
	s := h.s
	const writers, perWriter = 32, 60
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				k := fmt.Sprintf("w%02d-%03d", w, i)
				if err := s.Submit([]store.Mutation{set("kind"+fmt.Sprint(w%3), k, k)})(); err != nil {
					errs <- fmt.Errorf("writer %d group %d: %w", w, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	want := map[string]string{}
	for w := range writers {
		for i := range perWriter {
			k := fmt.Sprintf("w%02d-%03d", w, i)
			want["kind"+fmt.Sprint(w%3)+"/"+k] = k
		}
	}
	checkState(t, "after writers", s, want)
	h.checkDurable(t, want)
}

func testCloseFlushes(t *testing.T, h *harness) {
	s := h.s
	const n = 500
	waits := make([]func() error, 0, n)
	want := map[string]string{}
	for i := range n {
		k := fmt.Sprint(i % 300)
		v := fmt.Sprint(i)
		waits = append(waits, s.Submit([]store.Mutation{set("k", k, v)}))
		want["k/"+k] = v
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for i, w := range waits {
		if err := w(); err != nil {
			t.Fatalf("group %d submitted before Close: %v", i, err)
		}
	}
	h.checkDurable(t, want) // Close again (idempotent), then reopen
}

func testCloseIdempotent(t *testing.T, h *harness) {
	s := h.s
	submit(t, s, set("k", "a", "1"))
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() { errs <- s.Close() })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent Close: %v", err)
		}
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close again: %v", err)
	}
	h.checkDurable(t, map[string]string{"k/a": "1"})
}

func testUseAfterClose(t *testing.T, h *harness) {
	s := h.s
	submit(t, s, set("k", "a", "1"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wait := s.Submit([]store.Mutation{set("k", "b", "2")})
	for range 2 { // wait may be called more than once
		if err := wait(); !errors.Is(err, store.ErrClosed) {
			t.Fatalf("wait after Close = %v, want ErrClosed", err)
		}
	}
	if err := s.Submit(nil)(); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("empty group after Close = %v, want ErrClosed", err)
	}
	if err := s.Load(func(string, string, []byte) error { return nil }); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Load after Close = %v, want ErrClosed", err)
	}
	h.checkDurable(t, map[string]string{"k/a": "1"})
}
