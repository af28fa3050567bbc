//! `/v1/retention/policy`, `/v1/holds`, `/v1/retention/sweep`, `DELETE /v1/records/{id}` and
//! `/v1/tombstones`: the retention policy, legal holds and deletion (docs/retention.md).
//! Changing the policy or holds and deleting are vault-wide maintenance (admins); reading the
//! policy and holds is for auditors too, and tombstones are listed like records. Who acted is
//! the token's name, never a field of the body. Whether a record may go is decided in
//! `evault-core` (and `evault-retention`); these handlers only translate.

use axum::Json;
use axum::extract::{Query, RawQuery, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use evault_core::auth::Permission;
use evault_core::retention::{PolicySet, PolicyView};
use evault_core::sweep::{SweepReport, Tombstone};
use evault_retention::{Hold, HoldSelector};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::app::{AppState, JsonBody, PathParam, blocking};
use crate::auth::Caller;
use crate::handlers::records::filter_of;
use crate::openapi::{FormatName, KindName};
use crate::problem::{ApiError, Problem};
use crate::query::{Params, Spec};

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

/// Body of `POST /v1/retention/sweep`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SweepRequest {
    /// Only report what a sweep would remove, changing nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// Run a retention sweep now, as the background sweeper does: delete the records whose
/// retention has run out (each leaving a tombstone) unless a legal hold or a live deployment
/// keeps them, then the bytes no record needs any more. Retention is judged at the server's
/// present time.
#[utoipa::path(post, path = "/v1/retention/sweep", tag = "retention",
    request_body = SweepRequest,
    responses(
        (status = 200, description = "what the sweep did (or, with dry_run, would do): \
            dry_run, at, deleted, kept (with why), blobs_removed, orphan_files, bytes_freed",
            body = Object),
        (status = 400, description = "a bad body (the detail names the field)", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn sweep(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<SweepRequest>,
) -> Result<Json<SweepReport>, ApiError> {
    caller.require(Permission::Maintain)?;
    let dry_run = body.dry_run;
    let outcome = blocking(&state.vault, move |v| v.sweep(dry_run, &mut |_, _| {})).await;
    let report = match outcome {
        Ok(report) => report,
        Err(e) => {
            if !dry_run {
                state.metrics.sweep_failed();
            }
            return Err(e);
        }
    };
    if !dry_run {
        state.metrics.sweep_done(report.deleted.len() as u64);
    }
    tracing::info!(
        dry_run,
        deleted = report.deleted.len(),
        kept = report.kept.len(),
        blobs_removed = report.blobs_removed.len(),
        orphan_files = report.orphan_files.len(),
        bytes_freed = report.bytes_freed,
        "retention sweep"
    );
    Ok(Json(report))
}

/// Body of `DELETE /v1/records/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteRecord {
    /// Why the record goes; kept in its tombstone and the log. Required, not blank.
    pub reason: String,
    /// Delete before the record's `retain_until`: governance mode only, logged as early.
    #[serde(default, rename = "override")]
    pub override_retention: bool,
}

/// Delete one record by hand (`evault rm`), leaving a tombstone. After its `retain_until`, a
/// reason is enough; before it, only under governance mode with `override`. Never while a legal
/// hold is on it, never early under compliance mode. Its blob goes too if no other record
/// references it.
#[utoipa::path(delete, path = "/v1/records/{id}", tag = "retention",
    params(("id" = String, Path, description = "Record id, or a unique prefix of at least 6 \
        hexadecimal characters")),
    request_body = DeleteRecord,
    responses(
        (status = 200, description = "the tombstone: the record as it was, deleted_at, \
            deleted_by (the token's name), reason, early", body = Object),
        (status = 400, description = "a blank reason, a bad body or id, or an ambiguous prefix",
            body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "not an admin; or refused: before retain_until without \
            override, under compliance mode, or on legal hold (the detail says which)",
            body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such record", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn delete_record(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam,
    JsonBody(body): JsonBody<DeleteRecord>,
) -> Result<Json<Tombstone>, ApiError> {
    caller.require(Permission::Maintain)?;
    let by = caller.0.name.clone();
    let tombstone = blocking(&state.vault, move |v| {
        v.delete_record(&id, &body.reason, body.override_retention, &by)
    })
    .await?;
    tracing::info!(record = %tombstone.id, early = tombstone.early, "record deleted");
    Ok(Json(tombstone))
}

/// The parameters of `GET /v1/tombstones`: the record filters, without `cursor` (one page).
const TOMBSTONE_SPEC: Spec = Spec {
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
    ],
    repeated: &[],
    ignored: &[],
};

/// The answer of `GET /v1/tombstones`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TombstoneList {
    /// Newest deletion first.
    #[schema(value_type = Vec<Object>)]
    pub tombstones: Vec<Tombstone>,
}

/// Tombstones of deleted records matching the filters (as `GET /v1/records` takes them, which
/// apply to the deleted record), newest deletion first, at most `limit`.
#[utoipa::path(get, path = "/v1/tombstones", tag = "retention",
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
            description = "Most tombstones returned, default 100"),
    ),
    responses(
        (status = 200, description = "the tombstones, newest deletion first", body = TombstoneList),
        (status = 400, description = "a query parameter is wrong (the detail names it)",
            body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_tombstones(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<TombstoneList>, ApiError> {
    caller.require(Permission::Read)?;
    let p = Params::parse(query.as_deref(), &TOMBSTONE_SPEC)?;
    let filter = filter_of(&p, &caller)?;
    let tombstones = blocking(&state.vault, move |v| v.tombstones(&filter)).await?;
    Ok(Json(TombstoneList { tombstones }))
}
