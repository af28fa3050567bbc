//! securesystemslib public keys: the layout's `keys` entries and the owner's PEM keys.
//!
//! A keyid is the hex SHA-256 of the canonical JSON of `{keytype, scheme, keyval}` (plus
//! `keyid_hash_algorithms` when the key object carries it, as keys written by securesystemslib
//! before 1.0 do). in-toto names keys only by keyid, so we recompute it from the key material
//! and refuse an entry whose keyid does not bind its key: otherwise a step could authorize one
//! keyid while a different public key does the verifying.
//!
//! Supported (keytype / scheme): `ed25519`/`ed25519` (keyval.public is hex),
//! `rsa`/`rsassa-pss-sha{256,384,512}` and `rsa`/`rsa-pkcs1v15-sha{256,384,512}` (PEM),
//! `ecdsa`/`ecdsa-sha2-nistp{256,384}` (PEM; the older keytype spelling equal to the scheme is
//! accepted too). Signatures are hex: raw 64 bytes for Ed25519, DER for ECDSA (what pyca
//! `cryptography` emits), PKCS#1 bytes for RSA. RSA-PSS is checked with automatic salt length,
//! as securesystemslib does (`PSS.AUTO`). These few lines are deliberately independent of
//! `verify::keys`: the layout verifier only needs securesystemslib's own key shapes.

use super::canonical;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::spki::{DecodePublicKey, EncodePublicKey};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256, Sha384, Sha512};
use signature::Verifier;

/// Smallest RSA modulus accepted. securesystemslib has no floor; 2048 bits is the NIST floor
/// and what every in-toto tool generates.
const MIN_RSA_BITS: usize = 2048;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HashAlg {
    Sha256,
    Sha384,
    Sha512,
}

#[derive(Debug, Clone)]
enum Material {
    Ed25519(ed25519_dalek::VerifyingKey),
    RsaPss(Box<rsa::RsaPublicKey>, HashAlg),
    RsaPkcs1v15(Box<rsa::RsaPublicKey>, HashAlg),
    EcdsaP256(p256::ecdsa::VerifyingKey),
    EcdsaP384(p384::ecdsa::VerifyingKey),
}

/// A public key usable to verify in-toto signatures.
#[derive(Debug, Clone)]
pub(crate) struct PublicKey {
    /// The securesystemslib keyid (lowercase hex SHA-256).
    pub(crate) keyid: String,
    pub(crate) keytype: String,
    pub(crate) scheme: String,
    /// Other keyids the same key was known by: for a PEM key, the pre-1.0 securesystemslib
    /// keyid, which also hashed `"keyid_hash_algorithms": ["sha256", "sha512"]`. A keyid only
    /// selects which signature to check, so accepting it is no weaker.
    pub(crate) legacy_keyids: Vec<String>,
    /// SubjectPublicKeyInfo DER: the identity of the key, independent of keyid spelling, used
    /// to count *distinct* functionaries towards a threshold.
    pub(crate) spki_der: Vec<u8>,
    material: Material,
}

impl PublicKey {
    /// Builds a key from a securesystemslib key object (a layout `keys` entry).
    ///
    /// `Err` means the entry is unusable; the message says why.
    pub(crate) fn from_sslib(obj: &Map<String, Value>) -> Result<Self, String> {
        let keytype = str_field(obj, "keytype")?;
        let scheme = str_field(obj, "scheme")?;
        let keyval = obj
            .get("keyval")
            .and_then(Value::as_object)
            .ok_or("missing object field \"keyval\"")?;
        let public = keyval
            .get("public")
            .and_then(Value::as_str)
            .ok_or("missing string field \"keyval.public\"")?;
        if keyval
            .get("private")
            .and_then(Value::as_str)
            .is_some_and(|p| !p.is_empty())
        {
            return Err("key object carries private key material".into());
        }
        let material = material_for(keytype, scheme, public)?;
        let mut id_obj = Map::new();
        id_obj.insert("keytype".into(), Value::String(keytype.into()));
        id_obj.insert("scheme".into(), Value::String(scheme.into()));
        id_obj.insert("keyval".into(), Value::Object(keyval.clone()));
        if let Some(algs) = obj.get("keyid_hash_algorithms") {
            id_obj.insert("keyid_hash_algorithms".into(), algs.clone());
        }
        let keyid = keyid_of(&Value::Object(id_obj))?;
        let spki_der = spki_of(&material)?;
        Ok(Self {
            keyid,
            legacy_keyids: Vec::new(),
            keytype: keytype.into(),
            scheme: scheme.into(),
            spki_der,
            material,
        })
    }

