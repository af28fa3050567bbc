//! Retention policies and legal holds through the real binary (issue 7): the policy in force,
//! compliance refusing to shorten anything, re-application that only lengthens, holds and
//! their errors, and the tamper-evident log covering all of it.

#[path = "common/mod.rs"]
mod common;
#[path = "common/server.rs"]
mod server_common;

use common::{BLUEPRINT, Vault, str_field, with_links};
use serde_json::{Value, json};
use server_common::{Req, Server};

const SBOM: &str = r#"{"bomFormat":"CycloneDX","specVersion":"1.5","version":1,"components":[]}"#;

fn retention(record: &Value) -> (String, String) {
    (
        str_field(&record["retention"], "retain_until"),
        str_field(&record["retention"], "rule"),
    )
}

fn years_after(until: &str, from: &str) -> i32 {
    assert_eq!(
        until[4..],
        from[4..],
        "{until} vs {from}: same day and time"
    );
    until[..4].parse::<i32>().unwrap() - from[..4].parse::<i32>().unwrap()
}

#[test]
fn a_compliance_policy_only_ever_lengthens_retention() {
    let v = Vault::initialised();
    v.write("sbom.json", SBOM);
    let sbom = v.push_json(with_links(&["sbom.json"])).remove(0);
    let ingested = str_field(&sbom, "ingested_at");
    assert_eq!(retention(&sbom).1, "default: 1y");
    assert_eq!(years_after(&retention(&sbom).0, &ingested), 1);

    // The default policy is shown as a policy file would say it.
    let shown = v.run(["retention", "show"]).success().stdout_text();
    assert!(
        shown.starts_with("# mode: governance (the default"),
        "{shown}"
    );
    assert!(shown.contains("mode = \"governance\""), "{shown}");

    // Compliance, SBOMs of this blueprint 3 years: the stored SBOM is lengthened.
    let policy = format!(
        "mode = \"compliance\"\ndefault = \"1y\"\n\n[[rule]]\nkind = \"sbom\"\n\
         blueprint = \"{BLUEPRINT}\"\nperiod = \"3y\"\n"
    );
    v.write("policy.toml", &policy);
    let set = v
        .run(["--json", "retention", "set", "--file", "policy.toml"])
        .success()
        .json();
    assert_eq!(set["records_extended"], 1, "{set:#}");
    assert_eq!(set["policy"]["mode"], "compliance");
    let kept = v.show_json(&str_field(&sbom, "id"));
    assert_eq!(years_after(&retention(&kept).0, &ingested), 3);
    assert_eq!(
        retention(&kept).1,
        format!("rule 1 (kind=sbom, blueprint={BLUEPRINT}): 3y")
    );

    // Shortening it again, or leaving compliance, is refused and changes nothing.
    let before = v.snapshot();
    for (name, text) in [
        ("shorter.toml", policy.replace("3y", "2y")),
        (
            "governance.toml",
            policy.replace("compliance", "governance"),
        ),
    ] {
        v.write(name, &text);
        let run = v.run(["retention", "set", "--file", name]);
        assert_eq!(run.code, 6, "{run:?}");
        assert!(run.stderr.contains("compliance mode"), "{run:?}");
        assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
    }
    assert_eq!(
        v.snapshot(),
        before,
        "a refused policy leaves the vault unchanged"
    );

    // A longer one is accepted; a bad file is named with the reason.
    v.write("longer.toml", policy.replace("3y", "5y"));
    v.run(["retention", "set", "--file", "longer.toml"])
        .success();
    let kept = v.show_json(&str_field(&sbom, "id"));
    assert_eq!(years_after(&retention(&kept).0, &ingested), 5);
    v.write("bad.toml", "mode = \"compliance\"\ndefault = \"1x\"\n");
    v.run(["retention", "set", "--file", "bad.toml"])
        .fails(2, &["bad.toml", "default"]);
    v.write(
        "typo.toml",
        "mode = \"compliance\"\ndefault = \"5y\"\n[[rule]]\nkind = \"sboms\"\nperiod = \"7y\"\n",
    );
    v.run(["retention", "set", "--file", "typo.toml"]).fails(
        2,
        &[
            "typo.toml",
            "rule 1: kind: unknown kind 'sboms'",
            "vuln-scan",
        ],
    );

    let verified = v.run(["log", "verify"]).success().stdout_text();
    assert!(verified.contains("the log verifies"), "{verified}");
}

