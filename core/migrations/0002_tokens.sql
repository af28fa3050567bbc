-- evault metadata index, version 2: API tokens.
-- Only a SHA-256 of each secret is stored: secrets are 256-bit random values, so a fast hash is
-- enough (there is nothing to brute-force), and a stolen index reveals no usable token.

CREATE TABLE tokens (
    name          TEXT PRIMARY KEY NOT NULL,
    secret_hash   TEXT NOT NULL UNIQUE,        -- hex SHA-256 of the secret
    role          TEXT NOT NULL CHECK (role IN ('pusher', 'auditor', 'approver', 'admin')),
    scopes        TEXT NOT NULL,               -- JSON array of blueprint name patterns
    created_at    TEXT NOT NULL,
    created_by    TEXT NOT NULL,
    expires_at    TEXT,
    revoked_at    TEXT,
    last_used_at  TEXT
) STRICT;
