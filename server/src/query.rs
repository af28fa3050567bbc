//! Query strings, parsed by hand because axum's `Query` cannot take a repeated parameter
//! (`subject=a&subject=b`) and because every mistake should name the parameter.

use evault_schema::validate::{self, ValueError};

use crate::problem::ApiError;

/// Most parameters read from one query string.
const MAX_PARAMS: usize = 256;

/// What an endpoint accepts.
pub struct Spec {
    /// Parameters that may appear once.
    pub single: &'static [&'static str],
    /// Parameters that may repeat.
    pub repeated: &'static [&'static str],
    /// Parameters accepted and ignored (kept for clients of the CLI's vocabulary, e.g.
    /// `producer`, which the token decides).
    pub ignored: &'static [&'static str],
}

/// Decoded `name=value` pairs, in order.
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Decodes `raw` (percent-encoding and `+`), refusing unknown names and repeats of
    /// single-valued ones.
    pub fn parse(raw: Option<&str>, spec: &Spec) -> Result<Params, ApiError> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (name, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            if pairs.len() == MAX_PARAMS {
                return Err(ApiError::invalid(format!(
                    "too many query parameters: at most {MAX_PARAMS}"
                )));
            }
            let name = name.into_owned();
            if spec.ignored.contains(&name.as_str()) {
                continue;
            }
            if spec.single.contains(&name.as_str()) {
                if pairs.iter().any(|(n, _)| *n == name) {
                    return Err(ApiError::invalid(format!(
                        "query parameter '{name}' is given more than once"
                    )));
                }
            } else if !spec.repeated.contains(&name.as_str()) {
                let mut known: Vec<&str> =
                    spec.single.iter().chain(spec.repeated).copied().collect();
                known.sort_unstable();
                return Err(ApiError::invalid(format!(
                    "unknown query parameter '{}' (expected one of: {})",
                    validate::excerpt(&name),
                    known.join(", ")
                )));
            }
            pairs.push((name, value.into_owned()));
        }
        Ok(Params(pairs))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The page size `limit`: `default` when absent, else a whole number from 1 to `max`.
    pub fn limit(&self, default: usize, max: usize) -> Result<usize, ApiError> {
        match self.get("limit") {
            None => Ok(default),
            Some(s) => s
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| {
                    ApiError::invalid(format!(
                        "invalid limit '{}': expected 1 to {max}",
                        validate::excerpt(s)
                    ))
                }),
        }
    }

    /// The parameter, checked and normalised by `check`; an error names the parameter.
    pub fn checked<T>(
        &self,
        name: &str,
        check: impl Fn(&str) -> Result<T, ValueError>,
    ) -> Result<Option<T>, ApiError> {
        self.get(name)
            .map(|v| check(v).map_err(|e| invalid(name, &e)))
            .transpose()
    }
}

/// `invalid <parameter> '<value>': <reason>`, the shape of every value error.
pub fn invalid(name: &str, e: &ValueError) -> ApiError {
    ApiError::invalid(format!("invalid {name} '{}': {}", e.value, e.reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: Spec = Spec {
        single: &["blueprint", "limit"],
        repeated: &["subject"],
        ignored: &["producer"],
    };

    fn detail(e: ApiError) -> String {
        e.problem("", "").detail
    }

    #[test]
    fn decodes_repeats_and_ignores() {
        let p = Params::parse(
            Some("blueprint=a%20b&subject=x&subject=y+z&producer=mallory"),
            &SPEC,
        )
        .unwrap();
        assert_eq!(p.get("blueprint"), Some("a b"));
        assert_eq!(p.all("subject").collect::<Vec<_>>(), ["x", "y z"]);
        assert_eq!(p.get("producer"), None);
        assert!(Params::parse(None, &SPEC).unwrap().get("limit").is_none());
    }

    #[test]
    fn unknown_and_repeated_parameters_are_named() {
        let e = detail(Params::parse(Some("git-sha=1"), &SPEC).unwrap_err());
        assert!(
            e.contains("'git-sha'") && e.contains("blueprint, limit, subject"),
            "{e}"
        );
        let e = detail(Params::parse(Some("limit=1&limit=2"), &SPEC).unwrap_err());
        assert!(e.contains("'limit'"), "{e}");
    }

    #[test]
    fn checked_values_name_the_parameter() {
        let p = Params::parse(Some("blueprint=xyz"), &SPEC).unwrap();
        let e = detail(p.checked("blueprint", validate::git_sha).unwrap_err());
        assert!(e.starts_with("invalid blueprint 'xyz': expected 40"), "{e}");
    }
}
