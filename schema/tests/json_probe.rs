//! Tests of the streaming JSON scanner: a table of valid and invalid documents, agreement with
//! `serde_json` on a few thousand generated documents and their mutations (acceptance, and the
//! recorded facts against ones computed from the parsed `serde_json::Value`), chunk-boundary
//! independence, and the facts format detection relies on.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, BufReader, Read};

use evault_schema::json_probe::{
    Container, ContainerType, JsonFacts, JsonSyntaxError, LongString, ProbeConfig, ProbeError,
    Scalar, ValueType, probe_json,
};
use serde_json::Value;

const DEFAULT: ProbeConfig<'static> = ProbeConfig {
    max_depth: 6,
    scalar_limit: 256,
    capture_long: &[],
    long_limit: 1 << 20,
    collect: &[],
    collect_limit: 1000,
    max_paths: 100_000,
    max_nesting: 128,
};

fn probe_with(input: &[u8], config: &ProbeConfig<'_>) -> Result<JsonFacts, JsonSyntaxError> {
    match probe_json(input, config) {
        Ok(facts) => Ok(facts),
        Err(ProbeError::Syntax(err)) => Err(err),
        Err(ProbeError::Io(err)) => panic!("a slice cannot fail to read: {err}"),
    }
}

fn probe(input: &[u8]) -> Result<JsonFacts, JsonSyntaxError> {
    probe_with(input, &DEFAULT)
}

fn string(s: &str) -> Scalar {
    Scalar::String(s.to_owned())
}

fn number(s: &str) -> Scalar {
    Scalar::Number(s.to_owned())
}

#[path = "support/mod.rs"]
mod support;
use support::{Dribble, Failing, Rng};

fn debug<T: std::fmt::Debug>(value: &T) -> String {
    format!("{value:?}")
}

/// Probes `input` whole and dribbled; both must give the same answer.
fn probe_both(
    input: &[u8],
    config: &ProbeConfig<'_>,
    seed: u64,
) -> Result<JsonFacts, JsonSyntaxError> {
    let whole = probe_with(input, config);
    let dribbled = match probe_json(Dribble::new(input, seed), config) {
        Ok(facts) => Ok(facts),
        Err(ProbeError::Syntax(err)) => Err(err),
        Err(ProbeError::Io(err)) => panic!("{err}"),
    };
    assert_eq!(
        debug(&whole),
        debug(&dribbled),
        "chunking changed the result for {:?}",
        String::from_utf8_lossy(input)
    );
    whole
}

// ---------------------------------------------------------------------------------------------
// Tables

