//! Offline verification of Sigstore bundles (v0.1, v0.2, v0.3) against a `trusted_root.json`.
//!
//! This follows the Sigstore client specification (§4 "Verification") and the protobuf-specs
//! bundle rules, with every trust decision made from the trusted root and never from material
//! the bundle brings along. [`verify_bundle`] runs these checks, each recorded as one line in
//! `steps`, and fails closed on the first one that does not hold:
//!
//! 1. **Shape** ([`bundle`]): a known media type; exactly one content (`messageSignature` or
//!    `dsseEnvelope` with exactly one signature) and one verification material; the version
//!    rules (v0.1: every log entry has an inclusion promise; v0.2+: every log entry has an
//!    inclusion proof with a checkpoint; v0.3: a single `certificate`, not a chain; before
//!    v0.3: a chain, not `certificate`); at least one transparency log entry.
//! 2. **Signer material**: a Fulcio leaf certificate, or a public key that must be one of the
//!    policy's keys (the bundle's key hint is informative only, so each trusted key is tried).
//! 3. **Transparency log** ([`rekor_body`], [`merkle`](crate::log::merkle), [`checkpoint`], [`set`]): each entry's
//!    log is in the trusted root; its body is about this signature, signer and artifact
//!    (CVE-2022-36056); its inclusion proof leads from `SHA-256(0x00 || body)` to a root hash
//!    that a checkpoint signed by the log key states; its SET, when present, verifies.
//! 4. **Time**: verified times come only from a verified SET (`integratedTime`) or a verified
//!    RFC 3161 timestamp ([`timestamp`]). An inclusion proof and checkpoint prove *that* an
//!    entry is in the log, not *when* it was added, so an `integratedTime` without a SET is
//!    not a time (which is exactly why `bundle_v3_no_signed_time` is invalid). At least one
//!    verified time is required.
//! 5. **Certificate** ([`certificate`], [`sct`]): at every verified time, the leaf chains to a
//!    Fulcio CA of the trusted root whose `validFor` contains that time, every certificate on
//!    the path is valid then, and the leaf is a code-signing end-entity certificate; at least
//!    one embedded SCT verifies with a CT log key of the trusted root.
//! 6. **Signature**: over the artifact (ECDSA/RSA verify its digest; the bundle's
//!    `messageDigest` must be the artifact's) or over the DSSE PAE.
//! 7. **Identity** ([`identity`]): the leaf's SAN and OIDC issuer match one of the policy's
//!    identities. It is checked last, so that "not trusted" means "genuine, but not by anyone
//!    we trust".
//!
//! Not implemented (fails closed with a reason): thresholds above one log entry or timestamp,
//! witness cosignatures on checkpoints (ignored), online lookups of any kind, RSA-PSS and
//! Ed25519ph signing keys, certificate revocation, and intermediates that exist only in the
//! bundle (paths are built from the trusted root).

pub mod bundle;
pub mod certificate;
pub mod checkpoint;
pub mod crypto;
pub mod identity;
pub mod rekor_body;
pub mod sct;
pub mod set;
pub mod timestamp;
pub(crate) mod tlv;
pub mod trusted_root;

use chrono::{DateTime, Utc};

use bundle::{Bundle, MAX_TIMESTAMPS, MAX_TLOG_ENTRIES, MEDIA_TYPES, TlogEntry, req, req_bytes};
use certificate::Cert;
use crypto::{Hash, PublicKey};
use rekor_body::{Content, Expected, Verifier};

use crate::log::merkle;
pub use trusted_root::TrustedRoot;

/// Largest bundle accepted.
pub const MAX_BUNDLE_BYTES: usize = 16 * 1024 * 1024;
/// How far in the future of `now` a verified signing time may lie (clock skew).
const MAX_FUTURE_SKEW_SECS: i64 = 300;

/// The artifact a message-signature bundle is checked against.
#[derive(Clone, Copy, Debug)]
pub enum Artifact<'a> {
    /// The artifact's bytes.
    Bytes(&'a [u8]),
    /// Only the artifact's SHA-256 digest (enough for ECDSA/RSA signatures over SHA-256).
    Sha256([u8; 32]),
}

impl Artifact<'_> {
    /// The artifact's digest under `hash`, when it can be computed from what was given.
    fn digest(&self, hash: Hash) -> Option<Vec<u8>> {
        match self {
            Artifact::Bytes(b) => Some(hash.digest(b)),
            Artifact::Sha256(d) => (hash == Hash::Sha256).then(|| d.to_vec()),
        }
    }
}

