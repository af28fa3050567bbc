//! DSSE envelopes (Dead Simple Signing Envelope, <https://github.com/secure-systems-lab/dsse>).
//!
//! An [`Envelope`] signs `PAE(payloadType, payload)`, never the payload alone, so a signature
//! cannot be replayed under another payload type. [`verify`] checks an envelope against the
//! keys the caller trusts and says which key and which signature verified, or why each attempt
//! failed, so the vault can record its chain of reasoning.
//!
//! `keyid` is only a hint. It decides which keys are tried first for a signature, but a
//! signature verifies only through the cryptographic check, and a missing, empty or wrong keyid
//! (cosign writes `""`) never stops a trusted key from being tried.
//!
//! One legacy form is supported on request: Google Cloud Build provenance, whose envelopes are
//! signed over the raw payload bytes instead of PAE ([`parse_gcb_export`],
//! [`verify_raw_payload`]).

use base64::Engine as _;
use serde::Deserialize;

use super::keys::PublicKey;

/// Largest envelope [`parse`] reads. In-toto attestations carrying whole SBOMs reach tens of
/// megabytes (and base64 adds a third); anything larger is refused rather than held in memory.
pub const MAX_ENVELOPE_LEN: usize = 128 * 1024 * 1024;

/// Most signatures one envelope may carry. Real envelopes have one or two; the bound keeps
/// verification (signatures × keys checks) small.
pub const MAX_SIGNATURES: usize = 32;

/// A DSSE envelope with its payload and signatures decoded from base64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// `payloadType`, for in-toto `application/vnd.in-toto+json`.
    pub payload_type: String,
    /// The decoded payload bytes.
    pub payload: Vec<u8>,
    pub signatures: Vec<EnvelopeSignature>,
}

/// One entry of `signatures`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeSignature {
    /// The signer's hint; an empty string (as cosign writes) is read as `None`.
    pub keyid: Option<String>,
    /// The decoded signature bytes.
    pub sig: Vec<u8>,
    /// A PEM certificate some producers (cosign, slsa-github-generator) embed for keyless
    /// signatures. Carried as is; nothing here trusts it.
    pub cert: Option<String>,
}

/// Why bytes are not a readable DSSE envelope.
#[derive(Debug, thiserror::Error)]
pub enum DsseError {
    #[error("envelope is {len} bytes, more than the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("envelope is empty")]
    Empty,
    #[error("envelope is not valid JSON: {0}")]
    Json(String),
    #[error("not a DSSE envelope: {0}")]
    NotAnEnvelope(String),
    #[error("DSSE field \"{field}\" is not valid base64: {reason}")]
    Base64 { field: String, reason: String },
    #[error("envelope has {count} signatures, more than the limit of {MAX_SIGNATURES}")]
    TooManySignatures { count: usize },
}

/// Outcome of checking an envelope against trusted keys (name, key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DsseOutcome {
    /// At least one signature verified; which key (first match) and which signature index.
    Verified { key: String, signature: usize },
    /// Signatures exist but none verifies with any given key; per (signature, key) the reason,
    /// for the chain of reasoning.
    NotVerified { attempts: Vec<String> },
    /// The envelope has no signatures.
    NoSignatures,
}

#[derive(Deserialize)]
struct RawEnvelope {
    #[serde(rename = "payloadType")]
    payload_type: String,
    payload: String,
    #[serde(default)]
    signatures: Option<Vec<RawSignature>>,
}

#[derive(Deserialize)]
struct RawSignature {
    #[serde(default)]
    keyid: Option<String>,
    sig: String,
    #[serde(default)]
    cert: Option<String>,
}

/// Parses a DSSE envelope from JSON. For JSON Lines (`.intoto.jsonl`) the first envelope is
/// returned; [`parse_all`] returns every line. `payload` and `sig` may be standard or URL-safe
/// base64, padded or not (producers differ: Go's DSSE library writes standard, Cloud KMS
/// URL-safe). A signature that is not base64 makes the whole envelope unreadable, as in the
/// reference (Go) implementation. A missing `signatures` array reads as empty.
pub fn parse(bytes: &[u8]) -> Result<Envelope, DsseError> {
    let bytes = prepare(bytes)?;
    let mut stream = serde_json::Deserializer::from_slice(bytes).into_iter::<serde_json::Value>();
    match stream.next() {
        Some(Ok(value)) => envelope_from_value(value),
        Some(Err(e)) => Err(DsseError::Json(e.to_string())),
        None => Err(DsseError::Empty),
    }
}

