//! `evault log verify`: recompute the tree from the stored entries, check every stored hash and
//! signed checkpoint, check an auditor's older checkpoint against the log, and compare every
//! object in the index with the newest log entry about it.
//!
//! Everything streams: memory stays at a few rows and `log2 n` hashes whatever the log's size.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::merkle::{self, Frontier, Hash};
use super::note::{Checkpoint, LogVerifier};
use super::state::{self, CHILDREN, RECORDS, TABLES, Table};
use super::{ENTRY_VERSION, meta};
use crate::error::Result;

/// Problems of one kind reported in full before the rest are only counted.
const PROBLEMS_PER_KIND: usize = 20;

/// What `evault log verify` found.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LogReport {
    /// The log's name (the checkpoints' origin line).
    pub origin: String,
    /// The id of the key the checkpoints are checked with.
    pub key_id: String,
    /// Entries in the log, and the root recomputed from them (hex).
    pub size: u64,
    pub root_hash: String,
    pub checkpoints_checked: u64,
    /// Objects (records, blobs, tokens, trust) compared with their newest entry.
    pub objects_checked: u64,
    pub blobs_checked: u64,
    pub bytes_checked: u64,
    /// The result of comparing the log with an older checkpoint, when one was given.
    pub old_checkpoint: Option<OldCheckpoint>,
    /// Everything that is wrong; empty when the log and the vault agree.
    pub problems: Vec<String>,
    /// Things worth knowing that are not damage.
    pub notes: Vec<String>,
}

impl LogReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OldCheckpoint {
    pub size: u64,
    pub root_hash: String,
    /// Whether today's log, cut at `size` entries, has exactly that root.
    pub consistent: bool,
}

/// Collects problems, keeping the first few of each kind.
#[derive(Default)]
pub struct Problems {
    shown: Vec<String>,
    counts: BTreeMap<&'static str, u64>,
}

impl Problems {
    pub fn add(&mut self, kind: &'static str, message: String) {
        let n = self.counts.entry(kind).or_default();
        *n += 1;
        if *n <= PROBLEMS_PER_KIND as u64 {
            self.shown.push(message);
        }
    }

    pub fn into_vec(mut self) -> Vec<String> {
        for (kind, n) in self.counts {
            if n > PROBLEMS_PER_KIND as u64 {
                self.shown.push(format!(
                    "... and {} more problems of the kind '{kind}'",
                    n - PROBLEMS_PER_KIND as u64
                ));
            }
        }
        self.shown
    }
}

/// The inputs of a verification beyond the index itself.
pub struct Anchors<'a> {
    /// The key the log must be signed with, from outside the vault (an auditor's copy).
    pub pinned: Option<&'a LogVerifier>,
    /// The public half of the key file the vault signs with, if it can be read.
    pub key_file: Option<std::result::Result<LogVerifier, String>>,
    /// An older signed checkpoint the log must be consistent with.
    pub old_checkpoint: Option<&'a str>,
}

/// Checks the log and the index against each other. `progress` hears (phase, done, total).
pub fn verify(
    conn: &Connection,
    anchors: &Anchors<'_>,
    problems: &mut Problems,
    progress: &mut dyn FnMut(&str, u64, u64),
) -> Result<LogReport> {
    let mut report = LogReport::default();
    let Some(verifier) = log_key(conn, anchors, &mut report, problems)? else {
        return Ok(report);
    };
    let old = match anchors.old_checkpoint {
        None => None,
        Some(note) => match verifier.open(note) {
            Ok(cp) => Some(cp),
            Err(e) => {
                problems.add("old checkpoint", format!("the older checkpoint given: {e}"));
                None
            }
        },
    };
    tree(
        conn,
        &verifier,
        old.as_ref(),
        &mut report,
        problems,
        progress,
    )?;
    objects(conn, &mut report, problems, progress)?;
    orphans(conn, problems)?;
    Ok(report)
}

