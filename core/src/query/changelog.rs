//! `evault audit changelog`: every deploy, approval and rollback in a period, each with the
//! completeness of its evidence (SOC 2 change management).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use evault_schema::Kind;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::trace::{VersionEvidence, change_gaps, gaps, version_evidence};
use super::{QueryContext, Reader, on_snapshot};
use crate::error::{Error, Result};
use crate::record::{Blueprint, format_time};
use crate::vault::Vault;

/// One change-management event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangelogEntry {
    /// When it happened (the document's `time`).
    pub time: String,
    /// `deploy`, `approval` or `rollback`.
    pub kind: Kind,
    pub environment: String,
    /// The version deployed, approved, or restored by a rollback.
    pub blueprint: Blueprint,
    pub git_sha: String,
    /// Who deployed, approved or rolled back.
    pub actor: String,
    pub record_id: String,
    /// What the document says beyond the above: a deploy's artifact and status, an approval's
    /// decision, reason and expiry, a rollback's versions, trigger, reason and incident.
    pub detail: Value,
    /// The version's evidence records by kind.
    pub evidence: BTreeMap<String, usize>,
    /// What is missing; empty when the evidence is complete.
    pub gaps: Vec<String>,
}

/// `evault audit changelog`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Changelog {
    pub since: String,
    pub until: String,
    pub environment: Option<String>,
    pub as_of: Option<String>,
    /// Oldest first.
    pub entries: Vec<ChangelogEntry>,
    pub deploys: usize,
    pub approvals: usize,
    pub rollbacks: usize,
    /// Entries whose evidence is complete.
    pub complete: usize,
    /// Entries with gaps.
    pub incomplete: usize,
    /// More than [`MAX_ENTRIES`] changes: the oldest are listed; ask for a shorter period.
    pub truncated: bool,
}

/// Most entries one change log lists (a bound on memory and output); `truncated` says when
/// a period holds more: ask for a shorter one.
pub const MAX_ENTRIES: usize = 10_000;

