//! The tamper-evident log: every change to the vault's state, in an RFC 6962 Merkle tree, with
//! signed checkpoints.
//!
//! * An **entry** is canonical JSON (see [`state::canonical`]):
//!   `{"actor", "index", "state", "subject", "time", "type", "v": 1}` plus `"reason"` when the
//!   change has one. `subject` names the object that changed (`record/<id>`, `blob/<digest>`,
//!   `token/<name>`, `trust-key/<name>`, ...), `state` is its complete new state as the index
//!   holds it (`null` once removed), `type` says what happened (`record.ingested`,
//!   `approval.recorded`, `record.verified`, `blob.stored`, `token.created`, `token.revoked`,
//!   `trust.key.added`, ...). Entries are appended by the same SQLite transaction as the change
//!   they describe, so neither exists without the other.
//! * The **tree** is RFC 6962's ([`merkle`]); each perfect subtree is stored once when it
//!   completes, so roots and proofs cost `O(log n)` reads.
//! * Every transaction that appends entries also stores a **checkpoint** of the new tree,
//!   signed with the vault's Ed25519 key in the C2SP signed-note format ([`note`]). The key is
//!   created by `evault init` in `log.key` (mode 0600); its verifier key is kept in the index
//!   and printed by `evault log key`.
//!
//! [`check`] recomputes all of it and compares every object in the index with its newest entry.

pub mod check;
pub mod merkle;
pub mod note;
pub mod state;

use chrono::Utc;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::record::format_time;
use merkle::{Frontier, Hash, Nodes};
use note::{Checkpoint, LogSigner};
use state::Table;

/// The version of the entry format (the `v` field).
pub const ENTRY_VERSION: u64 = 1;

/// The signing key's file in the data directory.
pub const KEY_FILE: &str = "log.key";

/// Stored perfect subtrees, read through a connection (or a transaction).
pub(crate) struct DbNodes<'c>(pub &'c Connection);

impl Nodes for DbNodes<'_> {
    type Error = Error;
    fn node(&self, level: u32, index: u64) -> Result<Hash> {
        let hash: Option<Vec<u8>> = self
            .0
            .prepare_cached("SELECT hash FROM log_nodes WHERE pos = ?1")?
            .query_row(params![node_pos(level, index) as i64], |r| r.get(0))
            .optional()?;
        hash.and_then(|h| h.try_into().ok()).ok_or_else(|| {
            Error::Integrity(format!(
                "the log's stored hash of subtree (level {level}, index {index}) is missing or \
                 malformed; run `evault log verify`"
            ))
        })
    }
}

/// Where the hash of the perfect subtree (`level`, `index`) is stored: the order in which the
/// subtrees complete as leaves are appended, so that appends only ever write at the end. Before
/// leaf `k` the tree has completed `2k - popcount(k)` subtrees; leaf `k` then completes those at
/// levels 0, 1, … in turn.
pub(crate) fn node_pos(level: u32, index: u64) -> u64 {
    let k = ((index + 1) << level) - 1;
    2 * k - u64::from(k.count_ones()) + u64::from(level)
}

/// Records that the record `id`'s ingestion is log entry `index` (for its inclusion proof).
pub(crate) fn set_record_entry(conn: &Connection, id: &str, index: u64) -> Result<()> {
    conn.prepare_cached("UPDATE records SET log_index = ?1 WHERE id = ?2")?
        .execute(params![index as i64, id])?;
    Ok(())
}

/// The number of entries in the log.
pub(crate) fn size(conn: &Connection) -> Result<u64> {
    let n: i64 = conn
        .prepare_cached("SELECT coalesce(max(idx) + 1, 0) FROM log_entries")?
        .query_row([], |r| r.get(0))?;
    Ok(n.max(0) as u64)
}

/// Appends entries inside a transaction, then signs the resulting tree head (public only as a
/// parameter of [`crate::index::Changes`]; its methods are the crate's).
pub struct Appender<'c> {
    conn: &'c Connection,
    signer: &'c LogSigner,
    frontier: Frontier,
    /// The index of the transaction's first entry (the `batch` of its entries).
    batch: u64,
    time: String,
    appended: u64,
}

