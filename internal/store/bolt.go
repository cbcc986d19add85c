package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
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
// opts.LockTimeout, and with a *CorruptError (matching ErrCorrupt) if the
// file is damaged: empty, cut short, or no bbolt file at all.
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
	// bbolt would make an empty file a new database; the store never
	// leaves one (bbolt writes and syncs a new file's first pages at once),
	// so an empty file is one that lost its content.
	if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && fi.Size() == 0 {
		return nil, &CorruptError{Path: path, Detail: "the file is empty"}
	}
	db, err := openDB(path, &bolt.Options{
		Timeout: opts.LockTimeout,
		// NoSync stays false: every commit is fsynced before waits return.
	})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("store: open %s: %w (no file lock after %s: %w)", path, ErrInUse, opts.LockTimeout, err)
	}
	var corrupt *CorruptError
	if errors.As(err, &corrupt) {
		return nil, err // names the file already
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if err := checkLength(db, path); err != nil {
		_ = db.Close()
		return nil, err
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

// ErrCorrupt matches every *CorruptError: a database file that bbolt
// cannot read, truncated or damaged, or that is no bbolt file at all.
var ErrCorrupt = errors.New("damaged database file")

// CorruptError is the refusal of a damaged database file: one message that
// names the file, says what is wrong and what to do.
type CorruptError struct {
	Path   string
	Detail string // what is wrong with it
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("%s is not a cloudhsm-local database or is damaged (%s): move it aside to start with an empty estate, or restore it from a copy", e.Path, e.Detail)
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// openDB is bolt.Open, except that a damaged file is a *CorruptError
// instead of bbolt's bare error or a crash: bbolt panics on pages it
// cannot make sense of, and reading a page past the end of a truncated
// file faults (SIGBUS) through its mmap.
func openDB(path string, o *bolt.Options) (db *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			detail := unreadable(r)
			if size, need, ok := cutShort(path); ok {
				detail = cutShortDetail(size, need)
			}
			db, err = nil, &CorruptError{Path: path, Detail: detail}
		}
	}()
	db, err = bolt.Open(path, 0o600, o)
	if detail := openDamage(err); detail != "" {
		return nil, &CorruptError{Path: path, Detail: detail}
	}
	return db, err
}

// openDamage says what is wrong with the file when bolt.Open's err means
// a damaged or foreign file, and is "" for any other error.
func openDamage(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, bolterrors.ErrInvalid):
		return "neither of its two header pages is a valid bbolt header"
	case errors.Is(err, bolterrors.ErrChecksum):
		return "its header page fails its checksum"
	case errors.Is(err, bolterrors.ErrVersionMismatch):
		return "its header is of an unknown bbolt version"
	case strings.HasPrefix(err.Error(), "file size too small "):
		// bbolt's own words, with no error value to match.
		return "the file is " + strings.TrimPrefix(err.Error(), "file size too small ") + " bytes, shorter than its two header pages"
	}
	return ""
}

// unreadable describes a panic (or fault) of bbolt reading a damaged file.
func unreadable(r any) string {
	if _, ok := r.(runtime.Error); ok {
		// A nil pointer or a fault: a page it points to is not there.
		return "a page it refers to is missing or unreadable"
	}
	return fmt.Sprintf("a page is not what it should be: %v", r)
}

// checkLength refuses a file shorter than the pages its header says it
// has (bbolt grows the file before it writes pages into it, so a whole
// file is never shorter): a file cut short, whose missing pages would make
// bbolt fault when it reads them.
func checkLength(db *bolt.DB, path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("store: open %s: %w", path, err)
	}
	var need int64
	_ = db.View(func(tx *bolt.Tx) error {
		need = tx.Size()
		return nil
	})
	if fi.Size() < need {
		return &CorruptError{Path: path, Detail: cutShortDetail(fi.Size(), need)}
	}
	return nil
}

func cutShortDetail(size, need int64) string {
	return fmt.Sprintf("the file is %d bytes but its pages reach %d bytes: it was cut short", size, need)
}

// cutShort reads the header pages of the bbolt file at path to tell why
// bbolt failed on it (only then: bbolt itself reads them on the way in)
// and reports whether the file is shorter than the pages of its newer
// valid header reach. bbolt's format: each header page is a 16-byte page
// header, then magic, version, page size, flags (4 bytes each), the root
// bucket (16), the freelist page, the page count and the transaction id
// (8 each), in the machine's byte order.
func cutShort(path string) (size, need int64, ok bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, 0, false
	}
	header := func(off int64) (pageSize uint32, pages, txid uint64, valid bool) {
		var b [72]byte
		if _, err := f.ReadAt(b[:], off); err != nil || binary.NativeEndian.Uint32(b[16:]) != 0xED0CDAED {
			return 0, 0, 0, false
		}
		return binary.NativeEndian.Uint32(b[24:]), binary.NativeEndian.Uint64(b[56:]), binary.NativeEndian.Uint64(b[64:]), true
	}
	ps0, pages0, tx0, ok0 := header(0)
	second := int64(os.Getpagesize())
	if ok0 {
		second = int64(ps0)
	}
	ps1, pages1, tx1, ok1 := header(second)
	switch {
	case ok0 && (!ok1 || tx0 >= tx1):
		need = int64(pages0) * int64(ps0)
	case ok1:
		need = int64(pages1) * int64(ps1)
	default:
		return 0, 0, false
	}
	return fi.Size(), need, fi.Size() < need
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
			err = &CorruptError{Path: b.path, Detail: unreadable(r)}
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
					return fmt.Errorf("store: load %s: %s/%s: %w", b.path, kind, k, err)
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
	if err := ValidateMutations(muts); err != nil {
		return Failed(err)
	}
	muts, size := CloneMutations(muts)
	p := &pending{muts: muts, size: size, done: make(chan struct{})}

	b.mu.Lock()
	switch {
	case b.closing:
		b.mu.Unlock()
		return Failed(ErrClosed)
	case b.failure != nil:
		err := b.failure
		b.mu.Unlock()
		return Failed(fmt.Errorf("store: an earlier commit failed: %w", err))
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
			err = fmt.Errorf("store: commit %d groups: %w", len(batch), &CorruptError{Path: b.path, Detail: unreadable(r)})
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
