//! evault's own documents: what a pipeline may write, what evault refuses and how it says so,
//! and the committed JSON Schemas agreeing with the parser.

use std::path::PathBuf;

use evault_schema::Format;
use evault_schema::Kind;
use evault_schema::documents::{
    APPROVAL_TYPE, BUNDLE_MANIFEST_TYPE, Decision, DeployStatus, DocumentError, MAX_DOCUMENT_BYTES,
    MAX_MANIFEST_FILES, NativeDocument, Outcome, POLICY_RESULT_TYPE, json_schemas, parse_manifest,
    parse_native,
};
use serde_json::{Value, json};

const SHA: &str = "3cdd1207e3f0e552bfe79149dd98bf5151f2378c";
const IMAGE_142: &str = "sha256:63ede188c102dc7e741492f51b5271003c0e1323a6e3f1e2f5c71545315bf715";
const IMAGE_141: &str = "sha256:49517423154a560b694292350118ea1d80adebc256a72116563d39faf4d4d160";
const POLICY_DIGEST: &str =
    "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";
const SBOM_RECORD: &str = "0123456789abcdef0123456789abcdef";
const SCAN_RECORD: &str = "fedcba9876543210fedcba9876543210";

fn approval() -> Value {
    json!({
        "_type": "https://evault.dev/approval/v1",
        "approver": "maria.chen@acme.example",
        "decision": "approve",
        "reason": "Fixes the checkout timeout (CHG-4821); all blocking gates green.",
        "environment": "production",
        "time": "2025-03-14T09:26:53Z",
        "blueprint": { "name": "checkout-api", "version": "1.4.2" },
        "git_sha": SHA,
        "expires_at": "2025-03-21T09:26:53Z",
        "role": "release-manager",
        "ticket": "CHG-4821"
    })
}

fn deploy() -> Value {
    json!({
        "_type": "https://evault.dev/deploy/v1",
        "environment": "production",
        "artifact": IMAGE_142,
        "time": "2025-03-14T09:41:07Z",
        "actor": "github-actions[bot]",
        "blueprint": { "name": "checkout-api", "version": "1.4.2" },
        "git_sha": SHA,
        "status": "succeeded",
        "target": "eks-prod-eu-west-1/checkout",
        "run_id": "8123456789"
    })
}

fn rollback() -> Value {
    json!({
        "_type": "https://evault.dev/rollback/v1",
        "environment": "production",
        "from_version": "1.4.2",
        "to_version": "1.4.1",
        "trigger": "error rate > 5% for 5 minutes",
        "reason": "Payment provider timeouts after the rollout.\nRolled back in 3m40s; smoke tests green.",
        "time": "2025-03-14T10:02:30Z",
        "actor": "sam.okafor@acme.example",
        "blueprint": "checkout-api",
        "incident": "https://status.acme.example/incidents/INC-2291",
        "artifact": IMAGE_141
    })
}

/// The production gate stopping checkout-api 1.4.2 over a critical vulnerability.
fn policy_result() -> Value {
    json!({
        "_type": "https://evault.dev/policy-result/v1",
        "blueprint": { "name": "checkout-api", "version": "1.4.2" },
        "git_sha": SHA,
        "environment": "production",
        "artifact": IMAGE_142,
        "decision": "fail",
        "time": "2025-03-14T09:20:11Z",
        "actor": "github-actions[bot]",
        "policy": { "source": "vault", "engine": "toml", "digest": POLICY_DIGEST },
        "requirements": [
            {
                "name": "evidence:sbom",
                "status": "pass",
                "message": "CycloneDX SBOM present (412 components).",
                "records": [SBOM_RECORD]
            },
            {
                "name": "vulnerabilities:critical",
                "status": "fail",
                "message": "1 critical vulnerability (CVE-2024-3094), at most 0 allowed.",
                "records": [SCAN_RECORD]
            },
            {
                "name": "approvals",
                "status": "warn",
                "message": "No approval yet; production needs 1."
            }
        ]
    })
}

/// An exception: the CISO accepts two vulnerabilities for a week.
fn exception() -> Value {
    json!({
        "_type": "https://evault.dev/approval/v1",
        "approver": "ciso@acme.example",
        "decision": "approve",
        "reason": "Not reachable: the vulnerable parser is not used by checkout-api.",
        "environment": "production",
        "time": "2025-03-14T09:26:53Z",
        "blueprint": { "name": "checkout-api", "version": "1.4.2" },
        "expires_at": "2025-03-21T09:26:53Z",
        "role": "ciso",
        "vulnerabilities": ["CVE-2024-3094", "GHSA-h5c8-rqwp-cp95"]
    })
}

fn manifest() -> Value {
    json!({
        "_type": "https://evault.dev/bundle/v1",
        "blueprint": { "name": "checkout-api", "version": "1.4.2" },
        "git_sha": SHA,
        "repo": "https://github.com/acme/checkout-api",
        "run_id": "8123456789",
        "environment": "production",
        "subjects": [IMAGE_142],
        "files": [
            { "path": "sbom.json", "kind": "sbom", "format": "cyclonedx-json" },
            { "path": "scan_report.json", "kind": "vuln-scan", "format": "sarif" },
            { "path": "rollback_plan.md", "kind": "rollback-plan" },
            { "path": "receipts/deploy_receipt.json", "subjects": [IMAGE_142] }
        ]
    })
}

