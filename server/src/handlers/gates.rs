//! `/v1/gates/check`, `/v1/gates/input`, `/v1/gates/policy`, `/v1/approvals`,
//! `/v1/exceptions` and `/v1/audit/completeness`: release gates over HTTP (docs/gates.md). The
//! evidence gathered, the policy applied and the decision recorded are `evault-core`'s
//! (`evault_core::gate`); these handlers only translate.
//!
//! Who acts is the token, never the body: a check's actor, an approval's approver and the role
//! it is given in are the token's name and role (the request types refuse unknown fields, so a
//! body naming an `approver` or a `role` is a 400). Checking a gate writes its decision as a
//! record, so it needs `Push` (pipelines) or `Approve` (approvers), not just `Read`; the
//! blueprint must be within the token's scopes, which core checks before anything is read or
//! written.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use evault_core::auth::Permission;
use evault_core::gate::{
    ApprovalRequest, CheckRequest, CompletenessReport, ExceptionRequest, GateDecision, GateInput,
    GatePolicyView,
};
use evault_core::query::record::Recorded;
use evault_schema::validate;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::app::{AppState, JsonBody, blocking};
use crate::auth::Caller;
use crate::handlers::queries::recorded;
use crate::openapi::{
    ApprovalRequestDoc, CheckRequestDoc, CompletenessReportDoc, ExceptionRequestDoc,
    GateDecisionDoc, GateInputDoc, GatePolicyViewDoc, RecordedDoc,
};
use crate::problem::{ApiError, Problem, ProblemKind};
use crate::query::{Params, Spec};

/// Largest JSON body of these endpoints (a policy text is at most 1 MiB too).
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Pipelines (`Push`) and approvers (`Approve`) may check a gate; auditors may not, since a
/// check records its decision.
fn may_check(caller: &Caller) -> Result<(), ApiError> {
    if caller.0.can(Permission::Push) || caller.0.can(Permission::Approve) {
        return Ok(());
    }
    Err(ApiError::new(
        ProblemKind::Forbidden,
        format!(
            "token '{}' has role {}, which may not check a gate: a check records its decision, \
             which needs role pusher, approver or admin",
            caller.0.name, caller.0.role
        ),
    ))
}

