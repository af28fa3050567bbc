//! The questions of auditors and on-call engineers (`evault trace`, `evault search`,
//! `evault audit changelog`), and recording deploys and rollbacks (`evault deploy`,
//! `evault rollback`). The answers are those of `evault-core`'s `query` module, as JSON; see
//! docs/queries.md for their fields.
//!
//! Reads need `Read` and see only the blueprints of the token's scopes. Recording a deploy or
//! rollback needs `Push` within the scopes, and the document's actor is the token's name: the
//! request cannot name anyone else.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use evault_core::auth::Permission;
use evault_core::index::Status;
use evault_core::query::QueryContext;
use evault_core::query::changelog::Changelog;
use evault_core::query::record::{DeployRequest, Recorded, RollbackRequest};
use evault_core::query::search::{ComponentSearch, VulnSearch};
use evault_core::query::trace::{CommitTrace, DeployTrace};
use evault_schema::validate;

use crate::app::{AppState, JsonBody, PathParam, blocking};
use crate::auth::Caller;
use crate::openapi::RecordedDoc;
use crate::problem::{ApiError, Problem};
use crate::query::{Params, Spec};

/// `limit` of `search component` when absent, and its largest value.
const DEFAULT_VERSIONS: usize = 200;
const MAX_VERSIONS: usize = 10_000;

fn context(caller: &Caller, p: &Params) -> Result<QueryContext, ApiError> {
    Ok(QueryContext {
        as_of: p.checked("as_of", validate::rfc3339)?,
        scopes: caller.scopes().to_vec(),
    })
}

fn as_of_only(raw: Option<&str>) -> Result<Params, ApiError> {
    Params::parse(
        raw,
        &Spec {
            single: &["as_of"],
            repeated: &[],
            ignored: &[],
        },
    )
}

