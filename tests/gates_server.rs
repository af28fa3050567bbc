//! Release gates over HTTP, through the real server with real tokens: a pipeline checks the
//! gate, an approver approves, the gate passes and its decisions are records; separation of
//! duties, roles and scopes hold over the wire; exceptions turn a failure into a warning; the
//! vault's policy is set by admins only and cited by later checks; and the completeness audit
//! finds a deploy that went out without a passing gate.

#[path = "common/mod.rs"]
mod common;
#[path = "common/server.rs"]
mod server_common;

use common::{BLUEPRINT, GIT_SHA, VERSION};
use serde_json::{Value, json};
use server_common::{Reply, Req, Server, assert_problem, remote, vault_state, with_query};

/// A CycloneDX SBOM listing lodash.
fn sbom() -> Vec<u8> {
    json!({"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
           "components": [{"type": "library", "name": "lodash", "version": "4.17.20",
                           "purl": "pkg:npm/lodash@4.17.20"}]})
    .to_string()
    .into_bytes()
}

/// A grype report of lodash with `high` high findings, CVE-2026-2000 onwards.
fn grype(high: usize) -> Vec<u8> {
    let matches: Vec<Value> = (0..high)
        .map(|i| {
            json!({"vulnerability": {"id": format!("CVE-2026-{}", 2000 + i), "severity": "High"},
                   "artifact": {"name": "lodash", "version": "4.17.20", "type": "npm",
                                "purl": "pkg:npm/lodash@4.17.20"}})
        })
        .collect();
    json!({"matches": matches, "source": {"type": "image"},
           "descriptor": {"name": "grype", "version": "0.74.0"}})
    .to_string()
    .into_bytes()
}

const JUNIT: &str = "<testsuites><testsuite name=\"api\" tests=\"1\"><testcase name=\"ok\"/>\
                     </testsuite></testsuites>";
const ROLLBACK_PLAN: &str = "# Rollback plan\n\n## Trigger Conditions\n- error rate > 5%\n";

/// Pushes one file of `BLUEPRINT` `VERSION` at `GIT_SHA` with `token`.
#[track_caller]
fn push(server: &Server, token: &str, name: &str, body: &[u8], kind: Option<&str>) {
    let mut params = vec![
        ("blueprint", BLUEPRINT),
        ("version", VERSION),
        ("git_sha", GIT_SHA),
        ("name", name),
    ];
    if let Some(kind) = kind {
        params.push(("kind", kind));
    }
    let reply = server.push(token, &params, body);
    assert_eq!(reply.status, 201, "{reply:?}");
}

/// Everything the built-in policy asks for, pushed by `token`, with `high` high findings.
fn full_evidence(server: &Server, token: &str, high: usize) {
    push(server, token, "sbom.json", &sbom(), None);
    push(server, token, "scan.json", &grype(high), None);
    push(server, token, "junit.xml", JUNIT.as_bytes(), None);
    push(
        server,
        token,
        "rollback_plan.md",
        ROLLBACK_PLAN.as_bytes(),
        Some("rollback-plan"),
    );
}

/// `method path` with a JSON body.
#[track_caller]
fn send_json(server: &Server, method: &str, path: &str, token: &str, body: &Value) -> Reply {
    server.send(
        Req::new(method, path)
            .token(token)
            .header("content-type", "application/json")
            .body(body.to_string()),
    )
}

/// The gate check of `BLUEPRINT` `VERSION` for `env` by `token`.
#[track_caller]
fn check(server: &Server, token: &str, env: &str) -> Reply {
    send_json(
        server,
        "POST",
        "/v1/gates/check",
        token,
        &json!({"blueprint": BLUEPRINT, "version": VERSION, "env": env}),
    )
}

/// A check that was answered: its decision.
#[track_caller]
fn decided(reply: Reply) -> Value {
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.json()
}

/// The status and message of one requirement of a decision.
#[track_caller]
fn requirement(decision: &Value, name: &str) -> (String, String) {
    let r = decision["requirements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no requirement {name}: {decision:#}"));
    (
        r["status"].as_str().unwrap().to_string(),
        r["message"].as_str().unwrap().to_string(),
    )
}

