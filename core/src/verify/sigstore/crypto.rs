//! Public keys and signature checks used across Sigstore verification.
//!
//! Sigstore mixes key types by role: Fulcio CAs and the TSA use ECDSA P-384, leaf certificates
//! and Rekor v1 use ECDSA P-256, Rekor v2 checkpoints use Ed25519, and an old staging CT log uses
//! RSA PKCS#1 v1.5. Every check names the hash explicitly and verifies a *prehash* for ECDSA and
//! RSA, so the hash that was signed is always the one the format says, never a library default.

use sha2::Digest;
use signature::hazmat::PrehashVerifier;
use spki::DecodePublicKey;

/// Hash functions allowed in Sigstore material (the SHA-2 family only; SHA-1 is never accepted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha256 => sha2::Sha256::digest(data).to_vec(),
            Hash::Sha384 => sha2::Sha384::digest(data).to_vec(),
            Hash::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Hash::Sha256 => "SHA-256",
            Hash::Sha384 => "SHA-384",
            Hash::Sha512 => "SHA-512",
        }
    }

    /// The hash named by an X.509/CMS digest `AlgorithmIdentifier` OID.
    pub fn from_digest_oid(oid: &[u8]) -> Option<Hash> {
        if oid == oids::SHA256.as_bytes() {
            Some(Hash::Sha256)
        } else if oid == oids::SHA384.as_bytes() {
            Some(Hash::Sha384)
        } else if oid == oids::SHA512.as_bytes() {
            Some(Hash::Sha512)
        } else {
            None
        }
    }
}

/// SHA-256, the hash of every Merkle tree, log ID and payload digest in Sigstore.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(data).into()
}

/// OIDs used by signature checks.
pub mod oids {
    use const_oid::ObjectIdentifier as Oid;
    pub const SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");
    pub const SHA384: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.2");
    pub const SHA512: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.3");
    pub const ECDSA_SHA256: Oid = Oid::new_unwrap("1.2.840.10045.4.3.2");
    pub const ECDSA_SHA384: Oid = Oid::new_unwrap("1.2.840.10045.4.3.3");
    pub const ECDSA_SHA512: Oid = Oid::new_unwrap("1.2.840.10045.4.3.4");
    pub const RSA_ENCRYPTION: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
    pub const RSA_SHA256: Oid = Oid::new_unwrap("1.2.840.113549.1.1.11");
    pub const RSA_SHA384: Oid = Oid::new_unwrap("1.2.840.113549.1.1.12");
    pub const RSA_SHA512: Oid = Oid::new_unwrap("1.2.840.113549.1.1.13");
    pub const ED25519: Oid = Oid::new_unwrap("1.3.101.112");
    pub const EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
    pub const P256: Oid = Oid::new_unwrap("1.2.840.10045.3.1.7");
    pub const P384: Oid = Oid::new_unwrap("1.3.132.0.34");
}

/// A verification key of a type Sigstore uses.
#[derive(Clone, Debug)]
pub enum PublicKey {
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
    Rsa(rsa::RsaPublicKey),
}

impl PublicKey {
    /// Parses a DER `SubjectPublicKeyInfo`; the algorithm comes from the SPKI itself.
    pub fn from_spki_der(der: &[u8]) -> Result<PublicKey, String> {
        let spki = spki::SubjectPublicKeyInfoRef::try_from(der)
            .map_err(|e| format!("not a DER SubjectPublicKeyInfo: {e}"))?;
        let alg = spki.algorithm.oid;
        if alg == oids::EC_PUBLIC_KEY {
            let curve = spki
                .algorithm
                .parameters_oid()
                .map_err(|_| "EC public key without a named curve".to_string())?;
            if curve == oids::P256 {
                p256::ecdsa::VerifyingKey::from_public_key_der(der)
                    .map(PublicKey::P256)
                    .map_err(|e| format!("invalid P-256 public key: {e}"))
            } else if curve == oids::P384 {
                p384::ecdsa::VerifyingKey::from_public_key_der(der)
                    .map(PublicKey::P384)
                    .map_err(|e| format!("invalid P-384 public key: {e}"))
            } else {
                Err(format!("unsupported elliptic curve {curve}"))
            }
        } else if alg == oids::ED25519 {
            ed25519_dalek::VerifyingKey::from_public_key_der(der)
                .map(PublicKey::Ed25519)
                .map_err(|e| format!("invalid Ed25519 public key: {e}"))
        } else if alg == oids::RSA_ENCRYPTION {
            rsa::RsaPublicKey::from_public_key_der(der)
                .map(PublicKey::Rsa)
                .map_err(|e| format!("invalid RSA public key: {e}"))
        } else {
            Err(format!("unsupported public key algorithm {alg}"))
        }
    }

