package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// ErrInUse is returned by OpenBolt when another process (or another Bolt in
// this process) holds the database file open.
var ErrInUse = errors.New("data directory is in use by another cloudhsm-local process")

// Defaults used by OpenBolt for zero-valued BoltOptions fields.
const (
	// DefaultLockTimeout is the default BoltOptions.LockTimeout.
	DefaultLockTimeout = time.Second
	// DefaultMaxBatchGroups is the default BoltOptions.MaxBatchGroups.
	DefaultMaxBatchGroups = 1000
	// DefaultMaxBatchBytes is the default BoltOptions.MaxBatchBytes (4 MiB).
	DefaultMaxBatchBytes = 4 << 20
)

// BoltOptions tunes OpenBolt. The zero value selects the defaults.
type BoltOptions struct {
	// LockTimeout bounds how long OpenBolt waits for the exclusive lock on
	// the database file before failing with ErrInUse. Zero means
	// DefaultLockTimeout.
	LockTimeout time.Duration

	// MaxBatchGroups caps how many submitted groups are committed in one
	// transaction (and one fsync). Zero means DefaultMaxBatchGroups.
	MaxBatchGroups int

	// MaxBatchBytes caps the payload (kinds, keys and values) committed in
	// one transaction; a single larger group is still committed, alone.
	// Zero means DefaultMaxBatchBytes.
	MaxBatchBytes int
}

// Bolt is the durable Store, a single bbolt file with one bucket per Kind.
//
// Submit only enqueues. One committer goroutine takes every group queued so
// far (bounded by BoltOptions), applies them in Submit order in a single bbolt
// read-write transaction, commits it (which fsyncs), and only then releases
// the wait of each group in it. Concurrent writers therefore share one fsync
// (group commit). If a commit fails, every group in it reports the error and
// the store stops accepting writes: all later groups fail too, since applying
// them on top of a lost group would diverge from the caller's state.
type Bolt struct {
	db        *bolt.DB
	path      string
	maxGroups int
	maxBytes  int

	mu      sync.Mutex
	cond    sync.Cond  // on mu; signalled when queue grows or closing is set
	queue   []*pending // submitted, not yet taken by the committer
	spare   []*pending // recycled batch slice
	closing bool       // Close has begun; Submit refuses new groups
	failure error      // first commit error; sticky

	done      chan struct{} // closed when the committer has exited
	closeOnce sync.Once
	closeErr  error

	// inTxHook, when set (by tests only), runs inside each commit transaction
	// after the batch is applied; an error aborts the transaction.
	inTxHook func() error
}

var _ Store = (*Bolt)(nil)

// pending is one submitted group waiting for its commit.
type pending struct {
	muts []Mutation
	size int           // payload bytes
	done chan struct{} // closed once err is set
	err  error
}

// OpenBolt opens (creating if needed, with its parent directory) the bbolt
// database file at path and starts its committer. It fails with an error
// wrapping ErrInUse if another process holds the file for longer than
// opts.LockTimeout.
func OpenBolt(path string, opts BoltOptions) (*Bolt, error) {
	if opts.LockTimeout < 0 || opts.MaxBatchGroups < 0 || opts.MaxBatchBytes < 0 {
		return nil, fmt.Errorf("store: open %s: negative BoltOptions field: %+v", path, opts)
	}
	if opts.LockTimeout == 0 {
		opts.LockTimeout = DefaultLockTimeout
	}
	if opts.MaxBatchGroups == 0 {
		opts.MaxBatchGroups = DefaultMaxBatchGroups
	}
	if opts.MaxBatchBytes == 0 {
		opts.MaxBatchBytes = DefaultMaxBatchBytes
	}

	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: open %s: create directory: %w", path, err)
	}
	db, err := openDB(path, &bolt.Options{
		Timeout: opts.LockTimeout,
		// NoSync stays false: every commit is fsynced before waits return.
	})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("store: open %s: %w (no file lock after %s: %w)", path, ErrInUse, opts.LockTimeout, err)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	// bbolt fsyncs the file but not its directory entry; make sure a freshly
	// created file survives a crash too.
	if err := syncDir(dir); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}

	b := &Bolt{
		db:        db,
		path:      path,
		maxGroups: opts.MaxBatchGroups,
		maxBytes:  opts.MaxBatchBytes,
		done:      make(chan struct{}),
	}
	b.cond.L = &b.mu
	go b.run()
	return b, nil
}