fn approval(decision: &str) -> Value {
    json!({"blueprint": BLUEPRINT, "version": VERSION, "env": "production",
           "decision": decision, "reason": "CHG-1234 reviewed; canary green", "expires": "7d",
           "ticket": "CHG-1234"})
}

/// The pipeline's check fails for want of an approval; the approver's approval is recorded as
/// theirs, whatever the body would like; the next check passes; and every decision is a
/// `policy-result` record an auditor can read.
#[test]
fn a_pipeline_checks_an_approver_approves_and_the_gate_passes() {
    let server = Server::start();
    let ci = server.token("ci-checkout", "pusher", &[], None);
    let alice = server.token("alice", "approver", &[], None);
    let auditor = server.token("auditor", "auditor", &[], None);
    full_evidence(&server, &ci, 0);

    let first = decided(check(&server, &ci, "production"));
    assert_eq!(first["decision"], "fail", "{first:#}");
    assert_eq!(first["actor"], "ci-checkout");
    assert_eq!(first["git_sha"], GIT_SHA);
    assert_eq!(first["policy"]["source"], "built-in");
    assert_eq!(requirement(&first, "approvals").0, "fail");
    assert_eq!(requirement(&first, "evidence:sbom").0, "pass");
    let failed = first["record"].as_str().expect("the decision is recorded");

    // The body cannot say who approves, nor in which role.
    for field in ["approver", "role"] {
        let mut body = approval("approve");
        body[field] = json!("mallory");
        let reply = send_json(&server, "POST", "/v1/approvals", &alice, &body);
        assert_problem(&reply, 400, "invalid-input", &[field]);
    }
    let reply = send_json(
        &server,
        "POST",
        "/v1/approvals",
        &alice,
        &approval("approve"),
    );
    assert_eq!(reply.status, 201, "{reply:?}");
    let recorded = reply.json();
    assert_eq!(recorded["kind"], "approval", "{recorded:#}");
    assert_eq!(recorded["producer"], "alice");
    assert_eq!(recorded["status"], "created");
    assert_eq!(recorded["git_sha"], GIT_SHA);
    let id = recorded["id"].as_str().unwrap();
    let view = server
        .get(&format!("/v1/records/{id}"), Some(&auditor))
        .expect(200)
        .json();
    assert_eq!(view["summary"]["approver"], "alice", "{view:#}");
    assert_eq!(view["summary"]["role"], "approver");
    assert_eq!(view["summary"]["decision"], "approve");

    let second = decided(check(&server, &ci, "production"));
    assert_eq!(second["decision"], "pass", "{second:#}");
    let (status, message) = requirement(&second, "approvals");
    assert_eq!(status, "pass");
    assert!(message.contains("by alice"), "{message}");

    // Both decisions are records, linked to the version and its commit.
    for (id, decision) in [
        (failed, "fail"),
        (second["record"].as_str().unwrap(), "pass"),
    ] {
        let view = server
            .get(&format!("/v1/records/{id}"), Some(&auditor))
            .expect(200)
            .json();
        assert_eq!(view["kind"], "policy-result", "{view:#}");
        assert_eq!(view["git_sha"], GIT_SHA);
        assert_eq!(view["environment"], "production");
        assert_eq!(view["producer"], "ci-checkout");
        assert_eq!(view["summary"]["decision"], decision, "{view:#}");
    }
    assert_eq!(
        server.metric("evault_gate_decisions_total{decision=\"fail\"}"),
        1
    );
    assert_eq!(
        server.metric("evault_gate_decisions_total{decision=\"pass\"}"),
        1
    );

    // The input a policy judges, read by an auditor; a policy has no part in it.
    let target = json!({"blueprint": BLUEPRINT, "version": VERSION, "env": "production"});
    let input = send_json(&server, "POST", "/v1/gates/input", &auditor, &target)
        .expect(200)
        .json();
    assert_eq!(input["schema"], "https://evault.dev/gate-input/v1");
    assert_eq!(input["pushers"], json!(["ci-checkout"]));
    assert_eq!(input["approvals"][0]["approver"], "alice", "{input:#}");
    assert_eq!(input["approvals"][0]["by_approver"], true);
    let mut with_policy = target.clone();
    with_policy["policy"] = json!("[[gate]]\nenvironment = \"*\"\n");
    let reply = send_json(&server, "POST", "/v1/gates/input", &auditor, &with_policy);
    assert_problem(&reply, 400, "invalid-input", &["policy"]);
    let reply = send_json(&server, "POST", "/v1/gates/input", &ci, &target);
    assert_problem(&reply, 403, "forbidden", &["pusher"]);

    // Unknown fields and oversized bodies are refused before anything runs.
    let mut typo = target.clone();
    typo["enviroment"] = json!("production");
    let reply = send_json(&server, "POST", "/v1/gates/check", &ci, &typo);
    assert_problem(&reply, 400, "invalid-input", &["enviroment"]);
    let mut huge = target;
    huge["policy"] = json!("#".repeat(1 << 20));
    let reply = send_json(&server, "POST", "/v1/gates/check", &ci, &huge);
    assert_problem(&reply, 413, "too-large", &["1 MiB"]);
}