#[test]
fn under_governance_a_shorter_policy_applies_to_new_records_only() {
    let v = Vault::initialised();
    v.write("sbom.json", SBOM);
    let old = v.push_json(with_links(&["sbom.json"])).remove(0);
    v.write("short.toml", "mode = \"governance\"\ndefault = \"90d\"\n");
    let set = v
        .run(["--json", "retention", "set", "--file", "short.toml"])
        .success()
        .json();
    assert_eq!(set["records_extended"], 0);
    assert_eq!(
        retention(&v.show_json(&str_field(&old, "id"))),
        retention(&old),
        "stored records are never shortened"
    );
    v.write(
        "other.json",
        SBOM.replace("[]", "[{\"name\":\"x\",\"type\":\"library\"}]"),
    );
    let new = v.push_json(with_links(&["other.json"])).remove(0);
    assert_eq!(retention(&new).1, "default: 90d");
}

#[test]
fn legal_holds_are_placed_listed_and_released_in_the_log() {
    let v = Vault::initialised().with_actor("legal");
    v.run([
        "hold",
        "add",
        "case-42",
        "--reason",
        "Acme v. Example, matter 42",
        "--blueprint",
        "checkout-*",
        "--since",
        "2026-01-01",
    ])
    .success();
    let holds = v.run(["--json", "hold", "ls"]).success().json();
    assert_eq!(holds.as_array().map(Vec::len), Some(1), "{holds:#}");
    assert_eq!(holds[0]["name"], "case-42");
    assert_eq!(holds[0]["created_by"], "legal");
    assert_eq!(holds[0]["selector"]["blueprint"], "checkout-*");
    assert_eq!(holds[0]["selector"]["since"], "2026-01-01T00:00:00Z");

    // Errors, each one line with its exit code, none changing anything.
    let before = v.snapshot();
    v.run([
        "hold",
        "add",
        "case-42",
        "--reason",
        "again",
        "--blueprint",
        "x",
    ])
    .fails(2, &["hold 'case-42' already exists and is active"]);
    v.run(["hold", "add", "wide", "--reason", "everything"])
        .fails(2, &["invalid hold 'wide'", "selector"]);
    v.run([
        "hold",
        "add",
        "bad name",
        "--reason",
        "r",
        "--blueprint",
        "x",
    ])
    .fails(2, &["invalid hold 'bad name'"]);
    v.run(["hold", "add", "v", "--reason", "r", "--version", "1.0.0"])
        .fails(2, &["version"]);
    v.run(["hold", "add", "t", "--reason", "r", "--since", "yesterday"])
        .fails(2, &["--since"]);
    v.run(["hold", "release", "nope", "--reason", "r"])
        .fails(3, &["no hold named 'nope'"]);
    v.run(["hold", "release", "case-42", "--reason", "  "])
        .fails(2, &["needs a reason"]);
    assert_eq!(v.snapshot(), before);

    v.run(["hold", "release", "case-42", "--reason", "settled"])
        .success();
    assert_eq!(
        v.run(["--json", "hold", "ls"]).success().json(),
        Value::Array(Vec::new())
    );
    let all = v.run(["--json", "hold", "ls", "--all"]).success().json();
    assert_eq!(all[0]["released"]["reason"], "settled");
    assert_eq!(all[0]["released"]["by"], "legal");
    v.run(["hold", "release", "case-42", "--reason", "twice"])
        .fails(2, &["already released"]);
    v.run([
        "hold",
        "add",
        "case-42",
        "--reason",
        "r",
        "--blueprint",
        "x",
    ])
    .fails(2, &["names are not reused"]);

    // Both changes are log entries with their reasons, and an edited hold is found.
    let out = v.run(["--json", "log", "entries"]).success().stdout_text();
    let hold_entries: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|e| serde_json::from_str::<Value>(e["entry"].as_str().unwrap()).unwrap())
        .filter(|e| e["subject"] == "hold/case-42")
        .collect();
    assert_eq!(hold_entries.len(), 2, "{out}");
    assert_eq!(hold_entries[0]["type"], "hold.added");
    assert_eq!(hold_entries[1]["type"], "hold.released");
    assert_eq!(hold_entries[1]["reason"], "settled");
    v.run(["log", "verify"]).success();
    let conn = rusqlite::Connection::open(v.data_dir().join("index.db")).unwrap();
    conn.execute("UPDATE holds SET released_at = NULL", [])
        .unwrap();
    drop(conn);
    let run = v.run(["log", "verify"]);
    assert_eq!(run.code, 4, "{run:?}");
    assert!(run.stdout_text().contains("case-42"), "{run:?}");
}

