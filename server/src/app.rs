//! The router: state, the route table, the layers around it, and the small extractors the
//! handlers share.
//!
//! Every route is registered through `utoipa_axum::routes!`, which adds the handler to the axum
//! router and its `#[utoipa::path]` description to the OpenAPI document in one step, so the
//! document lists exactly what is served.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::from_fn_with_state;
use axum::{Extension, Router};
use evault_core::Vault;
use evault_core::access::AccessLog;
use serde::de::DeserializeOwned;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use utoipa::openapi::OpenApi;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;

use crate::config::ServerLimits;
use crate::handlers::{
    access, blobs, export, gates, log, ops, push, queries, records, retention, tokens,
};
use crate::metrics::Metrics;
use crate::observe::{observe, panic_response};
use crate::problem::{ApiError, ProblemKind};

/// What every handler can reach. Cloned per request (five `Arc`s).
#[derive(Clone)]
pub struct AppState {
    pub vault: Arc<Vault>,
    pub limits: Arc<ServerLimits>,
    pub metrics: Arc<Metrics>,
    /// The OpenAPI document, serialised once.
    pub openapi: Bytes,
    /// Where reads by tokens are recorded (`crate::observe::LOGGED_READS`). `None` if it could
    /// not be opened: those reads are then refused, never served unrecorded.
    pub access: Option<AccessLog>,
}

/// The served routes with their OpenAPI descriptions.
fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(crate::openapi::base_document())
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
        .routes(routes!(ops::openapi_json))
        .routes(unlimited_body(routes!(push::push)))
        .routes(routes!(records::list_records))
        .routes(routes!(records::get_record, retention::delete_record))
        .routes(routes!(retention::list_tombstones))
        .routes(routes!(blobs::get_blob, blobs::head_blob))
        .routes(routes!(ops::status))
        .routes(routes!(ops::whoami))
        .routes(routes!(tokens::create_token, tokens::list_tokens))
        .routes(routes!(tokens::revoke_token))
        .routes(routes!(ops::fsck))
        .routes(routes!(retention::get_policy, retention::set_policy))
        .routes(routes!(retention::list_holds, retention::add_hold))
        .routes(routes!(retention::release_hold))
        .routes(routes!(retention::sweep))
        .routes(routes!(log::key))
        .routes(routes!(log::checkpoint))
        .routes(routes!(log::prove))
        .routes(routes!(log::consistency))
        .routes(routes!(log::entries))
        .routes(routes!(log::verify))
        .routes(routes!(access::list_access))
        .routes(routes!(export::export))
        .routes(routes!(queries::trace_deploy))
        .routes(routes!(queries::trace_commit))
        .routes(routes!(queries::search_component))
        .routes(routes!(queries::search_vuln))
        .routes(routes!(queries::changelog))
        .routes(routes!(queries::record_deploy))
        .routes(routes!(queries::record_rollback))
        .routes(json_limit(
            routes!(gates::gate_check),
            gates::MAX_BODY_BYTES,
        ))
        .routes(json_limit(
            routes!(gates::gate_input),
            gates::MAX_BODY_BYTES,
        ))
        .routes(json_limit(
            routes!(gates::get_gate_policy, gates::set_gate_policy),
            gates::MAX_BODY_BYTES,
        ))
        .routes(json_limit(
            routes!(gates::record_approval),
            gates::MAX_BODY_BYTES,
        ))
        .routes(json_limit(
            routes!(gates::record_exception),
            gates::MAX_BODY_BYTES,
        ))
        .routes(routes!(gates::audit_completeness))
}

/// Uploads are bounded by `limits.max_upload_bytes` while they stream, not by axum's default
/// 2 MiB limit for buffered bodies.
fn unlimited_body(
    (schemas, paths, router): UtoipaMethodRouter<AppState>,
) -> UtoipaMethodRouter<AppState> {
    (schemas, paths, router.layer(DefaultBodyLimit::disable()))
}

/// Largest JSON body [`JsonBody`] reads, unless the route says otherwise ([`json_limit`]):
/// axum's default for buffered bodies.
const DEFAULT_JSON_LIMIT: usize = 2 << 20;

/// The JSON body limit of a route, for the detail of its 413.
#[derive(Debug, Clone, Copy)]
struct JsonLimit(usize);

/// Bounds the buffered bodies of a route to `bytes` (instead of axum's 2 MiB).
fn json_limit(
    (schemas, paths, router): UtoipaMethodRouter<AppState>,
    bytes: usize,
) -> UtoipaMethodRouter<AppState> {
    let router = router
        .layer::<_, std::convert::Infallible>(DefaultBodyLimit::max(bytes))
        .layer::<_, std::convert::Infallible>(Extension(JsonLimit(bytes)));
    (schemas, paths, router)
}

