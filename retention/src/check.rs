//! Shapes of the names policies and holds are written with, and blueprint patterns.
//!
//! Every check returns a one-line reason without the field name; the caller adds the field
//! (`rule 3: blueprint: ...`, `git_sha: ...`).

/// The longest blueprint pattern accepted. Blueprint names are at most 128 characters; the
/// margin is for `*`s.
pub(crate) const MAX_PATTERN: usize = 256;
/// The longest kind name accepted in a rule.
pub(crate) const MAX_KIND: usize = 64;
/// The longest environment accepted (as in `evault-schema`).
pub(crate) const MAX_ENVIRONMENT: usize = 64;
/// The longest version accepted (as in `evault-schema`).
pub(crate) const MAX_VERSION: usize = 128;

/// Whether blueprint `name` matches `pattern`, where `*` matches any run of characters (none
/// included) and every other character matches itself, case included.
///
/// Because `*` never appears in a name, the same function answers whether every name one
/// pattern matches is matched by another: `matches("checkout-*", "checkout-a*")` is true, as
/// `checkout-*` matches everything `checkout-a*` does.
///
/// Greedy with backtracking to the last `*`: at most `pattern.len() * name.len()` steps.
pub(crate) fn glob_matches(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    // After the last `*` seen: where the pattern resumes, and where in the name it resumed.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if p.get(pi) == Some(&b'*') {
            pi += 1;
            star = Some((pi, ni));
        } else if p.get(pi) == Some(&n[ni]) {
            pi += 1;
            ni += 1;
        } else if let Some((resume, taken)) = star {
            // Let the last `*` take one more character and try again.
            pi = resume;
            ni = taken + 1;
            star = Some((resume, ni));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

/// A blueprint pattern: what blueprint names are made of (letters, digits, `.`, `_`, `-`) and
/// `*`, the only wildcard. Anything else could never match a name, so it is a mistake (`?` or
/// `[a-z]` from another glob dialect, a space, a control character).
pub(crate) fn pattern(s: &str) -> Result<(), String> {
    shape(
        s,
        MAX_PATTERN,
        |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '*'),
        "blueprint names use letters, digits, '.', '_' and '-', and '*' is the only wildcard",
    )
}

/// An evidence kind name, as `evault-schema` spells them: `sbom`, `vuln-scan`, `provenance`.
pub(crate) fn kind(s: &str) -> Result<(), String> {
    shape(
        s,
        MAX_KIND,
        |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-',
        "kind names use lowercase letters, digits and '-', e.g. sbom, vuln-scan, provenance",
    )
}

/// A deployment environment: letters, digits, `.`, `_` and `-`.
pub(crate) fn environment(s: &str) -> Result<(), String> {
    shape(
        s,
        MAX_ENVIRONMENT,
        |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'),
        "environments use letters, digits, '.', '_' and '-'",
    )
}

/// A blueprint version: printable ASCII without spaces, as `evault-schema` accepts them.
pub(crate) fn version(s: &str) -> Result<(), String> {
    shape(
        s,
        MAX_VERSION,
        |c| c.is_ascii_graphic(),
        "versions are printable ASCII without spaces",
    )
}

/// A hexadecimal id or a prefix of one: at least `min` and at most `max` hex digits, any case.
pub(crate) fn hex_prefix(s: &str, min: usize, max: usize, what: &str) -> Result<(), String> {
    shape(s, max, |c| c.is_ascii_hexdigit(), "it must be hexadecimal")?;
    if s.len() < min {
        return Err(format!(
            "'{s}' is too short: give the full {what} or a prefix of at least {min} hex characters"
        ));
    }
    Ok(())
}

/// Free text that must say something, on one line: a hold's reason, who did something.
pub(crate) fn text(s: &str, max: usize) -> Result<(), String> {
    if s.trim().is_empty() {
        return Err("must not be empty".to_string());
    }
    shape(s, max, |c| !c.is_control(), "it must fit on one line")
}

