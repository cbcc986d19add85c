// Package store owns durable persistence of cloudhsm-local's state: the Store
// interface that the domain writes through, an embedded durable implementation
// (bbolt, with group commit), an in-memory implementation, the Shared
// contract for stores that several processes serve one estate from (with an
// in-memory reference, SharedMemory; the PostgreSQL store is in package
// postgres), and the conformance suites (storetest) that every
// implementation must pass.
//
// The store is a dumb ordered key-value log of records grouped by kind. It knows
// nothing of clusters or HSMs: the domain encodes each record itself and hands
// the store opaque bytes. Every write names whole records (never partial
// updates), so replaying the latest value of every key reproduces the state.
package store

import "errors"

// ErrClosed is returned by operations on a closed store.
var ErrClosed = errors.New("store: closed")

// Mutation sets or deletes one record. A nil Value deletes the record.
type Mutation struct {
	Kind  string // a bucket name such as "cluster", "backup", "meta"
	Key   string // unique within Kind
	Value []byte // nil deletes
}

// Store persists records. Implementations must be safe for concurrent use.
type Store interface {
	// Load calls fn once for every record currently stored, in (Kind, Key)
	// byte order. It is called at startup, before any Submit.
	Load(fn func(kind, key string, value []byte) error) error

	// Submit enqueues a group of mutations that must be applied atomically and
	// in the order of Submit calls. Submit itself must not block on disk: it
	// only enqueues (callers hold the domain lock while calling it, which is
	// how the order of Submit calls matches the order of in-memory changes).
	// The returned function blocks until the group is durable (fsynced for a
	// durable store) and returns the error, if any, that prevented it.
	// Implementations batch concurrent groups into one transaction and one
	// fsync (group commit).
	Submit(muts []Mutation) (wait func() error)

	// Close flushes everything submitted, then releases the store. It is safe
	// to call more than once.
	Close() error
}
