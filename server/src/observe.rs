//! The middleware every request passes through: request id, tracing span, problem bodies,
//! access log line and metrics.
//!
//! It runs after routing (it is added with `Router::layer`), so it sees the matched route
//! template, which is what logs and metrics are labelled with: `/v1/records/{id}`, never the
//! id itself.

use std::any::Any;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
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

/// Where the [`crate::auth::Caller`] extractor leaves the token name for the access log.
#[derive(Debug, Clone, Default)]
pub struct CallerName(Arc<OnceLock<String>>);

impl CallerName {
    pub fn set(&self, name: &str) {
        let _ = self.0.set(name.to_string());
    }

    fn get(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }
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
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %method,
        route = %route,
        token = tracing::field::Empty,
    );

    let response = next.run(request).instrument(span.clone()).await;
    let mut response = complete_problem(response, &state, &method, &instance, &request_id)
        .instrument(span)
        .await;
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
        token = caller.get().unwrap_or("-"),
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
