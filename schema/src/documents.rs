//! evault's own evidence documents (approvals, deploy receipts, rollback records, release gate
//! decisions) and the manifest that describes an evidence bundle.
//!
//! Scanners and SBOM generators have their own formats; these events do not, yet they are what an
//! auditor asks about first (who approved this production change, what was deployed where, what
//! happened when it was rolled back, what the release gate decided and why). evault defines small
//! JSON documents for them,
//! identified like in-toto statements by a `_type` URI that carries the version, so that CI
//! pipelines can write them with `jq` and evault can detect them by content.
//!
//! The way in is [`parse_native`] and [`parse_manifest`]: they check the shape (unknown fields
//! are rejected, since a misspelt optional field would otherwise vanish silently from the
//! evidence), then the values (with [`crate::validate`]), and return normalized documents
//! (lowercase digests and SHAs, timestamps in UTC). Errors name the JSON path of the offending
//! field and never repeat more than a short excerpt of the input.
//!
//! The `Deserialize` impls check shape only; a document built or deserialized by other means
//! should go through its `validated` method before it is trusted.
//!
//! [`json_schemas`] produces JSON Schemas (draft 2020-12) for the documents, published in
//! `schema/json/`. A schema describes the shape and the per-value rules that JSON Schema can
//! express; the parse functions also check what it cannot (an expiry after the approval time,
//! duplicate paths in a manifest), so they, not the schemas, are the authority.

use std::borrow::Cow;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::marker::PhantomData;

use chrono::{DateTime, Utc};
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::validate::{self, ValueError, excerpt};
use crate::{Format, Kind};

/// `_type` of an [`Approval`].
pub const APPROVAL_TYPE: &str = "https://evault.dev/approval/v1";
/// `_type` of a [`Deploy`] receipt.
pub const DEPLOY_TYPE: &str = "https://evault.dev/deploy/v1";
/// `_type` of a [`Rollback`] record.
pub const ROLLBACK_TYPE: &str = "https://evault.dev/rollback/v1";
/// `_type` of a [`PolicyResult`] (a release gate's decision).
pub const POLICY_RESULT_TYPE: &str = "https://evault.dev/policy-result/v1";
/// `_type` of a [`BundleManifest`].
pub const BUNDLE_MANIFEST_TYPE: &str = "https://evault.dev/bundle/v1";
/// Name of the manifest file at the root of an evidence bundle.
pub const BUNDLE_MANIFEST_FILE: &str = "evault-bundle.json";

/// Largest approval, deploy, rollback or policy-result document accepted, in bytes. Real ones are well under
/// 10 KiB; the bound keeps a hostile upload from costing more than a glance.
pub const MAX_DOCUMENT_BYTES: usize = 1 << 20;
/// Largest bundle manifest accepted, in bytes: room for [`MAX_MANIFEST_FILES`] entries with
/// long paths and a few subjects each.
pub const MAX_MANIFEST_BYTES: usize = 32 << 20;
/// Most `files` entries a bundle manifest may list.
pub const MAX_MANIFEST_FILES: usize = 100_000;
/// Most subject digests one list (a manifest's, or one file's) may hold.
pub const MAX_SUBJECTS: usize = 10_000;
/// Longest free-text explanation (an approval's or rollback's `reason`, a rollback `trigger`),
/// in characters.
pub const MAX_REASON_CHARS: usize = 4096;
/// Longest link or ticket id (`ticket`, `incident`), in characters.
pub const MAX_LINK_CHARS: usize = 2048;
/// Longest deploy `target` (cluster, region, namespace), in characters.
pub const MAX_TARGET_CHARS: usize = 256;
/// Longest approver `role`, in characters.
pub const MAX_ROLE_CHARS: usize = 64;
/// Most vulnerability ids one exception (an approval's `vulnerabilities`) may name.
pub const MAX_EXCEPTION_VULNERABILITIES: usize = 1000;
/// Longest vulnerability id (`CVE-2024-3094`, `GHSA-...`), in characters.
pub const MAX_VULNERABILITY_ID_CHARS: usize = 128;
/// Most requirements one gate decision may list.
pub const MAX_REQUIREMENTS: usize = 1000;
/// Most record ids one requirement of a gate decision may cite.
pub const MAX_REQUIREMENT_RECORDS: usize = 10_000;
/// Longest requirement name (`evidence:sbom`, `vulnerabilities:critical`), in characters.
pub const MAX_REQUIREMENT_NAME_CHARS: usize = 128;
/// Where a gate's policy came from: the built-in defaults, the policy stored in the vault, or a
/// policy file given for this one check.
pub const POLICY_SOURCES: [&str; 3] = ["built-in", "vault", "file"];
/// The languages a gate policy can be written in.
pub const POLICY_ENGINES: [&str; 2] = ["toml", "rego"];

// Patterns for the JSON Schemas, mirroring `crate::validate` (ECMA-262 syntax).
const IDENTIFIER_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._-]*$";
const VERSION_PATTERN: &str = "^[!-~]+$";
const GIT_SHA_PATTERN: &str = "^([0-9A-Fa-f]{40}|[0-9A-Fa-f]{64})$";
const DIGEST_PATTERN: &str = "^[Ss][Hh][Aa]256:[0-9A-Fa-f]{64}$";
/// No control characters, at least one character that is not whitespace.
const LINE_PATTERN: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$";
/// Multi-line text: tabs and line breaks allowed, other control characters not; not blank.
const TEXT_PATTERN: &str = "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*\\S[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*$";
/// No whitespace, no control characters.
const LINK_PATTERN: &str = "^[^\\s\\u0000-\\u001F\\u007F-\\u009F]+$";
/// A record id: 32 hexadecimal characters (stored in lowercase).
const RECORD_ID_PATTERN: &str = "^[0-9A-Fa-f]{32}$";
/// Relative `/`-separated path without empty, `.` or `..` segments, backslashes or controls.
const PATH_PATTERN: &str = "^(?!(.*/)?\\.{1,2}(/|$))[^/\\\\\\u0000-\\u001F\\u007F-\\u009F]+(/[^/\\\\\\u0000-\\u001F\\u007F-\\u009F]+)*$";

// ---------------------------------------------------------------------------------------------
// Errors

/// Why a document was refused.
///
/// `path` is the JSON path of the offending value (`decision`, `blueprint.version`,
/// `files[3].path`; for an unknown field, the unknown field's own path), empty when the problem
/// is the document as a whole (not JSON, not an object, too large) or a required field is
/// missing (the reason names it). Displays as `field 'decision': unknown variant "maybe", expected "approve"
/// or "reject"`, or just the reason when the path is empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct DocumentError {
    /// JSON path of the offending value; empty for whole-document problems.
    pub path: String,
    /// What is wrong, with at most a short excerpt of the input.
    pub reason: String,
}

impl fmt::Display for DocumentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.reason)
        } else {
            write!(f, "field '{}': {}", self.path, self.reason)
        }
    }
}

