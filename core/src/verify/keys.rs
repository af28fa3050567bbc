//! Public keys and raw signature checks.
//!
//! A [`PublicKey`] is what the trust store holds: Ed25519, ECDSA P-256, ECDSA P-384 or RSA,
//! read from PEM (`PUBLIC KEY`, `RSA PUBLIC KEY`, `EC PUBLIC KEY`) or SubjectPublicKeyInfo DER.
//! Its identity is [`PublicKey::fingerprint`], the hex SHA-256 of its canonical
//! SubjectPublicKeyInfo DER, so the same key gets the same id however it was written (PEM line
//! width, compressed or uncompressed EC point, PKCS#1 or SPKI RSA).
//!
//! Verification pins each algorithm to one hash, the one the signers in this ecosystem use
//! (cosign, in-toto, witness, Cloud KMS, openssl `dgst -sha256`): ECDSA P-256 with SHA-256,
//! ECDSA P-384 with SHA-384, RSA with SHA-256 (PKCS#1 v1.5 or PSS), Ed25519 pure. A signature is
//! never accepted with a weaker or different hash than its key's, so a P-384 key cannot be
//! tricked into checking a SHA-256 digest.
//!
//! All cryptography is RustCrypto's (`ed25519-dalek`, `p256`, `p384`, `rsa`); this module only
//! decides which check to run and turns failures into one-line reasons.

use std::fmt;

use base64::Engine as _;
use rsa::traits::PublicKeyParts as _;
use sha2::{Digest as _, Sha256};
use signature::hazmat::PrehashVerifier as _;
use spki::der::Decode as _;

/// Largest PEM text accepted by [`PublicKey::from_pem`]. A PEM public key is well under 2 KiB
/// (RSA-8192 is about 1.5 KiB); the bound stops a mistaken upload from being scanned in full.
pub const MAX_PEM_LEN: usize = 64 * 1024;

/// Largest SubjectPublicKeyInfo DER accepted by [`PublicKey::from_spki_der`] (RSA-8192 is about
/// 1.1 KiB).
pub const MAX_DER_LEN: usize = 16 * 1024;

/// Smallest RSA modulus accepted, in bits. 1024-bit RSA has been disallowed for signatures since
/// 2013 (NIST SP 800-131A); trusting such a key would make the vault's evidence forgeable by a
/// well-funded attacker.
pub const MIN_RSA_BITS: usize = 2048;

/// Largest signature, in bytes, that is even looked at (RSA-8192 signatures are 1024 bytes).
pub const MAX_SIGNATURE_LEN: usize = 2048;

// DER prefixes of the SubjectPublicKeyInfo for the fixed-size keys (RFC 8410, RFC 5480). The key
// bytes follow directly. Writing them by hand keeps `fingerprint` and `to_pem` infallible; tests
// check them against the crates' own encoders.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
const P384_SPKI_PREFIX: [u8; 23] = [
    0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b,
    0x81, 0x04, 0x00, 0x22, 0x03, 0x62, 0x00,
];
/// AlgorithmIdentifier { rsaEncryption, NULL } (RFC 3279).
const RSA_ALGORITHM_ID: [u8; 15] = [
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];

const OID_ED25519: spki::ObjectIdentifier = spki::ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_EC_PUBLIC_KEY: spki::ObjectIdentifier =
    spki::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: spki::ObjectIdentifier = spki::ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: spki::ObjectIdentifier = spki::ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_RSA: spki::ObjectIdentifier = spki::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_RSA_PSS: spki::ObjectIdentifier =
    spki::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");

