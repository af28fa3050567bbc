//! The REST API through the real router (docs/api.md is the contract).

mod support;

use std::collections::HashSet;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{Method, StatusCode};
use evault_server::ServerLimits;
use serde_json::json;
use support::{GIT_SHA, TestVault, sbom, tar};

fn links(blueprint: &str) -> String {
    format!("blueprint={blueprint}&version=1.0.0&git_sha={GIT_SHA}")
}

// ---------------------------------------------------------------------------------------------
// Problems

#[tokio::test]
async fn a_bad_query_parameter_is_400_naming_it() {
    let v = TestVault::new();
    let a = v
        .push(
            "ci",
            "blueprint=checkout-api&version=1.0.0&git_sha=xyz",
            sbom("a"),
        )
        .await;
    let detail = a.problem(400, "invalid-input", "/v1/push");
    assert!(
        detail.starts_with("invalid git_sha 'xyz': expected 40 or 64 hexadecimal characters"),
        "{detail}"
    );
    let a = v
        .push("ci", &format!("{}&kind=sbomb", links("a")), sbom("a"))
        .await;
    let detail = a.problem(400, "invalid-input", "/v1/push");
    assert!(detail.contains("kind 'sbomb'"), "{detail}");
    let a = v
        .push("ci", &format!("{}&git-sha=1", links("a")), sbom("a"))
        .await;
    let detail = a.problem(400, "invalid-input", "/v1/push");
    assert!(detail.contains("'git-sha'"), "{detail}");
    let a = v
        .push(
            "ci",
            &format!("{}&subject=sha256:12", links("a")),
            sbom("a"),
        )
        .await;
    let detail = a.problem(400, "invalid-input", "/v1/push");
    assert!(
        detail.starts_with("invalid subject 'sha256:12'"),
        "{detail}"
    );
    assert_eq!(v.record_count().await, 0);
}

