//! RFC 3161 signed timestamps (`timestampVerificationData.rfc3161Timestamps`).
//!
//! A timestamp authority (TSA) signs "this hash existed at this time". Sigstore signers send
//! the hash of their *signature* (client spec §2.1.5), so a verified token proves the signature
//! existed at `genTime`, which is then used to check the Fulcio certificate's validity window.
//! This is the only time source for Rekor v2 entries, which have no integrated time.
//!
//! Checked: the token is a granted `TimeStampResp` (or a bare `TimeStampToken`) holding CMS
//! `SignedData` with one `SignerInfo` over an `id-ct-TSTInfo`; the signed attributes carry the
//! right content type and the digest of the `TSTInfo`; the `SignerInfo` identifies the TSA
//! certificate from the trusted root and its signature verifies with that key; an
//! `ESSCertIDv2` in the signed attributes (when present) hashes to that certificate; the TSA
//! certificate has the timeStamping EKU and chains to the authority's anchor; `genTime` lies
//! within every certificate's validity and the authority's `validFor`; and the message imprint
//! is the hash of the bundle's signature. Certificates embedded in the token are ignored: trust
//! comes from the trusted root only. `accuracy` is not applied (the time is used as stated).

use chrono::{DateTime, NaiveDate, Utc};
use const_oid::ObjectIdentifier as Oid;

use super::certificate::{self, Cert, oids as cert_oids};
use super::crypto::{self, Hash};
use super::tlv::{self, Tlv, tag};
use super::trusted_root::TrustedRoot;

/// Largest token accepted.
pub const MAX_TOKEN_BYTES: usize = 64 * 1024;

mod oids {
    use super::Oid;
    pub const SIGNED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.2");
    pub const TST_INFO: Oid = Oid::new_unwrap("1.2.840.113549.1.9.16.1.4");
    pub const CONTENT_TYPE: Oid = Oid::new_unwrap("1.2.840.113549.1.9.3");
    pub const MESSAGE_DIGEST: Oid = Oid::new_unwrap("1.2.840.113549.1.9.4");
    pub const SIGNING_CERTIFICATE_V2: Oid = Oid::new_unwrap("1.2.840.113549.1.9.16.2.47");
}

/// A verified timestamp.
pub struct Verified {
    pub time: DateTime<Utc>,
    pub tsa: String,
    pub hash: Hash,
}

fn alg_oid(alg: Tlv<'_>) -> Result<Tlv<'_>, String> {
    let alg = tlv::expect(alg, tag::SEQUENCE)?;
    tlv::expect(tlv::read(alg.content)?.0, tag::OID)
}

/// Parses `YYYYMMDDHHMMSS[.fraction]Z`.
fn generalized_time(t: Tlv<'_>) -> Result<DateTime<Utc>, String> {
    let t = tlv::expect(t, tag::GENERALIZED_TIME)?;
    let s = std::str::from_utf8(t.content).map_err(|_| "genTime is not ASCII".to_string())?;
    let s = s.strip_suffix('Z').ok_or("genTime is not in UTC ('Z')")?;
    let (main, frac) = s.split_once('.').unwrap_or((s, ""));
    if main.len() != 14
        || !main.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(format!("malformed genTime '{s}Z'"));
    }
    let n = |r: std::ops::Range<usize>| main[r].parse::<u32>().unwrap_or(u32::MAX);
    let year = i32::try_from(n(0..4)).map_err(|_| "genTime year out of range")?;
    let nanos = if frac.is_empty() {
        0
    } else {
        let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
        digits
            .parse::<u32>()
            .map_err(|_| "malformed genTime fraction")?
    };
    NaiveDate::from_ymd_opt(year, n(4..6), n(6..8))
        .and_then(|d| d.and_hms_nano_opt(n(8..10), n(10..12), n(12..14), nanos))
        .map(|t| t.and_utc())
        .ok_or_else(|| format!("invalid genTime '{s}Z'"))
}

struct Token<'a> {
    tst_info: &'a [u8],
    digest_alg: Hash,
    sid: Tlv<'a>,
    signed_attrs: Tlv<'a>,
    sig_alg: Tlv<'a>,
    signature: &'a [u8],
}

