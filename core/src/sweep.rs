//! Deletion: the retention sweep and `evault rm`, each leaving a tombstone.
//!
//! A sweep runs in three phases, each safe to interrupt at any instant:
//!
//! 1. **Records.** In batches, each one index transaction: the records whose `retain_until` has
//!    passed are judged again inside the transaction (by `evault-retention`'s `may_delete`, so
//!    a hold placed a moment ago counts), and each one that may go is replaced by a tombstone
//!    (its identity, links, retention and who deleted it why) with two log entries: the record's
//!    state becomes `null`, the tombstone's is recorded. Records of a version that is live in
//!    some environment are kept while it is live, whatever their retention: what runs now must
//!    stay explainable.
//! 2. **Blobs.** Blobs that no record references any more lose their index row and facts (one
//!    transaction per batch, logged as `blob.deleted`), then, after the commit, their file. The
//!    store lock is held exclusive across both (see [`crate::lock`]), so no push can count on a
//!    blob in between.
//! 3. **Orphan files.** Blob files without an index row (a crash between a commit and its
//!    unlinks, or an interrupted push) are removed, again under the exclusive lock.
//!
//! Killed anywhere, a sweep leaves either the whole batch or none of it in the index, and files
//! are only ever removed after their row: a record never points at missing bytes, and the bytes
//! left behind are removed by the next sweep.
//!
//! `--dry-run` reads one snapshot and reports what the same rules would remove, without taking
//! the lock or writing anything.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use evault_retention::{DeleteRequest, Hold, Mode, RecordFacts, holds_on, may_delete};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::index::{RECORD_COLUMNS, record_from_row};
use crate::log::Appender;
use crate::log::state::{BLOBS, RECORDS, TOMBSTONES};
use crate::query::{QueryContext, Reader};
use crate::record::{Blueprint, Record, RecordFilter, format_time};
use crate::retention::{holds, policy_in_force};
use crate::vault::Vault;

/// Records judged and deleted per index transaction (small in tests, to cross batches).
const RECORD_BATCH: usize = if cfg!(test) { 3 } else { 500 };
/// Blobs removed per index transaction (and per hold of the exclusive lock).
const BLOB_BATCH: usize = if cfg!(test) { 2 } else { 1000 };

/// What a deletion leaves behind: the record as it was, and who deleted it when and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    /// The deleted record's id.
    pub id: String,
    pub kind: String,
    pub format: String,
    /// The blob it linked (`sha256:<hex>`); its bytes are gone unless another record has them.
    pub digest: String,
    pub blueprint: Blueprint,
    pub git_sha: String,
    pub repo: Option<String>,
    pub run_id: Option<String>,
    pub environment: Option<String>,
    pub subjects: Vec<String>,
    pub producer: String,
    pub ingested_at: String,
    pub source_path: String,
    /// Its retention when it was deleted.
    pub retain_until: Option<String>,
    /// The retention rule that expired it.
    pub rule: Option<String>,
    pub deleted_at: String,
    /// `retention-sweep`, or the admin who ran `evault rm`.
    pub deleted_by: String,
    pub reason: String,
    /// Deleted before its `retain_until` (a governance-mode override).
    pub early: bool,
}

/// A record a sweep deletes (or, in a dry run, would delete).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expired {
    pub id: String,
    pub kind: String,
    pub blueprint: Blueprint,
    pub digest: String,
    pub retain_until: String,
    pub rule: String,
}

/// A record whose retention has run out but which a sweep keeps, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kept {
    #[serde(flatten)]
    pub record: Expired,
    /// `on legal hold 'x'…` or `version live in production`.
    pub why: String,
}

/// A blob whose bytes a sweep removes (or would).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovedBlob {
    pub digest: String,
    /// Bytes freed on disk (compressed size).
    pub stored_size: u64,
}

/// What a sweep did, or in a dry run would do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepReport {
    pub dry_run: bool,
    /// The instant retention was judged against (RFC 3339, UTC).
    pub at: String,
    /// Records deleted, each leaving a tombstone.
    pub deleted: Vec<Expired>,
    /// Records past their retention that were kept (legal hold, live version).
    pub kept: Vec<Kept>,
    /// Blobs no record references any more, removed with their bytes.
    pub blobs_removed: Vec<RemovedBlob>,
    /// Blob files without an index row (left by an interrupted push or sweep), removed.
    pub orphan_files: Vec<String>,
    /// Bytes freed on disk.
    pub bytes_freed: u64,
}

/// Where a sweep is: `records`, `blobs` or `files`, with counts done.
pub type SweepProgress<'a> = &'a mut dyn FnMut(&str, u64);

/// The actor sweeps are logged under.
pub const SWEEP_ACTOR: &str = "retention-sweep";

/// A crash-injection point for tests: `EVAULT_FAILPOINT=<name>[:<n>]` aborts the process (no
/// destructors, no flushes: like `kill -9`) the `n`-th time (default first) the sweep reaches
/// `name`. Unset, it costs one comparison.
pub(crate) fn failpoint(name: &str) {
    static SPEC: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static HITS: AtomicU64 = AtomicU64::new(0);
    let spec = SPEC.get_or_init(|| {
        let text = std::env::var("EVAULT_FAILPOINT").ok()?;
        let (point, n) = match text.split_once(':') {
            Some((p, n)) => (p.to_string(), n.parse().unwrap_or(1)),
            None => (text, 1),
        };
        Some((point, n))
    });
    if let Some((point, n)) = spec
        && point == name
        && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *n
    {
        std::process::abort();
    }
}

