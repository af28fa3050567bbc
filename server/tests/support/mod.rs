//! A vault in a temporary directory behind the real router, driven with `oneshot` requests.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use evault_core::Vault;
use evault_core::auth::Role;
use evault_server::ServerLimits;
use serde_json::{Value, json};
use tower::ServiceExt;

pub const GIT_SHA: &str = "0123456789abcdef0123456789abcdef01234567";

pub struct TestVault {
    pub app: Router,
    pub dir: tempfile::TempDir,
    /// Token name → secret.
    pub secrets: HashMap<&'static str, String>,
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body[..self.body.len().min(500)])
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Checks the RFC 9457 shape of docs/api.md and returns the detail.
    pub fn problem(&self, status: u16, slug: &str, instance: &str) -> String {
        assert_eq!(self.status.as_u16(), status, "{}", self.text());
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json")
        );
        let p = self.json();
        let keys: Vec<&str> = p.as_object().unwrap().keys().map(String::as_str).collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            [
                "detail",
                "instance",
                "request_id",
                "status",
                "title",
                "type"
            ]
        );
        assert_eq!(p["type"], format!("https://evault.dev/problems/{slug}"));
        assert_eq!(p["status"], status);
        assert_eq!(p["instance"], instance);
        assert!(!p["title"].as_str().unwrap().is_empty());
        let id = self.header("x-request-id").expect("x-request-id");
        assert_eq!(p["request_id"], id);
        p["detail"].as_str().unwrap().to_string()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Tokens every test vault has: name, role, scopes.
const TOKENS: &[(&str, Role, &[&str])] = &[
    ("admin", Role::Admin, &[]),
    ("ci", Role::Pusher, &[]),
    ("auditor", Role::Auditor, &[]),
    ("approver", Role::Approver, &[]),
    ("payments-ci", Role::Pusher, &["payments-*"]),
    ("payments-auditor", Role::Auditor, &["payments-*"]),
];

impl TestVault {
    pub fn new() -> TestVault {
        Self::with_limits(ServerLimits::default())
    }

    pub fn with_limits(limits: ServerLimits) -> TestVault {
        let dir = tempfile::tempdir().unwrap();
        let (vault, _) = Vault::init(&dir.path().join("vault"), "test").unwrap();
        let mut secrets = HashMap::new();
        for (name, role, scopes) in TOKENS {
            let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
            let token = vault
                .create_token(name, *role, &scopes, None, "test")
                .unwrap();
            secrets.insert(*name, token.secret);
        }
        let limits_for_vault = limits.push_limits(&vault.config().limits);
        let app = evault_server::app(vault.with_limits(limits_for_vault), limits);
        TestVault { app, dir, secrets }
    }

    pub fn vault_dir(&self) -> PathBuf {
        self.dir.path().join("vault")
    }

    pub fn secret(&self, token: &str) -> &str {
        &self.secrets[token]
    }

    pub async fn send(&self, request: Request<Body>) -> Answer {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap_or_default();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// A request with `token`'s bearer secret (none for `None`).
    pub fn request(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
    ) -> axum::http::request::Builder {
        let mut b = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {}", self.secret(t)));
        }
        b
    }

    pub async fn get(&self, uri: &str, token: Option<&str>) -> Answer {
        self.send(
            self.request(Method::GET, uri, token)
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    pub async fn push(&self, token: &str, query: &str, bytes: impl Into<Body>) -> Answer {
        let uri = format!("/v1/push?{query}");
        self.send(
            self.request(Method::POST, &uri, Some(token))
                .body(bytes.into())
                .unwrap(),
        )
        .await
    }

    /// Pushes `bytes` for `blueprint` 1.0.0 and returns the answer.
    pub async fn push_for(&self, token: &str, blueprint: &str, name: &str, bytes: &[u8]) -> Answer {
        self.push(
            token,
            &format!("blueprint={blueprint}&version=1.0.0&git_sha={GIT_SHA}&name={name}"),
            bytes.to_vec(),
        )
        .await
    }

    pub async fn post_json(&self, uri: &str, token: &str, body: &Value) -> Answer {
        self.send(
            self.request(Method::POST, uri, Some(token))
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
    }

    /// Number of records an unscoped auditor sees.
    pub async fn record_count(&self) -> usize {
        let a = self.get("/v1/records?limit=1000", Some("auditor")).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text());
        a.json()["records"].as_array().unwrap().len()
    }

    /// Whether the vault's staging directory is empty (nothing left behind by a failed push).
    pub fn tmp_is_empty(&self) -> bool {
        std::fs::read_dir(self.vault_dir().join("tmp"))
            .map(|mut d| d.next().is_none())
            .unwrap_or(true)
    }
}

pub fn sbom(component: &str) -> Vec<u8> {
    serde_json::to_vec_pretty(&json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "components": [{"type": "library", "name": component, "version": "1.0.0"}]
    }))
    .unwrap()
}

pub fn tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, path, *data).unwrap();
    }
    b.into_inner().unwrap()
}