/// Which key the checkpoints must verify with, cross-checked against the key file and a pinned
/// key.
fn log_key(
    conn: &Connection,
    anchors: &Anchors<'_>,
    report: &mut LogReport,
    problems: &mut Problems,
) -> Result<Option<LogVerifier>> {
    let (origin, vkey) = (meta(conn, "origin")?, meta(conn, "vkey")?);
    let (Some(origin), Some(vkey)) = (origin, vkey) else {
        problems.add(
            "key",
            if super::has_history(conn)? {
                super::METADATA_DELETED.into()
            } else {
                "the index records no log signing key: this vault's log was never started (run \
                 `evault init`)"
                    .into()
            },
        );
        return Ok(None);
    };
    report.origin = origin;
    let recorded = match LogVerifier::from_vkey(&vkey) {
        Ok(v) => v,
        Err(e) => {
            problems.add(
                "key",
                format!("the log key recorded in the index is unusable: {e}"),
            );
            return Ok(None);
        }
    };
    match &anchors.key_file {
        Some(Ok(file)) if file != &recorded => problems.add(
            "key",
            format!(
                "the signing key in {} (key {}) is not the key this log is signed with (key {}): \
                 the key file was swapped",
                super::KEY_FILE,
                file.key_id(),
                recorded.key_id()
            ),
        ),
        Some(Err(e)) => problems.add("key", format!("the signing key file: {e}")),
        Some(Ok(_)) => {}
        None => report.notes.push(format!(
            "no signing key file ({}) here: checkpoints were checked with the key recorded in \
             the index",
            super::KEY_FILE
        )),
    }
    let verifier = match anchors.pinned {
        Some(pinned) if pinned != &recorded => {
            problems.add(
                "key",
                format!(
                    "the log is signed with key {} ({}), not with the key you trust ({} {})",
                    recorded.key_id(),
                    recorded.name(),
                    pinned.key_id(),
                    pinned.name()
                ),
            );
            pinned.clone()
        }
        Some(pinned) => pinned.clone(),
        None => recorded,
    };
    report.key_id = verifier.key_id();
    Ok(Some(verifier))
}

