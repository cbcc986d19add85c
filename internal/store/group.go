package store

import (
	"errors"
	"fmt"
)

// ErrInvalidMutation is returned (through the wait function of Submit) for a
// group that contains a mutation no store can apply: an empty or oversized
// Kind or Key. Such a group is rejected as a whole before it is enqueued, so
// it never affects other groups.
var ErrInvalidMutation = errors.New("store: invalid mutation")

// maxNameLen is the longest Kind or Key accepted by every Store. It matches
// bbolt's maximum key size, so that Memory and Bolt accept exactly the same
// mutations.
const maxNameLen = 32768

// maxValueLen is the largest Value accepted by every Store (bbolt's limit).
const maxValueLen = (1 << 31) - 2

// ValidateMutations reports the first mutation of muts that no store can
// apply, wrapping ErrInvalidMutation. A store with narrower limits checks
// them after these.
func ValidateMutations(muts []Mutation) error {
	for i, m := range muts {
		switch {
		case m.Kind == "":
			return fmt.Errorf("%w: mutation %d: empty kind", ErrInvalidMutation, i)
		case len(m.Kind) > maxNameLen:
			return fmt.Errorf("%w: mutation %d: kind longer than %d bytes", ErrInvalidMutation, i, maxNameLen)
		case m.Key == "":
			return fmt.Errorf("%w: mutation %d (kind %q): empty key", ErrInvalidMutation, i, m.Kind)
		case len(m.Key) > maxNameLen:
			return fmt.Errorf("%w: mutation %d (kind %q): key longer than %d bytes", ErrInvalidMutation, i, m.Kind, maxNameLen)
		case int64(len(m.Value)) > maxValueLen:
			return fmt.Errorf("%w: mutation %d (kind %q, key %q): value longer than %d bytes", ErrInvalidMutation, i, m.Kind, m.Key, int64(maxValueLen))
		}
	}
	return nil
}

// CloneMutations returns a deep copy of muts, so that the caller may reuse its
// slices once Submit has returned. A nil Value stays nil (delete) and an empty
// non-nil Value stays empty and non-nil (set to empty). All values share one
// allocation. It also returns the total payload size in bytes.
func CloneMutations(muts []Mutation) ([]Mutation, int) {
	size := 0
	for _, m := range muts {
		size += len(m.Value)
	}
	buf := make([]byte, 0, size)
	out := make([]Mutation, len(muts))
	total := 0
	for i, m := range muts {
		out[i] = Mutation{Kind: m.Kind, Key: m.Key}
		if m.Value != nil {
			start := len(buf)
			buf = append(buf, m.Value...)
			out[i].Value = buf[start:len(buf):len(buf)]
		}
		total += len(m.Kind) + len(m.Key) + len(m.Value)
	}
	return out, total
}

// Failed returns a wait function (of Submit) that always reports err.
func Failed(err error) func() error {
	return func() error { return err }
}
