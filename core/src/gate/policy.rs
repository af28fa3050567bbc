//! Gate policies: what a blueprint version needs before it may go to an environment, written in
//! TOML, with built-in defaults for `staging` and `production`.
//!
//! A policy is a list of `[[gate]]` entries. Each names the environments it covers
//! (`environment`, a pattern where `*` matches any run of characters) and optionally the
//! blueprints (`blueprint`, default `*`), and sets any of five sections: `require` (evidence
//! kinds that must be present), `vulnerabilities` (thresholds after VEX), `provenance`,
//! `signatures` and `approvals`. For one blueprint and environment, every matching entry
//! applies, from the least specific to the most specific (a literal name is more specific than a
//! pattern, a longer pattern more than a shorter one, the blueprint before the environment, later
//! entries before earlier ones on a tie); a section set by a more specific entry replaces the
//! same section of a less specific one. An environment no entry covers fails the gate: the vault
//! never lets a version through on a policy that does not exist.

use std::fmt;

use evault_schema::Kind;
use serde::{Deserialize, Serialize};

use crate::auth::scope_matches;

/// Most `[[gate]]` entries a policy may have.
pub const MAX_GATES: usize = 1000;
/// Largest policy text accepted, in bytes.
pub const MAX_POLICY_BYTES: usize = 1 << 20;
/// Most entries in one list of a policy (kinds, roles, builders, repositories, signers).
const MAX_LIST: usize = 1000;

/// The built-in policy: the common CI/CD gates (tests reported and passing, SBOM, scan with no
/// critical and at most three high vulnerabilities, rollback plan; production also needs a human
/// approval).
pub const BUILT_IN: &str = r#"# evault's built-in gate policy: what a version needs before it goes to staging or production.
# Copy it, change it, and store yours with `evault gate policy set FILE`.

[[gate]]
environment = "staging"
require = ["test-report", "sbom", "vuln-scan", "rollback-plan"]

[gate.tests]
# Every test case in the version's JUnit reports passed (or was skipped), and some ran.
max_failed = 0

[gate.vulnerabilities]
# Counted after VEX: findings a VEX statement marks not_affected or fixed do not count.
critical = { max = 0, above = "fail" }
high = { max = 3, above = "warn" }

[[gate]]
environment = "production"
require = ["test-report", "sbom", "vuln-scan", "rollback-plan", "approval"]

[gate.tests]
max_failed = 0

[gate.vulnerabilities]
critical = { max = 0, above = "fail" }
# More than three high vulnerabilities block, unless approved exceptions cover the excess.
high = { max = 3, above = "fail", exceptions = true }
exception_roles = ["approver"]

[gate.approvals]
min = 1
roles = ["approver"]
separation_of_duties = true
"#;

/// A gate policy, as read from TOML.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatePolicy {
    /// The `[[gate]]` entries, in file order.
    #[serde(default, rename = "gate")]
    pub gates: Vec<Gate>,
}

/// One `[[gate]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gate {
    /// Environment name pattern (`production`, `prod-*`, `*`).
    pub environment: String,
    /// Blueprint name pattern; default `*`.
    #[serde(default = "any")]
    pub blueprint: String,
    /// Evidence kinds that must be present (`sbom`, `vuln-scan`, `provenance`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vulnerabilities: Option<Vulnerabilities>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<ProvenanceRule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signatures: Option<SignatureRule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvals: Option<ApprovalRule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tests: Option<TestRule>,
}

fn any() -> String {
    "*".into()
}

fn yes() -> bool {
    true
}

fn one() -> u32 {
    1
}

fn approver() -> Vec<String> {
    vec!["approver".into()]
}

