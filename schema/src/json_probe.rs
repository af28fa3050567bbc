//! A streaming, bounded-memory JSON scanner that records the *facts* format detection needs
//! (which keys exist where, a few small scalar values) without building the document.
//!
//! Detection has to look inside files that can be several GiB (a monorepo SBOM, a SARIF log of a
//! whole fleet), so the scanner never holds the document: it is a resumable byte-level state
//! machine fed one `fill_buf` chunk at a time, and everything it keeps is bounded by
//! [`ProbeConfig`] (path stack by `max_nesting`, recorded values by the various limits). Values
//! nobody asked for are validated and skipped without being copied anywhere.
//!
//! The scan is also a strict RFC 8259 well-formedness check: a file is only called JSON (and
//! later, say, CycloneDX) when the whole of it parses, not because its first kilobyte looks right.
//! Two deliberate leniencies: invalid UTF-8 inside strings and unpaired `\u` surrogates are
//! accepted (RFC 8259 only says such strings behave unpredictably) and decoded lossily where a
//! value is recorded, because rejecting a 2 GiB SBOM over one bad byte in a licence text would
//! hide real evidence.
//!
//! Paths are RFC 6901 JSON Pointers. A key that is literally `*` looks the same as an array index
//! in wildcard paths (both in [`JsonFacts::wildcard_paths`] and when matching
//! [`ProbeConfig::collect`]); the contract writes indexes as `*`, so that ambiguity is accepted.
//! With duplicate keys, later values overwrite earlier ones in `scalars`, `containers` and
//! `long_strings` (and both are collected by `collect`), i.e. last one wins, like most parsers.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{self, BufRead};

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
///
/// Accepts one JSON value or several separated by whitespace (JSON Lines, concatenated JSON; as
/// with `serde_json`'s stream reader, objects, arrays and strings need no separator). Facts are
/// recorded for the first value only, but every value is checked. A leading UTF-8 byte order mark
/// is skipped; error columns count bytes, the BOM included.
///
/// Memory stays bounded whatever the input: besides the facts themselves (capped by `max_paths`,
/// `collect_limit` and the value limits) the scanner keeps one frame per open container (at most
/// `max_nesting`), the pointer of the current value while it is within `max_depth` or on the way
/// to a `capture_long`/`collect` pattern (keys longer than 1 KiB stop path tracking for their
/// subtree, and pointers longer than 2 KiB are not recorded), and one value buffer of at most
/// `max(scalar_limit, long_limit)` bytes.
pub fn probe_json<R: BufRead>(
    mut reader: R,
    config: &ProbeConfig<'_>,
) -> Result<JsonFacts, ProbeError> {
    let mut scanner = Scanner::new(config);
    loop {
        let chunk = match reader.fill_buf() {
            Ok(chunk) => chunk,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err.into()),
        };
        if chunk.is_empty() {
            break;
        }
        let len = chunk.len();
        scanner.feed(chunk)?;
        scanner.base += len as u64;
        reader.consume(len);
    }
    scanner.finish()?;
    Ok(scanner.facts)
}

/// Longest object key (decoded bytes) kept for building pointers. A longer key cannot be part of
/// any pointer detection cares about, and keeping it would let one hostile key use unbounded
/// memory, so its subtree is simply not recorded (and `truncated` is set if facts were lost).
const KEY_LIMIT: usize = 1024;

/// Longest wildcard pointer recorded in `wildcard_paths` (and so in `scalars` and `containers`).
/// Together with `max_paths` this bounds what the path maps can hold, whatever `max_depth` is;
/// longer pointers are left out and set `truncated`.
const POINTER_LIMIT: usize = 2048;

/// Extra bytes kept beyond `scalar_limit` so that the cut can land on a character boundary of the
/// decoded text instead of in the middle of a multi-byte character.
const CHAR_SLACK: usize = 4;

const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

const REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();

/// Bytes that end the fast path inside a string: the closing quote, an escape, or a control
/// character (which is an error). Everything else, including any byte >= 0x80, is string content.
const STRING_SPECIAL: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// Position inside a number, following the RFC 8259 grammar `-? int frac? exp?`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Num {
    /// Nothing consumed yet (the current byte is `-` or a digit).
    Start,
    Minus,
    /// A leading `0`, which must not be followed by another digit.
    Zero,
    Int,
    Dot,
    Frac,
    Exp,
    ExpSign,
    ExpDigits,
}

