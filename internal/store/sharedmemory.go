package store

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// SharedMemory is an estate in memory that several processes' worth of
// Shared stores open in one process: what a database is to replicas. It is
// for tests of the domain's shared mode (several services, one estate,
// without PostgreSQL) and a reference for the Shared contract.
//
// Its locks are those of the PostgreSQL store: mu is the estate's lock;
// placeMu guards the placements, apart, so that SavePlacements works from
// inside Exclusive's decide (it is taken after mu, never before); leaseMu
// guards the lease.
type SharedMemory struct {
	now func() time.Time
	// down, when set, makes every call fail, as a database away would.
	down atomic.Bool

	mu      sync.Mutex
	version uint64
	records map[recordID]*versioned // every kind but KindPlacement

	placeMu    sync.Mutex
	placements map[string][]byte // key -> value, never nil

	leaseMu sync.Mutex
	leader  *SharedMemoryConn
}

type recordID struct{ kind, key string }

type versioned struct {
	value   []byte // nil: deleted (a tombstone, kept so Refresh sees it)
	version uint64
}

// NewSharedMemory returns an empty shared estate whose clock is now (nil:
// time.Now).
func NewSharedMemory(now func() time.Time) *SharedMemory {
	if now == nil {
		now = time.Now
	}
	return &SharedMemory{now: now, records: map[recordID]*versioned{}, placements: map[string][]byte{}}
}

// Open returns a new connection to the estate: one process's Shared store.
func (db *SharedMemory) Open() *SharedMemoryConn { return &SharedMemoryConn{db: db} }

// SetDown makes every call of every connection fail (true) or work again.
func (db *SharedMemory) SetDown(down bool) { db.down.Store(down) }

// ErrDown is returned by a SharedMemory that was set down.
var ErrDown = fmt.Errorf("store: the shared estate is away")

// SharedMemoryConn is one process's connection to a SharedMemory.
type SharedMemoryConn struct {
	db     *SharedMemory
	closed atomic.Bool
}

var _ Shared = (*SharedMemoryConn)(nil)

// check fails when c is closed or the estate down.
func (c *SharedMemoryConn) check() error {
	if c.closed.Load() {
		return ErrClosed
	}
	if c.db.down.Load() {
		return ErrDown
	}
	return nil
}

// lock locks the estate for c, failing when c is closed or the estate down.
func (c *SharedMemoryConn) lock() error {
	if err := c.check(); err != nil {
		return err
	}
	c.db.mu.Lock()
	if c.db.down.Load() {
		c.db.mu.Unlock()
		return ErrDown
	}
	return nil
}

// Load implements Store: every live record, placements included.
func (c *SharedMemoryConn) Load(fn func(kind, key string, value []byte) error) error {
	if err := c.lock(); err != nil {
		return err
	}
	recs := c.db.live()
	c.db.placeMu.Lock()
	for key, value := range c.db.placements {
		recs = append(recs, Record{Kind: KindPlacement, Key: key, Value: bytes.Clone(value)})
	}
	c.db.placeMu.Unlock()
	c.db.mu.Unlock()
	sortRecords(recs)
	for _, r := range recs {
		if err := fn(r.Kind, r.Key, r.Value); err != nil {
			return fmt.Errorf("store: load %s/%s: %w", r.Kind, r.Key, err)
		}
	}
	return nil
}

// live returns copies of the live records (placements apart), in (kind,
// key) order; the estate is locked.
func (db *SharedMemory) live() []Record {
	var out []Record
	for id, v := range db.records {
		if v.value != nil {
			out = append(out, Record{Kind: id.kind, Key: id.key, Value: bytes.Clone(v.value)})
		}
	}
	sortRecords(out)
	return out
}

func sortRecords(recs []Record) {
	slices.SortFunc(recs, func(a, b Record) int { return cmp.Or(strings.Compare(a.Kind, b.Kind), strings.Compare(a.Key, b.Key)) })
}

// Submit implements Store: the group is committed at once as a new version.
func (c *SharedMemoryConn) Submit(muts []Mutation) func() error {
	if err := ValidateMutations(muts); err != nil {
		return Failed(err)
	}
	if err := c.lock(); err != nil {
		return Failed(err)
	}
	defer c.db.mu.Unlock()
	c.db.commit(muts)
	return func() error { return nil }
}

// commit applies muts as a new version, placements to the placements;
// the estate is locked.
func (db *SharedMemory) commit(muts []Mutation) {
	if len(muts) == 0 {
		return
	}
	db.version++
	muts, _ = CloneMutations(muts)
	var placed []Mutation
	for _, m := range muts {
		if m.Kind == KindPlacement {
			placed = append(placed, m)
			continue
		}
		db.records[recordID{m.Kind, m.Key}] = &versioned{value: m.Value, version: db.version}
	}
	if placed != nil {
		db.placeMu.Lock()
		db.place(placed)
		db.placeMu.Unlock()
	}
}

