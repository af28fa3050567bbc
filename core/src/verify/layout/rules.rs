//! Artifact rules (in-toto v1.0 specification §4.3.3, as `in_toto.verifylib` applies them).
//!
//! Each step's `expected_materials` and `expected_products` are evaluated like a firewall: the
//! artifact paths of the step's link (materials or products) go into a queue; rules run in
//! order and most of them *consume* the paths they authorize. Consumption alone never fails;
//! only `DISALLOW` (some queued path matches) and `REQUIRE` (the exact path is not queued) do,
//! so a rule list without a final `DISALLOW *` authorizes everything. That is the specification's
//! design, not ours to change.
//!
//! - `MATCH <pattern> [IN <src-prefix>] WITH (MATERIALS|PRODUCTS) [IN <dst-prefix>] FROM <step>`
//!   consumes a queued path if the named step's link has the same path (after swapping the
//!   prefixes) with an equal hash object. A missing destination link consumes nothing.
//! - `CREATE`/`DELETE`/`MODIFY <pattern>` consume matching queued paths that are products but
//!   not materials / materials but not products / both with different hashes, of the same link.
//! - `ALLOW <pattern>` consumes every matching queued path.
//! - `DISALLOW <pattern>` fails if any queued path matches.
//! - `REQUIRE <path>` fails unless `path` (literally; not a pattern) is still queued.
//!
//! Keywords are case-insensitive; patterns follow [`super::glob`].

use super::glob::{Budget, OutOfBudget, Pattern};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Artifacts of a link: path to hash object (e.g. `{"sha256": "..."}`).
pub(crate) type Artifacts = BTreeMap<String, Value>;

/// Which artifact list of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Materials,
    Products,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Materials => "materials",
            Kind::Products => "products",
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Match {
        source_prefix: String,
        dest_kind: Kind,
        dest_prefix: String,
        dest_name: String,
    },
    Create,
    Delete,
    Modify,
    Allow,
    Disallow,
    Require,
}

/// One parsed artifact rule.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    op: Op,
    /// The pattern as written (for `REQUIRE`, a literal path).
    pattern_text: String,
    pattern: Pattern,
    /// The rule's words joined by spaces, for messages.
    text: String,
}

/// Longest pattern, prefix or artifact path accepted (PATH_MAX on Linux).
pub(crate) const MAX_PATH_LEN: usize = 4096;

impl Rule {
    /// Parses a rule the way `in_toto.rulelib.unpack_rule` does.
    pub(crate) fn parse(value: &Value) -> Result<Self, String> {
        let words: Vec<&str> = value
            .as_array()
            .ok_or("a rule must be a list of strings")?
            .iter()
            .map(|w| w.as_str().ok_or("a rule must be a list of strings"))
            .collect::<Result<_, _>>()?;
        let text = words.join(" ");
        if words.iter().any(|w| w.len() > MAX_PATH_LEN) {
            return Err(format!("rule has a word longer than {MAX_PATH_LEN} bytes"));
        }
        let lower: Vec<String> = words.iter().map(|w| w.to_lowercase()).collect();
        let kw = |i: usize, k: &str| lower.get(i).is_some_and(|w| w == k);
        if words.len() < 2 {
            return Err(format!("rule {text:?} needs a type and a pattern"));
        }
        let generic = match lower[0].as_str() {
            "create" => Some(Op::Create),
            "delete" => Some(Op::Delete),
            "modify" => Some(Op::Modify),
            "allow" => Some(Op::Allow),
            "disallow" => Some(Op::Disallow),
            "require" => Some(Op::Require),
            "match" => None,
            _ => return Err(format!("rule {text:?} has an unknown type")),
        };
        let op = match generic {
            Some(op) => {
                if words.len() != 2 {
                    return Err(format!("rule {text:?} must be exactly: TYPE <pattern>"));
                }
                op
            }
            None => {
                let (source_prefix, dest_type, dest_prefix, dest_name) = if words.len() == 10
                    && kw(2, "in")
                    && kw(4, "with")
                    && kw(6, "in")
                    && kw(8, "from")
                {
                    (words[3], &lower[5], words[7], words[9])
                } else if words.len() == 8 && kw(2, "in") && kw(4, "with") && kw(6, "from") {
                    (words[3], &lower[5], "", words[7])
                } else if words.len() == 8 && kw(2, "with") && kw(4, "in") && kw(6, "from") {
                    ("", &lower[3], words[5], words[7])
                } else if words.len() == 6 && kw(2, "with") && kw(4, "from") {
                    ("", &lower[3], "", words[5])
                } else {
                    return Err(format!(
                        "rule {text:?} must be: MATCH <pattern> [IN <prefix>] WITH \
                         (MATERIALS|PRODUCTS) [IN <prefix>] FROM <step>"
                    ));
                };
                let dest_kind = match dest_type.as_str() {
                    "materials" => Kind::Materials,
                    "products" => Kind::Products,
                    _ => {
                        return Err(format!(
                            "rule {text:?} must match WITH MATERIALS or WITH PRODUCTS"
                        ));
                    }
                };
                Op::Match {
                    source_prefix: source_prefix.to_owned(),
                    dest_kind,
                    dest_prefix: dest_prefix.to_owned(),
                    dest_name: dest_name.to_owned(),
                }
            }
        };
        Ok(Self {
            op,
            pattern_text: words[1].to_owned(),
            pattern: Pattern::new(words[1]),
            text,
        })
    }
}

