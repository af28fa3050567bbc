//! The verdict on a record: is its evidence signed, by someone the vault trusts, over what the
//! record says it is about?
//!
//! Every record carries one of four verdicts:
//! - `verified`: a signature checks out with a trusted key or identity in scope for the
//!   record's blueprint, and the signed content agrees with the record (subjects, commit);
//! - `failed`: something that must hold does not (a signature that does not verify with the key
//!   it names, subjects or a source commit that contradict the record, a broken bundle);
//! - `untrusted`: signed, but by no key or identity the vault trusts for this blueprint (or with
//!   evidence evault cannot check yet, said in the reason);
//! - `unsigned`: no signature, and no verified detached signature over the record's bytes.
//!
//! [`check`] is a pure function of the record, its bytes, the trust in force and a clock.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use evault_schema::Format;
use evault_schema::extract::provenance as extract_provenance;
use serde::{Deserialize, Serialize};

use crate::auth::scope_matches;
use crate::record::Record;
use crate::verify::keys::PublicKey;
use crate::verify::sigstore::{self, IdentityPolicy, SanPolicy, TrustedRoot};
use crate::verify::{blobsig, dsse};

/// Largest document verified (signed evidence is small; bigger is refused, not guessed at).
pub const VERIFY_LIMIT: u64 = 16 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerificationStatus {
    Verified,
    Failed,
    Unsigned,
    Untrusted,
}

impl VerificationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            VerificationStatus::Verified => "verified",
            VerificationStatus::Failed => "failed",
            VerificationStatus::Unsigned => "unsigned",
            VerificationStatus::Untrusted => "untrusted",
        }
    }

    pub fn from_name(s: &str) -> Self {
        match s {
            "verified" => VerificationStatus::Verified,
            "failed" => VerificationStatus::Failed,
            "untrusted" => VerificationStatus::Untrusted,
            _ => VerificationStatus::Unsigned,
        }
    }
}

/// The verdict shown with a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    pub status: VerificationStatus,
    /// Who it was verified by: `key <name>`, `identity <name> (<san>)`, or the signature
    /// record that vouches for it.
    pub by: Option<String>,
    /// Why it is not verified.
    pub reason: Option<String>,
}

/// A verdict with its chain of reasoning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub verification: Verification,
    pub steps: Vec<String>,
}

/// A trusted key in force.
pub struct Key {
    pub name: String,
    pub key: PublicKey,
    pub scopes: Vec<String>,
}

/// A trusted keyless identity in force.
pub struct Identity {
    pub name: String,
    pub policy: IdentityPolicy,
    pub scopes: Vec<String>,
}

/// Everything trusted at one moment.
#[derive(Default)]
pub struct Trust {
    pub keys: Vec<Key>,
    pub identities: Vec<Identity>,
    pub roots: Vec<(String, TrustedRoot)>,
    pub requirements: Vec<String>,
}

fn in_scope(scopes: &[String], blueprint: &str) -> bool {
    scopes.is_empty() || scopes.iter().any(|p| scope_matches(p, blueprint))
}

impl Trust {
    /// Keys whose scopes cover `blueprint`.
    pub fn keys_for(&self, blueprint: &str) -> Vec<(&str, &PublicKey)> {
        self.keys
            .iter()
            .filter(|k| in_scope(&k.scopes, blueprint))
            .map(|k| (k.name.as_str(), &k.key))
            .collect()
    }

    fn identities_for(&self, blueprint: &str) -> Vec<&Identity> {
        self.identities
            .iter()
            .filter(|i| in_scope(&i.scopes, blueprint))
            .collect()
    }

    /// Whether pushes for `blueprint` must carry verified evidence.
    pub fn required_for(&self, blueprint: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|p| scope_matches(p, blueprint))
            .map(String::as_str)
    }
}

/// Builds verdicts while recording each step.
struct Reasoning {
    steps: Vec<String>,
}

impl Reasoning {
    fn step(&mut self, s: impl Into<String>) {
        self.steps.push(s.into());
    }

    fn done(self, status: VerificationStatus, by: Option<String>, reason: Option<String>) -> Check {
        let mut steps = self.steps;
        match (&by, &reason) {
            (Some(b), _) if status == VerificationStatus::Verified => {
                steps.push(format!("verdict: verified by {b}"))
            }
            (_, Some(r)) => steps.push(format!("verdict: {}: {r}", status.as_str())),
            _ => steps.push(format!("verdict: {}", status.as_str())),
        }
        Check {
            verification: Verification { status, by, reason },
            steps,
        }
    }

