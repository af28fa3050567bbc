//! Validation of the values that link evidence together: git SHAs, artifact digests, blueprint
//! names and versions, environments, run ids, repositories, actors and timestamps.
//!
//! These values are the join keys of the vault: an auditor asks "show me everything for
//! `checkout-api` 1.4.2 in `production`", and the answer is only complete if every piece of
//! evidence spelled those values the same way. So every entry point (CLI flags, REST fields,
//! bundle manifests, evault's own documents) runs its values through these functions, which
//! either reject a value with a message naming what is wrong, or return its one normalized
//! spelling (lowercase hex for SHAs and digests; everything else is returned unchanged, because
//! names are case-sensitive in the systems they come from).
//!
//! The functions are pure and bounded: each has a maximum length, and nothing here allocates
//! more than a copy of its input.

use chrono::{DateTime, NaiveDate, Utc};

/// How many characters of a rejected value an error message repeats. Values come from users
/// and pipelines; messages end up in logs and HTTP responses, so they must stay short.
pub const EXCERPT_CHARS: usize = 80;

/// Maximum length of a blueprint name, in characters.
pub const MAX_BLUEPRINT_NAME: usize = 128;
/// Maximum length of a version, in characters.
pub const MAX_VERSION: usize = 128;
/// Maximum length of an environment name, in characters.
pub const MAX_ENVIRONMENT: usize = 64;
/// Maximum length of a CI run id, in characters.
pub const MAX_RUN_ID: usize = 256;
/// Maximum length of a repository locator, in characters.
pub const MAX_REPO: usize = 2048;
/// Maximum length of an actor (person, service account or token name), in characters.
pub const MAX_ACTOR: usize = 256;
/// Maximum length of a path inside a bundle, in bytes (Linux's `PATH_MAX`).
pub const MAX_BUNDLE_PATH: usize = 4096;

/// A value that is not acceptable where it was given.
///
/// Displays as `invalid git_sha 'xyz': expected 40 or 64 hexadecimal characters`; the value is
/// cut to [`EXCERPT_CHARS`] characters and control characters are escaped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field} '{value}': {reason}")]
pub struct ValueError {
    /// What kind of value was expected, e.g. `git_sha`, `digest`, `environment`.
    pub field: &'static str,
    /// The rejected value, already cut with [`excerpt`].
    pub value: String,
    /// What is wrong with it and what is expected instead.
    pub reason: String,
}

impl ValueError {
    /// Builds an error for `value`, cutting it for display.
    pub fn new(field: &'static str, value: &str, reason: impl Into<String>) -> ValueError {
        ValueError {
            field,
            value: excerpt(value),
            reason: reason.into(),
        }
    }
}

/// The first [`EXCERPT_CHARS`] characters of `s`, with control characters escaped and `…`
/// appended when something was cut: safe to put in a one-line message.
pub fn excerpt(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == EXCERPT_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A character for a message: printable characters as themselves, others escaped.
fn show(c: char) -> String {
    if c.is_control() || c.is_whitespace() {
        c.escape_default().to_string()
    } else {
        c.to_string()
    }
}

/// Checks the length in characters against `1..=max`.
fn check_len(field: &'static str, s: &str, max: usize) -> Result<(), ValueError> {
    if s.is_empty() {
        return Err(ValueError::new(field, s, "must not be empty"));
    }
    let n = s.chars().count();
    if n > max {
        return Err(ValueError::new(
            field,
            s,
            format!("too long: {n} characters, at most {max} allowed"),
        ));
    }
    Ok(())
}

/// Rejects control characters (newlines, tabs, NUL, ...) anywhere in the value.
fn no_control(field: &'static str, s: &str) -> Result<(), ValueError> {
    if let Some((i, c)) = s.char_indices().find(|(_, c)| c.is_control()) {
        return Err(ValueError::new(
            field,
            s,
            format!("control character '{}' at byte {i} is not allowed", show(c)),
        ));
    }
    Ok(())
}

/// Rejects values that are only whitespace: they look filled in but identify nothing.
fn not_blank(field: &'static str, s: &str) -> Result<(), ValueError> {
    if s.trim().is_empty() {
        return Err(ValueError::new(field, s, "must not be blank"));
    }
    Ok(())
}

/// Checks the `[A-Za-z0-9][A-Za-z0-9._-]*` shape shared by blueprint names and environments.
fn identifier(field: &'static str, s: &str, max: usize) -> Result<String, ValueError> {
    check_len(field, s, max)?;
    let mut chars = s.char_indices();
    if let Some((_, first)) = chars.next()
        && !first.is_ascii_alphanumeric()
    {
        return Err(ValueError::new(
            field,
            s,
            format!("must start with a letter or digit, not '{}'", show(first)),
        ));
    }
    if let Some((i, c)) =
        chars.find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(ValueError::new(
            field,
            s,
            format!(
                "character '{}' at byte {i} is not allowed (use letters, digits, '.', '_' and '-')",
                show(c)
            ),
        ));
    }
    Ok(s.to_string())
}

