//! Release gates end to end, through the real binary on a real vault: a pipeline (`ci`) pushes
//! a version's evidence, people approve it and accept risks under their own names, and `evault
//! gate check` answers with the exit code a deploy script acts on (0 pass or warn, 5 fail).
//! Remote mode is covered by the server's suite.

#[path = "common/mod.rs"]
mod common;

use std::process::{Command, Stdio};

use common::{BLUEPRINT, EVAULT, GIT_SHA, Run, VERSION, Vault, str_field, with_links};
use serde_json::{Value, json};

/// Exit code of a failed gate.
const FAILED: i32 = 5;

fn pretty(v: &Value) -> Vec<u8> {
    serde_json::to_vec_pretty(v).unwrap()
}

fn sbom() -> Vec<u8> {
    pretty(
        &json!({"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
        "components": [{"type": "library", "name": "lodash", "version": "4.17.20",
                        "purl": "pkg:npm/lodash@4.17.20"}]}),
    )
}

/// A grype report with `critical` critical findings (CVE-2026-1000, ...) and `high` high ones
/// (CVE-2026-2000, ...).
fn grype(critical: usize, high: usize) -> Vec<u8> {
    let finding = |id: String, severity: &str| {
        json!({"vulnerability": {"id": id, "severity": severity},
               "artifact": {"name": "lodash", "version": "4.17.20", "type": "npm",
                            "purl": "pkg:npm/lodash@4.17.20"}})
    };
    let mut matches: Vec<Value> = (0..critical)
        .map(|i| finding(format!("CVE-2026-{}", 1000 + i), "Critical"))
        .collect();
    matches.extend((0..high).map(|i| finding(format!("CVE-2026-{}", 2000 + i), "High")));
    pretty(&json!({"matches": matches, "source": {"type": "image"},
                   "descriptor": {"name": "grype", "version": "0.74.0"}}))
}

fn openvex_not_affected(cve: &str) -> Vec<u8> {
    pretty(&json!({
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": "https://acme.example/vex/checkout-api-1.4.2",
        "author": "security@acme.example", "timestamp": "2026-03-01T09:00:00Z", "version": 1,
        "statements": [{"vulnerability": {"name": cve},
                        "products": [{"@id": "pkg:oci/checkout-api"}],
                        "status": "not_affected",
                        "justification": "vulnerable_code_not_in_execute_path"}]
    }))
}

const JUNIT: &[u8] =
    b"<testsuites><testsuite name=\"api\" tests=\"1\"><testcase name=\"ok\"/></testsuite></testsuites>";
const ROLLBACK_PLAN: &[u8] =
    b"# Rollback plan\n\n## Trigger Conditions\n- error rate > 5%\n\n## Rollback Procedure\n1. kubectl rollout undo\n";

/// A vault whose default actor is the pipeline, `ci`.
fn vault() -> Vault {
    Vault::initialised().with_actor("ci")
}

/// Pushes `bytes` as `file` for checkout-api 1.4.2 (with `extra` flags), as `ci`.
fn push(v: &Vault, file: &str, bytes: &[u8], extra: &[&str]) -> Value {
    v.write(file, bytes);
    let mut args = with_links(&[file]);
    args.extend(extra.iter().map(|s| s.to_string()));
    v.push_json(args).remove(0)
}

/// Everything the built-in staging gate asks for, with a scan of `critical` and `high` findings.
fn evidence(v: &Vault, critical: usize, high: usize) {
    push(v, "sbom.json", &sbom(), &[]);
    push(v, "scan.json", &grype(critical, high), &[]);
    push(v, "junit.xml", JUNIT, &[]);
    push(
        v,
        "rollback.md",
        ROLLBACK_PLAN,
        &["--kind", "rollback-plan"],
    );
}

/// `COMMAND... --blueprint checkout-api --version 1.4.2 --env ENV REST...`.
fn on_target(command: &[&str], env: &str, rest: &[&str]) -> Vec<String> {
    command
        .iter()
        .chain(&["--blueprint", BLUEPRINT, "--version", VERSION, "--env", env])
        .chain(rest)
        .map(|s| s.to_string())
        .collect()
}

