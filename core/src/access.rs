//! The access log: every read of evidence by a token (who, what, when, from where), kept for
//! access reviews ("who looked at the production SBOMs last quarter, and from where?").
//!
//! # Where it lives
//!
//! `<data-dir>/access.db`, a SQLite database of its own (WAL, `synchronous=NORMAL`), apart from
//! `index.db`: a flood of reads never takes, or waits for, the index's lock that pushes need.
//! One table, `access_events`, one row per event, `PRAGMA user_version = 1`:
//!
//! | column | meaning |
//! |---|---|
//! | `seq` | 1, 2, 3, … without gaps, in the order the events were appended |
//! | `at` | when the request arrived: RFC 3339, UTC, microseconds (`2026-03-03T10:00:00.000000Z`) |
//! | `token`, `role` | the token's name and role |
//! | `action` | `record.read`, `records.query`, `blob.read`, `blob.head`, `access.query`, … |
//! | `target` | the record id or blob digest asked for, or the query string of a listing |
//! | `remote` | the peer's `ip:port` (`NULL` when unknown) |
//! | `request_id` | the request's id (its `x-request-id`) |
//! | `status` | the HTTP status answered (refusals are events too) |
//! | `prev_hash`, `hash` | the chain, below |
//!
//! Text fields are cut at [`MAX_FIELD`] bytes (on a character boundary) before they are hashed.
//!
//! # Writing never slows the caller
//!
//! [`AccessLog::record`] only queues the event. One background thread (`evault-access-log`)
//! takes whatever is queued, at most [`MAX_BATCH`] events, and appends it in one `BEGIN
//! IMMEDIATE` transaction, numbering and chaining the events as it goes. It reads the head inside
//! that transaction, so even two processes appending to the same file still build one chain.
//!
//! The queue holds at most [`QUEUE_CAPACITY`] events, so memory is bounded. When it is full,
//! `record` waits for room: back-pressure falls on whoever produces events (readers), never on
//! anything else. Nothing is dropped silently: while the writer cannot write (disk full, file
//! made read-only), it retries the same batch, and `record` and `flush` fail at once with the
//! reason, so that the caller can refuse a read it cannot record. [`AccessLog::flush`] waits until
//! everything queued so far is committed; the last handle to go flushes too.
//!
//! `synchronous=NORMAL` means a committed event survives a crash of the process, but a power loss
//! may take the last transactions before the next WAL checkpoint: to the chain that looks like
//! the truncation described below.
//!
//! # The hash chain (how to recompute it)
//!
//! For each event, in `seq` order:
//!
//! ```text
//! hash = lowercase_hex( SHA-256( prev_hash || canonical_json ) )
//! ```
//!
//! - `prev_hash` is the 64 ASCII characters of the previous event's `hash` (the text, not the 32
//!   bytes it encodes); for event 1 it is 64 `0` characters ([`GENESIS_HASH`]).
//! - `canonical_json` is the UTF-8 JSON object of the event's other fields with its keys sorted
//!   (`action`, `at`, `remote`, `request_id`, `role`, `seq`, `status`, `target`, `token`), no
//!   whitespace, integers as integers, `remote` as `null` when unknown, non-ASCII characters as
//!   themselves and control characters escaped as `\n`, `\u001f`, …: RFC 8785 (JCS) for these
//!   values. For example:
//!
//! ```text
//! {"action":"record.read","at":"2026-03-03T10:00:00.000000Z","remote":"10.0.0.7:51234","request_id":"6f1c0c7e9b2a4d55","role":"auditor","seq":1,"status":200,"target":"4f2a0c1e9b7d3a5c8e6f0b1d2c3a4e5f","token":"alice"}
//! ```
//!
//! In Python: `json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`
//! over the nine fields, then `hashlib.sha256((prev_hash + that).encode()).hexdigest()`.
//!
//! # What the chain detects, and what it cannot
//!
//! [`AccessLog::verify_chain`] recomputes every hash in one streaming pass. It finds an event
//! whose contents were edited (its hash no longer matches), an edited hash or `prev_hash` (the
//! link to the previous event breaks), and events deleted before the last one (a gap in `seq`).
//!
//! A chain alone cannot see the **truncation of its tail**: deleting the last events, or
//! rewriting an event and recomputing every hash after it, leaves a chain that verifies. Only a
//! copy of the head (`seq` and `hash`, see [`AccessLog::head`]) kept elsewhere shows it: an
//! auditor who noted the head at a review sees it missing or changed at the next. Anchoring the
//! head in the vault's Merkle log will do that continuously.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::auth::Role;
use crate::error::{Error, Result};
use crate::record::format_time;

/// The access log's file in a vault's data directory.
pub const FILE_NAME: &str = "access.db";

/// The `prev_hash` of event 1.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Events queued and not yet taken by the writer, at most.
pub const QUEUE_CAPACITY: usize = 4096;

/// Events appended in one transaction, at most.
pub const MAX_BATCH: usize = 1024;

/// Longest text field, in bytes; longer ones are cut (at a character boundary) and end in `…`.
pub const MAX_FIELD: usize = 1024;

/// Largest page [`AccessLog::query`] returns.
pub const MAX_PAGE: usize = 10_000;

/// Problems [`AccessLog::verify_chain`] lists one by one; beyond that they are counted.
pub const MAX_PROBLEMS: usize = 1000;

/// The schema version this build writes.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS access_events (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    token TEXT NOT NULL,
    role TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    remote TEXT,
    request_id TEXT NOT NULL,
    status INTEGER NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS access_events_at ON access_events (at);