fn parse_token(der: &[u8]) -> Result<Token<'_>, String> {
    let outer = tlv::single(der, tag::SEQUENCE)?;
    let parts = tlv::children(outer.content, 8)?;
    // TimeStampResp ::= SEQUENCE { status PKIStatusInfo, timeStampToken ContentInfo OPTIONAL }
    // or a bare ContentInfo ::= SEQUENCE { contentType OID, content [0] EXPLICIT ANY }.
    let content_info = match parts.first() {
        Some(first) if first.tag == tag::SEQUENCE => {
            let status = tlv::children(first.content, 8)?;
            let code = status.first().copied().ok_or("empty PKIStatusInfo")?;
            let code = tlv::expect(code, tag::INTEGER)?;
            if !(code.content == [0] || code.content == [1]) {
                return Err("the timestamp response status is not 'granted'".into());
            }
            let token = parts
                .get(1)
                .copied()
                .ok_or("the timestamp response carries no token")?;
            tlv::children(tlv::expect(token, tag::SEQUENCE)?.content, 2)?
        }
        Some(first) if first.tag == tag::OID => parts.clone(),
        _ => return Err("not an RFC 3161 timestamp response or token".into()),
    };
    let [ct, content] = content_info.as_slice() else {
        return Err("malformed ContentInfo".into());
    };
    if !tlv::oid_is(*ct, &oids::SIGNED_DATA) {
        return Err("timestamp token is not CMS SignedData".into());
    }
    let sd = tlv::single(tlv::expect(*content, tag::CTX0)?.content, tag::SEQUENCE)?;
    let sd = tlv::children(sd.content, 8)?;
    if sd.len() < 4 {
        return Err("truncated SignedData".into());
    }
    let encap = tlv::children(tlv::expect(sd[2], tag::SEQUENCE)?.content, 2)?;
    let [etype, econtent] = encap.as_slice() else {
        return Err("SignedData has no encapsulated content".into());
    };
    if !tlv::oid_is(*etype, &oids::TST_INFO) {
        return Err("SignedData does not hold a TSTInfo".into());
    }
    let tst_info = tlv::single(
        tlv::expect(*econtent, tag::CTX0)?.content,
        tag::OCTET_STRING,
    )?
    .content;
    let signer_infos = sd.last().copied().ok_or("no signerInfos")?;
    let signer_infos = tlv::children(tlv::expect(signer_infos, tag::SET)?.content, 4)?;
    let [si] = signer_infos.as_slice() else {
        return Err(format!(
            "the token has {} SignerInfos; exactly one is accepted",
            signer_infos.len()
        ));
    };
    let si = tlv::children(tlv::expect(*si, tag::SEQUENCE)?.content, 8)?;
    if si.len() < 6 {
        return Err("SignerInfo lacks signed attributes".into());
    }
    let digest_oid = alg_oid(si[2])?;
    let digest_alg = Hash::from_digest_oid(digest_oid.content).ok_or_else(|| {
        format!(
            "unsupported SignerInfo digest algorithm {}",
            crypto::oid_display(digest_oid.content)
        )
    })?;
    let signed_attrs = tlv::expect(si[3], tag::CTX0)
        .map_err(|_| "SignerInfo has no signed attributes".to_string())?;
    let signature = tlv::expect(si[5], tag::OCTET_STRING)?.content;
    Ok(Token {
        tst_info,
        digest_alg,
        sid: si[1],
        signed_attrs,
        sig_alg: si[4],
        signature,
    })
}

/// The single value of each signed attribute, keyed by OID; duplicates are rejected.
fn attributes(signed_attrs: Tlv<'_>) -> Result<Vec<(Tlv<'_>, Tlv<'_>)>, String> {
    let mut out: Vec<(Tlv<'_>, Tlv<'_>)> = Vec::new();
    for attr in tlv::children(signed_attrs.content, 32)? {
        let parts = tlv::children(tlv::expect(attr, tag::SEQUENCE)?.content, 2)?;
        let [oid, values] = parts.as_slice() else {
            return Err("malformed signed attribute".into());
        };
        let values = tlv::children(tlv::expect(*values, tag::SET)?.content, 2)?;
        let [value] = values.as_slice() else {
            return Err("a signed attribute must have exactly one value".into());
        };
        if out.iter().any(|(o, _)| o.content == oid.content) {
            return Err("a signed attribute is repeated".into());
        }
        out.push((tlv::expect(*oid, tag::OID)?, *value));
    }
    Ok(out)
}