/// Only the required fields.
fn minimal_examples() -> Vec<Value> {
    vec![
        json!({
            "_type": APPROVAL_TYPE, "approver": "ciso@acme.example", "decision": "reject",
            "reason": "Critical CVE-2025-1234 in the base image.", "environment": "production",
            "time": "2025-03-14T09:26:53Z"
        }),
        json!({
            "_type": "https://evault.dev/deploy/v1", "environment": "staging",
            "artifact": IMAGE_142, "time": "2025-03-14T09:41:07Z", "actor": "deploy-bot"
        }),
        json!({
            "_type": "https://evault.dev/rollback/v1", "environment": "production",
            "from_version": "1.4.2", "to_version": "1.4.1", "trigger": "p95 latency > 2x baseline",
            "reason": "Latency regression.", "time": "2025-03-14T10:02:30Z", "actor": "argo-rollouts"
        }),
        json!({ "_type": BUNDLE_MANIFEST_TYPE }),
        json!({
            "_type": POLICY_RESULT_TYPE,
            "blueprint": { "name": "checkout-api", "version": "1.4.2" }, "git_sha": SHA,
            "environment": "staging", "decision": "pass", "time": "2025-03-14T09:20:11Z",
            "actor": "deploy-bot",
            "policy": { "source": "built-in", "engine": "toml", "digest": POLICY_DIGEST },
            "requirements": [{ "name": "evidence:sbom", "status": "pass", "message": "Present." }]
        }),
    ]
}

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

fn native_err(v: &Value) -> DocumentError {
    parse_native(&bytes(v)).expect_err("document should be refused")
}

fn manifest_err(v: &Value) -> DocumentError {
    parse_manifest(&bytes(v)).expect_err("manifest should be refused")
}

/// `v` with `pointer` (a JSON pointer to an object member or array entry) set to `value`.
fn with(mut v: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    match v.pointer_mut(parent).unwrap() {
        Value::Object(o) => {
            o.insert(key.to_string(), value);
        }
        Value::Array(a) => a[key.parse::<usize>().unwrap()] = value,
        other => panic!("cannot set {pointer} in {other}"),
    }
    v
}

fn without(mut v: Value, key: &str) -> Value {
    v.as_object_mut().unwrap().remove(key);
    v
}

// ---------------------------------------------------------------------------------------------
// Good documents

#[test]
fn an_approval_for_a_production_release_parses() {
    let doc = parse_native(&bytes(&approval())).unwrap();
    assert_eq!(doc.format(), Format::EvaultApproval);
    assert_eq!(doc.blueprint(), Some(("checkout-api", Some("1.4.2"))));
    assert_eq!(doc.git_sha(), Some(SHA));
    assert_eq!(doc.environment(), "production");
    assert!(doc.subjects().is_empty());
    let NativeDocument::Approval(a) = doc else {
        panic!("not an approval")
    };
    assert_eq!(a.decision, Decision::Approve);
    assert_eq!(a.approver, "maria.chen@acme.example");
    assert_eq!(a.role.as_deref(), Some("release-manager"));
    assert_eq!(
        a.expires_at.unwrap().to_rfc3339(),
        "2025-03-21T09:26:53+00:00"
    );
}

#[test]
fn a_deploy_receipt_parses_and_names_its_artifact() {
    let doc = parse_native(&bytes(&deploy())).unwrap();
    assert_eq!(doc.format(), Format::EvaultDeploy);
    assert_eq!(doc.subjects(), vec![IMAGE_142.to_string()]);
    assert_eq!(doc.blueprint(), Some(("checkout-api", Some("1.4.2"))));
    let NativeDocument::Deploy(d) = doc else {
        panic!("not a deploy")
    };
    assert_eq!(d.status, Some(DeployStatus::Succeeded));
    assert_eq!(d.run_id.as_deref(), Some("8123456789"));
}

#[test]
fn a_rollback_record_parses_with_the_blueprint_name_only() {
    let doc = parse_native(&bytes(&rollback())).unwrap();
    assert_eq!(doc.format(), Format::EvaultRollback);
    assert_eq!(doc.blueprint(), Some(("checkout-api", None)));
    assert_eq!(doc.git_sha(), None);
    assert_eq!(doc.subjects(), vec![IMAGE_141.to_string()]);
    let NativeDocument::Rollback(r) = doc else {
        panic!("not a rollback")
    };
    assert_eq!(
        (r.from_version.as_str(), r.to_version.as_str()),
        ("1.4.2", "1.4.1")
    );
    assert!(r.reason.contains('\n'), "multi-line reasons are kept");
}

#[test]
fn documents_with_only_required_fields_parse() {
    let [a, d, r, m, p] = <[Value; 5]>::try_from(minimal_examples()).unwrap();
    assert_eq!(parse_native(&bytes(&a)).unwrap().blueprint(), None);
    assert_eq!(parse_native(&bytes(&d)).unwrap().git_sha(), None);
    assert!(parse_native(&bytes(&r)).unwrap().subjects().is_empty());
    let m = parse_manifest(&bytes(&m)).unwrap();
    assert!(m.files.is_empty() && m.subjects.is_empty());
    assert!(parse_native(&bytes(&p)).unwrap().subjects().is_empty());
}

#[test]
fn digests_shas_and_times_are_normalized() {
    let doc = deploy();
    let doc = with(doc, "/artifact", json!(IMAGE_142.to_uppercase()));
    let doc = with(doc, "/git_sha", json!(SHA.to_uppercase()));
    let doc = with(doc, "/time", json!("2025-03-14T11:41:07+02:00"));
    let NativeDocument::Deploy(d) = parse_native(&bytes(&doc)).unwrap() else {
        panic!("not a deploy")
    };
    assert_eq!(d.artifact, IMAGE_142);
    assert_eq!(d.git_sha.as_deref(), Some(SHA));
    assert_eq!(d.time.to_rfc3339(), "2025-03-14T09:41:07+00:00");
}

