//! `GET /v1/records` and `GET /v1/records/{id}`.
//!
//! A scoped token sees only records of blueprints its scopes cover; others answer 404 as if
//! they did not exist.

use axum::Json;
use axum::extract::{RawQuery, State};
use evault_core::auth::Permission;
use evault_core::{Cursor, Record, RecordFilter, RecordView};
use evault_schema::{Format, Kind, validate};
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::{AppState, PathParam, blocking};
use crate::auth::Caller;
use crate::openapi::{FormatName, KindName, RecordDoc, RecordViewDoc};
use crate::problem::{ApiError, Problem};
use crate::query::{Params, Spec};

/// Page size when the query gives no `limit`.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest page (a bound on memory and response size).
pub const MAX_LIMIT: usize = 1000;

const SPEC: Spec = Spec {
    single: &[
        "blueprint",
        "version",
        "git_sha",
        "kind",
        "format",
        "env",
        "run_id",
        "subject",
        "digest",
        "since",
        "until",
        "limit",
        "cursor",
    ],
    repeated: &[],
    ignored: &[],
};

/// One page of records, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordPage {
    #[schema(value_type = Vec<RecordDoc>)]
    pub records: Vec<Record>,
    /// Pass back as `cursor` for the next page; `null` on the last page.
    #[schema(example = "r123")]
    pub next_cursor: Option<String>,
}

/// The filters of `GET /v1/records`, which `GET /v1/tombstones` takes too: links, kind, format,
/// times and `limit` (default [`DEFAULT_LIMIT`], at most [`MAX_LIMIT`]), each checked with an
/// error naming it, and the caller's scopes as `blueprint_patterns`, so a scoped token sees
/// only its blueprints. `cursor` is left to the caller.
pub(crate) fn filter_of(p: &Params, caller: &Caller) -> Result<RecordFilter, ApiError> {
    let limit = p.limit(DEFAULT_LIMIT, MAX_LIMIT)?;
    let git_sha = match p.get("git_sha") {
        Some(s) => {
            let lower = s.to_ascii_lowercase();
            if lower.len() < 7 || lower.len() > 64 || !lower.bytes().all(|b| b.is_ascii_hexdigit())
            {
                return Err(ApiError::invalid(format!(
                    "invalid git_sha '{}': expected a commit SHA or a prefix of at least 7 \
                     hexadecimal characters",
                    validate::excerpt(s)
                )));
            }
            Some(lower)
        }
        None => None,
    };
    let name_error = |e: evault_schema::model::UnknownName| ApiError::invalid(e.to_string());
    Ok(RecordFilter {
        blueprint: p.checked("blueprint", validate::blueprint_name)?,
        version: p.checked("version", validate::version)?,
        git_sha,
        kind: p
            .get("kind")
            .map(str::parse::<Kind>)
            .transpose()
            .map_err(name_error)?,
        format: p
            .get("format")
            .map(str::parse::<Format>)
            .transpose()
            .map_err(name_error)?,
        environment: p.checked("env", validate::environment)?,
        run_id: p.checked("run_id", validate::run_id)?,
        subject: p.checked("subject", validate::digest)?,
        digest: p.checked("digest", validate::digest)?,
        since: p.checked("since", validate::rfc3339)?,
        until: p.checked("until", validate::rfc3339)?,
        blueprint_patterns: caller.scopes().to_vec(),
        limit,
        ..RecordFilter::default()
    })
}

/// Records matching the filters (as `evault ls`), newest first, one page at a time.
#[utoipa::path(get, path = "/v1/records", tag = "evidence",
    params(
        ("blueprint" = Option<String>, Query, description = "Blueprint name"),
        ("version" = Option<String>, Query, description = "Blueprint version"),
        ("git_sha" = Option<String>, Query, description = "Full SHA or a prefix of at least 7 \
            hexadecimal characters"),
        ("kind" = Option<KindName>, Query, description = "Evidence kind"),
        ("format" = Option<FormatName>, Query, description = "Detected format"),
        ("env" = Option<String>, Query, description = "Environment"),
        ("run_id" = Option<String>, Query, description = "CI run id"),
        ("subject" = Option<String>, Query, description = "Records about this artifact digest"),
        ("digest" = Option<String>, Query, description = "Records of this blob digest"),
        ("since" = Option<String>, Query, description = "Ingested at or after (RFC 3339 or \
            YYYY-MM-DD)"),
        ("until" = Option<String>, Query, description = "Ingested before (RFC 3339 or \
            YYYY-MM-DD)"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000,
            description = "Page size, default 100"),
        ("cursor" = Option<String>, Query, description = "A previous page's next_cursor"),
    ),
    responses(
        (status = 200, description = "a page of records", body = RecordPage),
        (status = 400, description = "a query parameter is wrong (the detail names it)",
            body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_records(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<RecordPage>, ApiError> {
    caller.require(Permission::Read)?;
    let p = Params::parse(query.as_deref(), &SPEC)?;
    let mut filter = filter_of(&p, &caller)?;
    filter.before = p
        .get("cursor")
        .map(str::parse::<Cursor>)
        .transpose()
        .map_err(ApiError::invalid)?;
    let (records, next) = blocking(&state.vault, move |v| v.records(&filter)).await?;
    Ok(Json(RecordPage {
        records,
        next_cursor: next.map(|c| c.to_string()),
    }))
}

/// One record; `id` may be a unique prefix of at least 6 characters.
#[utoipa::path(get, path = "/v1/records/{id}", tag = "evidence",
    params(("id" = String, Path, description = "Record id, or a unique prefix of at least 6 \
        hexadecimal characters")),
    responses(
        (status = 200, description = "the record, with a summary of what its evidence says",
            body = RecordViewDoc),
        (status = 400, description = "not a record id, or an ambiguous prefix", body = Problem,
            content_type = "application/problem+json"),
        (status = 404, description = "no such record (or not in the token's scopes)",
            body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_record(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam,
) -> Result<Json<RecordView>, ApiError> {
    caller.require(Permission::Read)?;
    let scopes = caller.scopes().to_vec();
    let view = blocking(&state.vault, move |v| {
        let record = v.record_in_scope(&id, &scopes)?;
        v.view(record)
    })
    .await?;
    Ok(Json(view))
}
