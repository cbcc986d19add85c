package store

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Memory is a Store that keeps every record in memory and loses it when the
// process exits. It is used for --in-memory mode and in tests.
//
// Submit applies the group immediately, atomically and in the order of Submit
// calls; its wait function returns nil (or the validation error, for a group
// that was rejected as a whole).
type Memory struct {
	mu     sync.RWMutex
	closed bool
	kinds  map[string]map[string][]byte // values are private copies, never mutated
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-memory Store.
func NewMemory() *Memory {
	return &Memory{kinds: make(map[string]map[string][]byte)}
}

// Load calls fn for every record in (Kind, Key) byte order. fn receives its
// own copy of each value. The records are snapshotted before fn is first
// called, so fn may call Submit. Load returns ErrClosed after Close, and the
// error from fn, wrapped, if fn fails.
func (m *Memory) Load(fn func(kind, key string, value []byte) error) error {
	type record struct {
		kind, key string
		value     []byte
	}
	m.mu.RLock()
	if m.closed {
		m.mu.RUnlock()
		return fmt.Errorf("store: load: %w", ErrClosed)
	}
	var recs []record
	for kind, bucket := range m.kinds {
		for key, value := range bucket {
			recs = append(recs, record{kind, key, value})
		}
	}
	m.mu.RUnlock()

	slices.SortFunc(recs, func(a, b record) int {
		return cmp.Or(strings.Compare(a.kind, b.kind), strings.Compare(a.key, b.key))
	})
	for _, r := range recs {
		if err := fn(r.kind, r.key, append([]byte{}, r.value...)); err != nil {
			return fmt.Errorf("store: load %s/%s: %w", r.kind, r.key, err)
		}
	}
	return nil
}

// Submit validates muts, then applies them at once, atomically. Later
// mutations of a group win over earlier ones for the same key. The values are
// copied, so the caller may reuse muts after Submit returns. After Close the
// returned wait yields ErrClosed.
func (m *Memory) Submit(muts []Mutation) (wait func() error) {
	if err := ValidateMutations(muts); err != nil {
		return Failed(err)
	}
	muts, _ = CloneMutations(muts)

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Failed(ErrClosed)
	}
	for _, mut := range muts {
		bucket := m.kinds[mut.Kind]
		if mut.Value == nil {
			delete(bucket, mut.Key) // no-op on a nil map
			if len(bucket) == 0 {
				delete(m.kinds, mut.Kind)
			}
			continue
		}
		if bucket == nil {
			bucket = make(map[string][]byte)
			m.kinds[mut.Kind] = bucket
		}
		bucket[mut.Key] = mut.Value
	}
	return func() error { return nil }
}

// Close discards the records and makes later calls fail with ErrClosed. It
// is safe to call more than once and always returns nil.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	m.kinds = nil
	return nil
}
