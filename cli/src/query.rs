//! `evault deploy`, `evault rollback`, `evault trace deploy|commit`, `evault search
//! component|vuln`: recording changes and answering the questions of on-call engineers, on a
//! local vault or a server alike.

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use evault_core::Error;
use evault_core::query::record::{DEFAULT_TRIGGER, DeployRequest, Recorded, RollbackRequest};
use evault_core::query::search::{ComponentSearch, VulnSearch};
use evault_core::query::trace::{CommitTrace, DeployTrace, VersionEvidence};
use evault_core::query::{Change, Evidence, Live, QueryContext};
use evault_schema::documents::DeployStatus;
use evault_schema::validate;
use serde::Serialize;
use serde_json::Value;

use crate::backend::{Backend, encode};
use crate::output::inline;
use crate::{Global, backend, print_json, write_stdout};

#[derive(Args)]
pub struct DeployArgs {
    /// Blueprint name, e.g. checkout-api.
    #[arg(long, value_name = "NAME")]
    blueprint: String,
    /// The version deployed, e.g. 1.4.2.
    #[arg(long = "version", value_name = "V")]
    version: String,
    /// The environment deployed to, e.g. production.
    #[arg(long = "env", value_name = "ENV")]
    environment: String,
    /// Digest of the deployed artifact (sha256:HEX).
    #[arg(long, value_name = "DIGEST")]
    artifact: String,
    /// The commit deployed; default: the one the version's evidence names.
    #[arg(long, value_name = "SHA")]
    git_sha: Option<String>,
    /// How far the deploy got: started, succeeded or failed.
    #[arg(long, value_name = "STATUS", value_parser = parse_status)]
    status: Option<DeployStatus>,
    /// Where within the environment: cluster, region, namespace.
    #[arg(long, value_name = "TEXT")]
    target: Option<String>,
    /// The CI run that deployed.
    #[arg(long, value_name = "ID")]
    run_id: Option<String>,
    /// When it happened (RFC 3339); default now. A retry with the same --time and values
    /// finds the record already there instead of recording a second deploy.
    #[arg(long, value_name = "TIME")]
    time: Option<String>,
}

#[derive(Args)]
pub struct RollbackArgs {
    /// Blueprint name, e.g. checkout-api.
    #[arg(long, value_name = "NAME")]
    blueprint: String,
    /// The environment rolled back, e.g. production.
    #[arg(long = "env", value_name = "ENV")]
    environment: String,
    /// The version taken out, e.g. 1.4.2.
    #[arg(long, value_name = "V")]
    from_version: String,
    /// The known-good version restored, e.g. 1.4.1 (it becomes the live one).
    #[arg(long, value_name = "V")]
    to_version: String,
    /// Why rolling back was the right response.
    #[arg(long, value_name = "TEXT")]
    reason: String,
    /// The condition that triggered it, e.g. "error rate > 5% for 5 minutes".
    #[arg(long, value_name = "TEXT", default_value = DEFAULT_TRIGGER)]
    trigger: String,
    /// Link to the incident report.
    #[arg(long, value_name = "URL")]
    incident: Option<String>,
    /// The commit of the version rolled back; default: the one its evidence names.
    #[arg(long, value_name = "SHA")]
    git_sha: Option<String>,
    /// When it happened (RFC 3339); default now.
    #[arg(long, value_name = "TIME")]
    time: Option<String>,
}

#[derive(Subcommand)]
pub enum TraceCommand {
    /// A deploy back to its commit: artifact, provenance, SBOMs, scans after VEX, signatures,
    /// approvals, rollback plan and rollbacks, with every missing link as a gap.
    Deploy {
        /// A deploy record id (or a prefix of at least 6 characters), or an artifact digest
        /// (sha256:HEX; its latest deploy).
        target: String,
        #[command(flatten)]
        as_of: AsOf,
    },
    /// A commit forward: the blueprint versions built from it, their artifacts, every
    /// environment they were deployed to and when, and rollbacks.
    Commit {
        /// A git SHA or a prefix of at least 7 characters.
        sha: String,
        #[command(flatten)]
        as_of: AsOf,
    },
}

