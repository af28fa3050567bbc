//! The vault's retention policy: a mode, a default period and rules that lengthen it.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::{self, IgnoredAny, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::check::{self, glob_matches};
use crate::{RecordFacts, RetentionPeriod};

/// The most rules a policy may have. Real policies have a handful; the bound keeps matching
/// and [`Policy::check_change`] (which compares every pair of rules) cheap.
pub const MAX_RULES: usize = 256;

/// A check of a selector's value, from [`crate::check`].
type ShapeCheck = fn(&str) -> Result<(), String>;

/// Who may delete a record before its retention runs out, with the semantics of S3 Object Lock.
///
/// Serialized as `"compliance"` or `"governance"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Nobody, admins included, can delete a record or shorten its retention before its
    /// retain-until date; the policy itself can only be made longer (see
    /// [`Policy::check_change`]). This is what regulators mean by WORM storage, and it cannot be
    /// undone: a vault switched to compliance stays in compliance.
    Compliance,
    /// An admin may delete a record early, with an explicit override and a reason, both of
    /// which the caller logs; the policy may be changed freely. Everyone else is bound as in
    /// compliance mode.
    Governance,
}

impl Mode {
    /// The name used in policy files: `compliance` or `governance`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Compliance => "compliance",
            Mode::Governance => "governance",
        }
    }
}

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Mode, D::Error> {
        struct ModeVisitor;

        impl Visitor<'_> for ModeVisitor {
            type Value = Mode;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"compliance\" or \"governance\"")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<Mode, E> {
                match s {
                    "compliance" => Ok(Mode::Compliance),
                    "governance" => Ok(Mode::Governance),
                    _ => Err(E::custom(format_args!(
                        "unknown mode \"{}\", expected \"compliance\" or \"governance\"",
                        s.escape_debug()
                    ))),
                }
            }
        }

        deserializer.deserialize_str(ModeVisitor)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rule of a [`Policy`]: records matching every selector it gives are kept at least `period`.
///
/// At least one selector is required (the policy's default covers every record). Serialized as
/// a `[[rule]]` table, leaving out the selectors it does not give.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The evidence kind name, exact: `sbom`, `vuln-scan`, `provenance`, `approval`, `deploy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The blueprint name, or a pattern where `*` matches any run of characters
    /// (`checkout-*`); case-sensitive, like blueprint names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blueprint: Option<String>,
    /// The deployment environment, compared case-insensitively (`production` matches
    /// `Production`). A rule with an environment never matches a record without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// How long matching records are kept, from when they were stored.
    pub period: RetentionPeriod,
}

impl Rule {
    /// Whether a record with these facts is selected by every selector the rule gives.
    pub fn matches(&self, facts: &RecordFacts<'_>) -> bool {
        self.kind.as_deref().is_none_or(|kind| kind == facts.kind)
            && self
                .blueprint
                .as_deref()
                .is_none_or(|pattern| glob_matches(pattern, facts.blueprint))
            && self.environment.as_deref().is_none_or(|env| {
                facts
                    .environment
                    .is_some_and(|given| given.eq_ignore_ascii_case(env))
            })
    }

    /// The selectors, as `kind=deploy, environment=production`, for messages.
    fn selector(&self) -> String {
        [
            ("kind", &self.kind),
            ("blueprint", &self.blueprint),
            ("environment", &self.environment),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.as_deref().map(|v| format!("{name}={v}")))
        .collect::<Vec<_>>()
        .join(", ")
    }