impl DocumentError {
    fn new(path: impl Into<String>, reason: impl Into<String>) -> DocumentError {
        DocumentError {
            path: path.into(),
            reason: reason.into(),
        }
    }

    fn value(path: impl Into<String>, err: ValueError) -> DocumentError {
        DocumentError::new(path, err.to_string())
    }

    /// Translates a serde failure: syntax errors become whole-document "not JSON" errors with a
    /// position; data errors are attributed to the path serde_path_to_error tracked.
    fn from_serde(err: serde_path_to_error::Error<serde_json::Error>) -> DocumentError {
        let path = match err.path().to_string() {
            p if p == "." => String::new(),
            p => excerpt(&p),
        };
        let inner = err.into_inner();
        let message = serde_message(&inner);
        match inner.classify() {
            serde_json::error::Category::Data => DocumentError::new(path, message),
            _ => DocumentError::new(
                "",
                format!(
                    "not JSON: {message} at line {} column {}",
                    inner.line(),
                    inner.column()
                ),
            ),
        }
    }
}

/// serde_json's message without its position suffix, with backtick quoting turned into double
/// quotes and any user-supplied string cut to an excerpt (serde repeats unknown variants, unknown
/// field names and unexpected strings in full).
fn serde_message(err: &serde_json::Error) -> String {
    let full = err.to_string();
    let message = if err.line() == 0 {
        full.as_str()
    } else {
        let suffix = format!(" at line {} column {}", err.line(), err.column());
        full.strip_suffix(suffix.as_str()).unwrap_or(full.as_str())
    };
    cut_user_data(message)
}

fn cut_user_data(message: &str) -> String {
    // `unknown variant `X`, expected ...` and `unknown field `X`, ...`: the user's X sits between
    // the first backtick and the last "`, " that starts serde's own continuation.
    for head in ["unknown variant `", "unknown field `"] {
        if let Some(rest) = message.strip_prefix(head)
            && let Some(end) = ["`, expected", "`, there are no"]
                .iter()
                .filter_map(|m| rest.rfind(m))
                .max()
        {
            let given = &rest[..end];
            let tail = &rest[end + 1..];
            return format!(
                "{}\"{}\"{}",
                head.trim_end_matches('`'),
                excerpt(given),
                cap(&tail.replace('`', "\""))
            );
        }
    }
    // `invalid type: string "X", expected ...` (X is Debug-escaped).
    for head in ["invalid type: string \"", "invalid value: string \""] {
        if let Some(rest) = message.strip_prefix(head)
            && let Some(end) = rest.rfind("\", expected")
        {
            return format!(
                "{head}{}{}",
                excerpt(&rest[..end]),
                cap(&rest[end..].replace('`', "\""))
            );
        }
    }
    // `invalid type: integer `5`, expected a string`: numbers and booleans lose their
    // backticks (quotes would make them look like strings), and serde's data-model names become
    // JSON's.
    for head in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(head)
            && let Some((unexpected, expected)) = rest.rsplit_once(", expected ")
        {
            let unexpected = match unexpected {
                "sequence" => "array".to_string(),
                "map" => "object".to_string(),
                "unit value" => "null".to_string(),
                other => excerpt(&other.replace('`', "")),
            };
            return format!(
                "{head}{unexpected}, expected {}",
                cap(&expected.replace('`', "\""))
            );
        }
    }
    cap(&message.replace('`', "\""))
}

/// A last bound on message length, for shapes of serde message not recognized above. Long
/// enough for the list of every format name.
fn cap(s: &str) -> String {
    const MAX: usize = 1024;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Shared pieces

/// A blueprint (the versioned definition of a service or agent) and one of its versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BlueprintRef {
    /// Blueprint name, e.g. `checkout-api`: letters, digits, `.`, `_` and `-`, starting with a
    /// letter or digit, at most 128 characters.
    #[schemars(length(min = 1, max = 128), regex(pattern = IDENTIFIER_PATTERN))]
    pub name: String,
    /// Blueprint version, e.g. `1.4.2` or `2025.03.14+build.7`: printable ASCII without spaces,
    /// at most 128 characters.
    #[schemars(length(min = 1, max = 128), regex(pattern = VERSION_PATTERN))]
    pub version: String,
}

impl BlueprintRef {
    fn check(&mut self, path: &str) -> Result<(), DocumentError> {
        self.name = validate::blueprint_name(&self.name)
            .map_err(|e| DocumentError::value(format!("{path}.name"), e))?;
        self.version = validate::version(&self.version)
            .map_err(|e| DocumentError::value(format!("{path}.version"), e))?;
        Ok(())
    }
}

/// What an approver decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// The change may go ahead.
    Approve,
    /// The change must not go ahead.
    Reject,
}

impl Decision {
    /// The serialized name, `approve` or `reject`.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Reject => "reject",
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How far a deploy got when its receipt was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeployStatus {
    /// The deploy began; a later receipt records how it ended.
    Started,
    /// The new version is running and passed its checks.
    Succeeded,
    /// The deploy did not complete.
    Failed,
}

impl DeployStatus {
    /// The serialized name, e.g. `succeeded`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeployStatus::Started => "started",
            DeployStatus::Succeeded => "succeeded",
            DeployStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for DeployStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a gate (or one of its requirements) decided: pass, pass with a warning, or fail (the
/// deploy must not go ahead).
///
/// Ordered from best to worst (`pass`, `warn`, `fail`): the outcome of several requirements is
/// the worst of them, their maximum.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Satisfied.
    Pass,
    /// Satisfied, with something a reviewer should look at.
    Warn,
    /// Not satisfied: the deploy must not go ahead.
    Fail,
}

impl Outcome {
    /// The serialized name, `pass`, `warn` or `fail`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Warn => "warn",
            Outcome::Fail => "fail",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Reads an RFC 3339 timestamp (any offset) and converts it to UTC. Bare dates are refused here
/// (unlike [`validate::rfc3339`] for command-line input): a document records an instant.
fn de_time<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let s = Cow::<str>::deserialize(d)?;
    parse_time(&s).map_err(de::Error::custom)
}

fn de_opt_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    match Option::<Cow<str>>::deserialize(d)? {
        None => Ok(None),
        Some(s) => parse_time(&s).map(Some).map_err(de::Error::custom),
    }
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            format!(
                "invalid timestamp '{}': expected RFC 3339 such as 2025-03-14T09:26:53Z",
                excerpt(s)
            )
        })
}

/// Deserializes a sequence of at most `MAX` elements, failing as soon as it grows past that
/// rather than after the whole array is in memory.
fn bounded<'de, D, T, const MAX: usize>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Bounded<T, const MAX: usize>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>, const MAX: usize> Visitor<'de> for Bounded<T, MAX> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "an array of at most {MAX} entries")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
            while let Some(item) = seq.next_element()? {
                if out.len() == MAX {
                    return Err(de::Error::custom(format!(
                        "too many entries: at most {MAX} allowed"
                    )));
                }
                out.push(item);
            }
            Ok(out)
        }
    }

    d.deserialize_seq(Bounded::<T, MAX>(PhantomData))
}