/// Recomputes the tree from the entries, checking every stored subtree hash and every signed
/// checkpoint on the way, and an older checkpoint at its size.
fn tree(
    conn: &Connection,
    verifier: &LogVerifier,
    old: Option<&Checkpoint>,
    report: &mut LogReport,
    problems: &mut Problems,
    progress: &mut dyn FnMut(&str, u64, u64),
) -> Result<()> {
    let total = super::size(conn)?;
    let mut entries = conn.prepare("SELECT idx, subject, entry FROM log_entries ORDER BY idx")?;
    let mut rows = entries.query([])?;
    let mut checkpoints = conn.prepare("SELECT size, note FROM log_checkpoints ORDER BY size")?;
    let mut cps = checkpoints.query([])?;
    let mut next_cp: Option<(u64, String)> = next_checkpoint(&mut cps)?;
    let mut node = conn.prepare("SELECT level, idx, hash FROM log_nodes WHERE pos = ?1")?;
    let mut frontier = Frontier::default();
    let mut nodes_expected = 0u64;
    let mut old_checked = false;
    let mut next_idx = 0u64;
    // The size of the newest checkpoint checked so far, and the batch of the previous entry.
    let mut last_signed: Option<u64> = None;
    let mut batch: Option<u64> = None;

    // Checkpoints of the empty tree come before any entry.
    check_checkpoints_at(
        &frontier,
        &mut next_cp,
        &mut cps,
        verifier,
        &mut last_signed,
        report,
        problems,
    )?;
    if let Some(old) = old.filter(|o| o.size == 0) {
        old_checked = true;
        record_old(old, &frontier.root(), report, problems);
    }
    while let Some(row) = rows.next()? {
        let idx = row.get::<_, i64>(0)?.max(0) as u64;
        let subject: String = row.get(1)?;
        let text: String = row.get(2)?;
        let expected = next_idx;
        next_idx = idx.saturating_add(1);
        if idx != expected {
            let which = if idx == expected + 1 {
                format!("log entry {expected} is missing")
            } else {
                format!(
                    "log entries {expected}–{} are missing",
                    idx.saturating_sub(1)
                )
            };
            problems.add("missing entries", format!("{which} (deleted?)"));
        }
        if let Some(entry) = check_entry(idx, &subject, &text, problems) {
            check_batch(idx, &entry, &mut batch, last_signed, problems);
        }
        for (level, index, hash) in frontier.push(merkle::leaf_hash(text.as_bytes())) {
            nodes_expected += 1;
            let stored: Option<(u32, i64, Vec<u8>)> = node
                .query_row(params![super::node_pos(level, index) as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .ok();
            let matches = stored.as_ref().is_some_and(|(l, i, h)| {
                *l == level && *i == index as i64 && h.as_slice() == hash.as_slice()
            });
            if !matches {
                problems.add(
                    "stored hashes",
                    format!(
                        "the stored hash of subtree (level {level}, index {index}) {} the entries",
                        if stored.is_some() {
                            "does not match"
                        } else {
                            "is missing for"
                        }
                    ),
                );
            }
        }
        check_checkpoints_at(
            &frontier,
            &mut next_cp,
            &mut cps,
            verifier,
            &mut last_signed,
            report,
            problems,
        )?;
        if let Some(old) = old.filter(|o| o.size == frontier.size()) {
            old_checked = true;
            record_old(old, &frontier.root(), report, problems);
        }
        if frontier.size().is_multiple_of(4096) {
            progress("entries", frontier.size(), total);
        }
    }
    progress("entries", frontier.size(), total);
    report.size = frontier.size();
    report.root_hash = hex::encode(frontier.root());

    while let Some((size, _)) = next_cp.take() {
        problems.add(
            "truncated",
            format!(
                "a checkpoint is signed for {size} entries but the log holds only {} (entries \
                 removed from the end?)",
                report.size
            ),
        );
        next_cp = next_checkpoint(&mut cps)?;
    }
    match super::latest_checkpoint(conn)?.map(|c| c.size) {
        None => problems.add(
            "unsigned entries",
            "the log has no signed checkpoint".into(),
        ),
        Some(size) if size < report.size => problems.add(
            "unsigned entries",
            format!(
                "log entries {size}–{} are covered by no signed checkpoint (appended behind the \
                 vault's back?)",
                report.size - 1
            ),
        ),
        // Equal, or ahead of the log: a truncation, reported above.
        Some(_) => {}
    }
    let nodes_stored: i64 = conn.query_row("SELECT count(*) FROM log_nodes", [], |r| r.get(0))?;
    if nodes_stored.max(0) as u64 != nodes_expected {
        problems.add(
            "stored hashes",
            format!(
                "the log stores {nodes_stored} subtree hashes where its {} entries make \
                 {nodes_expected}",
                report.size
            ),
        );
    }
    if let Some(old) = old.filter(|_| !old_checked) {
        problems.add(
            "old checkpoint",
            format!(
                "the older checkpoint is for {} entries but the log now holds only {}: history \
                 was cut",
                old.size, report.size
            ),
        );
        report.old_checkpoint = Some(OldCheckpoint {
            size: old.size,
            root_hash: hex::encode(old.root),
            consistent: false,
        });
    }
    Ok(())
}

fn next_checkpoint(rows: &mut rusqlite::Rows<'_>) -> Result<Option<(u64, String)>> {
    Ok(match rows.next()? {
        Some(r) => Some((r.get::<_, i64>(0)?.max(0) as u64, r.get(1)?)),
        None => None,
    })
}

/// Checks the stored checkpoints signed at the frontier's size (at most one, by the schema).
fn check_checkpoints_at(
    frontier: &Frontier,
    next: &mut Option<(u64, String)>,
    rows: &mut rusqlite::Rows<'_>,
    verifier: &LogVerifier,
    last_signed: &mut Option<u64>,
    report: &mut LogReport,
    problems: &mut Problems,
) -> Result<()> {
    while let Some((size, note)) = next.as_ref() {
        if *size != frontier.size() {
            break;
        }
        report.checkpoints_checked += 1;
        *last_signed = Some(*size);
        match verifier.open(note) {
            Err(e) => problems.add("checkpoints", format!("checkpoint at {size} entries: {e}")),
            Ok(cp) => {
                if cp.size != *size {
                    problems.add(
                        "checkpoints",
                        format!(
                            "the checkpoint stored for {size} entries is signed for {}",
                            cp.size
                        ),
                    );
                } else if cp.root != frontier.root() {
                    problems.add(
                        "checkpoints",
                        format!(
                            "the signed checkpoint at {size} entries has root {} but the entries \
                             hash to {} (entries edited, removed or reordered)",
                            hex::encode(cp.root),
                            hex::encode(frontier.root())
                        ),
                    );
                }
                if cp.origin != report.origin {
                    problems.add(
                        "checkpoints",
                        format!(
                            "the checkpoint at {size} entries is for log '{}', not '{}'",
                            cp.origin, report.origin
                        ),
                    );
                }
            }
        }
        *next = next_checkpoint(rows)?;
    }
    Ok(())
}

fn record_old(old: &Checkpoint, root: &Hash, report: &mut LogReport, problems: &mut Problems) {
    let consistent = &old.root == root;
    if !consistent {
        problems.add(
            "old checkpoint",
            format!(
                "the log is not consistent with the older checkpoint: its first {} entries \
                 hash to {}, the checkpoint says {} (history was rewritten)",
                old.size,
                hex::encode(root),
                hex::encode(old.root)
            ),
        );
    }
    report.old_checkpoint = Some(OldCheckpoint {
        size: old.size,
        root_hash: hex::encode(old.root),
        consistent,
    });
}

/// Every transaction that appends entries signs a checkpoint at its end, and its entries name
/// where it began (`batch`): so where a new batch begins, the previous one's checkpoint must be
/// there. Only a backfill (a vault from before the log) begins without a checkpoint of the
/// empty tree.
fn check_batch(
    idx: u64,
    entry: &Value,
    batch: &mut Option<u64>,
    last_signed: Option<u64>,
    problems: &mut Problems,
) {
    let Some(begun) = entry["batch"].as_u64() else {
        problems.add(
            "entries",
            format!("log entry {idx} does not say where its transaction began (batch)"),
        );
        return;
    };
    if begun == idx {
        let backfill = idx == 0 && entry["backfill"] == true;
        if last_signed != Some(idx) && !backfill {
            problems.add(
                "checkpoints",
                format!(
                    "the signed checkpoint at {idx} entries (the end of the transaction before \
                     entry {idx}) is missing (deleted?)"
                ),
            );
        }
    } else if Some(begun) != *batch {
        problems.add(
            "entries",
            format!(
                "log entry {idx} says its transaction began at entry {begun}, but the entry \
                 before it is not part of that transaction"
            ),
        );
    }
    *batch = Some(begun);
}

/// One entry's own consistency: canonical, versioned, at its index, about its subject. The
/// parsed entry, if it is JSON.
fn check_entry(idx: u64, subject: &str, text: &str, problems: &mut Problems) -> Option<Value> {
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            problems.add("entries", format!("log entry {idx} is not JSON: {e}"));
            return None;
        }
    };
    let mut faults = Vec::new();
    if state::canonical(&value) != text {
        faults.push("is not in canonical form".to_string());
    }
    if value["v"] != ENTRY_VERSION {
        faults.push(format!("has format version {}", value["v"]));
    }
    if value["index"] != idx {
        faults.push(format!("says it is entry {}", value["index"]));
    }
    if value["subject"] != subject {
        faults.push(format!(
            "is about {} but is filed under {subject}",
            value["subject"]
        ));
    }
    if !faults.is_empty() {
        problems.add("entries", format!("log entry {idx} {}", faults.join(", ")));
    }
    Some(value)
}