fn attr<'a>(attrs: &[(Tlv<'a>, Tlv<'a>)], oid: &Oid) -> Option<Tlv<'a>> {
    attrs
        .iter()
        .find(|(o, _)| tlv::oid_is(*o, oid))
        .map(|(_, v)| *v)
}

/// Whether the `SignerInfo` `sid` names `cert` (issuerAndSerialNumber or subjectKeyIdentifier).
fn sid_matches(sid: Tlv<'_>, cert: &Cert) -> Result<bool, String> {
    match sid.tag {
        tag::SEQUENCE => {
            let parts = tlv::children(sid.content, 2)?;
            let [issuer, serial] = parts.as_slice() else {
                return Err("malformed issuerAndSerialNumber".into());
            };
            Ok(issuer.full == cert.issuer_raw.as_slice()
                && serial.full == cert.serial_raw.as_slice())
        }
        0x80 => {
            let Some(ext) = cert.extension(&cert_oids::SUBJECT_KEY_ID) else {
                return Ok(false);
            };
            let ski = tlv::single(ext.extn_value.as_bytes(), tag::OCTET_STRING)?;
            Ok(ski.content == sid.content)
        }
        _ => Err("unsupported SignerInfo identifier".into()),
    }
}

/// Checks an `ESSCertIDv2` (if present) against the TSA certificate.
fn check_ess_cert_id(value: Tlv<'_>, cert: &Cert) -> Result<bool, String> {
    let signing_cert = tlv::children(tlv::expect(value, tag::SEQUENCE)?.content, 2)?;
    let certs = signing_cert
        .first()
        .copied()
        .ok_or("empty SigningCertificateV2")?;
    let first = tlv::children(tlv::expect(certs, tag::SEQUENCE)?.content, 16)?;
    let id = first
        .first()
        .copied()
        .ok_or("SigningCertificateV2 lists no certificate")?;
    let id = tlv::children(tlv::expect(id, tag::SEQUENCE)?.content, 3)?;
    let (hash, cert_hash) = match id.as_slice() {
        [h, rest @ ..] if h.tag == tag::SEQUENCE => {
            let oid = alg_oid(*h)?;
            let hash = Hash::from_digest_oid(oid.content).ok_or_else(|| {
                format!(
                    "unsupported ESSCertIDv2 hash {}",
                    crypto::oid_display(oid.content)
                )
            })?;
            (
                hash,
                rest.first().copied().ok_or("ESSCertIDv2 has no certHash")?,
            )
        }
        [c, ..] => (Hash::Sha256, *c),
        [] => return Err("empty ESSCertIDv2".into()),
    };
    let cert_hash = tlv::expect(cert_hash, tag::OCTET_STRING)?;
    Ok(cert_hash.content == hash.digest(&cert.der).as_slice())
}