#[tokio::test]
async fn no_unknown_or_revoked_token_is_401() {
    let v = TestVault::new();
    let a = v.get("/v1/records", None).await;
    assert_eq!(
        a.problem(401, "unauthenticated", "/v1/records"),
        "missing bearer token"
    );
    assert_eq!(a.header("www-authenticate"), Some("Bearer"));

    let unknown = v
        .send(
            v.request(Method::GET, "/v1/records", None)
                .header("authorization", format!("Bearer evt_{}", "0".repeat(64)))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(
        unknown.problem(401, "unauthenticated", "/v1/records"),
        "unknown token"
    );

    let malformed = v
        .send(
            v.request(Method::GET, "/v1/whoami", None)
                .header("authorization", "Basic dXNlcjpwYXNz")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    malformed.problem(401, "unauthenticated", "/v1/whoami");

    let revoke = v
        .send(
            v.request(Method::DELETE, "/v1/tokens/auditor", Some("admin"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(revoke.status, StatusCode::OK, "{}", revoke.text());
    assert!(revoke.json()["revoked_at"].is_string());
    let a = v.get("/v1/records", Some("auditor")).await;
    assert_eq!(
        a.problem(401, "unauthenticated", "/v1/records"),
        "token revoked"
    );
}

#[tokio::test]
async fn a_role_without_the_permission_is_403_naming_the_role() {
    let v = TestVault::new();
    let a = v
        .push_for("auditor", "checkout-api", "sbom.json", &sbom("a"))
        .await;
    let detail = a.problem(403, "forbidden", "/v1/push");
    assert!(
        detail.contains("auditor") && detail.contains("pusher or admin"),
        "{detail}"
    );
    let a = v.get("/v1/records", Some("ci")).await;
    let detail = a.problem(403, "forbidden", "/v1/records");
    assert!(detail.contains("role pusher"), "{detail}");
    let a = v.get("/v1/tokens", Some("approver")).await;
    a.problem(403, "forbidden", "/v1/tokens");
    let a = v
        .send(
            v.request(Method::POST, "/v1/fsck", Some("auditor"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    a.problem(403, "forbidden", "/v1/fsck");
}

#[tokio::test]
async fn unknown_records_routes_and_methods_are_problems() {
    let v = TestVault::new();
    let id = "0123456789abcdef0123456789abcdef";
    let a = v.get(&format!("/v1/records/{id}"), Some("auditor")).await;
    let detail = a.problem(404, "not-found", &format!("/v1/records/{id}"));
    assert!(detail.contains(id), "{detail}");
    let a = v.get("/v1/records/abc", Some("auditor")).await;
    a.problem(400, "invalid-input", "/v1/records/abc");
    let a = v.get("/v2/records", Some("auditor")).await;
    a.problem(404, "no-such-route", "/v2/records");
    let a = v
        .send(
            v.request(Method::PUT, "/v1/records", Some("auditor"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    a.problem(405, "method-not-allowed", "/v1/records");
    assert!(a.header("allow").is_some_and(|m| m.contains("GET")));
    let a = v
        .send(
            v.request(Method::DELETE, "/v1/tokens/nobody", Some("admin"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    a.problem(404, "not-found", "/v1/tokens/nobody");
}

#[tokio::test]
async fn a_taken_token_name_is_409() {
    let v = TestVault::new();
    let a = v
        .post_json(
            "/v1/tokens",
            "admin",
            &json!({"name": "ci", "role": "pusher"}),
        )
        .await;
    let detail = a.problem(409, "conflict", "/v1/tokens");
    assert!(detail.contains("'ci'"), "{detail}");
}

#[tokio::test]
async fn an_upload_over_the_limit_is_413_and_leaves_nothing() {
    let v = TestVault::with_limits(ServerLimits {
        max_upload_bytes: 100,
        ..ServerLimits::default()
    });
    let big = vec![b'x'; 1000];
    // Declared length over the limit: refused before reading.
    let a = v
        .send(
            v.request(
                Method::POST,
                &format!("/v1/push?{}", links("a")),
                Some("ci"),
            )
            .header("content-length", "1000")
            .body(Body::from(big.clone()))
            .unwrap(),
        )
        .await;
    let detail = a.problem(413, "too-large", "/v1/push");
    assert!(detail.contains("limits.max_upload_bytes"), "{detail}");
    // No declared length: the stream is cut while it is read.
    let chunks: Vec<Result<Bytes, std::io::Error>> = big
        .chunks(64)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let a = v
        .send(
            v.request(
                Method::POST,
                &format!("/v1/push?{}", links("a")),
                Some("ci"),
            )
            .body(Body::from_stream(futures_util::stream::iter(chunks)))
            .unwrap(),
        )
        .await;
    let detail = a.problem(413, "too-large", "/v1/push");
    assert!(
        detail.contains("larger than 100 bytes (limits.max_upload_bytes)"),
        "{detail}"
    );
    assert_eq!(v.record_count().await, 0);
    assert!(v.tmp_is_empty());
}

#[tokio::test]
async fn an_archive_with_too_many_files_is_413_and_leaves_nothing() {
    let v = TestVault::with_limits(ServerLimits {
        max_push_files: Some(1),
        ..ServerLimits::default()
    });
    let bundle = tar(&[("a.json", &sbom("a")), ("b.json", &sbom("b"))]);
    let a = v.push("ci", &links("checkout-api"), bundle).await;
    let detail = a.problem(413, "too-large", "/v1/push");
    assert!(detail.contains("limits.max_push_files"), "{detail}");
    assert_eq!(v.record_count().await, 0);
    assert!(v.tmp_is_empty());
}

#[tokio::test]
async fn a_multipart_type_other_than_form_data_is_415() {
    let v = TestVault::new();
    let a = v
        .send(
            v.request(
                Method::POST,
                &format!("/v1/push?{}", links("a")),
                Some("ci"),
            )
            .header("content-type", "multipart/mixed; boundary=x")
            .body(Body::from("--x\r\n\r\n--x--"))
            .unwrap(),
        )
        .await;
    a.problem(415, "unsupported-media-type", "/v1/push");
}

#[tokio::test]
async fn a_declared_kind_the_content_contradicts_is_422() {
    let v = TestVault::new();
    let a = v
        .push(
            "ci",
            &format!("{}&kind=sbom&name=readme.txt", links("checkout-api")),
            "just some words\n",
        )
        .await;
    let detail = a.problem(422, "invalid-document", "/v1/push");
    assert!(detail.contains("readme.txt"), "{detail}");
    assert_eq!(v.record_count().await, 0);
}

#[tokio::test]
async fn bad_json_bodies_are_400_or_415() {
    let v = TestVault::new();
    let a = v
        .post_json("/v1/tokens", "admin", &json!({"name": "x", "role": "root"}))
        .await;
    let detail = a.problem(400, "invalid-input", "/v1/tokens");
    assert!(detail.contains("unknown role 'root'"), "{detail}");
    let a = v
        .post_json("/v1/tokens", "admin", &json!({"role": "admin"}))
        .await;
    let detail = a.problem(400, "invalid-input", "/v1/tokens");
    assert!(detail.contains("name"), "{detail}");
    let a = v
        .post_json(
            "/v1/tokens",
            "admin",
            &json!({"name": "x", "role": "admin", "expires": "soon"}),
        )
        .await;
    let detail = a.problem(400, "invalid-input", "/v1/tokens");
    assert!(detail.starts_with("expires:"), "{detail}");
    let a = v
        .send(
            v.request(Method::POST, "/v1/tokens", Some("admin"))
                .header("content-type", "application/json")
                .body(Body::from("{not json"))
                .unwrap(),
        )
        .await;
    a.problem(400, "invalid-input", "/v1/tokens");
    let a = v
        .send(
            v.request(Method::POST, "/v1/tokens", Some("admin"))
                .body(Body::from("{}"))
                .unwrap(),
        )
        .await;
    a.problem(415, "unsupported-media-type", "/v1/tokens");
}

#[tokio::test]
async fn a_request_over_the_timeout_is_408_and_stores_nothing() {
    let v = TestVault::with_limits(ServerLimits {
        request_timeout_secs: 1,
        ..ServerLimits::default()
    });
    // An upload that stalls well past the timeout, then sends the rest.
    let body = futures_util::stream::unfold(0u8, |step| async move {
        match step {
            0 => Some((Ok::<_, std::io::Error>(Bytes::from_static(b"{\"a\":")), 1)),
            1 => {
                tokio::time::sleep(Duration::from_secs(3)).await;
                Some((Ok(Bytes::from_static(b" 1}\n")), 2))
            }
            _ => None,
        }
    });
    let a = v
        .send(
            v.request(
                Method::POST,
                &format!("/v1/push?{}", links("a")),
                Some("ci"),
            )
            .body(Body::from_stream(body))
            .unwrap(),
        )
        .await;
    let detail = a.problem(408, "timeout", "/v1/push");
    assert!(detail.contains("limits.request_timeout_secs"), "{detail}");
    // The abandoned push fails at its next read once the stalled bytes arrive.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(v.record_count().await, 0);
    assert!(v.tmp_is_empty());
}

// ---------------------------------------------------------------------------------------------
// Push

#[tokio::test]
async fn push_creates_then_finds_present_and_the_producer_is_the_token() {
    let v = TestVault::new();
    let query = format!(
        "{}&name=sbom.json&producer=mallory&actor=mallory&subject=sha256:{}&subject=sha256:{}",
        links("checkout-api"),
        "a".repeat(64),
        "b".repeat(64)
    );
    let first = v.push("ci", &query, sbom("lodash")).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());
    let records = first.json();
    let r = &records[0];
    assert_eq!(r["status"], "created");
    assert_eq!(r["producer"], "ci");
    assert_eq!(r["kind"], "sbom");
    assert_eq!(r["format"], "cyclonedx-json");
    assert_eq!(r["source_path"], "sbom.json");
    assert_eq!(r["subjects"].as_array().unwrap().len(), 2);

    let again = v.push("admin", &query, sbom("lodash")).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text());
    let r2 = &again.json()[0];
    assert_eq!(r2["status"], "present");
    assert_eq!(r2["id"], r["id"]);
    assert_eq!(r2["producer"], "ci", "the first push's producer stands");
}

#[tokio::test]
async fn an_archive_is_expanded_unless_expand_is_false() {
    let v = TestVault::new();
    let bundle = tar(&[("a.json", &sbom("a")), ("dir/b.json", &sbom("b"))]);
    let a = v.push("ci", &links("checkout-api"), bundle.clone()).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    let paths: HashSet<String> = a
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["source_path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(paths, HashSet::from(["a.json".into(), "dir/b.json".into()]));
    let a = v
        .push(
            "ci",
            &format!("{}&expand=false&name=bundle.tar", links("checkout-api")),
            bundle,
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    assert_eq!(a.json().as_array().unwrap().len(), 1);
    let a = v
        .push("ci", &format!("{}&expand=maybe", links("x")), "x")
        .await;
    a.problem(400, "invalid-input", "/v1/push");
}

#[tokio::test]
async fn a_scoped_pusher_may_push_only_for_its_blueprints() {
    let v = TestVault::new();
    let a = v
        .push_for("payments-ci", "checkout-api", "s.json", &sbom("a"))
        .await;
    let detail = a.problem(403, "forbidden", "/v1/push");
    assert!(detail.contains("payments-*"), "{detail}");
    let a = v
        .push_for("payments-ci", "payments-api", "s.json", &sbom("a"))
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    assert_eq!(a.json()[0]["producer"], "payments-ci");
    assert_eq!(v.record_count().await, 1);
}

#[tokio::test]
async fn concurrent_pushes_lose_nothing_and_duplicate_nothing() {
    let v = TestVault::new();
    let mut tasks = Vec::new();
    for i in 0..24 {
        // Six distinct files, each pushed four times at once.
        let body = sbom(&format!("component-{}", i % 6));
        let uri = format!("/v1/push?{}&name=c{}.json", links("checkout-api"), i % 6);
        let request = v
            .request(Method::POST, &uri, Some("ci"))
            .body(Body::from(body))
            .unwrap();
        let app = v.app.clone();
        tasks.push(tokio::spawn(async move {
            use tower::ServiceExt;
            let r = app.oneshot(request).await.unwrap();
            let status = r.status();
            let body = axum::body::to_bytes(r.into_body(), usize::MAX)
                .await
                .unwrap();
            (status, body)
        }));
    }
    let mut created = 0;
    let mut ids = HashSet::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert!(
            status == StatusCode::CREATED || status == StatusCode::OK,
            "{status}: {}",
            String::from_utf8_lossy(&body)
        );
        let records: serde_json::Value = serde_json::from_slice(&body).unwrap();
        for r in records.as_array().unwrap() {
            if r["status"] == "created" {
                created += 1;
            }
            ids.insert(r["id"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(ids.len(), 6);
    assert_eq!(created, 6, "each record is created exactly once");
    assert_eq!(v.record_count().await, 6);
}

// ---------------------------------------------------------------------------------------------
// Reads

#[tokio::test]
async fn records_page_with_a_cursor_newest_first() {
    let v = TestVault::new();
    let mut pushed = Vec::new();
    for i in 0..5 {
        let a = v
            .push_for(
                "ci",
                "checkout-api",
                &format!("s{i}.json"),
                &sbom(&format!("c{i}")),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
        pushed.push(a.json()[0]["id"].as_str().unwrap().to_string());
    }
    let mut seen = Vec::new();
    let mut uri = "/v1/records?blueprint=checkout-api&limit=2".to_string();
    let mut pages = 0;
    loop {
        let a = v.get(&uri, Some("auditor")).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text());
        let page = a.json();
        pages += 1;
        for r in page["records"].as_array().unwrap() {
            seen.push(r["id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => uri = format!("/v1/records?blueprint=checkout-api&limit=2&cursor={c}"),
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    pushed.reverse();
    assert_eq!(seen, pushed, "every record once, newest first");

    let a = v.get("/v1/records?limit=0", Some("auditor")).await;
    assert!(
        a.problem(400, "invalid-input", "/v1/records")
            .contains("limit")
    );
    let a = v.get("/v1/records?limit=1001", Some("auditor")).await;
    assert!(
        a.problem(400, "invalid-input", "/v1/records")
            .contains("limit")
    );
    let a = v.get("/v1/records?cursor=x", Some("auditor")).await;
    assert!(
        a.problem(400, "invalid-input", "/v1/records")
            .contains("cursor")
    );
    let a = v.get("/v1/records?git_sha=abc", Some("auditor")).await;
    assert!(
        a.problem(400, "invalid-input", "/v1/records")
            .contains("git_sha")
    );
    let a = v.get("/v1/records?since=yesterday", Some("auditor")).await;
    assert!(
        a.problem(400, "invalid-input", "/v1/records")
            .contains("since")
    );
    let a = v
        .get(
            "/v1/records?git_sha=0123456&kind=sbom&format=cyclonedx-json",
            Some("approver"),
        )
        .await;
    assert_eq!(a.json()["records"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn a_record_by_id_or_prefix() {
    let v = TestVault::new();
    let a = v.push_for("ci", "checkout-api", "s.json", &sbom("a")).await;
    let id = a.json()[0]["id"].as_str().unwrap().to_string();
    let full = v.get(&format!("/v1/records/{id}"), Some("auditor")).await;
    assert_eq!(full.status, StatusCode::OK);
    assert_eq!(full.json()["id"], id.as_str());
    assert!(full.json().get("status").is_none());
    let prefix = v
        .get(&format!("/v1/records/{}", &id[..6]), Some("auditor"))
        .await;
    assert_eq!(prefix.json(), full.json());
}

#[tokio::test]
async fn a_scoped_auditor_sees_only_its_blueprints() {
    let v = TestVault::new();
    let other = v
        .push_for("ci", "checkout-api", "s.json", &sbom("checkout"))
        .await
        .json();
    let mine = v
        .push_for("ci", "payments-api", "s.json", &sbom("payments"))
        .await
        .json();
    let other_id = other[0]["id"].as_str().unwrap();
    let other_digest = other[0]["digest"].as_str().unwrap();
    let mine_id = mine[0]["id"].as_str().unwrap();
    let mine_digest = mine[0]["digest"].as_str().unwrap();

    let list = v.get("/v1/records", Some("payments-auditor")).await.json();
    let ids: Vec<&str> = list["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [mine_id]);
    let a = v
        .get(
            "/v1/records?blueprint=checkout-api",
            Some("payments-auditor"),
        )
        .await;
    assert_eq!(a.json()["records"].as_array().unwrap().len(), 0);

    let a = v
        .get(&format!("/v1/records/{other_id}"), Some("payments-auditor"))
        .await;
    a.problem(404, "not-found", &format!("/v1/records/{other_id}"));
    let a = v
        .get(
            &format!("/v1/blobs/{other_digest}"),
            Some("payments-auditor"),
        )
        .await;
    a.problem(404, "not-found", &format!("/v1/blobs/{other_digest}"));

    let a = v
        .get(&format!("/v1/records/{mine_id}"), Some("payments-auditor"))
        .await;
    assert_eq!(a.status, StatusCode::OK);
    let a = v
        .get(
            &format!("/v1/blobs/{mine_digest}"),
            Some("payments-auditor"),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(&a.body[..], &sbom("payments")[..]);
}

#[tokio::test]
async fn blobs_stream_with_immutable_caching_headers() {
    let v = TestVault::new();
    let bytes = sbom("lodash");
    let r = v
        .push_for("ci", "checkout-api", "s.json", &bytes)
        .await
        .json();
    let digest = r[0]["digest"].as_str().unwrap().to_string();
    let uri = format!("/v1/blobs/{digest}");

    let a = v.get(&uri, Some("auditor")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(&a.body[..], &bytes[..]);
    let etag = format!("\"{digest}\"");
    assert_eq!(a.header("etag"), Some(etag.as_str()));
    assert_eq!(a.header("content-type"), Some("application/octet-stream"));
    assert_eq!(
        a.header("content-length"),
        Some(bytes.len().to_string().as_str())
    );
    assert_eq!(
        a.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(a.header("x-content-type-options"), Some("nosniff"));

    let bare = v
        .get(
            &format!("/v1/blobs/{}", &digest["sha256:".len()..]),
            Some("admin"),
        )
        .await;
    assert_eq!(&bare.body[..], &bytes[..]);

    let head = v
        .send(
            v.request(Method::HEAD, &uri, Some("auditor"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
    assert_eq!(
        head.header("content-length"),
        Some(bytes.len().to_string().as_str())
    );
    assert_eq!(head.header("etag"), Some(etag.as_str()));

    let cached = v
        .send(
            v.request(Method::GET, &uri, Some("auditor"))
                .header("if-none-match", &etag)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(cached.status, StatusCode::NOT_MODIFIED);
    assert!(cached.body.is_empty());
    assert_eq!(cached.header("etag"), Some(etag.as_str()));

    let a = v.get("/v1/blobs/sha256:1234", Some("auditor")).await;
    assert!(
        a.problem(400, "invalid-input", "/v1/blobs/sha256:1234")
            .contains("digest")
    );
    let missing = format!("sha256:{}", "e".repeat(64));
    let a = v
        .get(&format!("/v1/blobs/{missing}"), Some("auditor"))
        .await;
    a.problem(404, "not-found", &format!("/v1/blobs/{missing}"));
}

/// The blob file of `digest` in the test vault.
fn blob_file(v: &TestVault, digest: &str) -> std::path::PathBuf {
    let hex = &digest["sha256:".len()..];
    v.vault_dir()
        .join("blobs/sha256")
        .join(&hex[..2])
        .join(format!("{hex}.zst"))
}

#[tokio::test]
async fn a_damaged_blob_is_a_500_integrity_problem_without_internals() {
    let v = TestVault::new();
    let r = v
        .push_for("ci", "checkout-api", "s.json", &sbom("a"))
        .await
        .json();
    let digest = r[0]["digest"].as_str().unwrap().to_string();
    std::fs::remove_file(blob_file(&v, &digest)).unwrap();
    let uri = format!("/v1/blobs/{digest}");
    let a = v.get(&uri, Some("auditor")).await;
    let detail = a.problem(500, "integrity", &uri);
    assert!(detail.contains(&digest), "{detail}");
    assert!(
        detail.contains(a.header("x-request-id").unwrap()),
        "{detail}"
    );
    assert!(!detail.contains('/'), "no paths in 500 details: {detail}");
}

#[tokio::test]
async fn a_large_blob_that_fails_verification_mid_stream_is_cut_short() {
    let v = TestVault::new();
    // Text that compresses poorly enough to span several chunks.
    let mut text = String::new();
    let mut x: u64 = 1;
    while text.len() < 3 << 20 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        text.push_str(&format!("{x:016x}\n"));
    }
    let r = v
        .push_for("ci", "checkout-api", "big.txt", text.as_bytes())
        .await
        .json();
    let digest = r[0]["digest"].as_str().unwrap().to_string();
    let path = blob_file(&v, &digest);
    let mut stored = std::fs::read(&path).unwrap();
    let middle = stored.len() / 2;
    stored[middle] ^= 0xff;
    std::fs::write(&path, stored).unwrap();

    let response = tower::ServiceExt::oneshot(
        v.app.clone(),
        v.request(Method::GET, &format!("/v1/blobs/{digest}"), Some("auditor"))
            .body(Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the failure comes after the first byte"
    );
    let length: usize = response.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(length, text.len());
    // The body ends in an error, never in a complete (wrong) transfer.
    let body = axum::body::to_bytes(response.into_body(), usize::MAX).await;
    assert!(
        body.is_err(),
        "a corrupt blob must not stream to completion"
    );
}

#[tokio::test]
async fn status_whoami_and_fsck() {
    let v = TestVault::new();
    v.push_for("ci", "checkout-api", "s.json", &sbom("a")).await;
    let s = v.get("/v1/status", Some("auditor")).await.json();
    assert_eq!(s["records"], 1);
    assert_eq!(s["blobs"], 1);
    assert!(s["bytes"].as_u64().unwrap() > 0);
    assert!(s["stored_bytes"].as_u64().unwrap() > 0);

    let w = v.get("/v1/whoami", Some("payments-ci")).await.json();
    assert_eq!(
        w,
        json!({"name": "payments-ci", "role": "pusher", "scopes": ["payments-*"]})
    );

    let f = v
        .send(
            v.request(Method::POST, "/v1/fsck", Some("admin"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(f.status, StatusCode::OK, "{}", f.text());
    let report = f.json();
    assert_eq!(report["blobs_checked"], 1);
    assert_eq!(report["problems"], json!([]));
}

#[tokio::test]
async fn admins_manage_tokens() {
    let v = TestVault::new();
    let a = v
        .post_json(
            "/v1/tokens",
            "admin",
            &json!({"name": "new-ci", "role": "pusher", "scopes": ["web-*"], "expires": "90d"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    let t = a.json();
    assert_eq!(t["created_by"], "admin");
    assert_eq!(t["scopes"], json!(["web-*"]));
    assert!(t["expires_at"].is_string());
    let secret = t["secret"].as_str().unwrap().to_string();

    let w = v
        .send(
            v.request(Method::GET, "/v1/whoami", None)
                .header("authorization", format!("Bearer {secret}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(w.json()["name"], "new-ci");

    let list = v.get("/v1/tokens", Some("admin")).await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(!list.text().contains("secret"));
    assert!(!list.text().contains(&secret));
    let names: Vec<String> = list
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert!(names.contains(&"new-ci".to_string()));

    let a = v
        .post_json(
            "/v1/tokens",
            "admin",
            &json!({"name": "bad name", "role": "pusher"}),
        )
        .await;
    assert!(
        a.problem(400, "invalid-input", "/v1/tokens")
            .contains("token name")
    );
}

// ---------------------------------------------------------------------------------------------
// Operations

#[tokio::test]
async fn health_and_readiness() {
    let v = TestVault::new();
    let a = v.get("/healthz", None).await;
    assert_eq!(a.json(), json!({"status": "ok"}));
    let a = v.get("/readyz", None).await;
    assert_eq!(a.json(), json!({"status": "ready"}));
}

#[tokio::test]
async fn request_ids_are_echoed_when_sane_and_made_up_otherwise() {
    let v = TestVault::new();
    let a = v
        .send(
            v.request(Method::GET, "/healthz", None)
                .header("x-request-id", "build-42.retry_1")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(a.header("x-request-id"), Some("build-42.retry_1"));
    let a = v
        .send(
            v.request(Method::GET, "/v1/records", None)
                .header("x-request-id", "no spaces allowed")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    let id = a.header("x-request-id").unwrap().to_string();
    assert_eq!(id.len(), 16);
    assert_eq!(a.json()["request_id"], id.as_str());
}

#[tokio::test]
async fn metrics_count_requests_by_route_template() {
    let v = TestVault::new();
    let r = v
        .push_for("ci", "checkout-api", "s.json", &sbom("a"))
        .await
        .json();
    let id = r[0]["id"].as_str().unwrap();
    v.get(&format!("/v1/records/{id}"), Some("auditor")).await;
    v.get("/nowhere", None).await;
    let m = v.get("/metrics", None).await;
    assert_eq!(m.status, StatusCode::OK);
    assert!(m.header("content-type").unwrap().starts_with("text/plain"));
    let text = m.text();
    for needle in [
        "evault_http_requests_total{method=\"POST\",route=\"/v1/push\",status=\"201\"} 1",
        "evault_http_requests_total{method=\"GET\",route=\"/v1/records/{id}\",status=\"200\"} 1",
        "evault_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"} 1",
        "evault_http_request_duration_seconds_bucket{method=\"GET\",route=\"/v1/records/{id}\",le=\"+Inf\"} 1",
        "# TYPE evault_http_request_duration_seconds histogram",
        "evault_records 1\n",
        "evault_blobs 1\n",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    let ingested = text
        .lines()
        .find_map(|l| l.strip_prefix("evault_ingested_bytes_total "))
        .unwrap();
    assert_eq!(ingested, sbom("a").len().to_string());
    assert!(!text.contains(id), "ids never become labels");
}

#[tokio::test]
async fn a_push_refused_before_reading_still_reads_the_body_so_the_client_hears_why() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let v = TestVault::new();
    for (token, query) in [
        (Some("ci"), "git_sha=xyz".to_string()),
        (Some("auditor"), links("a")),
        (None, links("a")),
    ] {
        let finished = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&finished);
        let body = futures_util::stream::unfold(0u8, move |step| {
            let flag = Arc::clone(&flag);
            async move {
                if step < 3 {
                    Some((
                        Ok::<_, std::io::Error>(Bytes::from_static(b"some bytes\n")),
                        step + 1,
                    ))
                } else {
                    flag.store(true, Ordering::SeqCst);
                    None
                }
            }
        });
        let a = v
            .send(
                v.request(Method::POST, &format!("/v1/push?{query}"), token)
                    .body(Body::from_stream(body))
                    .unwrap(),
            )
            .await;
        assert!(a.status.is_client_error(), "{}", a.text());
        assert!(
            finished.load(Ordering::SeqCst),
            "{query}: the body was not read"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Multipart bundles

/// A `multipart/form-data` body with one part per (field name, filename, bytes).
fn form(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "evault-test-boundary-7MA4YWxk";
    let mut body = Vec::new();
    for (name, filename, bytes) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let disposition = match filename {
            Some(f) => {
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n")
            }
            None => format!("Content-Disposition: form-data; name=\"{name}\"\r\n"),
        };
        body.extend_from_slice(disposition.as_bytes());
        body.extend_from_slice(b"Content-Type: application/octet-stream\r\n\r\n");
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn push_form(
    v: &TestVault,
    query: &str,
    parts: &[(&str, Option<&str>, &[u8])],
) -> support::Answer {
    let (content_type, body) = form(parts);
    v.send(
        v.request(Method::POST, &format!("/v1/push?{query}"), Some("ci"))
            .header("content-type", content_type)
            .body(Body::from(body))
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn a_multipart_bundle_is_pushed_like_a_directory_with_its_manifest() {
    let v = TestVault::new();
    let manifest = json!({
        "_type": "https://evault.dev/bundle/v1",
        "blueprint": {"name": "checkout-api", "version": "1.4.2"},
        "git_sha": GIT_SHA,
        "files": [{"path": "rollback_plan.md", "kind": "rollback-plan"}]
    })
    .to_string();
    let sbom_bytes = sbom("lodash");
    let parts: &[(&str, Option<&str>, &[u8])] = &[
        ("file", Some("evault-bundle.json"), manifest.as_bytes()),
        ("file", Some("reports/sbom.json"), &sbom_bytes),
        (
            "file",
            Some("rollback_plan.md"),
            b"Restore 1.4.1 with `kubectl rollout undo`.\n",
        ),
    ];
    let a = push_form(&v, "run_id=8812", parts).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    let records = a.json();
    let mut seen: Vec<(String, String)> = records
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["source_path"].as_str().unwrap().to_string(),
                r["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("reports/sbom.json".to_string(), "sbom".to_string()),
            ("rollback_plan.md".to_string(), "rollback-plan".to_string())
        ]
    );
    assert!(
        records
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["blueprint"]["version"] == "1.4.2"
                && r["run_id"] == "8812"
                && r["producer"] == "ci")
    );
    // The same upload again: everything already present.
    let again = push_form(&v, "run_id=8812", parts).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text());
    assert!(v.tmp_is_empty());
}

#[tokio::test]
async fn bad_multipart_bundles_are_refused_and_store_nothing() {
    let v = TestVault::new();
    let q = links("checkout-api");
    let ok: &[u8] = b"fine\n";
    let no_filename = push_form(&v, &q, &[("file", None, ok)]).await;
    let detail = no_filename.problem(400, "invalid-input", "/v1/push");
    assert!(detail.contains("has no filename"), "{detail}");
    let escape = push_form(&v, &q, &[("file", Some("../evil.txt"), ok)]).await;
    escape.problem(422, "invalid-document", "/v1/push");
    let twice = push_form(
        &v,
        &q,
        &[("file", Some("a.txt"), ok), ("file", Some("a.txt"), ok)],
    )
    .await;
    let detail = twice.problem(422, "invalid-document", "/v1/push");
    assert!(detail.contains("appears twice"), "{detail}");
    let broken = push_form(
        &v,
        &q,
        &[
            ("file", Some("a.txt"), ok),
            (
                "file",
                Some("bad.json"),
                br#"{"_type":"https://evault.dev/approval/v1","decision":"maybe"}"#,
            ),
        ],
    )
    .await;
    broken.problem(422, "invalid-document", "/v1/push");
    assert_eq!(v.record_count().await, 0);
    assert!(v.tmp_is_empty());
}

#[tokio::test]
async fn a_multipart_upload_over_the_limits_is_413() {
    let v = TestVault::with_limits(ServerLimits {
        max_upload_bytes: 1000,
        max_push_files: Some(2),
        ..ServerLimits::default()
    });
    let q = links("checkout-api");
    let big = vec![b'x'; 5000];
    let a = push_form(&v, &q, &[("file", Some("big.txt"), &big)]).await;
    let detail = a.problem(413, "too-large", "/v1/push");
    assert!(detail.contains("limits.max_upload_bytes"), "{detail}");
    let small: &[u8] = b"s\n";
    let many = push_form(
        &v,
        &q,
        &[
            ("f", Some("a"), small),
            ("f", Some("b"), small),
            ("f", Some("c"), small),
        ],
    )
    .await;
    let detail = many.problem(413, "too-large", "/v1/push");
    assert!(detail.contains("limits.max_push_files"), "{detail}");
    assert_eq!(v.record_count().await, 0);
}
