//! `GET /v1/log/access`: the access log (who read what, when, from where), for access reviews.
//!
//! Readable by unscoped `auditor` and `admin` tokens only: it names every token and what it
//! read, across all blueprints. The events themselves are written by [`crate::observe`];
//! reading them is an event too (`access.query`).

use axum::Json;
use axum::extract::{RawQuery, State};
use evault_core::access::{AccessEvent, AccessFilter};
use evault_core::auth::{Permission, validate_token_name};
use evault_schema::validate;
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::{AppState, blocking};
use crate::auth::Caller;
use crate::observe::LOGGED_READS;
use crate::openapi::RoleName;
use crate::problem::{ApiError, Problem, ProblemKind};
use crate::query::{Params, Spec};

/// Page size when the query gives no `limit`.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest page.
pub const MAX_LIMIT: usize = 1000;

const SPEC: Spec = Spec {
    single: &["since", "until", "token", "action", "limit", "after"],
    repeated: &[],
    ignored: &[],
};

/// One page of access events, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessPage {
    #[schema(value_type = Vec<AccessEventDoc>)]
    pub events: Vec<AccessEvent>,
    /// Pass back as `after` for the next page; `null` on the last page.
    #[schema(example = 100)]
    pub next: Option<u64>,
}

/// Mirror of `evault_core::access::AccessEvent`: one read by a token, chained to the previous
/// event (docs/access-log.md says how to recompute the hashes).
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = AccessEvent)]
pub struct AccessEventDoc {
    /// 1, 2, 3, … without gaps.
    #[schema(example = 17)]
    seq: u64,
    /// When the request arrived: RFC 3339, UTC, microseconds.
    #[schema(example = "2026-03-03T10:00:00.000000Z")]
    at: String,
    /// The token's name.
    #[schema(example = "alice")]
    token: String,
    #[schema(value_type = RoleName)]
    role: String,
    /// `record.read`, `records.query`, `blob.read`, `blob.head`, `access.query`, `log.prove` or
    /// `log.entries`.
    #[schema(example = "record.read")]
    action: String,
    /// The record id or blob digest asked for, or the query string of a listing.
    target: String,
    /// The peer's `ip:port`; `null` when unknown.
    #[schema(example = "10.0.0.7:51234")]
    remote: Option<String>,
    /// The request's `x-request-id`.
    #[schema(example = "6f1c0c7e9b2a4d55")]
    request_id: String,
    /// The HTTP status answered.
    #[schema(example = 200)]
    status: u16,
    /// The previous event's `hash` (64 zeros for event 1).
    prev_hash: String,
    /// Lowercase hex SHA-256 of `prev_hash` followed by the event's canonical JSON.
    hash: String,
}

/// Reads by tokens (records, listings, blobs, the access log itself), oldest first, one page at
/// a time. Requests answered before this one are included.
#[utoipa::path(get, path = "/v1/log/access", tag = "audit",
    params(
        ("since" = Option<String>, Query, description = "At or after (RFC 3339 or YYYY-MM-DD)"),
        ("until" = Option<String>, Query, description = "Before (RFC 3339 or YYYY-MM-DD)"),
        ("token" = Option<String>, Query, description = "Events of this token name"),
        ("action" = Option<String>, Query, description = "Events of this action: record.read, \
            records.query, blob.read, blob.head, access.query, log.prove or log.entries"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000,
            description = "Page size, default 100"),
        ("after" = Option<u64>, Query, description = "A previous page's next: events after \
            this seq"),
    ),
    responses(
        (status = 200, description = "a page of access events", body = AccessPage),
        (status = 400, description = "a query parameter is wrong (the detail names it)",
            body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "not an unscoped auditor or admin token", body = Problem,
            content_type = "application/problem+json"),
        (status = 503, description = "the access log is unavailable", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn list_access(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<AccessPage>, ApiError> {
    // Unscoped auditors and admins only: the access log spans every blueprint and names every
    // token.
    caller.require(Permission::Audit)?;
    let p = Params::parse(query.as_deref(), &SPEC)?;
    let limit = p.limit(DEFAULT_LIMIT, MAX_LIMIT)?;
    let after_seq = p
        .get("after")
        .map(|s| {
            s.parse::<u64>().map_err(|_| {
                ApiError::invalid(format!(
                    "invalid after '{}': expected the next value of a previous page (an event \
                     seq)",
                    validate::excerpt(s)
                ))
            })
        })
        .transpose()?;
    let token = p
        .get("token")
        .map(|s| {
            validate_token_name(s).map_err(|_| {
                ApiError::invalid(format!(
                    "invalid token '{}': expected a token name (1 to 64 letters, digits, '.', \
                     '_', '-' or '@')",
                    validate::excerpt(s)
                ))
            })
        })
        .transpose()?;
    let action = p.get("action").map(known_action).transpose()?;
    let filter = AccessFilter {
        since: p.checked("since", validate::rfc3339)?,
        until: p.checked("until", validate::rfc3339)?,
        token,
        action,
        // One more than the page: whether there is a next page.
        limit: limit + 1,
        after_seq,
    };
    let Some(log) = state.access.clone() else {
        return Err(ApiError::see_log(
            ProblemKind::NotReady,
            "the access log is unavailable",
        ));
    };
    let mut events = blocking(&state.vault, move |_| {
        // Events of requests answered before this one are still queued, perhaps.
        log.flush()?;
        log.query(&filter)
    })
    .await?;
    let next = if events.len() > limit {
        events.truncate(limit);
        events.last().map(|e| e.seq)
    } else {
        None
    };
    Ok(Json(AccessPage { events, next }))
}

/// An action of [`LOGGED_READS`].
fn known_action(s: &str) -> Result<String, ApiError> {
    if let Some(read) = LOGGED_READS.iter().find(|r| r.action == s) {
        return Ok(read.action.to_string());
    }
    let mut known: Vec<&str> = LOGGED_READS.iter().map(|r| r.action).collect();
    known.sort_unstable();
    known.dedup();
    Err(ApiError::invalid(format!(
        "invalid action '{}': expected one of {}",
        validate::excerpt(s),
        known.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn detail(e: ApiError) -> String {
        e.problem("", "").detail
    }

    #[test]
    fn actions_are_those_of_the_logged_reads() {
        assert_eq!(known_action("blob.read").unwrap(), "blob.read");
        let e = detail(known_action("blob.write").unwrap_err());
        assert!(
            e.starts_with("invalid action 'blob.write': expected one of access.query,"),
            "{e}"
        );
    }

    #[test]
    fn the_event_schema_has_the_keys_of_a_real_event() {
        let doc = serde_json::to_value(crate::openapi_document()).unwrap();
        let schema = &doc["components"]["schemas"]["AccessEvent"]["properties"];
        let documented: BTreeSet<String> = schema.as_object().unwrap().keys().cloned().collect();
        let event = AccessEvent {
            seq: 1,
            at: String::new(),
            token: String::new(),
            role: String::new(),
            action: String::new(),
            target: String::new(),
            remote: None,
            request_id: String::new(),
            status: 200,
            prev_hash: String::new(),
            hash: String::new(),
        };
        let real: BTreeSet<String> = serde_json::to_value(&event)
            .unwrap()
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(documented, real);
        assert!(doc["paths"]["/v1/log/access"]["get"].is_object());
    }
}