/// How a certificate's Subject Alternative Name must look.
#[derive(Clone, Debug)]
pub enum SanPolicy {
    /// Exactly this string.
    Exact(String),
    /// A regular expression that must match the *whole* SAN.
    Regex(regex::Regex),
}

impl SanPolicy {
    pub fn matches(&self, san: &str) -> bool {
        match self {
            SanPolicy::Exact(s) => s == san,
            SanPolicy::Regex(re) => {
                // Anchor explicitly: `is_match` alone would accept a SAN that merely contains
                // a match, e.g. a fork's workflow URI embedding the trusted one.
                regex::Regex::new(&format!("^(?:{})$", re.as_str()))
                    .is_ok_and(|full| full.is_match(san))
            }
        }
    }
}

/// One trusted keyless identity: a SAN policy and the exact OIDC issuer.
#[derive(Clone, Debug)]
pub struct IdentityPolicy {
    pub san: SanPolicy,
    pub issuer: String,
}

impl IdentityPolicy {
    pub fn matches(&self, san: &str, issuer: &str) -> bool {
        self.issuer == issuer && self.san.matches(san)
    }
}

/// What the caller trusts.
#[derive(Clone, Copy, Debug)]
pub struct Policy<'a> {
    /// Certificate identities accepted (any one suffices); empty = no keyless identity accepted.
    pub identities: &'a [IdentityPolicy],
    /// Public keys (name, SPKI DER) accepted for bundles whose verificationMaterial is a
    /// publicKey (the hint may be empty and is not required to match).
    pub keys: &'a [(&'a str, &'a [u8])],
}

/// Who signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signer {
    Certificate { san: String, issuer: String },
    Key { name: String },
}

/// A verified bundle.
#[derive(Clone, Debug)]
pub struct Verified {
    /// "v0.1" | "v0.2" | "v0.3".
    pub media_type_version: String,
    pub signer: Signer,
    /// The verified signing time (an RFC 3161 time if any, else a SET-verified integrated time).
    pub signed_at: DateTime<Utc>,
    /// Where `signed_at` comes from.
    pub time_source: String,
    /// `(payloadType, payload)` when the bundle holds a DSSE envelope.
    pub dsse_payload: Option<(String, Vec<u8>)>,
    /// The chain of reasoning, one line per check passed.
    pub steps: Vec<String>,
}

/// Why a bundle was not accepted, and what had been checked before that.
#[derive(Clone, Debug)]
pub struct SigstoreError {
    pub reason: String,
    pub steps: Vec<String>,
}

impl std::fmt::Display for SigstoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for SigstoreError {}

/// Verifies a Sigstore bundle offline. See the module documentation for the checks. `now` is
/// used only to reject signing times in the future; certificate validity is always judged at
/// the verified signing time.
pub fn verify_bundle(
    bundle: &[u8],
    artifact: Option<Artifact<'_>>,
    root: &TrustedRoot,
    policy: &Policy<'_>,
    now: DateTime<Utc>,
) -> Result<Verified, SigstoreError> {
    let mut steps = Vec::new();
    match run(bundle, artifact, root, policy, now, &mut steps) {
        Ok(mut v) => {
            v.steps = steps;
            Ok(v)
        }
        Err(reason) => Err(SigstoreError { reason, steps }),
    }
}

/// What the bundle signs.
enum Signed {
    Message {
        signature: Vec<u8>,
        declared: Option<(Hash, Vec<u8>)>,
    },
    Dsse {
        payload_type: String,
        payload: Vec<u8>,
        pae: Vec<u8>,
        signature: Vec<u8>,
    },
}

impl Signed {
    fn signature(&self) -> &[u8] {
        match self {
            Signed::Message { signature, .. } | Signed::Dsse { signature, .. } => signature,
        }
    }
}

/// The signer material after step 2.
// One value per bundle verification: the size difference does not matter.
#[allow(clippy::large_enum_variant)]
enum Material {
    Certificate(Box<Cert>),
    Key {
        name: String,
        spki: Vec<u8>,
        key: PublicKey,
    },
}

impl Material {
    fn key(&self) -> Result<&PublicKey, String> {
        match self {
            Material::Certificate(c) => c
                .public_key()
                .map_err(|e| format!("signing certificate key: {e}")),
            Material::Key { key, .. } => Ok(key),
        }
    }
    fn verifier(&self) -> Verifier<'_> {
        match self {
            Material::Certificate(c) => Verifier::Certificate(&c.der),
            Material::Key { spki, .. } => Verifier::PublicKey(spki),
        }
    }
}

/// A verified time and where it came from.
struct TimeEvidence {
    time: DateTime<Utc>,
    source: String,
    from_tsa: bool,
}