impl Vault {
    /// Deploys, approvals and rollbacks whose time is in [`since`, `until`), optionally in one
    /// environment, each with its evidence and gaps.
    pub fn changelog(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        environment: Option<&str>,
        ctx: &QueryContext,
    ) -> Result<Changelog> {
        if since >= until {
            return Err(Error::Invalid(format!(
                "--since {} is not before --until {}",
                format_time(since),
                format_time(until)
            )));
        }
        on_snapshot(self.index.as_ref(), |conn| {
            let reader = Reader::new(conn, ctx);
            let in_period = |time: &str| {
                DateTime::parse_from_rfc3339(time)
                    .ok()
                    .map(|t| t.with_timezone(&Utc))
                    .filter(|t| *t >= since && *t < until)
            };
            let mut cache: HashMap<(String, String, Option<String>), VersionEvidence> =
                HashMap::new();
            let mut evidence = |bp: &str, version: &str, artifact: Option<&str>| {
                let key = (
                    bp.to_string(),
                    version.to_string(),
                    artifact.map(str::to_string),
                );
                if !cache.contains_key(&key) {
                    let ev = version_evidence(&reader, bp, version, artifact)?;
                    cache.insert(key.clone(), ev);
                }
                Ok::<_, Error>(cache[&key].clone())
            };
            let mut entries = Vec::new();
            let changes = reader.changes_where(
                "r.kind IN ('deploy', 'rollback') AND (?1 IS NULL OR r.environment = ?1)",
                &[&environment as &dyn rusqlite::ToSql],
            )?;
            for c in changes {
                let Some(at) = in_period(&c.time) else {
                    continue;
                };
                let ev = evidence(&c.blueprint, &c.version, c.artifact.as_deref())?;
                let (sha, gaps) = change_gaps(&reader, &c, &ev)?;
                let detail: serde_json::Map<String, Value> = match c.kind {
                    Kind::Rollback => [
                        ("from_version", c.from_version.clone()),
                        ("to_version", Some(c.version.clone())),
                        ("trigger", c.trigger.clone()),
                        ("reason", c.reason.clone()),
                        ("incident", c.incident.clone()),
                        ("artifact", c.artifact.clone()),
                    ]
                    .into_iter()
                    .filter_map(|(k, v)| v.map(|v| (k.to_string(), Value::String(v))))
                    .collect(),
                    _ => [
                        ("artifact", c.artifact.clone()),
                        ("status", c.status.clone()),
                        ("target", c.target.clone()),
                        ("run_id", c.run_id.clone()),
                    ]
                    .into_iter()
                    .filter_map(|(k, v)| v.map(|v| (k.to_string(), Value::String(v))))
                    .collect(),
                };
                entries.push(ChangelogEntry {
                    time: format_time(at),
                    kind: c.kind,
                    environment: c.environment.clone(),
                    blueprint: Blueprint {
                        name: c.blueprint.clone(),
                        version: c.version.clone(),
                    },
                    git_sha: if sha.is_empty() {
                        c.git_sha.clone()
                    } else {
                        sha
                    },
                    actor: c.actor.clone(),
                    record_id: c.record_id.clone(),
                    detail: Value::Object(detail),
                    evidence: ev.counts(),
                    gaps,
                });
            }
            let mut stmt = conn.prepare_cached(
                "SELECT r.id, r.blueprint_name, r.blueprint_version, r.git_sha, f.native \
                 FROM records r JOIN blob_facts f ON f.digest = r.digest \
                 WHERE r.kind = 'approval' AND (?1 IS NULL OR r.environment = ?1) \
                 AND (?2 IS NULL OR r.ingested_at <= ?2)",
            )?;
            let mut rows = stmt.query(rusqlite::params![environment, reader.known_by])?;
            while let Some(row) = rows.next()? {
                let blueprint: String = row.get(1)?;
                if !reader.visible(&blueprint) {
                    continue;
                }
                let native: Option<String> = row.get(4)?;
                let Some(doc) = native.and_then(|n| serde_json::from_str::<Value>(&n).ok()) else {
                    continue;
                };
                let text = |k: &str| doc.get(k).and_then(Value::as_str).map(str::to_string);
                let Some(at) = text("time").as_deref().and_then(in_period) else {
                    continue;
                };
                let version: String = row.get(2)?;
                let git_sha: String = row.get(3)?;
                let detail: serde_json::Map<String, Value> =
                    ["decision", "reason", "expires_at", "role", "ticket"]
                        .iter()
                        .filter_map(|k| doc.get(*k).map(|v| ((*k).to_string(), v.clone())))
                        .collect();
                // An approval is judged by the evidence it approved.
                let ev = evidence(&blueprint, &version, None)?;
                entries.push(ChangelogEntry {
                    time: format_time(at),
                    kind: Kind::Approval,
                    environment: text("environment").unwrap_or_default(),
                    gaps: gaps(&ev, "", &git_sha, None, None),
                    evidence: ev.counts(),
                    blueprint: Blueprint {
                        name: blueprint,
                        version,
                    },
                    git_sha,
                    actor: text("approver").unwrap_or_default(),
                    record_id: row.get(0)?,
                    detail: Value::Object(detail),
                });
            }
            entries.sort_by(|a, b| a.time.cmp(&b.time).then(a.record_id.cmp(&b.record_id)));
            let truncated = entries.len() > MAX_ENTRIES;
            entries.truncate(MAX_ENTRIES);
            let count = |k: Kind| entries.iter().filter(|e| e.kind == k).count();
            let complete = entries.iter().filter(|e| e.gaps.is_empty()).count();
            Ok(Changelog {
                since: format_time(since),
                until: format_time(until),
                environment: environment.map(str::to_string),
                as_of: ctx.as_of.map(format_time),
                deploys: count(Kind::Deploy),
                approvals: count(Kind::Approval),
                rollbacks: count(Kind::Rollback),
                incomplete: entries.len() - complete,
                complete,
                truncated,
                entries,
            })
        })
    }
}