/// Parses every envelope of a JSON Lines file (or a single JSON envelope). Blank lines are
/// skipped; the first unreadable envelope is an error naming its position.
pub fn parse_all(bytes: &[u8]) -> Result<Vec<Envelope>, DsseError> {
    let bytes = prepare(bytes)?;
    let mut out = Vec::new();
    for (i, value) in serde_json::Deserializer::from_slice(bytes)
        .into_iter::<serde_json::Value>()
        .enumerate()
    {
        let value = value.map_err(|e| DsseError::Json(format!("envelope {}: {e}", i + 1)))?;
        out.push(envelope_from_value(value).map_err(|e| match e {
            DsseError::NotAnEnvelope(m) => {
                DsseError::NotAnEnvelope(format!("envelope {}: {m}", i + 1))
            }
            other => other,
        })?);
    }
    if out.is_empty() {
        return Err(DsseError::Empty);
    }
    Ok(out)
}

/// Reads the DSSE envelopes of a Google Cloud Build provenance export (`gcloud artifacts docker
/// images describe --show-provenance --format json`): `provenance_summary.provenance[*].envelope`.
/// Their signatures cover the raw payload, so check them with [`verify_raw_payload`].
pub fn parse_gcb_export(bytes: &[u8]) -> Result<Vec<Envelope>, DsseError> {
    let bytes = prepare(bytes)?;
    let doc: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| DsseError::Json(e.to_string()))?;
    let provenance = doc
        .pointer("/provenance_summary/provenance")
        .and_then(|p| p.as_array())
        .ok_or_else(|| {
            DsseError::NotAnEnvelope(
                "not a Cloud Build provenance export: no \"provenance_summary.provenance\" array"
                    .into(),
            )
        })?;
    provenance
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let envelope = p.get("envelope").cloned().ok_or_else(|| {
                DsseError::NotAnEnvelope(format!("provenance[{i}] has no \"envelope\""))
            })?;
            envelope_from_value(envelope)
        })
        .collect()
}

fn prepare(bytes: &[u8]) -> Result<&[u8], DsseError> {
    if bytes.len() > MAX_ENVELOPE_LEN {
        return Err(DsseError::TooLarge {
            len: bytes.len(),
            max: MAX_ENVELOPE_LEN,
        });
    }
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(DsseError::Empty);
    }
    Ok(bytes)
}

fn envelope_from_value(value: serde_json::Value) -> Result<Envelope, DsseError> {
    let Some(object) = value.as_object() else {
        return Err(DsseError::NotAnEnvelope("expected a JSON object".into()));
    };
    if !object.contains_key("payloadType") {
        let hint = if object.contains_key("dsseEnvelope") {
            "; this looks like a Sigstore bundle (its envelope is under \"dsseEnvelope\")"
        } else if object.contains_key("provenance_summary") {
            "; this looks like a Cloud Build provenance export"
        } else if object.contains_key("_type") {
            "; this looks like an unsigned in-toto Statement"
        } else {
            ""
        };
        return Err(DsseError::NotAnEnvelope(format!(
            "missing \"payloadType\"{hint}"
        )));
    }
    let raw: RawEnvelope =
        serde_json::from_value(value).map_err(|e| DsseError::NotAnEnvelope(e.to_string()))?;
    let signatures = raw.signatures.unwrap_or_default();
    if signatures.len() > MAX_SIGNATURES {
        return Err(DsseError::TooManySignatures {
            count: signatures.len(),
        });
    }
    let payload = decode_base64("payload", &raw.payload)?;
    let signatures = signatures
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            Ok(EnvelopeSignature {
                keyid: s.keyid.filter(|k| !k.is_empty()),
                sig: decode_base64(&format!("signatures[{i}].sig"), &s.sig)?,
                cert: s.cert.filter(|c| !c.is_empty()),
            })
        })
        .collect::<Result<Vec<_>, DsseError>>()?;
    Ok(Envelope {
        payload_type: raw.payload_type,
        payload,
        signatures,
    })
}

/// Decodes standard or URL-safe base64, padded or not. Non-canonical trailing bits are refused
/// (the base64 crate's default), so one signature has one text form per alphabet.
pub(crate) fn decode_base64(field: &str, text: &str) -> Result<Vec<u8>, DsseError> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const CONFIG: GeneralPurposeConfig =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    const STANDARD: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, CONFIG);
    const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, CONFIG);
    let url_safe = text.contains(['-', '_']);
    let engine = if url_safe { &URL_SAFE } else { &STANDARD };
    engine.decode(text).map_err(|e| DsseError::Base64 {
        field: field.to_string(),
        reason: e.to_string(),
    })
}

/// The DSSE pre-authentication encoding:
/// `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, lengths in ASCII decimal bytes.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let header = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    );
    let mut out = Vec::with_capacity(header.len() + payload.len());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(payload);
    out
}

