package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/cloudhsm-local/cloudhsm-local/internal/store"
)

// The statements that read.
const (
	// qHeader reads where the estate stands and the database's clock.
	qHeader = `SELECT version, purged_to, clock_timestamp() FROM estate WHERE id = 1`
	// qChanges reads what changed since $1, oldest first (the records of
	// one version, distinct keys, in no particular order: a large delta,
	// such as an import's, is sorted by version alone);
	// nothing when the tombstones a view at $1 needs may be gone (then
	// the caller reloads everything).
	qChanges = `SELECT kind, key, value FROM records
WHERE version > $1
  AND $1 >= (SELECT purged_to FROM estate WHERE id = 1)
  AND $1 <= (SELECT version FROM estate WHERE id = 1)
ORDER BY version`
	// qLive reads every live record in (kind, key) byte order.
	qLive = `SELECT kind, key, value FROM records WHERE value IS NOT NULL ORDER BY kind, key`
	// qSnapshot begins a consistent read.
	qSnapshot = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
)

// header is where the estate stands.
type header struct {
	version, purgedTo int64
	now               time.Time
}

// reload reports whether a view at since must be rebuilt from every
// record: a new view, one older than the tombstones kept, or one ahead of
// the database (an estate replaced under it).
func (h header) reload(since uint64) bool {
	return since == 0 || since < uint64(h.purgedTo) || since > uint64(h.version)
}

// pull runs begin, then the header query head, then brings view up to
// date from since, inside the transaction begin opened (which the caller
// ends). It returns where the view stands.
func pull(ctx context.Context, conn *pgx.Conn, begin, head string, since uint64, view store.View) (store.Sync, error) {
	q := &pgx.Batch{}
	q.Queue(begin)
	if since == 0 {
		q.Queue(qNoSort)
	}
	q.Queue(head)
	if since == 0 {
		q.Queue(qLive)
	} else {
		q.Queue(qChanges, int64(since))
	}
	br := conn.SendBatch(ctx, q)
	h, n, err := pullResults(br, q.Len()-2, since, view)
	if cerr := br.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return store.Sync{}, err
	}
	if since != 0 && h.reload(since) {
		if _, err := conn.Exec(ctx, qNoSort); err != nil {
			return store.Sync{}, fmt.Errorf("reload: %w", err)
		}
		rows, err := conn.Query(ctx, qLive)
		if err != nil {
			return store.Sync{}, fmt.Errorf("reload: %w", err)
		}
		view.Reset()
		if n, err = applyRows(rows, view); err != nil {
			return store.Sync{}, fmt.Errorf("reload: %w", err)
		}
	}
	return store.Sync{Version: uint64(h.version), Now: h.now.UTC(), Applied: n}, nil
}

// pullResults reads the results of a batch of execs statements, the
// header, then the records.
func pullResults(br pgx.BatchResults, execs int, since uint64, view store.View) (header, int, error) {
	var h header
	for range execs {
		if _, err := br.Exec(); err != nil {
			return h, 0, err
		}
	}
	if err := br.QueryRow().Scan(&h.version, &h.purgedTo, &h.now); err != nil {
		return h, 0, fmt.Errorf("read the estate: %w", err)
	}
	rows, err := br.Query()
	if err != nil {
		return h, 0, err
	}
	if since == 0 {
		view.Reset()
	}
	n, err := applyRows(rows, view)
	return h, n, err
}

