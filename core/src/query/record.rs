//! `evault deploy` and `evault rollback`: evault writes its own deploy receipt or rollback
//! record, so pipelines and on-call engineers need no hand-written JSON.
//!
//! Every record is linked to a git commit. A deploy without `--git-sha`, and a rollback, take
//! it from the evidence the vault holds for the version (the rolled-back version, for a
//! rollback); when that evidence names no commit, or several, the command fails and asks for
//! `--git-sha`. The actor is the caller's identity: a token's name on a server, the OS user or
//! `--actor` in embedded mode; never a field of the request.

use std::collections::BTreeSet;
use std::io::Cursor;

use chrono::{DateTime, SubsecRound, Utc};
use evault_schema::documents::{
    BlueprintRef, DEPLOY_TYPE, Deploy, DeployStatus, ROLLBACK_TYPE, Rollback,
};
use evault_schema::{Kind, validate};
use serde::{Deserialize, Serialize};

use super::{QueryContext, Reader, live_versions, on_snapshot};
use crate::error::{Error, Result};
use crate::ingest::{LinkArgs, LinkStyle, PushRequest, PushSource, PushedRecord};
use crate::vault::Vault;

/// Default `trigger` of a rollback recorded without one.
pub const DEFAULT_TRIGGER: &str = "manual rollback";

/// What `evault deploy` and `POST /v1/deploys` record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    pub blueprint: String,
    pub version: String,
    #[serde(rename = "env")]
    pub environment: String,
    /// Digest of the deployed artifact.
    pub artifact: String,
    /// Default: the commit the version's evidence names.
    #[serde(default)]
    pub git_sha: Option<String>,
    #[serde(default)]
    pub status: Option<DeployStatus>,
    /// Cluster, region or namespace.
    #[serde(default)]
    pub target: Option<String>,
    /// The CI run that deployed.
    #[serde(default)]
    pub run_id: Option<String>,
    /// When it happened; default now. A retry that repeats the time (and everything else)
    /// finds the record already there instead of recording a second deploy.
    #[serde(default)]
    pub time: Option<DateTime<Utc>>,
}

/// What `evault rollback` and `POST /v1/rollbacks` record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    pub blueprint: String,
    #[serde(rename = "env")]
    pub environment: String,
    pub from_version: String,
    pub to_version: String,
    pub reason: String,
    /// What triggered it; default `manual rollback`.
    #[serde(default)]
    pub trigger: Option<String>,
    /// Link to the incident report.
    #[serde(default)]
    pub incident: Option<String>,
    /// Default: the commit the rolled-back version's evidence names.
    #[serde(default)]
    pub git_sha: Option<String>,
    /// When it happened; default now (see [`DeployRequest::time`]).
    #[serde(default)]
    pub time: Option<DateTime<Utc>>,
}

/// The time written into a document: now, to the microsecond (as the index keeps times).
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// A deploy or rollback as recorded: its record (created, or already present when the same
/// document was recorded before) and what the vault noticed about it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Recorded {
    #[serde(flatten)]
    pub record: PushedRecord,
    pub warnings: Vec<String>,
}

