//! Detached signatures over an artifact: `cosign sign-blob --key` (base64 of an ECDSA P-256 DER
//! signature over SHA-256 of the blob) and `openssl dgst -sha256 -sign` (raw DER or PKCS#1
//! bytes).
//!
//! The vault usually knows an artifact only by its SHA-256 digest (the artifact itself may never
//! be pushed), so [`verify_digest`] is the main entry; [`verify_bytes`] serves the case where
//! the bytes are at hand, which Ed25519 (a pure signature over the whole message) needs.

use base64::Engine as _;

use super::dsse::decode_base64;
use super::keys::PublicKey;

/// Largest signature file [`parse_signature`] reads. A base64 RSA-8192 signature is under 1.5
/// KiB; the bound only stops a wrong file from being read whole.
pub const MAX_SIGNATURE_FILE_LEN: usize = 64 * 1024;

/// Why a signature file is not readable.
#[derive(Debug, thiserror::Error)]
pub enum BlobSigError {
    #[error("signature file is empty")]
    Empty,
    #[error("signature file is {len} bytes, more than the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("signature file looks like base64 but does not decode: {0}")]
    Base64(String),
    #[error(
        "signature file is a JSON document (a Sigstore or cosign bundle?), not a detached signature"
    )]
    Json,
    #[error("signature file is PEM (\"{0}\"), not a detached signature")]
    Pem(String),
}

/// Outcome of checking a detached signature against trusted keys (name, key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobOutcome {
    /// The signature verifies with this key (the first one, in the order given).
    Verified { key: String },
    /// No key verifies it; one reason per key tried.
    NotVerified { attempts: Vec<String> },
}

/// Reads a detached signature file: base64 text as cosign writes it (standard or URL-safe,
/// padded or not, surrounding whitespace and line breaks allowed), or raw binary signature
/// bytes as `openssl dgst -sign` writes them. The two cannot be confused: raw DER always holds
/// bytes outside the base64 alphabet (the 0x02 INTEGER tags), and a raw fixed-size signature is
/// all base64 characters with probability below 2^-100.
pub fn parse_signature(bytes: &[u8]) -> Result<Vec<u8>, BlobSigError> {
    if bytes.len() > MAX_SIGNATURE_FILE_LEN {
        return Err(BlobSigError::TooLarge {
            len: bytes.len(),
            max: MAX_SIGNATURE_FILE_LEN,
        });
    }
    let trimmed = bytes.trim_ascii();
    if trimmed.is_empty() {
        return Err(BlobSigError::Empty);
    }
    if let Some(after) = trimmed.strip_prefix(b"-----BEGIN ") {
        let label = after
            .split(|b| *b == b'-')
            .next()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .unwrap_or_default();
        return Err(BlobSigError::Pem(label));
    }
    let is_base64_text = trimmed
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || b"+/-_=\r\n \t".contains(b));
    if !is_base64_text {
        if trimmed.starts_with(b"{") && serde_json::from_slice::<serde_json::Value>(bytes).is_ok() {
            return Err(BlobSigError::Json);
        }
        return Ok(bytes.to_vec());
    }
    let compact: String = trimmed
        .iter()
        .filter(|b| !b.is_ascii_whitespace())
        .map(|b| char::from(*b))
        .collect();
    let decoded = decode_base64("signature", &compact).map_err(|e| match e {
        super::dsse::DsseError::Base64 { reason, .. } => BlobSigError::Base64(reason),
        other => BlobSigError::Base64(other.to_string()),
    })?;
    if decoded.is_empty() {
        return Err(BlobSigError::Empty);
    }
    Ok(decoded)
}

/// Checks a detached signature over an artifact known only by its SHA-256 digest, with each
/// key in turn: ECDSA P-256 (prehash) and RSA (PKCS#1 v1.5 or PSS over the digest). Ed25519 and
/// P-384 keys cannot check a SHA-256 digest and are reported as such.
pub fn verify_digest(
    signature: &[u8],
    artifact_sha256: &[u8; 32],
    keys: &[(&str, &PublicKey)],
) -> BlobOutcome {
    check_each(keys, |key| {
        key.verify_sha256_prehash(artifact_sha256, signature)
    })
}

/// Checks a detached signature over the artifact's bytes, with each key in turn. Same results
/// as [`verify_digest`] for P-256 and RSA; also allows Ed25519 (over the bytes) and P-384 (over
/// SHA-384 of the bytes).
pub fn verify_bytes(signature: &[u8], artifact: &[u8], keys: &[(&str, &PublicKey)]) -> BlobOutcome {
    check_each(keys, |key| key.verify(artifact, signature))
}

fn check_each(
    keys: &[(&str, &PublicKey)],
    check: impl Fn(&PublicKey) -> Result<(), super::keys::SignatureError>,
) -> BlobOutcome {
    if keys.is_empty() {
        return BlobOutcome::NotVerified {
            attempts: vec!["no trusted keys to try".to_string()],
        };
    }
    let mut attempts = Vec::with_capacity(keys.len());
    for (name, key) in keys {
        match check(key) {
            Ok(()) => {
                return BlobOutcome::Verified {
                    key: (*name).to_string(),
                };
            }
            Err(e) => attempts.push(format!("key {name} ({}): {e}", key.algorithm())),
        }
    }
    BlobOutcome::NotVerified { attempts }
}

/// Encodes a signature the way cosign writes it (standard base64, no newline), for tests and
/// for exporting.
pub fn to_cosign_text(signature: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_raw_der_read_the_same() {
        // A syntactically valid DER ECDSA signature shape (SEQUENCE { INTEGER 1, INTEGER 1 }).
        let der = vec![0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01];
        assert_eq!(parse_signature(&der).expect("raw"), der);
        let text = format!("{}\n", to_cosign_text(&der));
        assert_eq!(parse_signature(text.as_bytes()).expect("base64"), der);
    }

    #[test]
    fn unreadable_files_say_why() {
        assert!(matches!(parse_signature(b" \n"), Err(BlobSigError::Empty)));
        assert!(matches!(
            parse_signature(b"abcde"),
            Err(BlobSigError::Base64(_))
        ));
        assert!(matches!(
            parse_signature(br#"{"mediaType":"x"}"#),
            Err(BlobSigError::Json)
        ));
        assert!(matches!(
            parse_signature(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
            Err(BlobSigError::Pem(l)) if l == "CERTIFICATE"
        ));
    }
}
