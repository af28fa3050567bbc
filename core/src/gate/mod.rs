//! Release gates: may this blueprint version go to this environment?
//!
//! A gate check gathers the version's evidence into one [`GateInput`] document, applies the
//! gate policy (the vault's, a file given for the check, or the built-in defaults; TOML rules or
//! a Rego policy), and answers pass, warn or fail with one line per requirement and the record
//! ids behind it. Every decision is itself recorded, as a `policy-result` record linked to the
//! version and its git commit, so the gate's history is evidence too; only the vault writes
//! those records (a push of one is refused).
//!
//! Approvals and exceptions are recorded here too (`evault approve`, `evault exception`), with
//! the approver taken from the caller's identity, and `evault audit completeness` lists the
//! deploys whose version lacks required evidence or never passed its gate.
//!
//! Where the policy is silent or the facts are unclear, the gate fails closed and says why: no
//! policy for the environment, a version whose evidence names no commit or several, a Rego
//! policy that errors.

pub mod eval;
pub mod input;
pub mod policy;
pub mod rego;

use chrono::{DateTime, Duration, Utc};
use evault_schema::documents::{
    APPROVAL_TYPE, Approval, BlueprintRef, Decision, Outcome, POLICY_RESULT_TYPE, PolicyRef,
    PolicyResult, RequirementResult,
};
use evault_schema::extract::junit;
use evault_schema::{Kind, validate};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

pub use input::GateInput;
pub use policy::{BUILT_IN, GatePolicy};

use crate::error::{Error, Result};
use crate::ingest::{LinkArgs, LinkStyle};
use crate::log::state::GATE_POLICY;
use crate::query::record::{Recorded, bad, check_scope, choose_sha, invalid, now, version_shas};
use crate::query::{QueryContext, Reader, on_snapshot};
use crate::record::format_time;
use crate::vault::Vault;

/// Longest message kept in a stored decision, in characters.
const MAX_MESSAGE: usize = 4000;
/// Most record ids kept per requirement in a stored decision.
const MAX_RECORDS: usize = 1000;
/// Longest time an approval or exception may run, in days.
pub const MAX_VALIDITY_DAYS: i64 = 366;

/// `text` cut to [`MAX_MESSAGE`] characters.
pub(crate) fn cut(text: &str) -> String {
    match text.char_indices().nth(MAX_MESSAGE) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

pub(crate) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A policy ready to run.
enum Compiled {
    Toml(GatePolicy),
    Rego(Box<regorus::Engine>),
}

/// Where a policy came from, its text and its engine.
struct Loaded {
    source: &'static str,
    text: String,
    compiled: Compiled,
}

impl Loaded {
    fn engine(&self) -> &'static str {
        match self.compiled {
            Compiled::Toml(_) => "toml",
            Compiled::Rego(_) => "rego",
        }
    }

    fn reference(&self) -> PolicyRef {
        PolicyRef {
            source: self.source.into(),
            engine: self.engine().into(),
            digest: digest_of(&self.text),
        }
    }
}

fn digest_of(text: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes())))
}

/// Reads a policy: Rego when its first statement is a `package`, TOML otherwise.
fn compile(text: &str) -> Result<Compiled> {
    if rego::looks_like_rego(text) {
        return rego::compile(text)
            .map(|e| Compiled::Rego(Box::new(e)))
            .map_err(|e| Error::Invalid(format!("invalid gate policy: {e}")));
    }
    GatePolicy::from_toml(text)
        .map(Compiled::Toml)
        .map_err(|e| Error::Invalid(format!("invalid gate policy: {e}")))
}

/// The gate policy in force, as `evault gate policy show` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GatePolicyView {
    /// `built-in` (no policy was set) or `vault`.
    pub source: String,
    /// `toml` or `rego`.
    pub engine: String,
    /// sha256 of the text, as decisions cite it.
    pub digest: String,
    /// The policy text.
    pub policy: String,
    pub set_at: Option<String>,
    pub set_by: Option<String>,
}