/// Every way `signature` can be read as an ECDSA signature on one curve: fixed-size `r||s` when
/// it is exactly the curve's `2 * field size` bytes, and strict DER. Scalars out of range (zero,
/// `>= n`) are refused by the crate. Returns `Malformed` when neither reading works.
macro_rules! ecdsa_candidates {
    ($curve:ty, $algorithm:expr, $signature:expr, $fixed_len:expr) => {{
        let signature: &[u8] = $signature;
        let mut out: Vec<ecdsa::Signature<$curve>> = Vec::with_capacity(2);
        if signature.len() == $fixed_len
            && let Ok(sig) = ecdsa::Signature::<$curve>::from_slice(signature)
        {
            out.push(sig);
        }
        if let Ok(sig) = ecdsa::Signature::<$curve>::from_der(signature) {
            out.push(sig);
        }
        if out.is_empty() {
            Err(SignatureError::Malformed {
                algorithm: $algorithm,
                reason: format!(
                    "{} bytes is neither a {}-byte r||s signature nor valid DER with in-range scalars",
                    signature.len(),
                    $fixed_len
                ),
            })
        } else {
            Ok(out)
        }
    }};
}

/// A public key evault can verify signatures with.
///
/// The variants hold the RustCrypto key types directly, so other verifiers (in-toto layouts
/// carry raw Ed25519 keys, for instance) can build one without going through PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicKey {
    /// Ed25519 (RFC 8032), verified with the strict rules (no small-order keys or `R`).
    Ed25519(ed25519_dalek::VerifyingKey),
    /// ECDSA over NIST P-256 with SHA-256.
    EcdsaP256(p256::ecdsa::VerifyingKey),
    /// ECDSA over NIST P-384 with SHA-384.
    EcdsaP384(p384::ecdsa::VerifyingKey),
    /// RSA (2048 to 8192 bits) with SHA-256, PKCS#1 v1.5 or PSS.
    Rsa(rsa::RsaPublicKey),
}

/// Why a public key could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("public key input is {len} bytes, more than the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("no PEM block found (expected \"-----BEGIN PUBLIC KEY-----\")")]
    NotPem,
    #[error("PEM block \"{0}\" is not closed by a matching \"-----END {0}-----\" line")]
    UnterminatedPem(String),
    #[error("PEM block \"{label}\" is not valid base64: {reason}")]
    PemBase64 { label: String, reason: String },
    #[error(
        "this is a private key (PEM \"{0}\"); give the public key instead (for example `openssl pkey -pubout`)"
    )]
    PrivateKey(String),
    #[error(
        "OpenSSH public keys are not supported; convert with `ssh-keygen -e -m PKCS8 -f key.pub`"
    )]
    OpenSsh,
    #[error(
        "this is a certificate, not a public key; extract its key with `openssl x509 -pubkey -noout`"
    )]
    Certificate,
    #[error(
        "PEM block \"{0}\" is not a public key (expected PUBLIC KEY, RSA PUBLIC KEY or EC PUBLIC KEY)"
    )]
    UnexpectedPemLabel(String),
    #[error("not a valid SubjectPublicKeyInfo: {0}")]
    MalformedSpki(String),
    #[error("invalid {algorithm} public key: {reason}")]
    InvalidKey {
        algorithm: &'static str,
        reason: String,
    },
    #[error("unsupported key algorithm {0} (supported: Ed25519, ECDSA P-256, ECDSA P-384, RSA)")]
    UnsupportedAlgorithm(String),
    #[error("unsupported elliptic curve {0} (supported: P-256, P-384)")]
    UnsupportedCurve(String),
    #[error(
        "RSASSA-PSS-restricted RSA keys (OID 1.2.840.113549.1.1.10) are not supported; export the key as plain rsaEncryption"
    )]
    RsaPssRestricted,
    #[error("RSA key is {bits} bits; at least {MIN_RSA_BITS} bits are required")]
    RsaTooSmall { bits: usize },
}

/// Why a signature did not verify. The message names the algorithm, so a list of attempts reads
/// as a chain of reasoning ("signature 0 with key ci (ecdsa-p256): ...").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Well-formed, but not made by this key over this message (or tampered with).
    #[error("signature does not verify with this {algorithm} key")]
    Invalid { algorithm: &'static str },
    /// The bytes cannot be a signature of this key's algorithm at all.
    #[error("not a valid {algorithm} signature encoding: {reason}")]
    Malformed {
        algorithm: &'static str,
        reason: String,
    },
    /// The key's algorithm cannot check a signature over a SHA-256 digest.
    #[error("{algorithm} keys cannot verify a signature from a SHA-256 digest alone: {reason}")]
    PrehashUnsupported {
        algorithm: &'static str,
        reason: &'static str,
    },
}