#[test]
fn parsed_documents_serialize_back_to_equal_documents() {
    for v in [
        approval(),
        deploy(),
        rollback(),
        policy_result(),
        exception(),
    ] {
        let doc = parse_native(&bytes(&v)).unwrap();
        let again = parse_native(&serde_json::to_vec(&doc).unwrap()).unwrap();
        assert_eq!(doc, again);
    }
    let m = parse_manifest(&bytes(&manifest())).unwrap();
    assert_eq!(parse_manifest(&serde_json::to_vec(&m).unwrap()).unwrap(), m);
}

#[test]
fn a_gate_decision_parses_with_its_links() {
    let doc = parse_native(&bytes(&policy_result())).unwrap();
    assert_eq!(doc.format(), Format::EvaultPolicyResult);
    assert_eq!(doc.format().default_kind(), Kind::PolicyResult);
    assert_eq!(doc.blueprint(), Some(("checkout-api", Some("1.4.2"))));
    assert_eq!(doc.git_sha(), Some(SHA));
    assert_eq!(doc.environment(), "production");
    assert_eq!(doc.subjects(), vec![IMAGE_142.to_string()]);
    let NativeDocument::PolicyResult(p) = doc else {
        panic!("not a policy result")
    };
    assert_eq!(p.decision, Outcome::Fail);
    assert_eq!(p.policy.source, "vault");
    assert_eq!(p.requirements.len(), 3);
    assert_eq!(p.requirements[1].name, "vulnerabilities:critical");
    assert_eq!(p.requirements[1].records, [SCAN_RECORD]);
    assert!(p.requirements[2].records.is_empty());
}

#[test]
fn a_gate_decision_round_trips_through_parse_native() {
    let doc = parse_native(&bytes(&policy_result())).unwrap();
    let text = serde_json::to_value(&doc).unwrap();
    assert_eq!(text, policy_result(), "nothing added, nothing lost");
    assert_eq!(
        parse_native(&serde_json::to_vec(&doc).unwrap()).unwrap(),
        doc
    );
}

#[test]
fn gate_decision_values_are_normalized() {
    let doc = with(policy_result(), "/git_sha", json!(SHA.to_uppercase()));
    let doc = with(doc, "/artifact", json!(IMAGE_142.to_uppercase()));
    let doc = with(doc, "/policy/digest", json!(POLICY_DIGEST.to_uppercase()));
    let doc = with(
        doc,
        "/requirements/0/records",
        json!([SBOM_RECORD.to_uppercase()]),
    );
    let doc = with(doc, "/time", json!("2025-03-14T10:20:11+01:00"));
    let NativeDocument::PolicyResult(p) = parse_native(&bytes(&doc)).unwrap() else {
        panic!("not a policy result")
    };
    assert_eq!(p.git_sha, SHA);
    assert_eq!(p.artifact.as_deref(), Some(IMAGE_142));
    assert_eq!(p.policy.digest, POLICY_DIGEST);
    assert_eq!(p.requirements[0].records, [SBOM_RECORD]);
    assert_eq!(p.time.to_rfc3339(), "2025-03-14T09:20:11+00:00");
}

#[test]
fn outcomes_are_ordered_from_best_to_worst() {
    assert!(Outcome::Pass < Outcome::Warn && Outcome::Warn < Outcome::Fail);
    let worst = [Outcome::Warn, Outcome::Pass, Outcome::Fail, Outcome::Warn]
        .into_iter()
        .max();
    assert_eq!(worst, Some(Outcome::Fail));
    assert_eq!(Outcome::Warn.to_string(), "warn");
    assert_eq!(serde_json::to_value(Outcome::Fail).unwrap(), "fail");
}

#[test]
fn an_exception_names_the_vulnerabilities_it_accepts() {
    let NativeDocument::Approval(a) = parse_native(&bytes(&exception())).unwrap() else {
        panic!("not an approval")
    };
    assert!(a.is_exception());
    assert_eq!(a.vulnerabilities, ["CVE-2024-3094", "GHSA-h5c8-rqwp-cp95"]);
    let NativeDocument::Approval(a) = parse_native(&bytes(&approval())).unwrap() else {
        panic!("not an approval")
    };
    assert!(!a.is_exception(), "an approval without vulnerabilities");
    assert!(
        !serde_json::to_value(&a)
            .unwrap()
            .as_object()
            .unwrap()
            .contains_key("vulnerabilities"),
        "an empty list is not written"
    );
}

#[test]
fn exception_ids_are_deduplicated_keeping_the_first_spelling() {
    let doc = with(
        exception(),
        "/vulnerabilities",
        json!([
            "CVE-2024-3094",
            "GHSA-h5c8-rqwp-cp95",
            "cve-2024-3094",
            "GHSA-H5C8-RQWP-CP95"
        ]),
    );
    let NativeDocument::Approval(a) = parse_native(&bytes(&doc)).unwrap() else {
        panic!("not an approval")
    };
    assert_eq!(a.vulnerabilities, ["CVE-2024-3094", "GHSA-h5c8-rqwp-cp95"]);
}

#[test]
fn a_manifest_for_a_devsecops_lane_parses() {
    let m = parse_manifest(&bytes(&manifest())).unwrap();
    assert_eq!(m.blueprint.as_ref().unwrap().name, "checkout-api");
    assert_eq!(m.subjects, vec![IMAGE_142.to_string()]);
    assert_eq!(m.files.len(), 4);
    assert_eq!(m.files[0].kind, Some(Kind::Sbom));
    assert_eq!(m.files[0].format, Some(Format::CyclonedxJson));
    assert_eq!(m.files[2].kind, Some(Kind::RollbackPlan));
    assert_eq!(m.files[2].format, None);
    assert_eq!(m.files[3].path, "receipts/deploy_receipt.json");
}