/// Vulnerability thresholds, counted after VEX. A severity without a threshold is reported
/// only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vulnerabilities {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical: Option<Threshold>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high: Option<Threshold>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medium: Option<Threshold>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low: Option<Threshold>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown: Option<Threshold>,
    /// Roles whose exceptions count (the approval's `role`); default `approver`.
    #[serde(default = "approver")]
    pub exception_roles: Vec<String>,
    /// Exceptions running longer than this many days (from their `time` to `expires_at`) do
    /// not count; default: any that expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exception_max_days: Option<u32>,
    /// Which VEX statements settle findings: `any` (default) or `verified` (only those of VEX
    /// records whose signature verified).
    #[serde(default, skip_serializing_if = "VexTrust::is_any")]
    pub vex: VexTrust,
}

/// Which VEX records a gate believes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VexTrust {
    /// Every VEX record of the version.
    #[default]
    Any,
    /// Only VEX records whose signature verified against the trust store.
    Verified,
}

impl VexTrust {
    fn is_any(&self) -> bool {
        *self == VexTrust::Any
    }
}

impl Vulnerabilities {
    /// The thresholds set, most severe first.
    pub fn thresholds(&self) -> Vec<(&'static str, &Threshold)> {
        [
            ("critical", &self.critical),
            ("high", &self.high),
            ("medium", &self.medium),
            ("low", &self.low),
            ("unknown", &self.unknown),
        ]
        .into_iter()
        .filter_map(|(name, t)| t.as_ref().map(|t| (name, t)))
        .collect()
    }
}

/// At most `max` findings of a severity; more is `above` (a warning or a failure). With
/// `exceptions`, findings an approved, unexpired exception covers do not count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    pub max: u32,
    #[serde(default)]
    pub above: Level,
    #[serde(default)]
    pub exceptions: bool,
}

/// How a broken threshold counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Warn,
    #[default]
    Fail,
}

/// What the version's provenance must show. At least one provenance record (about the artifact,
/// when the check names one) must meet every condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvenanceRule {
    /// Its signature verified against the trust store; default true.
    #[serde(default = "yes")]
    pub verified: bool,
    /// Allowed builder ids (patterns); empty allows any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub builders: Vec<String>,
    /// Allowed source repositories (patterns); empty allows any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_repos: Vec<String>,
    /// Its source commit equal to the version's git SHA; default true.
    #[serde(default = "yes")]
    pub commit: bool,
}

/// What the version's signatures must show: at least one verified (by a trusted key or
/// identity, about the artifact when the check names one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureRule {
    /// Trusted key or identity names (patterns) whose signature counts; empty allows any
    /// trusted signer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signers: Vec<String>,
}

/// Human approvals the version needs for the environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRule {
    /// How many distinct approvers; default 1.
    #[serde(default = "one")]
    pub min: u32,
    /// Roles whose approvals count; default `approver`.
    #[serde(default = "approver")]
    pub roles: Vec<String>,
    /// An approver who pushed evidence of the version does not count; default true.
    #[serde(default = "yes")]
    pub separation_of_duties: bool,
}

/// What the version's test reports must show, summed over all of them: at least `min_tests`
/// test cases, at most `max_failed` failed or errored ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestRule {
    /// Failed or errored test cases allowed; default 0 (tests pass 100%).
    #[serde(default)]
    pub max_failed: u64,
    /// Test cases that must have run; default 1 (a report of no tests proves nothing).
    #[serde(default = "one_test")]
    pub min_tests: u64,
}

fn one_test() -> u64 {
    1
}

/// The policy for one blueprint and environment, after every matching entry was applied.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Resolved {
    /// The entries that applied (counted from 1), least specific first.
    pub entries: Vec<usize>,
    pub require: Vec<Kind>,
    pub vulnerabilities: Option<Vulnerabilities>,
    pub provenance: Option<ProvenanceRule>,
    pub signatures: Option<SignatureRule>,
    pub approvals: Option<ApprovalRule>,
    pub tests: Option<TestRule>,
}

