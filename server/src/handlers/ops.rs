//! Operations: liveness, readiness, metrics, the OpenAPI document, vault status, the caller's
//! identity and integrity checks.

use axum::Json;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use evault_core::auth::{Identity, Permission};
use evault_core::vault::FsckReport;
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::{AppState, blocking};
use crate::auth::Caller;
use crate::openapi::{FsckReportDoc, RoleName};
use crate::problem::{ApiError, Problem, ProblemKind};

/// `{"status": ...}` of `/healthz` and `/readyz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Liveness: answers while the process runs.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "the process runs", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness: answers 200 when the vault's index can be read.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "the vault answers", body = Health,
            example = json!({"status": "ready"})),
        (status = 503, description = "the vault cannot be read", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    blocking(&state.vault, |v| v.stats())
        .await
        .map(|_| Json(Health { status: "ready" }))
        .map_err(|_| ApiError::see_log(ProblemKind::NotReady, "the vault's index cannot be read"))
}

/// Prometheus metrics (text exposition format 0.0.4).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "evault_http_requests_total, \
        evault_http_request_duration_seconds, evault_ingested_bytes_total, \
        evault_retention_sweeps_total, evault_retention_sweep_failures_total, \
        evault_retention_swept_records_total, evault_gate_decisions_total, evault_records, \
        evault_blobs", body = String, content_type = "text/plain; version=0.0.4")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    // Gauges are read at scrape time; if the index cannot answer, they are left out and the
    // request counters are still served.
    let stats = blocking(&state.vault, |v| v.stats()).await.ok();
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics.render(stats),
    )
        .into_response()
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "the OpenAPI 3.1 description of this server",
        content_type = "application/json")))]
pub async fn openapi_json(State(state): State<AppState>) -> Response {
    ([(CONTENT_TYPE, "application/json")], state.openapi.clone()).into_response()
}

/// What the vault holds.
#[derive(Debug, Serialize, ToSchema)]
pub struct VaultStatus {
    pub records: u64,
    pub blobs: u64,
    /// Original bytes of all blobs.
    pub bytes: u64,
    /// Bytes on disk (compressed).
    pub stored_bytes: u64,
}

/// Counts of records and blobs, and their sizes.
#[utoipa::path(get, path = "/v1/status", tag = "operations",
    responses((status = 200, description = "vault totals", body = VaultStatus)))]
pub async fn status(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<VaultStatus>, ApiError> {
    caller.require(Permission::Read)?;
    let s = blocking(&state.vault, |v| v.stats()).await?;
    Ok(Json(VaultStatus {
        records: s.records,
        blobs: s.blobs,
        bytes: s.bytes,
        stored_bytes: s.stored_bytes,
    }))
}

/// The calling token's identity.
#[derive(Debug, Serialize, ToSchema)]
pub struct WhoAmI {
    #[schema(example = "ci-checkout")]
    pub name: String,
    #[schema(value_type = RoleName)]
    pub role: evault_core::auth::Role,
    /// Blueprint name patterns; empty means every blueprint.
    pub scopes: Vec<String>,
}

impl From<Identity> for WhoAmI {
    fn from(i: Identity) -> Self {
        WhoAmI {
            name: i.name,
            role: i.role,
            scopes: i.scopes,
        }
    }
}

/// Name, role and scopes of the calling token (any role).
#[utoipa::path(get, path = "/v1/whoami", tag = "tokens",
    responses((status = 200, description = "the caller", body = WhoAmI)))]
pub async fn whoami(caller: Caller) -> Json<WhoAmI> {
    Json(caller.0.into())
}

/// Verifies every stored blob against its digest (admin). Problems are reported in the body;
/// the answer is 200 either way.
#[utoipa::path(post, path = "/v1/fsck", tag = "operations",
    responses((status = 200, description = "the `evault fsck --json` report", body = FsckReportDoc)))]
pub async fn fsck(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<FsckReport>, ApiError> {
    caller.require(Permission::Maintain)?;
    let report = blocking(&state.vault, |v| v.fsck(&mut |_, _| {})).await?;
    if !report.problems.is_empty() {
        tracing::warn!(
            problems = report.problems.len(),
            blobs = report.blobs_checked,
            "fsck found damaged evidence"
        );
    }
    Ok(Json(report))
}
