//! Deletion over HTTP, through the real server: `DELETE /v1/records/{id}` following roles,
//! retention modes and legal holds; `GET /v1/tombstones`; `POST /v1/retention/sweep`; and the
//! server's background sweeper removing what no record accounts for, configured by
//! `[retention] sweep_interval_secs`.

#[path = "common/mod.rs"]
mod common;
#[path = "common/server.rs"]
mod server_common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{BLUEPRINT, GIT_SHA, VERSION, Vault, sha256_hex};
use serde_json::{Value, json};
use server_common::{Reply, Req, Server, assert_problem, with_query};

fn sbom(component: &str) -> Vec<u8> {
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "components": [{"type": "library", "name": component, "version": "1.0.0"}],
    })
    .to_string()
    .into_bytes()
}

/// Pushes `body` as `name` with the default links; the id of the one record created.
#[track_caller]
fn push(server: &Server, token: &str, name: &str, body: &[u8]) -> String {
    let reply = server.push(
        token,
        &[
            ("blueprint", BLUEPRINT),
            ("version", VERSION),
            ("git_sha", GIT_SHA),
            ("name", name),
        ],
        body,
    );
    assert_eq!(reply.status, 201, "{reply:?}");
    let records = reply.json();
    assert_eq!(records.as_array().map(Vec::len), Some(1), "{records:#}");
    records[0]["id"].as_str().unwrap().to_string()
}

/// `method path` with a JSON body.
#[track_caller]
fn send_json(server: &Server, method: &str, path: &str, token: &str, body: Value) -> Reply {
    server.send(
        Req::new(method, path)
            .token(token)
            .header("content-type", "application/json")
            .body(body.to_string()),
    )
}

#[track_caller]
fn delete(server: &Server, token: &str, id: &str, body: Value) -> Reply {
    send_json(server, "DELETE", &format!("/v1/records/{id}"), token, body)
}

/// The ids of a `{"tombstones": [...]}` answer, newest first.
#[track_caller]
fn tombstone_ids(reply: &Reply) -> Vec<String> {
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.json()["tombstones"]
        .as_array()
        .unwrap_or_else(|| panic!("no tombstones array: {reply:?}"))
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect()
}

/// A valid blob file for `bytes` that no index row knows of, as an interrupted push leaves it;
/// its path. Written elsewhere and renamed in, so a sweep never sees it half-written.
fn plant_orphan(vault: &Vault, bytes: &[u8]) -> PathBuf {
    let path = vault.blob_file(&format!("sha256:{}", sha256_hex(bytes)));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let staged = vault.write("orphan.zst.tmp", zstd::encode_all(bytes, 3).unwrap());
    std::fs::rename(staged, &path).unwrap();
    path
}

