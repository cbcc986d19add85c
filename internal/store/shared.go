package store

import (
	"context"
	"errors"
	"time"
)

// Shared is a Store that several processes serve one estate from (the
// PostgreSQL store, behind a load balancer). Each process keeps a View of
// the estate in memory, and the store keeps every View current and every
// change ordered:
//
//   - the store numbers its states with versions: each committed change
//     makes a new one;
//   - Exclusive is the only way to change the estate: it holds the
//     estate's lock against every other process while the caller brings
//     its View up to date, decides, and commits, so every rule the caller
//     checks in memory holds across processes;
//   - Refresh brings a View up to date without the lock, as of a moment
//     after it was called, so a read that starts after a change was
//     acknowledged, anywhere, sees it.
//
// Records of kind "subnet" are the network provider's placements: Load
// returns them, but Refresh and Exclusive never do (the provider keeps its
// own in step through Placements).
//
// Implementations are safe for concurrent use. Submit (of Store) commits a
// group as Exclusive would, without a View.
type Shared interface {
	Store

	// Refresh applies to view the records changed since version since, or,
	// when the store no longer knows what changed since then (since is 0,
	// or older than the changes it keeps), calls view.Reset and applies
	// every record. The records are those of a state committed after
	// Refresh was called. It returns that state's version and the store's
	// clock when it was read.
	Refresh(ctx context.Context, since uint64, view View) (Sync, error)

	// Exclusive takes the estate's lock, refreshes view as Refresh does,
	// calls decide with the store's clock, and commits the mutations decide
	// returns atomically as a new version, before it releases the lock.
	// If decide fails, nothing is committed and its error is returned. If
	// the commit fails, the error wraps ErrOutcomeUnknown when the store
	// cannot tell whether it was committed: the caller's View (which
	// already holds the changes) must then be rebuilt from the store.
	Exclusive(ctx context.Context, since uint64, view View, decide func(now time.Time) ([]Mutation, error)) (Sync, error)

	// SavePlacements commits muts, records of kind "subnet" whose keys
	// start with prefix (one tenant's placements), unless the store holds
	// more than known records of that kind under prefix: then it commits
	// nothing and returns every one of them, for the caller to learn. It
	// does not take the estate's lock (placements are never refreshed),
	// so it may be called from inside Exclusive's decide, as an import
	// does when it adopts the subnets of the clusters it brings: it then
	// commits on its own, whatever becomes of the Exclusive around it.
	SavePlacements(ctx context.Context, prefix string, known int, muts []Mutation) (held []Record, err error)

	// Leader reports whether this process holds the estate's lease for
	// timed work: the one process that applies due transitions without
	// waiting for a request to read them. When it dies, another process
	// takes the lease over within seconds.
	Leader() bool

	// Ping reports whether the store answers, within ctx.
	Ping(ctx context.Context) error
}

// Record is one record of a store.
type Record struct {
	Kind, Key string
	Value     []byte
}

// KindPlacement is the kind of the records SavePlacements keeps.
const KindPlacement = "subnet"

// Sync is where a View stands after Refresh or Exclusive.
type Sync struct {
	Version uint64
	// Now is the store's clock when the state was read: every process
	// serving the estate reads the same clock.
	Now time.Time
	// Applied counts the records handed to the View.
	Applied int
}

// View is a process's copy of the estate, which a Shared store keeps
// current. Its methods are called from Refresh and Exclusive, one at a
// time, while the caller holds whatever lock guards the copy.
type View interface {
	// Reset drops every record: the records that follow are the whole
	// estate.
	Reset()
	// Apply sets a record (value not nil) or deletes it (nil).
	Apply(kind, key string, value []byte) error
}

// ErrOutcomeUnknown is wrapped by Exclusive's error when a commit failed in
// a way that leaves its outcome unknown.
var ErrOutcomeUnknown = errors.New("store: the outcome of the commit is unknown")
