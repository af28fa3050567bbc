//! Signed-note checkpoints and Signed Entry Timestamps, with keys made in the test: an
//! Ed25519 log key as Rekor v2 uses (C2SP key ID), and an ECDSA P-256 log key as Rekor v1 uses
//! (log ID = SHA-256 of the DER public key).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use evault_core::verify::sigstore::checkpoint;
use evault_core::verify::sigstore::crypto::{PublicKey, sha256};
use evault_core::verify::sigstore::set;
use serde_json::Value;
use signature::Signer;

struct EdLog {
    name: &'static str,
    sk: ed25519_dalek::SigningKey,
    key: PublicKey,
    log_id: [u8; 32],
}

fn ed_log(seed: u8, name: &'static str) -> EdLog {
    use ed25519_dalek::pkcs8::EncodePublicKey;
    let sk = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
    let spki = sk.verifying_key().to_public_key_der().unwrap();
    let key = PublicKey::from_spki_der(spki.as_bytes()).unwrap();
    // C2SP signed-note key ID for Ed25519: SHA-256(name || "\n" || 0x01 || key).
    let mut id_input = format!("{name}\n").into_bytes();
    id_input.push(0x01);
    id_input.extend_from_slice(sk.verifying_key().as_bytes());
    EdLog {
        name,
        sk,
        key,
        log_id: sha256(&id_input),
    }
}

impl EdLog {
    fn sign_line(&self, text: &str) -> String {
        let sig = self.sk.sign(text.as_bytes());
        let mut raw = self.log_id[..4].to_vec();
        raw.extend_from_slice(&sig.to_bytes());
        format!("\u{2014} {} {}\n", self.name, STANDARD.encode(raw))
    }
}

struct EcLog {
    sk: p256::ecdsa::SigningKey,
    key: PublicKey,
    log_id: [u8; 32],
}

fn ec_log(seed: u8) -> EcLog {
    use p256::pkcs8::EncodePublicKey;
    let mut scalar = [seed; 32];
    scalar[0] = 0x01;
    let sk = p256::ecdsa::SigningKey::from_slice(&scalar).unwrap();
    let spki = sk.verifying_key().to_public_key_der().unwrap();
    let key = PublicKey::from_spki_der(spki.as_bytes()).unwrap();
    EcLog {
        sk,
        key,
        log_id: sha256(spki.as_bytes()),
    }
}

impl EcLog {
    fn sign(&self, msg: &[u8]) -> Vec<u8> {
        let sig: p256::ecdsa::Signature = self.sk.sign(msg);
        sig.to_der().as_bytes().to_vec()
    }
    fn sign_line(&self, name: &str, text: &str) -> String {
        let mut raw = self.log_id[..4].to_vec();
        raw.extend_from_slice(&self.sign(text.as_bytes()));
        format!("\u{2014} {name} {}\n", STANDARD.encode(raw))
    }
}

fn note_text(origin: &str, size: u64, root: &[u8; 32], extra: &[&str]) -> String {
    let mut text = format!("{origin}\n{size}\n{}\n", STANDARD.encode(root));
    for line in extra {
        text.push_str(line);
        text.push('\n');
    }
    text
}

#[test]
fn an_ed25519_checkpoint_with_a_witness_cosignature_verifies() {
    let log = ed_log(1, "log.example.dev");
    let witness = ed_log(2, "witness.example.org");
    let root = sha256(b"root");
    let text = note_text("log.example.dev", 646, &root, &[]);
    let note = format!(
        "{text}\n{}{}",
        log.sign_line(&text),
        witness.sign_line(&text)
    );

    let cp = checkpoint::parse(&note).unwrap();
    assert_eq!(cp.origin, "log.example.dev");
    assert_eq!(cp.tree_size, 646);
    assert_eq!(cp.root_hash, root);
    assert_eq!(cp.signatures.len(), 2);
    assert_eq!(cp.verify(&log.log_id, &log.key).unwrap(), "log.example.dev");
    // The witness line is ignored when verifying the log; it verifies as its own key.
    assert_eq!(
        cp.verify(&witness.log_id, &witness.key).unwrap(),
        "witness.example.org"
    );
}

