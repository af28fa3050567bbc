//! Retention periods as people write them in configuration (`90d`, `12w`, `6mo`, `1y`, `7y`),
//! applied with calendar arithmetic, and compared the way retention needs: "is this period
//! never shorter than that one, from whatever instant it starts?"

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

    /// Whether this period keeps evidence at least as long as `other`, from every instant.
    ///
    /// This is the comparison compliance mode needs: a change may not cost a record a single
    /// day, whenever it was stored. Periods in the same unit compare by number (a year being
    /// twelve months). Days against months are compared with the exact range of lengths that
    /// many calendar months can span: `1y` is 365 or 366 days, so `366d` is never shorter
    /// than `1y` while `365d` is (across a 29 February), and `1y` is never shorter than
    /// `365d`.
    pub(crate) fn never_shorter_than(self, other: RetentionPeriod) -> bool {
        match (self.length(), other.length()) {
            (Length::Days(a), Length::Days(b)) | (Length::Months(a), Length::Months(b)) => a >= b,
            (Length::Days(days), Length::Months(months)) => days >= month_span_days(months).1,
            (Length::Months(months), Length::Days(days)) => month_span_days(months).0 >= days,
        }
    }

    fn length(self) -> Length {
        match self {
            RetentionPeriod::Days(n) => Length::Days(u64::from(n)),
            RetentionPeriod::Months(n) => Length::Months(u64::from(n)),
            RetentionPeriod::Years(n) => Length::Months(u64::from(n) * 12),
        }
    }
}

/// A period in the unit its arithmetic is done in.
enum Length {
    Days(u64),
    Months(u64),
}

/// The fewest and the most whole days that `months` calendar months span, over every possible
/// starting day, as [`RetentionPeriod::retain_until`] counts them.
///
/// Starting on day 1 to 28, the span is the sum of the lengths of the `months` months from the
/// starting one. Starting later in the month, the end may be clamped to the last day of a
/// shorter target month, which gives a span between the one from the first of the starting
/// month and the one from the first of the next month (from the last day of a month to the
/// last day of another is the same as from the first of the following month to the first of
/// the month after the other). So the spans from the first of every month are all the bounds
/// need, and the Gregorian calendar repeats every 400 years (4800 months): sliding a window
/// over one cycle sees every case. Beyond [`MAX_YEARS`] (only reachable by building a period
/// directly) the bounds are 28 and 31 days a month, which keeps comparisons conservative.
fn month_span_days(months: u64) -> (u64, u64) {
    const CYCLE: usize = 4800;
    let m = match usize::try_from(months) {
        Ok(m) if months <= u64::from(MAX_MONTHS) => m,
        _ => return (months.saturating_mul(28), months.saturating_mul(31)),
    };
    let len = |i: usize| days_in_month(2000 + i / 12, i % 12 + 1);
    let mut span: u64 = (0..m).map(len).sum();
    let (mut min, mut max) = (span, span);
    for start in 1..CYCLE {
        span = span + len(start - 1 + m) - len(start - 1);
        min = min.min(span);
        max = max.max(span);
    }
    (min, max)
}

fn days_in_month(year: usize, month: usize) -> u64 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
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
    use chrono::{NaiveDate, TimeZone};

    use super::*;

    fn p(text: &str) -> RetentionPeriod {
        text.parse().unwrap()
    }

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

    #[test]
    fn never_shorter_than_holds_from_every_instant() {
        // (period, other, is `period` never shorter than `other`?)
        let cases = [
            ("1y", "1y", true),
            ("12mo", "1y", true),
            ("1y", "12mo", true),
            ("7y", "1y", true),
            ("1y", "7y", false),
            ("11mo", "1y", false),
            ("90d", "90d", true),
            ("89d", "90d", false),
            ("13w", "90d", true),
            ("366d", "1y", true),
            ("365d", "1y", false),
            ("1y", "365d", true),
            ("1y", "366d", false),
            ("31d", "1mo", true),
            ("30d", "1mo", false),
            ("1mo", "28d", true),
            ("1mo", "29d", false),
            ("2mo", "59d", true),
            ("2mo", "60d", false),
            // Seven years hold one or two 29 Februaries, and from 29 February 2096 (2100 is
            // not a leap year) they end on 28 February 2103: 2555 to 2557 days.
            ("2556d", "7y", false),
            ("2557d", "7y", true),
            ("7y", "2555d", true),
            ("7y", "2556d", false),
        ];
        for (period, other, expected) in cases {
            assert_eq!(
                p(period).never_shorter_than(p(other)),
                expected,
                "{period} never shorter than {other}"
            );
        }
    }

    #[test]
    fn month_spans_match_chrono_from_every_day_of_a_400_year_cycle() {
        let first = NaiveDate::from_ymd_opt(2000, 1, 1).unwrap();
        for months in [1u32, 2, 12, 13, 84] {
            let period = RetentionPeriod::Months(months);
            let (mut min, mut max) = (i64::MAX, 0);
            for day in 0..146_097 {
                let from = Utc.from_utc_datetime(&(first + Days::new(day)).into());
                let span = (period.retain_until(from) - from).num_days();
                min = min.min(span);
                max = max.max(span);
            }
            let (lo, hi) = month_span_days(u64::from(months));
            assert_eq!((lo, hi), (min as u64, max as u64), "{months} months");
        }
        assert_eq!(month_span_days(12), (365, 366));
        assert_eq!(month_span_days(84), (2555, 2557));
        assert_eq!(month_span_days(1), (28, 31));
    }

    #[test]
    fn periods_built_past_the_bound_compare_conservatively() {
        let huge = RetentionPeriod::Months(u32::MAX);
        assert!(!RetentionPeriod::Days(u32::MAX).never_shorter_than(huge));
        assert!(huge.never_shorter_than(RetentionPeriod::Days(u32::MAX)));
        assert!(RetentionPeriod::Years(u32::MAX).never_shorter_than(huge));
    }
}
