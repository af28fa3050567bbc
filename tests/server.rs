//! End-to-end scenarios for `evault serve`: the real binary serving a throw-away vault on a
//! loopback port, driven over HTTP the way a CI pipeline or an auditor's tool would.
//!
//! Each test starts its own server (see `common/server.rs`), makes its tokens with
//! `evault token create`, and checks what docs/api.md promises: status codes, RFC 9457 problems,
//! the permission matrix, scopes, push semantics shared with the CLI, paging, blob streaming and
//! verification, limits, concurrency, graceful shutdown and what reaches the logs.

#[path = "common/mod.rs"]
mod common;
#[path = "common/server.rs"]
mod server_common;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use server_common::*;

// ---------------------------------------------------------------------------------------------
// Fixtures

const PROBLEMS: &str = "https://evault.dev/problems/";

/// A git SHA other than [`GIT_SHA`].
const OTHER_SHA: &str = "fedcba9876543210fedcba9876543210fedcba98";

const PLAIN_TEXT: &[u8] = b"build finished in 42s\nall steps green\n";
const ROLLBACK_PLAN: &[u8] = b"# Rollback Plan: checkout-api 1.4.2\n\n## Trigger Conditions\n- error rate > 5% for 5 minutes\n\n## Steps\n1. `kubectl rollout undo deploy/checkout-api`\n";

fn pretty(v: &Value) -> Vec<u8> {
    let mut s = serde_json::to_string_pretty(v).unwrap();
    s.push('\n');
    s.into_bytes()
}

fn cyclonedx_sbom(component: &str) -> Vec<u8> {
    pretty(&json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {"component": {"type": "container", "name": component}},
        "components": [
            {"type": "library", "name": "lodash", "version": "4.17.20", "purl": "pkg:npm/lodash@4.17.20"},
            {"type": "library", "name": "express", "version": "4.19.2", "purl": "pkg:npm/express@4.19.2"}
        ]
    }))
}

fn sarif() -> Vec<u8> {
    pretty(&json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "semgrep", "version": "1.50.0", "rules": []}},
            "results": [{"ruleId": "js.xss", "level": "warning", "message": {"text": "possible XSS"}}]
        }]
    }))
}

fn approval(decision: &str) -> Vec<u8> {
    pretty(&json!({
        "_type": "https://evault.dev/approval/v1",
        "approver": "maria.lopez",
        "decision": decision,
        "reason": "Staging soak clean for 24h.",
        "environment": "production",
        "time": "2025-03-14T09:26:53Z",
        "blueprint": {"name": BLUEPRINT, "version": VERSION},
        "git_sha": GIT_SHA
    }))
}

/// A bundle manifest for `blueprint` 1.4.2 at [`GIT_SHA`], run `run_id`, classifying `files`.
fn manifest(blueprint: &str, run_id: &str, files: Value) -> Vec<u8> {
    pretty(&json!({
        "_type": "https://evault.dev/bundle/v1",
        "blueprint": {"name": blueprint, "version": VERSION},
        "git_sha": GIT_SHA,
        "repo": "https://github.com/acme/checkout-api",
        "run_id": run_id,
        "files": files
    }))
}

/// `files` as a `.tar.zst` archive.
fn tar_zst(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let entries: Vec<(&str, &[u8])> = files.iter().map(|(p, b)| (*p, b.as_slice())).collect();
    zstd(&tar_of(&entries))
}

/// Deterministic bytes that are neither text nor any known format.
fn random_binary(len: usize, seed: u64) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ seed;
    let mut out = vec![0u8, 0xff, 0x00, 0x13];
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push((x >> 24) as u8);
    }
    out
}

/// A tar holding one file of `size` zero bytes, streamed into `out`.
fn zero_bomb_tar<W: Write>(size: u64, out: W) -> W {
    let mut builder = tar::Builder::new(out);
    let mut header = tar::Header::new_ustar();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    builder
        .append_data(&mut header, "zeros.bin", io::repeat(0).take(size))
        .unwrap();
    builder.into_inner().unwrap()
}

/// Query parameters.
type Params<'a> = Vec<(&'a str, &'a str)>;

/// The query parameters of the default links, plus `extra`.
fn links<'a>(extra: &[(&'a str, &'a str)]) -> Params<'a> {
    let mut params = vec![
        ("blueprint", BLUEPRINT),
        ("version", VERSION),
        ("git_sha", GIT_SHA),
    ];
    params.extend_from_slice(extra);
    params
}

/// Fails the test with every collected problem at once.
#[track_caller]
fn assert_no_failures(failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} problem(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// How `reply` falls short of an RFC 9457 problem with `status` and type `PROBLEMS + suffix`,
/// whose `instance` is the request path and whose `request_id` is the `x-request-id` header.
fn problem_mismatches(reply: &Reply, status: u16, suffix: &str) -> Vec<String> {
    let what = format!("{} {}", reply.method, reply.path);
    let mut out = Vec::new();
    if reply.status != status {
        out.push(format!(
            "{what}: status {} instead of {status}",
            reply.status
        ));
    }
    let content_type = reply.header("content-type").unwrap_or_default();
    if !content_type.starts_with("application/problem+json") {
        out.push(format!(
            "{what}: content-type {content_type:?} instead of application/problem+json"
        ));
    }
    let Ok(body) = serde_json::from_slice::<Value>(&reply.body) else {
        out.push(format!("{what}: body is not JSON: {:?}", reply.text()));
        return out;
    };
    let expected_type = format!("{PROBLEMS}{suffix}");
    if body["type"] != expected_type.as_str() {
        out.push(format!(
            "{what}: type {} instead of {expected_type:?}",
            body["type"]
        ));
    }
    if body["title"].as_str().is_none_or(str::is_empty) {
        out.push(format!("{what}: no title in {body}"));
    }
    if body["status"] != json!(reply.status) {
        out.push(format!(
            "{what}: body status {} differs from the HTTP status {}",
            body["status"], reply.status
        ));
    }
    if body["detail"].as_str().is_none_or(str::is_empty) {
        out.push(format!("{what}: no detail in {body}"));
    }
    let path = reply.path.split('?').next().unwrap();
    if body["instance"] != path {
        out.push(format!(
            "{what}: instance {} instead of {path:?}",
            body["instance"]
        ));
    }
    let request_id = reply.header("x-request-id");
    match (&request_id, body["request_id"].as_str()) {
        (Some(header), Some(id)) if header == id && !id.is_empty() => {}
        (header, id) => out.push(format!(
            "{what}: request_id {id:?} does not match the x-request-id header {header:?}"
        )),
    }
    out
}

/// Asserts that `reply` is the problem `status`/`suffix`; its body.
#[track_caller]
fn assert_problem(reply: &Reply, status: u16, suffix: &str) -> Value {
    let failures = problem_mismatches(reply, status, suffix);
    assert!(
        failures.is_empty(),
        "{}\nreply: {reply:?}",
        failures.join("\n")
    );
    reply.json()
}

/// The records array of a push answer.
#[track_caller]
fn pushed(reply: &Reply) -> Vec<Value> {
    match reply.json() {
        Value::Array(records) => records,
        other => panic!("a push answers with an array of records, got {other:#}"),
    }
}

/// `GET /v1/records` page: the records and `next_cursor`.
#[track_caller]
fn page(server: &Server, token: &str, params: &[(&str, &str)]) -> (Vec<Value>, Value) {
    let reply = server
        .get(&with_query("/v1/records", params), Some(token))
        .expect(200);
    let body = reply.json();
    let records = body["records"]
        .as_array()
        .unwrap_or_else(|| panic!("no records array: {reply:?}"))
        .clone();
    assert!(
        body.get("next_cursor").is_some(),
        "next_cursor must always be present: {reply:?}"
    );
    (records, body["next_cursor"].clone())
}

/// Waits (at most 5 s, for clean-up that runs as a request ends) until the vault's state (see
/// [`vault_state`]) is `before` and its staging directory is empty, then asserts both.
#[track_caller]
fn assert_unchanged(vault: &Vault, before: &BTreeMap<String, String>, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while (vault_state(vault) != *before || !tmp_is_empty(vault)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(vault_state(vault), *before, "{what}: the vault changed");
    vault.assert_tmp_empty();
}

fn tmp_is_empty(vault: &Vault) -> bool {
    std::fs::read_dir(vault.data_dir().join("tmp")).map_or(true, |mut d| d.next().is_none())
}

/// A well-formed secret no vault has issued.
fn unknown_secret() -> String {
    format!("evt_{}", sha256_hex(b"a token nobody created"))
}

// ---------------------------------------------------------------------------------------------
// 1. Probes, metrics and the OpenAPI document

/// Every route docs/api.md documents, as (method, OpenAPI path template).
const DOCUMENTED_ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("POST", "/v1/push"),
    ("GET", "/v1/records"),
    ("GET", "/v1/records/{id}"),
    ("GET", "/v1/blobs/{digest}"),
    ("HEAD", "/v1/blobs/{digest}"),
    ("GET", "/v1/status"),
    ("GET", "/v1/whoami"),
    ("POST", "/v1/tokens"),
    ("GET", "/v1/tokens"),
    ("DELETE", "/v1/tokens/{name}"),
    ("POST", "/v1/fsck"),
];

#[test]
fn probes_metrics_and_openapi_need_no_token_and_every_documented_route_exists() {
    let server = Server::start();
    let admin = server.token("admin", "admin", &[], None);

    let health = server.get("/healthz", None).expect(200);
    assert_eq!(health.json(), json!({"status": "ok"}));
    assert!(
        health.header("x-request-id").is_some(),
        "every response carries x-request-id: {health:?}"
    );
    let ready = server.get("/readyz", None).expect(200);
    assert_eq!(ready.json(), json!({"status": "ready"}));

    let openapi = server.get("/openapi.json", None).expect(200);
    let doc = openapi.json();
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "openapi must be 3.1.x, is {}",
        doc["openapi"]
    );
    let mut failures = Vec::new();
    for (method, path) in DOCUMENTED_ROUTES {
        let Some(item) = doc["paths"].get(*path) else {
            failures.push(format!("openapi.json has no path {path}"));
            continue;
        };
        let op = method.to_ascii_lowercase();
        // A HEAD route may be described as the GET it mirrors.
        let described = item.get(&op).is_some() || (op == "head" && item.get("get").is_some());
        if !described {
            failures.push(format!("openapi.json has no {method} operation for {path}"));
        }
    }

    // Every documented route answers, with placeholder parameters, as a route that exists.
    let placeholder_digest = digest_of(b"a placeholder blob nobody pushed");
    for (method, template) in DOCUMENTED_ROUTES {
        let path = template
            .replace("{id}", "0123456789abcdef0123456789abcdef")
            .replace("{digest}", &placeholder_digest)
            .replace("{name}", "placeholder-token");
        let mut req = Req::new(method, path).token(&admin);
        if *template == "/v1/tokens" && *method == "POST" {
            req = req
                .header("content-type", "application/json")
                .body(pretty(&json!({"name": "probe", "role": "auditor"})));
        }
        let reply = server.send(req);
        let kind = serde_json::from_slice::<Value>(&reply.body)
            .ok()
            .and_then(|b| b["type"].as_str().map(str::to_string));
        if kind.as_deref() == Some(&format!("{PROBLEMS}no-such-route")) || reply.status == 405 {
            failures.push(format!("{method} {template} is not routed: {reply:?}"));
        }
    }
    let nope = server.get("/v1/nope", Some(&admin));
    failures.extend(problem_mismatches(&nope, 404, "no-such-route"));

    // One push, so that the vault gauges and the ingest counter have something to count.
    server
        .push(&admin, &links(&[("name", "notes.txt")]), PLAIN_TEXT)
        .expect(201);

    let metrics = server.get("/metrics", None).expect(200);
    let text = metrics.text();
    for (sample, value) in [
        ("evault_records", 1),
        ("evault_blobs", 1),
        ("evault_ingested_bytes_total", PLAIN_TEXT.len()),
    ] {
        let found = text
            .lines()
            .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse::<f64>().ok());
        if found != Some(value as f64) {
            failures.push(format!(
                "metric {sample} is {found:?} after one push of {} bytes, expected {value}",
                PLAIN_TEXT.len()
            ));
        }
    }
    let content_type = metrics.header("content-type").unwrap_or_default();
    if !content_type.starts_with("text/plain") {
        failures.push(format!(
            "metrics content-type {content_type:?} is not Prometheus text"
        ));
    }
    for name in [
        "evault_http_requests_total",
        "evault_http_request_duration_seconds",
        "evault_ingested_bytes_total",
        "evault_records",
        "evault_blobs",
    ] {
        if !text.lines().any(|l| l.starts_with(name)) {
            failures.push(format!("metrics have no sample of {name}"));
        }
    }
    let counted = text.lines().any(|l| {
        l.starts_with("evault_http_requests_total{")
            && l.contains("method=\"GET\"")
            && l.contains("status=\"200\"")
            && l.contains("route=")
    });
    if !counted {
        failures.push("no evault_http_requests_total{method=\"GET\",route=..,status=\"200\"} sample after several GETs".into());
    }
    // Routes are labelled by their template, not by the concrete path (bounded cardinality).
    if text.contains(placeholder_digest.trim_start_matches("sha256:")) {
        failures.push("a metric label carries a concrete blob digest instead of the route".into());
    }
    for label in [
        "route=\"/v1/records/{id}\"",
        "route=\"/v1/blobs/{digest}\"",
        "route=\"unmatched\"",
    ] {
        if !text
            .lines()
            .any(|l| l.starts_with("evault_http_requests_total{") && l.contains(label))
        {
            failures.push(format!("no evault_http_requests_total sample with {label}"));
        }
    }
    for bucket in ["le=\"0.005\"", "le=\"30\"", "le=\"+Inf\""] {
        if !text.lines().any(|l| {
            l.starts_with("evault_http_request_duration_seconds_bucket{") && l.contains(bucket)
        }) {
            failures.push(format!("the duration histogram has no {bucket} bucket"));
        }
    }
    assert_no_failures(&failures);
}