#[test]
fn an_ecdsa_checkpoint_in_rekor_v1_form_verifies() {
    let log = ec_log(3);
    let root = sha256(b"v1 root");
    let text = note_text(
        "rekor.example.dev - 2605736670972794746",
        27657875,
        &root,
        &["Timestamp: 1692374735595899989"],
    );
    let note = format!("{text}\n{}", log.sign_line("rekor.example.dev", &text));
    let cp = checkpoint::parse(&note).unwrap();
    assert_eq!(
        cp.extensions,
        vec!["Timestamp: 1692374735595899989".to_string()]
    );
    cp.verify(&log.log_id, &log.key).unwrap();
}

#[test]
fn altered_or_foreign_checkpoints_are_rejected() {
    let log = ed_log(1, "log.example.dev");
    let other = ed_log(9, "log.example.dev");
    let root = sha256(b"root");
    let text = note_text("log.example.dev", 10, &root, &[]);
    let good = format!("{text}\n{}", log.sign_line(&text));

    // The signed text altered after signing.
    let altered = good.replacen("\n10\n", "\n11\n", 1);
    let err = checkpoint::parse(&altered)
        .unwrap()
        .verify(&log.log_id, &log.key)
        .unwrap_err();
    assert!(err.contains("does not verify"), "{err}");

    // Signed by another key: no line carries this log's hint.
    let foreign = format!("{text}\n{}", other.sign_line(&text));
    let err = checkpoint::parse(&foreign)
        .unwrap()
        .verify(&log.log_id, &log.key)
        .unwrap_err();
    assert!(
        err.contains("no signature with the log's key hint"),
        "{err}"
    );

    // A line that claims the log's hint but is signed by another key is a forgery, even if a
    // genuine line follows.
    let mut raw = log.log_id[..4].to_vec();
    raw.extend_from_slice(&other.sk.sign(text.as_bytes()).to_bytes());
    let forged_line = format!("\u{2014} log.example.dev {}\n", STANDARD.encode(raw));
    let forged = format!("{text}\n{forged_line}{}", log.sign_line(&text));
    let err = checkpoint::parse(&forged)
        .unwrap()
        .verify(&log.log_id, &log.key)
        .unwrap_err();
    assert!(err.contains("does not verify"), "{err}");
}

#[test]
fn malformed_notes_are_rejected() {
    let log = ed_log(1, "log.example.dev");
    let root = sha256(b"root");
    let text = note_text("log.example.dev", 10, &root, &[]);
    let line = log.sign_line(&text);
    let bad = [
        text.clone(),                                                       // no signatures
        format!("{text}{line}"),                                            // no blank line
        format!("{text}\n{}", line.trim_end()),                             // no final newline
        format!("{text}\n\n{line}"),                                        // two blank lines
        format!("{text}\n{}", line.replace('\u{2014}', "-")),               // not an em dash
        format!("{}\n{line}", text.replacen("\n10\n", "\n010\n", 1)),       // leading zero
        format!("{}\n{line}", text.replacen("\n10\n", "\n-1\n", 1)),        // negative size
        format!("{}\n{line}", text.replacen("log.example.dev\n", "\n", 1)), // empty origin
        format!(
            "log.example.dev\n10\n{}\n\n{line}",
            STANDARD.encode([0u8; 31])
        ), // short root
        format!("log.example.dev\n10\nnot base64!\n\n{line}"),
        format!(
            "{}\n{line}",
            text.replacen("log.example.dev", "log\u{7}.example.dev", 1)
        ),
        format!("{text}\n\u{2014} log.example.dev AAAA\n"), // too short a signature
        "x".repeat(checkpoint::MAX_CHECKPOINT_BYTES + 1),
    ];
    for (i, note) in bad.iter().enumerate() {
        assert!(
            checkpoint::parse(note).is_err(),
            "malformed note {i} accepted: {note:?}"
        );
    }
}

/// Canonical JSON built independently: a sorted map serialized by serde_json.
fn jcs_payload(body: &[u8], integrated_time: i64, log_id: &[u8], log_index: i64) -> String {
    let mut m = std::collections::BTreeMap::new();
    m.insert("body", Value::String(STANDARD.encode(body)));
    m.insert("integratedTime", Value::from(integrated_time));
    m.insert("logID", Value::String(hex::encode(log_id)));
    m.insert("logIndex", Value::from(log_index));
    serde_json::to_string(&m).unwrap()
}