/// Finds the first non-hexadecimal character, for messages.
fn first_non_hex(s: &str) -> Option<(usize, char)> {
    s.char_indices().find(|(_, c)| !c.is_ascii_hexdigit())
}

/// A git commit id: 40 (SHA-1) or 64 (SHA-256 repositories) hexadecimal characters,
/// returned in lowercase so that `git rev-parse` output and web UI copies compare equal.
/// Abbreviated SHAs are refused: they stop being unique as a repository grows.
pub fn git_sha(s: &str) -> Result<String, ValueError> {
    const FIELD: &str = "git_sha";
    const EXPECTED: &str = "expected 40 or 64 hexadecimal characters";
    if let Some((i, c)) = first_non_hex(s) {
        return Err(ValueError::new(
            FIELD,
            s,
            format!(
                "{EXPECTED}, found non-hexadecimal character '{}' at byte {i}",
                show(c)
            ),
        ));
    }
    if s.len() != 40 && s.len() != 64 {
        return Err(ValueError::new(
            FIELD,
            s,
            format!("{EXPECTED}, found {}", s.len()),
        ));
    }
    Ok(s.to_ascii_lowercase())
}

/// A content digest as evault and OCI registries write it: `sha256:` followed by 64 hexadecimal
/// characters. Uppercase hex and an uppercase `SHA256:` prefix are accepted and normalized to
/// lowercase, the one spelling the vault stores and compares.
pub fn digest(s: &str) -> Result<String, ValueError> {
    const FIELD: &str = "digest";
    const PREFIX: &str = "sha256:";
    let Some((algorithm, hex)) = s.split_once(':') else {
        let reason = if s.len() == 64 && first_non_hex(s).is_none() {
            "missing \"sha256:\" prefix".to_string()
        } else {
            "expected \"sha256:\" followed by 64 hexadecimal characters".to_string()
        };
        return Err(ValueError::new(FIELD, s, reason));
    };
    if !algorithm.eq_ignore_ascii_case("sha256") {
        return Err(ValueError::new(
            FIELD,
            s,
            format!(
                "unsupported algorithm '{}', expected \"sha256:\" followed by 64 hexadecimal characters",
                excerpt(algorithm)
            ),
        ));
    }
    if let Some((i, c)) = first_non_hex(hex) {
        return Err(ValueError::new(
            FIELD,
            s,
            format!(
                "non-hexadecimal character '{}' at byte {} after \"sha256:\"",
                show(c),
                i
            ),
        ));
    }
    if hex.len() != 64 {
        return Err(ValueError::new(
            FIELD,
            s,
            format!(
                "wrong length: {} hexadecimal characters after \"sha256:\", expected 64",
                hex.len()
            ),
        ));
    }
    Ok(format!("{PREFIX}{}", hex.to_ascii_lowercase()))
}

/// The name of a blueprint (the versioned definition of a service or agent), e.g.
/// `checkout-api` or `payments.ledger`: 1 to 128 characters, letters, digits, `.`, `_` and `-`,
/// starting with a letter or digit. Case is kept: names are compared exactly.
pub fn blueprint_name(s: &str) -> Result<String, ValueError> {
    identifier("blueprint name", s, MAX_BLUEPRINT_NAME)
}

/// A version of a blueprint. Teams use semver, calver, build numbers and suffixes such as
/// `1.4.2+build.7`, so any printable ASCII is allowed; whitespace and control characters are not,
/// because versions appear in paths, URLs and shell commands.
pub fn version(s: &str) -> Result<String, ValueError> {
    const FIELD: &str = "version";
    check_len(FIELD, s, MAX_VERSION)?;
    if let Some((i, c)) = s.char_indices().find(|(_, c)| !c.is_ascii_graphic()) {
        return Err(ValueError::new(
            FIELD,
            s,
            format!(
                "character '{}' at byte {i} is not allowed (printable ASCII without spaces only)",
                show(c)
            ),
        ));
    }
    Ok(s.to_string())
}