impl<'c> Appender<'c> {
    pub fn begin(conn: &'c Connection, signer: &'c LogSigner) -> Result<Appender<'c>> {
        let batch = size(conn)?;
        let frontier = Frontier::load(&DbNodes(conn), batch)?;
        Ok(Appender {
            conn,
            signer,
            frontier,
            batch,
            time: format_time(Utc::now()),
            appended: 0,
        })
    }

    /// Records that the object `key` of `table` changed (`kind` says how); its new state is
    /// read back from the index. Returns the entry's index.
    pub fn record(
        &mut self,
        kind: &str,
        table: Table,
        key: &str,
        actor: &str,
        reason: Option<&str>,
    ) -> Result<u64> {
        let state = table.state(self.conn, key)?;
        self.append(kind, &table.subject(key), actor, state, reason, false)
    }

    fn append(
        &mut self,
        kind: &str,
        subject: &str,
        actor: &str,
        state: Option<Value>,
        reason: Option<&str>,
        backfill: bool,
    ) -> Result<u64> {
        let index = self.frontier.size();
        let mut entry = json!({
            "v": ENTRY_VERSION,
            "index": index,
            "batch": self.batch,
            "time": self.time,
            "actor": actor,
            "type": kind,
            "subject": subject,
            "state": state,
        });
        if let Some(reason) = reason {
            entry["reason"] = reason.into();
        }
        if backfill {
            entry["backfill"] = true.into();
        }
        let text = state::canonical(&entry);
        self.conn
            .prepare_cached("INSERT INTO log_entries (idx, subject, entry) VALUES (?1, ?2, ?3)")?
            .execute(params![index as i64, subject, text])?;
        let mut insert = self.conn.prepare_cached(
            "INSERT INTO log_nodes (pos, level, idx, hash) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for (level, idx, hash) in self.frontier.push(merkle::leaf_hash(text.as_bytes())) {
            let pos = node_pos(level, idx) as i64;
            insert.execute(params![pos, level, idx as i64, hash.as_slice()])?;
        }
        self.appended += 1;
        Ok(index)
    }

    /// Signs and stores a checkpoint of the tree if anything was appended.
    pub fn finish(self) -> Result<Option<u64>> {
        if self.appended == 0 {
            return Ok(None);
        }
        store_checkpoint(self.conn, self.signer, &self.frontier, &self.time)?;
        Ok(Some(self.frontier.size()))
    }
}

fn store_checkpoint(
    conn: &Connection,
    signer: &LogSigner,
    frontier: &Frontier,
    time: &str,
) -> Result<()> {
    let checkpoint = Checkpoint {
        origin: signer.name().to_string(),
        size: frontier.size(),
        root: frontier.root(),
    };
    conn.prepare_cached(
        "INSERT INTO log_checkpoints (size, note, created_at) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![
        checkpoint.size as i64,
        signer.sign(&checkpoint),
        time
    ])?;
    Ok(())
}

/// A value of the log's metadata (`origin`, `vkey`).
pub(crate) fn meta(conn: &Connection, name: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT value FROM log_meta WHERE name = ?1",
            params![name],
            |r| r.get(0),
        )
        .optional()?)
}

/// Binds a new log to `signer`: records its key, signs the tree as it stands, and, for a vault
/// that existed before the log, records every object already there (marked `"backfill"`), so
/// that verification covers them from now on. Runs in one transaction.
pub(crate) fn adopt(conn: &mut Connection, signer: &LogSigner, actor: &str) -> Result<u64> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    // A log with entries or checkpoints but no key on record lost its metadata behind its back:
    // starting it again would sign today's (perhaps edited) state as if it were history.
    if has_history(&tx)? {
        return Err(Error::Integrity(METADATA_DELETED.into()));
    }
    tx.execute(
        "INSERT INTO log_meta (name, value) VALUES ('origin', ?1), ('vkey', ?2)",
        params![signer.name(), signer.verifier().to_vkey()],
    )?;
    let mut appender = Appender::begin(&tx, signer)?;
    let mut backfilled = 0;
    for table in state::TABLES {
        let kind = backfill_kind(table);
        let keys: Vec<String> = {
            let mut stmt = tx.prepare(&format!(
                "SELECT {key} FROM {t} ORDER BY {key}",
                key = table.key,
                t = table.table
            ))?;
            stmt.query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?
        };
        for key in keys {
            let state = table.state(&tx, &key)?;
            let index = appender.append(kind, &table.subject(&key), actor, state, None, true)?;
            if table.table == state::RECORDS.table {
                set_record_entry(&tx, &key, index)?;
            }
            backfilled += 1;
        }
    }
    if appender.finish()?.is_none() {
        store_checkpoint(&tx, signer, &Frontier::default(), &format_time(Utc::now()))?;
    }
    tx.commit()?;
    Ok(backfilled)
}

/// Why a log that holds history but no record of its key cannot be started again.
pub const METADATA_DELETED: &str = "the log holds entries or checkpoints but the index records \
    no key for it (table log_meta): its metadata was deleted behind the log's back; restore the \
    vault from a backup (`evault log verify` reports the details)";

/// Whether the log holds any entry or checkpoint.
pub(crate) fn has_history(conn: &Connection) -> Result<bool> {
    Ok(conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM log_entries) OR EXISTS (SELECT 1 FROM log_checkpoints)",
        [],
        |r| r.get(0),
    )?)
}

