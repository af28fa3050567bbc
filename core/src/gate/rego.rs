//! Rego policies, evaluated in-process with `regorus`, for teams that keep their gates in OPA.
//!
//! The contract (the conftest convention): the policy declares `package evault.gate` and
//! defines `deny` and/or `warn` as sets. Each member is a message string, or an object with a
//! `msg` string and optionally `records` (record ids) and `name` (the requirement's name). The
//! gate fails if `deny` has a member, warns if only `warn` has, and passes otherwise. `input`
//! is the [`GateInput`](super::input::GateInput) document. Anything else fails closed: a policy
//! that does not compile is refused when it is stored or given, and one that errors while it
//! runs, or defines neither rule, makes the gate fail with the reason.

use evault_schema::documents::{Outcome, RequirementResult};
use regorus::{Engine, Value};

use super::input::GateInput;

/// The package a gate policy declares.
pub const PACKAGE: &str = "evault.gate";

/// A regorus message on one line: `line 2 column 15: unexpected keyword `if`` for its
/// multi-line compiler diagnostics (`--> gate.rego:2:15`, the source line, a caret, `error: ...`),
/// the lines joined otherwise.
fn one_line(s: &str) -> String {
    let at = s
        .lines()
        .find_map(|l| l.trim().strip_prefix("--> "))
        .and_then(|loc| {
            let mut parts = loc.rsplit(':');
            let column = parts.next()?.trim().parse::<u32>().ok()?;
            let line = parts.next()?.trim().parse::<u32>().ok()?;
            Some(format!("line {line} column {column}: "))
        });
    let error = s
        .lines()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .map(str::trim);
    if let (Some(at), Some(error)) = (at, error) {
        return format!("{at}{error}");
    }
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether `text` looks like Rego rather than TOML: its first line that is not blank or a
/// comment declares a package.
pub fn looks_like_rego(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .is_some_and(|l| l.starts_with("package ") || l == "package")
}

/// Compiles `text`, checking it declares `package evault.gate`.
pub fn compile(text: &str) -> Result<Engine, String> {
    let declared = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("package "))
        .map(|l| l["package ".len()..].trim().to_string());
    if declared.as_deref() != Some(PACKAGE) {
        return Err(format!(
            "a Rego gate policy must declare `package {PACKAGE}` (found {})",
            declared.map_or_else(|| "no package".to_string(), |p| format!("`package {p}`"))
        ));
    }
    let mut engine = Engine::new();
    engine
        .add_policy("gate.rego".into(), text.into())
        .map_err(|e| {
            format!(
                "the Rego policy does not compile: {}",
                one_line(&e.to_string())
            )
        })?;
    Ok(engine)
}

/// The members of rule `name`, or `None` when the policy does not define it.
fn rule(engine: &mut Engine, name: &str) -> Result<Option<Vec<serde_json::Value>>, String> {
    match engine.eval_rule(format!("data.{PACKAGE}.{name}")) {
        Ok(Value::Undefined) => Ok(None),
        Ok(v) => {
            let json = v
                .to_json_str()
                .map_err(|e| format!("{name}: {}", one_line(&e.to_string())))?;
            let parsed: serde_json::Value =
                serde_json::from_str(&json).map_err(|e| format!("{name}: not JSON: {e}"))?;
            match parsed {
                serde_json::Value::Array(items) => Ok(Some(items)),
                other => Err(format!(
                    "`{name}` must be a set of messages, not {}",
                    crate::gate::json_type(&other)
                )),
            }
        }
        Err(e) if e.to_string().contains("not a valid rule path") => Ok(None),
        Err(e) => Err(format!("{name}: {}", one_line(&e.to_string()))),
    }
}

fn member(rule_name: &str, status: Outcome, item: &serde_json::Value) -> RequirementResult {
    let (name, msg, records) = match item {
        serde_json::Value::String(s) => (None, s.clone(), Vec::new()),
        serde_json::Value::Object(o) => (
            o.get("name").and_then(|n| n.as_str()).map(str::to_string),
            o.get("msg")
                .and_then(|m| m.as_str())
                .map_or_else(|| item.to_string(), str::to_string),
            o.get("records")
                .and_then(|r| r.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|r| r.as_str())
                        .filter(|r| r.len() == 32 && r.bytes().all(|b| b.is_ascii_hexdigit()))
                        .map(str::to_ascii_lowercase)
                        .collect()
                })
                .unwrap_or_default(),
        ),
        other => (None, other.to_string(), Vec::new()),
    };
    RequirementResult {
        name: name
            .filter(|n| !n.trim().is_empty() && n.len() <= 128 && !n.contains(['\n', '\r']))
            .unwrap_or_else(|| format!("rego:{rule_name}")),
        status,
        message: crate::gate::cut(&msg),
        records,
    }
}

/// Evaluates a compiled policy on `input`.
pub fn evaluate(engine: &Engine, input: &GateInput) -> Vec<RequirementResult> {
    let fail = |message: String| {
        vec![RequirementResult {
            name: "rego".into(),
            status: Outcome::Fail,
            message,
            records: Vec::new(),
        }]
    };
    let mut engine = engine.clone();
    let json = match serde_json::to_string(input) {
        Ok(j) => j,
        Err(e) => return fail(format!("cannot build the policy input: {e}")),
    };
    match Value::from_json_str(&json) {
        Ok(v) => engine.set_input(v),
        Err(e) => return fail(format!("cannot build the policy input: {e}")),
    }
    let deny = match rule(&mut engine, "deny") {
        Ok(d) => d,
        Err(e) => return fail(format!("the Rego policy failed: {e}")),
    };
    let warn = match rule(&mut engine, "warn") {
        Ok(w) => w,
        Err(e) => return fail(format!("the Rego policy failed: {e}")),
    };
    if deny.is_none() && warn.is_none() {
        return fail(format!(
            "the Rego policy defines neither data.{PACKAGE}.deny nor data.{PACKAGE}.warn: \
             nothing says the version may pass"
        ));
    }
    let mut out: Vec<RequirementResult> = Vec::new();
    for item in deny.iter().flatten() {
        out.push(member("deny", Outcome::Fail, item));
    }
    for item in warn.iter().flatten() {
        out.push(member("warn", Outcome::Warn, item));
    }
    if out.is_empty() {
        out.push(RequirementResult {
            name: "rego".into(),
            status: Outcome::Pass,
            message: "no deny or warn rule fired".into(),
            records: Vec::new(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiler_diagnostics_become_one_line_with_the_position() {
        let err = compile("package evault.gate\ndeny contains if {\n").unwrap_err();
        assert!(
            err.starts_with("the Rego policy does not compile: line 2 column 15: "),
            "{err}"
        );
        assert!(!err.contains('\n') && !err.contains("-->"), "{err}");
        assert!(looks_like_rego("# a comment\n\npackage evault.gate\n"));
        assert!(!looks_like_rego("[[gate]]\nenvironment = \"x\"\n"));
    }
}
