//! # evault-retention
//!
//! How long evidence must be kept, and (later) whether a legal hold keeps it longer, as pure
//! decisions. Every function takes the clock as an argument instead of reading it, so a rule
//! can be tested at any instant without sleeping or mocking, and a decision can be replayed when
//! an auditor asks why something was or was not kept.
//!
//! Nothing is deleted here, and nothing here does IO: this crate only answers questions such as
//! "until when must this record be kept?". Acting on the answer (and logging that it did) is the
//! job of `evault-core`, the one place where bytes are written or removed.
//!
//! For now the crate holds the [`RetentionPeriod`] type: a length of time written the way people
//! write it in configuration (`90d`, `12w`, `6mo`, `1y`, `7y`), applied with calendar arithmetic.
//! The default, [`DEFAULT_RETENTION`], is one year, the common floor for SOC 2 evidence.
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use evault_retention::RetentionPeriod;
//!
//! let period: RetentionPeriod = "1y".parse()?;
//! let stored = Utc.with_ymd_and_hms(2025, 3, 14, 9, 26, 53).unwrap();
//! assert_eq!(period.retain_until(stored), Utc.with_ymd_and_hms(2026, 3, 14, 9, 26, 53).unwrap());
//! # Ok::<(), evault_retention::ParsePeriodError>(())
//! ```

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Days, Months, Utc};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The retention period used when none is configured: one year, the usual SOC 2 floor.
pub const DEFAULT_RETENTION: &str = "1y";

/// The longest period accepted when parsing, in years (and the equivalent 36525 days, 5217
/// weeks or 1200 months). Longer values are almost certainly typos (`365y` for `365d`), and the
/// bound keeps every date computation far from chrono's limits.
pub const MAX_YEARS: u32 = 100;
const MAX_DAYS: u32 = 36_525;
const MAX_MONTHS: u32 = MAX_YEARS * 12;

/// How long to keep something, in the unit it was written in.
///
/// Days are exact (24 hours each, as UTC has no daylight saving); months and years follow the
/// calendar, so "1y" from 14 March is 14 March of the next year whatever the leap days in
/// between. Weeks are parsed into days (`12w` is `Days(84)` and displays as `84d`). Periods in
/// different units are never equal (`Months(12)` != `Years(1)`), although they give the same
/// [`retain_until`](RetentionPeriod::retain_until).
///
/// Parses from and serializes to its string form; [`Display`](fmt::Display) gives the canonical
/// form (`90d`, `6mo`, `7y`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetentionPeriod {
    /// A number of days.
    Days(u32),
    /// A number of calendar months.
    Months(u32),
    /// A number of calendar years (twelve months each).
    Years(u32),
}

impl RetentionPeriod {
    /// The instant until which something stored at `from` must be kept.
    ///
    /// Months and years use calendar arithmetic (chrono's `checked_add_months`, a year being
    /// twelve months): when the target month is shorter, the day is clamped to its last day, so
    /// 29 February 2024 plus `1y` is 28 February 2025, and 31 January plus `1mo` is the last
    /// day of February. The time of day is kept.
    ///
    /// Never panics: a result beyond what chrono can represent (only reachable with periods
    /// built directly, far past [`MAX_YEARS`]) saturates to the latest representable instant,
    /// erring on the side of keeping evidence.
    pub fn retain_until(&self, from: DateTime<Utc>) -> DateTime<Utc> {
        let until = match *self {
            RetentionPeriod::Days(n) => from.checked_add_days(Days::new(u64::from(n))),
            RetentionPeriod::Months(n) => from.checked_add_months(Months::new(n)),
            RetentionPeriod::Years(n) => n
                .checked_mul(12)
                .and_then(|months| from.checked_add_months(Months::new(months))),
        };
        until.unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

impl Default for RetentionPeriod {
    /// [`DEFAULT_RETENTION`]: one year.
    fn default() -> RetentionPeriod {
        RetentionPeriod::Years(1)
    }
}

impl fmt::Display for RetentionPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetentionPeriod::Days(n) => write!(f, "{n}d"),
            RetentionPeriod::Months(n) => write!(f, "{n}mo"),
            RetentionPeriod::Years(n) => write!(f, "{n}y"),
        }
    }
}