/// Who may do what: an admin who pushed the evidence cannot approve it through (not the
/// approver role, and separation of duties when the policy lets admins approve); a pusher
/// cannot approve; an auditor cannot check; a token scoped to another blueprint is refused and
/// writes nothing.
#[test]
fn roles_scopes_and_separation_of_duties_hold_over_http() {
    let server = Server::start();
    let admin = server.token("release-admin", "admin", &[], None);
    let ci = server.token("ci-checkout", "pusher", &[], None);
    let auditor = server.token("auditor", "auditor", &[], None);
    let payments_ci = server.token("ci-payments", "pusher", &["payments-*"], None);
    let payments_approver = server.token("payments-lead", "approver", &["payments-*"], None);
    full_evidence(&server, &admin, 0);

    let reply = send_json(
        &server,
        "POST",
        "/v1/approvals",
        &admin,
        &approval("approve"),
    );
    assert_eq!(reply.status, 201, "{reply:?}");
    let warnings = reply.json()["warnings"].to_string();
    assert!(warnings.contains("separation of duties"), "{warnings}");
    let d = decided(check(&server, &admin, "production"));
    assert_eq!(d["decision"], "fail", "{d:#}");
    let (status, message) = requirement(&d, "approvals");
    assert_eq!(status, "fail");
    assert!(
        message.contains("role admin is not one of approver"),
        "{message}"
    );

    // A policy that lets admins approve still does not let them approve their own push.
    let lax = "[[gate]]\nenvironment = \"production\"\nrequire = [\"sbom\"]\n\
               [gate.approvals]\nmin = 1\nroles = [\"approver\", \"admin\"]\n\
               separation_of_duties = true\n";
    send_json(
        &server,
        "PUT",
        "/v1/gates/policy",
        &admin,
        &json!({ "policy": lax }),
    )
    .expect(200);
    let d = decided(check(&server, &admin, "production"));
    assert_eq!(d["decision"], "fail", "{d:#}");
    let (_, message) = requirement(&d, "approvals");
    assert!(
        message
            .contains("release-admin also pushed evidence of this version (separation of duties)"),
        "{message}"
    );

    // A pusher cannot approve, nor record an exception; an auditor cannot check.
    let reply = send_json(&server, "POST", "/v1/approvals", &ci, &approval("approve"));
    assert_problem(&reply, 403, "forbidden", &["ci-checkout", "pusher"]);
    let exception = json!({"blueprint": BLUEPRINT, "version": VERSION, "env": "production",
        "vulnerabilities": ["CVE-2026-2000"], "reason": "r", "expires": "1d"});
    let reply = send_json(&server, "POST", "/v1/exceptions", &ci, &exception);
    assert_problem(&reply, 403, "forbidden", &["pusher"]);
    let reply = check(&server, &auditor, "production");
    assert_problem(
        &reply,
        403,
        "forbidden",
        &["auditor", "records its decision"],
    );

    // Tokens scoped to other blueprints: refused, and nothing is written.
    let before = vault_state(&server.vault);
    let reply = check(&server, &payments_ci, "production");
    assert_problem(&reply, 403, "forbidden", &["payments-*", BLUEPRINT]);
    let reply = send_json(
        &server,
        "POST",
        "/v1/approvals",
        &payments_approver,
        &approval("approve"),
    );
    assert_problem(&reply, 403, "forbidden", &["payments-*", BLUEPRINT]);
    let reply = send_json(
        &server,
        "POST",
        "/v1/exceptions",
        &payments_approver,
        &exception,
    );
    assert_problem(&reply, 403, "forbidden", &["payments-*"]);
    let reply = send_json(
        &server,
        "POST",
        "/v1/gates/input",
        &payments_approver,
        &json!({"blueprint": BLUEPRINT, "version": VERSION, "env": "production"}),
    );
    assert_problem(&reply, 403, "forbidden", &["payments-*"]);
    assert_eq!(vault_state(&server.vault), before);
    // The completeness audit of a scoped token sees only its blueprints.
    let report = server
        .get(
            "/v1/audit/completeness?env=production",
            Some(&payments_approver),
        )
        .expect(200)
        .json();
    assert_eq!(report["deploys"], 0, "{report:#}");
}