/// The schema of a `_type` field: the one URI a document of that type carries.
fn type_schema(uri: &str) -> Schema {
    json_schema!({ "type": "string", "const": uri })
}

fn approval_type_schema(_: &mut SchemaGenerator) -> Schema {
    type_schema(APPROVAL_TYPE)
}
fn deploy_type_schema(_: &mut SchemaGenerator) -> Schema {
    type_schema(DEPLOY_TYPE)
}
fn rollback_type_schema(_: &mut SchemaGenerator) -> Schema {
    type_schema(ROLLBACK_TYPE)
}
fn policy_result_type_schema(_: &mut SchemaGenerator) -> Schema {
    type_schema(POLICY_RESULT_TYPE)
}
fn policy_source_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "enum": POLICY_SOURCES })
}
fn policy_engine_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "enum": POLICY_ENGINES })
}
fn bundle_type_schema(_: &mut SchemaGenerator) -> Schema {
    type_schema(BUNDLE_MANIFEST_TYPE)
}

/// `Option<Kind>`: [`Kind`] lives in `model` without a schema of its own; its names are the enum.
fn kind_schema(_: &mut SchemaGenerator) -> Schema {
    let mut names: Vec<serde_json::Value> = Kind::ALL.iter().map(|k| k.as_str().into()).collect();
    names.push(serde_json::Value::Null);
    json_schema!({ "enum": names })
}

/// `Option<Format>`, like [`kind_schema`].
fn format_schema(_: &mut SchemaGenerator) -> Schema {
    let mut names: Vec<serde_json::Value> = Format::ALL.iter().map(|f| f.as_str().into()).collect();
    names.push(serde_json::Value::Null);
    json_schema!({ "enum": names })
}

fn check_type(found: &str, expected: &str) -> Result<(), DocumentError> {
    if found == expected {
        Ok(())
    } else {
        Err(DocumentError::new(
            "_type",
            format!("is \"{}\", expected \"{expected}\"", excerpt(found)),
        ))
    }
}

fn check_value(
    path: &str,
    value: &mut String,
    f: fn(&str) -> Result<String, ValueError>,
) -> Result<(), DocumentError> {
    *value = f(value).map_err(|e| DocumentError::value(path, e))?;
    Ok(())
}

fn check_opt(
    path: &str,
    value: &mut Option<String>,
    f: fn(&str) -> Result<String, ValueError>,
) -> Result<(), DocumentError> {
    match value {
        Some(v) => check_value(path, v, f),
        None => Ok(()),
    }
}

/// Free text such as a reason: not blank, at most `max` characters, line breaks and tabs allowed
/// but no other control characters (they hide text from reviewers in terminals).
fn check_text(path: &str, s: &str, max: usize) -> Result<(), DocumentError> {
    if s.trim().is_empty() {
        return Err(DocumentError::new(path, "must not be empty"));
    }
    let n = s.chars().count();
    if n > max {
        return Err(DocumentError::new(
            path,
            format!("too long: {n} characters, at most {max} allowed"),
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(DocumentError::new(
            path,
            format!("control character '{}' is not allowed", c.escape_default()),
        ));
    }
    Ok(())
}

/// A one-line label such as a role or a deploy target: not blank, no control characters.
fn check_line(path: &str, s: &str, max: usize) -> Result<(), DocumentError> {
    check_text(path, s, max)?;
    if s.contains(['\n', '\r', '\t']) {
        return Err(DocumentError::new(
            path,
            "must be a single line without tabs",
        ));
    }
    Ok(())
}

/// A URL or ticket id: no whitespace, no control characters.
fn check_link(path: &str, s: &str) -> Result<(), DocumentError> {
    if s.is_empty() {
        return Err(DocumentError::new(path, "must not be empty"));
    }
    let n = s.chars().count();
    if n > MAX_LINK_CHARS {
        return Err(DocumentError::new(
            path,
            format!("too long: {n} characters, at most {MAX_LINK_CHARS} allowed"),
        ));
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(DocumentError::new(
            path,
            format!(
                "'{}' contains whitespace or control characters; expected a URL or ticket id",
                excerpt(s)
            ),
        ));
    }
    Ok(())
}

/// Validates and normalizes a list of subject digests, dropping repeats (keeping the first).
fn check_subjects(path: &str, subjects: &mut Vec<String>) -> Result<(), DocumentError> {
    let mut seen = std::collections::HashSet::with_capacity(subjects.len());
    let mut out = Vec::with_capacity(subjects.len());
    for (i, s) in subjects.iter().enumerate() {
        let d = validate::digest(s).map_err(|e| DocumentError::value(format!("{path}[{i}]"), e))?;
        if seen.insert(d.clone()) {
            out.push(d);
        }
    }
    *subjects = out;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Approval

/// A human decision to let a change go ahead (or not): who decided, when, why, and for which
/// environment. Production deploys, database migrations and publishing images outside the
/// organisation need one.
///
/// An approval that names `vulnerabilities` is an *exception*: an accepted risk, which must
/// approve and must expire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend(
    "if" = { "required": ["vulnerabilities"], "properties": { "vulnerabilities": { "minItems": 1 } } },
    "then" = { "required": ["expires_at"], "properties": { "decision": { "const": "approve" } } }
))]
pub struct Approval {
    /// Document type: always `https://evault.dev/approval/v1`.
    #[serde(rename = "_type")]
    #[schemars(schema_with = "approval_type_schema")]
    pub type_: String,
    /// Who decided: a person's identity as the organisation knows it (e.g. an email address or
    /// SSO login), not a shared account.
    #[schemars(length(min = 1, max = 256), regex(pattern = LINE_PATTERN))]
    pub approver: String,
    /// The decision: `approve` or `reject`.
    pub decision: Decision,
    /// Why: the reasoning an auditor will read, e.g. the risk accepted and what was checked.
    /// Not empty, at most 4096 characters.
    #[schemars(length(min = 1, max = 4096), regex(pattern = TEXT_PATTERN))]
    pub reason: String,
    /// The environment the decision applies to, e.g. `production`.
    #[schemars(length(min = 1, max = 64), regex(pattern = IDENTIFIER_PATTERN))]
    pub environment: String,
    /// When the decision was made (RFC 3339; stored in UTC).
    #[serde(deserialize_with = "de_time")]
    pub time: DateTime<Utc>,
    /// The blueprint version being approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blueprint: Option<BlueprintRef>,
    /// The git commit being approved: 40 or 64 hexadecimal characters (stored in lowercase).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = GIT_SHA_PATTERN))]
    pub git_sha: Option<String>,
    /// When the approval stops counting (RFC 3339), e.g. for a time-boxed exception; must be
    /// after `time`.
    #[serde(
        default,
        deserialize_with = "de_opt_time",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_at: Option<DateTime<Utc>>,
    /// The capacity the approver acted in, e.g. `approver`, `release-manager` or `ciso`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), regex(pattern = LINE_PATTERN))]
    pub role: Option<String>,
    /// The change ticket behind the decision: a URL or an id such as `CHG-1234`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048), regex(pattern = LINK_PATTERN))]
    pub ticket: Option<String>,
    /// Vulnerability ids (e.g. `CVE-2024-3094`, `GHSA-...`) whose risk this decision accepts: an
    /// approval that names vulnerabilities is an *exception*, which a release gate counts against
    /// its vulnerability thresholds until `expires_at`, and never as an approval of the release
    /// itself.
    #[serde(
        default,
        deserialize_with = "bounded::<_, _, MAX_EXCEPTION_VULNERABILITIES>",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(
        length(max = MAX_EXCEPTION_VULNERABILITIES),
        inner(length(min = 1, max = MAX_VULNERABILITY_ID_CHARS), regex(pattern = LINK_PATTERN))
    )]
    pub vulnerabilities: Vec<String>,
}

