-- evault metadata index, version 5: the tamper-evident log (see core/src/log/mod.rs).

-- Every table here is keyed by append order, so that a push writes the last page of each and
-- nothing else: an index on a random key (the subject) would cost pushes a page per entry.
CREATE TABLE log_entries (
    idx      INTEGER PRIMARY KEY,   -- leaf index in the Merkle tree, from 0, without gaps
    subject  TEXT NOT NULL,         -- the object the entry is about, e.g. record/<id>
    entry    TEXT NOT NULL          -- canonical JSON; the leaf hash is SHA-256(0x00 || entry)
) STRICT;

-- Hashes of complete perfect subtrees: leaves [idx * 2^level, (idx + 1) * 2^level), stored in
-- the order they complete: pos = 2k - popcount(k) + level, k = (idx + 1) * 2^level - 1 being
-- the leaf that completes the subtree.
CREATE TABLE log_nodes (
    pos    INTEGER PRIMARY KEY,
    level  INTEGER NOT NULL,
    idx    INTEGER NOT NULL,
    hash   BLOB NOT NULL
) STRICT;

-- The entry that recorded the record's ingestion, for inclusion proofs (not part of the
-- record's logged state; `evault log verify` checks it against the log).
ALTER TABLE records ADD COLUMN log_index INTEGER;

-- One signed checkpoint (C2SP signed note) per transaction that appended entries.
CREATE TABLE log_checkpoints (
    size        INTEGER PRIMARY KEY,
    note        TEXT NOT NULL,
    created_at  TEXT NOT NULL
) STRICT;

-- origin: the log's name; vkey: the verifier key its checkpoints are signed with.
CREATE TABLE log_meta (
    name   TEXT PRIMARY KEY NOT NULL,
    value  TEXT NOT NULL
) STRICT;

-- Append-only: nothing that goes through SQLite may rewrite or remove history by accident.
-- (Someone editing the file directly can drop these; `evault log verify` catches that.)
CREATE TRIGGER log_entries_append_only_update BEFORE UPDATE ON log_entries
    BEGIN SELECT RAISE(ABORT, 'the log is append-only'); END;
CREATE TRIGGER log_entries_append_only_delete BEFORE DELETE ON log_entries
    BEGIN SELECT RAISE(ABORT, 'the log is append-only'); END;
CREATE TRIGGER log_nodes_append_only_update BEFORE UPDATE ON log_nodes
    BEGIN SELECT RAISE(ABORT, 'the log is append-only'); END;
CREATE TRIGGER log_nodes_append_only_delete BEFORE DELETE ON log_nodes
    BEGIN SELECT RAISE(ABORT, 'the log is append-only'); END;
CREATE TRIGGER log_checkpoints_append_only_update BEFORE UPDATE ON log_checkpoints
    BEGIN SELECT RAISE(ABORT, 'the log is append-only'); END;
CREATE TRIGGER log_checkpoints_append_only_delete BEFORE DELETE ON log_checkpoints
    BEGIN SELECT RAISE(ABORT, 'the log is append-only'); END;
CREATE TRIGGER log_meta_append_only_update BEFORE UPDATE ON log_meta
    BEGIN SELECT RAISE(ABORT, 'the log metadata is fixed'); END;
CREATE TRIGGER log_meta_append_only_delete BEFORE DELETE ON log_meta
    BEGIN SELECT RAISE(ABORT, 'the log metadata is fixed'); END;