// ---------------------------------------------------------------------------------------------
// 2. Roles

#[test]
fn every_role_gets_exactly_the_status_the_permission_matrix_says() {
    let server = Server::start();
    let mut rows: Vec<(&str, Option<String>)> = Vec::new();
    for role in ["pusher", "auditor", "approver", "admin"] {
        rows.push((role, Some(server.token(role, role, &[], None))));
    }
    rows.push(("no token", None));
    rows.push(("unknown token", Some(unknown_secret())));
    rows.push(("malformed token", Some("not-a-token".to_string())));
    let slug = |label: &str| label.replace(' ', "-");
    for (label, _) in &rows {
        server
            .vault
            .run([
                "token",
                "create",
                "--name",
                &format!("victim-{}", slug(label)),
                "--role",
                "auditor",
            ])
            .success();
    }
    server.vault.write("evidence.txt", PLAIN_TEXT);
    let record = server.vault.push_one("evidence.txt");
    let id = str_field(&record, "id");
    let digest = str_field(&record, "digest");

    type Make = Box<dyn Fn(&str) -> Req<'static>>;
    struct Endpoint {
        name: &'static str,
        /// The status for a role that may call it.
        ok: u16,
        roles: &'static [&'static str],
        make: Make,
    }
    const ALL: &[&str] = &["pusher", "auditor", "approver", "admin"];
    const READERS: &[&str] = &["auditor", "approver", "admin"];
    let endpoints: Vec<Endpoint> = vec![
        Endpoint {
            name: "POST /v1/push",
            ok: 201,
            roles: &["pusher", "admin"],
            make: Box::new(|label| {
                Req::new(
                    "POST",
                    with_query("/v1/push", &links(&[("name", "matrix.txt")])),
                )
                .body(format!("pushed by the {label} row\n"))
            }),
        },
        Endpoint {
            name: "GET /v1/records",
            ok: 200,
            roles: READERS,
            make: Box::new(|_| Req::new("GET", "/v1/records")),
        },
        Endpoint {
            name: "GET /v1/records/{id}",
            ok: 200,
            roles: READERS,
            make: {
                let id = id.clone();
                Box::new(move |_| Req::new("GET", format!("/v1/records/{id}")))
            },
        },
        Endpoint {
            name: "GET /v1/blobs/{digest}",
            ok: 200,
            roles: READERS,
            make: {
                let digest = digest.clone();
                Box::new(move |_| Req::new("GET", format!("/v1/blobs/{digest}")))
            },
        },
        Endpoint {
            name: "HEAD /v1/blobs/{digest}",
            ok: 200,
            roles: READERS,
            make: {
                let digest = digest.clone();
                Box::new(move |_| Req::new("HEAD", format!("/v1/blobs/{digest}")))
            },
        },
        Endpoint {
            name: "GET /v1/status",
            ok: 200,
            roles: READERS,
            make: Box::new(|_| Req::new("GET", "/v1/status")),
        },
        Endpoint {
            name: "GET /v1/whoami",
            ok: 200,
            roles: ALL,
            make: Box::new(|_| Req::new("GET", "/v1/whoami")),
        },
        Endpoint {
            name: "POST /v1/tokens",
            ok: 201,
            roles: &["admin"],
            make: Box::new(move |label| {
                Req::new("POST", "/v1/tokens")
                    .header("content-type", "application/json")
                    .body(pretty(&json!({
                        "name": format!("made-by-{}", slug(label)),
                        "role": "auditor",
                        "scopes": [],
                        "expires": "90d"
                    })))
            }),
        },
        Endpoint {
            name: "GET /v1/tokens",
            ok: 200,
            // Auditors too: access reviews list every token.
            roles: &["auditor", "admin"],
            make: Box::new(|_| Req::new("GET", "/v1/tokens")),
        },
        Endpoint {
            name: "DELETE /v1/tokens/{name}",
            ok: 200,
            roles: &["admin"],
            make: Box::new(move |label| {
                Req::new("DELETE", format!("/v1/tokens/victim-{}", slug(label)))
            }),
        },
        Endpoint {
            name: "POST /v1/fsck",
            ok: 200,
            roles: &["admin"],
            make: Box::new(|_| Req::new("POST", "/v1/fsck")),
        },
    ];

    let mut failures = Vec::new();
    for endpoint in &endpoints {
        for (label, token) in &rows {
            let (expected, suffix) = if token.is_none() || label.ends_with("token") {
                (401, "unauthenticated")
            } else if endpoint.roles.contains(label) {
                (endpoint.ok, "")
            } else {
                (403, "forbidden")
            };
            let reply = server.send((endpoint.make)(label).maybe_token(token.as_deref()));
            if reply.status != expected {
                failures.push(format!(
                    "{} as {label}: {} instead of {expected} ({})",
                    endpoint.name,
                    reply.status,
                    reply.text().chars().take(300).collect::<String>()
                ));
                continue;
            }
            if !suffix.is_empty() && !endpoint.name.starts_with("HEAD") {
                failures.extend(
                    problem_mismatches(&reply, expected, suffix)
                        .into_iter()
                        .map(|m| format!("as {label}: {m}")),
                );
                // 401 says why; 403 names the role.
                let detail = reply.json()["detail"].as_str().unwrap_or("").to_string();
                let needle = match *label {
                    "no token" => "missing bearer token",
                    "unknown token" | "malformed token" => "unknown token",
                    role => role,
                };
                if !detail.contains(needle) {
                    failures.push(format!(
                        "{} as {label}: detail {detail:?} does not say {needle:?}",
                        endpoint.name
                    ));
                }
            }
            if endpoint.name == "GET /v1/whoami" && expected == 200 {
                let who = reply.json();
                let want = json!({"name": label, "role": label, "scopes": []});
                if who != want {
                    failures.push(format!("whoami as {label}: {who} instead of {want}"));
                }
            }
            if endpoint.name == "POST /v1/tokens"
                && expected == 201
                && let Some(secret) = reply.json()["secret"].as_str()
            {
                server.remember_secret(secret);
            }
        }
    }
    assert_no_failures(&failures);
}