#[test]
fn valid_documents() {
    let cases: &[(&[u8], usize)] = &[
        (b"0", 1),
        (b"-0", 1),
        (b"-0.0e+0", 1),
        (b"1E5", 1),
        (b"12.5e-3", 1),
        (b"[]", 1),
        (b"{}", 1),
        (b" \t\r\n[ ] \n", 1),
        (br#""\ud83d\ude00""#, 1),
        (br#""\uD800""#, 1),
        (br#"{"a":{"b":[1,2,{"c":null}]},"d":"\"\\\/\b\f\n\r\t"}"#, 1),
        (b"[true,false,null]", 1),
        (b"\xEF\xBB\xBF{}", 1),
        (br#""\u0000""#, 1),
        (b"\"\xff\xfe\"", 1),
        (b"\"\x7f\"", 1),
        (b"1 2", 2),
        (b"{}{}", 2),
        (br#""a""b""#, 2),
        (b"1\"a\"", 2),
        (b"[1]\n[2]\n[3]\n", 3),
        (b"true\nfalse", 2),
    ];
    for &(input, documents) in cases {
        let facts = probe_both(input, &DEFAULT, 7)
            .unwrap_or_else(|err| panic!("{:?} rejected: {err}", String::from_utf8_lossy(input)));
        assert_eq!(
            facts.documents,
            documents,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn invalid_documents_report_line_and_column() {
    let cases: &[(&[u8], u64, u64, &str)] = &[
        (b"", 1, 1, "empty input"),
        (b"   \n  ", 2, 3, "empty input"),
        (b"\xEF\xBB\xBF", 1, 4, "empty input"),
        (
            b"\xEF\xBB",
            1,
            3,
            "unexpected end of input inside byte order mark",
        ),
        (b"\xEF{}", 1, 2, "invalid byte order mark"),
        (br#"{"a":1,}"#, 1, 8, "trailing comma"),
        (b"[1,]", 1, 4, "trailing comma"),
        (b"[1 2]", 1, 4, "expected ',' or ']' after array element"),
        (br#"{"a" 1}"#, 1, 6, "expected ':' after object key"),
        (
            br#"{"a":1 "b":2}"#,
            1,
            8,
            "expected ',' or '}' after object member",
        ),
        (b"{1:2}", 1, 2, "expected string key or '}'"),
        (br#"{"a":1,2}"#, 1, 8, "expected string key"),
        (b"\"abc", 1, 5, "unexpected end of input inside string"),
        (b"\"a\\", 1, 4, "unexpected end of input inside string"),
        (br#""a\x""#, 1, 4, "invalid escape \\x"),
        (b"\"a\tb\"", 1, 3, "control character in string"),
        (b"\"a\nb\"", 1, 3, "control character in string"),
        (
            br#""\u12G4""#,
            1,
            6,
            "invalid \\u escape: expected 4 hex digits",
        ),
        (b"01", 1, 2, "invalid number: leading zero"),
        (b"-01", 1, 3, "invalid number: leading zero"),
        (b"-", 1, 2, "unexpected end of input inside number"),
        (b"1.", 1, 3, "unexpected end of input inside number"),
        (b"[1.]", 1, 4, "invalid number"),
        (b"[1e]", 1, 4, "invalid number"),
        (b"[1e+]", 1, 5, "invalid number"),
        (b"[-]", 1, 3, "invalid number"),
        (b"[-a]", 1, 3, "invalid number"),
        (b".5", 1, 1, "expected value"),
        (b"+1", 1, 1, "expected value"),
        (b"[1,+1]", 1, 4, "expected value"),
        (b"tru", 1, 4, "unexpected end of input inside literal"),
        (b"trux", 1, 4, "invalid literal"),
        (b"nul", 1, 4, "unexpected end of input inside literal"),
        (b"True", 1, 1, "expected value"),
        (b"{\n  \"a\": [1,\n  2,,\n]}", 3, 5, "expected value"),
        (b"[1] x", 1, 5, "unexpected character after top-level value"),
        (b"1 2x", 1, 4, "unexpected character after top-level value"),
        (b"[1]]", 1, 4, "unexpected character after top-level value"),
        (
            b"truefalse",
            1,
            5,
            "expected whitespace between top-level values",
        ),
        (b"1-2", 1, 2, "expected whitespace between top-level values"),
        (b"{", 1, 2, "unexpected end of input inside object"),
        (b"[1", 1, 3, "unexpected end of input inside array"),
        (br#"{"a":"#, 1, 6, "unexpected end of input inside object"),
        (b"\r\n\r\n  }", 3, 3, "expected value"),
        (
            b"\"\\uD83D\\",
            1,
            9,
            "unexpected end of input inside string",
        ),
    ];
    for &(input, line, column, message) in cases {
        let err = probe_both(input, &DEFAULT, 11)
            .expect_err(&format!("{:?} accepted", String::from_utf8_lossy(input)));
        assert_eq!(
            (err.line, err.column, err.message.as_str()),
            (line, column, message),
            "for {:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn error_display_names_the_position() {
    let err = probe(b"[1,]").unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid JSON at line 1, column 4: trailing comma"
    );
}

#[test]
fn io_errors_are_reported_as_io() {
    let err = probe_json(BufReader::new(Failing), &DEFAULT).unwrap_err();
    assert!(matches!(err, ProbeError::Io(_)), "{err:?}");
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let depth = 100_000;
    let mut doc = vec![b'['; depth];
    doc.extend(std::iter::repeat_n(b']', depth));
    let err = probe(&doc).unwrap_err();
    assert_eq!((err.line, err.column), (1, 129));
    assert_eq!(err.message, "nesting deeper than 128");

    let config = ProbeConfig {
        max_nesting: depth,
        ..DEFAULT
    };
    let facts = probe_with(&doc, &config).unwrap();
    assert_eq!(
        facts.containers[""],
        Container {
            ty: ContainerType::Array,
            len: 1
        }
    );
    // Paths are recorded only down to max_depth.
    assert_eq!(facts.wildcard_paths.len(), DEFAULT.max_depth + 1);
}

// ---------------------------------------------------------------------------------------------
// Facts

const CYCLONEDX: &str = r#"{
  "bomFormat": "CycloneDX",
  "specVersion": "1.5",
  "serialNumber": "urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79",
  "version": 1,
  "metadata": {
    "timestamp": "2024-05-01T12:00:00Z",
    "component": { "type": "application", "name": "shop", "version": "2.3.0" }
  },
  "components": [
    {
      "type": "library",
      "name": "left-pad",
      "purl": "pkg:npm/left-pad@1.3.0",
      "hashes": [ { "alg": "SHA-256", "content": "aa11" }, { "alg": "SHA-1", "content": "bb22" } ]
    },
    { "type": "library", "name": "lodash", "purl": "pkg:npm/lodash@4.17.21", "scope": null },
    { "type": "framework", "name": "a/b~c", "purl": "pkg:npm/a-b@1", "hashes": [ { "alg": "MD5", "content": "cc33" } ] }
  ],
  "dependencies": []
}"#;

#[test]
fn cyclonedx_facts() {
    let collect = [
        "/components/*/purl",
        "/components/*/hashes/*/alg",
        "/nope/*",
    ];
    let config = ProbeConfig {
        max_depth: 3,
        collect: &collect,
        ..DEFAULT
    };
    let facts = probe_both(CYCLONEDX.as_bytes(), &config, 3).unwrap();

    assert_eq!(facts.documents, 1);
    assert_eq!(facts.root, Some(ValueType::Object));
    assert!(!facts.truncated);
    assert_eq!(facts.scalars["/bomFormat"], string("CycloneDX"));
    assert_eq!(facts.scalars["/specVersion"], string("1.5"));
    assert_eq!(facts.scalars["/version"], number("1"));
    assert_eq!(facts.scalars["/metadata/component/name"], string("shop"));
    assert_eq!(facts.scalars["/components/0/name"], string("left-pad"));
    assert!(
        !facts.scalars.contains_key("/components/1/name"),
        "only index 0 is recorded"
    );
    assert!(
        !facts.scalars.contains_key("/components/0/hashes/0/alg"),
        "deeper than max_depth"
    );

    assert_eq!(
        facts.containers[""],
        Container {
            ty: ContainerType::Object,
            len: 7
        }
    );
    assert_eq!(
        facts.containers["/components"],
        Container {
            ty: ContainerType::Array,
            len: 3
        }
    );
    assert_eq!(
        facts.containers["/components/0"],
        Container {
            ty: ContainerType::Object,
            len: 4
        }
    );
    // Counted in full although its elements are deeper than max_depth.
    assert_eq!(
        facts.containers["/components/0/hashes"],
        Container {
            ty: ContainerType::Array,
            len: 2
        }
    );
    assert_eq!(
        facts.containers["/dependencies"],
        Container {
            ty: ContainerType::Array,
            len: 0
        }
    );
    assert!(!facts.containers.contains_key("/components/2/hashes"));

    for path in [
        "",
        "/bomFormat",
        "/components",
        "/components/*",
        "/components/*/purl",
        "/components/*/scope",
    ] {
        assert!(facts.wildcard_paths.contains(path), "{path} missing");
    }
    assert!(!facts.wildcard_paths.contains("/components/*/hashes/*"));
    assert!(
        facts
            .wildcard_paths
            .iter()
            .all(|p| p.matches('/').count() <= 3)
    );

    assert_eq!(
        facts.collected["/components/*/purl"],
        vec![
            string("pkg:npm/left-pad@1.3.0"),
            string("pkg:npm/lodash@4.17.21"),
            string("pkg:npm/a-b@1")
        ]
    );
    assert_eq!(
        facts.collected["/components/*/hashes/*/alg"],
        vec![string("SHA-256"), string("SHA-1"), string("MD5")]
    );
    assert!(!facts.collected.contains_key("/nope/*"));
    assert!(facts.long_strings.is_empty());
}

#[test]
fn keys_are_escaped_per_rfc_6901() {
    let facts = probe(br#"{"a/b":{"c~d":1,"":2,"\u002f":3}}"#).unwrap();
    assert_eq!(facts.scalars["/a~1b/c~0d"], number("1"));
    assert_eq!(facts.scalars["/a~1b/"], number("2"));
    assert_eq!(facts.scalars["/a~1b/~1"], number("3"));
}

#[test]
fn scalar_root_and_duplicate_keys() {
    let facts = probe(br#""just a string""#).unwrap();
    assert_eq!(facts.root, Some(ValueType::String));
    assert_eq!(facts.scalars[""], string("just a string"));
    assert!(facts.containers.is_empty());
    assert_eq!(facts.wildcard_paths, BTreeSet::from([String::new()]));

    let facts = probe(br#"{"a":1,"a":"two"}"#).unwrap();
    assert_eq!(facts.scalars["/a"], string("two"));
    assert_eq!(facts.containers[""].len, 2);
}

const DSSE: &str = r#"{
  "payloadType": "application/vnd.in-toto+json",
  "payload": "eyJfdHlwZSI6Imh0dHBzOi8vaW4tdG90by5pby9TdGF0ZW1lbnQvdjEiLCJzdWJqZWN0IjpbXX0=",
  "signatures": [ { "keyid": "", "sig": "MEUCIQ\u0043" } ]
}"#;

const PAYLOAD: &str =
    "eyJfdHlwZSI6Imh0dHBzOi8vaW4tdG90by5pby9TdGF0ZW1lbnQvdjEiLCJzdWJqZWN0IjpbXX0=";

#[test]
fn dsse_payload_is_captured_whole() {
    let capture = ["/payload", "/payloadType", "/signatures", "/missing"];
    let config = ProbeConfig {
        scalar_limit: 16,
        capture_long: &capture,
        ..DEFAULT
    };
    let facts = probe_both(DSSE.as_bytes(), &config, 5).unwrap();
    assert_eq!(
        facts.long_strings["/payload"],
        LongString::Captured(PAYLOAD.to_owned())
    );
    assert_eq!(
        facts.long_strings["/payloadType"],
        LongString::Captured("application/vnd.in-toto+json".to_owned())
    );
    assert!(
        !facts.long_strings.contains_key("/signatures"),
        "not a string: nothing recorded"
    );
    assert!(!facts.long_strings.contains_key("/missing"));
    // The scalar copy is still cut at scalar_limit.
    assert_eq!(facts.scalars["/payload"], string(&PAYLOAD[..16]));
    assert_eq!(facts.scalars["/signatures/0/sig"], string("MEUCIQC"));
    assert!(facts.truncated);

    let exact = ProbeConfig {
        long_limit: PAYLOAD.len(),
        ..config.clone()
    };
    let facts = probe_both(DSSE.as_bytes(), &exact, 6).unwrap();
    assert_eq!(
        facts.long_strings["/payload"],
        LongString::Captured(PAYLOAD.to_owned())
    );

    let short = ProbeConfig {
        long_limit: PAYLOAD.len() - 1,
        ..config
    };
    let facts = probe_both(DSSE.as_bytes(), &short, 7).unwrap();
    assert_eq!(facts.long_strings["/payload"], LongString::TooLong);
    assert!(facts.truncated);
}

#[test]
fn capture_and_collect_work_below_max_depth() {
    let doc = r#"{
      "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
      "attestations": [
        { "bundle": { "dsseEnvelope": { "payload": "first", "payloadType": "x" } } },
        { "bundle": { "dsseEnvelope": { "payload": "se\u0063ond" } } }
      ],
      "subject": [
        { "name": "a", "digest": { "sha256": "aaa", "sha512": "zzz" } },
        { "name": "b", "digest": { "sha256": "bbb" } },
        { "name": "c", "digest": { "sha1": "ccc" } },
        { "name": "d", "digest": { "sha256": 42 } }
      ]
    }"#;
    let capture = [
        "/attestations/1/bundle/dsseEnvelope/payload",
        "/attestations/0/bundle/dsseEnvelope/payload",
    ];
    let collect = ["/subject/*/digest/sha256"];
    let config = ProbeConfig {
        max_depth: 1,
        capture_long: &capture,
        collect: &collect,
        ..DEFAULT
    };
    let facts = probe_both(doc.as_bytes(), &config, 9).unwrap();
    assert_eq!(
        facts.long_strings[capture[0]],
        LongString::Captured("second".to_owned())
    );
    assert_eq!(
        facts.long_strings[capture[1]],
        LongString::Captured("first".to_owned())
    );
    assert_eq!(
        facts.collected[collect[0]],
        vec![string("aaa"), string("bbb"), number("42")]
    );
    assert!(
        facts
            .wildcard_paths
            .iter()
            .all(|p| p.matches('/').count() <= 1)
    );
    assert!(!facts.truncated);

    let limited = ProbeConfig {
        collect_limit: 2,
        ..config
    };
    let facts = probe_both(doc.as_bytes(), &limited, 10).unwrap();
    assert_eq!(
        facts.collected[collect[0]],
        vec![string("aaa"), string("bbb")]
    );
    assert!(facts.truncated);
}

#[test]
fn json_lines_record_the_first_document_only() {
    let doc = b"{\"a\":1,\"b\":[true]}\n{\"a\":2,\"c\":null}\n[\"third\"]\n";
    let collect = ["/a"];
    let config = ProbeConfig {
        collect: &collect,
        ..DEFAULT
    };
    let facts = probe_both(doc, &config, 12).unwrap();
    assert_eq!(facts.documents, 3);
    assert_eq!(facts.root, Some(ValueType::Object));
    assert_eq!(facts.scalars["/a"], number("1"));
    assert_eq!(facts.scalars["/b/0"], Scalar::Bool(true));
    assert!(!facts.scalars.contains_key("/c"));
    assert!(!facts.wildcard_paths.contains("/c"));
    assert_eq!(facts.collected["/a"], vec![number("1")]);

    // Later documents are still checked.
    let err = probe(b"{\"a\":1}\n{\"a\":2,}\n").unwrap_err();
    assert_eq!(
        (err.line, err.column, err.message.as_str()),
        (2, 8, "trailing comma")
    );
}

#[test]
fn bom_is_skipped() {
    let mut with_bom = b"\xEF\xBB\xBF".to_vec();
    with_bom.extend_from_slice(CYCLONEDX.as_bytes());
    let plain = probe(CYCLONEDX.as_bytes()).unwrap();
    let bommed = probe_both(&with_bom, &DEFAULT, 13).unwrap();
    assert_eq!(debug(&plain), debug(&bommed));
    // Only at the very start.
    assert!(probe(b" \xEF\xBB\xBF{}").is_err());
    assert!(probe(b"{}\xEF\xBB\xBF{}").is_err());
}

#[test]
fn strings_are_decoded_and_cut_at_character_boundaries() {
    let facts = probe(br#"{"pair":"\ud83d\ude00","lone":"\ud83d","loneThen":"\ud83dx","low":"\ude00","twoHigh":"\ud83d\ud83d\ude00","esc":"\"\\\/\b\f\n\r\t\u00e9"}"#).unwrap();
    assert_eq!(facts.scalars["/pair"], string("\u{1F600}"));
    assert_eq!(facts.scalars["/lone"], string("\u{FFFD}"));
    assert_eq!(facts.scalars["/loneThen"], string("\u{FFFD}x"));
    assert_eq!(facts.scalars["/low"], string("\u{FFFD}"));
    assert_eq!(facts.scalars["/twoHigh"], string("\u{FFFD}\u{1F600}"));
    assert_eq!(facts.scalars["/esc"], string("\"\\/\u{8}\u{c}\n\r\t\u{e9}"));

    let facts = probe(b"{\"bad\":\"x\xffy\"}").unwrap();
    assert_eq!(facts.scalars["/bad"], string("x\u{FFFD}y"));

    let config = ProbeConfig {
        scalar_limit: 4,
        ..DEFAULT
    };
    let facts = probe_with(
        "{\"s\":\"a\u{e9}\u{20ac}x\",\"t\":\"abcd\",\"n\":123456}".as_bytes(),
        &config,
    )
    .unwrap();
    assert_eq!(facts.scalars["/s"], string("a\u{e9}"));
    assert_eq!(facts.scalars["/t"], string("abcd"));
    assert_eq!(facts.scalars["/n"], number("1234"));
    assert!(facts.truncated);

    let facts = probe_with(br#"{"t":"abcd","n":1234}"#, &config).unwrap();
    assert!(!facts.truncated);
}

#[test]
fn max_paths_caps_every_path_map() {
    let config = ProbeConfig {
        max_paths: 3,
        ..DEFAULT
    };
    let facts = probe_with(br#"{"a":1,"b":{"c":2},"d":3,"e":[4]}"#, &config).unwrap();
    assert_eq!(
        facts.wildcard_paths,
        BTreeSet::from(["".into(), "/a".into(), "/b".into()])
    );
    assert_eq!(facts.scalars.keys().collect::<Vec<_>>(), ["/a"]);
    assert_eq!(facts.containers.keys().collect::<Vec<_>>(), ["", "/b"]);
    assert!(facts.truncated);
}

#[test]
fn huge_keys_stop_path_tracking_without_failing() {
    let key = "k".repeat(10_000);
    let doc = format!(r#"{{"{key}":{{"x":1}},"small":2}}"#);
    let facts = probe(doc.as_bytes()).unwrap();
    assert!(facts.truncated);
    assert_eq!(facts.scalars.keys().collect::<Vec<_>>(), ["/small"]);
    assert_eq!(facts.containers[""].len, 2);

    // Beyond max_depth nothing was going to be recorded, so nothing is lost.
    let doc = format!(r#"{{"a":{{"{key}":1}}}}"#);
    let config = ProbeConfig {
        max_depth: 1,
        ..DEFAULT
    };
    assert!(!probe_with(doc.as_bytes(), &config).unwrap().truncated);

    // Keys just under the key limit are tracked, but pointers over 2 KiB are not recorded.
    let key = "k".repeat(1000);
    let doc = format!(r#"{{"{key}":{{"{key}":{{"{key}":1}},"b":2}}}}"#);
    let facts = probe(doc.as_bytes()).unwrap();
    assert!(facts.truncated);
    assert!(facts.scalars.contains_key(&format!("/{key}/b")));
    assert!(facts.containers.contains_key(&format!("/{key}/{key}")));
    assert!(facts.wildcard_paths.iter().all(|p| p.len() <= 2048));
    assert_eq!(facts.wildcard_paths.len(), 4);
}

#[test]
fn huge_unrecorded_values_are_skipped() {
    // A 32 MiB string and a 1 MiB number nobody asked for.
    let mut doc = b"{\"blob\":\"".to_vec();
    doc.extend(std::iter::repeat_n(b'x', 32 << 20));
    doc.extend_from_slice(b"\",\"n\":1");
    doc.extend(std::iter::repeat_n(b'0', 1 << 20));
    doc.extend_from_slice(b"}");
    let config = ProbeConfig {
        max_depth: 0,
        ..DEFAULT
    };
    let facts = probe_with(&doc, &config).unwrap();
    assert_eq!(facts.containers[""].len, 2);
    assert!(facts.scalars.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Agreement with serde_json

/// Characters keys and strings are drawn from: ASCII, the characters with escapes, controls,
/// two- to four-byte UTF-8, and the pointer-special `~` and `/`.
const ALPHABET: &[char] = &[
    'a',
    'b',
    'z',
    'A',
    '0',
    ' ',
    '-',
    '_',
    '.',
    '"',
    '\\',
    '/',
    '~',
    '\u{0}',
    '\u{8}',
    '\t',
    '\n',
    '\u{1f}',
    '\u{7f}',
    '\u{e9}',
    '\u{7ff}',
    '\u{800}',
    '\u{4e2d}',
    '\u{ffff}',
    '\u{10000}',
    '\u{1f600}',
    '\u{10ffff}',
];

fn random_text(rng: &mut Rng, max_len: usize) -> String {
    (0..rng.below(max_len + 1))
        .map(|_| rng.pick(ALPHABET))
        .collect()
}

/// Writes `text` as a JSON string, picking a random valid spelling for every character.
fn write_string(rng: &mut Rng, text: &str, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        let short = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '/' => Some("\\/"),
            '\u{8}' => Some("\\b"),
            '\u{c}' => Some("\\f"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            _ => None,
        };
        let must_escape = c == '"' || c == '\\' || u32::from(c) < 0x20;
        match rng.below(3) {
            0 if !must_escape => out.push(c),
            1 if short.is_some() => out.push_str(short.unwrap_or_default()),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    if rng.chance(50) {
                        out.push_str(&format!("\\u{unit:04x}"));
                    } else {
                        out.push_str(&format!("\\u{unit:04X}"));
                    }
                }
            }
        }
    }
    out.push('"');
}

fn write_number(rng: &mut Rng, out: &mut String) {
    if rng.chance(30) {
        out.push('-');
    }
    if rng.chance(20) {
        out.push('0');
    } else {
        out.push(char::from(b'1' + rng.below(9) as u8));
        for _ in 0..rng.below(8) {
            out.push(char::from(b'0' + rng.below(10) as u8));
        }
    }
    if rng.chance(30) {
        out.push('.');
        for _ in 0..=rng.below(6) {
            out.push(char::from(b'0' + rng.below(10) as u8));
        }
    }
    if rng.chance(20) {
        out.push(rng.pick(&['e', 'E']));
        match rng.below(3) {
            0 => out.push('+'),
            1 => out.push('-'),
            _ => {}
        }
        for _ in 0..=rng.below(1) {
            out.push(char::from(b'0' + rng.below(10) as u8));
        }
    }
}

fn write_ws(rng: &mut Rng, out: &mut String) {
    if rng.chance(40) {
        out.push_str(rng.pick(&[" ", "\n", "\t", "\r\n", "  ", "\n    "]));
    }
}

/// Generates a random document. Keys are distinct within each object, so that the document's
/// facts can be computed from `serde_json`'s parse (which keeps one value per key).
fn write_value(rng: &mut Rng, depth: usize, out: &mut String) {
    write_ws(rng, out);
    let container = depth < 6 && rng.chance(if depth == 0 { 90 } else { 35 });
    if container && rng.chance(50) {
        out.push('{');
        let mut keys = BTreeSet::new();
        for _ in 0..rng.below(6) {
            let key = if rng.chance(70) {
                rng.pick(&["name", "purl", "a", "b", "sha256", "c/d", "e~f"])
                    .to_owned()
            } else {
                random_text(rng, 6)
            };
            if key == "*" || !keys.insert(key.clone()) {
                continue;
            }
            if keys.len() > 1 {
                out.push(',');
            }
            write_ws(rng, out);
            write_string(rng, &key, out);
            write_ws(rng, out);
            out.push(':');
            write_value(rng, depth + 1, out);
        }
        write_ws(rng, out);
        out.push('}');
    } else if container {
        out.push('[');
        for i in 0..rng.below(5) {
            if i > 0 {
                out.push(',');
            }
            write_value(rng, depth + 1, out);
        }
        write_ws(rng, out);
        out.push(']');
    } else {
        match rng.below(6) {
            0 | 1 => {
                let text = random_text(rng, 12);
                write_string(rng, &text, out);
            }
            2 | 3 => write_number(rng, out),
            4 => out.push_str(rng.pick(&["true", "false"])),
            _ => out.push_str("null"),
        }
    }
    write_ws(rng, out);
}

/// What `serde_json` says about `input` as a stream of values: `Some(count)` if it accepts,
/// `None` if it rejects, or no opinion (`Err`) when it rejects for a reason the probe is lenient
/// about by design (unpaired surrogates, numbers too big for `f64`). Invalid UTF-8 inside strings
/// is the third leniency; it is handled by the caller replacing it first.
fn serde_stream(input: &[u8]) -> Result<Option<usize>, ()> {
    let mut count = 0;
    for value in serde_json::Deserializer::from_slice(input).into_iter::<Value>() {
        match value {
            Ok(_) => count += 1,
            Err(err) => {
                let message = err.to_string();
                if message.contains("surrogate")
                    || message.contains("hex escape")
                    || message.contains("out of range")
                {
                    return Err(());
                }
                return Ok(None);
            }
        }
    }
    Ok(Some(count).filter(|&n| n > 0))
}

fn mutate(rng: &mut Rng, doc: &[u8]) -> Vec<u8> {
    let mut out = doc.to_vec();
    let pos = rng.below(doc.len() + 1);
    let interesting = b"{}[],:\"\\0-.eE+ \nut/\x01\x1f\xc3\xa9\xff9";
    match rng.below(4) {
        0 => out.truncate(pos),
        1 if pos < out.len() => {
            out.remove(pos);
        }
        2 if pos < out.len() => out[pos] = rng.pick(interesting),
        _ => out.insert(pos, rng.pick(interesting)),
    }
    out
}

fn check_against_serde(rng: &mut Rng, input: &[u8]) -> bool {
    // The probe accepts invalid UTF-8 inside strings and nowhere else, which is exactly what
    // serde_json does with the lossily repaired input.
    let repaired = String::from_utf8_lossy(input);
    let Ok(expected) = serde_stream(repaired.as_bytes()) else {
        return false;
    };
    let seed = rng.next();
    let actual = probe_both(input, &DEFAULT, seed);
    match (&actual, expected) {
        (Ok(facts), Some(count)) => assert_eq!(facts.documents, count, "{repaired:?}"),
        (Err(_), None) => {}
        _ => panic!("probe says {actual:?}, serde_json says {expected:?} for {repaired:?}"),
    }
    // Single documents: exactly what serde_json::from_slice accepts.
    if actual.as_ref().is_ok_and(|facts| facts.documents == 1) {
        assert!(
            serde_json::from_slice::<Value>(repaired.as_bytes()).is_ok(),
            "{repaired:?}"
        );
    }
    true
}

#[test]
fn agrees_with_serde_json_on_random_documents_and_mutations() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut compared, mut rejected) = (0, 0);
    for _ in 0..3000 {
        let mut doc = String::new();
        write_value(&mut rng, 0, &mut doc);
        assert!(
            check_against_serde(&mut rng, doc.as_bytes()),
            "generated documents are valid: {doc:?}"
        );
        let facts = probe(doc.as_bytes()).unwrap();
        let value: Value = serde_json::from_str(&doc).unwrap();
        check_facts(&mut rng, &doc, &value, facts);

        for _ in 0..4 {
            let mutated = mutate(&mut rng, doc.as_bytes());
            if check_against_serde(&mut rng, &mutated) {
                compared += 1;
                rejected += usize::from(probe(&mutated).is_err());
            }
        }
    }
    // The mutations must actually exercise both outcomes.
    assert!(compared > 11_000, "{compared}");
    assert!(
        rejected > compared / 3 && rejected < compared,
        "{rejected} of {compared}"
    );
}

#[test]
fn agrees_with_serde_json_on_concatenated_documents() {
    let mut rng = Rng(42);
    for _ in 0..1000 {
        let mut doc = String::new();
        for _ in 0..=rng.below(3) {
            write_value(&mut rng, 3, &mut doc);
            if rng.chance(50) {
                doc.push('\n');
            }
        }
        check_against_serde(&mut rng, doc.as_bytes());
        for _ in 0..3 {
            let mutated = mutate(&mut rng, doc.as_bytes());
            check_against_serde(&mut rng, &mutated);
        }
    }
}

/// Facts of `value` computed independently, as the contract describes them.
#[derive(Default)]
struct Expected {
    scalars: BTreeMap<String, Value>,
    containers: BTreeMap<String, Container>,
    wildcard_paths: BTreeSet<String>,
    exact_strings: Vec<(String, String)>,
    wild_scalars: BTreeMap<String, Vec<Value>>,
}

fn escape_key(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn expected_facts(
    value: &Value,
    exact: &str,
    wild: &str,
    depth: usize,
    zero: bool,
    max_depth: usize,
    out: &mut Expected,
) {
    if depth <= max_depth {
        out.wildcard_paths.insert(wild.to_owned());
    }
    let recorded = depth <= max_depth && zero;
    match value {
        Value::Object(map) => {
            if recorded {
                out.containers.insert(
                    exact.to_owned(),
                    Container {
                        ty: ContainerType::Object,
                        len: map.len(),
                    },
                );
            }
            for (key, child) in map {
                let key = escape_key(key);
                expected_facts(
                    child,
                    &format!("{exact}/{key}"),
                    &format!("{wild}/{key}"),
                    depth + 1,
                    zero,
                    max_depth,
                    out,
                );
            }
        }
        Value::Array(items) => {
            if recorded {
                out.containers.insert(
                    exact.to_owned(),
                    Container {
                        ty: ContainerType::Array,
                        len: items.len(),
                    },
                );
            }
            for (i, child) in items.iter().enumerate() {
                expected_facts(
                    child,
                    &format!("{exact}/{i}"),
                    &format!("{wild}/*"),
                    depth + 1,
                    zero && i == 0,
                    max_depth,
                    out,
                );
            }
        }
        scalar => {
            if recorded {
                out.scalars.insert(exact.to_owned(), scalar.clone());
            }
            if let Value::String(s) = scalar {
                out.exact_strings.push((exact.to_owned(), s.clone()));
            }
            out.wild_scalars
                .entry(wild.to_owned())
                .or_default()
                .push(scalar.clone());
        }
    }
}

fn scalar_to_value(scalar: &Scalar) -> Value {
    match scalar {
        Scalar::String(s) => Value::String(s.clone()),
        Scalar::Number(text) => serde_json::from_str(text).unwrap(),
        Scalar::Bool(b) => Value::Bool(*b),
        Scalar::Null => Value::Null,
    }
}

fn check_facts(rng: &mut Rng, doc: &str, value: &Value, facts: JsonFacts) {
    let mut expected = Expected::default();
    expected_facts(value, "", "", 0, true, DEFAULT.max_depth, &mut expected);
    assert_eq!(facts.wildcard_paths, expected.wildcard_paths, "{doc}");
    assert_eq!(facts.containers, expected.containers, "{doc}");
    let scalars: BTreeMap<String, Value> = facts
        .scalars
        .iter()
        .map(|(k, v)| (k.clone(), scalar_to_value(v)))
        .collect();
    assert_eq!(scalars, expected.scalars, "{doc}");
    assert!(!facts.truncated);

    // Capture a random string and collect a random wildcard path, with a max_depth that forces
    // both to work below it.
    let mut all = Expected::default();
    expected_facts(value, "", "", 0, true, usize::MAX, &mut all);
    let capture: Vec<&str> = all
        .exact_strings
        .iter()
        .take(1 + rng.below(3))
        .map(|(p, _)| p.as_str())
        .collect();
    let wild: Vec<&String> = all.wild_scalars.keys().collect();
    let collect: Vec<&str> = if wild.is_empty() {
        Vec::new()
    } else {
        vec![rng.pick(&wild).as_str()]
    };
    let config = ProbeConfig {
        max_depth: 0,
        capture_long: &capture,
        collect: &collect,
        ..DEFAULT
    };
    let facts = probe_with(doc.as_bytes(), &config).unwrap();
    for pointer in &capture {
        let Some(Value::String(s)) = value.pointer(pointer) else {
            panic!("{pointer} in {doc}")
        };
        assert_eq!(
            facts.long_strings[*pointer],
            LongString::Captured(s.clone()),
            "{pointer} in {doc}"
        );
    }
    for pattern in &collect {
        let mut got: Vec<String> = facts.collected[*pattern]
            .iter()
            .map(|s| scalar_to_value(s).to_string())
            .collect();
        let mut want: Vec<String> = all.wild_scalars[*pattern]
            .iter()
            .map(Value::to_string)
            .collect();
        // serde_json's map is sorted by key, so compare as multisets.
        got.sort();
        want.sort();
        assert_eq!(got, want, "{pattern} in {doc}");
    }
}

// ---------------------------------------------------------------------------------------------
// Size

/// A reader that generates a large array of SBOM-like components on the fly, so that the input
/// never exists in memory as a whole.
struct Components {
    remaining: usize,
    index: usize,
    pending: Vec<u8>,
    pos: usize,
    done: bool,
}

impl Components {
    fn new(total: usize) -> Self {
        Components {
            remaining: total,
            index: 0,
            pending: b"[".to_vec(),
            pos: 0,
            done: false,
        }
    }
}

fn component(index: usize) -> String {
    format!(
        r#"{}{{"type":"library","name":"component-{index}","version":"1.{index}.0","purl":"pkg:npm/component-{index}@1.{index}.0","hashes":[{{"alg":"SHA-256","content":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}}],"licenses":[{{"license":{{"id":"MIT"}}}}],"description":"A component with an \"escaped\" description\nand a second line \u00e9","size":{index}.5e3,"ok":true,"scope":null}}"#,
        if index == 0 { "" } else { ",\n" }
    )
}

impl Read for Components {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.pending.len() {
            if self.done {
                return Ok(0);
            }
            self.pending.clear();
            self.pos = 0;
            while self.pending.len() < 64 * 1024 && !self.done {
                if self.remaining == 0 {
                    self.pending.extend_from_slice(b"]\n");
                    self.done = true;
                } else {
                    let item = component(self.index);
                    self.index += 1;
                    self.remaining = self.remaining.saturating_sub(item.len());
                    self.pending.extend_from_slice(item.as_bytes());
                }
            }
        }
        let n = buf.len().min(self.pending.len() - self.pos);
        buf[..n].copy_from_slice(&self.pending[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[test]
fn scans_a_64_mib_document() {
    // Built in memory to exercise the slice reader too; the scanner's own state stays a few
    // frames and a handful of recorded paths however long the array is.
    let mut doc = Vec::with_capacity(65 << 20);
    let mut reader = Components::new(64 << 20);
    reader.read_to_end(&mut doc).unwrap();
    assert!(doc.len() >= 64 << 20);
    let collect = ["/*/licenses/*/license/id"];
    let config = ProbeConfig {
        max_depth: 4,
        collect: &collect,
        collect_limit: 10,
        ..DEFAULT
    };
    let facts = probe_with(&doc, &config).unwrap();
    let count = reader.index;
    assert_eq!(facts.root, Some(ValueType::Array));
    assert_eq!(
        facts.containers[""],
        Container {
            ty: ContainerType::Array,
            len: count
        }
    );
    assert_eq!(facts.scalars["/0/name"], string("component-0"));
    assert_eq!(facts.wildcard_paths.len(), 17);
    assert_eq!(facts.collected[collect[0]].len(), 10);
    assert!(facts.truncated, "collect_limit was hit");
}

/// `cargo test --release -p evault-schema --test json_probe -- --ignored --nocapture`
#[test]
#[ignore = "benchmark; run in release mode"]
fn throughput() {
    let mut doc = Vec::with_capacity(513 << 20);
    Components::new(512 << 20).read_to_end(&mut doc).unwrap();
    let mb = |elapsed: std::time::Duration| doc.len() as f64 / elapsed.as_secs_f64() / 1e6;
    let collect = ["/*/purl"];
    let config = ProbeConfig {
        max_depth: 8,
        collect: &collect,
        collect_limit: 10,
        ..DEFAULT
    };
    // max_depth 0 without patterns is the tokenizer alone: nothing is tracked.
    for (max_depth, collect) in [(8, &collect[..]), (2, &collect[..]), (0, &[][..])] {
        let config = ProbeConfig {
            max_depth,
            collect,
            ..config.clone()
        };
        let start = std::time::Instant::now();
        let facts = probe_with(&doc, &config).unwrap();
        let elapsed = start.elapsed();
        assert_eq!(facts.documents, 1);
        println!(
            "slice, max_depth {max_depth}, collect {collect:?}: {} MiB in {elapsed:.2?}: {:.0} MB/s",
            doc.len() >> 20,
            mb(elapsed)
        );
    }
    let start = std::time::Instant::now();
    probe_json(BufReader::with_capacity(64 << 10, &doc[..]), &config).unwrap();
    println!(
        "BufReader (64 KiB) over the slice: {:.0} MB/s",
        mb(start.elapsed())
    );
    let start = std::time::Instant::now();
    serde_json::from_slice::<serde::de::IgnoredAny>(&doc).unwrap();
    println!(
        "serde_json into IgnoredAny, for comparison: {:.0} MB/s",
        mb(start.elapsed())
    );
    let start = std::time::Instant::now();
    let facts = probe_json(
        BufReader::with_capacity(256 << 10, Components::new(1 << 30)),
        &config,
    )
    .unwrap();
    println!(
        "1 GiB generated on the fly (generation included): {:.2?}",
        start.elapsed()
    );
    assert_eq!(facts.documents, 1);
}
