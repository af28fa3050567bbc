-- Release gates: the gate policy the vault enforces (`evault gate policy set`).
-- Decisions themselves are records (kind `policy-result`), not rows here.

CREATE TABLE gate_policy (
    name    TEXT PRIMARY KEY NOT NULL CHECK (name = 'current'),
    engine  TEXT NOT NULL CHECK (engine IN ('toml', 'rego')),
    policy  TEXT NOT NULL,   -- the policy as given
    digest  TEXT NOT NULL,   -- sha256 of `policy`, as decisions cite it
    set_at  TEXT NOT NULL,
    set_by  TEXT NOT NULL
) STRICT;