impl Num {
    /// Whether the number may end here.
    fn is_complete(self) -> bool {
        matches!(self, Num::Zero | Num::Int | Num::Frac | Num::ExpDigits)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Literal {
    True,
    False,
    Null,
}

impl Literal {
    fn text(self) -> &'static [u8] {
        match self {
            Literal::True => b"true",
            Literal::False => b"false",
            Literal::Null => b"null",
        }
    }

    fn scalar(self) -> Scalar {
        match self {
            Literal::True => Scalar::Bool(true),
            Literal::False => Scalar::Bool(false),
            Literal::Null => Scalar::Null,
        }
    }
}

/// Where the scanner is. Every state can be suspended at a chunk boundary, which is what lets the
/// scanner consume `fill_buf` chunks whole instead of asking the reader for one byte at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the very start: matched this many bytes of a byte order mark.
    Bom(u8),
    /// Between top-level values. `need_sep`: the previous value was a number or literal and no
    /// whitespace followed yet, so only a self-delimiting value may start here.
    TopLevel {
        need_sep: bool,
    },
    /// After `[`: an element or `]`.
    ArrayFirst,
    /// After `,` in an array: an element.
    ArrayNext,
    /// After `{`: a key or `}`.
    ObjectFirst,
    /// After `,` in an object: a key.
    ObjectNext,
    /// After a key: `:`.
    Colon,
    /// After `:`: the member's value.
    MemberValue,
    /// After a value inside a container: `,` or the closing bracket.
    AfterValue,
    /// Inside a string (key or value).
    Str,
    /// After a backslash in a string.
    StrEscape,
    /// Inside `\uXXXX`: `digits` hex digits read so far, accumulated in `code`.
    StrUnicode {
        digits: u8,
        code: u16,
    },
    Num(Num),
    Lit {
        literal: Literal,
        matched: u8,
    },
}

/// One open container.
#[derive(Debug, Clone, Copy)]
struct Frame {
    ty: ContainerType,
    /// Members or elements seen so far.
    count: usize,
    /// Lengths of the container's own exact and wildcard pointers in the path buffers; children
    /// truncate back to these before appending their segment.
    exact_len: usize,
    wild_len: usize,
    /// Every array index in the container's pointer is 0.
    zero: bool,
    /// The exact buffer holds the container's pointer (see [`Ctx::exact`]).
    exact: bool,
    /// A `capture_long` pointer lies below the container.
    capture_below: bool,
    /// Children's pointers are built: first document, and the children are within `max_depth` or
    /// this container lies on the way to a capture/collect pattern.
    track_children: bool,
    /// Record the container's length in `containers` when it closes.
    record: bool,
    /// The container's node in the path trie, if its wildcard pointer is recorded.
    path: Option<PathId>,
}

/// The value about to start (or being scanned).
#[derive(Debug, Clone, Copy, Default)]
struct Ctx {
    /// Segments in its pointer.
    depth: usize,
    /// The wildcard buffer holds its pointer (first document; within `max_depth` or on the way
    /// to a pattern; no overlong key on the way).
    tracked: bool,
    /// Every array index in its pointer is 0.
    zero: bool,
    /// The exact buffer holds its pointer. Exact pointers are only needed on all-zero paths (for
    /// `scalars` and `containers`) and on the way to a `capture_long` pointer; not building them
    /// elsewhere saves a copy per key in the bulk of a large array.
    exact: bool,
    /// Its node in the path trie: set iff it is within `max_depth` and its wildcard pointer is in
    /// `wildcard_paths` (which may be full).
    path: Option<PathId>,
}

/// Index of a node in `Scanner::paths`.
type PathId = usize;

/// Member positions remembered per trie node; objects wider than this fall back to hashing.
const MEMBER_HINTS: usize = 64;

/// A recorded wildcard pointer, as a node of a trie over pointer segments.
///
/// Nearly every value within `max_depth` must find out whether its wildcard pointer is already in
/// `wildcard_paths`. Hashing or comparing whole pointers for that dominated the scan, so each
/// node remembers which child was last seen at each member position: arrays of similar objects
/// repeat their keys in the same order, and then the question costs one short comparison of the
/// last segment. Misses fall back to a (keyed, so not attackable) hash map of whole pointers.
#[derive(Debug)]
struct PathNode {
    /// Last segment of the pointer, escaped, `*` for array elements.
    segment: Box<str>,
    /// The `*` child, once seen.
    element: Option<PathId>,
    /// The member child last seen at each position (up to `MEMBER_HINTS`).
    members: Vec<PathId>,
}

/// What the current scalar is recorded as.
#[derive(Debug, Clone, Copy, Default)]
struct Target {
    /// Into `scalars` at the current exact pointer.
    scalar: bool,
    /// Into `long_strings`, for this `capture_long` entry.
    capture: Option<usize>,
    /// Into `collected`, for this `collect` entry.
    collect: Option<usize>,
}

impl Target {
    fn wants_scalar(self) -> bool {
        self.scalar || self.collect.is_some()
    }
}

/// A `capture_long` or `collect` pattern with its depth precomputed, so that most values are
/// ruled out by comparing two integers.
#[derive(Debug, Clone, Copy)]
struct Pattern<'a> {
    text: &'a str,
    depth: usize,
}

impl<'a> Pattern<'a> {
    fn new(text: &'a str) -> Self {
        Pattern {
            text,
            depth: text.bytes().filter(|&b| b == b'/').count(),
        }
    }

