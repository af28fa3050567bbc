//! End-to-end scenarios for the access log: reads by tokens through a real `evault serve`
//! become hash-chained events in `<data-dir>/access.db`, readable over `GET /v1/log/access` by
//! unscoped auditors and admins, verifiable once the server has stopped, and recording them
//! never gets in the way of pushes.

#[path = "common/mod.rs"]
mod common;
#[path = "common/server.rs"]
mod server_common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::*;
use evault_core::access::{AccessFilter, AccessLog};
use serde_json::Value;
use server_common::*;

const PROBLEMS: &str = "https://evault.dev/problems/";
const NOTES: &[u8] = b"deploy notes: canary at 5% for 30 minutes, then 100%\n";

/// The query parameters of the default links, plus `extra`.
fn links<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut params = vec![
        ("blueprint", BLUEPRINT),
        ("version", VERSION),
        ("git_sha", GIT_SHA),
    ];
    params.extend_from_slice(extra);
    params
}

/// Pushes `body` as `name` with `token`; the record's id and digest.
#[track_caller]
fn push(server: &Server, token: &str, name: &str, body: &[u8]) -> (String, String) {
    let reply = server
        .push(token, &links(&[("name", name)]), body)
        .expect(201);
    let record = &reply.json()[0];
    (str_field(record, "id"), str_field(record, "digest"))
}

/// One page of `GET /v1/log/access?params`: the events and `next`.
#[track_caller]
fn access_page(server: &Server, token: &str, params: &[(&str, &str)]) -> (Vec<Value>, Value) {
    let reply = server
        .get(&with_query("/v1/log/access", params), Some(token))
        .expect(200);
    let body = reply.json();
    let events = body["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no events array: {reply:?}"))
        .clone();
    assert!(
        body.get("next").is_some(),
        "next must always be present: {reply:?}"
    );
    (events, body["next"].clone())
}

/// Every event matching `params`, following `next` with pages of `limit`.
#[track_caller]
fn all_events(server: &Server, token: &str, params: &[(&str, &str)], limit: usize) -> Vec<Value> {
    let limit = limit.to_string();
    let mut after = String::new();
    let mut out = Vec::new();
    loop {
        let mut query = params.to_vec();
        query.push(("limit", &limit));
        if !after.is_empty() {
            query.push(("after", &after));
        }
        let (events, next) = access_page(server, token, &query);
        out.extend(events);
        match next.as_u64() {
            Some(n) => after = n.to_string(),
            None => return out,
        }
    }
}

/// The event's field as text.
fn text(event: &Value, field: &str) -> String {
    event[field]
        .as_str()
        .unwrap_or_else(|| panic!("event without {field}: {event}"))
        .to_string()
}

fn time(event: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(&text(event, "at"))
        .unwrap_or_else(|e| panic!("at is not RFC 3339 ({e}): {event}"))
        .with_timezone(&Utc)
}

