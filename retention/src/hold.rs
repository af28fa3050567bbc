//! Legal holds: records kept, whatever their retention says, until the hold is released.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::RecordFacts;
use crate::check::{self, glob_matches};

/// The longest hold name: holds are named on the command line (`evault hold release NAME`).
pub const MAX_HOLD_NAME: usize = 64;
/// The longest reason a hold or a release may give, in characters.
pub const MAX_HOLD_REASON: usize = 1000;

/// The shortest git SHA prefix a hold accepts, as git abbreviates them.
const MIN_SHA_PREFIX: usize = 7;
/// The longest git SHA: a SHA-256 repository's commit id.
const MAX_SHA: usize = 64;
/// The shortest record id prefix a hold accepts.
const MIN_RECORD_PREFIX: usize = 8;
/// Why a selector with nothing in it is refused.
const NO_SELECTOR: &str =
    "no selector: give at least one of blueprint, version, git_sha, record, since and until";
/// A record id: 128 bits in hex.
const RECORD_ID: usize = 32;
/// The longest name of who set or released a hold.
const MAX_ACTOR: usize = 256;

/// A legal hold: while it is active, no record its selector matches can be deleted, by the
/// sweep or by anyone, in either mode and whatever the record's retain-until date.
///
/// A hold selects by the facts of records, not by when they were stored: a record pushed after
/// the hold was set is held as well if it matches (litigation covers the matter, not a
/// snapshot). A hold is released rather than deleted, so the record of who held what, and why,
/// stays.
///
/// [`Hold::validate`] checks a hold before it is set. Deserializing does not validate: a stored
/// hold must stay readable, and keep holding, even if a later version checks more strictly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hold {
    /// The hold's name, unique in the vault: 1 to [`MAX_HOLD_NAME`] characters among letters,
    /// digits, `.`, `_` and `-` (see [`validate_hold_name`]).
    pub name: String,
    /// Why the evidence is held: the matter, the ticket, the request.
    pub reason: String,
    /// Which records are held.
    pub selector: HoldSelector,
    /// When the hold was set.
    pub created_at: DateTime<Utc>,
    /// Who set it.
    pub created_by: String,
    /// The release, once the hold is released; `None` while it is active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released: Option<Release>,
}

/// The release of a [`Hold`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    /// When the hold was released.
    pub at: DateTime<Utc>,
    /// Who released it.
    pub by: String,
    /// Why: the matter closed, the request withdrawn.
    pub reason: String,
}

/// Which records a [`Hold`] applies to: those matching every selector given.
///
/// At least one selector is required (see [`HoldSelector::validate`]): a hold on the whole
/// vault is a mistake more often than not, and `since` alone covers the real case of "keep
/// everything from this date".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldSelector {
    /// The blueprint name, or a pattern where `*` matches any run of characters
    /// (`checkout-*`); case-sensitive, like blueprint names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blueprint: Option<String>,
    /// The blueprint version, exact. Requires `blueprint`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The git commit id, or a prefix of at least 7 hex characters; any case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_sha: Option<String>,
    /// The record id, or a prefix of at least 8 hex characters; any case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    /// Records stored at or after this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    /// Records stored before this instant (exclusive, so consecutive windows do not overlap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
}