    /// Whether both rules select with the same triple (environments compared without case).
    fn same_selector(&self, other: &Rule) -> bool {
        self.kind == other.kind
            && self.blueprint == other.blueprint
            && match (&self.environment, &other.environment) {
                (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                (a, b) => a == b,
            }
    }

    /// Whether every record `other` selects is selected by this rule as well.
    fn covers(&self, other: &Rule) -> bool {
        let kind = match (&self.kind, &other.kind) {
            (None, _) => true,
            (Some(a), Some(b)) => a == b,
            (Some(_), None) => false,
        };
        let blueprint = match (&self.blueprint, &other.blueprint) {
            (None, _) => true,
            // `*` never occurs in a name, so matching the other pattern as if it were a name
            // tells whether this pattern matches everything the other one does.
            (Some(wide), Some(narrow)) => glob_matches(wide, narrow),
            (Some(_), None) => false,
        };
        let environment = match (&self.environment, &other.environment) {
            (None, _) => true,
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
            (Some(_), None) => false,
        };
        kind && blueprint && environment
    }

    /// The rule as `rule 2 (kind=provenance): 7y`, `number` counting from 1.
    fn describe(&self, number: usize) -> String {
        format!("rule {number} ({}): {}", self.selector(), self.period)
    }
}

/// A vault's retention policy: the [`Mode`], the default period every record is kept, and rules
/// that keep some records longer.
///
/// In TOML (see [`Policy::from_toml`]):
///
/// ```toml
/// mode = "compliance"
/// default = "1y"
///
/// [[rule]]
/// kind = "provenance"
/// period = "7y"
///
/// [[rule]]
/// kind = "deploy"
/// environment = "production"
/// period = "7y"
/// ```
///
/// The default is a floor: every record is kept at least that long, and a rule can only
/// lengthen it, never shorten it (a rule shorter than the default is refused, since it would
/// never apply). When several rules match, the longest period wins. Both choices make a policy
/// monotone: adding a rule can never shorten anyone's retention, which is what lets
/// [`Policy::check_change`] guard compliance mode by looking at rules one at a time.
///
/// Deserializing (from any serde format) validates like [`Policy::from_toml`];
/// [`Policy::validate`] checks a policy built in code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PolicyFile")]
pub struct Policy {
    /// Who may delete early, and whether the policy may be shortened.
    pub mode: Mode,
    /// The period of every record, unless a rule gives it a longer one.
    pub default: RetentionPeriod,
    /// The rules, in file order (which breaks ties and numbers them in messages).
    #[serde(rename = "rule", skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
}

/// The evidence kinds the [default policy](Policy::default) keeps seven years.
const AUDIT_TRAIL_KINDS: [&str; 6] = [
    "provenance",
    "approval",
    "signature",
    "deploy",
    "rollback",
    "policy-result",
];

impl Default for Policy {
    /// The policy of a vault nobody configured: mode `governance`, default [`DEFAULT_RETENTION`]
    /// (one year), and seven years for provenance, approvals, signatures, deploys, rollbacks and
    /// policy results.
    ///
    /// Those kinds are the audit trail of a change: who built it from what, who approved it,
    /// what the gates decided, where and when it was deployed and how it was rolled back. An
    /// auditor may ask about any change still in the books, and seven years is the longest common
    /// record-keeping obligation (SOX, many financial regulators). SBOMs and scans describe an
    /// artifact rather than a decision and are superseded by every new build; one year is the
    /// SOC 2 floor for them. (While a version is deployed, its SBOMs and scans are kept as long
    /// as its deploy record anyway: see [`graph_retain_until`](crate::graph_retain_until).)
    ///
    /// Governance rather than compliance, because compliance cannot be undone: a new vault
    /// should not be irreversibly locked by a default its operators never chose. Compliance
    /// must be chosen explicitly, in a policy file.
    ///
    /// [`DEFAULT_RETENTION`]: crate::DEFAULT_RETENTION
    fn default() -> Policy {
        Policy {
            mode: Mode::Governance,
            default: RetentionPeriod::default(),
            rules: AUDIT_TRAIL_KINDS
                .into_iter()
                .map(|kind| Rule {
                    kind: Some(kind.to_string()),
                    blueprint: None,
                    environment: None,
                    period: RetentionPeriod::Years(7),
                })
                .collect(),
        }
    }
}

/// The period [`Policy::period_for`] chose for a record, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The period, counted from when the record was stored.
    pub period: RetentionPeriod,
    /// The deciding rule, for people: `rule 2 (kind=provenance): 7y` or `default: 1y`.
    pub rule: String,
}

impl Policy {
    /// Reads a policy file.
    ///
    /// `mode` and `default` are required; rules are `[[rule]]` tables with a `period` and at
    /// least one of `kind`, `blueprint` and `environment`. Unknown keys are refused (a
    /// misspelled `perod` must not silently leave a rule without effect), and so are empty
    /// values, patterns with anything but `*` as a wildcard, rules shorter than the default, and
    /// two rules with the same selectors. The error names the rule, line and key at fault.
    pub fn from_toml(text: &str) -> Result<Policy, PolicyError> {
        let file: PolicyFile =
            toml::from_str(text).map_err(|e| PolicyError::from_toml(text, &e))?;
        let policy = file.into_policy();
        policy.validate().map_err(|mut e| {
            if let Some(rule) = e.rule {
                e.line = rule_spans(text)
                    .get(rule - 1)
                    .map(|span| line_of(text, span.start));
            }
            e
        })?;
        Ok(policy)
    }

    /// Writes the policy as a policy file that [`Policy::from_toml`] reads back unchanged.
    pub fn to_toml(&self) -> String {
        // Strings, an enum and a list of tables: nothing TOML cannot represent.
        toml::to_string(self).expect("a retention policy always serializes to TOML")
    }