impl Approval {
    /// Whether this approval is an exception (it names vulnerabilities whose risk it accepts)
    /// rather than an approval of a release.
    pub fn is_exception(&self) -> bool {
        !self.vulnerabilities.is_empty()
    }

    /// Checks every value and normalizes it (lowercase SHA), as [`parse_native`] does.
    pub fn validated(mut self) -> Result<Approval, DocumentError> {
        check_type(&self.type_, APPROVAL_TYPE)?;
        check_value("approver", &mut self.approver, validate::actor)?;
        check_text("reason", &self.reason, MAX_REASON_CHARS)?;
        check_value("environment", &mut self.environment, validate::environment)?;
        if let Some(b) = &mut self.blueprint {
            b.check("blueprint")?;
        }
        check_opt("git_sha", &mut self.git_sha, validate::git_sha)?;
        if let Some(expires_at) = self.expires_at
            && expires_at <= self.time
        {
            return Err(DocumentError::new(
                "expires_at",
                format!(
                    "{} is not after the approval time {}",
                    expires_at.to_rfc3339(),
                    self.time.to_rfc3339()
                ),
            ));
        }
        if let Some(role) = &self.role {
            check_line("role", role, MAX_ROLE_CHARS)?;
        }
        if let Some(ticket) = &self.ticket {
            check_link("ticket", ticket)?;
        }
        check_vulnerabilities(&mut self.vulnerabilities)?;
        if self.is_exception() {
            if self.expires_at.is_none() {
                return Err(DocumentError::new(
                    "expires_at",
                    "required for an exception (an approval that names vulnerabilities): an \
                     accepted risk must expire",
                ));
            }
            if self.decision != Decision::Approve {
                return Err(DocumentError::new(
                    "decision",
                    format!(
                        "is \"{}\", but an exception (an approval that names vulnerabilities) \
                         accepts a risk: it must be \"approve\"",
                        self.decision
                    ),
                ));
            }
        }
        Ok(self)
    }
}

/// An exception's vulnerability ids: each one token of at most
/// [`MAX_VULNERABILITY_ID_CHARS`] characters; repeats (compared case-insensitively, as
/// `cve-2024-3094` and `CVE-2024-3094` are the same vulnerability) dropped, keeping the first.
fn check_vulnerabilities(ids: &mut Vec<String>) -> Result<(), DocumentError> {
    if ids.len() > MAX_EXCEPTION_VULNERABILITIES {
        return Err(DocumentError::new(
            "vulnerabilities",
            format!("too many entries: at most {MAX_EXCEPTION_VULNERABILITIES} allowed"),
        ));
    }
    let mut seen = std::collections::HashSet::with_capacity(ids.len());
    let mut out = Vec::with_capacity(ids.len());
    for (i, id) in std::mem::take(ids).into_iter().enumerate() {
        let path = format!("vulnerabilities[{i}]");
        if id.is_empty() {
            return Err(DocumentError::new(path, "must not be empty"));
        }
        let n = id.chars().count();
        if n > MAX_VULNERABILITY_ID_CHARS {
            return Err(DocumentError::new(
                path,
                format!("too long: {n} characters, at most {MAX_VULNERABILITY_ID_CHARS} allowed"),
            ));
        }
        if id.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(DocumentError::new(
                path,
                format!(
                    "'{}' contains whitespace or control characters; expected a vulnerability id \
                     such as CVE-2024-3094",
                    excerpt(&id)
                ),
            ));
        }
        if seen.insert(id.to_lowercase()) {
            out.push(id);
        }
    }
    *ids = out;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Deploy

/// A deploy receipt: which artifact was deployed to which environment, when and by whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Deploy {
    /// Document type: always `https://evault.dev/deploy/v1`.
    #[serde(rename = "_type")]
    #[schemars(schema_with = "deploy_type_schema")]
    pub type_: String,
    /// The environment deployed to, e.g. `production`.
    #[schemars(length(min = 1, max = 64), regex(pattern = IDENTIFIER_PATTERN))]
    pub environment: String,
    /// Digest of the deployed artifact (e.g. the container image): `sha256:` and 64 hexadecimal
    /// characters (stored in lowercase).
    #[schemars(regex(pattern = DIGEST_PATTERN))]
    pub artifact: String,
    /// When the deploy happened (RFC 3339; stored in UTC).
    #[serde(deserialize_with = "de_time")]
    pub time: DateTime<Utc>,
    /// Who or what deployed: a person or the CI identity.
    #[schemars(length(min = 1, max = 256), regex(pattern = LINE_PATTERN))]
    pub actor: String,
    /// The blueprint version deployed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blueprint: Option<BlueprintRef>,
    /// The git commit the artifact was built from: 40 or 64 hexadecimal characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = GIT_SHA_PATTERN))]
    pub git_sha: Option<String>,
    /// How far the deploy got: `started`, `succeeded` or `failed`. Absent when the pipeline does
    /// not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<DeployStatus>,
    /// Where within the environment, free text: cluster, region, namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256), regex(pattern = LINE_PATTERN))]
    pub target: Option<String>,
    /// The CI run that deployed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256), regex(pattern = LINE_PATTERN))]
    pub run_id: Option<String>,
}

impl Deploy {
    /// Checks every value and normalizes it (lowercase digest and SHA), as [`parse_native`] does.
    pub fn validated(mut self) -> Result<Deploy, DocumentError> {
        check_type(&self.type_, DEPLOY_TYPE)?;
        check_value("environment", &mut self.environment, validate::environment)?;
        check_value("artifact", &mut self.artifact, validate::digest)?;
        check_value("actor", &mut self.actor, validate::actor)?;
        if let Some(b) = &mut self.blueprint {
            b.check("blueprint")?;
        }
        check_opt("git_sha", &mut self.git_sha, validate::git_sha)?;
        if let Some(target) = &self.target {
            check_line("target", target, MAX_TARGET_CHARS)?;
        }
        check_opt("run_id", &mut self.run_id, validate::run_id)?;
        Ok(self)
    }
}

// ---------------------------------------------------------------------------------------------
// Rollback