/// `1 MiB`, `512 KiB` or `100 bytes`.
fn size_text(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

/// The OpenAPI document of everything [`app`] serves.
pub fn openapi() -> OpenApi {
    let mut doc = api().into_openapi();
    crate::openapi::complete(&mut doc);
    doc
}

/// The complete application: routes, fallback, request ids, logging, metrics, the access log,
/// problem bodies, panic catching and the request timeout. The access log is opened in the
/// vault's directory; if it cannot be, the error is logged and reads by tokens are refused.
pub fn app(vault: Vault, limits: ServerLimits) -> Router {
    let access = AccessLog::open(vault.dir())
        .inspect_err(|e| {
            tracing::error!(error = %e, "cannot open the access log; reads by tokens will be refused");
        })
        .ok();
    build(Arc::new(vault), Arc::new(Metrics::new()), limits, access)
}

/// [`app`] with an access log the caller opened (and keeps, to flush it at shutdown), sharing
/// the vault and the metrics with the caller's background tasks (the retention sweeper).
pub fn app_with_access_log(
    vault: Arc<Vault>,
    metrics: Arc<Metrics>,
    limits: ServerLimits,
    access: AccessLog,
) -> Router {
    build(vault, metrics, limits, Some(access))
}

fn build(
    vault: Arc<Vault>,
    metrics: Arc<Metrics>,
    limits: ServerLimits,
    access: Option<AccessLog>,
) -> Router {
    let (router, mut doc) = api().split_for_parts();
    crate::openapi::complete(&mut doc);
    let openapi = doc
        .to_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"cannot render the OpenAPI document: {e}\"}}"));
    let timeout = Duration::from_secs(limits.request_timeout_secs);
    let state = AppState {
        vault,
        limits: Arc::new(limits),
        metrics,
        openapi: Bytes::from(openapi),
        access,
    };
    router
        .fallback(no_such_route)
        .with_state(state.clone())
        .layer(
            ServiceBuilder::new()
                .layer(from_fn_with_state(state, observe))
                .layer(CatchPanicLayer::custom(panic_response))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    timeout,
                )),
        )
}

async fn no_such_route(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        ProblemKind::NoSuchRoute,
        format!(
            "no route for {method} {}; see /openapi.json for the API",
            uri.path()
        ),
    )
}

/// Runs `f` on the blocking pool (every `Vault` call does file or SQLite IO). A panic inside is
/// resumed here so that the panic layer answers 500 and logs it with the request id.
pub async fn blocking<T, F>(vault: &Arc<Vault>, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&Vault) -> evault_core::Result<T> + Send + 'static,
{
    let vault = Arc::clone(vault);
    let span = tracing::Span::current();
    match tokio::task::spawn_blocking(move || span.in_scope(|| f(&vault))).await {
        Ok(result) => result.map_err(ApiError::from),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(ApiError::new(
            ProblemKind::NotReady,
            "the server is shutting down",
        )),
    }
}

/// `axum::Json`, with rejections as problems: 415 without a JSON content type, 413 over the
/// body limit, 400 naming what is wrong otherwise.
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let limit = req
            .extensions()
            .get::<JsonLimit>()
            .map_or(DEFAULT_JSON_LIMIT, |l| l.0);
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(JsonBody(value)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::new(
                ProblemKind::UnsupportedMediaType,
                "expected a JSON body with Content-Type: application/json",
            )),
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::invalid(format!(
                "invalid JSON body: {}",
                serde_message(&e.body_text())
            ))),
            Err(JsonRejection::JsonSyntaxError(e)) => Err(ApiError::invalid(format!(
                "invalid JSON body: {}",
                serde_message(&e.body_text())
            ))),
            Err(JsonRejection::BytesRejection(e))
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(ApiError::new(
                    ProblemKind::TooLarge,
                    format!("the JSON body is larger than {}", size_text(limit)),
                ))
            }
            Err(other) => Err(ApiError::invalid(other.body_text())),
        }
    }
}

/// axum's messages start with a sentence about itself; the part after it is serde's, which
/// names the field.
fn serde_message(text: &str) -> &str {
    text.split_once(": ").map(|(_, m)| m).unwrap_or(text)
}

/// One path parameter, with a bad one answered as 400 naming it.
pub struct PathParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|p| PathParam(p.0))
            .map_err(|e: PathRejection| {
                ApiError::invalid(format!("invalid path parameter: {}", e.body_text()))
            })
    }
}
