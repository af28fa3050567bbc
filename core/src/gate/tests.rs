//! Scenario tests of the gate on a real vault: evidence pushed as pipelines push it, approvals
//! and exceptions recorded as people record them, decisions read back from the index.

use std::io::Cursor;

use chrono::{Duration, Utc};
use evault_schema::Kind;
use evault_schema::documents::{Decision, Outcome};
use serde_json::{Value, json};

use super::*;
use crate::ingest::{PushRequest, PushSource};
use crate::record::Record;

const BP: &str = "checkout-api";
const V: &str = "1.4.2";

fn sha() -> String {
    "a".repeat(40)
}

fn vault() -> (tempfile::TempDir, Vault) {
    let dir = tempfile::tempdir().unwrap();
    let (vault, _) = Vault::init(dir.path(), "admin").unwrap();
    (dir, vault)
}

fn push_as(
    vault: &Vault,
    producer: &str,
    file: &str,
    bytes: Vec<u8>,
    kind: Option<Kind>,
) -> Result<Record> {
    let outcome = vault.push(
        PushRequest {
            sources: vec![PushSource::Reader {
                name: file.to_string(),
                reader: Box::new(Cursor::new(bytes)),
            }],
            links: LinkArgs {
                blueprint: Some(BP.into()),
                version: Some(V.into()),
                git_sha: Some(sha()),
                ..LinkArgs::default()
            },
            kind,
            producer: producer.into(),
            expand_archives: false,
            allowed_blueprints: Vec::new(),
        },
        &mut |_| {},
    )?;
    Ok(outcome.records[0].record.clone())
}

fn push(vault: &Vault, file: &str, doc: &Value) -> Record {
    push_as(vault, "ci", file, serde_json::to_vec(doc).unwrap(), None).unwrap()
}

/// A grype report with `n_critical` critical and `n_high` high findings (CVE-2026-1000.. and
/// CVE-2026-2000..).
fn scan(n_critical: usize, n_high: usize) -> Value {
    let finding = |id: String, severity: &str| {
        json!({"vulnerability": {"id": id, "severity": severity},
               "artifact": {"name": "lodash", "version": "4.17.20", "type": "npm",
                            "purl": "pkg:npm/lodash@4.17.20"}})
    };
    let mut matches = Vec::new();
    for i in 0..n_critical {
        matches.push(finding(format!("CVE-2026-{}", 1000 + i), "Critical"));
    }
    for i in 0..n_high {
        matches.push(finding(format!("CVE-2026-{}", 2000 + i), "High"));
    }
    json!({"matches": matches, "source": {"type": "image"},
           "descriptor": {"name": "grype", "version": "0.74.0"}})
}

fn vex_not_affected(cve: &str) -> Value {
    json!({"@context": "https://openvex.dev/ns/v0.2.0",
           "@id": "https://acme.example/vex/1", "author": "security@acme.example",
           "timestamp": "2026-03-01T09:00:00Z", "version": 1,
           "statements": [{"vulnerability": {"name": cve},
                           "products": [{"@id": "pkg:oci/checkout-api"}],
                           "status": "not_affected",
                           "justification": "vulnerable_code_not_in_execute_path"}]})
}

/// Everything the built-in policy asks for, pushed by `ci`, with a scan of `critical` and
/// `high` findings.
fn full_evidence(vault: &Vault, critical: usize, high: usize) {
    push(vault, "sbom.json", &crate::testing::sbom("lodash"));
    push(vault, "scan.json", &scan(critical, high));
    push_as(
        vault,
        "ci",
        "junit.xml",
        b"<testsuites><testsuite name=\"api\" tests=\"1\"><testcase name=\"ok\"/></testsuite></testsuites>"
            .to_vec(),
        None,
    )
    .unwrap();
    push_as(
        vault,
        "ci",
        "rollback_plan.md",
        b"# Rollback plan\n\n## Trigger Conditions\n- error rate > 5%\n".to_vec(),
        Some(Kind::RollbackPlan),
    )
    .unwrap();
}

/// A deploy receipt of the version to `env` at `time`, pushed by `ci`.
fn deploy_at(vault: &Vault, env: &str, time: &str) -> Record {
    push(
        vault,
        &format!("deploy-{env}-{time}.json"),
        &crate::testing::deploy(V, env, time),
    )
}

fn check(vault: &Vault, env: &str, policy: Option<&str>) -> GateDecision {
    vault
        .gate_check(
            CheckRequest {
                blueprint: BP.into(),
                version: V.into(),
                environment: env.into(),
                policy: policy.map(str::to_string),
                ..CheckRequest::default()
            },
            "ci",
            &[],
        )
        .unwrap()
}