    /// Whether `path` (of `depth` segments) is a proper ancestor of this pattern.
    fn extends(&self, path: &str, depth: usize) -> bool {
        self.depth > depth
            && self.text.starts_with(path)
            && self.text.as_bytes().get(path.len()) == Some(&b'/')
    }
}

struct Scanner<'c, 'a> {
    cfg: &'c ProbeConfig<'a>,
    captures: Vec<Pattern<'a>>,
    collects: Vec<Pattern<'a>>,
    facts: JsonFacts,
    /// The recorded wildcard pointers as a trie (see [`PathNode`]), and by whole pointer.
    paths: Vec<PathNode>,
    path_ids: HashMap<String, PathId>,
    state: State,
    stack: Vec<Frame>,
    /// Pointer of the current value with real array indexes (for `scalars`, `containers` and
    /// `capture_long`); valid only while `ctx.exact`.
    exact: String,
    /// The same pointer with array indexes written `*` (for `wildcard_paths` and `collect`);
    /// valid only while `ctx.tracked`.
    wild: String,
    ctx: Ctx,
    target: Target,
    /// The current string is an object key.
    in_key: bool,
    /// The current string or number is copied into `value` (a recorded value, or a key whose
    /// pointer is tracked); otherwise it is only validated.
    accumulate: bool,
    value: Vec<u8>,
    /// Decoded length of the current string or number, including what did not fit in `value`.
    value_len: usize,
    /// Bytes of the current value kept in `value`.
    value_limit: usize,
    /// A decoded high surrogate waiting for its low half.
    high_surrogate: Option<u16>,
    /// Absolute offset of the current chunk.
    base: u64,
    line: u64,
    /// Absolute offset of the first byte of the current line.
    line_start: u64,
}

impl<'c, 'a> Scanner<'c, 'a> {
    fn new(cfg: &'c ProbeConfig<'a>) -> Self {
        Scanner {
            cfg,
            captures: cfg.capture_long.iter().map(|p| Pattern::new(p)).collect(),
            collects: cfg.collect.iter().map(|p| Pattern::new(p)).collect(),
            facts: JsonFacts::default(),
            paths: Vec::new(),
            path_ids: HashMap::new(),
            state: State::Bom(0),
            stack: Vec::new(),
            exact: String::new(),
            wild: String::new(),
            ctx: Ctx::default(),
            target: Target::default(),
            in_key: false,
            accumulate: false,
            value: Vec::new(),
            value_len: 0,
            value_limit: 0,
            high_surrogate: None,
            base: 0,
            line: 1,
            line_start: 0,
        }
    }

    fn error_at_offset(&self, offset: u64, message: impl Into<String>) -> JsonSyntaxError {
        JsonSyntaxError {
            line: self.line,
            column: offset.saturating_sub(self.line_start) + 1,
            message: message.into(),
        }
    }

    /// Error at byte `i` of the current chunk.
    fn error_at(&self, i: usize, message: impl Into<String>) -> JsonSyntaxError {
        self.error_at_offset(self.base + i as u64, message)
    }

    /// Skips whitespace from `i`, counting lines; returns the index of the next other byte (or the
    /// chunk length).
    #[inline]
    fn skip_ws(&mut self, chunk: &[u8], mut i: usize) -> usize {
        while let Some(&b) = chunk.get(i) {
            match b {
                b' ' | b'\t' | b'\r' => {}
                b'\n' => {
                    self.line += 1;
                    self.line_start = self.base + i as u64 + 1;
                }
                _ => break,
            }
            i += 1;
        }
        i
    }