    fn verified(self, by: String) -> Check {
        self.done(VerificationStatus::Verified, Some(by), None)
    }

    fn failed(self, reason: impl Into<String>) -> Check {
        self.done(VerificationStatus::Failed, None, Some(reason.into()))
    }

    fn untrusted(self, reason: impl Into<String>) -> Check {
        self.done(VerificationStatus::Untrusted, None, Some(reason.into()))
    }

    fn unsigned(self) -> Check {
        self.done(VerificationStatus::Unsigned, None, None)
    }
}

/// The verdict on `record`, whose stored bytes are `bytes` (`None` when they are too large to
/// verify). `vouchers` are verified detached-signature records over the record's digest
/// (record id, by whom).
pub fn check(
    record: &Record,
    bytes: Option<&[u8]>,
    trust: &Trust,
    vouchers: &[(String, String)],
    now: DateTime<Utc>,
) -> Check {
    let mut r = Reasoning { steps: Vec::new() };
    r.step(format!(
        "record {} is {} ({}) for {} {}",
        record.id, record.kind, record.format, record.blueprint.name, record.blueprint.version
    ));
    let signed = matches!(
        record.format,
        Format::DsseEnvelope
            | Format::SigstoreBundle
            | Format::GcbProvenance
            | Format::SignatureDer
            | Format::SignatureBase64
            | Format::NpmAttestations
            | Format::IntotoLayout
            | Format::IntotoLink
    );
    if !signed {
        return match vouchers.first() {
            Some((id, by)) => {
                r.step(format!(
                    "its bytes are signed by signature record {id}, verified by {by}"
                ));
                r.verified(format!("signature record {id} ({by})"))
            }
            None => {
                r.step("the content carries no signature, and no verified detached signature covers its digest");
                r.unsigned()
            }
        };
    }
    let Some(bytes) = bytes else {
        return r.untrusted(format!(
            "the document is larger than {VERIFY_LIMIT} bytes; evault does not verify it"
        ));
    };
    match record.format {
        Format::DsseEnvelope => verify_dsse_document(r, record, bytes, trust),
        Format::GcbProvenance => verify_gcb(r, record, bytes, trust),
        Format::SigstoreBundle => verify_bundle_document(r, record, bytes, trust, now),
        Format::SignatureDer | Format::SignatureBase64 => verify_detached(r, record, bytes, trust),
        Format::NpmAttestations => r.untrusted(
            "npm attestation documents hold several Sigstore bundles; push the bundles themselves to verify them",
        ),
        _ => r.untrusted("in-toto layouts and links are verified as a whole with `evault verify-layout`"),
    }
}

/// Google Cloud Build signs the decoded payload itself, not DSSE's PAE (its legacy form, which
/// drops the binding of the payload type): checked as such, and said so in the reasoning.
fn verify_gcb(mut r: Reasoning, record: &Record, bytes: &[u8], trust: &Trust) -> Check {
    let envelopes = match dsse::parse_gcb_export(bytes) {
        Ok(e) => e,
        Err(e) => return r.failed(format!("not a readable Cloud Build provenance export: {e}")),
    };
    let Some(envelope) = envelopes.first() else {
        return r.failed("the Cloud Build export holds no DSSE envelope");
    };
    r.step("Cloud Build export: provenance_summary.provenance[0].envelope, signed over the raw payload (Cloud Build's legacy form, without DSSE's payload-type binding)");
    let keys = trust.keys_for(&record.blueprint.name);
    if keys.is_empty() {
        return r.untrusted(format!(
            "no trusted key covers blueprint {}",
            record.blueprint.name
        ));
    }
    let outcome = dsse::verify_raw_payload(envelope, &keys);
    conclude_dsse(r, record, envelope, outcome, "the payload", &keys)
}

fn verify_dsse_document(mut r: Reasoning, record: &Record, bytes: &[u8], trust: &Trust) -> Check {
    let envelope = match dsse::parse(bytes) {
        Ok(e) => e,
        Err(e) => return r.failed(format!("not a readable DSSE envelope: {e}")),
    };
    r.step(format!(
        "DSSE envelope, payload type {}, {} signature(s)",
        envelope.payload_type,
        envelope.signatures.len()
    ));
    if envelope.signatures.iter().any(|s| s.cert.is_some()) {
        r.step("a signature carries a certificate (keyless): without its transparency-log entry there is no proof of signing time");
    }
    let keys = trust.keys_for(&record.blueprint.name);
    if keys.is_empty() {
        return r.untrusted(format!(
            "no trusted key covers blueprint {}",
            record.blueprint.name
        ));
    }
    r.step(format!(
        "trying {} trusted key(s) in scope: {}",
        keys.len(),
        keys.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
    ));
    let outcome = dsse::verify(&envelope, &keys);
    conclude_dsse(
        r,
        record,
        &envelope,
        outcome,
        "PAE(payloadType, payload)",
        &keys,
    )
}