/// A rollback record: an environment was taken back from one version to an earlier one, what
/// triggered it, why, and the incident it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rollback {
    /// Document type: always `https://evault.dev/rollback/v1`.
    #[serde(rename = "_type")]
    #[schemars(schema_with = "rollback_type_schema")]
    pub type_: String,
    /// The environment rolled back, e.g. `production`.
    #[schemars(length(min = 1, max = 64), regex(pattern = IDENTIFIER_PATTERN))]
    pub environment: String,
    /// The version that was running and was rolled back, e.g. `1.4.2`.
    #[schemars(length(min = 1, max = 128), regex(pattern = VERSION_PATTERN))]
    pub from_version: String,
    /// The last known-good version restored, e.g. `1.4.1`.
    #[schemars(length(min = 1, max = 128), regex(pattern = VERSION_PATTERN))]
    pub to_version: String,
    /// The condition that triggered the rollback, e.g. `error rate > 5% for 5 minutes`.
    #[schemars(length(min = 1, max = 4096), regex(pattern = TEXT_PATTERN))]
    pub trigger: String,
    /// Why rolling back was the right response, and what was verified afterwards.
    #[schemars(length(min = 1, max = 4096), regex(pattern = TEXT_PATTERN))]
    pub reason: String,
    /// When the rollback happened (RFC 3339; stored in UTC).
    #[serde(deserialize_with = "de_time")]
    pub time: DateTime<Utc>,
    /// Who or what rolled back: a person or an automated controller.
    #[schemars(length(min = 1, max = 256), regex(pattern = LINE_PATTERN))]
    pub actor: String,
    /// Name of the blueprint rolled back, e.g. `checkout-api`. Only the name: the versions are
    /// `from_version` and `to_version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128), regex(pattern = IDENTIFIER_PATTERN))]
    pub blueprint: Option<String>,
    /// Link to the incident report this rollback belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048), regex(pattern = LINK_PATTERN))]
    pub incident: Option<String>,
    /// Digest of the artifact of `to_version`, the one running after the rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DIGEST_PATTERN))]
    pub artifact: Option<String>,
}

impl Rollback {
    /// Checks every value and normalizes it (lowercase digest), as [`parse_native`] does.
    pub fn validated(mut self) -> Result<Rollback, DocumentError> {
        check_type(&self.type_, ROLLBACK_TYPE)?;
        check_value("environment", &mut self.environment, validate::environment)?;
        check_value("from_version", &mut self.from_version, validate::version)?;
        check_value("to_version", &mut self.to_version, validate::version)?;
        check_text("trigger", &self.trigger, MAX_REASON_CHARS)?;
        check_text("reason", &self.reason, MAX_REASON_CHARS)?;
        check_value("actor", &mut self.actor, validate::actor)?;
        check_opt("blueprint", &mut self.blueprint, validate::blueprint_name)?;
        if let Some(incident) = &self.incident {
            check_link("incident", incident)?;
        }
        check_opt("artifact", &mut self.artifact, validate::digest)?;
        Ok(self)
    }
}

// ---------------------------------------------------------------------------------------------
// Policy result

/// A release gate's decision, as `evault gate check` records it: which blueprint version and
/// commit it judged for which environment, under which policy, what each requirement found, and
/// the overall outcome. Kept as evidence so that an auditor can see why a deploy was let through
/// (or stopped), and with which records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyResult {
    /// Document type: always `https://evault.dev/policy-result/v1`.
    #[serde(rename = "_type")]
    #[schemars(schema_with = "policy_result_type_schema")]
    pub type_: String,
    /// The blueprint version the gate judged.
    pub blueprint: BlueprintRef,
    /// The git commit the gate judged: 40 or 64 hexadecimal characters (stored in lowercase).
    #[schemars(regex(pattern = GIT_SHA_PATTERN))]
    pub git_sha: String,
    /// The environment the gate guards, e.g. `production`.
    #[schemars(length(min = 1, max = 64), regex(pattern = IDENTIFIER_PATTERN))]
    pub environment: String,
    /// Digest of the artifact about to be deployed (e.g. the container image), when the check
    /// named one: `sha256:` and 64 hexadecimal characters (stored in lowercase).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DIGEST_PATTERN))]
    pub artifact: Option<String>,
    /// The gate's decision: `pass`, `warn` (pass, with something to look at) or `fail` (the
    /// deploy must not go ahead). Always the worst `status` among `requirements`.
    pub decision: Outcome,
    /// When the gate decided (RFC 3339; stored in UTC).
    #[serde(deserialize_with = "de_time")]
    pub time: DateTime<Utc>,
    /// Who or what ran the check: a person or the CI identity.
    #[schemars(length(min = 1, max = 256), regex(pattern = LINE_PATTERN))]
    pub actor: String,
    /// The policy the gate applied.
    pub policy: PolicyRef,
    /// What each requirement of the policy found, in the order the policy lists them: at least
    /// one, at most 1000.
    #[serde(deserialize_with = "bounded::<_, _, MAX_REQUIREMENTS>")]
    #[schemars(length(min = 1, max = MAX_REQUIREMENTS))]
    pub requirements: Vec<RequirementResult>,
}

/// The policy a gate applied: where it came from, its language, and the digest of its text, so
/// that the decision can be reproduced and the policy in force at the time proven.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyRef {
    /// Where the policy came from: `built-in` (evault's defaults), `vault` (the policy stored in
    /// the vault) or `file` (a policy file given for this check).
    #[schemars(schema_with = "policy_source_schema")]
    pub source: String,
    /// The policy's language: `toml` or `rego`.
    #[schemars(schema_with = "policy_engine_schema")]
    pub engine: String,
    /// SHA-256 of the policy text: `sha256:` and 64 hexadecimal characters (stored in
    /// lowercase).
    #[schemars(regex(pattern = DIGEST_PATTERN))]
    pub digest: String,
}

/// What one requirement of a gate's policy found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequirementResult {
    /// The requirement, e.g. `evidence:sbom`, `vulnerabilities:critical`, `approvals` or
    /// `rego:deny`: one line, at most 128 characters.
    #[schemars(length(min = 1, max = 128), regex(pattern = LINE_PATTERN))]
    pub name: String,
    /// What the requirement decided: `pass`, `warn` or `fail`.
    pub status: Outcome,
    /// What was found, for the person reading the decision, e.g. `2 critical vulnerabilities
    /// (CVE-2024-3094, CVE-2024-6387); at most 0 allowed`. Not empty, at most 4096 characters.
    #[schemars(length(min = 1, max = 4096), regex(pattern = TEXT_PATTERN))]
    pub message: String,
    /// Ids of the vault records the requirement was judged on (32 hexadecimal characters, stored
    /// in lowercase), e.g. the SBOM found or the approvals counted. At most 10000.
    #[serde(
        default,
        deserialize_with = "bounded::<_, _, MAX_REQUIREMENT_RECORDS>",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(length(max = MAX_REQUIREMENT_RECORDS), inner(regex(pattern = RECORD_ID_PATTERN)))]
    pub records: Vec<String>,
}