fn status(d: &GateDecision, name: &str) -> Outcome {
    d.requirements
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no requirement {name} in {:#?}", d.requirements))
        .status
}

fn message(d: &GateDecision, name: &str) -> String {
    d.requirements
        .iter()
        .find(|r| r.name == name)
        .map(|r| r.message.clone())
        .unwrap_or_default()
}

fn approve(vault: &Vault, who: &str, role: &str, decision: Decision) -> Result<Recorded> {
    vault.record_approval(
        ApprovalRequest {
            blueprint: BP.into(),
            version: V.into(),
            environment: "production".into(),
            decision,
            reason: "change reviewed in CHG-1234".into(),
            expires: Some("7d".into()),
            ticket: Some("CHG-1234".into()),
            git_sha: None,
        },
        who,
        role,
        &[],
    )
}

fn except(vault: &Vault, who: &str, role: &str, vulns: &[&str]) -> Recorded {
    vault
        .record_exception(
            ExceptionRequest {
                blueprint: BP.into(),
                version: V.into(),
                environment: "production".into(),
                vulnerabilities: vulns.iter().map(|v| v.to_string()).collect(),
                reason: "not reachable from the public API; fix scheduled".into(),
                expires: "14d".into(),
                ticket: None,
                git_sha: None,
            },
            who,
            role,
            &[],
        )
        .unwrap()
}

/// An approval document written by hand, given at `given` and expiring at `expires`, pushed
/// by `producer`.
fn approval_doc(
    approver: &str,
    given: chrono::DateTime<Utc>,
    expires: chrono::DateTime<Utc>,
    vulns: &[&str],
) -> Vec<u8> {
    let mut doc = json!({"_type": "https://evault.dev/approval/v1", "approver": approver,
        "decision": "approve", "reason": "ok", "environment": "production",
        "time": format_time(given), "expires_at": format_time(expires), "role": "approver",
        "blueprint": {"name": BP, "version": V}});
    if !vulns.is_empty() {
        doc["vulnerabilities"] = json!(vulns);
    }
    serde_json::to_vec(&doc).unwrap()
}

#[test]
fn a_version_without_evidence_fails_every_requirement_and_no_policy_means_fail() {
    let (_d, vault) = vault();
    let err = vault
        .gate_check(
            CheckRequest {
                blueprint: BP.into(),
                version: V.into(),
                environment: "production".into(),
                ..CheckRequest::default()
            },
            "ci",
            &[],
        )
        .unwrap();
    assert_eq!(err.decision, Outcome::Fail);
    assert_eq!(status(&err, "version"), Outcome::Fail);
    assert_eq!(status(&err, "evidence:sbom"), Outcome::Fail);
    assert!(err.record.is_none(), "nothing to link the decision to");
    assert!(
        err.warnings[0].contains("not recorded"),
        "{:?}",
        err.warnings
    );

    full_evidence(&vault, 0, 0);
    let dev = check(&vault, "dev", None);
    assert_eq!(dev.decision, Outcome::Fail);
    assert!(message(&dev, "policy").contains("no gate policy covers environment 'dev'"));
}

#[test]
fn staging_passes_on_complete_evidence_and_the_decision_is_a_record() {
    let (_d, vault) = vault();
    full_evidence(&vault, 0, 2);
    let d = check(&vault, "staging", None);
    assert_eq!(d.decision, Outcome::Pass, "{:#?}", d.requirements);
    assert_eq!(d.policy.source, "built-in");
    assert_eq!(status(&d, "vulnerabilities:high"), Outcome::Pass);
    let id = d.record.clone().unwrap();
    let record = vault.record(&id).unwrap();
    assert_eq!(record.kind, Kind::PolicyResult);
    assert_eq!(record.git_sha, sha());
    assert_eq!(record.environment.as_deref(), Some("staging"));
    let summary = vault.summary(&record).unwrap();
    assert_eq!(summary["decision"], "pass");

    // Nobody may push a decision of their own.
    let bytes = vault
        .open_blob(&record.digest.parse().unwrap())
        .map(|(_, mut r)| {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut r, &mut out).unwrap();
            out
        });
    let mut doc: Value = serde_json::from_slice(&bytes.unwrap()).unwrap();
    doc["time"] = json!("2026-01-01T00:00:00Z");
    let err = push_as(
        &vault,
        "ci",
        "forged.json",
        serde_json::to_vec(&doc).unwrap(),
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("never pushed"), "{err}");
    let err = push_as(
        &vault,
        "ci",
        "forged.txt",
        b"pass".to_vec(),
        Some(Kind::PolicyResult),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("cannot be policy-result"), "{err}");
}

#[test]
fn more_high_findings_warn_in_staging_and_fail_in_production_unless_an_exception_covers_them() {
    let (_d, vault) = vault();
    full_evidence(&vault, 0, 5);
    approve(&vault, "alice", "approver", Decision::Approve).unwrap();
    let staging = check(&vault, "staging", None);
    assert_eq!(
        staging.decision,
        Outcome::Warn,
        "{:#?}",
        staging.requirements
    );
    assert_eq!(status(&staging, "vulnerabilities:high"), Outcome::Warn);

    let prod = check(&vault, "production", None);
    assert_eq!(prod.decision, Outcome::Fail);
    assert!(message(&prod, "vulnerabilities:high").contains("5 high after VEX (at most 3 allowed"));

    // An exception by someone without the role does not count.
    except(
        &vault,
        "mallory",
        "developer",
        &["CVE-2026-2000", "CVE-2026-2001"],
    );
    assert_eq!(check(&vault, "production", None).decision, Outcome::Fail);

    // Two accepted by an approver: three remain, which is allowed, with a warning.
    let x = except(
        &vault,
        "carol",
        "approver",
        &["cve-2026-2000", "CVE-2026-2001"],
    );
    let prod = check(&vault, "production", None);
    assert_eq!(prod.decision, Outcome::Warn, "{:#?}", prod.requirements);
    let high = prod
        .requirements
        .iter()
        .find(|r| r.name == "vulnerabilities:high")
        .unwrap();
    assert!(high.records.contains(&x.record.record.id), "{high:?}");
    assert!(
        high.message.contains("accepted by exception"),
        "{}",
        high.message
    );
}

