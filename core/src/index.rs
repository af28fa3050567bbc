//! The metadata index: records, their links and the blobs they point at.
//!
//! [`MetadataIndex`] is the narrow interface ingest and queries use; [`SqliteIndex`] is the
//! embedded backend (SQLite in WAL mode, `synchronous=FULL`, versioned migrations embedded in the
//! binary and applied on open). A PostgreSQL backend implements the same trait.

use std::path::Path;
use std::sync::{Mutex, OnceLock};

use chrono::Utc;
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params, params_from_iter};

use crate::error::{Error, Result};
use crate::facts::Facts;
use crate::log::Appender;
use crate::log::note::LogSigner;
use crate::log::state::{BLOBS, RECORDS};
use crate::record::{Blueprint, Cursor, Record, RecordFilter, format_time};
use crate::verification::{Verification, VerificationStatus};

/// A blob as the index knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRow {
    pub digest: String,
    pub size: u64,
    pub stored_size: u64,
}

/// Whether a pushed record was new.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    /// The same record (same blob, kind and links) was already in the vault.
    Present,
}

/// Counts for status output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IndexStats {
    pub records: u64,
    pub blobs: u64,
    pub bytes: u64,
    pub stored_bytes: u64,
}

pub trait MetadataIndex: Send + Sync {
    /// Inserts blobs, their facts and records in one transaction: all of them or none. Records
    /// already present (same id) are left untouched and returned as stored, with
    /// [`Status::Present`]; facts already stored for a blob are kept.
    fn commit_push(
        &self,
        blobs: &[BlobRow],
        facts: &[(String, Facts)],
        records: &[Record],
        verifications: &[(String, Vec<String>)],
    ) -> Result<Vec<(Record, Status)>>;

    fn record(&self, id: &str) -> Result<Option<Record>>;

    /// Records matching `filter`, newest first, and the cursor of the next page if the page is
    /// full.
    fn records(&self, filter: &RecordFilter) -> Result<(Vec<Record>, Option<Cursor>)>;

    fn count_records(&self, filter: &RecordFilter) -> Result<u64>;

    fn blob(&self, digest: &str) -> Result<Option<BlobRow>>;

    /// Every blob row, ordered by digest.
    fn blobs(&self) -> Result<Vec<BlobRow>>;

    fn stats(&self) -> Result<IndexStats>;
}

struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
    /// Fills what the SQL created from existing data, in the same transaction.
    fill: Option<fn(&Connection) -> Result<()>>,
}

/// Schema migrations, applied in order; never edit one that has shipped, add a new one.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../migrations/0001_initial.sql"),
        fill: None,
    },
    Migration {
        version: 2,
        name: "tokens",
        sql: include_str!("../migrations/0002_tokens.sql"),
        fill: None,
    },
    Migration {
        version: 3,
        name: "facts",
        sql: include_str!("../migrations/0003_facts.sql"),
        fill: None,
    },
    Migration {
        version: 4,
        name: "trust",
        sql: include_str!("../migrations/0004_trust.sql"),
        fill: None,
    },
    Migration {
        version: 5,
        name: "log",
        sql: include_str!("../migrations/0005_log.sql"),
        fill: None,
    },
    Migration {
        version: 6,
        name: "queries",
        sql: include_str!("../migrations/0006_queries.sql"),
        fill: None,
    },
    Migration {
        version: 7,
        name: "changes",
        sql: include_str!("../migrations/0007_changes.sql"),
        fill: Some(crate::query::fill_changes),
    },
    Migration {
        version: 8,
        name: "retention",
        sql: include_str!("../migrations/0008_retention.sql"),
        fill: Some(crate::retention::fill),
    },
    Migration {
        version: 9,
        name: "sweep",
        sql: include_str!("../migrations/0009_sweep.sql"),
        fill: None,
    },
    Migration {
        version: 10,
        name: "gates",
        sql: include_str!("../migrations/0010_gates.sql"),
        fill: None,
    },
];

/// The index schema version this build writes.
pub fn schema_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Most idle read-only connections [`SqliteIndex::read`] keeps.
const READERS: usize = 8;

/// How much of the index a query connection reads through a memory map (see
/// [`SqliteIndex::read`]).
const READ_MMAP_BYTES: i64 = 1 << 34;

/// Page cache of each query connection, in KiB (SQLite's default is 2 MiB): the index pages a
/// query touches again (a popular package's entries, the upper levels of every B-tree) stay
/// decoded between queries.
const READ_CACHE_KIB: i64 = 16 * 1024;