/// The verdict once an envelope's signatures were checked over `what` against `keys`.
fn conclude_dsse(
    mut r: Reasoning,
    record: &Record,
    envelope: &dsse::Envelope,
    outcome: dsse::DsseOutcome,
    what: &str,
    keys: &[(&str, &PublicKey)],
) -> Check {
    match outcome {
        dsse::DsseOutcome::Verified { key, signature } => {
            r.step(format!(
                "signature {signature} verifies over {what} with key {key}"
            ));
            match cross_check(
                &mut r,
                record,
                Some((&envelope.payload_type, &envelope.payload)),
            ) {
                Ok(()) => r.verified(format!("key {key}")),
                Err(reason) => r.failed(reason),
            }
        }
        dsse::DsseOutcome::NotVerified { attempts } => {
            for a in attempts {
                r.step(a);
            }
            // A signature that names a trusted key (by fingerprint or name) but does not verify
            // with it is a broken signature, not an unknown signer.
            let named = envelope
                .signatures
                .iter()
                .filter_map(|s| s.keyid.as_deref())
                .find_map(|id| {
                    keys.iter().find(|(name, key)| {
                        !id.is_empty()
                            && (id == *name || id.eq_ignore_ascii_case(&key.fingerprint()))
                    })
                });
            match named {
                Some((name, _)) => r.failed(format!(
                    "the signature names trusted key {name} but does not verify with it"
                )),
                None => r.untrusted("signed, but no signature verifies with a trusted key"),
            }
        }
        dsse::DsseOutcome::NoSignatures => {
            r.step("the envelope has no signatures");
            r.unsigned()
        }
    }
}

fn verify_bundle_document(
    mut r: Reasoning,
    record: &Record,
    bytes: &[u8],
    trust: &Trust,
    now: DateTime<Utc>,
) -> Check {
    if trust.roots.is_empty() {
        return r.untrusted("no Sigstore trusted root is configured (evault trust root add NAME --file trusted_root.json)");
    }
    let identities = trust.identities_for(&record.blueprint.name);
    let policies: Vec<IdentityPolicy> = identities.iter().map(|i| i.policy.clone()).collect();
    let key_der: Vec<(String, Vec<u8>)> = trust
        .keys_for(&record.blueprint.name)
        .into_iter()
        .map(|(name, key)| (name.to_string(), key.to_spki_der()))
        .collect();
    let keys: Vec<(&str, &[u8])> = key_der
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    let policy = sigstore::Policy {
        identities: &policies,
        keys: &keys,
    };
    let artifact = record
        .subjects
        .first()
        .and_then(|s| s.strip_prefix("sha256:"))
        .and_then(|hex| {
            let mut out = [0u8; 32];
            hex::decode_to_slice(hex, &mut out).ok().map(|_| out)
        })
        .map(sigstore::Artifact::Sha256);
    let mut last_error = None;
    for (name, root) in &trust.roots {
        match sigstore::verify_bundle(bytes, artifact, root, &policy, now) {
            Ok(v) => {
                r.step(format!("trusted root {name}:"));
                for s in &v.steps {
                    r.step(format!("  {s}"));
                }
                r.step(format!(
                    "signed at {} ({})",
                    v.signed_at.to_rfc3339(),
                    v.time_source
                ));
                let by = match &v.signer {
                    sigstore::Signer::Certificate { san, issuer } => {
                        let name = identities
                            .iter()
                            .find(|i| i.policy.matches(san, issuer))
                            .map_or("?", |i| i.name.as_str());
                        format!("identity {name} ({san}, {issuer})")
                    }
                    sigstore::Signer::Key { name } => format!("key {name}"),
                };
                let payload = v
                    .dsse_payload
                    .as_ref()
                    .map(|(t, p)| (t.as_str(), p.as_slice()));
                return match cross_check(&mut r, record, payload) {
                    Ok(()) => r.verified(by),
                    Err(reason) => r.failed(reason),
                };
            }
            Err(e) => {
                r.step(format!("trusted root {name}: {}", e.reason));
                last_error = Some(e);
            }
        }
    }
    let reason = last_error.map_or_else(|| "no trusted root".to_string(), |e| e.reason);
    // A bundle that no trusted identity or key signed is untrusted; anything else is a failure.
    if reason.contains("no trusted identity")
        || reason.contains("identity") && reason.contains("not trusted")
        || reason.contains("no trusted key")
    {
        r.untrusted(reason)
    } else {
        r.failed(reason)
    }
}