#[test]
fn an_expired_exception_no_longer_covers_anything() {
    let (_d, vault) = vault();
    full_evidence(&vault, 0, 4);
    approve(&vault, "alice", "approver", Decision::Approve).unwrap();
    let now = Utc::now();
    // Recorded by carol herself, but it ran out an hour ago.
    push_as(
        &vault,
        "carol",
        "old-exception.json",
        approval_doc(
            "carol",
            now - Duration::days(15),
            now - Duration::hours(1),
            &["CVE-2026-2000"],
        ),
        None,
    )
    .unwrap();
    let d = check(&vault, "production", None);
    assert_eq!(
        status(&d, "vulnerabilities:high"),
        Outcome::Fail,
        "{:#?}",
        d.requirements
    );
    // The same exception, still running: the gate lets the version through with a warning.
    push_as(
        &vault,
        "carol",
        "exception.json",
        approval_doc(
            "carol",
            now - Duration::days(1),
            now + Duration::days(13),
            &["CVE-2026-2000"],
        ),
        None,
    )
    .unwrap();
    assert_eq!(check(&vault, "production", None).decision, Outcome::Warn);
}

#[test]
fn vex_turns_a_critical_failure_into_a_pass() {
    let (_d, vault) = vault();
    full_evidence(&vault, 1, 0);
    approve(&vault, "alice", "approver", Decision::Approve).unwrap();
    let before = check(&vault, "production", None);
    assert_eq!(before.decision, Outcome::Fail);
    assert_eq!(status(&before, "vulnerabilities:critical"), Outcome::Fail);
    assert!(message(&before, "vulnerabilities:critical").contains("CVE-2026-1000"));

    let vex = push(&vault, "vex.json", &vex_not_affected("CVE-2026-1000"));
    let after = check(&vault, "production", None);
    assert_eq!(after.decision, Outcome::Pass, "{:#?}", after.requirements);
    let critical = after
        .requirements
        .iter()
        .find(|r| r.name == "vulnerabilities:critical")
        .unwrap();
    assert!(
        critical.message.contains("1 settled by VEX"),
        "{}",
        critical.message
    );
    assert!(critical.records.contains(&vex.id), "{critical:?}");
}

#[test]
fn approvals_need_the_role_the_approver_themselves_and_separation_of_duties() {
    let (_d, vault) = vault();
    full_evidence(&vault, 0, 0);
    let d = check(&vault, "production", None);
    assert_eq!(status(&d, "approvals"), Outcome::Fail);
    assert_eq!(status(&d, "evidence:approval"), Outcome::Fail);

    // The pusher approving their own change: recorded, with a warning, and not counted.
    let own = approve(&vault, "ci", "approver", Decision::Approve).unwrap();
    assert!(
        own.warnings
            .iter()
            .any(|w| w.contains("separation of duties")),
        "{:?}",
        own.warnings
    );
    let d = check(&vault, "production", None);
    assert_eq!(status(&d, "approvals"), Outcome::Fail);
    assert!(
        message(&d, "approvals").contains("separation of duties"),
        "{}",
        message(&d, "approvals")
    );

    // An approval document naming alice, pushed by the pipeline: not alice's word.
    let now = Utc::now();
    push_as(
        &vault,
        "ci",
        "approval.json",
        approval_doc(
            "alice",
            now - Duration::hours(1),
            now + Duration::days(1),
            &[],
        ),
        None,
    )
    .unwrap();
    let d = check(&vault, "production", None);
    assert_eq!(status(&d, "approvals"), Outcome::Fail);
    assert!(message(&d, "approvals").contains("recorded by ci, not by the approver"));

    // Someone acting in another role.
    approve(&vault, "dave", "developer", Decision::Approve).unwrap();
    assert_eq!(
        status(&check(&vault, "production", None), "approvals"),
        Outcome::Fail
    );

    // Alice herself.
    approve(&vault, "alice", "approver", Decision::Approve).unwrap();
    let d = check(&vault, "production", None);
    assert_eq!(d.decision, Outcome::Pass, "{:#?}", d.requirements);
    assert!(message(&d, "approvals").contains("by alice"));

    // A rejection stands next to an approval.
    approve(&vault, "bob", "approver", Decision::Reject).unwrap();
    let d = check(&vault, "production", None);
    assert_eq!(status(&d, "approvals"), Outcome::Fail);
    assert!(message(&d, "approvals").contains("rejected for production"));
}

#[test]
fn an_expired_approval_does_not_count() {
    let (_d, vault) = vault();
    full_evidence(&vault, 0, 0);
    let now = Utc::now();
    push_as(
        &vault,
        "alice",
        "approval.json",
        approval_doc(
            "alice",
            now - Duration::days(8),
            now - Duration::days(1),
            &[],
        ),
        None,
    )
    .unwrap();
    let d = check(&vault, "production", None);
    assert_eq!(status(&d, "approvals"), Outcome::Fail);
    assert!(
        message(&d, "approvals").contains("expired"),
        "{}",
        message(&d, "approvals")
    );
}

