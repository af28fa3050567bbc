//! `evault gate check|input|policy`, `evault approve`, `evault exception` and `evault audit
//! completeness`: release gates, on a local vault or a server alike. The gate itself (the
//! evidence gathered, the policy applied, the decision recorded) lives in `evault_core::gate`;
//! this module translates flags into its requests and its answers into text and exit codes.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use evault_core::Error;
use evault_core::gate::policy::MAX_POLICY_BYTES;
use evault_core::gate::{
    ApprovalRequest, BUILT_IN, CheckRequest, CompletenessReport, ExceptionRequest, GateDecision,
    GatePolicyView, IncompleteDeploy, parse_validity,
};
use evault_core::query::record::Recorded;
use evault_schema::documents::{Decision, Outcome};
use evault_schema::validate;
use sha2::{Digest as _, Sha256};

use crate::backend::{Backend, encode};
use crate::query::{print_recorded, time_arg};
use crate::{Global, backend, print_json, write_stdout};

/// Exit code of `gate check` when the gate fails, and of `audit completeness` when some deploy
/// lacks evidence or a passing gate: an answer, not an error, so distinct from 1-4 and 6-7.
pub const GATE_FAILED: u8 = 5;

/// The role an embedded-mode approval or exception is recorded in by default.
const DEFAULT_ROLE: &str = "approver";

