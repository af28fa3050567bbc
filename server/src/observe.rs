//! The middleware every request passes through: request id, tracing span, problem bodies,
//! request log line, metrics, and the access log's events.
//!
//! It runs after routing (it is added with `Router::layer`), so it sees the matched route
//! template, which is what logs and metrics are labelled with: `/v1/records/{id}`, never the
//! id itself.
//!
//! Every answer to a token on a route of [`LOGGED_READS`] (refusals included) becomes an event
//! of the vault's access log ([`evault_core::access`]): who (token name and role), what (action
//! and target), when (arrival), from where (the connection's peer), the request id and the
//! status. The event is queued before the response leaves; if it cannot be (the log is broken),
//! the read is refused with a 503 instead, so no read goes unrecorded.

use std::any::Any;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{RequestExt, extract::RawPathParams};
use chrono::{DateTime, Utc};
use evault_core::access::{AccessEntry, AccessLog, TryRecord};
use evault_core::auth::Role;
use tracing::Instrument;

use crate::app::AppState;
use crate::metrics::method_label;
use crate::problem::{ApiError, PROBLEM_JSON, ProblemKind};

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest request id taken from a client.
const MAX_REQUEST_ID: usize = 64;

/// The id of the request being served (also in the `x-request-id` header of request and
/// response).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Where the [`crate::auth::Caller`] extractor leaves the token's name and role, for the request
/// log line and the access log.
#[derive(Debug, Clone, Default)]
pub struct CallerName(Arc<OnceLock<(String, Role)>>);

impl CallerName {
    pub fn set(&self, name: &str, role: Role) {
        let _ = self.0.set((name.to_string(), role));
    }

    fn get(&self) -> Option<(&str, Role)> {
        self.0.get().map(|(name, role)| (name.as_str(), *role))
    }
}

/// The connection's peer (`ip:port`), which the accept loop puts into every request's
/// extensions. Absent when the router is driven without a socket (tests).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// What the event of a logged read names as its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// This path parameter, as asked for (a record id or prefix, a blob digest).
    Param(&'static str),
    /// The query string, as sent (`""` without one).
    Query,
}

/// A route whose every answer to a token is an event of the access log.
#[derive(Debug, Clone, Copy)]
pub struct LoggedRead {
    pub method: &'static str,
    /// The route template, as routed (`/v1/records/{id}`).
    pub route: &'static str,
    /// The event's action.
    pub action: &'static str,
    pub target: Target,
}

/// The reads recorded in the access log, one line per route: a new read route (exports, log
/// proofs) is recorded by adding its line here.
#[rustfmt::skip]
pub const LOGGED_READS: &[LoggedRead] = &[
    LoggedRead { method: "GET", route: "/v1/records/{id}", action: "record.read", target: Target::Param("id") },
    LoggedRead { method: "GET", route: "/v1/records", action: "records.query", target: Target::Query },
    LoggedRead { method: "GET", route: "/v1/blobs/{digest}", action: "blob.read", target: Target::Param("digest") },
    LoggedRead { method: "HEAD", route: "/v1/blobs/{digest}", action: "blob.head", target: Target::Param("digest") },
    LoggedRead { method: "GET", route: "/v1/log/access", action: "access.query", target: Target::Query },
    LoggedRead { method: "GET", route: "/v1/log/proof/{id}", action: "log.prove", target: Target::Param("id") },
    LoggedRead { method: "GET", route: "/v1/log/entries", action: "log.entries", target: Target::Query },
    LoggedRead { method: "GET", route: "/v1/export", action: "pack.export", target: Target::Query },
    LoggedRead { method: "GET", route: "/v1/trace/deploy/{id}", action: "trace.deploy", target: Target::Param("id") },
    LoggedRead { method: "GET", route: "/v1/trace/commit/{sha}", action: "trace.commit", target: Target::Param("sha") },
    LoggedRead { method: "GET", route: "/v1/search/component", action: "search.component", target: Target::Query },
    LoggedRead { method: "GET", route: "/v1/search/vuln/{id}", action: "search.vuln", target: Target::Param("id") },
    LoggedRead { method: "GET", route: "/v1/audit/changelog", action: "audit.changelog", target: Target::Query },
    LoggedRead { method: "GET", route: "/v1/audit/completeness", action: "audit.completeness", target: Target::Query },
];

/// The logged read `method` on `route` is, if any.
pub fn logged_read(method: &Method, route: &str) -> Option<&'static LoggedRead> {
    LOGGED_READS
        .iter()
        .find(|r| r.route == route && r.method == method.as_str())
}

/// The target of `read` in `request`.
async fn read_target(read: &LoggedRead, request: &mut Request) -> String {
    match read.target {
        Target::Query => request.uri().query().unwrap_or_default().to_string(),
        Target::Param(name) => match request.extract_parts::<RawPathParams>().await {
            Ok(params) => params
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
                .unwrap_or_else(|| request.uri().path().to_string()),
            // Not UTF-8 once percent-decoded: the path as sent says what was asked for.
            Err(_) => request.uri().path().to_string(),
        },
    }
}