#[test]
fn manifest_subjects_are_normalized_and_deduplicated() {
    let m = with(
        manifest(),
        "/subjects",
        json!([IMAGE_142.to_uppercase(), IMAGE_142, IMAGE_141]),
    );
    let m = parse_manifest(&bytes(&m)).unwrap();
    assert_eq!(
        m.subjects,
        vec![IMAGE_142.to_string(), IMAGE_141.to_string()]
    );
}

// ---------------------------------------------------------------------------------------------
// One refusal per rule, each naming the field

#[test]
fn an_unknown_field_is_named() {
    let e = native_err(&with(approval(), "/colour", json!("red")));
    assert_eq!(e.path, "colour");
    assert!(
        e.reason
            .starts_with("unknown field \"colour\", expected one of \"_type\""),
        "{e}"
    );

    let e = native_err(&with(deploy(), "/blueprint/colour", json!("red")));
    assert_eq!(e.path, "blueprint.colour");
    assert_eq!(
        e.reason,
        "unknown field \"colour\", expected \"name\" or \"version\""
    );
    assert_eq!(
        e.to_string(),
        "field 'blueprint.colour': unknown field \"colour\", expected \"name\" or \"version\""
    );
}

#[test]
fn a_decision_other_than_approve_or_reject_is_refused() {
    let e = native_err(&with(approval(), "/decision", json!("maybe")));
    assert_eq!(e.path, "decision");
    assert_eq!(
        e.reason,
        "unknown variant \"maybe\", expected \"approve\" or \"reject\""
    );
    assert_eq!(
        e.to_string(),
        "field 'decision': unknown variant \"maybe\", expected \"approve\" or \"reject\""
    );
}

#[test]
fn a_bad_artifact_digest_is_refused() {
    let e = native_err(&with(deploy(), "/artifact", json!("sha256:abc123")));
    assert_eq!(e.path, "artifact");
    assert!(e.reason.contains("wrong length: 6"), "{e}");
    let e = native_err(&with(rollback(), "/artifact", json!(&IMAGE_141[7..])));
    assert_eq!(e.path, "artifact");
    assert!(e.reason.contains("missing \"sha256:\" prefix"), "{e}");
}

#[test]
fn a_bad_git_sha_is_refused() {
    let e = native_err(&with(approval(), "/git_sha", json!("3cdd120")));
    assert_eq!(e.path, "git_sha");
    assert!(
        e.reason
            .contains("expected 40 or 64 hexadecimal characters"),
        "{e}"
    );
}

#[test]
fn an_approval_expiring_before_it_was_given_is_refused() {
    let e = native_err(&with(
        approval(),
        "/expires_at",
        json!("2025-03-14T09:00:00Z"),
    ));
    assert_eq!(e.path, "expires_at");
    assert!(e.reason.contains("is not after the approval time"), "{e}");
    let same = with(approval(), "/expires_at", json!("2025-03-14T09:26:53Z"));
    assert_eq!(native_err(&same).path, "expires_at");
}

#[test]
fn an_empty_or_blank_reason_is_refused() {
    for reason in ["", "  \n "] {
        let e = native_err(&with(approval(), "/reason", json!(reason)));
        assert_eq!(e.path, "reason");
        assert_eq!(e.reason, "must not be empty");
    }
    let e = native_err(&with(rollback(), "/trigger", json!("")));
    assert_eq!(e.path, "trigger");
    let e = native_err(&with(approval(), "/reason", json!("x".repeat(4097))));
    assert!(e.reason.contains("too long: 4097"), "{e}");
    let e = native_err(&with(approval(), "/reason", json!("ok\u{1b}[2Jhidden")));
    assert!(e.reason.contains("control character"), "{e}");
}

#[test]
fn other_values_are_validated_too() {
    let cases = [
        (
            with(approval(), "/environment", json!("prod env")),
            "environment",
        ),
        (with(approval(), "/approver", json!("")), "approver"),
        (
            with(approval(), "/blueprint/version", json!("1.4 2")),
            "blueprint.version",
        ),
        (
            with(approval(), "/blueprint/name", json!("../x")),
            "blueprint.name",
        ),
        (with(approval(), "/ticket", json!("CHG 4821")), "ticket"),
        (with(approval(), "/role", json!("ciso\nadmin")), "role"),
        (with(deploy(), "/actor", json!("  ")), "actor"),
        (with(deploy(), "/target", json!("")), "target"),
        (with(deploy(), "/run_id", json!("8123\n")), "run_id"),
        (with(deploy(), "/status", json!("done")), "status"),
        (with(rollback(), "/to_version", json!("")), "to_version"),
        (with(rollback(), "/incident", json!("INC 2291")), "incident"),
        (
            with(rollback(), "/blueprint", json!({"name": "checkout-api"})),
            "blueprint",
        ),
    ];
    for (doc, path) in cases {
        let e = native_err(&doc);
        assert_eq!(e.path, path, "{e}");
    }
}

#[test]
fn an_exception_without_an_expiry_is_refused() {
    let e = native_err(&without(exception(), "expires_at"));
    assert_eq!(e.path, "expires_at");
    assert_eq!(
        e.reason,
        "required for an exception (an approval that names vulnerabilities): an accepted risk \
         must expire"
    );
    // An approval that accepts no vulnerability needs no expiry.
    let plain = with(
        without(exception(), "expires_at"),
        "/vulnerabilities",
        json!([]),
    );
    parse_native(&bytes(&plain)).unwrap();
}