// ---------------------------------------------------------------------------------------------
// 3. Problems

#[test]
fn errors_are_problem_json_naming_the_field_with_the_request_id_of_the_response() {
    let server = Server::start();
    let admin = server.token("admin", "admin", &[], None);
    let pusher = server.token("ci", "pusher", &[], None);

    let cases: Vec<(Reply, u16, &str, Option<&str>)> = vec![
        (
            server.push(
                &admin,
                &[
                    ("blueprint", BLUEPRINT),
                    ("version", VERSION),
                    ("git_sha", "xyz"),
                ],
                PLAIN_TEXT,
            ),
            400,
            "invalid-input",
            Some("git_sha"),
        ),
        (
            server.get("/v1/records?limit=1001", Some(&admin)),
            400,
            "invalid-input",
            Some("limit"),
        ),
        (
            server.get("/v1/records?git_sha=zz", Some(&admin)),
            400,
            "invalid-input",
            Some("git_sha"),
        ),
        (
            server.get("/v1/records", None),
            401,
            "unauthenticated",
            None,
        ),
        (
            server.get("/v1/records", Some(&pusher)),
            403,
            "forbidden",
            None,
        ),
        (
            server.get("/v1/records/ffffffffffffffffffffffffffffffff", Some(&admin)),
            404,
            "not-found",
            None,
        ),
        (
            server.get(&format!("/v1/blobs/{}", digest_of(b"never pushed")), Some(&admin)),
            404,
            "not-found",
            None,
        ),
        (
            server.get("/v1/nope", Some(&admin)),
            404,
            "no-such-route",
            None,
        ),
        (
            server.send(Req::new("DELETE", "/v1/records").token(&admin)),
            405,
            "method-not-allowed",
            None,
        ),
        (
            server.send(
                Req::new("POST", with_query("/v1/push", &links(&[])))
                    .token(&admin)
                    .header("content-type", "multipart/mixed; boundary=XyZ")
                    .body(
                        "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\nhello\r\n--XyZ--\r\n",
                    ),
            ),
            415,
            "unsupported-media-type",
            None,
        ),
        (
            server.send(
                Req::new("POST", "/v1/tokens")
                    .token(&admin)
                    .header("content-type", "application/json")
                    .body(pretty(&json!({"name": "ci", "role": "pusher"}))),
            ),
            409,
            "conflict",
            None,
        ),
        (
            server.send(
                Req::new("POST", "/v1/tokens")
                    .token(&admin)
                    .header("content-type", "application/json")
                    .body(pretty(&json!({"name": "someone", "role": "overlord"}))),
            ),
            400,
            "invalid-input",
            Some("role"),
        ),
        (
            server.get("/v1/records?colour=blue", Some(&admin)),
            400,
            "invalid-input",
            Some("colour"),
        ),
        (
            server.get("/v1/records?kind=sbom&kind=vex", Some(&admin)),
            400,
            "invalid-input",
            Some("kind"),
        ),
        (
            server.push(&admin, &links(&[("expand", "maybe")]), PLAIN_TEXT),
            400,
            "invalid-input",
            Some("expand"),
        ),
    ];
    let mut failures = Vec::new();
    let mut ids = BTreeSet::new();
    for (reply, status, suffix, field) in &cases {
        failures.extend(problem_mismatches(reply, *status, suffix));
        if let Some(field) = field {
            let detail = reply.json()["detail"].as_str().unwrap_or("").to_string();
            if !detail.contains(field) {
                failures.push(format!(
                    "{} {}: detail {detail:?} does not name {field:?}",
                    reply.method, reply.path
                ));
            }
        }
        // RFC 9110: a 401 says how to authenticate.
        if *status == 401
            && !reply
                .header("www-authenticate")
                .is_some_and(|v| v.starts_with("Bearer"))
        {
            failures.push(format!(
                "{} {}: a 401 without WWW-Authenticate: Bearer",
                reply.method, reply.path
            ));
        }
        let id = reply.header("x-request-id").unwrap_or_default();
        if !is_generated_id(&id) {
            failures.push(format!(
                "{} {}: generated request id {id:?} is not 16 hex characters",
                reply.method, reply.path
            ));
        }
        ids.insert(id);
    }
    // A 405 says what is allowed.
    let wrong_method = server.send(Req::new("DELETE", "/v1/records").token(&admin));
    if !wrong_method
        .header("allow")
        .is_some_and(|a| a.contains("GET"))
    {
        failures.push(format!(
            "a 405 without an Allow header naming GET: {wrong_method:?}"
        ));
    }
    if ids.len() != cases.len() {
        failures.push(format!(
            "request ids must differ per request, got {} distinct for {} requests",
            ids.len(),
            cases.len()
        ));
    }

    // An incoming request id is echoed in the header and the problem.
    let traced = server.send(
        Req::new("GET", "/v1/records/ffffffffffffffffffffffffffffffff")
            .token(&admin)
            .header("x-request-id", "e2e-trace-0042"),
    );
    failures.extend(problem_mismatches(&traced, 404, "not-found"));
    if traced.header("x-request-id").as_deref() != Some("e2e-trace-0042") {
        failures.push(format!(
            "the incoming x-request-id was not echoed: {traced:?}"
        ));
    }
    let ok = server.send(Req::new("GET", "/healthz").header("x-request-id", "e2e-trace-0043"));
    if ok.header("x-request-id").as_deref() != Some("e2e-trace-0043") {
        failures.push(format!("a 200 does not echo x-request-id: {ok:?}"));
    }
    // Only ids of 1 to 64 letters, digits, '.', '_' or '-' are taken over; others are replaced.
    let longest = format!("e2e.{}", "a_b-".repeat(15));
    assert_eq!(longest.len(), 64);
    for (sent, echoed) in [
        (longest.clone(), true),
        (format!("{longest}x"), false),
        ("has spaces \"and quotes\"".to_string(), false),
        ("semi;colon".to_string(), false),
    ] {
        let reply = server.send(Req::new("GET", "/healthz").header("x-request-id", sent.clone()));
        let got = reply.header("x-request-id").unwrap_or_default();
        let ok = if echoed {
            got == sent
        } else {
            is_generated_id(&got)
        };
        if !ok {
            failures.push(format!(
                "x-request-id {sent:?} came back as {got:?} (expected {})",
                if echoed {
                    "it echoed"
                } else {
                    "a new 16-hex id"
                }
            ));
        }
    }
    assert_no_failures(&failures);
}

/// A request id the server made: 16 lowercase hex characters.
fn is_generated_id(id: &str) -> bool {
    id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

// ---------------------------------------------------------------------------------------------
// 4. Identity

#[test]
fn a_record_producer_is_the_token_name_whatever_the_query_says() {
    let server = Server::start();
    let ci = server.token("ci-payments", "pusher", &[], None);
    let admin = server.token("admin", "admin", &[], None);
    let reply = server
        .push(
            &ci,
            &links(&[
                ("name", "notes.txt"),
                ("producer", "mallory"),
                ("actor", "mallory"),
            ]),
            PLAIN_TEXT,
        )
        .expect(201);
    let records = pushed(&reply);
    assert_eq!(records.len(), 1, "{reply:?}");
    assert_eq!(records[0]["producer"], "ci-payments", "{reply:?}");
    let id = str_field(&records[0], "id");
    let stored = server
        .get(&format!("/v1/records/{id}"), Some(&admin))
        .expect(200)
        .json();
    assert_eq!(stored["producer"], "ci-payments");
    assert_eq!(server.vault.show_json(&id)["producer"], "ci-payments");
}

// ---------------------------------------------------------------------------------------------
// 5. Token lifecycle

#[test]
fn revoked_and_expired_tokens_are_refused_at_once_and_use_is_recorded() {
    let server = Server::start();
    let revoked = server.token("ci-revoked", "auditor", &[], None);
    let expiring = server.token("ci-expiring", "auditor", &[], Some("90d"));
    server.token("ci-idle", "auditor", &[], None);

    server.get("/v1/whoami", Some(&revoked)).expect(200);
    server.get("/v1/whoami", Some(&expiring)).expect(200);

    // Revoked with the binary on the same vault while the server runs.
    server
        .vault
        .run(["token", "revoke", "ci-revoked"])
        .success();
    let refused = server.get("/v1/whoami", Some(&revoked));
    let body = assert_problem(&refused, 401, "unauthenticated");
    assert_eq!(body["detail"], "token revoked", "{refused:?}");
    let listed = server.get("/v1/records", Some(&revoked));
    assert_problem(&listed, 401, "unauthenticated");

    // Expired: its expiry moved into the past directly in the index.
    set_token_expiry(
        &server.data_dir(),
        "ci-expiring",
        "2000-01-01T00:00:00.000000Z",
    );
    let refused = server.get("/v1/whoami", Some(&expiring));
    let body = assert_problem(&refused, 401, "unauthenticated");
    assert_eq!(body["detail"], "token expired", "{refused:?}");

    let tokens = server.vault.run(["--json", "token", "ls"]).success().json();
    let by_name: BTreeMap<&str, &Value> = tokens
        .as_array()
        .expect("token ls --json prints an array")
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t))
        .collect();
    for used in ["ci-revoked", "ci-expiring"] {
        assert!(
            by_name[used]["last_used_at"].is_string(),
            "{used} was used but has no last_used_at: {tokens:#}"
        );
    }
    assert!(
        by_name["ci-idle"]["last_used_at"].is_null(),
        "ci-idle was never used: {tokens:#}"
    );
    assert!(by_name["ci-revoked"]["revoked_at"].is_string());
}

// ---------------------------------------------------------------------------------------------
// 6. Scopes