    /// Runs the state machine over one chunk. Every state either consumes bytes or moves on, so
    /// the loop makes progress; states that can span chunks save what they need in `self.state`.
    fn feed(&mut self, chunk: &[u8]) -> Result<(), JsonSyntaxError> {
        let mut i = 0;
        while i < chunk.len() {
            match self.state {
                State::Str => {
                    let start = i;
                    i = skip_string_content(chunk, i);
                    if self.accumulate && i > start {
                        self.push_value(&chunk[start..i]);
                    }
                    match chunk.get(i) {
                        None => {}
                        Some(b'"') => {
                            i += 1;
                            self.end_string();
                        }
                        Some(b'\\') => {
                            i += 1;
                            self.state = State::StrEscape;
                        }
                        Some(_) => return Err(self.error_at(i, "control character in string")),
                    }
                }
                State::StrEscape => {
                    let b = chunk[i];
                    let decoded = match b {
                        b'"' | b'\\' | b'/' => b,
                        b'b' => 0x08,
                        b'f' => 0x0C,
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'u' => {
                            i += 1;
                            self.state = State::StrUnicode { digits: 0, code: 0 };
                            continue;
                        }
                        _ => return Err(self.error_at(i, invalid_escape_message(b))),
                    };
                    if self.accumulate {
                        self.push_value(&[decoded]);
                    }
                    i += 1;
                    self.state = State::Str;
                }
                State::StrUnicode {
                    mut digits,
                    mut code,
                } => {
                    while digits < 4 {
                        let Some(&b) = chunk.get(i) else { break };
                        let Some(value) = hex_value(b) else {
                            return Err(
                                self.error_at(i, "invalid \\u escape: expected 4 hex digits")
                            );
                        };
                        code = code << 4 | value;
                        digits += 1;
                        i += 1;
                    }
                    if digits < 4 {
                        self.state = State::StrUnicode { digits, code };
                    } else {
                        if self.accumulate {
                            self.push_code_unit(code);
                        }
                        self.state = State::Str;
                    }
                }
                State::Num(mut num) => {
                    let start = i;
                    let mut ended = false;
                    while let Some(&b) = chunk.get(i) {
                        num = match (num, b) {
                            (Num::Start, b'-') => Num::Minus,
                            (Num::Start | Num::Minus, b'0') => Num::Zero,
                            (Num::Start | Num::Minus | Num::Int, b'1'..=b'9')
                            | (Num::Int, b'0') => Num::Int,
                            (Num::Zero | Num::Int, b'.') => Num::Dot,
                            (Num::Dot | Num::Frac, b'0'..=b'9') => Num::Frac,
                            (Num::Zero | Num::Int | Num::Frac, b'e' | b'E') => Num::Exp,
                            (Num::Exp, b'+' | b'-') => Num::ExpSign,
                            (Num::Exp | Num::ExpSign | Num::ExpDigits, b'0'..=b'9') => {
                                Num::ExpDigits
                            }
                            (Num::Zero, b'0'..=b'9') => {
                                return Err(self.error_at(i, "invalid number: leading zero"));
                            }
                            _ => {
                                ended = true;
                                break;
                            }
                        };
                        i += 1;
                    }
                    if self.accumulate {
                        self.push_value(&chunk[start..i]);
                    }
                    if !ended {
                        self.state = State::Num(num);
                    } else if num.is_complete() {
                        // The byte that ended the number is handled by the next state.
                        self.end_number();
                    } else {
                        return Err(self.error_at(i, "invalid number"));
                    }
                }
                State::Lit {
                    literal,
                    mut matched,
                } => {
                    let text = literal.text();
                    while let Some(&expected) = text.get(usize::from(matched)) {
                        let Some(&b) = chunk.get(i) else { break };
                        if b != expected {
                            return Err(self.error_at(i, "invalid literal"));
                        }
                        matched += 1;
                        i += 1;
                    }
                    if usize::from(matched) == text.len() {
                        self.end_literal(literal);
                    } else {
                        self.state = State::Lit { literal, matched };
                    }
                }
                State::AfterValue => {
                    i = self.skip_ws(chunk, i);
                    let Some(&b) = chunk.get(i) else { break };
                    let ty = self.stack.last().map(|frame| frame.ty);
                    match (ty, b) {
                        (Some(ContainerType::Object), b',') => self.state = State::ObjectNext,
                        (Some(ContainerType::Array), b',') => self.state = State::ArrayNext,
                        (Some(ContainerType::Object), b'}')
                        | (Some(ContainerType::Array), b']') => self.close(),
                        (Some(ContainerType::Object), _) => {
                            return Err(self.error_at(i, "expected ',' or '}' after object member"));
                        }
                        _ => {
                            return Err(self.error_at(i, "expected ',' or ']' after array element"));
                        }
                    }
                    i += 1;
                }
                State::ArrayFirst | State::ArrayNext => {
                    i = self.skip_ws(chunk, i);
                    let Some(&b) = chunk.get(i) else { break };
                    if b == b']' {
                        if self.state == State::ArrayNext {
                            return Err(self.error_at(i, "trailing comma"));
                        }
                        self.close();
                        i += 1;
                    } else {
                        self.enter_element();
                        i += self.begin_value(b, i)?;
                    }
                }
                State::ObjectFirst | State::ObjectNext => {
                    i = self.skip_ws(chunk, i);
                    let Some(&b) = chunk.get(i) else { break };
                    match b {
                        b'"' => self.start_key(),
                        b'}' if self.state == State::ObjectFirst => self.close(),
                        b'}' => return Err(self.error_at(i, "trailing comma")),
                        _ if self.state == State::ObjectFirst => {
                            return Err(self.error_at(i, "expected string key or '}'"));
                        }
                        _ => return Err(self.error_at(i, "expected string key")),
                    }
                    i += 1;
                }
                State::Colon => {
                    i = self.skip_ws(chunk, i);
                    let Some(&b) = chunk.get(i) else { break };
                    if b != b':' {
                        return Err(self.error_at(i, "expected ':' after object key"));
                    }
                    self.state = State::MemberValue;
                    i += 1;
                }
                State::MemberValue => {
                    i = self.skip_ws(chunk, i);
                    let Some(&b) = chunk.get(i) else { break };
                    i += self.begin_value(b, i)?;
                }
                State::TopLevel { need_sep } => {
                    let next = self.skip_ws(chunk, i);
                    let need_sep = need_sep && next == i;
                    i = next;
                    let Some(&b) = chunk.get(i) else {
                        self.state = State::TopLevel { need_sep };
                        break;
                    };
                    if self.facts.documents > 0 && value_type(b).is_none() {
                        return Err(self.error_at(i, "unexpected character after top-level value"));
                    }
                    if need_sep && !matches!(b, b'{' | b'[' | b'"') {
                        return Err(
                            self.error_at(i, "expected whitespace between top-level values")
                        );
                    }
                    self.start_document();
                    i += self.begin_value(b, i)?;
                }
                State::Bom(matched) => {
                    let b = chunk[i];
                    match BOM.get(usize::from(matched)) {
                        Some(&expected) if b == expected => {
                            i += 1;
                            self.state = if usize::from(matched) + 1 == BOM.len() {
                                State::TopLevel { need_sep: false }
                            } else {
                                State::Bom(matched + 1)
                            };
                        }
                        _ if matched == 0 => self.state = State::TopLevel { need_sep: false },
                        _ => return Err(self.error_at(i, "invalid byte order mark")),
                    }
                }
            }
        }
        Ok(())
    }

