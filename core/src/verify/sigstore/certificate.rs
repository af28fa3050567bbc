//! X.509 certificates: parsing, path validation to a trusted Fulcio CA, and the Sigstore leaf
//! profile.
//!
//! Sigstore uses the "hybrid" validity model (client spec §4.3): every certificate in the
//! path must be valid at the *signing time* established from a verified SET or RFC 3161
//! timestamp, not at the verifier's clock. Fulcio leaves live ten minutes, so checking them
//! against "now" would reject every real bundle, and checking nothing would accept a stolen key
//! used after its certificate expired.
//!
//! Paths are built only from the trusted root's `certChain`s. Intermediates shipped inside a
//! bundle are not trusted (client spec §4.6, "out-of-band intermediate CAs": certificates not
//! in the out-of-band list are removed), so a bundle cannot smuggle in its own CA.

use chrono::{DateTime, Utc};
use const_oid::ObjectIdentifier as Oid;
use der::Decode;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage};

use super::crypto::{self, PublicKey};
use super::tlv::{self, tag};

/// Longest certificate path accepted (leaf + CAs).
pub const MAX_CHAIN: usize = 10;
/// Largest single certificate accepted.
pub const MAX_CERT_BYTES: usize = 64 * 1024;

pub mod oids {
    use super::Oid;
    pub const BASIC_CONSTRAINTS: Oid = Oid::new_unwrap("2.5.29.19");
    pub const KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.15");
    pub const EXT_KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.37");
    pub const SUBJECT_ALT_NAME: Oid = Oid::new_unwrap("2.5.29.17");
    pub const SUBJECT_KEY_ID: Oid = Oid::new_unwrap("2.5.29.14");
    pub const AUTHORITY_KEY_ID: Oid = Oid::new_unwrap("2.5.29.35");
    pub const KP_CODE_SIGNING: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.3");
    pub const KP_TIME_STAMPING: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.8");
    /// RFC 6962 embedded SCT list.
    pub const SCT_LIST: Oid = Oid::new_unwrap("1.3.6.1.4.1.11129.2.4.2");
    /// Fulcio OIDC issuer, legacy raw-string form.
    pub const FULCIO_ISSUER_V1: Oid = Oid::new_unwrap("1.3.6.1.4.1.57264.1.1");
    /// Fulcio OIDC issuer, DER UTF8String form.
    pub const FULCIO_ISSUER_V2: Oid = Oid::new_unwrap("1.3.6.1.4.1.57264.1.8");
}

/// Critical extensions this verifier understands; any other critical extension makes the
/// certificate unusable (RFC 5280 §4.2). This also rejects CT precertificates, whose poison
/// extension is critical.
const KNOWN_CRITICAL: [Oid; 6] = [
    oids::BASIC_CONSTRAINTS,
    oids::KEY_USAGE,
    oids::EXT_KEY_USAGE,
    oids::SUBJECT_ALT_NAME,
    oids::SUBJECT_KEY_ID,
    oids::AUTHORITY_KEY_ID,
];

/// A parsed certificate with the raw slices that signatures and name matching need.
#[derive(Clone, Debug)]
pub struct Cert {
    pub der: Vec<u8>,
    pub x509: x509_cert::Certificate,
    /// The exact `TBSCertificate` bytes the issuer signed.
    pub tbs: Vec<u8>,
    /// Raw content of the signature algorithm OID.
    pub sig_alg: Vec<u8>,
    pub signature: Vec<u8>,
    /// The serial number INTEGER element, as encoded.
    pub serial_raw: Vec<u8>,
    pub issuer_raw: Vec<u8>,
    pub subject_raw: Vec<u8>,
    pub spki_raw: Vec<u8>,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    pub key: Result<PublicKey, String>,
}