/// A policy that cannot be read or is not valid, on one line:
/// `gate 2 (line 9): require: unknown kind 'sbomm' ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub gate: Option<usize>,
    pub line: Option<usize>,
    pub reason: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.gate, self.line) {
            (Some(g), Some(l)) => write!(f, "gate {g} (line {l}): ")?,
            (Some(g), None) => write!(f, "gate {g}: ")?,
            (None, Some(l)) => write!(f, "line {l}: ")?,
            (None, None) => {}
        }
        f.write_str(&self.reason)
    }
}

impl std::error::Error for PolicyError {}

fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Where each `[[gate]]` header starts, in order.
fn gate_lines(text: &str) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let t = l.trim_start();
            t.starts_with("[[gate]]") || t.starts_with("[[ gate ]]")
        })
        .map(|(i, _)| i + 1)
        .collect()
}

impl GatePolicy {
    /// Reads and checks a policy. Unknown keys are refused (a misspelt `requre` must not leave
    /// a gate open), and so are unknown kinds, invalid patterns and empty lists of roles.
    pub fn from_toml(text: &str) -> Result<GatePolicy, PolicyError> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(PolicyError {
                gate: None,
                line: None,
                reason: format!(
                    "the policy is {} bytes, larger than the {MAX_POLICY_BYTES}-byte limit",
                    text.len()
                ),
            });
        }
        let policy: GatePolicy = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start));
            let gate = line.and_then(|l| gate_lines(text).iter().rposition(|g| *g <= l));
            PolicyError {
                gate: gate.map(|g| g + 1),
                line,
                reason: e.message().lines().collect::<Vec<_>>().join(" "),
            }
        })?;
        policy.validate().map_err(|mut e| {
            if let Some(g) = e.gate {
                e.line = gate_lines(text).get(g - 1).copied();
            }
            e
        })?;
        Ok(policy)
    }

    /// The built-in policy.
    pub fn built_in() -> GatePolicy {
        GatePolicy::from_toml(BUILT_IN).unwrap_or_default()
    }

    /// Checks what [`GatePolicy::from_toml`] checks.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.gates.is_empty() {
            return Err(PolicyError {
                gate: None,
                line: None,
                reason: "the policy has no [[gate]] entries: every environment would fail its \
                         gate"
                    .into(),
            });
        }
        if self.gates.len() > MAX_GATES {
            return Err(PolicyError {
                gate: None,
                line: None,
                reason: format!(
                    "{} gates is too many: at most {MAX_GATES} are allowed",
                    self.gates.len()
                ),
            });
        }
        for (i, gate) in self.gates.iter().enumerate() {
            gate.validate().map_err(|reason| PolicyError {
                gate: Some(i + 1),
                line: None,
                reason,
            })?;
        }
        Ok(())
    }

    /// The policy for `blueprint` going to `environment`, or `None` when no entry covers it.
    pub fn resolve(&self, blueprint: &str, environment: &str) -> Option<Resolved> {
        let mut matching: Vec<(usize, &Gate)> = self
            .gates
            .iter()
            .enumerate()
            .filter(|(_, g)| {
                scope_matches(&g.blueprint, blueprint)
                    && (scope_matches(&g.environment, environment)
                        || scope_matches(
                            &g.environment.to_ascii_lowercase(),
                            &environment.to_ascii_lowercase(),
                        ))
            })
            .collect();
        if matching.is_empty() {
            return None;
        }
        matching.sort_by_key(|(i, g)| (specificity(&g.blueprint), specificity(&g.environment), *i));
        let mut out = Resolved::default();
        for (i, g) in matching {
            out.entries.push(i + 1);
            if let Some(require) = &g.require {
                out.require = require.iter().filter_map(|k| k.parse().ok()).collect();
            }
            if let Some(v) = &g.vulnerabilities {
                out.vulnerabilities = Some(v.clone());
            }
            if let Some(p) = &g.provenance {
                out.provenance = Some(p.clone());
            }
            if let Some(s) = &g.signatures {
                out.signatures = Some(s.clone());
            }
            if let Some(a) = &g.approvals {
                out.approvals = Some(a.clone());
            }
            if let Some(t) = &g.tests {
                out.tests = Some(t.clone());
            }
        }
        Some(out)
    }

    /// The policy as TOML, which [`GatePolicy::from_toml`] reads back unchanged.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }
}