CREATE INDEX IF NOT EXISTS access_events_token ON access_events (token, seq);
";

const COLUMNS: &str =
    "seq, at, token, role, action, target, remote, request_id, status, prev_hash, hash";

/// Longest pause between two attempts of a batch the writer could not append.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Attempts at a failing batch once the log is closing, before its events are given up (and
/// [`AccessLog::flush`] has said so).
const ATTEMPTS_WHEN_CLOSING: u32 = 4;

/// How long SQLite waits for another connection's lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// One access, as the caller reports it; the writer numbers and chains it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessEntry {
    /// When the request arrived.
    pub at: DateTime<Utc>,
    /// The token's name.
    pub token: String,
    pub role: Role,
    /// What was done: `record.read`, `records.query`, `blob.read`, `blob.head`, ….
    pub action: String,
    /// The record id or blob digest asked for, or the query string of a listing.
    pub target: String,
    /// The peer's `ip:port`, when known.
    pub remote: Option<String>,
    pub request_id: String,
    /// The HTTP status answered.
    pub status: u16,
}

/// One event as stored: an [`AccessEntry`] with its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessEvent {
    pub seq: u64,
    /// RFC 3339, UTC, microseconds.
    pub at: String,
    pub token: String,
    pub role: String,
    pub action: String,
    pub target: String,
    pub remote: Option<String>,
    pub request_id: String,
    pub status: u16,
    /// The previous event's `hash` ([`GENESIS_HASH`] for event 1).
    pub prev_hash: String,
    /// See the module documentation for how it is computed.
    pub hash: String,
}

impl AccessEvent {
    /// The canonical JSON the hash covers (see the module documentation).
    pub fn canonical_json(&self) -> String {
        self.fields().canonical_json()
    }

    /// The hash this event's contents and `prev_hash` give.
    pub fn expected_hash(&self) -> String {
        chain_hash(&self.prev_hash, &self.canonical_json())
    }

    fn fields(&self) -> Fields<'_> {
        Fields {
            action: &self.action,
            at: &self.at,
            remote: self.remote.as_deref(),
            request_id: &self.request_id,
            role: &self.role,
            seq: i64::try_from(self.seq).unwrap_or(i64::MAX),
            status: i64::from(self.status),
            target: &self.target,
            token: &self.token,
        }
    }
}

/// The hashed fields, declared in the canonical (sorted) key order: a struct serialises its
/// fields in declaration order whatever features `serde_json` is built with.
#[derive(Serialize)]
struct Fields<'a> {
    action: &'a str,
    at: &'a str,
    remote: Option<&'a str>,
    request_id: &'a str,
    role: &'a str,
    seq: i64,
    status: i64,
    target: &'a str,
    token: &'a str,
}

impl Fields<'_> {
    fn canonical_json(&self) -> String {
        // Strings, integers and an optional string always serialise.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// `hex(SHA-256(prev_hash || canonical_json))`.
fn chain_hash(prev_hash: &str, canonical_json: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(canonical_json.as_bytes());
    hex::encode(hasher.finalize())
}

/// Which events [`AccessLog::query`] returns (every field narrows; `None` means any).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessFilter {
    /// At or after.
    pub since: Option<DateTime<Utc>>,
    /// Before.
    pub until: Option<DateTime<Utc>>,
    /// Events of this token name.
    pub token: Option<String>,
    /// Events of this action.
    pub action: Option<String>,
    /// At most this many (1 to [`MAX_PAGE`]; larger values are taken as [`MAX_PAGE`]).
    pub limit: usize,
    /// Only events after this `seq` (the last `seq` of the previous page).
    pub after_seq: Option<u64>,
}

/// What [`AccessLog::verify_chain`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessChainReport {
    /// Events read.
    pub events: u64,
    /// `seq` and `hash` of the last event: keep it elsewhere to detect a truncated tail later.
    pub head: Option<(u64, String)>,
    /// One line per problem, naming the event (at most [`MAX_PROBLEMS`], then a count).
    pub problems: Vec<String>,
}

/// What [`AccessLog::try_record`] did.
#[derive(Debug)]
pub enum TryRecord {
    /// The event is queued.
    Queued,
    /// The queue is full; the event is handed back (send it with [`AccessLog::record`], which
    /// waits for room).
    Full(AccessEntry),
}

/// The access log of one vault. Cheap to clone (one `Arc`), `Send + Sync`; every clone feeds
/// the same writer, which flushes and stops when the last clone is dropped.
#[derive(Clone)]
pub struct AccessLog {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

struct Inner {
    path: PathBuf,
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

/// What the handles and the writer thread share.
struct Shared {
    state: Mutex<State>,
    /// The writer waits here for events.
    not_empty: Condvar,
    /// Senders wait here for room, or for the writer's failure.
    not_full: Condvar,
    /// `flush` waits here for the writer's progress.
    progress: Condvar,
}

#[derive(Default)]
struct State {
    queue: VecDeque<AccessEntry>,
    /// Events accepted since the log was opened.
    accepted: u64,
    /// Events committed since the log was opened.
    written: u64,
    /// Events given up at close because they could not be written.
    lost: u64,
    /// Why the last append failed; cleared by the next that succeeds.
    failure: Option<String>,
    /// The last handle is gone: write what is queued, then stop.
    closing: bool,
    /// The writer thread has ended.
    stopped: bool,
}

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    // The state stays consistent under every panic (there is none), so a poisoned lock is used.
    shared.state.lock().unwrap_or_else(|e| e.into_inner())
}

fn wait<'a>(condvar: &Condvar, guard: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
    condvar.wait(guard).unwrap_or_else(|e| e.into_inner())
}