    /// Checks what [`Policy::from_toml`] checks, for a policy built in code.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.rules.len() > MAX_RULES {
            return Err(PolicyError {
                rule: None,
                line: None,
                field: Some("rule".to_string()),
                reason: format!(
                    "{} rules is too many: at most {MAX_RULES} are allowed",
                    self.rules.len()
                ),
            });
        }
        for (i, rule) in self.rules.iter().enumerate() {
            let fail = |field: Option<&str>, reason: String| PolicyError {
                rule: Some(i + 1),
                line: None,
                field: field.map(str::to_string),
                reason,
            };
            if rule.kind.is_none() && rule.blueprint.is_none() && rule.environment.is_none() {
                return Err(fail(
                    None,
                    "no selector: give at least one of kind, blueprint and environment \
                     (the default already covers every record)"
                        .to_string(),
                ));
            }
            let selectors: [(&str, &Option<String>, ShapeCheck); 3] = [
                ("kind", &rule.kind, check::kind),
                ("blueprint", &rule.blueprint, check::pattern),
                ("environment", &rule.environment, check::environment),
            ];
            for (field, value, check) in selectors {
                if let Some(value) = value {
                    check(value).map_err(|reason| fail(Some(field), reason))?;
                }
            }
            if !rule.period.never_shorter_than(self.default) {
                return Err(fail(
                    Some("period"),
                    format!(
                        "{} is shorter than the default {}: the default is the minimum for every \
                         record and a rule can only lengthen it (lower the default instead)",
                        rule.period, self.default
                    ),
                ));
            }
            if let Some(j) = self.rules[..i].iter().position(|r| r.same_selector(rule)) {
                return Err(fail(
                    None,
                    format!(
                        "same selector as rule {} ({}): keep one rule per selector",
                        j + 1,
                        self.rules[j].selector()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The period of a record with these facts: the longest of the default and every matching
    /// rule, compared by the date each gives from `facts.ingested_at` (so `366d` beats `1y`
    /// only when no 29 February is in reach). On a tie, the first matching rule in file order
    /// is named, and a rule before the default.
    pub fn period_for(&self, facts: &RecordFacts<'_>) -> Applied {
        let from = facts.ingested_at;
        let mut best: Option<(DateTime<Utc>, usize)> = None;
        for (i, rule) in self.rules.iter().enumerate() {
            if !rule.matches(facts) {
                continue;
            }
            let until = rule.period.retain_until(from);
            if best.is_none_or(|(longest, _)| until > longest) {
                best = Some((until, i));
            }
        }
        match best {
            Some((until, i)) if until >= self.default.retain_until(from) => Applied {
                period: self.rules[i].period,
                rule: self.rules[i].describe(i + 1),
            },
            _ => Applied {
                period: self.default,
                rule: format!("default: {}", self.default),
            },
        }
    }

    /// Until when a record with these facts must be kept, and the deciding rule (see
    /// [`Policy::period_for`]). This is the policy's answer alone: see
    /// [`extended`](crate::extended) and [`graph_retain_until`](crate::graph_retain_until) for
    /// what else can keep a record longer.
    pub fn retain_until(&self, facts: &RecordFacts<'_>) -> (DateTime<Utc>, String) {
        let applied = self.period_for(facts);
        (applied.period.retain_until(facts.ingested_at), applied.rule)
    }

    /// Whether the vault's policy may be replaced by `new`.
    ///
    /// Under a `governance` policy, any change is allowed (admins can delete early anyway).
    /// Under `compliance`, retention may only be extended, and `new` is refused when:
    ///
    /// - it switches the mode to `governance`;
    /// - its default is shorter than the current one;
    /// - it has a rule with the same selectors as a current rule, but a shorter period;
    /// - a current rule is gone, and neither the new default nor a new rule at least as wide
    ///   (same or fewer selectors, a blueprint pattern matching everything the old one did)
    ///   keeps that rule's records at least as long.
    ///
    /// "Shorter" means earlier from any instant (`365d` is shorter than `1y`, by a day across a
    /// 29 February). Since the default is a floor and the longest rule wins, adding a rule never
    /// shortens anything, and the checks above guarantee that no record the new policy is
    /// applied to gets an earlier date than under the current one. (Records already stored keep
    /// their date in any case: see [`extended`](crate::extended).) The last check is
    /// conservative: a rule replaced by several narrower ones that together cover it is
    /// refused; keep a rule as wide as the old one.
    ///
    /// Both policies are taken as valid ([`Policy::validate`]). The error lists every problem,
    /// not only the first.
    pub fn check_change(old: &Policy, new: &Policy) -> Result<(), ChangeRefused> {
        if old.mode == Mode::Governance {
            return Ok(());
        }
        let mut problems = Vec::new();
        if new.mode != Mode::Compliance {
            problems.push(format!(
                "mode: {} cannot be switched to {}: that would allow early deletion",
                old.mode, new.mode
            ));
        }
        if !new.default.never_shorter_than(old.default) {
            problems.push(format!(
                "default: {} is shorter than the current {}",
                new.default, old.default
            ));
        }
        for (i, rule) in old.rules.iter().enumerate() {
            let current = rule.describe(i + 1);
            match new.rules.iter().position(|r| r.same_selector(rule)) {
                Some(j) if !new.rules[j].period.never_shorter_than(rule.period) => {
                    problems.push(format!(
                        "{current}: shortened to {} (new rule {})",
                        new.rules[j].period,
                        j + 1
                    ));
                }
                Some(_) => {}
                None => {
                    let kept = new.default.never_shorter_than(rule.period)
                        || new
                            .rules
                            .iter()
                            .any(|r| r.covers(rule) && r.period.never_shorter_than(rule.period));
                    if !kept {
                        problems.push(format!(
                            "{current}: removed, and no rule of the new policy keeps all of its \
                             records at least {} (the new default is {})",
                            rule.period, new.default
                        ));
                    }
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ChangeRefused { problems })
        }
    }
}

/// A policy file as written, before [`Policy::validate`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    mode: Mode,
    default: RetentionPeriod,
    #[serde(default)]
    rule: Vec<Rule>,
}

impl PolicyFile {
    fn into_policy(self) -> Policy {
        Policy {
            mode: self.mode,
            default: self.default,
            rules: self.rule,
        }
    }
}

impl TryFrom<PolicyFile> for Policy {
    type Error = PolicyError;

    fn try_from(file: PolicyFile) -> Result<Policy, PolicyError> {
        let policy = file.into_policy();
        policy.validate()?;
        Ok(policy)
    }
}

/// A policy that cannot be read or is not valid. Displays on one line, naming where the problem
/// is: `rule 3 (line 12): period: invalid retention period '6x': ...`,
/// `line 1: mode: unknown mode "strict", ...`, `rule 2: kind: must not be empty`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// The rule at fault, counted from 1 in file order.
    pub rule: Option<usize>,
    /// The line of the policy file, when reading one and the line is known.
    pub line: Option<usize>,
    /// The key at fault (`mode`, `default`, `kind`, `blueprint`, `environment`, `period`), when
    /// known and not already named by the reason.
    pub field: Option<String>,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.rule, self.line) {
            (Some(rule), Some(line)) => write!(f, "rule {rule} (line {line}): ")?,
            (Some(rule), None) => write!(f, "rule {rule}: ")?,
            (None, Some(line)) => write!(f, "line {line}: ")?,
            (None, None) => {}
        }
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.reason)
    }
}