// ErrCorrupt is returned by OpenBolt for a database file that bbolt cannot
// read: truncated or damaged.
var ErrCorrupt = errors.New("the database file is damaged or truncated (restore it from a copy, or move it away to start empty)")

// openDB is bolt.Open, except that a damaged file is an error instead of a
// crash: bbolt panics on pages it cannot make sense of, and reading a page
// past the end of a truncated file faults (SIGBUS) through its mmap.
func openDB(path string, o *bolt.Options) (db *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("%w: %v", ErrCorrupt, r)
		}
	}()
	return bolt.Open(path, 0o600, o)
}

// syncDir fsyncs directory dir.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// Path returns the database file path.
func (b *Bolt) Path() string { return b.path }

// Load calls fn for every committed record in (Kind, Key) byte order, inside
// one read transaction, so it sees a consistent snapshot made of whole
// groups. fn receives its own copy of each value. fn must not wait on a
// Submit's result (the committer may need the read transaction to end). Load
// returns ErrClosed after Close, and the error from fn, wrapped, if fn fails.
func (b *Bolt) Load(fn func(kind, key string, value []byte) error) (err error) {
	// A damaged page makes bbolt panic, or fault through its mmap: an error
	// naming the file, not a crash.
	// A panic of fn is the caller's bug, not a damaged file: it goes on.
	fnPanicked := false
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if fnPanicked {
				panic(r)
			}
			err = fmt.Errorf("store: load %s: %w: %v", b.path, ErrCorrupt, r)
		}
	}()
	call := func(kind, key string, value []byte) error {
		fnPanicked = true
		err := fn(kind, key, value)
		fnPanicked = false
		return err
	}
	b.mu.Lock()
	closing := b.closing
	b.mu.Unlock()
	if closing {
		return fmt.Errorf("store: load: %w", ErrClosed)
	}
	err = b.db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, bk *bolt.Bucket) error {
			kind := string(name)
			return bk.ForEach(func(k, v []byte) error {
				if v == nil && bk.Bucket(k) != nil {
					return nil // nested bucket; this store never creates one
				}
				value := make([]byte, len(v)) // never nil: nil would mean "deleted"
				copy(value, v)
				if err := call(kind, string(k), value); err != nil {
					return fmt.Errorf("store: load %s/%s: %w", kind, k, err)
				}
				return nil
			})
		})
	})
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		return fmt.Errorf("store: load: %w", ErrClosed)
	}
	return err
}

// Submit validates and copies muts, enqueues them as one group and returns at
// once; the caller may reuse muts afterwards. The returned wait blocks until
// the group is committed and fsynced, and may be called any number of times.
// After Close, or after a failed commit, wait yields an error at once
// (ErrClosed, or the commit error).
func (b *Bolt) Submit(muts []Mutation) (wait func() error) {
	if err := validate(muts); err != nil {
		return failed(err)
	}
	muts, size := cloneMutations(muts)
	p := &pending{muts: muts, size: size, done: make(chan struct{})}

	b.mu.Lock()
	switch {
	case b.closing:
		b.mu.Unlock()
		return failed(ErrClosed)
	case b.failure != nil:
		err := b.failure
		b.mu.Unlock()
		return failed(fmt.Errorf("store: an earlier commit failed: %w", err))
	}
	b.queue = append(b.queue, p)
	b.cond.Signal()
	b.mu.Unlock()

	return func() error {
		<-p.done
		return p.err
	}
}