#[test]
fn an_exception_that_rejects_is_refused() {
    let e = native_err(&with(exception(), "/decision", json!("reject")));
    assert_eq!(e.path, "decision");
    assert!(e.reason.contains("must be \"approve\""), "{e}");
}

#[test]
fn bad_exception_ids_are_refused() {
    for (bad, why) in [
        ("", "must not be empty"),
        ("CVE-2024-3094 CVE-2024-6387", "whitespace"),
        ("CVE-2024-3094\u{0}", "control"),
    ] {
        let doc = with(exception(), "/vulnerabilities", json!(["CVE-2024-1", bad]));
        let e = native_err(&doc);
        assert_eq!(e.path, "vulnerabilities[1]", "{bad:?}");
        assert!(e.reason.contains(why), "{bad:?}: {e}");
    }
    let e = native_err(&with(
        exception(),
        "/vulnerabilities",
        json!(["X".repeat(129)]),
    ));
    assert_eq!(e.path, "vulnerabilities[0]");
    assert!(e.reason.contains("too long: 129"), "{e}");
    let many: Vec<String> = (0..=1000).map(|i| format!("CVE-2024-{i}")).collect();
    let e = native_err(&with(exception(), "/vulnerabilities", json!(many)));
    assert_eq!(e.path, "vulnerabilities");
    assert!(e.reason.contains("at most 1000"), "{e}");
}

#[test]
fn a_decision_that_is_not_the_worst_requirement_status_is_refused() {
    let e = native_err(&with(policy_result(), "/decision", json!("warn")));
    assert_eq!(e.path, "decision");
    assert_eq!(
        e.reason,
        "is \"warn\", but the worst requirement status is \"fail\" (requirements[1], \
         'vulnerabilities:critical'): the decision must be the worst status"
    );
    let all_pass = with(policy_result(), "/requirements/1/status", json!("pass"));
    let all_pass = with(all_pass, "/requirements/2/status", json!("pass"));
    assert_eq!(native_err(&all_pass).path, "decision");
    parse_native(&bytes(&with(all_pass, "/decision", json!("pass")))).unwrap();
}

#[test]
fn a_gate_decision_without_requirements_is_refused() {
    let e = native_err(&with(policy_result(), "/requirements", json!([])));
    assert_eq!(e.path, "requirements");
    assert!(e.reason.starts_with("must not be empty"), "{e}");
    let e = native_err(&without(policy_result(), "requirements"));
    assert_eq!(e.reason, "missing field \"requirements\"");
}

#[test]
fn a_bad_record_id_is_refused() {
    for bad in [
        "0123456789abcdef",
        "0123456789abcdef0123456789abcdeg",
        "",
        "r-1",
    ] {
        let doc = with(
            policy_result(),
            "/requirements/1/records",
            json!([SCAN_RECORD, bad]),
        );
        let e = native_err(&doc);
        assert_eq!(e.path, "requirements[1].records[1]", "{bad:?}");
        assert!(
            e.reason.contains("expected 32 hexadecimal characters"),
            "{bad:?}: {e}"
        );
    }
}

#[test]
fn an_unknown_policy_source_or_engine_is_refused() {
    let e = native_err(&with(policy_result(), "/policy/source", json!("git")));
    assert_eq!(e.path, "policy.source");
    assert_eq!(
        e.reason,
        "unknown value \"git\", expected \"built-in\", \"vault\" or \"file\""
    );
    let e = native_err(&with(policy_result(), "/policy/engine", json!("cue")));
    assert_eq!(e.path, "policy.engine");
    assert_eq!(
        e.reason,
        "unknown value \"cue\", expected \"toml\" or \"rego\""
    );
    let e = native_err(&with(policy_result(), "/policy/digest", json!("sha256:00")));
    assert_eq!(e.path, "policy.digest");
}

#[test]
fn other_gate_decision_values_are_validated() {
    let cases = [
        (with(policy_result(), "/colour", json!("red")), "colour"),
        (
            with(policy_result(), "/policy/colour", json!("red")),
            "policy.colour",
        ),
        (
            with(policy_result(), "/requirements/0/colour", json!("red")),
            "requirements[0].colour",
        ),
        (
            with(policy_result(), "/requirements/0/status", json!("ok")),
            "requirements[0].status",
        ),
        (
            with(policy_result(), "/requirements/0/name", json!("a\nb")),
            "requirements[0].name",
        ),
        (
            with(
                policy_result(),
                "/requirements/0/name",
                json!("x".repeat(129)),
            ),
            "requirements[0].name",
        ),
        (
            with(policy_result(), "/requirements/2/message", json!(" ")),
            "requirements[2].message",
        ),
        (
            with(
                policy_result(),
                "/requirements/0",
                json!(["evidence:sbom", "pass", "ok"]),
            ),
            "requirements[0]",
        ),
        (
            with(
                policy_result(),
                "/policy",
                json!(["vault", "toml", POLICY_DIGEST]),
            ),
            "policy",
        ),
        (
            with(policy_result(), "/decision", json!("block")),
            "decision",
        ),
        (with(policy_result(), "/git_sha", json!("main")), "git_sha"),
        (
            with(policy_result(), "/artifact", json!("sha256:00")),
            "artifact",
        ),
        (
            with(policy_result(), "/environment", json!("")),
            "environment",
        ),
        (with(policy_result(), "/actor", json!("")), "actor"),
        (
            with(policy_result(), "/blueprint/version", json!("1 4")),
            "blueprint.version",
        ),
    ];
    for (doc, path) in cases {
        let e = native_err(&doc);
        assert_eq!(e.path, path, "{e}");
    }
    let e = native_err(&without(policy_result(), "git_sha"));
    assert_eq!(e.reason, "missing field \"git_sha\"");
    let e = native_err(&without(policy_result(), "blueprint"));
    assert_eq!(e.reason, "missing field \"blueprint\"");
}