/// An error of the access log's database, naming the file.
fn db_error(path: &Path, action: &str) -> impl FnOnce(rusqlite::Error) -> Error {
    let context = format!("{action} the access log {}", path.display());
    move |e| Error::io(context, io::Error::other(e))
}

impl AccessLog {
    /// Opens `<data_dir>/access.db`, creating the file and its schema if missing, and starts the
    /// writer thread.
    pub fn open(data_dir: &Path) -> Result<AccessLog> {
        let path = data_dir.join(FILE_NAME);
        let conn = open_connection(&path, false)?;
        migrate(&conn, &path)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
            progress: Condvar::new(),
        });
        let writer = {
            let shared = Arc::clone(&shared);
            let path = path.clone();
            std::thread::Builder::new()
                .name("evault-access-log".into())
                .spawn(move || run_writer(&shared, conn, &path))
                .map_err(|e| Error::io("cannot start the access log's writer thread", e))?
        };
        Ok(AccessLog {
            inner: Arc::new(Inner {
                path,
                shared,
                writer: Mutex::new(Some(writer)),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Queues an event, waiting while the queue is full. Fails at once, with the reason, while
    /// the writer cannot write: the event is then not recorded.
    pub fn record(&self, entry: AccessEntry) -> Result<()> {
        let shared = &self.inner.shared;
        let mut state = lock(shared);
        loop {
            refuse_if_broken(&state)?;
            if state.queue.len() < QUEUE_CAPACITY {
                enqueue(shared, &mut state, entry);
                return Ok(());
            }
            state = wait(&shared.not_full, state);
        }
    }

    /// Queues an event unless the queue is full (then the event comes back, for
    /// [`AccessLog::record`]). Never waits, so it may be called on an async thread.
    pub fn try_record(&self, entry: AccessEntry) -> Result<TryRecord> {
        let shared = &self.inner.shared;
        let mut state = lock(shared);
        refuse_if_broken(&state)?;
        if state.queue.len() < QUEUE_CAPACITY {
            enqueue(shared, &mut state, entry);
            Ok(TryRecord::Queued)
        } else {
            Ok(TryRecord::Full(entry))
        }
    }

    /// Waits until every event queued before the call is committed.
    pub fn flush(&self) -> Result<()> {
        let shared = &self.inner.shared;
        let mut state = lock(shared);
        let target = state.accepted;
        loop {
            if state.written >= target {
                return Ok(());
            }
            refuse_if_broken(&state)?;
            state = wait(&shared.progress, state);
        }
    }

    /// The last event's `seq` and `hash`; `None` while the log is empty.
    pub fn head(&self) -> Result<Option<(u64, String)>> {
        let conn = open_connection(&self.inner.path, true)?;
        read_head(&conn).map_err(db_error(&self.inner.path, "cannot read"))
    }

    /// Events matching `filter`, oldest first.
    pub fn query(&self, filter: &AccessFilter) -> Result<Vec<AccessEvent>> {
        if filter.limit == 0 {
            return Err(Error::Invalid(
                "an access log query needs a limit of at least 1".into(),
            ));
        }
        let path = &self.inner.path;
        let conn = open_connection(path, true)?;
        let after = filter
            .after_seq
            .map_or(0, |s| i64::try_from(s).unwrap_or(i64::MAX));
        let mut sql = format!("SELECT {COLUMNS} FROM access_events WHERE seq > ?1");
        let mut values = vec![Value::Integer(after)];
        let mut condition = |sql: &mut String, clause: &str, value: Value| {
            values.push(value);
            let _ = write!(sql, " AND {clause} ?{}", values.len());
        };
        if let Some(since) = filter.since {
            condition(&mut sql, "at >=", Value::Text(format_time(since)));
        }
        if let Some(until) = filter.until {
            condition(&mut sql, "at <", Value::Text(format_time(until)));
        }
        if let Some(token) = &filter.token {
            condition(&mut sql, "token =", Value::Text(token.clone()));
        }
        if let Some(action) = &filter.action {
            condition(&mut sql, "action =", Value::Text(action.clone()));
        }
        let limit = filter.limit.min(MAX_PAGE);
        let _ = write!(sql, " ORDER BY seq LIMIT {limit}");
        let read = || -> rusqlite::Result<Vec<AccessEvent>> {
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(values.iter()), event_from_row)?;
            rows.collect()
        };
        read().map_err(db_error(path, "cannot read"))
    }

    /// Recomputes the whole chain in one streaming pass (constant memory), calling
    /// `progress(events checked, events in all)` now and then. Problems are reported, not
    /// returned as errors; an error means the file could not be read.
    pub fn verify_chain(&self, progress: &mut dyn FnMut(u64, u64)) -> Result<AccessChainReport> {
        verify_file(&self.inner.path, progress)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        {
            let mut state = lock(&self.shared);
            state.closing = true;
        }
        self.shared.not_empty.notify_all();
        let writer = self
            .writer
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(writer) = writer {
            // The writer ends once the queue is written (or given up after a few attempts).
            let _ = writer.join();
        }
    }
}

fn refuse_if_broken(state: &State) -> Result<()> {
    if let Some(failure) = &state.failure {
        return Err(Error::io(
            "the access log cannot be written",
            io::Error::other(failure.clone()),
        ));
    }
    if state.stopped || state.closing {
        return Err(Error::Internal("the access log is closed".into()));
    }
    Ok(())
}

fn enqueue(shared: &Shared, state: &mut State, mut entry: AccessEntry) {
    for field in [
        &mut entry.token,
        &mut entry.action,
        &mut entry.target,
        &mut entry.request_id,
    ] {
        bound(field);
    }
    if let Some(remote) = &mut entry.remote {
        bound(remote);
    }
    state.queue.push_back(entry);
    state.accepted += 1;
    shared.not_empty.notify_one();
}

/// Cuts `s` to at most [`MAX_FIELD`] bytes, at a character boundary, ending in `…`.
fn bound(s: &mut String) {
    if s.len() <= MAX_FIELD {
        return;
    }
    let mut end = MAX_FIELD - '…'.len_utf8();
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push('…');
}

fn open_connection(path: &Path, read_only: bool) -> Result<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let open = || -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(path, flags)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        if !read_only {
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
        }
        Ok(conn)
    };
    open().map_err(db_error(path, "cannot open"))
}

