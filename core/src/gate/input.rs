//! The gate's input: everything a policy may judge about one blueprint version going to one
//! environment, as one JSON document. The built-in rules read it, and so does a Rego policy
//! (`input` in Rego), so both judge exactly the same facts. `docs/gates.md` documents every
//! field; [`INPUT_SCHEMA`] versions it.
//!
//! The facts are the vault's, never the caller's: which records exist, what they say, how they
//! verified, who pushed them. A few derived flags (`suppressed`, `current`, `by_approver`,
//! `approver_pushed`, `about_artifact`) are computed once here, the same way for every engine.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use evault_schema::Kind;
use evault_schema::extract::apply::{applies, suppresses};
use evault_schema::extract::{Finding, VexStatement};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Result;
use crate::facts::FactRead;
use crate::query::Reader;
use crate::record::Record;
use crate::record::format_time;
use crate::verification::VerificationStatus;

/// The version of the input document's shape.
pub const INPUT_SCHEMA: &str = "https://evault.dev/gate-input/v1";

/// The gate's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateInput {
    /// Always [`INPUT_SCHEMA`].
    pub schema: String,
    pub blueprint: String,
    pub version: String,
    pub environment: String,
    /// The commit the version's evidence names; empty when it names none or several (see
    /// `git_shas`).
    pub git_sha: String,
    /// Every commit the version's evidence names.
    pub git_shas: Vec<String>,
    /// The artifact being deployed, when the check names one.
    pub artifact: Option<String>,
    /// When the check runs (RFC 3339, UTC).
    pub now: String,
    /// Who pushed the version's evidence (approvals and gate decisions aside).
    pub pushers: Vec<String>,
    /// The version's records by kind name (`sbom`, `vuln-scan`, ...).
    pub evidence: BTreeMap<String, Vec<Item>>,
    /// The findings of every vulnerability scan of the version, one entry per vulnerability and
    /// package, with what VEX and exceptions say about it.
    pub vulnerabilities: Vec<Vulnerability>,
    pub provenance: Vec<ProvenanceFact>,
    pub signatures: Vec<SignatureFact>,
    /// Approvals of the version for this environment (exceptions excluded).
    pub approvals: Vec<ApprovalFact>,
    /// Exceptions (approvals naming vulnerabilities) of the version for this environment.
    pub exceptions: Vec<ApprovalFact>,
    /// What the version's test reports say.
    pub tests: Vec<TestReport>,
}

/// The results of one test report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TestReport {
    pub id: String,
    /// Its results could be read (a JUnit XML report).
    pub readable: bool,
    /// Why not, when they could not.
    pub problem: Option<String>,
    /// Test cases, and those that failed, errored and were skipped.
    pub tests: u64,
    pub failed: u64,
    pub errors: u64,
    pub skipped: u64,
}

/// One record of the version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub id: String,
    pub format: String,
    /// The digest of its content.
    pub digest: String,
    /// Who pushed it.
    pub producer: String,
    pub ingested_at: String,
    /// `verified`, `failed`, `unsigned`, `untrusted`, or `none` (never verified).
    pub verification: String,
    pub subjects: Vec<String>,
}

/// One vulnerability in one package, as the version's scans report it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vulnerability {
    pub id: String,
    pub aliases: Vec<String>,
    /// `critical`, `high`, `medium`, `low` or `unknown` (the highest any scan gave it).
    pub severity: String,
    pub package: Option<String>,
    pub package_version: Option<String>,
    pub purl: Option<String>,
    /// The scan records that report it.
    pub records: Vec<String>,
    /// The VEX status that settles it (newest statement first), if any.
    pub vex_status: Option<String>,
    /// The VEX record of that statement.
    pub vex_record: Option<String>,
    /// VEX says `not_affected` or `fixed`: it does not count.
    pub suppressed: bool,
    /// The same, believing only VEX records whose signature verified.
    pub suppressed_by_verified_vex: bool,
    /// Exceptions (record ids) naming it or one of its aliases, valid or not.
    pub exceptions: Vec<String>,
}

