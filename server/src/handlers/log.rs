//! `/v1/log/...`: the tamper-evident log's key, checkpoint, proofs, entries and verification.
//!
//! The key, the checkpoint and consistency proofs are for any token (they say nothing about
//! any record). An inclusion proof carries the record's entry, so it needs `Read` within the
//! token's scopes; the entries themselves and a full verification are vault-wide history
//! (`Audit`: auditors and admins, unscoped).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use evault_core::auth::Permission;
use evault_core::log::check::LogReport;
use evault_core::log::{CheckpointView, ConsistencyProof, InclusionProof, LogEntry, LogKey};
use evault_core::vault::LogVerifyOptions;
use evault_schema::validate;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::{AppState, PathParam, blocking};
use crate::auth::Caller;
use crate::openapi::{
    CheckpointDoc, ConsistencyProofDoc, InclusionProofDoc, LogKeyDoc, LogReportDoc,
};
use crate::problem::{ApiError, Problem};
use crate::query::{Params, Spec};

/// Most entries one page returns.
const MAX_ENTRIES: usize = 1000;

/// The log's public key: its origin, key id and verifier key.
#[utoipa::path(get, path = "/v1/log/key", tag = "log",
    responses((status = 200, description = "who signs the log", body = LogKeyDoc)))]
pub async fn key(State(state): State<AppState>, _caller: Caller) -> Result<Json<LogKey>, ApiError> {
    Ok(Json(blocking(&state.vault, |v| v.log_key()).await?))
}

/// The newest signed checkpoint (a C2SP tlog-checkpoint in a signed note).
#[utoipa::path(get, path = "/v1/log/checkpoint", tag = "log",
    responses((status = 200, description = "the newest signed tree head", body = CheckpointDoc)))]
pub async fn checkpoint(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Json<CheckpointView>, ApiError> {
    Ok(Json(blocking(&state.vault, |v| v.log_checkpoint()).await?))
}

/// The inclusion proof of a record's ingestion entry against the newest checkpoint.
#[utoipa::path(get, path = "/v1/log/proof/{id}", tag = "log",
    params(("id" = String, Path, description = "Record id, or a unique prefix of at least 6 \
        hexadecimal characters")),
    responses(
        (status = 200, description = "the entry, its audit path and the signed checkpoint",
            body = InclusionProofDoc),
        (status = 404, description = "no such record (or not in the token's scopes)",
            body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn prove(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam,
) -> Result<Json<InclusionProof>, ApiError> {
    caller.require(Permission::Read)?;
    let scopes = caller.scopes().to_vec();
    Ok(Json(
        blocking(&state.vault, move |v| v.log_prove(&id, &scopes)).await?,
    ))
}

fn size_param(p: &Params, name: &str) -> Result<Option<u64>, ApiError> {
    p.get(name)
        .map(|s| {
            s.parse::<u64>().map_err(|_| {
                ApiError::invalid(format!(
                    "invalid {name} '{}': expected a tree size (a whole number)",
                    validate::excerpt(s)
                ))
            })
        })
        .transpose()
}

/// The consistency proof from an older tree size to a newer one (default: the newest
/// checkpoint).
#[utoipa::path(get, path = "/v1/log/consistency", tag = "log",
    params(
        ("from" = u64, Query, description = "The older tree size"),
        ("to" = Option<u64>, Query, description = "The newer tree size (a signed checkpoint's); \
            default: the newest"),
    ),
    responses(
        (status = 200, description = "the proof and the newer signed checkpoint",
            body = ConsistencyProofDoc),
        (status = 400, description = "a size is missing or wrong", body = Problem,
            content_type = "application/problem+json"),
        (status = 404, description = "no checkpoint was signed at `to`", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn consistency(
    State(state): State<AppState>,
    _caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<ConsistencyProof>, ApiError> {
    const SPEC: Spec = Spec {
        single: &["from", "to"],
        repeated: &[],
        ignored: &[],
    };
    let p = Params::parse(query.as_deref(), &SPEC)?;
    let from = size_param(&p, "from")?
        .ok_or_else(|| ApiError::invalid("missing query parameter 'from' (the older tree size)"))?;
    let to = size_param(&p, "to")?;
    Ok(Json(
        blocking(&state.vault, move |v| v.log_consistency(from, to)).await?,
    ))
}

/// A page of log entries.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LogEntries {
    #[schema(value_type = Vec<crate::openapi::LogEntryDoc>)]
    pub entries: Vec<LogEntry>,
    /// The `start` of the next page, when this one is full.
    pub next: Option<u64>,
}

/// Log entries, oldest first, exactly as hashed: enough to recompute the tree offline.
#[utoipa::path(get, path = "/v1/log/entries", tag = "log",
    params(
        ("start" = Option<u64>, Query, description = "First entry index, default 0"),
        ("limit" = Option<u64>, Query, minimum = 1, maximum = 1000,
            description = "Page size, default 1000"),
    ),
    responses(
        (status = 200, description = "a page of entries", body = LogEntries),
        (status = 400, description = "a query parameter is wrong", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn entries(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<LogEntries>, ApiError> {
    caller.require(Permission::Audit)?;
    const SPEC: Spec = Spec {
        single: &["start", "limit"],
        repeated: &[],
        ignored: &[],
    };
    let p = Params::parse(query.as_deref(), &SPEC)?;
    let start = size_param(&p, "start")?.unwrap_or(0);
    let limit = p.limit(MAX_ENTRIES, MAX_ENTRIES)? as u64;
    let entries = blocking(&state.vault, move |v| v.log_entries(start, limit)).await?;
    let next = (entries.len() as u64 == limit).then(|| start + limit);
    Ok(Json(LogEntries { entries, next }))
}

/// What to verify the log against.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// An older signed checkpoint (its note text) the log must still contain.
    pub checkpoint: Option<String>,
    /// The verifier key the log must be signed with.
    pub key: Option<String>,
    /// Also read every blob (default true).
    pub blobs: Option<bool>,
}

/// Recomputes the log, checks its signatures and an older checkpoint, and compares every
/// object with its newest entry (and every blob with its digest). Reads the whole vault: slow
/// on a large one.
#[utoipa::path(post, path = "/v1/log/verify", tag = "log",
    request_body(content = VerifyRequest, description = "optional anchors"),
    responses(
        (status = 200, description = "the report (problems empty when all agrees)",
            body = LogReportDoc),
        (status = 400, description = "the key is malformed", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn verify(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<LogReport>, ApiError> {
    caller.require(Permission::Audit)?;
    let request: VerifyRequest = if body.iter().all(u8::is_ascii_whitespace) {
        VerifyRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}")))?
    };
    let options = LogVerifyOptions {
        old_checkpoint: request.checkpoint,
        pinned_key: request.key,
        blobs: request.blobs.unwrap_or(true),
    };
    let report = blocking(&state.vault, move |v| {
        v.verify_log(&options, &mut |_, _, _| {})
    })
    .await?;
    if !report.ok() {
        tracing::warn!(
            problems = report.problems.len(),
            "log verification found problems"
        );
    }
    Ok(Json(report))
}
