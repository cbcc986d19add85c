package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cloudhsm-local/cloudhsm-local/internal/store"
)

// ErrNotEmpty is wrapped by Copy's error when the target store holds
// records already.
var ErrNotEmpty = errors.New("the target store is not empty")

// errHasRecords stops the Load that checks a target for records.
var errHasRecords = errors.New("has records")

// Copy copies every record of from (as its Load gives them: every kind,
// placements included) into to, which must hold no record, in one
// transaction of to: all or nothing. It returns how many records it
// copied. Into a PostgreSQL store it streams (COPY); into another store it
// submits one group. Neither store may be served while it runs.
func Copy(ctx context.Context, from, to store.Store) (int, error) {
	if pg, ok := to.(*Store); ok {
		n, err := pg.copyFrom(ctx, from)
		if err != nil {
			return 0, fmt.Errorf("postgres: copy into %s: %w", pg.name(), err)
		}
		return n, nil
	}
	if err := to.Load(func(string, string, []byte) error { return errHasRecords }); errors.Is(err, errHasRecords) {
		return 0, fmt.Errorf("postgres: copy: %w: copy only into a new data directory or an empty database", ErrNotEmpty)
	} else if err != nil {
		return 0, fmt.Errorf("postgres: copy: read the target: %w", err)
	}
	var muts []store.Mutation
	err := from.Load(func(kind, key string, value []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		muts = append(muts, store.Mutation{Kind: kind, Key: key, Value: value})
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: copy: read the source: %w", err)
	}
	if err := to.Submit(muts)(); err != nil {
		return 0, fmt.Errorf("postgres: copy: write the target: %w", err)
	}
	return len(muts), nil
}

// name is the database, without its password, for messages.
func (s *Store) name() string { return redact(s.pool.Config()) }

// copyFrom copies from's records into s, which must be empty, in one
// transaction that holds the estate's lock: the records at one new
// version, by COPY, then the placements.
func (s *Store) copyFrom(ctx context.Context, from store.Store) (int, error) {
	if err := s.errClosed("copy"); err != nil {
		return 0, err
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	version, now, err := lockEmpty(ctx, tx)
	if err != nil {
		return 0, err
	}
	src := startSource(ctx, from, version, now)
	n, err := tx.CopyFrom(ctx, pgx.Identifier{"records"}, []string{"kind", "key", "value", "version", "changed_at"}, src)
	if werr := src.stop(); err == nil && werr != nil {
		err = werr
	}
	if err != nil {
		return 0, fmt.Errorf("copy the records: %w", err)
	}
	b := newBatch(src.placements)
	if _, err := tx.Exec(ctx, qPlaceSet, nonNil(b.placeKeys), nonNil(b.placeVals)); err != nil {
		return 0, fmt.Errorf("copy the placements: %w", err)
	}
	if _, err := tx.Exec(ctx, "UPDATE estate SET version = $1 WHERE id = 1", version); err != nil {
		return 0, fmt.Errorf("write the version: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("commit: %w", commitErr(err))
	}
	return int(n) + len(b.placeKeys), nil
}

// qClearTombstones deletes every record (the caller has checked that
// none is live: they are all tombstones, which would collide with the
// copied records of the same keys) and raises purged_to over them, as
// PurgeTombstones does, so that a view older than them reloads.
const qClearTombstones = `WITH purged AS (
  DELETE FROM records RETURNING version
)
UPDATE estate SET purged_to = greatest(purged_to, (SELECT max(version) FROM purged))
WHERE id = 1 AND EXISTS (SELECT 1 FROM purged)`

// lockEmpty takes the estate's lock in tx, checks that the estate holds
// no live record and no placement, clears its tombstones, and returns the
// version the copy makes and the database's clock.
func lockEmpty(ctx context.Context, tx pgx.Tx) (version int64, now time.Time, err error) {
	var nonEmpty bool
	err = tx.QueryRow(ctx, `SELECT version + 1, clock_timestamp(),
  EXISTS (SELECT 1 FROM records WHERE value IS NOT NULL) OR EXISTS (SELECT 1 FROM placements)
FROM estate WHERE id = 1 FOR UPDATE`).Scan(&version, &now, &nonEmpty)
	if err != nil {
		return 0, now, fmt.Errorf("read the estate: %w", err)
	}
	if nonEmpty {
		return 0, now, fmt.Errorf("%w: copy only into a new data directory or an empty database", ErrNotEmpty)
	}
	if _, err := tx.Exec(ctx, qClearTombstones); err != nil {
		return 0, now, fmt.Errorf("clear the tombstones: %w", err)
	}
	return version, now, nil
}

// source streams a store's Load to COPY: Load runs on its own goroutine
// and hands each record over a channel; placements are kept aside.
type source struct {
	ch         chan store.Record
	cancel     context.CancelFunc
	done       chan struct{}
	loadErr    error
	placements []store.Mutation // written by the Load goroutine until done
	row        []any
	version    int64
	now        time.Time
}

func startSource(ctx context.Context, from store.Store, version int64, now time.Time) *source {
	ctx, cancel := context.WithCancel(ctx)
	s := &source{ch: make(chan store.Record, 256), cancel: cancel, done: make(chan struct{}), version: version, now: now}
	go func() {
		defer close(s.done)
		defer close(s.ch)
		s.loadErr = from.Load(func(kind, key string, value []byte) error {
			if kind == store.KindPlacement {
				s.placements = append(s.placements, store.Mutation{Kind: kind, Key: key, Value: value})
				return nil
			}
			if err := validate([]store.Mutation{{Kind: kind, Key: key, Value: value}}); err != nil {
				return err
			}
			select {
			case s.ch <- store.Record{Kind: kind, Key: key, Value: value}:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	return s
}

// Next implements pgx.CopyFromSource.
func (s *source) Next() bool {
	r, ok := <-s.ch
	if !ok {
		<-s.done // Err must see how Load ended
		return false
	}
	s.row = []any{[]byte(r.Kind), []byte(r.Key), r.Value, s.version, s.now}
	return true
}

// Values implements pgx.CopyFromSource.
func (s *source) Values() ([]any, error) { return s.row, nil }

// Err implements pgx.CopyFromSource: Load's error, once it has ended.
func (s *source) Err() error {
	select {
	case <-s.done:
		return s.loadErr
	default:
		return nil
	}
}

// stop ends the Load (if COPY stopped first) and returns its error.
func (s *source) stop() error {
	s.cancel()
	for range s.ch { // unblock a Load waiting to send
	}
	<-s.done
	if s.loadErr != nil {
		return fmt.Errorf("read the source: %w", s.loadErr)
	}
	return nil
}