pub struct SqliteIndex {
    conn: Mutex<Connection>,
    /// Idle read-only connections for queries (see [`SqliteIndex::read`]).
    readers: Mutex<Vec<Connection>>,
    path: std::path::PathBuf,
    /// The key that signs the log's checkpoints, or why there is none to use; every change
    /// needs it (see [`crate::log`]).
    signer: OnceLock<std::result::Result<LogSigner, String>>,
}

/// Every statement the query connections ran, with its parameters and the thread that ran it,
/// for the tests that check query plans (`query::plans`).
#[cfg(test)]
pub(crate) static TRACED: Mutex<Vec<(std::thread::ThreadId, String)>> = Mutex::new(Vec::new());

impl SqliteIndex {
    /// Opens (creating if `create`) the index at `path` and applies pending migrations.
    pub fn open(path: &Path, create: bool) -> Result<Self> {
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        let mut conn = Connection::open_with_flags(path, flags)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        // A push runs a few dozen distinct statements (records, subjects, facts, verdicts, the
        // log's state reads and appends); rusqlite's default cache of 16 would re-parse most of
        // them on every push.
        conn.set_prepared_statement_cache_capacity(128);
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        migrate(&mut conn)?;
        Ok(SqliteIndex {
            conn: Mutex::new(conn),
            readers: Mutex::new(Vec::new()),
            path: path.to_path_buf(),
            signer: OnceLock::new(),
        })
    }

    /// A read-only connection of its own, in a read transaction: one consistent snapshot for a
    /// long read (a full log verification) that neither waits for nor holds up changes.
    pub(crate) fn snapshot<T>(&self, read: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.path, flags)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.execute_batch("BEGIN")?;
        let out = read(&conn);
        // Nothing was written: ending the transaction either way only releases the snapshot.
        let _ = conn.execute_batch("ROLLBACK");
        out
    }

    /// Runs `read` in a read transaction on a pooled read-only connection: one consistent
    /// snapshot for a query, which neither waits for pushes nor holds them up, with prepared
    /// statements cached across queries. At most [`READERS`] idle connections are kept.
    pub(crate) fn read<T>(&self, read: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let pooled = self
            .readers
            .lock()
            .map_err(|_| Error::Internal("reader pool lock poisoned".into()))?
            .pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => {
                let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                #[allow(unused_mut)]
                let mut conn = Connection::open_with_flags(&self.path, flags)?;
                conn.busy_timeout(std::time::Duration::from_secs(30))?;
                conn.set_prepared_statement_cache_capacity(64);
                // Queries jump between index and table pages (a popular component: thousands
                // of SBOMs, each a record lookup). Read through a memory map, a page costs no
                // system call and no copy; the mapping shares the OS page cache, so idle
                // connections hold no memory of their own. SQLite caps it at its compiled
                // maximum and falls back to reads where mapping is not possible.
                conn.pragma_update(None, "mmap_size", READ_MMAP_BYTES)?;
                conn.pragma_update(None, "cache_size", -READ_CACHE_KIB)?;
                #[cfg(test)]
                conn.trace_v2(
                    rusqlite::trace::TraceEventCodes::SQLITE_TRACE_STMT,
                    Some(|event: rusqlite::trace::TraceEvent<'_>| {
                        if let rusqlite::trace::TraceEvent::Stmt(stmt, _) = event
                            && let (Some(sql), Ok(mut traced)) =
                                (stmt.expanded_sql(), TRACED.lock())
                        {
                            traced.push((std::thread::current().id(), sql));
                        }
                    }),
                )?;
                conn
            }
        };
        conn.execute_batch("BEGIN")?;
        let out = read(&conn);
        // Nothing was written: ending the transaction either way only releases the snapshot.
        if conn.execute_batch("ROLLBACK").is_ok()
            && let Ok(mut idle) = self.readers.lock()
            && idle.len() < READERS
        {
            idle.push(conn);
        }
        out
    }

    pub(crate) fn conn(&self) -> Result<std::sync::MutexGuard<'_, Connection>> {
        self.conn
            .lock()
            .map_err(|_| Error::Internal("index connection lock poisoned".into()))
    }

    /// A new index with a started log and a fresh key, for tests.
    #[cfg(test)]
    pub(crate) fn open_with_new_log(path: &Path) -> Result<Self> {
        let index = Self::open(path, true)?;
        let signer = LogSigner::generate("evault/test").map_err(Error::Internal)?;
        crate::log::LogStore::log_adopt(&index, &signer, "test")?;
        index.set_log_signer(Ok(signer));
        Ok(index)
    }

    /// Sets the key that signs checkpoints, or why changes cannot be made (once; later calls
    /// are ignored).
    pub fn set_log_signer(&self, signer: std::result::Result<LogSigner, String>) {
        let _ = self.signer.set(signer);
    }

    /// The log signing key, or the error every change fails with without one.
    pub(crate) fn signer(&self) -> Result<&LogSigner> {
        match self.signer.get() {
            Some(Ok(signer)) => Ok(signer),
            Some(Err(why)) => Err(Error::Integrity(why.clone())),
            None => Err(Error::Internal(
                "the index was opened without its log signing key".into(),
            )),
        }
    }

    /// Runs `change` in one immediate transaction with a log appender: the change and its log
    /// entries (and the new signed checkpoint) commit together or not at all.
    pub(crate) fn change<T>(
        &self,
        change: impl FnOnce(&rusqlite::Transaction<'_>, &mut Appender<'_>) -> Result<T>,
    ) -> Result<T> {
        let signer = self.signer()?;
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut appender = Appender::begin(&tx, signer)?;
        let out = change(&tx, &mut appender)?;
        appender.finish()?;
        tx.commit()?;
        Ok(out)
    }
}