fn migrate(conn: &Connection, path: &Path) -> Result<()> {
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(db_error(path, "cannot read"))?;
    match version {
        SCHEMA_VERSION => Ok(()),
        0 => {
            let create = || -> rusqlite::Result<()> {
                conn.execute_batch(&format!(
                    "BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
                ))
            };
            create().map_err(|e| {
                let _ = conn.execute_batch("ROLLBACK");
                db_error(path, "cannot create")(e)
            })
        }
        newer => Err(Error::Invalid(format!(
            "the access log {} has schema version {newer}, newer than this evault knows \
             ({SCHEMA_VERSION}): upgrade evault",
            path.display()
        ))),
    }
}

fn read_head(conn: &Connection) -> rusqlite::Result<Option<(u64, String)>> {
    conn.query_row(
        "SELECT seq, hash FROM access_events ORDER BY seq DESC LIMIT 1",
        [],
        |row| Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?)),
    )
    .optional()
    .map(|head| head.map(|(seq, hash)| (u64::try_from(seq).unwrap_or(0), hash)))
}

fn event_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<AccessEvent> {
    let seq: i64 = row.get(0)?;
    let status: i64 = row.get(8)?;
    let out_of_range = |i: usize, what: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Integer,
            format!("access event {seq}: {what} out of range").into(),
        )
    };
    Ok(AccessEvent {
        seq: u64::try_from(seq).map_err(|_| out_of_range(0, "seq"))?,
        at: row.get(1)?,
        token: row.get(2)?,
        role: row.get(3)?,
        action: row.get(4)?,
        target: row.get(5)?,
        remote: row.get(6)?,
        request_id: row.get(7)?,
        status: u16::try_from(status).map_err(|_| out_of_range(8, "status"))?,
        prev_hash: row.get(9)?,
        hash: row.get(10)?,
    })
}

/// Appends `batch` in one transaction, continuing the chain from the stored head.
fn append(conn: &mut Connection, batch: &[AccessEntry]) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let (mut seq, mut prev_hash) = match read_head(&tx)? {
        Some((seq, hash)) => (seq, hash),
        None => (0, GENESIS_HASH.to_string()),
    };
    {
        let mut insert = tx.prepare_cached(&format!(
            "INSERT INTO access_events ({COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
        ))?;
        for entry in batch {
            seq += 1;
            let mut event = AccessEvent {
                seq,
                at: format_time(entry.at),
                token: entry.token.clone(),
                role: entry.role.as_str().to_string(),
                action: entry.action.clone(),
                target: entry.target.clone(),
                remote: entry.remote.clone(),
                request_id: entry.request_id.clone(),
                status: entry.status,
                prev_hash,
                hash: String::new(),
            };
            event.hash = event.expected_hash();
            insert.execute(params![
                i64::try_from(event.seq).unwrap_or(i64::MAX),
                event.at,
                event.token,
                event.role,
                event.action,
                event.target,
                event.remote,
                event.request_id,
                event.status,
                event.prev_hash,
                event.hash,
            ])?;
            prev_hash = event.hash;
        }
    }
    tx.commit()
}

/// The writer thread: takes what is queued, appends it, retries a failing batch with a growing
/// pause, and ends once the log is closing and the queue is empty.
fn run_writer(shared: &Shared, mut conn: Connection, path: &Path) {
    /// Marks the writer stopped however it ends, so that no sender or flusher waits forever.
    struct Stopped<'a>(&'a Shared);
    impl Drop for Stopped<'_> {
        fn drop(&mut self) {
            lock(self.0).stopped = true;
            self.0.not_full.notify_all();
            self.0.progress.notify_all();
        }
    }
    let _stopped = Stopped(shared);

    let mut batch: Vec<AccessEntry> = Vec::with_capacity(MAX_BATCH);
    loop {
        {
            let mut state = lock(shared);
            while state.queue.is_empty() && !state.closing {
                state = wait(&shared.not_empty, state);
            }
            if state.queue.is_empty() {
                return;
            }
            let n = state.queue.len().min(MAX_BATCH);
            batch.extend(state.queue.drain(..n));
            shared.not_full.notify_all();
        }
        let mut attempts = 0u32;
        let mut pause = Duration::from_millis(25);
        loop {
            let outcome = append(&mut conn, &batch);
            let mut state = lock(shared);
            match outcome {
                Ok(()) => {
                    state.written += batch.len() as u64;
                    state.failure = None;
                    shared.progress.notify_all();
                    break;
                }
                Err(e) => {
                    attempts += 1;
                    state.failure = Some(format!(
                        "cannot append to {}: {e} ({} event(s) waiting)",
                        path.display(),
                        batch.len() + state.queue.len()
                    ));
                    shared.progress.notify_all();
                    shared.not_full.notify_all();
                    if state.closing && attempts >= ATTEMPTS_WHEN_CLOSING {
                        state.lost += batch.len() as u64;
                        break;
                    }
                }
            }
            drop(state);
            std::thread::sleep(pause);
            pause = (pause * 2).min(MAX_BACKOFF);
        }
        batch.clear();
    }
}