/// A deploy traced back to its commit: provenance, SBOMs, scans after VEX, signatures,
/// approvals, rollback plan and rollbacks, and every missing link as a gap.
#[utoipa::path(get, path = "/v1/trace/deploy/{id}", tag = "queries",
    params(
        ("id" = String, Path, description = "A deploy (or rollback) record id or prefix of at \
            least 6 characters, or an artifact digest sha256:<hex> (its latest deploy)"),
        ("as_of" = Option<String>, Query, description = "Answer with what the vault knew then \
            (RFC 3339 or YYYY-MM-DD)"),
    ),
    responses(
        (status = 200, description = "the trace (docs/queries.md)", body = Object),
        (status = 400, description = "a parameter is wrong, or the record is not a deploy",
            body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such deploy (or not in the token's scopes)",
            body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn trace_deploy(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam,
    RawQuery(query): RawQuery,
) -> Result<Json<DeployTrace>, ApiError> {
    caller.require(Permission::Read)?;
    let ctx = context(&caller, &as_of_only(query.as_deref())?)?;
    Ok(Json(
        blocking(&state.vault, move |v| v.trace_deploy(&id, &ctx)).await?,
    ))
}

/// A commit traced forward: the blueprint versions built from it, their artifacts, builders,
/// deploys (where and when) and rollbacks.
#[utoipa::path(get, path = "/v1/trace/commit/{sha}", tag = "queries",
    params(
        ("sha" = String, Path, description = "A git SHA or a prefix of at least 7 characters"),
        ("as_of" = Option<String>, Query, description = "Answer with what the vault knew then"),
    ),
    responses(
        (status = 200, description = "the trace (docs/queries.md)", body = Object),
        (status = 400, description = "not a SHA, or an ambiguous prefix", body = Problem,
            content_type = "application/problem+json"),
        (status = 404, description = "no evidence for the commit (in the token's scopes)",
            body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn trace_commit(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(sha): PathParam,
    RawQuery(query): RawQuery,
) -> Result<Json<CommitTrace>, ApiError> {
    caller.require(Permission::Read)?;
    let ctx = context(&caller, &as_of_only(query.as_deref())?)?;
    Ok(Json(
        blocking(&state.vault, move |v| v.trace_commit(&sha, &ctx)).await?,
    ))
}

/// The blueprint versions whose SBOMs list a component, and where they are live.
#[utoipa::path(get, path = "/v1/search/component", tag = "queries",
    params(
        ("q" = String, Query, description = "A package URL (pkg:npm/lodash@4.17.21; without \
            a version: every version) or a name with an optional @version"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 10000,
            description = "Most versions listed, default 200 (live deployments are always \
            complete)"),
        ("as_of" = Option<String>, Query, description = "Answer with what the vault knew then"),
    ),
    responses(
        (status = 200, description = "the versions and live deployments (docs/queries.md)",
            body = Object),
        (status = 400, description = "a parameter is wrong", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn search_component(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<ComponentSearch>, ApiError> {
    caller.require(Permission::Read)?;
    let p = Params::parse(
        query.as_deref(),
        &Spec {
            single: &["q", "limit", "as_of"],
            repeated: &[],
            ignored: &[],
        },
    )?;
    let q = p
        .get("q")
        .ok_or_else(|| ApiError::invalid("query parameter 'q' is required"))?
        .to_string();
    let limit = p.limit(DEFAULT_VERSIONS, MAX_VERSIONS)?;
    let ctx = context(&caller, &p)?;
    Ok(Json(
        blocking(&state.vault, move |v| v.search_component(&q, limit, &ctx)).await?,
    ))
}

/// Findings of a vulnerability with their VEX status, the affected blueprint versions and
/// their live deployments: are we exposed in production right now?
#[utoipa::path(get, path = "/v1/search/vuln/{id}", tag = "queries",
    params(
        ("id" = String, Path, description = "A vulnerability id or alias, e.g. CVE-2024-3094"),
        ("as_of" = Option<String>, Query, description = "Answer with what the vault knew then"),
    ),
    responses(
        (status = 200, description = "findings, VEX and exposure (docs/queries.md)",
            body = Object),
        (status = 400, description = "a parameter is wrong", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn search_vuln(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam,
    RawQuery(query): RawQuery,
) -> Result<Json<VulnSearch>, ApiError> {
    caller.require(Permission::Read)?;
    let ctx = context(&caller, &as_of_only(query.as_deref())?)?;
    Ok(Json(
        blocking(&state.vault, move |v| v.search_vuln(&id, &ctx)).await?,
    ))
}

/// Deploys, approvals and rollbacks in a period, each with its evidence and gaps (SOC 2
/// change management).
#[utoipa::path(get, path = "/v1/audit/changelog", tag = "queries",
    params(
        ("since" = String, Query, description = "Changes at or after (RFC 3339 or YYYY-MM-DD)"),
        ("until" = String, Query, description = "Changes before"),
        ("env" = Option<String>, Query, description = "Only this environment"),
        ("as_of" = Option<String>, Query, description = "Answer with what the vault knew then"),
    ),
    responses(
        (status = 200, description = "the change log (docs/queries.md)", body = Object),
        (status = 400, description = "a parameter is wrong", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn changelog(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<Changelog>, ApiError> {
    caller.require(Permission::Read)?;
    let p = Params::parse(
        query.as_deref(),
        &Spec {
            single: &["since", "until", "env", "as_of"],
            repeated: &[],
            ignored: &[],
        },
    )?;
    let required = |name: &str| -> Result<DateTime<Utc>, ApiError> {
        p.checked(name, validate::rfc3339)?
            .ok_or_else(|| ApiError::invalid(format!("query parameter '{name}' is required")))
    };
    let (since, until) = (required("since")?, required("until")?);
    let env = p.checked("env", validate::environment)?;
    let ctx = context(&caller, &p)?;
    Ok(Json(
        blocking(&state.vault, move |v| {
            v.changelog(since, until, env.as_deref(), &ctx)
        })
        .await?,
    ))
}

/// 201 for a new record, 200 for one recorded before.
pub(crate) fn recorded(outcome: Recorded) -> (StatusCode, Json<Recorded>) {
    let status = if outcome.record.status == Status::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, Json(outcome))
}

/// Records a deploy receipt; the actor is the token's name. Without `git_sha`, the commit is
/// the one the version's evidence names.
#[utoipa::path(post, path = "/v1/deploys", tag = "queries",
    request_body(content = Object, description = "{blueprint, version, env, artifact, \
        git_sha?, status?, target?, run_id?} (docs/queries.md); unknown fields are refused"),
    responses(
        (status = 201, description = "the deploy record, with warnings", body = RecordedDoc),
        (status = 200, description = "the same receipt was recorded before", body = RecordedDoc),
        (status = 400, description = "a field is wrong, or the commit cannot be determined",
            body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn record_deploy(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<DeployRequest>,
) -> Result<(StatusCode, Json<Recorded>), ApiError> {
    caller.require(Permission::Push)?;
    let actor = caller.0.name.clone();
    let scopes = caller.scopes().to_vec();
    let outcome = blocking(&state.vault, move |v| {
        v.record_deploy(request, &actor, &scopes)
    })
    .await?;
    Ok(recorded(outcome))
}

/// Records a rollback: `to_version` becomes the live version of the environment. The actor is
/// the token's name; the commit is the rolled-back version's unless `git_sha` says otherwise.
#[utoipa::path(post, path = "/v1/rollbacks", tag = "queries",
    request_body(content = Object, description = "{blueprint, env, from_version, to_version, \
        reason, trigger?, incident?, git_sha?} (docs/queries.md); unknown fields are refused"),
    responses(
        (status = 201, description = "the rollback record, with warnings", body = RecordedDoc),
        (status = 200, description = "the same record was recorded before", body = RecordedDoc),
        (status = 400, description = "a field is wrong, or the commit cannot be determined",
            body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn record_rollback(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<RollbackRequest>,
) -> Result<(StatusCode, Json<Recorded>), ApiError> {
    caller.require(Permission::Push)?;
    let actor = caller.0.name.clone();
    let scopes = caller.scopes().to_vec();
    let outcome = blocking(&state.vault, move |v| {
        v.record_rollback(request, &actor, &scopes)
    })
    .await?;
    Ok(recorded(outcome))
}