#[derive(Subcommand)]
pub enum SearchCommand {
    /// The SBOMs listing a component, their blueprint versions, and which are live.
    Component {
        /// A package URL (pkg:npm/lodash@4.17.21; without a version, every version) or a
        /// name with an optional @version (lodash@4.17.21).
        query: String,
        /// Most blueprint versions to list (live deployments are always all listed).
        #[arg(long, default_value_t = 200, value_name = "N")]
        limit: usize,
        #[command(flatten)]
        as_of: AsOf,
    },
    /// Findings of a vulnerability with their VEX status, the affected versions, and where
    /// they are live: are we exposed in production right now?
    Vuln {
        /// A vulnerability id or alias, e.g. CVE-2024-3094 or GHSA-xxxx-xxxx-xxxx.
        id: String,
        #[command(flatten)]
        as_of: AsOf,
    },
}

#[derive(Args)]
pub struct AsOf {
    /// Answer with only what the vault knew at this time (RFC 3339, or a date).
    #[arg(long, value_name = "TIME")]
    as_of: Option<String>,
}

/// Most versions `search component --limit` lists.
const MAX_VERSIONS: usize = 10_000;

fn parse_status(s: &str) -> Result<DeployStatus, String> {
    match s {
        "started" => Ok(DeployStatus::Started),
        "succeeded" => Ok(DeployStatus::Succeeded),
        "failed" => Ok(DeployStatus::Failed),
        _ => Err("expected started, succeeded or failed".into()),
    }
}

