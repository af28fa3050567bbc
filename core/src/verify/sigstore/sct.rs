//! Embedded Signed Certificate Timestamps (RFC 6962 §3).
//!
//! Fulcio logs every certificate in a CT log before issuing it and embeds the log's SCT. The
//! SCT signs the *precertificate*: the leaf's `TBSCertificate` with the SCT-list extension
//! removed, together with the SHA-256 of the issuer's public key. Verifying it proves that the
//! certificate is publicly auditable, so a mis-issued certificate cannot stay hidden.
//!
//! Policy: at least one SCT must verify with a CT log key from the trusted root. An SCT from a
//! log the root does not know is skipped (it proves nothing, but is not evidence of tampering);
//! an SCT that names a trusted log and does not verify is a failure.

use chrono::{DateTime, Utc};

use super::certificate::{Cert, oids};
use super::crypto::{Hash, sha256};
use super::tlv::{self, tag};
use super::trusted_root::TrustedRoot;

/// At most this many SCTs are examined.
const MAX_SCTS: usize = 16;

/// One parsed SCT (version 1).
struct Sct<'a> {
    log_id: &'a [u8],
    timestamp_ms: u64,
    extensions: &'a [u8],
    hash_alg: u8,
    sig_alg: u8,
    signature: &'a [u8],
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("SCT list is truncated".into());
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<usize, String> {
        let b = self.take(2)?;
        Ok(usize::from(u16::from_be_bytes([b[0], b[1]])))
    }
    fn u64(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
    fn vec16(&mut self) -> Result<&'a [u8], String> {
        let n = self.u16()?;
        self.take(n)
    }
}

fn parse_list(tls: &[u8]) -> Result<Vec<Sct<'_>>, String> {
    let mut outer = Reader(tls);
    let list = outer.vec16()?;
    if !outer.0.is_empty() {
        return Err("trailing bytes after the SCT list".into());
    }
    let mut r = Reader(list);
    let mut out = Vec::new();
    while !r.0.is_empty() {
        if out.len() >= MAX_SCTS {
            return Err("too many SCTs".into());
        }
        let mut s = Reader(r.vec16()?);
        let version = s.u8()?;
        if version != 0 {
            return Err(format!("unsupported SCT version {version}"));
        }
        let log_id = s.take(32)?;
        let timestamp_ms = s.u64()?;
        let extensions = s.vec16()?;
        let hash_alg = s.u8()?;
        let sig_alg = s.u8()?;
        let signature = s.vec16()?;
        if !s.0.is_empty() {
            return Err("trailing bytes in an SCT".into());
        }
        out.push(Sct {
            log_id,
            timestamp_ms,
            extensions,
            hash_alg,
            sig_alg,
            signature,
        });
    }
    Ok(out)
}

/// The precertificate `TBSCertificate`: the leaf's TBS with the SCT-list extension removed
/// (and the `extensions` field dropped if it becomes empty), re-encoded in DER.
pub fn precert_tbs(leaf: &Cert) -> Result<Vec<u8>, String> {
    let tbs = tlv::single(&leaf.tbs, tag::SEQUENCE)?;
    let mut content = Vec::with_capacity(tbs.content.len());
    let mut removed = false;
    for field in tlv::children(tbs.content, 16)? {
        if field.tag != tag::CTX3 {
            content.extend_from_slice(field.full);
            continue;
        }
        let exts = tlv::single(field.content, tag::SEQUENCE)?;
        let mut kept = Vec::new();
        for ext in tlv::children(exts.content, 256)? {
            let ext = tlv::expect(ext, tag::SEQUENCE)?;
            let (oid, _) = tlv::read(ext.content)?;
            if tlv::oid_is(oid, &oids::SCT_LIST) {
                removed = true;
            } else {
                kept.extend_from_slice(ext.full);
            }
        }
        if !kept.is_empty() {
            content.extend_from_slice(&tlv::wrap(tag::CTX3, &tlv::wrap(tag::SEQUENCE, &kept)));
        }
    }
    if !removed {
        return Err("the certificate has no SCT list extension".into());
    }
    Ok(tlv::wrap(tag::SEQUENCE, &content))
}

/// Verifies the leaf's embedded SCTs; `issuer` is the CA certificate that signed the leaf.
/// Returns one description per verified SCT.
pub fn verify_embedded(
    leaf: &Cert,
    issuer: &Cert,
    root: &TrustedRoot,
) -> Result<Vec<String>, String> {
    let ext = leaf
        .extension(&oids::SCT_LIST)
        .ok_or("the signing certificate has no embedded SCT")?;
    let inner = tlv::single(ext.extn_value.as_bytes(), tag::OCTET_STRING)
        .map_err(|e| format!("malformed SCT list extension: {e}"))?;
    let scts = parse_list(inner.content)?;
    if scts.is_empty() {
        return Err("the SCT list is empty".into());
    }
    let tbs = precert_tbs(leaf)?;
    if tbs.len() >= 1 << 24 {
        return Err("precertificate is too large for an SCT".into());
    }
    let issuer_key_hash = sha256(&issuer.spki_raw);

    let mut verified = Vec::new();
    let mut skipped = Vec::new();
    for sct in &scts {
        let Some(log) = root.ctlog(sct.log_id) else {
            skipped.push(hex::encode(sct.log_id));
            continue;
        };
        let key = log
            .key
            .as_ref()
            .map_err(|e| format!("CT log {} key unusable: {e}", log.base_url))?;
        let ts = i64::try_from(sct.timestamp_ms)
            .ok()
            .and_then(DateTime::<Utc>::from_timestamp_millis);
        let ts = ts.ok_or("SCT timestamp out of range")?;
        if !log.valid_for.contains(ts) {
            return Err(format!(
                "SCT from CT log {} is dated {} outside the log key's validFor ({})",
                log.base_url,
                ts.to_rfc3339(),
                log.valid_for.describe()
            ));
        }
        // digitally-signed struct: hash sha256(4), signature ecdsa(3) or rsa(1).
        if sct.hash_alg != 4 || !matches!(sct.sig_alg, 1 | 3) {
            return Err(format!(
                "SCT uses unsupported algorithms (hash {}, signature {})",
                sct.hash_alg, sct.sig_alg
            ));
        }
        let mut signed = Vec::with_capacity(tbs.len() + 64);
        signed.push(0); // sct_version v1
        signed.push(0); // signature_type certificate_timestamp
        signed.extend_from_slice(&sct.timestamp_ms.to_be_bytes());
        signed.extend_from_slice(&1u16.to_be_bytes()); // entry_type precert_entry
        signed.extend_from_slice(&issuer_key_hash);
        let len = tbs.len() as u32;
        signed.extend_from_slice(&len.to_be_bytes()[1..]);
        signed.extend_from_slice(&tbs);
        signed.extend_from_slice(&(sct.extensions.len() as u16).to_be_bytes());
        signed.extend_from_slice(sct.extensions);
        key.verify(&signed, sct.signature, Hash::Sha256)
            .map_err(|e| format!("SCT from CT log {} does not verify: {e}", log.base_url))?;
        verified.push(format!(
            "SCT from CT log {} ({}) verifies over the precertificate",
            log.base_url,
            ts.to_rfc3339()
        ));
    }
    if verified.is_empty() {
        return Err(format!(
            "no embedded SCT is from a CT log in the trusted root (log IDs {})",
            skipped.join(", ")
        ));
    }
    Ok(verified)
}
