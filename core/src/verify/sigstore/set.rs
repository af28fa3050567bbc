//! Rekor v1 Signed Entry Timestamps (the bundle's `inclusionPromise`).
//!
//! The SET is the log's signature over the RFC 8785 (JCS) canonical JSON of
//! `{"body", "integratedTime", "logID", "logIndex"}`: the base64 of the canonicalized body, the
//! integration time in Unix seconds, the hex log ID and the global log index. It is the only
//! thing in a Rekor v1 entry that authenticates `integratedTime`; an inclusion proof and
//! checkpoint prove that the entry is in the log but say nothing about *when* it got there.

use base64::Engine;

use super::crypto::{Hash, PublicKey};

/// The exact bytes Rekor signs. Canonical JSON sorts keys by UTF-16 code units (`body`,
/// `integratedTime`, `logID`, `logIndex`); the values are a standard-base64 string, two
/// integers and a lowercase hex string, none of which contain characters that JCS escapes, so
/// this fixed layout is the canonical form.
pub fn canonical_payload(
    body: &[u8],
    integrated_time: i64,
    log_id: &[u8],
    log_index: i64,
) -> String {
    format!(
        "{{\"body\":\"{}\",\"integratedTime\":{},\"logID\":\"{}\",\"logIndex\":{}}}",
        base64::engine::general_purpose::STANDARD.encode(body),
        integrated_time,
        hex::encode(log_id),
        log_index
    )
}

/// Verifies a SET with the log key (ECDSA/SHA-256 for Rekor v1 logs).
pub fn verify(
    set: &[u8],
    body: &[u8],
    integrated_time: i64,
    log_id: &[u8],
    log_index: i64,
    key: &PublicKey,
) -> Result<(), String> {
    let payload = canonical_payload(body, integrated_time, log_id, log_index);
    key.verify(payload.as_bytes(), set, Hash::Sha256)
}