    /// Parses a DER PKCS#1 `RSAPublicKey` (used by `PKCS1_RSA_PKCS1V5` keys in trusted roots).
    pub fn from_pkcs1_rsa_der(der: &[u8]) -> Result<PublicKey, String> {
        use rsa::pkcs1::DecodeRsaPublicKey;
        rsa::RsaPublicKey::from_pkcs1_der(der)
            .map(PublicKey::Rsa)
            .map_err(|e| format!("invalid PKCS#1 RSA public key: {e}"))
    }

    /// A short human name of the key type, for reasons and steps.
    pub fn kind(&self) -> &'static str {
        match self {
            PublicKey::P256(_) => "ECDSA P-256",
            PublicKey::P384(_) => "ECDSA P-384",
            PublicKey::Ed25519(_) => "Ed25519",
            PublicKey::Rsa(_) => "RSA",
        }
    }

    /// The hash Sigstore's algorithm registry pairs with this key for artifact signatures
    /// (`PKIX_ECDSA_P256_SHA_256`, `PKIX_ECDSA_P384_SHA_384`, RSA with SHA-256). Ed25519 signs
    /// the message itself and has none.
    pub fn registry_hash(&self) -> Option<Hash> {
        match self {
            PublicKey::P256(_) | PublicKey::Rsa(_) => Some(Hash::Sha256),
            PublicKey::P384(_) => Some(Hash::Sha384),
            PublicKey::Ed25519(_) => None,
        }
    }

    /// `keyDetails` names in Rekor v2 entries that are consistent with this key.
    pub fn matches_key_details(&self, details: &str) -> bool {
        match self {
            PublicKey::P256(_) => details == "PKIX_ECDSA_P256_SHA_256",
            PublicKey::P384(_) => details == "PKIX_ECDSA_P384_SHA_384",
            PublicKey::Ed25519(_) => details == "PKIX_ED25519",
            PublicKey::Rsa(_) => {
                details.starts_with("PKIX_RSA_PKCS1V15_") && details.ends_with("_SHA256")
            }
        }
    }

    /// Verifies `sig` over `message`, hashing with `hash` (ignored for Ed25519, which signs the
    /// message itself). ECDSA signatures are ASN.1 DER; RSA is PKCS#1 v1.5.
    pub fn verify(&self, message: &[u8], sig: &[u8], hash: Hash) -> Result<(), String> {
        match self {
            PublicKey::Ed25519(k) => {
                let sig = ed25519_dalek::Signature::from_slice(sig)
                    .map_err(|_| "malformed Ed25519 signature".to_string())?;
                k.verify_strict(message, &sig)
                    .map_err(|_| "Ed25519 signature does not verify".to_string())
            }
            _ => self.verify_prehash(&hash.digest(message), sig),
        }
    }

    /// Verifies `sig` over an already computed digest (ECDSA and RSA only).
    pub fn verify_prehash(&self, digest: &[u8], sig: &[u8]) -> Result<(), String> {
        match self {
            PublicKey::P256(k) => {
                let sig = p256::ecdsa::DerSignature::from_bytes(sig)
                    .map_err(|_| "malformed DER ECDSA signature".to_string())?;
                k.verify_prehash(digest, &sig)
                    .map_err(|_| "ECDSA P-256 signature does not verify".to_string())
            }
            PublicKey::P384(k) => {
                let sig = p384::ecdsa::DerSignature::from_bytes(sig)
                    .map_err(|_| "malformed DER ECDSA signature".to_string())?;
                k.verify_prehash(digest, &sig)
                    .map_err(|_| "ECDSA P-384 signature does not verify".to_string())
            }
            PublicKey::Rsa(k) => {
                let sig = rsa::pkcs1v15::Signature::try_from(sig)
                    .map_err(|_| "malformed RSA signature".to_string())?;
                let result = match digest.len() {
                    32 => rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(k.clone())
                        .verify_prehash(digest, &sig),
                    48 => rsa::pkcs1v15::VerifyingKey::<sha2::Sha384>::new(k.clone())
                        .verify_prehash(digest, &sig),
                    64 => rsa::pkcs1v15::VerifyingKey::<sha2::Sha512>::new(k.clone())
                        .verify_prehash(digest, &sig),
                    _ => return Err("unsupported digest length for RSA".into()),
                };
                result.map_err(|_| "RSA PKCS#1 v1.5 signature does not verify".to_string())
            }
            PublicKey::Ed25519(_) => {
                Err("Ed25519 signs the message itself; a digest alone cannot be verified".into())
            }
        }
    }
}

