//! Signed checkpoints: the C2SP `tlog-checkpoint` body in a C2SP `signed-note`, with Ed25519.
//!
//! ```text
//! evault/3f9c0a5e21b7d4c8          <- origin
//! 1042                             <- tree size
//! 7nQ9...=                         <- base64 root hash
//!                                  <- blank line
//! — evault/3f9c0a5e21b7d4c8 AbCd...  <- em dash, key name, base64(key id || signature)
//! ```
//!
//! The signature covers the text up to and including the root line's newline. The key id is
//! the first four bytes of `SHA-256(name || 0x0A || 0x01 || public key)`; a verifier key is
//! written `name+<hex key id>+<base64(0x01 || public key)>` and a signing key
//! `PRIVATE+KEY+name+<hex key id>+<base64(0x01 || seed)>`, the encodings Go's
//! `golang.org/x/mod/sumdb/note` reads, so other tlog tooling can check our checkpoints.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest as _, Sha256};

use super::merkle::Hash;
use crate::verify::sigstore::checkpoint;
use crate::verify::sigstore::crypto::PublicKey;

/// The signature type byte of Ed25519 in signed notes.
const ALG_ED25519: u8 = 0x01;
const DASH: &str = "\u{2014} ";

/// Whether `name` may name a key or a log: non-empty, no whitespace, no `+`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || c.is_control())
}

fn key_id(name: &str, public: &VerifyingKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ALG_ED25519]);
    h.update(public.as_bytes());
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// The key that signs a vault's checkpoints.
pub struct LogSigner {
    name: String,
    key: SigningKey,
}

impl std::fmt::Debug for LogSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        write!(f, "LogSigner({})", self.verifier().to_vkey())
    }
}

impl LogSigner {
    /// A new random key named `name`.
    pub fn generate(name: &str) -> Result<LogSigner, String> {
        if !valid_name(name) {
            return Err(format!("'{name}' cannot name a log key (no spaces or '+')"));
        }
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| format!("no randomness for a key: {e}"))?;
        Ok(LogSigner {
            name: name.to_string(),
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// Reads `PRIVATE+KEY+name+hexid+base64`.
    pub fn from_text(text: &str) -> Result<LogSigner, String> {
        let text = text.trim();
        let rest = text
            .strip_prefix("PRIVATE+KEY+")
            .ok_or("not a signing key: it does not start with PRIVATE+KEY+")?;
        // The key's base64 may itself hold '+'.
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err("not a signing key: expected PRIVATE+KEY+name+id+key".into());
        };
        let bytes = B64
            .decode(key)
            .map_err(|_| "the signing key is not valid base64")?;
        let seed: [u8; 32] = match bytes.split_first() {
            Some((&ALG_ED25519, seed)) => seed
                .try_into()
                .map_err(|_| "the Ed25519 signing key is not 32 bytes")?,
            _ => return Err("the signing key is not an Ed25519 key".into()),
        };
        let signer = LogSigner {
            name: name.to_string(),
            key: SigningKey::from_bytes(&seed),
        };
        if !valid_name(name) || hex::encode(signer.verifier().id) != id {
            return Err("the signing key's name or id does not match its key".into());
        }
        Ok(signer)
    }

    pub fn to_text(&self) -> String {
        let mut bytes = vec![ALG_ED25519];
        bytes.extend_from_slice(self.key.as_bytes());
        format!(
            "PRIVATE+KEY+{}+{}+{}",
            self.name,
            hex::encode(self.verifier().id),
            B64.encode(bytes)
        )
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn verifier(&self) -> LogVerifier {
        let key = self.key.verifying_key();
        LogVerifier {
            id: key_id(&self.name, &key),
            name: self.name.clone(),
            key,
        }
    }

    /// Signs a checkpoint and returns the whole signed note.
    pub fn sign(&self, checkpoint: &Checkpoint) -> String {
        let body = checkpoint.body();
        let signature = self.key.sign(body.as_bytes());
        let mut blob = self.verifier().id.to_vec();
        blob.extend_from_slice(&signature.to_bytes());
        format!("{body}\n{DASH}{} {}\n", self.name, B64.encode(blob))
    }

    /// Signs any note text (non-empty lines, each ending in a newline, no blank line) and
    /// returns the signed note. Callers choose a first line that no other note of this key can
    /// have (a checkpoint's second line is a number), so that one kind of note can never be
    /// passed off as another.
    pub fn sign_note(&self, text: &str) -> Result<String, String> {
        if text.is_empty()
            || !text.ends_with('\n')
            || text.contains("\n\n")
            || text.chars().any(|c| c.is_control() && c != '\n')
        {
            return Err("a note's text must be non-empty lines, each ending in a newline".into());
        }
        let signature = self.key.sign(text.as_bytes());
        let mut blob = self.verifier().id.to_vec();
        blob.extend_from_slice(&signature.to_bytes());
        Ok(format!(
            "{text}\n{DASH}{} {}\n",
            self.name,
            B64.encode(blob)
        ))
    }
}

/// The public half: checks checkpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogVerifier {
    name: String,
    id: [u8; 4],
    key: VerifyingKey,
}

impl LogVerifier {
    /// Reads `name+hexid+base64(0x01 || key)`.
    pub fn from_vkey(text: &str) -> Result<LogVerifier, String> {
        let text = text.trim();
        // The key's base64 may itself hold '+'.
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err("not a verifier key: expected name+id+key".into());
        };
        let bytes = B64
            .decode(key)
            .map_err(|_| "the verifier key is not valid base64")?;
        let public: [u8; 32] = match bytes.split_first() {
            Some((&ALG_ED25519, key)) => key
                .try_into()
                .map_err(|_| "the Ed25519 verifier key is not 32 bytes")?,
            _ => return Err("the verifier key is not an Ed25519 key".into()),
        };
        let key = VerifyingKey::from_bytes(&public)
            .map_err(|_| "the verifier key is not a valid Ed25519 point")?;
        let verifier = LogVerifier {
            id: key_id(name, &key),
            name: name.to_string(),
            key,
        };
        if !valid_name(name) || hex::encode(verifier.id) != id {
            return Err("the verifier key's id does not match its name and key".into());
        }
        Ok(verifier)
    }

