//! `/v1/tokens` (admin): create, list, revoke. A created token's `created_by` is the name of
//! the admin token that created it.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use evault_core::auth::{NewToken, Permission, Role, TokenInfo, parse_lifetime};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::app::{AppState, JsonBody, PathParam, blocking};
use crate::auth::Caller;
use crate::openapi::{NewTokenDoc, RoleName, TokenDoc};
use crate::problem::{ApiError, Problem};

/// Body of `POST /v1/tokens`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// Recorded as the producer of what the token pushes, and in access logs.
    #[schema(example = "ci-checkout")]
    pub name: String,
    #[schema(value_type = RoleName)]
    pub role: String,
    /// Blueprint name patterns (`*` wildcards) the token is limited to; empty or absent means
    /// every blueprint.
    #[serde(default)]
    #[schema(example = json!(["checkout-*"]))]
    pub scopes: Vec<String>,
    /// Lifetime such as `12h`, `90d`, `8w`, `1y`; absent means no expiry.
    #[schema(example = "90d")]
    pub expires: Option<String>,
}

/// Create a token; the answer holds its secret, shown this once.
#[utoipa::path(post, path = "/v1/tokens", tag = "tokens",
    request_body = CreateToken,
    responses(
        (status = 201, description = "the token with its secret", body = NewTokenDoc),
        (status = 400, description = "a field is wrong (the detail names it)", body = Problem,
            content_type = "application/problem+json"),
        (status = 409, description = "the name is taken", body = Problem,
            content_type = "application/problem+json"),
        (status = 415, description = "not a JSON body", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateToken>,
) -> Result<(StatusCode, Json<NewToken>), ApiError> {
    caller.require(Permission::ManageTokens)?;
    let role: Role = body.role.parse().map_err(ApiError::invalid)?;
    let lifetime = body
        .expires
        .as_deref()
        .map(|e| parse_lifetime(e).map_err(|why| ApiError::invalid(format!("expires: {why}"))))
        .transpose()?;
    let created_by = caller.0.name.clone();
    let token = blocking(&state.vault, move |v| {
        v.create_token(&body.name, role, &body.scopes, lifetime, &created_by)
    })
    .await?;
    tracing::info!(name = %token.info.name, role = %token.info.role, "token created");
    Ok((StatusCode::CREATED, Json(token)))
}

/// The tokens, as `evault token ls --json` lists them (never secrets). For admins, and for
/// unscoped auditors (access reviews).
#[utoipa::path(get, path = "/v1/tokens", tag = "tokens",
    responses((status = 200, description = "every token", body = Vec<TokenDoc>)))]
pub async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<TokenInfo>>, ApiError> {
    if caller.require(Permission::Audit).is_err() {
        caller.require(Permission::ManageTokens)?;
    }
    Ok(Json(blocking(&state.vault, |v| v.tokens()).await?))
}

/// Revoke a token; it stops working at once. Revoking twice is harmless.
#[utoipa::path(delete, path = "/v1/tokens/{name}", tag = "tokens",
    params(("name" = String, Path, description = "Token name")),
    responses(
        (status = 200, description = "the token as now stored", body = TokenDoc),
        (status = 404, description = "no token of that name", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(name): PathParam,
) -> Result<Json<TokenInfo>, ApiError> {
    caller.require(Permission::ManageTokens)?;
    let by = caller.0.name.clone();
    let token = blocking(&state.vault, move |v| v.revoke_token(&name, &by)).await?;
    tracing::info!(name = %token.name, "token revoked");
    Ok(Json(token))
}