fn verify_detached(mut r: Reasoning, record: &Record, bytes: &[u8], trust: &Trust) -> Check {
    let signature = match blobsig::parse_signature(bytes) {
        Ok(s) => s,
        Err(e) => return r.failed(format!("not a readable signature: {e}")),
    };
    let digests: Vec<&str> = record
        .subjects
        .iter()
        .filter_map(|s| s.strip_prefix("sha256:"))
        .collect();
    let [hex] = digests.as_slice() else {
        return r.failed(format!(
            "a detached signature signs one artifact: push it with exactly one --subject sha256:<hex> (the record names {})",
            digests.len()
        ));
    };
    let mut digest = [0u8; 32];
    if hex::decode_to_slice(hex, &mut digest).is_err() {
        return r.failed("the subject is not a SHA-256 digest");
    }
    r.step(format!("detached signature over artifact sha256:{hex}"));
    let keys = trust.keys_for(&record.blueprint.name);
    if keys.is_empty() {
        return r.untrusted(format!(
            "no trusted key covers blueprint {}",
            record.blueprint.name
        ));
    }
    match blobsig::verify_digest(&signature, &digest, &keys) {
        blobsig::BlobOutcome::Verified { key } => {
            r.step(format!(
                "the signature verifies over the artifact's SHA-256 with key {key}"
            ));
            r.verified(format!("key {key}"))
        }
        blobsig::BlobOutcome::NotVerified { attempts } => {
            for a in attempts {
                r.step(a);
            }
            r.untrusted("the signature verifies with no trusted key")
        }
    }
}

/// What the signed content says must agree with the record: every subject the record names is
/// among the signed subjects, and a provenance's source commit is the record's commit.
fn cross_check(
    r: &mut Reasoning,
    record: &Record,
    payload: Option<(&str, &[u8])>,
) -> Result<(), String> {
    let Some((payload_type, payload)) = payload else {
        return Ok(());
    };
    if !payload_type.starts_with("application/vnd.in-toto") {
        r.step(format!(
            "payload type {payload_type} is not an in-toto statement: no subjects to cross-check"
        ));
        return Ok(());
    }
    let statement: serde_json::Value = serde_json::from_slice(payload)
        .map_err(|e| format!("the signed payload is not JSON: {e}"))?;
    let signed: BTreeSet<String> = statement["subject"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["digest"]["sha256"].as_str())
        .map(|h| format!("sha256:{}", h.to_ascii_lowercase()))
        .collect();
    for subject in &record.subjects {
        if !signed.contains(subject) {
            return Err(format!(
                "the record is about {subject}, which the signed statement does not name as a subject"
            ));
        }
    }
    r.step(format!(
        "the record's {} subject(s) are among the {} signed subject(s)",
        record.subjects.len(),
        signed.len()
    ));
    if let Ok(Some(p)) = extract_provenance::provenance(Format::IntotoStatement, payload)
        && let Some(commit) = p.source_commit
    {
        if !commit.eq_ignore_ascii_case(&record.git_sha) {
            return Err(format!(
                "the provenance was built from commit {commit}, but the record is for commit {}",
                record.git_sha
            ));
        }
        r.step(format!(
            "the provenance's source commit {commit} is the record's commit"
        ));
    }
    Ok(())
}

/// `SanPolicy` from the stored form.
pub fn san_policy(san: &str, is_regex: bool) -> Result<SanPolicy, String> {
    if is_regex {
        regex::Regex::new(&format!("^(?:{san})$"))
            .map(SanPolicy::Regex)
            .map_err(|e| {
                // The regex crate explains over several lines; the last one says what is wrong.
                let text = e.to_string();
                let why = text
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("")
                    .trim();
                format!(
                    "invalid SAN regular expression '{san}': {}",
                    why.trim_start_matches("error: ")
                )
            })
    } else {
        Ok(SanPolicy::Exact(san.to_string()))
    }
}