    pub fn to_vkey(&self) -> String {
        let mut bytes = vec![ALG_ED25519];
        bytes.extend_from_slice(self.key.as_bytes());
        format!(
            "{}+{}+{}",
            self.name,
            hex::encode(self.id),
            B64.encode(bytes)
        )
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id, as 8 hex digits.
    pub fn key_id(&self) -> String {
        hex::encode(self.id)
    }

    /// The 32-byte public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// Checks a signed note against this key and parses its checkpoint (with the strict
    /// parser the Sigstore verifier uses for Rekor's). Signature lines of other keys are
    /// ignored (they may be witnesses' cosignatures); every line with this key's id must verify,
    /// and there must be one.
    pub fn open(&self, note: &str) -> Result<Checkpoint, String> {
        let parsed = checkpoint::parse(note)?;
        if !parsed.signatures.iter().any(|s| s.key_hint == self.id) {
            let signers: Vec<String> = parsed
                .signatures
                .iter()
                .map(|s| format!("{} (key {})", s.name, hex::encode(s.key_hint)))
                .collect();
            return Err(format!(
                "the checkpoint is not signed by {} (key {}): it names {}",
                self.name,
                self.key_id(),
                signers.join(", ")
            ));
        }
        parsed
            .verify(&self.id, &PublicKey::Ed25519(self.key))
            .map_err(|_| {
                format!(
                    "the checkpoint's signature by {} (key {}) does not verify",
                    self.name,
                    self.key_id()
                )
            })?;
        Ok(Checkpoint::from(parsed))
    }

    /// Checks a signed note of any text against this key (see [`LogSigner::sign_note`]) and
    /// returns its text. As for checkpoints, other keys' lines are ignored and every line with
    /// this key's id must verify.
    pub fn open_note(&self, note: &str) -> Result<String, String> {
        const MAX_NOTE: usize = 64 * 1024;
        if note.len() > MAX_NOTE {
            return Err("the signed note is larger than 64 KiB".into());
        }
        if note.chars().any(|c| c.is_control() && c != '\n') {
            return Err("the signed note contains control characters".into());
        }
        let split = note
            .find("\n\n")
            .ok_or("the signed note has no blank line before its signatures")?;
        let (text, sigs) = (&note[..=split], &note[split + 2..]);
        if sigs.is_empty() || !sigs.ends_with('\n') || sigs.contains("\n\n") {
            return Err("the signed note's signature block is malformed".into());
        }
        let mut found = false;
        for line in sigs[..sigs.len() - 1].split('\n') {
            let (name, b64) = line
                .strip_prefix(DASH)
                .and_then(|rest| rest.split_once(' '))
                .ok_or("a signature line of the note is malformed")?;
            let raw = B64
                .decode(b64)
                .map_err(|_| "a signature of the note is not base64")?;
            // As Go's `note.Open`: a line is this key's when both its name and its id are.
            if raw.len() < 4 || raw[..4] != self.id || name != self.name {
                continue;
            }
            found = true;
            let signature = ed25519_dalek::Signature::from_slice(&raw[4..]).map_err(|_| {
                format!("the note's signature by {name} is not an Ed25519 signature")
            })?;
            self.key
                .verify_strict(text.as_bytes(), &signature)
                .map_err(|_| {
                    format!(
                        "the note's signature by {} (key {}) does not verify",
                        self.name,
                        self.key_id()
                    )
                })?;
        }
        if !found {
            let names: Vec<String> = sigs
                .lines()
                .filter_map(|l| l.strip_prefix(DASH)?.split_once(' '))
                .map(|(name, b64)| {
                    let hint = B64
                        .decode(b64)
                        .ok()
                        .filter(|r| r.len() >= 4)
                        .map_or_else(|| "?".to_string(), |r| hex::encode(&r[..4]));
                    format!("{name} (key {hint})")
                })
                .collect();
            return Err(format!(
                "the note is not signed by {} (key {}): it names {}",
                self.name,
                self.key_id(),
                if names.is_empty() {
                    "no key".to_string()
                } else {
                    names.join(", ")
                }
            ));
        }
        Ok(text.to_string())
    }
}

/// A tree head: the log's name, its size and root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

impl Checkpoint {
    /// The signed text: origin, size and base64 root, each on its own line.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        )
    }
}