impl PublicKey {
    /// Reads the first PEM block of `text` that holds a key: `PUBLIC KEY` (SubjectPublicKeyInfo,
    /// any of the four algorithms), `RSA PUBLIC KEY` (PKCS#1) or `EC PUBLIC KEY` (SPKI, or a
    /// bare SEC1 point as a few tools write it). Text around the block is ignored, and
    /// `EC PARAMETERS` blocks before it are skipped (`openssl ecparam` output). Private keys and
    /// certificates are refused with a message saying what to do instead.
    pub fn from_pem(text: &str) -> Result<PublicKey, KeyError> {
        if text.len() > MAX_PEM_LEN {
            return Err(KeyError::TooLarge {
                len: text.len(),
                max: MAX_PEM_LEN,
            });
        }
        let trimmed = text.trim_start();
        if ["ssh-", "ecdsa-sha2-", "sk-"]
            .iter()
            .any(|p| trimmed.starts_with(p))
        {
            return Err(KeyError::OpenSsh);
        }
        let mut rest = text;
        loop {
            let (label, body, after) = next_pem_block(rest)?;
            rest = after;
            // The label is judged before the body is decoded: a pasted private key is refused
            // without its contents ever being parsed.
            match label {
                "EC PARAMETERS" => continue,
                "PUBLIC KEY" => return PublicKey::from_spki_der(&pem_body(label, body)?),
                "RSA PUBLIC KEY" => return PublicKey::from_pkcs1_der(&pem_body(label, body)?),
                "EC PUBLIC KEY" => {
                    let der = pem_body(label, body)?;
                    return PublicKey::from_spki_der(&der).or_else(|spki_err| {
                        PublicKey::from_sec1_point(&der).map_err(|_| spki_err)
                    });
                }
                "CERTIFICATE" | "X509 CERTIFICATE" | "TRUSTED CERTIFICATE" => {
                    return Err(KeyError::Certificate);
                }
                l if l.contains("PRIVATE KEY") => return Err(KeyError::PrivateKey(l.to_string())),
                l => return Err(KeyError::UnexpectedPemLabel(l.to_string())),
            }
        }
    }

    /// Reads a DER SubjectPublicKeyInfo (RFC 5280): id-Ed25519, id-ecPublicKey with the named
    /// curve P-256 or P-384, or rsaEncryption. The DER must be exact (no trailing bytes).
    pub fn from_spki_der(der: &[u8]) -> Result<PublicKey, KeyError> {
        if der.len() > MAX_DER_LEN {
            return Err(KeyError::TooLarge {
                len: der.len(),
                max: MAX_DER_LEN,
            });
        }
        let info = spki::SubjectPublicKeyInfoRef::from_der(der)
            .map_err(|e| KeyError::MalformedSpki(e.to_string()))?;
        let oid = info.algorithm.oid;
        if oid == OID_ED25519 {
            let key =
                ed25519_dalek::VerifyingKey::try_from(info).map_err(|e| KeyError::InvalidKey {
                    algorithm: "ed25519",
                    reason: e.to_string(),
                })?;
            Ok(PublicKey::Ed25519(key))
        } else if oid == OID_EC_PUBLIC_KEY {
            let curve = info
                .algorithm
                .parameters_oid()
                .map_err(|_| KeyError::MalformedSpki("EC key without a named curve".into()))?;
            if curve == OID_P256 {
                let key = p256::ecdsa::VerifyingKey::try_from(info).map_err(|e| {
                    KeyError::InvalidKey {
                        algorithm: "ecdsa-p256",
                        reason: e.to_string(),
                    }
                })?;
                Ok(PublicKey::EcdsaP256(key))
            } else if curve == OID_P384 {
                let key = p384::ecdsa::VerifyingKey::try_from(info).map_err(|e| {
                    KeyError::InvalidKey {
                        algorithm: "ecdsa-p384",
                        reason: e.to_string(),
                    }
                })?;
                Ok(PublicKey::EcdsaP384(key))
            } else {
                Err(KeyError::UnsupportedCurve(curve_name(curve)))
            }
        } else if oid == OID_RSA {
            let key = rsa::RsaPublicKey::try_from(info).map_err(|e| KeyError::InvalidKey {
                algorithm: "rsa",
                reason: e.to_string(),
            })?;
            PublicKey::checked_rsa(key)
        } else if oid == OID_RSA_PSS {
            Err(KeyError::RsaPssRestricted)
        } else {
            Err(KeyError::UnsupportedAlgorithm(oid.to_string()))
        }
    }