    /// Builds a key from a PEM SubjectPublicKeyInfo, with the keytype, scheme and keyid that
    /// securesystemslib's `SSlibKey.from_pem` gives it (what `in-toto-verify
    /// --verification-keys` uses): Ed25519 keyval is the raw key in hex; RSA (scheme
    /// `rsassa-pss-sha256`) and ECDSA keyvals are the PEM as pyca `cryptography` re-serializes
    /// it (64-column base64, LF, trailing newline).
    pub(crate) fn from_pem(pem: &str) -> Result<Self, String> {
        let obj = sslib_obj_from_pem(pem.trim())?;
        let mut key = Self::from_sslib(&obj)?;
        let mut legacy = obj;
        legacy.insert(
            "keyid_hash_algorithms".into(),
            serde_json::json!(["sha256", "sha512"]),
        );
        key.legacy_keyids = vec![keyid_of(&Value::Object(legacy))?];
        Ok(key)
    }

    /// Whether `keyid` names this key.
    pub(crate) fn is_named(&self, keyid: &str) -> bool {
        self.keyid == keyid || self.legacy_keyids.iter().any(|k| k == keyid)
    }

    /// Verifies the hex signature `sig_hex` over `message`.
    pub(crate) fn verify(&self, message: &[u8], sig_hex: &str) -> Result<(), String> {
        let sig = hex::decode(sig_hex).map_err(|_| "signature is not hex".to_string())?;
        let bad = |_| "signature does not verify".to_string();
        match &self.material {
            Material::Ed25519(k) => {
                let sig = ed25519_dalek::Signature::from_slice(&sig)
                    .map_err(|_| "Ed25519 signature is not 64 bytes".to_string())?;
                k.verify_strict(message, &sig).map_err(bad)
            }
            Material::EcdsaP256(k) => {
                let sig = p256::ecdsa::DerSignature::from_bytes(&sig)
                    .map_err(|_| "ECDSA signature is not DER".to_string())?;
                k.verify(message, &sig).map_err(bad)
            }
            Material::EcdsaP384(k) => {
                let sig = p384::ecdsa::DerSignature::from_bytes(&sig)
                    .map_err(|_| "ECDSA signature is not DER".to_string())?;
                k.verify(message, &sig).map_err(bad)
            }
            Material::RsaPss(k, alg) => {
                let sig = rsa::pss::Signature::try_from(sig.as_slice())
                    .map_err(|_| "malformed RSA signature".to_string())?;
                let k = (**k).clone();
                match alg {
                    HashAlg::Sha256 => rsa::pss::VerifyingKey::<Sha256>::new_with_auto_salt_len(k)
                        .verify(message, &sig),
                    HashAlg::Sha384 => rsa::pss::VerifyingKey::<Sha384>::new_with_auto_salt_len(k)
                        .verify(message, &sig),
                    HashAlg::Sha512 => rsa::pss::VerifyingKey::<Sha512>::new_with_auto_salt_len(k)
                        .verify(message, &sig),
                }
                .map_err(bad)
            }
            Material::RsaPkcs1v15(k, alg) => {
                let sig = rsa::pkcs1v15::Signature::try_from(sig.as_slice())
                    .map_err(|_| "malformed RSA signature".to_string())?;
                let k = (**k).clone();
                match alg {
                    HashAlg::Sha256 => {
                        rsa::pkcs1v15::VerifyingKey::<Sha256>::new(k).verify(message, &sig)
                    }
                    HashAlg::Sha384 => {
                        rsa::pkcs1v15::VerifyingKey::<Sha384>::new(k).verify(message, &sig)
                    }
                    HashAlg::Sha512 => {
                        rsa::pkcs1v15::VerifyingKey::<Sha512>::new(k).verify(message, &sig)
                    }
                }
                .map_err(bad)
            }
        }
    }
}

/// The keyid of a securesystemslib key object: hex SHA-256 of its canonical JSON.
pub(crate) fn keyid_of(id_obj: &Value) -> Result<String, String> {
    let bytes = canonical::encode(id_obj)?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}