fn hash_from_proto(name: &str) -> Result<Hash, String> {
    match name {
        "SHA2_256" => Ok(Hash::Sha256),
        "SHA2_384" => Ok(Hash::Sha384),
        "SHA2_512" => Ok(Hash::Sha512),
        other => Err(format!("unsupported messageDigest algorithm '{other}'")),
    }
}

/// Verifies the bundle's signature with `key`.
fn verify_signature(
    key: &PublicKey,
    signed: &Signed,
    artifact: Option<Artifact<'_>>,
) -> Result<String, String> {
    match signed {
        Signed::Dsse { pae, signature, .. } => {
            key.verify(pae, signature, key.registry_hash().unwrap_or(Hash::Sha256))
                .map_err(|e| format!("DSSE signature over the PAE does not verify: {e}"))?;
            Ok(format!(
                "DSSE signature verifies over PAE(payloadType, payload) with the {} key",
                key.kind()
            ))
        }
        Signed::Message {
            signature,
            declared,
        } => {
            let artifact = artifact
                .ok_or("a message-signature bundle needs the artifact to verify against")?;
            if let PublicKey::Ed25519(_) = key {
                let Artifact::Bytes(bytes) = artifact else {
                    return Err("an Ed25519 message signature needs the artifact's bytes, not only its digest".into());
                };
                key.verify(bytes, signature, Hash::Sha512)
                    .map_err(|e| format!("signature over the artifact does not verify: {e}"))?;
                return Ok("Ed25519 signature verifies over the artifact".into());
            }
            let hash = match declared {
                Some((h, _)) => *h,
                None => key
                    .registry_hash()
                    .ok_or("no hash algorithm for this key")?,
            };
            let digest = artifact.digest(hash).ok_or_else(|| {
                format!("the bundle signs the artifact's {} digest, which cannot be computed from a SHA-256 digest", hash.name())
            })?;
            key.verify_prehash(&digest, signature)
                .map_err(|e| format!("signature over the artifact does not verify: {e}"))?;
            Ok(format!(
                "{} signature verifies over the artifact's {} digest",
                key.kind(),
                hash.name()
            ))
        }
    }
}

