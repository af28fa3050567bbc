//! The CLI's remote mode end to end: the real binary talking to a real `evault serve` on a
//! loopback port, compared with the same commands on a local vault.

#[path = "common/mod.rs"]
mod common;
#[path = "common/server.rs"]
mod server_common;

use std::fs;
use std::process::Command;

use common::{EVAULT, GIT_SHA, Vault, digest_of, str_field, with_links};
use serde_json::{Value, json};
use server_common::{Server, remote};

const SBOM: &str = r#"{"bomFormat":"CycloneDX","specVersion":"1.5","version":1,"components":[{"type":"library","name":"lodash","version":"4.17.20","purl":"pkg:npm/lodash@4.17.20"}]}"#;
const PLAN: &str =
    "# Rollback Plan\n\n## Rollback Procedure\n1. kubectl rollout undo deploy/checkout-api\n";

/// Writes the same small bundle into `vault`'s work dir.
fn write_bundle(vault: &Vault) {
    vault.write("bundle/sbom.json", SBOM);
    vault.write("bundle/rollback_plan.md", PLAN);
    vault.write(
        "bundle/reports/junit.xml",
        "<testsuites><testsuite name=\"cart\" tests=\"1\"><testcase name=\"adds\"/></testsuite></testsuites>",
    );
}

/// The parts of pushed records that must not depend on where they were pushed.
fn comparable(records: &[Value]) -> Vec<Value> {
    let mut out: Vec<Value> = records
        .iter()
        .map(|r| {
            json!({
                "id": r["id"], "kind": r["kind"], "format": r["format"], "digest": r["digest"],
                "size": r["size"], "blueprint": r["blueprint"], "git_sha": r["git_sha"],
                "subjects": r["subjects"], "source_path": r["source_path"], "status": r["status"],
            })
        })
        .collect();
    out.sort_by_key(|r| r["id"].as_str().unwrap_or_default().to_string());
    out
}

