package postgres

import (
	"context"
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/cloudhsm-local/cloudhsm-local/internal/store"
)

// The statements of SavePlacements; $1 and $2 bound the keys under the
// prefix ($2 null: no upper bound), $3 is how many the caller knows.
const (
	placeUnder = `key >= $1 AND ($2::bytea IS NULL OR key < $2)`
	qPlaceHeld = `SELECT key, value FROM placements WHERE ` + placeUnder + `
  AND (SELECT count(*) FROM placements WHERE ` + placeUnder + `) > $3
ORDER BY key`
	// qPlaceSave writes $4/$5 and deletes $6 when the count allows.
	qPlaceSave = `WITH allowed AS (
  SELECT count(*) <= $3 AS ok FROM placements WHERE ` + placeUnder + `
), deleted AS (
  DELETE FROM placements WHERE key = ANY($6::bytea[]) AND (SELECT ok FROM allowed)
)
INSERT INTO placements (key, value)
SELECT m.key, m.value FROM unnest($4::bytea[], $5::bytea[]) AS m(key, value)
WHERE (SELECT ok FROM allowed)
ON CONFLICT (key) DO UPDATE SET value = excluded.value`
)

// SavePlacements commits muts (placements under prefix) unless the
// database holds more than known placements under prefix: then it commits
// nothing and returns them all. A per-prefix advisory lock serializes the
// savers of one tenant; the estate's lock is not taken.
func (s *Store) SavePlacements(ctx context.Context, prefix string, known int, muts []store.Mutation) ([]store.Record, error) {
	if err := s.errClosed("save placements"); err != nil {
		return nil, err
	}
	if err := validate(muts); err != nil {
		return nil, fmt.Errorf("postgres: save placements: %w", err)
	}
	for i, m := range muts {
		if m.Kind != store.KindPlacement || !strings.HasPrefix(m.Key, prefix) {
			return nil, fmt.Errorf("postgres: save placements: %w: mutation %d (kind %q, key %q) is not a placement under %q",
				store.ErrInvalidMutation, i, m.Kind, m.Key, prefix)
		}
	}
	b := newBatch(muts)
	lo, hi := []byte(prefix), prefixEnd(prefix)
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: save placements: %w", err)
	}
	defer conn.Release()
	q := &pgx.Batch{}
	q.Queue("SELECT pg_advisory_xact_lock($1)", placementLock(prefix))
	q.Queue(qPlaceHeld, lo, hi, known)
	q.Queue(qPlaceSave, lo, hi, known, nonNil(b.placeKeys), nonNil(b.placeVals), nonNil(b.placeDels))
	br := conn.SendBatch(ctx, q)
	held, err := placeResults(br)
	if cerr := br.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: save placements under %q: %w", prefix, commitErr(err))
	}
	return held, nil
}

func placeResults(br pgx.BatchResults) ([]store.Record, error) {
	if _, err := br.Exec(); err != nil {
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		return nil, err
	}
	var held []store.Record
	for rows.Next() {
		var key, value []byte
		if err := rows.Scan(&key, &value); err != nil {
			rows.Close()
			return nil, err
		}
		held = append(held, store.Record{Kind: store.KindPlacement, Key: string(key), Value: value})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if _, err := br.Exec(); err != nil {
		return nil, err
	}
	return held, nil
}

// nonNil makes an empty array of a nil slice (a null array would make the
// statement's unnest and ANY see nothing, but typed).
func nonNil(v [][]byte) [][]byte {
	if v == nil {
		return [][]byte{}
	}
	return v
}

// prefixEnd is the smallest key greater than every key starting with
// prefix, or nil when there is none (prefix is empty or all 0xff).
func prefixEnd(prefix string) []byte {
	b := []byte(prefix)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return b[:i+1]
		}
	}
	return nil
}

// placementLock is the advisory lock of one prefix's placements.
func placementLock(prefix string) int64 {
	h := fnv.New64a()
	h.Write([]byte("cloudhsm-local placements\x00"))
	h.Write([]byte(prefix))
	return int64(h.Sum64())
}
