-- evault metadata index, version 9: deletion (core/src/sweep.rs).

-- What was deleted, by the retention sweep or by an admin: the record's identity and links as
-- they were, when its retention ran out, and who deleted it and why. A record id can come back
-- (the same bytes pushed again with the same links), so a tombstone is keyed by the record id
-- and the instant of its deletion. In the tamper-evident log as subject `tombstone/<key>`.
CREATE TABLE tombstones (
    seq                INTEGER PRIMARY KEY AUTOINCREMENT,  -- deletion order, for newest-first
    key                TEXT NOT NULL UNIQUE,               -- <record id>@<deleted_at>
    id                 TEXT NOT NULL,                      -- the deleted record's id
    digest             TEXT NOT NULL,
    kind               TEXT NOT NULL,
    format             TEXT NOT NULL,
    blueprint_name     TEXT NOT NULL,
    blueprint_version  TEXT NOT NULL,
    git_sha            TEXT NOT NULL,
    repo               TEXT,
    run_id             TEXT,
    environment        TEXT,
    producer           TEXT NOT NULL,
    ingested_at        TEXT NOT NULL,
    source_path        TEXT NOT NULL,
    subjects           TEXT NOT NULL,                      -- artifact digests, space-separated
    retain_until       TEXT,
    rule               TEXT,                               -- the retention rule that expired it
    deleted_at         TEXT NOT NULL,
    deleted_by         TEXT NOT NULL,
    reason             TEXT NOT NULL,
    early              INTEGER NOT NULL CHECK (early IN (0, 1))  -- before retain_until (governance override)
) STRICT;
CREATE INDEX tombstones_id ON tombstones (id);
CREATE INDEX tombstones_blueprint ON tombstones (blueprint_name, blueprint_version);
CREATE INDEX tombstones_digest ON tombstones (digest);