#[test]
fn approval_and_exception_inputs_are_checked_before_anything_is_written() {
    let (_d, vault) = vault();
    full_evidence(&vault, 0, 5);
    let before = vault.stats().unwrap();
    let mut bad = ApprovalRequest {
        blueprint: BP.into(),
        version: V.into(),
        environment: "production".into(),
        decision: Decision::Approve,
        reason: "ok".into(),
        expires: Some("400d".into()),
        ticket: None,
        git_sha: None,
    };
    let err = vault
        .record_approval(bad.clone(), "alice", "approver", &[])
        .unwrap_err();
    assert!(err.to_string().contains("at most 366 days"), "{err}");
    bad.expires = Some("7x".into());
    assert!(
        vault
            .record_approval(bad.clone(), "alice", "approver", &[])
            .unwrap_err()
            .to_string()
            .contains("invalid duration '7x'")
    );
    bad.expires = None;
    bad.reason = " ".into();
    assert!(
        vault
            .record_approval(bad.clone(), "alice", "approver", &[])
            .unwrap_err()
            .to_string()
            .contains("reason")
    );
    bad.reason = "ok".into();
    bad.version = "9.9.9".into();
    assert!(
        vault
            .record_approval(bad, "alice", "approver", &[])
            .unwrap_err()
            .to_string()
            .contains("no evidence of checkout-api 9.9.9")
    );
    let err = vault
        .record_exception(
            ExceptionRequest {
                blueprint: BP.into(),
                version: V.into(),
                environment: "production".into(),
                vulnerabilities: Vec::new(),
                reason: "x".into(),
                expires: "1d".into(),
                ticket: None,
                git_sha: None,
            },
            "carol",
            "approver",
            &[],
        )
        .unwrap_err();
    assert!(err.to_string().contains("--vuln"), "{err}");
    assert_eq!(vault.stats().unwrap(), before);
}

#[test]
fn a_stored_policy_overrides_per_blueprint_and_invalid_ones_are_refused() {
    let (_d, vault) = vault();
    full_evidence(&vault, 0, 5);
    assert_eq!(vault.gate_policy().unwrap().source, "built-in");
    let err = vault
        .set_gate_policy(
            "[[gate]]\nenvironment = \"x\"\nrequire = [\"sbomm\"]\n",
            "admin",
        )
        .unwrap_err();
    assert!(err.to_string().contains("unknown kind 'sbomm'"), "{err}");
    assert_eq!(vault.gate_policy().unwrap().source, "built-in");
    let text = format!(
        "{BUILT_IN}\n[[gate]]\nenvironment = \"staging\"\nblueprint = \"checkout-*\"\n\
         [gate.vulnerabilities]\nhigh = {{ max = 10 }}\n"
    );
    let view = vault.set_gate_policy(&text, "admin").unwrap();
    assert_eq!(
        (view.source.as_str(), view.engine.as_str()),
        ("vault", "toml")
    );
    let d = check(&vault, "staging", None);
    assert_eq!(d.decision, Outcome::Pass, "{:#?}", d.requirements);
    assert_eq!(d.policy.source, "vault");
    assert_eq!(d.policy_entries, vec![1, 3]);
    assert_eq!(d.policy.digest, view.digest);
}

#[test]
fn audit_completeness_lists_deploys_that_never_passed_or_lack_evidence() {
    let (_d, vault) = vault();
    full_evidence(&vault, 0, 0);
    let first = deploy_at(&vault, "staging", "2026-01-01T00:00:00Z");
    let report = vault.audit_completeness("staging", None, &[]).unwrap();
    assert_eq!(report.deploys, 1);
    assert_eq!(report.incomplete.len(), 1);
    assert_eq!(report.incomplete[0].deploy, first.id);
    assert_eq!(report.incomplete[0].gate, "never-passed");
    assert!(report.incomplete[0].missing.is_empty());

    // The gate passes now, after that deploy; a later deploy is covered.
    let pass = check(&vault, "staging", None);
    assert_eq!(pass.decision, Outcome::Pass);
    let later = format_time(Utc::now() + Duration::minutes(1));
    deploy_at(&vault, "staging", &later);
    let report = vault.audit_completeness("staging", None, &[]).unwrap();
    assert_eq!(report.deploys, 2);
    assert_eq!(report.incomplete.len(), 1, "{report:#?}");
    assert_eq!(report.incomplete[0].gate, "passed-after-deploy");
    assert_eq!(report.incomplete[0].gate_record, pass.record);
    // Since a time after the first deploy: nothing to report.
    let since = Some(Utc::now() - Duration::minutes(5));
    assert!(
        vault
            .audit_completeness("staging", since, &[])
            .unwrap()
            .incomplete
            .is_empty()
    );

    // Production needs an approval: the deploy there lacks it.
    deploy_at(&vault, "production", &later);
    let report = vault.audit_completeness("production", None, &[]).unwrap();
    assert_eq!(report.incomplete[0].missing, vec!["approval"]);
    assert_eq!(report.incomplete[0].gate, "never-passed");
}

/// The built-in policy, written in Rego over the documented input (also shipped as an example).
pub(crate) const DEFAULT_REGO: &str = include_str!("../../../docs/examples/gate-default.rego");

