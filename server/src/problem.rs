//! RFC 9457 problem details: the one shape of every error response.
//!
//! Handlers answer with an [`ApiError`]: the category, the status and a detail for the caller.
//! Only the request knows its path and id, so the body is completed by the middleware in
//! [`crate::observe`], which also turns responses produced outside the handlers (unknown routes,
//! wrong methods, timeouts, panics, axum's own rejections) into problems. The caller therefore
//! never sees anything but `application/problem+json` for a 4xx or 5xx.
//!
//! Internal faults are logged with the request id and answered with a detail that points at the
//! log: their messages may hold paths and other internals that must not leave the server.

use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Prefix of every problem `type`.
pub const PROBLEM_BASE: &str = "https://evault.dev/problems/";
/// Media type of problem bodies.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The categories of docs/api.md; each has a stable `type` slug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    InvalidInput,
    Unauthenticated,
    Forbidden,
    NotFound,
    NoSuchRoute,
    MethodNotAllowed,
    Timeout,
    Conflict,
    TooLarge,
    UnsupportedMediaType,
    InvalidDocument,
    Integrity,
    Internal,
    NotReady,
}

impl ProblemKind {
    pub fn slug(self) -> &'static str {
        match self {
            ProblemKind::InvalidInput => "invalid-input",
            ProblemKind::Unauthenticated => "unauthenticated",
            ProblemKind::Forbidden => "forbidden",
            ProblemKind::NotFound => "not-found",
            ProblemKind::NoSuchRoute => "no-such-route",
            ProblemKind::MethodNotAllowed => "method-not-allowed",
            ProblemKind::Timeout => "timeout",
            ProblemKind::Conflict => "conflict",
            ProblemKind::TooLarge => "too-large",
            ProblemKind::UnsupportedMediaType => "unsupported-media-type",
            ProblemKind::InvalidDocument => "invalid-document",
            ProblemKind::Integrity => "integrity",
            ProblemKind::Internal => "internal",
            ProblemKind::NotReady => "not-ready",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            ProblemKind::InvalidInput => "Invalid input",
            ProblemKind::Unauthenticated => "Unauthenticated",
            ProblemKind::Forbidden => "Forbidden",
            ProblemKind::NotFound => "Not found",
            ProblemKind::NoSuchRoute => "No such route",
            ProblemKind::MethodNotAllowed => "Method not allowed",
            ProblemKind::Timeout => "Request timeout",
            ProblemKind::Conflict => "Conflict",
            ProblemKind::TooLarge => "Too large",
            ProblemKind::UnsupportedMediaType => "Unsupported media type",
            ProblemKind::InvalidDocument => "Invalid document",
            ProblemKind::Integrity => "Integrity failure",
            ProblemKind::Internal => "Internal error",
            ProblemKind::NotReady => "Not ready",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            ProblemKind::InvalidInput => StatusCode::BAD_REQUEST,
            ProblemKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            ProblemKind::Forbidden => StatusCode::FORBIDDEN,
            ProblemKind::NotFound | ProblemKind::NoSuchRoute => StatusCode::NOT_FOUND,
            ProblemKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ProblemKind::Timeout => StatusCode::REQUEST_TIMEOUT,
            ProblemKind::Conflict => StatusCode::CONFLICT,
            ProblemKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProblemKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ProblemKind::InvalidDocument => StatusCode::UNPROCESSABLE_ENTITY,
            ProblemKind::Integrity | ProblemKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ProblemKind::NotReady => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// What the caller is told.
#[derive(Debug, Clone)]
enum Detail {
    /// Safe to show as is (user mistakes, names of missing things).
    Text(String),
    /// A server-side fault: the text is completed with "see the server log for request <id>".
    SeeLog(String),
}

/// An error answer, before the request's path and id are filled in.
#[derive(Debug, Clone)]
pub struct ApiError {
    kind: ProblemKind,
    status: StatusCode,
    detail: Detail,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(kind: ProblemKind, detail: impl Into<String>) -> Self {
        ApiError {
            kind,
            status: kind.status(),
            detail: Detail::Text(detail.into()),
            headers: Vec::new(),
        }
    }

    /// A server-side fault whose specifics stay in the log.
    pub fn see_log(kind: ProblemKind, what: impl Into<String>) -> Self {
        ApiError {
            kind,
            status: kind.status(),
            detail: Detail::SeeLog(what.into()),
            headers: Vec::new(),
        }
    }

    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(ProblemKind::InvalidInput, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(ProblemKind::NotFound, detail)
    }

    /// Keeps an unusual status (e.g. 411) while answering in the closest category.
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn kind(&self) -> ProblemKind {
        self.kind
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The complete problem for the request at `instance` with id `request_id`.
    pub fn problem(&self, instance: &str, request_id: &str) -> Problem {
        let detail = match &self.detail {
            Detail::Text(t) => t.clone(),
            Detail::SeeLog(what) if request_id.is_empty() => {
                format!("{what}; see the server log")
            }
            Detail::SeeLog(what) => format!("{what}; see the server log for request {request_id}"),
        };
        Problem {
            type_uri: format!("{PROBLEM_BASE}{}", self.kind.slug()),
            title: self.kind.title().to_string(),
            status: self.status.as_u16(),
            detail,
            instance: instance.to_string(),
            request_id: request_id.to_string(),
        }
    }

    /// The response for a known request.
    pub fn into_problem_response(self, instance: &str, request_id: &str) -> Response {
        let body = self.problem(instance, request_id).to_json();
        let mut response = (
            self.status,
            [(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON))],
            body,
        )
            .into_response();
        for (name, value) in self.headers {
            response.headers_mut().append(name, value);
        }
        response
    }
}

impl IntoResponse for ApiError {
    /// Renders without path and id, and leaves the error in the response's extensions for
    /// [`crate::observe`] to render again with them. The first rendering only shows if the error
    /// is used outside the router.
    fn into_response(self) -> Response {
        let mut response = self.clone().into_problem_response("", "");
        response.extensions_mut().insert(self);
        response
    }
}

impl From<evault_core::Error> for ApiError {
    /// Core errors map by category (docs/api.md). Integrity and internal faults are logged here,
    /// in the request's span, so the log line carries the request id the caller is given.
    fn from(e: evault_core::Error) -> Self {
        use evault_core::Error as E;
        match e {
            E::Invalid(m) => ApiError::new(ProblemKind::InvalidInput, m),
            E::Unprocessable(m) => ApiError::new(ProblemKind::InvalidDocument, m),
            E::TooLarge(m) => ApiError::new(ProblemKind::TooLarge, m),
            E::NotFound(m) => ApiError::new(ProblemKind::NotFound, m),
            E::Conflict(m) => ApiError::new(ProblemKind::Conflict, m),
            E::Unauthenticated(m) => ApiError::new(ProblemKind::Unauthenticated, m),
            E::Forbidden(m) => ApiError::new(ProblemKind::Forbidden, m),
            E::Integrity(m) => {
                tracing::error!(error = %m, "stored data failed verification");
                ApiError::see_log(ProblemKind::Integrity, "stored data failed verification")
            }
            other @ (E::Io { .. } | E::Index(_) | E::Internal(_)) => {
                tracing::error!(error = %other, "internal error");
                ApiError::see_log(ProblemKind::Internal, "internal error")
            }
        }
    }
}

/// An RFC 9457 problem as evault sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// `https://evault.dev/problems/<slug>`.
    #[serde(rename = "type")]
    #[schema(example = "https://evault.dev/problems/invalid-input")]
    pub type_uri: String,
    #[schema(example = "Invalid input")]
    pub title: String,
    #[schema(example = 400)]
    pub status: u16,
    /// What went wrong, naming the parameter or field at fault.
    #[schema(example = "invalid git_sha 'xyz': expected 40 or 64 hexadecimal characters, found 3")]
    pub detail: String,
    /// The request path.
    #[schema(example = "/v1/push")]
    pub instance: String,
    /// The id of the request, also in the `x-request-id` header and the server's log.
    #[schema(example = "6f1c0c7e9b2a4d55")]
    pub request_id: String,
}

impl Problem {
    pub fn to_json(&self) -> String {
        // Serialising a struct of strings and an integer cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}