impl Cert {
    /// Parses a DER certificate.
    pub fn parse(der: &[u8]) -> Result<Cert, String> {
        if der.len() > MAX_CERT_BYTES {
            return Err("certificate is too large".into());
        }
        let x509 = x509_cert::Certificate::from_der(der)
            .map_err(|e| format!("not a DER X.509 certificate: {e}"))?;
        let outer = tlv::single(der, tag::SEQUENCE)?;
        let parts = tlv::children(outer.content, 3)?;
        let [tbs, alg, sig] = parts.as_slice() else {
            return Err("certificate must have three parts".into());
        };
        let tbs = tlv::expect(*tbs, tag::SEQUENCE)?;
        let alg = tlv::expect(*alg, tag::SEQUENCE)?;
        let sig = tlv::expect(*sig, tag::BIT_STRING)?;
        let sig_alg_oid = tlv::expect(tlv::read(alg.content)?.0, tag::OID)?;
        let (unused, signature) = sig
            .content
            .split_first()
            .ok_or("empty signature BIT STRING")?;
        if *unused != 0 {
            return Err("signature BIT STRING has unused bits".into());
        }

        let fields = tlv::children(tbs.content, 16)?;
        let mut i = 0;
        if fields.first().is_some_and(|f| f.tag == tag::CTX0) {
            i = 1;
        }
        let field = |k: usize| fields.get(i + k).copied().ok_or("truncated TBSCertificate");
        let inner_alg = field(1)?;
        if inner_alg.full != alg.full {
            return Err(
                "signature algorithm differs between TBSCertificate and Certificate".into(),
            );
        }
        let serial_raw = tlv::expect(field(0)?, tag::INTEGER)?.full.to_vec();
        let issuer_raw = field(2)?.full.to_vec();
        let subject_raw = field(4)?.full.to_vec();
        let spki_raw = field(5)?.full.to_vec();

        let validity = x509.tbs_certificate().validity();
        let not_before = to_chrono(validity.not_before)?;
        let not_after = to_chrono(validity.not_after)?;

        let mut seen = Vec::new();
        for ext in x509
            .tbs_certificate()
            .extensions()
            .map(|e| e.as_slice())
            .unwrap_or_default()
        {
            if seen.contains(&ext.extn_id) {
                return Err(format!("certificate repeats extension {}", ext.extn_id));
            }
            seen.push(ext.extn_id);
        }

        let key = PublicKey::from_spki_der(&spki_raw);
        Ok(Cert {
            der: der.to_vec(),
            x509,
            tbs: tbs.full.to_vec(),
            sig_alg: sig_alg_oid.content.to_vec(),
            signature: signature.to_vec(),
            serial_raw,
            issuer_raw,
            subject_raw,
            spki_raw,
            not_before,
            not_after,
            key,
        })
    }

    /// The extension with `oid`, if present.
    pub fn extension(&self, oid: &Oid) -> Option<&x509_cert::ext::Extension> {
        self.x509
            .tbs_certificate()
            .extensions()
            .and_then(|exts| exts.iter().find(|e| &e.extn_id == oid))
    }

    fn decode_ext<'a, T: Decode<'a>>(&'a self, oid: &Oid, what: &str) -> Result<Option<T>, String> {
        match self.extension(oid) {
            None => Ok(None),
            Some(ext) => T::from_der(ext.extn_value.as_bytes())
                .map(Some)
                .map_err(|_| format!("malformed {what} extension")),
        }
    }

    pub fn basic_constraints(&self) -> Result<Option<BasicConstraints>, String> {
        self.decode_ext(&oids::BASIC_CONSTRAINTS, "basicConstraints")
    }

    pub fn key_usage(&self) -> Result<Option<KeyUsage>, String> {
        self.decode_ext(&oids::KEY_USAGE, "keyUsage")
    }

    pub fn ext_key_usage(&self) -> Result<Option<ExtendedKeyUsage>, String> {
        self.decode_ext(&oids::EXT_KEY_USAGE, "extendedKeyUsage")
    }

    pub fn is_ca(&self) -> Result<bool, String> {
        Ok(self.basic_constraints()?.is_some_and(|bc| bc.ca))
    }

    /// Rejects critical extensions this verifier does not understand.
    pub fn check_critical_extensions(&self) -> Result<(), String> {
        for ext in self
            .x509
            .tbs_certificate()
            .extensions()
            .map(|e| e.as_slice())
            .unwrap_or_default()
        {
            if ext.critical && !KNOWN_CRITICAL.contains(&ext.extn_id) {
                return Err(format!(
                    "certificate has an unsupported critical extension {}",
                    ext.extn_id
                ));
            }
        }
        Ok(())
    }

    pub fn valid_at(&self, t: DateTime<Utc>) -> bool {
        self.not_before <= t && t <= self.not_after
    }