    /// Reads a PKCS#1 `RSAPublicKey` (the body of a PEM `RSA PUBLIC KEY`).
    pub fn from_pkcs1_der(der: &[u8]) -> Result<PublicKey, KeyError> {
        use rsa::pkcs1::DecodeRsaPublicKey as _;
        if der.len() > MAX_DER_LEN {
            return Err(KeyError::TooLarge {
                len: der.len(),
                max: MAX_DER_LEN,
            });
        }
        let key = rsa::RsaPublicKey::from_pkcs1_der(der).map_err(|e| KeyError::InvalidKey {
            algorithm: "rsa",
            reason: e.to_string(),
        })?;
        PublicKey::checked_rsa(key)
    }

    /// Reads a bare SEC1 elliptic-curve point; the curve follows from its length (33 or 65 bytes
    /// for P-256, 49 or 97 for P-384).
    fn from_sec1_point(bytes: &[u8]) -> Result<PublicKey, KeyError> {
        match bytes.len() {
            33 | 65 => p256::ecdsa::VerifyingKey::from_sec1_bytes(bytes)
                .map(PublicKey::EcdsaP256)
                .map_err(|e| KeyError::InvalidKey {
                    algorithm: "ecdsa-p256",
                    reason: e.to_string(),
                }),
            49 | 97 => p384::ecdsa::VerifyingKey::from_sec1_bytes(bytes)
                .map(PublicKey::EcdsaP384)
                .map_err(|e| KeyError::InvalidKey {
                    algorithm: "ecdsa-p384",
                    reason: e.to_string(),
                }),
            n => Err(KeyError::MalformedSpki(format!(
                "{n} bytes is neither a SubjectPublicKeyInfo nor a P-256/P-384 point"
            ))),
        }
    }

    fn checked_rsa(key: rsa::RsaPublicKey) -> Result<PublicKey, KeyError> {
        let bits = key.n().bits() as usize;
        if bits < MIN_RSA_BITS {
            return Err(KeyError::RsaTooSmall { bits });
        }
        Ok(PublicKey::Rsa(key))
    }

