//! `evault trace deploy` (a deploy back to its commit and everything that vouched for it) and
//! `evault trace commit` (a commit forward to its versions, artifacts and deploys).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use evault_schema::Kind;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    Change, Evidence, Live, QueryContext, Reader, as_of_suffix, live_versions, needs_approval,
    on_snapshot, resolve_sha,
};
use crate::error::{Error, Result};
use crate::record::{Blueprint, Record, format_time};
use crate::vault::{MIN_ID_PREFIX, Vault};
use crate::verification::VerificationStatus;

/// The evidence of one blueprint version, grouped the way an auditor reads it. Deploys and
/// rollbacks are not here: they are changes (see [`Change`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VersionEvidence {
    pub provenance: Vec<Evidence>,
    pub sboms: Vec<Evidence>,
    /// Vulnerability scans, with counts by severity before and after VEX.
    pub scans: Vec<Evidence>,
    pub vex: Vec<Evidence>,
    pub signatures: Vec<Evidence>,
    pub approvals: Vec<Evidence>,
    pub rollback_plans: Vec<Evidence>,
    pub tests: Vec<Evidence>,
    /// Other attestations and files.
    pub other: Vec<Evidence>,
    /// The release gate's decisions about the version (`policy-result` records), every
    /// environment's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<Evidence>,
}

impl VersionEvidence {
    fn add(&mut self, e: Evidence) {
        let list = match e.kind {
            Kind::Provenance => &mut self.provenance,
            Kind::Sbom => &mut self.sboms,
            Kind::VulnScan => &mut self.scans,
            Kind::Vex => &mut self.vex,
            Kind::Signature => &mut self.signatures,
            Kind::Approval => &mut self.approvals,
            Kind::RollbackPlan => &mut self.rollback_plans,
            Kind::TestReport => &mut self.tests,
            Kind::PolicyResult => &mut self.gates,
            Kind::Deploy | Kind::Rollback => return,
            Kind::Attestation | Kind::Other => &mut self.other,
        };
        if !list.iter().any(|x| x.id == e.id) {
            list.push(e);
        }
    }

    /// The evidence kinds present, with counts.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for (kind, list) in [
            (Kind::Provenance, &self.provenance),
            (Kind::Sbom, &self.sboms),
            (Kind::VulnScan, &self.scans),
            (Kind::Vex, &self.vex),
            (Kind::Signature, &self.signatures),
            (Kind::Approval, &self.approvals),
            (Kind::RollbackPlan, &self.rollback_plans),
            (Kind::TestReport, &self.tests),
            (Kind::PolicyResult, &self.gates),
        ] {
            if !list.is_empty() {
                out.insert(kind.as_str().to_string(), list.len());
            }
        }
        let other = self.other.len();
        if other > 0 {
            out.insert("other".into(), other);
        }
        out
    }
}

/// The evidence of `blueprint` `version`, plus provenance and signatures about `artifact`
/// pushed under other links.
pub(crate) fn version_evidence(
    reader: &Reader<'_>,
    blueprint: &str,
    version: &str,
    artifact: Option<&str>,
) -> Result<VersionEvidence> {
    let mut ev = VersionEvidence::default();
    let records = reader.records(
        "r.blueprint_name = ?1 AND r.blueprint_version = ?2 \
         AND r.kind NOT IN ('deploy', 'rollback')",
        &[&blueprint, &version],
    )?;
    for r in &records {
        ev.add(reader.evidence(r)?);
    }
    if let Some(artifact) = artifact {
        // `+r.kind`: find the records by the subject index, not by walking every provenance
        // record through the kind index.
        let about = reader.records(
            "r.id IN (SELECT record_id FROM record_subjects WHERE digest = ?1) \
             AND +r.kind IN ('provenance', 'signature', 'attestation')",
            &[&artifact],
        )?;
        for r in &about {
            ev.add(reader.evidence(r)?);
        }
    }
    Ok(ev)
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

fn field<'a>(e: &'a Evidence, key: &str) -> Option<&'a str> {
    e.summary.get(key).and_then(Value::as_str)
}

