//! The questions the vault answers: trace a deploy back to its commit and a commit forward to
//! its deploys ([`trace`]), find where a component or a vulnerability is and whether it is live
//! ([`search`]), and list the changes of a period with their evidence ([`changelog`]).
//!
//! Every query reads one consistent snapshot of the index (a pooled read-only connection in a
//! read transaction, see `SqliteIndex::read`), sees only the blueprints the caller's scopes
//! cover, and can be asked *as of* a time: it then answers with what the vault knew then:
//! records ingested by that time, VEX statements pushed by then, and each record's
//! verification verdict as the tamper-evident log recorded it then.
//!
//! What is *live*: per blueprint and environment, the version of the latest deploy (by the
//! deploy document's `time`, then by ingestion) that did not fail, unless a later rollback took
//! the environment back, in which case the rollback's `to_version` is live.

pub mod changelog;
pub mod record;
pub mod search;
pub mod trace;

#[cfg(test)]
mod plans;

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use evault_schema::{Format, Kind};
use rusqlite::{Connection, ToSql};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::auth::scope_matches;
use crate::error::{Error, Result};
use crate::facts::{FactRead, FactReader};
use crate::index::{RECORD_COLUMN_COUNT, RECORD_COLUMNS, SqliteIndex, record_from_row};
use crate::record::{Record, format_time};
use crate::verification::{Verification, VerificationStatus};

/// Consistent read snapshots of the index, for queries.
pub trait Snapshots {
    /// Runs `read` on one read-only snapshot.
    fn read_snapshot(&self, read: &mut dyn FnMut(&Connection) -> Result<()>) -> Result<()>;
}

impl Snapshots for SqliteIndex {
    fn read_snapshot(&self, read: &mut dyn FnMut(&Connection) -> Result<()>) -> Result<()> {
        self.read(read)
    }
}

/// Runs `f` on one snapshot of `index` and returns its result.
pub(crate) fn on_snapshot<T>(
    index: &dyn Snapshots,
    f: impl FnOnce(&Connection) -> Result<T>,
) -> Result<T> {
    let mut f = Some(f);
    let mut out = None;
    index.read_snapshot(&mut |conn| {
        if let Some(f) = f.take() {
            out = Some(f(conn)?);
        }
        Ok(())
    })?;
    out.ok_or_else(|| Error::Internal("the query did not run".into()))
}

/// Who asks, and as of when.
#[derive(Debug, Clone, Default)]
pub struct QueryContext {
    /// Answer with what the vault knew at this time; `None` for now.
    pub as_of: Option<DateTime<Utc>>,
    /// Blueprint patterns the caller may see (a token's scopes); empty means all.
    pub scopes: Vec<String>,
}

/// Environments whose deploys need a recorded human approval.
pub fn needs_approval(environment: &str) -> bool {
    matches!(
        environment.to_ascii_lowercase().as_str(),
        "production" | "prod" | "prd"
    )
}

/// A deploy or a rollback: a change to what runs in an environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub record_id: String,
    /// `deploy` or `rollback`.
    pub kind: Kind,
    pub blueprint: String,
    /// The version running after the change: the deployed version, or a rollback's
    /// `to_version`.
    pub version: String,
    /// A rollback's `from_version`, the version taken out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_version: Option<String>,
    pub environment: String,
    /// When it happened (the document's `time`).
    pub time: String,
    /// Who deployed or rolled back (the document's `actor`).
    pub actor: String,
    /// A deploy's `started`, `succeeded` or `failed`, when the receipt says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The artifact running after the change, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact: Option<String>,
    /// The git commit of the record's links.
    pub git_sha: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incident: Option<String>,
    /// Who pushed the record (a token's name, or the embedded-mode actor).
    pub producer: String,
    pub ingested_at: String,
    #[serde(skip)]
    seq: i64,
}

impl Change {
    /// Whether the change put its `version` in service (a failed deploy did not).
    pub(crate) fn takes_effect(&self) -> bool {
        self.status.as_deref() != Some("failed")
    }
}