// Close stops accepting groups, commits every group already submitted, stops
// the committer and closes the file. It is safe to call more than once and
// concurrently; every call returns the same error: that of a failed commit
// (also reported to the groups' waits) or of closing the file.
func (b *Bolt) Close() error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closing = true
		b.cond.Signal()
		b.mu.Unlock()
		<-b.done

		var errs []error
		if b.failure != nil { // the committer has exited: no race
			errs = append(errs, fmt.Errorf("store: close %s: a commit failed: %w", b.path, b.failure))
		}
		if err := b.db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("store: close %s: %w", b.path, err))
		}
		b.closeErr = errors.Join(errs...)
	})
	return b.closeErr
}

// run is the committer goroutine.
func (b *Bolt) run() {
	defer close(b.done)
	for {
		batch, failure, ok := b.next()
		if !ok {
			return
		}
		var err error
		if failure != nil {
			err = fmt.Errorf("store: an earlier commit failed: %w", failure)
		} else if err = b.commit(batch); err != nil {
			b.mu.Lock()
			b.failure = err
			b.mu.Unlock()
		}
		for _, p := range batch {
			p.err = err
			close(p.done)
		}
		clear(batch)
		b.mu.Lock()
		b.spare = batch[:0]
		b.mu.Unlock()
	}
}

// next blocks until groups are queued and takes the oldest of them, as many
// as fit in one batch. It returns ok == false once the store is closing and
// the queue is drained. failure is the sticky commit error, if any.
func (b *Bolt) next() (batch []*pending, failure error, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.queue) == 0 && !b.closing {
		b.cond.Wait()
	}
	if len(b.queue) == 0 {
		return nil, nil, false
	}

	n, size := 0, 0
	for n < len(b.queue) && n < b.maxGroups {
		if n > 0 && size+b.queue[n].size > b.maxBytes {
			break
		}
		size += b.queue[n].size
		n++
	}
	if n == len(b.queue) {
		batch, b.queue, b.spare = b.queue, b.spare[:0], nil
	} else {
		batch = append(b.spare[:0], b.queue[:n]...)
		b.spare = nil
		rest := copy(b.queue, b.queue[n:])
		clear(b.queue[rest:])
		b.queue = b.queue[:rest]
	}
	return batch, b.failure, true
}

// commit applies batch, in order, in one read-write transaction and commits
// it (bbolt fsyncs on commit). It writes only the mutated keys.
func (b *Bolt) commit(batch []*pending) (err error) {
	// A damaged page makes bbolt panic, or fault through its mmap: a failed
	// (sticky) commit, not a crash. bbolt's Update rolls back on a panic.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("store: commit %d groups to %s: %w: %v", len(batch), b.path, ErrCorrupt, r)
		}
	}()
	empty := true
	for _, p := range batch {
		if len(p.muts) > 0 {
			empty = false
			break
		}
	}
	if empty {
		return nil // only barrier groups: nothing to write
	}

	err = b.db.Update(func(tx *bolt.Tx) error {
		buckets := make(map[string]*bolt.Bucket)
		for _, p := range batch {
			for _, m := range p.muts {
				bk := buckets[m.Kind]
				if bk == nil {
					if m.Value == nil {
						if bk = tx.Bucket([]byte(m.Kind)); bk == nil {
							continue // deleting from a kind that does not exist
						}
					} else {
						var err error
						if bk, err = tx.CreateBucketIfNotExists([]byte(m.Kind)); err != nil {
							return fmt.Errorf("create bucket %q: %w", m.Kind, err)
						}
					}
					// Keys mostly grow (records are keyed by creation
					// order): pack pages fuller than bbolt's default half.
					bk.FillPercent = 0.9
					buckets[m.Kind] = bk
				}
				if m.Value == nil {
					if err := bk.Delete([]byte(m.Key)); err != nil {
						return fmt.Errorf("delete %s/%s: %w", m.Kind, m.Key, err)
					}
				} else if err := bk.Put([]byte(m.Key), m.Value); err != nil {
					return fmt.Errorf("put %s/%s: %w", m.Kind, m.Key, err)
				}
			}
		}
		if b.inTxHook != nil {
			return b.inTxHook()
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: commit %d groups to %s: %w", len(batch), b.path, err)
	}
	return nil
}