/// How specific a pattern is: a literal name beats any pattern, then the more literal
/// characters the better.
fn specificity(pattern: &str) -> (bool, usize) {
    (
        !pattern.contains('*'),
        pattern.chars().filter(|c| *c != '*').count(),
    )
}

fn check_pattern(what: &str, pattern: &str) -> Result<(), String> {
    let literal = pattern.replace('*', "x");
    if pattern.is_empty() || pattern.len() > 128 {
        return Err(format!("{what}: expected 1 to 128 characters"));
    }
    if !literal
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(format!(
            "{what}: invalid pattern '{pattern}': use letters, digits, '.', '_', '-' and '*'"
        ));
    }
    Ok(())
}

fn check_list(what: &str, items: &[String], may_be_empty: bool) -> Result<(), String> {
    if items.is_empty() && !may_be_empty {
        return Err(format!(
            "{what}: must not be empty (nobody could ever satisfy it)"
        ));
    }
    if items.len() > MAX_LIST {
        return Err(format!(
            "{what}: {} entries is too many: at most {MAX_LIST}",
            items.len()
        ));
    }
    for item in items {
        if item.trim().is_empty() || item.len() > 1024 || item.chars().any(char::is_control) {
            return Err(format!(
                "{what}: '{}' must be a non-empty single line of at most 1024 bytes",
                item.escape_default()
            ));
        }
    }
    Ok(())
}