#[derive(Subcommand)]
pub enum GateCommand {
    /// May this version go to this environment? Prints one line per requirement and the
    /// decision, and records it (exit 0 pass or warn, 5 fail).
    Check(CheckArgs),
    /// Print the JSON document a gate policy judges for this version and environment, without
    /// judging or recording anything (for writing Rego policies).
    Input(Target),
    /// Show or set the vault's gate policy (TOML or Rego; see docs/gates.md).
    #[command(subcommand)]
    Policy(PolicyCommand),
}

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Print the gate policy in force (its source, engine and digest go to stderr, so that the
    /// output can be saved, edited and set again).
    Show {
        /// Print the built-in policy instead (needs no vault).
        #[arg(long)]
        default: bool,
    },
    /// Replace the vault's gate policy with FILE (TOML, or Rego when it starts with
    /// `package evault.gate`), after checking it.
    Set {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

/// Which version, going where.
#[derive(Args)]
pub struct Target {
    /// Blueprint name, e.g. checkout-api.
    #[arg(long, value_name = "NAME")]
    blueprint: String,
    /// The version about to be deployed, e.g. 1.4.2.
    #[arg(long = "version", value_name = "V")]
    version: String,
    /// The environment it is going to, e.g. production.
    #[arg(long = "env", value_name = "ENV")]
    environment: String,
    /// Digest of the artifact about to be deployed (sha256:HEX): provenance and signatures
    /// must name it.
    #[arg(long, value_name = "DIGEST")]
    artifact: Option<String>,
    /// The commit being deployed; default: the one the version's evidence names.
    #[arg(long, value_name = "SHA")]
    git_sha: Option<String>,
}

#[derive(Args)]
pub struct CheckArgs {
    #[command(flatten)]
    target: Target,
    /// Check against the policy in FILE (TOML or Rego) instead of the vault's. Its decision is
    /// recorded, but does not count as the gate passing for `audit completeness`.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
}

/// Who decides and why: the flags `approve` and `exception` share.
#[derive(Args)]
pub struct Decided {
    /// Blueprint name, e.g. checkout-api.
    #[arg(long, value_name = "NAME")]
    blueprint: String,
    /// The version, e.g. 1.4.2.
    #[arg(long = "version", value_name = "V")]
    version: String,
    /// The environment, e.g. production.
    #[arg(long = "env", value_name = "ENV")]
    environment: String,
    /// Why; required, not blank.
    #[arg(long, value_name = "TEXT")]
    reason: String,
    /// A change ticket: URL or id.
    #[arg(long, value_name = "T")]
    ticket: Option<String>,
    /// The commit; default: the one the version's evidence names.
    #[arg(long, value_name = "SHA")]
    git_sha: Option<String>,
    /// The role you act in (embedded mode only; on a server it is the token's). Default:
    /// approver.
    #[arg(long, value_name = "ROLE")]
    role: Option<String>,
}

#[derive(Args)]
pub struct ApproveArgs {
    #[command(flatten)]
    decided: Decided,
    /// approve or reject.
    #[arg(long, value_name = "DECISION", value_parser = parse_decision)]
    decision: Decision,
    /// How long the approval counts: 12h, 7d, 2w (at most 366 days); default: until revoked
    /// by a rejection.
    #[arg(long, value_name = "DURATION")]
    expires: Option<String>,
}

#[derive(Args)]
pub struct ExceptionArgs {
    #[command(flatten)]
    decided: Decided,
    /// A vulnerability id whose risk is accepted (repeatable), e.g. CVE-2024-3094.
    #[arg(long = "vuln", value_name = "ID", required = true)]
    vulnerabilities: Vec<String>,
    /// How long the exception holds: 12h, 7d, 2w (at most 366 days). Required.
    #[arg(long, value_name = "DURATION")]
    expires: String,
}

#[derive(Args)]
pub struct CompletenessArgs {
    /// The environment, e.g. production.
    #[arg(long = "env", value_name = "ENV")]
    environment: String,
    /// Only deploys at or after this time (RFC 3339, or a date: 2026-04-01).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
}

fn parse_decision(s: &str) -> Result<Decision, String> {
    match s {
        "approve" => Ok(Decision::Approve),
        "reject" => Ok(Decision::Reject),
        _ => Err("expected approve or reject".into()),
    }
}

fn encode_body<T: serde::Serialize>(value: &T) -> Result<serde_json::Value, Error> {
    serde_json::to_value(value).map_err(|e| Error::Internal(e.to_string()))
}

pub fn run(g: &Global, command: GateCommand) -> Result<ExitCode, Error> {
    match command {
        GateCommand::Check(args) => check(g, args),
        GateCommand::Input(target) => input(g, target).map(|()| ExitCode::SUCCESS),
        GateCommand::Policy(command) => policy(g, command).map(|()| ExitCode::SUCCESS),
    }
}

impl Target {
    fn request(self, policy: Option<String>) -> CheckRequest {
        CheckRequest {
            blueprint: self.blueprint,
            version: self.version,
            environment: self.environment,
            artifact: self.artifact,
            git_sha: self.git_sha,
            policy,
        }
    }
}

/// The text of a policy file: at most [`MAX_POLICY_BYTES`], UTF-8; errors name the file.
fn read_policy(path: &Path) -> Result<String, Error> {
    let name = path.display();
    let file = std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            Error::NotFound(format!("policy file {name}: no such file"))
        }
        _ => Error::Invalid(format!("policy file {name}: cannot read: {e}")),
    })?;
    let mut bytes = Vec::new();
    file.take(MAX_POLICY_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::Invalid(format!("policy file {name}: cannot read: {e}")))?;
    if bytes.len() > MAX_POLICY_BYTES {
        return Err(Error::TooLarge(format!(
            "policy file {name}: larger than {} MiB",
            MAX_POLICY_BYTES >> 20
        )));
    }
    String::from_utf8(bytes)
        .map_err(|_| Error::Invalid(format!("policy file {name}: not UTF-8 text")))
}

/// A policy the vault refused, with the file it came from.
fn in_file(path: &Path) -> impl Fn(Error) -> Error {
    move |e| match e {
        Error::Invalid(m) if m.starts_with("invalid gate policy") => {
            Error::Invalid(format!("{}: {m}", path.display()))
        }
        other => other,
    }
}