fn run(
    bytes: &[u8],
    artifact: Option<Artifact<'_>>,
    root: &TrustedRoot,
    policy: &Policy<'_>,
    now: DateTime<Utc>,
    steps: &mut Vec<String>,
) -> Result<Verified, String> {
    // 1. Shape.
    if bytes.len() > MAX_BUNDLE_BYTES {
        return Err(format!(
            "bundle is {} bytes; the limit is {MAX_BUNDLE_BYTES}",
            bytes.len()
        ));
    }
    let b: Bundle =
        serde_json::from_slice(bytes).map_err(|e| format!("not a Sigstore bundle (JSON): {e}"))?;
    let media_type = b
        .media_type
        .as_deref()
        .ok_or("not a Sigstore bundle: mediaType is missing")?;
    let version = MEDIA_TYPES
        .iter()
        .find(|(m, _)| *m == media_type)
        .map(|(_, v)| *v)
        .ok_or_else(|| format!("unsupported bundle media type '{media_type}'"))?;
    steps.push(format!(
        "media type '{media_type}' is Sigstore bundle {version}"
    ));

    let vm = req(&b.verification_material, "verificationMaterial")?;
    let signed = match (&b.message_signature, &b.dsse_envelope) {
        (Some(_), Some(_)) => {
            return Err("the bundle holds both a messageSignature and a dsseEnvelope".into());
        }
        (None, None) => {
            return Err("the bundle holds neither a messageSignature nor a dsseEnvelope".into());
        }
        (Some(ms), None) => {
            let signature = req_bytes(&ms.signature, "messageSignature.signature")?;
            let declared = match &ms.message_digest {
                Some(d) => {
                    let h = hash_from_proto(req(
                        &d.algorithm,
                        "messageSignature.messageDigest.algorithm",
                    )?)?;
                    let digest = req_bytes(&d.digest, "messageSignature.messageDigest.digest")?;
                    if digest.len() != h.digest(b"").len() {
                        return Err(
                            "messageSignature.messageDigest has the wrong length for its algorithm"
                                .into(),
                        );
                    }
                    Some((h, digest))
                }
                None => None,
            };
            steps.push("content: a message signature over an artifact".into());
            Signed::Message {
                signature,
                declared,
            }
        }
        (None, Some(env)) => {
            let payload_type = req(&env.payload_type, "dsseEnvelope.payloadType")?.clone();
            if payload_type.is_empty() {
                return Err("dsseEnvelope.payloadType is empty".into());
            }
            let payload = trusted_root::decode_bytes(req(&env.payload, "dsseEnvelope.payload")?)
                .map_err(|e| format!("dsseEnvelope.payload: {e}"))?;
            let sigs = env.signatures.as_deref().unwrap_or_default();
            let [sig] = sigs else {
                return Err(format!(
                    "the DSSE envelope has {} signatures; a Sigstore bundle's envelope must have exactly one",
                    sigs.len()
                ));
            };
            let signature = req_bytes(&sig.sig, "dsseEnvelope.signatures[0].sig")?;
            steps.push(format!(
                "content: a DSSE envelope of type '{payload_type}' with one signature"
            ));
            let pae = bundle::pae(&payload_type, &payload);
            Signed::Dsse {
                payload_type,
                payload,
                pae,
                signature,
            }
        }
    };

    let present = [
        vm.public_key.is_some(),
        vm.x509_certificate_chain.is_some(),
        vm.certificate.is_some(),
    ];
    if present.iter().filter(|p| **p).count() != 1 {
        return Err("verificationMaterial must hold exactly one of publicKey, x509CertificateChain, certificate".into());
    }
    if version == "v0.3" && vm.x509_certificate_chain.is_some() {
        return Err(
            "a v0.3 bundle must carry a single 'certificate', not an x509CertificateChain".into(),
        );
    }
    if version != "v0.3" && vm.certificate.is_some() {
        return Err(format!(
            "a {version} bundle must carry an x509CertificateChain; 'certificate' is v0.3+"
        ));
    }

    let entries: &[TlogEntry] = vm.tlog_entries.as_deref().unwrap_or_default();
    if entries.is_empty() {
        return Err("no transparency log entry: the bundle's tlogEntries is empty (a Rekor entry is required)".into());
    }
    if entries.len() > MAX_TLOG_ENTRIES {
        return Err(format!(
            "the bundle has {} tlog entries; the limit is {MAX_TLOG_ENTRIES}",
            entries.len()
        ));
    }
    for (i, e) in entries.iter().enumerate() {
        if version == "v0.1" && e.inclusion_promise.is_none() {
            return Err(format!(
                "tlog entry {i}: a v0.1 bundle requires an inclusion promise (SET)"
            ));
        }
        if version != "v0.1" {
            let proof = e.inclusion_proof.as_ref().ok_or_else(|| {
                format!("tlog entry {i}: a {version} bundle requires an inclusion proof")
            })?;
            if proof
                .checkpoint
                .as_ref()
                .and_then(|c| c.envelope.as_deref())
                .is_none_or(str::is_empty)
            {
                return Err(format!(
                    "tlog entry {i}: a {version} bundle requires an inclusion proof with a checkpoint"
                ));
            }
        }
    }
    let timestamps = vm
        .timestamp_verification_data
        .as_ref()
        .and_then(|t| t.rfc3161_timestamps.as_deref())
        .unwrap_or_default();
    if timestamps.len() > MAX_TIMESTAMPS {
        return Err(format!(
            "the bundle has {} RFC 3161 timestamps; the limit is {MAX_TIMESTAMPS}",
            timestamps.len()
        ));
    }
    steps.push(format!(
        "shape: {} tlog entr{}, {} RFC 3161 timestamp(s); {version} rules hold",
        entries.len(),
        if entries.len() == 1 { "y" } else { "ies" },
        timestamps.len()
    ));

    // The caller's artifact against the bundle's own statement of its digest.
    if let Signed::Message {
        declared: Some((h, d)),
        ..
    } = &signed
    {
        let artifact =
            artifact.ok_or("a message-signature bundle needs the artifact to verify against")?;
        let actual = artifact.digest(*h).ok_or_else(|| {
            format!(
                "the bundle's messageDigest is {}, which cannot be computed from a SHA-256 digest",
                h.name()
            )
        })?;
        if &actual != d {
            return Err(
                "artifact mismatch: the artifact's digest is not the bundle's messageDigest".into(),
            );
        }
        steps.push(format!(
            "the artifact's {} digest equals the bundle's messageDigest",
            h.name()
        ));
    }

    // 2. Signer material.
    let material = if let Some(chain) = &vm.x509_certificate_chain {
        let certs = chain.certificates.as_deref().unwrap_or_default();
        if certs.is_empty() {
            return Err("x509CertificateChain is empty: expected the signing certificate".into());
        }
        if certs.len() > certificate::MAX_CHAIN {
            return Err(format!(
                "x509CertificateChain has more than {} certificates",
                certificate::MAX_CHAIN
            ));
        }
        let leaf = Cert::parse(&req_bytes(
            &certs[0].raw_bytes,
            "x509CertificateChain.certificates[0].rawBytes",
        )?)
        .map_err(|e| format!("signing certificate: {e}"))?;
        steps.push(format!(
            "signer: certificate from x509CertificateChain (valid {} to {}){}",
            leaf.not_before.to_rfc3339(),
            leaf.not_after.to_rfc3339(),
            if certs.len() > 1 {
                format!("; the {} other certificate(s) in the bundle are not used: paths are built from the trusted root", certs.len() - 1)
            } else {
                String::new()
            }
        ));
        Material::Certificate(Box::new(leaf))
    } else if let Some(c) = &vm.certificate {
        let leaf = Cert::parse(&req_bytes(&c.raw_bytes, "certificate.rawBytes")?)
            .map_err(|e| format!("signing certificate: {e}"))?;
        steps.push(format!(
            "signer: certificate (valid {} to {})",
            leaf.not_before.to_rfc3339(),
            leaf.not_after.to_rfc3339()
        ));
        Material::Certificate(Box::new(leaf))
    } else {
        let hint = vm
            .public_key
            .as_ref()
            .and_then(|k| k.hint.clone())
            .unwrap_or_default();
        if policy.keys.is_empty() {
            return Err(format!(
                "no trusted key: the bundle is signed with a public key (hint '{hint}') and the policy trusts no keys"
            ));
        }
        let mut found = None;
        for (name, spki) in policy.keys {
            let Ok(key) = PublicKey::from_spki_der(spki) else {
                continue;
            };
            if let Ok(how) = verify_signature(&key, &signed, artifact) {
                found = Some((name.to_string(), spki.to_vec(), key, how));
                break;
            }
        }
        let (name, spki, key, how) = found.ok_or_else(|| {
            format!("no trusted key verifies the bundle's signature (key hint '{hint}')")
        })?;
        steps.push(format!(
            "signer: trusted key '{name}' (hint '{hint}' is informative only); {how}"
        ));
        Material::Key { name, spki, key }
    };
    let key = material.key()?;

    // 3. Transparency log entries.
    let artifact_digest = |h: Hash| artifact.and_then(|a| a.digest(h));
    let content = match &signed {
        Signed::Message { .. } => Content::Message {
            digest: &artifact_digest,
        },
        Signed::Dsse {
            payload_type,
            payload,
            pae,
            ..
        } => Content::Dsse {
            payload_type,
            payload,
            pae,
        },
    };
    let expected = Expected {
        signature: signed.signature(),
        verifier: material.verifier(),
        key,
        content,
    };
    let mut times = Vec::new();
    let mut logs_needing_time = Vec::new();
    let mut seen = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let outcome = verify_entry(i, e, root, &expected, steps)?;
        if seen.contains(&(outcome.log_id.clone(), outcome.log_index)) {
            return Err(format!("tlog entry {i} repeats an earlier entry"));
        }
        seen.push((outcome.log_id.clone(), outcome.log_index));
        match outcome.integrated {
            Some(t) => times.push(TimeEvidence {
                time: t,
                source: outcome.time_source,
                from_tsa: false,
            }),
            None => logs_needing_time.push((i, outcome.log)),
        }
    }

    // 4. Time.
    let mut seen_ts: Vec<Vec<u8>> = Vec::new();
    for (i, ts) in timestamps.iter().enumerate() {
        let der = req_bytes(
            &ts.signed_timestamp,
            &format!("rfc3161Timestamps[{i}].signedTimestamp"),
        )?;
        if seen_ts.contains(&der) {
            return Err(format!("RFC 3161 timestamp {i} is a duplicate"));
        }
        let v = timestamp::verify(&der, signed.signature(), root)
            .map_err(|e| format!("RFC 3161 timestamp {i}: {e}"))?;
        steps.push(format!(
            "RFC 3161 timestamp {i}: signed by TSA '{}' at {}; its {} message imprint is the hash of the bundle's signature",
            v.tsa,
            v.time.to_rfc3339(),
            v.hash.name()
        ));
        times.push(TimeEvidence {
            time: v.time,
            source: format!("rfc3161 timestamp by {}", v.tsa),
            from_tsa: true,
        });
        seen_ts.push(der);
    }
    if times.is_empty() {
        return Err("no verified signing time: the bundle has neither a verified inclusion promise (SET) nor a verified \
                    RFC 3161 timestamp (an inclusion proof shows that an entry is in the log, not when it was added)"
            .into());
    }
    let latest = now
        .checked_add_signed(chrono::Duration::seconds(MAX_FUTURE_SKEW_SECS))
        .unwrap_or(now);
    for t in &times {
        if t.time > latest {
            return Err(format!(
                "the verified signing time {} ({}) is in the future",
                t.time.to_rfc3339(),
                t.source
            ));
        }
    }
    for (i, log) in &logs_needing_time {
        for t in &times {
            if !log.valid_for.contains(t.time) {
                return Err(format!(
                    "tlog entry {i}: log {} key is not valid at the signing time {} (validFor {})",
                    log.base_url,
                    t.time.to_rfc3339(),
                    log.valid_for.describe()
                ));
            }
        }
        steps.push(format!(
            "tlog entry {i}: log {} key was valid at every verified signing time",
            log.base_url
        ));
    }

    // 5–7. Certificate, SCT, signature, identity.
    let signer = match &material {
        Material::Certificate(leaf) => {
            let mut issuer: Option<&Cert> = None;
            for t in &times {
                let (ca, first) = fulcio_path(leaf, root, t.time)?;
                steps.push(format!(
                    "certificate path: the signing certificate chains to Fulcio CA '{}' (validFor {}), all valid at {} ({})",
                    ca.name,
                    ca.valid_for.describe(),
                    t.time.to_rfc3339(),
                    t.source
                ));
                issuer.get_or_insert(first);
            }
            certificate::check_leaf_profile(leaf)
                .map_err(|e| format!("certificate profile: {e}"))?;
            steps.push("certificate profile: end-entity, digitalSignature, codeSigning EKU, no unknown critical extension".into());
            for t in &times {
                if !leaf.valid_at(t.time) {
                    return Err(format!(
                        "the signing certificate was not valid at the signing time {} from {} (valid {} to {})",
                        t.time.to_rfc3339(),
                        t.source,
                        leaf.not_before.to_rfc3339(),
                        leaf.not_after.to_rfc3339()
                    ));
                }
            }
            steps.push("the signing certificate was valid at every verified signing time".into());
            let issuer = issuer.ok_or("no certificate path")?;
            for line in sct::verify_embedded(leaf, issuer, root).map_err(|e| format!("SCT: {e}"))? {
                steps.push(line);
            }
            steps.push(verify_signature(key, &signed, artifact)?);
            let id = identity::of(leaf).map_err(|e| format!("identity: {e}"))?;
            let san_list = id.sans.join(", ");
            if policy.identities.is_empty() {
                return Err(format!(
                    "no trusted identity: the policy accepts no keyless identities (certificate SAN '{san_list}', issuer '{}')",
                    id.issuer
                ));
            }
            let san = id
                .sans
                .iter()
                .find(|s| policy.identities.iter().any(|p| p.matches(s, &id.issuer)))
                .ok_or_else(|| {
                    format!("certificate identity SAN '{san_list}' with issuer '{}' is not trusted by the policy", id.issuer)
                })?;
            steps.push(format!(
                "identity: SAN '{san}' with OIDC issuer '{}' matches a trusted identity",
                id.issuer
            ));
            Signer::Certificate {
                san: san.clone(),
                issuer: id.issuer,
            }
        }
        Material::Key { name, .. } => Signer::Key { name: name.clone() },
    };

    // A DSSE bundle checked against an artifact: the artifact must be a subject.
    let dsse_payload = match &signed {
        Signed::Dsse {
            payload_type,
            payload,
            ..
        } => {
            if let Some(a) = artifact {
                let alg = check_subject(payload_type, payload, a)?;
                steps.push(format!(
                    "the artifact's {alg} digest is a subject of the in-toto statement"
                ));
            }
            Some((payload_type.clone(), payload.clone()))
        }
        Signed::Message { .. } => None,
    };

    let chosen = times
        .iter()
        .find(|t| t.from_tsa)
        .or_else(|| times.first())
        .ok_or("no verified signing time")?;
    Ok(Verified {
        media_type_version: version.to_string(),
        signer,
        signed_at: chosen.time,
        time_source: chosen.source.clone(),
        dsse_payload,
        steps: Vec::new(),
    })
}