/// `evault gate check` of checkout-api 1.4.2 for `env`, with `extra` flags.
fn check(v: &Vault, env: &str, extra: &[&str]) -> Run {
    v.run(on_target(&["gate", "check"], env, extra))
}

/// The stdout line of requirement `name`.
#[track_caller]
fn line(run: &Run, name: &str) -> String {
    let out = run.stdout_text();
    out.lines()
        .find(|l| {
            l.get(6..)
                .is_some_and(|rest| rest.starts_with(&format!("{name} ")))
        })
        .unwrap_or_else(|| panic!("no line for {name}: {run:?}"))
        .to_string()
}

/// Runs `evault --data-dir <vault> --actor ACTOR ARGS...` (the vault's own actor aside).
fn run_as<S: AsRef<str>>(v: &Vault, actor: &str, args: &[S]) -> Run {
    let mut all = vec!["--actor", actor];
    all.extend(args.iter().map(AsRef::as_ref));
    run_raw(v, &all)
}

/// Runs `evault --data-dir <vault> ARGS...` with no `--actor` added.
fn run_raw<S: AsRef<str>>(v: &Vault, args: &[S]) -> Run {
    let out = Command::new(EVAULT)
        .arg("--data-dir")
        .arg(v.data_dir())
        .args(args.iter().map(AsRef::as_ref))
        .current_dir(v.root())
        .env_remove("EVAULT_DATA_DIR")
        .env_remove("EVAULT_SERVER")
        .stdin(Stdio::null())
        .output()
        .expect("cannot start evault");
    Run {
        args: args.iter().map(|s| s.as_ref().to_string()).collect(),
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `evault approve` of checkout-api 1.4.2 for production by `actor`.
fn approve(v: &Vault, actor: &str) -> Run {
    run_as(
        v,
        actor,
        &on_target(
            &["approve"],
            "production",
            &[
                "--decision",
                "approve",
                "--reason",
                "change reviewed in CHG-1234",
                "--ticket",
                "CHG-1234",
                "--expires",
                "7d",
            ],
        ),
    )
}

#[test]
fn complete_staging_evidence_passes_and_the_decision_is_a_record_nobody_can_forge() {
    let v = vault();
    evidence(&v, 0, 0);

    let run = check(&v, "staging", &[]).success();
    let sbom_line = line(&run, "evidence:sbom");
    assert!(sbom_line.starts_with("PASS  evidence:sbom "), "{run:?}");
    assert!(
        sbom_line.contains('['),
        "record ids in brackets: {sbom_line}"
    );
    let out = run.stdout_text();
    assert!(
        out.contains("gate: PASS for checkout-api 1.4.2 → staging (policy: built-in, toml sha256:"),
        "{run:?}"
    );
    assert!(out.contains("decision recorded: "), "{run:?}");
    assert!(
        !out.lines()
            .any(|l| l.starts_with("FAIL") || l.starts_with("WARN")),
        "{run:?}"
    );

    let json = v
        .run(on_target(&["--json", "gate", "check"], "staging", &[]))
        .success()
        .json();
    assert_eq!(json["decision"], "pass", "{json:#}");
    assert_eq!(json["git_sha"], GIT_SHA);
    assert_eq!(json["policy"]["source"], "built-in");
    let record = json["record"]
        .as_str()
        .expect("a decision record")
        .to_string();
    let shown = v.run(["show", &record]).success().stdout_text();
    assert!(shown.contains("policy-result"), "{shown}");
    let shown = v.show_json(&record);
    assert_eq!(shown["kind"], "policy-result");
    assert_eq!(shown["environment"], "staging");
    assert_eq!(shown["producer"], "ci");

    // The decision's own bytes, pushed back (as a forged pass would be): refused, nothing
    // stored.
    let bytes = v.run(["get", &record]).success().stdout;
    let before = v.ls_json(["--limit", "1000"]);
    v.write("forged.json", &bytes);
    v.run(with_links(&["push", "forged.json"]))
        .fails(2, &["forged.json"]);
    v.write("decision.txt", b"pass");
    v.run(with_links(&[
        "push",
        "decision.txt",
        "--kind",
        "policy-result",
    ]))
    .fails(2, &[]);
    assert_eq!(v.ls_json(["--limit", "1000"]), before);
}

#[test]
fn production_needs_an_approval_from_someone_other_than_the_pusher() {
    let v = vault();
    evidence(&v, 0, 0);

    let run = check(&v, "production", &[]);
    assert_eq!(run.code, FAILED, "{run:?}");
    assert!(line(&run, "approvals").starts_with("FAIL"), "{run:?}");
    assert!(
        run.stdout_text()
            .contains("gate: FAIL for checkout-api 1.4.2 → production"),
        "{run:?}"
    );
    // A failed gate is an answer, not an error: no `error:` line.
    assert!(!run.stderr.contains("error:"), "{run:?}");
    let json = v.run(on_target(&["--json", "gate", "check"], "production", &[]));
    assert_eq!(json.code, FAILED, "{json:?}");
    assert_eq!(json.json()["decision"], "fail");

    // The pipeline approving its own change: recorded, with a warning, and not counted.
    let own = approve(&v, "ci").success();
    assert!(
        own.stdout_text().starts_with("approval recorded: "),
        "{own:?}"
    );
    assert!(
        own.warnings()
            .iter()
            .any(|w| w.contains("separation of duties")),
        "{own:?}"
    );
    let run = check(&v, "production", &[]);
    assert_eq!(run.code, FAILED, "{run:?}");
    assert!(line(&run, "approvals").starts_with("FAIL"), "{run:?}");

    // Alice, in her own name.
    let alice = approve(&v, "alice").success();
    assert!(alice.warnings().is_empty(), "{alice:?}");
    let approval = v.show_json(&str_field(
        &run_as(
            &v,
            "alice",
            &["--json", "ls", "--kind", "approval", "--limit", "1"],
        )
        .success()
        .json()[0],
        "id",
    ));
    assert_eq!(approval["producer"], "alice");
    let run = check(&v, "production", &[]).success();
    assert!(line(&run, "approvals").starts_with("PASS"), "{run:?}");
}

#[test]
fn a_critical_finding_fails_until_vex_says_not_affected() {
    let v = vault();
    evidence(&v, 1, 0);
    let run = check(&v, "staging", &[]);
    assert_eq!(run.code, FAILED, "{run:?}");
    let critical = line(&run, "vulnerabilities:critical");
    assert!(critical.starts_with("FAIL"), "{run:?}");
    assert!(critical.contains("CVE-2026-1000"), "{critical}");

    let vex = push(&v, "vex.json", &openvex_not_affected("CVE-2026-1000"), &[]);
    let run = check(&v, "staging", &[]).success();
    let critical = line(&run, "vulnerabilities:critical");
    assert!(critical.starts_with("PASS"), "{run:?}");
    let vex_id = str_field(&vex, "id");
    assert!(
        critical.contains(&vex_id[..12]),
        "the VEX is cited: {critical}"
    );
}

#[test]
fn an_exception_turns_too_many_high_findings_into_a_warning_and_bad_input_changes_nothing() {
    let v = vault();
    evidence(&v, 0, 5);
    approve(&v, "alice").success();
    let run = check(&v, "production", &[]);
    assert_eq!(run.code, FAILED, "{run:?}");
    assert!(
        line(&run, "vulnerabilities:high").starts_with("FAIL"),
        "{run:?}"
    );

    // Invalid input: one line naming the flag, exit 2, nothing stored.
    let before = v.ls_json(["--limit", "1000"]);
    let exception = |expires: &str| {
        run_as(
            &v,
            "carol",
            &on_target(
                &["exception"],
                "production",
                &[
                    "--vuln",
                    "CVE-2026-2000",
                    "--vuln",
                    "CVE-2026-2001",
                    "--reason",
                    "not reachable from the public API; fix scheduled",
                    "--expires",
                    expires,
                ],
            ),
        )
    };
    exception("400d").fails(2, &["--expires", "400d", "366 days"]);
    assert_eq!(v.ls_json(["--limit", "1000"]), before);
    // Without --vuln: a usage error.
    let run = run_as(
        &v,
        "carol",
        &on_target(
            &["exception"],
            "production",
            &["--reason", "x", "--expires", "1d"],
        ),
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("--vuln"), "{run:?}");
    assert_eq!(v.ls_json(["--limit", "1000"]), before);

    let recorded = exception("7d").success();
    assert!(
        recorded.stdout_text().starts_with("exception recorded: "),
        "{recorded:?}"
    );
    assert!(recorded.stdout_text().contains("by carol"), "{recorded:?}");
    let run = check(&v, "production", &[]).success();
    let high = line(&run, "vulnerabilities:high");
    assert!(high.starts_with("WARN"), "{run:?}");
    assert!(high.contains("accepted by exception"), "{high}");
    assert!(
        run.stdout_text()
            .contains("gate: WARN for checkout-api 1.4.2 → production"),
        "{run:?}"
    );
}

#[test]
fn the_role_of_an_approval_is_the_tokens_on_a_server() {
    let v = vault();
    let args = on_target(
        &["--server", "http://127.0.0.1:9", "approve"],
        "production",
        &[
            "--decision",
            "approve",
            "--reason",
            "ok",
            "--role",
            "approver",
        ],
    );
    let run = run_raw(&v, &args);
    run.fails(2, &["--role", "token"]);
    // Approving a version the vault knows nothing of, or with a made-up decision.
    approve(&v, "alice").fails(2, &["no evidence"]);
    let run = run_as(
        &v,
        "alice",
        &on_target(
            &["approve"],
            "production",
            &["--decision", "maybe", "--reason", "ok"],
        ),
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("approve or reject"), "{run:?}");
}

const REGO_NEEDS_SBOM: &str = r#"package evault.gate

import rego.v1

deny contains "no sbom recorded" if {
	count(object.get(input.evidence, "sbom", [])) == 0
}
"#;

#[test]
fn a_rego_policy_file_decides_and_a_broken_one_is_an_input_error() {
    let v = vault();
    push(&v, "junit.xml", JUNIT, &[]);
    v.write("sbom.rego", REGO_NEEDS_SBOM);
    let run = check(&v, "staging", &["--policy", "sbom.rego"]);
    assert_eq!(run.code, FAILED, "{run:?}");
    assert!(run.stdout_text().contains("no sbom recorded"), "{run:?}");
    assert!(
        run.stdout_text().contains("(policy: file, rego sha256:"),
        "{run:?}"
    );

    push(&v, "sbom.json", &sbom(), &[]);
    let run = check(&v, "staging", &["--policy", "sbom.rego"]).success();
    assert!(run.stdout_text().contains("gate: PASS"), "{run:?}");

    // The input the policy judged.
    let input = v
        .run(on_target(&["gate", "input"], "staging", &[]))
        .success()
        .json();
    assert_eq!(input["environment"], "staging");
    assert_eq!(input["git_sha"], GIT_SHA);
    assert_eq!(input["evidence"]["sbom"].as_array().unwrap().len(), 1);

    let before = v.ls_json(["--limit", "1000"]);
    v.write("broken.rego", "package evault.gate\ndeny contains if {\n");
    check(&v, "staging", &["--policy", "broken.rego"]).fails(2, &["broken.rego", "compile"]);
    check(&v, "staging", &["--policy", "missing.rego"]).fails(3, &["missing.rego"]);
    v.write("huge.rego", vec![b'#'; (1 << 20) + 1]);
    check(&v, "staging", &["--policy", "huge.rego"]).fails(2, &["huge.rego", "1 MiB"]);
    assert_eq!(v.ls_json(["--limit", "1000"]), before);
}

#[test]
fn the_vault_policy_is_checked_when_set_and_changes_the_outcome() {
    let v = vault();
    evidence(&v, 0, 5);
    let run = check(&v, "staging", &[]).success();
    assert!(
        line(&run, "vulnerabilities:high").starts_with("WARN"),
        "{run:?}"
    );

    v.write(
        "bad.toml",
        "[[gate]]\nenvironment = \"staging\"\n\n[[gate]]\nenvironment = \"production\"\n\
         require = [\"sbomm\"]\n",
    );
    v.run(["gate", "policy", "set", "bad.toml"])
        .fails(2, &["bad.toml", "gate 2", "line 4", "sbomm"]);
    let shown = v.run(["--json", "gate", "policy", "show"]).success().json();
    assert_eq!(shown["source"], "built-in");

    let strict = "[[gate]]\nenvironment = \"staging\"\nrequire = [\"sbom\", \"vuln-scan\"]\n\n\
                  [gate.vulnerabilities]\nhigh = { max = 3, above = \"fail\" }\n";
    v.write("strict.toml", strict);
    let set = v.run(["gate", "policy", "set", "strict.toml"]).success();
    assert!(
        set.stdout_text()
            .starts_with("gate policy set: source vault, engine toml, sha256:"),
        "{set:?}"
    );
    let run = check(&v, "staging", &[]);
    assert_eq!(run.code, FAILED, "{run:?}");
    assert!(
        line(&run, "vulnerabilities:high").starts_with("FAIL"),
        "{run:?}"
    );
    assert!(
        run.stdout_text().contains("(policy: vault, toml"),
        "{run:?}"
    );

    // `show` prints exactly the text set, so that it can be edited and set again.
    let shown = v.run(["gate", "policy", "show"]).success();
    assert_eq!(shown.stdout_text(), strict);
    assert!(shown.stderr.contains("set "), "{shown:?}");
    let view = v.run(["--json", "gate", "policy", "show"]).success().json();
    assert_eq!(view["source"], "vault");
    assert_eq!(view["set_by"], "ci");

    // The built-in policy, without a vault.
    let nowhere = Vault::new();
    let default = nowhere
        .run(["gate", "policy", "show", "--default"])
        .success();
    assert_eq!(default.stdout_text(), evault_core::gate::BUILT_IN);
    assert!(!nowhere.data_dir().exists());
}

#[test]
fn audit_completeness_alerts_on_deploys_that_never_passed_their_gate() {
    let v = vault();
    evidence(&v, 0, 0);
    let artifact = common::digest_of(b"checkout-api 1.4.2 image");
    let deploy = || {
        let args = on_target(&["--json", "deploy"], "staging", &["--artifact", &artifact]);
        str_field(&v.run(args).success().json(), "id")
    };
    let audit = |extra: &[&str]| {
        let mut args = vec!["audit", "completeness", "--env", "staging"];
        args.extend_from_slice(extra);
        v.run(args)
    };
    let first = deploy();
    let run = audit(&[]);
    assert_eq!(run.code, FAILED, "{run:?}");
    let out = run.stdout_text();
    assert!(out.contains(&first[..12]), "{run:?}");
    assert!(out.contains("gate never passed"), "{run:?}");
    assert!(
        out.contains("1 of 1 deploys to staging lack evidence or a passing gate"),
        "{run:?}"
    );
    let json = v.run(["--json", "audit", "completeness", "--env", "staging"]);
    assert_eq!(json.code, FAILED, "{json:?}");
    let report = json.json();
    assert_eq!(report["incomplete"][0]["deploy"], first.as_str());
    assert_eq!(report["incomplete"][0]["gate"], "never-passed");

    std::thread::sleep(std::time::Duration::from_millis(10));
    let between = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    check(&v, "staging", &[]).success();
    let second = deploy();
    let run = audit(&[]);
    assert_eq!(run.code, FAILED, "{run:?}");
    let out = run.stdout_text();
    assert!(out.contains(&first[..12]), "{run:?}");
    assert!(!out.contains(&second[..12]), "{run:?}");
    assert!(out.contains("gate passed only after the deploy"), "{run:?}");
    assert!(out.contains("1 of 2 deploys"), "{run:?}");

    // Since the check: every deploy is covered.
    let run = audit(&["--since", &between]).success();
    assert!(
        run.stdout_text()
            .contains("all 1 deploy(s) to staging since"),
        "{run:?}"
    );
    audit(&["--since", "yesterday"]).fails(2, &["--since"]);
}