/// Compares every object in the index with the newest entry about it.
fn objects(
    conn: &Connection,
    report: &mut LogReport,
    problems: &mut Problems,
    progress: &mut dyn FnMut(&str, u64, u64),
) -> Result<()> {
    let mut total = 0u64;
    for table in TABLES {
        let n: i64 = conn.query_row(&format!("SELECT count(*) FROM {}", table.table), [], |r| {
            r.get(0)
        })?;
        total += n.max(0) as u64;
    }
    // The first and newest entry of every subject, in one pass over the log (the log has no
    // index by subject: pushes would pay for it).
    conn.execute_batch(
        "DROP TABLE IF EXISTS temp.log_subjects;
         CREATE TEMP TABLE log_subjects (
             subject TEXT PRIMARY KEY, first INTEGER NOT NULL, newest INTEGER NOT NULL
         ) WITHOUT ROWID;
         INSERT INTO temp.log_subjects
             SELECT subject, min(idx), max(idx) FROM log_entries GROUP BY subject;",
    )?;
    let result = merge_objects(conn, total, report, problems, progress);
    conn.execute_batch("DROP TABLE IF EXISTS temp.log_subjects")?;
    result
}

fn merge_objects(
    conn: &Connection,
    total: u64,
    report: &mut LogReport,
    problems: &mut Problems,
    progress: &mut dyn FnMut(&str, u64, u64),
) -> Result<()> {
    let mut done = 0u64;
    let mut record_entry = conn.prepare("SELECT log_index FROM records WHERE id = ?1")?;
    for table in TABLES {
        let lo = format!("{}/", table.prefix);
        let hi = format!("{}0", table.prefix);
        let mut latest = conn.prepare(
            "SELECT s.subject, s.newest, e.entry, s.first FROM temp.log_subjects s \
             JOIN log_entries e ON e.idx = s.newest \
             WHERE s.subject >= ?1 AND s.subject < ?2 ORDER BY s.subject",
        )?;
        let mut logged = latest.query(params![lo, hi])?;
        let mut keys = conn.prepare(&format!(
            "SELECT {key} FROM {t} ORDER BY {key}",
            key = table.key,
            t = table.table
        ))?;
        let mut stored = keys.query([])?;
        let mut next_logged = next_logged_entry(&mut logged, &lo)?;
        let mut next_key: Option<String> = next_key(&mut stored)?;
        loop {
            let order = match (&next_logged, &next_key) {
                (None, None) => break,
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some((k, ..)), Some(key)) => k.as_str().cmp(key.as_str()),
            };
            match order {
                std::cmp::Ordering::Less => {
                    let (key, idx, entry, _) = next_logged.take().unwrap_or_default();
                    if !entry["state"].is_null() {
                        problems.add(
                            "objects",
                            format!(
                                "{} {key} is recorded by log entry {idx} but is missing from the \
                                 index (deleted behind the log's back?)",
                                noun(table)
                            ),
                        );
                    }
                    next_logged = next_logged_entry(&mut logged, &lo)?;
                }
                std::cmp::Ordering::Greater => {
                    let key = next_key.take().unwrap_or_default();
                    problems.add(
                        "objects",
                        format!(
                            "{} {key} is in the index but no log entry records it (inserted \
                             behind the log's back?)",
                            noun(table)
                        ),
                    );
                    report.objects_checked += 1;
                    done += 1;
                    next_key = self::next_key(&mut stored)?;
                }
                std::cmp::Ordering::Equal => {
                    let (key, idx, entry, first) = next_logged.take().unwrap_or_default();
                    let actual = table.state(conn, &key)?.unwrap_or(Value::Null);
                    compare(table, &key, idx, &entry["state"], &actual, problems);
                    if table.table == RECORDS.table {
                        let named: Option<i64> =
                            record_entry.query_row(params![key], |r| r.get(0))?;
                        if named != Some(first as i64) && !reingested(conn, &key, named, first)? {
                            problems.add(
                                "objects",
                                format!(
                                    "record {key} names log entry {} as its ingestion, but that \
                                     is log entry {first}",
                                    named.map_or("(none)".to_string(), |n| n.to_string())
                                ),
                            );
                        }
                    }
                    report.objects_checked += 1;
                    done += 1;
                    if done.is_multiple_of(4096) {
                        progress("objects", done, total);
                    }
                    next_logged = next_logged_entry(&mut logged, &lo)?;
                    next_key = self::next_key(&mut stored)?;
                }
            }
        }
    }
    progress("objects", done, total);
    Ok(())
}