#[test]
fn a_remote_push_records_what_a_local_push_records_with_the_token_as_producer() {
    let local = Vault::initialised();
    write_bundle(&local);
    let here = local.push_json(with_links(&["bundle"]));

    let server = Server::start();
    let token = server.token("ci-checkout", "pusher", &[], None);
    write_bundle(&server.vault);
    let args = with_links(&["--json", "push", "bundle"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = remote(&server, Some(&token), &args);
    assert_eq!(run.code, 0, "{run:?}");
    let there: Vec<Value> = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(comparable(&here), comparable(&there));
    assert!(
        there.iter().all(|r| r["producer"] == "ci-checkout"),
        "{there:#?}"
    );

    // Again: everything already present, same exit code and same shape.
    let again = remote(&server, Some(&token), &args);
    assert_eq!(again.code, 0, "{again:?}");
    let again: Vec<Value> = serde_json::from_slice(&again.stdout).unwrap();
    assert!(again.iter().all(|r| r["status"] == "present"), "{again:#?}");

    // Human output has one line per record, like embedded mode.
    let human = remote(
        &server,
        Some(&token),
        &[
            "push",
            "bundle/sbom.json",
            "--blueprint",
            "checkout-api",
            "--version",
            "1.4.2",
            "--git-sha",
            GIT_SHA,
        ],
    );
    assert_eq!(human.code, 0, "{human:?}");
    assert_eq!(human.stdout_text().lines().count(), 1, "{human:?}");
    assert!(human.stdout_text().contains("cyclonedx-json"), "{human:?}");
}

#[test]
fn remote_reads_print_what_local_reads_print() {
    let server = Server::start();
    write_bundle(&server.vault);
    // Pushed locally (the server serves the same directory), read remotely.
    let pushed = server.vault.push_json(with_links(&["bundle"]));
    let auditor = server.token("auditor-q2", "auditor", &[], None);

    let local_ls = server.vault.run(["--json", "ls"]).success().json();
    let remote_ls = remote(&server, Some(&auditor), &["--json", "ls"]);
    assert_eq!(remote_ls.code, 0, "{remote_ls:?}");
    assert_eq!(remote_ls.json(), local_ls);

    let local_text = server
        .vault
        .run(["ls", "--limit", "2"])
        .success()
        .stdout_text();
    let remote_text = remote(&server, Some(&auditor), &["ls", "--limit", "2"]);
    assert_eq!(remote_text.stdout_text(), local_text);

    let id = str_field(&pushed[0], "id");
    let local_show = server
        .vault
        .run(["--json", "show", &id[..8]])
        .success()
        .json();
    assert_eq!(
        remote(&server, Some(&auditor), &["--json", "show", &id[..8]]).json(),
        local_show
    );
    let show_text = server.vault.run(["show", &id]).success().stdout_text();
    assert_eq!(
        remote(&server, Some(&auditor), &["show", &id]).stdout_text(),
        show_text
    );

    // get: by digest to stdout, by record id to a file; bytes identical to the original.
    let sbom = pushed
        .iter()
        .find(|r| r["source_path"] == "sbom.json")
        .unwrap();
    let digest = str_field(sbom, "digest");
    let got = remote(&server, Some(&auditor), &["get", &digest]);
    assert_eq!(got.code, 0, "{got:?}");
    assert_eq!(got.stdout, SBOM.as_bytes());
    let out = server.vault.path("out.json");
    let got = remote(
        &server,
        Some(&auditor),
        &["get", &str_field(sbom, "id"), "-o", out.to_str().unwrap()],
    );
    assert_eq!(got.code, 0, "{got:?}");
    assert_eq!(fs::read(&out).unwrap(), SBOM.as_bytes());
    assert_eq!(digest_of(&fs::read(&out).unwrap()), digest);

    let status = remote(&server, Some(&auditor), &["--json", "status"]).json();
    assert_eq!(status["records"], json!(pushed.len()));

    // Unknown record: exit 3, one line, like embedded mode.
    remote(&server, Some(&auditor), &["show", "ffffffffffff"]).fails(3, &["ffffffffffff"]);
}

#[test]
fn remote_token_administration_needs_an_admin_token() {
    let server = Server::start();
    let admin = server.token("root", "admin", &[], None);
    let auditor = server.token("auditor-q2", "auditor", &[], None);

    let created = remote(
        &server,
        Some(&admin),
        &[
            "--json",
            "token",
            "create",
            "--name",
            "ci-payments",
            "--role",
            "pusher",
            "--scope",
            "payments-*",
            "--expires",
            "30d",
        ],
    );
    assert_eq!(created.code, 0, "{created:?}");
    let created = created.json();
    assert_eq!(created["created_by"], "root");
    let secret = str_field(&created, "secret");
    server.remember_secret(&secret);

    let listed = remote(&server, Some(&admin), &["--json", "token", "ls"]).json();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["auditor-q2", "ci-payments", "root"]);

    // Auditors may list tokens (access reviews), never change them.
    let seen = remote(&server, Some(&auditor), &["--json", "token", "ls"])
        .success()
        .json();
    let seen_names: Vec<&str> = seen
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(seen_names, names);
    remote(&server, Some(&auditor), &["token", "revoke", "ci-payments"]).fails(6, &["auditor"]);
    remote(
        &server,
        Some(&admin),
        &[
            "token",
            "create",
            "--name",
            "ci-payments",
            "--role",
            "pusher",
        ],
    )
    .fails(2, &["already exists"]);

    // The new token works for what its scope allows, and not beyond it.
    server.vault.write("plan.md", PLAN);
    let denied = remote(
        &server,
        Some(&secret),
        &[
            "push",
            "plan.md",
            "--blueprint",
            "checkout-api",
            "--version",
            "1",
            "--git-sha",
            GIT_SHA,
        ],
    );
    denied.fails(6, &["payments-*"]);
    let allowed = remote(
        &server,
        Some(&secret),
        &[
            "push",
            "plan.md",
            "--blueprint",
            "payments-ledger",
            "--version",
            "1",
            "--git-sha",
            GIT_SHA,
        ],
    );
    assert_eq!(allowed.code, 0, "{allowed:?}");

    let revoked = remote(
        &server,
        Some(&admin),
        &["--json", "token", "revoke", "ci-payments"],
    )
    .json();
    assert!(revoked["revoked_at"].is_string(), "{revoked:#}");
    remote(
        &server,
        Some(&secret),
        &[
            "push",
            "plan.md",
            "--blueprint",
            "payments-ledger",
            "--version",
            "2",
            "--git-sha",
            GIT_SHA,
        ],
    )
    .fails(6, &["revoked"]);
}

#[test]
fn remote_mode_errors_are_one_line_with_stable_exit_codes() {
    let server = Server::start();
    let pusher = server.token("ci", "pusher", &[], None);
    // No token at all.
    remote(&server, None, &["ls"]).fails(6, &["EVAULT_TOKEN"]);
    // A token that does not exist.
    let bogus = format!("evt_{}", "0".repeat(64));
    remote(&server, Some(&bogus), &["ls"]).fails(6, &["unknown token"]);
    // A role that may not read.
    remote(&server, Some(&pusher), &["ls"]).fails(6, &["pusher"]);
    // Bad input is still exit 2, from the server's validation.
    server.vault.write("plan.md", PLAN);
    remote(
        &server,
        Some(&pusher),
        &[
            "push",
            "plan.md",
            "--blueprint",
            "checkout-api",
            "--version",
            "1",
            "--git-sha",
            "xyz",
        ],
    )
    .fails(2, &["git_sha"]);
    // Content the server refuses (a declared kind the content contradicts) is exit 2 too.
    remote(
        &server,
        Some(&pusher),
        &[
            "push",
            "plan.md",
            "--kind",
            "sbom",
            "--blueprint",
            "checkout-api",
            "--version",
            "1",
            "--git-sha",
            GIT_SHA,
        ],
    )
    .fails(2, &["declares kind sbom"]);
    // --actor has no meaning against a server; init, demo and serve are local only.
    remote(&server, Some(&pusher), &["--actor", "mallory", "ls"]).fails(2, &["--actor"]);
    remote(&server, Some(&pusher), &["init"]).fails(2, &["local vault"]);
    // Several paths in one remote push are refused with a hint.
    server.vault.write("b.md", PLAN);
    remote(
        &server,
        Some(&pusher),
        &[
            "push",
            "plan.md",
            "b.md",
            "--blueprint",
            "x",
            "--version",
            "1",
            "--git-sha",
            GIT_SHA,
        ],
    )
    .fails(2, &["one file, directory or archive"]);
}

#[test]
fn an_unreachable_server_is_reported_plainly() {
    let server = Server::start();
    let token = server.token("ci", "auditor", &[], None);
    let url = server.url("");
    drop(server);
    let out = Command::new(EVAULT)
        .args(["--server", &url, "ls"])
        .env("EVAULT_TOKEN", &token)
        .env_remove("EVAULT_SERVER")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: cannot reach the evault server at"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn a_corrupted_blob_never_reaches_a_remote_output() {
    let server = Server::start();
    let auditor = server.token("auditor", "auditor", &[], None);
    server.vault.write("sbom.json", SBOM);
    let record = server.vault.push_one("sbom.json");
    let digest = str_field(&record, "digest");
    let forged = zstd::encode_all(
        &br#"{"bomFormat":"CycloneDX","specVersion":"1.5","forged":true}"#[..],
        3,
    )
    .unwrap();
    fs::write(server.vault.blob_file(&digest), forged).unwrap();

    let out = server.vault.path("copy.json");
    let run = remote(
        &server,
        Some(&auditor),
        &["get", &digest, "-o", out.to_str().unwrap()],
    );
    assert_eq!(run.code, 4, "{run:?}");
    assert!(!out.exists(), "nothing is written when verification fails");
    let run = remote(&server, Some(&auditor), &["get", &digest]);
    assert_eq!(run.code, 4, "{run:?}");
    assert!(
        run.stdout.is_empty(),
        "no bytes reach stdout: {} bytes",
        run.stdout.len()
    );
}

#[test]
fn push_warnings_reach_a_remote_caller() {
    let server = Server::start();
    let pusher = server.token("ci", "pusher", &[], None);
    write_bundle(&server.vault);
    std::os::unix::fs::symlink("sbom.json", server.vault.path("bundle/sbom-latest.json")).unwrap();
    let run = remote(
        &server,
        Some(&pusher),
        &[
            "push",
            "bundle",
            "--blueprint",
            "checkout-api",
            "--version",
            "1.4.2",
            "--git-sha",
            GIT_SHA,
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stderr
            .lines()
            .any(|l| l.starts_with("warning:") && l.contains("sbom-latest.json")),
        "{run:?}"
    );
}

#[test]
fn a_scoped_admin_cannot_mint_tokens_or_run_maintenance() {
    let server = Server::start();
    let team_admin = server.token("payments-admin", "admin", &["payments-*"], None);
    remote(
        &server,
        Some(&team_admin),
        &["token", "create", "--name", "escalated", "--role", "admin"],
    )
    .fails(6, &["without blueprint scopes"]);
    remote(&server, Some(&team_admin), &["fsck"]).fails(6, &["without blueprint scopes"]);
    // Within its blueprints it still pushes and reads.
    server.vault.write("plan.md", PLAN);
    let pushed = remote(
        &server,
        Some(&team_admin),
        &[
            "push",
            "plan.md",
            "--blueprint",
            "payments-ledger",
            "--version",
            "1",
            "--git-sha",
            GIT_SHA,
        ],
    );
    assert_eq!(pushed.code, 0, "{pushed:?}");
    let listed = remote(&server, Some(&team_admin), &["--json", "ls"]);
    assert_eq!(
        listed.json().as_array().map(Vec::len),
        Some(1),
        "{listed:?}"
    );
}

#[test]
fn the_access_review_lists_reads_and_tokens_remotely_and_locally_alike() {
    let mut server = Server::start();
    let alice = server.token("alice", "auditor", &[], None);
    let ci = server.token("ci", "pusher", &[], None);
    server.token("admin", "admin", &[], None);
    let reply = server
        .push(
            &ci,
            &[
                ("blueprint", "checkout-api"),
                ("version", "1.4.2"),
                ("git_sha", GIT_SHA),
                ("name", "notes.txt"),
            ],
            b"canary at 5% for 30 minutes\n",
        )
        .expect(201);
    let id = str_field(&reply.json()[0], "id");
    server
        .get(&format!("/v1/records/{id}"), Some(&alice))
        .expect(200);
    server.get("/v1/records", Some(&ci)).expect(403);

    let review = remote(
        &server,
        Some(&alice),
        &["--json", "audit", "access", "--since", "2000-01-01"],
    )
    .success()
    .json();
    let reads: Vec<(String, String, String, u64)> = review["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                str_field(e, "token"),
                str_field(e, "action"),
                str_field(e, "target"),
                e["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        reads,
        [
            ("alice".into(), "record.read".into(), id.clone(), 200),
            ("ci".into(), "records.query".into(), String::new(), 403),
        ]
    );
    let tokens: Vec<String> = review["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| str_field(t, "name"))
        .collect();
    assert_eq!(tokens, ["admin", "alice", "ci"]);
    assert!(
        review["tokens"][1]["last_used_at"].is_string(),
        "{review:#}"
    );
    assert!(review["tokens"][0].get("secret_hash").is_none());
    // A token of another role may not review access.
    remote(&server, Some(&ci), &["audit", "access"]).fails(6, &["role pusher"]);
    // A period that ended before the reads has none of them.
    let empty = remote(
        &server,
        Some(&alice),
        &["--json", "audit", "access", "--until", "2000-01-01"],
    )
    .success()
    .json();
    assert_eq!(empty["events"].as_array().unwrap().len(), 0);

    // Once the server has stopped, the same review from the vault directory.
    server.terminate();
    assert!(server.wait().success(), "{}", server.logs());
    let local = server
        .vault
        .run(["--json", "audit", "access", "--since", "2000-01-01"])
        .success()
        .json();
    // The remote review's own listings are events too: they come after the two reads.
    assert_eq!(local["events"][0], review["events"][0]);
    assert_eq!(local["events"][1], review["events"][1]);
    assert_eq!(local["tokens"].as_array().unwrap().len(), 3);
    let text = server
        .vault
        .run(["audit", "access", "--token", "alice"])
        .success()
        .stdout_text();
    assert!(text.contains("record.read"), "{text}");
    assert!(!text.contains("records.query"), "{text}");
    assert!(text.contains("tokens (3):"), "{text}");
    server
        .vault
        .run(["audit", "access", "--since", "last week"])
        .fails(2, &["invalid --since 'last week'"]);
}