/// Logged changes through `dyn` (the vault holds its index as a trait object): one
/// transaction, with an appender for its log entries.
pub trait Changes {
    /// Runs `change` in one write transaction with the log's appender, and commits.
    fn change_dyn(
        &self,
        change: &mut dyn FnMut(&rusqlite::Transaction<'_>, &mut Appender<'_>) -> Result<()>,
    ) -> Result<()>;
}

impl Changes for SqliteIndex {
    fn change_dyn(
        &self,
        change: &mut dyn FnMut(&rusqlite::Transaction<'_>, &mut Appender<'_>) -> Result<()>,
    ) -> Result<()> {
        self.change(|tx, log| change(tx, log))
    }
}

/// Runs `f` as one logged change of `index` and returns its result.
pub(crate) fn on_change<T>(
    index: &dyn Changes,
    f: impl FnOnce(&rusqlite::Transaction<'_>, &mut Appender<'_>) -> Result<T>,
) -> Result<T> {
    let mut f = Some(f);
    let mut out = None;
    index.change_dyn(&mut |tx, log| {
        if let Some(f) = f.take() {
            out = Some(f(tx, log)?);
        }
        Ok(())
    })?;
    out.ok_or_else(|| Error::Internal("the change did not run".into()))
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let latest = schema_version();
    if current > latest {
        return Err(Error::Invalid(format!(
            "the metadata index has schema version {current}, newer than this evault understands \
             ({latest}); upgrade evault"
        )));
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        let tx = conn.transaction()?;
        tx.execute_batch(m.sql)?;
        if let Some(fill) = m.fill {
            fill(&tx)?;
        }
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL) STRICT",
        )?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            params![m.version, m.name, format_time(Utc::now())],
        )?;
        tx.pragma_update(None, "user_version", m.version)?;
        tx.commit()?;
    }
    Ok(())
}

pub(crate) const RECORD_COLUMNS: &str = "r.id, r.kind, r.format, r.format_version, r.predicate_type, r.digest, \
     b.size, r.blueprint_name, r.blueprint_version, r.git_sha, r.repo, r.run_id, r.environment, \
     (SELECT group_concat(s.digest, ' ') FROM \
        (SELECT digest FROM record_subjects WHERE record_id = r.id ORDER BY digest) s), \
     r.producer, r.ingested_at, r.source_path, v.status, v.verified_by, v.reason, \
     (SELECT retain_until FROM record_retention WHERE record_id = r.id), \
     (SELECT rule FROM record_retention WHERE record_id = r.id)";

/// How many columns [`RECORD_COLUMNS`] selects: a query's own columns follow.
pub(crate) const RECORD_COLUMN_COUNT: usize = 22;

fn parse_col<T: std::str::FromStr>(row: &Row<'_>, i: usize) -> rusqlite::Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let s: String = row.get(i)?;
    s.parse::<T>().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    })
}