#[test]
fn a_timestamp_that_is_not_rfc3339_is_refused() {
    for bad in ["2025-03-14", "yesterday", "2025-03-14 09:26", "1741944413"] {
        let e = native_err(&with(deploy(), "/time", json!(bad)));
        assert_eq!(e.path, "time", "{bad}");
        assert!(e.reason.contains("RFC 3339"), "{e}");
    }
}

#[test]
fn a_missing_required_field_is_named() {
    let e = native_err(&without(approval(), "approver"));
    assert_eq!(e.path, "");
    assert_eq!(e.reason, "missing field \"approver\"");
}

#[test]
fn the_type_decides_what_the_document_is() {
    let e = native_err(&without(deploy(), "_type"));
    assert_eq!(e.path, "_type");
    assert!(e.reason.contains("missing"), "{e}");
    let e = native_err(&with(
        deploy(),
        "/_type",
        json!("https://evault.dev/deploy/v2"),
    ));
    assert!(e.reason.contains("unknown document type"), "{e}");
    let e = native_err(&with(deploy(), "/_type", json!(7)));
    assert_eq!(e.path, "_type");
    // An approval's fields under a deploy's type are unknown fields, not a deploy.
    let e = native_err(&with(
        approval(),
        "/_type",
        json!("https://evault.dev/deploy/v1"),
    ));
    assert!(e.reason.starts_with("unknown field"), "{e}");
    let e = parse_native(&bytes(&manifest())).unwrap_err();
    assert!(e.reason.contains("bundle manifest"), "{e}");
    let e = manifest_err(&approval());
    assert_eq!(e.path, "_type");
}

#[test]
fn what_is_not_a_json_object_is_refused() {
    let e = parse_native(b"{\"_type\": ").unwrap_err();
    assert_eq!(e.path, "");
    assert!(e.reason.starts_with("not JSON: "), "{e}");
    assert!(e.reason.contains("line 1 column"), "{e}");
    let e = parse_native(b"{} trailing").unwrap_err();
    assert!(e.reason.starts_with("not JSON: trailing characters"), "{e}");
    let e = parse_native(b"[\"https://evault.dev/approval/v1\"]").unwrap_err();
    assert!(e.reason.contains("expected a JSON object"), "{e}");
    assert!(parse_native(b"").is_err());
    assert!(parse_native(b"null").is_err());
    // Structs written as arrays (fields by position) are refused too.
    let e = native_err(&with(
        deploy(),
        "/blueprint",
        json!(["checkout-api", "1.4.2"]),
    ));
    assert_eq!(e.path, "blueprint");
}

#[test]
fn a_repeated_key_is_refused() {
    let text = r#"{"_type": "https://evault.dev/deploy/v1", "environment": "staging",
        "environment": "production", "artifact": "sha256:63ede188c102dc7e741492f51b5271003c0e1323a6e3f1e2f5c71545315bf715",
        "time": "2025-03-14T09:41:07Z", "actor": "deploy-bot"}"#;
    let e = parse_native(text.as_bytes()).unwrap_err();
    assert_eq!(e.reason, "duplicate field \"environment\"");
}

#[test]
fn messages_never_repeat_much_of_the_input() {
    let long = "x".repeat(100_000);
    for doc in [
        with(approval(), "/decision", json!(long)),
        with(approval(), &format!("/{long}"), json!(1)),
        with(approval(), "/git_sha", json!(long)),
        with(approval(), "/time", json!(long)),
        with(approval(), "/_type", json!(long)),
        with(approval(), "/blueprint", json!(long)),
    ] {
        let e = native_err(&doc);
        assert!(
            e.to_string().len() < 400,
            "{} chars: {e:.400}",
            e.to_string().len()
        );
    }
}

#[test]
fn oversized_documents_are_refused_before_parsing() {
    let big = vec![b' '; MAX_DOCUMENT_BYTES + 1];
    let e = parse_native(&big).unwrap_err();
    assert!(e.reason.contains("larger than"), "{e}");
}

#[test]
fn manifest_paths_must_stay_inside_the_bundle() {
    let cases = [
        ("../x", "'..'"),
        ("devsecops/../../etc/passwd", "'..'"),
        ("/etc/passwd", "relative"),
        ("C:\\evidence\\sbom.json", "backslash"),
        ("a//b", "empty path segment"),
        ("./sbom.json", "'.'"),
        ("sbom.json\u{0}", "control character"),
        ("", "empty"),
    ];
    for (path, why) in cases {
        let m = with(manifest(), "/files/1/path", json!(path));
        let e = manifest_err(&m);
        assert_eq!(e.path, "files[1].path", "{path:?}");
        assert!(e.reason.contains(why), "{path:?}: {e}");
    }
}

#[test]
fn a_path_listed_twice_is_refused() {
    let m = with(manifest(), "/files/3/path", json!("sbom.json"));
    let e = manifest_err(&m);
    assert_eq!(e.path, "files[3].path");
    assert_eq!(
        e.reason,
        "duplicate path 'sbom.json', already listed at files[0]"
    );
}

