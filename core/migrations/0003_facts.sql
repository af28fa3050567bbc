-- evault metadata index, version 3: what evidence says. Facts depend only on a blob's bytes,
-- so they are keyed by digest and extracted once however many records share the blob.

CREATE TABLE blob_facts (
    digest            TEXT PRIMARY KEY NOT NULL REFERENCES blobs (digest),
    components_total  INTEGER NOT NULL DEFAULT 0,
    findings_total    INTEGER NOT NULL DEFAULT 0,
    statements_total  INTEGER NOT NULL DEFAULT 0,
    truncated         INTEGER NOT NULL DEFAULT 0,   -- some items were dropped at the limit
    native            TEXT,                         -- evault's own document, as JSON
    extracted_at      TEXT NOT NULL
) STRICT;

CREATE TABLE components (
    digest    TEXT NOT NULL REFERENCES blobs (digest),
    name      TEXT NOT NULL,
    version   TEXT,
    purl      TEXT,
    licenses  TEXT NOT NULL,   -- JSON array
    hashes    TEXT NOT NULL    -- JSON object: algorithm -> hex
) STRICT;
CREATE INDEX components_digest ON components (digest);
CREATE INDEX components_purl ON components (purl);
CREATE INDEX components_name ON components (name, version);

CREATE TABLE findings (
    digest         TEXT NOT NULL REFERENCES blobs (digest),
    vuln_id        TEXT NOT NULL,
    aliases        TEXT NOT NULL,   -- JSON array
    severity       TEXT NOT NULL CHECK (severity IN ('critical', 'high', 'medium', 'low', 'unknown')),
    package        TEXT,
    version        TEXT,
    purl           TEXT,
    fixed_version  TEXT
) STRICT;
CREATE INDEX findings_digest ON findings (digest);
CREATE INDEX findings_vuln ON findings (vuln_id);

CREATE TABLE vex_statements (
    digest         TEXT NOT NULL REFERENCES blobs (digest),
    vulnerability  TEXT NOT NULL,
    aliases        TEXT NOT NULL,   -- JSON array
    products       TEXT NOT NULL,   -- JSON array
    status         TEXT NOT NULL CHECK (status IN ('not_affected', 'affected', 'fixed', 'under_investigation')),
    justification  TEXT
) STRICT;
CREATE INDEX vex_statements_digest ON vex_statements (digest);
CREATE INDEX vex_statements_vuln ON vex_statements (vulnerability);

CREATE TABLE provenance (
    digest          TEXT PRIMARY KEY NOT NULL REFERENCES blobs (digest),
    predicate_type  TEXT NOT NULL,
    builder_id      TEXT,
    build_type      TEXT,
    source_repo     TEXT,
    source_commit   TEXT,
    subjects        TEXT NOT NULL   -- JSON array of {name, digest}
) STRICT;