/// Queues `entry`; when the queue is full, waits for room on the blocking pool (back-pressure
/// on this reader, never on the async threads). An error says why the event is not recorded.
async fn record_access(access: Option<&AccessLog>, entry: AccessEntry) -> Result<(), String> {
    let Some(log) = access else {
        return Err("the access log could not be opened when the server started".into());
    };
    match log.try_record(entry) {
        Ok(TryRecord::Queued) => Ok(()),
        Ok(TryRecord::Full(entry)) => {
            let log = log.clone();
            match tokio::task::spawn_blocking(move || log.record(entry)).await {
                Ok(recorded) => recorded.map_err(|e| e.to_string()),
                Err(e) => Err(format!(
                    "waiting for room in the access log's queue failed: {e}"
                )),
            }
        }
        Err(e) => Err(e.to_string()),
    }
}

/// What the access log needs to know about a request before it runs.
struct PendingRead {
    read: &'static LoggedRead,
    at: DateTime<Utc>,
    target: String,
    remote: Option<String>,
}

/// A client's `x-request-id` if it is one we can safely log and echo.
fn incoming_id(request: &Request) -> Option<String> {
    let value = request.headers().get(&X_REQUEST_ID)?.to_str().ok()?;
    let sane = !value.is_empty()
        && value.len() <= MAX_REQUEST_ID
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    sane.then(|| value.to_string())
}

/// 16 random hex characters.
pub fn generate_id() -> String {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        // No randomness: fall back to something unique within this process.
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default();
        bytes = (t ^ n.rotate_left(48)).to_be_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub async fn observe(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let arrived = Utc::now();
    let request_id = incoming_id(&request).unwrap_or_else(generate_id);
    // Only [A-Za-z0-9._-] gets here, which is always a valid header value.
    let id_header = HeaderValue::from_str(&request_id).ok();
    if let Some(v) = &id_header {
        request.headers_mut().insert(X_REQUEST_ID, v.clone());
    }
    request
        .extensions_mut()
        .insert(RequestId(request_id.clone()));
    let caller = CallerName::default();
    request.extensions_mut().insert(caller.clone());
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let instance = request.uri().path().to_string();
    let pending = match logged_read(&method, &route) {
        Some(read) => Some(PendingRead {
            read,
            at: arrived,
            target: read_target(read, &mut request).await,
            remote: request
                .extensions()
                .get::<Peer>()
                .map(|peer| peer.0.to_string()),
        }),
        None => None,
    };
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %method,
        route = %route,
        token = tracing::field::Empty,
    );

    let response = next.run(request).instrument(span.clone()).await;
    let mut response = complete_problem(response, &state, &method, &instance, &request_id)
        .instrument(span.clone())
        .await;
    // A read by a token is recorded before its answer leaves, or refused.
    if let (Some(pending), Some((token, role))) = (pending, caller.get()) {
        let entry = AccessEntry {
            at: pending.at,
            token: token.to_string(),
            role,
            action: pending.read.action.to_string(),
            target: pending.target,
            remote: pending.remote,
            request_id: request_id.clone(),
            status: response.status().as_u16(),
        };
        if let Err(e) = record_access(state.access.as_ref(), entry).await {
            span.in_scope(|| {
                tracing::error!(error = %e, "cannot record a read in the access log; refusing it");
            });
            response = ApiError::see_log(
                ProblemKind::NotReady,
                "this read cannot be recorded in the access log, so it is refused",
            )
            .into_problem_response(&instance, &request_id);
        }
    }
    if let Some(v) = id_header {
        response.headers_mut().insert(X_REQUEST_ID, v);
    }

    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    state
        .metrics
        .observe(method_label(&method), &route, status, elapsed);
    tracing::info!(
        request_id = %request_id,
        method = %method,
        route = %route,
        status,
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        token = caller.get().map_or("-", |(name, _)| name),
        "request"
    );
    response
}

