-- evault metadata index, version 7: faster answers to "where is this live?".
--
-- `changes` holds what each deploy and rollback record changed, read out of its document once
-- (at ingest, and from the existing records when this migration runs). Live versions are then
-- read from a few pages per blueprint in time order, instead of parsing every deploy document
-- of every blueprint a popular component is in (core/src/query/mod.rs). It is derived data:
-- `evault fsck` derives it again from the records and reports every difference.
CREATE TABLE changes (
    blueprint_name  TEXT NOT NULL,
    environment     TEXT NOT NULL,
    time_us         INTEGER NOT NULL,   -- the document's time, microseconds since 1970 UTC
    seq             INTEGER NOT NULL,   -- records.seq: ingestion order breaks ties
    record_id       TEXT NOT NULL UNIQUE REFERENCES records (id),
    kind            TEXT NOT NULL CHECK (kind IN ('deploy', 'rollback')),
    version         TEXT NOT NULL,      -- the version running after the change
    time            TEXT NOT NULL,      -- the document's time, as written
    artifact        TEXT,
    takes_effect    INTEGER NOT NULL,   -- 0 for a failed deploy
    ingested_at     TEXT NOT NULL,
    PRIMARY KEY (blueprint_name, environment, time_us, seq)
) STRICT, WITHOUT ROWID;

-- A record by its blob, with the links the searches return (no table lookup per SBOM).
CREATE INDEX records_digest_links
    ON records (digest, blueprint_name, blueprint_version, git_sha, ingested_at, id);
DROP INDEX records_digest;
