package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// leaseLock is the session advisory lock whose holder is the leader.
const leaseLock int64 = 0x63686c6c65617365 // "chllease"

// lease keeps trying to hold the lease, on a connection of its own, until
// Close: a process that does not hold it tries every LeaseEvery; the
// holder checks its connection as often, and purges tombstones every
// PurgeEvery. The lock goes with the connection: a process that dies, or
// loses the database, loses the lease, and the next to try takes it.
func (s *Store) lease() {
	defer close(s.leaseDone)
	var conn *pgx.Conn
	defer func() {
		s.leader.Store(false)
		if conn != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = conn.Close(ctx) // the lock goes with the session
			cancel()
		}
	}()
	var lastPurge time.Time
	tick := time.NewTicker(s.opts.LeaseEvery)
	defer tick.Stop()
	for {
		held, err := s.holdLease(&conn)
		if was := s.leader.Swap(held); was != held {
			if held {
				s.log.Info("postgres: this process holds the lease for timed work")
			} else {
				s.log.Warn("postgres: this process lost the lease for timed work", "err", err)
			}
		}
		if held && time.Since(lastPurge) >= s.opts.PurgeEvery {
			lastPurge = time.Now()
			ctx, cancel := context.WithTimeout(s.base, s.opts.Timeout)
			if n, err := s.PurgeTombstones(ctx, s.opts.TombstoneTTL); err != nil {
				s.log.Warn("postgres: purge tombstones", "err", err)
			} else if n > 0 {
				s.log.Info("postgres: purged tombstones", "count", n)
			}
			cancel()
		}
		select {
		case <-s.base.Done():
			return
		case <-tick.C:
		}
	}
}

// holdLease connects if needed, then takes the lease or, holding it,
// checks the connection. On any failure it drops the connection, and with
// it the lease.
func (s *Store) holdLease(conn **pgx.Conn) (held bool, err error) {
	ctx, cancel := context.WithTimeout(s.base, s.opts.Timeout)
	defer cancel()
	defer func() {
		if err != nil && *conn != nil {
			_ = (*conn).Close(ctx)
			*conn = nil
		}
	}()
	if *conn == nil {
		cfg := s.pool.Config().ConnConfig.Copy()
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return false, fmt.Errorf("connect: %w", err)
		}
		*conn = c
	}
	if s.leader.Load() {
		if err := (*conn).Ping(ctx); err != nil {
			return false, fmt.Errorf("check the lease's connection: %w", err)
		}
		return true, nil
	}
	if err := (*conn).QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", leaseLock).Scan(&held); err != nil {
		return false, fmt.Errorf("try the lease: %w", err)
	}
	return held, nil
}

// PurgeTombstones deletes the tombstones older than olderThan (by the
// database's clock) and raises the estate's purged_to to the newest
// version purged, so that a view older than that reloads everything. It
// takes the estate's lock first, as writers do. The lease holder calls it
// every Options.PurgeEvery; tests call it directly.
func (s *Store) PurgeTombstones(ctx context.Context, olderThan time.Duration) (int, error) {
	if err := s.errClosed("purge tombstones"); err != nil {
		return 0, err
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return 0, fmt.Errorf("postgres: purge tombstones: %w", err)
	}
	defer conn.Release()
	q := &pgx.Batch{}
	q.Queue(`SELECT 1 FROM estate WHERE id = 1 FOR UPDATE`)
	q.Queue(`WITH purged AS (
  DELETE FROM records WHERE value IS NULL AND changed_at <= clock_timestamp() - $1::interval
  RETURNING version
), raised AS (
  UPDATE estate SET purged_to = greatest(purged_to, (SELECT max(version) FROM purged))
  WHERE id = 1 AND EXISTS (SELECT 1 FROM purged)
)
SELECT count(*) FROM purged`, olderThan)
	br := conn.SendBatch(ctx, q)
	var n int
	_, err = br.Exec()
	if err == nil {
		err = br.QueryRow().Scan(&n)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("postgres: purge tombstones: %w", commitErr(err))
	}
	return n, nil
}
