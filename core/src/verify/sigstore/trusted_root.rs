//! `trusted_root.json` (protobuf-specs `dev.sigstore.trustroot.v1.TrustedRoot`).
//!
//! The trusted root is the only source of trust: Rekor log keys (`tlogs`), Fulcio CA chains
//! (`certificateAuthorities`), CT log keys (`ctlogs`) and timestamp authorities
//! (`timestampAuthorities`), each with a `validFor` window. Key material is parsed when the root
//! is loaded, but an entry whose key this verifier cannot use is kept with the reason, so one
//! exotic key does not make the whole root unusable and the failure surfaces only if a bundle
//! actually depends on that entry.

use base64::Engine;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::SigstoreError;
use super::certificate::{Cert, MAX_CHAIN};
use super::crypto::PublicKey;

/// Largest trusted root accepted.
pub const MAX_ROOT_BYTES: usize = 4 * 1024 * 1024;
/// Most entries per list.
const MAX_ENTRIES: usize = 256;

/// A `validFor` window; `end` absent means still valid.
#[derive(Clone, Copy, Debug)]
pub struct ValidFor {
    pub start: DateTime<Utc>,
    pub end: Option<DateTime<Utc>>,
}

impl ValidFor {
    /// Whether `t` falls in the window (start inclusive, end inclusive).
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start <= t && self.end.is_none_or(|end| t <= end)
    }

    pub fn describe(&self) -> String {
        match self.end {
            Some(end) => format!("{} to {}", self.start.to_rfc3339(), end.to_rfc3339()),
            None => format!("from {}", self.start.to_rfc3339()),
        }
    }
}

/// A transparency log (Rekor) or CT log.
#[derive(Clone, Debug)]
pub struct LogInstance {
    pub base_url: String,
    pub log_id: Vec<u8>,
    pub key: Result<PublicKey, String>,
    pub valid_for: ValidFor,
}

/// A certificate authority (Fulcio) or timestamp authority: a chain, issuer first, anchor last.
#[derive(Clone, Debug)]
pub struct Authority {
    pub name: String,
    pub chain: Vec<Cert>,
    pub valid_for: ValidFor,
}