impl std::error::Error for PolicyError {}

impl PolicyError {
    /// Places a TOML error: its line, the rule it is in, and the key whose value it is about.
    fn from_toml(text: &str, e: &toml::de::Error) -> PolicyError {
        let reason = e.message().lines().collect::<Vec<_>>().join(" ");
        let Some(span) = e.span() else {
            return PolicyError {
                rule: None,
                line: None,
                field: None,
                reason,
            };
        };
        let at = span.start.min(text.len());
        let rule = rule_spans(text).iter().position(|span| {
            let end = if text.get(span.clone()).is_some_and(|s| s.starts_with("[[")) {
                // A `[[rule]]` header's span is the header alone: the rule runs to the next
                // table header.
                next_header(text, span.end)
            } else {
                span.end
            };
            (span.start..end).contains(&at)
        });
        PolicyError {
            rule: rule.map(|i| i + 1),
            line: Some(line_of(text, at)),
            field: key_before(text, at).map(str::to_string),
            reason,
        }
    }
}

/// Where each rule of a syntactically valid policy file starts: the `[[rule]]` header, or the
/// whole inline table. Empty when the file cannot be read that far.
fn rule_spans(text: &str) -> Vec<std::ops::Range<usize>> {
    #[derive(Deserialize)]
    struct Outline {
        #[serde(default)]
        rule: Vec<toml::Spanned<IgnoredAny>>,
    }
    toml::from_str::<Outline>(text)
        .map(|outline| outline.rule.iter().map(toml::Spanned::span).collect())
        .unwrap_or_default()
}

/// The start of the first line after `from` that opens a table (`[...]`), or the end.
fn next_header(text: &str, from: usize) -> usize {
    let mut offset = from;
    for line in text.get(from..).unwrap_or_default().split_inclusive('\n') {
        if offset > from && line.trim_start().starts_with('[') {
            return offset;
        }
        offset += line.len();
    }
    text.len()
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The key of the `key = value` whose value starts at `at`, if that is where `at` is.
fn key_before(text: &str, at: usize) -> Option<&str> {
    let before = text.get(..at)?;
    let line = &before[before.rfind('\n').map_or(0, |i| i + 1)..];
    let key = line.trim_end().strip_suffix('=')?.trim_end();
    let start = key
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .map_or(0, |i| i + 1);
    Some(&key[start..]).filter(|k| !k.is_empty())
}

/// A policy change refused because the current policy is in compliance mode. Displays a
/// heading, then one line per problem, each naming the mode, the default or the rule at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRefused {
    /// Every problem, one line each: `default: 90d is shorter than the current 1y`,
    /// `rule 2 (kind=provenance): 7y: shortened to 1y (new rule 2)`.
    pub problems: Vec<String>,
}