#[test]
fn scoped_tokens_push_and_see_only_their_blueprints() {
    let server = Server::start();
    let ci = server.token("ci-payments", "pusher", &["payments-*"], None);
    let auditor = server.token("audit-payments", "auditor", &["payments-*"], None);
    let admin = server.token("admin", "admin", &[], None);
    let before = vault_state(&server.vault);

    let checkout = server.push(&ci, &links(&[("name", "a.txt")]), b"checkout notes\n");
    assert_problem(&checkout, 403, "forbidden");
    // The blueprint may come from a bundle manifest instead of the query.
    let bundle = tar_zst(&[
        (
            "evault-bundle.json",
            manifest("checkout-api", "77", json!([])),
        ),
        ("notes.txt", b"checkout bundle notes\n".to_vec()),
    ]);
    let via_manifest = server.push(&ci, &[], &bundle);
    assert_problem(&via_manifest, 403, "forbidden");
    assert_unchanged(&server.vault, &before, "refused scoped pushes");

    let payments = server
        .push(
            &ci,
            &[
                ("blueprint", "payments-ledger"),
                ("version", "2.0.0"),
                ("git_sha", GIT_SHA),
                ("name", "p.txt"),
            ],
            b"payments notes\n",
        )
        .expect(201);
    let payments_record = pushed(&payments).remove(0);
    let theirs = pushed(
        &server
            .push(
                &admin,
                &links(&[("name", "c.txt")]),
                b"checkout secret notes\n",
            )
            .expect(201),
    )
    .remove(0);

    let (seen, _) = page(&server, &auditor, &[]);
    assert_eq!(
        ids(&seen),
        vec![str_field(&payments_record, "id")],
        "a payments-* auditor sees only payments records"
    );
    let (filtered, _) = page(&server, &auditor, &[("blueprint", "checkout-api")]);
    assert!(filtered.is_empty(), "{filtered:#?}");
    let (by_digest, _) = page(
        &server,
        &auditor,
        &[("digest", &str_field(&theirs, "digest"))],
    );
    assert!(by_digest.is_empty(), "{by_digest:#?}");

    let other_id = str_field(&theirs, "id");
    let other_digest = str_field(&theirs, "digest");
    for reply in [
        server.get(&format!("/v1/records/{other_id}"), Some(&auditor)),
        server.get(&format!("/v1/records/{}", &other_id[..8]), Some(&auditor)),
        server.get(&format!("/v1/blobs/{other_digest}"), Some(&auditor)),
    ] {
        assert_problem(&reply, 404, "not-found");
    }
    let head = server.send(Req::new("HEAD", format!("/v1/blobs/{other_digest}")).token(&auditor));
    assert_eq!(head.status, 404, "{head:?}");

    server
        .get(
            &format!("/v1/records/{}", str_field(&payments_record, "id")),
            Some(&auditor),
        )
        .expect(200);
    let blob = server
        .get(
            &format!("/v1/blobs/{}", str_field(&payments_record, "digest")),
            Some(&auditor),
        )
        .expect(200);
    assert_eq!(blob.body, b"payments notes\n");
    let who = server.get("/v1/whoami", Some(&auditor)).expect(200).json();
    assert_eq!(
        who,
        json!({"name": "audit-payments", "role": "auditor", "scopes": ["payments-*"]})
    );

    // A scoped admin reads and pushes within its scope, but nothing vault-wide: it could
    // otherwise mint itself an unscoped token.
    let scoped_admin = server.token("admin-payments", "admin", &["payments-*"], None);
    let (seen, _) = page(&server, &scoped_admin, &[]);
    assert_eq!(ids(&seen), vec![str_field(&payments_record, "id")]);
    let mut failures = Vec::new();
    for req in [
        Req::new("GET", "/v1/tokens"),
        Req::new("POST", "/v1/tokens")
            .header("content-type", "application/json")
            .body(pretty(&json!({"name": "escalated", "role": "admin"}))),
        Req::new("DELETE", "/v1/tokens/audit-payments"),
        Req::new("POST", "/v1/fsck"),
    ] {
        let reply = server.send(req.token(&scoped_admin));
        failures.extend(problem_mismatches(&reply, 403, "forbidden"));
    }
    assert_no_failures(&failures);
    server.get("/v1/whoami", Some(&auditor)).expect(200);
}

// ---------------------------------------------------------------------------------------------
// 7. Push

/// The fields of a record that do not depend on who pushed it or when.
fn summary(record: &Value) -> Value {
    let mut r = record.clone();
    let obj = r.as_object_mut().unwrap();
    // `summary` is what `show` adds to a record; pushes and listings carry records alone.
    for volatile in ["producer", "ingested_at", "status", "summary"] {
        obj.remove(volatile);
    }
    // Kept until a year after ingestion: the rule is compared, the instant is not.
    if let Some(retention) = obj.get_mut("retention").and_then(Value::as_object_mut) {
        retention.remove("retain_until");
    }
    r
}

#[test]
fn push_over_http_detects_expands_and_stays_all_or_nothing_like_the_cli() {
    let server = Server::start();
    let ci = server.token("ci", "pusher", &[], None);
    let vault = &server.vault;

    // One CycloneDX file, named by the query.
    let sbom = cyclonedx_sbom("ghcr.io/acme/checkout-api");
    let first = server.send(
        Req::new(
            "POST",
            with_query("/v1/push", &links(&[("name", "sbom.json")])),
        )
        .token(&ci)
        .header("content-type", "application/json")
        .body(sbom.clone()),
    );
    let created = pushed(&first.expect(201));
    assert_eq!(created.len(), 1);
    let r = &created[0];
    assert_eq!(r["status"], "created");
    assert_eq!(r["format"], "cyclonedx-json");
    assert_eq!(r["kind"], "sbom");
    assert_eq!(r["source_path"], "sbom.json");
    assert_eq!(r["digest"], digest_of(&sbom));
    assert_eq!(r["size"], sbom.len());
    assert_eq!(r["producer"], "ci");
    assert_eq!(summary(&vault.show_json(&str_field(r, "id"))), summary(r));

    let again = pushed(
        &server
            .push(&ci, &links(&[("name", "sbom.json")]), &sbom)
            .expect(200),
    );
    assert_eq!(again.len(), 1);
    assert_eq!(again[0]["status"], "present");
    assert_eq!(again[0]["id"], r["id"]);

    // Without a name the source path is `upload`.
    let unnamed = pushed(&server.push(&ci, &links(&[]), PLAIN_TEXT).expect(201));
    assert_eq!(unnamed[0]["source_path"], "upload");
    assert_eq!(unnamed[0]["format"], "text");

    // A note that did not stop the push comes back as an Evault-Warning header.
    let truncated = server
        .push(
            &ci,
            &links(&[("name", "broken.json")]),
            b"{\"bomFormat\": \"CycloneDX\", \"specVersion\": ",
        )
        .expect(201);
    let warnings: Vec<String> = truncated
        .headers
        .get_all("evault-warning")
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    assert!(
        warnings.iter().any(|w| w.contains("broken.json")),
        "no Evault-Warning naming the file: {truncated:?}"
    );
    let clean = server
        .push(&ci, &links(&[("name", "clean.txt")]), b"nothing odd here\n")
        .expect(201);
    assert!(clean.header("evault-warning").is_none(), "{clean:?}");

    // A .tar.zst bundle whose manifest gives the links: the same records as the CLI makes.
    let files = vec![
        (
            "evault-bundle.json",
            manifest(
                "payments",
                "8812",
                json!([{"path": "ops/plan.md", "kind": "rollback-plan"}]),
            ),
        ),
        ("sbom.json", cyclonedx_sbom("ghcr.io/acme/payments")),
        ("ops/plan.md", ROLLBACK_PLAN.to_vec()),
        ("notes.txt", b"bundle notes\n".to_vec()),
    ];
    let archive = tar_zst(&files);
    let over_http = pushed(
        &server
            .push(&ci, &[("env", "staging")], &archive)
            .expect(201),
    );
    let by_path: BTreeMap<String, &Value> = over_http
        .iter()
        .map(|r| (str_field(r, "source_path"), r))
        .collect();
    assert_eq!(
        by_path.keys().map(String::as_str).collect::<Vec<_>>(),
        ["notes.txt", "ops/plan.md", "sbom.json"],
        "the manifest is not a record"
    );
    for r in &over_http {
        assert_eq!(
            r["blueprint"],
            json!({"name": "payments", "version": VERSION})
        );
        assert_eq!(r["git_sha"], GIT_SHA);
        assert_eq!(r["repo"], "https://github.com/acme/checkout-api");
        assert_eq!(r["run_id"], "8812");
        assert_eq!(r["environment"], "staging");
        assert_eq!(r["status"], "created");
    }
    assert_eq!(by_path["ops/plan.md"]["kind"], "rollback-plan");
    let cli = Vault::initialised();
    cli.write("bundle.tar.zst", &archive);
    let from_cli = cli.push_json(["bundle.tar.zst", "--env", "staging"]);
    let mut http_summaries: Vec<Value> = over_http.iter().map(summary).collect();
    let mut cli_summaries: Vec<Value> = from_cli.iter().map(summary).collect();
    http_summaries.sort_by_key(|v| v["id"].to_string());
    cli_summaries.sort_by_key(|v| v["id"].to_string());
    assert_eq!(http_summaries, cli_summaries, "HTTP and CLI pushes differ");

    // expand=false stores the archive itself.
    let opaque = pushed(
        &server
            .push(
                &ci,
                &links(&[("expand", "false"), ("name", "b.tar.zst")]),
                &archive,
            )
            .expect(201),
    );
    assert_eq!(opaque.len(), 1);
    assert_eq!(opaque[0]["digest"], digest_of(&archive));

    // A bundle with one invalid file stores nothing.
    let before = vault_state(vault);
    let listed = vault.ls_json(["--limit", "1000"]);
    let bad = tar_zst(&[
        ("a-sbom.json", cyclonedx_sbom("ghcr.io/acme/other")),
        ("b-scan.sarif", sarif()),
        ("m/approval.json", approval("maybe")),
        ("z-notes.txt", b"never stored\n".to_vec()),
    ]);
    let refused = server.push(&ci, &links(&[("run_id", "9001")]), &bad);
    let problem = assert_problem(&refused, 422, "invalid-document");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("m/approval.json") && detail.contains("decision"),
        "the detail names the file and the field: {detail}"
    );
    assert_unchanged(vault, &before, "a bundle with an invalid approval");
    assert_eq!(vault.ls_json(["--limit", "1000"]), listed);

    // Other content errors: 422, naming the file, and nothing stored.
    let escaping = zstd(&raw_tar(&[
        RawEntry::file("ok.txt", b"fine\n"),
        RawEntry::file("../escape.txt", b"outside\n"),
    ]));
    let bad_manifest = gzip(&tar_of(&[
        (
            "evault-bundle.json",
            br#"{"_type": "https://evault.dev/bundle/v1", "colour": "blue"}"#,
        ),
        ("notes.txt", b"notes\n"),
    ]));
    let content_errors: [(&str, Params, &[u8], &str); 3] = [
        (
            "a declared kind the content contradicts",
            links(&[("kind", "sbom"), ("name", "n.txt")]),
            b"just text\n",
            "n.txt",
        ),
        (
            "an archive entry leaving the bundle",
            links(&[]),
            &escaping,
            "../escape.txt",
        ),
        (
            "a manifest with an unknown field",
            links(&[]),
            &bad_manifest,
            "colour",
        ),
    ];
    for (name, params, body, needle) in content_errors {
        let reply = server.push(&ci, &params, body);
        let problem = assert_problem(&reply, 422, "invalid-document");
        assert!(
            problem["detail"].as_str().unwrap().contains(needle),
            "{name}: the detail does not name {needle:?}: {problem}"
        );
        assert_unchanged(vault, &before, name);
    }

    // Bad links and multipart bodies are refused before anything is stored.
    let bad_sha = server.push(
        &ci,
        &[
            ("blueprint", BLUEPRINT),
            ("version", VERSION),
            ("git_sha", "not-a-sha"),
            ("name", "x.txt"),
        ],
        b"never stored either\n",
    );
    let problem = assert_problem(&bad_sha, 400, "invalid-input");
    assert!(problem["detail"].as_str().unwrap().contains("git_sha"));
    let multipart = server.send(
        Req::new("POST", with_query("/v1/push", &links(&[])))
            .token(&ci)
            .header("content-type", "multipart/mixed; boundary=b0undary")
            .body(
                "--b0undary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"n.txt\"\r\n\r\nnever\r\n--b0undary--\r\n",
            ),
    );
    assert_problem(&multipart, 415, "unsupported-media-type");
    assert_unchanged(vault, &before, "bad git_sha and multipart pushes");
}