/// Admins delete with a reason, early only with an override under governance, never through a
/// hold, never early under compliance; everyone else is refused; the body cannot name the
/// actor; and what was deleted is gone from the records and listed as a tombstone.
#[test]
fn deleting_a_record_over_http_follows_roles_retention_and_holds() {
    let server = Server::start();
    let admin = server.token("records-officer", "admin", &[], None);
    let auditor = server.token("auditor", "auditor", &[], None);
    let elsewhere = server.token("payments-auditor", "auditor", &["payments-*"], None);
    let ci = server.token("ci", "pusher", &[], None);
    let mistake = push(&server, &ci, "mistake.json", &sbom("left-pad"));
    let held = push(&server, &ci, "held.json", &sbom("held"));

    // Refusals, none of which deletes anything.
    let reply = delete(
        &server,
        &ci,
        &mistake,
        json!({"reason": "pushed by mistake", "override": true}),
    );
    assert_problem(&reply, 403, "forbidden", &["pusher"]);
    let reply = delete(
        &server,
        &admin,
        &mistake,
        json!({"reason": "pushed by mistake"}),
    );
    assert_problem(&reply, 403, "forbidden", &["governance", "--override"]);
    let reply = delete(
        &server,
        &admin,
        &mistake,
        json!({"reason": "  ", "override": true}),
    );
    assert_problem(&reply, 400, "invalid-input", &["reason"]);
    let reply = delete(
        &server,
        &admin,
        &mistake,
        json!({"reason": "r", "override": true, "deleted_by": "someone-else"}),
    );
    assert_problem(&reply, 400, "invalid-input", &["deleted_by"]);
    let reply = delete(
        &server,
        &admin,
        "abcdef0123456789abcdef",
        json!({"reason": "r", "override": true}),
    );
    assert_problem(&reply, 404, "not-found", &["abcdef0123456789abcdef"]);
    let reply = delete(
        &server,
        &admin,
        "not-an-id",
        json!({"reason": "r", "override": true}),
    );
    assert_problem(&reply, 400, "invalid-input", &["not-an-id"]);
    server
        .get(&format!("/v1/records/{mistake}"), Some(&auditor))
        .expect(200);
    assert!(tombstone_ids(&server.get("/v1/tombstones", Some(&auditor))).is_empty());

    // With the override: deleted early, by the token, and gone.
    let reply = delete(
        &server,
        &admin,
        &mistake[..10],
        json!({"reason": "pushed by mistake", "override": true}),
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    let tombstone = reply.json();
    assert_eq!(tombstone["id"], mistake.as_str(), "{tombstone:#}");
    assert_eq!(tombstone["deleted_by"], "records-officer", "{tombstone:#}");
    assert_eq!(tombstone["reason"], "pushed by mistake");
    assert_eq!(tombstone["early"], true);
    assert_eq!(tombstone["blueprint"]["name"], BLUEPRINT);
    let reply = server.get(&format!("/v1/records/{mistake}"), Some(&auditor));
    assert_problem(&reply, 404, "not-found", &[]);
    let again = delete(
        &server,
        &admin,
        &mistake,
        json!({"reason": "again", "override": true}),
    );
    assert_problem(&again, 404, "not-found", &[]);

    // Listed as a tombstone, with the filters of /v1/records and the caller's scopes.
    assert_eq!(
        tombstone_ids(&server.get("/v1/tombstones", Some(&auditor))),
        [mistake.as_str()]
    );
    let listed = server.get("/v1/tombstones", Some(&auditor)).json();
    assert_eq!(listed["tombstones"][0], tombstone);
    let by_blueprint = with_query(
        "/v1/tombstones",
        &[("blueprint", BLUEPRINT), ("kind", "sbom"), ("limit", "5")],
    );
    assert_eq!(
        tombstone_ids(&server.get(&by_blueprint, Some(&auditor))),
        [mistake.as_str()]
    );
    let other = with_query("/v1/tombstones", &[("blueprint", "other-api")]);
    assert!(tombstone_ids(&server.get(&other, Some(&auditor))).is_empty());
    assert!(
        tombstone_ids(&server.get("/v1/tombstones", Some(&elsewhere))).is_empty(),
        "a token scoped to other blueprints sees none of them"
    );
    assert_problem(
        &server.get("/v1/tombstones", Some(&ci)),
        403,
        "forbidden",
        &[],
    );
    assert_problem(
        &server.get("/v1/tombstones?cursor=r1", Some(&auditor)),
        400,
        "invalid-input",
        &["'cursor'"],
    );
    assert_problem(
        &server.get("/v1/tombstones?limit=0", Some(&auditor)),
        400,
        "invalid-input",
        &["limit"],
    );
    assert_problem(
        &server.get("/v1/tombstones?git_sha=xyz", Some(&auditor)),
        400,
        "invalid-input",
        &["git_sha"],
    );

    // A legal hold refuses even the override, naming the hold.
    send_json(
        &server,
        "POST",
        "/v1/holds",
        &admin,
        json!({"name": "case-7", "reason": "litigation", "record": held}),
    )
    .expect(201);
    let reply = delete(
        &server,
        &admin,
        &held,
        json!({"reason": "gdpr", "override": true}),
    );
    assert_problem(&reply, 403, "forbidden", &["legal hold 'case-7'"]);
    server
        .get(&format!("/v1/records/{held}"), Some(&auditor))
        .expect(200);

    // Under compliance mode nobody deletes early, override or not.
    send_json(
        &server,
        "PUT",
        "/v1/retention/policy",
        &admin,
        json!({"policy": "mode = \"compliance\"\ndefault = \"1y\"\n"}),
    )
    .expect(200);
    let kept = push(&server, &ci, "kept.json", &sbom("kept"));
    let reply = delete(
        &server,
        &admin,
        &kept,
        json!({"reason": "gdpr", "override": true}),
    );
    assert_problem(&reply, 403, "forbidden", &["compliance"]);
    server
        .get(&format!("/v1/records/{kept}"), Some(&auditor))
        .expect(200);
    assert_eq!(
        tombstone_ids(&server.get("/v1/tombstones", Some(&auditor))),
        [mistake.as_str()]
    );

    // The deletion is in the tamper-evident log, which still verifies, and the vault is whole.
    let entries = server.vault.run(["--json", "log", "entries"]).success();
    let deleted: Vec<Value> = entries
        .stdout_text()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|e| serde_json::from_str::<Value>(e["entry"].as_str().unwrap()).unwrap())
        .filter(|e| e["type"] == "record.deleted")
        .collect();
    assert_eq!(deleted.len(), 1, "{}", entries.stdout_text());
    assert_eq!(deleted[0]["subject"], format!("record/{mistake}"));
    server.vault.run(["log", "verify"]).success();
    server.vault.run(["fsck"]).success();
    assert!(
        server.logs().contains("record deleted"),
        "{}",
        server.logs()
    );
}