// place applies muts (placements, copied) to the placements; placeMu is
// held.
func (db *SharedMemory) place(muts []Mutation) {
	for _, m := range muts {
		if m.Value == nil {
			delete(db.placements, m.Key)
		} else {
			db.placements[m.Key] = m.Value
		}
	}
}

// Close implements Store; it releases the lease if c holds it.
func (c *SharedMemoryConn) Close() error {
	c.closed.Store(true)
	c.db.leaseMu.Lock()
	if c.db.leader == c {
		c.db.leader = nil
	}
	c.db.leaseMu.Unlock()
	return nil
}

// Refresh implements Shared.
func (c *SharedMemoryConn) Refresh(ctx context.Context, since uint64, view View) (Sync, error) {
	if err := ctx.Err(); err != nil {
		return Sync{}, err
	}
	if err := c.lock(); err != nil {
		return Sync{}, err
	}
	defer c.db.mu.Unlock()
	return c.db.refresh(since, view)
}

// refresh hands view what changed since since; the estate is locked.
func (db *SharedMemory) refresh(since uint64, view View) (Sync, error) {
	sy := Sync{Version: db.version, Now: db.now()}
	var recs []Record
	if since == 0 || since > db.version {
		view.Reset()
		recs = db.live()
	} else {
		recs = db.changes(since)
	}
	for _, r := range recs {
		if err := view.Apply(r.Kind, r.Key, r.Value); err != nil {
			return Sync{}, fmt.Errorf("store: apply %s/%s: %w", r.Kind, r.Key, err)
		}
	}
	sy.Applied = len(recs)
	return sy, nil
}

// changes returns copies of the records changed since since, deletions
// included, oldest version first; the estate is locked.
func (db *SharedMemory) changes(since uint64) []Record {
	type change struct {
		Record
		version uint64
	}
	var changes []change
	for id, v := range db.records {
		if v.version > since {
			changes = append(changes, change{Record{id.kind, id.key, bytes.Clone(v.value)}, v.version})
		}
	}
	slices.SortFunc(changes, func(a, b change) int {
		return cmp.Or(cmp.Compare(a.version, b.version), strings.Compare(a.Kind, b.Kind), strings.Compare(a.Key, b.Key))
	})
	recs := make([]Record, len(changes))
	for i, ch := range changes {
		recs[i] = ch.Record
	}
	return recs
}

// Exclusive implements Shared.
func (c *SharedMemoryConn) Exclusive(ctx context.Context, since uint64, view View, decide func(now time.Time) ([]Mutation, error)) (Sync, error) {
	if err := ctx.Err(); err != nil {
		return Sync{}, err
	}
	if err := c.lock(); err != nil {
		return Sync{}, err
	}
	defer c.db.mu.Unlock()
	sy, err := c.db.refresh(since, view)
	if err != nil {
		return Sync{}, err
	}
	muts, err := decide(sy.Now)
	if err != nil {
		return sy, err
	}
	if err := ValidateMutations(muts); err != nil {
		return sy, err
	}
	c.db.commit(muts)
	sy.Version = c.db.version
	return sy, nil
}

// SavePlacements implements Shared. It takes the placements' lock only,
// never the estate's: it may be called from inside Exclusive's decide.
func (c *SharedMemoryConn) SavePlacements(ctx context.Context, prefix string, known int, muts []Mutation) ([]Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := validPlacements(prefix, muts); err != nil {
		return nil, err
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	muts, _ = CloneMutations(muts)
	db := c.db
	db.placeMu.Lock()
	defer db.placeMu.Unlock()
	var held []Record
	for _, key := range slices.Sorted(maps.Keys(db.placements)) {
		if strings.HasPrefix(key, prefix) {
			held = append(held, Record{Kind: KindPlacement, Key: key, Value: bytes.Clone(db.placements[key])})
		}
	}
	if len(held) > known {
		return held, nil
	}
	db.place(muts)
	return nil, nil
}

// validPlacements reports the first mutation of muts that SavePlacements
// cannot apply: an invalid one, or one that is not a placement under
// prefix.
func validPlacements(prefix string, muts []Mutation) error {
	if err := ValidateMutations(muts); err != nil {
		return err
	}
	for i, m := range muts {
		if m.Kind != KindPlacement || !strings.HasPrefix(m.Key, prefix) {
			return fmt.Errorf("%w: mutation %d (kind %q, key %q) is not a placement under %q", ErrInvalidMutation, i, m.Kind, m.Key, prefix)
		}
	}
	return nil
}

// Leader implements Shared: the first open connection to ask holds the
// lease until it is closed.
func (c *SharedMemoryConn) Leader() bool {
	c.db.leaseMu.Lock()
	defer c.db.leaseMu.Unlock()
	if c.db.leader == nil && !c.closed.Load() && !c.db.down.Load() {
		c.db.leader = c
	}
	return c.db.leader == c
}

// Ping implements Shared.
func (c *SharedMemoryConn) Ping(ctx context.Context) error {
	if err := c.check(); err != nil {
		return err
	}
	return ctx.Err()
}