/// The commits the evidence of a version names (deploys and rollbacks, which only repeat a
/// commit, do not count).
pub(crate) fn version_shas(
    reader: &Reader<'_>,
    blueprint: &str,
    version: &str,
) -> Result<BTreeSet<String>> {
    let mut stmt = reader.conn.prepare_cached(
        "SELECT DISTINCT git_sha FROM records WHERE blueprint_name = ?1 AND blueprint_version = ?2 \
         AND kind NOT IN ('deploy', 'rollback') AND (?3 IS NULL OR ingested_at <= ?3)",
    )?;
    let rows = stmt.query_map(
        rusqlite::params![blueprint, version, reader.known_by],
        |r| r.get::<_, String>(0),
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The commit to link: the one given (with a warning if the evidence names others), else the
/// single commit the version's evidence names.
pub(crate) fn choose_sha(
    given: Option<&str>,
    known: &BTreeSet<String>,
    blueprint: &str,
    version: &str,
    warnings: &mut Vec<String>,
) -> Result<String> {
    match given {
        Some(sha) => {
            let sha = validate::git_sha(sha).map_err(|e| bad("git_sha", e))?;
            if !known.is_empty() && !known.contains(&sha) {
                warnings.push(format!(
                    "the evidence of {blueprint} {version} is for commit {}, not {sha}",
                    known.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
            Ok(sha)
        }
        None => match known.len() {
            1 => Ok(known.iter().next().cloned().unwrap_or_default()),
            0 => Err(Error::Invalid(format!(
                "the vault holds no evidence of {blueprint} {version} to take its git SHA from; \
                 pass --git-sha (git_sha)"
            ))),
            n => Err(Error::Invalid(format!(
                "the evidence of {blueprint} {version} names {n} commits ({}); pass --git-sha \
                 (git_sha) to say which was deployed",
                known.iter().cloned().collect::<Vec<_>>().join(", ")
            ))),
        },
    }
}

/// Refuses a caller whose scopes do not cover `blueprint`, before anything about the blueprint
/// is looked up (so that a refusal says nothing about another team's versions or commits).
pub(crate) fn check_scope(actor: &str, blueprint: &str, scopes: &[String]) -> Result<()> {
    if scopes.is_empty()
        || scopes
            .iter()
            .any(|p| crate::auth::scope_matches(p, blueprint))
    {
        return Ok(());
    }
    Err(Error::Forbidden(format!(
        "{actor} may act only on blueprints matching {}; this is for {blueprint}",
        scopes.join(", ")
    )))
}

pub(crate) fn bad(field: &str, e: validate::ValueError) -> Error {
    Error::Invalid(format!("invalid {field} '{}': {}", e.value, e.reason))
}

pub(crate) fn invalid(what: &str, e: evault_schema::documents::DocumentError) -> Error {
    Error::Invalid(format!("invalid {what}: {e}"))
}

impl Vault {
    /// Records a deploy receipt by `actor` (who may push for `scopes`).
    pub fn record_deploy(
        &self,
        req: DeployRequest,
        actor: &str,
        scopes: &[String],
    ) -> Result<Recorded> {
        let mut warnings = Vec::new();
        let blueprint =
            validate::blueprint_name(&req.blueprint).map_err(|e| bad("blueprint", e))?;
        let version = validate::version(&req.version).map_err(|e| bad("version", e))?;
        let artifact = validate::digest(&req.artifact).map_err(|e| bad("artifact", e))?;
        check_scope(actor, &blueprint, scopes)?;
        // Every value is checked before the vault is consulted; the commit is added after.
        let mut doc = Deploy {
            type_: DEPLOY_TYPE.into(),
            environment: req.environment,
            artifact: artifact.clone(),
            time: req.time.map_or_else(now, |t| t.trunc_subsecs(6)),
            actor: actor.to_string(),
            blueprint: Some(BlueprintRef {
                name: blueprint.clone(),
                version: version.clone(),
            }),
            git_sha: None,
            status: req.status,
            target: req.target,
            run_id: req.run_id,
        }
        .validated()
        .map_err(|e| invalid("deploy", e))?;
        let ctx = QueryContext {
            as_of: None,
            scopes: scopes.to_vec(),
        };
        let (known, subjects) = on_snapshot(self.index.as_ref(), |conn| {
            let reader = Reader::new(conn, &ctx);
            let known = version_shas(&reader, &blueprint, &version)?;
            let mut stmt = conn.prepare_cached(
                "SELECT 1 FROM records r JOIN record_subjects s ON s.record_id = r.id \
                 WHERE r.blueprint_name = ?1 AND r.blueprint_version = ?2 AND s.digest = ?3 \
                 AND r.kind NOT IN ('deploy', 'rollback') LIMIT 1",
            )?;
            let named = stmt.exists(rusqlite::params![blueprint, version, artifact])?;
            Ok((known, named))
        })?;
        let git_sha = choose_sha(
            req.git_sha.as_deref(),
            &known,
            &blueprint,
            &version,
            &mut warnings,
        )?;
        if !known.is_empty() && !subjects {
            warnings.push(format!(
                "no evidence of {blueprint} {version} names artifact {artifact} (as the subject \
                 of its provenance or signatures)"
            ));
        }
        doc.git_sha = Some(git_sha.clone());
        let bytes = serde_json::to_vec_pretty(&doc).map_err(|e| Error::Internal(e.to_string()))?;
        let links = LinkArgs {
            style: LinkStyle::Flags,
            blueprint: Some(blueprint),
            version: Some(version),
            git_sha: Some(git_sha),
            run_id: doc.run_id.clone(),
            environment: Some(doc.environment.clone()),
            subjects: vec![doc.artifact.clone()],
            repo: None,
        };
        self.push_native(
            bytes,
            "deploy.json",
            links,
            Kind::Deploy,
            actor,
            scopes,
            warnings,
        )
    }

    /// Records a rollback by `actor`: `to_version` becomes the live version of the environment.
    pub fn record_rollback(
        &self,
        req: RollbackRequest,
        actor: &str,
        scopes: &[String],
    ) -> Result<Recorded> {
        let mut warnings = Vec::new();
        let blueprint =
            validate::blueprint_name(&req.blueprint).map_err(|e| bad("blueprint", e))?;
        let environment = validate::environment(&req.environment).map_err(|e| bad("env", e))?;
        let from = validate::version(&req.from_version).map_err(|e| bad("from_version", e))?;
        let to = validate::version(&req.to_version).map_err(|e| bad("to_version", e))?;
        check_scope(actor, &blueprint, scopes)?;
        if from == to {
            return Err(Error::Invalid(format!(
                "from_version and to_version are both {from}: a rollback goes to another version"
            )));
        }
        let mut doc = Rollback {
            type_: ROLLBACK_TYPE.into(),
            environment: environment.clone(),
            from_version: from.clone(),
            to_version: to.clone(),
            trigger: req.trigger.unwrap_or_else(|| DEFAULT_TRIGGER.into()),
            reason: req.reason,
            time: req.time.map_or_else(now, |t| t.trunc_subsecs(6)),
            actor: actor.to_string(),
            blueprint: Some(blueprint.clone()),
            incident: req.incident,
            artifact: None,
        }
        .validated()
        .map_err(|e| invalid("rollback", e))?;
        let ctx = QueryContext {
            as_of: None,
            scopes: scopes.to_vec(),
        };
        let (known, live, restored) = on_snapshot(self.index.as_ref(), |conn| {
            let reader = Reader::new(conn, &ctx);
            let known = version_shas(&reader, &blueprint, &from)?;
            let changes = reader.changes(&blueprint)?;
            let live = live_versions(&changes)
                .into_iter()
                .find(|l| l.environment == environment);
            // The artifact `to` last ran with here: what the rollback restores.
            let restored = changes
                .iter()
                .rev()
                .find(|c| {
                    c.kind == Kind::Deploy
                        && c.environment == environment
                        && c.version == to
                        && c.takes_effect()
                })
                .map(|c| c.artifact.clone());
            Ok((known, live, restored))
        })?;
        let git_sha = choose_sha(
            req.git_sha.as_deref(),
            &known,
            &blueprint,
            &from,
            &mut warnings,
        )?;
        match &live {
            Some(l) if l.version != from => warnings.push(format!(
                "the vault has {blueprint} {} live in {environment}, not {from}",
                l.version
            )),
            None => warnings.push(format!(
                "the vault has no deploy of {blueprint} to {environment} on record"
            )),
            _ => {}
        }
        if restored.is_none() {
            warnings.push(format!(
                "{blueprint} {to} was never recorded as deployed to {environment}"
            ));
        }
        doc.artifact = restored.flatten();
        let bytes = serde_json::to_vec_pretty(&doc).map_err(|e| Error::Internal(e.to_string()))?;
        let links = LinkArgs {
            style: LinkStyle::Flags,
            blueprint: Some(blueprint),
            version: Some(from),
            git_sha: Some(git_sha),
            environment: Some(doc.environment.clone()),
            subjects: doc.artifact.iter().cloned().collect(),
            repo: None,
            run_id: None,
        };
        self.push_native(
            bytes,
            "rollback.json",
            links,
            Kind::Rollback,
            actor,
            scopes,
            warnings,
        )
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn push_native(
        &self,
        bytes: Vec<u8>,
        name: &str,
        links: LinkArgs,
        kind: Kind,
        actor: &str,
        scopes: &[String],
        warnings: Vec<String>,
    ) -> Result<Recorded> {
        let mut outcome = self.push_as(
            PushRequest {
                sources: vec![PushSource::Reader {
                    name: name.into(),
                    reader: Box::new(Cursor::new(bytes)),
                }],
                links,
                kind: Some(kind),
                producer: actor.to_string(),
                expand_archives: false,
                allowed_blueprints: scopes.to_vec(),
            },
            kind == Kind::PolicyResult,
            &mut |_| {},
        )?;
        let mut all = warnings;
        all.append(&mut outcome.warnings);
        let record = outcome
            .records
            .pop()
            .ok_or_else(|| Error::Internal(format!("recording the {kind} stored no record")))?;
        Ok(Recorded {
            record,
            warnings: all,
        })
    }
}