    /// Short algorithm name, as stored in the trust store: `ed25519`, `ecdsa-p256`, `ecdsa-p384`
    /// or `rsa`.
    pub fn algorithm(&self) -> &'static str {
        match self {
            PublicKey::Ed25519(_) => "ed25519",
            PublicKey::EcdsaP256(_) => "ecdsa-p256",
            PublicKey::EcdsaP384(_) => "ecdsa-p384",
            PublicKey::Rsa(_) => "rsa",
        }
    }

    /// The canonical SubjectPublicKeyInfo DER: uncompressed EC points, rsaEncryption with NULL
    /// parameters, minimal integers. Built by hand so that it cannot fail.
    pub fn to_spki_der(&self) -> Vec<u8> {
        match self {
            PublicKey::Ed25519(key) => [&ED25519_SPKI_PREFIX[..], key.as_bytes()].concat(),
            PublicKey::EcdsaP256(key) => {
                [&P256_SPKI_PREFIX[..], key.to_sec1_point(false).as_bytes()].concat()
            }
            PublicKey::EcdsaP384(key) => {
                [&P384_SPKI_PREFIX[..], key.to_sec1_point(false).as_bytes()].concat()
            }
            PublicKey::Rsa(key) => {
                let mut pkcs1 = der_integer(&key.n_bytes());
                pkcs1.extend(der_integer(&key.e_bytes()));
                let pkcs1 = der_tlv(0x30, &pkcs1);
                // BIT STRING with zero unused bits.
                let bits = der_tlv(0x03, &[&[0u8][..], &pkcs1].concat());
                der_tlv(0x30, &[&RSA_ALGORITHM_ID[..], &bits].concat())
            }
        }
    }

    /// Hex SHA-256 of the key's canonical SubjectPublicKeyInfo DER: a stable id for the trust
    /// store, the same however the key was written. For keys written the usual way (uncompressed
    /// point, SPKI) it equals `openssl pkey -pubin -outform DER | sha256sum`.
    pub fn fingerprint(&self) -> String {
        hex::encode(Sha256::digest(self.to_spki_der()))
    }

    /// The key as SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`, 64-column lines,
    /// trailing newline), the form stored in the trust store.
    pub fn to_pem(&self) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(self.to_spki_der());
        let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 60);
        out.push_str("-----BEGIN PUBLIC KEY-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            // base64 output is ASCII, so every chunk is valid UTF-8.
            out.push_str(&String::from_utf8_lossy(chunk));
            out.push('\n');
        }
        out.push_str("-----END PUBLIC KEY-----\n");
        out
    }

    /// Verifies `signature` over `message`.
    ///
    /// - Ed25519: 64-byte signature, strict verification (`verify_strict`: rejects non-canonical
    ///   `S`, small-order keys and `R`).
    /// - ECDSA P-256 with SHA-256 and P-384 with SHA-384: ASN.1 DER (what cosign, openssl and Go
    ///   write) or fixed-size `r||s` (IEEE P1363, what Cloud KMS exports and WebCrypto write).
    ///   Both readings are tried when the bytes parse as both. High-`S` signatures are accepted,
    ///   as by Go's and OpenSSL's verifiers.
    /// - RSA with SHA-256: PKCS#1 v1.5, then RSASSA-PSS with MGF1-SHA-256 and any salt length
    ///   (the salt length is recovered from the encoding, so salt = hash length as Go and
    ///   sigstore write and salt = maximum as `openssl dgst -sigopt rsa_padding_mode:pss` writes
    ///   both verify).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        let algorithm = self.algorithm();
        check_length(algorithm, signature)?;
        match self {
            PublicKey::Ed25519(key) => {
                let sig = ed25519_dalek::Signature::from_slice(signature).map_err(|_| {
                    SignatureError::Malformed {
                        algorithm,
                        reason: format!(
                            "Ed25519 signatures are 64 bytes, this one is {}",
                            signature.len()
                        ),
                    }
                })?;
                // `verify_strict`, not the plain `Verifier::verify`: the latter accepts signatures
                // that a small-order (weak) key makes valid for many messages.
                key.verify_strict(message, &sig)
                    .map_err(|_| SignatureError::Invalid { algorithm })
            }
            PublicKey::EcdsaP256(key) => {
                let candidates = ecdsa_candidates!(p256::NistP256, algorithm, signature, 64)?;
                if candidates
                    .iter()
                    .any(|sig| signature::Verifier::verify(key, message, sig).is_ok())
                {
                    Ok(())
                } else {
                    Err(SignatureError::Invalid { algorithm })
                }
            }
            PublicKey::EcdsaP384(key) => {
                let candidates = ecdsa_candidates!(p384::NistP384, algorithm, signature, 96)?;
                if candidates
                    .iter()
                    .any(|sig| signature::Verifier::verify(key, message, sig).is_ok())
                {
                    Ok(())
                } else {
                    Err(SignatureError::Invalid { algorithm })
                }
            }
            PublicKey::Rsa(key) => {
                let digest: [u8; 32] = Sha256::digest(message).into();
                rsa_verify_prehash(key, &digest, signature)
            }
        }
    }

    /// Verifies a signature made over the SHA-256 digest of a message the caller does not have,
    /// as `cosign sign-blob --key` (ECDSA P-256 over SHA-256(blob)) and `openssl dgst -sha256
    /// -sign` produce.
    ///
    /// - ECDSA P-256: the digest is the ECDSA prehash; DER or `r||s`.
    /// - RSA: PKCS#1 v1.5 with the SHA-256 DigestInfo, or PSS (any salt length) over the digest.
    /// - ECDSA P-384: refused, because P-384 signatures are made over SHA-384 and accepting a
    ///   SHA-256 digest would let a different hash stand in for the key's own.
    /// - Ed25519: refused, because pure Ed25519 hashes the whole message itself (with SHA-512),
    ///   so it cannot be checked from a digest; use [`PublicKey::verify`] with the bytes.
    pub fn verify_sha256_prehash(
        &self,
        digest: &[u8; 32],
        signature: &[u8],
    ) -> Result<(), SignatureError> {
        let algorithm = self.algorithm();
        match self {
            PublicKey::Ed25519(_) => Err(SignatureError::PrehashUnsupported {
                algorithm,
                reason: "Ed25519 signs the whole message, so the artifact's bytes are needed",
            }),
            PublicKey::EcdsaP384(_) => Err(SignatureError::PrehashUnsupported {
                algorithm,
                reason: "P-384 signatures are made over SHA-384, not SHA-256",
            }),
            PublicKey::EcdsaP256(key) => {
                check_length(algorithm, signature)?;
                let candidates = ecdsa_candidates!(p256::NistP256, algorithm, signature, 64)?;
                if candidates
                    .iter()
                    .any(|sig| key.verify_prehash(digest, sig).is_ok())
                {
                    Ok(())
                } else {
                    Err(SignatureError::Invalid { algorithm })
                }
            }
            PublicKey::Rsa(key) => {
                check_length(algorithm, signature)?;
                rsa_verify_prehash(key, digest, signature)
            }
        }
    }
}