/// Five high findings block production; an approver's exception for two of them brings the
/// count within the threshold, and the gate warns instead.
#[test]
fn an_exception_by_an_approver_turns_a_production_failure_into_a_warning() {
    let server = Server::start();
    let ci = server.token("ci-checkout", "pusher", &[], None);
    let alice = server.token("alice", "approver", &[], None);
    let carol = server.token("carol", "approver", &[], None);
    full_evidence(&server, &ci, 5);
    send_json(
        &server,
        "POST",
        "/v1/approvals",
        &alice,
        &approval("approve"),
    )
    .expect(201);
    let before = decided(check(&server, &ci, "production"));
    assert_eq!(before["decision"], "fail", "{before:#}");
    let (status, message) = requirement(&before, "vulnerabilities:high");
    assert_eq!(status, "fail");
    assert!(message.contains("5 high after VEX"), "{message}");

    let mut exception = json!({"blueprint": BLUEPRINT, "version": VERSION, "env": "production",
        "vulnerabilities": ["CVE-2026-2000", "cve-2026-2001"],
        "reason": "not reachable from the public API; fix in 1.4.3"});
    let reply = send_json(&server, "POST", "/v1/exceptions", &carol, &exception);
    assert_problem(&reply, 400, "invalid-input", &["expires"]);
    exception["expires"] = json!("400d");
    let reply = send_json(&server, "POST", "/v1/exceptions", &carol, &exception);
    assert_problem(&reply, 400, "invalid-input", &["expires", "366 days"]);
    exception["expires"] = json!("14d");
    let reply = send_json(&server, "POST", "/v1/exceptions", &carol, &exception);
    assert_eq!(reply.status, 201, "{reply:?}");
    let recorded = reply.json();
    assert_eq!(recorded["producer"], "carol");
    let exception_id = recorded["id"].as_str().unwrap().to_string();

    let after = decided(check(&server, &ci, "production"));
    assert_eq!(after["decision"], "warn", "{after:#}");
    let (status, message) = requirement(&after, "vulnerabilities:high");
    assert_eq!(status, "warn");
    assert!(message.contains("accepted by exception"), "{message}");
    let high = after["requirements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "vulnerabilities:high")
        .unwrap();
    assert!(
        high["records"]
            .as_array()
            .unwrap()
            .contains(&json!(exception_id)),
        "{high:#}"
    );
    assert_eq!(
        server.metric("evault_gate_decisions_total{decision=\"warn\"}"),
        1
    );
}

/// Only unscoped admins set the policy; an invalid one is refused with a one-line detail
/// naming the gate entry; a valid one is what later checks cite. A policy given with the check
/// is cited as `file`.
#[test]
fn the_vault_policy_is_set_by_admins_and_cited_by_later_checks() {
    let server = Server::start();
    let admin = server.token("release-admin", "admin", &[], None);
    let scoped_admin = server.token("checkout-admin", "admin", &["checkout-*"], None);
    let ci = server.token("ci-checkout", "pusher", &[], None);
    let alice = server.token("alice", "approver", &[], None);
    let auditor = server.token("auditor", "auditor", &[], None);
    full_evidence(&server, &ci, 0);

    let shown = server
        .get("/v1/gates/policy", Some(&auditor))
        .expect(200)
        .json();
    assert_eq!(shown["source"], "built-in");
    assert_eq!(shown["set_by"], Value::Null);
    let staging_only = "[[gate]]\nenvironment = \"staging\"\nrequire = [\"sbom\", \"vuln-scan\"]\n";
    for token in [&ci, &alice, &auditor, &scoped_admin] {
        let reply = send_json(
            &server,
            "PUT",
            "/v1/gates/policy",
            token,
            &json!({ "policy": staging_only }),
        );
        assert_problem(&reply, 403, "forbidden", &["vault maintenance"]);
    }
    let invalid =
        format!("{staging_only}\n[[gate]]\nenvironment = \"production\"\nrequire = [\"sbomm\"]\n");
    let reply = send_json(
        &server,
        "PUT",
        "/v1/gates/policy",
        &admin,
        &json!({ "policy": invalid }),
    );
    assert_problem(&reply, 400, "invalid-input", &["gate 2", "sbomm"]);
    let detail = reply.json()["detail"].as_str().unwrap().to_string();
    assert!(!detail.contains('\n'), "{detail}");
    let reply = send_json(
        &server,
        "PUT",
        "/v1/gates/policy",
        &admin,
        &json!({ "policy": staging_only, "set_by": "someone-else" }),
    );
    assert_problem(&reply, 400, "invalid-input", &["set_by"]);
    assert_eq!(
        server.get("/v1/gates/policy", Some(&auditor)).json()["source"],
        "built-in"
    );

    let set = send_json(
        &server,
        "PUT",
        "/v1/gates/policy",
        &admin,
        &json!({ "policy": staging_only }),
    )
    .expect(200)
    .json();
    assert_eq!(set["source"], "vault", "{set:#}");
    assert_eq!(set["engine"], "toml");
    assert_eq!(set["set_by"], "release-admin");
    assert_eq!(set["policy"], staging_only);
    let shown = server
        .get("/v1/gates/policy", Some(&auditor))
        .expect(200)
        .json();
    assert_eq!(shown, set);

    let d = decided(check(&server, &ci, "staging"));
    assert_eq!(d["decision"], "pass", "{d:#}");
    assert_eq!(d["policy"]["source"], "vault");
    assert_eq!(d["policy"]["digest"], set["digest"]);
    assert_eq!(d["policy_entries"], json!([1]));
    // Production is no longer covered: the gate fails closed.
    let d = decided(check(&server, &ci, "production"));
    assert_eq!(d["decision"], "fail");
    assert!(
        requirement(&d, "policy")
            .1
            .contains("no gate policy covers environment 'production'"),
        "{d:#}"
    );

    // A policy given with the check is code the server runs: admins only. It is used for that
    // check, and cited as a file.
    let body = json!({"blueprint": BLUEPRINT, "version": VERSION, "env": "production",
        "policy": "[[gate]]\nenvironment = \"production\"\nrequire = [\"sbom\"]\n"});
    let before = vault_state(&server.vault);
    let reply = send_json(&server, "POST", "/v1/gates/check", &ci, &body);
    assert_problem(&reply, 403, "forbidden", &["field policy", "only admins"]);
    assert_eq!(vault_state(&server.vault), before, "nothing was recorded");
    let d = decided(send_json(&server, "POST", "/v1/gates/check", &admin, &body));
    assert_eq!(d["decision"], "pass", "{d:#}");
    assert_eq!(d["policy"]["source"], "file");
    let mut broken = body.clone();
    broken["policy"] = json!("[[gate]]\nenvironment = \"production\"\nrequire = [\"sbomm\"]\n");
    let reply = send_json(&server, "POST", "/v1/gates/check", &admin, &broken);
    assert_problem(&reply, 400, "invalid-input", &["gate 1", "sbomm"]);
}

/// A deploy recorded without any gate check is listed; a check passing only under a policy the
/// pipeline brought does not change that. Parameters are checked as everywhere.
#[test]
fn the_completeness_audit_lists_a_deploy_made_without_a_passing_gate() {
    let server = Server::start();
    let ci = server.token("ci-checkout", "pusher", &[], None);
    let auditor = server.token("auditor", "auditor", &[], None);
    full_evidence(&server, &ci, 0);
    let artifact = format!("sha256:{}", "a".repeat(64));
    let deploy = send_json(
        &server,
        "POST",
        "/v1/deploys",
        &ci,
        &json!({"blueprint": BLUEPRINT, "version": VERSION, "env": "staging",
                "artifact": artifact}),
    )
    .expect(201)
    .json();
    let deploy_id = deploy["id"].as_str().unwrap();
    let lax = json!({"blueprint": BLUEPRINT, "version": VERSION, "env": "staging",
        "policy": "[[gate]]\nenvironment = \"*\"\n"});
    let admin = server.token("release-admin", "admin", &[], None);
    let d = decided(send_json(&server, "POST", "/v1/gates/check", &admin, &lax));
    assert_eq!(
        (d["decision"].as_str(), d["policy"]["source"].as_str()),
        (Some("pass"), Some("file"))
    );

    let path = with_query(
        "/v1/audit/completeness",
        &[("env", "staging"), ("since", "2020-01-01")],
    );
    let report = server.get(&path, Some(&auditor)).expect(200).json();
    assert_eq!(report["environment"], "staging", "{report:#}");
    assert_eq!(report["deploys"], 1);
    assert_eq!(report["policy"]["source"], "built-in");
    let listed = &report["incomplete"][0];
    assert_eq!(listed["deploy"], deploy_id, "{report:#}");
    assert_eq!(listed["gate"], "never-passed");
    assert_eq!(listed["actor"], "ci-checkout");
    assert_eq!(listed["artifact"], artifact.as_str());
    assert_eq!(listed["missing"], json!([]));

    // A check under the vault's policy passes now, after the deploy.
    let pass = decided(check(&server, &ci, "staging"));
    assert_eq!(pass["decision"], "pass", "{pass:#}");
    let report = server
        .get("/v1/audit/completeness?env=staging", Some(&auditor))
        .expect(200)
        .json();
    assert_eq!(report["incomplete"][0]["gate"], "passed-after-deploy");
    assert_eq!(report["incomplete"][0]["gate_record"], pass["record"]);

    let reply = server.get(
        "/v1/audit/completeness?env=staging&since=yesterday",
        Some(&auditor),
    );
    assert_problem(&reply, 400, "invalid-input", &["invalid since 'yesterday'"]);
    let reply = server.get("/v1/audit/completeness?since=2020-01-01", Some(&auditor));
    assert_problem(&reply, 400, "invalid-input", &["'env' is required"]);
    let reply = server.get(
        "/v1/audit/completeness?env=staging&until=2030-01-01",
        Some(&auditor),
    );
    assert_problem(
        &reply,
        400,
        "invalid-input",
        &["unknown query parameter 'until'"],
    );
    let reply = server.get("/v1/audit/completeness?env=staging", Some(&ci));
    assert_problem(&reply, 403, "forbidden", &["pusher"]);

    // Every completeness audit by a token is an access-log event.
    let events = server
        .get("/v1/log/access?action=audit.completeness", Some(&auditor))
        .expect(200)
        .json();
    let events = events["events"].as_array().unwrap();
    assert_eq!(events.len(), 6, "{events:#?}");
    assert_eq!(events[0]["target"], "env=staging&since=2020-01-01");
    assert_eq!(events[5]["status"], 403);
}

/// The CLI in remote mode asks the same endpoint and exits 5 on a failing gate.
#[test]
fn the_cli_in_remote_mode_exits_5_when_the_gate_fails() {
    let server = Server::start();
    let ci = server.token("ci-checkout", "pusher", &[], None);
    full_evidence(&server, &ci, 0);
    let args = [
        "gate",
        "check",
        "--blueprint",
        BLUEPRINT,
        "--version",
        VERSION,
        "--env",
        "production",
    ];
    let run = remote(&server, Some(&ci), &args);
    assert_eq!(run.code, 5, "{run:?}");
    let out = run.stdout_text();
    assert!(out.contains("approvals"), "{out}");
    let run = remote(
        &server,
        Some(&ci),
        &[
            "--json",
            "gate",
            "check",
            "--blueprint",
            BLUEPRINT,
            "--version",
            VERSION,
            "--env",
            "staging",
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let decision = run.json();
    assert_eq!(decision["decision"], "pass", "{decision:#}");
    assert_eq!(decision["actor"], "ci-checkout");
}
