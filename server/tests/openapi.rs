//! The OpenAPI document describes exactly what is served, with schemas that match what is
//! really sent.

mod support;

use std::collections::BTreeSet;
use std::io::Cursor;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use evault_core::Vault;
use evault_core::auth::Role;
use evault_core::index::Status;
use evault_core::ingest::{LinkArgs, PushRequest, PushSource};
use evault_core::vault::{BlobFault, FsckProblem};
use evault_schema::documents::{Decision, Outcome};
use evault_schema::{Format, Kind};
use evault_server::handlers::ops::{Health, VaultStatus, WhoAmI};
use evault_server::handlers::records::RecordPage;
use evault_server::handlers::retention::TombstoneList;
use evault_server::problem::{ApiError, Problem};
use serde_json::Value;
use support::{GIT_SHA, TestVault, sbom};

/// The routes docs/api.md promises, as (method, path template).
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("POST", "/v1/push"),
    ("GET", "/v1/records"),
    ("GET", "/v1/records/{id}"),
    ("DELETE", "/v1/records/{id}"),
    ("GET", "/v1/tombstones"),
    ("GET", "/v1/blobs/{digest}"),
    ("HEAD", "/v1/blobs/{digest}"),
    ("GET", "/v1/status"),
    ("GET", "/v1/whoami"),
    ("POST", "/v1/tokens"),
    ("GET", "/v1/tokens"),
    ("DELETE", "/v1/tokens/{name}"),
    ("POST", "/v1/fsck"),
    ("GET", "/v1/log/key"),
    ("GET", "/v1/log/checkpoint"),
    ("GET", "/v1/log/proof/{id}"),
    ("GET", "/v1/log/consistency"),
    ("GET", "/v1/log/entries"),
    ("POST", "/v1/log/verify"),
    ("GET", "/v1/log/access"),
    ("GET", "/v1/export"),
    ("GET", "/v1/trace/deploy/{id}"),
    ("GET", "/v1/trace/commit/{sha}"),
    ("GET", "/v1/search/component"),
    ("GET", "/v1/search/vuln/{id}"),
    ("GET", "/v1/audit/changelog"),
    ("POST", "/v1/deploys"),
    ("POST", "/v1/rollbacks"),
    ("GET", "/v1/retention/policy"),
    ("PUT", "/v1/retention/policy"),
    ("GET", "/v1/holds"),
    ("POST", "/v1/holds"),
    ("POST", "/v1/holds/{name}/release"),
    ("POST", "/v1/retention/sweep"),
    ("POST", "/v1/gates/check"),
    ("POST", "/v1/gates/input"),
    ("GET", "/v1/gates/policy"),
    ("PUT", "/v1/gates/policy"),
    ("POST", "/v1/approvals"),
    ("POST", "/v1/exceptions"),
    ("GET", "/v1/audit/completeness"),
];

const METHODS: [&str; 8] = [
    "get", "head", "post", "put", "delete", "patch", "options", "trace",
];

fn document() -> Value {
    serde_json::to_value(evault_server::openapi_document()).unwrap()
}

fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in METHODS {
            if item.get(m).is_some() {
                out.insert((m.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    out
}

#[tokio::test]
async fn the_document_lists_exactly_the_served_routes() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let listed = operations(&doc);
    let promised: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(listed, promised);

    // Everything listed is served: no 404 no-such-route and no 405.
    let v = TestVault::new();
    for (method, path) in &listed {
        let uri = path
            .replace("{id}", "0123456789ab")
            .replace("{digest}", &format!("sha256:{}", "e".repeat(64)))
            .replace("{name}", "nobody");
        let a = v
            .send(
                Request::builder()
                    .method(Method::from_bytes(method.as_bytes()).unwrap())
                    .uri(&uri)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_ne!(a.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
        if a.status == StatusCode::NOT_FOUND {
            assert_ne!(
                a.json()["type"],
                "https://evault.dev/problems/no-such-route",
                "{method} {uri}"
            );
        }
        let expected = if path.starts_with("/v1/") {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::OK
        };
        assert_eq!(a.status, expected, "{method} {uri}: {}", a.text());
    }

    // The served document is the generated one.
    let served = v.get("/openapi.json", None).await;
    assert_eq!(served.header("content-type"), Some("application/json"));
    assert_eq!(served.json(), doc);
}

#[test]
fn every_v1_operation_needs_the_bearer_token_and_documents_its_problems() {
    let doc = document();
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"],
        serde_json::json!({"type": "http", "scheme": "bearer",
            "description": "a token secret from `evault token create`"})
    );
    for (method, path) in operations(&doc) {
        let op = &doc["paths"][&path][method.to_ascii_lowercase()];
        if path.starts_with("/v1/") {
            assert_eq!(
                op["security"],
                serde_json::json!([{"bearer": []}]),
                "{method} {path}"
            );
            for status in ["401", "403", "500"] {
                assert_eq!(
                    op["responses"][status]["content"]["application/problem+json"]["schema"]["$ref"],
                    "#/components/schemas/Problem",
                    "{method} {path} {status}"
                );
            }
        } else {
            assert!(op.get("security").is_none(), "{method} {path}");
        }
    }
}

/// The property names of a schema, following `$ref` and `allOf`.
fn properties(doc: &Value, schema: &Value) -> BTreeSet<String> {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/components/schemas/");
        return properties(doc, &doc["components"]["schemas"][name]);
    }
    let mut out: BTreeSet<String> = schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    for part in schema
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        out.extend(properties(doc, part));
    }
    out
}

fn keys(value: &impl serde::Serialize) -> BTreeSet<String> {
    serde_json::to_value(value)
        .unwrap()
        .as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect()
}

fn assert_schema_matches(doc: &Value, name: &str, value: &impl serde::Serialize) {
    let schema = &doc["components"]["schemas"][name];
    assert!(!schema.is_null(), "no schema {name}");
    assert_eq!(properties(doc, schema), keys(value), "schema {name}");
}

#[test]
fn schemas_have_the_keys_of_real_values() {
    let doc = document();
    let dir = tempfile::tempdir().unwrap();
    let (vault, _) = Vault::init(dir.path(), "test").unwrap();
    let token = vault
        .create_token("admin", Role::Admin, &["a-*".to_string()], None, "test")
        .unwrap();
    let outcome = vault
        .push(
            PushRequest {
                sources: vec![PushSource::Reader {
                    name: "sbom.json".into(),
                    reader: Box::new(Cursor::new(sbom("a"))),
                }],
                links: LinkArgs {
                    blueprint: Some("a-api".into()),
                    version: Some("1".into()),
                    git_sha: Some(GIT_SHA.into()),
                    ..LinkArgs::default()
                },
                kind: None,
                producer: "admin".into(),
                expand_archives: true,
                allowed_blueprints: Vec::new(),
            },
            &mut |_| {},
        )
        .unwrap();
    let pushed = &outcome.records[0];
    let mut report = vault.fsck(&mut |_, _| {}).unwrap();
    report.problems.push(FsckProblem {
        digest: pushed.record.digest.clone(),
        problem: BlobFault::Missing,
        detail: "gone".into(),
    });

    assert_schema_matches(&doc, "Record", &pushed.record);
    assert_schema_matches(&doc, "Blueprint", &pushed.record.blueprint);
    assert_schema_matches(&doc, "PushedRecord", pushed);
    let view = evault_core::RecordView {
        record: pushed.record.clone(),
        summary: serde_json::Value::Null,
        holds: vec!["case-42".into()],
    };
    assert_schema_matches(&doc, "RecordView", &view);
    assert_schema_matches(&doc, "Token", &token.info);
    assert_schema_matches(&doc, "NewToken", &token);
    assert_schema_matches(&doc, "FsckReport", &report);
    assert_schema_matches(&doc, "FsckProblem", &report.problems[0]);
    assert_schema_matches(
        &doc,
        "RecordPage",
        &RecordPage {
            records: vec![pushed.record.clone()],
            next_cursor: None,
        },
    );
    assert_schema_matches(
        &doc,
        "TombstoneList",
        &TombstoneList {
            tombstones: Vec::new(),
        },
    );
    assert_schema_matches(
        &doc,
        "VaultStatus",
        &VaultStatus {
            records: 1,
            blobs: 1,
            bytes: 1,
            stored_bytes: 1,
        },
    );
    assert_schema_matches(
        &doc,
        "WhoAmI",
        &WhoAmI {
            name: "x".into(),
            role: Role::Admin,
            scopes: vec![],
        },
    );
    assert_schema_matches(&doc, "Health", &Health { status: "ok" });
    assert_schema_matches(&doc, "LogKey", &vault.log_key().unwrap());
    assert_schema_matches(&doc, "Checkpoint", &vault.log_checkpoint().unwrap());
    assert_schema_matches(
        &doc,
        "InclusionProof",
        &vault.log_prove(&pushed.record.id, &[]).unwrap(),
    );
    assert_schema_matches(
        &doc,
        "ConsistencyProof",
        &vault.log_consistency(1, None).unwrap(),
    );
    let entries = vault.log_entries(0, 10).unwrap();
    assert_schema_matches(&doc, "LogEntry", &entries[0]);
    assert_schema_matches(
        &doc,
        "LogEntries",
        &evault_server::handlers::log::LogEntries {
            entries,
            next: None,
        },
    );
    let old = vault.log_checkpoint().unwrap().note;
    let log_report = vault
        .verify_log(
            &evault_core::vault::LogVerifyOptions {
                old_checkpoint: Some(old),
                ..Default::default()
            },
            &mut |_, _, _| {},
        )
        .unwrap();
    assert_schema_matches(&doc, "LogReport", &log_report);
    assert_schema_matches(
        &doc,
        "OldCheckpoint",
        log_report.old_checkpoint.as_ref().unwrap(),
    );
    let problem: Problem = ApiError::invalid("x").problem("/v1/push", "abc");
    assert_schema_matches(&doc, "Problem", &problem);
    gate_schemas_have_the_keys_of_real_values(&doc, &vault);
}

/// The gate's requests and answers, from a real check, approval and completeness report, with
/// the optional fields filled in.
fn gate_schemas_have_the_keys_of_real_values(doc: &Value, vault: &Vault) {
    use evault_core::gate::input::{
        ApprovalFact, Item, ProvenanceFact, SignatureFact, Vulnerability,
    };
    use evault_core::gate::{ApprovalRequest, CheckRequest, ExceptionRequest, IncompleteDeploy};

    let request = CheckRequest {
        blueprint: "a-api".into(),
        version: "1".into(),
        environment: "staging".into(),
        artifact: Some(format!("sha256:{}", "e".repeat(64))),
        git_sha: Some(GIT_SHA.into()),
        policy: Some("[[gate]]\nenvironment = \"staging\"\nrequire = [\"sbom\"]\n".into()),
    };
    assert_schema_matches(doc, "CheckRequest", &request);
    let mut decision = vault.gate_check(request.clone(), "ci", &[]).unwrap();
    assert!(decision.record.is_some(), "{decision:?}");
    decision.warnings.push("a warning".into());
    assert!(!decision.policy_entries.is_empty(), "{decision:?}");
    assert_schema_matches(doc, "GateDecision", &decision);
    assert_schema_matches(doc, "PolicyRef", &decision.policy);
    let requirement = decision
        .requirements
        .iter()
        .find(|r| !r.records.is_empty())
        .expect("a requirement with records");
    assert_schema_matches(doc, "RequirementResult", requirement);
    assert_schema_matches(doc, "GatePolicyView", &vault.gate_policy().unwrap());

    let mut input = vault
        .gate_input(
            &CheckRequest {
                policy: None,
                ..request
            },
            &[],
        )
        .unwrap();
    let item: &Item = &input.evidence["sbom"][0];
    assert_schema_matches(doc, "GateEvidence", item);
    input.vulnerabilities.push(Vulnerability {
        id: "CVE-2026-1".into(),
        aliases: vec![],
        severity: "high".into(),
        package: None,
        package_version: None,
        purl: None,
        records: vec![],
        vex_status: None,
        vex_record: None,
        suppressed: false,
        suppressed_by_verified_vex: false,
        exceptions: vec![],
    });
    input.provenance.push(ProvenanceFact {
        id: "p".into(),
        verified: false,
        verification: "unsigned".into(),
        verified_by: None,
        builder_id: None,
        source_repo: None,
        source_commit: None,
        subjects: vec![],
        about_artifact: true,
    });
    input.signatures.push(SignatureFact {
        id: "s".into(),
        verified: false,
        verification: "unsigned".into(),
        verified_by: None,
        signer: None,
        subjects: vec![],
        about_artifact: true,
    });
    let approval = ApprovalFact {
        id: "a".into(),
        approver: "alice".into(),
        role: Some("approver".into()),
        decision: "approve".into(),
        reason: "ok".into(),
        time: "2026-01-01T00:00:00Z".into(),
        expires_at: None,
        current: true,
        producer: "alice".into(),
        by_approver: true,
        approver_pushed: false,
        vulnerabilities: vec![],
    };
    input.approvals.push(approval.clone());
    assert_schema_matches(doc, "GateInput", &input);
    assert_schema_matches(doc, "GateVulnerability", &input.vulnerabilities[0]);
    assert_schema_matches(doc, "GateProvenance", &input.provenance[0]);
    assert_schema_matches(doc, "GateSignature", &input.signatures[0]);
    assert_schema_matches(doc, "GateApproval", &approval);

    let approval = ApprovalRequest {
        blueprint: "a-api".into(),
        version: "1".into(),
        environment: "production".into(),
        decision: Decision::Approve,
        reason: "reviewed".into(),
        expires: Some("7d".into()),
        ticket: Some("CHG-1".into()),
        git_sha: Some(GIT_SHA.into()),
    };
    assert_schema_matches(doc, "ApprovalRequest", &approval);
    let recorded = vault
        .record_approval(approval, "bob", "approver", &[])
        .unwrap();
    assert_schema_matches(doc, "Recorded", &recorded);
    let exception = ExceptionRequest {
        blueprint: "a-api".into(),
        version: "1".into(),
        environment: "production".into(),
        vulnerabilities: vec!["CVE-2026-1".into()],
        reason: "not reachable".into(),
        expires: "7d".into(),
        ticket: Some("CHG-2".into()),
        git_sha: Some(GIT_SHA.into()),
    };
    assert_schema_matches(doc, "ExceptionRequest", &exception);

    let mut report = vault
        .audit_completeness("staging", Some(chrono::Utc::now()), &[])
        .unwrap();
    report.incomplete.push(IncompleteDeploy {
        deploy: "d".into(),
        blueprint: "a-api".into(),
        version: "1".into(),
        environment: "staging".into(),
        time: "2026-01-01T00:00:00Z".into(),
        actor: "ci".into(),
        artifact: Some(format!("sha256:{}", "e".repeat(64))),
        missing: vec![],
        policy: report.policy.clone(),
        uncovered: true,
        gate: "passed-after-deploy".into(),
        gate_record: Some("g".into()),
        last_decision: Some("l".into()),
    });
    assert_schema_matches(doc, "CompletenessReport", &report);
    assert_schema_matches(doc, "IncompleteDeploy", &report.incomplete[0]);
}

fn enum_values(doc: &Value, name: &str) -> Vec<String> {
    doc["components"]["schemas"][name]["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("{name} has no enum"))
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn enumerations_are_the_codes_own() {
    let doc = document();
    let kinds: Vec<String> = Kind::ALL.iter().map(|k| k.as_str().to_string()).collect();
    assert_eq!(enum_values(&doc, "Kind"), kinds);
    let formats: Vec<String> = Format::ALL.iter().map(|f| f.as_str().to_string()).collect();
    assert_eq!(enum_values(&doc, "Format"), formats);
    let roles: Vec<String> = Role::ALL.iter().map(|r| r.as_str().to_string()).collect();
    assert_eq!(enum_values(&doc, "Role"), roles);
    let faults = enum_values(&doc, "BlobFault");
    for f in [
        BlobFault::Corrupt,
        BlobFault::Missing,
        BlobFault::SizeMismatch,
    ] {
        let name = serde_json::to_value(f).unwrap();
        assert!(
            faults.iter().any(|v| name == *v),
            "{name} missing from {faults:?}"
        );
    }
    assert_eq!(faults.len(), 3);
    let outcomes: Vec<Value> = [Outcome::Pass, Outcome::Warn, Outcome::Fail]
        .iter()
        .map(|o| serde_json::to_value(o).unwrap())
        .collect();
    assert_eq!(
        outcomes,
        enum_values(&doc, "Outcome")
            .into_iter()
            .map(Value::from)
            .collect::<Vec<_>>()
    );
    let decisions: Vec<Value> = [Decision::Approve, Decision::Reject]
        .iter()
        .map(|d| serde_json::to_value(d).unwrap())
        .collect();
    assert_eq!(
        decisions,
        enum_values(&doc, "Decision")
            .into_iter()
            .map(Value::from)
            .collect::<Vec<_>>()
    );
    let statuses: Vec<Value> = [Status::Created, Status::Present]
        .iter()
        .map(|s| serde_json::to_value(s).unwrap())
        .collect();
    assert_eq!(
        statuses,
        enum_values(&doc, "PushStatus")
            .into_iter()
            .map(Value::from)
            .collect::<Vec<_>>()
    );
}

/// Every `$ref` in `value`, as JSON Pointers.
fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref"
                    && let Some(r) = v.as_str()
                {
                    out.push(r.to_string());
                }
                refs(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

/// The structural rules of OpenAPI 3.1 that a generator can get wrong: version, info, path
/// templates and their parameters, responses, unique operation ids, resolvable references and
/// declared security schemes. Every broken rule is reported at once.
#[test]
fn the_document_is_valid_openapi_3_1() {
    let doc = document();
    let mut problems = Vec::new();
    if !doc["openapi"]
        .as_str()
        .is_some_and(|v| v.starts_with("3.1."))
    {
        problems.push(format!("openapi is {}, not 3.1.x", doc["openapi"]));
    }
    for field in ["title", "version"] {
        if !doc["info"][field].is_string() {
            problems.push(format!("info.{field} is missing"));
        }
    }
    let schemes = doc["components"]["securitySchemes"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut operation_ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with('/') {
            problems.push(format!("path {path} does not start with '/'"));
        }
        let templated: BTreeSet<String> = path
            .split('{')
            .skip(1)
            .filter_map(|rest| rest.split('}').next())
            .map(str::to_string)
            .collect();
        for m in METHODS {
            let Some(op) = item.get(m) else { continue };
            let at = format!("{} {path}", m.to_ascii_uppercase());
            let params: Vec<&Value> = op["parameters"]
                .as_array()
                .into_iter()
                .chain(item["parameters"].as_array())
                .flatten()
                .collect();
            for p in &params {
                let location = p["in"].as_str().unwrap_or("");
                if !["query", "header", "path", "cookie"].contains(&location) {
                    problems.push(format!(
                        "{at}: parameter {} has in = {location:?}",
                        p["name"]
                    ));
                }
                if location == "path" && p["required"] != Value::Bool(true) {
                    problems.push(format!(
                        "{at}: path parameter {} is not required",
                        p["name"]
                    ));
                }
            }
            let declared: BTreeSet<String> = params
                .iter()
                .filter(|p| p["in"] == "path")
                .filter_map(|p| p["name"].as_str().map(str::to_string))
                .collect();
            if declared != templated {
                problems.push(format!(
                    "{at}: path parameters {declared:?} ≠ template {templated:?}"
                ));
            }
            match op["responses"].as_object() {
                Some(responses) if !responses.is_empty() => {
                    for (code, response) in responses {
                        let valid = code == "default"
                            || code.parse::<u16>().is_ok_and(|c| (100..600).contains(&c));
                        if !valid {
                            problems.push(format!("{at}: response key {code}"));
                        }
                        if !response["description"].is_string() && response.get("$ref").is_none() {
                            problems.push(format!("{at}: response {code} has no description"));
                        }
                    }
                }
                _ => problems.push(format!("{at}: no responses")),
            }
            if let Some(id) = op["operationId"].as_str()
                && !operation_ids.insert(id.to_string())
            {
                problems.push(format!("{at}: operationId {id} is not unique"));
            }
            for requirement in op["security"].as_array().into_iter().flatten() {
                for name in requirement.as_object().into_iter().flat_map(|o| o.keys()) {
                    if !schemes.contains_key(name) {
                        problems.push(format!("{at}: security scheme {name} is not declared"));
                    }
                }
            }
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    for r in all {
        let resolved = r.strip_prefix('#').map(|pointer| doc.pointer(pointer));
        if !matches!(resolved, Some(Some(_))) {
            problems.push(format!("$ref {r} does not resolve"));
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