fn stored_policy(conn: &Connection) -> Result<Option<(String, String, String, String)>> {
    Ok(conn
        .query_row(
            "SELECT engine, policy, set_at, set_by FROM gate_policy WHERE name = 'current'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?)
}

fn policy_view(conn: &Connection) -> Result<GatePolicyView> {
    Ok(match stored_policy(conn)? {
        Some((engine, text, at, by)) => GatePolicyView {
            source: "vault".into(),
            engine,
            digest: digest_of(&text),
            policy: text,
            set_at: Some(at),
            set_by: Some(by),
        },
        None => GatePolicyView {
            source: "built-in".into(),
            engine: "toml".into(),
            digest: digest_of(BUILT_IN),
            policy: BUILT_IN.into(),
            set_at: None,
            set_by: None,
        },
    })
}

/// What `evault gate check` and `POST /v1/gates/check` ask.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    pub blueprint: String,
    pub version: String,
    #[serde(rename = "env")]
    pub environment: String,
    /// The artifact about to be deployed: provenance and signatures must name it.
    #[serde(default)]
    pub artifact: Option<String>,
    /// The commit being deployed; default the one the version's evidence names.
    #[serde(default)]
    pub git_sha: Option<String>,
    /// A policy (TOML or Rego text) to check against instead of the vault's. Its decisions are
    /// recorded with source `file` and do not count as the gate passing for
    /// `audit completeness`.
    #[serde(default)]
    pub policy: Option<String>,
}

/// A gate's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateDecision {
    /// `pass`, `warn` (may go ahead; look at the warnings) or `fail`.
    pub decision: Outcome,
    pub blueprint: String,
    pub version: String,
    pub environment: String,
    /// The commit judged (empty when the evidence names none or several).
    pub git_sha: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact: Option<String>,
    pub policy: PolicyRef,
    /// The policy entries that applied (TOML policies), counted from 1.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policy_entries: Vec<usize>,
    pub requirements: Vec<RequirementResult>,
    pub time: String,
    pub actor: String,
    /// The `policy-result` record of this decision; `None` when it could not be linked to a
    /// commit (see `warnings`).
    pub record: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// What `evault approve` and `POST /v1/approvals` record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRequest {
    pub blueprint: String,
    pub version: String,
    #[serde(rename = "env")]
    pub environment: String,
    pub decision: Decision,
    pub reason: String,
    /// How long the approval counts: `12h`, `7d`, `2w` (at most 366 days); default forever.
    #[serde(default)]
    pub expires: Option<String>,
    /// A change ticket: URL or id.
    #[serde(default)]
    pub ticket: Option<String>,
    /// Default: the commit the version's evidence names.
    #[serde(default)]
    pub git_sha: Option<String>,
}

/// What `evault exception` and `POST /v1/exceptions` record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExceptionRequest {
    pub blueprint: String,
    pub version: String,
    #[serde(rename = "env")]
    pub environment: String,
    /// Vulnerability ids whose risk is accepted.
    pub vulnerabilities: Vec<String>,
    pub reason: String,
    /// How long the exception holds: `12h`, `7d`, `2w` (at most 366 days). Required.
    pub expires: String,
    #[serde(default)]
    pub ticket: Option<String>,
    #[serde(default)]
    pub git_sha: Option<String>,
}

/// Reads `12h`, `7d` or `2w`.
pub fn parse_validity(s: &str) -> std::result::Result<Duration, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let expected = "expected a number and a unit: h (hours), d (days) or w (weeks), e.g. 7d";
    let n: i64 = digits
        .parse()
        .map_err(|_| format!("invalid duration '{}': {expected}", s.escape_default()))?;
    let hours = match unit {
        "h" => Some(n),
        "d" => n.checked_mul(24),
        "w" => n.checked_mul(24 * 7),
        _ => None,
    }
    .ok_or_else(|| format!("invalid duration '{}': {expected}", s.escape_default()))?;
    if hours <= 0 {
        return Err(format!("invalid duration '{s}': must be at least 1h"));
    }
    if hours > MAX_VALIDITY_DAYS * 24 {
        return Err(format!(
            "invalid duration '{s}': at most {MAX_VALIDITY_DAYS} days"
        ));
    }
    Ok(Duration::hours(hours))
}

/// One deploy `audit completeness` found wanting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncompleteDeploy {
    /// The deploy record.
    pub deploy: String,
    pub blueprint: String,
    pub version: String,
    pub environment: String,
    pub time: String,
    pub actor: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact: Option<String>,
    /// Evidence kinds the policy requires that the version lacks.
    pub missing: Vec<String>,
    /// The policy the deploy is judged by: the vault's (or the built-in one) as it was at the
    /// deploy's time.
    pub policy: PolicyRef,
    /// No entry of the vault's policy covers this blueprint in this environment (so no gate
    /// could pass).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub uncovered: bool,
    /// `never-passed`, `passed-after-deploy`, or `passed` (then `missing` is why it is here).
    pub gate: String,
    /// The passing decision, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate_record: Option<String>,
    /// The newest decision before the deploy, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_decision: Option<String>,
}