/// The hash chain of the access log at `path`, checked in one streaming pass (see
/// [`AccessLog::verify_chain`]).
pub fn verify_file(path: &Path, progress: &mut dyn FnMut(u64, u64)) -> Result<AccessChainReport> {
    let mut conn = open_connection(path, true)?;
    let mut report = AccessChainReport::default();
    let mut more_problems = 0u64;
    let mut check = || -> rusqlite::Result<()> {
        // One read transaction: a consistent snapshot even while a writer appends.
        let tx = conn.transaction()?;
        let total: i64 = tx.query_row("SELECT count(*) FROM access_events", [], |r| r.get(0))?;
        let total = u64::try_from(total).unwrap_or(0);
        progress(0, total);
        let mut stmt = tx.prepare(&format!("SELECT {COLUMNS} FROM access_events ORDER BY seq"))?;
        let mut rows = stmt.query([])?;
        let mut problem = |text: String| {
            if report.problems.len() < MAX_PROBLEMS {
                report.problems.push(text);
            } else {
                more_problems += 1;
            }
        };
        // The previous row's seq and stored hash (None before the first row, or when unreadable).
        let mut previous: Option<(i64, Option<String>)> = None;
        let mut events = 0u64;
        let mut head = None;
        while let Some(row) = rows.next()? {
            let seq: i64 = row.get(0)?;
            let expected_seq = previous.as_ref().map_or(1, |(s, _)| s + 1);
            let contiguous = seq == expected_seq;
            if seq > expected_seq {
                problem(if seq - 1 == expected_seq {
                    format!("access event {expected_seq} is missing (deleted?)")
                } else {
                    format!(
                        "access events {expected_seq}–{} are missing (deleted?)",
                        seq - 1
                    )
                });
            } else if seq < expected_seq {
                // Only a seq below 1 can get here (the column is the primary key).
                problem(format!("access event {seq}: seq is not a positive number"));
            }
            let fields = RawRow::read(row);
            for wrong in &fields.wrong {
                problem(format!("access event {seq}: {wrong} (edited?)"));
            }
            if let Some(prev_hash) = fields.prev_hash {
                if contiguous {
                    match &previous {
                        None if prev_hash != GENESIS_HASH => problem(format!(
                            "access event {seq}: prev_hash is not the genesis value \
                             (64 zeros) that event 1 chains to"
                        )),
                        Some((p, Some(hash))) if prev_hash != hash => problem(format!(
                            "access event {seq}: prev_hash does not chain to event {p}"
                        )),
                        _ => {}
                    }
                }
                if let (Some(f), Some(hash)) = (fields.hashed(seq), fields.hash)
                    && chain_hash(prev_hash, &f.canonical_json()) != hash
                {
                    problem(format!(
                        "access event {seq}: hash does not match its contents (edited?)"
                    ));
                }
            }
            events += 1;
            if events.is_multiple_of(1024) {
                progress(events, total.max(events));
            }
            let hash = fields.hash.map(str::to_string);
            head = Some((
                u64::try_from(seq).unwrap_or(0),
                hash.clone().unwrap_or_default(),
            ));
            previous = Some((seq, hash));
        }
        report.events = events;
        report.head = head;
        progress(events, total.max(events));
        Ok(())
    };
    check().map_err(db_error(path, "cannot read"))?;
    if more_problems > 0 {
        report
            .problems
            .push(format!("… and {more_problems} more problem(s)"));
    }
    Ok(report)
}

/// A stored row read leniently, for verification: a value of the wrong type is a finding, not
/// an error.
struct RawRow<'a> {
    at: Option<&'a str>,
    token: Option<&'a str>,
    role: Option<&'a str>,
    action: Option<&'a str>,
    target: Option<&'a str>,
    remote: Option<Option<&'a str>>,
    request_id: Option<&'a str>,
    status: Option<i64>,
    prev_hash: Option<&'a str>,
    hash: Option<&'a str>,
    /// What is of the wrong type.
    wrong: Vec<String>,
}