/// A record past its `retain_until`, as the sweep reads it.
struct Due {
    record: Expired,
    git_sha: String,
    environment: Option<String>,
    ingested_at: DateTime<Utc>,
}

fn parse_time(text: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| Error::Integrity(format!("the index holds a malformed time '{text}': {e}")))
}

/// A record with its retention, as the sweep reads it (`t`: its `record_retention` row).
const DUE_SELECT: &str = "SELECT t.record_id, r.kind, r.blueprint_name, r.blueprint_version, \
     r.digest, t.retain_until, t.rule, r.git_sha, r.environment, r.ingested_at \
     FROM record_retention t JOIN records r ON r.id = t.record_id";

fn due_rows(
    conn: &Connection,
    condition: &str,
    values: &[&dyn rusqlite::ToSql],
) -> Result<Vec<Due>> {
    let mut stmt = conn.prepare_cached(&format!("{DUE_SELECT} {condition}"))?;
    let rows = stmt.query_map(values, |r| {
        Ok((
            Expired {
                id: r.get(0)?,
                kind: r.get(1)?,
                blueprint: Blueprint {
                    name: r.get(2)?,
                    version: r.get(3)?,
                },
                digest: r.get(4)?,
                retain_until: r.get(5)?,
                rule: r.get(6)?,
            },
            r.get::<_, String>(7)?,
            r.get::<_, Option<String>>(8)?,
            r.get::<_, String>(9)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (record, git_sha, environment, ingested_at) = row?;
        out.push(Due {
            ingested_at: parse_time(&ingested_at)?,
            record,
            git_sha,
            environment,
        });
    }
    Ok(out)
}

/// Records due at `now` after position `after` (retain_until, id), in that order.
fn due(conn: &Connection, now: &str, after: &(String, String), limit: usize) -> Result<Vec<Due>> {
    due_rows(
        conn,
        "WHERE t.retain_until <= ?1 AND (t.retain_until, t.record_id) > (?2, ?3) \
         ORDER BY t.retain_until, t.record_id LIMIT ?4",
        &[&now, &after.0, &after.1, &(limit as i64)],
    )
}

/// The sweep's judgement of one due record, the same in a dry run and a real one.
struct Judge {
    mode: Mode,
    holds: Vec<Hold>,
    now: DateTime<Utc>,
    /// Per blueprint, what is live now.
    live: HashMap<String, LiveNow>,
}

/// Where a blueprint runs now.
struct LiveNow {
    /// Live versions, with their environments.
    versions: BTreeMap<String, Vec<String>>,
    /// The deploys and rollbacks that made them live.
    ids: BTreeSet<String>,
}

impl Judge {
    fn new(conn: &Connection, now: DateTime<Utc>) -> Result<Judge> {
        Ok(Judge {
            mode: policy_in_force(conn)?.mode,
            holds: holds(conn)?,
            now,
            live: HashMap::new(),
        })
    }

    /// `None` if the sweep deletes the record, or why it keeps it.
    fn keep(&mut self, conn: &Connection, due: &Due) -> Result<Option<String>> {
        let facts = RecordFacts {
            kind: &due.record.kind,
            blueprint: &due.record.blueprint.name,
            version: &due.record.blueprint.version,
            git_sha: &due.git_sha,
            environment: due.environment.as_deref(),
            record_id: &due.record.id,
            ingested_at: due.ingested_at,
        };
        let on = holds_on(&self.holds, &facts);
        let until = parse_time(&due.record.retain_until)?;
        if let Err(refusal) = may_delete(self.mode, until, &on, self.now, DeleteRequest::Sweep) {
            return Ok(Some(refusal.to_string()));
        }
        let name = &due.record.blueprint.name;
        if !self.live.contains_key(name) {
            let ctx = QueryContext::default();
            let reader = Reader::new(conn, &ctx);
            let mut versions = BTreeMap::new();
            let mut ids = BTreeSet::new();
            for (version, lives) in reader.live_of(name)? {
                let envs: Vec<String> = lives.iter().map(|l| l.environment.clone()).collect();
                ids.extend(lives.into_iter().map(|l| l.record_id));
                versions.insert(version, envs);
            }
            self.live.insert(name.clone(), LiveNow { versions, ids });
        }
        let LiveNow { versions, ids } = &self.live[name];
        if let Some(envs) = versions.get(&due.record.blueprint.version) {
            return Ok(Some(format!(
                "version {} is live in {}: its evidence is kept while it runs",
                due.record.blueprint.version,
                envs.join(", ")
            )));
        }
        if ids.contains(&due.record.id) {
            return Ok(Some(
                "the change that made the running version live: kept while it runs".into(),
            ));
        }
        Ok(None)
    }
}

/// Replaces record `id` by a tombstone, in the caller's transaction, and logs both.
fn delete_record(
    tx: &Transaction<'_>,
    log: &mut Appender<'_>,
    id: &str,
    deleted_at: &str,
    actor: &str,
    reason: &str,
    early: bool,
) -> Result<Tombstone> {
    let record: Record = tx
        .prepare_cached(&format!(
            "SELECT {RECORD_COLUMNS} FROM records r JOIN blobs b ON b.digest = r.digest \
             LEFT JOIN record_verification v ON v.record_id = r.id WHERE r.id = ?1"
        ))?
        .query_row(params![id], record_from_row)
        .optional()?
        .ok_or_else(|| Error::NotFound(format!("no record {id}")))?;
    let tombstone = Tombstone {
        id: record.id.clone(),
        kind: record.kind.as_str().to_string(),
        format: record.format.as_str().to_string(),
        digest: record.digest,
        blueprint: record.blueprint,
        git_sha: record.git_sha,
        repo: record.repo,
        run_id: record.run_id,
        environment: record.environment,
        subjects: record.subjects,
        producer: record.producer,
        ingested_at: record.ingested_at,
        source_path: record.source_path,
        retain_until: record.retention.as_ref().map(|r| r.retain_until.clone()),
        rule: record.retention.map(|r| r.rule),
        deleted_at: deleted_at.to_string(),
        deleted_by: actor.to_string(),
        reason: reason.to_string(),
        early,
    };
    let key = format!("{id}@{deleted_at}");
    tx.prepare_cached(
        "INSERT INTO tombstones (key, id, digest, kind, format, blueprint_name, \
         blueprint_version, git_sha, repo, run_id, environment, producer, ingested_at, \
         source_path, subjects, retain_until, rule, deleted_at, deleted_by, reason, early) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, \
         ?18, ?19, ?20, ?21)",
    )?
    .execute(params![
        key,
        tombstone.id,
        tombstone.digest,
        tombstone.kind,
        tombstone.format,
        tombstone.blueprint.name,
        tombstone.blueprint.version,
        tombstone.git_sha,
        tombstone.repo,
        tombstone.run_id,
        tombstone.environment,
        tombstone.producer,
        tombstone.ingested_at,
        tombstone.source_path,
        tombstone.subjects.join(" "),
        tombstone.retain_until,
        tombstone.rule,
        tombstone.deleted_at,
        tombstone.deleted_by,
        tombstone.reason,
        early as i64,
    ])?;
    for table in [
        "record_subjects",
        "record_verification",
        "record_retention",
        "changes",
    ] {
        tx.prepare_cached(&format!("DELETE FROM {table} WHERE record_id = ?1"))?
            .execute(params![id])?;
    }
    tx.prepare_cached("DELETE FROM records WHERE id = ?1")?
        .execute(params![id])?;
    log.record("record.deleted", RECORDS, id, actor, Some(reason))?;
    log.record("tombstone.created", TOMBSTONES, &key, actor, None)?;
    Ok(tombstone)
}

/// Blobs no record references (at most `limit`), with their stored sizes.
pub(crate) fn unreferenced_blobs(conn: &Connection, limit: usize) -> Result<Vec<RemovedBlob>> {
    let mut stmt = conn.prepare_cached(
        "SELECT b.digest, b.stored_size FROM blobs b \
         WHERE NOT EXISTS (SELECT 1 FROM records r WHERE r.digest = b.digest) \
         ORDER BY b.digest LIMIT ?1",
    )?;
    let rows = stmt.query_map(params![limit as i64], |r| {
        Ok(RemovedBlob {
            digest: r.get(0)?,
            stored_size: r.get::<_, i64>(1)?.max(0) as u64,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The reason logged for a record the sweep deletes.
fn expiry_reason(record: &Expired) -> String {
    format!(
        "retention expired on {} ({})",
        record.retain_until, record.rule
    )
}

impl Vault {
    /// Deletes what the retention policy no longer keeps, as of now (see the module docs).
    pub fn sweep(&self, dry_run: bool, progress: SweepProgress<'_>) -> Result<SweepReport> {
        self.sweep_at(Utc::now(), dry_run, progress)
    }

    /// [`Vault::sweep`] judged at `now`. Only tests and dry runs ("what will have expired by
    /// the end of the quarter?") pass another instant than the present.
    pub fn sweep_at(
        &self,
        now: DateTime<Utc>,
        dry_run: bool,
        progress: SweepProgress<'_>,
    ) -> Result<SweepReport> {
        if dry_run {
            return self.plan_sweep(now);
        }
        let at = format_time(now);
        let mut report = SweepReport {
            dry_run,
            at: at.clone(),
            ..SweepReport::default()
        };
        // Phase 1: records, a batch per transaction.
        let mut after = (String::new(), String::new());
        loop {
            let (batch, last, done) = crate::index::on_change(self.index.as_ref(), |tx, log| {
                let mut judge = Judge::new(tx, now)?;
                let rows = due(tx, &at, &after, RECORD_BATCH)?;
                let last = rows
                    .last()
                    .map(|d| (d.record.retain_until.clone(), d.record.id.clone()));
                let mut deleted = Vec::new();
                let mut kept = Vec::new();
                let deleted_at = format_time(Utc::now());
                for row in &rows {
                    match judge.keep(tx, row)? {
                        Some(why) => kept.push(Kept {
                            record: row.record.clone(),
                            why,
                        }),
                        None => {
                            let reason = expiry_reason(&row.record);
                            delete_record(
                                tx,
                                log,
                                &row.record.id,
                                &deleted_at,
                                SWEEP_ACTOR,
                                &reason,
                                false,
                            )?;
                            failpoint("sweep.record-deleted");
                            deleted.push(row.record.clone());
                        }
                    }
                }
                Ok(((deleted, kept), last, rows.len() < RECORD_BATCH))
            })?;
            failpoint("sweep.records-committed");
            report.deleted.extend(batch.0);
            report.kept.extend(batch.1);
            progress("records", report.deleted.len() as u64);
            match last {
                Some(last) if !done => after = last,
                _ => break,
            }
        }
        // Phases 2 and 3: bytes no record accounts for.
        self.remove_unreferenced(&mut report, progress)?;
        Ok(report)
    }

    /// Phases 2 and 3 of a sweep (also run by `evault rm`): blobs without records, then files
    /// without rows, under the exclusive store lock.
    fn remove_unreferenced(
        &self,
        report: &mut SweepReport,
        progress: SweepProgress<'_>,
    ) -> Result<()> {
        loop {
            let _store = self.store_lock().exclusive()?;
            let batch = crate::index::on_change(self.index.as_ref(), |tx, log| {
                let blobs = unreferenced_blobs(tx, BLOB_BATCH)?;
                for blob in &blobs {
                    for table in [
                        "provenance",
                        "vex_statements",
                        "findings",
                        "components",
                        "blob_facts",
                        "blobs",
                    ] {
                        tx.prepare_cached(&format!("DELETE FROM {table} WHERE digest = ?1"))?
                            .execute(params![blob.digest])?;
                    }
                    log.record("blob.deleted", BLOBS, &blob.digest, SWEEP_ACTOR, None)?;
                    failpoint("sweep.blob-deleted");
                }
                Ok(blobs)
            })?;
            failpoint("sweep.blobs-committed");
            for blob in &batch {
                let digest: Digest = blob.digest.parse().map_err(|e| {
                    Error::Integrity(format!("the index holds a malformed digest: {e}"))
                })?;
                self.blob_store().remove(&digest)?;
                failpoint("sweep.blob-unlinked");
                report.bytes_freed += blob.stored_size;
            }
            let full = batch.len() == BLOB_BATCH;
            report.blobs_removed.extend(batch);
            progress("blobs", report.blobs_removed.len() as u64);
            if !full {
                break;
            }
        }
        // Files listed without the lock; each one re-checked under it.
        let orphans = self.orphan_files()?;
        if !orphans.is_empty() {
            let _store = self.store_lock().exclusive()?;
            for (digest, size) in orphans {
                if self.index.blob(&digest.to_string())?.is_none()
                    && self.blob_store().remove(&digest)?
                {
                    failpoint("sweep.orphan-unlinked");
                    report.bytes_freed += size;
                    report.orphan_files.push(digest.to_string());
                }
            }
            progress("files", report.orphan_files.len() as u64);
        }
        Ok(())
    }

    /// Blob files that have no index row, with their sizes on disk.
    fn orphan_files(&self) -> Result<Vec<(Digest, u64)>> {
        let known: std::collections::HashSet<String> =
            self.index.blobs()?.into_iter().map(|b| b.digest).collect();
        Ok(self
            .blob_store()
            .list()?
            .into_iter()
            .filter(|b| !known.contains(&b.digest.to_string()))
            .map(|b| (b.digest, b.stored_size))
            .collect())
    }

    /// A dry run: what a sweep at `now` would remove, from one snapshot, changing nothing.
    fn plan_sweep(&self, now: DateTime<Utc>) -> Result<SweepReport> {
        let at = format_time(now);
        let mut report = crate::query::on_snapshot(self.index.as_ref(), |conn| {
            let mut judge = Judge::new(conn, now)?;
            let mut report = SweepReport {
                dry_run: true,
                at: at.clone(),
                ..SweepReport::default()
            };
            let mut after = (String::new(), String::new());
            loop {
                let rows = due(conn, &at, &after, RECORD_BATCH)?;
                for row in &rows {
                    match judge.keep(conn, row)? {
                        Some(why) => report.kept.push(Kept {
                            record: row.record.clone(),
                            why,
                        }),
                        None => report.deleted.push(row.record.clone()),
                    }
                }
                match rows.last() {
                    Some(last) if rows.len() == RECORD_BATCH => {
                        after = (last.record.retain_until.clone(), last.record.id.clone())
                    }
                    _ => break,
                }
            }
            // Blobs left without records: those already so, and those whose every record goes.
            let mut going: BTreeMap<&str, u64> = BTreeMap::new();
            for r in &report.deleted {
                *going.entry(r.digest.as_str()).or_default() += 1;
            }
            let mut count = conn.prepare_cached(
                "SELECT count(*), (SELECT stored_size FROM blobs WHERE digest = ?1) \
                 FROM records WHERE digest = ?1",
            )?;
            let mut blobs = unreferenced_blobs(conn, usize::MAX >> 1)?;
            for (digest, n) in going {
                let (total, size): (i64, Option<i64>) =
                    count.query_row(params![digest], |r| Ok((r.get(0)?, r.get(1)?)))?;
                if total as u64 == n {
                    blobs.push(RemovedBlob {
                        digest: digest.to_string(),
                        stored_size: size.unwrap_or(0).max(0) as u64,
                    });
                }
            }
            blobs.sort_by(|a, b| a.digest.cmp(&b.digest));
            report.bytes_freed = blobs.iter().map(|b| b.stored_size).sum();
            report.blobs_removed = blobs;
            Ok(report)
        })?;
        for (digest, size) in self.orphan_files()? {
            report.bytes_freed += size;
            report.orphan_files.push(digest.to_string());
        }
        Ok(report)
    }

    /// Deletes one record by hand (`evault rm`), where the retention mode allows it: after its
    /// `retain_until` with a reason; before it only in governance mode, with `override_retention`
    /// and a reason, logged as an early deletion. Never while a legal hold is on it. Its blob
    /// goes too if no other record references it.
    pub fn delete_record(
        &self,
        id_or_prefix: &str,
        reason: &str,
        override_retention: bool,
        actor: &str,
    ) -> Result<Tombstone> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(Error::Invalid(
                "deleting a record needs a reason (--reason)".into(),
            ));
        }
        evault_retention::validate_reason(reason)
            .map_err(|e| Error::Invalid(format!("invalid --reason: {e}")))?;
        let id = self.record(id_or_prefix)?.id;
        let now = Utc::now();
        let tombstone = crate::index::on_change(self.index.as_ref(), |tx, log| {
            let Some(row) = due_rows(tx, "WHERE t.record_id = ?1", &[&id])?
                .into_iter()
                .next()
            else {
                return Err(Error::NotFound(format!("no record {id}")));
            };
            let judge = Judge::new(tx, now)?;
            let facts = RecordFacts {
                kind: &row.record.kind,
                blueprint: &row.record.blueprint.name,
                version: &row.record.blueprint.version,
                git_sha: &row.git_sha,
                environment: row.environment.as_deref(),
                record_id: &row.record.id,
                ingested_at: row.ingested_at,
            };
            let on = holds_on(&judge.holds, &facts);
            let allowed = may_delete(
                judge.mode,
                parse_time(&row.record.retain_until)?,
                &on,
                now,
                DeleteRequest::Admin {
                    override_retention,
                    reason,
                },
            )
            .map_err(|refusal| Error::Forbidden(format!("record {id} refused: {refusal}")))?;
            delete_record(
                tx,
                log,
                &id,
                &format_time(now),
                actor,
                reason,
                allowed.is_early(),
            )
        })?;
        let mut report = SweepReport::default();
        self.remove_unreferenced(&mut report, &mut |_, _| {})?;
        Ok(tombstone)
    }

    /// Tombstones matching `filter` (its links, kind, time and id fields; newest first).
    pub fn tombstones(&self, filter: &RecordFilter) -> Result<Vec<Tombstone>> {
        crate::query::on_snapshot(self.index.as_ref(), |conn| tombstones(conn, filter))
    }
}

fn tombstones(conn: &Connection, filter: &RecordFilter) -> Result<Vec<Tombstone>> {
    let (clauses, values) = crate::index::filter_sql_for(filter, "instr(r.subjects, ?) > 0");
    let limit = if filter.limit == 0 {
        i64::MAX
    } else {
        filter.limit as i64
    };
    let sql = format!(
        "SELECT id, kind, format, digest, blueprint_name, blueprint_version, git_sha, repo, \
         run_id, environment, subjects, producer, ingested_at, source_path, retain_until, rule, \
         deleted_at, deleted_by, reason, early FROM tombstones r{clauses} \
         ORDER BY r.seq DESC LIMIT {limit}"
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(values), |r| {
        let subjects: String = r.get(10)?;
        Ok(Tombstone {
            id: r.get(0)?,
            kind: r.get(1)?,
            format: r.get(2)?,
            digest: r.get(3)?,
            blueprint: Blueprint {
                name: r.get(4)?,
                version: r.get(5)?,
            },
            git_sha: r.get(6)?,
            repo: r.get(7)?,
            run_id: r.get(8)?,
            environment: r.get(9)?,
            subjects: subjects
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            producer: r.get(11)?,
            ingested_at: r.get(12)?,
            source_path: r.get(13)?,
            retain_until: r.get(14)?,
            rule: r.get(15)?,
            deleted_at: r.get(16)?,
            deleted_by: r.get(17)?,
            reason: r.get(18)?,
            early: r.get::<_, i64>(19)? != 0,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use chrono::{Duration, Utc};
    use evault_retention::HoldSelector;

    use super::*;
    use crate::testing::{deploy, push_links, sbom};

    fn push(vault: &Vault, version: &str, file: &str, doc: &serde_json::Value) -> Record {
        push_links(vault, "checkout-api", version, file, doc)
    }

    fn push_to(vault: &Vault, blueprint: &str, file: &str, doc: &serde_json::Value) -> Record {
        push_links(vault, blueprint, "1.0.0", file, doc)
    }

    fn ids(records: &[Record]) -> BTreeSet<String> {
        records.iter().map(|r| r.id.clone()).collect()
    }

    fn all_records(vault: &Vault) -> Vec<Record> {
        vault
            .records(&RecordFilter {
                limit: 10_000,
                ..RecordFilter::default()
            })
            .unwrap()
            .0
    }

    fn all_tombstones(vault: &Vault) -> Vec<Tombstone> {
        vault.tombstones(&RecordFilter::default()).unwrap()
    }

    /// The invariants a sweep keeps whenever it stops: the log and the index agree, every
    /// record's bytes are there and whole.
    fn assert_consistent(vault: &Vault) {
        let fsck = vault.fsck(&mut |_, _| {}).unwrap();
        assert!(fsck.problems.is_empty(), "{:?}", fsck.problems);
        assert!(fsck.log_problems.is_empty(), "{:?}", fsck.log_problems);
        assert!(fsck.index_problems.is_empty(), "{:?}", fsck.index_problems);
    }

    /// ...and once a sweep has finished: no bytes that no record accounts for.
    fn assert_swept_clean(vault: &Vault) {
        assert_consistent(vault);
        let fsck = vault.fsck(&mut |_, _| {}).unwrap();
        assert!(
            fsck.unreferenced_blobs.is_empty(),
            "{:?}",
            fsck.unreferenced_blobs
        );
        let referenced: BTreeSet<String> =
            all_records(vault).into_iter().map(|r| r.digest).collect();
        let rows: BTreeSet<String> = vault
            .index
            .blobs()
            .unwrap()
            .into_iter()
            .map(|b| b.digest)
            .collect();
        assert_eq!(
            rows, referenced,
            "blob rows are exactly the referenced ones"
        );
    }

    fn year_later() -> DateTime<Utc> {
        Utc::now() + Duration::days(400)
    }

    /// A year on, under the default policy: expired SBOMs go (tombstone, log entries, bytes),
    /// held ones, the live version's and the seven-year audit trail stay; a blob shared with a
    /// kept record stays; the dry run announced exactly this; a second sweep finds nothing.
    #[test]
    fn a_sweep_after_a_simulated_year() {
        let dir = tempfile::tempdir().unwrap();
        let (vault, _) = Vault::init(dir.path(), "test").unwrap();
        let old = push(&vault, "1.0.0", "sbom.json", &sbom("left-pad"));
        let shared = push(&vault, "1.0.0", "shared.json", &sbom("shared"));
        let kept_copy = push(&vault, "1.0.1", "shared.json", &sbom("shared"));
        let held = push(&vault, "1.0.1", "sbom.json", &sbom("lodash"));
        let live_sbom = push(&vault, "2.0.0", "sbom.json", &sbom("react"));
        let shipped = push(
            &vault,
            "2.0.0",
            "deploy.json",
            &deploy("2.0.0", "production", "2026-03-01T10:00:00Z"),
        );
        vault
            .add_hold(
                "case-17",
                "litigation",
                HoldSelector {
                    record: Some(held.id.clone()),
                    ..HoldSelector::default()
                },
                "legal",
            )
            .unwrap();
        // 1.0.1's shared SBOM is the same bytes as 1.0.0's: held too, through its version.
        vault
            .add_hold(
                "release-1.0.1",
                "audit of 1.0.1",
                HoldSelector {
                    blueprint: Some("checkout-api".into()),
                    version: Some("1.0.1".into()),
                    ..HoldSelector::default()
                },
                "legal",
            )
            .unwrap();

        let plan = vault.sweep_at(year_later(), true, &mut |_, _| {}).unwrap();
        let planned: BTreeSet<String> = plan.deleted.iter().map(|e| e.id.clone()).collect();
        assert_eq!(planned, ids(&[old.clone(), shared.clone()]));
        assert_eq!(plan.blobs_removed.len(), 1, "the shared blob stays");
        assert_eq!(plan.blobs_removed[0].digest, old.digest);
        let kept: BTreeSet<String> = plan.kept.iter().map(|k| k.record.id.clone()).collect();
        assert_eq!(kept, ids(&[held.clone(), kept_copy.clone()]));
        assert!(plan.kept.iter().all(|k| k.why.contains("legal hold")));
        assert_eq!(all_records(&vault).len(), 6, "a dry run changes nothing");

        let done = vault.sweep_at(year_later(), false, &mut |_, _| {}).unwrap();
        assert_eq!(done.deleted, plan.deleted, "the dry run said exactly this");
        assert_eq!(done.blobs_removed, plan.blobs_removed);
        assert_eq!(done.kept, plan.kept);
        assert!(done.bytes_freed > 0);
        let left = ids(&all_records(&vault));
        assert_eq!(
            left,
            ids(&[kept_copy.clone(), held, live_sbom.clone(), shipped.clone()])
        );
        let store = vault.blob_store();
        assert!(!store.contains(&old.digest.parse().unwrap()).unwrap());
        assert!(store.contains(&shared.digest.parse().unwrap()).unwrap());

        let tombstones = all_tombstones(&vault);
        assert_eq!(tombstones.len(), 2);
        let t = tombstones.iter().find(|t| t.id == old.id).unwrap();
        assert_eq!(
            (
                t.kind.as_str(),
                t.digest.as_str(),
                t.blueprint.version.as_str()
            ),
            ("sbom", old.digest.as_str(), "1.0.0")
        );
        assert_eq!(t.deleted_by, SWEEP_ACTOR);
        assert_eq!(t.rule.as_deref(), Some("default: 1y"));
        assert!(!t.early && t.reason.starts_with("retention expired on "));
        let entries = vault.log_entries(0, 1000).unwrap();
        let types: Vec<String> = entries
            .iter()
            .map(|e| serde_json::from_str::<serde_json::Value>(&e.entry).unwrap())
            .filter(|e| e["subject"] == format!("record/{}", old.id))
            .map(|e| e["type"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(types, ["record.ingested", "record.deleted"]);
        assert_swept_clean(&vault);

        let again = vault.sweep_at(year_later(), false, &mut |_, _| {}).unwrap();
        assert!(again.deleted.is_empty() && again.blobs_removed.is_empty());

        // Pushed again, the same record comes back under the same id, and the log still
        // verifies; its tombstone stays.
        let back = push(&vault, "1.0.0", "sbom.json", &sbom("left-pad"));
        assert_eq!(back.id, old.id);
        assert_consistent(&vault);
        assert_eq!(all_tombstones(&vault).len(), 2);
    }

    /// Whatever its retention, the evidence of the version running somewhere stays until
    /// another version replaces it.
    #[test]
    fn the_live_version_is_kept_until_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let (vault, _) = Vault::init(dir.path(), "test").unwrap();
        vault
            .set_retention_policy("mode = \"governance\"\ndefault = \"1y\"\n", "admin")
            .unwrap();
        let sbom_1 = push(&vault, "1.0.0", "sbom.json", &sbom("a"));
        let deploy_1 = push(
            &vault,
            "1.0.0",
            "deploy.json",
            &deploy("1.0.0", "production", "2026-03-01T10:00:00Z"),
        );
        let report = vault.sweep_at(year_later(), false, &mut |_, _| {}).unwrap();
        assert!(report.deleted.is_empty(), "{:?}", report.deleted);
        assert_eq!(report.kept.len(), 2);
        assert!(
            report.kept[0].why.contains("live in production"),
            "{}",
            report.kept[0].why
        );

        let deploy_2 = push(
            &vault,
            "2.0.0",
            "deploy.json",
            &deploy("2.0.0", "production", "2026-04-01T10:00:00Z"),
        );
        let report = vault.sweep_at(year_later(), false, &mut |_, _| {}).unwrap();
        let deleted: BTreeSet<String> = report.deleted.iter().map(|e| e.id.clone()).collect();
        assert_eq!(deleted, ids(&[sbom_1, deploy_1]));
        assert_eq!(ids(&all_records(&vault)), ids(&[deploy_2]));
        assert_swept_clean(&vault);
    }

    /// `evault rm`: a reason always; early only in governance with an override, logged as
    /// early; never through a hold; never early under compliance.
    #[test]
    fn admin_deletion_follows_the_mode_and_the_holds() {
        let dir = tempfile::tempdir().unwrap();
        let (vault, _) = Vault::init(dir.path(), "test").unwrap();
        let a = push(&vault, "1.0.0", "a.json", &sbom("a"));
        let b = push(&vault, "1.0.0", "b.json", &sbom("b"));
        let c = push(&vault, "1.0.1", "b.json", &sbom("b"));

        let err = vault.delete_record(&a.id, "  ", true, "admin").unwrap_err();
        assert!(matches!(err, Error::Invalid(_)), "{err}");
        let err = vault
            .delete_record(&a.id, "gdpr", false, "admin")
            .unwrap_err();
        assert!(
            matches!(&err, Error::Forbidden(m) if m.contains("--override")),
            "{err}"
        );
        vault
            .add_hold(
                "h",
                "case",
                HoldSelector {
                    record: Some(a.id.clone()),
                    ..HoldSelector::default()
                },
                "legal",
            )
            .unwrap();
        let err = vault
            .delete_record(&a.id, "gdpr", true, "admin")
            .unwrap_err();
        assert!(
            matches!(&err, Error::Forbidden(m) if m.contains("legal hold 'h'")),
            "{err}"
        );
        assert_eq!(all_records(&vault).len(), 3, "refusals change nothing");

        let t = vault
            .delete_record(&b.id[..8], "pushed by mistake", true, "admin")
            .unwrap();
        assert!(t.early);
        assert_eq!(
            (t.deleted_by.as_str(), t.reason.as_str()),
            ("admin", "pushed by mistake")
        );
        // Its bytes stay: 1.0.1 has the same SBOM.
        assert!(
            vault
                .blob_store()
                .contains(&b.digest.parse().unwrap())
                .unwrap()
        );
        vault
            .delete_record(&c.id, "duplicate", true, "admin")
            .unwrap();
        assert!(
            !vault
                .blob_store()
                .contains(&c.digest.parse().unwrap())
                .unwrap()
        );
        let err = vault
            .delete_record(&c.id, "again", true, "admin")
            .unwrap_err();
        assert!(matches!(err, Error::NotFound(_)), "{err}");
        assert_swept_clean(&vault);

        vault
            .set_retention_policy("mode = \"compliance\"\ndefault = \"1y\"\n", "admin")
            .unwrap();
        let d = push(&vault, "1.0.2", "d.json", &sbom("d"));
        let err = vault
            .delete_record(&d.id, "gdpr", true, "admin")
            .unwrap_err();
        assert!(
            matches!(&err, Error::Forbidden(m) if m.contains("compliance")),
            "{err}"
        );
    }

    /// Set by the race test: pushes then wait between publishing and committing, which is
    /// where a sweep could pull their bytes away were it not for the store lock.
    static RACE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

    pub(crate) fn race_pause() {
        if RACE.load(Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Pushes of bytes the sweep is deleting, racing it: no record ever ends up without its
    /// bytes or facts. Each round pushes new bytes for an expiring record, then the same bytes
    /// for a held one: a sweep that removed the bytes between the second push's "already
    /// stored" and its commit would leave the held record without them, for good.
    #[test]
    fn pushes_racing_sweeps_never_lose_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (vault, _) = Vault::init(dir.path(), "test").unwrap();
        vault
            .add_hold(
                "keep",
                "race",
                HoldSelector {
                    blueprint: Some("held-api".into()),
                    ..HoldSelector::default()
                },
                "legal",
            )
            .unwrap();
        let vault = std::sync::Arc::new(vault);
        RACE.store(true, Ordering::SeqCst);
        let pusher = {
            let vault = vault.clone();
            std::thread::spawn(move || {
                for i in 0..30 {
                    let doc = sbom(&format!("racy-{i}"));
                    push_to(&vault, "checkout-api", "sbom.json", &doc);
                    push_to(&vault, "held-api", "sbom.json", &doc);
                }
            })
        };
        let mut sweeps = 0;
        while !pusher.is_finished() {
            vault.sweep_at(year_later(), false, &mut |_, _| {}).unwrap();
            sweeps += 1;
        }
        pusher.join().unwrap();
        RACE.store(false, Ordering::SeqCst);
        assert!(sweeps > 10, "{sweeps} sweeps");
        vault.sweep_at(year_later(), false, &mut |_, _| {}).unwrap();
        assert_swept_clean(&vault);
        let left = all_records(&vault);
        assert_eq!(left.len(), 30, "the held records");
        for r in left {
            assert!(
                vault.index.has_facts(&r.digest).unwrap(),
                "record {} lost its blob's facts",
                r.id
            );
        }
    }

    // Crash injection: a child process (this test binary, running `crash_child`) sweeps and
    // aborts at a failpoint; the parent checks what it left.

    const CHILD_DIR: &str = "EVAULT_TEST_CRASH_VAULT";

    /// Runs only as the child of `a_sweep_killed_anywhere_*`.
    #[test]
    fn crash_child() {
        let Ok(dir) = std::env::var(CHILD_DIR) else {
            return;
        };
        let vault = Vault::open(Path::new(&dir)).unwrap();
        vault.sweep_at(year_later(), false, &mut |_, _| {}).unwrap();
    }

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy_dir(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }

    /// Kills a sweep at every failpoint, at each of its hits, and checks: the vault is
    /// consistent as it was left (no record without its bytes, log and index agree, every
    /// record either present or tombstoned), and after the next sweep it is exactly what an
    /// uninterrupted sweep leaves, with no bytes unaccounted for.
    #[test]
    fn a_sweep_killed_anywhere_leaves_a_consistent_vault() {
        let root = tempfile::tempdir().unwrap();
        let template = root.path().join("template");
        let expected_left;
        let all;
        {
            let (vault, _) = Vault::init(&template, "test").unwrap();
            let mut records = Vec::new();
            for i in 0..7 {
                records.push(push(
                    &vault,
                    "1.0.0",
                    &format!("{i}.json"),
                    &sbom(&format!("p{i}")),
                ));
            }
            // Two records of one blob, one of a version on hold: that blob stays.
            records.push(push(&vault, "1.0.1", "0.json", &sbom("p0")));
            vault
                .add_hold(
                    "keep-1.0.1",
                    "case",
                    HoldSelector {
                        blueprint: Some("checkout-api".into()),
                        version: Some("1.0.1".into()),
                        ..HoldSelector::default()
                    },
                    "legal",
                )
                .unwrap();
            // An orphan file, as an interrupted push leaves.
            let staged = vault
                .blob_store()
                .stage(&mut &b"interrupted push"[..], u64::MAX)
                .unwrap();
            vault.blob_store().publish(staged).unwrap();
            all = ids(&records);
            expected_left = ids(&records[7..]);
        }
        let points = [
            "sweep.record-deleted",
            "sweep.records-committed",
            "sweep.blob-deleted",
            "sweep.blobs-committed",
            "sweep.blob-unlinked",
            "sweep.orphan-unlinked",
        ];
        let exe = std::env::current_exe().unwrap();
        let mut crashes = 0;
        for point in points {
            for n in 1.. {
                let dir = root.path().join(format!("{point}-{n}"));
                copy_dir(&template, &dir);
                let status = std::process::Command::new(&exe)
                    .args(["--exact", "sweep::tests::crash_child", "--test-threads=1"])
                    .env(CHILD_DIR, &dir)
                    .env("EVAULT_FAILPOINT", format!("{point}:{n}"))
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status()
                    .unwrap();
                let vault = Vault::open(&dir).unwrap();
                assert_consistent(&vault);
                let present = ids(&all_records(&vault));
                let buried: BTreeSet<String> =
                    all_tombstones(&vault).into_iter().map(|t| t.id).collect();
                assert!(present.is_disjoint(&buried), "{point}:{n}");
                let union: BTreeSet<String> = present.union(&buried).cloned().collect();
                assert_eq!(
                    union, all,
                    "{point}:{n}: every record present or tombstoned"
                );
                vault.sweep_at(year_later(), false, &mut |_, _| {}).unwrap();
                assert_swept_clean(&vault);
                assert_eq!(ids(&all_records(&vault)), expected_left, "{point}:{n}");
                assert!(
                    vault.blob_store().list().unwrap().len() == 1,
                    "{point}:{n}: only the held blob's bytes remain"
                );
                drop(vault);
                std::fs::remove_dir_all(&dir).unwrap();
                if status.success() {
                    // The sweep ran to its end: this point has no n-th hit.
                    assert!(n > 1, "{point} was never reached");
                    break;
                }
                crashes += 1;
            }
        }
        eprintln!("{crashes} crashes injected");
        assert!(crashes >= 12, "only {crashes} crashes injected");
    }
}