fn next_key(rows: &mut rusqlite::Rows<'_>) -> Result<Option<String>> {
    Ok(match rows.next()? {
        Some(r) => Some(r.get(0)?),
        None => None,
    })
}

/// The next (key, index, entry, index of the first entry) of a table's newest entries.
fn next_logged_entry(
    rows: &mut rusqlite::Rows<'_>,
    prefix: &str,
) -> Result<Option<(String, u64, Value, u64)>> {
    let Some(r) = rows.next()? else {
        return Ok(None);
    };
    let subject: String = r.get(0)?;
    let idx = r.get::<_, i64>(1)?.max(0) as u64;
    let text: String = r.get(2)?;
    // An unparsable entry was reported by the tree pass; here it reads as "no state".
    let entry = serde_json::from_str(&text).unwrap_or(Value::Null);
    let first = r.get::<_, i64>(3)?.max(0) as u64;
    let key = subject.strip_prefix(prefix).unwrap_or(&subject).to_string();
    Ok(Some((key, idx, entry, first)))
}

fn noun(table: Table) -> &'static str {
    match table.prefix {
        "record" => "record",
        "blob" => "blob",
        "token" => "token",
        "trust-key" => "trusted key",
        "trust-identity" => "trusted identity",
        "trust-root" => "trusted root",
        "trust-requirement" => "verification requirement",
        "retention-policy" => "retention policy",
        "hold" => "legal hold",
        "tombstone" => "tombstone",
        "gate-policy" => "gate policy",
        _ => "object",
    }
}

