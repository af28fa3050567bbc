//! Whether a record may be deleted now: the one decision every deletion goes through.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::{Hold, Mode};

/// Who is asking to delete a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteRequest<'a> {
    /// The expiry sweep: deletes records whose retention has run out, never earlier.
    Sweep,
    /// An admin deleting one record by hand (`evault delete`).
    Admin {
        /// The admin asked to delete before the retain-until date (`--override`); only
        /// governance mode accepts it.
        override_retention: bool,
        /// Why (`--reason`); an early deletion needs one that is not blank.
        reason: &'a str,
    },
}

/// A deletion [`may_delete`] allows, saying how the caller must log it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowed {
    /// The record's retention has run out: an ordinary deletion.
    Expired,
    /// A governance-mode override: the record is deleted before its retain-until date, by an
    /// admin who gave a reason. Log it as an early deletion, with the reason.
    EarlyOverride,
}

impl Allowed {
    /// Whether the record is deleted before its retain-until date.
    pub fn is_early(self) -> bool {
        self == Allowed::EarlyOverride
    }
}

/// Why [`may_delete`] refuses. Displays on one line, saying what would allow the deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Active legal holds keep the record, whoever asks and whatever its retention.
    Held {
        /// The names of the active holds, in the order given.
        holds: Vec<String>,
    },
    /// The sweep never deletes a record before its retain-until date.
    Retained {
        /// The record's retain-until date.
        until: DateTime<Utc>,
    },
    /// Compliance mode: nobody deletes a record before its retain-until date.
    Compliance {
        /// The record's retain-until date.
        until: DateTime<Utc>,
    },
    /// Governance mode: an early deletion needs `--override` and a reason.
    OverrideRequired {
        /// The record's retain-until date.
        until: DateTime<Utc>,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let time = |t: &DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::AutoSi, true);
        match self {
            Refusal::Held { holds } => {
                let names: Vec<_> = holds.iter().map(|h| format!("'{h}'")).collect();
                let s = if holds.len() == 1 { "" } else { "s" };
                write!(
                    f,
                    "on legal hold{s} {}: held records cannot be deleted until every hold on them \
                     is released",
                    names.join(", ")
                )
            }
            Refusal::Retained { until } => write!(f, "retained until {}", time(until)),
            Refusal::Compliance { until } => write!(
                f,
                "compliance mode: retained until {}; nobody can delete it earlier",
                time(until)
            ),
            Refusal::OverrideRequired { until } => write!(
                f,
                "governance mode: retained until {}; deleting it earlier needs --override and a \
                 non-empty --reason",
                time(until)
            ),
        }
    }
}

impl std::error::Error for Refusal {}