fn time_of(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn verdict(e: &Evidence) -> String {
    match &e.verification {
        Some(v) => match &v.reason {
            Some(reason) => format!("{}: {reason}", v.status.as_str()),
            None => v.status.as_str().to_string(),
        },
        None => "never verified".into(),
    }
}

fn verified(e: &Evidence) -> bool {
    e.verification
        .as_ref()
        .is_some_and(|v| v.status == VerificationStatus::Verified)
}

/// What is missing or wrong in the evidence of a version deployed (or about to be) to
/// `environment` at `git_sha` (empty: not checked), one sentence each. `deploy` is the change being judged, when
/// there is one: approvals must predate it and not have expired by then.
pub fn gaps(
    ev: &VersionEvidence,
    environment: &str,
    git_sha: &str,
    artifact: Option<&str>,
    deploy_time: Option<&str>,
) -> Vec<String> {
    let mut gaps = Vec::new();
    if ev.provenance.is_empty() {
        gaps.push("no provenance recorded".to_string());
    } else {
        if let Some(a) = artifact
            && !ev
                .provenance
                .iter()
                .any(|p| p.subjects.iter().any(|s| s == a))
        {
            gaps.push(format!("no provenance names the deployed artifact {a}"));
        }
        for p in &ev.provenance {
            if !verified(p) {
                gaps.push(format!(
                    "provenance {} is not verified ({})",
                    short(&p.id),
                    verdict(p)
                ));
            }
            if let Some(commit) = field(p, "source_commit")
                && !git_sha.is_empty()
                && !commit.eq_ignore_ascii_case(git_sha)
            {
                gaps.push(format!(
                    "provenance {} says the build was from commit {commit}, not {git_sha}",
                    short(&p.id)
                ));
            }
        }
    }
    if ev.sboms.is_empty() {
        gaps.push("no SBOM recorded".into());
    }
    if ev.scans.is_empty() {
        gaps.push("no vulnerability scan recorded".into());
    }
    if ev.signatures.is_empty() {
        gaps.push("no signature recorded".into());
    } else if !ev.signatures.iter().any(verified) {
        gaps.push(format!(
            "no verified signature ({} signature record(s), none verified)",
            ev.signatures.len()
        ));
    }
    if needs_approval(environment) {
        approval_gaps(ev, environment, deploy_time, &mut gaps);
    }
    if ev.rollback_plans.is_empty() {
        gaps.push("no rollback plan recorded".into());
    }
    if ev.tests.is_empty() {
        gaps.push("no test report recorded".into());
    }
    gaps
}

fn approval_gaps(
    ev: &VersionEvidence,
    environment: &str,
    deploy_time: Option<&str>,
    gaps: &mut Vec<String>,
) {
    let for_env: Vec<&Evidence> = ev
        .approvals
        .iter()
        .filter(|a| field(a, "environment").is_some_and(|e| e.eq_ignore_ascii_case(environment)))
        // Exceptions (approvals naming vulnerabilities) accept a risk; they do not approve a
        // release.
        .filter(|a| {
            a.summary
                .get("vulnerabilities")
                .and_then(Value::as_array)
                .is_none_or(|v| v.is_empty())
        })
        .collect();
    if for_env.is_empty() {
        gaps.push(format!("no approval recorded for {environment}"));
        return;
    }
    let at = deploy_time.and_then(time_of);
    let mut problems = Vec::new();
    let mut valid = false;
    for a in &for_env {
        let who = field(a, "approver").unwrap_or("someone");
        if field(a, "decision") == Some("reject") {
            problems.push(format!(
                "approval {} by {who} rejected the change: {}",
                short(&a.id),
                field(a, "reason").unwrap_or("")
            ));
            continue;
        }
        let given = field(a, "time").and_then(time_of);
        let expires = field(a, "expires_at").and_then(time_of);
        match (at, given, expires) {
            (Some(at), Some(given), _) if given > at => problems.push(format!(
                "approval {} by {who} was given after the deploy",
                short(&a.id)
            )),
            (Some(at), _, Some(expires)) if expires <= at => problems.push(format!(
                "approval {} by {who} had expired at {} before the deploy",
                short(&a.id),
                format_time(expires)
            )),
            _ => valid = true,
        }
    }
    // A rejection stands even next to an approval: someone said no.
    if !valid || problems.iter().any(|p| p.contains("rejected")) {
        gaps.extend(problems);
        if !valid {
            gaps.push(format!("no valid approval for {environment}"));
        }
    }
}

/// The commit running after `change` and the gaps in its evidence `ev`: for a deploy, the
/// deployed version's with the approval its environment needs; for a rollback, the restored
/// version's (its own commit, which the rollback record, linked to the version taken out, does
/// not carry), no new approval, and a linked incident.
pub(crate) fn change_gaps(
    reader: &Reader<'_>,
    change: &Change,
    ev: &VersionEvidence,
) -> Result<(String, Vec<String>)> {
    if change.kind != Kind::Rollback {
        let gaps = gaps(
            ev,
            &change.environment,
            &change.git_sha,
            change.artifact.as_deref(),
            Some(change.time.as_str()),
        );
        return Ok((change.git_sha.clone(), gaps));
    }
    let shas = super::record::version_shas(reader, &change.blueprint, &change.version)?;
    let sha = match shas.len() {
        1 => shas.into_iter().next().unwrap_or_default(),
        _ => String::new(),
    };
    let mut gaps = gaps(ev, "", &sha, change.artifact.as_deref(), None);
    if change.incident.is_none() {
        gaps.push("no incident linked to the rollback".into());
    }
    Ok((sha, gaps))
}

/// `evault trace deploy`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeployTrace {
    /// The time the answer is as of, when asked for one.
    pub as_of: Option<String>,
    /// The deploy (or rollback) traced.
    pub deploy: Change,
    pub blueprint: Blueprint,
    pub git_sha: String,
    /// The source repository, from the evidence's links or its provenance.
    pub repo: Option<String>,
    pub evidence: VersionEvidence,
    /// Rollbacks from or to this version, in any environment.
    pub rollbacks: Vec<Change>,
    /// Other deploys of this version or this artifact.
    pub other_deploys: Vec<Change>,
    /// Where this version is live.
    pub live: Vec<Live>,
    /// Every missing or failing link, one sentence each; empty when the chain is complete.
    pub gaps: Vec<String>,
    /// What the release gate said about this version in this environment before the deploy
    /// (deploys only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<crate::gate::GateHistory>,
}

