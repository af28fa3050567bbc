//! Bearer-token authentication: the [`Caller`] extractor.
//!
//! The identity comes only from the token. What a role may do and what a scope covers are
//! decided by `evault_core::auth`; this module translates its answers into 401 and 403.

use axum::extract::FromRequestParts;
use axum::http::HeaderValue;
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use evault_core::auth::{AuthFailure, Identity, Permission};

use crate::app::{AppState, blocking};
use crate::observe::CallerName;
use crate::problem::{ApiError, ProblemKind};

/// The authenticated caller of a `/v1` endpoint.
#[derive(Debug, Clone)]
pub struct Caller(pub Identity);

impl Caller {
    /// 403 unless the caller may do `permission`; the detail (from evault_core) names the role
    /// or scope that stands in the way and what would do.
    pub fn require(&self, permission: Permission) -> Result<(), ApiError> {
        match self.0.refusal(permission) {
            None => Ok(()),
            Some(why) => Err(ApiError::new(ProblemKind::Forbidden, why)),
        }
    }

    /// Blueprint patterns the caller is limited to (empty: all).
    pub fn scopes(&self) -> &[String] {
        &self.0.scopes
    }
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
                    slot.set(&identity.name, identity.role);
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