/// The version live in one environment, and the change that made it so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Live {
    pub blueprint: String,
    pub version: String,
    pub environment: String,
    /// Since when (the change's time).
    pub since: String,
    /// The deploy or rollback record that made it live.
    pub record_id: String,
    /// `deploy` or `rollback`.
    pub via: Kind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact: Option<String>,
}

/// What a change does to what is live: the part of a [`Change`] live versions are computed
/// from (also read from the `changes` table, see [`Reader::live_by_version`]).
struct Step<'a> {
    record_id: &'a str,
    kind: Kind,
    blueprint: &'a str,
    version: &'a str,
    environment: &'a str,
    time: &'a str,
    artifact: Option<&'a str>,
}

/// Who the live versions are, from the changes that took effect, in time order within each
/// environment.
fn live_of<'a>(steps: impl IntoIterator<Item = Step<'a>>) -> Vec<Live> {
    let mut live: BTreeMap<(&str, &str), Live> = BTreeMap::new();
    // The artifact a version last ran with, per environment: what a rollback restores.
    let mut artifacts: HashMap<(&str, &str, &str), &str> = HashMap::new();
    for c in steps {
        if c.kind == Kind::Deploy
            && let Some(a) = c.artifact
        {
            artifacts.insert((c.blueprint, c.environment, c.version), a);
        }
        let artifact = c
            .artifact
            .or_else(|| {
                artifacts
                    .get(&(c.blueprint, c.environment, c.version))
                    .copied()
            })
            .map(str::to_string);
        live.insert(
            (c.blueprint, c.environment),
            Live {
                blueprint: c.blueprint.to_string(),
                version: c.version.to_string(),
                environment: c.environment.to_string(),
                since: c.time.to_string(),
                record_id: c.record_id.to_string(),
                via: c.kind,
                artifact,
            },
        );
    }
    live.into_values().collect()
}

/// Who the live versions are, from a blueprint's changes in time order.
pub fn live_versions(changes: &[Change]) -> Vec<Live> {
    live_of(changes.iter().filter(|c| c.takes_effect()).map(|c| Step {
        record_id: &c.record_id,
        kind: c.kind,
        blueprint: &c.blueprint,
        version: &c.version,
        environment: &c.environment,
        time: &c.time,
        artifact: c.artifact.as_deref(),
    }))
}

/// One piece of evidence as queries show it: the record's identity, its verdict, and what it
/// says in brief (`evault show`'s summary).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub id: String,
    pub kind: Kind,
    pub format: Format,
    pub digest: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Artifacts the evidence is about.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<String>,
    pub producer: String,
    pub ingested_at: String,
    pub verification: Option<Verification>,
    /// Kind-specific facts; see `core/src/summary.rs`.
    pub summary: Value,
}

/// A query's view of the index: one snapshot, the caller's scopes, the as-of time.
pub(crate) struct Reader<'c> {
    pub conn: &'c Connection,
    /// `as_of` as the index writes times; records ingested later are invisible.
    pub known_by: Option<String>,
    pub as_of: Option<DateTime<Utc>>,
    pub scopes: &'c [String],
}

impl<'c> Reader<'c> {
    pub fn new(conn: &'c Connection, ctx: &'c QueryContext) -> Self {
        Reader {
            conn,
            known_by: ctx.as_of.map(format_time),
            as_of: ctx.as_of,
            scopes: &ctx.scopes,
        }
    }