/// A provenance record of the version (or about the artifact).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProvenanceFact {
    pub id: String,
    pub verified: bool,
    pub verification: String,
    pub verified_by: Option<String>,
    pub builder_id: Option<String>,
    pub source_repo: Option<String>,
    pub source_commit: Option<String>,
    pub subjects: Vec<String>,
    /// No artifact was named, or it is among the subjects.
    pub about_artifact: bool,
}

/// A signature record of the version (or about the artifact).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignatureFact {
    pub id: String,
    pub verified: bool,
    pub verification: String,
    /// `key <name>`, `identity <name> (<san>)`, ...
    pub verified_by: Option<String>,
    /// The trusted key's or identity's name, when verified by one.
    pub signer: Option<String>,
    pub subjects: Vec<String>,
    pub about_artifact: bool,
}

/// An approval or exception for this environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalFact {
    pub id: String,
    pub approver: String,
    pub role: Option<String>,
    /// `approve` or `reject`.
    pub decision: String,
    pub reason: String,
    pub time: String,
    pub expires_at: Option<String>,
    /// Given by now and not expired.
    pub current: bool,
    /// Who pushed the record.
    pub producer: String,
    /// Recorded by the approver it names (`evault approve`), not by someone else on their
    /// behalf.
    pub by_approver: bool,
    /// The approver also pushed evidence of the version.
    pub approver_pushed: bool,
    /// For exceptions: the vulnerability ids it accepts.
    pub vulnerabilities: Vec<String>,
}

fn verification_of(r: &Record) -> (bool, String, Option<String>) {
    match &r.verification {
        Some(v) => (
            v.status == VerificationStatus::Verified,
            v.status.as_str().to_string(),
            v.by.clone(),
        ),
        None => (false, "none".into(), None),
    }
}

/// The trusted key's or identity's name in a verdict's `by` (`key release-key`,
/// `identity ci (https://...)`).
fn signer_of(by: &str) -> Option<String> {
    let rest = by
        .strip_prefix("key ")
        .or_else(|| by.strip_prefix("identity "))?;
    rest.split_whitespace().next().map(str::to_string)
}