pub(crate) fn record_from_row(row: &Row<'_>) -> rusqlite::Result<Record> {
    let subjects: Option<String> = row.get(13)?;
    Ok(Record {
        id: row.get(0)?,
        kind: parse_col(row, 1)?,
        format: parse_col(row, 2)?,
        format_version: row.get(3)?,
        predicate_type: row.get(4)?,
        digest: row.get(5)?,
        size: row.get::<_, i64>(6)?.max(0) as u64,
        blueprint: Blueprint {
            name: row.get(7)?,
            version: row.get(8)?,
        },
        git_sha: row.get(9)?,
        repo: row.get(10)?,
        run_id: row.get(11)?,
        environment: row.get(12)?,
        subjects: subjects
            .map(|s| s.split(' ').map(str::to_string).collect())
            .unwrap_or_default(),
        producer: row.get(14)?,
        ingested_at: row.get(15)?,
        source_path: row.get(16)?,
        verification: row
            .get::<_, Option<String>>(17)?
            .map(|status| -> rusqlite::Result<Verification> {
                Ok(Verification {
                    status: VerificationStatus::from_name(&status),
                    by: row.get(18)?,
                    reason: row.get(19)?,
                })
            })
            .transpose()?,
        retention: match (row.get::<_, Option<String>>(20)?, row.get(21)?) {
            (Some(retain_until), Some(rule)) => {
                Some(crate::retention::Retention { retain_until, rule })
            }
            _ => None,
        },
    })
}

/// The WHERE clause and parameters for a filter.
fn filter_sql(filter: &RecordFilter) -> (String, Vec<Value>) {
    filter_sql_for(
        filter,
        "r.id IN (SELECT record_id FROM record_subjects WHERE digest = ?)",
    )
}

/// [`filter_sql`] over a table with the records' link columns (`r`: records or tombstones),
/// with `subject` the clause that tests for an artifact digest.
pub(crate) fn filter_sql_for(filter: &RecordFilter, subject: &'static str) -> (String, Vec<Value>) {
    let mut clauses: Vec<&str> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    let mut text = |clause: &'static str, v: &Option<String>, clauses: &mut Vec<&str>| {
        if let Some(v) = v {
            clauses.push(clause);
            values.push(Value::Text(v.clone()));
        }
    };
    text("r.blueprint_name = ?", &filter.blueprint, &mut clauses);
    text("r.blueprint_version = ?", &filter.version, &mut clauses);
    text("r.environment = ?", &filter.environment, &mut clauses);
    text("r.run_id = ?", &filter.run_id, &mut clauses);
    text("r.digest = ?", &filter.digest, &mut clauses);
    text(subject, &filter.subject, &mut clauses);
    text(
        "r.kind = ?",
        &filter.kind.map(|k| k.as_str().to_string()),
        &mut clauses,
    );
    text(
        "r.format = ?",
        &filter.format.map(|f| f.as_str().to_string()),
        &mut clauses,
    );
    text(
        "r.ingested_at >= ?",
        &filter.since.map(format_time),
        &mut clauses,
    );
    text(
        "r.ingested_at < ?",
        &filter.until.map(format_time),
        &mut clauses,
    );
    if let Some(sha) = &filter.git_sha {
        if sha.len() == 40 || sha.len() == 64 {
            text("r.git_sha = ?", &Some(sha.clone()), &mut clauses);
        } else {
            // A prefix: a range scan on the index, no LIKE escaping to get wrong.
            text("r.git_sha >= ?", &Some(sha.clone()), &mut clauses);
            text("r.git_sha < ?", &Some(format!("{sha}g")), &mut clauses);
        }
    }
    let mut clauses: Vec<String> = clauses.into_iter().map(str::to_string).collect();
    if !filter.blueprint_patterns.is_empty() {
        // Patterns hold only name characters and '*' (see auth::validate_scope), so GLOB's
        // other metacharacters cannot occur.
        let any = vec!["r.blueprint_name GLOB ?"; filter.blueprint_patterns.len()].join(" OR ");
        clauses.push(format!("({any})"));
        values.extend(
            filter
                .blueprint_patterns
                .iter()
                .map(|p| Value::Text(p.clone())),
        );
    }
    if let Some(prefix) = &filter.id_prefix {
        // A range scan on the unique index, no LIKE escaping to get wrong.
        clauses.push("r.id >= ? AND r.id < ?".into());
        values.push(Value::Text(prefix.clone()));
        values.push(Value::Text(format!("{prefix}g")));
    }
    if let Some(cursor) = filter.before {
        clauses.push("r.seq < ?".into());
        values.push(Value::Integer(cursor.0));
    }
    let sql = if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    };
    (sql, values)
}