#[test]
fn a_rego_policy_equal_to_the_built_in_one_decides_the_same() {
    let (_d, vault) = vault();
    let mut decisions = Vec::new();
    let mut compare = |vault: &Vault, step: &str| {
        for env in ["staging", "production", "dev"] {
            let toml = check(vault, env, None);
            let rego = check(vault, env, Some(DEFAULT_REGO));
            assert_eq!(rego.policy.engine, "rego");
            assert_eq!(rego.policy.source, "file");
            assert_eq!(
                toml.decision, rego.decision,
                "{step}, {env}: toml {:#?}\nrego {:#?}",
                toml.requirements, rego.requirements
            );
            decisions.push((step.to_string(), env, toml.decision));
        }
    };
    compare(&vault, "no evidence");
    full_evidence(&vault, 1, 5);
    compare(&vault, "critical and five high");
    push(&vault, "vex.json", &vex_not_affected("CVE-2026-1000"));
    compare(&vault, "critical settled by VEX");
    approve(&vault, "ci", "approver", Decision::Approve).unwrap();
    compare(&vault, "self-approved");
    approve(&vault, "alice", "approver", Decision::Approve).unwrap();
    compare(&vault, "approved");
    except(
        &vault,
        "carol",
        "approver",
        &["CVE-2026-2000", "CVE-2026-2001"],
    );
    compare(&vault, "exception");
    approve(&vault, "bob", "approver", Decision::Reject).unwrap();
    compare(&vault, "rejected");
    let (_d2, clean) = self::vault();
    full_evidence(&clean, 0, 3);
    compare(&clean, "clean, unapproved");
    approve(&clean, "alice", "approver", Decision::Approve).unwrap();
    compare(&clean, "clean, approved");
    push_as(&clean, "ci", "junit-rerun.xml", junit(2, 1), None).unwrap();
    compare(&clean, "a failing test");
    let (_d3, idle) = self::vault();
    full_evidence(&idle, 0, 0);
    approve(&idle, "alice", "approver", Decision::Approve).unwrap();
    push_as(&idle, "ci", "junit-none.xml", junit(0, 0), None).unwrap();
    compare(&idle, "an extra report of no tests");
    // The scenarios cover every outcome, so agreement means something.
    for outcome in [Outcome::Pass, Outcome::Warn, Outcome::Fail] {
        assert!(decisions.iter().any(|d| d.2 == outcome), "{decisions:?}");
    }
}

#[test]
fn a_rego_policy_that_errors_or_decides_nothing_fails_closed() {
    let (_d, vault) = vault();
    full_evidence(&vault, 0, 0);
    let quiet = "package evault.gate\n\nallow := true\n";
    let d = check(&vault, "staging", Some(quiet));
    assert_eq!(d.decision, Outcome::Fail);
    assert!(
        message(&d, "rego").contains("defines neither"),
        "{:#?}",
        d.requirements
    );
    let broken = "package evault.gate\n\nimport rego.v1\n\ndeny contains x if { x := 1 / 0 }\n";
    let d = check(&vault, "staging", Some(broken));
    assert_eq!(d.decision, Outcome::Fail);
    assert!(
        message(&d, "rego").contains("failed"),
        "{:#?}",
        d.requirements
    );
    let refused = |policy: &str| {
        vault
            .gate_check(
                CheckRequest {
                    blueprint: BP.into(),
                    version: V.into(),
                    environment: "staging".into(),
                    policy: Some(policy.into()),
                    ..CheckRequest::default()
                },
                "ci",
                &[],
            )
            .unwrap_err()
            .to_string()
    };
    let err = refused("package other\n");
    assert!(err.contains("package evault.gate"), "{err}");
    let err = refused("package evault.gate\ndeny contains if {\n");
    assert!(err.contains("does not compile"), "{err}");
    assert!(!err.contains('\n'), "{err}");
}

/// In-toto SLSA v1 provenance about `artifact` built from `commit` by `builder`, in a DSSE
/// envelope signed by `sk`.
fn signed_provenance(
    sk: &ed25519_dalek::SigningKey,
    artifact: &str,
    commit: &str,
    builder: &str,
) -> Vec<u8> {
    use base64::Engine as _;
    use ed25519_dalek::Signer as _;
    let payload = serde_json::to_vec(&json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "image", "digest": {"sha256": &artifact["sha256:".len()..]}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": "https://actions.github.io/buildtypes/workflow/v1",
                "externalParameters": {},
                "resolvedDependencies": [{"uri": "git+https://github.com/acme/shop@refs/heads/main",
                                          "digest": {"gitCommit": commit}}]
            },
            "runDetails": {"builder": {"id": builder}}
        }
    }))
    .unwrap();
    let payload_type = "application/vnd.in-toto+json";
    let mut pae = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    pae.extend_from_slice(&payload);
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    serde_json::to_vec(
        &json!({"payloadType": payload_type, "payload": b64(&payload),
        "signatures": [{"keyid": "", "sig": b64(&sk.sign(&pae).to_bytes())}]}),
    )
    .unwrap()
}

fn push_about(vault: &Vault, file: &str, bytes: Vec<u8>, artifact: &str) -> Record {
    let outcome = vault
        .push(
            PushRequest {
                sources: vec![PushSource::Reader {
                    name: file.to_string(),
                    reader: Box::new(Cursor::new(bytes)),
                }],
                links: LinkArgs {
                    blueprint: Some(BP.into()),
                    version: Some(V.into()),
                    git_sha: Some(sha()),
                    subjects: vec![artifact.to_string()],
                    ..LinkArgs::default()
                },
                kind: None,
                producer: "ci".into(),
                expand_archives: false,
                allowed_blueprints: Vec::new(),
            },
            &mut |_| {},
        )
        .unwrap();
    outcome.records[0].record.clone()
}

