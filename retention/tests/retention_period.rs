//! Retention periods as operators write them, and the dates they keep evidence until.

use chrono::{DateTime, TimeZone, Utc};
use evault_retention::{DEFAULT_RETENTION, MAX_YEARS, RetentionPeriod};

fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 9, 26, 53).unwrap()
}

#[test]
fn the_usual_spellings_parse() {
    let cases = [
        ("30d", RetentionPeriod::Days(30)),
        ("90d", RetentionPeriod::Days(90)),
        ("12w", RetentionPeriod::Days(84)),
        ("6mo", RetentionPeriod::Months(6)),
        ("6m", RetentionPeriod::Months(6)),
        ("1y", RetentionPeriod::Years(1)),
        ("7y", RetentionPeriod::Years(7)),
        ("7Y", RetentionPeriod::Years(7)),
        ("18MO", RetentionPeriod::Months(18)),
        ("007d", RetentionPeriod::Days(7)),
    ];
    for (text, period) in cases {
        assert_eq!(text.parse::<RetentionPeriod>().unwrap(), period, "{text}");
    }
}

#[test]
fn display_gives_the_canonical_form_which_parses_back() {
    let cases = [
        ("90d", "90d"),
        ("12w", "84d"),
        ("6m", "6mo"),
        ("6MO", "6mo"),
        ("7y", "7y"),
    ];
    for (text, canonical) in cases {
        let p: RetentionPeriod = text.parse().unwrap();
        assert_eq!(p.to_string(), canonical);
        assert_eq!(canonical.parse::<RetentionPeriod>().unwrap(), p);
    }
}

#[test]
fn mistakes_are_refused_with_a_reason() {
    let cases = [
        ("", "empty"),
        ("0d", "at least 1"),
        ("0y", "at least 1"),
        ("-30d", "positive"),
        ("+30d", "positive"),
        ("30", "missing unit"),
        ("d", "missing number"),
        ("30 d", "unknown unit \" d\""),
        ("30x", "unknown unit \"x\""),
        ("30days", "unknown unit \"days\""),
        ("1.5y", "unknown unit \".5y\""),
        ("101y", "at most 100 years"),
        ("1201mo", "at most 100 years"),
        ("36526d", "at most 100 years"),
        ("5218w", "at most 100 years"),
        ("4294967295w", "at most 100 years"),
        ("99999999999999999999d", "at most 100 years"),
    ];
    for (text, why) in cases {
        let e = text.parse::<RetentionPeriod>().unwrap_err();
        assert!(e.reason.contains(why), "{text:?}: {e}");
        assert!(
            e.to_string().starts_with("invalid retention period '"),
            "{e}"
        );
    }
    assert!(format!("{MAX_YEARS}y").parse::<RetentionPeriod>().is_ok());
    assert!("36525d".parse::<RetentionPeriod>().is_ok());
    assert!("1200mo".parse::<RetentionPeriod>().is_ok());
}

#[test]
fn an_unknown_unit_message_says_what_is_expected() {
    let e = "6x".parse::<RetentionPeriod>().unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid retention period '6x': unknown unit \"x\"; expected a number and a unit: \
         d, w, mo (or m) or y, e.g. 90d, 12w, 6mo, 1y"
    );
}

#[test]
fn the_default_is_one_year() {
    assert_eq!(DEFAULT_RETENTION, "1y");
    assert_eq!(RetentionPeriod::default(), RetentionPeriod::Years(1));
    assert_eq!(
        RetentionPeriod::default().retain_until(at(2025, 3, 14)),
        at(2026, 3, 14)
    );
}

#[test]
fn days_and_weeks_are_exact() {
    let p: RetentionPeriod = "90d".parse().unwrap();
    assert_eq!(p.retain_until(at(2025, 1, 1)), at(2025, 4, 1));
    let p: RetentionPeriod = "2w".parse().unwrap();
    assert_eq!(
        p.retain_until(at(2024, 2, 20)),
        at(2024, 3, 5),
        "across a leap day"
    );
}

#[test]
fn months_and_years_follow_the_calendar() {
    let six_months: RetentionPeriod = "6mo".parse().unwrap();
    assert_eq!(six_months.retain_until(at(2025, 3, 14)), at(2025, 9, 14));
    let one_month: RetentionPeriod = "1mo".parse().unwrap();
    assert_eq!(
        one_month.retain_until(at(2025, 1, 31)),
        at(2025, 2, 28),
        "clamped"
    );
    assert_eq!(
        one_month.retain_until(at(2024, 1, 31)),
        at(2024, 2, 29),
        "leap year"
    );
    let seven_years: RetentionPeriod = "7y".parse().unwrap();
    assert_eq!(seven_years.retain_until(at(2025, 3, 14)), at(2032, 3, 14));
    assert_eq!(
        "12mo"
            .parse::<RetentionPeriod>()
            .unwrap()
            .retain_until(at(2025, 3, 14)),
        "1y".parse::<RetentionPeriod>()
            .unwrap()
            .retain_until(at(2025, 3, 14))
    );
}

#[test]
fn a_leap_day_plus_one_year_is_the_last_day_of_february() {
    let p: RetentionPeriod = "1y".parse().unwrap();
    assert_eq!(p.retain_until(at(2024, 2, 29)), at(2025, 2, 28));
    let p: RetentionPeriod = "4y".parse().unwrap();
    assert_eq!(p.retain_until(at(2024, 2, 29)), at(2028, 2, 29));
}

#[test]
fn periods_built_out_of_bounds_saturate_instead_of_panicking() {
    let far = DateTime::<Utc>::MAX_UTC;
    for p in [
        RetentionPeriod::Days(u32::MAX),
        RetentionPeriod::Months(u32::MAX),
        RetentionPeriod::Years(u32::MAX),
        RetentionPeriod::Years(1),
    ] {
        assert_eq!(p.retain_until(far), far, "{p}");
        assert!(p.retain_until(at(2025, 3, 14)) > at(2025, 3, 14), "{p}");
    }
    assert_eq!(
        RetentionPeriod::Days(0).retain_until(at(2025, 3, 14)),
        at(2025, 3, 14)
    );
}

#[test]
fn serde_uses_the_string_form() {
    let p: RetentionPeriod = serde_json::from_str("\"12w\"").unwrap();
    assert_eq!(p, RetentionPeriod::Days(84));
    assert_eq!(serde_json::to_string(&p).unwrap(), "\"84d\"");
    assert_eq!(
        serde_json::to_string(&RetentionPeriod::Years(7)).unwrap(),
        "\"7y\""
    );
    let e = serde_json::from_str::<RetentionPeriod>("\"0d\"").unwrap_err();
    assert!(e.to_string().contains("at least 1"), "{e}");
    let e = serde_json::from_str::<RetentionPeriod>("365").unwrap_err();
    assert!(e.to_string().contains("a retention period such as"), "{e}");
}