impl PolicyResult {
    /// Checks every value and normalizes it (lowercase SHA, digests and record ids), as
    /// [`parse_native`] does; also that `decision` is the worst requirement `status`.
    pub fn validated(mut self) -> Result<PolicyResult, DocumentError> {
        check_type(&self.type_, POLICY_RESULT_TYPE)?;
        self.blueprint.check("blueprint")?;
        check_value("git_sha", &mut self.git_sha, validate::git_sha)?;
        check_value("environment", &mut self.environment, validate::environment)?;
        check_opt("artifact", &mut self.artifact, validate::digest)?;
        check_value("actor", &mut self.actor, validate::actor)?;
        self.policy.check("policy")?;
        if self.requirements.is_empty() {
            return Err(DocumentError::new(
                "requirements",
                "must not be empty: a gate decision lists the requirements it checked",
            ));
        }
        if self.requirements.len() > MAX_REQUIREMENTS {
            return Err(DocumentError::new(
                "requirements",
                format!("too many entries: at most {MAX_REQUIREMENTS} allowed"),
            ));
        }
        for (i, r) in self.requirements.iter_mut().enumerate() {
            r.check(&format!("requirements[{i}]"))?;
        }
        // The first requirement with the worst status, to name in the message.
        let (worst_at, worst) = self
            .requirements
            .iter()
            .enumerate()
            .map(|(i, r)| (i, r.status))
            .fold(
                (0, Outcome::Pass),
                |best, (i, s)| {
                    if s > best.1 { (i, s) } else { best }
                },
            );
        if self.decision != worst {
            return Err(DocumentError::new(
                "decision",
                format!(
                    "is \"{}\", but the worst requirement status is \"{worst}\" \
                     (requirements[{worst_at}], '{}'): the decision must be the worst status",
                    self.decision,
                    excerpt(&self.requirements[worst_at].name)
                ),
            ));
        }
        Ok(self)
    }
}

impl PolicyRef {
    fn check(&mut self, path: &str) -> Result<(), DocumentError> {
        check_one_of(&format!("{path}.source"), &self.source, &POLICY_SOURCES)?;
        check_one_of(&format!("{path}.engine"), &self.engine, &POLICY_ENGINES)?;
        check_value(
            &format!("{path}.digest"),
            &mut self.digest,
            validate::digest,
        )
    }
}

impl RequirementResult {
    fn check(&mut self, path: &str) -> Result<(), DocumentError> {
        check_line(
            &format!("{path}.name"),
            &self.name,
            MAX_REQUIREMENT_NAME_CHARS,
        )?;
        check_text(&format!("{path}.message"), &self.message, MAX_REASON_CHARS)?;
        if self.records.len() > MAX_REQUIREMENT_RECORDS {
            return Err(DocumentError::new(
                format!("{path}.records"),
                format!("too many entries: at most {MAX_REQUIREMENT_RECORDS} allowed"),
            ));
        }
        for (j, id) in self.records.iter_mut().enumerate() {
            *id = record_id(&format!("{path}.records[{j}]"), id)?;
        }
        Ok(())
    }
}

/// A value that must be one of a few fixed names.
fn check_one_of(path: &str, value: &str, allowed: &[&str]) -> Result<(), DocumentError> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(DocumentError::new(
            path,
            format!(
                "unknown value \"{}\", expected {}",
                excerpt(value),
                validate::quoted_list(allowed)
            ),
        ))
    }
}

/// A vault record id: exactly 32 hexadecimal characters, returned in lowercase.
fn record_id(path: &str, id: &str) -> Result<String, DocumentError> {
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(id.to_ascii_lowercase())
    } else {
        Err(DocumentError::new(
            path,
            format!(
                "invalid record id '{}': expected 32 hexadecimal characters",
                excerpt(id)
            ),
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Native documents

/// One of evault's own evidence documents, as [`parse_native`] returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum NativeDocument {
    /// An approval (`https://evault.dev/approval/v1`).
    Approval(Approval),
    /// A deploy receipt (`https://evault.dev/deploy/v1`).
    Deploy(Deploy),
    /// A rollback record (`https://evault.dev/rollback/v1`).
    Rollback(Rollback),
    /// A release gate's decision (`https://evault.dev/policy-result/v1`).
    PolicyResult(PolicyResult),
}

impl NativeDocument {
    /// The format evault records this document under.
    pub fn format(&self) -> Format {
        match self {
            NativeDocument::Approval(_) => Format::EvaultApproval,
            NativeDocument::Deploy(_) => Format::EvaultDeploy,
            NativeDocument::Rollback(_) => Format::EvaultRollback,
            NativeDocument::PolicyResult(_) => Format::EvaultPolicyResult,
        }
    }

    /// The blueprint this document is about: name and version for approvals, deploys and gate
    /// decisions, name only for rollbacks (which are about two versions, `from_version` and
    /// `to_version`).
    pub fn blueprint(&self) -> Option<(&str, Option<&str>)> {
        match self {
            NativeDocument::Approval(Approval { blueprint, .. })
            | NativeDocument::Deploy(Deploy { blueprint, .. }) => blueprint
                .as_ref()
                .map(|b| (b.name.as_str(), Some(b.version.as_str()))),
            NativeDocument::Rollback(r) => r.blueprint.as_deref().map(|name| (name, None)),
            NativeDocument::PolicyResult(p) => Some((
                p.blueprint.name.as_str(),
                Some(p.blueprint.version.as_str()),
            )),
        }
    }

    /// The git commit this document is about, if it names one.
    pub fn git_sha(&self) -> Option<&str> {
        match self {
            NativeDocument::Approval(a) => a.git_sha.as_deref(),
            NativeDocument::Deploy(d) => d.git_sha.as_deref(),
            NativeDocument::Rollback(_) => None,
            NativeDocument::PolicyResult(p) => Some(&p.git_sha),
        }
    }

    /// The environment this document is about.
    pub fn environment(&self) -> &str {
        match self {
            NativeDocument::Approval(a) => &a.environment,
            NativeDocument::Deploy(d) => &d.environment,
            NativeDocument::Rollback(r) => &r.environment,
            NativeDocument::PolicyResult(p) => &p.environment,
        }
    }

    /// The artifact digests this document is about: a deploy's artifact, a rollback's restored
    /// artifact and a gate decision's artifact if given; none for approvals (they are about a
    /// blueprint version or commit).
    pub fn subjects(&self) -> Vec<String> {
        match self {
            NativeDocument::Approval(_) => Vec::new(),
            NativeDocument::Deploy(d) => vec![d.artifact.clone()],
            NativeDocument::Rollback(r) => r.artifact.iter().cloned().collect(),
            NativeDocument::PolicyResult(p) => p.artifact.iter().cloned().collect(),
        }
    }
}

/// The format of an evault document type URI, e.g. [`Format::EvaultApproval`] for
/// [`APPROVAL_TYPE`]. `None` for anything else, including [`BUNDLE_MANIFEST_TYPE`] (a manifest
/// describes evidence but is not evidence itself).
pub fn native_type(type_uri: &str) -> Option<Format> {
    match type_uri {
        APPROVAL_TYPE => Some(Format::EvaultApproval),
        DEPLOY_TYPE => Some(Format::EvaultDeploy),
        ROLLBACK_TYPE => Some(Format::EvaultRollback),
        POLICY_RESULT_TYPE => Some(Format::EvaultPolicyResult),
        _ => None,
    }
}

/// The `_type`s [`parse_native`] takes.
const NATIVE_TYPES: [&str; 4] = [
    APPROVAL_TYPE,
    DEPLOY_TYPE,
    ROLLBACK_TYPE,
    POLICY_RESULT_TYPE,
];

/// Parses and validates an approval, deploy receipt, rollback record or gate decision, chosen by
/// its `_type`.
pub fn parse_native(bytes: &[u8]) -> Result<NativeDocument, DocumentError> {
    check_size(bytes, MAX_DOCUMENT_BYTES)?;
    let probe = probe(bytes)?;
    let Some(type_) = probe.type_ else {
        return Err(DocumentError::new(
            "_type",
            format!(
                "missing; an evault document names its type, one of {}",
                validate::quoted_list(&NATIVE_TYPES)
            ),
        ));
    };
    match native_type(&type_) {
        Some(Format::EvaultApproval) => typed::<Approval>(bytes)?
            .validated()
            .map(NativeDocument::Approval),
        Some(Format::EvaultDeploy) => typed::<Deploy>(bytes)?
            .validated()
            .map(NativeDocument::Deploy),
        Some(Format::EvaultRollback) => typed::<Rollback>(bytes)?
            .validated()
            .map(NativeDocument::Rollback),
        Some(Format::EvaultPolicyResult) => typed::<PolicyResult>(bytes)?
            .validated()
            .map(NativeDocument::PolicyResult),
        _ if type_ == BUNDLE_MANIFEST_TYPE => Err(DocumentError::new(
            "_type",
            "this is a bundle manifest, not an approval, deploy, rollback or policy-result document",
        )),
        _ => Err(DocumentError::new(
            "_type",
            format!(
                "unknown document type \"{}\", expected {}",
                excerpt(&type_),
                validate::quoted_list(&NATIVE_TYPES)
            ),
        )),
    }
}

fn check_size(bytes: &[u8], max: usize) -> Result<(), DocumentError> {
    if bytes.len() > max {
        return Err(DocumentError::new(
            "",
            format!(
                "document is {} bytes, larger than the {max}-byte limit",
                bytes.len()
            ),
        ));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(DocumentError::new(
            "",
            "empty document, expected a JSON object",
        ));
    }
    Ok(())
}

fn typed<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, DocumentError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(DocumentError::from_serde)?;
    // The probe has already read the whole input, so trailing bytes were reported there.
    Ok(value)
}

// ---------------------------------------------------------------------------------------------
// First pass: JSON syntax, the document's `_type` and its object shape.
//
// Derived struct deserializers also accept a JSON array (fields by position), which would let
// `["https://evault.dev/approval/v1", "alice", ...]` or `"blueprint": ["x", "1.0"]` through although
// the schemas say object. The probe reads the document once, cheaply (values are skipped, not
// stored), and refuses arrays where an object belongs: the top level, `blueprint` and `policy`,
// and the entries of `files` and `requirements`.

struct Probe {
    type_: Option<String>,
}

fn probe(bytes: &[u8]) -> Result<Probe, DocumentError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let probe: Probe =
        serde_path_to_error::deserialize(&mut de).map_err(DocumentError::from_serde)?;
    de.end().map_err(|e| {
        DocumentError::new(
            "",
            format!(
                "not JSON: {} at line {} column {}",
                serde_message(&e),
                e.line(),
                e.column()
            ),
        )
    })?;
    Ok(probe)
}

