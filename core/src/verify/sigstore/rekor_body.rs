//! Consistency between a transparency log entry's `canonicalizedBody` and the bundle.
//!
//! The log proves that *some* body was logged; only this check proves that the logged body is
//! about *this* signature, key and artifact. Skipping it is CVE-2022-36056: a valid entry for
//! one signature stapled onto a bundle carrying another. The client spec (§4.4) requires: the
//! signature in the body is the bundle's signature, the key or certificate in the body is the
//! bundle's, and the body's subject (digest) matches the artifact or DSSE payload.
//!
//! Supported kinds: `hashedrekord` 0.0.1 and `dsse` 0.0.1 and `intoto` 0.0.2 (Rekor v1), and
//! `hashedrekord` 0.0.2 and `dsse` 0.0.2 (Rekor v2; a DSSE envelope may also be logged as a
//! `hashedrekord` 0.0.2 over the digest of its PAE, rekor-v2 spec §6.1.4). Anything else is
//! rejected: an unknown kind cannot be checked, so it cannot count.
//!
//! Not checkable, and therefore not checked: `dsse` 0.0.1 `envelopeHash` and `intoto` 0.0.2
//! `hash` are digests of the envelope JSON as Rekor re-serialized it, which is not reproducible
//! from the bundle; the payload hash and signatures in the same body are checked instead.

use base64::Engine;
use serde_json::Value;

use super::crypto::{Hash, PublicKey};
use super::trusted_root::decode_bytes;

/// What the signer's material in the bundle is.
#[derive(Clone, Copy)]
pub enum Verifier<'a> {
    /// DER certificate (Fulcio leaf).
    Certificate(&'a [u8]),
    /// DER SubjectPublicKeyInfo.
    PublicKey(&'a [u8]),
}

/// What was signed.
pub enum Content<'a> {
    /// A message signature: `digest(alg)` returns the artifact's digest under `alg` when it can
    /// be computed from what the caller gave.
    Message {
        digest: &'a dyn Fn(Hash) -> Option<Vec<u8>>,
    },
    /// A DSSE envelope with exactly one signature.
    Dsse {
        payload_type: &'a str,
        payload: &'a [u8],
        pae: &'a [u8],
    },
}

/// Everything the body must agree with.
pub struct Expected<'a> {
    pub signature: &'a [u8],
    pub verifier: Verifier<'a>,
    pub key: &'a PublicKey,
    pub content: Content<'a>,
}

fn field<'v>(v: &'v Value, path: &[&str]) -> Result<&'v Value, String> {
    let mut cur = v;
    for (i, p) in path.iter().enumerate() {
        cur = cur
            .get(p)
            .ok_or_else(|| format!("body has no '{}'", path[..=i].join(".")))?;
    }
    Ok(cur)
}

fn string<'v>(v: &'v Value, path: &[&str]) -> Result<&'v str, String> {
    field(v, path)?
        .as_str()
        .ok_or_else(|| format!("body field '{}' is not a string", path.join(".")))
}

fn b64(v: &Value, path: &[&str]) -> Result<Vec<u8>, String> {
    decode_bytes(string(v, path)?).map_err(|e| format!("body field '{}': {e}", path.join(".")))
}

/// Decodes one PEM block; returns its label and DER.
fn pem(text: &[u8]) -> Result<(String, Vec<u8>), String> {
    let text = std::str::from_utf8(text)
        .map_err(|_| "PEM is not UTF-8".to_string())?
        .trim();
    let first = text.lines().next().unwrap_or_default();
    let label = first
        .strip_prefix("-----BEGIN ")
        .and_then(|l| l.strip_suffix("-----"))
        .ok_or("not a PEM block")?
        .to_string();
    let end = format!("-----END {label}-----");
    let body_end = text.find(&end).ok_or("PEM block is not terminated")?;
    if !text[body_end + end.len()..].trim().is_empty() {
        return Err("more than one PEM block".into());
    }
    let body: String = text[first.len()..body_end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|_| "PEM body is not base64".to_string())?;
    Ok((label, der))
}

/// Compares a Rekor v1 `base64(PEM)` verifier with the bundle's.
fn same_pem_verifier(b64_pem: &[u8], expected: Verifier<'_>) -> Result<(), String> {
    let (label, der) = pem(b64_pem)?;
    match expected {
        Verifier::Certificate(cert) if label == "CERTIFICATE" && der == cert => Ok(()),
        Verifier::PublicKey(spki) if label == "PUBLIC KEY" && der == spki => Ok(()),
        Verifier::Certificate(_) => {
            Err("the logged verifier is not the bundle's certificate".into())
        }
        Verifier::PublicKey(_) => Err("the logged verifier is not the trusted public key".into()),
    }
}