fn backfill_kind(table: Table) -> &'static str {
    match table.prefix {
        "record" => "record.ingested",
        "blob" => "blob.stored",
        "token" => "token.created",
        "trust-key" => "trust.key.added",
        "trust-identity" => "trust.identity.added",
        "trust-root" => "trust.root.set",
        _ => "trust.requirement.added",
    }
}

/// A stored signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCheckpoint {
    pub size: u64,
    pub note: String,
    /// When the vault signed it (RFC 3339 UTC).
    pub signed_at: String,
}

/// The newest stored checkpoint.
pub(crate) fn latest_checkpoint(conn: &Connection) -> Result<Option<StoredCheckpoint>> {
    checkpoint_where(conn, "ORDER BY size DESC LIMIT 1", params![])
}

/// The stored checkpoint of the tree of `size` entries, if one was signed at that size.
pub(crate) fn checkpoint_at(conn: &Connection, size: u64) -> Result<Option<StoredCheckpoint>> {
    checkpoint_where(conn, "WHERE size = ?1", params![size as i64])
}

fn checkpoint_where(
    conn: &Connection,
    clause: &str,
    args: &[&dyn rusqlite::ToSql],
) -> Result<Option<StoredCheckpoint>> {
    Ok(conn
        .query_row(
            &format!("SELECT size, note, created_at FROM log_checkpoints {clause}"),
            args,
            |r| {
                Ok(StoredCheckpoint {
                    size: r.get::<_, i64>(0)?.max(0) as u64,
                    note: r.get(1)?,
                    signed_at: r.get(2)?,
                })
            },
        )
        .optional()?)
}

/// The entry at `index`, as stored.
pub(crate) fn entry(conn: &Connection, index: u64) -> Result<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT entry FROM log_entries WHERE idx = ?1",
            params![index as i64],
            |r| r.get(0),
        )
        .optional()?)
}

/// The index of the entry that recorded the ingestion of record `id`.
pub(crate) fn record_entry(conn: &Connection, id: &str) -> Result<Option<u64>> {
    Ok(conn
        .query_row(
            "SELECT log_index FROM records WHERE id = ?1",
            params![id],
            |r| r.get::<_, Option<i64>>(0),
        )
        .optional()?
        .flatten()
        .map(|i| i.max(0) as u64))
}

/// The log as the rest of the engine sees it.
pub trait LogStore: Send + Sync {
    /// The key that signs checkpoints, or why changes cannot be made.
    fn set_log_signer(&self, signer: std::result::Result<LogSigner, String>);
    /// `Err` with the reason when changes cannot be signed.
    fn log_writable(&self) -> Result<()>;
    /// The log's origin and verifier key, once the log is started.
    fn log_identity(&self) -> Result<Option<(String, String)>>;
    /// Starts the log with `signer` (see [`adopt`]); returns how many existing objects it
    /// recorded.
    fn log_adopt(&self, signer: &LogSigner, actor: &str) -> Result<u64>;
    /// Whether the log holds any entry or checkpoint.
    fn log_has_history(&self) -> Result<bool>;
    fn log_latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>>;
    fn log_checkpoint_at(&self, size: u64) -> Result<Option<StoredCheckpoint>>;
    /// The root of the first `size` entries, from stored subtrees.
    fn log_root(&self, size: u64) -> Result<Hash>;
    fn log_entry(&self, index: u64) -> Result<Option<String>>;
    /// Up to `limit` entries from `start`, with their indexes.
    fn log_entries(&self, start: u64, limit: u64) -> Result<Vec<(u64, String)>>;
    /// The entry that recorded the ingestion of record `id`.
    fn log_record_entry(&self, id: &str) -> Result<Option<u64>>;
    fn log_inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>>;
    fn log_consistency_proof(&self, from: u64, to: u64) -> Result<Vec<Hash>>;
    fn log_verify(
        &self,
        anchors: &check::Anchors<'_>,
        problems: &mut check::Problems,
        progress: &mut dyn FnMut(&str, u64, u64),
    ) -> Result<check::LogReport>;
}

impl LogStore for crate::index::SqliteIndex {
    fn set_log_signer(&self, signer: std::result::Result<LogSigner, String>) {
        crate::index::SqliteIndex::set_log_signer(self, signer);
    }

    fn log_writable(&self) -> Result<()> {
        self.signer().map(|_| ())
    }

    fn log_identity(&self) -> Result<Option<(String, String)>> {
        let conn = self.conn()?;
        Ok(meta(&conn, "origin")?.zip(meta(&conn, "vkey")?))
    }