/// A string that is not a retention period.
///
/// Displays as `invalid retention period '6x': unknown unit "x" (expected a number and a unit:
/// d, w, mo (or m) or y, e.g. 90d, 12w, 6mo, 1y)`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid retention period '{input}': {reason}")]
pub struct ParsePeriodError {
    /// The rejected input, cut to 40 characters.
    pub input: String,
    /// What is wrong with it.
    pub reason: String,
}

const EXPECTED: &str = "expected a number and a unit: d, w, mo (or m) or y, e.g. 90d, 12w, 6mo, 1y";

impl FromStr for RetentionPeriod {
    type Err = ParsePeriodError;

    /// Parses `<number><unit>`: `d` days, `w` weeks (stored as days), `mo` or `m` months, `y`
    /// years; units are case-insensitive, no spaces. The number must be at least 1 and the
    /// period at most [`MAX_YEARS`] years.
    fn from_str(s: &str) -> Result<RetentionPeriod, ParsePeriodError> {
        let fail = |reason: String| ParsePeriodError {
            input: cut(s),
            reason,
        };
        if s.is_empty() {
            return Err(fail(format!("empty; {EXPECTED}")));
        }
        if s.starts_with(['-', '+']) {
            return Err(fail(format!(
                "must be a positive whole number of a unit; {EXPECTED}"
            )));
        }
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (digits, unit) = s.split_at(split);
        if digits.is_empty() {
            return Err(fail(format!("missing number; {EXPECTED}")));
        }
        if unit.is_empty() {
            return Err(fail(format!("missing unit; {EXPECTED}")));
        }
        let too_long = || fail(format!("too long: at most {MAX_YEARS} years"));
        // Any number past u32 is past the bound as well.
        let n: u32 = digits.parse().map_err(|_| too_long())?;
        if n == 0 {
            return Err(fail(
                "must be at least 1 (a zero period would allow immediate deletion)".to_string(),
            ));
        }
        let (period, within) = match unit.to_ascii_lowercase().as_str() {
            "d" => (RetentionPeriod::Days(n), n <= MAX_DAYS),
            "w" => match n.checked_mul(7) {
                Some(days) => (RetentionPeriod::Days(days), days <= MAX_DAYS),
                None => return Err(too_long()),
            },
            "m" | "mo" => (RetentionPeriod::Months(n), n <= MAX_MONTHS),
            "y" => (RetentionPeriod::Years(n), n <= MAX_YEARS),
            _ => {
                return Err(fail(format!("unknown unit \"{}\"; {EXPECTED}", cut(unit))));
            }
        };
        if !within {
            return Err(too_long());
        }
        Ok(period)
    }
}

/// The first 40 characters of an input, for messages.
fn cut(s: &str) -> String {
    const MAX: usize = 40;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", s[..i].escape_debug()),
        None => s.escape_debug().to_string(),
    }
}

impl Serialize for RetentionPeriod {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RetentionPeriod {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RetentionPeriod, D::Error> {
        struct PeriodVisitor;

        impl Visitor<'_> for PeriodVisitor {
            type Value = RetentionPeriod;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a retention period such as \"90d\", \"12w\", \"6mo\" or \"1y\"")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<RetentionPeriod, E> {
                s.parse().map_err(E::custom)
            }
        }

        deserializer.deserialize_str(PeriodVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_matches_the_default_constant() {
        assert_eq!(
            DEFAULT_RETENTION.parse::<RetentionPeriod>().unwrap(),
            RetentionPeriod::default()
        );
    }

    #[test]
    fn long_inputs_are_cut_in_messages() {
        let e = "9".repeat(1000).parse::<RetentionPeriod>().unwrap_err();
        assert!(e.to_string().len() < 200, "{e}");
        assert!(e.input.ends_with('…'));
    }
}