#[test]
fn provenance_and_signature_rules_on_real_signatures() {
    use ed25519_dalek::pkcs8::EncodePublicKey as _;
    use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
    use p256::ecdsa::signature::Signer as _;

    let (_d, vault) = vault();
    // Keys made here: an Ed25519 key signing provenance, a P-256 key signing the image.
    let builder_key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let image_key = p256::ecdsa::SigningKey::from_slice(&[9; 32]).unwrap();
    vault
        .add_trusted_key(
            "builder",
            &builder_key
                .verifying_key()
                .to_public_key_pem(LineEnding::LF)
                .unwrap(),
            &[],
            "admin",
        )
        .unwrap();
    vault
        .add_trusted_key(
            "release",
            &image_key
                .verifying_key()
                .to_public_key_pem(LineEnding::LF)
                .unwrap(),
            &[],
            "admin",
        )
        .unwrap();
    let image = b"the container image".to_vec();
    let artifact = format!("sha256:{}", hex::encode(Sha256::digest(&image)));
    let runner = "https://github.com/actions/runner/github-hosted";
    let provenance = push_about(
        &vault,
        "provenance.json",
        signed_provenance(&builder_key, &artifact, &sha(), runner),
        &artifact,
    );
    let signature: p256::ecdsa::DerSignature = image_key.sign(&image);
    let sig_b64 = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        signature.as_bytes(),
    );
    let sig = push_about(&vault, "image.sig", sig_b64.into_bytes(), &artifact);
    assert_eq!(
        vault
            .record(&sig.id)
            .unwrap()
            .verification
            .map(|v| v.status),
        Some(crate::verification::VerificationStatus::Verified),
        "the detached signature verifies with the trusted key"
    );

    let policy = |builders: &str, signers: &str| {
        format!(
            "[[gate]]\nenvironment = \"production\"\nrequire = [\"provenance\", \"signature\"]\n\
             [gate.provenance]\nbuilders = [{builders}]\nsource_repos = [\"*github.com/acme/shop*\"]\n\
             [gate.signatures]\nsigners = [{signers}]\n"
        )
    };
    let run = |text: String, artifact: Option<&str>| {
        vault
            .gate_check(
                CheckRequest {
                    blueprint: BP.into(),
                    version: V.into(),
                    environment: "production".into(),
                    artifact: artifact.map(str::to_string),
                    policy: Some(text),
                    ..CheckRequest::default()
                },
                "ci",
                &[],
            )
            .unwrap()
    };
    let good = run(
        policy("\"https://github.com/actions/runner/*\"", "\"release\""),
        Some(&artifact),
    );
    assert_eq!(good.decision, Outcome::Pass, "{:#?}", good.requirements);
    assert_eq!(
        good.requirements
            .iter()
            .find(|r| r.name == "provenance")
            .unwrap()
            .records,
        vec![provenance.id.clone()]
    );
    assert_eq!(
        good.requirements
            .iter()
            .find(|r| r.name == "signatures")
            .unwrap()
            .records,
        vec![sig.id.clone()]
    );

    // Another builder, another signer, another artifact: each fails its rule.
    let d = run(
        policy("\"https://ci.acme.example/*\"", "\"release\""),
        Some(&artifact),
    );
    assert!(
        message(&d, "provenance").contains(&format!("builder {runner} is not allowed")),
        "{:#?}",
        d.requirements
    );
    let d = run(
        policy(
            "\"https://github.com/actions/runner/*\"",
            "\"someone-else\"",
        ),
        Some(&artifact),
    );
    assert!(
        message(&d, "signatures").contains("signed by release, not an allowed signer"),
        "{:#?}",
        d.requirements
    );
    let other = format!("sha256:{}", "e".repeat(64));
    let d = run(
        policy("\"https://github.com/actions/runner/*\"", "\"release\""),
        Some(&other),
    );
    assert!(message(&d, "provenance").contains("no provenance names the artifact"));
    assert!(message(&d, "signatures").contains("no signature names the artifact"));

    // Provenance of the same image claiming another commit: the vault marks it failed at push,
    // and the gate sees conflicting evidence.
    let stray = push_about(
        &vault,
        "stray.json",
        signed_provenance(&builder_key, &artifact, &"b".repeat(40), runner),
        &artifact,
    );
    let d = run(
        policy("\"https://github.com/actions/runner/*\"", "\"release\""),
        Some(&artifact),
    );
    assert_eq!(status(&d, "provenance"), Outcome::Fail);
    assert_eq!(
        d.requirements
            .iter()
            .find(|r| r.name == "provenance")
            .unwrap()
            .records,
        vec![stray.id]
    );
    assert!(
        message(&d, "provenance").contains(&format!("built from commit {}", "b".repeat(40))),
        "{}",
        message(&d, "provenance")
    );
}

#[test]
fn the_stored_policy_is_in_the_log_and_an_edit_behind_its_back_shows() {
    let (dir, vault) = vault();
    let view = vault.set_gate_policy(BUILT_IN, "admin").unwrap();
    let verify = |vault: &Vault| {
        vault
            .verify_log(
                &crate::vault::LogVerifyOptions::default(),
                &mut |_, _, _| {},
            )
            .unwrap()
            .problems
    };
    assert!(verify(&vault).is_empty());
    let entries = vault.log_entries(0, 100).unwrap();
    let entry: Value = serde_json::from_str(&entries.last().unwrap().entry).unwrap();
    assert_eq!(entry["type"], "gate.policy");
    assert_eq!(entry["subject"], "gate-policy/current");
    assert_eq!(entry["state"]["digest"], view.digest);
    drop(vault);
    // Someone loosens the policy in the index directly.
    let conn = rusqlite::Connection::open(dir.path().join(crate::vault::INDEX_FILE)).unwrap();
    conn.execute(
        "UPDATE gate_policy SET policy = replace(policy, 'min = 1', 'min = 0')",
        [],
    )
    .unwrap();
    drop(conn);
    let vault = Vault::open(dir.path()).unwrap();
    let problems = verify(&vault);
    assert!(
        problems.iter().any(|p| p.contains("gate policy")),
        "{problems:?}"
    );
}