/// Verifies one timestamp token over `signature` (the bundle's signature bytes) against the
/// trusted root's timestamp authorities.
pub fn verify(token_der: &[u8], signature: &[u8], root: &TrustedRoot) -> Result<Verified, String> {
    if token_der.len() > MAX_TOKEN_BYTES {
        return Err("timestamp token is too large".into());
    }
    let token = parse_token(token_der)?;

    let attrs = attributes(token.signed_attrs)?;
    let ct = attr(&attrs, &oids::CONTENT_TYPE).ok_or("signed attributes lack contentType")?;
    if !tlv::oid_is(ct, &oids::TST_INFO) {
        return Err("signed contentType is not id-ct-TSTInfo".into());
    }
    let md = attr(&attrs, &oids::MESSAGE_DIGEST).ok_or("signed attributes lack messageDigest")?;
    let md = tlv::expect(md, tag::OCTET_STRING)?;
    if md.content != token.digest_alg.digest(token.tst_info).as_slice() {
        return Err("signed messageDigest is not the digest of the TSTInfo".into());
    }

    // TSTInfo
    let tst = tlv::single(token.tst_info, tag::SEQUENCE)?;
    let f = tlv::children(tst.content, 16)?;
    if f.len() < 5 {
        return Err("truncated TSTInfo".into());
    }
    if tlv::expect(f[0], tag::INTEGER)?.content != [1] {
        return Err("TSTInfo version is not 1".into());
    }
    let imprint = tlv::children(tlv::expect(f[2], tag::SEQUENCE)?.content, 2)?;
    let [imprint_alg, imprint_hash] = imprint.as_slice() else {
        return Err("malformed messageImprint".into());
    };
    let imprint_oid = alg_oid(*imprint_alg)?;
    let hash = Hash::from_digest_oid(imprint_oid.content).ok_or_else(|| {
        format!(
            "unsupported messageImprint hash {}",
            crypto::oid_display(imprint_oid.content)
        )
    })?;
    if tlv::expect(*imprint_hash, tag::OCTET_STRING)?.content != hash.digest(signature).as_slice() {
        return Err(
            "the timestamp's message imprint is not the hash of the bundle's signature".into(),
        );
    }
    let time = generalized_time(f[4])?;

    // The signed attributes are signed with an explicit SET OF tag (RFC 5652 §5.4).
    let signed_bytes = tlv::wrap(tag::SET, token.signed_attrs.content);
    let sig_alg = alg_oid(token.sig_alg)?;

    let mut tried = Vec::new();
    for tsa in &root.timestamp_authorities {
        let Some(leaf) = tsa.chain.first() else {
            continue;
        };
        if !sid_matches(token.sid, leaf)? {
            tried.push(tsa.name.clone());
            continue;
        }
        let key = leaf
            .public_key()
            .map_err(|e| format!("TSA '{}' key unusable: {e}", tsa.name))?;
        crypto::verify_with_alg(
            key,
            sig_alg.content,
            Some(token.digest_alg),
            &signed_bytes,
            token.signature,
        )
        .map_err(|e| {
            format!(
                "timestamp signature by TSA '{}' does not verify: {e}",
                tsa.name
            )
        })?;
        if let Some(ess) = attr(&attrs, &oids::SIGNING_CERTIFICATE_V2)
            && !check_ess_cert_id(ess, leaf)?
        {
            return Err(format!(
                "the timestamp's ESSCertIDv2 does not name TSA '{}' certificate",
                tsa.name
            ));
        }
        let eku = leaf
            .ext_key_usage()?
            .ok_or("TSA certificate has no extendedKeyUsage")?;
        if !eku.0.contains(&cert_oids::KP_TIME_STAMPING) {
            return Err(format!(
                "TSA '{}' certificate lacks the timeStamping EKU",
                tsa.name
            ));
        }
        if leaf.is_ca()? {
            return Err(format!("TSA '{}' signing certificate is a CA", tsa.name));
        }
        leaf.check_critical_extensions()?;
        if !leaf.valid_at(time) {
            return Err(format!(
                "TSA '{}' certificate is not valid at genTime {}",
                tsa.name,
                time.to_rfc3339()
            ));
        }
        if tsa.chain.len() > 1 {
            certificate::validate_path(leaf, &tsa.chain[1..], time)
                .map_err(|e| format!("TSA '{}' chain: {e}", tsa.name))?;
        }
        if !tsa.valid_for.contains(time) {
            return Err(format!(
                "genTime {} is outside TSA '{}' validFor ({})",
                time.to_rfc3339(),
                tsa.name,
                tsa.valid_for.describe()
            ));
        }
        return Ok(Verified {
            time,
            tsa: tsa.name.clone(),
            hash,
        });
    }
    Err(format!(
        "the timestamp is not signed by any timestampAuthority in the trusted root (tried: {})",
        if tried.is_empty() {
            "none configured".to_string()
        } else {
            tried.join(", ")
        }
    ))
}