impl HoldSelector {
    /// Checks that the selector selects something, sensibly. The message names the field:
    /// `version: needs blueprint as well ...`, `git_sha: 'abc' is too short ...`.
    ///
    /// Requires at least one selector; `version` only with `blueprint` (versions are per
    /// blueprint); `since` before `until`; a valid blueprint pattern (`*` the only wildcard);
    /// a version as `evault-schema` accepts them; git SHAs and record ids in hex, whole or as
    /// prefixes of at least 7 and 8 characters.
    pub fn validate(&self) -> Result<(), String> {
        if *self == HoldSelector::default() {
            return Err(NO_SELECTOR.to_string());
        }
        let field = |name: &'static str| move |reason: String| format!("{name}: {reason}");
        if let Some(pattern) = &self.blueprint {
            check::pattern(pattern).map_err(field("blueprint"))?;
        }
        if let Some(version) = &self.version {
            check::version(version).map_err(field("version"))?;
            if self.blueprint.is_none() {
                return Err("version: needs blueprint as well (versions are per blueprint)".into());
            }
        }
        if let Some(sha) = &self.git_sha {
            check::hex_prefix(sha, MIN_SHA_PREFIX, MAX_SHA, "git SHA").map_err(field("git_sha"))?;
        }
        if let Some(record) = &self.record {
            check::hex_prefix(record, MIN_RECORD_PREFIX, RECORD_ID, "record id")
                .map_err(field("record"))?;
        }
        if let (Some(since), Some(until)) = (self.since, self.until)
            && since >= until
        {
            return Err(format!(
                "since: {} is not before until {}: no record would be held",
                time(since),
                time(until)
            ));
        }
        Ok(())
    }

    /// Whether a record with these facts is selected by every selector given (an empty
    /// selector, which [`HoldSelector::validate`] refuses, matches every record).
    pub fn matches(&self, facts: &RecordFacts<'_>) -> bool {
        self.blueprint
            .as_deref()
            .is_none_or(|pattern| glob_matches(pattern, facts.blueprint))
            && self.version.as_deref().is_none_or(|v| v == facts.version)
            && self
                .git_sha
                .as_deref()
                .is_none_or(|prefix| has_hex_prefix(facts.git_sha, prefix))
            && self
                .record
                .as_deref()
                .is_none_or(|prefix| has_hex_prefix(facts.record_id, prefix))
            && self.since.is_none_or(|since| facts.ingested_at >= since)
            && self.until.is_none_or(|until| facts.ingested_at < until)
    }
}

/// An instant in messages: `2025-03-14T09:26:53Z`.
fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Whether `id` starts with `prefix`, ignoring ASCII case.
fn has_hex_prefix(id: &str, prefix: &str) -> bool {
    id.as_bytes()
        .get(..prefix.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(prefix.as_bytes()))
}

impl Hold {
    /// Whether the hold still holds: it has not been released.
    pub fn is_active(&self) -> bool {
        self.released.is_none()
    }

    /// Checks the whole hold: its name, a reason and who set it, its selector, and a release
    /// that gives who and why and does not predate the hold. The message names the field.
    pub fn validate(&self) -> Result<(), String> {
        validate_hold_name(&self.name).map_err(|reason| format!("name: {reason}"))?;
        check::text(&self.reason, MAX_HOLD_REASON).map_err(|r| format!("reason: {r}"))?;
        check::text(&self.created_by, MAX_ACTOR).map_err(|r| format!("created_by: {r}"))?;
        self.selector.validate()?;
        if let Some(release) = &self.released {
            check::text(&release.by, MAX_ACTOR).map_err(|r| format!("released.by: {r}"))?;
            check::text(&release.reason, MAX_HOLD_REASON)
                .map_err(|r| format!("released.reason: {r}"))?;
            if release.at < self.created_at {
                return Err(format!(
                    "released.at: {} is before the hold was created ({})",
                    time(release.at),
                    time(self.created_at)
                ));
            }
        }
        Ok(())
    }
}

/// Checks a hold name: 1 to [`MAX_HOLD_NAME`] characters among ASCII letters, digits, `.`, `_`
/// and `-`, so that it can be typed on a command line and appear in a URL unquoted.
pub fn validate_hold_name(name: &str) -> Result<(), String> {
    check::shape(
        name,
        MAX_HOLD_NAME,
        |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'),
        "hold names use letters, digits, '.', '_' and '-'",
    )
}

/// Checks the reason given for a hold, a release or a deletion: not blank, one line, at most
/// [`MAX_HOLD_REASON`] characters.
pub fn validate_reason(reason: &str) -> Result<(), String> {
    check::text(reason, MAX_HOLD_REASON)
}