    pub fn public_key(&self) -> Result<&PublicKey, String> {
        self.key.as_ref().map_err(Clone::clone)
    }

    /// Checks that `issuer` issued this certificate: names match and the signature verifies.
    pub fn verify_issued_by(&self, issuer: &Cert) -> Result<(), String> {
        if self.issuer_raw != issuer.subject_raw {
            return Err("issuer name does not match the CA's subject".into());
        }
        let key = issuer.public_key()?;
        crypto::verify_with_alg(key, &self.sig_alg, None, &self.tbs, &self.signature)
    }

    /// A short description for steps: the subject's CN/O if any.
    pub fn describe(&self) -> String {
        let subject = self.x509.tbs_certificate().subject().to_string();
        if subject.is_empty() {
            "(empty subject)".to_string()
        } else {
            subject
        }
    }
}

fn to_chrono(t: x509_cert::time::Time) -> Result<DateTime<Utc>, String> {
    let secs = i64::try_from(t.to_unix_duration().as_secs())
        .map_err(|_| "certificate time out of range")?;
    DateTime::from_timestamp(secs, 0).ok_or_else(|| "certificate time out of range".to_string())
}

/// Validates the path `leaf → chain[0] → … → chain[last]` at time `t`, where `chain` is a
/// trusted root `certChain` (issuer first, trust anchor last). The anchor is trusted as
/// distributed; every other link must verify, every CA must be a CA allowed to sign at its
/// depth, and every certificate must be valid at `t`.
pub fn validate_path(leaf: &Cert, chain: &[Cert], t: DateTime<Utc>) -> Result<(), String> {
    let first = chain.first().ok_or("empty CA certificate chain")?;
    if chain.len() + 1 > MAX_CHAIN {
        return Err("certificate chain is too long".into());
    }
    leaf.verify_issued_by(first).map_err(|e| {
        format!(
            "leaf certificate is not issued by '{}': {e}",
            first.describe()
        )
    })?;
    for (depth, ca) in chain.iter().enumerate() {
        let bc = ca
            .basic_constraints()?
            .ok_or_else(|| format!("CA '{}' has no basicConstraints", ca.describe()))?;
        if !bc.ca {
            return Err(format!("'{}' is not a CA certificate", ca.describe()));
        }
        if let Some(limit) = bc.path_len_constraint
            && depth > usize::from(limit)
        {
            return Err(format!(
                "CA '{}' path length constraint {limit} exceeded",
                ca.describe()
            ));
        }
        if let Some(ku) = ca.key_usage()?
            && !ku.key_cert_sign()
        {
            return Err(format!(
                "CA '{}' may not sign certificates (keyUsage)",
                ca.describe()
            ));
        }
        ca.check_critical_extensions()?;
        if !ca.valid_at(t) {
            return Err(format!(
                "CA '{}' is not valid at {} (valid {} to {})",
                ca.describe(),
                t.to_rfc3339(),
                ca.not_before.to_rfc3339(),
                ca.not_after.to_rfc3339()
            ));
        }
        if let Some(parent) = chain.get(depth + 1) {
            ca.verify_issued_by(parent).map_err(|e| {
                format!(
                    "CA '{}' is not issued by '{}': {e}",
                    ca.describe(),
                    parent.describe()
                )
            })?;
        }
    }
    Ok(())
}

/// The Sigstore leaf profile: an end-entity code-signing certificate (Fulcio spec): not a CA,
/// keyUsage digitalSignature, extendedKeyUsage codeSigning, no unknown critical extension.
pub fn check_leaf_profile(leaf: &Cert) -> Result<(), String> {
    if leaf.is_ca()? {
        return Err("the signing certificate is a CA certificate, not a leaf".into());
    }
    let ku = leaf
        .key_usage()?
        .ok_or("the signing certificate has no keyUsage extension")?;
    if !ku.digital_signature() {
        return Err("the signing certificate's keyUsage lacks digitalSignature".into());
    }
    let eku = leaf
        .ext_key_usage()?
        .ok_or("the signing certificate has no extendedKeyUsage extension")?;
    if !eku.0.contains(&oids::KP_CODE_SIGNING) {
        return Err("the signing certificate's extendedKeyUsage lacks codeSigning".into());
    }
    leaf.check_critical_extensions()
}