impl<'de> Deserialize<'de> for Probe {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Probe, D::Error> {
        struct ProbeVisitor;

        impl<'de> Visitor<'de> for ProbeVisitor {
            type Value = Probe;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Probe, A::Error> {
                let mut type_ = None;
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    match key.as_ref() {
                        "_type" => type_ = Some(map.next_value::<String>()?),
                        "blueprint" | "policy" => map.next_value_seed(Shape::NotArray)?,
                        "files" | "requirements" => map.next_value_seed(Shape::ArrayOfNonArrays)?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(Probe { type_ })
            }
        }

        d.deserialize_map(ProbeVisitor)
    }
}

/// What the probe accepts for a value: anything but an array, or (for `files` and
/// `requirements`) anything, with
/// array entries that are not arrays themselves. Other type mismatches are left to the typed pass.
#[derive(Clone, Copy)]
enum Shape {
    NotArray,
    ArrayOfNonArrays,
}

impl<'de> DeserializeSeed<'de> for Shape {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Shape {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        match self {
            Shape::NotArray => Err(de::Error::invalid_type(de::Unexpected::Seq, &self)),
            Shape::ArrayOfNonArrays => {
                while seq.next_element_seed(Shape::NotArray)?.is_some() {}
                Ok(())
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Bundle manifest

/// The manifest at the root of an evidence bundle (`evault-bundle.json`): what the bundle is
/// about (blueprint, commit, run, environment, artifact digests) and, optionally, what each file
/// in it is. Files the manifest does not list are detected by content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BundleManifest {
    /// Document type: always `https://evault.dev/bundle/v1`.
    #[serde(rename = "_type")]
    #[schemars(schema_with = "bundle_type_schema")]
    pub type_: String,
    /// The blueprint version every file in the bundle is evidence for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blueprint: Option<BlueprintRef>,
    /// The git commit the evidence is for: 40 or 64 hexadecimal characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = GIT_SHA_PATTERN))]
    pub git_sha: Option<String>,
    /// The source repository, e.g. `https://github.com/acme/checkout-api`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048), regex(pattern = LINK_PATTERN))]
    pub repo: Option<String>,
    /// The CI run that produced the bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256), regex(pattern = LINE_PATTERN))]
    pub run_id: Option<String>,
    /// The environment the evidence is for, e.g. `production`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), regex(pattern = IDENTIFIER_PATTERN))]
    pub environment: Option<String>,
    /// Digests (`sha256:` + 64 hexadecimal characters) of the artifacts every file is about,
    /// e.g. the container image built by the run.
    #[serde(
        default,
        deserialize_with = "bounded::<_, _, MAX_SUBJECTS>",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(length(max = MAX_SUBJECTS), inner(regex(pattern = DIGEST_PATTERN)))]
    pub subjects: Vec<String>,
    /// What the bundle's files are, when the pipeline knows better than content detection.
    /// At most 100000 entries, each path listed once.
    #[serde(
        default,
        deserialize_with = "bounded::<_, _, MAX_MANIFEST_FILES>",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(length(max = MAX_MANIFEST_FILES))]
    pub files: Vec<ManifestFile>,
}

/// One file of a bundle, as the manifest describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    /// Path of the file relative to the bundle root, `/`-separated, e.g.
    /// `devsecops/scan_report.json`; no empty, `.` or `..` segments, no backslashes.
    #[schemars(length(min = 1, max = 4096), regex(pattern = PATH_PATTERN))]
    pub path: String,
    /// What the file is evidence of, e.g. `sbom` or `rollback-plan`; detected from content when
    /// absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "kind_schema")]
    pub kind: Option<Kind>,
    /// How the file is encoded, e.g. `cyclonedx-json`; detected from content when absent. When
    /// given, the content must match it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "format_schema")]
    pub format: Option<Format>,
    /// Digests of the artifacts this file is about, in addition to the manifest's `subjects`.
    #[serde(
        default,
        deserialize_with = "bounded::<_, _, MAX_SUBJECTS>",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(length(max = MAX_SUBJECTS), inner(regex(pattern = DIGEST_PATTERN)))]
    pub subjects: Vec<String>,
}

