//! A streaming, bounded-memory JSON scanner that records the *facts* format detection needs
//! (which keys exist where, a few small scalar values) without building the document.
//!
//! API CONTRACT (implementation pending; see the brief in the commit that adds it).

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;

/// What to look for while scanning. Paths are RFC 6901 JSON Pointers (`/runs/0/tool/driver/name`);
/// in wildcard patterns every array index is written `*` (`/subject/*/digest/sha256`).
#[derive(Debug, Clone)]
pub struct ProbeConfig<'a> {
    /// Record facts only for paths with at most this many segments (keys and indexes both count).
    pub max_depth: usize,
    /// Maximum bytes kept of a recorded scalar string; longer ones are cut (and `truncated` set).
    pub scalar_limit: usize,
    /// Exact pointers whose string values are captured whole, up to `long_limit` bytes each.
    pub capture_long: &'a [&'a str],
    pub long_limit: usize,
    /// Wildcard patterns whose scalar values are all collected (in document order).
    pub collect: &'a [&'a str],
    /// Maximum values collected per pattern.
    pub collect_limit: usize,
    /// Maximum distinct entries in `wildcard_paths`.
    pub max_paths: usize,
    /// Maximum nesting depth of the document; deeper input is a syntax error.
    pub max_nesting: usize,
}

/// A JSON scalar as found in the document.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    String(String),
    /// The number's text as written.
    Number(String),
    Bool(bool),
    Null,
}

impl Scalar {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Scalar::String(s) => Some(s),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerType {
    Object,
    Array,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Container {
    pub ty: ContainerType,
    /// Number of members (object) or elements (array).
    pub len: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    Object,
    Array,
    String,
    Number,
    Bool,
    Null,
}

/// Result of a long-string capture.
#[derive(Debug, Clone, PartialEq)]
pub enum LongString {
    Captured(String),
    /// The value was longer than `long_limit`.
    TooLong,
}

#[derive(Debug, Clone, Default)]
pub struct JsonFacts {
    /// Number of top-level values (more than one means JSON Lines / concatenated JSON).
    pub documents: usize,
    /// Type of the first top-level value.
    pub root: Option<ValueType>,
    /// First document only: scalars at exact paths of depth <= max_depth in which every array
    /// index is 0.
    pub scalars: BTreeMap<String, Scalar>,
    /// First document only: containers at those same paths (the root is `""`).
    pub containers: BTreeMap<String, Container>,
    /// First document only: every path of depth <= max_depth with array indexes written `*`,
    /// containers and scalars alike (the root is `""`), up to `max_paths` entries.
    pub wildcard_paths: BTreeSet<String>,
    /// First document only: captures for `capture_long` pointers that were found.
    pub long_strings: BTreeMap<String, LongString>,
    /// First document only: collected values per `collect` pattern that matched at least once.
    pub collected: BTreeMap<String, Vec<Scalar>>,
    /// Some limit cut what was recorded (the scan itself still covered the whole input).
    pub truncated: bool,
}

/// Where and why the input is not JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid JSON at line {line}, column {column}: {message}")]
pub struct JsonSyntaxError {
    pub line: u64,
    pub column: u64,
    pub message: String,
}

/// Scans the whole input once.
pub fn probe_json<R: BufRead>(_reader: R, _config: &ProbeConfig<'_>) -> Result<JsonFacts, ProbeError> {
    unimplemented!("json_probe is being written")
}

/// Failure of a probe: the input is not well-formed, or reading it failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Syntax(#[from] JsonSyntaxError),
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
}
