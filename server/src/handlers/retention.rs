//! `/v1/retention/policy` and `/v1/holds`: the retention policy and legal holds
//! (docs/retention.md). Changing them is vault-wide maintenance (admins); reading them is for
//! auditors too. Who acted is the token's name, never a field of the body.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use evault_core::auth::Permission;
use evault_core::retention::{PolicySet, PolicyView};
use evault_retention::{Hold, HoldSelector};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::app::{AppState, JsonBody, PathParam, blocking};
use crate::auth::Caller;
use crate::problem::{ApiError, Problem};

/// Admins and auditors may read the policy and the holds.
fn may_read(caller: &Caller) -> Result<(), ApiError> {
    if caller.require(Permission::Audit).is_err() {
        caller.require(Permission::Maintain)?;
    }
    Ok(())
}

/// The retention policy in force (`evault retention show --json`).
#[utoipa::path(get, path = "/v1/retention/policy", tag = "retention",
    responses((status = 200, description = "mode, the policy as TOML, when and by whom it was \
        set (null for the default)", body = Object)))]
pub async fn get_policy(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<PolicyView>, ApiError> {
    may_read(&caller)?;
    Ok(Json(
        blocking(&state.vault, |v| v.retention_policy()).await?,
    ))
}

/// Body of `PUT /v1/retention/policy`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPolicy {
    /// The policy, as TOML (docs/retention.md).
    pub policy: String,
}

/// Replace the retention policy and re-apply it to every stored record (which only lengthens
/// retention). Under compliance mode, a policy that would shorten anything is refused.
#[utoipa::path(put, path = "/v1/retention/policy", tag = "retention",
    request_body = SetPolicy,
    responses(
        (status = 200, description = "the policy now in force and how many records now live \
            longer", body = Object),
        (status = 400, description = "the policy does not parse (the detail names the rule and \
            field)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "not an admin, or refused by compliance mode", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn set_policy(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<SetPolicy>,
) -> Result<Json<PolicySet>, ApiError> {
    caller.require(Permission::Maintain)?;
    let by = caller.0.name.clone();
    let set = blocking(&state.vault, move |v| {
        v.set_retention_policy(&body.policy, &by)
    })
    .await?;
    tracing::info!(mode = %set.policy.mode, extended = set.records_extended, "retention policy set");
    Ok(Json(set))
}

/// Query of `GET /v1/holds`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct HoldsQuery {
    /// Include released holds.
    #[serde(default)]
    pub all: bool,
}

/// Legal holds, active ones (with `all=true`, released ones too).
#[utoipa::path(get, path = "/v1/holds", tag = "retention", params(HoldsQuery),
    responses((status = 200, description = "the holds, by name", body = Vec<Object>)))]
pub async fn list_holds(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<HoldsQuery>,
) -> Result<Json<Vec<Hold>>, ApiError> {
    may_read(&caller)?;
    let holds = blocking(&state.vault, |v| v.holds()).await?;
    Ok(Json(
        holds
            .into_iter()
            .filter(|h| q.all || h.is_active())
            .collect(),
    ))
}

/// Body of `POST /v1/holds`: a name, a reason and at least one selector.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewHold {
    pub name: String,
    pub reason: String,
    pub blueprint: Option<String>,
    pub version: Option<String>,
    pub git_sha: Option<String>,
    pub record: Option<String>,
    /// RFC 3339: records ingested at or after.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub since: Option<DateTime<Utc>>,
    /// RFC 3339: records ingested before.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub until: Option<DateTime<Utc>>,
}

/// Place a legal hold: matching records, stored now or later, are never deleted while it is
/// active.
#[utoipa::path(post, path = "/v1/holds", tag = "retention", request_body = NewHold,
    responses(
        (status = 201, description = "the hold", body = Object),
        (status = 400, description = "a bad name or selector", body = Problem,
            content_type = "application/problem+json"),
        (status = 409, description = "the name is in use, or was used by a released hold",
            body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn add_hold(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<NewHold>,
) -> Result<(StatusCode, Json<Hold>), ApiError> {
    caller.require(Permission::Maintain)?;
    let by = caller.0.name.clone();
    let selector = HoldSelector {
        blueprint: body.blueprint,
        version: body.version,
        git_sha: body.git_sha,
        record: body.record,
        since: body.since,
        until: body.until,
    };
    let hold = blocking(&state.vault, move |v| {
        v.add_hold(&body.name, &body.reason, selector, &by)
    })
    .await?;
    tracing::info!(name = %hold.name, "legal hold placed");
    Ok((StatusCode::CREATED, Json(hold)))
}

/// Body of `POST /v1/holds/{name}/release`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseHold {
    pub reason: String,
}

/// Release an active hold (it stays listed, with who released it and why).
#[utoipa::path(post, path = "/v1/holds/{name}/release", tag = "retention",
    params(("name" = String, Path, description = "Hold name")),
    request_body = ReleaseHold,
    responses(
        (status = 200, description = "the hold as now stored", body = Object),
        (status = 404, description = "no hold of that name", body = Problem,
            content_type = "application/problem+json"),
        (status = 409, description = "already released", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn release_hold(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(name): PathParam,
    JsonBody(body): JsonBody<ReleaseHold>,
) -> Result<Json<Hold>, ApiError> {
    caller.require(Permission::Maintain)?;
    let by = caller.0.name.clone();
    let hold = blocking(&state.vault, move |v| {
        v.release_hold(&name, &body.reason, &by)
    })
    .await?;
    tracing::info!(name = %hold.name, "legal hold released");
    Ok(Json(hold))
}
