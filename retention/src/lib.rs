//! # evault-retention
//!
//! How long evidence must be kept, what keeps it longer, and who may delete it, as pure
//! decisions. Every function takes the clock as an argument instead of reading it, so a rule
//! can be tested at any instant without sleeping or mocking, and a decision can be replayed when
//! an auditor asks why something was or was not kept.
//!
//! Nothing is deleted here, and nothing here does IO: this crate only answers questions such as
//! "until when must this record be kept?" or "may this admin delete it now?". Acting on the
//! answer (and logging that it did) is the job of `evault-core`, the one place where bytes are
//! written or removed.
//!
//! What it holds, in the order a record meets it:
//!
//! - [`RetentionPeriod`]: a length of time written the way people write it in configuration
//!   (`90d`, `12w`, `6mo`, `1y`, `7y`), applied with calendar arithmetic. The default,
//!   [`DEFAULT_RETENTION`], is one year, the common floor for SOC 2 evidence.
//! - [`Policy`]: the vault's retention policy, a [`Mode`] (S3 Object Lock's `compliance` or
//!   `governance`), a default period and [`Rule`]s by evidence kind, blueprint and environment,
//!   read from and written to TOML. [`Policy::period_for`] decides the period of a record from
//!   its [`RecordFacts`] (the longest matching period wins), and [`Policy::check_change`]
//!   refuses a new policy that would shorten retention under compliance mode.
//! - [`extended`] and [`graph_retain_until`]: a record's retain-until date only ever moves
//!   later, whether a policy is re-applied or a deployment of its blueprint version needs it.
//! - [`Hold`]: a legal hold, which keeps every record its [`HoldSelector`] matches for as long as
//!   the hold is not released, whatever the retention says.
//! - [`may_delete`]: the one decision on deleting a record, for the expiry sweep and for admins.
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use evault_retention::{DeleteRequest, Policy, RecordFacts, Refusal, may_delete};
//!
//! let policy = Policy::from_toml(
//!     r#"
//!     mode = "compliance"
//!     default = "1y"
//!
//!     [[rule]]
//!     kind = "provenance"
//!     period = "7y"
//!     "#,
//! )?;
//! let stored = Utc.with_ymd_and_hms(2025, 3, 14, 9, 26, 53).unwrap();
//! let facts = RecordFacts {
//!     kind: "provenance",
//!     blueprint: "checkout-api",
//!     version: "1.4.2",
//!     git_sha: "4f1c0d2b9a8e7f6d5c4b3a29180716f5e4d3c2b1",
//!     environment: None,
//!     record_id: "9b2e4c6a8d0f1e3a5c7b9d1f3e5a7c9b",
//!     ingested_at: stored,
//! };
//! let (until, why) = policy.retain_until(&facts);
//! assert_eq!(until, Utc.with_ymd_and_hms(2032, 3, 14, 9, 26, 53).unwrap());
//! assert_eq!(why, "rule 1 (kind=provenance): 7y");
//!
//! // Three years later, not even an admin may delete it: the policy is in compliance mode.
//! let now = Utc.with_ymd_and_hms(2028, 1, 1, 0, 0, 0).unwrap();
//! let admin = DeleteRequest::Admin { override_retention: true, reason: "cleanup" };
//! let refusal = may_delete(policy.mode, until, &[], now, admin).unwrap_err();
//! assert!(matches!(refusal, Refusal::Compliance { .. }));
//! # Ok::<(), evault_retention::PolicyError>(())
//! ```

#![warn(missing_docs)]

mod check;
mod delete;
mod hold;
mod period;
mod policy;
mod until;

use chrono::{DateTime, Utc};

pub use delete::{Allowed, DeleteRequest, Refusal, may_delete};
pub use hold::{
    Hold, HoldSelector, MAX_HOLD_NAME, MAX_HOLD_REASON, Release, holds_on, validate_hold_name,
    validate_reason,
};
pub use period::{DEFAULT_RETENTION, MAX_YEARS, ParsePeriodError, RetentionPeriod};
pub use policy::{Applied, ChangeRefused, MAX_RULES, Mode, Policy, PolicyError, Rule};
pub use until::{extended, graph_retain_until};

/// What retention decisions need to know about a record, borrowed from wherever the caller
/// keeps it (the index row, a record being ingested).
///
/// Policies match on `kind`, `blueprint` and `environment`; legal holds on `blueprint`,
/// `version`, `git_sha`, `record_id` and `ingested_at`. Values are compared as given: the caller
/// passes them as the vault stores them (kind names such as `vuln-scan`, lowercase hex ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordFacts<'a> {
    /// The evidence kind name, e.g. `sbom`, `vuln-scan`, `provenance`, `deploy`.
    pub kind: &'a str,
    /// The blueprint name, e.g. `checkout-api`.
    pub blueprint: &'a str,
    /// The blueprint version, e.g. `1.4.2`.
    pub version: &'a str,
    /// The git commit id the evidence is about (lowercase hex).
    pub git_sha: &'a str,
    /// The deployment environment, when the record names one.
    pub environment: Option<&'a str>,
    /// The record id (32 lowercase hex characters).
    pub record_id: &'a str,
    /// When the vault stored the record: retention runs from this instant.
    pub ingested_at: DateTime<Utc>,
}

#[cfg(test)]
pub(crate) mod testing {
    //! Shared fixtures for the unit tests.

    use chrono::{DateTime, TimeZone, Utc};

    use crate::RecordFacts;

    /// An instant on the given day, at a time of day that is not midnight (so that tests
    /// notice a lost time of day).
    pub fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 9, 26, 53).unwrap()
    }

    pub const SHA: &str = "4f1c0d2b9a8e7f6d5c4b3a29180716f5e4d3c2b1";
    pub const RECORD: &str = "9b2e4c6a8d0f1e3a5c7b9d1f3e5a7c9b";

    /// An SBOM of checkout-api 1.4.2, stored on 14 March 2025, with no environment.
    pub fn facts() -> RecordFacts<'static> {
        RecordFacts {
            kind: "sbom",
            blueprint: "checkout-api",
            version: "1.4.2",
            git_sha: SHA,
            environment: None,
            record_id: RECORD,
            ingested_at: at(2025, 3, 14),
        }
    }
}