/// A deployment environment, e.g. `production`, `staging`, `eu-west-1.prod`: 1 to 64 characters,
/// letters, digits, `.`, `_` and `-`, starting with a letter or digit.
pub fn environment(s: &str) -> Result<String, ValueError> {
    identifier("environment", s, MAX_ENVIRONMENT)
}

/// A CI run id (GitHub Actions run id, GitLab pipeline id, Jenkins build tag, ...): 1 to 256
/// characters without control characters. CI systems disagree on the shape, so nothing more is
/// assumed.
pub fn run_id(s: &str) -> Result<String, ValueError> {
    const FIELD: &str = "run_id";
    check_len(FIELD, s, MAX_RUN_ID)?;
    no_control(FIELD, s)?;
    not_blank(FIELD, s)?;
    Ok(s.to_string())
}

/// A source repository locator, e.g. `https://github.com/acme/checkout-api` or
/// `git@github.com:acme/checkout-api.git`: 1 to 2048 characters without whitespace or control
/// characters. It is kept as given; evault does not fetch it.
pub fn repo(s: &str) -> Result<String, ValueError> {
    const FIELD: &str = "repo";
    check_len(FIELD, s, MAX_REPO)?;
    if let Some((i, c)) = s
        .char_indices()
        .find(|(_, c)| c.is_whitespace() || c.is_control())
    {
        return Err(ValueError::new(
            FIELD,
            s,
            format!(
                "whitespace or control character '{}' at byte {i} is not allowed",
                show(c)
            ),
        ));
    }
    Ok(s.to_string())
}

/// Who did something: a person (`alice@acme.example`), a service account or a token name.
/// 1 to 256 characters without control characters, not blank.
pub fn actor(s: &str) -> Result<String, ValueError> {
    const FIELD: &str = "actor";
    check_len(FIELD, s, MAX_ACTOR)?;
    no_control(FIELD, s)?;
    not_blank(FIELD, s)?;
    Ok(s.to_string())
}

