//! A record's retain-until date only ever moves later.

use chrono::{DateTime, Utc};

/// The retain-until date of a record when a policy is applied to it again: the later of the
/// date it has and the date the policy now gives.
///
/// Re-applying a policy never shortens an existing record, in either mode: a record was stored
/// under a promise of how long it would be kept, and in compliance mode that promise is what
/// the auditor relies on. A shorter policy (allowed under governance) applies to records
/// stored from then on; an admin who must delete older records early does so one by one, with
/// an override and a reason (see [`may_delete`](crate::may_delete)).
pub fn extended(old_until: DateTime<Utc>, new_until: DateTime<Utc>) -> DateTime<Utc> {
    old_until.max(new_until)
}

/// The retain-until date of a piece of evidence about a blueprint version, given its own date
/// and the retain-until dates of every deployment record of that version: the latest of them.
///
/// Retention follows the evidence graph: evidence of a deployed version (its SBOMs, scans,
/// provenance, signatures, approvals, gate results and rollback plan) never expires before the
/// deployment record does, or an auditor could find a deployment whose justification is gone.
pub fn graph_retain_until(
    own: DateTime<Utc>,
    deployments: impl IntoIterator<Item = DateTime<Utc>>,
) -> DateTime<Utc> {
    deployments.into_iter().fold(own, DateTime::max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::at;

    #[test]
    fn re_applying_a_policy_never_shortens_a_record() {
        let cases = [
            (at(2032, 3, 14), at(2026, 3, 14), at(2032, 3, 14)),
            (at(2026, 3, 14), at(2032, 3, 14), at(2032, 3, 14)),
            (at(2026, 3, 14), at(2026, 3, 14), at(2026, 3, 14)),
        ];
        for (old, new, expected) in cases {
            assert_eq!(extended(old, new), expected, "{old} then {new}");
        }
    }

    #[test]
    fn evidence_of_a_deployed_version_lives_as_long_as_its_deployments() {
        let own = at(2026, 3, 14);
        let cases = [
            (vec![], own),
            (vec![at(2025, 1, 1)], own),
            (vec![at(2032, 3, 14)], at(2032, 3, 14)),
            (
                vec![at(2030, 1, 1), at(2033, 6, 1), at(2031, 1, 1)],
                at(2033, 6, 1),
            ),
        ];
        for (deployments, expected) in cases {
            assert_eq!(
                graph_retain_until(own, deployments.clone()),
                expected,
                "{deployments:?}"
            );
        }
    }
}
