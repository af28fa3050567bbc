//! Bearer-token authentication: the [`Caller`] extractor.
//!
//! The identity comes only from the token. What a role may do and what a scope covers are
//! decided by `evault_core::auth`; this module translates its answers into 401 and 403.

use axum::extract::FromRequestParts;
use axum::http::HeaderValue;
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use evault_core::auth::{AuthFailure, Identity, Permission, Role};

use crate::app::{AppState, blocking};
use crate::observe::CallerName;
use crate::problem::{ApiError, ProblemKind};

/// The authenticated caller of a `/v1` endpoint.
#[derive(Debug, Clone)]
pub struct Caller(pub Identity);

impl Caller {
    /// 403 unless the caller's role has `permission`; the detail names the role, what it may
    /// do and which roles would do.
    pub fn require(&self, permission: Permission) -> Result<(), ApiError> {
        if self.0.can(permission) {
            return Ok(());
        }
        Err(forbidden(&self.0, &describe(permission), |r| {
            r.allows(permission)
        }))
    }

    /// 403 unless the caller is an admin (integrity checks: evault_core has no finer permission
    /// for them yet).
    pub fn require_admin(&self, what: &str) -> Result<(), ApiError> {
        if self.0.role == Role::Admin {
            return Ok(());
        }
        Err(forbidden(&self.0, what, |r| r == Role::Admin))
    }

    /// Blueprint patterns the caller is limited to (empty: all).
    pub fn scopes(&self) -> &[String] {
        &self.0.scopes
    }
}

fn describe(permission: Permission) -> String {
    match permission {
        Permission::Push => "pushing evidence",
        Permission::Read => "reading records and blobs",
        Permission::Approve => "recording approvals",
        Permission::ManageTokens => "managing tokens",
    }
    .to_string()
}

fn forbidden(identity: &Identity, what: &str, allowed: impl Fn(Role) -> bool) -> ApiError {
    let may: Vec<String> = [
        Permission::Push,
        Permission::Read,
        Permission::Approve,
        Permission::ManageTokens,
    ]
    .into_iter()
    .filter(|p| identity.role.allows(*p))
    .map(describe)
    .collect();
    let roles: Vec<&str> = Role::ALL
        .into_iter()
        .filter(|r| allowed(*r))
        .map(Role::as_str)
        .collect();
    ApiError::new(
        ProblemKind::Forbidden,
        format!(
            "token '{}' has role {}, which allows only {}; {what} needs role {}",
            identity.name,
            identity.role,
            if may.is_empty() {
                "nothing".to_string()
            } else {
                may.join(" and ")
            },
            roles.join(" or ")
        ),
    )
}

fn unauthenticated(detail: &str) -> ApiError {
    ApiError::new(ProblemKind::Unauthenticated, detail)
        .with_header(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
}

/// The secret of an `Authorization: Bearer <secret>` header.
fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let Some(value) = parts.headers.get(AUTHORIZATION) else {
        return Err(unauthenticated("missing bearer token"));
    };
    let malformed = || unauthenticated("malformed Authorization header: expected 'Bearer <token>'");
    let value = value.to_str().map_err(|_| malformed())?;
    let (scheme, secret) = value.trim().split_once(' ').ok_or_else(malformed)?;
    let secret = secret.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || secret.is_empty() {
        return Err(malformed());
    }
    Ok(secret)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let secret = bearer(parts)?.to_string();
        // The lookup may write the token's last use, so it runs off the async threads.
        let outcome = blocking(&state.vault, move |v| v.authenticate(&secret)).await?;
        match outcome {
            Ok(identity) => {
                if let Some(slot) = parts.extensions.get::<CallerName>() {
                    slot.set(&identity.name);
                }
                tracing::Span::current().record("token", identity.name.as_str());
                Ok(Caller(identity))
            }
            Err(failure) => {
                let detail = match failure {
                    AuthFailure::Unknown => "unknown token",
                    AuthFailure::Expired => "token expired",
                    AuthFailure::Revoked => "token revoked",
                };
                tracing::info!(reason = detail, "authentication failed");
                Err(unauthenticated(detail))
            }
        }
    }
}
