//! `evault audit changelog`: every deploy, approval and rollback in a period, each with the
//! completeness of its evidence (SOC 2 change management).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use evault_schema::Kind;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::record::version_shas;
use super::trace::{VersionEvidence, gaps, version_evidence};
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
}

const DETAIL: &[(&str, &[&str])] = &[
    ("deploy", &["artifact", "status", "target", "run_id"]),
    (
        "approval",
        &["decision", "reason", "expires_at", "role", "ticket"],
    ),
    (
        "rollback",
        &[
            "from_version",
            "to_version",
            "trigger",
            "reason",
            "incident",
            "artifact",
        ],
    ),
];

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
            let mut stmt = conn.prepare_cached(
                "SELECT r.id, r.kind, r.blueprint_name, r.blueprint_version, r.git_sha, f.native \
                 FROM records r JOIN blob_facts f ON f.digest = r.digest \
                 WHERE r.kind IN ('deploy', 'approval', 'rollback') \
                 AND (?1 IS NULL OR r.environment = ?1) AND (?2 IS NULL OR r.ingested_at <= ?2) \
                 ORDER BY r.seq",
            )?;
            let mut rows = stmt.query(rusqlite::params![environment, reader.known_by])?;
            let mut entries = Vec::new();
            while let Some(row) = rows.next()? {
                let blueprint: String = row.get(2)?;
                if !reader.visible(&blueprint) {
                    continue;
                }
                let kind: String = row.get(1)?;
                let Ok(kind) = kind.parse::<Kind>() else {
                    continue;
                };
                let native: Option<String> = row.get(5)?;
                let Some(doc) = native.and_then(|n| serde_json::from_str::<Value>(&n).ok()) else {
                    continue;
                };
                let text = |k: &str| doc.get(k).and_then(Value::as_str).map(str::to_string);
                let Some(time) = text("time") else { continue };
                let Some(at) = DateTime::parse_from_rfc3339(&time)
                    .ok()
                    .map(|t| t.with_timezone(&Utc))
                else {
                    continue;
                };
                if at < since || at >= until {
                    continue;
                }
                let version = match kind {
                    Kind::Rollback => text("to_version").unwrap_or_default(),
                    _ => row.get(3)?,
                };
                let actor = match kind {
                    Kind::Approval => text("approver"),
                    _ => text("actor"),
                }
                .unwrap_or_default();
                let keys = DETAIL
                    .iter()
                    .find(|(k, _)| *k == kind.as_str())
                    .map_or(&[][..], |(_, keys)| *keys);
                let detail: serde_json::Map<String, Value> = keys
                    .iter()
                    .filter_map(|k| doc.get(*k).map(|v| ((*k).to_string(), v.clone())))
                    .collect();
                entries.push(ChangelogEntry {
                    time: format_time(at),
                    kind,
                    environment: text("environment").unwrap_or_default(),
                    blueprint: Blueprint {
                        name: blueprint,
                        version,
                    },
                    git_sha: row.get(4)?,
                    actor,
                    record_id: row.get(0)?,
                    detail: Value::Object(detail),
                    evidence: BTreeMap::new(),
                    gaps: Vec::new(),
                });
            }
            drop(rows);
            entries.sort_by(|a, b| a.time.cmp(&b.time).then(a.record_id.cmp(&b.record_id)));
            let mut cache: HashMap<(String, String), VersionEvidence> = HashMap::new();
            for e in &mut entries {
                let key = (e.blueprint.name.clone(), e.blueprint.version.clone());
                if !cache.contains_key(&key) {
                    let ev = version_evidence(&reader, &key.0, &key.1, None)?;
                    cache.insert(key.clone(), ev);
                }
                let ev = &cache[&key];
                e.evidence = ev.counts();
                if e.kind == Kind::Rollback {
                    // The record is linked to the version rolled back; show the restored one's.
                    let shas = version_shas(&reader, &key.0, &key.1)?;
                    if shas.len() == 1 {
                        e.git_sha = shas.into_iter().next().unwrap_or_default();
                    }
                }
                let artifact = e.detail.get("artifact").and_then(Value::as_str);
                e.gaps = match e.kind {
                    Kind::Deploy => gaps(
                        ev,
                        &e.environment,
                        &e.git_sha,
                        artifact,
                        Some(e.time.as_str()),
                    ),
                    // An approval is judged by the evidence it approved; a rollback by the
                    // version it restored, and it must name its incident.
                    _ => {
                        let mut g = gaps(ev, "", "", None, None);
                        if e.kind == Kind::Rollback && e.detail.get("incident").is_none() {
                            g.push("no incident linked to the rollback".into());
                        }
                        g
                    }
                };
            }
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
                entries,
            })
        })
    }
}
