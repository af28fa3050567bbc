-- evault metadata index, version 1: blobs and evidence records.

CREATE TABLE blobs (
    digest       TEXT PRIMARY KEY NOT NULL,          -- sha256:<hex> of the original bytes
    size         INTEGER NOT NULL CHECK (size >= 0),  -- original size
    stored_size  INTEGER NOT NULL CHECK (stored_size >= 0),
    created_at   TEXT NOT NULL                        -- RFC 3339 UTC
) STRICT;

CREATE TABLE records (
    seq                INTEGER PRIMARY KEY AUTOINCREMENT,  -- insertion order, for newest-first and cursors
    id                 TEXT NOT NULL UNIQUE,
    digest             TEXT NOT NULL REFERENCES blobs (digest),
    kind               TEXT NOT NULL,
    format             TEXT NOT NULL,
    format_version     TEXT,
    predicate_type     TEXT,
    blueprint_name     TEXT NOT NULL,
    blueprint_version  TEXT NOT NULL,
    git_sha            TEXT NOT NULL,
    repo               TEXT,
    run_id             TEXT,
    environment        TEXT,
    producer           TEXT NOT NULL,
    ingested_at        TEXT NOT NULL,                  -- RFC 3339 UTC, fixed width (microseconds)
    source_path        TEXT NOT NULL
) STRICT;

CREATE INDEX records_blueprint ON records (blueprint_name, blueprint_version);
CREATE INDEX records_git_sha ON records (git_sha);
CREATE INDEX records_digest ON records (digest);
CREATE INDEX records_kind ON records (kind);
CREATE INDEX records_environment ON records (environment);
CREATE INDEX records_run_id ON records (run_id);
CREATE INDEX records_ingested_at ON records (ingested_at);

CREATE TABLE record_subjects (
    record_id  TEXT NOT NULL REFERENCES records (id),
    digest     TEXT NOT NULL,                         -- sha256:<hex> of an artifact the evidence is about
    PRIMARY KEY (record_id, digest)
) STRICT, WITHOUT ROWID;

CREATE INDEX record_subjects_digest ON record_subjects (digest);