impl fmt::Display for PublicKey {
    /// `ecdsa-p256 <hex fingerprint>`: algorithm and fingerprint, for logs and messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.algorithm(), self.fingerprint())
    }
}

fn check_length(algorithm: &'static str, signature: &[u8]) -> Result<(), SignatureError> {
    if signature.is_empty() {
        return Err(SignatureError::Malformed {
            algorithm,
            reason: "the signature is empty".into(),
        });
    }
    if signature.len() > MAX_SIGNATURE_LEN {
        return Err(SignatureError::Malformed {
            algorithm,
            reason: format!(
                "{} bytes is longer than any supported signature",
                signature.len()
            ),
        });
    }
    Ok(())
}

/// RSA with SHA-256 over a digest: PKCS#1 v1.5 first (by far the most common), then PSS with the
/// salt length recovered from the signature.
fn rsa_verify_prehash(
    key: &rsa::RsaPublicKey,
    digest: &[u8; 32],
    signature: &[u8],
) -> Result<(), SignatureError> {
    let algorithm = "rsa";
    if signature.len() != key.size() {
        return Err(SignatureError::Malformed {
            algorithm,
            reason: format!(
                "a {}-bit key makes {}-byte signatures, this one is {} bytes",
                key.n().bits(),
                key.size(),
                signature.len()
            ),
        });
    }
    let pkcs1_ok = rsa::pkcs1v15::Signature::try_from(signature)
        .ok()
        .is_some_and(|sig| {
            rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key.clone())
                .verify_prehash(digest, &sig)
                .is_ok()
        });
    if pkcs1_ok {
        return Ok(());
    }
    let pss_ok = rsa::pss::Signature::try_from(signature)
        .ok()
        .is_some_and(|sig| {
            rsa::pss::VerifyingKey::<Sha256>::new_with_auto_salt_len(key.clone())
                .verify_prehash(digest, &sig)
                .is_ok()
        });
    if pss_ok {
        Ok(())
    } else {
        Err(SignatureError::Invalid { algorithm })
    }
}