/// `evault trace commit`: one blueprint version built from the commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommitVersion {
    pub blueprint: Blueprint,
    pub repo: Option<String>,
    /// Evidence records by kind.
    pub evidence: BTreeMap<String, usize>,
    /// Artifact digests the version's evidence and deploys name.
    pub artifacts: Vec<String>,
    /// Builders its provenance names.
    pub builders: Vec<String>,
    /// Its deploys, in time order.
    pub deploys: Vec<Change>,
    /// Rollbacks from or to it.
    pub rollbacks: Vec<Change>,
    /// Where it is live.
    pub live: Vec<Live>,
}

/// `evault trace commit`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommitTrace {
    pub as_of: Option<String>,
    pub git_sha: String,
    pub versions: Vec<CommitVersion>,
}

impl Vault {
    /// Traces a deploy (a deploy or rollback record id or prefix, or an artifact digest: its
    /// latest deploy) back to its commit and its evidence.
    pub fn trace_deploy(&self, target: &str, ctx: &QueryContext) -> Result<DeployTrace> {
        on_snapshot(self.index.as_ref(), |conn| {
            let reader = Reader::new(conn, ctx);
            let deploy = find_deploy(&reader, target)?;
            let bp = &deploy.blueprint;
            let version = &deploy.version;
            let evidence = version_evidence(&reader, bp, version, deploy.artifact.as_deref())?;
            let changes = reader.changes(bp)?;
            let rollbacks = changes
                .iter()
                .filter(|c| {
                    c.kind == Kind::Rollback
                        && (&c.version == version || c.from_version.as_ref() == Some(version))
                })
                .cloned()
                .collect();
            let other_deploys = changes
                .iter()
                .filter(|c| {
                    c.kind == Kind::Deploy
                        && c.record_id != deploy.record_id
                        && (&c.version == version
                            || (c.artifact.is_some() && c.artifact == deploy.artifact))
                })
                .cloned()
                .collect();
            let live = live_versions(&changes)
                .into_iter()
                .filter(|l| &l.version == version)
                .collect();
            let repo = repo_of(&reader, bp, version, &evidence)?;
            let (git_sha, gaps) = change_gaps(&reader, &deploy, &evidence)?;
            let gate = (deploy.kind == Kind::Deploy).then(|| {
                let decisions: Vec<crate::gate::PastDecision> = evidence
                    .gates
                    .iter()
                    .filter(|g| {
                        field(g, "environment")
                            .is_some_and(|e| e.eq_ignore_ascii_case(&deploy.environment))
                    })
                    .map(|g| crate::gate::PastDecision::from_doc(g.id.clone(), &g.summary))
                    .collect();
                crate::gate::gate_history(&decisions, time_of(&deploy.time))
            });
            Ok(DeployTrace {
                as_of: ctx.as_of.map(format_time),
                blueprint: Blueprint {
                    name: bp.clone(),
                    version: version.clone(),
                },
                git_sha,
                repo,
                evidence,
                rollbacks,
                other_deploys,
                live,
                gaps,
                gate,
                deploy,
            })
        })
    }

