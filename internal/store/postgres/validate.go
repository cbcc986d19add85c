package postgres

import (
	"fmt"

	"github.com/cloudhsm-local/cloudhsm-local/internal/store"
)

// The limits of this store, narrower than those of every store
// (store.ValidateMutations): PostgreSQL's B-tree index keeps a kind and a
// key of at most about 2,700 bytes together (a third of a page), and a
// bytea of at most 1 GB.
const (
	maxKindKeyLen = 2048
	maxValueLen   = 256 << 20
)

// validate reports the first mutation of muts that the store cannot
// apply, wrapping store.ErrInvalidMutation: those no store can apply,
// then those beyond this store's limits.
func validate(muts []store.Mutation) error {
	if err := store.ValidateMutations(muts); err != nil {
		return err
	}
	for i, m := range muts {
		var why string
		switch {
		case len(m.Kind)+len(m.Key) > maxKindKeyLen:
			why = fmt.Sprintf("kind and key longer than %d bytes together, the PostgreSQL store's limit", maxKindKeyLen)
		case len(m.Value) > maxValueLen:
			why = fmt.Sprintf("value longer than %d bytes, the PostgreSQL store's limit", maxValueLen)
		default:
			continue
		}
		return fmt.Errorf("%w: mutation %d (kind %.40q, key %.40q): %s", store.ErrInvalidMutation, i, m.Kind, m.Key, why)
	}
	return nil
}

// batch is a group of mutations ready for the database: the last
// mutation of each record wins (the group applies in order), records and
// placements apart, deletions of placements apart. The slices alias the
// caller's values.
type batch struct {
	kinds, keys, values  [][]byte // records; a nil value is a deletion
	placeKeys, placeVals [][]byte // placements set
	placeDels            [][]byte // placements deleted
	bytes                int
}

// add appends muts to b, in order.
func (b *batch) add(muts []store.Mutation, seen map[[2]string]int) {
	for _, m := range muts {
		id := [2]string{m.Kind, m.Key}
		b.bytes += len(m.Kind) + len(m.Key) + len(m.Value)
		if i, ok := seen[id]; ok {
			b.values[i] = m.Value // a later mutation of the same record wins
			continue
		}
		seen[id] = len(b.kinds)
		b.kinds = append(b.kinds, []byte(m.Kind))
		b.keys = append(b.keys, []byte(m.Key))
		b.values = append(b.values, m.Value)
	}
}

// split moves the placements out of the records.
func (b *batch) split() {
	n := 0
	for i := range b.kinds {
		if string(b.kinds[i]) != store.KindPlacement {
			b.kinds[n], b.keys[n], b.values[n] = b.kinds[i], b.keys[i], b.values[i]
			n++
			continue
		}
		if b.values[i] == nil {
			b.placeDels = append(b.placeDels, b.keys[i])
		} else {
			b.placeKeys = append(b.placeKeys, b.keys[i])
			b.placeVals = append(b.placeVals, b.values[i])
		}
	}
	clear(b.kinds[n:])
	b.kinds, b.keys, b.values = b.kinds[:n], b.keys[:n], b.values[:n]
}

// newBatch prepares one group.
func newBatch(muts []store.Mutation) *batch {
	b := &batch{}
	b.add(muts, make(map[[2]string]int, len(muts)))
	b.split()
	return b
}

func (b *batch) empty() bool {
	return len(b.kinds) == 0 && len(b.placeKeys) == 0 && len(b.placeDels) == 0
}