/// `POST /v1/retention/sweep`: admins only; a dry run reports and changes nothing, a real sweep
/// removes what no record accounts for and keeps every record whose retention runs.
#[test]
fn an_admin_sweeps_over_http_and_a_dry_run_changes_nothing() {
    let server = Server::start();
    let admin = server.token("records-officer", "admin", &[], None);
    let ci = server.token("ci", "pusher", &[], None);
    let id = push(&server, &ci, "sbom.json", &sbom("left-pad"));
    let orphan_bytes = b"bytes an interrupted push left behind\n";
    let orphan = plant_orphan(&server.vault, orphan_bytes);
    let orphan_digest = format!("sha256:{}", sha256_hex(orphan_bytes));
    let sweep =
        |token: &str, body: Value| send_json(&server, "POST", "/v1/retention/sweep", token, body);

    assert_problem(
        &sweep(&ci, json!({"dry_run": true})),
        403,
        "forbidden",
        &["pusher"],
    );
    assert_problem(
        &sweep(&admin, json!({"dry_run": "yes"})),
        400,
        "invalid-input",
        &["dry_run"],
    );
    assert_problem(
        &sweep(&admin, json!({"dry_run": true, "actor": "x"})),
        400,
        "invalid-input",
        &["actor"],
    );
    assert!(orphan.exists(), "refused sweeps remove nothing");

    let plan = sweep(&admin, json!({"dry_run": true})).expect(200).json();
    assert_eq!(plan["dry_run"], true, "{plan:#}");
    assert!(
        plan["at"].as_str().is_some_and(|at| at.ends_with('Z')),
        "{plan:#}"
    );
    assert_eq!(plan["deleted"], json!([]), "nothing is due yet: {plan:#}");
    assert_eq!(plan["orphan_files"], json!([orphan_digest]), "{plan:#}");
    assert!(plan["bytes_freed"].as_u64().unwrap() > 0, "{plan:#}");
    assert!(orphan.exists(), "a dry run changes nothing");
    assert_eq!(server.metric("evault_retention_sweeps_total"), 0);

    let done = sweep(&admin, json!({"dry_run": false})).expect(200).json();
    assert_eq!(done["dry_run"], false, "{done:#}");
    assert_eq!(done["deleted"], json!([]), "{done:#}");
    assert_eq!(done["kept"], json!([]), "{done:#}");
    assert_eq!(done["orphan_files"], plan["orphan_files"], "{done:#}");
    assert_eq!(done["bytes_freed"], plan["bytes_freed"], "{done:#}");
    assert!(!orphan.exists(), "the sweep removed the orphan file");

    // `dry_run` defaults to false; a second sweep has nothing left to do.
    let again = sweep(&admin, json!({})).expect(200).json();
    assert_eq!(again["dry_run"], false, "{again:#}");
    assert_eq!(again["orphan_files"], json!([]), "{again:#}");
    assert_eq!(again["bytes_freed"], 0, "{again:#}");

    server
        .get(&format!("/v1/records/{id}"), Some(&admin))
        .expect(200);
    assert_eq!(server.metric("evault_retention_sweeps_total"), 2);
    assert_eq!(server.metric("evault_retention_sweep_failures_total"), 0);
    assert_eq!(server.metric("evault_retention_swept_records_total"), 0);
    assert!(
        server.logs().contains("retention sweep"),
        "{}",
        server.logs()
    );
    server.vault.run(["fsck"]).success();
}

