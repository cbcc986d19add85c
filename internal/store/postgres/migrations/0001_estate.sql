-- The estate: one row whose version numbers the committed states. Its row
-- lock is the estate's lock: every writer takes it first, so writers
-- serialize on it and always lock in the same order (estate, then rows).
-- purged_to: tombstones of versions up to it may have been purged; a view
-- older than it reloads everything.
CREATE TABLE estate (
    id        int    PRIMARY KEY CHECK (id = 1),
    version   bigint NOT NULL CHECK (version >= 0),
    purged_to bigint NOT NULL DEFAULT 0
);
INSERT INTO estate (id, version) VALUES (1, 0);

-- Every record but the placements. Kinds and keys are bytes (bytea orders
-- them byte by byte, as the Store contract wants, whatever the collation).
-- A null value is a tombstone: the record was deleted at that version, and
-- the row stays until every replica has had time to see it.
CREATE TABLE records (
    kind       bytea       NOT NULL,
    key        bytea       NOT NULL,
    value      bytea,
    version    bigint      NOT NULL,
    changed_at timestamptz NOT NULL,
    PRIMARY KEY (kind, key)
);
CREATE INDEX records_by_version ON records (version);
CREATE INDEX records_tombstones ON records (changed_at) WHERE value IS NULL;

-- The network provider's placements (records of kind "subnet"): never
-- versioned, never refreshed, written under a per-tenant advisory lock.
CREATE TABLE placements (
    key   bytea PRIMARY KEY,
    value bytea NOT NULL
);