#[test]
fn an_unknown_kind_lists_the_valid_ones() {
    let m = with(manifest(), "/files/0/kind", json!("sboms"));
    let e = manifest_err(&m);
    assert_eq!(e.path, "files[0].kind");
    assert!(
        e.reason
            .starts_with("unknown variant \"sboms\", expected one of \"sbom\""),
        "{e}"
    );
    for k in Kind::ALL {
        assert!(
            e.reason.contains(&format!("\"{k}\"")),
            "{k} missing from {e}"
        );
    }
    let m = with(manifest(), "/files/0/format", json!("cyclonedx"));
    let e = manifest_err(&m);
    assert_eq!(e.path, "files[0].format");
    assert!(e.reason.contains("\"cyclonedx-json\""), "{e}");
}

#[test]
fn a_kind_that_does_not_fit_the_format_is_refused() {
    let m = with(manifest(), "/files/1/kind", json!("sbom"));
    let e = manifest_err(&m);
    assert_eq!(e.path, "files[1].kind");
    assert!(e.reason.contains("does not fit format \"sarif\""), "{e}");
}

#[test]
fn other_manifest_values_are_validated() {
    let cases = [
        (
            with(manifest(), "/subjects", json!(["sha256:00"])),
            "subjects[0]",
        ),
        (
            with(
                manifest(),
                "/files/3/subjects",
                json!([IMAGE_142, "md5:00"]),
            ),
            "files[3].subjects[1]",
        ),
        (with(manifest(), "/git_sha", json!("main")), "git_sha"),
        (
            with(
                manifest(),
                "/repo",
                json!("https://github.com/acme/checkout api"),
            ),
            "repo",
        ),
        (with(manifest(), "/environment", json!("")), "environment"),
        (with(manifest(), "/run_id", json!("")), "run_id"),
        (with(manifest(), "/files/0/sha", json!("x")), "files[0].sha"),
        (
            with(manifest(), "/files/0", json!(["sbom.json", "sbom"])),
            "files[0]",
        ),
        (
            with(manifest(), "/files", json!({"path": "sbom.json"})),
            "files",
        ),
    ];
    for (m, path) in cases {
        let e = manifest_err(&m);
        assert_eq!(e.path, path, "{e}");
    }
}

#[test]
fn a_manifest_lists_at_most_100000_files() {
    let files: Vec<Value> = (0..=MAX_MANIFEST_FILES)
        .map(|i| json!({ "path": format!("f{i}") }))
        .collect();
    let e = manifest_err(&with(manifest(), "/files", json!(files)));
    assert_eq!(e.path, "files");
    assert!(e.reason.contains("at most 100000"), "{e}");
    let files: Vec<Value> = (0..MAX_MANIFEST_FILES)
        .map(|i| json!({ "path": format!("f{i}") }))
        .collect();
    let m = parse_manifest(&bytes(&with(manifest(), "/files", json!(files)))).unwrap();
    assert_eq!(m.files.len(), MAX_MANIFEST_FILES);
}

// ---------------------------------------------------------------------------------------------
// The JSON Schemas

fn schema_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("json")
}

fn schema_for(type_uri: &str) -> Value {
    let name = match type_uri {
        "https://evault.dev/approval/v1" => "approval.schema.json",
        "https://evault.dev/deploy/v1" => "deploy.schema.json",
        "https://evault.dev/rollback/v1" => "rollback.schema.json",
        "https://evault.dev/policy-result/v1" => "policy-result.schema.json",
        "https://evault.dev/bundle/v1" => "bundle-manifest.schema.json",
        other => panic!("no schema for {other}"),
    };
    json_schemas()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| s)
        .unwrap()
}