/// With `[retention] sweep_interval_secs = 1`, the server sweeps by itself: an orphan blob file
/// planted while it runs is removed within seconds, the records stay, and the vault checks.
#[test]
fn the_background_sweeper_removes_what_no_record_accounts_for() {
    let server = Server::start_on(
        Vault::initialised(),
        Some("[retention]\nsweep_interval_secs = 1\n"),
    );
    let ci = server.token("ci", "pusher", &[], None);
    let id = push(&server, &ci, "sbom.json", &sbom("left-pad"));
    let kept_blob = server
        .vault
        .blob_file(&common::digest_of(&sbom("left-pad")));
    assert!(kept_blob.exists(), "{}", kept_blob.display());

    let orphan = plant_orphan(&server.vault, b"left behind by an interrupted push\n");
    let deadline = Instant::now() + Duration::from_secs(20);
    while orphan.exists() {
        assert!(
            Instant::now() < deadline,
            "the background sweeper did not remove {} within 20 s; server log:\n{}",
            orphan.display(),
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(kept_blob.exists(), "a record's blob is never swept");
    let admin = server.token("admin", "admin", &[], None);
    server
        .get(&format!("/v1/records/{id}"), Some(&admin))
        .expect(200);

    // The log line comes after the unlink; give it a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.logs().contains("background retention sweep done") {
        assert!(Instant::now() < deadline, "{}", server.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(server.metric("evault_retention_sweeps_total") >= 1);
    assert_eq!(server.metric("evault_retention_sweep_failures_total"), 0);

    let mut server = server;
    server.terminate();
    let status = server.wait();
    assert!(status.success(), "{status:?}\n{}", server.logs());
    let logs = server.logs();
    assert!(!logs.contains("sweep failed"), "{logs}");
    common::assert_no_panic(&logs);
    server.vault.run(["fsck"]).success();
    server.vault.run(["log", "verify"]).success();
}

/// A wrong `[retention]` section stops the server before it starts, naming the file, the line
/// and the key.
#[test]
fn a_bad_retention_section_is_refused_naming_the_file() {
    let v = Vault::initialised();
    for (name, text, needles) in [
        (
            "not-a-number.toml",
            "[retention]\nsweep_interval_secs = \"x\"\n",
            &[
                "not-a-number.toml",
                "line 2",
                "retention.sweep_interval_secs",
            ][..],
        ),
        (
            "unknown-key.toml",
            "[retention]\nsweep_every = 60\n",
            &[
                "unknown-key.toml",
                "line 2",
                "sweep_every",
                "sweep_interval_secs",
            ][..],
        ),
        (
            "too-long.toml",
            "[retention]\nsweep_interval_secs = 100000000\n",
            &[
                "too-long.toml",
                "retention.sweep_interval_secs",
                "0 disables",
            ][..],
        ),
    ] {
        v.write(name, text);
        v.run(["serve", "--listen", "127.0.0.1:0", "--config", name])
            .fails(2, needles);
    }
}