/// Whether the record may be deleted `now`.
///
/// `holds` are the holds on the record (typically [`holds_on`](crate::holds_on)); released
/// ones are ignored. `retain_until` is the record's date, everything included (policy,
/// [`extended`](crate::extended), [`graph_retain_until`](crate::graph_retain_until)).
///
/// - Any active hold refuses, for every request and in both modes, even past `retain_until`.
/// - From `retain_until` on, the sweep and admins may delete.
/// - Before it, the sweep never deletes; in compliance mode nobody does; in governance mode an
///   admin does with `override_retention` and a reason that is not blank, which the caller
///   must log ([`Allowed::EarlyOverride`]).
pub fn may_delete(
    mode: Mode,
    retain_until: DateTime<Utc>,
    holds: &[&Hold],
    now: DateTime<Utc>,
    request: DeleteRequest<'_>,
) -> Result<Allowed, Refusal> {
    let held: Vec<String> = holds
        .iter()
        .filter(|hold| hold.is_active())
        .map(|hold| hold.name.clone())
        .collect();
    if !held.is_empty() {
        return Err(Refusal::Held { holds: held });
    }
    if now >= retain_until {
        return Ok(Allowed::Expired);
    }
    let until = retain_until;
    match (request, mode) {
        (DeleteRequest::Sweep, _) => Err(Refusal::Retained { until }),
        (DeleteRequest::Admin { .. }, Mode::Compliance) => Err(Refusal::Compliance { until }),
        (
            DeleteRequest::Admin {
                override_retention: true,
                reason,
            },
            Mode::Governance,
        ) if !reason.trim().is_empty() => Ok(Allowed::EarlyOverride),
        (DeleteRequest::Admin { .. }, Mode::Governance) => Err(Refusal::OverrideRequired { until }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::at;
    use crate::{HoldSelector, Release};

    fn hold(name: &str, released: bool) -> Hold {
        Hold {
            name: name.to_string(),
            reason: "litigation 2025-17".to_string(),
            selector: HoldSelector {
                blueprint: Some("checkout-*".to_string()),
                ..HoldSelector::default()
            },
            created_at: at(2025, 6, 1),
            created_by: "legal@example.com".to_string(),
            released: released.then(|| Release {
                at: at(2025, 9, 1),
                by: "legal@example.com".to_string(),
                reason: "settled".to_string(),
            }),
        }
    }

    #[test]
    fn deletion_follows_mode_expiry_and_holds() {
        use DeleteRequest::{Admin, Sweep};
        use Mode::{Compliance, Governance};

        let until = at(2026, 3, 14);
        let (before, after) = (at(2026, 3, 13), at(2026, 3, 15));
        let second_before = until - chrono::Duration::seconds(1);
        let active = hold("matter-17", false);
        let other = hold("matter-18", false);
        let released = hold("matter-1", true);
        let none: &[&Hold] = &[];
        let admin = |override_retention, reason| Admin {
            override_retention,
            reason,
        };
        let held = |names: &[&str]| {
            Err(Refusal::Held {
                holds: names.iter().map(|n| n.to_string()).collect(),
            })
        };
        let cases = [
            // The sweep: only from the retain-until date on.
            (
                Compliance,
                none,
                before,
                Sweep,
                Err(Refusal::Retained { until }),
            ),
            (
                Governance,
                none,
                before,
                Sweep,
                Err(Refusal::Retained { until }),
            ),
            (
                Governance,
                none,
                second_before,
                Sweep,
                Err(Refusal::Retained { until }),
            ),
            (Compliance, none, until, Sweep, Ok(Allowed::Expired)),
            (Governance, none, after, Sweep, Ok(Allowed::Expired)),
            // Admins after expiry: no override or reason needed.
            (
                Compliance,
                none,
                after,
                admin(false, ""),
                Ok(Allowed::Expired),
            ),
            (
                Governance,
                none,
                until,
                admin(false, ""),
                Ok(Allowed::Expired),
            ),
            (
                Governance,
                none,
                after,
                admin(true, "cleanup"),
                Ok(Allowed::Expired),
            ),
            // Compliance: nobody before expiry, override or not.
            (
                Compliance,
                none,
                before,
                admin(false, ""),
                Err(Refusal::Compliance { until }),
            ),
            (
                Compliance,
                none,
                before,
                admin(true, "ticket OPS-12"),
                Err(Refusal::Compliance { until }),
            ),
            // Governance: before expiry only with an override and a reason.
            (
                Governance,
                none,
                before,
                admin(true, "ticket OPS-12"),
                Ok(Allowed::EarlyOverride),
            ),
            (
                Governance,
                none,
                before,
                admin(false, "ticket OPS-12"),
                Err(Refusal::OverrideRequired { until }),
            ),
            (
                Governance,
                none,
                before,
                admin(true, ""),
                Err(Refusal::OverrideRequired { until }),
            ),
            (
                Governance,
                none,
                before,
                admin(true, " \t "),
                Err(Refusal::OverrideRequired { until }),
            ),
            // Holds refuse everyone, in both modes, even after expiry.
            (Compliance, &[&active], after, Sweep, held(&["matter-17"])),
            (Governance, &[&active], after, Sweep, held(&["matter-17"])),
            (
                Governance,
                &[&active],
                before,
                admin(true, "ticket OPS-12"),
                held(&["matter-17"]),
            ),
            (
                Compliance,
                &[&active],
                after,
                admin(true, "x"),
                held(&["matter-17"]),
            ),
            (
                Governance,
                &[&released, &active, &other],
                after,
                admin(false, ""),
                held(&["matter-17", "matter-18"]),
            ),
            // Released holds do not count.
            (Governance, &[&released], after, Sweep, Ok(Allowed::Expired)),
            (Compliance, &[&released], after, Sweep, Ok(Allowed::Expired)),
            (
                Governance,
                &[&released],
                before,
                admin(true, "ticket OPS-12"),
                Ok(Allowed::EarlyOverride),
            ),
            (
                Compliance,
                &[&released],
                before,
                Sweep,
                Err(Refusal::Retained { until }),
            ),
        ];
        for (i, (mode, holds, now, request, expected)) in cases.into_iter().enumerate() {
            assert_eq!(
                may_delete(mode, until, holds, now, request),
                expected,
                "case {i}: {mode} {request:?} at {now}"
            );
        }
    }

    #[test]
    fn refusals_say_what_would_allow_the_deletion() {
        let until = at(2026, 3, 14);
        let cases = [
            (
                Refusal::Held {
                    holds: vec!["matter-17".to_string()],
                },
                "on legal hold 'matter-17': held records cannot be deleted until every hold on \
                 them is released",
            ),
            (
                Refusal::Held {
                    holds: vec!["matter-17".to_string(), "matter-18".to_string()],
                },
                "on legal holds 'matter-17', 'matter-18': held records cannot be deleted until \
                 every hold on them is released",
            ),
            (
                Refusal::Retained { until },
                "retained until 2026-03-14T09:26:53Z",
            ),
            (
                Refusal::Compliance { until },
                "compliance mode: retained until 2026-03-14T09:26:53Z; nobody can delete it \
                 earlier",
            ),
            (
                Refusal::OverrideRequired {
                    until: until + chrono::Duration::milliseconds(250),
                },
                "governance mode: retained until 2026-03-14T09:26:53.250Z; deleting it earlier \
                 needs --override and a non-empty --reason",
            ),
        ];
        for (refusal, expected) in cases {
            assert_eq!(refusal.to_string(), expected);
        }
    }

    #[test]
    fn only_an_override_is_early() {
        assert!(Allowed::EarlyOverride.is_early());
        assert!(!Allowed::Expired.is_early());
    }
}
