//! Strict JSON reading and OLPC canonical JSON writing, as securesystemslib does it.
//!
//! in-toto signs the bytes of `encode_canonical(signed)` (securesystemslib
//! `formats.encode_canonical`), not the bytes of the file. To check a signature we must rebuild
//! exactly those bytes from the parsed document:
//!
//! - objects with keys sorted by code point (UTF-8 byte order is the same order), no whitespace;
//! - strings in double quotes where only `\` and `"` are escaped; every other character,
//!   control characters and non-ASCII included, is written as raw UTF-8;
//! - integers in decimal; `true`, `false`, `null`; arrays in order;
//! - floating-point numbers are not representable, so encoding fails.
//!
//! Reading is stricter than Python's `json.loads` on purpose: a duplicated object key is
//! rejected (Python keeps the last one silently, and two parsers disagreeing about which value a
//! signature covers is a classic way to smuggle data past a verifier), and so is any number that
//! is not an integer fitting in 64 bits (securesystemslib refuses floats; huge integers would
//! otherwise be rounded by serde_json into floats). Rejecting never makes a bad document pass.

use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::fmt;

/// Parses `bytes` as one JSON document, refusing duplicate keys and non-integer numbers.
///
/// Nesting depth is bounded by serde_json's recursion limit (128), so hostile input cannot
/// exhaust the stack here or in [`encode`].
pub(crate) fn parse_strict(bytes: &[u8]) -> Result<Value, String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let StrictValue(value) = StrictValue::deserialize(&mut de).map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    Ok(value)
}

/// The canonical JSON bytes of `value` (securesystemslib `encode_canonical(value).encode()`).
pub(crate) fn encode(value: &Value) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    write_value(value, &mut out)?;
    Ok(out)
}

fn write_value(value: &Value, out: &mut Vec<u8>) -> Result<(), String> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.extend_from_slice(i.to_string().as_bytes());
            } else if let Some(u) = n.as_u64() {
                out.extend_from_slice(u.to_string().as_bytes());
            } else {
                return Err(format!(
                    "number {n} is not an integer; canonical JSON has no floats"
                ));
            }
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                write_value(item, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for byte in s.bytes() {
        if byte == b'\\' || byte == b'"' {
            out.push(b'\\');
        }
        out.push(byte);
    }
    out.push(b'"');
}

/// A `serde_json::Value` read with the strict rules above.
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value without floats or duplicate keys")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(Number::from(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(Number::from(v)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Err(E::custom(format!(
            "number {v} is not a 64-bit integer; in-toto metadata allows only integers"
        )))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                let shown: String = key.chars().take(80).collect();
                return Err(de::Error::custom(format!("duplicate object key {shown:?}")));
            }
            let StrictValue(item) = map.next_value()?;
            out.insert(key, item);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> String {
        String::from_utf8(encode(&parse_strict(s.as_bytes()).unwrap()).unwrap()).unwrap()
    }

    #[test]
    fn sorts_keys_and_drops_whitespace() {
        assert_eq!(
            canon(r#"{ "b": [1, -2, true, null], "a": {"z": "x", "é": 0, "Z": false} }"#),
            r#"{"a":{"Z":false,"z":"x","é":0},"b":[1,-2,true,null]}"#
        );
    }

    #[test]
    fn escapes_only_backslash_and_quote() {
        // securesystemslib writes control characters and non-ASCII raw.
        assert_eq!(
            canon(r#"{"k":"a\"b\\c\n\u0001\u00e9"}"#),
            "{\"k\":\"a\\\"b\\\\c\n\u{1}é\"}"
        );
    }

    #[test]
    fn rejects_floats_duplicates_and_trailing_data() {
        assert!(parse_strict(b"{\"a\":1.5}").is_err());
        assert!(parse_strict(b"{\"a\":1e3}").is_err());
        assert!(parse_strict(b"{\"a\":123456789012345678901234567890}").is_err());
        assert!(parse_strict(b"{\"a\":1,\"a\":2}").is_err());
        assert!(parse_strict(b"{} {}").is_err());
        assert!(parse_strict(b"[1,2] ").is_ok());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(100_000);
        assert!(parse_strict(deep.as_bytes()).is_err());
    }
}