fn time_of(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn severity_rank(s: &str) -> u8 {
    match s {
        "critical" => 4,
        "high" => 3,
        "medium" => 2,
        "low" => 1,
        _ => 0,
    }
}

/// Builds the input for `blueprint` `version` going to `environment` at `now`, from one
/// snapshot of the index.
pub(crate) fn build(
    reader: &Reader<'_>,
    blueprint: &str,
    version: &str,
    environment: &str,
    artifact: Option<&str>,
    now: DateTime<Utc>,
) -> Result<GateInput> {
    let records = reader.records(
        "r.blueprint_name = ?1 AND r.blueprint_version = ?2 \
         AND r.kind NOT IN ('deploy', 'rollback', 'policy-result')",
        &[&blueprint, &version],
    )?;
    let mut records = records;
    if let Some(artifact) = artifact {
        let about = reader.records(
            "r.id IN (SELECT record_id FROM record_subjects WHERE digest = ?1) \
             AND +r.kind IN ('provenance', 'signature')",
            &[&artifact],
        )?;
        for r in about {
            if !records.iter().any(|e| e.id == r.id) {
                records.push(r);
            }
        }
    }
    let of_version = |r: &&Record| r.blueprint.name == blueprint && r.blueprint.version == version;
    let git_shas: BTreeSet<String> = records
        .iter()
        .filter(of_version)
        .map(|r| r.git_sha.clone())
        .collect();
    let git_sha = if git_shas.len() == 1 {
        git_shas.iter().next().cloned().unwrap_or_default()
    } else {
        String::new()
    };
    let pushers: BTreeSet<String> = records
        .iter()
        .filter(of_version)
        .filter(|r| r.kind != Kind::Approval)
        .map(|r| r.producer.clone())
        .collect();
    let about_artifact =
        |subjects: &[String]| artifact.is_none_or(|a| subjects.iter().any(|s| s == a));

    let mut by_kind: BTreeMap<String, Vec<Item>> = BTreeMap::new();
    let mut provenance = Vec::new();
    let mut signatures = Vec::new();
    let mut approvals = Vec::new();
    let mut exceptions = Vec::new();
    let facts = reader.facts();
    for e in &records {
        let (verified, verification, verified_by) = verification_of(e);
        by_kind
            .entry(e.kind.as_str().to_string())
            .or_default()
            .push(Item {
                id: e.id.clone(),
                format: e.format.as_str().to_string(),
                digest: e.digest.clone(),
                producer: e.producer.clone(),
                ingested_at: e.ingested_at.clone(),
                verification: verification.clone(),
                subjects: e.subjects.clone(),
            });
        match e.kind {
            Kind::Provenance => {
                let p = facts.provenance(&e.digest)?;
                let field = |f: fn(&evault_schema::extract::Provenance) -> &Option<String>| {
                    p.as_ref().and_then(|p| f(p).clone())
                };
                provenance.push(ProvenanceFact {
                    id: e.id.clone(),
                    verified,
                    verification,
                    verified_by,
                    builder_id: field(|p| &p.builder_id),
                    source_repo: field(|p| &p.source_repo),
                    source_commit: field(|p| &p.source_commit),
                    subjects: e.subjects.clone(),
                    about_artifact: about_artifact(&e.subjects),
                });
            }
            Kind::Signature => signatures.push(SignatureFact {
                id: e.id.clone(),
                verified,
                verification,
                signer: verified_by
                    .as_deref()
                    .filter(|_| verified)
                    .and_then(signer_of),
                verified_by,
                subjects: e.subjects.clone(),
                about_artifact: about_artifact(&e.subjects),
            }),
            Kind::Approval => {
                let Some(fact) = approval_fact(reader, e, environment, now, &pushers)? else {
                    continue;
                };
                if fact.vulnerabilities.is_empty() {
                    approvals.push(fact);
                } else {
                    exceptions.push(fact);
                }
            }
            _ => {}
        }
    }
    let vulnerabilities = vulnerabilities(reader, &records, blueprint, version, &exceptions)?;
    Ok(GateInput {
        schema: INPUT_SCHEMA.into(),
        blueprint: blueprint.into(),
        version: version.into(),
        environment: environment.into(),
        git_sha,
        git_shas: git_shas.into_iter().collect(),
        artifact: artifact.map(str::to_string),
        now: format_time(now),
        pushers: pushers.into_iter().collect(),
        evidence: by_kind,
        vulnerabilities,
        provenance,
        signatures,
        approvals,
        exceptions,
        tests: Vec::new(),
    })
}

/// The approval `e` if it is for `environment`.
fn approval_fact(
    reader: &Reader<'_>,
    e: &Record,
    environment: &str,
    now: DateTime<Utc>,
    pushers: &BTreeSet<String>,
) -> Result<Option<ApprovalFact>> {
    let Some(Value::Object(doc)) = reader.facts().native(&e.digest)? else {
        return Ok(None);
    };
    let text = |k: &str| doc.get(k).and_then(Value::as_str).map(str::to_string);
    if !text("environment").is_some_and(|env| env.eq_ignore_ascii_case(environment)) {
        return Ok(None);
    }
    let approver = text("approver").unwrap_or_default();
    let time = text("time").unwrap_or_default();
    let expires_at = text("expires_at");
    let given = time_of(&time).is_some_and(|t| t <= now);
    let unexpired = expires_at
        .as_deref()
        .is_none_or(|x| time_of(x).is_some_and(|x| x > now));
    let vulnerabilities = doc
        .get("vulnerabilities")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Ok(Some(ApprovalFact {
        id: e.id.clone(),
        by_approver: e.producer == approver,
        approver_pushed: pushers.contains(&approver),
        approver,
        role: text("role"),
        decision: text("decision").unwrap_or_default(),
        reason: text("reason").unwrap_or_default(),
        time,
        expires_at,
        current: given && unexpired,
        producer: e.producer.clone(),
        vulnerabilities,
    }))
}

/// The findings of the version's scans, merged by vulnerability and package, judged against
/// its VEX statements (newest first) and named by its exceptions.
fn vulnerabilities(
    reader: &Reader<'_>,
    records: &[crate::record::Record],
    blueprint: &str,
    version: &str,
    exceptions: &[ApprovalFact],
) -> Result<Vec<Vulnerability>> {
    let facts = reader.facts();
    let vex = facts.vex_for(blueprint, version)?;
    let vex_index = VexIndex::new(&vex);
    let verified_vex: BTreeSet<&str> = records
        .iter()
        .filter(|r| {
            r.kind == Kind::Vex
                && r.verification
                    .as_ref()
                    .is_some_and(|v| v.status == VerificationStatus::Verified)
        })
        .map(|r| r.id.as_str())
        .collect();
    let mut out: Vec<Vulnerability> = Vec::new();
    let mut at: BTreeMap<(String, Option<String>, Option<String>), usize> = BTreeMap::new();
    for r in records.iter().filter(|r| r.kind == Kind::VulnScan) {
        for f in facts.findings(&r.digest)? {
            let key = (
                f.id.to_ascii_uppercase(),
                f.purl.clone().or_else(|| f.package.clone()),
                f.version.clone(),
            );
            if let Some(&i) = at.get(&key) {
                let v = &mut out[i];
                if !v.records.contains(&r.id) {
                    v.records.push(r.id.clone());
                }
                if severity_rank(f.severity.as_str()) > severity_rank(&v.severity) {
                    v.severity = f.severity.as_str().to_string();
                }
                continue;
            }
            let settled = vex_index.settling(&vex, &f, &|_| true);
            let settled_verified = vex_index.settling(&vex, &f, &|id| verified_vex.contains(id));
            let ids: Vec<&String> = std::iter::once(&f.id).chain(&f.aliases).collect();
            let named_by: Vec<String> = exceptions
                .iter()
                .filter(|x| {
                    x.vulnerabilities
                        .iter()
                        .any(|v| ids.iter().any(|id| id.eq_ignore_ascii_case(v)))
                })
                .map(|x| x.id.clone())
                .collect();
            at.insert(key, out.len());
            out.push(Vulnerability {
                severity: f.severity.as_str().to_string(),
                package: f.package.clone(),
                package_version: f.version.clone(),
                purl: f.purl.clone(),
                records: vec![r.id.clone()],
                vex_status: settled.map(|(_, s)| s.status.as_str().to_string()),
                vex_record: settled.map(|(id, _)| id.clone()),
                suppressed: suppresses(settled.map(|(_, s)| s.status)),
                suppressed_by_verified_vex: suppresses(settled_verified.map(|(_, s)| s.status)),
                exceptions: named_by,
                aliases: f.aliases,
                id: f.id,
            });
        }
    }
    Ok(out)
}

/// The VEX statements of a version by vulnerability id and alias (uppercase), so that a finding
/// is matched against the statements about it rather than all of them.
struct VexIndex {
    by_id: HashMap<String, Vec<usize>>,
}

impl VexIndex {
    fn new(statements: &[(String, VexStatement)]) -> VexIndex {
        let mut by_id: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, (_, s)) in statements.iter().enumerate() {
            for id in std::iter::once(&s.vulnerability).chain(&s.aliases) {
                let list = by_id.entry(id.to_ascii_uppercase()).or_default();
                if list.last() != Some(&i) {
                    list.push(i);
                }
            }
        }
        VexIndex { by_id }
    }

    /// The first statement (in the order given: newest first) that applies to `finding`, as
    /// `vex_outcome` would find it.
    fn settling<'s>(
        &self,
        statements: &'s [(String, VexStatement)],
        finding: &Finding,
        believed: &dyn Fn(&str) -> bool,
    ) -> Option<&'s (String, VexStatement)> {
        let mut candidates: Vec<usize> = std::iter::once(&finding.id)
            .chain(&finding.aliases)
            .filter_map(|id| self.by_id.get(&id.to_ascii_uppercase()))
            .flatten()
            .copied()
            .collect();
        candidates.sort_unstable();
        candidates.dedup();
        candidates
            .into_iter()
            .map(|i| &statements[i])
            .find(|(record, s)| believed(record) && applies(s, finding))
    }
}