/// The parsed trusted root.
#[derive(Clone, Debug)]
pub struct TrustedRoot {
    pub(crate) tlogs: Vec<LogInstance>,
    pub(crate) ctlogs: Vec<LogInstance>,
    pub(crate) certificate_authorities: Vec<Authority>,
    pub(crate) timestamp_authorities: Vec<Authority>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRoot {
    media_type: String,
    #[serde(default)]
    tlogs: Vec<RawLog>,
    #[serde(default)]
    certificate_authorities: Vec<RawAuthority>,
    #[serde(default)]
    ctlogs: Vec<RawLog>,
    #[serde(default)]
    timestamp_authorities: Vec<RawAuthority>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLog {
    #[serde(default)]
    base_url: String,
    #[serde(default)]
    hash_algorithm: Option<String>,
    public_key: RawPublicKey,
    log_id: RawLogId,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPublicKey {
    raw_bytes: Option<String>,
    key_details: Option<String>,
    valid_for: Option<RawValidFor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLogId {
    key_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawValidFor {
    start: Option<String>,
    end: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawAuthority {
    #[serde(default)]
    subject: Option<RawSubject>,
    #[serde(default)]
    uri: String,
    cert_chain: RawChain,
    valid_for: Option<RawValidFor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSubject {
    #[serde(default)]
    organization: String,
    #[serde(default)]
    common_name: String,
}

#[derive(Deserialize)]
struct RawChain {
    certificates: Vec<RawCert>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCert {
    raw_bytes: String,
}

fn err(reason: impl Into<String>) -> SigstoreError {
    SigstoreError {
        reason: format!("trusted root: {}", reason.into()),
        steps: Vec::new(),
    }
}

/// Decodes protobuf-JSON `bytes`: standard or URL-safe base64, padded or not.
pub(crate) fn decode_bytes(s: &str) -> Result<Vec<u8>, String> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    STANDARD
        .decode(s)
        .or_else(|_| STANDARD_NO_PAD.decode(s))
        .or_else(|_| URL_SAFE.decode(s))
        .or_else(|_| URL_SAFE_NO_PAD.decode(s))
        .map_err(|_| "invalid base64".to_string())
}

pub(crate) fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| format!("'{s}' is not an RFC 3339 timestamp"))
}

fn valid_for(raw: Option<&RawValidFor>, what: &str) -> Result<ValidFor, SigstoreError> {
    let raw = raw.ok_or_else(|| err(format!("{what} has no validFor")))?;
    let start = raw
        .start
        .as_deref()
        .ok_or_else(|| err(format!("{what} has no validFor.start")))?;
    let start = parse_time(start).map_err(|e| err(format!("{what} validFor.start: {e}")))?;
    let end = match raw.end.as_deref() {
        Some(e) => Some(parse_time(e).map_err(|e| err(format!("{what} validFor.end: {e}")))?),
        None => None,
    };
    Ok(ValidFor { start, end })
}

fn parse_log(raw: &RawLog, what: &str) -> Result<LogInstance, SigstoreError> {
    let what = format!("{what} {}", raw.base_url);
    let log_id = decode_bytes(&raw.log_id.key_id).map_err(|e| err(format!("{what} logId: {e}")))?;
    if log_id.len() != 32 {
        return Err(err(format!("{what} logId is not 32 bytes")));
    }
    let valid_for = valid_for(raw.public_key.valid_for.as_ref(), &what)?;
    let key = match (&raw.hash_algorithm, &raw.public_key.raw_bytes) {
        (Some(h), _) if h != "SHA2_256" => Err(format!("unsupported log hash algorithm {h}")),
        (_, None) => Err("no public key".to_string()),
        (_, Some(b64)) => decode_bytes(b64).and_then(|der| {
            if raw
                .public_key
                .key_details
                .as_deref()
                .is_some_and(|d| d.starts_with("PKCS1_"))
            {
                PublicKey::from_pkcs1_rsa_der(&der)
            } else {
                PublicKey::from_spki_der(&der)
            }
        }),
    };
    Ok(LogInstance {
        base_url: raw.base_url.clone(),
        log_id,
        key,
        valid_for,
    })
}

fn parse_authority(raw: &RawAuthority, what: &str) -> Result<Authority, SigstoreError> {
    let name = raw
        .subject
        .as_ref()
        .map(|s| {
            if s.common_name.is_empty() {
                s.organization.clone()
            } else {
                s.common_name.clone()
            }
        })
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| raw.uri.clone());
    let what = format!("{what} '{name}'");
    if raw.cert_chain.certificates.is_empty() {
        return Err(err(format!("{what} has an empty certChain")));
    }
    if raw.cert_chain.certificates.len() > MAX_CHAIN {
        return Err(err(format!("{what} certChain is longer than {MAX_CHAIN}")));
    }
    let chain = raw
        .cert_chain
        .certificates
        .iter()
        .map(|c| decode_bytes(&c.raw_bytes).and_then(|der| Cert::parse(&der)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(format!("{what} certChain: {e}")))?;
    let valid_for = valid_for(raw.valid_for.as_ref(), &what)?;
    Ok(Authority {
        name,
        chain,
        valid_for,
    })
}

impl TrustedRoot {
    /// Parses a `trusted_root.json` (media type
    /// `application/vnd.dev.sigstore.trustedroot+json;version=0.1` or `...trustedroot.v0.2+json`).
    pub fn from_json(bytes: &[u8]) -> Result<TrustedRoot, SigstoreError> {
        if bytes.len() > MAX_ROOT_BYTES {
            return Err(err("document is too large"));
        }
        let raw: RawRoot =
            serde_json::from_slice(bytes).map_err(|e| err(format!("not a TrustedRoot: {e}")))?;
        if !matches!(
            raw.media_type.as_str(),
            "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
                | "application/vnd.dev.sigstore.trustedroot.v0.1+json"
                | "application/vnd.dev.sigstore.trustedroot.v0.2+json"
        ) {
            return Err(err(format!("unsupported media type '{}'", raw.media_type)));
        }
        for (list, n) in [
            ("tlogs", raw.tlogs.len()),
            ("ctlogs", raw.ctlogs.len()),
            ("certificateAuthorities", raw.certificate_authorities.len()),
            ("timestampAuthorities", raw.timestamp_authorities.len()),
        ] {
            if n > MAX_ENTRIES {
                return Err(err(format!("{list} has more than {MAX_ENTRIES} entries")));
            }
        }
        let tlogs = raw
            .tlogs
            .iter()
            .map(|l| parse_log(l, "tlog"))
            .collect::<Result<Vec<_>, _>>()?;
        let ctlogs = raw
            .ctlogs
            .iter()
            .map(|l| parse_log(l, "ctlog"))
            .collect::<Result<Vec<_>, _>>()?;
        let certificate_authorities = raw
            .certificate_authorities
            .iter()
            .map(|a| parse_authority(a, "certificate authority"))
            .collect::<Result<Vec<_>, _>>()?;
        let timestamp_authorities = raw
            .timestamp_authorities
            .iter()
            .map(|a| parse_authority(a, "timestamp authority"))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TrustedRoot {
            tlogs,
            ctlogs,
            certificate_authorities,
            timestamp_authorities,
        })
    }

    /// The Rekor log with this log ID.
    pub(crate) fn tlog(&self, log_id: &[u8]) -> Option<&LogInstance> {
        self.tlogs.iter().find(|l| l.log_id == log_id)
    }

    /// The CT log with this log ID.
    pub(crate) fn ctlog(&self, log_id: &[u8]) -> Option<&LogInstance> {
        self.ctlogs.iter().find(|l| l.log_id == log_id)
    }
}