    pub fn facts(&self) -> FactReader<'c> {
        FactReader {
            conn: self.conn,
            known_by: self.known_by.clone(),
        }
    }

    /// Whether the caller may see this blueprint's evidence.
    pub fn visible(&self, blueprint: &str) -> bool {
        self.scopes.is_empty() || self.scopes.iter().any(|p| scope_matches(p, blueprint))
    }

    /// Records matching `condition` (over `records r`) that the caller may see and the vault
    /// knew by the as-of time, in ingestion order, with their verdicts as of then.
    pub fn records(&self, condition: &str, params: &[&dyn ToSql]) -> Result<Vec<Record>> {
        let n = params.len() + 1;
        let sql = format!(
            "SELECT {RECORD_COLUMNS}, r.log_index FROM records r \
             JOIN blobs b ON b.digest = r.digest \
             LEFT JOIN record_verification v ON v.record_id = r.id \
             WHERE ({condition}) AND (?{n} IS NULL OR r.ingested_at <= ?{n}) ORDER BY r.seq"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut all: Vec<&dyn ToSql> = params.to_vec();
        all.push(&self.known_by);
        let rows = stmt.query_map(all.as_slice(), |row| {
            Ok((
                record_from_row(row)?,
                row.get::<_, Option<i64>>(RECORD_COLUMN_COUNT)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (record, log_index) = row?;
            if self.visible(&record.blueprint.name) {
                out.push((record, log_index));
            }
        }
        self.verdicts_as_of(&mut out)?;
        Ok(out.into_iter().map(|(r, _)| r).collect())
    }

    /// Replaces each record's verdict by the one the log held at the as-of time: the state of
    /// the newest entry about the record written by then (its ingestion entry, or a later
    /// re-verification).
    fn verdicts_as_of(&self, records: &mut [(Record, Option<i64>)]) -> Result<()> {
        let Some(as_of) = self.as_of else {
            return Ok(());
        };
        let Some(first) = records.iter().filter_map(|(_, i)| *i).min() else {
            return Ok(());
        };
        let wanted: HashMap<String, usize> = records
            .iter()
            .enumerate()
            .map(|(i, (r, _))| (crate::log::state::RECORDS.subject(&r.id), i))
            .collect();
        let mut stmt = self.conn.prepare_cached(
            "SELECT subject, entry FROM log_entries WHERE idx >= ?1 ORDER BY idx",
        )?;
        let mut rows = stmt.query([first])?;
        while let Some(row) = rows.next()? {
            let subject: String = row.get(0)?;
            let Some(&i) = wanted.get(&subject) else {
                continue;
            };
            let entry: String = row.get(1)?;
            let Ok(entry) = serde_json::from_str::<Value>(&entry) else {
                continue;
            };
            let known = entry["time"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .is_some_and(|t| t.with_timezone(&Utc) <= as_of);
            if !known {
                continue;
            }
            let v = &entry["state"]["verification"];
            records[i].0.verification = v["status"].as_str().map(|status| Verification {
                status: VerificationStatus::from_name(status),
                by: v["verified_by"].as_str().map(str::to_string),
                reason: v["reason"].as_str().map(str::to_string),
            });
        }
        Ok(())
    }

    /// A record as [`Evidence`], with its summary as of the as-of time.
    pub fn evidence(&self, record: &Record) -> Result<Evidence> {
        let summary = crate::summary::summary(&self.facts() as &dyn FactRead, record)?;
        Ok(Evidence {
            id: record.id.clone(),
            kind: record.kind,
            format: record.format,
            digest: record.digest.clone(),
            environment: record.environment.clone(),
            subjects: record.subjects.clone(),
            producer: record.producer.clone(),
            ingested_at: record.ingested_at.clone(),
            verification: record.verification.clone(),
            summary,
        })
    }

    /// Every deploy and rollback of `blueprint` the caller may see, in time order.
    pub fn changes(&self, blueprint: &str) -> Result<Vec<Change>> {
        if !self.visible(blueprint) {
            return Ok(Vec::new());
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT r.id, r.kind, r.blueprint_name, r.blueprint_version, r.git_sha, r.producer, \
             r.ingested_at, r.seq, f.native FROM records r JOIN blob_facts f ON f.digest = r.digest \
             WHERE r.kind IN ('deploy', 'rollback') AND r.blueprint_name = ?1 \
             AND (?2 IS NULL OR r.ingested_at <= ?2)",
        )?;
        let rows = stmt.query_map(rusqlite::params![blueprint, self.known_by], change_row)?;
        let mut changes = Vec::new();
        for row in rows {
            if let Some(c) = change_from(row?) {
                changes.push(c);
            }
        }
        sort_changes(&mut changes);
        Ok(changes)
    }

    /// Deploys and rollbacks among records matching `condition`, in time order. The kind is
    /// checked without its index (`+r.kind`), so that `condition` chooses the index (an id, a
    /// subject): otherwise SQLite may walk every deploy to find one. A condition that wants
    /// the kind index repeats `r.kind IN (...)` itself.
    pub fn changes_where(&self, condition: &str, params: &[&dyn ToSql]) -> Result<Vec<Change>> {
        let n = params.len() + 1;
        let sql = format!(
            "SELECT r.id, r.kind, r.blueprint_name, r.blueprint_version, r.git_sha, r.producer, \
             r.ingested_at, r.seq, f.native FROM records r JOIN blob_facts f ON f.digest = r.digest \
             WHERE +r.kind IN ('deploy', 'rollback') AND ({condition}) \
             AND (?{n} IS NULL OR r.ingested_at <= ?{n})"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut all: Vec<&dyn ToSql> = params.to_vec();
        all.push(&self.known_by);
        let rows = stmt.query_map(all.as_slice(), change_row)?;
        let mut changes = Vec::new();
        for row in rows {
            if let Some(c) = change_from(row?)
                && self.visible(&c.blueprint)
            {
                changes.push(c);
            }
        }
        sort_changes(&mut changes);
        Ok(changes)
    }

    /// Where each of `blueprints` is live, keyed by (blueprint, version).
    pub fn live_by_version(
        &self,
        blueprints: impl IntoIterator<Item = String>,
    ) -> Result<BTreeMap<(String, String), Vec<Live>>> {
        let mut out: BTreeMap<(String, String), Vec<Live>> = BTreeMap::new();
        let mut seen = std::collections::BTreeSet::new();
        for name in blueprints {
            if seen.insert(name.clone()) {
                for (version, live) in self.live_of(&name)? {
                    out.insert((name.clone(), version), live);
                }
            }
        }
        Ok(out)
    }

    /// Where the versions of `blueprint` are live, by version. Read from the `changes` table
    /// (the same answer as [`live_versions`] over the documents, which a test checks), newest
    /// first per environment so that only each environment's latest change is decoded; the
    /// artifact of a change without one is that of the last earlier deploy of its version
    /// there, looked up only then.
    pub fn live_of(&self, blueprint: &str) -> Result<BTreeMap<String, Vec<Live>>> {
        let mut live: BTreeMap<String, Live> = BTreeMap::new();
        if !self.visible(blueprint) {
            return Ok(BTreeMap::new());
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT environment, record_id, kind, version, time, artifact, time_us, seq \
             FROM changes WHERE blueprint_name = ?1 AND takes_effect = 1 \
             AND (?2 IS NULL OR ingested_at <= ?2) \
             ORDER BY environment DESC, time_us DESC, seq DESC",
        )?;
        let mut artifact_before = self.conn.prepare_cached(
            "SELECT artifact FROM changes WHERE blueprint_name = ?1 AND environment = ?2 \
             AND (time_us, seq) < (?3, ?4) AND kind = 'deploy' AND version = ?5 \
             AND takes_effect = 1 AND artifact IS NOT NULL \
             AND (?6 IS NULL OR ingested_at <= ?6) ORDER BY time_us DESC, seq DESC LIMIT 1",
        )?;
        let mut rows = stmt.query(rusqlite::params![blueprint, self.known_by])?;
        let mut environment = None::<String>;
        while let Some(row) = rows.next()? {
            let env = row.get_ref(0)?.as_str().unwrap_or_default();
            if environment.as_deref() == Some(env) {
                continue;
            }
            environment = Some(env.to_string());
            let kind: String = row.get(2)?;
            let Ok(via) = kind.parse::<Kind>() else {
                continue;
            };
            let version: String = row.get(3)?;
            let mut artifact: Option<String> = row.get(5)?;
            if artifact.is_none() {
                let (time_us, seq): (i64, i64) = (row.get(6)?, row.get(7)?);
                artifact = rusqlite::OptionalExtension::optional(artifact_before.query_row(
                    rusqlite::params![blueprint, env, time_us, seq, version, self.known_by],
                    |r| r.get(0),
                ))?;
            }
            live.insert(
                env.to_string(),
                Live {
                    blueprint: blueprint.to_string(),
                    version,
                    environment: env.to_string(),
                    since: row.get(4)?,
                    record_id: row.get(1)?,
                    via,
                    artifact,
                },
            );
        }
        let mut out: BTreeMap<String, Vec<Live>> = BTreeMap::new();
        for l in live.into_values() {
            out.entry(l.version.clone()).or_default().push(l);
        }
        Ok(out)
    }
}

/// The `changes` row of a deploy or rollback record (see migration 0007), written at ingest in
/// the transaction that adds the record. A record whose document cannot be read gets none, as
/// it counts in no query.
pub(crate) fn index_change(conn: &Connection, record_id: &str) -> Result<()> {
    write_changes(conn, "r.id = ?1", &[&record_id])
}

/// Fills `changes` from every deploy and rollback record (migration 0007).
pub(crate) fn fill_changes(conn: &Connection) -> Result<()> {
    write_changes(conn, "1", &[])
}

fn write_changes(conn: &Connection, condition: &str, params: &[&dyn ToSql]) -> Result<()> {
    let mut select = conn.prepare(&format!(
        "SELECT r.id, r.kind, r.blueprint_name, r.blueprint_version, r.git_sha, r.producer, \
         r.ingested_at, r.seq, f.native FROM records r JOIN blob_facts f ON f.digest = r.digest \
         WHERE r.kind IN ('deploy', 'rollback') AND ({condition})"
    ))?;
    let mut insert = conn.prepare_cached(
        "INSERT OR REPLACE INTO changes (blueprint_name, environment, time_us, seq, record_id, \
         kind, version, time, artifact, takes_effect, ingested_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    let rows = select.query_map(params, change_row)?;
    for row in rows {
        let Some(c) = change_from(row?) else {
            continue;
        };
        insert.execute(rusqlite::params![
            c.blueprint,
            c.environment,
            time_key(&c.time),
            c.seq,
            c.record_id,
            c.kind.as_str(),
            c.version,
            c.time,
            c.artifact,
            c.takes_effect(),
            c.ingested_at,
        ])?;
    }
    Ok(())
}

/// Where the `changes` table disagrees with the deploy and rollback records and documents it
/// is derived from (for `evault fsck`): a missing, extra or altered row, one line each.
pub(crate) fn check_changes(conn: &Connection) -> Result<Vec<String>> {
    let mut expected: BTreeMap<String, StoredChange> = BTreeMap::new();
    let mut select = conn.prepare(
        "SELECT r.id, r.kind, r.blueprint_name, r.blueprint_version, r.git_sha, r.producer, \
         r.ingested_at, r.seq, f.native FROM records r JOIN blob_facts f ON f.digest = r.digest \
         WHERE r.kind IN ('deploy', 'rollback')",
    )?;
    for row in select.query_map([], change_row)? {
        if let Some(c) = change_from(row?) {
            expected.insert(c.record_id.clone(), changes_row(&c));
        }
    }
    let mut problems = Vec::new();
    let mut stored = conn.prepare(
        "SELECT blueprint_name, environment, time_us, seq, record_id, kind, version, time, \
         artifact, takes_effect, ingested_at FROM changes",
    )?;
    let rows = stored.query_map([], |r| StoredChange::try_from(r))?;
    for row in rows {
        let row: StoredChange = row?;
        match expected.remove(&row.4) {
            None => problems.push(format!(
                "changes: a row names record {}, which is no deploy or rollback with a readable \
                 document",
                row.4
            )),
            Some(want) if want != row => problems.push(format!(
                "changes: the row of record {} differs from its document (live-deployment \
                 answers read it)",
                row.4
            )),
            Some(_) => {}
        }
    }
    for id in expected.keys() {
        problems.push(format!(
            "changes: no row for deploy or rollback record {id}"
        ));
    }
    Ok(problems)
}

/// A `changes` row, in column order.
type StoredChange = (
    String,
    String,
    i64,
    i64,
    String,
    String,
    String,
    String,
    Option<String>,
    bool,
    String,
);

fn changes_row(c: &Change) -> StoredChange {
    (
        c.blueprint.clone(),
        c.environment.clone(),
        time_key(&c.time),
        c.seq,
        c.record_id.clone(),
        c.kind.as_str().to_string(),
        c.version.clone(),
        c.time.clone(),
        c.artifact.clone(),
        c.takes_effect(),
        c.ingested_at.clone(),
    )
}

/// A change's place in time: its document's time in microseconds since 1970 (UTC); a time
/// that does not parse comes first. Ties are broken by ingestion order.
fn time_key(time: &str) -> i64 {
    DateTime::parse_from_rfc3339(time).map_or(i64::MIN, |t| t.timestamp_micros())
}

type ChangeRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    Option<String>,
);

fn change_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ChangeRow> {
    ChangeRow::try_from(r)
}

/// A change from its record and native document; `None` if the document cannot be read
/// (which `evault fsck` and `log verify` would report).
fn change_from(row: ChangeRow) -> Option<Change> {
    let (id, kind, blueprint, version, git_sha, producer, ingested_at, seq, native) = row;
    let doc: Value = serde_json::from_str(native.as_deref()?).ok()?;
    let text = |k: &str| doc.get(k).and_then(Value::as_str).map(str::to_string);
    let kind: Kind = kind.parse().ok()?;
    let (version, from_version, artifact) = match kind {
        Kind::Deploy => (version, None, text("artifact")),
        Kind::Rollback => (text("to_version")?, text("from_version"), text("artifact")),
        _ => return None,
    };
    Some(Change {
        record_id: id,
        kind,
        blueprint,
        version,
        from_version,
        environment: text("environment")?,
        time: text("time")?,
        actor: text("actor").unwrap_or_default(),
        status: text("status"),
        artifact,
        git_sha,
        target: text("target"),
        run_id: text("run_id"),
        trigger: text("trigger"),
        reason: text("reason"),
        incident: text("incident"),
        producer,
        ingested_at,
        seq,
    })
}

/// Time order: by the document's time (as [`time_key`]), then by ingestion.
fn sort_changes(changes: &mut [Change]) {
    changes.sort_by_cached_key(|c| (time_key(&c.time), c.seq));
}

/// A full git SHA from a full SHA or a prefix of at least 7 hexadecimal characters, among the
/// records the reader sees.
pub(crate) fn resolve_sha(reader: &Reader<'_>, sha: &str) -> Result<String> {
    let lower = sha.to_ascii_lowercase();
    if lower.len() < 7 || lower.len() > 64 || !lower.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::Invalid(format!(
            "invalid commit '{}': expected a git SHA or a prefix of at least 7 hexadecimal \
             characters",
            evault_schema::validate::excerpt(sha)
        )));
    }
    let upper = format!("{lower}g");
    let mut stmt = reader.conn.prepare_cached(
        "SELECT DISTINCT git_sha, blueprint_name FROM records WHERE git_sha >= ?1 AND git_sha < ?2 \
         AND (?3 IS NULL OR ingested_at <= ?3)",
    )?;
    let rows = stmt.query_map(rusqlite::params![lower, upper, reader.known_by], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut found = std::collections::BTreeSet::new();
    for row in rows {
        let (sha, blueprint) = row?;
        if reader.visible(&blueprint) {
            found.insert(sha);
        }
    }
    match found.len() {
        0 => Err(Error::NotFound(format!(
            "no evidence for commit {lower}{}",
            as_of_suffix(reader.as_of)
        ))),
        1 => Ok(found.into_iter().next().unwrap_or_default()),
        n => Err(Error::Invalid(format!(
            "commit prefix {lower} is ambiguous ({n} commits); give more characters"
        ))),
    }
}

/// ` as of <time>` for messages, when the query has one.
pub(crate) fn as_of_suffix(as_of: Option<DateTime<Utc>>) -> String {
    as_of.map_or_else(String::new, |t| format!(" as of {}", format_time(t)))
}