/// Checks the release gate of a blueprint version for an environment and records the decision
/// as a `policy-result` record (its id is `record`). The answer is 200 whatever the decision:
/// a pipeline must read `decision` (`pass`, `warn` or `fail`) and stop on `fail`. The actor is
/// the token's name.
#[utoipa::path(post, path = "/v1/gates/check", tag = "gates",
    request_body(content = CheckRequestDoc, description = "the version, the environment, \
        optionally the artifact, the commit and, for admin tokens only, a policy for this one \
        check (recorded with source `file`; it never counts as the gate passing for audit \
        completeness); unknown fields are refused; at most 1 MiB"),
    responses(
        (status = 200, description = "the decision, pass, warn or fail, with one result per \
            requirement: read `decision`", body = GateDecisionDoc),
        (status = 400, description = "a field is wrong, or the given policy does not parse \
            (the detail names the field or the gate entry)", body = Problem,
            content_type = "application/problem+json"),
        (status = 403, description = "an auditor token (a check writes a record), a `policy` \
            from a token that is not an admin's, or a blueprint outside the token's scopes; \
            nothing is written", body = Problem,
            content_type = "application/problem+json"),
        (status = 413, description = "the body is over 1 MiB", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn gate_check(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<CheckRequest>,
) -> Result<Json<GateDecision>, ApiError> {
    may_check(&caller)?;
    // A policy is code the server runs: a Rego rule can ask for gigabytes (`numbers.range`).
    // Only those who may set the vault's policy may bring one of their own.
    if request.policy.is_some() && !caller.0.can(Permission::Maintain) {
        return Err(ApiError::new(
            ProblemKind::Forbidden,
            format!(
                "token '{}' may not bring its own policy (field policy): the server runs it, so                  only admins may; checks by role {} use the vault's policy",
                caller.0.name, caller.0.role
            ),
        ));
    }
    let actor = caller.0.name.clone();
    let scopes = caller.scopes().to_vec();
    let decision = blocking(&state.vault, move |v| {
        v.gate_check(request, &actor, &scopes)
    })
    .await?;
    state.metrics.gate_decided(decision.decision);
    tracing::info!(
        blueprint = %decision.blueprint,
        version = %decision.version,
        environment = %decision.environment,
        decision = %decision.decision,
        policy = %decision.policy.source,
        record = decision.record.as_deref().unwrap_or("-"),
        "gate checked"
    );
    Ok(Json(decision))
}

/// The document a gate policy judges for a version and environment (`input` in Rego), without
/// judging or recording anything: for writing and testing policies.
#[utoipa::path(post, path = "/v1/gates/input", tag = "gates",
    request_body(content = CheckRequestDoc, description = "as for /v1/gates/check, without \
        `policy` (the input does not depend on it; giving one is a 400)"),
    responses(
        (status = 200, description = "the gate input (https://evault.dev/gate-input/v1, \
            docs/gates.md)", body = GateInputDoc),
        (status = 400, description = "a field is wrong, or `policy` is given", body = Problem,
            content_type = "application/problem+json"),
        (status = 413, description = "the body is over 1 MiB", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn gate_input(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<CheckRequest>,
) -> Result<Json<GateInput>, ApiError> {
    caller.require(Permission::Read)?;
    if request.policy.is_some() {
        return Err(ApiError::invalid(
            "invalid JSON body: field `policy` plays no part in a gate input (the facts are the \
             same whatever the policy); leave it out",
        ));
    }
    let scopes = caller.scopes().to_vec();
    Ok(Json(
        blocking(&state.vault, move |v| v.gate_input(&request, &scopes)).await?,
    ))
}

/// The gate policy in force: the vault's, or the built-in one when none was set.
#[utoipa::path(get, path = "/v1/gates/policy", tag = "gates",
    responses((status = 200, description = "source (`vault` or `built-in`), engine, digest, \
        the policy text, when and by whom it was set (null for the built-in policy)",
        body = GatePolicyViewDoc)))]
pub async fn get_gate_policy(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<GatePolicyView>, ApiError> {
    caller.require(Permission::Read)?;
    Ok(Json(blocking(&state.vault, |v| v.gate_policy()).await?))
}

/// Body of `PUT /v1/gates/policy`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetGatePolicy {
    /// The policy: TOML, or Rego when its first statement is `package evault.gate`
    /// (docs/gates.md). At most 1 MiB.
    pub policy: String,
}

/// Replace the vault's gate policy, after checking it; later checks cite it with source
/// `vault`. Vault-wide maintenance, like the retention policy: admins without scopes. The
/// change is an entry of the tamper-evident log, by the token's name.
#[utoipa::path(put, path = "/v1/gates/policy", tag = "gates",
    request_body = SetGatePolicy,
    responses(
        (status = 200, description = "the policy now in force", body = GatePolicyViewDoc),
        (status = 400, description = "the policy does not parse or compile (the detail names \
            the gate entry, its line and the field)", body = Problem,
            content_type = "application/problem+json"),
        (status = 403, description = "not an admin, or a scoped one", body = Problem,
            content_type = "application/problem+json"),
        (status = 413, description = "the body is over 1 MiB", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn set_gate_policy(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<SetGatePolicy>,
) -> Result<Json<GatePolicyView>, ApiError> {
    caller.require(Permission::Maintain)?;
    let by = caller.0.name.clone();
    let view = blocking(&state.vault, move |v| v.set_gate_policy(&body.policy, &by)).await?;
    tracing::info!(engine = %view.engine, digest = %view.digest, "gate policy set");
    Ok(Json(view))
}

/// Records an approval (or a rejection) of a version for an environment. The approver is the
/// token's name and the role the token's role; neither can be given in the body.
#[utoipa::path(post, path = "/v1/approvals", tag = "gates",
    request_body(content = ApprovalRequestDoc, description = "unknown fields, `approver` and \
        `role` included, are refused"),
    responses(
        (status = 201, description = "the approval record, with warnings (e.g. separation of \
            duties)", body = RecordedDoc),
        (status = 200, description = "the same approval was recorded before", body = RecordedDoc),
        (status = 400, description = "a field is wrong, or the commit cannot be determined",
            body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "not an approver or admin, or a blueprint outside the \
            token's scopes", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn record_approval(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<ApprovalRequest>,
) -> Result<(StatusCode, Json<Recorded>), ApiError> {
    caller.require(Permission::Approve)?;
    let (actor, role) = (caller.0.name.clone(), caller.0.role.as_str());
    let scopes = caller.scopes().to_vec();
    let outcome = blocking(&state.vault, move |v| {
        v.record_approval(request, &actor, role, &scopes)
    })
    .await?;
    tracing::info!(record = %outcome.record.record.id, "approval recorded");
    Ok(recorded(outcome))
}

/// Records an exception: the token, in its role, accepts the risk of some vulnerabilities of a
/// version in an environment until it expires.
#[utoipa::path(post, path = "/v1/exceptions", tag = "gates",
    request_body(content = ExceptionRequestDoc, description = "unknown fields, `approver` and \
        `role` included, are refused"),
    responses(
        (status = 201, description = "the exception record, with warnings", body = RecordedDoc),
        (status = 200, description = "the same exception was recorded before", body = RecordedDoc),
        (status = 400, description = "a field is wrong: no vulnerability, no or a bad expiry",
            body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "not an approver or admin, or a blueprint outside the \
            token's scopes", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn record_exception(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<ExceptionRequest>,
) -> Result<(StatusCode, Json<Recorded>), ApiError> {
    caller.require(Permission::Approve)?;
    let (actor, role) = (caller.0.name.clone(), caller.0.role.as_str());
    let scopes = caller.scopes().to_vec();
    let outcome = blocking(&state.vault, move |v| {
        v.record_exception(request, &actor, role, &scopes)
    })
    .await?;
    tracing::info!(record = %outcome.record.record.id, "exception recorded");
    Ok(recorded(outcome))
}

/// The deploys to an environment (since a time) whose version lacks evidence the vault's
/// policy requires, or whose gate never passed before the deploy (`evault audit
/// completeness`). Only deploys of the token's blueprints are examined.
#[utoipa::path(get, path = "/v1/audit/completeness", tag = "gates",
    params(
        ("env" = String, Query, description = "The environment"),
        ("since" = Option<String>, Query, description = "Deploys at or after (RFC 3339 or \
            YYYY-MM-DD)"),
    ),
    responses(
        (status = 200, description = "the deploys examined and those found wanting",
            body = CompletenessReportDoc),
        (status = 400, description = "a parameter is missing, unknown or wrong (the detail \
            names it)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn audit_completeness(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<CompletenessReport>, ApiError> {
    caller.require(Permission::Read)?;
    let p = Params::parse(
        query.as_deref(),
        &Spec {
            single: &["env", "since"],
            repeated: &[],
            ignored: &[],
        },
    )?;
    let env = p
        .checked("env", validate::environment)?
        .ok_or_else(|| ApiError::invalid("query parameter 'env' is required"))?;
    let since = p.checked("since", validate::rfc3339)?;
    let scopes = caller.scopes().to_vec();
    Ok(Json(
        blocking(&state.vault, move |v| {
            v.audit_completeness(&env, since, &scopes)
        })
        .await?,
    ))
}