/// Finds a Fulcio CA of the trusted root that is valid at `t` and issued `leaf`; returns the
/// authority and the CA certificate that signed the leaf.
fn fulcio_path<'r>(
    leaf: &Cert,
    root: &'r TrustedRoot,
    t: DateTime<Utc>,
) -> Result<(&'r trusted_root::Authority, &'r Cert), String> {
    let mut why = Vec::new();
    for ca in &root.certificate_authorities {
        if !ca.valid_for.contains(t) {
            why.push(format!(
                "'{}' validFor {} excludes it",
                ca.name,
                ca.valid_for.describe()
            ));
            continue;
        }
        match certificate::validate_path(leaf, &ca.chain, t) {
            Ok(()) => {
                let first = ca.chain.first().ok_or("empty CA chain")?;
                return Ok((ca, first));
            }
            Err(e) => why.push(format!("'{}': {e}", ca.name)),
        }
    }
    Err(format!(
        "certificate chain: the signing certificate does not chain to a Fulcio CA of the trusted root at {} ({})",
        t.to_rfc3339(),
        if why.is_empty() {
            "no certificateAuthorities".to_string()
        } else {
            why.join("; ")
        }
    ))
}

/// What one verified log entry contributed.
struct EntryOutcome<'r> {
    log: &'r trusted_root::LogInstance,
    log_id: Vec<u8>,
    log_index: i64,
    /// The integrated time, if a SET verified it.
    integrated: Option<DateTime<Utc>>,
    time_source: String,
}

