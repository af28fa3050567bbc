//! The Sigstore bundle JSON (protobuf-specs `dev.sigstore.bundle.v1.Bundle`) and its
//! version-specific shape rules.
//!
//! The wire format is the canonical proto3 JSON mapping with `lowerCamelCase` keys (client spec
//! §5): `bytes` are base64, `int64` are decimal strings (numbers are tolerated), and a `oneof`
//! is "exactly one of these keys". The serde types below are deliberately loose about *absence*
//! (everything optional) so that every missing piece is reported by the verifier with the name
//! of the field and the rule it breaks, instead of as a generic parse error.

use serde::Deserialize;

use super::trusted_root::decode_bytes;

/// Media types accepted, with the version each denotes.
pub const MEDIA_TYPES: [(&str, &str); 4] = [
    (
        "application/vnd.dev.sigstore.bundle+json;version=0.1",
        "v0.1",
    ),
    (
        "application/vnd.dev.sigstore.bundle+json;version=0.2",
        "v0.2",
    ),
    (
        "application/vnd.dev.sigstore.bundle+json;version=0.3",
        "v0.3",
    ),
    ("application/vnd.dev.sigstore.bundle.v0.3+json", "v0.3"),
];

/// Most transparency log entries and RFC 3161 timestamps read from one bundle.
pub const MAX_TLOG_ENTRIES: usize = 32;
pub const MAX_TIMESTAMPS: usize = 32;

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Bundle {
    pub media_type: Option<String>,
    pub verification_material: Option<VerificationMaterial>,
    pub message_signature: Option<MessageSignature>,
    pub dsse_envelope: Option<Envelope>,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct VerificationMaterial {
    pub public_key: Option<PublicKeyIdentifier>,
    pub x509_certificate_chain: Option<CertificateChain>,
    pub certificate: Option<RawBytes>,
    #[serde(default)]
    pub tlog_entries: Option<Vec<TlogEntry>>,
    pub timestamp_verification_data: Option<TimestampVerificationData>,
}

#[derive(Deserialize, Debug)]
pub struct PublicKeyIdentifier {
    #[serde(default)]
    pub hint: Option<String>,
}

#[derive(Deserialize, Debug)]
pub struct CertificateChain {
    #[serde(default)]
    pub certificates: Option<Vec<RawBytes>>,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct RawBytes {
    pub raw_bytes: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct TlogEntry {
    pub log_index: Option<Int64>,
    pub log_id: Option<LogId>,
    pub kind_version: Option<KindVersion>,
    pub integrated_time: Option<Int64>,
    pub inclusion_promise: Option<InclusionPromise>,
    pub inclusion_proof: Option<InclusionProof>,
    pub canonicalized_body: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct LogId {
    pub key_id: Option<String>,
}

#[derive(Deserialize, Debug, Clone)]
pub struct KindVersion {
    pub kind: Option<String>,
    pub version: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct InclusionPromise {
    pub signed_entry_timestamp: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct InclusionProof {
    pub log_index: Option<Int64>,
    pub root_hash: Option<String>,
    pub tree_size: Option<Int64>,
    #[serde(default)]
    pub hashes: Option<Vec<String>>,
    pub checkpoint: Option<Checkpoint>,
}

#[derive(Deserialize, Debug)]
pub struct Checkpoint {
    pub envelope: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct TimestampVerificationData {
    #[serde(default)]
    pub rfc3161_timestamps: Option<Vec<Rfc3161Timestamp>>,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Rfc3161Timestamp {
    pub signed_timestamp: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct MessageSignature {
    pub message_digest: Option<HashOutput>,
    pub signature: Option<String>,
}

#[derive(Deserialize, Debug)]
pub struct HashOutput {
    pub algorithm: Option<String>,
    pub digest: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    pub payload: Option<String>,
    pub payload_type: Option<String>,
    #[serde(default)]
    pub signatures: Option<Vec<EnvelopeSignature>>,
}

#[derive(Deserialize, Debug)]
pub struct EnvelopeSignature {
    pub sig: Option<String>,
    #[serde(default)]
    pub keyid: Option<String>,
}

/// A proto3 JSON `int64`: a decimal string or a JSON number.
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
pub enum Int64 {
    Str(String),
    Num(i64),
}

impl Int64 {
    /// The value, required to be non-negative (every int64 in a bundle is an index, a size or
    /// a Unix time).
    pub fn non_negative(&self, what: &str) -> Result<i64, String> {
        let v = match self {
            Int64::Num(n) => *n,
            Int64::Str(s) => {
                if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!("{what} '{s}' is not a decimal integer"));
                }
                s.parse::<i64>()
                    .map_err(|_| format!("{what} '{s}' is out of range"))?
            }
        };
        if v < 0 {
            return Err(format!("{what} is negative"));
        }
        Ok(v)
    }
}

/// Required field helper: "<what> is missing".
pub fn req<'a, T>(v: &'a Option<T>, what: &str) -> Result<&'a T, String> {
    v.as_ref().ok_or_else(|| format!("{what} is missing"))
}

/// Required base64 `bytes` field, non-empty.
pub fn req_bytes(v: &Option<String>, what: &str) -> Result<Vec<u8>, String> {
    let s = req(v, what)?;
    let b = decode_bytes(s).map_err(|e| format!("{what}: {e}"))?;
    if b.is_empty() {
        return Err(format!("{what} is empty"));
    }
    Ok(b)
}

/// DSSE pre-authentication encoding (DSSE protocol v1):
/// `"DSSEv1" SP len(type) SP type SP len(body) SP body`, lengths in ASCII decimal. Signing the
/// PAE instead of the raw payload binds the payload type, so a payload cannot be reinterpreted
/// as another type.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + payload_type.len() + 32);
    out.extend_from_slice(
        format!(
            "DSSEv1 {} {} {} ",
            payload_type.len(),
            payload_type,
            payload.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(payload);
    out
}