    fn log_adopt(&self, signer: &LogSigner, actor: &str) -> Result<u64> {
        adopt(&mut *self.conn()?, signer, actor)
    }

    fn log_has_history(&self) -> Result<bool> {
        has_history(&*self.conn()?)
    }

    fn log_latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>> {
        latest_checkpoint(&*self.conn()?)
    }

    fn log_checkpoint_at(&self, size: u64) -> Result<Option<StoredCheckpoint>> {
        checkpoint_at(&*self.conn()?, size)
    }

    fn log_root(&self, size: u64) -> Result<Hash> {
        merkle::root(&DbNodes(&*self.conn()?), size)
    }

    fn log_entry(&self, index: u64) -> Result<Option<String>> {
        entry(&*self.conn()?, index)
    }

    fn log_entries(&self, start: u64, limit: u64) -> Result<Vec<(u64, String)>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT idx, entry FROM log_entries WHERE idx >= ?1 ORDER BY idx LIMIT ?2",
        )?;
        let rows = stmt.query_map(
            params![
                start.min(i64::MAX as u64) as i64,
                limit.min(i64::MAX as u64) as i64
            ],
            |r| Ok((r.get::<_, i64>(0)?.max(0) as u64, r.get(1)?)),
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn log_record_entry(&self, id: &str) -> Result<Option<u64>> {
        record_entry(&*self.conn()?, id)
    }

    fn log_inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>> {
        merkle::inclusion_proof(&DbNodes(&*self.conn()?), index, size)
    }

    fn log_consistency_proof(&self, from: u64, to: u64) -> Result<Vec<Hash>> {
        merkle::consistency_proof(&DbNodes(&*self.conn()?), from, to)
    }

    fn log_verify(
        &self,
        anchors: &check::Anchors<'_>,
        problems: &mut check::Problems,
        progress: &mut dyn FnMut(&str, u64, u64),
    ) -> Result<check::LogReport> {
        // On a snapshot of its own: a verification of a large log takes seconds, during which
        // a server keeps accepting pushes.
        self.snapshot(|conn| check::verify(conn, anchors, problems, progress))
    }
}

/// `evault log key`: who signs the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogKey {
    /// The log's name: the first line of its checkpoints.
    pub origin: String,
    /// Always `ed25519`.
    pub algorithm: String,
    /// The key id: the first 4 bytes of SHA-256(name || 0x0A || 0x01 || key), in hex.
    pub key_id: String,
    /// The verifier key, `name+keyid+base64(0x01 || key)` (Go's `sumdb/note` format).
    pub vkey: String,
    /// The raw 32-byte Ed25519 public key, base64.
    pub public_key: String,
}

/// `evault log checkpoint`: the newest signed tree head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointView {
    pub origin: String,
    pub size: u64,
    /// Hex.
    pub root_hash: String,
    pub signed_at: String,
    /// The signed note, exactly as signed.
    pub note: String,
}

/// `evault log prove`: a record's ingestion entry and its audit path to a signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InclusionProof {
    pub record_id: String,
    pub log_index: u64,
    pub tree_size: u64,
    /// The entry, exactly as hashed.
    pub entry: String,
    /// SHA-256(0x00 || entry), hex.
    pub leaf_hash: String,
    /// The audit path, leaf side first, hex (RFC 6962 §2.1.1).
    pub hashes: Vec<String>,
    /// Hex.
    pub root_hash: String,
    /// The signed checkpoint of `tree_size` entries.
    pub checkpoint: String,
}

/// `evault log consistency`: that the tree of `to` entries extends the tree of `from`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistencyProof {
    pub from: u64,
    pub to: u64,
    /// RFC 6962 §2.1.2, hex.
    pub hashes: Vec<String>,
    /// The root of the `from` tree, hex, for convenience: a verifier takes it from the
    /// checkpoint it already holds, never from here.
    pub from_root_hash: String,
    /// The root of the `to` tree, hex.
    pub root_hash: String,
    /// The signed checkpoint of `to` entries.
    pub checkpoint: String,
}

/// One entry for `GET /v1/log/entries`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub index: u64,
    /// Exactly as hashed.
    pub entry: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtrees_are_stored_at_consecutive_positions_in_the_order_they_complete() {
        let mut frontier = Frontier::default();
        let mut next = 0u64;
        for leaf in 0..1000u64 {
            let mut completed = frontier.push(merkle::leaf_hash(&leaf.to_be_bytes()));
            completed.sort_by_key(|(level, ..)| *level);
            for (level, idx, _) in completed {
                assert_eq!(node_pos(level, idx), next, "leaf {leaf}, level {level}");
                next += 1;
            }
        }
        assert_eq!(next, 2 * 1000 - u64::from(1000u64.count_ones()));
    }
}
