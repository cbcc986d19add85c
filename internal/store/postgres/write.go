package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cloudhsm-local/cloudhsm-local/internal/store"
)

// The statements that write. Each writer bumps the version first (which
// takes or holds the estate's lock), then writes every record of its
// batch with the new version in one statement, then the placements.
const (
	qBump = `UPDATE estate SET version = version + 1 WHERE id = 1 RETURNING version`
	// qUpsert writes records: $1 kinds, $2 keys, $3 values (null:
	// deleted), at the version the transaction has just made.
	qUpsert = `INSERT INTO records (kind, key, value, version, changed_at)
SELECT m.kind, m.key, m.value, (SELECT version FROM estate WHERE id = 1), now()
FROM unnest($1::bytea[], $2::bytea[], $3::bytea[]) AS m(kind, key, value)
ON CONFLICT (kind, key) DO UPDATE
SET value = excluded.value, version = excluded.version, changed_at = excluded.changed_at`
	qPlaceSet = `INSERT INTO placements (key, value)
SELECT * FROM unnest($1::bytea[], $2::bytea[])
ON CONFLICT (key) DO UPDATE SET value = excluded.value`
	qPlaceDel = `DELETE FROM placements WHERE key = ANY($1::bytea[])`
)

// queueWrites queues the statements that write b, after qBump.
func queueWrites(q *pgx.Batch, b *batch) {
	if len(b.kinds) > 0 {
		q.Queue(qUpsert, b.kinds, b.keys, b.values)
	}
	if len(b.placeKeys) > 0 {
		q.Queue(qPlaceSet, b.placeKeys, b.placeVals)
	}
	if len(b.placeDels) > 0 {
		q.Queue(qPlaceDel, b.placeDels)
	}
}

// commitErr classifies the error of a batch that ends in a commit: a
// statement the server refused (its transaction rolled back) or a request
// never sent is a plain failure; anything else (the connection lost, the
// context ended while the commit was under way, a session ended by the
// server) leaves the outcome unknown.
func commitErr(err error) error {
	if err == nil {
		return nil
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Severity == "ERROR" {
		return err
	}
	if pgconn.SafeToRetry(err) {
		return err
	}
	return fmt.Errorf("%w: %w", store.ErrOutcomeUnknown, err)
}

// readBatch reads every result of a sent batch and returns the first
// error, with the version qBump returned when bump is set.
func readBatch(br pgx.BatchResults, n int, bump bool) (version uint64, err error) {
	defer func() {
		if cerr := br.Close(); err == nil {
			err = cerr
		}
	}()
	for i := range n {
		if i == 0 && bump {
			var v int64
			if err := br.QueryRow().Scan(&v); err != nil {
				return 0, err
			}
			version = uint64(v)
			continue
		}
		if _, err := br.Exec(); err != nil {
			return 0, err
		}
	}
	return version, nil
}

// Exclusive takes the estate's lock, brings view up to date as Refresh
// does, calls decide with the database's clock and commits what it returns
// as a new version before the lock is released. With nothing to commit it
// rolls back, and the view stands at the version it reached.
func (s *Store) Exclusive(ctx context.Context, since uint64, view store.View, decide func(now time.Time) ([]store.Mutation, error)) (Sync store.Sync, err error) {
	if err := s.errClosed("exclusive"); err != nil {
		return store.Sync{}, err
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return store.Sync{}, fmt.Errorf("postgres: exclusive: %w", err)
	}
	defer conn.Release() // a connection left inside a transaction is closed, not reused
	sy, err := pull(ctx, conn.Conn(), "BEGIN", qHeader+" FOR UPDATE", since, view)
	if err != nil {
		rollback(conn)
		return store.Sync{}, fmt.Errorf("postgres: exclusive: %w", err)
	}
	muts, err := decide(sy.Now)
	if err != nil {
		rollback(conn)
		return sy, err
	}
	if err := validate(muts); err != nil {
		rollback(conn)
		return sy, fmt.Errorf("postgres: exclusive: %w", err)
	}
	b := newBatch(muts)
	if b.empty() {
		rollback(conn)
		return sy, nil
	}
	q := &pgx.Batch{}
	q.Queue(qBump)
	queueWrites(q, b)
	q.Queue("COMMIT")
	v, err := readBatch(conn.SendBatch(ctx, q), q.Len(), true)
	if err != nil {
		return sy, fmt.Errorf("postgres: exclusive: commit: %w", commitErr(err))
	}
	sy.Version = v
	return sy, nil
}

// rollback ends the transaction of conn, whatever the caller's context;
// when that fails the pool closes the connection on release (the server
// then rolls back).
func rollback(conn *pgxpool.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := conn.Exec(ctx, "ROLLBACK"); err != nil {
		_ = conn.Conn().Close(ctx)
	}
}