    /// Called at end of input: completes a top-level number or reports what was left open.
    fn finish(&mut self) -> Result<(), JsonSyntaxError> {
        let message = match self.state {
            State::Bom(0) | State::TopLevel { .. } if self.facts.documents == 0 => "empty input",
            State::TopLevel { .. } => return Ok(()),
            State::Num(num) if num.is_complete() && self.stack.is_empty() => {
                self.end_number();
                return Ok(());
            }
            State::Num(num) if !num.is_complete() => "unexpected end of input inside number",
            State::Str | State::StrEscape | State::StrUnicode { .. } => {
                "unexpected end of input inside string"
            }
            State::Lit { .. } => "unexpected end of input inside literal",
            State::Bom(_) => "unexpected end of input inside byte order mark",
            _ => match self.stack.last().map(|frame| frame.ty) {
                Some(ContainerType::Object) => "unexpected end of input inside object",
                _ => "unexpected end of input inside array",
            },
        };
        Err(self.error_at_offset(self.base, message))
    }

    /// A new top-level value starts; only the first one is tracked.
    fn start_document(&mut self) {
        self.facts.documents += 1;
        self.exact.clear();
        self.wild.clear();
        let first = self.facts.documents == 1;
        self.ctx = Ctx {
            depth: 0,
            tracked: first,
            zero: true,
            exact: first,
            path: if first { self.intern_path(0) } else { None },
        };
    }

    /// Sets up `ctx` for the next element of the array on top of the stack.
    fn enter_element(&mut self) {
        let depth = self.stack.len();
        let Some(frame) = self.stack.last_mut() else {
            return;
        };
        let index = frame.count;
        frame.count += 1;
        let frame = *frame;
        self.ctx = if frame.track_children {
            let zero = frame.zero && index == 0;
            let exact = frame.exact && (zero || frame.capture_below);
            if exact {
                self.exact.truncate(frame.exact_len);
                self.exact.push('/');
                push_index(&mut self.exact, index);
            }
            self.wild.truncate(frame.wild_len);
            self.wild.push_str("/*");
            Ctx {
                depth,
                tracked: true,
                zero,
                exact,
                path: self.child_path(frame, depth, None),
            }
        } else {
            Ctx {
                depth,
                tracked: false,
                zero: false,
                exact: false,
                path: None,
            }
        };
    }

    fn start_key(&mut self) {
        let track = self.stack.last().is_some_and(|frame| frame.track_children);
        self.start_string(true, track, KEY_LIMIT);
    }

    fn start_string(&mut self, in_key: bool, accumulate: bool, limit: usize) {
        self.in_key = in_key;
        self.start_value(accumulate, limit);
        self.state = State::Str;
    }

    fn start_value(&mut self, accumulate: bool, limit: usize) {
        self.accumulate = accumulate;
        self.value.clear();
        self.value_len = 0;
        self.value_limit = limit;
        self.high_surrogate = None;
    }