// applyRows hands view every (kind, key, value) row, and closes rows.
func applyRows(rows pgx.Rows, view store.View) (int, error) {
	defer rows.Close()
	n := 0
	for rows.Next() {
		kind, key, value, err := record(rows)
		if err != nil {
			return n, err
		}
		if err := view.Apply(kind, key, value); err != nil {
			return n, fmt.Errorf("apply %s/%s: %w", kind, key, err)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return n, err
	}
	return n, nil
}

// record decodes a (kind, key, value) row of bytea columns in binary
// format: the value is a copy (nil for a tombstone, never nil for an empty
// value).
func record(rows pgx.Rows) (kind, key string, value []byte, err error) {
	raw := rows.RawValues()
	fds := rows.FieldDescriptions()
	if len(raw) != 3 || len(fds) != 3 {
		return "", "", nil, fmt.Errorf("a record row has %d columns, want 3", len(raw))
	}
	if err := binary(fds); err != nil {
		return "", "", nil, err
	}
	if raw[2] != nil {
		value = make([]byte, len(raw[2]))
		copy(value, raw[2])
	}
	return string(raw[0]), string(raw[1]), value, nil
}

// qRefresh reads, in one statement (one snapshot, no transaction to
// open and close), where the estate stands and what changed since $1:
// the header on every row, the changes oldest first, or one row without a
// record when nothing changed or the view must reload (then the header
// says so). As in qChanges, the records of one version come in no
// particular order.
const qRefresh = `WITH e AS (SELECT version, purged_to, clock_timestamp() AS now FROM estate WHERE id = 1)
SELECT e.version, e.purged_to, e.now, r.kind, r.key, r.value FROM e
LEFT JOIN LATERAL (
  SELECT kind, key, value, version FROM records
  WHERE version > $1 AND $1 >= e.purged_to AND $1 <= e.version
) r ON true
ORDER BY r.version`

// binary checks that bytea columns come in binary format (raw bytes), as
// pgx asks in its default query mode.
func binary(fds []pgconn.FieldDescription) error {
	for _, fd := range fds {
		if fd.DataTypeOID == pgtype.ByteaOID && fd.Format != pgx.BinaryFormatCode {
			return fmt.Errorf("column %s came in text format: remove default_query_exec_mode from the database URL (the store needs binary results)", fd.Name)
		}
	}
	return nil
}

// Refresh brings view up to date with a state committed after Refresh was
// called, read in one snapshot without the estate's lock: the changes
// since since in one statement, or, for a new or too old view, every
// record in one REPEATABLE READ transaction.
func (s *Store) Refresh(ctx context.Context, since uint64, view store.View) (store.Sync, error) {
	if err := s.errClosed("refresh"); err != nil {
		return store.Sync{}, err
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return store.Sync{}, fmt.Errorf("postgres: refresh: %w", err)
	}
	defer conn.Release()
	if since != 0 {
		sy, reload, err := delta(ctx, conn.Conn(), since, view)
		if err != nil {
			return store.Sync{}, fmt.Errorf("postgres: refresh: %w", err)
		}
		if !reload {
			return sy, nil
		}
	}
	q := &pgx.Batch{}
	q.Queue(qSnapshot)
	q.Queue(qNoSort)
	q.Queue(qHeader)
	q.Queue(qLive)
	q.Queue("COMMIT")
	br := conn.SendBatch(ctx, q)
	h, n, err := pullResults(br, 2, 0, view)
	if err == nil {
		_, err = br.Exec()
	}
	if cerr := br.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return store.Sync{}, fmt.Errorf("postgres: refresh: %w", err)
	}
	return store.Sync{Version: uint64(h.version), Now: h.now.UTC(), Applied: n}, nil
}