fn verify_entry<'r>(
    i: usize,
    e: &TlogEntry,
    root: &'r TrustedRoot,
    expected: &Expected<'_>,
    steps: &mut Vec<String>,
) -> Result<EntryOutcome<'r>, String> {
    let ctx = |m: String| format!("tlog entry {i}: {m}");
    let log_index = req(&e.log_index, "logIndex")
        .and_then(|v| v.non_negative("logIndex"))
        .map_err(ctx)?;
    let log_id = e
        .log_id
        .as_ref()
        .map(|l| &l.key_id)
        .ok_or("logId is missing".to_string());
    let log_id = log_id
        .and_then(|k| req_bytes(k, "logId.keyId"))
        .map_err(ctx)?;
    let kv = req(&e.kind_version, "kindVersion").map_err(ctx)?;
    let kind = kv
        .kind
        .as_deref()
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ctx("kindVersion.kind is missing".into()))?;
    let version = kv
        .version
        .as_deref()
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ctx("kindVersion.version is missing".into()))?;
    let body = req_bytes(&e.canonicalized_body, "canonicalizedBody").map_err(ctx)?;

    let log = root.tlog(&log_id).ok_or_else(|| {
        ctx(format!(
            "log ID {} is not a transparency log of the trusted root",
            hex::encode(&log_id)
        ))
    })?;
    let key = log
        .key
        .as_ref()
        .map_err(|err| ctx(format!("log {} key unusable: {err}", log.base_url)))?;
    steps.push(format!(
        "tlog entry {i}: log {} (ID {}) is in the trusted root",
        log.base_url,
        hex::encode(&log_id)
    ));

    let what = rekor_body::check(kind, version, &body, expected).map_err(|m| {
        ctx(format!(
            "transparency log entry is inconsistent with the bundle: {m}"
        ))
    })?;
    steps.push(format!("tlog entry {i}: {what}"));

    let rekor_v2 = version == "0.0.2" && matches!(kind, "hashedrekord" | "dsse");
    let mut proven = false;

    if let Some(proof) = &e.inclusion_proof {
        let p_index = req(&proof.log_index, "inclusionProof.logIndex")
            .and_then(|v| v.non_negative("inclusionProof.logIndex"))
            .map_err(ctx)?;
        let size = req(&proof.tree_size, "inclusionProof.treeSize")
            .and_then(|v| v.non_negative("inclusionProof.treeSize"))
            .map_err(ctx)?;
        let root_hash: [u8; 32] = req_bytes(&proof.root_hash, "inclusionProof.rootHash")
            .map_err(ctx)?
            .try_into()
            .map_err(|_| ctx("inclusionProof.rootHash is not 32 bytes".into()))?;
        let hashes = proof.hashes.as_deref().unwrap_or_default();
        if hashes.len() > merkle::MAX_PROOF_HASHES {
            return Err(ctx(format!(
                "inclusion proof has more than {} hashes",
                merkle::MAX_PROOF_HASHES
            )));
        }
        let mut path = Vec::with_capacity(hashes.len());
        for (k, h) in hashes.iter().enumerate() {
            let h: [u8; 32] = trusted_root::decode_bytes(h)
                .ok()
                .and_then(|h| h.try_into().ok())
                .ok_or_else(|| {
                    ctx(format!(
                        "inclusion proof hash {k} is not 32 bytes of base64"
                    ))
                })?;
            path.push(h);
        }
        if rekor_v2 && p_index != log_index {
            return Err(ctx(format!(
                "inclusion proof index {p_index} differs from the entry's log index {log_index}"
            )));
        }
        let leaf = merkle::leaf_hash(&body);
        merkle::verify_inclusion(p_index as u64, size as u64, &leaf, &path, &root_hash)
            .map_err(|m| ctx(format!("inclusion proof: {m}")))?;
        steps.push(format!(
            "tlog entry {i}: inclusion proof leads from the body's leaf hash at index {p_index} to root hash {} of a tree of {size}",
            hex::encode(root_hash)
        ));
        match proof
            .checkpoint
            .as_ref()
            .and_then(|c| c.envelope.as_deref())
            .filter(|s| !s.is_empty())
        {
            Some(envelope) => {
                let cp =
                    checkpoint::parse(envelope).map_err(|m| ctx(format!("checkpoint: {m}")))?;
                let signer = cp
                    .verify(&log_id, key)
                    .map_err(|m| ctx(format!("checkpoint: {m}")))?;
                if cp.tree_size != size as u64 || cp.root_hash != root_hash {
                    return Err(ctx(format!(
                        "checkpoint: it states tree size {} and root hash {}, the inclusion proof tree size {size} and root hash {}",
                        cp.tree_size,
                        hex::encode(cp.root_hash),
                        hex::encode(root_hash)
                    )));
                }
                steps.push(format!(
                    "tlog entry {i}: checkpoint '{}' signed by '{signer}' with the log key states that tree size and root hash",
                    cp.origin
                ));
                proven = true;
            }
            None => {
                // Only reachable for v0.1 bundles (the shape rules require checkpoints later):
                // the proof is consistent, but its root hash is unsigned, so it proves nothing.
                steps.push(format!(
                    "tlog entry {i}: the inclusion proof has no checkpoint, so its root hash is unsigned and it is not counted"
                ));
            }
        }
    }

    let mut integrated = None;
    if let Some(promise) = &e.inclusion_promise {
        if rekor_v2 {
            return Err(ctx(format!(
                "a Rekor v2 entry ({kind} {version}) cannot carry an inclusion promise"
            )));
        }
        let set = req_bytes(
            &promise.signed_entry_timestamp,
            "inclusionPromise.signedEntryTimestamp",
        )
        .map_err(ctx)?;
        let it = req(&e.integrated_time, "integratedTime")
            .and_then(|v| v.non_negative("integratedTime"))
            .map_err(ctx)?;
        if it == 0 {
            return Err(ctx("integratedTime is zero".into()));
        }
        let t = DateTime::from_timestamp(it, 0)
            .ok_or_else(|| ctx("integratedTime out of range".into()))?;
        if !log.valid_for.contains(t) {
            return Err(ctx(format!(
                "log {} key is not valid at integratedTime {} (validFor {})",
                log.base_url,
                t.to_rfc3339(),
                log.valid_for.describe()
            )));
        }
        set::verify(&set, &body, it, &log_id, log_index, key).map_err(|m| {
            ctx(format!(
                "inclusion promise (SET) does not verify with the log key: {m}"
            ))
        })?;
        steps.push(format!(
            "tlog entry {i}: inclusion promise (SET) verifies with the log key; integrated at {} (log index {log_index})",
            t.to_rfc3339()
        ));
        integrated = Some(t);
        proven = true;
    }

    if !proven {
        return Err(ctx(
            "neither an inclusion promise nor an inclusion proof with a checkpoint verifies it"
                .into(),
        ));
    }
    Ok(EntryOutcome {
        log,
        log_id,
        log_index,
        integrated,
        time_source: format!(
            "rekor signed entry timestamp ({}, log index {log_index})",
            log.base_url
        ),
    })
}