#[test]
fn the_set_payload_is_rfc8785_canonical_json() {
    let body = br#"{"apiVersion":"0.0.1","kind":"hashedrekord","spec":{}}"#;
    let log_id = sha256(b"log");
    let payload = set::canonical_payload(body, 1_682_468_469, &log_id, 7_390_977);
    assert_eq!(
        payload,
        jcs_payload(body, 1_682_468_469, &log_id, 7_390_977)
    );
    assert!(payload.starts_with("{\"body\":\"eyJhcGlWZXJzaW9uIjoi"));
    assert!(payload.ends_with(&format!(
        ",\"integratedTime\":1682468469,\"logID\":\"{}\",\"logIndex\":7390977}}",
        hex::encode(log_id)
    )));
    // Base64 padding and '/', '+' are emitted as-is (JCS escapes neither).
    let odd = [0xfbu8, 0xff, 0xfe, 0x3f];
    assert_eq!(
        set::canonical_payload(&odd, 0, &[], 0),
        jcs_payload(&odd, 0, &[], 0)
    );
}

#[test]
fn a_set_signed_in_the_test_verifies_and_every_field_is_bound() {
    let log = ec_log(5);
    let body = b"{\"kind\":\"hashedrekord\"}";
    let (time, index) = (1_700_000_000i64, 42i64);
    let sig = log.sign(set::canonical_payload(body, time, &log.log_id, index).as_bytes());
    set::verify(&sig, body, time, &log.log_id, index, &log.key).unwrap();

    assert!(
        set::verify(
            &sig,
            b"{\"kind\":\"dsse\"}",
            time,
            &log.log_id,
            index,
            &log.key
        )
        .is_err()
    );
    assert!(set::verify(&sig, body, time + 1, &log.log_id, index, &log.key).is_err());
    assert!(set::verify(&sig, body, time, &sha256(b"other log"), index, &log.key).is_err());
    assert!(set::verify(&sig, body, time, &log.log_id, index + 1, &log.key).is_err());
    assert!(set::verify(&sig, body, time, &log.log_id, index, &ec_log(6).key).is_err());
    let mut bad = sig.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert!(set::verify(&bad, body, time, &log.log_id, index, &log.key).is_err());
}

/// The SET of a real staging bundle verifies with the staging Rekor key from its trusted root.
#[test]
fn a_real_set_verifies() {
    let dir = std::path::Path::new("/work/shared/corpus/sigstore");
    let (Ok(bundle), Ok(root)) = (
        std::fs::read(dir.join("bundles/v0.3/bundle_v3.txt.sigstore")),
        std::fs::read(dir.join("trusted_root/staging.trusted_root.json")),
    ) else {
        eprintln!("corpus not found; skipping");
        return;
    };
    let bundle: Value = serde_json::from_slice(&bundle).unwrap();
    let root: Value = serde_json::from_slice(&root).unwrap();
    let entry = &bundle["verificationMaterial"]["tlogEntries"][0];
    let b64 = |v: &Value| STANDARD.decode(v.as_str().unwrap()).unwrap();
    let num = |v: &Value| v.as_str().unwrap().parse::<i64>().unwrap();
    let key = PublicKey::from_spki_der(&b64(&root["tlogs"][0]["publicKey"]["rawBytes"])).unwrap();
    let body = b64(&entry["canonicalizedBody"]);
    let log_id = b64(&entry["logId"]["keyId"]);
    let sig = b64(&entry["inclusionPromise"]["signedEntryTimestamp"]);
    set::verify(
        &sig,
        &body,
        num(&entry["integratedTime"]),
        &log_id,
        num(&entry["logIndex"]),
        &key,
    )
    .unwrap();
    assert!(
        set::verify(
            &sig,
            &body,
            num(&entry["integratedTime"]) - 1,
            &log_id,
            num(&entry["logIndex"]),
            &key
        )
        .is_err()
    );

    // And its checkpoint verifies with the same key.
    let cp = checkpoint::parse(
        entry["inclusionProof"]["checkpoint"]["envelope"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(cp.verify(&log_id, &key).unwrap(), "rekor.sigstage.dev");
}