/// A point in time: an RFC 3339 timestamp (`2025-03-14T09:26:53Z`, any offset, converted to
/// UTC) or a bare date `YYYY-MM-DD`, read as midnight UTC, which is what people type for
/// `--since` and expiry dates.
pub fn rfc3339(s: &str) -> Result<DateTime<Utc>, ValueError> {
    const FIELD: &str = "timestamp";
    const EXPECTED: &str =
        "expected an RFC 3339 timestamp such as 2025-03-14T09:26:53Z or a date such as 2025-03-14";
    if s.is_empty() {
        return Err(ValueError::new(FIELD, s, format!("empty, {EXPECTED}")));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if s.len() == 10
        && let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d")
    {
        return Ok(d.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    Err(ValueError::new(FIELD, s, EXPECTED))
}

/// A file's path inside an evidence bundle, as a bundle manifest names it: relative,
/// `/`-separated, without empty, `.` or `..` segments, backslashes or control characters, at most
/// [`MAX_BUNDLE_PATH`] bytes.
///
/// The rules exist so that a path means the same file on every platform and can never point
/// outside the bundle (`../etc/passwd`, `/etc/passwd`, `..\..\x` on Windows), and so that
/// two spellings of one file (`a//b`, `./a/b`) cannot both be listed. Returned unchanged.
pub fn bundle_path(s: &str) -> Result<String, ValueError> {
    const FIELD: &str = "path";
    if s.is_empty() {
        return Err(ValueError::new(FIELD, s, "must not be empty"));
    }
    if s.len() > MAX_BUNDLE_PATH {
        return Err(ValueError::new(
            FIELD,
            s,
            format!(
                "too long: {} bytes, at most {MAX_BUNDLE_PATH} allowed",
                s.len()
            ),
        ));
    }
    no_control(FIELD, s)?;
    if let Some(i) = s.find('\\') {
        return Err(ValueError::new(
            FIELD,
            s,
            format!("backslash at byte {i} is not allowed; separate directories with '/'"),
        ));
    }
    if s.starts_with('/') {
        return Err(ValueError::new(
            FIELD,
            s,
            "must be relative to the bundle root, not start with '/'",
        ));
    }
    for segment in s.split('/') {
        let problem = match segment {
            "" => "empty path segment (doubled or trailing '/') is not allowed",
            "." => "'.' path segment is not allowed",
            ".." => "'..' path segment is not allowed: paths must stay inside the bundle",
            _ => continue,
        };
        return Err(ValueError::new(FIELD, s, problem));
    }
    Ok(s.to_string())
}

/// Formats a list of names as `"a", "b" or "c"` for messages.
pub(crate) fn quoted_list(names: &[&str]) -> String {
    let mut out = String::new();
    for (i, n) in names.iter().enumerate() {
        if i > 0 {
            out.push_str(if i + 1 == names.len() { " or " } else { ", " });
        }
        out.push('"');
        out.push_str(n);
        out.push('"');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA1: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b";
    const SHA256: &str = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

    #[test]
    fn git_sha_accepts_sha1_and_sha256_and_lowercases() {
        assert_eq!(git_sha(SHA1).unwrap(), SHA1);
        assert_eq!(git_sha(SHA256).unwrap(), SHA256);
        assert_eq!(git_sha(&SHA1.to_uppercase()).unwrap(), SHA1);
    }

    #[test]
    fn git_sha_rejects_short_long_and_non_hex() {
        let e = git_sha("xyz").unwrap_err();
        assert_eq!(e.field, "git_sha");
        assert!(
            e.to_string()
                .starts_with("invalid git_sha 'xyz': expected 40 or 64 hexadecimal characters"),
            "{e}"
        );
        let e = git_sha("9f86d08").unwrap_err();
        assert!(e.reason.contains("found 7"), "{e}");
        let e = git_sha(&format!("{SHA1}0")).unwrap_err();
        assert!(e.reason.contains("found 41"), "{e}");
        let e = git_sha(&SHA1.replace('9', "g")).unwrap_err();
        assert!(e.reason.contains("'g' at byte 0"), "{e}");
        assert!(git_sha("").is_err());
        assert!(git_sha(&format!("{SHA1}\n")).is_err());
    }

    #[test]
    fn digest_accepts_and_normalizes() {
        let d = format!("sha256:{SHA256}");
        assert_eq!(digest(&d).unwrap(), d);
        assert_eq!(
            digest(&format!("SHA256:{}", SHA256.to_uppercase())).unwrap(),
            d
        );
        assert_eq!(
            digest(&format!("sha256:{}", SHA256.to_uppercase())).unwrap(),
            d
        );
    }

    #[test]
    fn digest_names_what_is_wrong() {
        assert!(
            digest(SHA256)
                .unwrap_err()
                .reason
                .contains("missing \"sha256:\" prefix")
        );
        let e = digest(&format!("sha512:{SHA256}")).unwrap_err();
        assert!(e.reason.contains("unsupported algorithm 'sha512'"), "{e}");
        let e = digest("sha256:abc").unwrap_err();
        assert!(e.reason.contains("wrong length: 3"), "{e}");
        let e = digest(&format!("sha256:{}", SHA256.replace('c', "z"))).unwrap_err();
        assert!(
            e.reason
                .contains("non-hexadecimal character 'z' at byte 1 after"),
            "{e}"
        );
        assert!(digest("").is_err());
        assert!(
            digest("nonsense")
                .unwrap_err()
                .reason
                .contains("expected \"sha256:\"")
        );
    }

    #[test]
    fn blueprint_names() {
        for ok in ["checkout-api", "payments.ledger", "a", "A_1", "9lives"] {
            assert_eq!(blueprint_name(ok).unwrap(), ok);
        }
        assert!(blueprint_name("").unwrap_err().reason.contains("empty"));
        assert!(
            blueprint_name("-x")
                .unwrap_err()
                .reason
                .contains("start with")
        );
        assert!(blueprint_name(".x").is_err());
        let e = blueprint_name("checkout api").unwrap_err();
        assert!(
            e.reason.contains("' ' at byte 8") || e.reason.contains("'\\u{20}'"),
            "{e}"
        );
        assert!(blueprint_name("a/b").is_err());
        assert!(blueprint_name("café").is_err());
        assert!(blueprint_name(&"a".repeat(128)).is_ok());
        assert!(
            blueprint_name(&"a".repeat(129))
                .unwrap_err()
                .reason
                .contains("too long")
        );
    }

    #[test]
    fn versions() {
        for ok in [
            "1.4.2",
            "1.4.2+build.7",
            "2025.03.14",
            "v1",
            "1.0.0-rc.1",
            "~!@#",
        ] {
            assert_eq!(version(ok).unwrap(), ok);
        }
        assert!(version("").is_err());
        assert!(version("1.4 2").is_err());
        assert!(version("1.4\t2").is_err());
        assert!(version("1.4\u{7f}").is_err());
        assert!(version("1.4é").is_err());
        assert!(version(&"1".repeat(128)).is_ok());
        assert!(version(&"1".repeat(129)).is_err());
    }

    #[test]
    fn environments() {
        for ok in ["production", "staging", "eu-west-1.prod", "dev_2"] {
            assert_eq!(environment(ok).unwrap(), ok);
        }
        assert_eq!(environment("").unwrap_err().field, "environment");
        assert!(environment("prod env").is_err());
        assert!(environment("_prod").is_err());
        assert!(environment(&"e".repeat(64)).is_ok());
        assert!(environment(&"e".repeat(65)).is_err());
    }

    #[test]
    fn run_ids() {
        for ok in [
            "1234567890",
            "gh-actions/run 42",
            "jenkins-checkout-api-#17",
        ] {
            assert_eq!(run_id(ok).unwrap(), ok);
        }
        assert!(run_id("").is_err());
        assert!(run_id("   ").unwrap_err().reason.contains("blank"));
        assert!(
            run_id("12\n34")
                .unwrap_err()
                .reason
                .contains("control character '\\n'")
        );
        assert!(run_id(&"r".repeat(256)).is_ok());
        assert!(run_id(&"r".repeat(257)).is_err());
    }

    #[test]
    fn repos() {
        for ok in [
            "https://github.com/acme/checkout-api",
            "git@github.com:acme/x.git",
            "ssh://git@gitlab.example/acme/x",
        ] {
            assert_eq!(repo(ok).unwrap(), ok);
        }
        assert!(repo("").is_err());
        assert!(repo("https://github.com/acme/checkout api").is_err());
        assert!(repo("x\0").is_err());
        assert!(repo(&"r".repeat(2049)).is_err());
    }

    #[test]
    fn actors() {
        for ok in [
            "alice@acme.example",
            "Alice Example",
            "ci-bot[token:deploy]",
        ] {
            assert_eq!(actor(ok).unwrap(), ok);
        }
        assert!(actor("").is_err());
        assert!(actor(" ").is_err());
        assert!(actor("alice\r\n").is_err());
        assert!(actor(&"a".repeat(257)).is_err());
    }

    #[test]
    fn timestamps() {
        let t = rfc3339("2025-03-14T09:26:53Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2025-03-14T09:26:53+00:00");
        let t = rfc3339("2025-03-14T11:26:53+02:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2025-03-14T09:26:53+00:00");
        let t = rfc3339("2025-03-14").unwrap();
        assert_eq!(t.to_rfc3339(), "2025-03-14T00:00:00+00:00");
        for bad in [
            "",
            "yesterday",
            "2025-13-01",
            "2025-03-14T09:26:53",
            "14/03/2025",
            "2025-3-4",
        ] {
            let e = rfc3339(bad).unwrap_err();
            assert!(e.reason.contains("RFC 3339"), "{bad}: {e}");
        }
    }

    #[test]
    fn messages_cut_long_values_and_escape_controls() {
        let long = "x".repeat(10_000);
        let e = git_sha(&long).unwrap_err();
        assert!(e.to_string().len() < 300, "{e}");
        assert!(e.value.ends_with('…'));
        assert_eq!(excerpt("a\nb"), "a\\nb");
        assert_eq!(excerpt("short"), "short");
    }

    #[test]
    fn bundle_paths() {
        for ok in [
            "sbom.json",
            "devsecops/scan_report.json",
            "a/b/c.d",
            "..x/y..",
            ".hidden",
        ] {
            assert_eq!(bundle_path(ok).unwrap(), ok);
        }
        let cases = [
            ("", "empty"),
            ("../x", "'..'"),
            ("a/../../x", "'..'"),
            ("./a", "'.'"),
            ("/etc/passwd", "relative"),
            ("a//b", "empty path segment"),
            ("a/", "empty path segment"),
            ("a\\b", "backslash"),
            ("a\0b", "control character"),
            ("a\nb", "control character"),
        ];
        for (bad, why) in cases {
            let e = bundle_path(bad).unwrap_err();
            assert!(e.reason.contains(why), "{bad:?}: {e}");
        }
        assert!(
            bundle_path(&"a".repeat(4097))
                .unwrap_err()
                .reason
                .contains("too long")
        );
    }

    #[test]
    fn quoted_lists() {
        assert_eq!(
            quoted_list(&["approve", "reject"]),
            "\"approve\" or \"reject\""
        );
        assert_eq!(quoted_list(&["a", "b", "c"]), "\"a\", \"b\" or \"c\"");
        assert_eq!(quoted_list(&["a"]), "\"a\"");
    }
}