/// For a DSSE bundle verified against an artifact: the artifact's digest must be one of the
/// in-toto statement's subjects (compared under SHA-256, and under SHA-384/SHA-512 when the
/// artifact's bytes are given, since npm provenance names its tarball by SHA-512).
fn check_subject(
    payload_type: &str,
    payload: &[u8],
    artifact: Artifact<'_>,
) -> Result<&'static str, String> {
    if payload_type != "application/vnd.in-toto+json" {
        return Err(format!(
            "an artifact was given, but the DSSE payload type '{payload_type}' has no subjects to match"
        ));
    }
    let statement: serde_json::Value = serde_json::from_slice(payload)
        .map_err(|e| format!("the DSSE payload is not an in-toto statement: {e}"))?;
    let subjects = statement
        .get("subject")
        .and_then(|s| s.as_array())
        .ok_or("the in-toto statement has no subjects")?;
    for (name, hash) in [
        ("sha256", Hash::Sha256),
        ("sha384", Hash::Sha384),
        ("sha512", Hash::Sha512),
    ] {
        let Some(want) = artifact.digest(hash).map(hex::encode) else {
            continue;
        };
        let found = subjects.iter().any(|s| {
            s.get("digest")
                .and_then(|d| d.get(name))
                .and_then(|d| d.as_str())
                .is_some_and(|d| d.eq_ignore_ascii_case(&want))
        });
        if found {
            return Ok(name);
        }
    }
    Err("artifact mismatch: the artifact's digest is not a subject of the in-toto statement".into())
}