/// Gives every 4xx/5xx a complete problem body: renders handler errors with the request's path
/// and id, and converts what the framework produced on its own (405, 408, rejections, panics).
async fn complete_problem(
    response: Response,
    state: &AppState,
    method: &Method,
    instance: &str,
    request_id: &str,
) -> Response {
    if let Some(error) = response.extensions().get::<ApiError>().cloned() {
        return error.into_problem_response(instance, request_id);
    }
    let status = response.status();
    let is_problem = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let (_, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 2048)
        .await
        .ok()
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .filter(|t| !t.is_empty());
    let error = match status {
        // axum adds the Allow header after this layer; the detail points at it.
        StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
            ProblemKind::MethodNotAllowed,
            format!("method {method} is not allowed on {instance} (see the Allow header)"),
        ),
        StatusCode::REQUEST_TIMEOUT => ApiError::new(
            ProblemKind::Timeout,
            format!(
                "the request took longer than {} seconds (limits.request_timeout_secs)",
                state.limits.request_timeout_secs
            ),
        ),
        StatusCode::NOT_FOUND => ApiError::new(
            ProblemKind::NoSuchRoute,
            format!("no route for {method} {instance}"),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            ProblemKind::TooLarge,
            text.unwrap_or_else(|| "the request body is too large".into()),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
            ProblemKind::UnsupportedMediaType,
            text.unwrap_or_else(|| "unsupported Content-Type".into()),
        ),
        StatusCode::UNAUTHORIZED => {
            ApiError::new(ProblemKind::Unauthenticated, "missing bearer token")
        }
        StatusCode::FORBIDDEN => ApiError::new(ProblemKind::Forbidden, "forbidden"),
        StatusCode::CONFLICT => ApiError::new(
            ProblemKind::Conflict,
            text.unwrap_or_else(|| "conflict".into()),
        ),
        s if s.is_client_error() => {
            ApiError::invalid(text.unwrap_or_else(|| format!("the request is malformed ({s})")))
                .with_status(if s == StatusCode::UNPROCESSABLE_ENTITY {
                    // axum answers 422 for a JSON body of the wrong shape; that is a bad request field.
                    StatusCode::BAD_REQUEST
                } else {
                    s
                })
        }
        s => {
            tracing::error!(status = s.as_u16(), "error response without details");
            ApiError::see_log(ProblemKind::Internal, "internal error").with_status(s)
        }
    };
    error.into_problem_response(instance, request_id)
}

/// The answer to a panic caught by `CatchPanicLayer`: logged here (inside the request's span, so
/// with its id), a generic 500 to the caller.
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response<Body> {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    tracing::error!(panic = %message, "request handler panicked");
    ApiError::see_log(ProblemKind::Internal, "internal error").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_id(id: &str) -> Request {
        Request::builder()
            .header("x-request-id", id)
            .body(Body::empty())
            .unwrap()
    }

    #[test]
    fn sane_incoming_ids_are_kept_and_others_replaced() {
        assert_eq!(
            incoming_id(&with_id("abc-1.2_3")).as_deref(),
            Some("abc-1.2_3")
        );
        assert_eq!(
            incoming_id(&with_id(&"a".repeat(64))).map(|s| s.len()),
            Some(64)
        );
        assert_eq!(incoming_id(&with_id(&"a".repeat(65))), None);
        assert_eq!(incoming_id(&with_id("a b")), None);
        assert_eq!(incoming_id(&with_id("")), None);
        assert_eq!(incoming_id(&with_id("x\"y")), None);
        let id = generate_id();
        assert_eq!(id.len(), 16);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(id, generate_id());
    }

    #[test]
    fn every_logged_read_is_a_served_route_with_its_target() {
        let doc = serde_json::to_value(crate::openapi_document()).unwrap();
        for read in LOGGED_READS {
            let op = &doc["paths"][read.route][read.method.to_ascii_lowercase()];
            assert!(
                op.is_object(),
                "{} {} is not served",
                read.method,
                read.route
            );
            if let Target::Param(name) = read.target {
                assert!(
                    read.route.contains(&format!("{{{name}}}")),
                    "{}",
                    read.route
                );
            }
            assert_eq!(
                LOGGED_READS
                    .iter()
                    .filter(|r| r.route == read.route && r.method == read.method)
                    .count(),
                1,
                "{} {} is listed twice",
                read.method,
                read.route
            );
        }
    }

    #[tokio::test]
    async fn reads_are_refused_when_the_access_log_cannot_be_opened() {
        use tower::ServiceExt;
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("vault");
        let (vault, _) = evault_core::Vault::init(&data_dir, "test").unwrap();
        let token = vault
            .create_token("alice", Role::Auditor, &[], None, "test")
            .unwrap();
        std::fs::create_dir(data_dir.join(evault_core::access::FILE_NAME)).unwrap();
        let app = crate::app(vault, crate::ServerLimits::default());
        let get = |path: &str| {
            Request::builder()
                .uri(path)
                .header("authorization", format!("Bearer {}", token.secret))
                .body(Body::empty())
                .unwrap()
        };
        let refused = app.clone().oneshot(get("/v1/records")).await.unwrap();
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(refused.into_body(), 4096)
            .await
            .unwrap();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            detail.starts_with("this read cannot be recorded in the access log"),
            "{detail}"
        );
        // Routes that are not reads of evidence still answer.
        let whoami = app.oneshot(get("/v1/whoami")).await.unwrap();
        assert_eq!(whoami.status(), StatusCode::OK);
    }

    #[test]
    fn a_panic_is_a_generic_internal_problem() {
        let response = panic_response(Box::new("index out of bounds: secret detail"));
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let error = response.extensions().get::<ApiError>().unwrap();
        assert_eq!(error.kind(), ProblemKind::Internal);
        let p = error.problem("/v1/records", "abc");
        assert_eq!(
            p.detail,
            "internal error; see the server log for request abc"
        );
    }
}