/// The active holds among `holds` that match a record with these facts, in the order given.
/// A record with any is held: see [`may_delete`](crate::may_delete).
pub fn holds_on<'h>(holds: &'h [Hold], facts: &RecordFacts<'_>) -> Vec<&'h Hold> {
    holds
        .iter()
        .filter(|hold| hold.is_active() && hold.selector.matches(facts))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{RECORD, SHA, at, facts};

    fn hold(name: &str, selector: HoldSelector) -> Hold {
        Hold {
            name: name.to_string(),
            reason: "litigation 2025-17".to_string(),
            selector,
            created_at: at(2025, 6, 1),
            created_by: "legal@example.com".to_string(),
            released: None,
        }
    }

    fn release() -> Release {
        Release {
            at: at(2025, 9, 1),
            by: "legal@example.com".to_string(),
            reason: "settled".to_string(),
        }
    }

    fn s(value: &str) -> Option<String> {
        Some(value.to_string())
    }

    #[test]
    fn selectors_match_records_by_their_facts() {
        let sel = HoldSelector::default;
        let cases = [
            // Each selector alone.
            (
                HoldSelector {
                    blueprint: s("checkout-api"),
                    ..sel()
                },
                true,
            ),
            (
                HoldSelector {
                    blueprint: s("checkout-*"),
                    ..sel()
                },
                true,
            ),
            (
                HoldSelector {
                    blueprint: s("payments-*"),
                    ..sel()
                },
                false,
            ),
            (
                HoldSelector {
                    git_sha: s(SHA),
                    ..sel()
                },
                true,
            ),
            (
                HoldSelector {
                    git_sha: s("4f1c0d2"),
                    ..sel()
                },
                true,
            ),
            (
                HoldSelector {
                    git_sha: s("4F1C0D2B9A"),
                    ..sel()
                },
                true,
            ),
            (
                HoldSelector {
                    git_sha: s("4f1c0d3"),
                    ..sel()
                },
                false,
            ),
            (
                HoldSelector {
                    git_sha: s(&format!("{SHA}00")),
                    ..sel()
                },
                false,
            ),
            (
                HoldSelector {
                    record: s(RECORD),
                    ..sel()
                },
                true,
            ),
            (
                HoldSelector {
                    record: s("9B2E4C6A"),
                    ..sel()
                },
                true,
            ),
            (
                HoldSelector {
                    record: s("9b2e4c6b"),
                    ..sel()
                },
                false,
            ),
            // The window is [since, until): the record was stored on 14 March 2025.
            (
                HoldSelector {
                    since: Some(at(2025, 3, 14)),
                    ..sel()
                },
                true,
            ),
            (
                HoldSelector {
                    since: Some(at(2025, 3, 14) + chrono::Duration::seconds(1)),
                    ..sel()
                },
                false,
            ),
            (
                HoldSelector {
                    until: Some(at(2025, 3, 14)),
                    ..sel()
                },
                false,
            ),
            (
                HoldSelector {
                    until: Some(at(2025, 3, 14) + chrono::Duration::seconds(1)),
                    ..sel()
                },
                true,
            ),
            // Combinations: every selector given must match.
            (
                HoldSelector {
                    blueprint: s("checkout-api"),
                    version: s("1.4.2"),
                    ..sel()
                },
                true,
            ),
            (
                HoldSelector {
                    blueprint: s("checkout-api"),
                    version: s("1.4.3"),
                    ..sel()
                },
                false,
            ),
            (
                HoldSelector {
                    blueprint: s("payments-api"),
                    version: s("1.4.2"),
                    ..sel()
                },
                false,
            ),
            (
                HoldSelector {
                    blueprint: s("checkout-*"),
                    git_sha: s("4f1c0d2"),
                    since: Some(at(2025, 1, 1)),
                    until: Some(at(2025, 4, 1)),
                    ..sel()
                },
                true,
            ),
            (
                HoldSelector {
                    blueprint: s("checkout-*"),
                    git_sha: s("4f1c0d2"),
                    since: Some(at(2025, 1, 1)),
                    until: Some(at(2025, 3, 1)),
                    ..sel()
                },
                false,
            ),
            (
                HoldSelector {
                    blueprint: s("checkout-*"),
                    record: s("00000000"),
                    ..sel()
                },
                false,
            ),
        ];
        for (i, (selector, expected)) in cases.into_iter().enumerate() {
            selector.validate().unwrap();
            assert_eq!(
                selector.matches(&facts()),
                expected,
                "case {i}: {selector:?}"
            );
        }
    }

    #[test]
    fn a_hold_catches_records_stored_after_it_was_set() {
        let h = hold(
            "checkout-audit",
            HoldSelector {
                blueprint: s("checkout-*"),
                ..HoldSelector::default()
            },
        );
        let later = RecordFacts {
            ingested_at: at(2026, 1, 1),
            ..facts()
        };
        assert!(later.ingested_at > h.created_at);
        assert_eq!(holds_on(std::slice::from_ref(&h), &later), vec![&h]);
    }

    #[test]
    fn holds_on_gives_the_active_matching_holds_in_order() {
        let by_blueprint = |name: &str, pattern: &str| {
            hold(
                name,
                HoldSelector {
                    blueprint: s(pattern),
                    ..HoldSelector::default()
                },
            )
        };
        let released = Hold {
            released: Some(release()),
            ..by_blueprint("released", "checkout-*")
        };
        let holds = [
            by_blueprint("b", "checkout-api"),
            by_blueprint("other", "payments-*"),
            released,
            by_blueprint("a", "*"),
        ];
        let names: Vec<_> = holds_on(&holds, &facts())
            .iter()
            .map(|h| h.name.as_str())
            .collect();
        assert_eq!(names, ["b", "a"]);
        assert!(!holds[2].is_active());
        assert!(holds[0].is_active());
    }

    #[test]
    fn selector_mistakes_are_named() {
        let sel = HoldSelector::default;
        let cases = [
            (
                sel(),
                "no selector: give at least one of blueprint, version, git_sha, record, since and \
                 until",
            ),
            (
                HoldSelector {
                    version: s("1.4.2"),
                    ..sel()
                },
                "version: needs blueprint as well (versions are per blueprint)",
            ),
            (
                HoldSelector {
                    blueprint: s("checkout api"),
                    ..sel()
                },
                "blueprint: character ' ' at byte 8 is not allowed: blueprint names use letters, \
                 digits, '.', '_' and '-', and '*' is the only wildcard",
            ),
            (
                HoldSelector {
                    blueprint: s(""),
                    ..sel()
                },
                "blueprint: must not be empty",
            ),
            (
                HoldSelector {
                    blueprint: s("checkout-api"),
                    version: s("1.4 2"),
                    ..sel()
                },
                "version: character ' ' at byte 3 is not allowed: versions are printable ASCII \
                 without spaces",
            ),
            (
                HoldSelector {
                    git_sha: s("4f1c0d"),
                    ..sel()
                },
                "git_sha: '4f1c0d' is too short: give the full git SHA or a prefix of at least 7 \
                 hex characters",
            ),
            (
                HoldSelector {
                    git_sha: s("main"),
                    ..sel()
                },
                "git_sha: character 'm' at byte 0 is not allowed: it must be hexadecimal",
            ),
            (
                HoldSelector {
                    git_sha: s(&"a".repeat(65)),
                    ..sel()
                },
                "git_sha: 65 characters is too long: at most 64 are allowed",
            ),
            (
                HoldSelector {
                    record: s("9b2e4c6"),
                    ..sel()
                },
                "record: '9b2e4c6' is too short: give the full record id or a prefix of at least \
                 8 hex characters",
            ),
            (
                HoldSelector {
                    record: s(&format!("{RECORD}0")),
                    ..sel()
                },
                "record: 33 characters is too long: at most 32 are allowed",
            ),
            (
                HoldSelector {
                    since: Some(at(2025, 3, 14)),
                    until: Some(at(2025, 3, 14)),
                    ..sel()
                },
                "since: 2025-03-14T09:26:53Z is not before until 2025-03-14T09:26:53Z: \
                 no record would be held",
            ),
        ];
        for (selector, expected) in cases {
            assert_eq!(
                selector.validate(),
                Err(expected.to_string()),
                "{selector:?}"
            );
        }
        let only_since = HoldSelector {
            since: Some(at(2025, 1, 1)),
            ..sel()
        };
        assert_eq!(only_since.validate(), Ok(()));
    }

    #[test]
    fn hold_names_are_command_line_words() {
        let cases = [
            ("litigation-2025.17_a", Ok(())),
            ("x", Ok(())),
            (&*"n".repeat(64), Ok(())),
            ("", Err("must not be empty".to_string())),
            (
                &*"n".repeat(65),
                Err("65 characters is too long: at most 64 are allowed".to_string()),
            ),
            (
                "case 17",
                Err(
                    "character ' ' at byte 4 is not allowed: hold names use letters, digits, '.', \
                     '_' and '-'"
                        .to_string(),
                ),
            ),
            (
                "affaire-é",
                Err(
                    "character 'é' at byte 8 is not allowed: hold names use letters, digits, '.', \
                     '_' and '-'"
                        .to_string(),
                ),
            ),
        ];
        for (name, expected) in cases {
            assert_eq!(validate_hold_name(name), expected, "{name:?}");
        }
    }

    #[test]
    fn holds_are_checked_whole() {
        let valid = || {
            hold(
                "matter-17",
                HoldSelector {
                    blueprint: s("checkout-api"),
                    ..HoldSelector::default()
                },
            )
        };
        let cases = [
            (valid(), Ok(())),
            (
                Hold {
                    released: Some(release()),
                    ..valid()
                },
                Ok(()),
            ),
            (
                Hold {
                    name: "matter 17".to_string(),
                    ..valid()
                },
                Err(
                    "name: character ' ' at byte 6 is not allowed: hold names use letters, \
                     digits, '.', '_' and '-'",
                ),
            ),
            (
                Hold {
                    reason: " ".to_string(),
                    ..valid()
                },
                Err("reason: must not be empty"),
            ),
            (
                Hold {
                    created_by: String::new(),
                    ..valid()
                },
                Err("created_by: must not be empty"),
            ),
            (
                Hold {
                    selector: HoldSelector::default(),
                    ..valid()
                },
                Err(
                    "no selector: give at least one of blueprint, version, git_sha, record, \
                     since and until",
                ),
            ),
            (
                Hold {
                    released: Some(Release {
                        reason: String::new(),
                        ..release()
                    }),
                    ..valid()
                },
                Err("released.reason: must not be empty"),
            ),
            (
                Hold {
                    released: Some(Release {
                        at: at(2025, 5, 31),
                        ..release()
                    }),
                    ..valid()
                },
                Err(
                    "released.at: 2025-05-31T09:26:53Z is before the hold was created \
                     (2025-06-01T09:26:53Z)",
                ),
            ),
        ];
        for (i, (h, expected)) in cases.into_iter().enumerate() {
            assert_eq!(h.validate(), expected.map_err(str::to_string), "case {i}");
        }
    }

    #[test]
    fn holds_serialize_without_the_selectors_they_do_not_give() {
        let h = Hold {
            released: Some(release()),
            ..hold(
                "matter-17",
                HoldSelector {
                    git_sha: s("4f1c0d2"),
                    ..HoldSelector::default()
                },
            )
        };
        let json = serde_json::to_value(&h).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "name": "matter-17",
                "reason": "litigation 2025-17",
                "selector": { "git_sha": "4f1c0d2" },
                "created_at": "2025-06-01T09:26:53Z",
                "created_by": "legal@example.com",
                "released": {
                    "at": "2025-09-01T09:26:53Z",
                    "by": "legal@example.com",
                    "reason": "settled"
                }
            })
        );
        assert_eq!(serde_json::from_value::<Hold>(json).unwrap(), h);
    }
}