/// The materials and products of the one link chosen for a step.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LinkArtifacts<'a> {
    pub(crate) materials: &'a Artifacts,
    pub(crate) products: &'a Artifacts,
}

impl<'a> LinkArtifacts<'a> {
    fn get(self, kind: Kind) -> &'a Artifacts {
        match kind {
            Kind::Materials => self.materials,
            Kind::Products => self.products,
        }
    }
}

/// Why rule verification stopped.
#[derive(Debug)]
pub(crate) enum RuleError {
    /// A `DISALLOW` or `REQUIRE` rule failed; the message names the rule and artifacts.
    Violated(String),
    /// Pattern matching exceeded the verification's work budget.
    OutOfBudget,
}

impl From<OutOfBudget> for RuleError {
    fn from(_: OutOfBudget) -> Self {
        RuleError::OutOfBudget
    }
}

/// Applies `rules` to the `kind` artifacts of item `item`'s link, appending one report line per
/// rule to `lines`. `links` holds the chosen link of every step that has one.
pub(crate) fn verify_item_rules(
    item: &str,
    kind: Kind,
    rules: &[Rule],
    links: &HashMap<String, LinkArtifacts<'_>>,
    budget: &mut Budget,
    lines: &mut Vec<String>,
) -> Result<(), RuleError> {
    let label = format!("step {} expected_{}", quote(item), kind.name());
    let Some(own) = links.get(item).copied() else {
        // Callers only ask for items with a verified link.
        return Err(RuleError::Violated(format!("{label}: no verified link")));
    };
    let source = own.get(kind);
    let mut queue: BTreeSet<&str> = source.keys().map(String::as_str).collect();
    if rules.is_empty() {
        lines.push(format!(
            "{label}: no rules; {} artifact(s) pass unchecked",
            queue.len()
        ));
        return Ok(());
    }
    for rule in rules {
        let mut notes: Vec<String> = Vec::new();
        let consumed: BTreeSet<&str> = match &rule.op {
            Op::Match {
                source_prefix,
                dest_kind,
                dest_prefix,
                dest_name,
            } => {
                let Some(dest) = links.get(dest_name.as_str()).copied() else {
                    lines.push(format!(
                        "{label}: {} consumed nothing: step {} has no verified link",
                        quote(&rule.text),
                        quote(dest_name)
                    ));
                    continue;
                };
                let dest_artifacts = dest.get(*dest_kind);
                let norm_prefix = if source_prefix.is_empty() {
                    String::new()
                } else {
                    py_join(source_prefix, "").replace('\\', "/")
                };
                let mut consumed = BTreeSet::new();
                for &path in &queue {
                    let Some(rest) = path.strip_prefix(norm_prefix.as_str()) else {
                        continue;
                    };
                    if !rule.pattern.matches(rest, budget)? {
                        continue;
                    }
                    let dest_path = if dest_prefix.is_empty() {
                        rest.to_owned()
                    } else {
                        py_join(dest_prefix, rest).replace('\\', "/")
                    };
                    match dest_artifacts.get(&dest_path) {
                        None => notes.push(format!(
                            "{} not among {} {}",
                            quote(&dest_path),
                            quote(dest_name),
                            dest_kind.name()
                        )),
                        Some(hash) if source.get(path) != Some(hash) => notes.push(format!(
                            "{} hash differs from {} {} {}",
                            quote(path),
                            quote(dest_name),
                            dest_kind.name(),
                            quote(&dest_path)
                        )),
                        Some(_) => {
                            consumed.insert(path);
                        }
                    }
                }
                consumed
            }
            Op::Create | Op::Delete | Op::Modify | Op::Allow => {
                let mut consumed = BTreeSet::new();
                for &path in &queue {
                    if !rule.pattern.matches(path, budget)? {
                        continue;
                    }
                    let in_m = own.materials.get(path);
                    let in_p = own.products.get(path);
                    let take = match rule.op {
                        Op::Create => in_p.is_some() && in_m.is_none(),
                        Op::Delete => in_m.is_some() && in_p.is_none(),
                        Op::Modify => matches!((in_m, in_p), (Some(m), Some(p)) if m != p),
                        _ => true,
                    };
                    if take {
                        consumed.insert(path);
                    }
                }
                consumed
            }
            Op::Disallow => {
                let mut hits = Vec::new();
                for &path in &queue {
                    if rule.pattern.matches(path, budget)? {
                        hits.push(path);
                    }
                }
                if !hits.is_empty() {
                    return Err(RuleError::Violated(format!(
                        "{label}: {} matched artifact(s) no earlier rule authorized: {}",
                        quote(&rule.text),
                        list(&hits)
                    )));
                }
                lines.push(format!(
                    "{label}: {} matched nothing ({} left in queue)",
                    quote(&rule.text),
                    queue.len()
                ));
                continue;
            }
            Op::Require => {
                if !queue.contains(rule.pattern_text.as_str()) {
                    return Err(RuleError::Violated(format!(
                        "{label}: {} did not find {} among the unconsumed artifacts {}",
                        quote(&rule.text),
                        quote(&rule.pattern_text),
                        list(&queue.iter().copied().collect::<Vec<_>>())
                    )));
                }
                lines.push(format!(
                    "{label}: {} found {}",
                    quote(&rule.text),
                    quote(&rule.pattern_text)
                ));
                continue;
            }
        };
        for path in &consumed {
            queue.remove(path);
        }
        let mut line = format!(
            "{label}: {} consumed {}",
            quote(&rule.text),
            list(&consumed.iter().copied().collect::<Vec<_>>())
        );
        if !notes.is_empty() {
            line.push_str("; not matched: ");
            line.push_str(
                &notes
                    .iter()
                    .take(MAX_LISTED)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            );
            if notes.len() > MAX_LISTED {
                line.push_str(&format!(" and {} more", notes.len() - MAX_LISTED));
            }
        }
        lines.push(line);
    }
    if !queue.is_empty() {
        lines.push(format!(
            "{label}: {} artifact(s) left unconsumed and not disallowed: {}",
            queue.len(),
            list(&queue.iter().copied().collect::<Vec<_>>())
        ));
    }
    Ok(())
}

