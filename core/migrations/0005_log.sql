-- evault metadata index, version 5: the tamper-evident log (see core/src/log/mod.rs).

CREATE TABLE log_entries (
    idx      INTEGER PRIMARY KEY,   -- leaf index in the Merkle tree, from 0, without gaps
    subject  TEXT NOT NULL,         -- the object the entry is about, e.g. record/<id>
    entry    TEXT NOT NULL          -- canonical JSON; the leaf hash is SHA-256(0x00 || entry)
) STRICT;
CREATE INDEX log_entries_subject ON log_entries (subject, idx);

-- Hashes of complete perfect subtrees: leaves [idx * 2^level, (idx + 1) * 2^level).
CREATE TABLE log_nodes (
    level  INTEGER NOT NULL,
    idx    INTEGER NOT NULL,
    hash   BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) STRICT, WITHOUT ROWID;

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