// ---------------------------------------------------------------------------------------------
// 8. Records

#[test]
fn records_filter_like_ls_and_page_newest_first_through_cursors() {
    let server = Server::start();
    let admin = server.token("admin", "admin", &[], None);
    let subject = digest_of(b"ghcr.io/acme/checkout-api:1.4.2 image manifest");
    let pushes: Vec<(Params, Vec<u8>)> = vec![
        (
            links(&[("env", "staging"), ("run_id", "1"), ("name", "sbom.json")]),
            cyclonedx_sbom("ghcr.io/acme/checkout-api"),
        ),
        (
            links(&[
                ("env", "production"),
                ("run_id", "2"),
                ("name", "scan.sarif"),
            ]),
            sarif(),
        ),
        (
            vec![
                ("blueprint", "payments-ledger"),
                ("version", "2.0.0"),
                ("git_sha", OTHER_SHA),
                ("run_id", "3"),
                ("name", "notes.txt"),
            ],
            b"payments ledger notes\n".to_vec(),
        ),
        (
            links(&[("run_id", "4"), ("subject", &subject), ("name", "r4.txt")]),
            b"about the image\n".to_vec(),
        ),
        (
            vec![
                ("blueprint", "payments-ledger"),
                ("version", "2.1.0"),
                ("git_sha", GIT_SHA),
                ("env", "staging"),
                ("run_id", "5"),
                ("name", "sbom.json"),
            ],
            cyclonedx_sbom("ghcr.io/acme/payments-ledger"),
        ),
    ];
    let mut r = Vec::new();
    for (params, body) in &pushes {
        let reply = server.push(&admin, params, body).expect(201);
        r.push(str_field(&pushed(&reply)[0], "id"));
    }
    let digest_r2 = server.vault.show_json(&r[1])["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let ingested_r3 = server.vault.show_json(&r[2])["ingested_at"]
        .as_str()
        .unwrap()
        .to_string();

    // Newest first, through cursors.
    let newest_first: Vec<String> = r.iter().rev().cloned().collect();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = Vec::new();
    loop {
        let mut params = vec![("limit", "2")];
        if let Some(c) = &cursor {
            params.push(("cursor", c.as_str()));
        }
        let (records, next) = page(&server, &admin, &params);
        pages.push(records.len());
        seen.extend(ids(&records));
        match next {
            Value::Null => break,
            Value::String(next) => cursor = Some(next),
            other => panic!("next_cursor must be a string or null: {other}"),
        }
        assert!(pages.len() <= 5, "the cursors do not end: {pages:?}");
    }
    assert_eq!(pages, [2, 2, 1]);
    assert_eq!(
        seen, newest_first,
        "pages chain newest first without duplicates"
    );
    let (all, next) = page(&server, &admin, &[]);
    assert_eq!(ids(&all), newest_first);
    assert_eq!(next, Value::Null);
    // Records are the CLI's records (which `show` completes with a summary).
    let mut shown = server.vault.show_json(&r[0]);
    shown.as_object_mut().unwrap().remove("summary");
    assert_eq!(all[4], shown);

    // Filters, checked against `evault ls` and against what was pushed.
    let prefix = &OTHER_SHA[..7];
    // (query, the same as `evault ls` flags, expected records newest first)
    let cases: Vec<(Params, Vec<&str>, Vec<&String>)> = vec![
        (
            vec![("blueprint", "payments-ledger")],
            vec!["--blueprint", "payments-ledger"],
            vec![&r[4], &r[2]],
        ),
        (
            vec![("version", "2.0.0")],
            vec!["--version", "2.0.0"],
            vec![&r[2]],
        ),
        (
            vec![("kind", "sbom")],
            vec!["--kind", "sbom"],
            vec![&r[4], &r[0]],
        ),
        (
            vec![("format", "sarif")],
            vec!["--format", "sarif"],
            vec![&r[1]],
        ),
        (
            vec![("env", "staging")],
            vec!["--env", "staging"],
            vec![&r[4], &r[0]],
        ),
        (vec![("run_id", "2")], vec!["--run-id", "2"], vec![&r[1]]),
        (
            vec![("git_sha", prefix)],
            vec!["--git-sha", prefix],
            vec![&r[2]],
        ),
        (
            vec![("git_sha", OTHER_SHA)],
            vec!["--git-sha", OTHER_SHA],
            vec![&r[2]],
        ),
        (
            vec![("subject", &subject)],
            vec!["--subject", &subject],
            vec![&r[3]],
        ),
        (
            vec![("digest", &digest_r2)],
            vec!["--digest", &digest_r2],
            vec![&r[1]],
        ),
        (
            vec![("since", &ingested_r3)],
            vec!["--since", &ingested_r3],
            vec![&r[4], &r[3], &r[2]],
        ),
        (
            vec![("until", &ingested_r3)],
            vec!["--until", &ingested_r3],
            vec![&r[1], &r[0]],
        ),
        (
            vec![("blueprint", BLUEPRINT), ("kind", "sbom")],
            vec!["--blueprint", BLUEPRINT, "--kind", "sbom"],
            vec![&r[0]],
        ),
        (vec![("kind", "vex")], vec!["--kind", "vex"], vec![]),
    ];
    let mut failures = Vec::new();
    for (params, flags, expected) in &cases {
        let expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        let cli = ids(&server.vault.ls_json(flags));
        assert_eq!(
            cli, expected,
            "the test's expectation for {flags:?} is wrong"
        );
        let (records, _) = page(&server, &admin, params);
        if ids(&records) != expected {
            failures.push(format!(
                "GET /v1/records?{params:?}: {:?} instead of {expected:?}",
                ids(&records)
            ));
        }
    }
    // A filtered listing pages too.
    let (first, next) = page(&server, &admin, &[("blueprint", BLUEPRINT), ("limit", "2")]);
    let next = next.as_str().expect("a second page").to_string();
    let (second, last) = page(
        &server,
        &admin,
        &[("blueprint", BLUEPRINT), ("limit", "2"), ("cursor", &next)],
    );
    if (ids(&first), ids(&second), last.clone())
        != (
            vec![r[3].clone(), r[1].clone()],
            vec![r[0].clone()],
            Value::Null,
        )
    {
        failures.push(format!(
            "filtered paging: {:?} then {:?} (next {last})",
            ids(&first),
            ids(&second)
        ));
    }
    assert_no_failures(&failures);

    // One record by id or unique prefix.
    let one = server
        .get(&format!("/v1/records/{}", &r[1][..8]), Some(&admin))
        .expect(200)
        .json();
    assert_eq!(one["id"], r[1].as_str());

    // Limits on the page size.
    server
        .get("/v1/records?limit=1000", Some(&admin))
        .expect(200);
    let too_many = server.get("/v1/records?limit=1001", Some(&admin));
    let problem = assert_problem(&too_many, 400, "invalid-input");
    assert!(problem["detail"].as_str().unwrap().contains("limit"));
}

// ---------------------------------------------------------------------------------------------
// 9. Blobs

#[test]
fn blobs_come_back_byte_for_byte_with_immutable_caching_headers() {
    let server = Server::start();
    let ci = server.token("ci", "pusher", &[], None);
    let reader = server.token("auditor", "auditor", &[], None);
    let bytes = random_binary(300_000, 1);
    let record = pushed(
        &server
            .push(&ci, &links(&[("name", "image.bin")]), &bytes)
            .expect(201),
    )
    .remove(0);
    let digest = str_field(&record, "digest");
    assert_eq!(digest, digest_of(&bytes));
    let hex = digest.trim_start_matches("sha256:").to_string();
    let etag = format!("\"{digest}\"");

    let mut failures = Vec::new();
    for path in [format!("/v1/blobs/{digest}"), format!("/v1/blobs/{hex}")] {
        let reply = server.get(&path, Some(&reader));
        if reply.status != 200 || reply.body != bytes {
            failures.push(format!(
                "GET {path}: status {}, {} bytes (expected 200 and {} identical bytes)",
                reply.status,
                reply.body.len(),
                bytes.len()
            ));
        }
        let expected_headers = [
            ("content-type", "application/octet-stream".to_string()),
            ("etag", etag.clone()),
            ("content-length", bytes.len().to_string()),
            ("x-content-type-options", "nosniff".to_string()),
        ];
        for (name, want) in expected_headers {
            if reply.header(name).as_deref() != Some(want.as_str()) {
                failures.push(format!(
                    "GET {path}: {name} is {:?}, expected {want:?}",
                    reply.header(name)
                ));
            }
        }
        let cache = reply.header("cache-control").unwrap_or_default();
        if !(cache.contains("immutable") && cache.contains("max-age=31536000")) {
            failures.push(format!("GET {path}: cache-control {cache:?}"));
        }
    }

    let not_modified = server.send(
        Req::new("GET", format!("/v1/blobs/{digest}"))
            .token(&reader)
            .header("if-none-match", etag.clone()),
    );
    if not_modified.status != 304 || !not_modified.body.is_empty() {
        failures.push(format!("If-None-Match: {not_modified:?}"));
    }
    let other_etag = server.send(
        Req::new("GET", format!("/v1/blobs/{digest}"))
            .token(&reader)
            .header("if-none-match", format!("\"{}\"", digest_of(b"other"))),
    );
    if other_etag.status != 200 || other_etag.body != bytes {
        failures.push(format!(
            "If-None-Match with another ETag must give the blob, got {}",
            other_etag.status
        ));
    }

    let head = server.send(Req::new("HEAD", format!("/v1/blobs/{digest}")).token(&reader));
    if head.status != 200
        || head.header("content-length") != Some(bytes.len().to_string())
        || head.header("etag").as_deref() != Some(etag.as_str())
    {
        failures.push(format!("HEAD: {head:?}"));
    }
    // On the wire a HEAD answer has no body: read to the end of a `Connection: close` exchange.
    let raw = raw_exchange(
        &server,
        &format!(
            "HEAD /v1/blobs/{digest} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {reader}\r\nConnection: close\r\n\r\n"
        ),
    );
    match raw.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(end) if raw.len() == end + 4 => {}
        Some(end) => failures.push(format!(
            "HEAD sent {} body bytes on the wire",
            raw.len() - end - 4
        )),
        None => failures.push(format!(
            "HEAD: no complete header block: {:?}",
            String::from_utf8_lossy(&raw)
        )),
    }

    let unknown = server.get(
        &format!("/v1/blobs/{}", digest_of(b"never pushed")),
        Some(&reader),
    );
    failures.extend(problem_mismatches(&unknown, 404, "not-found"));
    let malformed = server.get("/v1/blobs/sha256:xyz", Some(&reader));
    failures.extend(problem_mismatches(&malformed, 400, "invalid-input"));
    assert_no_failures(&failures);
}

