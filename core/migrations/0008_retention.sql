-- evault metadata index, version 8: retention and legal holds (core/src/retention.rs).

-- How long each record must be kept. A child of its record and part of the record's state in
-- the tamper-evident log, so an edited `retain_until` (to have the sweeper delete early) is
-- found by `evault log verify`. Filled for existing records by this migration, under the
-- default policy (governance, 1 year, 7 years for the audit trail).
CREATE TABLE record_retention (
    record_id     TEXT PRIMARY KEY NOT NULL REFERENCES records (id),
    retain_until  TEXT NOT NULL,   -- RFC 3339 UTC, fixed width: compares as text
    rule          TEXT NOT NULL    -- what decided it: a policy rule, or a deployment it follows
) STRICT;
CREATE INDEX record_retention_until ON record_retention (retain_until);

-- The retention policy in force (one row, `name` = 'current'; none: the default policy). Every
-- policy ever set is in the tamper-evident log, as the state of subject retention-policy/current.
CREATE TABLE retention_policy (
    name    TEXT PRIMARY KEY NOT NULL CHECK (name = 'current'),
    policy  TEXT NOT NULL,   -- TOML, as `evault retention show` prints it
    set_at  TEXT NOT NULL,
    set_by  TEXT NOT NULL
) STRICT;

-- Legal holds, active and released (a released hold is kept, for the record).
CREATE TABLE holds (
    name         TEXT PRIMARY KEY NOT NULL,
    reason       TEXT NOT NULL,
    selector     TEXT NOT NULL,   -- JSON: blueprint, version, git_sha, record, since, until
    created_at   TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    released_at  TEXT,
    released_by  TEXT,
    release_reason TEXT
) STRICT;