impl Gate {
    fn validate(&self) -> Result<(), String> {
        check_pattern("environment", &self.environment)?;
        check_pattern("blueprint", &self.blueprint)?;
        if let Some(require) = &self.require {
            check_list("require", require, true)?;
            for name in require {
                let kind: Kind = name.parse().map_err(|e| format!("require: {e}"))?;
                if matches!(kind, Kind::Deploy | Kind::Rollback | Kind::PolicyResult) {
                    return Err(format!(
                        "require: '{kind}' cannot be required before a deploy (it is written by \
                         or after the deploy)"
                    ));
                }
            }
        }
        if let Some(v) = &self.vulnerabilities {
            check_list("vulnerabilities.exception_roles", &v.exception_roles, false)?;
            if let Some(days) = v.exception_max_days
                && !(1..=366).contains(&days)
            {
                return Err(format!(
                    "vulnerabilities.exception_max_days: {days} is out of range: expected 1 to 366"
                ));
            }
            if v.thresholds().is_empty() {
                return Err(
                    "vulnerabilities: set at least one threshold (critical, high, medium, low \
                     or unknown)"
                        .into(),
                );
            }
        }
        if let Some(p) = &self.provenance {
            check_list("provenance.builders", &p.builders, true)?;
            check_list("provenance.source_repos", &p.source_repos, true)?;
        }
        if let Some(s) = &self.signatures {
            check_list("signatures.signers", &s.signers, true)?;
        }
        if let Some(a) = &self.approvals {
            check_list("approvals.roles", &a.roles, false)?;
            if a.min == 0 || a.min > 100 {
                return Err(format!(
                    "approvals.min: {} is out of range: expected 1 to 100 (leave the section \
                     out to need no approval)",
                    a.min
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_policy_reads_and_covers_staging_and_production_only() {
        let p = GatePolicy::from_toml(BUILT_IN).unwrap();
        assert_eq!(p, GatePolicy::built_in());
        let prod = p.resolve("checkout-api", "production").unwrap();
        assert!(prod.require.contains(&Kind::Approval));
        assert_eq!(prod.approvals.as_ref().unwrap().min, 1);
        let high = prod.vulnerabilities.as_ref().unwrap().high.clone().unwrap();
        assert_eq!(
            (high.max, high.above, high.exceptions),
            (3, Level::Fail, true)
        );
        let staging = p.resolve("checkout-api", "staging").unwrap();
        assert!(staging.approvals.is_none());
        let high = staging.vulnerabilities.unwrap().high.unwrap();
        assert_eq!(high.above, Level::Warn);
        assert!(p.resolve("checkout-api", "dev").is_none());
        // Round trip.
        assert_eq!(GatePolicy::from_toml(&p.to_toml()).unwrap(), p);
    }

    #[test]
    fn a_more_specific_entry_replaces_only_the_sections_it_sets() {
        let p = GatePolicy::from_toml(
            r#"
            [[gate]]
            environment = "prod*"
            blueprint = "payments-*"
            require = ["sbom"]

            [[gate]]
            environment = "*"
            require = ["sbom", "test-report"]
            [gate.approvals]
            min = 2

            [[gate]]
            environment = "production"
            blueprint = "payments-ledger"
            [gate.signatures]
            signers = ["release-key"]
            "#,
        )
        .unwrap();
        let r = p.resolve("payments-ledger", "production").unwrap();
        assert_eq!(r.entries, vec![2, 1, 3]);
        assert_eq!(r.require, vec![Kind::Sbom]);
        assert_eq!(r.approvals.unwrap().min, 2);
        assert_eq!(r.signatures.unwrap().signers, vec!["release-key"]);
        let r = p.resolve("checkout-api", "dev").unwrap();
        assert_eq!(r.entries, vec![2]);
        assert_eq!(r.require, vec![Kind::Sbom, Kind::TestReport]);
        assert!(r.signatures.is_none());
    }

    #[test]
    fn mistakes_are_refused_naming_the_gate_and_line() {
        let cases = [
            (
                "[[gate]]\nenvironment = \"production\"\nrequre = [\"sbom\"]\n",
                "gate 1 (line 3): unknown field `requre`",
            ),
            (
                "[[gate]]\nenvironment = \"staging\"\n\n[[gate]]\nenvironment = \"production\"\nrequire = [\"sbomm\"]\n",
                "gate 2 (line 4): require: unknown kind 'sbomm'",
            ),
            (
                "[[gate]]\nenvironment = \"production\"\nrequire = [\"deploy\"]\n",
                "gate 1 (line 1): require: 'deploy' cannot be required",
            ),
            (
                "[[gate]]\nenvironment = \"prod/../x\"\n",
                "gate 1 (line 1): environment: invalid pattern",
            ),
            (
                "[[gate]]\nenvironment = \"production\"\n[gate.approvals]\nmin = 0\n",
                "gate 1 (line 1): approvals.min: 0 is out of range",
            ),
            (
                "[[gate]]\nenvironment = \"production\"\n[gate.approvals]\nroles = []\n",
                "gate 1 (line 1): approvals.roles: must not be empty",
            ),
            (
                "[[gate]]\nenvironment = \"production\"\n[gate.vulnerabilities]\nhigh = { max = 3, above = \"block\" }\n",
                "gate 1 (line 4): unknown variant `block`",
            ),
            (
                "[[gate]]\nenvironment = \"production\"\n[gate.vulnerabilities]\nhigh = { max = 3 }\nexception_max_days = 0\n",
                "gate 1 (line 1): vulnerabilities.exception_max_days: 0 is out of range",
            ),
            (
                "[[gate]]\nenvironment = \"production\"\n[gate.vulnerabilities]\nhigh = { max = 3 }\nvex = \"signed\"\n",
                "gate 1 (line 5): unknown variant `signed`, expected `any` or `verified`",
            ),
            ("", "no [[gate]] entries"),
        ];
        for (text, want) in cases {
            let err = GatePolicy::from_toml(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }
}