#[test]
fn audit_completeness_names_deploys_no_policy_covers() {
    let (_d, vault) = vault();
    full_evidence(&vault, 0, 0);
    deploy_at(&vault, "dev", "2026-01-01T00:00:00Z");
    let report = vault.audit_completeness("dev", None, &[]).unwrap();
    assert_eq!(report.incomplete.len(), 1);
    let d = &report.incomplete[0];
    assert!(d.uncovered && d.missing.is_empty(), "{d:?}");
    assert_eq!(d.gate, "never-passed");
    let json = serde_json::to_value(d).unwrap();
    assert_eq!(json["uncovered"], true);
}

#[test]
fn a_policy_may_believe_only_signed_vex_and_cap_how_long_exceptions_run() {
    use p256::ecdsa::signature::Signer as _;
    use p256::pkcs8::EncodePublicKey as _;
    use p256::pkcs8::LineEnding;

    let (_d, vault) = vault();
    full_evidence(&vault, 1, 4);
    approve(&vault, "alice", "approver", Decision::Approve).unwrap();
    let strict = format!(
        "{BUILT_IN}\n[[gate]]\nenvironment = \"production\"\nblueprint = \"{BP}\"\n\
         [gate.vulnerabilities]\ncritical = {{ max = 0 }}\n\
         high = {{ max = 3, exceptions = true }}\nvex = \"verified\"\nexception_max_days = 7\n"
    );
    let check_strict = |vault: &Vault| check(vault, "production", Some(&strict));

    // An unsigned VEX document settles the critical for the built-in policy, not for one that
    // believes only signed VEX.
    let vex_bytes = serde_json::to_vec(&vex_not_affected("CVE-2026-1000")).unwrap();
    let vex = push_as(&vault, "ci", "vex.json", vex_bytes.clone(), None).unwrap();
    assert_eq!(
        status(
            &check(&vault, "production", None),
            "vulnerabilities:critical"
        ),
        Outcome::Pass
    );
    let d = check_strict(&vault);
    assert_eq!(
        status(&d, "vulnerabilities:critical"),
        Outcome::Fail,
        "{:#?}",
        d.requirements
    );

    // The security team signs it (a detached P-256 signature, key made here): now it counts.
    let key = p256::ecdsa::SigningKey::from_slice(&[5; 32]).unwrap();
    vault
        .add_trusted_key(
            "security-team",
            &key.verifying_key()
                .to_public_key_pem(LineEnding::LF)
                .unwrap(),
            &[],
            "admin",
        )
        .unwrap();
    let signature: p256::ecdsa::DerSignature = key.sign(&vex_bytes);
    let sig_b64 = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        signature.as_bytes(),
    );
    push_about(&vault, "vex.json.sig", sig_b64.into_bytes(), &vex.digest);
    assert_eq!(
        vault
            .record(&vex.id)
            .unwrap()
            .verification
            .map(|v| v.status),
        Some(crate::verification::VerificationStatus::Verified),
        "the signature vouches for the VEX record"
    );
    let d = check_strict(&vault);
    assert_eq!(
        status(&d, "vulnerabilities:critical"),
        Outcome::Pass,
        "{:#?}",
        d.requirements
    );

    // Four high: one over. A 14-day exception is longer than the 7 days this policy allows.
    assert_eq!(status(&d, "vulnerabilities:high"), Outcome::Fail);
    except(&vault, "carol", "approver", &["CVE-2026-2000"]);
    assert_eq!(
        status(&check_strict(&vault), "vulnerabilities:high"),
        Outcome::Fail
    );
    assert_eq!(
        status(&check(&vault, "production", None), "vulnerabilities:high"),
        Outcome::Warn
    );
    let now = Utc::now();
    push_as(
        &vault,
        "carol",
        "short-exception.json",
        approval_doc(
            "carol",
            now - Duration::hours(1),
            now + Duration::days(6),
            &["CVE-2026-2001"],
        ),
        None,
    )
    .unwrap();
    let d = check_strict(&vault);
    assert_eq!(
        status(&d, "vulnerabilities:high"),
        Outcome::Warn,
        "{:#?}",
        d.requirements
    );
    assert_eq!(d.decision, Outcome::Warn);
}

/// A JUnit report of `passed` passing and `failed` failing test cases.
fn junit(passed: usize, failed: usize) -> Vec<u8> {
    let mut xml = String::from("<testsuites><testsuite name=\"api\">");
    for i in 0..passed {
        xml.push_str(&format!("<testcase name=\"ok {i}\"/>"));
    }
    for i in 0..failed {
        xml.push_str(&format!(
            "<testcase name=\"broken {i}\"><failure message=\"expected 200, got 500\"/></testcase>"
        ));
    }
    xml.push_str("</testsuite></testsuites>");
    xml.into_bytes()
}