/// Compares a Rekor v2 `Verifier` message (`x509Certificate` or `publicKey`, plus `keyDetails`).
fn same_v2_verifier(v: &Value, expected: &Expected<'_>) -> Result<(), String> {
    let details = string(v, &["keyDetails"])?;
    if !expected.key.matches_key_details(details) {
        return Err(format!(
            "logged keyDetails {details} does not fit a {} key",
            expected.key.kind()
        ));
    }
    match expected.verifier {
        Verifier::Certificate(cert) => {
            let der = b64(v, &["x509Certificate", "rawBytes"])?;
            if der != cert {
                return Err("the logged certificate is not the bundle's certificate".into());
            }
        }
        Verifier::PublicKey(spki) => {
            let der = b64(v, &["publicKey", "rawBytes"])?;
            if der != spki {
                return Err("the logged public key is not the trusted public key".into());
            }
        }
    }
    Ok(())
}

fn v1_hash(name: &str) -> Option<Hash> {
    match name {
        "sha256" => Some(Hash::Sha256),
        "sha384" => Some(Hash::Sha384),
        "sha512" => Some(Hash::Sha512),
        _ => None,
    }
}

fn v2_hash(name: &str) -> Option<Hash> {
    match name {
        "SHA2_256" => Some(Hash::Sha256),
        "SHA2_384" => Some(Hash::Sha384),
        "SHA2_512" => Some(Hash::Sha512),
        _ => None,
    }
}

fn check_signature(logged: &[u8], expected: &Expected<'_>) -> Result<(), String> {
    if logged == expected.signature {
        Ok(())
    } else {
        Err("the logged signature is not the bundle's signature".into())
    }
}

fn one_signature<'v>(v: &'v Value, path: &[&str]) -> Result<&'v Value, String> {
    let sigs = field(v, path)?
        .as_array()
        .ok_or_else(|| format!("body field '{}' is not a list", path.join(".")))?;
    match sigs.as_slice() {
        [one] => Ok(one),
        _ => Err(format!(
            "the logged envelope has {} signatures; the bundle's has exactly one",
            sigs.len()
        )),
    }
}