/// `evault audit completeness`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletenessReport {
    pub environment: String,
    pub since: Option<String>,
    /// The vault's policy now; each deploy is judged by the one in force at its time (its
    /// `policy`).
    pub policy: PolicyRef,
    /// Deploys examined.
    pub deploys: u64,
    pub incomplete: Vec<IncompleteDeploy>,
}

/// A stored decision about a version in an environment.
pub(crate) struct PastDecision {
    pub id: String,
    pub decision: String,
    pub source: String,
    pub time: Option<DateTime<Utc>>,
}

impl PastDecision {
    /// From a `policy-result` document (its summary or the whole document).
    pub(crate) fn from_doc(id: String, doc: &Value) -> PastDecision {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        PastDecision {
            id,
            decision: text(&doc["decision"]),
            source: text(&doc["policy"]["source"]),
            time: doc["time"].as_str().and_then(time_of),
        }
    }
}

/// What the release gate said about a deploy, judged from the stored decisions about its
/// version in its environment. Decisions under a policy the caller brought (`source` `file`)
/// never count as passing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateHistory {
    /// `passed` (a pass or warn at or before the deploy), `passed-after-deploy`, or
    /// `never-passed`.
    pub state: String,
    /// The passing decision, when there is one (the first one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    /// The newest decision before the deploy, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
    /// Decisions about the version in the environment, any time.
    pub decisions: usize,
}

/// Judges `decisions` (oldest first) for a deploy at `at`.
pub(crate) fn gate_history(decisions: &[PastDecision], at: Option<DateTime<Utc>>) -> GateHistory {
    let passing =
        |d: &&PastDecision| matches!(d.decision.as_str(), "pass" | "warn") && d.source != "file";
    let before = |d: &&PastDecision| match (d.time, at) {
        (Some(t), Some(at)) => t <= at,
        _ => false,
    };
    let passed_before = decisions.iter().filter(passing).find(before);
    let passed_after = decisions.iter().filter(passing).find(|d| !before(d));
    let (state, record) = match (passed_before, passed_after) {
        (Some(d), _) => ("passed", Some(d.id.clone())),
        (None, Some(d)) => ("passed-after-deploy", Some(d.id.clone())),
        (None, None) => ("never-passed", None),
    };
    GateHistory {
        state: state.into(),
        record,
        last_failure: decisions
            .iter()
            .rfind(before)
            .filter(|d| d.decision == "fail")
            .map(|d| d.id.clone()),
        decisions: decisions.len(),
    }
}