// delta applies the changes since since (qRefresh) to view, or reports
// that the view must reload (and applies nothing).
func delta(ctx context.Context, conn *pgx.Conn, since uint64, view store.View) (sy store.Sync, reload bool, err error) {
	rows, err := conn.Query(ctx, qRefresh, int64(since))
	if err != nil {
		return sy, false, err
	}
	defer rows.Close()
	if err := binary(rows.FieldDescriptions()); err != nil {
		return sy, false, err
	}
	var h header
	for rows.Next() {
		raw := rows.RawValues()
		if sy.Now.IsZero() {
			if err := rows.Scan(&h.version, &h.purgedTo, &h.now, nil, nil, nil); err != nil {
				return sy, false, err
			}
			sy = store.Sync{Version: uint64(h.version), Now: h.now.UTC()}
		}
		if raw[3] == nil { // no record: nothing changed, or reload
			continue
		}
		value := []byte(nil)
		if raw[5] != nil {
			value = append(make([]byte, 0, len(raw[5])), raw[5]...)
		}
		if err := view.Apply(string(raw[3]), string(raw[4]), value); err != nil {
			return sy, false, fmt.Errorf("apply %s/%s: %w", raw[3], raw[4], err)
		}
		sy.Applied++
	}
	if err := rows.Err(); err != nil {
		return sy, false, err
	}
	if sy.Now.IsZero() {
		return sy, false, fmt.Errorf("the estate's row is missing")
	}
	return sy, h.reload(since), nil
}

// Load calls fn for every live record, placements (kind "subnet")
// included, in (kind, key) byte order, from one snapshot. fn gets its own
// copy of each value. The records come in the order of their primary key
// (streamed, never sorted by the server); the placements, which are few,
// are read first and handed over in their place among them.
func (s *Store) Load(fn func(kind, key string, value []byte) error) error {
	if err := s.errClosed("load"); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(s.base, s.opts.LoadTimeout)
	defer cancel()
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		if err := s.errClosed("load"); err != nil {
			return err
		}
		return fmt.Errorf("postgres: load: %w", err)
	}
	defer conn.Release()
	q := &pgx.Batch{}
	q.Queue(qSnapshot)
	q.Queue(qNoSort)
	q.Queue(`SELECT $1::bytea, key, value FROM placements ORDER BY key`, []byte(store.KindPlacement))
	q.Queue(qLive)
	q.Queue("COMMIT")
	br := conn.SendBatch(ctx, q)
	err = loadResults(br, fn)
	if cerr := br.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("postgres: load: %w", cerr)
	}
	return err
}

// qNoSort makes the planner read every record in index order rather than
// sort the whole table (which would spill to disk before the first row).
const qNoSort = "SET LOCAL enable_sort = off"

// loadResults streams Load's batch to fn.
func loadResults(br pgx.BatchResults, fn func(kind, key string, value []byte) error) error {
	for range 2 {
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("postgres: load: %w", err)
		}
	}
	rows, err := br.Query()
	if err != nil {
		return fmt.Errorf("postgres: load: %w", err)
	}
	var places []store.Record
	err = loadRows(rows, func(kind, key string, value []byte) error {
		places = append(places, store.Record{Kind: kind, Key: key, Value: value})
		return nil
	})
	if err != nil {
		return err
	}
	// The placements go before the first record of a kind after theirs.
	flush := func() error {
		for _, p := range places {
			if err := fn(p.Kind, p.Key, p.Value); err != nil {
				return fmt.Errorf("postgres: load %s/%s: %w", p.Kind, p.Key, err)
			}
		}
		places = nil
		return nil
	}
	if rows, err = br.Query(); err != nil {
		return fmt.Errorf("postgres: load: %w", err)
	}
	err = loadRows(rows, func(kind, key string, value []byte) error {
		if places != nil && kind > store.KindPlacement {
			if err := flush(); err != nil {
				return err
			}
		}
		if err := fn(kind, key, value); err != nil {
			return fmt.Errorf("postgres: load %s/%s: %w", kind, key, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := flush(); err != nil {
		return err
	}
	if _, err := br.Exec(); err != nil {
		return fmt.Errorf("postgres: load: %w", err)
	}
	return nil
}

// loadRows hands fn every (kind, key, value) row and closes rows; fn's
// errors come back as they are.
func loadRows(rows pgx.Rows, fn func(kind, key string, value []byte) error) error {
	defer rows.Close()
	for rows.Next() {
		kind, key, value, err := record(rows)
		if err != nil {
			return fmt.Errorf("postgres: load: %w", err)
		}
		if err := fn(kind, key, value); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("postgres: load: %w", err)
	}
	return nil
}
