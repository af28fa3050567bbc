-- evault metadata index, version 4: what evault trusts, and what it concluded about each record.

CREATE TABLE trust_keys (
    name         TEXT PRIMARY KEY NOT NULL,
    algorithm    TEXT NOT NULL,
    fingerprint  TEXT NOT NULL UNIQUE,   -- hex SHA-256 of the SubjectPublicKeyInfo DER
    public_key   TEXT NOT NULL,          -- SPKI PEM
    scopes       TEXT NOT NULL,          -- JSON array of blueprint name patterns; [] = all
    created_at   TEXT NOT NULL,
    created_by   TEXT NOT NULL
) STRICT;

CREATE TABLE trust_identities (
    name          TEXT PRIMARY KEY NOT NULL,
    san           TEXT NOT NULL,         -- certificate subject alternative name, or a regex
    san_is_regex  INTEGER NOT NULL,
    issuer        TEXT NOT NULL,         -- OIDC issuer, exact
    scopes        TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    created_by    TEXT NOT NULL
) STRICT;

CREATE TABLE trust_roots (
    name        TEXT PRIMARY KEY NOT NULL,   -- e.g. public-good, staging
    document    TEXT NOT NULL,               -- Sigstore trusted_root.json
    created_at  TEXT NOT NULL,
    created_by  TEXT NOT NULL
) STRICT;

CREATE TABLE trust_requirements (
    pattern     TEXT PRIMARY KEY NOT NULL,   -- blueprints whose evidence must verify to be pushed
    created_at  TEXT NOT NULL,
    created_by  TEXT NOT NULL
) STRICT;

CREATE TABLE record_verification (
    record_id   TEXT PRIMARY KEY NOT NULL REFERENCES records (id),
    status      TEXT NOT NULL CHECK (status IN ('verified', 'failed', 'unsigned', 'untrusted')),
    verified_by TEXT,            -- key or identity (or the signature record that vouches)
    reason      TEXT,            -- why not verified
    steps       TEXT NOT NULL,   -- JSON array: the chain of reasoning
    checked_at  TEXT NOT NULL
) STRICT;