pub(crate) fn time_arg(flag: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>, Error> {
    value
        .map(|v| {
            validate::rfc3339(v)
                .map_err(|e| Error::Invalid(format!("invalid {flag} '{}': {}", e.value, e.reason)))
        })
        .transpose()
}

impl AsOf {
    fn context(&self) -> Result<QueryContext, Error> {
        Ok(QueryContext {
            as_of: time_arg("--as-of", self.as_of.as_deref())?,
            scopes: Vec::new(),
        })
    }

    /// `?as_of=...` for a server, or nothing.
    fn query(&self, first: bool) -> String {
        match &self.as_of {
            Some(t) => format!("{}as_of={}", if first { '?' } else { '&' }, encode(t)),
            None => String::new(),
        }
    }
}

/// The embedded-mode actor, or why there is none.
fn local_actor(actor: &Result<String, String>) -> Result<String, Error> {
    actor.clone().map_err(Error::Invalid)
}

pub(crate) fn print_recorded(
    g: &Global,
    what: &str,
    to_version: Option<&str>,
    r: &Recorded,
) -> Result<(), Error> {
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
    if g.json {
        return print_json(r);
    }
    let rec = &r.record.record;
    let state = match r.record.status {
        evault_core::index::Status::Created => "recorded",
        evault_core::index::Status::Present => "already recorded",
    };
    let versions = match to_version {
        Some(to) => format!("{} -> {to}", rec.blueprint.version),
        None => rec.blueprint.version.clone(),
    };
    write_stdout(&format!(
        "{what} {state}: {}  {} {versions} in {}  commit {}  by {}\n",
        rec.id,
        rec.blueprint.name,
        rec.environment.as_deref().unwrap_or("-"),
        rec.git_sha,
        rec.producer
    ))
}

pub fn deploy(g: &Global, args: DeployArgs) -> Result<(), Error> {
    let request = DeployRequest {
        blueprint: args.blueprint,
        version: args.version,
        environment: args.environment,
        artifact: args.artifact,
        git_sha: args.git_sha,
        status: args.status,
        target: args.target,
        run_id: args.run_id,
        time: time_arg("--time", args.time.as_deref())?,
    };
    let recorded: Recorded = match backend(g)? {
        Backend::Local { vault, actor } => {
            vault.record_deploy(request, &local_actor(&actor)?, &[])?
        }
        Backend::Remote(r) => r.send_json(
            "POST",
            "/v1/deploys",
            Some(serde_json::to_value(&request).map_err(|e| Error::Internal(e.to_string()))?),
        )?,
    };
    print_recorded(g, "deploy", None, &recorded)
}

pub fn rollback(g: &Global, args: RollbackArgs) -> Result<(), Error> {
    let to_version = args.to_version.clone();
    let request = RollbackRequest {
        blueprint: args.blueprint,
        environment: args.environment,
        from_version: args.from_version,
        to_version: args.to_version,
        reason: args.reason,
        trigger: Some(args.trigger),
        incident: args.incident,
        git_sha: args.git_sha,
        time: time_arg("--time", args.time.as_deref())?,
    };
    let recorded: Recorded = match backend(g)? {
        Backend::Local { vault, actor } => {
            vault.record_rollback(request, &local_actor(&actor)?, &[])?
        }
        Backend::Remote(r) => r.send_json(
            "POST",
            "/v1/rollbacks",
            Some(serde_json::to_value(&request).map_err(|e| Error::Internal(e.to_string()))?),
        )?,
    };
    print_recorded(g, "rollback", Some(&to_version), &recorded)
}

pub fn trace(g: &Global, command: TraceCommand) -> Result<(), Error> {
    match command {
        TraceCommand::Deploy { target, as_of } => {
            let ctx = as_of.context()?;
            let trace: DeployTrace = match backend(g)? {
                Backend::Local { vault, .. } => vault.trace_deploy(&target, &ctx)?,
                Backend::Remote(r) => r.get_json(&format!(
                    "/v1/trace/deploy/{}{}",
                    encode(&target),
                    as_of.query(true)
                ))?,
            };
            emit(g, &trace, deploy_text)
        }
        TraceCommand::Commit { sha, as_of } => {
            let ctx = as_of.context()?;
            let trace: CommitTrace = match backend(g)? {
                Backend::Local { vault, .. } => vault.trace_commit(&sha, &ctx)?,
                Backend::Remote(r) => r.get_json(&format!(
                    "/v1/trace/commit/{}{}",
                    encode(&sha),
                    as_of.query(true)
                ))?,
            };
            emit(g, &trace, commit_text)
        }
    }
}

pub fn search(g: &Global, command: SearchCommand) -> Result<(), Error> {
    match command {
        SearchCommand::Component {
            query,
            limit,
            as_of,
        } => {
            if limit == 0 || limit > MAX_VERSIONS {
                return Err(Error::Invalid(format!(
                    "invalid --limit {limit}: expected 1 to {MAX_VERSIONS}"
                )));
            }
            let ctx = as_of.context()?;
            let found: ComponentSearch = match backend(g)? {
                Backend::Local { vault, .. } => vault.search_component(&query, limit, &ctx)?,
                Backend::Remote(r) => r.get_json(&format!(
                    "/v1/search/component?q={}&limit={limit}{}",
                    encode(&query),
                    as_of.query(false)
                ))?,
            };
            emit(g, &found, component_text)
        }
        SearchCommand::Vuln { id, as_of } => {
            let ctx = as_of.context()?;
            let found: VulnSearch = match backend(g)? {
                Backend::Local { vault, .. } => vault.search_vuln(&id, &ctx)?,
                Backend::Remote(r) => r.get_json(&format!(
                    "/v1/search/vuln/{}{}",
                    encode(&id),
                    as_of.query(true)
                ))?,
            };
            emit(g, &found, vuln_text)
        }
    }
}

fn emit<T: Serialize>(g: &Global, value: &T, text: fn(&T) -> String) -> Result<(), Error> {
    if g.json {
        print_json(value)
    } else {
        write_stdout(&text(value))
    }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

fn as_of_line(as_of: &Option<String>) -> String {
    as_of
        .as_ref()
        .map(|t| format!("(as the vault knew it at {t})\n"))
        .unwrap_or_default()
}

fn verdict(e: &Evidence) -> String {
    match &e.verification {
        Some(v) => {
            let mut s = v.status.as_str().to_string();
            if let Some(by) = &v.by {
                s.push_str(&format!(" by {by}"));
            }
            if let Some(reason) = &v.reason {
                s.push_str(&format!(" ({reason})"));
            }
            s
        }
        None => "never verified".into(),
    }
}

/// Counts by severity, most severe first: `critical 0, high 1, medium 3, low 0, unknown 0`.
fn severities(counts: &Value) -> String {
    let Value::Object(map) = counts else {
        return "-".into();
    };
    evault_schema::extract::Severity::ALL
        .iter()
        .filter_map(|s| map.get(s.as_str()).map(|n| format!("{} {n}", s.as_str())))
        .collect::<Vec<_>>()
        .join(", ")
}

fn text(v: &Value, key: &str) -> String {
    v.get(key).map(inline).unwrap_or_else(|| "-".into())
}

/// One line per piece of evidence under a heading; `none` when there is none.
fn section(out: &mut String, title: &str, items: &[Evidence], line: fn(&Evidence) -> String) {
    out.push_str(&format!("{title}:\n"));
    if items.is_empty() {
        out.push_str("  none\n");
    }
    for e in items {
        out.push_str(&format!("  {}  {}\n", short(&e.id), line(e)));
    }
}

pub(crate) fn evidence_text(out: &mut String, ev: &VersionEvidence) {
    section(out, "provenance", &ev.provenance, |e| {
        format!(
            "builder {}  repo {}  commit {}  {}",
            text(&e.summary, "builder_id"),
            text(&e.summary, "source_repo"),
            text(&e.summary, "source_commit"),
            verdict(e)
        )
    });
    section(out, "SBOMs", &ev.sboms, |e| {
        format!(
            "{}  {} components",
            e.format.as_str(),
            text(&e.summary, "components")
        )
    });
    section(out, "scans (after VEX)", &ev.scans, |e| {
        format!(
            "{}  {}  ({} suppressed by VEX; before VEX: {})",
            e.format.as_str(),
            severities(&e.summary["after_vex"]),
            text(&e.summary, "suppressed_by_vex"),
            severities(&e.summary["by_severity"])
        )
    });
    section(out, "VEX", &ev.vex, |e| {
        format!("{}  {}", e.format.as_str(), text(&e.summary, "by_status"))
    });
    section(out, "signatures", &ev.signatures, |e| {
        format!("{}  {}", e.format.as_str(), verdict(e))
    });
    section(out, "approvals", &ev.approvals, |e| {
        let s = &e.summary;
        let expires = s
            .get("expires_at")
            .map(|t| format!(", expires {}", inline(t)))
            .unwrap_or_default();
        format!(
            "{} {} for {} at {}{expires}: {}",
            text(s, "approver"),
            text(s, "decision"),
            text(s, "environment"),
            text(s, "time"),
            text(s, "reason")
        )
    });
    section(out, "rollback plan", &ev.rollback_plans, |e| {
        format!(
            "{}  pushed by {} at {}",
            e.format.as_str(),
            e.producer,
            e.ingested_at
        )
    });
    section(out, "test reports", &ev.tests, |e| {
        format!(
            "{}  pushed by {} at {}",
            e.format.as_str(),
            e.producer,
            e.ingested_at
        )
    });
    if !ev.other.is_empty() {
        section(out, "other evidence", &ev.other, |e| {
            format!("{} {}  {}", e.kind.as_str(), e.format.as_str(), verdict(e))
        });
    }
}

fn change_line(c: &Change) -> String {
    let mut s = match c.kind {
        evault_schema::Kind::Rollback => format!(
            "{}  rollback of {} in {}: {} -> {} by {}",
            c.time,
            c.blueprint,
            c.environment,
            c.from_version.as_deref().unwrap_or("?"),
            c.version,
            c.actor
        ),
        _ => format!(
            "{}  deploy of {} {} to {} by {}",
            c.time, c.blueprint, c.version, c.environment, c.actor
        ),
    };
    if let Some(status) = &c.status {
        s.push_str(&format!(" ({status})"));
    }
    if let Some(trigger) = &c.trigger {
        s.push_str(&format!("; trigger: {trigger}"));
    }
    if let Some(reason) = &c.reason {
        s.push_str(&format!("; reason: {reason}"));
    }
    if let Some(incident) = &c.incident {
        s.push_str(&format!("; incident {incident}"));
    }
    format!("{s}  [{}]", short(&c.record_id))
}

fn live_line(l: &Live) -> String {
    format!(
        "{} {} live in {} since {} (via {} {}){}",
        l.blueprint,
        l.version,
        l.environment,
        l.since,
        l.via.as_str(),
        short(&l.record_id),
        l.artifact
            .as_ref()
            .map(|a| format!(", artifact {a}"))
            .unwrap_or_default()
    )
}

fn list<T>(out: &mut String, title: &str, items: &[T], line: fn(&T) -> String) {
    out.push_str(&format!("{title}:\n"));
    if items.is_empty() {
        out.push_str("  none\n");
    }
    for item in items {
        out.push_str(&format!("  {}\n", line(item)));
    }
}

fn gaps_text(out: &mut String, gaps: &[String]) {
    if gaps.is_empty() {
        out.push_str("gaps: none; the chain is complete\n");
    } else {
        out.push_str(&format!("gaps ({}):\n", gaps.len()));
        for g in gaps {
            out.push_str(&format!("  - {g}\n"));
        }
    }
}

fn deploy_text(t: &DeployTrace) -> String {
    let d = &t.deploy;
    let mut out = as_of_line(&t.as_of);
    let what = if d.kind == evault_schema::Kind::Rollback {
        "rollback"
    } else {
        "deploy"
    };
    out.push_str(&format!(
        "{what} {}: {} {} to {} at {} by {}{}\n",
        d.record_id,
        t.blueprint.name,
        t.blueprint.version,
        d.environment,
        d.time,
        d.actor,
        d.status
            .as_ref()
            .map(|s| format!(" ({s})"))
            .unwrap_or_default()
    ));
    out.push_str(&format!(
        "  artifact  {}\n  commit    {}{}\n  pushed by {} at {}\n",
        d.artifact.as_deref().unwrap_or("-"),
        t.git_sha,
        t.repo
            .as_ref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default(),
        d.producer,
        d.ingested_at
    ));
    if let Some(g) = &t.gate {
        out.push_str(&gate_line(g, &d.environment));
    }
    evidence_text(&mut out, &t.evidence);
    list(&mut out, "rollbacks", &t.rollbacks, change_line);
    list(&mut out, "other deploys", &t.other_deploys, change_line);
    list(&mut out, "live", &t.live, live_line);
    gaps_text(&mut out, &t.gaps);
    out
}

/// The release gate's history of a deployed version, on one line.
fn gate_line(g: &evault_core::gate::GateHistory, environment: &str) -> String {
    let short = |id: &str| id[..id.len().min(12)].to_string();
    let what = match (g.state.as_str(), &g.record) {
        ("passed", Some(id)) => format!("passed before the deploy [{}]", short(id)),
        ("passed-after-deploy", Some(id)) => {
            format!("passed only after the deploy [{}]", short(id))
        }
        _ => match (&g.last_failure, g.decisions) {
            (Some(id), _) => format!("never passed (last decision failed [{}])", short(id)),
            (None, 0) => format!("never checked for {environment}"),
            (None, _) => "never passed".to_string(),
        },
    };
    format!("  gate      {what}\n")
}

fn commit_text(t: &CommitTrace) -> String {
    let mut out = as_of_line(&t.as_of);
    out.push_str(&format!(
        "commit {}: {} blueprint version(s)\n",
        t.git_sha,
        t.versions.len()
    ));
    for v in &t.versions {
        out.push_str(&format!(
            "\n{} {}{}\n",
            v.blueprint.name,
            v.blueprint.version,
            v.repo
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ));
        let evidence: Vec<String> = v.evidence.iter().map(|(k, n)| format!("{k} {n}")).collect();
        out.push_str(&format!(
            "  evidence   {}\n  builders   {}\n",
            if evidence.is_empty() {
                "none".into()
            } else {
                evidence.join(", ")
            },
            if v.builders.is_empty() {
                "none".into()
            } else {
                v.builders.join(", ")
            }
        ));
        out.push_str("  artifacts:\n");
        if v.artifacts.is_empty() {
            out.push_str("    none\n");
        }
        for a in &v.artifacts {
            out.push_str(&format!("    {a}\n"));
        }
        for (title, items) in [("deploys", &v.deploys), ("rollbacks", &v.rollbacks)] {
            out.push_str(&format!("  {title}:\n"));
            if items.is_empty() {
                out.push_str("    none\n");
            }
            for c in items {
                out.push_str(&format!("    {}\n", change_line(c)));
            }
        }
        out.push_str("  live:\n");
        if v.live.is_empty() {
            out.push_str("    nowhere\n");
        }
        for l in &v.live {
            out.push_str(&format!("    {}\n", live_line(l)));
        }
    }
    out
}

fn component_text(s: &ComponentSearch) -> String {
    let mut out = as_of_line(&s.as_of);
    out.push_str(&format!(
        "{}: in {} SBOM record(s) of {}{} blueprint version(s)\n",
        s.query,
        s.sbom_count,
        if s.truncated { "more than " } else { "" },
        s.versions.len()
    ));
    list(&mut out, "live", &s.live, live_line);
    for v in &s.versions {
        let comps: Vec<String> = v
            .components
            .iter()
            .map(|c| {
                c.purl.clone().unwrap_or_else(|| {
                    format!("{}@{}", c.name, c.version.as_deref().unwrap_or("?"))
                })
            })
            .collect();
        let live: Vec<&str> = v.live.iter().map(|l| l.environment.as_str()).collect();
        out.push_str(&format!(
            "  {} {}  commit {}  {}  sboms {}  live {}\n",
            v.blueprint.name,
            v.blueprint.version,
            short(&v.git_sha),
            comps.join(", "),
            v.sboms
                .iter()
                .map(|s| short(s))
                .collect::<Vec<_>>()
                .join(", "),
            if live.is_empty() {
                "nowhere".into()
            } else {
                live.join(", ")
            }
        ));
    }
    if s.truncated {
        out.push_str("  ... more versions; raise --limit to list them\n");
    }
    out
}

fn vuln_text(s: &VulnSearch) -> String {
    let mut out = as_of_line(&s.as_of);
    let exposed = s.versions.iter().filter(|v| v.exposed).count();
    out.push_str(&format!(
        "{}: found in {} blueprint version(s), {exposed} exposed after VEX\n",
        s.query,
        s.versions.len()
    ));
    list(&mut out, "exposed and live", &s.exposed_live, live_line);
    if !s.suppressed_live.is_empty() {
        list(
            &mut out,
            "live, suppressed by VEX",
            &s.suppressed_live,
            live_line,
        );
    }
    for v in &s.versions {
        out.push_str(&format!(
            "\n{} {}  commit {}  {}\n",
            v.blueprint.name,
            v.blueprint.version,
            short(&v.git_sha),
            if v.exposed {
                "EXPOSED"
            } else {
                "suppressed by VEX (not affected or fixed)"
            }
        ));
        for f in &v.findings {
            let vex = match &f.vex {
                Some(x) => format!(
                    "VEX {}{} [{}]",
                    serde_json::to_value(x.status)
                        .ok()
                        .as_ref()
                        .map(inline)
                        .unwrap_or_default(),
                    x.justification
                        .as_ref()
                        .map(|j| format!(" ({j})"))
                        .unwrap_or_default(),
                    short(&x.record_id)
                ),
                None => "no VEX statement".into(),
            };
            out.push_str(&format!(
                "  {} {} in {} {}{}  scan {}  {vex}\n",
                f.finding.id,
                f.finding.severity.as_str(),
                f.finding.package.as_deref().unwrap_or("?"),
                f.finding.version.as_deref().unwrap_or("?"),
                f.finding
                    .fixed_version
                    .as_ref()
                    .map(|v| format!(" (fixed in {v})"))
                    .unwrap_or_default(),
                short(&f.record_id)
            ));
        }
        let live: Vec<&str> = v.live.iter().map(|l| l.environment.as_str()).collect();
        out.push_str(&format!(
            "  live: {}\n",
            if live.is_empty() {
                "nowhere".into()
            } else {
                live.join(", ")
            }
        ));
    }
    out
}