/// `s` is 1 to `max` characters, each of which satisfies `allowed`; `rule` says what is allowed.
pub(crate) fn shape(
    s: &str,
    max: usize,
    allowed: impl Fn(char) -> bool,
    rule: &str,
) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".to_string());
    }
    let count = s.chars().count();
    if count > max {
        return Err(format!(
            "{count} characters is too long: at most {max} are allowed"
        ));
    }
    if let Some((i, c)) = s.char_indices().find(|&(_, c)| !allowed(c)) {
        return Err(format!(
            "character '{}' at byte {i} is not allowed: {rule}",
            c.escape_debug()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_patterns_match_names() {
        let cases = [
            ("checkout-api", "checkout-api", true),
            ("checkout-api", "checkout-api2", false),
            ("checkout-api", "Checkout-api", false),
            ("checkout-*", "checkout-api", true),
            ("checkout-*", "checkout-", true),
            ("checkout-*", "checkout", false),
            ("checkout-*", "payments-checkout-api", false),
            ("*-api", "checkout-api", true),
            ("*-api", "checkout-api-v2", false),
            ("*", "anything", true),
            ("*", "", true),
            ("c*t*i", "checkout-api", true),
            ("c*t*x", "checkout-api", false),
            ("*a*a*", "banana", true),
            ("*a*a*a*a*", "banana", false),
            ("a**b", "ab", true),
            ("a**b", "axyb", true),
            ("", "", true),
            ("", "a", false),
        ];
        for (pattern, name, expected) in cases {
            assert_eq!(
                glob_matches(pattern, name),
                expected,
                "{pattern:?} against {name:?}"
            );
        }
    }

    #[test]
    fn a_pattern_covers_another_when_it_matches_it_as_a_name() {
        let cases = [
            ("checkout-*", "checkout-a*", true),
            ("checkout-*", "checkout-*", true),
            ("*", "checkout-*", true),
            ("checkout-a*", "checkout-*", false),
            ("checkout-api", "checkout-*", false),
            ("*-api", "checkout-*", false),
        ];
        for (wide, narrow, expected) in cases {
            assert_eq!(glob_matches(wide, narrow), expected, "{wide} ⊇ {narrow}");
        }
    }

    #[test]
    fn shapes_name_what_is_wrong() {
        let cases = [
            (pattern("checkout-*"), Ok(())),
            (pattern(""), Err("must not be empty")),
            (
                pattern("checkout-?"),
                Err(
                    "character '?' at byte 9 is not allowed: blueprint names use letters, digits, \
                     '.', '_' and '-', and '*' is the only wildcard",
                ),
            ),
            (
                pattern("a\u{7}b"),
                Err(
                    "character '\\u{7}' at byte 1 is not allowed: blueprint names use letters, \
                     digits, '.', '_' and '-', and '*' is the only wildcard",
                ),
            ),
            (kind("vuln-scan"), Ok(())),
            (
                kind("SBOM"),
                Err(
                    "character 'S' at byte 0 is not allowed: kind names use lowercase letters, \
                     digits and '-', e.g. sbom, vuln-scan, provenance",
                ),
            ),
            (environment("eu-west-1.prod"), Ok(())),
            (
                environment("prod uction"),
                Err(
                    "character ' ' at byte 4 is not allowed: environments use letters, digits, \
                     '.', '_' and '-'",
                ),
            ),
            (version("1.4.2+build.7"), Ok(())),
            (hex_prefix("4F1C0D2", 7, 64, "git SHA"), Ok(())),
            (
                hex_prefix("4f1c0d", 7, 64, "git SHA"),
                Err(
                    "'4f1c0d' is too short: give the full git SHA or a prefix of at least 7 hex \
                     characters",
                ),
            ),
            (
                hex_prefix("4f1c0dz", 7, 64, "git SHA"),
                Err("character 'z' at byte 6 is not allowed: it must be hexadecimal"),
            ),
            (
                text("litigation 2025-17", 10),
                Err("18 characters is too long: at most 10 are allowed"),
            ),
            (text("  ", 10), Err("must not be empty")),
            (
                text("a\nb", 10),
                Err("character '\\n' at byte 1 is not allowed: it must fit on one line"),
            ),
        ];
        for (i, (got, expected)) in cases.into_iter().enumerate() {
            assert_eq!(got, expected.map_err(str::to_string), "case {i}");
        }
    }
}