    /// Starts the value whose first byte is `b` (at `i`), with `ctx` already describing it.
    /// Returns how many bytes it consumed: numbers and literals re-read their first byte in their
    /// own state.
    fn begin_value(&mut self, b: u8, i: usize) -> Result<usize, JsonSyntaxError> {
        let Some(ty) = value_type(b) else {
            return Err(self.error_at(i, "expected value"));
        };
        let ctx = self.ctx;
        if ctx.tracked && ctx.depth == 0 {
            self.facts.root = Some(ty);
        }
        let record = ctx.path.is_some();
        // `zero` implies `exact` (see `enter_element`), but the map keys must never be stale.
        let at_zero = record && ctx.zero && ctx.exact;
        let container = match ty {
            ValueType::Object => ContainerType::Object,
            ValueType::Array => ContainerType::Array,
            ValueType::String => {
                let capture = if ctx.exact {
                    self.match_capture(ctx.depth)
                } else {
                    None
                };
                self.target = Target {
                    scalar: at_zero,
                    capture,
                    collect: self.scalar_collect(ctx),
                };
                let mut limit = 0;
                if self.target.wants_scalar() {
                    limit = self.cfg.scalar_limit.saturating_add(CHAR_SLACK);
                }
                if capture.is_some() {
                    // One byte more than the limit tells "exactly long_limit" from "too long".
                    limit = limit.max(self.cfg.long_limit.saturating_add(1));
                }
                self.start_string(false, limit > 0, limit);
                return Ok(1);
            }
            ValueType::Number => {
                self.target = Target {
                    scalar: at_zero,
                    capture: None,
                    collect: self.scalar_collect(ctx),
                };
                let wanted = self.target.wants_scalar();
                self.start_value(wanted, self.cfg.scalar_limit);
                self.state = State::Num(Num::Start);
                return Ok(0);
            }
            ValueType::Bool | ValueType::Null => {
                self.target = Target {
                    scalar: at_zero,
                    capture: None,
                    collect: self.scalar_collect(ctx),
                };
                let literal = match b {
                    b't' => Literal::True,
                    b'f' => Literal::False,
                    _ => Literal::Null,
                };
                self.state = State::Lit {
                    literal,
                    matched: 0,
                };
                return Ok(0);
            }
        };
        if self.stack.len() >= self.cfg.max_nesting {
            return Err(self.error_at(i, format!("nesting deeper than {}", self.cfg.max_nesting)));
        }
        let capture_below = ctx.exact
            && self
                .captures
                .iter()
                .any(|p| p.extends(&self.exact, ctx.depth));
        let track_children = ctx.tracked
            && (ctx.depth < self.cfg.max_depth
                || capture_below
                || self
                    .collects
                    .iter()
                    .any(|p| p.extends(&self.wild, ctx.depth)));
        self.stack.push(Frame {
            ty: container,
            count: 0,
            exact_len: self.exact.len(),
            wild_len: self.wild.len(),
            zero: ctx.zero,
            exact: ctx.exact,
            capture_below,
            track_children,
            record: at_zero,
            path: ctx.path,
        });
        self.state = match container {
            ContainerType::Object => State::ObjectFirst,
            ContainerType::Array => State::ArrayFirst,
        };
        Ok(1)
    }

    /// The trie node of the child (at `depth`) of `frame` whose wildcard pointer is now in
    /// `wild`: array elements pass `member: None`, object members their position.
    fn child_path(&mut self, frame: Frame, depth: usize, member: Option<usize>) -> Option<PathId> {
        if depth > self.cfg.max_depth {
            return None;
        }
        // A child is only ever added after its parent, so without a parent node (the set was
        // already full) there is nothing to find.
        let parent = frame.path?;
        let segment_start = frame.wild_len + 1;
        let segment = self.wild.get(segment_start..).unwrap_or_default();
        let node = self.paths.get(parent)?;
        match member {
            // Every element's segment is `*`: the hint is the answer.
            None => {
                if let Some(id) = node.element {
                    return Some(id);
                }
            }
            Some(position) => {
                if let Some(&id) = node.members.get(position)
                    && self.paths.get(id).is_some_and(|child| {
                        same_bytes(child.segment.as_bytes(), segment.as_bytes())
                    })
                {
                    return Some(id);
                }
            }
        }
        let id = self.intern_path(segment_start)?;
        if let Some(node) = self.paths.get_mut(parent) {
            match member {
                None => node.element = Some(id),
                Some(position) if position < node.members.len() => node.members[position] = id,
                Some(position) if position == node.members.len() && position < MEMBER_HINTS => {
                    node.members.push(id);
                }
                Some(_) => {}
            }
        }
        Some(id)
    }

    /// Finds the current wildcard pointer (whose last segment starts at `segment_start`) among the
    /// recorded ones, adding it if `max_paths` allows. `scalars` and `containers` only hold paths
    /// whose wildcard form made it into the set, which is what bounds them too (an object with a
    /// million keys would otherwise record a million scalars).
    fn intern_path(&mut self, segment_start: usize) -> Option<PathId> {
        if let Some(&id) = self.path_ids.get(self.wild.as_str()) {
            return Some(id);
        }
        if self.paths.len() >= self.cfg.max_paths || self.wild.len() > POINTER_LIMIT {
            self.facts.truncated = true;
            return None;
        }
        let id = self.paths.len();
        let segment = self.wild.get(segment_start..).unwrap_or_default();
        self.paths.push(PathNode {
            segment: segment.into(),
            element: None,
            members: Vec::new(),
        });
        self.path_ids.insert(self.wild.clone(), id);
        self.facts.wildcard_paths.insert(self.wild.clone());
        Some(id)
    }