/// Over HTTP: admins set the policy and place holds, auditors read them, pushers do neither;
/// who acted is the token's name, and a body naming someone else is refused.
/// `evault rm` through the real binary: what the mode allows, refusals that change nothing,
/// the tombstone in `ls --include-deleted`, and a log and store that still verify.
#[test]
fn rm_deletes_only_where_the_mode_allows_and_leaves_a_tombstone() {
    let v = Vault::initialised().with_actor("admin");
    v.write("a.json", SBOM);
    v.write(
        "b.json",
        SBOM.replace("[]", r#"[{"type":"library","name":"b"}]"#),
    );
    let a = str_field(&v.push_json(with_links(&["a.json"])).remove(0), "id");
    let b = v.push_json(with_links(&["b.json"])).remove(0);
    let b_id = str_field(&b, "id");
    let b_blob = v.blob_file(&str_field(&b, "digest"));
    assert!(b_blob.is_file());
    v.run(["hold", "add", "keep-a", "--reason", "case", "--record", &a])
        .success();
    assert_eq!(v.show_json(&a)["holds"], json!(["keep-a"]));
    let shown = v.run(["show", &a]).success().stdout_text();
    assert!(
        shown.contains("legal holds:    keep-a") && shown.contains("retained until: "),
        "{shown}"
    );
    assert!(
        v.show_json(&b_id).get("holds").is_none(),
        "no holds: no field"
    );

    let before = v.snapshot();
    v.run(["rm", &b_id, "--reason", "mistake"])
        .fails(6, &["governance mode", "--override"]);
    v.run(["rm", &b_id, "--reason", "  ", "--override"])
        .fails(2, &["reason"]);
    v.run(["rm", &a, "--reason", "gdpr", "--override"])
        .fails(6, &["legal hold 'keep-a'"]);
    v.run(["rm", &b_id, "--reason", &"x".repeat(5000), "--override"])
        .fails(2, &["invalid --reason", "at most 1000"]);
    v.run(["rm", &b_id, "--reason", "two\nlines", "--override"])
        .fails(2, &["invalid --reason", "one line"]);
    v.run(["rm", "ffffffffffff", "--reason", "x", "--override"])
        .fails(3, &["no record"]);
    let missing = v.run(["rm", &b_id]);
    assert_eq!(missing.code, 2, "{missing:?}");
    assert_eq!(v.snapshot(), before, "refusals leave the vault unchanged");

    let gone = v
        .run([
            "--json",
            "rm",
            &b_id[..10],
            "--reason",
            "pushed by mistake",
            "--override",
        ])
        .success()
        .json();
    assert_eq!(gone["id"], b_id.as_str());
    assert_eq!(gone["deleted_by"], "admin");
    assert_eq!(gone["early"], true);
    assert!(!b_blob.exists(), "its bytes went with it");
    v.run(["show", &b_id]).fails(3, &["no record"]);
    let listed = v
        .run(["--json", "ls", "--include-deleted"])
        .success()
        .json();
    assert_eq!(listed["records"].as_array().map(Vec::len), Some(1));
    assert_eq!(listed["tombstones"][0]["id"], b_id.as_str());
    assert_eq!(listed["tombstones"][0]["reason"], "pushed by mistake");
    let table = v.run(["ls", "--include-deleted"]).success().stdout_text();
    assert!(
        table.contains(&b_id[..12]) && table.contains("early: pushed by mistake"),
        "{table}"
    );
    v.run(["log", "verify"]).success();
    v.run(["fsck"]).success();

    // Under compliance nobody deletes early, override or not.
    v.write("c.toml", "mode = \"compliance\"\ndefault = \"1y\"\n");
    v.run(["retention", "set", "--file", "c.toml"]).success();
    v.run(["hold", "release", "keep-a", "--reason", "closed"])
        .success();
    v.run(["rm", &a, "--reason", "gdpr", "--override"])
        .fails(6, &["compliance mode"]);
}

/// `retention sweep --dry-run --at` lists exactly what will have expired by then and changes
/// nothing; a real sweep now (nothing due yet) deletes nothing.
#[test]
fn a_dry_run_sweep_says_what_will_expire_and_changes_nothing() {
    let v = Vault::initialised();
    v.write("sbom.json", SBOM);
    v.write(
        "provenance.json",
        r#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"app","digest":{"sha256":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}}],"predicateType":"https://slsa.dev/provenance/v1","predicate":{"buildDefinition":{"buildType":"x","externalParameters":{}},"runDetails":{"builder":{"id":"https://ci.example/builder"}}}}"#,
    );
    let sbom = v.push_json(with_links(&["sbom.json"])).remove(0);
    let prov = v.push_json(with_links(&["provenance.json"])).remove(0);
    assert_eq!(
        retention(&prov).1,
        "rule 1 (kind=provenance): 7y",
        "{prov:#}"
    );
    let before = v.snapshot();

    let in_two_years = format!(
        "{}",
        str_field(&sbom, "ingested_at")[..4].parse::<i32>().unwrap() + 2
    );
    let at = format!("{in_two_years}-12-31");
    let plan = v
        .run(["--json", "retention", "sweep", "--dry-run", "--at", &at])
        .success()
        .json();
    assert_eq!(plan["dry_run"], true);
    let deleted: Vec<&str> = plan["deleted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(deleted, [str_field(&sbom, "id")], "{plan:#}");
    assert_eq!(plan["blobs_removed"][0]["digest"], sbom["digest"]);
    let text = v
        .run(["retention", "sweep", "--dry-run", "--at", &at])
        .success()
        .stdout_text();
    assert!(
        text.contains(&format!("would delete record {}", str_field(&sbom, "id")))
            && text.contains("dry run as of"),
        "{text}"
    );
    assert_eq!(v.snapshot(), before, "a dry run changes nothing");

    // --at is for dry runs only: a sweep cannot be told it is later than it is.
    let early = v.run(["retention", "sweep", "--at", &at]);
    assert_eq!(early.code, 2, "{early:?}");
    assert!(early.stderr.contains("--dry-run"), "{early:?}");
    let now = v.run(["--json", "retention", "sweep"]).success().json();
    assert_eq!(now["deleted"].as_array().map(Vec::len), Some(0), "{now:#}");
    assert_eq!(v.ls_json(Vec::<String>::new()).len(), 2);
}

#[test]
fn over_http_only_admins_change_retention_and_the_actor_is_the_token() {
    let server = Server::start();
    let admin = server.token("records-officer", "admin", &[], None);
    let auditor = server.token("auditor", "auditor", &[], None);
    let ci = server.token("ci", "pusher", &[], None);
    let remote = |token: &str, args: &[&str]| server_common::remote(&server, Some(token), args);

    let policy = "mode = \"governance\"\ndefault = \"2y\"\n";
    let path = std::env::temp_dir().join(format!("evault-policy-{}.toml", std::process::id()));
    std::fs::write(&path, policy).unwrap();
    let file = path.to_str().unwrap();
    let run = remote(&ci, &["retention", "set", "--file", file]);
    assert_eq!(run.code, 6, "{run:?}");
    let set = remote(&admin, &["--json", "retention", "set", "--file", file]);
    assert_eq!(set.code, 0, "{set:?}");
    let shown = remote(&auditor, &["--json", "retention", "show"]);
    assert_eq!(shown.code, 0, "{shown:?}");
    let shown = shown.json();
    assert_eq!(shown["set_by"], "records-officer");
    assert!(
        shown["policy"]
            .as_str()
            .unwrap()
            .contains("default = \"2y\""),
        "{shown:#}"
    );
    std::fs::remove_file(&path).unwrap();

    let add = remote(
        &admin,
        &[
            "--json",
            "hold",
            "add",
            "audit-2026",
            "--reason",
            "SOC 2 period",
            "--git-sha",
            "abcdef1",
        ],
    );
    assert_eq!(add.code, 0, "{add:?}");
    assert_eq!(add.json()["created_by"], "records-officer");
    assert_eq!(remote(&ci, &["hold", "ls"]).code, 6);
    let listed = remote(&auditor, &["--json", "hold", "ls"]);
    assert_eq!(listed.json()[0]["name"], "audit-2026", "{listed:?}");
    assert_eq!(
        remote(
            &auditor,
            &["hold", "release", "audit-2026", "--reason", "x"]
        )
        .code,
        6
    );

    // The body cannot name the actor; unknown fields are a 400.
    let forged = server.send(
        Req::new("POST", "/v1/holds")
            .token(&admin)
            .header("content-type", "application/json")
            .body(
                json!({"name": "h2", "reason": "r", "blueprint": "x", "created_by": "someone"})
                    .to_string(),
            ),
    );
    assert_eq!(forged.status, 400, "{}", forged.text());
    let missing = server.send(
        Req::new("POST", "/v1/holds/nope/release")
            .token(&admin)
            .header("content-type", "application/json")
            .body(json!({"reason": "r"}).to_string()),
    );
    assert_eq!(missing.status, 404, "{}", missing.text());
    let released = remote(
        &admin,
        &[
            "--json",
            "hold",
            "release",
            "audit-2026",
            "--reason",
            "closed",
        ],
    );
    assert_eq!(released.code, 0, "{released:?}");
    assert_eq!(released.json()["released"]["by"], "records-officer");
    let again = remote(
        &admin,
        &["hold", "release", "audit-2026", "--reason", "closed"],
    );
    assert_eq!(again.code, 2, "{again:?}");
}

/// A backup taken while a server keeps accepting pushes is a consistent snapshot: restored into
/// a new directory, it passes `fsck` and `log verify` against a checkpoint taken before it,
/// holds every push acknowledged before the backup began, and nothing half-written.
#[test]
fn a_backup_during_concurrent_pushes_restores_to_a_vault_that_verifies() {
    let server = Server::start();
    let ci = server.token("ci", "pusher", &[], None);
    let v = &server.vault;
    let push = |i: usize| {
        let body = format!("release note {i}\n");
        let name = format!("note-{i}.txt");
        let reply = server.push(
            &ci,
            &[
                ("blueprint", BLUEPRINT),
                ("version", "1.0.0"),
                ("git_sha", &"ab".repeat(20)),
                ("name", &name),
            ],
            body.as_bytes(),
        );
        assert_eq!(reply.status, 201, "{}", reply.text());
    };
    for i in 0..20 {
        push(i);
    }
    let checkpoint = v.run(["log", "checkpoint"]).success().stdout_text();
    v.write("before.checkpoint", &checkpoint);
    let acknowledged = v.ls_json(["--limit", "1000"]).len();

    let backup_dir = v.path("backup");
    let pushing = std::sync::atomic::AtomicBool::new(true);
    let pushed = std::thread::scope(|scope| {
        let pusher = scope.spawn(|| {
            let mut n = 0;
            while pushing.load(std::sync::atomic::Ordering::Relaxed) || n < 5 {
                push(1000 + n);
                n += 1;
            }
            n
        });
        let run = v.run(["--json", "backup", backup_dir.to_str().unwrap()]);
        pushing.store(false, std::sync::atomic::Ordering::Relaxed);
        let n = pusher.join().unwrap();
        assert_eq!(run.code, 0, "{run:?}");
        let manifest = run.json();
        assert!(
            manifest["records"].as_u64().unwrap() >= acknowledged as u64,
            "{manifest:#}"
        );
        n
    });
    assert!(pushed >= 5);

    // Restored elsewhere: it opens, every blob is intact, the log is consistent with the
    // checkpoint taken before, and the records are those of the snapshot.
    let restored = Vault::new();
    let run = restored.run(["restore", backup_dir.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{run:?}");
    restored.run(["fsck"]).success();
    v.write("vault.vkey", v.run(["log", "key"]).success().stdout_text());
    let verify = restored.run([
        "log",
        "verify",
        "--checkpoint",
        v.path("before.checkpoint").to_str().unwrap(),
        "--key",
        v.path("vault.vkey").to_str().unwrap(),
    ]);
    assert_eq!(verify.code, 0, "{verify:?}");
    let count = restored.ls_json(["--limit", "10000"]).len();
    assert!(count >= acknowledged, "{count} < {acknowledged}");
    assert!(count <= acknowledged + pushed, "{count}");

    // A backup is refused into a directory in use, and a restore from something else.
    v.run(["backup", backup_dir.to_str().unwrap()])
        .fails(2, &["not empty"]);
    let other = Vault::new();
    other
        .run(["restore", v.root().to_str().unwrap()])
        .fails(2, &["evault-backup.json"]);
    let run = restored.run(["restore", backup_dir.to_str().unwrap()]);
    assert_eq!(run.code, 2, "{run:?}");
    let file = v.write("a-file", "not a directory");
    v.run(["backup", file.to_str().unwrap()])
        .fails(2, &["not a directory"]);

    // A damaged backup (a blob file lost) is refused whole: exit 4 naming the blob, and no
    // half-restored vault left behind.
    let damaged = v.path("damaged");
    let copy = std::process::Command::new("cp")
        .args([
            "-r",
            backup_dir.to_str().unwrap(),
            damaged.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(copy.success());
    let lost = common::walk(&damaged)
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "zst"))
        .unwrap();
    std::fs::remove_file(&lost).unwrap();
    let target = Vault::new();
    target
        .run(["restore", damaged.to_str().unwrap()])
        .fails(4, &["damaged backup", "is missing"]);
    assert!(!target.data_dir().exists(), "nothing half-restored");
}