/// Python's `os.path.join(a, b)` on POSIX for two parts.
fn py_join(a: &str, b: &str) -> String {
    if b.starts_with('/') || a.is_empty() {
        b.to_owned()
    } else if a.ends_with('/') {
        format!("{a}{b}")
    } else {
        format!("{a}/{b}")
    }
}

/// How many artifacts a report line lists before summarizing.
const MAX_LISTED: usize = 10;

/// `[a, b, ...]` with at most [`MAX_LISTED`] quoted entries.
pub(crate) fn list(items: &[&str]) -> String {
    let mut out: Vec<String> = items.iter().take(MAX_LISTED).map(|s| quote(s)).collect();
    if items.len() > MAX_LISTED {
        out.push(format!("... and {} more", items.len() - MAX_LISTED));
    }
    format!("[{}]", out.join(", "))
}

/// A string from the input, quoted with control characters escaped and length capped, so that
/// hostile names cannot forge report lines or flood them.
pub(crate) fn quote(s: &str) -> String {
    const MAX: usize = 200;
    if s.chars().count() > MAX {
        let head: String = s.chars().take(MAX).collect();
        format!("{:?}...", head)
    } else {
        format!("{s:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(words: &[&str]) -> Rule {
        Rule::parse(&json!(words)).unwrap()
    }

    fn arts(entries: &[(&str, &str)]) -> Artifacts {
        entries
            .iter()
            .map(|(p, h)| ((*p).to_owned(), json!({ "sha256": h })))
            .collect()
    }

    fn run(
        rules: &[Rule],
        kind: Kind,
        own: (&Artifacts, &Artifacts),
        other: Option<(&str, &Artifacts, &Artifacts)>,
    ) -> Result<Vec<String>, String> {
        let mut links = HashMap::new();
        links.insert(
            "me".to_owned(),
            LinkArtifacts {
                materials: own.0,
                products: own.1,
            },
        );
        if let Some((name, m, p)) = other {
            links.insert(
                name.to_owned(),
                LinkArtifacts {
                    materials: m,
                    products: p,
                },
            );
        }
        let mut lines = Vec::new();
        verify_item_rules(
            "me",
            kind,
            rules,
            &links,
            &mut Budget::new(u64::MAX),
            &mut lines,
        )
        .map_err(|e| match e {
            RuleError::Violated(m) => m,
            RuleError::OutOfBudget => "budget".into(),
        })?;
        Ok(lines)
    }

    #[test]
    fn parses_every_match_form_case_insensitively() {
        for words in [
            vec!["MATCH", "*", "WITH", "PRODUCTS", "FROM", "a"],
            vec!["match", "*", "in", "src", "with", "materials", "from", "a"],
            vec!["Match", "*", "With", "Products", "In", "dst", "From", "a"],
            vec![
                "MATCH", "*", "IN", "s", "WITH", "PRODUCTS", "IN", "d", "FROM", "a",
            ],
        ] {
            assert!(Rule::parse(&json!(words)).is_ok(), "{words:?}");
        }
        for words in [
            json!(["MATCH", "*", "WITH", "THINGS", "FROM", "a"]),
            json!(["MATCH", "*", "FROM", "a"]),
            json!(["ALLOW"]),
            json!(["ALLOW", "*", "extra"]),
            json!(["PERMIT", "*"]),
            json!(["ALLOW", 1]),
            json!("ALLOW *"),
        ] {
            assert!(Rule::parse(&words).is_err(), "{words}");
        }
    }

    #[test]
    fn create_delete_modify_compare_materials_with_products() {
        let m = arts(&[("kept", "1"), ("gone", "2"), ("changed", "3")]);
        let p = arts(&[("kept", "1"), ("new", "4"), ("changed", "5")]);
        let rules = [
            rule(&["CREATE", "*"]),
            rule(&["MODIFY", "*"]),
            rule(&["DISALLOW", "*"]),
        ];
        // Products: "new" created, "changed" modified, "kept" unconsumed -> DISALLOW fails.
        let err = run(&rules, Kind::Products, (&m, &p), None).unwrap_err();
        assert!(
            err.contains("\"kept\"") && !err.contains("\"new\""),
            "{err}"
        );
        let rules = [
            rule(&["DELETE", "*"]),
            rule(&["MODIFY", "changed"]),
            rule(&["ALLOW", "kept"]),
            rule(&["DISALLOW", "*"]),
        ];
        run(&rules, Kind::Materials, (&m, &p), None).unwrap();
    }

    #[test]
    fn match_uses_prefixes_and_hashes() {
        let m = arts(&[("src/a.c", "1"), ("src/b.c", "2")]);
        let empty = Artifacts::new();
        let dest_p = arts(&[("out/a.c", "1"), ("out/b.c", "9")]);
        let rules = [
            rule(&[
                "MATCH", "*.c", "IN", "src", "WITH", "PRODUCTS", "IN", "out/", "FROM", "fetch",
            ]),
            rule(&["DISALLOW", "*"]),
        ];
        let err = run(
            &rules,
            Kind::Materials,
            (&m, &empty),
            Some(("fetch", &empty, &dest_p)),
        )
        .unwrap_err();
        assert!(err.contains("src/b.c") && !err.contains("src/a.c"), "{err}");
    }

    #[test]
    fn require_is_literal_and_checks_the_queue() {
        let p = arts(&[("a*", "1"), ("b", "2")]);
        let empty = Artifacts::new();
        run(
            &[rule(&["REQUIRE", "b"])],
            Kind::Products,
            (&empty, &p),
            None,
        )
        .unwrap();
        assert!(
            run(
                &[rule(&["REQUIRE", "*"])],
                Kind::Products,
                (&empty, &p),
                None
            )
            .is_err()
        );
        let consumed_first = [rule(&["ALLOW", "b"]), rule(&["REQUIRE", "b"])];
        assert!(run(&consumed_first, Kind::Products, (&empty, &p), None).is_err());
    }

    #[test]
    fn match_from_a_missing_step_consumes_nothing() {
        let m = arts(&[("x", "1")]);
        let empty = Artifacts::new();
        let rules = [
            rule(&["MATCH", "*", "WITH", "PRODUCTS", "FROM", "nowhere"]),
            rule(&["DISALLOW", "*"]),
        ];
        assert!(run(&rules, Kind::Materials, (&m, &empty), None).is_err());
    }
}