/// Whether log entry `named` is a later ingestion of record `id` than its first entry `first`:
/// a record deleted (sweep, `evault rm`) and pushed again names its new ingestion.
fn reingested(conn: &Connection, id: &str, named: Option<i64>, first: u64) -> Result<bool> {
    let Some(named) = named.filter(|n| *n > first as i64) else {
        return Ok(false);
    };
    let entry: Option<(String, String)> = conn
        .query_row(
            "SELECT subject, entry FROM log_entries WHERE idx = ?1",
            params![named],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((subject, text)) = entry else {
        return Ok(false);
    };
    let kind = serde_json::from_str::<Value>(&text).unwrap_or(Value::Null)["type"].clone();
    Ok(subject == format!("record/{id}")
        && (kind == "record.ingested" || kind == "approval.recorded"))
}

/// Reports each field where the index and the newest entry differ.
fn compare(
    table: Table,
    key: &str,
    idx: u64,
    logged: &Value,
    actual: &Value,
    problems: &mut Problems,
) {
    // A record last logged before retention existed (schema version 8) has no `retention` in
    // its entry; the migration's retention is covered from the record's next entry on.
    let legacy;
    let actual = match (table.table, logged, actual) {
        ("records", Value::Object(l), Value::Object(a)) if !l.contains_key("retention") => {
            let mut a = a.clone();
            a.remove("retention");
            legacy = Value::Object(a);
            &legacy
        }
        _ => actual,
    };
    if state::canonical(logged) == state::canonical(actual) {
        return;
    }
    let what = format!("{} {key}", noun(table));
    let (Value::Object(l), Value::Object(a)) = (logged, actual) else {
        problems.add(
            "objects",
            if logged.is_null() {
                format!(
                    "{what} was removed by log entry {idx} but is still in the index (restored \
                     behind the log's back?)"
                )
            } else {
                format!("{what} differs from log entry {idx}")
            },
        );
        return;
    };
    let mut fields: Vec<&String> = l.keys().chain(a.keys()).collect();
    fields.sort();
    fields.dedup();
    for field in fields {
        let (lv, av) = (
            l.get(field).unwrap_or(&Value::Null),
            a.get(field).unwrap_or(&Value::Null),
        );
        if state::canonical(lv) != state::canonical(av) {
            problems.add(
                "objects",
                format!(
                    "{what}: `{field}` is {} in the index but {} in log entry {idx} (edited \
                     behind the log's back?)",
                    short(av),
                    short(lv)
                ),
            );
        }
    }
}

/// A value for a one-line message.
fn short(v: &Value) -> String {
    let text = state::canonical(v);
    if text.chars().count() > 80 {
        format!("{}…", text.chars().take(77).collect::<String>())
    } else {
        text
    }
}

/// Rows that belong to no object (they would be invisible to the comparison above).
fn orphans(conn: &Connection, problems: &mut Problems) -> Result<()> {
    for (child, column, parent, key) in CHILDREN {
        let (n, example): (i64, Option<String>) = conn.query_row(
            &format!(
                "SELECT count(*), min({column}) FROM {child} \
                 WHERE {column} NOT IN (SELECT {key} FROM {parent})"
            ),
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if n > 0 {
            problems.add(
                "orphans",
                format!(
                    "{n} row(s) of {child} belong to no entry of {parent} (e.g. {}); inserted \
                     behind the log's back?",
                    example.unwrap_or_default()
                ),
            );
        }
    }
    Ok(())
}