#[test]
fn head_answers_like_get_for_a_blob_whose_file_is_missing() {
    let server = Server::start();
    let ci = server.token("ci", "pusher", &[], None);
    let reader = server.token("auditor", "auditor", &[], None);
    let record = pushed(
        &server
            .push(
                &ci,
                &links(&[("name", "gone.txt")]),
                b"soon without a file\n",
            )
            .expect(201),
    )
    .remove(0);
    let digest = str_field(&record, "digest");
    std::fs::remove_file(server.vault.blob_file(&digest)).unwrap();
    let get = server.get(&format!("/v1/blobs/{digest}"), Some(&reader));
    let head = server.send(Req::new("HEAD", format!("/v1/blobs/{digest}")).token(&reader));
    assert_eq!(get.status, 500, "{get:?}");
    assert_eq!(head.status, get.status, "HEAD and GET disagree: {head:?}");
}

/// Sends `request` on a fresh connection and reads until the server closes it.
fn raw_exchange(server: &Server, request: &str) -> Vec<u8> {
    let mut stream = TcpStream::connect(server.addr()).expect("cannot connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    stream
        .read_to_end(&mut out)
        .expect("reading the raw answer");
    out
}

#[test]
fn a_blob_that_fails_verification_is_never_served_as_complete() {
    let server = Server::start();
    let ci = server.token("ci", "pusher", &[], None);
    let reader = server.token("auditor", "auditor", &[], None);
    let mut failures = Vec::new();
    type Corrupt = fn(&[u8], &[u8]) -> Vec<u8>;
    let cases: [(&str, Corrupt); 3] = [
        ("other bytes of the same length", |original, _| {
            let mut other = original.to_vec();
            other.reverse();
            zstd(&other)
        }),
        ("the stored file cut in half", |_, stored| {
            stored[..stored.len() / 2].to_vec()
        }),
        ("other bytes, longer", |original, _| {
            let mut other = original.to_vec();
            other.extend_from_slice(b"tail");
            zstd(&other)
        }),
    ];
    for (i, (name, corrupt)) in cases.iter().enumerate() {
        let bytes = random_binary(400_000, 10 + i as u64);
        let record = pushed(
            &server
                .push(&ci, &links(&[("name", "image.bin")]), &bytes)
                .expect(201),
        )
        .remove(0);
        let digest = str_field(&record, "digest");
        let file = server.vault.blob_file(&digest);
        let stored = std::fs::read(&file).unwrap();
        std::fs::write(&file, corrupt(&bytes, &stored)).unwrap();

        let response = server
            .agent()
            .get(server.url(&format!("/v1/blobs/{digest}")))
            .header("authorization", format!("Bearer {reader}"))
            .call();
        let response = match response {
            Ok(r) => r,
            // The connection dropped before any answer: not wrong bytes presented as complete.
            Err(_) => continue,
        };
        let status = response.status().as_u16();
        let (parts, mut body) = response.into_parts();
        let read = body.with_config().limit(64 << 20).read_to_vec();
        match (status, read) {
            (200, Ok(got)) if got != bytes => failures.push(format!(
                "{name}: 200 with a complete body of {} bytes (sha256 {}) that is not the blob {digest}",
                got.len(),
                sha256_hex(&got)
            )),
            (200, Ok(_)) => failures.push(format!(
                "{name}: served the original bytes from a corrupted blob file?"
            )),
            (200, Err(_)) => {} // aborted mid-stream: the client knows it is incomplete
            (500, Ok(got)) => {
                let reply = Reply {
                    method: "GET".into(),
                    path: format!("/v1/blobs/{digest}"),
                    status,
                    headers: parts.headers,
                    body: got,
                };
                failures.extend(
                    problem_mismatches(&reply, 500, "integrity")
                        .into_iter()
                        .map(|m| format!("{name}: {m}")),
                );
            }
            (status, read) => failures.push(format!(
                "{name}: status {status} ({:?})",
                read.map(|b| String::from_utf8_lossy(&b).into_owned())
            )),
        }
    }
    // A blob whose file is gone is found out before anything is sent: a 500 that points at the
    // log without leaking where the vault lives.
    let bytes = b"a blob about to lose its file\n";
    let record = pushed(
        &server
            .push(&ci, &links(&[("name", "gone.txt")]), bytes)
            .expect(201),
    )
    .remove(0);
    let digest = str_field(&record, "digest");
    std::fs::remove_file(server.vault.blob_file(&digest)).unwrap();
    let reply = server.get(&format!("/v1/blobs/{digest}"), Some(&reader));
    let mut mismatches = problem_mismatches(&reply, 500, "integrity");
    if mismatches.is_empty() {
        let problem = reply.json();
        let detail = problem["detail"].as_str().unwrap();
        let id = problem["request_id"].as_str().unwrap();
        if !detail.ends_with(&format!("see the server log for request {id}")) {
            mismatches.push(format!(
                "the 500 detail does not point at the log: {detail:?}"
            ));
        }
        let root = server.vault.root().to_string_lossy().into_owned();
        if detail.contains(&root) || detail.contains(".zst") || detail.contains("blobs/") {
            mismatches.push(format!("the 500 detail leaks a path: {detail:?}"));
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while !server.logs().contains(id) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if !server.logs().contains(id) {
            mismatches.push(format!("the log has no line with request id {id}"));
        }
    }
    failures.extend(
        mismatches
            .into_iter()
            .map(|m| format!("a missing blob file: {m}")),
    );

    // The server keeps serving.
    server.get("/healthz", None).expect(200);
    assert_no_failures(&failures);
}

// ---------------------------------------------------------------------------------------------
// 10. Limits

const SMALL_LIMITS: &str =
    "[limits]\nmax_upload_bytes = 65536\nmax_push_bytes = 1048576\nmax_push_files = 3\n";

#[test]
fn pushes_over_the_configured_limits_are_413_and_leave_nothing_behind() {
    let server = Server::start_on(Vault::initialised(), Some(SMALL_LIMITS));
    let ci = server.token("ci", "pusher", &[], None);
    let auditor = server.token("auditor", "auditor", &[], None);
    let vault = &server.vault;
    let before = vault_state(vault);

    // An upload over max_upload_bytes, with a Content-Length.
    let big = "x".repeat(65536 + 4096);
    let reply = server.push(&ci, &links(&[("name", "big.txt")]), big.as_bytes());
    let problem = assert_problem(&reply, 413, "too-large");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("max_upload_bytes"),
        "the detail names the limit: {problem}"
    );
    assert_unchanged(vault, &before, "an upload over max_upload_bytes");

    // The same without a Content-Length (chunked): the server counts, it does not trust.
    let response = server
        .agent()
        .post(server.url(&with_query("/v1/push", &links(&[("name", "big.txt")]))))
        .header("authorization", format!("Bearer {ci}"))
        .send(ureq::SendBody::from_owned_reader(io::Cursor::new(
            big.clone().into_bytes(),
        )));
    match response {
        Ok(r) => assert_eq!(r.status().as_u16(), 413, "a chunked upload over the limit"),
        Err(e) => panic!(
            "a chunked upload over the limit got no answer ({e})\nlog:\n{}",
            server.logs()
        ),
    }
    assert_unchanged(vault, &before, "a chunked upload over max_upload_bytes");

    // A body far over the limit, and one from a token that may not push: refused before the
    // body is read, yet the client, still sending, gets to read the answer.
    let huge = vec![b'z'; 4 << 20];
    let reply = server.push(&ci, &links(&[("name", "huge.txt")]), &huge);
    assert_problem(&reply, 413, "too-large");
    let reply = server.push(&auditor, &links(&[("name", "huge.txt")]), &huge);
    assert_problem(&reply, 403, "forbidden");
    assert_unchanged(vault, &before, "bodies refused before reading");

    // A small .tar.zst expanding to 64 MiB of zeros.
    let bomb = zero_bomb_tar(
        64 << 20,
        zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap(),
    )
    .finish()
    .unwrap();
    assert!(bomb.len() < 65536, "the bomb must fit the upload limit");
    let reply = server.push(&ci, &links(&[]), &bomb);
    let problem = assert_problem(&reply, 413, "too-large");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("max_push_bytes"),
        "the detail names the limit: {problem}"
    );
    assert_unchanged(vault, &before, "a decompression bomb");

    // More files than max_push_files.
    let four = tar_of(&[
        ("a.txt", b"a\n"),
        ("b.txt", b"b\n"),
        ("c.txt", b"c\n"),
        ("d.txt", b"d\n"),
    ]);
    let reply = server.push(&ci, &links(&[]), &four);
    let problem = assert_problem(&reply, 413, "too-large");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("max_push_files"),
        "the detail names the limit: {problem}"
    );
    assert_unchanged(vault, &before, "too many files");

    // Exactly at the limits is fine.
    let three = tar_of(&[("a.txt", b"a\n"), ("b.txt", b"b\n"), ("c.txt", b"c\n")]);
    assert_eq!(
        pushed(&server.push(&ci, &links(&[]), &three).expect(201)).len(),
        3
    );
    // The index rows count in the vault's state even while the server holds it open.
    let after = vault_state(vault);
    let changed: Vec<&String> = after
        .keys()
        .filter(|k| before.get(*k) != after.get(*k))
        .collect();
    assert!(
        changed.iter().any(|k| k.as_str() == "index.db: records"),
        "the vault state must see a successful push, saw changes in {changed:?}"
    );
    let exact = "y".repeat(65536);
    server
        .push(&ci, &links(&[("name", "exact.txt")]), exact.as_bytes())
        .expect(201);
}