impl fmt::Display for ChangeRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the retention policy is in compliance mode, so retention can only be extended; \
             the new policy would shorten it:"
        )?;
        for problem in &self.problems {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ChangeRefused {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{at, facts};

    fn period(text: &str) -> RetentionPeriod {
        text.parse().unwrap()
    }

    fn rule(kind: Option<&str>, blueprint: Option<&str>, env: Option<&str>, p: &str) -> Rule {
        Rule {
            kind: kind.map(str::to_string),
            blueprint: blueprint.map(str::to_string),
            environment: env.map(str::to_string),
            period: period(p),
        }
    }

    fn policy(mode: Mode, default: &str, rules: Vec<Rule>) -> Policy {
        Policy {
            mode,
            default: period(default),
            rules,
        }
    }

    const EXAMPLE: &str = r#"
mode = "compliance"
default = "1y"

[[rule]]
kind = "sbom"
period = "1y"

[[rule]]
kind = "provenance"
period = "7y"

[[rule]]
kind = "approval"
period = "7y"

[[rule]]
kind = "deploy"
environment = "production"
period = "7y"
"#;

    #[test]
    fn the_example_policy_file_reads_as_written() {
        let expected = policy(
            Mode::Compliance,
            "1y",
            vec![
                rule(Some("sbom"), None, None, "1y"),
                rule(Some("provenance"), None, None, "7y"),
                rule(Some("approval"), None, None, "7y"),
                rule(Some("deploy"), None, Some("production"), "7y"),
            ],
        );
        assert_eq!(Policy::from_toml(EXAMPLE).unwrap(), expected);
    }

    #[test]
    fn rules_match_on_every_selector_they_give() {
        let deploy_prod = |env: Option<&'static str>| RecordFacts {
            kind: "deploy",
            environment: env,
            ..facts()
        };
        let cases = [
            // (rule, facts, matches?)
            (rule(Some("sbom"), None, None, "1y"), facts(), true),
            (rule(Some("vuln-scan"), None, None, "1y"), facts(), false),
            (rule(Some("SBOM"), None, None, "1y"), facts(), false),
            (rule(None, Some("checkout-api"), None, "1y"), facts(), true),
            (rule(None, Some("checkout-*"), None, "1y"), facts(), true),
            (rule(None, Some("*-api"), None, "1y"), facts(), true),
            (rule(None, Some("payments-*"), None, "1y"), facts(), false),
            (rule(None, Some("Checkout-api"), None, "1y"), facts(), false),
            (rule(None, None, Some("production"), "1y"), facts(), false),
            (
                rule(None, None, Some("production"), "1y"),
                deploy_prod(Some("production")),
                true,
            ),
            (
                rule(None, None, Some("production"), "1y"),
                deploy_prod(Some("PRODUCTION")),
                true,
            ),
            (
                rule(None, None, Some("Production"), "1y"),
                deploy_prod(Some("production")),
                true,
            ),
            (
                rule(None, None, Some("production"), "1y"),
                deploy_prod(Some("staging")),
                false,
            ),
            (
                rule(Some("deploy"), Some("checkout-*"), Some("production"), "1y"),
                deploy_prod(Some("production")),
                true,
            ),
            (
                rule(Some("deploy"), Some("payments-*"), Some("production"), "1y"),
                deploy_prod(Some("production")),
                false,
            ),
            (
                rule(Some("sbom"), Some("checkout-*"), Some("production"), "1y"),
                deploy_prod(Some("production")),
                false,
            ),
        ];
        for (i, (rule, facts, expected)) in cases.into_iter().enumerate() {
            assert_eq!(rule.matches(&facts), expected, "case {i}: {rule:?}");
        }
    }

    #[test]
    fn the_longest_period_wins_and_ties_go_to_the_first_rule() {
        let leap = RecordFacts {
            ingested_at: at(2027, 3, 14),
            ..facts()
        };
        let cases = [
            // (default, rules, facts, period, deciding rule)
            ("1y", vec![], facts(), "1y", "default: 1y"),
            (
                "1y",
                vec![rule(Some("provenance"), None, None, "7y")],
                facts(),
                "1y",
                "default: 1y",
            ),
            (
                "1y",
                vec![
                    rule(Some("sbom"), None, None, "2y"),
                    rule(None, Some("checkout-*"), None, "5y"),
                    rule(None, Some("checkout-api"), None, "3y"),
                ],
                facts(),
                "5y",
                "rule 2 (blueprint=checkout-*): 5y",
            ),
            (
                "1y",
                vec![
                    rule(Some("sbom"), None, None, "2y"),
                    rule(None, Some("checkout-*"), None, "24mo"),
                ],
                facts(),
                "2y",
                "rule 1 (kind=sbom): 2y",
            ),
            (
                "1y",
                vec![
                    rule(None, Some("checkout-*"), None, "24mo"),
                    rule(Some("sbom"), None, None, "2y"),
                ],
                facts(),
                "24mo",
                "rule 1 (blueprint=checkout-*): 24mo",
            ),
            (
                "1y",
                vec![rule(Some("sbom"), None, None, "1y")],
                facts(),
                "1y",
                "rule 1 (kind=sbom): 1y",
            ),
            (
                "1y",
                vec![rule(Some("sbom"), None, None, "12mo")],
                facts(),
                "12mo",
                "rule 1 (kind=sbom): 12mo",
            ),
            // 366 days from 14 March 2025 is one day past a year, which holds no 29 February.
            (
                "1y",
                vec![
                    rule(Some("sbom"), None, None, "1y"),
                    rule(None, Some("checkout-api"), None, "366d"),
                ],
                facts(),
                "366d",
                "rule 2 (blueprint=checkout-api): 366d",
            ),
            // From 14 March 2027, a year holds 29 February 2028: 1y and 366d end the same day.
            (
                "1y",
                vec![
                    rule(Some("sbom"), None, None, "1y"),
                    rule(None, Some("checkout-api"), None, "366d"),
                ],
                leap,
                "1y",
                "rule 1 (kind=sbom): 1y",
            ),
            // 366d from then matches the default's date: the rule is named.
            (
                "1y",
                vec![rule(None, Some("checkout-api"), None, "366d")],
                leap,
                "366d",
                "rule 1 (blueprint=checkout-api): 366d",
            ),
            (
                "90d",
                vec![rule(
                    Some("sbom"),
                    Some("checkout-*"),
                    Some("production"),
                    "7y",
                )],
                facts(),
                "90d",
                "default: 90d",
            ),
        ];
        for (i, (default, rules, facts, expected, why)) in cases.into_iter().enumerate() {
            let p = policy(Mode::Governance, default, rules);
            p.validate().unwrap();
            assert_eq!(
                p.period_for(&facts),
                Applied {
                    period: period(expected),
                    rule: why.to_string()
                },
                "case {i}"
            );
        }
    }

    #[test]
    fn retain_until_counts_from_when_the_record_was_stored() {
        let p = Policy::from_toml(EXAMPLE).unwrap();
        let deploy = RecordFacts {
            kind: "deploy",
            environment: Some("Production"),
            ingested_at: at(2024, 2, 29),
            ..facts()
        };
        assert_eq!(
            p.retain_until(&deploy),
            (
                at(2031, 2, 28),
                "rule 4 (kind=deploy, environment=production): 7y".to_string()
            )
        );
        assert_eq!(
            p.retain_until(&facts()),
            (at(2026, 3, 14), "rule 1 (kind=sbom): 1y".to_string())
        );
        let staging = RecordFacts {
            environment: Some("staging"),
            ..deploy
        };
        assert_eq!(
            p.retain_until(&staging),
            (at(2025, 2, 28), "default: 1y".to_string())
        );
    }

    #[test]
    fn the_default_policy_is_governance_and_keeps_the_audit_trail_seven_years() {
        let p = Policy::default();
        p.validate().unwrap();
        assert_eq!(p.mode, Mode::Governance);
        assert_eq!(p.default, RetentionPeriod::Years(1));
        let kinds: Vec<_> = p.rules.iter().map(|r| r.kind.as_deref().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "provenance",
                "approval",
                "signature",
                "deploy",
                "rollback",
                "policy-result"
            ]
        );
        let cases = [
            ("sbom", "default: 1y"),
            ("vuln-scan", "default: 1y"),
            ("provenance", "rule 1 (kind=provenance): 7y"),
            ("approval", "rule 2 (kind=approval): 7y"),
            ("signature", "rule 3 (kind=signature): 7y"),
            ("deploy", "rule 4 (kind=deploy): 7y"),
            ("rollback", "rule 5 (kind=rollback): 7y"),
            ("policy-result", "rule 6 (kind=policy-result): 7y"),
        ];
        for (kind, why) in cases {
            let f = RecordFacts { kind, ..facts() };
            assert_eq!(p.period_for(&f).rule, why, "{kind}");
        }
    }

    #[test]
    fn policies_round_trip_through_toml() {
        let cases = [
            Policy::default(),
            Policy::from_toml(EXAMPLE).unwrap(),
            policy(Mode::Compliance, "90d", vec![]),
            policy(
                Mode::Governance,
                "6mo",
                vec![
                    rule(Some("deploy"), Some("checkout-*"), Some("Production"), "7y"),
                    rule(None, Some("*-api"), None, "200d"),
                    rule(None, None, Some("staging"), "12mo"),
                ],
            ),
        ];
        for p in cases {
            let text = p.to_toml();
            assert_eq!(Policy::from_toml(&text).unwrap(), p, "{text}");
        }
    }

    #[test]
    fn to_toml_writes_a_policy_file() {
        let p = policy(
            Mode::Compliance,
            "1y",
            vec![rule(Some("deploy"), None, Some("production"), "7y")],
        );
        assert_eq!(
            p.to_toml(),
            "mode = \"compliance\"\ndefault = \"1y\"\n\n[[rule]]\nkind = \"deploy\"\n\
             environment = \"production\"\nperiod = \"7y\"\n"
        );
    }

    #[test]
    fn policy_file_mistakes_are_named() {
        const HEAD: &str = "mode = \"compliance\"\ndefault = \"1y\"\n";
        let with_rules = |rules: &str| format!("{HEAD}{rules}");
        let cases = [
            (
                "mode = \"strict\"\ndefault = \"1y\"\n".to_string(),
                "line 1: mode: unknown mode \"strict\", expected \"compliance\" or \"governance\"",
            ),
            (
                "mode = 5\ndefault = \"1y\"\n".to_string(),
                "line 1: mode: invalid type: integer `5`, expected \"compliance\" or \"governance\"",
            ),
            (
                "default = \"1y\"\n".to_string(),
                "line 1: missing field `mode`",
            ),
            (
                "mode = \"governance\"\ndefault = \"6x\"\n".to_string(),
                "line 2: default: invalid retention period '6x': unknown unit \"x\"; expected a \
                 number and a unit: d, w, mo (or m) or y, e.g. 90d, 12w, 6mo, 1y",
            ),
            (
                with_rules("retention = \"1y\"\n"),
                "line 3: unknown field `retention`, expected one of `mode`, `default`, `rule`",
            ),
            (
                "mode = = \"compliance\"".to_string(),
                "line 1: mode: extra `=`, expected nothing",
            ),
            (
                with_rules(
                    "[[rule]]\nkind = \"sbom\"\nperiod = \"1y\"\n\n[[rule]]\nkind = \"provenance\"\nperiod = \"6x\"\n",
                ),
                "rule 2 (line 9): period: invalid retention period '6x': unknown unit \"x\"; \
                 expected a number and a unit: d, w, mo (or m) or y, e.g. 90d, 12w, 6mo, 1y",
            ),
            (
                with_rules("[[rule]]\nkind = \"sbom\"\nperiod = 7\n"),
                "rule 1 (line 5): period: invalid type: integer `7`, expected a retention period \
                 such as \"90d\", \"12w\", \"6mo\" or \"1y\"",
            ),
            (
                with_rules("[[rule]]\nkind = \"sbom\"\nperod = \"1y\"\n"),
                "rule 1 (line 5): unknown field `perod`, expected one of `kind`, `blueprint`, \
                 `environment`, `period`",
            ),
            (
                with_rules(
                    "[[rule]]\nkind = \"sbom\"\nperiod = \"1y\"\n[[rule]]\nkind = \"deploy\"\n",
                ),
                "rule 2 (line 6): missing field `period`",
            ),
            (
                with_rules(
                    "rule = [{ kind = \"sbom\", period = \"1y\" }, { kind = 5, period = \"1y\" }]\n",
                ),
                "rule 2 (line 3): kind: invalid type: integer `5`, expected a string",
            ),
            (
                with_rules("[[rule]]\nperiod = \"7y\"\n"),
                "rule 1 (line 3): no selector: give at least one of kind, blueprint and \
                 environment (the default already covers every record)",
            ),
            (
                with_rules("[[rule]]\nkind = \"\"\nperiod = \"7y\"\n"),
                "rule 1 (line 3): kind: must not be empty",
            ),
            (
                with_rules("[[rule]]\nkind = \"Provenance\"\nperiod = \"7y\"\n"),
                "rule 1 (line 3): kind: character 'P' at byte 0 is not allowed: kind names use \
                 lowercase letters, digits and '-', e.g. sbom, vuln-scan, provenance",
            ),
            (
                with_rules("[[rule]]\nblueprint = \"\"\nperiod = \"7y\"\n"),
                "rule 1 (line 3): blueprint: must not be empty",
            ),
            (
                with_rules("[[rule]]\nblueprint = \"checkout-?\"\nperiod = \"7y\"\n"),
                "rule 1 (line 3): blueprint: character '?' at byte 9 is not allowed: blueprint \
                 names use letters, digits, '.', '_' and '-', and '*' is the only wildcard",
            ),
            (
                with_rules("[[rule]]\nblueprint = \"check\\tout\"\nperiod = \"7y\"\n"),
                "rule 1 (line 3): blueprint: character '\\t' at byte 5 is not allowed: blueprint \
                 names use letters, digits, '.', '_' and '-', and '*' is the only wildcard",
            ),
            (
                with_rules("[[rule]]\nenvironment = \"\"\nperiod = \"7y\"\n"),
                "rule 1 (line 3): environment: must not be empty",
            ),
            (
                with_rules("[[rule]]\nkind = \"vuln-scan\"\nperiod = \"90d\"\n"),
                "rule 1 (line 3): period: 90d is shorter than the default 1y: the default is the \
                 minimum for every record and a rule can only lengthen it (lower the default \
                 instead)",
            ),
            (
                with_rules("[[rule]]\nkind = \"sbom\"\nperiod = \"365d\"\n"),
                "rule 1 (line 3): period: 365d is shorter than the default 1y: the default is the \
                 minimum for every record and a rule can only lengthen it (lower the default \
                 instead)",
            ),
            (
                with_rules(
                    "[[rule]]\nkind = \"deploy\"\nenvironment = \"production\"\nperiod = \"7y\"\n\n\
                     [[rule]]\nkind = \"sbom\"\nperiod = \"2y\"\n\n\
                     [[rule]]\nenvironment = \"Production\"\nkind = \"deploy\"\nperiod = \"10y\"\n",
                ),
                "rule 3 (line 12): same selector as rule 1 (kind=deploy, environment=production): \
                 keep one rule per selector",
            ),
        ];
        for (text, expected) in cases {
            let e = Policy::from_toml(&text).unwrap_err();
            assert_eq!(e.to_string(), expected, "{text}");
            assert!(!e.to_string().contains('\n'), "{e}");
        }
    }

    #[test]
    fn too_many_rules_are_refused() {
        let rules = (0..=MAX_RULES)
            .map(|i| rule(None, Some(&format!("service-{i}")), None, "2y"))
            .collect();
        let e = policy(Mode::Governance, "1y", rules)
            .validate()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "rule: 257 rules is too many: at most 256 are allowed"
        );
    }

    #[test]
    fn deserializing_from_json_validates_too() {
        let ok: Policy = serde_json::from_str(
            r#"{"mode": "governance", "default": "1y", "rule": [{"kind": "sbom", "period": "2y"}]}"#,
        )
        .unwrap();
        assert_eq!(
            ok,
            policy(
                Mode::Governance,
                "1y",
                vec![rule(Some("sbom"), None, None, "2y")]
            )
        );
        let e = serde_json::from_str::<Policy>(
            r#"{"mode": "governance", "default": "1y", "rule": [{"period": "2y"}]}"#,
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("rule 1: no selector"), "{e}");
    }

    #[test]
    fn policy_changes_under_compliance_may_only_extend() {
        let c = Mode::Compliance;
        let g = Mode::Governance;
        let base = || {
            vec![
                rule(Some("provenance"), None, None, "7y"),
                rule(Some("deploy"), None, Some("production"), "7y"),
                rule(None, Some("checkout-*"), None, "3y"),
            ]
        };
        let without = |i: usize| {
            let mut rules = base();
            rules.remove(i);
            rules
        };
        let with = |extra: Rule| {
            let mut rules = base();
            rules.push(extra);
            rules
        };
        let cases: Vec<(Policy, Policy, Vec<&str>)> = vec![
            // Extending is always allowed.
            (policy(c, "1y", base()), policy(c, "1y", base()), vec![]),
            (policy(c, "1y", base()), policy(c, "2y", base()), vec![]),
            (policy(c, "1y", base()), policy(c, "12mo", base()), vec![]),
            (policy(c, "1y", base()), policy(c, "366d", base()), vec![]),
            (
                policy(c, "1y", base()),
                policy(c, "1y", with(rule(Some("sbom"), None, None, "2y"))),
                vec![],
            ),
            (
                policy(c, "1y", base()),
                policy(
                    c,
                    "1y",
                    vec![
                        rule(Some("provenance"), None, None, "10y"),
                        rule(Some("deploy"), None, Some("PRODUCTION"), "84mo"),
                        rule(None, Some("checkout-*"), None, "3y"),
                    ],
                ),
                vec![],
            ),
            // A removed rule is fine when a wider rule or the default keeps its records.
            (
                policy(c, "1y", base()),
                policy(c, "1y", with(rule(Some("deploy"), None, None, "7y"))).without_rule(2),
                vec![],
            ),
            (
                policy(c, "1y", base()),
                policy(c, "1y", with(rule(None, Some("check*"), None, "5y"))).without_rule(3),
                vec![],
            ),
            (policy(c, "1y", base()), policy(c, "7y", vec![]), vec![]),
            // Governance into compliance is an extension too.
            (policy(g, "1y", base()), policy(c, "1y", base()), vec![]),
            // Shortening is refused, naming each problem.
            (
                policy(c, "1y", base()),
                policy(g, "1y", base()),
                vec![
                    "mode: compliance cannot be switched to governance: that would allow early deletion",
                ],
            ),
            (
                policy(c, "1y", base()),
                policy(c, "6mo", base()),
                vec!["default: 6mo is shorter than the current 1y"],
            ),
            (
                policy(c, "1y", base()),
                policy(c, "365d", base()),
                vec!["default: 365d is shorter than the current 1y"],
            ),
            (
                policy(c, "1y", base()),
                policy(
                    c,
                    "1y",
                    vec![
                        rule(Some("provenance"), None, None, "5y"),
                        rule(Some("deploy"), None, Some("production"), "2556d"),
                        rule(None, Some("checkout-*"), None, "3y"),
                    ],
                ),
                vec![
                    "rule 1 (kind=provenance): 7y: shortened to 5y (new rule 1)",
                    "rule 2 (kind=deploy, environment=production): 7y: shortened to 2556d (new rule 2)",
                ],
            ),
            (
                policy(c, "1y", base()),
                policy(c, "1y", without(0)),
                vec![
                    "rule 1 (kind=provenance): 7y: removed, and no rule of the new policy keeps \
                     all of its records at least 7y (the new default is 1y)",
                ],
            ),
            // Narrower rules do not keep everything the old one did.
            (
                policy(c, "1y", base()),
                policy(c, "1y", with(rule(None, Some("checkout-api"), None, "3y"))).without_rule(3),
                vec![
                    "rule 3 (blueprint=checkout-*): 3y: removed, and no rule of the new policy \
                     keeps all of its records at least 3y (the new default is 1y)",
                ],
            ),
            (
                policy(c, "1y", base()),
                policy(
                    c,
                    "1y",
                    with(rule(Some("provenance"), None, Some("production"), "7y")),
                )
                .without_rule(1),
                vec![
                    "rule 1 (kind=provenance): 7y: removed, and no rule of the new policy keeps \
                     all of its records at least 7y (the new default is 1y)",
                ],
            ),
            (
                policy(c, "1y", base()),
                policy(g, "6mo", vec![]),
                vec![
                    "mode: compliance cannot be switched to governance: that would allow early deletion",
                    "default: 6mo is shorter than the current 1y",
                    "rule 1 (kind=provenance): 7y: removed, and no rule of the new policy keeps \
                     all of its records at least 7y (the new default is 6mo)",
                    "rule 2 (kind=deploy, environment=production): 7y: removed, and no rule of \
                     the new policy keeps all of its records at least 7y (the new default is 6mo)",
                    "rule 3 (blueprint=checkout-*): 3y: removed, and no rule of the new policy \
                     keeps all of its records at least 3y (the new default is 6mo)",
                ],
            ),
            // Under governance, anything goes.
            (policy(g, "1y", base()), policy(g, "90d", vec![]), vec![]),
            (policy(g, "2y", base()), policy(g, "1y", without(0)), vec![]),
        ];
        for (i, (old, new, expected)) in cases.into_iter().enumerate() {
            old.validate().unwrap();
            new.validate().unwrap();
            let got = Policy::check_change(&old, &new).map_err(|e| e.problems);
            let expected = if expected.is_empty() {
                Ok(())
            } else {
                Err(expected.into_iter().map(str::to_string).collect())
            };
            assert_eq!(got, expected, "case {i}");
        }
    }

    #[test]
    fn a_refused_change_lists_its_problems_one_per_line() {
        let old = policy(Mode::Compliance, "1y", vec![]);
        let new = policy(Mode::Governance, "6mo", vec![]);
        let e = Policy::check_change(&old, &new).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the retention policy is in compliance mode, so retention can only be extended; the \
             new policy would shorten it:\n  \
             mode: compliance cannot be switched to governance: that would allow early deletion\n  \
             default: 6mo is shorter than the current 1y"
        );
    }

    impl Policy {
        /// The policy without its rule number `n` (from 1), for tests.
        fn without_rule(mut self, n: usize) -> Policy {
            self.rules.remove(n - 1);
            self
        }
    }
}