impl<'a> RawRow<'a> {
    fn read(row: &'a rusqlite::Row<'a>) -> RawRow<'a> {
        let mut wrong = Vec::new();
        let mut text = |i: usize, name: &str| -> Option<&'a str> {
            match row.get_ref(i) {
                Ok(ValueRef::Text(t)) => match std::str::from_utf8(t) {
                    Ok(s) => Some(s),
                    Err(_) => {
                        wrong.push(format!("{name} is not UTF-8 text"));
                        None
                    }
                },
                _ => {
                    wrong.push(format!("{name} is not text"));
                    None
                }
            }
        };
        let at = text(1, "at");
        let token = text(2, "token");
        let role = text(3, "role");
        let action = text(4, "action");
        let target = text(5, "target");
        let request_id = text(7, "request_id");
        let prev_hash = text(9, "prev_hash");
        let hash = text(10, "hash");
        let remote = match row.get_ref(6) {
            Ok(ValueRef::Null) => Some(None),
            Ok(ValueRef::Text(t)) => std::str::from_utf8(t).ok().map(Some),
            _ => None,
        };
        if remote.is_none() {
            wrong.push("remote is neither text nor null".into());
        }
        let status = match row.get_ref(8) {
            Ok(ValueRef::Integer(n)) if u16::try_from(n).is_ok() => Some(n),
            _ => None,
        };
        if status.is_none() {
            wrong.push("status is not an HTTP status code".into());
        }
        RawRow {
            at,
            token,
            role,
            action,
            target,
            remote,
            request_id,
            status,
            prev_hash,
            hash,
            wrong,
        }
    }

    /// The hashed fields, if all could be read.
    fn hashed(&self, seq: i64) -> Option<Fields<'a>> {
        Some(Fields {
            action: self.action?,
            at: self.at?,
            remote: self.remote?,
            request_id: self.request_id?,
            role: self.role?,
            seq,
            status: self.status?,
            target: self.target?,
            token: self.token?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(token: &str, action: &str, target: &str, status: u16) -> AccessEntry {
        AccessEntry {
            at: Utc::now(),
            token: token.into(),
            role: Role::Auditor,
            action: action.into(),
            target: target.into(),
            remote: Some("127.0.0.1:50000".into()),
            request_id: "0123456789abcdef".into(),
            status,
        }
    }

    /// A log in a fresh directory holding `n` events, flushed.
    fn log_with(n: usize) -> (tempfile::TempDir, AccessLog) {
        let dir = tempfile::tempdir().unwrap();
        let log = AccessLog::open(dir.path()).unwrap();
        for i in 0..n {
            let token = if i % 2 == 0 { "alice" } else { "bob" };
            log.record(entry(token, "record.read", &format!("r{i}"), 200))
                .unwrap();
        }
        log.flush().unwrap();
        (dir, log)
    }

    fn all(log: &AccessLog) -> Vec<AccessEvent> {
        log.query(&AccessFilter {
            limit: MAX_PAGE,
            ..AccessFilter::default()
        })
        .unwrap()
    }

    fn verify(log: &AccessLog) -> AccessChainReport {
        log.verify_chain(&mut |_, _| {}).unwrap()
    }

    /// A second connection to the log's file, as someone tampering with it would use.
    fn tamper(log: &AccessLog, sql: &str) {
        let conn = Connection::open(log.path()).unwrap();
        conn.busy_timeout(BUSY_TIMEOUT).unwrap();
        conn.execute_batch(sql).unwrap();
    }

    #[test]
    fn the_handle_is_cheap_to_share_between_threads() {
        fn shareable<T: Send + Sync + Clone + 'static>() {}
        shareable::<AccessLog>();
    }

    #[test]
    fn the_chain_is_recomputable_from_the_documented_recipe() {
        let (_dir, log) = log_with(3);
        let events = all(&log);
        assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
        let mut prev = "0".repeat(64);
        for e in &events {
            assert_eq!(e.prev_hash, prev, "event {}", e.seq);
            // The recipe of the module documentation, spelled out independently.
            let json = format!(
                "{{\"action\":\"{}\",\"at\":\"{}\",\"remote\":\"{}\",\"request_id\":\"{}\",\
                 \"role\":\"{}\",\"seq\":{},\"status\":{},\"target\":\"{}\",\"token\":\"{}\"}}",
                e.action,
                e.at,
                e.remote.as_deref().unwrap(),
                e.request_id,
                e.role,
                e.seq,
                e.status,
                e.target,
                e.token
            );
            assert_eq!(e.canonical_json(), json);
            let hash = hex::encode(Sha256::digest(format!("{prev}{json}").as_bytes()));
            assert_eq!(e.hash, hash, "event {}", e.seq);
            prev = hash;
        }
        assert_eq!(events[0].role, "auditor");
        assert_eq!(events[1].token, "bob");
        assert_eq!(
            log.head().unwrap(),
            Some((3, events[2].hash.clone())),
            "the head is the last event"
        );
        let report = verify(&log);
        assert_eq!(report.events, 3);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(report.head, log.head().unwrap());
    }

    #[test]
    fn the_documented_example_hashes_as_documented() {
        let event = AccessEvent {
            seq: 1,
            at: "2026-03-03T10:00:00.000000Z".into(),
            token: "alice".into(),
            role: "auditor".into(),
            action: "record.read".into(),
            target: "4f2a0c1e9b7d3a5c8e6f0b1d2c3a4e5f".into(),
            remote: Some("10.0.0.7:51234".into()),
            request_id: "6f1c0c7e9b2a4d55".into(),
            status: 200,
            prev_hash: GENESIS_HASH.into(),
            hash: String::new(),
        };
        assert_eq!(
            event.canonical_json(),
            "{\"action\":\"record.read\",\"at\":\"2026-03-03T10:00:00.000000Z\",\
             \"remote\":\"10.0.0.7:51234\",\"request_id\":\"6f1c0c7e9b2a4d55\",\
             \"role\":\"auditor\",\"seq\":1,\"status\":200,\
             \"target\":\"4f2a0c1e9b7d3a5c8e6f0b1d2c3a4e5f\",\"token\":\"alice\"}"
        );
        let mut unknown = event.clone();
        unknown.remote = None;
        unknown.target = "blueprint=a b&x=\"q\"\n".into();
        assert!(
            unknown
                .canonical_json()
                .contains("\"remote\":null,\"request_id\""),
            "{}",
            unknown.canonical_json()
        );
        assert!(
            unknown
                .canonical_json()
                .contains("\"target\":\"blueprint=a b&x=\\\"q\\\"\\n\""),
            "{}",
            unknown.canonical_json()
        );
        assert_eq!(GENESIS_HASH.len(), 64);
        assert!(GENESIS_HASH.bytes().all(|b| b == b'0'));
    }

    #[test]
    fn editing_any_column_of_a_row_is_reported_with_its_seq() {
        for (column, value, needle) in [
            (
                "at",
                "'2020-01-01T00:00:00.000000Z'",
                "access event 3: hash",
            ),
            ("token", "'mallory'", "access event 3: hash"),
            ("role", "'admin'", "access event 3: hash"),
            ("action", "'blob.head'", "access event 3: hash"),
            ("target", "'somewhere-else'", "access event 3: hash"),
            ("remote", "NULL", "access event 3: hash"),
            ("request_id", "'forged'", "access event 3: hash"),
            ("status", "404", "access event 3: hash"),
            ("status", "'ok'", "access event 3: status is not"),
            (
                "prev_hash",
                "'00'",
                "access event 3: prev_hash does not chain to event 2",
            ),
            (
                "hash",
                "'ab'",
                "access event 4: prev_hash does not chain to event 3",
            ),
            ("token", "x'00ff'", "access event 3: token is not text"),
        ] {
            let (_dir, log) = log_with(5);
            tamper(
                &log,
                &format!("UPDATE access_events SET {column} = {value} WHERE seq = 3"),
            );
            let report = verify(&log);
            assert!(
                report.problems.iter().any(|p| p.starts_with(needle)),
                "{column} = {value}: {:?}",
                report.problems
            );
            assert_eq!(report.events, 5);
        }
    }

    #[test]
    fn an_edit_whose_hash_is_recomputed_breaks_the_next_link() {
        let (_dir, log) = log_with(5);
        let mut third = all(&log).remove(2);
        third.token = "mallory".into();
        let hash = third.expected_hash();
        tamper(
            &log,
            &format!("UPDATE access_events SET token = 'mallory', hash = '{hash}' WHERE seq = 3"),
        );
        assert_eq!(
            verify(&log).problems,
            ["access event 4: prev_hash does not chain to event 3"]
        );
    }

    #[test]
    fn deleted_rows_are_reported_as_missing() {
        let (_dir, log) = log_with(6);
        tamper(&log, "DELETE FROM access_events WHERE seq = 3");
        assert_eq!(
            verify(&log).problems,
            ["access event 3 is missing (deleted?)"]
        );
        tamper(&log, "DELETE FROM access_events WHERE seq IN (4, 5)");
        assert_eq!(
            verify(&log).problems,
            ["access events 3–5 are missing (deleted?)"]
        );
        tamper(&log, "DELETE FROM access_events WHERE seq = 1");
        assert_eq!(
            verify(&log).problems,
            [
                "access event 1 is missing (deleted?)",
                "access events 3–5 are missing (deleted?)"
            ]
        );
    }

    #[test]
    fn a_truncated_or_rechained_tail_verifies_and_only_a_kept_head_shows_it() {
        let (_dir, log) = log_with(5);
        let kept = log.head().unwrap().unwrap();

        // Deleting the last row: the chain alone cannot tell.
        tamper(&log, "DELETE FROM access_events WHERE seq = 5");
        let report = verify(&log);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(report.head.as_ref().map(|h| h.0), Some(4));
        assert_ne!(report.head, Some(kept.clone()), "the kept head shows it");

        // New events continue the truncated chain, which still verifies.
        log.record(entry("carol", "blob.read", "sha256:00", 200))
            .unwrap();
        log.flush().unwrap();
        let report = verify(&log);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        let head = report.head.unwrap();
        assert_eq!(head.0, 5);
        assert_ne!(head.1, kept.1, "the kept head's hash is no longer there");

        // Rewriting an event and recomputing every hash after it: also invisible to the chain.
        let mut events = all(&log);
        events[1].target = "rewritten".into();
        let mut prev = events[0].hash.clone();
        let mut sql = String::new();
        for e in &mut events[1..] {
            e.prev_hash = prev;
            e.hash = e.expected_hash();
            prev = e.hash.clone();
            sql.push_str(&format!(
                "UPDATE access_events SET target = '{}', prev_hash = '{}', hash = '{}' \
                 WHERE seq = {};",
                e.target, e.prev_hash, e.hash, e.seq
            ));
        }
        tamper(&log, &sql);
        let report = verify(&log);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_ne!(report.head.unwrap().1, head.1);
    }

    #[test]
    fn queries_filter_by_time_token_and_action_and_page_by_seq() {
        let dir = tempfile::tempdir().unwrap();
        let log = AccessLog::open(dir.path()).unwrap();
        let t0 = DateTime::parse_from_rfc3339("2026-03-03T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        for (i, (token, action)) in [
            ("alice", "record.read"),
            ("bob", "blob.read"),
            ("alice", "blob.read"),
            ("bob", "records.query"),
            ("alice", "record.read"),
        ]
        .into_iter()
        .enumerate()
        {
            let mut e = entry(token, action, &format!("t{i}"), 200);
            e.at = t0 + chrono::Duration::minutes(i as i64);
            log.record(e).unwrap();
        }
        log.flush().unwrap();
        let seqs = |filter: AccessFilter| -> Vec<u64> {
            log.query(&AccessFilter {
                limit: if filter.limit == 0 { 100 } else { filter.limit },
                ..filter
            })
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect()
        };
        assert_eq!(seqs(AccessFilter::default()), [1, 2, 3, 4, 5]);
        assert_eq!(
            seqs(AccessFilter {
                token: Some("alice".into()),
                ..AccessFilter::default()
            }),
            [1, 3, 5]
        );
        assert_eq!(
            seqs(AccessFilter {
                action: Some("blob.read".into()),
                ..AccessFilter::default()
            }),
            [2, 3]
        );
        assert_eq!(
            seqs(AccessFilter {
                since: Some(t0 + chrono::Duration::minutes(1)),
                until: Some(t0 + chrono::Duration::minutes(3)),
                ..AccessFilter::default()
            }),
            [2, 3],
            "since is inclusive, until exclusive"
        );
        assert_eq!(
            seqs(AccessFilter {
                limit: 2,
                after_seq: Some(2),
                ..AccessFilter::default()
            }),
            [3, 4]
        );
        assert_eq!(
            seqs(AccessFilter {
                after_seq: Some(u64::MAX),
                ..AccessFilter::default()
            }),
            Vec::<u64>::new()
        );
        assert!(matches!(
            log.query(&AccessFilter::default()),
            Err(Error::Invalid(_))
        ));
    }

    #[test]
    fn more_events_than_the_queue_holds_from_many_threads_are_all_chained() {
        let dir = tempfile::tempdir().unwrap();
        let log = AccessLog::open(dir.path()).unwrap();
        let threads = 8;
        let per_thread = QUEUE_CAPACITY;
        std::thread::scope(|s| {
            for t in 0..threads {
                let log = log.clone();
                s.spawn(move || {
                    for i in 0..per_thread {
                        let e = entry(&format!("t{t}"), "blob.read", &i.to_string(), 200);
                        match log.try_record(e).unwrap() {
                            TryRecord::Queued => {}
                            TryRecord::Full(e) => log.record(e).unwrap(),
                        }
                    }
                });
            }
        });
        log.flush().unwrap();
        let report = verify(&log);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(report.events, (threads * per_thread) as u64);
        assert_eq!(
            report.head.map(|h| h.0),
            Some((threads * per_thread) as u64)
        );
    }

    #[test]
    fn dropping_the_last_handle_writes_what_is_queued() {
        let dir = tempfile::tempdir().unwrap();
        let log = AccessLog::open(dir.path()).unwrap();
        for i in 0..500 {
            log.record(entry("alice", "record.read", &i.to_string(), 200))
                .unwrap();
        }
        drop(log.clone());
        drop(log);
        let reopened = AccessLog::open(dir.path()).unwrap();
        assert_eq!(reopened.head().unwrap().map(|h| h.0), Some(500));
    }

    #[test]
    fn two_handles_on_one_file_build_one_chain() {
        let dir = tempfile::tempdir().unwrap();
        let a = AccessLog::open(dir.path()).unwrap();
        let b = AccessLog::open(dir.path()).unwrap();
        std::thread::scope(|s| {
            for log in [&a, &b] {
                s.spawn(move || {
                    for i in 0..300 {
                        log.record(entry("alice", "blob.read", &i.to_string(), 200))
                            .unwrap();
                    }
                    log.flush().unwrap();
                });
            }
        });
        let report = verify(&a);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(report.events, 600);
    }

    #[test]
    fn while_the_writer_cannot_write_events_are_refused_not_dropped() {
        let (_dir, log) = log_with(2);
        // Take the table away: appends fail until it is back.
        tamper(&log, "ALTER TABLE access_events RENAME TO hidden");
        log.record(entry("alice", "record.read", "r-lost?", 200))
            .unwrap();
        let refused = log.flush().unwrap_err().to_string();
        assert!(
            refused.contains("the access log cannot be written") && refused.contains("1 event"),
            "{refused}"
        );
        let refused = log
            .record(entry("alice", "record.read", "r-refused", 200))
            .unwrap_err();
        assert!(
            refused.to_string().contains("cannot be written"),
            "{refused}"
        );
        // Once the table is back, the waiting event is written and recording works again.
        tamper(&log, "ALTER TABLE hidden RENAME TO access_events");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while log.flush().is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the writer did not recover"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        log.record(entry("alice", "record.read", "r-after", 200))
            .unwrap();
        log.flush().unwrap();
        let targets: Vec<String> = all(&log).into_iter().map(|e| e.target).collect();
        assert_eq!(targets, ["r0", "r1", "r-lost?", "r-after"]);
        assert!(verify(&log).problems.is_empty());
    }

    #[test]
    fn long_fields_are_cut_at_a_character_boundary() {
        let (_dir, log) = log_with(0);
        let long = "é".repeat(MAX_FIELD);
        log.record(entry("alice", "records.query", &long, 200))
            .unwrap();
        log.flush().unwrap();
        let target = &all(&log)[0].target;
        assert!(target.len() <= MAX_FIELD && target.ends_with('…'));
        assert!(target.starts_with("éé"));
    }

    #[test]
    fn a_missing_directory_is_a_one_line_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let e = AccessLog::open(&dir.path().join("nope"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("cannot open the access log") && e.contains("access.db"),
            "{e}"
        );
        assert!(!e.contains('\n'));
    }
}