    fn match_capture(&self, depth: usize) -> Option<usize> {
        self.captures
            .iter()
            .position(|p| p.depth == depth && same_bytes(p.text.as_bytes(), self.exact.as_bytes()))
    }

    fn scalar_collect(&self, ctx: Ctx) -> Option<usize> {
        if !ctx.tracked {
            return None;
        }
        self.collects.iter().position(|p| {
            p.depth == ctx.depth && same_bytes(p.text.as_bytes(), self.wild.as_bytes())
        })
    }

    /// Appends decoded bytes of the current string or number, keeping at most `value_limit`.
    #[inline]
    fn push_value(&mut self, bytes: &[u8]) {
        if self.high_surrogate.take().is_some() {
            self.push_raw(REPLACEMENT);
        }
        self.push_raw(bytes);
    }

    #[inline]
    fn push_raw(&mut self, bytes: &[u8]) {
        self.value_len = self.value_len.saturating_add(bytes.len());
        let room = self.value_limit.saturating_sub(self.value.len());
        if room > 0 {
            self.value
                .extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
    }

    /// Appends one decoded `\uXXXX`, pairing surrogates; unpaired halves become U+FFFD.
    fn push_code_unit(&mut self, unit: u16) {
        if let Some(high) = self.high_surrogate.take() {
            if (0xDC00..=0xDFFF).contains(&unit) {
                let code =
                    0x1_0000 + ((u32::from(high) - 0xD800) << 10) + (u32::from(unit) - 0xDC00);
                self.push_char(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER));
                return;
            }
            self.push_raw(REPLACEMENT);
        }
        match unit {
            0xD800..=0xDBFF => self.high_surrogate = Some(unit),
            _ => self
                .push_char(char::from_u32(u32::from(unit)).unwrap_or(char::REPLACEMENT_CHARACTER)),
        }
    }

    fn push_char(&mut self, c: char) {
        let mut utf8 = [0; 4];
        self.push_raw(c.encode_utf8(&mut utf8).as_bytes());
    }

    fn end_string(&mut self) {
        if self.accumulate && self.high_surrogate.take().is_some() {
            self.push_raw(REPLACEMENT);
        }
        if self.in_key {
            self.end_key();
            return;
        }
        let target = self.target;
        if let Some(index) = target.capture {
            let captured = if self.value_len > self.cfg.long_limit {
                self.facts.truncated = true;
                LongString::TooLong
            } else {
                LongString::Captured(String::from_utf8_lossy(&self.value).into_owned())
            };
            let pointer = self.captures.get(index).map_or("", |p| p.text);
            self.facts.long_strings.insert(pointer.to_owned(), captured);
        }
        if target.wants_scalar() {
            let kept = self
                .value
                .len()
                .min(self.cfg.scalar_limit.saturating_add(CHAR_SLACK));
            let mut text =
                String::from_utf8_lossy(self.value.get(..kept).unwrap_or_default()).into_owned();
            if text.len() > self.cfg.scalar_limit {
                text.truncate(text.floor_char_boundary(self.cfg.scalar_limit));
                self.facts.truncated = true;
            }
            self.record_scalar(Scalar::String(text));
        }
        self.value_done(true);
    }

    /// A key ended: its member's pointer becomes the current one.
    fn end_key(&mut self) {
        self.state = State::Colon;
        let depth = self.stack.len();
        let Some(frame) = self.stack.last_mut() else {
            return;
        };
        let ordinal = frame.count;
        frame.count += 1;
        let frame = *frame;
        self.ctx = Ctx {
            depth,
            tracked: false,
            zero: false,
            exact: false,
            path: None,
        };
        if !frame.track_children {
            return;
        }
        if self.value_len > KEY_LIMIT {
            if depth <= self.cfg.max_depth {
                self.facts.truncated = true;
            }
            return;
        }
        let key = match std::str::from_utf8(&self.value) {
            Ok(key) => std::borrow::Cow::Borrowed(key),
            Err(_) => String::from_utf8_lossy(&self.value),
        };
        let exact = frame.exact && (frame.zero || frame.capture_below);
        if exact {
            self.exact.truncate(frame.exact_len);
            push_segment(&mut self.exact, &key);
        }
        self.wild.truncate(frame.wild_len);
        push_segment(&mut self.wild, &key);
        self.ctx = Ctx {
            depth,
            tracked: true,
            zero: frame.zero,
            exact,
            path: self.child_path(frame, depth, Some(ordinal)),
        };
    }

    fn end_number(&mut self) {
        if self.target.wants_scalar() {
            if self.value_len > self.value.len() {
                self.facts.truncated = true;
            }
            // Number text is ASCII, so any cut is a character boundary.
            let text = String::from_utf8_lossy(&self.value).into_owned();
            self.record_scalar(Scalar::Number(text));
        }
        self.value_done(false);
    }

    fn end_literal(&mut self, literal: Literal) {
        if self.target.wants_scalar() {
            self.record_scalar(literal.scalar());
        }
        self.value_done(false);
    }