/// Finds the next `-----BEGIN <label>-----` ... `-----END <label>-----` block in `text`.
/// Returns the label, the body text (not yet decoded) and the text after the block.
fn next_pem_block(text: &str) -> Result<(&str, &str, &str), KeyError> {
    const BEGIN: &str = "-----BEGIN ";
    const DASHES: &str = "-----";
    let start = text.find(BEGIN).ok_or(KeyError::NotPem)?;
    let after_begin = &text[start + BEGIN.len()..];
    let label_end = after_begin.find(DASHES).ok_or(KeyError::NotPem)?;
    let label = after_begin[..label_end].trim();
    if label.contains('\n') {
        return Err(KeyError::NotPem);
    }
    let body_and_rest = &after_begin[label_end + DASHES.len()..];
    let end_marker = format!("-----END {label}-----");
    let end = body_and_rest
        .find(&end_marker)
        .ok_or_else(|| KeyError::UnterminatedPem(label.to_string()))?;
    Ok((
        label,
        &body_and_rest[..end],
        &body_and_rest[end + end_marker.len()..],
    ))
}

/// Decodes a PEM body: base64 with any whitespace or line breaks.
fn pem_body(label: &str, body: &str) -> Result<Vec<u8>, KeyError> {
    if body.contains(':') {
        // RFC 1421 headers (Proc-Type, DEK-Info) only appear on encrypted private keys.
        return Err(KeyError::PemBase64 {
            label: label.to_string(),
            reason: "encapsulated headers are not supported".into(),
        });
    }
    let compact: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| KeyError::PemBase64 {
            label: label.to_string(),
            reason: e.to_string(),
        })
}

fn curve_name(oid: spki::ObjectIdentifier) -> String {
    match oid.to_string().as_str() {
        "1.3.132.0.35" => "P-521 (1.3.132.0.35)".into(),
        "1.3.132.0.10" => "secp256k1 (1.3.132.0.10)".into(),
        "1.3.36.3.3.2.8.1.1.7" => "brainpoolP256r1 (1.3.36.3.3.2.8.1.1.7)".into(),
        other => other.to_string(),
    }
}

/// DER tag-length-value with a definite, minimal length.
fn der_tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    crate::verify::sigstore::tlv::wrap(tag, value)
}

/// DER INTEGER of a non-negative big-endian magnitude: leading zeros removed, one zero added
/// back when the top bit is set.
fn der_integer(magnitude: &[u8]) -> Vec<u8> {
    let skip = magnitude.iter().take_while(|b| **b == 0).count();
    let trimmed = &magnitude[skip..];
    let mut value = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_none_or(|b| b & 0x80 != 0) {
        value.push(0);
    }
    value.extend_from_slice(trimmed);
    der_tlv(0x02, &value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_integer_is_minimal() {
        assert_eq!(der_integer(&[0, 0, 1]), vec![2, 1, 1]);
        assert_eq!(der_integer(&[0x80]), vec![2, 2, 0, 0x80]);
        assert_eq!(der_integer(&[]), vec![2, 1, 0]);
        assert_eq!(der_integer(&[1, 0, 1]), vec![2, 3, 1, 0, 1]);
    }

    #[test]
    fn der_lengths_use_long_form_above_127() {
        assert_eq!(der_tlv(4, &[0; 127])[..2], [4, 127]);
        assert_eq!(der_tlv(4, &[0; 128])[..3], [4, 0x81, 128]);
        assert_eq!(der_tlv(4, &[0; 300])[..4], [4, 0x82, 1, 44]);
    }

    #[test]
    fn pem_without_block_is_not_pem() {
        assert!(matches!(
            PublicKey::from_pem("hello"),
            Err(KeyError::NotPem)
        ));
        assert!(matches!(
            PublicKey::from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n"),
            Err(KeyError::UnterminatedPem(_))
        ));
    }
}