/// Checks `envelope` against trusted `keys` (name, key): each signature in order, and for each
/// the keys whose name or fingerprint (hex, optionally `sha256:`-prefixed) equals its keyid first, then the others.
/// The first (signature, key) pair that verifies over PAE wins. With no keys, every signature
/// is reported as not verified.
pub fn verify(envelope: &Envelope, keys: &[(&str, &PublicKey)]) -> DsseOutcome {
    let message = pae(&envelope.payload_type, &envelope.payload);
    verify_message(envelope, &message, keys, "PAE")
}

/// Checks signatures made over the **raw payload bytes** instead of PAE, as Google Cloud Build
/// signed its provenance (and slsa-verifier accepts for it). This drops DSSE's binding of the
/// payload type, so use it only for sources known to sign this way, only after [`verify`]
/// failed, and record that the legacy form was accepted.
pub fn verify_raw_payload(envelope: &Envelope, keys: &[(&str, &PublicKey)]) -> DsseOutcome {
    verify_message(envelope, &envelope.payload, keys, "the raw payload")
}

fn verify_message(
    envelope: &Envelope,
    message: &[u8],
    keys: &[(&str, &PublicKey)],
    over: &str,
) -> DsseOutcome {
    if envelope.signatures.is_empty() {
        return DsseOutcome::NoSignatures;
    }
    let mut attempts = Vec::new();
    for (index, signature) in envelope.signatures.iter().enumerate() {
        let keyid = signature.keyid.as_deref();
        let label = match keyid {
            Some(id) => format!("signature {index} (keyid {id:?})"),
            None => format!("signature {index}"),
        };
        if keys.is_empty() {
            attempts.push(format!("{label}: no trusted keys to try"));
            continue;
        }
        for (name, key) in order_by_keyid(keys, keyid) {
            match key.verify(message, &signature.sig) {
                Ok(()) => {
                    return DsseOutcome::Verified {
                        key: name.to_string(),
                        signature: index,
                    };
                }
                Err(e) => attempts.push(format!(
                    "{label} over {over} with key {name} ({}): {e}",
                    key.algorithm()
                )),
            }
        }
    }
    DsseOutcome::NotVerified { attempts }
}

/// The keys, those the keyid names first (stable order otherwise). Only ordering: a keyid that
/// matches nothing still lets every key be tried, and a match proves nothing by itself.
pub(crate) fn order_by_keyid<'a>(
    keys: &'a [(&'a str, &'a PublicKey)],
    keyid: Option<&str>,
) -> Vec<(&'a str, &'a PublicKey)> {
    let named = |name: &str, key: &PublicKey| {
        keyid.is_some_and(|id| {
            let hex = id
                .strip_prefix("sha256:")
                .or_else(|| id.strip_prefix("SHA256:"))
                .unwrap_or(id);
            id == name || hex.eq_ignore_ascii_case(&key.fingerprint())
        })
    };
    let (mut first, rest): (Vec<_>, Vec<_>) = keys
        .iter()
        .map(|(n, k)| (*n, *k))
        .partition(|(n, k)| named(n, k));
    first.extend(rest);
    first
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
    }

    #[test]
    fn parse_reads_standard_and_url_safe_base64() {
        // 0xfb 0xff encodes as "+/8=" (standard) and "-_8" (URL-safe, unpadded).
        let std =
            br#"{"payloadType":"t","payload":"+/8=","signatures":[{"keyid":"","sig":"+/8="}]}"#;
        let url = br#"{"payloadType":"t","payload":"-_8","signatures":[{"sig":"-_8"}]}"#;
        for doc in [&std[..], &url[..]] {
            let e = parse(doc).expect("parses");
            assert_eq!(e.payload, vec![0xfb, 0xff]);
            assert_eq!(e.signatures[0].sig, vec![0xfb, 0xff]);
            assert_eq!(e.signatures[0].keyid, None);
        }
    }

    #[test]
    fn parse_takes_the_first_line_of_json_lines() {
        let doc = b"{\"payloadType\":\"a\",\"payload\":\"\",\"signatures\":[]}\n{\"payloadType\":\"b\",\"payload\":\"\",\"signatures\":[]}\n";
        assert_eq!(parse(doc).expect("parses").payload_type, "a");
        let all = parse_all(doc).expect("parses");
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].payload_type, "b");
    }

    #[test]
    fn parse_explains_what_it_got_instead() {
        let err = parse(br#"{"mediaType":"x","dsseEnvelope":{}}"#).unwrap_err();
        assert!(err.to_string().contains("Sigstore bundle"), "{err}");
        let err = parse(br#"{"payloadType":"t","payload":"!!","signatures":[]}"#).unwrap_err();
        assert!(err.to_string().contains("\"payload\""), "{err}");
        assert!(matches!(parse(b"  \n"), Err(DsseError::Empty)));
        assert!(matches!(parse(b"[1]"), Err(DsseError::NotAnEnvelope(_))));
    }
}