impl BundleManifest {
    /// Checks every value and normalizes it, as [`parse_manifest`] does.
    pub fn validated(mut self) -> Result<BundleManifest, DocumentError> {
        check_type(&self.type_, BUNDLE_MANIFEST_TYPE)?;
        if let Some(b) = &mut self.blueprint {
            b.check("blueprint")?;
        }
        check_opt("git_sha", &mut self.git_sha, validate::git_sha)?;
        check_opt("repo", &mut self.repo, validate::repo)?;
        check_opt("run_id", &mut self.run_id, validate::run_id)?;
        check_opt("environment", &mut self.environment, validate::environment)?;
        check_subjects("subjects", &mut self.subjects)?;
        if self.files.len() > MAX_MANIFEST_FILES {
            return Err(DocumentError::new(
                "files",
                format!("too many entries: at most {MAX_MANIFEST_FILES} allowed"),
            ));
        }
        let mut seen: HashMap<&str, usize> = HashMap::with_capacity(self.files.len());
        for (i, file) in self.files.iter_mut().enumerate() {
            file.check(i)?;
        }
        for (i, file) in self.files.iter().enumerate() {
            match seen.entry(file.path.as_str()) {
                Entry::Vacant(v) => {
                    v.insert(i);
                }
                Entry::Occupied(o) => {
                    return Err(DocumentError::new(
                        format!("files[{i}].path"),
                        format!(
                            "duplicate path '{}', already listed at files[{}]",
                            excerpt(&file.path),
                            o.get()
                        ),
                    ));
                }
            }
        }
        Ok(self)
    }
}

impl ManifestFile {
    fn check(&mut self, i: usize) -> Result<(), DocumentError> {
        check_value(
            &format!("files[{i}].path"),
            &mut self.path,
            validate::bundle_path,
        )?;
        if let (Some(kind), Some(format)) = (self.kind, self.format)
            && !format.allows_kind(kind)
        {
            return Err(DocumentError::new(
                format!("files[{i}].kind"),
                format!(
                    "kind \"{kind}\" does not fit format \"{format}\" ({} is recorded as \"{}\")",
                    format.title(),
                    format.default_kind()
                ),
            ));
        }
        check_subjects(&format!("files[{i}].subjects"), &mut self.subjects)
    }
}

/// Parses and validates a bundle manifest (`evault-bundle.json`).
pub fn parse_manifest(bytes: &[u8]) -> Result<BundleManifest, DocumentError> {
    check_size(bytes, MAX_MANIFEST_BYTES)?;
    let probe = probe(bytes)?;
    match probe.type_.as_deref() {
        Some(BUNDLE_MANIFEST_TYPE) => {}
        None => {
            return Err(DocumentError::new(
                "_type",
                format!("missing; a bundle manifest has \"_type\": \"{BUNDLE_MANIFEST_TYPE}\""),
            ));
        }
        Some(other) => {
            return Err(DocumentError::new(
                "_type",
                format!(
                    "is \"{}\", expected \"{BUNDLE_MANIFEST_TYPE}\"",
                    excerpt(other)
                ),
            ));
        }
    }
    typed::<BundleManifest>(bytes)?.validated()
}

// ---------------------------------------------------------------------------------------------
// JSON Schemas

/// JSON Schemas (draft 2020-12) of the documents, as `(file name, schema)` pairs: the contents
/// of `schema/json/`, for pipelines that want to check a document before uploading it and for
/// editors.
pub fn json_schemas() -> Vec<(&'static str, serde_json::Value)> {
    vec![
        (
            "approval.schema.json",
            root_schema::<Approval>("approval", "evault approval"),
        ),
        (
            "deploy.schema.json",
            root_schema::<Deploy>("deploy", "evault deploy receipt"),
        ),
        (
            "rollback.schema.json",
            root_schema::<Rollback>("rollback", "evault rollback record"),
        ),
        (
            "policy-result.schema.json",
            root_schema::<PolicyResult>("policy-result", "evault gate decision"),
        ),
        (
            "bundle-manifest.schema.json",
            root_schema::<BundleManifest>("bundle", "evault bundle manifest"),
        ),
    ]
}

fn root_schema<T: JsonSchema>(slug: &str, title: &str) -> serde_json::Value {
    let mut schema = SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<T>();
    schema.insert(
        "$id".to_string(),
        format!("https://evault.dev/schemas/{slug}/v1.json").into(),
    );
    schema.insert("title".to_string(), title.into());
    schema.to_value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_are_cut_and_requoted() {
        let long = "x".repeat(5000);
        let m = cut_user_data(&format!(
            "unknown variant `{long}`, expected `approve` or `reject`"
        ));
        assert!(m.starts_with("unknown variant \"xxx"), "{m}");
        assert!(
            m.ends_with("…\", expected \"approve\" or \"reject\""),
            "{m}"
        );
        assert!(m.len() < 200);
        let m = cut_user_data("unknown field `a`b`, expected `x`");
        assert_eq!(m, "unknown field \"a`b\", expected \"x\"");
        let m = cut_user_data(&format!("invalid type: string \"{long}\", expected a map"));
        assert!(m.len() < 200, "{m}");
        assert!(m.ends_with("…\", expected a map"), "{m}");
        assert_eq!(
            cut_user_data("invalid type: integer `5`, expected a string"),
            "invalid type: integer 5, expected a string"
        );
        assert_eq!(
            cut_user_data("invalid type: sequence, expected struct X"),
            "invalid type: array, expected struct X"
        );
        let m = cut_user_data(&format!("something else {long}"));
        assert!(m.chars().count() <= 1025);
    }

    #[test]
    fn native_types_map_to_formats() {
        assert_eq!(native_type(APPROVAL_TYPE), Some(Format::EvaultApproval));
        assert_eq!(native_type(DEPLOY_TYPE), Some(Format::EvaultDeploy));
        assert_eq!(native_type(ROLLBACK_TYPE), Some(Format::EvaultRollback));
        assert_eq!(
            native_type(POLICY_RESULT_TYPE),
            Some(Format::EvaultPolicyResult)
        );
        assert_eq!(native_type(BUNDLE_MANIFEST_TYPE), None);
        assert_eq!(native_type("https://in-toto.io/Statement/v1"), None);
    }
}