impl MetadataIndex for SqliteIndex {
    fn commit_push(
        &self,
        blobs: &[BlobRow],
        facts: &[(String, Facts)],
        records: &[Record],
        verifications: &[(String, Vec<String>)],
    ) -> Result<Vec<(Record, Status)>> {
        let actor = records.first().map_or("evault", |r| r.producer.as_str());
        self.change(|tx, log| {
            let now = format_time(Utc::now());
            let mut out = Vec::with_capacity(records.len());
            let mut new_blobs = Vec::new();
            {
                let mut insert_blob = tx.prepare_cached(
                    "INSERT OR IGNORE INTO blobs (digest, size, stored_size, created_at) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for b in blobs {
                    if insert_blob.execute(params![
                        b.digest,
                        b.size as i64,
                        b.stored_size as i64,
                        now
                    ])? == 1
                    {
                        new_blobs.push(b.digest.as_str());
                    }
                }
            }
            let mut new_facts = Vec::new();
            for (digest, f) in facts {
                if crate::facts::insert(tx, digest, f)? {
                    new_facts.push(digest.as_str());
                }
            }
            for digest in &new_blobs {
                log.record("blob.stored", BLOBS, digest, actor, None)?;
            }
            for digest in new_facts.iter().filter(|d| !new_blobs.contains(d)) {
                log.record("blob.facts", BLOBS, digest, actor, None)?;
            }
            let policy = crate::retention::policy_in_force(tx)?;
            let mut insert_record = tx.prepare_cached(
                "INSERT OR IGNORE INTO records (id, digest, kind, format, format_version, predicate_type, \
                 blueprint_name, blueprint_version, git_sha, repo, run_id, environment, producer, \
                 ingested_at, source_path) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            )?;
            let mut insert_subject = tx.prepare_cached(
                "INSERT OR IGNORE INTO record_subjects (record_id, digest) VALUES (?1, ?2)",
            )?;
            let mut select = tx.prepare_cached(&format!(
                "SELECT {RECORD_COLUMNS} FROM records r JOIN blobs b ON b.digest = r.digest \
     LEFT JOIN record_verification v ON v.record_id = r.id WHERE r.id = ?1"
            ))?;
            for r in records {
                let inserted = insert_record.execute(params![
                    r.id,
                    r.digest,
                    r.kind.as_str(),
                    r.format.as_str(),
                    r.format_version,
                    r.predicate_type,
                    r.blueprint.name,
                    r.blueprint.version,
                    r.git_sha,
                    r.repo,
                    r.run_id,
                    r.environment,
                    r.producer,
                    r.ingested_at,
                    r.source_path,
                ])? == 1;
                if inserted {
                    for s in &r.subjects {
                        insert_subject.execute(params![r.id, s])?;
                    }
                    if matches!(
                        r.kind,
                        evault_schema::Kind::Deploy | evault_schema::Kind::Rollback
                    ) {
                        crate::query::index_change(tx, &r.id)?;
                    }
                }
                let retention = if inserted {
                    Some(crate::retention::assign(tx, &policy, &r.id)?)
                } else {
                    None
                };
                // The verdict is the one just reached under the trust in force, for a record
                // already present too (logged only when it changed).
                let mut reverified = false;
                if let Some(v) = &r.verification {
                    let steps = verifications
                        .iter()
                        .find(|(id, _)| id == &r.id)
                        .map(|(_, steps)| steps.as_slice())
                        .unwrap_or_default();
                    reverified = crate::trust::write_verification(tx, &r.id, v, steps, !inserted)?;
                }
                if inserted {
                    let kind = if r.kind == evault_schema::Kind::Approval {
                        "approval.recorded"
                    } else {
                        "record.ingested"
                    };
                    let index = log.record(kind, RECORDS, &r.id, &r.producer, None)?;
                    crate::log::set_record_entry(tx, &r.id, index)?;
                    let mut created = r.clone();
                    if let Some((retention, extended)) = retention {
                        created.retention = Some(retention);
                        // Evidence this deploy now keeps longer: its new state is logged.
                        for id in extended {
                            log.record("record.retention", RECORDS, &id, &r.producer, None)?;
                        }
                    }
                    out.push((created, Status::Created));
                } else {
                    if reverified {
                        log.record("record.verified", RECORDS, &r.id, &r.producer, None)?;
                    }
                    let stored = select.query_row(params![r.id], record_from_row)?;
                    out.push((stored, Status::Present));
                }
            }
            // A verified detached signature vouches for every unsigned record of the artifact
            // it signs.
            for r in records {
                let verified = r
                    .verification
                    .as_ref()
                    .is_some_and(|v| v.status == VerificationStatus::Verified);
                if !verified
                    || !matches!(
                        r.format,
                        evault_schema::Format::SignatureDer
                            | evault_schema::Format::SignatureBase64
                    )
                {
                    continue;
                }
                let by = format!(
                    "signature record {} ({})",
                    r.id,
                    r.verification
                        .as_ref()
                        .and_then(|v| v.by.as_deref())
                        .unwrap_or("?")
                );
                for subject in &r.subjects {
                    let vouched: Vec<String> = tx
                        .prepare_cached(
                            "UPDATE record_verification SET status = 'verified', verified_by = ?2, reason = NULL \
                             WHERE status = 'unsigned' AND record_id IN (SELECT id FROM records WHERE digest = ?1) \
                             RETURNING record_id",
                        )?
                        .query_map(params![subject, by], |row| row.get(0))?
                        .collect::<rusqlite::Result<_>>()?;
                    for id in vouched {
                        log.record("record.verified", RECORDS, &id, &r.producer, None)?;
                    }
                }
            }
            Ok(out)
        })
    }

    fn record(&self, id: &str) -> Result<Option<Record>> {
        let conn = self.conn()?;
        Ok(conn
            .query_row(
                &format!(
                    "SELECT {RECORD_COLUMNS} FROM records r JOIN blobs b ON b.digest = r.digest \
     LEFT JOIN record_verification v ON v.record_id = r.id WHERE r.id = ?1"
                ),
                params![id],
                record_from_row,
            )
            .optional()?)
    }

    fn records(&self, filter: &RecordFilter) -> Result<(Vec<Record>, Option<Cursor>)> {
        let conn = self.conn()?;
        let (clause, mut values) = filter_sql(filter);
        values.push(Value::Integer(filter.limit.min(i64::MAX as usize) as i64));
        let sql = format!(
            "SELECT {RECORD_COLUMNS}, r.seq FROM records r JOIN blobs b ON b.digest = r.digest \
     LEFT JOIN record_verification v ON v.record_id = r.id{clause} \
             ORDER BY r.seq DESC LIMIT ?"
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params_from_iter(values), |row| {
            Ok((
                record_from_row(row)?,
                row.get::<_, i64>(RECORD_COLUMN_COUNT)?,
            ))
        })?;
        let rows: Vec<(Record, i64)> = rows.collect::<rusqlite::Result<_>>()?;
        let next = (rows.len() == filter.limit && filter.limit > 0)
            .then(|| rows.last().map(|(_, seq)| Cursor(*seq)))
            .flatten();
        Ok((rows.into_iter().map(|(r, _)| r).collect(), next))
    }

    fn count_records(&self, filter: &RecordFilter) -> Result<u64> {
        let conn = self.conn()?;
        let (clause, values) = filter_sql(filter);
        let n: i64 = conn.query_row(
            &format!("SELECT count(*) FROM records r{clause}"),
            params_from_iter(values),
            |r| r.get(0),
        )?;
        Ok(n.max(0) as u64)
    }

    fn blob(&self, digest: &str) -> Result<Option<BlobRow>> {
        let conn = self.conn()?;
        Ok(conn
            .query_row(
                "SELECT digest, size, stored_size FROM blobs WHERE digest = ?1",
                params![digest],
                blob_from_row,
            )
            .optional()?)
    }

    fn blobs(&self) -> Result<Vec<BlobRow>> {
        let conn = self.conn()?;
        let mut stmt =
            conn.prepare("SELECT digest, size, stored_size FROM blobs ORDER BY digest")?;
        let rows = stmt.query_map([], blob_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn stats(&self) -> Result<IndexStats> {
        let conn = self.conn()?;
        let records: i64 = conn.query_row("SELECT count(*) FROM records", [], |r| r.get(0))?;
        let (blobs, bytes, stored): (i64, i64, i64) = conn.query_row(
            "SELECT count(*), coalesce(sum(size), 0), coalesce(sum(stored_size), 0) FROM blobs",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        Ok(IndexStats {
            records: records.max(0) as u64,
            blobs: blobs.max(0) as u64,
            bytes: bytes.max(0) as u64,
            stored_bytes: stored.max(0) as u64,
        })
    }
}

fn blob_from_row(row: &Row<'_>) -> rusqlite::Result<BlobRow> {
    Ok(BlobRow {
        digest: row.get(0)?,
        size: row.get::<_, i64>(1)?.max(0) as u64,
        stored_size: row.get::<_, i64>(2)?.max(0) as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Links, record_id};
    use evault_schema::{Format, Kind};

    #[test]
    fn a_snapshot_neither_blocks_changes_nor_sees_them() {
        use crate::auth::{Role, TokenInfo, TokenStore};
        let dir = tempfile::tempdir().unwrap();
        let index = SqliteIndex::open_with_new_log(&dir.path().join("index.db")).unwrap();
        let token = |name: &str| TokenInfo {
            name: name.into(),
            role: Role::Auditor,
            scopes: Vec::new(),
            created_at: "2026-11-22T00:00:00.000000Z".into(),
            created_by: "test".into(),
            expires_at: None,
            revoked_at: None,
            last_used_at: None,
        };
        index.insert_token(&token("before"), "aa").unwrap();
        let seen = index
            .snapshot(|snap| {
                let before = crate::log::size(snap)?;
                // A change while the snapshot is open commits at once (no deadlock, no wait)…
                index.insert_token(&token("during"), "bb")?;
                // …and the snapshot keeps seeing the log as it was.
                Ok((before, crate::log::size(snap)?))
            })
            .unwrap();
        assert_eq!(seen, (1, 1));
        let after = index.snapshot(crate::log::size).unwrap();
        assert_eq!(after, 2);
    }

    fn sample(digest: &str, run: &str) -> Record {
        let links = Links {
            blueprint: Blueprint {
                name: "checkout-api".into(),
                version: "1.4.2".into(),
            },
            git_sha: "ab".repeat(20),
            repo: None,
            run_id: Some(run.into()),
            environment: Some("staging".into()),
            subjects: vec![format!("sha256:{}", "e".repeat(64))],
        };
        Record {
            id: record_id(digest, Kind::Sbom, &links),
            kind: Kind::Sbom,
            format: Format::CyclonedxJson,
            format_version: Some("1.5".into()),
            predicate_type: None,
            digest: digest.into(),
            size: 10,
            blueprint: links.blueprint,
            git_sha: links.git_sha,
            repo: None,
            run_id: links.run_id,
            environment: links.environment,
            subjects: links.subjects,
            producer: "ci".into(),
            ingested_at: format_time(Utc::now()),
            source_path: "sbom.json".into(),
            verification: None,
            retention: None,
        }
    }

    #[test]
    fn migrations_apply_once_and_refuse_newer_schemas() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.db");
        SqliteIndex::open(&path, true).unwrap();
        SqliteIndex::open(&path, false).unwrap();
        let conn = Connection::open(&path).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM schema_migrations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, MIGRATIONS.len() as i64);
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        let err = SqliteIndex::open(&path, false).err().unwrap().to_string();
        assert!(err.contains("schema version 99"), "{err}");
    }

    #[test]
    fn push_is_idempotent_and_queries_filter() {
        let dir = tempfile::tempdir().unwrap();
        let index = SqliteIndex::open_with_new_log(&dir.path().join("index.db")).unwrap();
        let digest = format!("sha256:{}", "1".repeat(64));
        let blob = BlobRow {
            digest: digest.clone(),
            size: 10,
            stored_size: 9,
        };
        let a = sample(&digest, "1");
        let b = sample(&digest, "2");
        let first = index
            .commit_push(
                std::slice::from_ref(&blob),
                &[],
                std::slice::from_ref(&a),
                &[],
            )
            .unwrap();
        assert_eq!(first[0].1, Status::Created);
        let again = index
            .commit_push(
                std::slice::from_ref(&blob),
                &[],
                &[a.clone(), b.clone()],
                &[],
            )
            .unwrap();
        // Stored as pushed, with the retention the default policy gives an SBOM: one year.
        assert_eq!(first[0].0.retention, again[0].0.retention);
        let kept = first[0].0.retention.clone().unwrap();
        assert_eq!(kept.rule, "default: 1y");
        assert_eq!(
            &kept.retain_until[4..],
            &a.ingested_at[4..],
            "one year after ingestion"
        );
        assert_eq!(
            kept.retain_until[..4].parse::<i32>().unwrap(),
            a.ingested_at[..4].parse::<i32>().unwrap() + 1
        );
        let stored_a = Record {
            retention: Some(kept),
            ..a.clone()
        };
        assert_eq!(again[0], (stored_a.clone(), Status::Present));
        assert_eq!(again[1].1, Status::Created);
        assert_eq!(index.stats().unwrap().records, 2);
        assert_eq!(
            index.stats().unwrap().blobs,
            1,
            "two records share one blob"
        );

        let all = index
            .records(&RecordFilter {
                limit: 10,
                ..Default::default()
            })
            .unwrap()
            .0;
        assert_eq!(
            all.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            [&b.id, &a.id],
            "newest first"
        );
        let run1 = RecordFilter {
            run_id: Some("1".into()),
            limit: 10,
            ..Default::default()
        };
        assert_eq!(index.records(&run1).unwrap().0, vec![stored_a.clone()]);
        let by_prefix = RecordFilter {
            git_sha: Some("ababab1".into()),
            limit: 10,
            ..Default::default()
        };
        assert!(index.records(&by_prefix).unwrap().0.is_empty());
        let by_prefix = RecordFilter {
            git_sha: Some("abababa".into()),
            limit: 10,
            ..Default::default()
        };
        assert_eq!(index.records(&by_prefix).unwrap().0.len(), 2);
        let by_subject = RecordFilter {
            subject: Some(format!("sha256:{}", "e".repeat(64))),
            limit: 10,
            ..Default::default()
        };
        assert_eq!(index.count_records(&by_subject).unwrap(), 2);
        let by_id = RecordFilter {
            id_prefix: Some(a.id[..6].to_string()),
            limit: 5,
            ..Default::default()
        };
        assert_eq!(index.records(&by_id).unwrap().0, vec![stored_a]);
    }

    #[test]
    fn a_failed_transaction_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let index = SqliteIndex::open_with_new_log(&dir.path().join("index.db")).unwrap();
        let digest = format!("sha256:{}", "2".repeat(64));
        // The record's blob row is missing: the foreign key fails the whole push.
        let err = index.commit_push(&[], &[], &[sample(&digest, "1")], &[]);
        assert!(err.is_err());
        assert_eq!(index.stats().unwrap(), IndexStats::default());
        let conn = index.conn().unwrap();
        assert_eq!(
            crate::log::size(&conn).unwrap(),
            0,
            "no entry without its change"
        );
        let checkpoints: i64 = conn
            .query_row("SELECT count(*) FROM log_checkpoints", [], |r| r.get(0))
            .unwrap();
        assert_eq!(checkpoints, 1, "only the empty tree's");
    }

    #[test]
    fn every_change_appends_its_entries_and_a_checkpoint_or_nothing_happens() {
        let dir = tempfile::tempdir().unwrap();
        let index = SqliteIndex::open_with_new_log(&dir.path().join("index.db")).unwrap();
        let digest = format!("sha256:{}", "3".repeat(64));
        let blob = BlobRow {
            digest: digest.clone(),
            size: 10,
            stored_size: 9,
        };
        let a = sample(&digest, "1");
        index
            .commit_push(
                std::slice::from_ref(&blob),
                &[],
                std::slice::from_ref(&a),
                &[],
            )
            .unwrap();
        let conn = index.conn().unwrap();
        let entries: Vec<(String, String)> = conn
            .prepare("SELECT subject, entry FROM log_entries ORDER BY idx")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].0, format!("blob/{digest}"));
        assert_eq!(entries[1].0, format!("record/{}", a.id));
        let entry: serde_json::Value = serde_json::from_str(&entries[1].1).unwrap();
        assert_eq!(entry["type"], "record.ingested");
        assert_eq!(entry["state"]["git_sha"], a.git_sha.as_str());
        assert_eq!(entry["actor"], "ci");
        let latest = crate::log::latest_checkpoint(&conn).unwrap().unwrap();
        assert_eq!(latest.size, 2);
        drop(conn);

        // Without its signing key the index changes nothing.
        let path = dir.path().join("index.db");
        drop(index);
        let unsigned = SqliteIndex::open(&path, false).unwrap();
        unsigned.set_log_signer(Err("no key here".into()));
        let b = sample(&digest, "2");
        let err = unsigned
            .commit_push(
                std::slice::from_ref(&blob),
                &[],
                std::slice::from_ref(&b),
                &[],
            )
            .unwrap_err();
        assert!(err.to_string().contains("no key here"), "{err}");
        assert_eq!(unsigned.stats().unwrap().records, 1);
        assert_eq!(crate::log::size(&unsigned.conn().unwrap()).unwrap(), 2);
    }
}