    fn record_scalar(&mut self, scalar: Scalar) {
        let target = self.target;
        let scalar = match target.collect.and_then(|index| self.collects.get(index)) {
            Some(pattern) => {
                let values = self
                    .facts
                    .collected
                    .entry(pattern.text.to_owned())
                    .or_default();
                if values.len() < self.cfg.collect_limit {
                    if target.scalar {
                        values.push(scalar.clone());
                        scalar
                    } else {
                        values.push(scalar);
                        return;
                    }
                } else {
                    self.facts.truncated = true;
                    scalar
                }
            }
            None => scalar,
        };
        if target.scalar {
            match self.facts.scalars.get_mut(self.exact.as_str()) {
                Some(slot) => *slot = scalar,
                None => {
                    self.facts.scalars.insert(self.exact.clone(), scalar);
                }
            }
        }
    }

    fn close(&mut self) {
        if let Some(frame) = self.stack.pop()
            && frame.record
        {
            let pointer = self.exact.get(..frame.exact_len).unwrap_or_default();
            let container = Container {
                ty: frame.ty,
                len: frame.count,
            };
            match self.facts.containers.get_mut(pointer) {
                Some(slot) => *slot = container,
                None => {
                    self.facts.containers.insert(pointer.to_owned(), container);
                }
            }
        }
        self.value_done(true);
    }

    /// A value ended; `self_delimiting`: it ended with its own closing byte (string, object,
    /// array), so another top-level value may follow without whitespace.
    fn value_done(&mut self, self_delimiting: bool) {
        self.state = if self.stack.is_empty() {
            State::TopLevel {
                need_sep: !self_delimiting,
            }
        } else {
            State::AfterValue
        };
    }
}

/// Returns the index of the first byte at or after `i` that ends plain string content (see
/// [`STRING_SPECIAL`]), or the chunk length. Strings are most of the bytes of a typical SBOM, so
/// this tests eight bytes at a time with the classic "has a byte equal to / less than" word tricks
/// before finishing byte by byte.
#[inline]
fn skip_string_content(chunk: &[u8], mut i: usize) -> usize {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    while let Some(word) = chunk.get(i..i + 8) {
        let Ok(word) = <[u8; 8]>::try_from(word) else {
            break;
        };
        let v = u64::from_le_bytes(word);
        let quote = v ^ (ONES * u64::from(b'"'));
        let backslash = v ^ (ONES * u64::from(b'\\'));
        // A nonzero high bit in any lane means some byte is 0 (after the xor) or below 0x20.
        let special = (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (v.wrapping_sub(ONES * 0x20) & !v);
        if special & HIGHS != 0 {
            break;
        }
        i += 8;
    }
    while let Some(&b) = chunk.get(i) {
        if STRING_SPECIAL[usize::from(b)] {
            break;
        }
        i += 1;
    }
    i
}

fn value_type(b: u8) -> Option<ValueType> {
    Some(match b {
        b'{' => ValueType::Object,
        b'[' => ValueType::Array,
        b'"' => ValueType::String,
        b'-' | b'0'..=b'9' => ValueType::Number,
        b't' | b'f' => ValueType::Bool,
        b'n' => ValueType::Null,
        _ => return None,
    })
}

fn hex_value(b: u8) -> Option<u16> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u16::try_from(d).ok())
}

fn invalid_escape_message(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("invalid escape \\{}", char::from(b))
    } else {
        format!("invalid escape: byte 0x{b:02x} after backslash")
    }
}

/// Slice equality that compiles to word compares instead of a call into libc's `memcmp`, which
/// was a large part of the scan's profile: the slices compared per value (key segments, pointers
/// against patterns) are short.
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while let (Some(x), Some(y)) = (a.get(i..i + 8), b.get(i..i + 8)) {
        if x != y {
            return false;
        }
        i += 8;
    }
    a.iter().skip(i).zip(b.iter().skip(i)).all(|(x, y)| x == y)
}

/// Appends the decimal digits of `index` without going through `fmt`.
fn push_index(path: &mut String, mut index: usize) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        // `index % 10` is below 10, so the cast cannot truncate.
        digits[start] = b'0' + (index % 10) as u8;
        index /= 10;
        if index == 0 {
            break;
        }
    }
    for &d in &digits[start..] {
        path.push(char::from(d));
    }
}

/// Appends `/` and `key` escaped per RFC 6901 (`~` as `~0`, `/` as `~1`).
fn push_segment(path: &mut String, key: &str) {
    path.push('/');
    if !key.bytes().any(|b| b == b'~' || b == b'/') {
        path.push_str(key);
        return;
    }
    for c in key.chars() {
        match c {
            '~' => path.push_str("~0"),
            '/' => path.push_str("~1"),
            _ => path.push(c),
        }
    }
}

/// Failure of a probe: the input is not well-formed, or reading it failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Syntax(#[from] JsonSyntaxError),
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
}