// ---------------------------------------------------------------------------------------------
// 11. Concurrency

/// A bundle for run `run_id`: a manifest, an SBOM every run shares and notes of its own.
fn run_bundle(run_id: &str) -> Vec<u8> {
    tar_zst(&[
        ("evault-bundle.json", manifest(BLUEPRINT, run_id, json!([]))),
        ("sbom.json", cyclonedx_sbom("ghcr.io/acme/checkout-api")),
        ("notes.txt", format!("notes of run {run_id}\n").into_bytes()),
    ])
}

#[test]
fn fifty_concurrent_pushes_all_succeed_and_store_each_record_and_blob_once() {
    const THREADS: usize = 50;
    let server = Server::start();
    let ci = server.token("ci", "pusher", &[], None);
    let admin = server.token("admin", "admin", &[], None);
    let shared = run_bundle("shared");
    let bodies: Vec<(bool, Vec<u8>)> = (0..THREADS)
        .map(|i| {
            if i % 2 == 0 {
                (true, shared.clone())
            } else {
                (false, run_bundle(&format!("run-{i}")))
            }
        })
        .collect();
    let barrier = std::sync::Barrier::new(THREADS);
    let replies: Vec<(bool, Result<Reply, String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = bodies
            .iter()
            .map(|(same, body)| {
                let (server, ci, barrier) = (&server, &ci, &barrier);
                scope.spawn(move || {
                    let req = Req::new("POST", "/v1/push").token(ci).body(body.clone());
                    barrier.wait();
                    (*same, server.try_send(&req).map_err(|e| e.to_string()))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    let mut failures = Vec::new();
    let mut created_same = 0;
    for (same, reply) in &replies {
        match reply {
            Err(e) => failures.push(format!("a push failed on the wire: {e}")),
            Ok(reply) if !(200..300).contains(&reply.status) => {
                failures.push(format!("a push failed: {reply:?}"))
            }
            Ok(reply) if *same => created_same += usize::from(reply.status == 201),
            Ok(reply) if reply.status != 201 => {
                failures.push(format!("a push of a new run was not 201: {reply:?}"))
            }
            Ok(_) => {}
        }
    }
    if created_same != 1 {
        failures.push(format!(
            "{created_same} of the identical pushes answered 201; exactly one creates the records"
        ));
    }
    assert_no_failures(&failures);

    let distinct_runs = 1 + THREADS / 2;
    let (records, next) = page(&server, &admin, &[("limit", "1000")]);
    assert_eq!(next, Value::Null);
    let unique: BTreeSet<String> = ids(&records).into_iter().collect();
    assert_eq!(unique.len(), records.len(), "duplicate records listed");
    assert_eq!(records.len(), 2 * distinct_runs);
    // One shared SBOM blob plus one notes blob per run.
    let blobs = 1 + distinct_runs;
    assert_eq!(server.vault.blob_files().len(), blobs);
    assert_eq!(blob_rows(&server.data_dir()), blobs as u64);
    let status = server.get("/v1/status", Some(&admin)).expect(200).json();
    assert_eq!(status["records"], 2 * distinct_runs);
    assert_eq!(status["blobs"], blobs);
    server.vault.assert_tmp_empty();
    server.vault.run(["fsck"]).success();
}

// ---------------------------------------------------------------------------------------------
// 12. Shutdown

/// A request body that hands out one chunk at once and then one every `delay`.
struct SlowBody {
    chunks: VecDeque<Vec<u8>>,
    current: io::Cursor<Vec<u8>>,
    delay: Duration,
    started: bool,
}

impl Read for SlowBody {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let n = self.current.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            let Some(next) = self.chunks.pop_front() else {
                return Ok(0);
            };
            if self.started {
                std::thread::sleep(self.delay);
            }
            self.started = true;
            self.current = io::Cursor::new(next);
        }
    }
}

#[test]
fn sigterm_lets_an_upload_in_flight_finish_then_exits_0() {
    let mut server = Server::start();
    let ci = server.token("ci", "pusher", &[], None);
    let chunks: Vec<Vec<u8>> = (0..20)
        .map(|i| format!("{i:04} {}\n", "slow upload line ".repeat(60)).into_bytes())
        .collect();
    let whole: Vec<u8> = chunks.concat();
    let body = SlowBody {
        chunks: chunks.into(),
        current: io::Cursor::new(Vec::new()),
        delay: Duration::from_millis(100),
        started: false,
    };
    let url = server.url(&with_query("/v1/push", &links(&[("name", "slow.txt")])));
    let upload = {
        let ci = ci.clone();
        std::thread::spawn(move || {
            let response = agent()
                .post(url)
                .header("authorization", format!("Bearer {ci}"))
                .send(ureq::SendBody::from_owned_reader(body));
            response.map(|mut r| {
                let status = r.status().as_u16();
                (status, r.body_mut().read_to_string().unwrap_or_default())
            })
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    server.terminate();
    let outcome = upload.join().unwrap();
    let status = server.wait();
    let (code, body) = outcome.unwrap_or_else(|e| {
        panic!(
            "the upload in flight was cut off by SIGTERM: {e}\nlog:\n{}",
            server.logs()
        )
    });
    assert_eq!(code, 201, "{body}\nlog:\n{}", server.logs());
    assert!(
        status.success(),
        "the server exits 0 after SIGTERM, got {status:?}\nlog:\n{}",
        server.logs()
    );
    assert!(
        TcpStream::connect_timeout(&server.addr(), Duration::from_secs(2)).is_err(),
        "the server still accepts connections after it exited"
    );
    let records = server.vault.ls_json(["--limit", "10"]);
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(records[0]["digest"], digest_of(&whole));
    assert_eq!(records[0]["size"], whole.len());
    assert_eq!(records[0]["producer"], "ci");
}

#[test]
fn a_request_outliving_the_grace_period_is_cut_off_and_the_server_still_exits_0() {
    let mut server = Server::start_on(Vault::initialised(), Some("[shutdown]\ngrace_secs = 1\n"));
    let ci = server.token("ci", "pusher", &[], None);
    let before = vault_state(&server.vault);
    // Thirty chunks, one every 200 ms: 6 s, far beyond the 1 s grace period.
    let chunks: Vec<Vec<u8>> = (0..30)
        .map(|i| format!("never finished line {i}\n").into_bytes())
        .collect();
    let body = SlowBody {
        chunks: chunks.into(),
        current: io::Cursor::new(Vec::new()),
        delay: Duration::from_millis(200),
        started: false,
    };
    let url = server.url(&with_query("/v1/push", &links(&[("name", "cut.txt")])));
    let upload = std::thread::spawn(move || {
        agent()
            .post(url)
            .header("authorization", format!("Bearer {ci}"))
            .send(ureq::SendBody::from_owned_reader(body))
            .map(|r| r.status().as_u16())
    });
    std::thread::sleep(Duration::from_millis(500));
    server.terminate();
    let status = server.wait();
    assert!(
        status.success(),
        "the server exits 0 after its grace period, got {status:?}\nlog:\n{}",
        server.logs()
    );
    let outcome = upload.join().unwrap();
    assert!(
        !matches!(outcome, Ok(200..=299)),
        "a push cut off by shutdown reported success: {outcome:?}"
    );
    assert_unchanged(&server.vault, &before, "a push cut off by shutdown");
}

// ---------------------------------------------------------------------------------------------
// 13. Request time limit

/// The status line, headers and body of a raw HTTP/1.1 answer.
fn parse_raw(path: &str, raw: &[u8]) -> Reply {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete answer: {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"));
    let mut headers = ureq::http::HeaderMap::new();
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            headers.append(
                ureq::http::HeaderName::from_bytes(name.trim().as_bytes()).unwrap(),
                ureq::http::HeaderValue::from_str(value.trim()).unwrap(),
            );
        }
    }
    let mut body = raw[end + 4..].to_vec();
    if let Some(len) = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
    {
        body.truncate(len);
    }
    Reply {
        method: "POST".into(),
        path: path.to_string(),
        status,
        headers,
        body,
    }
}

/// Reads one answer (headers and a `Content-Length` body) from `stream`, leaving the connection
/// as it is.
fn read_answer(stream: &mut TcpStream, path: &str) -> Reply {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if raw.len() >= end + 4 + len {
                break;
            }
        }
        match stream.read(&mut buf) {
            // A reset after the answer arrived still leaves the answer read.
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
    parse_raw(path, &raw)
}

/// POSTs `chunks` to `path` with chunked encoding on a raw connection, one every `delay`,
/// stopping early once the server has answered; the answer and the connection.
fn post_slowly(
    server: &Server,
    token: &str,
    path: &str,
    chunks: &[&[u8]],
    delay: Duration,
) -> (Reply, TcpStream) {
    let mut stream = TcpStream::connect(server.addr()).expect("cannot connect");
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let answered = |stream: &TcpStream| {
        stream.set_nonblocking(true).unwrap();
        let ready = stream.peek(&mut [0u8; 1]).is_ok_and(|n| n > 0);
        stream.set_nonblocking(false).unwrap();
        ready
    };
    let mut sent_all = true;
    for chunk in chunks {
        if answered(&stream) {
            sent_all = false;
            break;
        }
        let mut frame = format!("{:x}\r\n", chunk.len()).into_bytes();
        frame.extend_from_slice(chunk);
        frame.extend_from_slice(b"\r\n");
        if stream.write_all(&frame).is_err() {
            sent_all = false;
            break;
        }
        std::thread::sleep(delay);
    }
    if sent_all {
        let _ = stream.write_all(b"0\r\n\r\n");
    }
    let reply = read_answer(&mut stream, path);
    (reply, stream)
}

/// A request body of ten lines, slow enough (one every 400 ms) to outlast a 1 s time limit.
fn slow_lines() -> Vec<Vec<u8>> {
    (0..10)
        .map(|i| format!("slow line {i}\n").into_bytes())
        .collect()
}

const ONE_SECOND_LIMIT: &str = "[limits]\nrequest_timeout_secs = 1\n";

/// Whether the server closes `stream` (or resets it) within 10 s, reading whatever comes first.
fn closed_within_10s(stream: &mut TcpStream) -> Result<Vec<u8>, io::Error> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut rest = Vec::new();
    match stream.read_to_end(&mut rest) {
        Ok(_) => Ok(rest),
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(rest),
        Err(e) => Err(e),
    }
}

#[test]
fn a_push_slower_than_the_request_time_limit_is_408_and_leaves_nothing_behind() {
    let server = Server::start_on(Vault::initialised(), Some(ONE_SECOND_LIMIT));
    let ci = server.token("ci", "pusher", &[], None);
    let before = vault_state(&server.vault);
    let lines = slow_lines();
    let chunks: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
    let path = with_query("/v1/push", &links(&[("name", "slow.txt")]));
    let (reply, _connection) =
        post_slowly(&server, &ci, &path, &chunks, Duration::from_millis(400));
    let problem = assert_problem(&reply, 408, "timeout");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("request_timeout_secs"),
        "the detail names the limit: {problem}"
    );
    assert_unchanged(&server.vault, &before, "a push cut off by the time limit");
    // The server goes on serving quick requests.
    server
        .push(&ci, &links(&[("name", "quick.txt")]), PLAIN_TEXT)
        .expect(201);
}

#[test]
fn a_connection_whose_request_timed_out_is_closed() {
    let server = Server::start_on(Vault::initialised(), Some(ONE_SECOND_LIMIT));
    let ci = server.token("ci", "pusher", &[], None);
    let lines = slow_lines();
    let chunks: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
    let path = with_query("/v1/push", &links(&[("name", "slow.txt")]));
    let (reply, mut connection) =
        post_slowly(&server, &ci, &path, &chunks, Duration::from_millis(400));
    assert_eq!(reply.status, 408, "{reply:?}");
    // The client now sends nothing more; a request time limit that lets the connection live on
    // bounds nothing.
    if let Err(e) = closed_within_10s(&mut connection) {
        panic!("the server still holds the connection 10 s after its 408 ({e})");
    }
}

#[test]
fn a_client_that_never_finishes_its_headers_is_cut_off_by_the_time_limit() {
    let server = Server::start_on(Vault::initialised(), Some(ONE_SECOND_LIMIT));
    let mut connection = TcpStream::connect(server.addr()).expect("cannot connect");
    connection
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    match closed_within_10s(&mut connection) {
        Ok(answer) if answer.is_empty() => {}
        Ok(answer) => {
            let reply = parse_raw("/healthz", &answer);
            assert_eq!(reply.status, 408, "{reply:?}");
        }
        Err(e) => panic!(
            "a connection with half a request is still open 10 s later, though \
             request_timeout_secs = 1 ({e})"
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// 14. Logs

#[test]
fn logs_carry_request_ids_and_never_token_secrets() {
    let mut server = Server::start();
    let admin = server.token("admin", "admin", &[], None);
    let ci = server.token("ci", "pusher", &[], None);
    let unknown = unknown_secret();
    server.remember_secret(&unknown);

    let push = server
        .push(&ci, &links(&[("name", "notes.txt")]), PLAIN_TEXT)
        .expect(201);
    let push_id = push
        .header("x-request-id")
        .expect("a push answer carries x-request-id");
    server
        .send(
            Req::new("GET", "/v1/whoami")
                .token(&admin)
                .header("x-request-id", "e2e-log-trace-7f3a"),
        )
        .expect(200);
    server.get("/v1/records", Some(&unknown)).expect(401);
    server.get("/v1/records", Some(&ci)).expect(403);
    let made = server
        .send(
            Req::new("POST", "/v1/tokens")
                .token(&admin)
                .header("content-type", "application/json")
                .body(pretty(
                    &json!({"name": "made-over-http", "role": "auditor"}),
                )),
        )
        .expect(201)
        .json();
    let made_secret = made["secret"]
        .as_str()
        .expect("a created token carries its secret");
    server.remember_secret(made_secret);
    server.get("/v1/whoami", Some(made_secret)).expect(200);
    server.get("/v1/tokens", Some(&admin)).expect(200);

    // Stop the server so that every log line has been written and collected.
    server.terminate();
    server.wait();
    let logs = server.logs();
    for secret in server.secrets() {
        assert!(
            !logs.contains(&secret),
            "the logs contain a token secret ({}...):\n{logs}",
            &secret[..8]
        );
        // Nor the hex part alone (e.g. a logged Authorization header without its prefix).
        let hex = secret.trim_start_matches("evt_");
        assert!(
            !logs.contains(hex),
            "the logs contain a secret's hex:\n{logs}"
        );
    }
    assert!(
        logs.contains("e2e-log-trace-7f3a"),
        "the logs do not carry the incoming request id:\n{logs}"
    );
    assert!(
        logs.contains(&push_id),
        "the logs do not carry the request id {push_id} of the push:\n{logs}"
    );
    assert_no_panic(&logs);
}

#[test]
fn json_logs_are_one_object_per_line_carrying_the_request_id_and_no_secret() {
    let mut server = Server::start_on(Vault::initialised(), Some("[log]\nformat = \"json\"\n"));
    let ci = server.token("ci", "pusher", &[], None);
    server
        .send(
            Req::new("POST", with_query("/v1/push", &links(&[("name", "a.txt")])))
                .token(&ci)
                .header("x-request-id", "e2e-json-log-1")
                .body(PLAIN_TEXT.to_vec()),
        )
        .expect(201);
    server.get("/v1/records", Some(&ci)).expect(403);
    server.terminate();
    server.wait();
    let logs = server.logs();
    let mut failures = Vec::new();
    for line in logs
        .lines()
        .filter(|l| !l.starts_with("evault: listening on"))
    {
        if !serde_json::from_str::<Value>(line).is_ok_and(|v| v.is_object()) {
            failures.push(format!("not a JSON object: {line}"));
        }
    }
    if !logs.contains("e2e-json-log-1") {
        failures.push("no line carries the request id".into());
    }
    for secret in server.secrets() {
        if logs.contains(&secret) {
            failures.push("a secret reached the log".into());
        }
    }
    assert!(failures.is_empty(), "{}\nlog:\n{logs}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// 15. Start-up

#[test]
fn serving_a_directory_without_a_vault_exits_3_saying_how_to_create_one() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-vault-here");
    let out = std::process::Command::new(EVAULT)
        .arg("--data-dir")
        .arg(&missing)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("EVAULT_DATA_DIR")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("cannot run evault serve");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "stderr:\n{stderr}");
    assert!(stderr.contains("evault init"), "stderr:\n{stderr}");
    assert!(!stderr.contains("listening on"), "stderr:\n{stderr}");
    assert!(!missing.exists(), "serve must not create a vault");
}