#[test]
fn tests_must_pass_and_their_results_must_be_readable() {
    let (_d, vault) = vault();
    full_evidence(&vault, 0, 0);
    let d = check(&vault, "staging", None);
    assert_eq!(status(&d, "tests"), Outcome::Pass, "{:#?}", d.requirements);
    assert!(message(&d, "tests").starts_with("1 test case(s) in 1 report(s): 0 failed"));

    let red = push_as(&vault, "ci", "junit-red.xml", junit(5, 2), None).unwrap();
    let d = check(&vault, "staging", None);
    assert_eq!(d.decision, Outcome::Fail);
    let tests = d.requirements.iter().find(|r| r.name == "tests").unwrap();
    assert_eq!(tests.status, Outcome::Fail);
    assert!(
        tests
            .message
            .contains("8 test case(s) in 2 report(s): 2 failed"),
        "{}",
        tests.message
    );
    assert_eq!(tests.records, vec![red.id.clone()]);

    // A policy may tolerate some failures (flaky suites), or demand more tests.
    let lenient =
        "[[gate]]\nenvironment = \"staging\"\n[gate.tests]\nmax_failed = 2\nmin_tests = 8\n";
    assert_eq!(
        status(&check(&vault, "staging", Some(lenient)), "tests"),
        Outcome::Pass
    );
    let demanding =
        "[[gate]]\nenvironment = \"staging\"\n[gate.tests]\nmax_failed = 2\nmin_tests = 50\n";
    assert!(
        message(&check(&vault, "staging", Some(demanding)), "tests")
            .contains("at least 50 must run")
    );

    // A test report whose results evault cannot read fails closed.
    let sarif = json!({"version": "2.1.0", "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "runs": [{"tool": {"driver": {"name": "pytest-sarif"}}, "results": []}]});
    push_as(
        &vault,
        "ci",
        "tests.sarif",
        serde_json::to_vec(&sarif).unwrap(),
        Some(Kind::TestReport),
    )
    .unwrap();
    let d = check(&vault, "staging", Some(lenient));
    assert_eq!(status(&d, "tests"), Outcome::Fail);
    assert!(
        message(&d, "tests").contains("a sarif test report carries no test results evault reads"),
        "{}",
        message(&d, "tests")
    );
}

#[test]
fn trace_deploy_tells_whether_the_gate_passed_before_the_deploy() {
    let (_d, vault) = vault();
    full_evidence(&vault, 0, 0);
    let ctx = crate::query::QueryContext::default();
    let early = deploy_at(&vault, "staging", "2026-01-01T00:00:00Z");
    let gate = |id: &str| vault.trace_deploy(id, &ctx).unwrap().gate.unwrap();
    let g = gate(&early.id);
    assert_eq!((g.state.as_str(), g.decisions), ("never-passed", 0));

    // A failing check (a policy the vault stores, so it counts), then a passing one.
    vault
        .set_gate_policy(
            "[[gate]]\nenvironment = \"staging\"\nrequire = [\"provenance\"]\n",
            "admin",
        )
        .unwrap();
    let failed = check(&vault, "staging", None);
    assert_eq!(failed.decision, Outcome::Fail);
    vault.set_gate_policy(BUILT_IN, "admin").unwrap();
    let passed = check(&vault, "staging", None);
    assert_eq!(passed.decision, Outcome::Pass);
    let late = deploy_at(
        &vault,
        "staging",
        &format_time(Utc::now() + Duration::minutes(1)),
    );

    let g = gate(&early.id);
    assert_eq!(g.state, "passed-after-deploy");
    assert_eq!(g.record, passed.record);
    let g = gate(&late.id);
    assert_eq!(g.state, "passed");
    assert_eq!(g.record, passed.record);
    assert_eq!(g.decisions, 2);
    // A decision under a policy the caller brought does not count.
    let (_d2, other) = self::vault();
    full_evidence(&other, 0, 0);
    check(&other, "staging", Some("[[gate]]\nenvironment = \"*\"\n"));
    let d = deploy_at(&other, "staging", "2030-01-01T00:00:00Z");
    let g = other.trace_deploy(&d.id, &ctx).unwrap().gate.unwrap();
    assert_eq!((g.state.as_str(), g.decisions), ("never-passed", 1));
}

#[test]
fn audit_completeness_judges_each_deploy_by_the_policy_in_force_then() {
    let (_d, vault) = vault();
    full_evidence(&vault, 0, 0);
    // Before any policy was stored: the built-in one judged, which this version meets.
    let old = deploy_at(&vault, "staging", "2020-01-01T00:00:00Z");
    // A policy that wants provenance, in force for the next deploy.
    let strict = "[[gate]]\nenvironment = \"staging\"\nrequire = [\"provenance\"]\n";
    let strict_view = vault.set_gate_policy(strict, "admin").unwrap();
    let during = deploy_at(
        &vault,
        "staging",
        &format_time(Utc::now() + Duration::seconds(1)),
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    // Relaxed again for the last one.
    let relaxed = vault.set_gate_policy(BUILT_IN, "admin").unwrap();
    let after = deploy_at(
        &vault,
        "staging",
        &format_time(Utc::now() + Duration::seconds(1)),
    );

    let report = vault.audit_completeness("staging", None, &[]).unwrap();
    assert_eq!(report.policy.digest, relaxed.digest);
    let by_deploy = |id: &str| {
        report
            .incomplete
            .iter()
            .find(|d| d.deploy == id)
            .unwrap_or_else(|| panic!("{id} not listed: {report:#?}"))
    };
    assert_eq!(by_deploy(&old.id).policy.source, "built-in");
    assert!(by_deploy(&old.id).missing.is_empty());
    let d = by_deploy(&during.id);
    assert_eq!(d.policy.digest, strict_view.digest);
    assert_eq!(d.missing, vec!["provenance"]);
    let d = by_deploy(&after.id);
    assert_eq!(
        (d.policy.source.as_str(), d.policy.digest.as_str()),
        ("vault", relaxed.digest.as_str())
    );
    assert!(d.missing.is_empty());
}