impl From<checkpoint::SignedCheckpoint> for Checkpoint {
    fn from(c: checkpoint::SignedCheckpoint) -> Checkpoint {
        Checkpoint {
            origin: c.origin,
            size: c.tree_size,
            root: c.root_hash,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_round_trip_and_reject_other_keys_and_edits() {
        let signer = LogSigner::generate("evault/test").unwrap();
        let again = LogSigner::from_text(&signer.to_text()).unwrap();
        assert_eq!(again.verifier(), signer.verifier());
        let verifier = LogVerifier::from_vkey(&signer.verifier().to_vkey()).unwrap();
        let cp = Checkpoint {
            origin: "evault/test".into(),
            size: 7,
            root: [9u8; 32],
        };
        let note = signer.sign(&cp);
        assert!(note.starts_with("evault/test\n7\nCQkJ"));
        assert!(note.contains("\n\n\u{2014} evault/test "));
        assert_eq!(verifier.open(&note).unwrap(), cp);

        let edited = note.replacen("\n7\n", "\n8\n", 1);
        let err = verifier.open(&edited).unwrap_err();
        assert!(err.contains("does not verify"), "{err}");

        let other = LogSigner::generate("evault/test").unwrap();
        let err = other.verifier().open(&note).unwrap_err();
        assert!(err.contains("is not signed by"), "{err}");
        assert!(err.contains(&signer.verifier().key_id()), "{err}");

        assert!(LogVerifier::from_vkey("evault/test+00000000+AQ==").is_err());
        assert!(LogSigner::generate("has space").is_err());
    }

    #[test]
    fn any_note_text_can_be_signed_and_only_its_key_opens_it() {
        let signer = LogSigner::generate("evault/test").unwrap();
        let verifier = signer.verifier();
        let note = signer.sign_note("some-app/v1\nsha256:ab\n").unwrap();
        assert_eq!(
            verifier.open_note(&note).unwrap(),
            "some-app/v1\nsha256:ab\n"
        );
        // Not a checkpoint, and a checkpoint's verifier says so.
        assert!(verifier.open(&note).is_err());
        let edited = note.replacen("sha256:ab", "sha256:ac", 1);
        assert!(
            verifier
                .open_note(&edited)
                .unwrap_err()
                .contains("does not verify")
        );
        let renamed = note.replacen("\u{2014} evault/test ", "\u{2014} evault/tesu ", 1);
        assert!(
            verifier
                .open_note(&renamed)
                .unwrap_err()
                .contains("is not signed by")
        );
        let other = LogSigner::generate("evault/test").unwrap();
        assert!(
            other
                .verifier()
                .open_note(&note)
                .unwrap_err()
                .contains("is not signed by")
        );
        for bad in ["", "no newline", "a\n\nb\n"] {
            assert!(signer.sign_note(bad).is_err(), "{bad:?}");
        }
    }
}