#[cfg(test)]
mod tests {
    use evault_schema::extract::apply::vex_outcome;
    use evault_schema::extract::{Severity, VexStatus};

    use super::*;

    #[test]
    fn the_vex_index_settles_every_finding_as_the_full_matching_does() {
        let finding = |id: &str, aliases: &[&str], purl: Option<&str>| Finding {
            id: id.into(),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            severity: Severity::High,
            package: Some("lodash".into()),
            version: Some("4.17.20".into()),
            purl: purl.map(str::to_string),
            fixed_version: None,
        };
        let statement = |vuln: &str, aliases: &[&str], products: &[&str], status| VexStatement {
            vulnerability: vuln.into(),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            products: products.iter().map(|p| p.to_string()).collect(),
            status,
            justification: None,
        };
        let statements: Vec<(String, VexStatement)> = vec![
            (
                "1".into(),
                statement(
                    "cve-2021-23337",
                    &[],
                    &["pkg:npm/lodash@4.17.20"],
                    VexStatus::NotAffected,
                ),
            ),
            (
                "2".into(),
                statement(
                    "CVE-2021-23337",
                    &[],
                    &["pkg:oci/checkout"],
                    VexStatus::Affected,
                ),
            ),
            (
                "3".into(),
                statement(
                    "GHSA-35jh-r3h4-6jhm",
                    &["CVE-2020-8203"],
                    &["pkg:npm/other@1.0.0"],
                    VexStatus::Fixed,
                ),
            ),
            (
                "4".into(),
                statement("CVE-2020-8203", &[], &[], VexStatus::UnderInvestigation),
            ),
            (
                "5".into(),
                statement(
                    "CVE-2022-0001",
                    &["GHSA-aaaa-bbbb-cccc"],
                    &[],
                    VexStatus::Fixed,
                ),
            ),
        ];
        let findings = vec![
            finding("CVE-2021-23337", &[], Some("pkg:npm/lodash@4.17.20")),
            finding("CVE-2021-23337", &[], Some("pkg:npm/lodash@4.17.19")),
            finding(
                "CVE-2020-8203",
                &["GHSA-35jh-r3h4-6jhm"],
                Some("pkg:npm/lodash@4.17.20"),
            ),
            finding("GHSA-AAAA-BBBB-CCCC", &[], None),
            finding("CVE-1999-0001", &[], None),
        ];
        let plain: Vec<VexStatement> = statements.iter().map(|(_, s)| s.clone()).collect();
        let expected = vex_outcome(&findings, &plain);
        let index = VexIndex::new(&statements);
        let got: Vec<Option<VexStatus>> = findings
            .iter()
            .map(|f| {
                index
                    .settling(&statements, f, &|_| true)
                    .map(|(_, s)| s.status)
            })
            .collect();
        assert_eq!(got, expected);
        assert_eq!(
            expected,
            [
                Some(VexStatus::NotAffected),
                Some(VexStatus::Affected),
                Some(VexStatus::UnderInvestigation),
                Some(VexStatus::Fixed),
                None
            ]
        );
    }
}