#[test]
fn reads_by_two_tokens_are_recorded_with_who_what_when_where_and_the_status() {
    let server = Server::start();
    let admin = server.token("admin", "admin", &[], None);
    let alice = server.token("alice", "auditor", &[], None);
    let bob = server.token("bob", "approver", &["payments-*"], None);
    let ci = server.token("ci", "pusher", &[], None);
    let (id, digest) = push(&server, &ci, "notes.txt", NOTES);
    let unknown_id = "0123456789abcdef0123456789abcdef";

    // Neither a push, nor a request without a valid token, nor an unlogged route is an event.
    server.get(&format!("/v1/records/{id}"), None).expect(401);
    server.get("/v1/whoami", Some(&alice)).expect(200);
    let started = Utc::now();

    struct Read<'a> {
        secret: &'a str,
        token: &'a str,
        role: &'a str,
        method: &'a str,
        path: String,
        status: u16,
        action: &'a str,
        target: String,
    }
    let listing = "blueprint=checkout-api&limit=5";
    let reads = [
        Read {
            secret: &alice,
            token: "alice",
            role: "auditor",
            method: "GET",
            path: format!("/v1/records/{id}"),
            status: 200,
            action: "record.read",
            target: id.clone(),
        },
        Read {
            secret: &alice,
            token: "alice",
            role: "auditor",
            method: "GET",
            path: format!("/v1/records?{listing}"),
            status: 200,
            action: "records.query",
            target: listing.to_string(),
        },
        Read {
            secret: &alice,
            token: "alice",
            role: "auditor",
            method: "GET",
            path: format!("/v1/blobs/{digest}"),
            status: 200,
            action: "blob.read",
            target: digest.clone(),
        },
        Read {
            secret: &alice,
            token: "alice",
            role: "auditor",
            method: "HEAD",
            path: format!("/v1/blobs/{digest}"),
            status: 200,
            action: "blob.head",
            target: digest.clone(),
        },
        Read {
            secret: &alice,
            token: "alice",
            role: "auditor",
            method: "GET",
            path: format!("/v1/records/{unknown_id}"),
            status: 404,
            action: "record.read",
            target: unknown_id.to_string(),
        },
        // Out of bob's scopes: 404, as if it did not exist, and recorded as such.
        Read {
            secret: &bob,
            token: "bob",
            role: "approver",
            method: "GET",
            path: format!("/v1/records/{id}"),
            status: 404,
            action: "record.read",
            target: id.clone(),
        },
        Read {
            secret: &bob,
            token: "bob",
            role: "approver",
            method: "GET",
            path: "/v1/records".to_string(),
            status: 200,
            action: "records.query",
            target: String::new(),
        },
        // A pusher may not read: 403, recorded.
        Read {
            secret: &ci,
            token: "ci",
            role: "pusher",
            method: "GET",
            path: format!("/v1/blobs/{digest}"),
            status: 403,
            action: "blob.read",
            target: digest.clone(),
        },
    ];
    let mut request_ids = Vec::new();
    for read in &reads {
        let reply = server
            .send(Req::new(read.method, read.path.clone()).token(read.secret))
            .expect(read.status);
        request_ids.push(
            reply
                .header("x-request-id")
                .unwrap_or_else(|| panic!("no x-request-id: {reply:?}")),
        );
    }
    let finished = Utc::now();

    let (events, next) = access_page(&server, &admin, &[]);
    assert_eq!(next, Value::Null);
    assert_eq!(events.len(), reads.len(), "{events:#?}");
    let mut failures = Vec::new();
    for (i, ((read, event), request_id)) in reads.iter().zip(&events).zip(&request_ids).enumerate()
    {
        let expected = [
            ("token", Value::from(read.token)),
            ("role", Value::from(read.role)),
            ("action", Value::from(read.action)),
            ("target", Value::from(read.target.as_str())),
            ("status", Value::from(read.status)),
            ("request_id", Value::from(request_id.as_str())),
            ("seq", Value::from(i as u64 + 1)),
        ];
        for (field, want) in expected {
            if event[field] != want {
                failures.push(format!(
                    "{} {} as {}: {field} is {} instead of {want}",
                    read.method, read.path, read.token, event[field]
                ));
            }
        }
        if !text(event, "remote").starts_with("127.0.0.1:") {
            failures.push(format!(
                "event {i}: remote {} is not the peer",
                event["remote"]
            ));
        }
        let at = time(event);
        if at < started - chrono::Duration::seconds(1) || at > finished {
            failures.push(format!(
                "event {i}: at {at} is not between {started} and {finished}"
            ));
        }
        for hash in ["prev_hash", "hash"] {
            let h = text(event, hash);
            if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                failures.push(format!("event {i}: {hash} {h:?} is not 64 hex characters"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(text(&events[0], "prev_hash"), "0".repeat(64));
    for pair in events.windows(2) {
        assert_eq!(pair[1]["prev_hash"], pair[0]["hash"], "the events chain");
    }

    // Reading the access log is itself an event.
    let (events, _) = access_page(&server, &alice, &[("action", "access.query")]);
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["token"], "admin");
    assert_eq!(events[0]["target"], "");
    assert_eq!(events[0]["status"], 200);
}

#[test]
fn only_unscoped_auditors_and_admins_may_read_the_access_log_and_bad_filters_are_named() {
    let server = Server::start();
    let auditor = server.token("auditor", "auditor", &[], None);
    let admin = server.token("admin", "admin", &[], None);
    let pusher = server.token("ci", "pusher", &[], None);
    let approver = server.token("approver", "approver", &[], None);
    let scoped = server.token("payments-auditor", "auditor", &["payments-*"], None);

    for (secret, needle) in [
        (&pusher, "role pusher"),
        (&approver, "role approver"),
        (&scoped, "without blueprint scopes"),
    ] {
        let reply = server.get("/v1/log/access", Some(secret)).expect(403);
        let body = reply.json();
        assert_eq!(body["type"], format!("{PROBLEMS}forbidden"), "{reply:?}");
        assert!(
            body["detail"].as_str().unwrap_or("").contains(needle),
            "{reply:?}"
        );
    }
    let reply = server.get("/v1/log/access", None).expect(401);
    assert_eq!(reply.json()["type"], format!("{PROBLEMS}unauthenticated"));
    assert!(reply.header("www-authenticate").is_some());
    server.get("/v1/log/access", Some(&admin)).expect(200);

    for (query, needle) in [
        ("since=yesterday", "invalid since 'yesterday'"),
        ("until=2025-13-01", "invalid until '2025-13-01'"),
        ("limit=0", "invalid limit '0'"),
        ("limit=1001", "invalid limit '1001'"),
        ("after=-1", "invalid after '-1'"),
        ("action=blob.write", "invalid action 'blob.write'"),
        ("token=no%20spaces", "invalid token 'no spaces'"),
        ("tokn=alice", "unknown query parameter 'tokn'"),
        ("limit=1&limit=2", "'limit' is given more than once"),
    ] {
        let reply = server
            .get(&format!("/v1/log/access?{query}"), Some(&auditor))
            .expect(400);
        let body = reply.json();
        assert_eq!(body["type"], format!("{PROBLEMS}invalid-input"), "{query}");
        assert_eq!(body["instance"], "/v1/log/access");
        assert_eq!(
            body["request_id"].as_str(),
            reply.header("x-request-id").as_deref()
        );
        let detail = body["detail"].as_str().unwrap_or("");
        assert!(detail.contains(needle), "{query}: {detail}");
    }

    // Every one of those answers, refusals included, is an event with its status.
    let statuses: Vec<(String, u64)> = all_events(&server, &auditor, &[], 1000)
        .iter()
        .map(|e| (text(e, "token"), e["status"].as_u64().unwrap()))
        .collect();
    let expected: Vec<(String, u64)> = [
        ("ci", 403),
        ("approver", 403),
        ("payments-auditor", 403),
        ("admin", 200),
    ]
    .into_iter()
    .chain(std::iter::repeat_n(("auditor", 400), 9))
    .map(|(t, s)| (t.to_string(), s))
    .collect();
    assert_eq!(statuses, expected);
}

#[test]
fn since_until_token_and_action_filters_select_events_and_pages_follow_next() {
    let server = Server::start();
    let admin = server.token("admin", "admin", &[], None);
    let alice = server.token("alice", "auditor", &[], None);
    let bob = server.token("bob", "auditor", &[], None);
    let (id, digest) = push(&server, &admin, "notes.txt", NOTES);
    let record = format!("/v1/records/{id}");
    let blob = format!("/v1/blobs/{digest}");
    for (secret, path) in [
        (&alice, &record),
        (&alice, &blob),
        (&bob, &record),
        (&bob, &blob),
        (&alice, &record),
        (&bob, &blob),
    ] {
        server.get(path, Some(secret)).expect(200);
    }
    let reads = all_events(&server, &admin, &[("action", "record.read")], 100)
        .into_iter()
        .chain(all_events(&server, &admin, &[("action", "blob.read")], 100))
        .count();
    assert_eq!(reads, 6);

    let seqs = |params: &[(&str, &str)], limit: usize| -> Vec<u64> {
        all_events(&server, &admin, params, limit)
            .iter()
            .map(|e| e["seq"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(seqs(&[("token", "alice")], 100), [1, 2, 5]);
    assert_eq!(
        seqs(&[("token", "bob"), ("action", "blob.read")], 100),
        [4, 6]
    );
    assert_eq!(seqs(&[("token", "nobody")], 100), Vec::<u64>::new());
    // Pages of one give the same events as one page.
    assert_eq!(seqs(&[("token", "bob")], 1), [3, 4, 6]);

    // since is inclusive and until exclusive, on the time the request arrived.
    let events = all_events(&server, &admin, &[], 100);
    let at = |seq: usize| text(&events[seq - 1], "at");
    assert!(time(&events[1]) < time(&events[2]) && time(&events[2]) < time(&events[3]));
    assert_eq!(seqs(&[("since", &at(2)), ("until", &at(4))], 100), [2, 3]);
    assert_eq!(
        seqs(&[("since", &at(5)), ("action", "blob.read")], 100),
        [6]
    );
    // A date is midnight UTC.
    assert_eq!(seqs(&[("until", "2000-01-01")], 100), Vec::<u64>::new());
    let first_day = &at(1)[..10];
    assert_eq!(
        seqs(&[("since", first_day), ("token", "alice")], 100),
        [1, 2, 5]
    );
}

#[test]
fn after_the_server_stops_the_chain_verifies_and_an_edited_row_is_reported() {
    let mut server = Server::start();
    let alice = server.token("alice", "auditor", &[], None);
    let ci = server.token("ci", "pusher", &[], None);
    let (id, digest) = push(&server, &ci, "notes.txt", NOTES);
    for _ in 0..5 {
        server
            .get(&format!("/v1/records/{id}"), Some(&alice))
            .expect(200);
        server
            .get(&format!("/v1/blobs/{digest}"), Some(&alice))
            .expect(200);
    }
    let (events, _) = access_page(&server, &alice, &[]);
    let last = events.last().unwrap().clone();
    server.terminate();
    assert!(server.wait().success(), "{}", server.logs());

    let data_dir = server.data_dir();
    assert!(data_dir.join("access.db").is_file());
    let log = AccessLog::open(&data_dir).unwrap();
    let mut calls = 0;
    let report = log.verify_chain(&mut |_, _| calls += 1).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    // Ten reads and the listing above, which the server recorded before it exited.
    assert_eq!(report.events, 11);
    assert!(calls >= 2, "progress is reported");
    let (seq, hash) = report.head.clone().unwrap();
    assert_eq!(seq, 11);
    assert_eq!(
        last["seq"].as_u64(),
        Some(10),
        "the listing came after the reads it listed"
    );
    assert_eq!(log.head().unwrap(), Some((seq, hash)));
    let stored = log
        .query(&AccessFilter {
            limit: 100,
            ..AccessFilter::default()
        })
        .unwrap();
    assert_eq!(stored[9].hash, text(&last, "hash"));
    assert_eq!(stored[10].action, "access.query");

    // fsck recomputes the chain too.
    let fsck = server.vault.run(["fsck"]).success().stdout_text();
    assert!(
        fsck.contains("the access log's hash chain holds (11 events)"),
        "{fsck}"
    );

    // Someone with access to the file edits who read what.
    let conn = rusqlite::Connection::open(data_dir.join("access.db")).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    let changed = conn
        .execute(
            "UPDATE access_events SET token = 'mallory' WHERE seq = 4",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    let report = log.verify_chain(&mut |_, _| {}).unwrap();
    assert_eq!(
        report.problems,
        ["access event 4: hash does not match its contents (edited?)"]
    );
    conn.execute("DELETE FROM access_events WHERE seq IN (6, 7)", [])
        .unwrap();
    let report = log.verify_chain(&mut |_, _| {}).unwrap();
    assert_eq!(
        report.problems,
        [
            "access event 4: hash does not match its contents (edited?)",
            "access events 6–7 are missing (deleted?)"
        ]
    );
    let run = server.vault.run(["fsck"]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    let out = run.stdout_text();
    for line in [
        "access log: access event 4: hash does not match its contents (edited?)",
        "access log: access events 6–7 are missing (deleted?)",
    ] {
        assert!(out.contains(line), "{out}");
    }
    assert!(
        run.stderr
            .contains("2 break(s) in the access log's hash chain"),
        "{}",
        run.stderr
    );
}

#[test]
fn pushes_keep_working_while_many_reads_happen_concurrently_and_every_read_is_recorded() {
    let mut server = Server::start();
    let ci = server.token("ci", "pusher", &[], None);
    let reader = server.token("reader", "auditor", &[], None);
    let (id, digest) = push(&server, &ci, "notes.txt", NOTES);

    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..4)
        .map(|r| {
            let (stop, reads) = (Arc::clone(&stop), Arc::clone(&reads));
            let (url, reader) = (server.url(""), reader.clone());
            let paths = [
                ("GET", format!("/v1/records/{id}")),
                ("GET", format!("/v1/blobs/{digest}")),
                ("HEAD", format!("/v1/blobs/{digest}")),
                ("GET", "/v1/records?limit=10".to_string()),
            ];
            thread::spawn(move || {
                let agent = agent();
                let mut failures = Vec::new();
                let mut i = r;
                while !stop.load(Ordering::Relaxed) {
                    let (method, path) = &paths[i % paths.len()];
                    i += 1;
                    let req = Req::new(method, path.clone()).token(&reader);
                    match send_with(&agent, &format!("{url}{path}"), &req) {
                        Ok(reply) if reply.status == 200 => {}
                        Ok(reply) => failures.push(format!("{reply:?}")),
                        Err(e) => failures.push(format!("{method} {path}: {e}")),
                    }
                    reads.fetch_add(1, Ordering::Relaxed);
                }
                failures
            })
        })
        .collect();

    // Reads are under way before the first push and go on during all of them.
    while reads.load(Ordering::Relaxed) < 100 {
        thread::sleep(Duration::from_millis(5));
    }
    let before_pushes = reads.load(Ordering::Relaxed);
    for i in 0..30 {
        let body = format!("push {i} while reads go on\n");
        push(&server, &ci, &format!("push-{i}.txt"), body.as_bytes());
    }
    let during_pushes = reads.load(Ordering::Relaxed) - before_pushes;
    stop.store(true, Ordering::Relaxed);
    let failures: Vec<String> = readers
        .into_iter()
        .flat_map(|r| r.join().unwrap())
        .collect();
    assert!(
        failures.is_empty(),
        "reads failed:\n{}",
        failures.join("\n")
    );
    assert!(during_pushes > 0, "no read happened during the pushes");
    let reads = reads.load(Ordering::Relaxed);

    let records = server
        .get("/v1/records?limit=100", Some(&reader))
        .expect(200)
        .json();
    assert_eq!(records["records"].as_array().unwrap().len(), 31);

    // Every read is in the log, exactly once, and the server committed them all at exit.
    server.terminate();
    assert!(server.wait().success(), "{}", server.logs());
    let log = AccessLog::open(&server.data_dir()).unwrap();
    let report = log.verify_chain(&mut |_, _| {}).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(
        report.events,
        reads + 1,
        "every read, and the listing above"
    );
    let mut recorded = 0;
    let mut after = None;
    loop {
        let page = log
            .query(&AccessFilter {
                token: Some("reader".into()),
                limit: 1000,
                after_seq: after,
                ..AccessFilter::default()
            })
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.seq);
        recorded += page.iter().filter(|e| e.status == 200).count() as u64;
    }
    assert_eq!(recorded, reads + 1);
}

#[test]
fn a_server_that_cannot_open_its_access_log_does_not_start() {
    let vault = Vault::initialised();
    std::fs::create_dir(vault.data_dir().join("access.db")).unwrap();
    let run = vault.run(["serve", "--listen", "127.0.0.1:0"]);
    run.fails(1, &["cannot open the access log", "access.db"]);
}

#[test]
fn inclusion_proofs_and_log_entries_are_reads_too() {
    let server = Server::start();
    let alice = server.token("alice", "auditor", &[], None);
    let ci = server.token("ci", "pusher", &[], None);
    let (id, _) = push(&server, &ci, "notes.txt", NOTES);
    server
        .get(&format!("/v1/log/proof/{id}"), Some(&alice))
        .expect(200);
    server
        .get("/v1/log/entries?start=0&limit=2", Some(&alice))
        .expect(200);
    // The key and the checkpoint name no evidence: not access events.
    server.get("/v1/log/checkpoint", Some(&alice)).expect(200);
    server.get("/v1/log/entries", Some(&ci)).expect(403);

    let seen: Vec<(String, String, String, u64)> = all_events(&server, &alice, &[], 100)
        .iter()
        .filter(|e| text(e, "action") != "access.query")
        .map(|e| {
            (
                text(e, "token"),
                text(e, "action"),
                text(e, "target"),
                e["status"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(String, String, String, u64)> = [
        ("alice", "log.prove", id.as_str(), 200),
        ("alice", "log.entries", "start=0&limit=2", 200),
        ("ci", "log.entries", "", 403),
    ]
    .into_iter()
    .map(|(t, a, g, s)| (t.to_string(), a.to_string(), g.to_string(), s))
    .collect();
    assert_eq!(seen, expected);
}