fn check(g: &Global, args: CheckArgs) -> Result<ExitCode, Error> {
    let policy = args.policy.as_deref().map(read_policy).transpose()?;
    let request = args.target.request(policy);
    let decision: GateDecision = match backend(g)? {
        Backend::Local { vault, actor } => {
            let actor = actor.map_err(Error::Invalid)?;
            vault.gate_check(request, &actor, &[])
        }
        Backend::Remote(r) => r.send_json("POST", "/v1/gates/check", Some(encode_body(&request)?)),
    }
    .map_err(|e| match &args.policy {
        Some(path) => in_file(path)(e),
        None => e,
    })?;
    for w in &decision.warnings {
        eprintln!("warning: {w}");
    }
    if g.json {
        print_json(&decision)?;
    } else {
        write_stdout(&decision_text(&decision))?;
    }
    Ok(match decision.decision {
        Outcome::Pass | Outcome::Warn => ExitCode::SUCCESS,
        Outcome::Fail => ExitCode::from(GATE_FAILED),
    })
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// `sha256:` and the first 12 hex characters.
fn short_digest(digest: &str) -> String {
    match digest.strip_prefix("sha256:") {
        Some(hex) => format!("sha256:{}", short(hex)),
        None => digest.to_string(),
    }
}

/// Most record ids shown on one requirement line.
const SHOWN_RECORDS: usize = 5;

/// `PASS  evidence:sbom  1 sbom record(s)  [4f2a0c1e9b7d]` per requirement, then the decision.
fn decision_text(d: &GateDecision) -> String {
    let width = d
        .requirements
        .iter()
        .map(|r| r.name.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for r in &d.requirements {
        let records = if r.records.is_empty() {
            String::new()
        } else {
            let shown: Vec<&str> = r
                .records
                .iter()
                .take(SHOWN_RECORDS)
                .map(|id| short(id))
                .collect();
            let more = r.records.len() - shown.len();
            format!(
                "  [{}{}]",
                shown.join(", "),
                if more > 0 {
                    format!(", {more} more")
                } else {
                    String::new()
                }
            )
        };
        out.push_str(&format!(
            "{:<4}  {:<width$}  {}{records}\n",
            r.status.as_str().to_ascii_uppercase(),
            r.name,
            r.message.replace('\n', " ")
        ));
    }
    out.push_str(&format!(
        "gate: {} for {} {} → {} (policy: {}, {} {})\n",
        d.decision.as_str().to_ascii_uppercase(),
        d.blueprint,
        d.version,
        d.environment,
        d.policy.source,
        d.policy.engine,
        short_digest(&d.policy.digest)
    ));
    match &d.record {
        Some(id) => out.push_str(&format!("decision recorded: {id}\n")),
        None => out.push_str("decision not recorded (see the warning)\n"),
    }
    out
}

fn input(g: &Global, target: Target) -> Result<(), Error> {
    let request = target.request(None);
    match backend(g)? {
        Backend::Local { vault, .. } => print_json(&vault.gate_input(&request, &[])?),
        Backend::Remote(r) => {
            let mut body = encode_body(&request)?;
            if let Some(map) = body.as_object_mut() {
                map.remove("policy");
            }
            let input: serde_json::Value = r.send_json("POST", "/v1/gates/input", Some(body))?;
            print_json(&input)
        }
    }
}

fn policy(g: &Global, command: PolicyCommand) -> Result<(), Error> {
    let view: GatePolicyView = match command {
        PolicyCommand::Show { default: true } => GatePolicyView {
            source: "built-in".into(),
            engine: "toml".into(),
            digest: format!(
                "sha256:{}",
                hex::encode(Sha256::digest(BUILT_IN.as_bytes()))
            ),
            policy: BUILT_IN.into(),
            set_at: None,
            set_by: None,
        },
        PolicyCommand::Show { default: false } => match backend(g)? {
            Backend::Local { vault, .. } => vault.gate_policy()?,
            Backend::Remote(r) => r.get_json("/v1/gates/policy")?,
        },
        PolicyCommand::Set { file } => {
            let text = read_policy(&file)?;
            let view: GatePolicyView = match backend(g)? {
                Backend::Local { vault, actor } => {
                    let actor = actor.map_err(Error::Invalid)?;
                    vault.set_gate_policy(&text, &actor)
                }
                Backend::Remote(r) => r.send_json(
                    "PUT",
                    "/v1/gates/policy",
                    Some(serde_json::json!({ "policy": text })),
                ),
            }
            .map_err(in_file(&file))?;
            if g.json {
                return print_json(&view);
            }
            return write_stdout(&format!(
                "gate policy set: source {}, engine {}, {}{}\n",
                view.source,
                view.engine,
                view.digest,
                set_by(&view)
            ));
        }
    };
    if g.json {
        return print_json(&view);
    }
    eprintln!(
        "# gate policy: source {}, engine {}, {}{}",
        view.source,
        view.engine,
        view.digest,
        set_by(&view)
    );
    let mut text = view.policy;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    write_stdout(&text)
}

fn set_by(view: &GatePolicyView) -> String {
    match (&view.set_at, &view.set_by) {
        (Some(at), Some(by)) => format!(" (set {at} by {by})"),
        _ => String::new(),
    }
}

/// `--expires` checked here, so that the flag is named and a server is not asked in vain.
fn validity(expires: &str) -> Result<(), Error> {
    parse_validity(expires)
        .map(|_| ())
        .map_err(|e| Error::Invalid(format!("--expires: {e}")))
}

/// The role an embedded-mode decision is recorded in; refused against a server.
fn role(g: &Global, role: Option<String>) -> Result<String, Error> {
    match (&g.server, role) {
        (Some(_), Some(_)) => Err(Error::Invalid(
            "--role is for embedded mode; on a server the role comes from the token".into(),
        )),
        (_, role) => Ok(role.unwrap_or_else(|| DEFAULT_ROLE.into())),
    }
}

pub fn approve(g: &Global, args: ApproveArgs) -> Result<(), Error> {
    if let Some(e) = &args.expires {
        validity(e)?;
    }
    let d = args.decided;
    let role = role(g, d.role)?;
    let what = match args.decision {
        Decision::Approve => "approval",
        Decision::Reject => "rejection",
    };
    let request = ApprovalRequest {
        blueprint: d.blueprint,
        version: d.version,
        environment: d.environment,
        decision: args.decision,
        reason: d.reason,
        expires: args.expires,
        ticket: d.ticket,
        git_sha: d.git_sha,
    };
    let recorded: Recorded = match backend(g)? {
        Backend::Local { vault, actor } => {
            let actor = actor.map_err(Error::Invalid)?;
            vault.record_approval(request, &actor, &role, &[])?
        }
        Backend::Remote(r) => r.send_json("POST", "/v1/approvals", Some(encode_body(&request)?))?,
    };
    print_recorded(g, what, None, &recorded)
}

pub fn exception(g: &Global, args: ExceptionArgs) -> Result<(), Error> {
    validity(&args.expires)?;
    let d = args.decided;
    let role = role(g, d.role)?;
    let request = ExceptionRequest {
        blueprint: d.blueprint,
        version: d.version,
        environment: d.environment,
        vulnerabilities: args.vulnerabilities,
        reason: d.reason,
        expires: args.expires,
        ticket: d.ticket,
        git_sha: d.git_sha,
    };
    let recorded: Recorded = match backend(g)? {
        Backend::Local { vault, actor } => {
            let actor = actor.map_err(Error::Invalid)?;
            vault.record_exception(request, &actor, &role, &[])?
        }
        Backend::Remote(r) => {
            r.send_json("POST", "/v1/exceptions", Some(encode_body(&request)?))?
        }
    };
    print_recorded(g, "exception", None, &recorded)
}

/// `evault audit completeness`: exit 0 when every deploy has its evidence and a passing gate,
/// 5 (an alert for cron jobs) when some do not.
pub fn completeness(g: &Global, args: CompletenessArgs) -> Result<ExitCode, Error> {
    let since = time_arg("--since", args.since.as_deref())?;
    validate::environment(&args.environment)
        .map_err(|e| Error::Invalid(format!("invalid --env '{}': {}", e.value, e.reason)))?;
    let report: CompletenessReport = match backend(g)? {
        Backend::Local { vault, .. } => vault.audit_completeness(&args.environment, since, &[])?,
        Backend::Remote(r) => {
            let mut path = format!("/v1/audit/completeness?env={}", encode(&args.environment));
            if let Some(t) = since {
                path.push_str(&format!(
                    "&since={}",
                    encode(&evault_core::record::format_time(t))
                ));
            }
            r.get_json(&path)?
        }
    };
    if g.json {
        print_json(&report)?;
    } else {
        write_stdout(&completeness_text(&report))?;
    }
    Ok(if report.incomplete.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(GATE_FAILED)
    })
}

fn incomplete_line(d: &IncompleteDeploy) -> String {
    let gate = match d.gate.as_str() {
        "never-passed" => format!(
            "gate never passed{}",
            d.last_decision
                .as_ref()
                .map(|id| format!(" (last decision: fail [{}])", short(id)))
                .unwrap_or_default()
        ),
        "passed-after-deploy" => format!(
            "gate passed only after the deploy{}",
            d.gate_record
                .as_ref()
                .map(|id| format!(" [{}]", short(id)))
                .unwrap_or_default()
        ),
        other => format!(
            "gate {other}{}",
            d.gate_record
                .as_ref()
                .map(|id| format!(" [{}]", short(id)))
                .unwrap_or_default()
        ),
    };
    let missing = if d.uncovered {
        "  no gate policy covers it".to_string()
    } else if d.missing.is_empty() {
        String::new()
    } else {
        format!("  missing: {}", d.missing.join(", "))
    };
    format!(
        "{}  {} {}  deploy {} by {}  {gate}{missing}\n",
        d.time,
        d.blueprint,
        d.version,
        short(&d.deploy),
        d.actor
    )
}

fn completeness_text(r: &CompletenessReport) -> String {
    let mut out: String = r.incomplete.iter().map(incomplete_line).collect();
    let since = r
        .since
        .as_ref()
        .map(|s| format!(" since {s}"))
        .unwrap_or_default();
    let policy = format!(
        "(required evidence per the policy in force at each deploy; now the {} {} policy {})",
        r.policy.source,
        r.policy.engine,
        short_digest(&r.policy.digest)
    );
    if r.incomplete.is_empty() {
        out.push_str(&format!(
            "all {} deploy(s) to {}{since} have their evidence and a passing gate {policy}\n",
            r.deploys, r.environment
        ));
    } else {
        out.push_str(&format!(
            "{} of {} deploys to {}{since} lack evidence or a passing gate {policy}\n",
            r.incomplete.len(),
            r.deploys,
            r.environment
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use evault_schema::documents::{PolicyRef, RequirementResult};

    fn requirement(name: &str, status: Outcome, records: usize) -> RequirementResult {
        RequirementResult {
            name: name.into(),
            status,
            message: format!("{name} message"),
            records: (0..records).map(|i| format!("{i:032x}")).collect(),
        }
    }

    #[test]
    fn a_decision_prints_one_aligned_line_per_requirement_then_the_verdict() {
        let d = GateDecision {
            decision: Outcome::Fail,
            blueprint: "checkout-api".into(),
            version: "1.4.2".into(),
            environment: "production".into(),
            git_sha: "a".repeat(40),
            artifact: None,
            policy: PolicyRef {
                source: "built-in".into(),
                engine: "toml".into(),
                digest: format!("sha256:{}", "b".repeat(64)),
            },
            policy_entries: vec![2],
            requirements: vec![
                requirement("evidence:sbom", Outcome::Pass, 1),
                requirement("approvals", Outcome::Fail, 0),
                requirement("vulnerabilities:high", Outcome::Warn, 7),
            ],
            time: "2026-01-01T00:00:00Z".into(),
            actor: "ci".into(),
            record: Some("c".repeat(32)),
            warnings: Vec::new(),
        };
        let text = decision_text(&d);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "PASS  evidence:sbom         evidence:sbom message  [000000000000]"
        );
        assert_eq!(lines[1], "FAIL  approvals             approvals message");
        assert!(lines[2].ends_with(", 2 more]"), "{}", lines[2]);
        assert_eq!(
            lines[3],
            "gate: FAIL for checkout-api 1.4.2 → production (policy: built-in, toml \
             sha256:bbbbbbbbbbbb)"
        );
        assert_eq!(lines[4], format!("decision recorded: {}", "c".repeat(32)));
    }
}
