//! Artifact-rule patterns with the semantics of Python's `fnmatch.filter`, which in-toto uses.
//!
//! Python translates a pattern into a regular expression and matches the whole name:
//! `*` matches any run of characters *including `/`*, `?` matches one character, `[seq]` and
//! `[!seq]` match one character in (or not in) a set with `a-z` ranges, and a `[` without a
//! closing `]` is a literal. There is no escape character (a backslash is literal), matching
//! is case-sensitive (POSIX `normcase`), and names are compared as Unicode code points.
//!
//! The matcher is the classic linear-memory wildcard algorithm (backtrack only to the last
//! `*`), which is exact for patterns whose other tokens consume exactly one character. Its
//! work is charged to a [`Budget`] so that a pathological pattern/name pair cannot pin a CPU.

/// A bound on matching work, shared by every pattern evaluation of one verification.
#[derive(Debug)]
pub(crate) struct Budget {
    remaining: u64,
}

impl Budget {
    pub(crate) fn new(steps: u64) -> Self {
        Self { remaining: steps }
    }

    /// Charges `n` steps; `false` when the budget is exhausted.
    pub(crate) fn charge(&mut self, n: u64) -> bool {
        match self.remaining.checked_sub(n) {
            Some(left) => {
                self.remaining = left;
                true
            }
            None => {
                self.remaining = 0;
                false
            }
        }
    }
}

/// Raised when a [`Budget`] runs out during matching.
#[derive(Debug)]
pub(crate) struct OutOfBudget;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    AnyChar,
    Star,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Token {
    fn matches(&self, c: char) -> bool {
        match self {
            Token::Literal(l) => *l == c,
            Token::AnyChar => true,
            Token::Star => false,
            Token::Class { negated, ranges } => {
                ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
            }
        }
    }
}

/// A compiled `fnmatch` pattern.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    tokens: Vec<Token>,
}

impl Pattern {
    /// Compiles `pattern` the way `fnmatch.translate` (CPython 3.8–3.13) reads it.
    pub(crate) fn new(pattern: &str) -> Self {
        let p: Vec<char> = pattern.chars().collect();
        let n = p.len();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < n {
            let c = p[i];
            i += 1;
            match c {
                '*' => {
                    if tokens.last() != Some(&Token::Star) {
                        tokens.push(Token::Star);
                    }
                }
                '?' => tokens.push(Token::AnyChar),
                '[' => {
                    let mut j = i;
                    if j < n && p[j] == '!' {
                        j += 1;
                    }
                    if j < n && p[j] == ']' {
                        j += 1;
                    }
                    while j < n && p[j] != ']' {
                        j += 1;
                    }
                    if j >= n {
                        tokens.push(Token::Literal('['));
                    } else {
                        tokens.push(class(&p[i..j]));
                        i = j + 1;
                    }
                }
                other => tokens.push(Token::Literal(other)),
            }
        }
        Self { tokens }
    }

    /// Whether `name` matches the whole pattern, charging the work to `budget`.
    pub(crate) fn matches(&self, name: &str, budget: &mut Budget) -> Result<bool, OutOfBudget> {
        let t = &self.tokens;
        // Byte offset into `name` (always on a char boundary) and token index.
        let (mut si, mut ti) = (0usize, 0usize);
        // The last `*` seen (token index) and the name offset it currently absorbs up to.
        let mut star: Option<(usize, usize)> = None;
        let mut steps: u64 = 0;
        let result = loop {
            steps += 1;
            if steps >= 4096 {
                if !budget.charge(steps) {
                    return Err(OutOfBudget);
                }
                steps = 0;
            }
            if ti < t.len() && t[ti] == Token::Star {
                if ti + 1 == t.len() {
                    // A trailing `*` matches whatever is left.
                    break true;
                }
                star = Some((ti, si));
                ti += 1;
                continue;
            }
            let Some(c) = name.get(si..).and_then(|rest| rest.chars().next()) else {
                // Name consumed: the rest of the pattern must be empty (stars were skipped
                // above, and letting a star absorb more cannot help).
                break ti == t.len();
            };
            if ti < t.len() && t[ti].matches(c) {
                si += c.len_utf8();
                ti += 1;
                continue;
            }
            let Some((star_ti, star_si)) = star else {
                break false;
            };
            // Let the last `*` absorb one more character and retry after it.
            let Some(absorbed) = name.get(star_si..).and_then(|rest| rest.chars().next()) else {
                break false;
            };
            let next = star_si + absorbed.len_utf8();
            star = Some((star_ti, next));
            si = next;
            ti = star_ti + 1;
        };
        if budget.charge(steps) {
            Ok(result)
        } else {
            Err(OutOfBudget)
        }
    }
}

/// The set inside `[...]` (without the brackets), as `fnmatch.translate` builds it: a leading
/// `!` negates; `a-z` is a range unless the `-` is first or last; a range whose ends are out of
/// order matches nothing.
fn class(content: &[char]) -> Token {
    let (negated, body) = match content.first() {
        Some('!') => (true, &content[1..]),
        _ => (false, content),
    };
    let mut ranges = Vec::new();
    let mut k = 0;
    while k < body.len() {
        let lo = body[k];
        if k + 2 < body.len() && body[k + 1] == '-' {
            let hi = body[k + 2];
            if lo <= hi {
                ranges.push((lo, hi));
            }
            k += 3;
        } else {
            ranges.push((lo, lo));
            k += 1;
        }
    }
    Token::Class { negated, ranges }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, name: &str) -> bool {
        Pattern::new(pattern)
            .matches(name, &mut Budget::new(u64::MAX))
            .unwrap()
    }

    #[test]
    fn behaves_like_python_fnmatch() {
        // Each case checked against CPython 3.11 `fnmatch.fnmatchcase`.
        let cases: &[(&str, &str, bool)] = &[
            ("*", "app/config.json", true),
            ("*", "", true),
            ("app/*", "app/sub/x", true),
            ("*.json", "app/config.json", true),
            ("*.json", "app/config.jsonx", false),
            ("app.tar.gz", "app.tar.gz", true),
            ("app.tar.gz", "appxtar.gz", false),
            ("?", "", false),
            ("?", "é", true),
            ("a?c", "a/c", true),
            ("[abc]", "b", true),
            ("[!abc]", "b", false),
            ("[!abc]", "d", true),
            ("[a-c]x", "bx", true),
            ("[a-c]x", "dx", false),
            ("[]]", "]", true),
            ("[!]]", "]", false),
            ("[!]]", "a", true),
            ("[a-]", "-", true),
            ("[-a]", "-", true),
            ("[z-a]", "m", false),
            ("[!z-a]", "m", true),
            ("[a--c]", "c", true),
            ("[a--c]", "b", false),
            ("[a-c-e]", "-", true),
            ("[a-c-e]", "d", false),
            ("[", "[", true),
            ("[abc", "[abc", true),
            ("[!]", "[!]", true),
            ("\\*", "\\x", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXbY", false),
            ("**", "x", true),
            ("*a", "bbbba", true),
            ("A*", "a", false),
        ];
        for &(pattern, name, want) in cases {
            assert_eq!(m(pattern, name), want, "pattern {pattern:?} name {name:?}");
        }
    }

    #[test]
    fn budget_stops_pathological_matching() {
        // Backtracking to the last star makes this O(len(pattern) * len(name)).
        let pattern = Pattern::new(&format!("*{}b", "a".repeat(2000)));
        let name = "a".repeat(4000);
        let mut budget = Budget::new(100_000);
        assert!(pattern.matches(&name, &mut budget).is_err());
    }
}