    /// Traces a commit (full SHA or a prefix of at least 7 characters) forward: the blueprint
    /// versions built from it, their artifacts, deploys and rollbacks.
    pub fn trace_commit(&self, sha: &str, ctx: &QueryContext) -> Result<CommitTrace> {
        on_snapshot(self.index.as_ref(), |conn| {
            let reader = Reader::new(conn, ctx);
            let git_sha = resolve_sha(&reader, sha)?;
            let records = reader.records("r.git_sha = ?1", &[&git_sha])?;
            let mut by_version: BTreeMap<(String, String), Vec<&Record>> = BTreeMap::new();
            for r in &records {
                by_version
                    .entry((r.blueprint.name.clone(), r.blueprint.version.clone()))
                    .or_default()
                    .push(r);
            }
            let mut versions = Vec::new();
            let mut changes_of: BTreeMap<String, Vec<Change>> = BTreeMap::new();
            for ((name, version), records) in by_version {
                if !changes_of.contains_key(&name) {
                    changes_of.insert(name.clone(), reader.changes(&name)?);
                }
                let changes = &changes_of[&name];
                let mut evidence = VersionEvidence::default();
                let blobs: BTreeSet<&str> = records.iter().map(|r| r.digest.as_str()).collect();
                let mut artifacts = BTreeSet::new();
                let mut builders = BTreeSet::new();
                for r in &records {
                    if matches!(r.kind, Kind::Deploy | Kind::Rollback) {
                        continue;
                    }
                    let e = reader.evidence(r)?;
                    if r.kind == Kind::Provenance
                        && let Some(b) = field(&e, "builder_id")
                    {
                        builders.insert(b.to_string());
                    }
                    // A signature's subject may be evidence (a signed SBOM), not an artifact.
                    if r.kind == Kind::Provenance
                        || (r.kind == Kind::Signature
                            && !r.subjects.iter().any(|s| blobs.contains(s.as_str())))
                    {
                        artifacts.extend(r.subjects.iter().cloned());
                    }
                    evidence.add(e);
                }
                let deploys: Vec<Change> = changes
                    .iter()
                    .filter(|c| c.kind == Kind::Deploy && c.version == version)
                    .cloned()
                    .collect();
                artifacts.extend(deploys.iter().filter_map(|d| d.artifact.clone()));
                let rollbacks = changes
                    .iter()
                    .filter(|c| {
                        c.kind == Kind::Rollback
                            && (c.version == version || c.from_version.as_ref() == Some(&version))
                    })
                    .cloned()
                    .collect();
                let live = live_versions(changes)
                    .into_iter()
                    .filter(|l| l.version == version)
                    .collect();
                let repo = repo_of(&reader, &name, &version, &evidence)?;
                versions.push(CommitVersion {
                    blueprint: Blueprint { name, version },
                    repo,
                    evidence: evidence.counts(),
                    artifacts: artifacts.into_iter().collect(),
                    builders: builders.into_iter().collect(),
                    deploys,
                    rollbacks,
                    live,
                });
            }
            Ok(CommitTrace {
                as_of: ctx.as_of.map(format_time),
                git_sha,
                versions,
            })
        })
    }
}