fn time_of(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

impl Vault {
    /// The gate policy in force.
    pub fn gate_policy(&self) -> Result<GatePolicyView> {
        on_snapshot(self.index.as_ref(), policy_view)
    }

    /// Replaces the gate policy by `text` (TOML or Rego), after checking it.
    pub fn set_gate_policy(&self, text: &str, actor: &str) -> Result<GatePolicyView> {
        let engine = match compile(text)? {
            Compiled::Toml(_) => "toml",
            Compiled::Rego(_) => "rego",
        };
        let at = format_time(Utc::now());
        crate::index::on_change(self.index.as_ref(), |tx, log| {
            tx.execute(
                "INSERT OR REPLACE INTO gate_policy (name, engine, policy, digest, set_at, set_by) \
                 VALUES ('current', ?1, ?2, ?3, ?4, ?5)",
                params![engine, text, digest_of(text), at, actor],
            )?;
            log.record("gate.policy", GATE_POLICY, "current", actor, None)?;
            policy_view(tx)
        })
    }

    fn loaded_policy(&self, given: Option<&str>) -> Result<Loaded> {
        if let Some(text) = given {
            return Ok(Loaded {
                source: "file",
                text: text.to_string(),
                compiled: compile(text)?,
            });
        }
        let view = self.gate_policy()?;
        let source = if view.source == "vault" {
            "vault"
        } else {
            "built-in"
        };
        Ok(Loaded {
            source,
            compiled: compile(&view.policy)?,
            text: view.policy,
        })
    }

    /// The facts a gate would judge for this check, without judging or recording anything
    /// (`evault gate input`, for writing and testing Rego policies).
    pub fn gate_input(&self, req: &CheckRequest, scopes: &[String]) -> Result<GateInput> {
        self.input_for(req, "this token", scopes)
    }

    fn input_for(&self, req: &CheckRequest, actor: &str, scopes: &[String]) -> Result<GateInput> {
        let (blueprint, version, environment, artifact) = check_values(req)?;
        check_scope(actor, &blueprint, scopes)?;
        let ctx = QueryContext {
            as_of: None,
            scopes: scopes.to_vec(),
        };
        let mut input = on_snapshot(self.index.as_ref(), |conn| {
            input::build(
                &Reader::new(conn, &ctx),
                &blueprint,
                &version,
                &environment,
                artifact.as_deref(),
                now(),
            )
        })?;
        if let Some(sha) = &req.git_sha {
            input.git_sha = validate::git_sha(sha).map_err(|e| bad("git_sha", e))?;
        }
        input.tests = self.test_reports(&input)?;
        Ok(input)
    }

    /// What the test reports among the input's evidence say, read from their blobs (streamed).
    fn test_reports(&self, input: &GateInput) -> Result<Vec<input::TestReport>> {
        let mut out = Vec::new();
        for item in input
            .evidence
            .get(Kind::TestReport.as_str())
            .into_iter()
            .flatten()
        {
            let mut report = input::TestReport {
                id: item.id.clone(),
                ..input::TestReport::default()
            };
            if item.format != evault_schema::Format::JunitXml.as_str() {
                report.problem = Some(format!(
                    "a {} test report carries no test results evault reads (JUnit XML does)",
                    item.format
                ));
                out.push(report);
                continue;
            }
            let digest = item
                .digest
                .parse()
                .map_err(|e| Error::Internal(format!("record {}: {e}", item.id)))?;
            let (_, blob) = self.open_blob(&digest)?;
            match junit::test_counts(std::io::BufReader::with_capacity(64 << 10, blob)) {
                Ok(c) => {
                    report.readable = true;
                    report.tests = c.tests;
                    report.failed = c.failed;
                    report.errors = c.errors;
                    report.skipped = c.skipped;
                }
                Err(e) => report.problem = Some(e.to_string()),
            }
            out.push(report);
        }
        Ok(out)
    }

    /// Checks the gate for `req` on behalf of `actor` (who may act on `scopes`) and records the
    /// decision.
    pub fn gate_check(
        &self,
        req: CheckRequest,
        actor: &str,
        scopes: &[String],
    ) -> Result<GateDecision> {
        let loaded = self.loaded_policy(req.policy.as_deref())?;
        let input = self.input_for(&req, actor, scopes)?;
        let mut entries = Vec::new();
        let mut requirements = match &loaded.compiled {
            Compiled::Toml(p) => {
                let resolved = p.resolve(&input.blueprint, &input.environment);
                if let Some(r) = &resolved {
                    entries = r.entries.clone();
                }
                eval::evaluate(resolved.as_ref(), &input)
            }
            Compiled::Rego(engine) => {
                let mut out = vec![eval::version_requirement(&input)];
                out.extend(rego::evaluate(engine, &input));
                out
            }
        };
        for r in &mut requirements {
            r.message = cut(&r.message);
            r.records.truncate(MAX_RECORDS);
        }
        let decision = eval::decision(&requirements);
        let time = now();
        let mut warnings = Vec::new();
        let mut record = None;
        if input.git_sha.is_empty() {
            warnings.push(format!(
                "the decision is not recorded: the evidence of {} {} names {} commits, so there \
                 is none to link it to (pass --git-sha)",
                input.blueprint,
                input.version,
                input.git_shas.len()
            ));
        } else {
            let doc = PolicyResult {
                type_: POLICY_RESULT_TYPE.into(),
                blueprint: BlueprintRef {
                    name: input.blueprint.clone(),
                    version: input.version.clone(),
                },
                git_sha: input.git_sha.clone(),
                environment: input.environment.clone(),
                artifact: input.artifact.clone(),
                decision,
                time,
                actor: actor.to_string(),
                policy: loaded.reference(),
                requirements: requirements.clone(),
            }
            .validated()
            .map_err(|e| invalid("gate decision", e))?;
            let bytes =
                serde_json::to_vec_pretty(&doc).map_err(|e| Error::Internal(e.to_string()))?;
            let links = LinkArgs {
                style: LinkStyle::Flags,
                blueprint: Some(input.blueprint.clone()),
                version: Some(input.version.clone()),
                git_sha: Some(input.git_sha.clone()),
                run_id: None,
                environment: Some(input.environment.clone()),
                subjects: input.artifact.iter().cloned().collect(),
                repo: None,
            };
            let recorded = self.push_native(
                bytes,
                "policy-result.json",
                links,
                Kind::PolicyResult,
                actor,
                scopes,
                Vec::new(),
            )?;
            warnings.extend(recorded.warnings);
            record = Some(recorded.record.record.id);
        }
        Ok(GateDecision {
            decision,
            blueprint: input.blueprint,
            version: input.version,
            environment: input.environment,
            git_sha: input.git_sha,
            artifact: input.artifact,
            policy: loaded.reference(),
            policy_entries: entries,
            requirements,
            time: format_time(time),
            actor: actor.to_string(),
            record,
            warnings,
        })
    }

    /// Records an approval (or rejection) of a version for an environment by `actor`, acting in
    /// `role`.
    pub fn record_approval(
        &self,
        req: ApprovalRequest,
        actor: &str,
        role: &str,
        scopes: &[String],
    ) -> Result<Recorded> {
        let expires = req
            .expires
            .as_deref()
            .map(parse_validity)
            .transpose()
            .map_err(|e| Error::Invalid(format!("expires: {e}")))?;
        self.record_decision(
            DecisionArgs {
                blueprint: req.blueprint,
                version: req.version,
                environment: req.environment,
                decision: req.decision,
                reason: req.reason,
                expires,
                ticket: req.ticket,
                git_sha: req.git_sha,
                vulnerabilities: Vec::new(),
            },
            actor,
            role,
            scopes,
        )
    }

    /// Records an exception: `actor`, acting in `role`, accepts the risk of some
    /// vulnerabilities of a version in an environment until it expires.
    pub fn record_exception(
        &self,
        req: ExceptionRequest,
        actor: &str,
        role: &str,
        scopes: &[String],
    ) -> Result<Recorded> {
        if req.vulnerabilities.is_empty() {
            return Err(Error::Invalid(
                "vulnerabilities: name at least one vulnerability id (--vuln)".into(),
            ));
        }
        let expires =
            parse_validity(&req.expires).map_err(|e| Error::Invalid(format!("expires: {e}")))?;
        self.record_decision(
            DecisionArgs {
                blueprint: req.blueprint,
                version: req.version,
                environment: req.environment,
                decision: Decision::Approve,
                reason: req.reason,
                expires: Some(expires),
                ticket: req.ticket,
                git_sha: req.git_sha,
                vulnerabilities: req.vulnerabilities,
            },
            actor,
            role,
            scopes,
        )
    }

    fn record_decision(
        &self,
        args: DecisionArgs,
        actor: &str,
        role: &str,
        scopes: &[String],
    ) -> Result<Recorded> {
        let blueprint =
            validate::blueprint_name(&args.blueprint).map_err(|e| bad("blueprint", e))?;
        let version = validate::version(&args.version).map_err(|e| bad("version", e))?;
        check_scope(actor, &blueprint, scopes)?;
        let time = now();
        let exception = !args.vulnerabilities.is_empty();
        let mut doc = Approval {
            type_: APPROVAL_TYPE.into(),
            approver: actor.to_string(),
            decision: args.decision,
            reason: args.reason,
            environment: args.environment,
            time,
            blueprint: Some(BlueprintRef {
                name: blueprint.clone(),
                version: version.clone(),
            }),
            git_sha: None,
            expires_at: args.expires.map(|d| time + d),
            role: Some(role.to_string()),
            ticket: args.ticket,
            vulnerabilities: args.vulnerabilities,
        }
        .validated()
        .map_err(|e| invalid(if exception { "exception" } else { "approval" }, e))?;
        let ctx = QueryContext {
            as_of: None,
            scopes: scopes.to_vec(),
        };
        let (known, pushed, unknown_vulns) = on_snapshot(self.index.as_ref(), |conn| {
            let reader = Reader::new(conn, &ctx);
            let known = version_shas(&reader, &blueprint, &version)?;
            let pushed: bool = conn
                .prepare_cached(
                    "SELECT 1 FROM records WHERE blueprint_name = ?1 AND blueprint_version = ?2 \
                     AND producer = ?3 AND kind NOT IN ('approval', 'policy-result') LIMIT 1",
                )?
                .exists(params![blueprint, version, actor])?;
            let mut unknown = Vec::new();
            for v in &doc.vulnerabilities {
                let found = conn
                    .prepare_cached(
                        "SELECT 1 FROM records r JOIN findings f ON f.digest = r.digest \
                         WHERE r.blueprint_name = ?1 AND r.blueprint_version = ?2 \
                         AND r.kind = 'vuln-scan' AND (f.vuln_id = ?3 COLLATE NOCASE \
                         OR instr(lower(f.aliases), lower(?4)) > 0) LIMIT 1",
                    )?
                    .exists(params![blueprint, version, v, format!("\"{v}\"")])?;
                if !found {
                    unknown.push(v.clone());
                }
            }
            Ok((known, pushed, unknown))
        })?;
        let mut warnings = Vec::new();
        let git_sha = choose_sha(
            args.git_sha.as_deref(),
            &known,
            &blueprint,
            &version,
            &mut warnings,
        )?;
        if pushed {
            warnings.push(format!(
                "{actor} pushed evidence of {blueprint} {version}: a gate that requires \
                 separation of duties will not count this {}",
                if exception { "exception" } else { "approval" }
            ));
        }
        if !unknown_vulns.is_empty() {
            warnings.push(format!(
                "no vulnerability scan of {blueprint} {version} reports {}",
                unknown_vulns.join(", ")
            ));
        }
        doc.git_sha = Some(git_sha.clone());
        let bytes = serde_json::to_vec_pretty(&doc).map_err(|e| Error::Internal(e.to_string()))?;
        let links = LinkArgs {
            style: LinkStyle::Flags,
            blueprint: Some(blueprint),
            version: Some(version),
            git_sha: Some(git_sha),
            run_id: None,
            environment: Some(doc.environment.clone()),
            subjects: Vec::new(),
            repo: None,
        };
        self.push_native(
            bytes,
            if exception {
                "exception.json"
            } else {
                "approval.json"
            },
            links,
            Kind::Approval,
            actor,
            scopes,
            warnings,
        )
    }

    /// The deploys to `environment` (since `since`) whose version lacks evidence the vault's
    /// policy requires, or whose gate never passed before the deploy.
    pub fn audit_completeness(
        &self,
        environment: &str,
        since: Option<DateTime<Utc>>,
        scopes: &[String],
    ) -> Result<CompletenessReport> {
        let environment = validate::environment(environment).map_err(|e| bad("environment", e))?;
        let loaded = self.loaded_policy(None)?;
        let ctx = QueryContext {
            as_of: None,
            scopes: scopes.to_vec(),
        };
        let since_text = since.map(format_time);
        let incomplete = on_snapshot(self.index.as_ref(), |conn| {
            let policies = policy_history(conn)?;
            let built_in = Loaded {
                source: "built-in",
                text: BUILT_IN.into(),
                compiled: compile(BUILT_IN)?,
            };
            // The policy in force at `at`: the last one set by then, else the built-in one.
            let in_force = |at: Option<DateTime<Utc>>| -> &Loaded {
                let Some(at) = at else {
                    return policies.last().map_or(&built_in, |(_, l)| l);
                };
                policies
                    .iter()
                    .rev()
                    .find(|(set_at, _)| *set_at <= at)
                    .map_or(&built_in, |(_, l)| l)
            };
            let reader = Reader::new(conn, &ctx);
            let changes = reader.changes_where(
                "r.kind = 'deploy' AND r.environment = ?1 COLLATE NOCASE",
                &[&environment],
            )?;
            let mut out = Vec::new();
            let mut deploys = 0u64;
            for change in changes {
                if !change.takes_effect() {
                    continue;
                }
                let at = time_of(&change.time);
                if let (Some(since), Some(at)) = (since, at)
                    && at < since
                {
                    continue;
                }
                deploys += 1;
                let policy = in_force(at);
                let (missing, uncovered) = match &policy.compiled {
                    Compiled::Toml(p) => match p.resolve(&change.blueprint, &change.environment) {
                        Some(r) => (
                            missing_kinds(conn, &change.blueprint, &change.version, &r.require)?,
                            false,
                        ),
                        None => (Vec::new(), true),
                    },
                    Compiled::Rego(_) => (Vec::new(), false),
                };
                let past = past_decisions(
                    conn,
                    &change.blueprint,
                    &change.version,
                    &change.environment,
                )?;
                let history = gate_history(&past, at);
                if history.state == "passed" && missing.is_empty() && !uncovered {
                    continue;
                }
                out.push(IncompleteDeploy {
                    deploy: change.record_id.clone(),
                    blueprint: change.blueprint.clone(),
                    version: change.version.clone(),
                    environment: change.environment.clone(),
                    time: change.time.clone(),
                    actor: change.actor.clone(),
                    artifact: change.artifact.clone(),
                    missing,
                    uncovered,
                    policy: policy.reference(),
                    gate: history.state,
                    gate_record: history.record,
                    last_decision: history.last_failure,
                });
            }
            Ok((deploys, out))
        })?;
        Ok(CompletenessReport {
            environment,
            since: since_text,
            policy: loaded.reference(),
            deploys: incomplete.0,
            incomplete: incomplete.1,
        })
    }
}

struct DecisionArgs {
    blueprint: String,
    version: String,
    environment: String,
    decision: Decision,
    reason: String,
    expires: Option<Duration>,
    ticket: Option<String>,
    git_sha: Option<String>,
    vulnerabilities: Vec<String>,
}

/// The checked values of a request: blueprint, version, environment, artifact.
fn check_values(req: &CheckRequest) -> Result<(String, String, String, Option<String>)> {
    let blueprint = validate::blueprint_name(&req.blueprint).map_err(|e| bad("blueprint", e))?;
    let version = validate::version(&req.version).map_err(|e| bad("version", e))?;
    let environment = validate::environment(&req.environment).map_err(|e| bad("environment", e))?;
    let artifact = req
        .artifact
        .as_deref()
        .map(validate::digest)
        .transpose()
        .map_err(|e| bad("artifact", e))?;
    Ok((blueprint, version, environment, artifact))
}

/// Every gate policy the vault has stored, oldest first, with when it was set: read from the
/// tamper-evident log (subject `gate-policy/current`), not from a table that could be edited
/// without trace.
fn policy_history(conn: &Connection) -> Result<Vec<(DateTime<Utc>, Loaded)>> {
    let mut stmt =
        conn.prepare_cached("SELECT entry FROM log_entries WHERE subject = ?1 ORDER BY idx")?;
    let rows = stmt.query_map(params![GATE_POLICY.subject("current")], |r| {
        r.get::<_, String>(0)
    })?;
    let mut out = Vec::new();
    for row in rows {
        let entry: Value = serde_json::from_str(&row?)
            .map_err(|e| Error::Internal(format!("a gate policy log entry is not JSON: {e}")))?;
        let state = &entry["state"];
        let (Some(text), Some(at)) = (
            state["policy"].as_str(),
            state["set_at"].as_str().and_then(time_of),
        ) else {
            continue;
        };
        out.push((
            at,
            Loaded {
                source: "vault",
                text: text.to_string(),
                compiled: compile(text)?,
            },
        ));
    }
    Ok(out)
}

/// The kinds in `require` the version has no record of.
fn missing_kinds(
    conn: &Connection,
    blueprint: &str,
    version: &str,
    require: &[Kind],
) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT 1 FROM records WHERE blueprint_name = ?1 AND blueprint_version = ?2 \
         AND kind = ?3 LIMIT 1",
    )?;
    let mut out = Vec::new();
    for kind in require {
        if !stmt.exists(params![blueprint, version, kind.as_str()])? {
            out.push(kind.as_str().to_string());
        }
    }
    Ok(out)
}

/// The stored gate decisions about a version in an environment, oldest first.
fn past_decisions(
    conn: &Connection,
    blueprint: &str,
    version: &str,
    environment: &str,
) -> Result<Vec<PastDecision>> {
    let mut stmt = conn.prepare_cached(
        "SELECT r.id, f.native FROM records r JOIN blob_facts f ON f.digest = r.digest \
         WHERE r.blueprint_name = ?1 AND r.blueprint_version = ?2 AND r.kind = 'policy-result' \
         AND r.environment = ?3 COLLATE NOCASE ORDER BY r.seq",
    )?;
    let rows = stmt.query_map(params![blueprint, version, environment], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, native) = row?;
        let doc: Value = native
            .and_then(|n| serde_json::from_str(&n).ok())
            .unwrap_or(Value::Null);
        out.push(PastDecision::from_doc(id, &doc));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