/// Checks `body` (the decoded `canonicalizedBody`) against the bundle for the entry's declared
/// `kind`/`version`. Returns a one-line description of what matched.
pub fn check(
    kind: &str,
    version: &str,
    body: &[u8],
    expected: &Expected<'_>,
) -> Result<String, String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("canonicalizedBody is not JSON: {e}"))?;
    let body_kind = string(&v, &["kind"])?;
    let body_version = string(&v, &["apiVersion"])?;
    if body_kind != kind || body_version != version {
        return Err(format!(
            "canonicalizedBody is {body_kind} {body_version} but the entry declares {kind} {version}"
        ));
    }
    match (kind, version, &expected.content) {
        ("hashedrekord", "0.0.1", Content::Message { digest }) => {
            check_signature(&b64(&v, &["spec", "signature", "content"])?, expected)?;
            same_pem_verifier(
                &b64(&v, &["spec", "signature", "publicKey", "content"])?,
                expected.verifier,
            )?;
            let alg = string(&v, &["spec", "data", "hash", "algorithm"])?;
            let hash =
                v1_hash(alg).ok_or_else(|| format!("unsupported logged hash algorithm '{alg}'"))?;
            let logged = hex::decode(string(&v, &["spec", "data", "hash", "value"])?)
                .map_err(|_| "logged artifact digest is not hex".to_string())?;
            let actual = digest(hash).ok_or_else(|| {
                format!("the log records a {} artifact digest, which cannot be computed from the artifact given", hash.name())
            })?;
            if logged != actual {
                return Err("the logged artifact digest is not the artifact's digest".into());
            }
            Ok(format!(
                "hashedrekord 0.0.1 names this signature, signer and artifact {} digest",
                hash.name()
            ))
        }
        ("dsse", "0.0.1", Content::Dsse { payload, .. }) => {
            if string(&v, &["spec", "payloadHash", "algorithm"])? != "sha256" {
                return Err("the logged DSSE payload hash is not SHA-256".into());
            }
            let logged = hex::decode(string(&v, &["spec", "payloadHash", "value"])?)
                .map_err(|_| "logged payload hash is not hex".to_string())?;
            if logged != super::crypto::sha256(payload) {
                return Err("DSSE payload hash mismatch: the logged payload hash is not the envelope payload's".into());
            }
            let sig = one_signature(&v, &["spec", "signatures"])?;
            check_signature(&b64(sig, &["signature"])?, expected)?;
            same_pem_verifier(&b64(sig, &["verifier"])?, expected.verifier)?;
            Ok("dsse 0.0.1 names this payload hash, signature and signer (envelopeHash not reproducible)".into())
        }
        (
            "intoto",
            "0.0.2",
            Content::Dsse {
                payload_type,
                payload,
                ..
            },
        ) => {
            let content = field(&v, &["spec", "content"])?;
            if let Some(t) = content.get("envelope").and_then(|e| e.get("payloadType"))
                && t.as_str() != Some(payload_type)
            {
                return Err("the logged payloadType is not the envelope's".into());
            }
            if string(content, &["payloadHash", "algorithm"])? != "sha256" {
                return Err("the logged in-toto payload hash is not SHA-256".into());
            }
            let logged = hex::decode(string(content, &["payloadHash", "value"])?)
                .map_err(|_| "logged payload hash is not hex".to_string())?;
            if logged != super::crypto::sha256(payload) {
                return Err("DSSE payload hash mismatch: the logged payload hash is not the envelope payload's".into());
            }
            let sig = one_signature(content, &["envelope", "signatures"])?;
            // intoto 0.0.2 stores the signature base64-encoded twice.
            let once = b64(sig, &["sig"])?;
            let twice = std::str::from_utf8(&once)
                .ok()
                .and_then(|s| decode_bytes(s).ok())
                .ok_or("the logged in-toto signature is not base64 of base64")?;
            check_signature(&twice, expected)?;
            same_pem_verifier(&b64(sig, &["publicKey"])?, expected.verifier)?;
            Ok("intoto 0.0.2 names this payload hash, signature and signer (envelope hash not reproducible)".into())
        }
        ("hashedrekord", "0.0.2", content) => {
            let spec = field(&v, &["spec", "hashedRekordV002"])?;
            let alg = string(spec, &["data", "algorithm"])?;
            let hash =
                v2_hash(alg).ok_or_else(|| format!("unsupported logged hash algorithm '{alg}'"))?;
            let logged = b64(spec, &["data", "digest"])?;
            check_signature(&b64(spec, &["signature", "content"])?, expected)?;
            same_v2_verifier(field(spec, &["signature", "verifier"])?, expected)?;
            match content {
                Content::Message { digest } => {
                    let actual = digest(hash).ok_or_else(|| {
                        format!("the log records a {} artifact digest, which cannot be computed from the artifact given", hash.name())
                    })?;
                    if logged != actual {
                        return Err(
                            "the logged artifact digest is not the artifact's digest".into()
                        );
                    }
                    Ok(format!(
                        "hashedrekord 0.0.2 names this signature, signer and artifact {} digest",
                        hash.name()
                    ))
                }
                Content::Dsse { pae, .. } => {
                    if expected.key.registry_hash() != Some(hash) {
                        return Err(format!(
                            "the logged PAE digest uses {} which does not fit a {} key",
                            hash.name(),
                            expected.key.kind()
                        ));
                    }
                    if logged != hash.digest(pae) {
                        return Err(
                            "the logged digest is not the digest of the envelope's PAE".into()
                        );
                    }
                    Ok(format!(
                        "hashedrekord 0.0.2 names this signature, signer and the {} of the DSSE PAE",
                        hash.name()
                    ))
                }
            }
        }
        ("dsse", "0.0.2", Content::Dsse { payload, .. }) => {
            let spec = field(&v, &["spec", "dsseV002"])?;
            if string(spec, &["payloadHash", "algorithm"])? != "SHA2_256" {
                return Err("the logged DSSE payload hash is not SHA-256".into());
            }
            if b64(spec, &["payloadHash", "digest"])? != super::crypto::sha256(payload) {
                return Err("DSSE payload hash mismatch: the logged payload hash is not the envelope payload's".into());
            }
            let sig = one_signature(spec, &["signatures"])?;
            check_signature(&b64(sig, &["content"])?, expected)?;
            same_v2_verifier(field(sig, &["verifier"])?, expected)?;
            Ok("dsse 0.0.2 names this payload hash, signature and signer".into())
        }
        ("hashedrekord", "0.0.1", Content::Dsse { .. }) => {
            Err("a hashedrekord 0.0.1 entry cannot record a DSSE envelope".into())
        }
        ("dsse" | "intoto", _, Content::Message { .. }) => Err(format!(
            "a {kind} {version} entry cannot record a message signature"
        )),
        _ => Err(format!(
            "unsupported transparency log entry kind {kind} {version}"
        )),
    }
}