/// The securesystemslib key object `SSlibKey.from_pem` builds for a PEM public key.
fn sslib_obj_from_pem(pem: &str) -> Result<Map<String, Value>, String> {
    if let Ok(k) = ed25519_dalek::VerifyingKey::from_public_key_pem(pem) {
        return Ok(sslib_obj("ed25519", "ed25519", &hex::encode(k.as_bytes())));
    }
    if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_pem(pem) {
        let pem = k
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| e.to_string())?;
        return Ok(sslib_obj("ecdsa", "ecdsa-sha2-nistp256", &pem));
    }
    if let Ok(k) = p384::ecdsa::VerifyingKey::from_public_key_pem(pem) {
        let pem = k
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| e.to_string())?;
        return Ok(sslib_obj("ecdsa", "ecdsa-sha2-nistp384", &pem));
    }
    if let Ok(k) = rsa::RsaPublicKey::from_public_key_pem(pem) {
        let pem = k
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| e.to_string())?;
        return Ok(sslib_obj("rsa", "rsassa-pss-sha256", &pem));
    }
    Err("not a PEM public key of a supported type (Ed25519, ECDSA P-256/P-384, RSA)".into())
}

fn sslib_obj(keytype: &str, scheme: &str, public: &str) -> Map<String, Value> {
    match json!({"keytype": keytype, "scheme": scheme, "keyval": {"public": public}}) {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn str_field<'a>(obj: &'a Map<String, Value>, name: &str) -> Result<&'a str, String> {
    obj.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("missing string field {name:?}"))
}

fn material_for(keytype: &str, scheme: &str, public: &str) -> Result<Material, String> {
    let rsa_key = || -> Result<Box<rsa::RsaPublicKey>, String> {
        let k = rsa::RsaPublicKey::from_public_key_pem(public.trim())
            .map_err(|e| format!("keyval.public is not an RSA PEM public key: {e}"))?;
        let bits = rsa::traits::PublicKeyParts::size(&k) * 8;
        if bits < MIN_RSA_BITS {
            return Err(format!(
                "RSA key of {bits} bits is below the {MIN_RSA_BITS}-bit minimum"
            ));
        }
        Ok(Box::new(k))
    };
    match (keytype, scheme) {
        ("ed25519", "ed25519") => {
            let raw = hex::decode(public).map_err(|_| "keyval.public is not hex".to_string())?;
            let raw: [u8; 32] = raw
                .try_into()
                .map_err(|_| "Ed25519 public key is not 32 bytes".to_string())?;
            ed25519_dalek::VerifyingKey::from_bytes(&raw)
                .map(Material::Ed25519)
                .map_err(|_| "Ed25519 public key is not a valid curve point".into())
        }
        ("rsa", "rsassa-pss-sha256") => Ok(Material::RsaPss(rsa_key()?, HashAlg::Sha256)),
        ("rsa", "rsassa-pss-sha384") => Ok(Material::RsaPss(rsa_key()?, HashAlg::Sha384)),
        ("rsa", "rsassa-pss-sha512") => Ok(Material::RsaPss(rsa_key()?, HashAlg::Sha512)),
        ("rsa", "rsa-pkcs1v15-sha256") => Ok(Material::RsaPkcs1v15(rsa_key()?, HashAlg::Sha256)),
        ("rsa", "rsa-pkcs1v15-sha384") => Ok(Material::RsaPkcs1v15(rsa_key()?, HashAlg::Sha384)),
        ("rsa", "rsa-pkcs1v15-sha512") => Ok(Material::RsaPkcs1v15(rsa_key()?, HashAlg::Sha512)),
        ("ecdsa" | "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256") => {
            p256::ecdsa::VerifyingKey::from_public_key_pem(public.trim())
                .map(Material::EcdsaP256)
                .map_err(|e| format!("keyval.public is not a P-256 PEM public key: {e}"))
        }
        ("ecdsa" | "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp384") => {
            p384::ecdsa::VerifyingKey::from_public_key_pem(public.trim())
                .map(Material::EcdsaP384)
                .map_err(|e| format!("keyval.public is not a P-384 PEM public key: {e}"))
        }
        _ => Err(format!(
            "unsupported keytype/scheme {keytype:?}/{scheme:?} (supported: ed25519, \
             rsa with rsassa-pss-* or rsa-pkcs1v15-*, ecdsa-sha2-nistp256/384)"
        )),
    }
}

fn spki_of(material: &Material) -> Result<Vec<u8>, String> {
    let der = match material {
        Material::Ed25519(k) => k.to_public_key_der(),
        Material::RsaPss(k, _) | Material::RsaPkcs1v15(k, _) => k.to_public_key_der(),
        Material::EcdsaP256(k) => k.to_public_key_der(),
        Material::EcdsaP384(k) => k.to_public_key_der(),
    }
    .map_err(|e| e.to_string())?;
    Ok(der.as_bytes().to_vec())
}
