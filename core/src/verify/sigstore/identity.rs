//! The signer identity in a Fulcio certificate: the Subject Alternative Name (who) and the
//! OIDC issuer extension (who vouched for them).
//!
//! Both halves matter: a SAN alone is meaningless, because any OIDC provider Fulcio trusts could
//! mint a token with the same email or URI. The issuer comes from the Fulcio extension
//! `1.3.6.1.4.1.57264.1.8` (a DER UTF8String), or the legacy `1.3.6.1.4.1.57264.1.1` (the raw
//! bytes of the string) on older certificates; if both are present they must agree.

use const_oid::ObjectIdentifier as Oid;
use der::Decode;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

use super::certificate::{Cert, oids};
use super::tlv::{self, tag};

/// Fulcio `otherName` SAN for usernames (`1.3.6.1.4.1.57264.1.7`), a UTF8String.
const FULCIO_USERNAME_SAN: Oid = Oid::new_unwrap("1.3.6.1.4.1.57264.1.7");

/// The identity a certificate states.
pub struct CertIdentity {
    pub sans: Vec<String>,
    pub issuer: String,
}

/// Reads the SAN(s) (email, URI, or Fulcio username) and OIDC issuer of a leaf.
pub fn of(leaf: &Cert) -> Result<CertIdentity, String> {
    let ext = leaf
        .extension(&oids::SUBJECT_ALT_NAME)
        .ok_or("the signing certificate has no subjectAltName")?;
    let san = SubjectAltName::from_der(ext.extn_value.as_bytes())
        .map_err(|_| "malformed subjectAltName".to_string())?;
    let mut sans = Vec::new();
    for name in &san.0 {
        match name {
            GeneralName::Rfc822Name(s) | GeneralName::UniformResourceIdentifier(s) => {
                sans.push(AsRef::<str>::as_ref(s).to_string());
            }
            GeneralName::OtherName(other) if other.type_id == FULCIO_USERNAME_SAN => {
                if let Ok(s) = der::asn1::Utf8StringRef::try_from(&other.value) {
                    sans.push(s.as_str().to_string());
                }
            }
            _ => {}
        }
    }
    if sans.is_empty() {
        return Err("the signing certificate has no email, URI or username subjectAltName".into());
    }

    let v2 = match leaf.extension(&oids::FULCIO_ISSUER_V2) {
        Some(ext) => {
            let t = tlv::single(ext.extn_value.as_bytes(), tag::UTF8_STRING).map_err(|_| {
                "malformed Fulcio issuer (1.3.6.1.4.1.57264.1.8) extension".to_string()
            })?;
            Some(
                std::str::from_utf8(t.content)
                    .map_err(|_| "Fulcio issuer extension is not UTF-8".to_string())?
                    .to_string(),
            )
        }
        None => None,
    };
    let v1 = match leaf.extension(&oids::FULCIO_ISSUER_V1) {
        Some(ext) => Some(
            std::str::from_utf8(ext.extn_value.as_bytes())
                .map_err(|_| "legacy Fulcio issuer extension is not UTF-8".to_string())?
                .to_string(),
        ),
        None => None,
    };
    let issuer = match (v2, v1) {
        (Some(a), Some(b)) if a != b => {
            return Err(format!(
                "the certificate's two OIDC issuer extensions disagree ('{a}' vs '{b}')"
            ));
        }
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) => {
            return Err("the signing certificate has no Fulcio OIDC issuer extension".into());
        }
    };
    if issuer.is_empty() {
        return Err("the signing certificate's OIDC issuer is empty".into());
    }
    Ok(CertIdentity { sans, issuer })
}