fn schema_errors(doc: &Value) -> Vec<String> {
    let schema = schema_for(doc["_type"].as_str().unwrap());
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    validator
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// Parses with the parser that matches `_type`.
fn parse_any(doc: &Value) -> Result<(), DocumentError> {
    if doc["_type"] == BUNDLE_MANIFEST_TYPE {
        parse_manifest(&bytes(doc)).map(drop)
    } else {
        parse_native(&bytes(doc)).map(drop)
    }
}

#[test]
fn committed_json_schemas_are_up_to_date() {
    let update = std::env::var_os("EVAULT_UPDATE_SCHEMAS").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for (name, schema) in json_schemas() {
        let text = serde_json::to_string_pretty(&schema).unwrap() + "\n";
        let path = schema_dir().join(name);
        if update {
            std::fs::write(&path, &text).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "committed JSON Schemas differ from the document types: {stale:?}\n\
         regenerate them with: EVAULT_UPDATE_SCHEMAS=1 cargo test -p evault-schema --test documents"
    );
}

#[test]
fn schemas_are_valid_draft_2020_12_with_ids_and_titles() {
    let names: Vec<&str> = json_schemas().iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            "approval.schema.json",
            "deploy.schema.json",
            "rollback.schema.json",
            "policy-result.schema.json",
            "bundle-manifest.schema.json"
        ]
    );
    for (name, schema) in json_schemas() {
        assert_eq!(
            schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{name}"
        );
        assert!(
            schema["$id"]
                .as_str()
                .unwrap()
                .starts_with("https://evault.dev/schemas/"),
            "{name}"
        );
        assert!(
            schema["title"].as_str().unwrap().starts_with("evault "),
            "{name}"
        );
        assert_eq!(schema["additionalProperties"], false, "{name}");
        jsonschema::meta::validate(&schema).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    assert_eq!(
        schema_for(APPROVAL_TYPE)["properties"]["_type"]["const"],
        APPROVAL_TYPE
    );
    assert_eq!(
        schema_for(POLICY_RESULT_TYPE)["properties"]["_type"]["const"],
        POLICY_RESULT_TYPE
    );
}

#[test]
fn every_property_has_a_description() {
    fn walk(v: &Value, at: &str) {
        if let Some(props) = v.get("properties").and_then(Value::as_object) {
            for (k, p) in props {
                assert!(
                    p.get("description").is_some(),
                    "{at}.{k} has no description"
                );
            }
        }
        if let Some(defs) = v.get("$defs").and_then(Value::as_object) {
            for (k, d) in defs {
                walk(d, k);
            }
        }
    }
    for (name, schema) in json_schemas() {
        walk(&schema, name);
    }
}

#[test]
fn examples_satisfy_both_the_parser_and_the_schema() {
    let mut examples = vec![
        approval(),
        deploy(),
        rollback(),
        manifest(),
        policy_result(),
        exception(),
    ];
    examples.extend(minimal_examples());
    for doc in examples {
        parse_any(&doc).unwrap_or_else(|e| panic!("{e}\n{doc:#}"));
        let errors = schema_errors(&doc);
        assert!(errors.is_empty(), "{errors:#?}\n{doc:#}");
    }
}

#[test]
fn the_schema_refuses_what_the_parser_refuses() {
    // Everything JSON Schema can express; the rest (expiry after time, duplicate paths,
    // kind/format fit) only the parser checks.
    let refused = [
        with(approval(), "/colour", json!("red")),
        with(approval(), "/decision", json!("maybe")),
        with(approval(), "/git_sha", json!("3cdd120")),
        with(approval(), "/reason", json!("")),
        with(approval(), "/reason", json!("   ")),
        with(approval(), "/time", json!("2025-03-14")),
        with(approval(), "/environment", json!("prod env")),
        with(approval(), "/blueprint/version", json!("1.4 2")),
        with(approval(), "/ticket", json!("CHG 4821")),
        with(approval(), "/role", json!("ciso\nadmin")),
        without(approval(), "approver"),
        with(deploy(), "/artifact", json!("sha256:abc123")),
        with(deploy(), "/_type", json!("https://evault.dev/approval/v1")),
        with(deploy(), "/actor", json!("  ")),
        with(deploy(), "/status", json!("done")),
        with(rollback(), "/to_version", json!("")),
        with(rollback(), "/blueprint", json!("checkout api")),
        with(manifest(), "/files/0/path", json!("../x")),
        with(manifest(), "/files/0/path", json!("./x")),
        with(manifest(), "/files/0/path", json!("/x")),
        with(manifest(), "/files/0/path", json!("a//b")),
        with(manifest(), "/files/0/path", json!("a\\b")),
        with(manifest(), "/files/0/path", json!("a/")),
        with(manifest(), "/files/0/kind", json!("sboms")),
        with(manifest(), "/subjects", json!(["sha256:00"])),
        with(exception(), "/vulnerabilities", json!(["CVE 1"])),
        with(exception(), "/decision", json!("reject")),
        without(exception(), "expires_at"),
        with(policy_result(), "/requirements", json!([])),
        with(policy_result(), "/requirements/0/records", json!(["abc"])),
        with(policy_result(), "/requirements/0/status", json!("ok")),
        with(policy_result(), "/requirements/0/name", json!("a\nb")),
        with(policy_result(), "/policy/source", json!("git")),
        with(policy_result(), "/policy/engine", json!("cue")),
        with(policy_result(), "/policy/digest", json!("sha256:00")),
        with(policy_result(), "/decision", json!("block")),
        with(policy_result(), "/colour", json!("red")),
        without(policy_result(), "git_sha"),
        without(policy_result(), "blueprint"),
    ];
    for doc in refused {
        assert!(parse_any(&doc).is_err(), "parser accepted {doc:#}");
        assert!(!schema_errors(&doc).is_empty(), "schema accepted {doc:#}");
    }
    for path in ["..x/y..", ".hidden", "a/b.c/d"] {
        let doc = with(manifest(), "/files/0/path", json!(path));
        parse_any(&doc).unwrap();
        assert!(schema_errors(&doc).is_empty(), "{path}");
    }
    // An empty list of vulnerabilities makes no exception: no expiry needed, rejecting allowed.
    let doc = with(
        without(exception(), "expires_at"),
        "/vulnerabilities",
        json!([]),
    );
    let doc = with(doc, "/decision", json!("reject"));
    parse_any(&doc).unwrap();
    assert!(schema_errors(&doc).is_empty(), "{doc:#}");
}

#[test]
fn readme_examples_parse_and_satisfy_their_schemas() {
    let readme = std::fs::read_to_string(schema_dir().join("README.md")).unwrap();
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in readme.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```json") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    assert_eq!(blocks.len(), 6, "one example per schema, and an exception");
    let mut types = Vec::new();
    for block in blocks {
        let doc: Value = serde_json::from_str(&block).unwrap_or_else(|e| panic!("{e}\n{block}"));
        parse_any(&doc).unwrap_or_else(|e| panic!("{e}\n{block}"));
        let errors = schema_errors(&doc);
        assert!(errors.is_empty(), "{errors:#?}\n{block}");
        types.push(doc["_type"].as_str().unwrap().to_string());
    }
    assert_eq!(
        types,
        [
            "https://evault.dev/approval/v1",
            "https://evault.dev/approval/v1",
            "https://evault.dev/deploy/v1",
            "https://evault.dev/rollback/v1",
            "https://evault.dev/policy-result/v1",
            "https://evault.dev/bundle/v1"
        ]
    );
}