/// The deploy a `trace deploy` target names.
fn find_deploy(reader: &Reader<'_>, target: &str) -> Result<Change> {
    let target = target.trim();
    let suffix = as_of_suffix(reader.as_of);
    if target.to_ascii_lowercase().starts_with("sha256:") {
        let digest = evault_schema::validate::digest(target).map_err(|e| {
            Error::Invalid(format!(
                "invalid artifact digest '{}': {}",
                e.value, e.reason
            ))
        })?;
        let deploys = reader.changes_where(
            "+r.kind = 'deploy' AND r.id IN (SELECT record_id FROM record_subjects WHERE digest = ?1)",
            &[&digest],
        )?;
        // The deploy running: the latest that did not fail, else the latest.
        let running = deploys.iter().rposition(Change::takes_effect);
        return running
            .map(|i| deploys[i].clone())
            .or_else(|| deploys.last().cloned())
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "no deploy of artifact {digest} is recorded{suffix}"
                ))
            });
    }
    let prefix = target.to_ascii_lowercase();
    if prefix.len() < MIN_ID_PREFIX
        || prefix.len() > 32
        || !prefix.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(Error::Invalid(format!(
            "invalid deploy '{}': expected a deploy record id (or a prefix of at least \
             {MIN_ID_PREFIX} hexadecimal characters) or an artifact digest sha256:<hex>",
            evault_schema::validate::excerpt(target)
        )));
    }
    let upper = format!("{prefix}g");
    let records = reader.records("r.id >= ?1 AND r.id < ?2", &[&prefix, &upper])?;
    let record = match records.as_slice() {
        [] => {
            return Err(Error::NotFound(format!("no record {prefix}{suffix}")));
        }
        [r] => r,
        _ => {
            return Err(Error::Invalid(format!(
                "record prefix {prefix} is ambiguous ({} records); give more characters",
                records.len()
            )));
        }
    };
    if !matches!(record.kind, Kind::Deploy | Kind::Rollback) {
        return Err(Error::Invalid(format!(
            "record {} is {} evidence, not a deploy; trace a deploy record or an artifact digest",
            record.id, record.kind
        )));
    }
    reader
        .changes_where("r.id = ?1", &[&record.id])?
        .into_iter()
        .next()
        .ok_or_else(|| {
            Error::Integrity(format!(
                "deploy record {} has no readable document; run `evault fsck`",
                record.id
            ))
        })
}

/// The source repository of a version: from its records' links, else its provenance.
fn repo_of(
    reader: &Reader<'_>,
    blueprint: &str,
    version: &str,
    ev: &VersionEvidence,
) -> Result<Option<String>> {
    let mut stmt = reader.conn.prepare_cached(
        "SELECT repo FROM records WHERE blueprint_name = ?1 AND blueprint_version = ?2 \
         AND repo IS NOT NULL AND (?3 IS NULL OR ingested_at <= ?3) ORDER BY seq LIMIT 1",
    )?;
    let linked: Option<String> = rusqlite::OptionalExtension::optional(stmt.query_row(
        rusqlite::params![blueprint, version, reader.known_by],
        |r| r.get(0),
    ))?;
    Ok(linked.or_else(|| {
        ev.provenance
            .iter()
            .find_map(|p| field(p, "source_repo").map(str::to_string))
    }))
}
