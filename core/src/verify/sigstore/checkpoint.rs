//! Signed checkpoints: C2SP `signed-note` carrying a C2SP `tlog-checkpoint`.
//!
//! ```text
//! <origin>\n<tree size>\n<base64 root hash>\n[<extension line>\n]*
//! \n
//! — <key name> <base64(key hint[4] || signature)>\n   (one or more)
//! ```
//!
//! The signature covers the note text (every byte up to and including the newline before the
//! blank line). The log's own line is found by its 4-byte key hint, which for Sigstore logs is
//! the first four bytes of the log ID in the trusted root (Rekor v1: SHA-256 of the DER public
//! key; Rekor v2: the C2SP key ID). Other lines (witness cosignatures) are ignored: evault does
//! not hold witness keys, and an unknown cosigner can neither help nor hurt.

use base64::Engine;

use super::crypto::{Hash, PublicKey};

/// Largest checkpoint accepted (real ones are a few hundred bytes, with cosignatures ~1 KiB).
pub const MAX_CHECKPOINT_BYTES: usize = 64 * 1024;
/// At most this many signature lines (C2SP allows verifiers to cap it; it suggests 100).
pub const MAX_SIGNATURES: usize = 100;

/// A parsed, not yet verified, signed checkpoint.
#[derive(Debug, Clone)]
pub struct SignedCheckpoint {
    /// The signed note text, including its final newline.
    pub text: String,
    pub origin: String,
    pub tree_size: u64,
    pub root_hash: [u8; 32],
    pub extensions: Vec<String>,
    pub signatures: Vec<NoteSignature>,
}

/// One `— name base64` signature line.
#[derive(Debug, Clone)]
pub struct NoteSignature {
    pub name: String,
    pub key_hint: [u8; 4],
    pub signature: Vec<u8>,
}

/// Parses a signed note holding a checkpoint, strictly: the format is line-oriented and
/// ambiguity in it is how signature confusion happens.
pub fn parse(envelope: &str) -> Result<SignedCheckpoint, String> {
    if envelope.len() > MAX_CHECKPOINT_BYTES {
        return Err("checkpoint is too large".into());
    }
    if envelope.chars().any(|c| c.is_control() && c != '\n') {
        return Err("checkpoint contains control characters".into());
    }
    let split = envelope
        .find("\n\n")
        .ok_or("checkpoint has no blank line before its signatures")?;
    let text = &envelope[..=split];
    let sigs = &envelope[split + 2..];
    if sigs.contains("\n\n") || sigs.starts_with('\n') {
        return Err("checkpoint has more than one blank line".into());
    }
    if sigs.is_empty() {
        return Err("checkpoint carries no signature".into());
    }
    if !sigs.ends_with('\n') {
        return Err("checkpoint signature block must end with a newline".into());
    }

    let mut lines = text[..text.len() - 1].split('\n');
    let origin = lines.next().unwrap_or_default();
    if origin.is_empty() {
        return Err("checkpoint has an empty origin line".into());
    }
    let size_line = lines.next().ok_or("checkpoint has no tree size line")?;
    if size_line.is_empty()
        || !size_line.bytes().all(|b| b.is_ascii_digit())
        || (size_line.len() > 1 && size_line.starts_with('0'))
    {
        return Err(format!(
            "checkpoint tree size '{size_line}' is not a decimal number"
        ));
    }
    let tree_size: u64 = size_line
        .parse()
        .map_err(|_| "checkpoint tree size is out of range".to_string())?;
    let hash_line = lines.next().ok_or("checkpoint has no root hash line")?;
    let root = base64::engine::general_purpose::STANDARD
        .decode(hash_line)
        .map_err(|_| "checkpoint root hash is not base64".to_string())?;
    let root_hash: [u8; 32] = root
        .try_into()
        .map_err(|_| "checkpoint root hash is not 32 bytes".to_string())?;
    let extensions: Vec<String> = lines.map(str::to_string).collect();
    if extensions.iter().any(String::is_empty) {
        return Err("checkpoint has an empty extension line".into());
    }

    let mut signatures = Vec::new();
    for line in sigs[..sigs.len() - 1].split('\n') {
        if signatures.len() >= MAX_SIGNATURES {
            return Err("checkpoint has too many signatures".into());
        }
        let rest = line
            .strip_prefix("\u{2014} ")
            .ok_or("checkpoint signature line does not start with '— '")?;
        let (name, b64) = rest
            .split_once(' ')
            .ok_or("checkpoint signature line has no signature")?;
        if name.is_empty() || b64.contains(' ') {
            return Err("malformed checkpoint signature line".into());
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| "checkpoint signature is not base64".to_string())?;
        if raw.len() < 5 {
            return Err("checkpoint signature is too short".into());
        }
        let mut key_hint = [0u8; 4];
        key_hint.copy_from_slice(&raw[..4]);
        signatures.push(NoteSignature {
            name: name.to_string(),
            key_hint,
            signature: raw[4..].to_vec(),
        });
    }

    Ok(SignedCheckpoint {
        text: text.to_string(),
        origin: origin.to_string(),
        tree_size,
        root_hash,
        extensions,
        signatures,
    })
}

impl SignedCheckpoint {
    /// Verifies the log's signature: at least one line carries the log's key hint, and every
    /// such line must verify with the log key (a line that claims to be the log but fails is a
    /// forgery attempt, not noise). Returns the signer name of the verified line.
    pub fn verify(&self, log_id: &[u8], key: &PublicKey) -> Result<String, String> {
        let hint: [u8; 4] = log_id
            .get(..4)
            .and_then(|h| h.try_into().ok())
            .ok_or("log ID shorter than a key hint")?;
        let mut verified = None;
        for sig in self.signatures.iter().filter(|s| s.key_hint == hint) {
            key.verify(self.text.as_bytes(), &sig.signature, Hash::Sha256)
                .map_err(|e| {
                    format!(
                        "checkpoint signature by '{}' does not verify with the log key: {e}",
                        sig.name
                    )
                })?;
            verified.get_or_insert_with(|| sig.name.clone());
        }
        verified.ok_or_else(|| {
            format!(
                "checkpoint has no signature with the log's key hint {}",
                hex::encode(hint)
            )
        })
    }
}
