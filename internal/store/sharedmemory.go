package store

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// SharedMemory is an estate in memory that several processes' worth of
// Shared stores open in one process: what a database is to replicas. It is
// for tests of the domain's shared mode (several services, one estate,
// without PostgreSQL) and a reference for the Shared contract.
type SharedMemory struct {
	mu      sync.Mutex
	now     func() time.Time
	version uint64
	records map[recordID]*versioned
	leader  *SharedMemoryConn
	// down, when set, makes every call fail, as a database away would.
	down bool
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
	return &SharedMemory{now: now, records: map[recordID]*versioned{}}
}

// Open returns a new connection to the estate: one process's Shared store.
func (db *SharedMemory) Open() *SharedMemoryConn { return &SharedMemoryConn{db: db} }

// SetDown makes every call of every connection fail (true) or work again.
func (db *SharedMemory) SetDown(down bool) {
	db.mu.Lock()
	db.down = down
	db.mu.Unlock()
}

// ErrDown is returned by a SharedMemory that was set down.
var ErrDown = fmt.Errorf("store: the shared estate is away")

// SharedMemoryConn is one process's connection to a SharedMemory.
type SharedMemoryConn struct {
	db     *SharedMemory
	mu     sync.Mutex
	closed bool
}

var _ Shared = (*SharedMemoryConn)(nil)

// lock locks the estate for c, failing when c is closed or the estate down.
func (c *SharedMemoryConn) lock() error {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return ErrClosed
	}
	c.db.mu.Lock()
	if c.db.down {
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
	recs := c.db.live(func(recordID, *versioned) bool { return true })
	c.db.mu.Unlock()
	for _, r := range recs {
		if err := fn(r.Kind, r.Key, r.Value); err != nil {
			return fmt.Errorf("store: load %s/%s: %w", r.Kind, r.Key, err)
		}
	}
	return nil
}

// live returns copies of the records keep accepts, in (kind, key) order.
func (db *SharedMemory) live(keep func(recordID, *versioned) bool) []Record {
	var out []Record
	for id, v := range db.records {
		if v.value != nil && keep(id, v) {
			out = append(out, Record{Kind: id.kind, Key: id.key, Value: bytes.Clone(v.value)})
		}
	}
	slices.SortFunc(out, func(a, b Record) int { return cmp.Or(strings.Compare(a.Kind, b.Kind), strings.Compare(a.Key, b.Key)) })
	return out
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

// commit applies muts as a new version; the estate is locked.
func (db *SharedMemory) commit(muts []Mutation) {
	if len(muts) == 0 {
		return
	}
	db.version++
	muts, _ = CloneMutations(muts)
	for _, m := range muts {
		db.records[recordID{m.Kind, m.Key}] = &versioned{value: m.Value, version: db.version}
	}
}

// Close implements Store; it releases the lease if c holds it.
func (c *SharedMemoryConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.db.mu.Lock()
	if c.db.leader == c {
		c.db.leader = nil
	}
	c.db.mu.Unlock()
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
		recs = db.live(func(id recordID, _ *versioned) bool { return id.kind != KindPlacement })
	} else {
		type change struct {
			Record
			version uint64
		}
		var changes []change
		for id, v := range db.records {
			if v.version > since && id.kind != KindPlacement {
				changes = append(changes, change{Record{id.kind, id.key, bytes.Clone(v.value)}, v.version})
			}
		}
		slices.SortFunc(changes, func(a, b change) int {
			return cmp.Or(cmp.Compare(a.version, b.version), strings.Compare(a.Kind, b.Kind), strings.Compare(a.Key, b.Key))
		})
		for _, ch := range changes {
			recs = append(recs, ch.Record)
		}
	}
	for _, r := range recs {
		if err := view.Apply(r.Kind, r.Key, r.Value); err != nil {
			return Sync{}, fmt.Errorf("store: apply %s/%s: %w", r.Kind, r.Key, err)
		}
	}
	sy.Applied = len(recs)
	return sy, nil
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

// SavePlacements implements Shared.
func (c *SharedMemoryConn) SavePlacements(ctx context.Context, prefix string, known int, muts []Mutation) ([]Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := ValidateMutations(muts); err != nil {
		return nil, err
	}
	if err := c.lock(); err != nil {
		return nil, err
	}
	defer c.db.mu.Unlock()
	held := c.db.live(func(id recordID, _ *versioned) bool {
		return id.kind == KindPlacement && strings.HasPrefix(id.key, prefix)
	})
	if len(held) > known {
		return held, nil
	}
	c.db.commit(muts)
	return nil, nil
}

// Leader implements Shared: the first open connection to ask holds the
// lease until it is closed.
func (c *SharedMemoryConn) Leader() bool {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	c.db.mu.Lock()
	defer c.db.mu.Unlock()
	if c.db.leader == nil && !closed && !c.db.down {
		c.db.leader = c
	}
	return c.db.leader == c
}

// Ping implements Shared.
func (c *SharedMemoryConn) Ping(ctx context.Context) error {
	if err := c.lock(); err != nil {
		return err
	}
	c.db.mu.Unlock()
	return ctx.Err()
}