/// Verifies an X.509/CMS signature whose algorithm is given by `alg_oid` (an
/// `AlgorithmIdentifier` OID of the *signature*, e.g. `ecdsa-with-SHA384`), over `message`.
/// `rsaEncryption` (as CMS `SignerInfo` may use) needs the digest algorithm from elsewhere, passed
/// as `digest_hint`.
pub fn verify_with_alg(
    key: &PublicKey,
    alg_oid: &[u8],
    digest_hint: Option<Hash>,
    message: &[u8],
    sig: &[u8],
) -> Result<(), String> {
    let hash = if alg_oid == oids::ECDSA_SHA256.as_bytes() || alg_oid == oids::RSA_SHA256.as_bytes()
    {
        Hash::Sha256
    } else if alg_oid == oids::ECDSA_SHA384.as_bytes() || alg_oid == oids::RSA_SHA384.as_bytes() {
        Hash::Sha384
    } else if alg_oid == oids::ECDSA_SHA512.as_bytes() || alg_oid == oids::RSA_SHA512.as_bytes() {
        Hash::Sha512
    } else if alg_oid == oids::ED25519.as_bytes() {
        return match key {
            PublicKey::Ed25519(_) => key.verify(message, sig, Hash::Sha512),
            _ => Err("Ed25519 signature algorithm with a non-Ed25519 key".into()),
        };
    } else if alg_oid == oids::RSA_ENCRYPTION.as_bytes() {
        digest_hint.ok_or("rsaEncryption signature without a digest algorithm")?
    } else {
        return Err(format!(
            "unsupported signature algorithm {}",
            oid_display(alg_oid)
        ));
    };
    let is_ecdsa = [
        &oids::ECDSA_SHA256,
        &oids::ECDSA_SHA384,
        &oids::ECDSA_SHA512,
    ]
    .iter()
    .any(|o| o.as_bytes() == alg_oid);
    match (key, is_ecdsa) {
        (PublicKey::P256(_) | PublicKey::P384(_), true) | (PublicKey::Rsa(_), false) => {
            key.verify_prehash(&hash.digest(message), sig)
        }
        _ => Err(format!(
            "signature algorithm {} does not fit a {} key",
            oid_display(alg_oid),
            key.kind()
        )),
    }
}

/// Dotted form of raw OID content bytes, for messages.
pub fn oid_display(raw: &[u8]) -> String {
    const_oid::ObjectIdentifier::from_bytes(raw)
        .map_or_else(|_| hex::encode(raw), |o| o.to_string())
}
