//! Signature primitives: keys, DSSE envelopes and detached blob signatures.
//!
//! Keys are generated here, in the tests, and signed with the RustCrypto signers; the corpus
//! checks (skipped when the corpus is absent) run the same code on real files from cosign,
//! Cloud Build, Google BCID, witness and npm.

use std::path::PathBuf;
use std::sync::OnceLock;

use base64::Engine as _;
use evault_core::verify::blobsig::{self, BlobOutcome, BlobSigError};
use evault_core::verify::dsse::{self, DsseError, DsseOutcome, Envelope};
use evault_core::verify::keys::{KeyError, PublicKey, SignatureError};
use getrandom::SysRng;
use getrandom::rand_core::UnwrapErr;
use p256::elliptic_curve::Generate as _;
use sha2::{Digest as _, Sha256};
use signature::hazmat::{PrehashSigner as _, RandomizedPrehashSigner as _};
use signature::{RandomizedSigner as _, SignatureEncoding as _, Signer as _};
use spki::EncodePublicKey;

// ---------------------------------------------------------------------------------------------
// Test keys

fn rng() -> UnwrapErr<SysRng> {
    UnwrapErr(SysRng)
}

fn ed25519_key() -> ed25519_dalek::SigningKey {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).expect("system randomness");
    ed25519_dalek::SigningKey::from_bytes(&seed)
}

fn p256_key() -> p256::ecdsa::SigningKey {
    p256::ecdsa::SigningKey::try_generate_from_rng(&mut SysRng).expect("system randomness")
}

fn p384_key() -> p384::ecdsa::SigningKey {
    p384::ecdsa::SigningKey::try_generate_from_rng(&mut SysRng).expect("system randomness")
}

/// One RSA-2048 key per test binary: generation is slow in debug builds.
fn rsa_key() -> &'static rsa::RsaPrivateKey {
    static KEY: OnceLock<rsa::RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| rsa::RsaPrivateKey::new(&mut rng(), 2048).expect("RSA key generation"))
}

/// The public half as evault reads it: through SPKI PEM written by the crate itself.
fn public(spki: &impl EncodePublicKey) -> PublicKey {
    let pem = spki
        .to_public_key_pem(spki::der::pem::LineEnding::LF)
        .expect("encode PEM");
    PublicKey::from_pem(&pem).expect("evault reads the crate's PEM")
}

fn ed25519_public(k: &ed25519_dalek::SigningKey) -> PublicKey {
    public(&k.verifying_key())
}
fn p256_public(k: &p256::ecdsa::SigningKey) -> PublicKey {
    public(k.verifying_key())
}
fn p384_public(k: &p384::ecdsa::SigningKey) -> PublicKey {
    public(k.verifying_key())
}
fn rsa_public() -> PublicKey {
    public(&rsa_key().to_public_key())
}

fn rsa_pkcs1v15_sign(message: &[u8]) -> Vec<u8> {
    rsa::pkcs1v15::SigningKey::<Sha256>::new(rsa_key().clone())
        .sign(message)
        .to_vec()
}

fn rsa_pss_sign(message: &[u8], salt_len: usize) -> Vec<u8> {
    rsa::pss::SigningKey::<Sha256>::new_with_salt_len(rsa_key().clone(), salt_len)
        .sign_with_rng(&mut rng(), message)
        .to_vec()
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A DSSE envelope as JSON, signatures given as (keyid, signature bytes).
fn envelope_json(payload_type: &str, payload: &[u8], sigs: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let signatures: Vec<serde_json::Value> = sigs
        .iter()
        .map(|(keyid, sig)| serde_json::json!({"keyid": keyid, "sig": b64(sig)}))
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "payloadType": payload_type,
        "payload": b64(payload),
        "signatures": signatures,
    }))
    .expect("serialise")
}

const IN_TOTO: &str = "application/vnd.in-toto+json";
const STATEMENT: &[u8] = br#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"app","digest":{"sha256":"00"}}],"predicateType":"https://slsa.dev/provenance/v1","predicate":{}}"#;

// ---------------------------------------------------------------------------------------------
// Keys

#[test]
fn every_algorithm_round_trips_through_pem_with_a_stable_fingerprint() {
    let ed = ed25519_key();
    let p2 = p256_key();
    let p3 = p384_key();
    let cases: Vec<(PublicKey, Vec<u8>, &str)> = vec![
        (
            ed25519_public(&ed),
            ed.verifying_key().to_public_key_der().unwrap().into_vec(),
            "ed25519",
        ),
        (
            p256_public(&p2),
            p2.verifying_key().to_public_key_der().unwrap().into_vec(),
            "ecdsa-p256",
        ),
        (
            p384_public(&p3),
            p3.verifying_key().to_public_key_der().unwrap().into_vec(),
            "ecdsa-p384",
        ),
        (
            rsa_public(),
            rsa_key()
                .to_public_key()
                .to_public_key_der()
                .unwrap()
                .into_vec(),
            "rsa",
        ),
    ];
    for (key, crate_der, algorithm) in cases {
        assert_eq!(key.algorithm(), algorithm);
        // The hand-built canonical DER equals what the crates encode.
        assert_eq!(key.to_spki_der(), crate_der, "{algorithm}");
        assert_eq!(key.fingerprint(), hex::encode(sha256(&crate_der)));
        assert_eq!(key.fingerprint().len(), 64);
        let pem = key.to_pem();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{pem}");
        assert!(pem.lines().all(|l| l.len() <= 64));
        let again = PublicKey::from_pem(&pem).expect("reads its own PEM");
        assert_eq!(again, key);
        assert_eq!(again.fingerprint(), key.fingerprint());
        assert_eq!(PublicKey::from_spki_der(&crate_der).expect("DER"), key);
    }
}

#[test]
fn rsa_public_key_pkcs1_pem_is_the_same_key() {
    use rsa::pkcs1::EncodeRsaPublicKey as _;
    let pem = rsa_key()
        .to_public_key()
        .to_pkcs1_pem(spki::der::pem::LineEnding::CRLF)
        .expect("PKCS#1 PEM");
    assert!(pem.starts_with("-----BEGIN RSA PUBLIC KEY-----"));
    let key = PublicKey::from_pem(&pem).expect("reads PKCS#1");
    assert_eq!(key, rsa_public());
    assert_eq!(key.fingerprint(), rsa_public().fingerprint());
}

#[test]
fn ec_public_key_label_and_compressed_points_give_the_same_fingerprint() {
    let k = p256_key();
    let der = k.verifying_key().to_public_key_der().unwrap();
    let body = b64(der.as_bytes());
    let ec_label = format!("-----BEGIN EC PUBLIC KEY-----\n{body}\n-----END EC PUBLIC KEY-----\n");
    assert_eq!(PublicKey::from_pem(&ec_label).unwrap(), p256_public(&k));
    // A bare compressed SEC1 point under the same label.
    let point = k.verifying_key().to_sec1_point(true);
    let raw = format!(
        "-----BEGIN EC PUBLIC KEY-----\n{}\n-----END EC PUBLIC KEY-----\n",
        b64(point.as_bytes())
    );
    let from_point = PublicKey::from_pem(&raw).unwrap();
    assert_eq!(from_point.fingerprint(), p256_public(&k).fingerprint());
}

#[test]
fn pem_with_surrounding_text_and_ec_parameters_is_read() {
    let k = p384_key();
    let pem = k
        .verifying_key()
        .to_public_key_pem(spki::der::pem::LineEnding::CRLF)
        .unwrap();
    let text = format!(
        "cosign public key for release\r\n-----BEGIN EC PARAMETERS-----\r\nBgUrgQQAIg==\r\n-----END EC PARAMETERS-----\r\n{pem}trailing words\r\n"
    );
    assert_eq!(PublicKey::from_pem(&text).unwrap(), p384_public(&k));
}

#[test]
fn private_keys_certificates_and_weak_keys_are_refused_with_a_reason() {
    use pkcs8::EncodePrivateKey as _;
    let private = p256_key()
        .to_pkcs8_pem(spki::der::pem::LineEnding::LF)
        .unwrap();
    let err = PublicKey::from_pem(&private).unwrap_err();
    assert!(matches!(err, KeyError::PrivateKey(_)), "{err}");
    assert!(err.to_string().contains("public key instead"));

    // An encrypted legacy private key is refused as a private key, its body never decoded.
    let encrypted = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n";
    assert!(matches!(
        PublicKey::from_pem(encrypted),
        Err(KeyError::PrivateKey(l)) if l == "RSA PRIVATE KEY"
    ));
    assert!(matches!(
        PublicKey::from_pem("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI me@host\n"),
        Err(KeyError::OpenSsh)
    ));

    let cert = "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n";
    assert!(matches!(
        PublicKey::from_pem(cert),
        Err(KeyError::Certificate)
    ));

    // RSA-1024 (a valid modulus shape: 1024 bits, odd) is refused.
    let mut n = vec![0xffu8; 128];
    n[127] = 0xfb;
    let small = rsa::RsaPublicKey::new(
        rsa::BoxedUint::from_be_slice(&n, 1024).unwrap(),
        rsa::BoxedUint::from(65537u32),
    )
    .unwrap();
    let der = small.to_public_key_der().unwrap();
    let err = PublicKey::from_spki_der(der.as_bytes()).unwrap_err();
    assert!(matches!(err, KeyError::RsaTooSmall { bits: 1024 }), "{err}");

    // P-521 is read as SPKI but refused by its curve, by name.
    let p521_spki = hex::decode(format!(
        "30819b301006072a8648ce3d020106052b810400230381860004{}",
        "11".repeat(132)
    ))
    .unwrap();
    let err = PublicKey::from_spki_der(&p521_spki).unwrap_err();
    assert!(
        matches!(&err, KeyError::UnsupportedCurve(c) if c.contains("P-521")),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Raw signatures

#[test]
fn ed25519_good_tampered_wrong_key_and_wrong_length() {
    let k = ed25519_key();
    let key = ed25519_public(&k);
    let sig = k.sign(b"release 1.2.3").to_bytes();
    key.verify(b"release 1.2.3", &sig).expect("good signature");
    assert_eq!(
        key.verify(b"release 1.2.4", &sig),
        Err(SignatureError::Invalid {
            algorithm: "ed25519"
        })
    );
    assert!(
        ed25519_public(&ed25519_key())
            .verify(b"release 1.2.3", &sig)
            .is_err()
    );
    assert!(matches!(
        key.verify(b"release 1.2.3", &sig[..63]),
        Err(SignatureError::Malformed { .. })
    ));
    // Ed25519 cannot be checked from a digest.
    let err = key
        .verify_sha256_prehash(&sha256(b"release 1.2.3"), &sig)
        .unwrap_err();
    assert!(
        matches!(err, SignatureError::PrehashUnsupported { .. }),
        "{err}"
    );
}

#[test]
fn ecdsa_p256_accepts_der_and_fixed_size_and_rejects_others() {
    let k = p256_key();
    let key = p256_public(&k);
    let sig: p256::ecdsa::Signature = k.sign(b"payload");
    let der = sig.to_der().to_bytes().to_vec();
    let fixed = sig.to_bytes().to_vec();
    assert_eq!(fixed.len(), 64);
    key.verify(b"payload", &der).expect("DER");
    key.verify(b"payload", &fixed).expect("r||s");
    assert!(key.verify(b"payloaD", &der).is_err());
    assert!(key.verify(b"payloaD", &fixed).is_err());
    assert!(p256_public(&p256_key()).verify(b"payload", &der).is_err());
    // A 96-byte r||s (P-384 size) on a P-256 key: a failure, not a panic.
    let p384_sig: p384::ecdsa::Signature = p384_key().sign(b"payload");
    let err = key.verify(b"payload", &p384_sig.to_bytes()).unwrap_err();
    assert!(matches!(err, SignatureError::Malformed { .. }), "{err}");
    // DER with a trailing byte is not DER.
    let mut long = der.clone();
    long.push(0);
    assert!(key.verify(b"payload", &long).is_err());
    // All-zero r||s (r = s = 0) is out of range.
    assert!(key.verify(b"payload", &[0u8; 64]).is_err());
}

#[test]
fn ecdsa_accepts_both_s_values_as_go_and_openssl_do() {
    let k = p256_key();
    let key = p256_public(&k);
    let sig: p256::ecdsa::Signature = k.sign(b"payload");
    let (r, s) = sig.split_scalars();
    let other_s = p256::ecdsa::Signature::from_scalars(r.to_bytes(), (-*s).to_bytes()).unwrap();
    key.verify(b"payload", &sig.to_bytes()).expect("as signed");
    key.verify(b"payload", &other_s.to_bytes()).expect("n - s");
    key.verify(b"payload", &other_s.to_der().to_bytes())
        .expect("n - s, DER");
}

#[test]
fn ecdsa_p384_uses_sha384_and_refuses_a_sha256_digest() {
    let k = p384_key();
    let key = p384_public(&k);
    let sig: p384::ecdsa::Signature = k.sign(b"payload");
    key.verify(b"payload", &sig.to_der().to_bytes())
        .expect("DER");
    key.verify(b"payload", &sig.to_bytes()).expect("r||s");
    assert!(key.verify(b"other", &sig.to_bytes()).is_err());
    // A P-384 signature made over SHA-256 of the message does not pass as a message signature.
    let over_sha256: p384::ecdsa::Signature = k.sign_prehash(&sha256(b"payload")).unwrap();
    assert!(key.verify(b"payload", &over_sha256.to_bytes()).is_err());
    let err = key
        .verify_sha256_prehash(&sha256(b"payload"), &over_sha256.to_bytes())
        .unwrap_err();
    assert!(
        matches!(err, SignatureError::PrehashUnsupported { .. }),
        "{err}"
    );
    // A 64-byte signature on a P-384 key is malformed, not a panic.
    assert!(matches!(
        key.verify(b"payload", &[1u8; 64]),
        Err(SignatureError::Malformed { .. })
    ));
}

#[test]
fn rsa_pkcs1v15_and_pss_with_either_salt_length_verify() {
    let key = rsa_public();
    let message = b"rsa signed artifact";
    for (what, sig) in [
        ("PKCS#1 v1.5", rsa_pkcs1v15_sign(message)),
        ("PSS salt=32", rsa_pss_sign(message, 32)),
        ("PSS salt=max", rsa_pss_sign(message, 256 - 32 - 2)),
        ("PSS salt=0", rsa_pss_sign(message, 0)),
    ] {
        key.verify(message, &sig)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(key.verify(b"tampered", &sig).is_err(), "{what}");
        key.verify_sha256_prehash(&sha256(message), &sig)
            .unwrap_or_else(|e| panic!("{what} prehash: {e}"));
        let mut flipped = sig.clone();
        flipped[100] ^= 1;
        assert!(key.verify(message, &flipped).is_err(), "{what}");
    }
    let err = key.verify(message, &[1u8; 255]).unwrap_err();
    assert!(err.to_string().contains("256-byte"), "{err}");
}

#[test]
fn rsa_signatures_over_a_prehash_verify_from_the_digest() {
    let key = rsa_public();
    let digest = sha256(b"big artifact");
    let pkcs1 = rsa::pkcs1v15::SigningKey::<Sha256>::new(rsa_key().clone())
        .sign_prehash(&digest)
        .unwrap()
        .to_vec();
    let pss = rsa::pss::SigningKey::<Sha256>::new(rsa_key().clone())
        .sign_prehash_with_rng(&mut SysRng, &digest)
        .unwrap()
        .to_vec();
    let keys = [("release-rsa", &key)];
    for sig in [pkcs1, pss] {
        assert_eq!(
            blobsig::verify_digest(&sig, &digest, &keys),
            BlobOutcome::Verified {
                key: "release-rsa".into()
            }
        );
        assert_eq!(
            blobsig::verify_bytes(&sig, b"big artifact", &keys),
            BlobOutcome::Verified {
                key: "release-rsa".into()
            }
        );
        assert!(matches!(
            blobsig::verify_digest(&sig, &sha256(b"other"), &keys),
            BlobOutcome::NotVerified { .. }
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// Detached blob signatures (cosign sign-blob --key)

#[test]
fn cosign_style_p256_prehash_signature_verifies_from_the_digest() {
    let k = p256_key();
    let key = p256_public(&k);
    let blob = b"hello, artifact\n".repeat(1000);
    let digest = sha256(&blob);
    let sig: p256::ecdsa::Signature = k.sign_prehash(&digest).expect("prehash sign");
    // cosign writes base64 of the DER signature.
    let file = format!("{}\n", blobsig::to_cosign_text(sig.to_der().as_bytes()));
    let parsed = blobsig::parse_signature(file.as_bytes()).expect("base64");
    assert_eq!(parsed, sig.to_der().as_bytes());
    let wrong = p256_public(&p256_key());
    let keys = [("other", &wrong), ("cosign", &key)];
    assert_eq!(
        blobsig::verify_digest(&parsed, &digest, &keys),
        BlobOutcome::Verified {
            key: "cosign".into()
        }
    );
    assert_eq!(
        blobsig::verify_bytes(&parsed, &blob, &keys),
        BlobOutcome::Verified {
            key: "cosign".into()
        }
    );
    let BlobOutcome::NotVerified { attempts } =
        blobsig::verify_digest(&parsed, &sha256(b"tampered"), &keys)
    else {
        panic!("tampered digest verified");
    };
    assert_eq!(attempts.len(), 2);
    assert!(
        attempts[1].starts_with("key cosign (ecdsa-p256): "),
        "{attempts:?}"
    );
    assert!(matches!(
        blobsig::verify_digest(&parsed, &digest, &[]),
        BlobOutcome::NotVerified { .. }
    ));
}

#[test]
fn ed25519_blob_signature_needs_the_bytes() {
    let k = ed25519_key();
    let key = ed25519_public(&k);
    let sig = k.sign(b"artifact").to_bytes();
    let keys = [("ed", &key)];
    assert_eq!(
        blobsig::verify_bytes(&sig, b"artifact", &keys),
        BlobOutcome::Verified { key: "ed".into() }
    );
    let BlobOutcome::NotVerified { attempts } =
        blobsig::verify_digest(&sig, &sha256(b"artifact"), &keys)
    else {
        panic!("Ed25519 verified from a digest");
    };
    assert!(
        attempts[0].contains("artifact's bytes are needed"),
        "{attempts:?}"
    );
}

#[test]
fn signature_files_in_base64_and_raw_der_parse_to_the_same_bytes() {
    let k = p256_key();
    let sig: p256::ecdsa::Signature = k.sign(b"x");
    let der = sig.to_der().as_bytes().to_vec();
    assert_eq!(blobsig::parse_signature(&der).unwrap(), der);
    assert_eq!(blobsig::parse_signature(b64(&der).as_bytes()).unwrap(), der);
    let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&der);
    assert_eq!(blobsig::parse_signature(url_safe.as_bytes()).unwrap(), der);
    // Wrapped at 64 columns with CRLF, as some tools write it.
    let wrapped: String = b64(&der)
        .as_bytes()
        .chunks(64)
        .map(|c| format!("{}\r\n", String::from_utf8_lossy(c)))
        .collect();
    assert_eq!(blobsig::parse_signature(wrapped.as_bytes()).unwrap(), der);
    assert!(matches!(
        blobsig::parse_signature(b""),
        Err(BlobSigError::Empty)
    ));
    // Bytes outside the base64 alphabet are taken as a raw signature.
    assert_eq!(
        blobsig::parse_signature(b"not base64!").unwrap(),
        b"not base64!".to_vec()
    );
}

// ---------------------------------------------------------------------------------------------
// DSSE

#[test]
fn dsse_envelope_signed_over_pae_verifies_and_names_key_and_signature() {
    let k = ed25519_key();
    let key = ed25519_public(&k);
    let sig = k.sign(&dsse::pae(IN_TOTO, STATEMENT)).to_bytes().to_vec();
    let envelope = dsse::parse(&envelope_json(IN_TOTO, STATEMENT, &[("", sig)])).unwrap();
    assert_eq!(envelope.payload, STATEMENT);
    assert_eq!(envelope.signatures[0].keyid, None);
    assert_eq!(
        dsse::verify(&envelope, &[("builder", &key)]),
        DsseOutcome::Verified {
            key: "builder".into(),
            signature: 0
        }
    );
}

#[test]
fn dsse_tampered_payload_or_type_does_not_verify() {
    let k = p256_key();
    let key = p256_public(&k);
    let sig: p256::ecdsa::Signature = k.sign(&dsse::pae(IN_TOTO, STATEMENT));
    let sig = sig.to_der().to_bytes().to_vec();
    let mut tampered = STATEMENT.to_vec();
    tampered[10] ^= 1;
    for (ty, payload) in [(IN_TOTO, &tampered[..]), ("application/json", STATEMENT)] {
        let envelope = dsse::parse(&envelope_json(ty, payload, &[("", sig.clone())])).unwrap();
        let DsseOutcome::NotVerified { attempts } = dsse::verify(&envelope, &[("ci", &key)]) else {
            panic!("tampered envelope verified");
        };
        assert_eq!(attempts.len(), 1);
        assert!(
            attempts[0].contains("signature 0 over PAE with key ci (ecdsa-p256)"),
            "{attempts:?}"
        );
    }
    // The payload signed directly (not PAE) is not a DSSE signature.
    let raw: p256::ecdsa::Signature = k.sign(STATEMENT);
    let envelope = dsse::parse(&envelope_json(
        IN_TOTO,
        STATEMENT,
        &[("", raw.to_der().to_bytes().to_vec())],
    ))
    .unwrap();
    assert!(matches!(
        dsse::verify(&envelope, &[("ci", &key)]),
        DsseOutcome::NotVerified { .. }
    ));
    assert!(matches!(
        dsse::verify_raw_payload(&envelope, &[("ci", &key)]),
        DsseOutcome::Verified { .. }
    ));
}

#[test]
fn dsse_wrong_key_reports_every_attempt() {
    let signer = ed25519_key();
    let sig = signer
        .sign(&dsse::pae(IN_TOTO, STATEMENT))
        .to_bytes()
        .to_vec();
    let envelope = dsse::parse(&envelope_json(IN_TOTO, STATEMENT, &[("k1", sig)])).unwrap();
    let a = ed25519_public(&ed25519_key());
    let b = p256_public(&p256_key());
    let c = rsa_public();
    let DsseOutcome::NotVerified { attempts } =
        dsse::verify(&envelope, &[("a", &a), ("b", &b), ("c", &c)])
    else {
        panic!("verified with the wrong keys");
    };
    assert_eq!(attempts.len(), 3, "{attempts:?}");
    assert!(attempts[0].starts_with("signature 0 (keyid \"k1\") over PAE with key a (ed25519)"));
    // 64 Ed25519 bytes read as a P-256 r||s: well-formed, just not valid.
    assert!(attempts[1].contains("key b (ecdsa-p256): "), "{attempts:?}");
    assert!(attempts[2].contains("key c (rsa)"));
    assert!(matches!(
        dsse::verify(&envelope, &[]),
        DsseOutcome::NotVerified { attempts } if attempts.len() == 1
    ));
}

#[test]
fn dsse_keyid_orders_keys_but_never_decides() {
    let right = ed25519_key();
    let right_pub = ed25519_public(&right);
    let other = ed25519_public(&ed25519_key());
    let pae = dsse::pae(IN_TOTO, STATEMENT);
    let sig = right.sign(&pae).to_bytes().to_vec();

    // A keyid that names nobody: the right key is still tried.
    let e = dsse::parse(&envelope_json(
        IN_TOTO,
        STATEMENT,
        &[("somebody-else", sig.clone())],
    ))
    .unwrap();
    assert_eq!(
        dsse::verify(&e, &[("other", &other), ("right", &right_pub)]),
        DsseOutcome::Verified {
            key: "right".into(),
            signature: 0
        }
    );

    // A keyid that names the wrong key (by fingerprint): that key is tried first, fails, and
    // the right key still verifies.
    let e = dsse::parse(&envelope_json(
        IN_TOTO,
        STATEMENT,
        &[(&other.fingerprint(), sig.clone())],
    ))
    .unwrap();
    assert_eq!(
        dsse::verify(&e, &[("right", &right_pub), ("other", &other)]),
        DsseOutcome::Verified {
            key: "right".into(),
            signature: 0
        }
    );

    // A keyid that names the only trusted key does not make a bad signature verify.
    let mut bad = sig.clone();
    bad[5] ^= 0x40;
    let e = dsse::parse(&envelope_json(IN_TOTO, STATEMENT, &[("right", bad)])).unwrap();
    assert!(matches!(
        dsse::verify(&e, &[("right", &right_pub)]),
        DsseOutcome::NotVerified { .. }
    ));

    // When two keys could verify (the same key trusted twice), the keyid's key is reported.
    let e = dsse::parse(&envelope_json(IN_TOTO, STATEMENT, &[("second", sig)])).unwrap();
    assert_eq!(
        dsse::verify(&e, &[("first", &right_pub), ("second", &right_pub)]),
        DsseOutcome::Verified {
            key: "second".into(),
            signature: 0
        }
    );
}

#[test]
fn dsse_without_signatures_is_reported_as_such() {
    let key = ed25519_public(&ed25519_key());
    let e = dsse::parse(&envelope_json(IN_TOTO, STATEMENT, &[])).unwrap();
    assert_eq!(dsse::verify(&e, &[("k", &key)]), DsseOutcome::NoSignatures);
    let no_field = format!(
        r#"{{"payloadType":"{IN_TOTO}","payload":"{}"}}"#,
        b64(STATEMENT)
    );
    let e = dsse::parse(no_field.as_bytes()).unwrap();
    assert_eq!(dsse::verify(&e, &[("k", &key)]), DsseOutcome::NoSignatures);
}

#[test]
fn dsse_second_of_two_signatures_verifies() {
    let stranger = p384_key();
    let trusted = p384_key();
    let pae = dsse::pae(IN_TOTO, STATEMENT);
    let s0: p384::ecdsa::Signature = stranger.sign(&pae);
    let s1: p384::ecdsa::Signature = trusted.sign(&pae);
    let e = dsse::parse(&envelope_json(
        IN_TOTO,
        STATEMENT,
        &[
            ("", s0.to_bytes().to_vec()),
            ("", s1.to_der().to_bytes().to_vec()),
        ],
    ))
    .unwrap();
    let key = p384_public(&trusted);
    assert_eq!(
        dsse::verify(&e, &[("release", &key)]),
        DsseOutcome::Verified {
            key: "release".into(),
            signature: 1
        }
    );
}

#[test]
fn dsse_with_rsa_pss_and_pkcs1_signatures() {
    let key = rsa_public();
    let pae = dsse::pae(IN_TOTO, STATEMENT);
    for sig in [rsa_pkcs1v15_sign(&pae), rsa_pss_sign(&pae, 32)] {
        let e = dsse::parse(&envelope_json(IN_TOTO, STATEMENT, &[("", sig)])).unwrap();
        assert!(matches!(
            dsse::verify(&e, &[("kms", &key)]),
            DsseOutcome::Verified { signature: 0, .. }
        ));
    }
}

#[test]
fn dsse_envelope_with_cert_and_json_lines() {
    let k = ed25519_key();
    let sig = k.sign(&dsse::pae(IN_TOTO, STATEMENT)).to_bytes();
    let line = serde_json::json!({
        "payloadType": IN_TOTO,
        "payload": b64(STATEMENT),
        "signatures": [{"keyid": "", "sig": b64(&sig), "cert": "-----BEGIN CERTIFICATE-----\n..."}],
    })
    .to_string();
    let jsonl = format!("{line}\n{line}\n");
    let e: Envelope = dsse::parse(jsonl.as_bytes()).unwrap();
    assert!(
        e.signatures[0]
            .cert
            .as_deref()
            .unwrap()
            .starts_with("-----BEGIN")
    );
    assert_eq!(dsse::parse_all(jsonl.as_bytes()).unwrap().len(), 2);
    let key = ed25519_public(&k);
    assert!(matches!(
        dsse::verify(&e, &[("k", &key)]),
        DsseOutcome::Verified { .. }
    ));
}

#[test]
fn dsse_unreadable_envelopes_say_why() {
    let err = dsse::parse(
        br#"{"payloadType":"t","payload":"AA==","signatures":[{"sig":"invalid encoding"}]}"#,
    )
    .unwrap_err();
    assert!(
        matches!(&err, DsseError::Base64 { field, .. } if field == "signatures[0].sig"),
        "{err}"
    );
    let many: Vec<(&str, Vec<u8>)> = (0..40).map(|_| ("", vec![1u8; 64])).collect();
    assert!(matches!(
        dsse::parse(&envelope_json(IN_TOTO, STATEMENT, &many)),
        Err(DsseError::TooManySignatures { count: 40 })
    ));
    assert!(matches!(dsse::parse(b"{"), Err(DsseError::Json(_))));
    assert!(matches!(
        dsse::parse(br#"{"_type":"https://in-toto.io/Statement/v1"}"#),
        Err(DsseError::NotAnEnvelope(m)) if m.contains("unsigned in-toto Statement")
    ));
}

// ---------------------------------------------------------------------------------------------
// Garbage in, no panic out

#[test]
fn garbage_inputs_never_panic() {
    let keys = [
        ed25519_public(&ed25519_key()),
        p256_public(&p256_key()),
        p384_public(&p384_key()),
        rsa_public(),
    ];
    let mut inputs: Vec<Vec<u8>> = vec![
        vec![],
        vec![0],
        vec![0x30],
        vec![0x30, 0x80],
        vec![0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
        vec![0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00],
        vec![0x30, 0x08, 0x02, 0x02, 0x00, 0x01, 0x02, 0x02, 0x00, 0x01],
        vec![0xff; 64],
        vec![0xff; 96],
        vec![0; 96],
        vec![0xff; 256],
        vec![0; 256],
        vec![0xff; 5000],
        b"-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----".to_vec(),
        b"-----BEGIN PUBLIC KEY-----\n\xff\xfe\n-----END PUBLIC KEY-----".to_vec(),
        b"-----BEGIN -----END ".to_vec(),
        b"-----BEGIN PUBLIC KEY".to_vec(),
        b"{\"payloadType\":1}".to_vec(),
        b"{\"payloadType\":\"x\",\"payload\":\"\",\"signatures\":[{\"sig\":null}]}".to_vec(),
        b"{\"payloadType\":\"x\",\"payload\":\"\",\"signatures\":{}}".to_vec(),
        b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[".to_vec(),
        "é€😀".as_bytes().to_vec(),
    ];
    // Every truncation of real key DER and of a real DER signature.
    for key in &keys {
        let der = key.to_spki_der();
        for n in 0..der.len() {
            inputs.push(der[..n].to_vec());
        }
    }
    let sig: p256::ecdsa::Signature = p256_key().sign(b"m");
    let der_sig = sig.to_der().to_bytes().to_vec();
    for n in 0..der_sig.len() {
        inputs.push(der_sig[..n].to_vec());
    }
    for _ in 0..200 {
        let mut len = [0u8; 2];
        getrandom::fill(&mut len).unwrap();
        let mut buf = vec![0u8; usize::from(u16::from_le_bytes(len)) % 700];
        getrandom::fill(&mut buf).unwrap();
        inputs.push(buf);
    }
    let named: Vec<(&str, &PublicKey)> = keys.iter().map(|k| (k.algorithm(), k)).collect();
    for input in &inputs {
        let _ = PublicKey::from_spki_der(input);
        let _ = PublicKey::from_pkcs1_der(input);
        let _ = PublicKey::from_pem(&String::from_utf8_lossy(input));
        let _ = dsse::parse(input);
        let _ = dsse::parse_all(input);
        let _ = dsse::parse_gcb_export(input);
        let _ = blobsig::parse_signature(input);
        for key in &keys {
            assert!(key.verify(b"m", input).is_err());
            assert!(key.verify_sha256_prehash(&[7; 32], input).is_err());
        }
        assert!(matches!(
            blobsig::verify_bytes(input, b"m", &named),
            BlobOutcome::NotVerified { .. }
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// Corpus: real files, expected outcomes from the corpus MANIFESTs

fn corpus() -> Option<PathBuf> {
    let dir = std::env::var_os("EVAULT_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"));
    if dir.is_dir() {
        Some(dir)
    } else {
        assert!(
            std::env::var("EVAULT_REQUIRE_CORPUS").as_deref() != Ok("1"),
            "EVAULT_REQUIRE_CORPUS=1 but there is no corpus at {}",
            dir.display()
        );
        eprintln!("corpus not found at {}; skipping", dir.display());
        None
    }
}

fn read(dir: &std::path::Path, rel: &str) -> Vec<u8> {
    std::fs::read(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn corpus_key(dir: &std::path::Path, rel: &str) -> PublicKey {
    let key = PublicKey::from_pem(&String::from_utf8(read(dir, rel)).unwrap())
        .unwrap_or_else(|e| panic!("{rel}: {e}"));
    // The canonical DER is the file's own DER: fingerprints match `openssl pkey -outform DER`.
    let text = String::from_utf8(read(dir, rel)).unwrap();
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<String>();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    assert_eq!(
        key.to_spki_der(),
        der,
        "{rel}: canonical DER differs from the file's"
    );
    key
}

#[test]
fn corpus_cosign_sign_blob_keypair_signature() {
    let Some(dir) = corpus() else { return };
    let key = corpus_key(&dir, "sigstore/keypair/rekor-x509-testdata-ec.pub");
    let wrong = corpus_key(&dir, "sigstore/keypair/chainloop-cosign.pub");
    let blob = read(&dir, "sigstore/keypair/hello_world.txt");
    let sig =
        blobsig::parse_signature(&read(&dir, "sigstore/keypair/hello_world.txt.sig")).unwrap();
    assert_eq!(sig.len(), 72, "raw DER kept as is");
    let keys = [("rekor-testdata", &key)];
    let expected = BlobOutcome::Verified {
        key: "rekor-testdata".into(),
    };
    assert_eq!(blobsig::verify_bytes(&sig, &blob, &keys), expected);
    assert_eq!(
        blobsig::verify_digest(&sig, &sha256(&blob), &keys),
        expected
    );
    // The same signature base64-encoded, as cosign writes it.
    let as_cosign = blobsig::parse_signature(b64(&sig).as_bytes()).unwrap();
    assert_eq!(
        blobsig::verify_digest(&as_cosign, &sha256(&blob), &keys),
        expected
    );
    assert!(matches!(
        blobsig::verify_digest(&sig, &sha256(&blob), &[("chainloop", &wrong)]),
        BlobOutcome::NotVerified { .. }
    ));
    assert!(matches!(
        blobsig::verify_digest(&sig, &sha256(b"Hello, World?"), &keys),
        BlobOutcome::NotVerified { .. }
    ));
}

#[test]
fn corpus_chainloop_cosign_attestation_envelope() {
    let Some(dir) = corpus() else { return };
    let key = corpus_key(&dir, "sigstore/keypair/chainloop-cosign.pub");
    let wrong = corpus_key(&dir, "sigstore/keypair/rekor-x509-testdata-ec.pub");
    let e = dsse::parse(&read(
        &dir,
        "sigstore/keypair/chainloop-cosign-attestation.dsse.json",
    ))
    .unwrap();
    assert_eq!(e.payload_type, IN_TOTO);
    assert_eq!(e.signatures.len(), 1);
    assert_eq!(e.signatures[0].keyid, None, "cosign writes an empty keyid");
    assert_eq!(
        dsse::verify(&e, &[("chainloop", &key)]),
        DsseOutcome::Verified {
            key: "chainloop".into(),
            signature: 0
        }
    );
    assert!(matches!(
        dsse::verify(&e, &[("rekor", &wrong)]),
        DsseOutcome::NotVerified { .. }
    ));
}

#[test]
fn corpus_cloud_build_provenance_signed_over_the_raw_payload() {
    let Some(dir) = corpus() else { return };
    let key = corpus_key(&dir, "provenance/keys/gcb-global.pub.pem");
    let wrong = corpus_key(&dir, "sigstore/keypair/chainloop-cosign.pub");
    let bytes = read(&dir, "provenance/gcb-container-github.slsa-v0.1.dsse.json");
    // The export is not itself an envelope, and says so.
    let err = dsse::parse(&bytes).unwrap_err();
    assert!(err.to_string().contains("Cloud Build"), "{err}");
    let envelopes = dsse::parse_gcb_export(&bytes).unwrap();
    assert_eq!(envelopes.len(), 1);
    let e = &envelopes[0];
    assert!(
        e.signatures[0]
            .keyid
            .as_deref()
            .unwrap()
            .contains("builtByGCB")
    );
    // Not over PAE (MANIFEST: legacy GCB signing) ...
    assert!(matches!(
        dsse::verify(e, &[("gcb", &key)]),
        DsseOutcome::NotVerified { .. }
    ));
    // ... but over the decoded payload bytes.
    assert_eq!(
        dsse::verify_raw_payload(e, &[("gcb", &key)]),
        DsseOutcome::Verified {
            key: "gcb".into(),
            signature: 0
        }
    );
    assert!(matches!(
        dsse::verify_raw_payload(e, &[("wrong", &wrong)]),
        DsseOutcome::NotVerified { .. }
    ));

    // The corrupted-signature variant: its signature is not base64, so it never verifies.
    let bad = read(
        &dir,
        "provenance/gcb-container-invalid-signature-encoding.slsa-v0.1.dsse.json",
    );
    let err = dsse::parse_gcb_export(&bad).unwrap_err();
    assert!(
        matches!(&err, DsseError::Base64 { field, .. } if field == "signatures[0].sig"),
        "{err}"
    );
}

#[test]
fn corpus_google_bcid_vsa_with_p1363_signature() {
    let Some(dir) = corpus() else { return };
    let key = corpus_key(
        &dir,
        "intoto/attestations/google-bcid-vsa_signing_public_key.pem",
    );
    let wrong = corpus_key(&dir, "provenance/keys/gcb-global.pub.pem");
    let e = dsse::parse(&read(
        &dir,
        "intoto/attestations/google-bcid-vsa-v1.dsse.jsonl",
    ))
    .unwrap();
    assert_eq!(e.signatures[0].sig.len(), 64, "IEEE P1363 r||s");
    assert_eq!(
        e.signatures[0].keyid.as_deref(),
        Some("keystore://76574:prod:vsa_signing_public_key")
    );
    assert_eq!(
        dsse::verify(&e, &[("bcid-vsa", &key)]),
        DsseOutcome::Verified {
            key: "bcid-vsa".into(),
            signature: 0
        }
    );
    assert!(matches!(
        dsse::verify(&e, &[("gcb", &wrong)]),
        DsseOutcome::NotVerified { .. }
    ));
}

#[test]
fn corpus_witness_attestation_collection_ed25519() {
    let Some(dir) = corpus() else { return };
    let key = corpus_key(&dir, "intoto/attestations/witness-testpub.pem");
    let wrong = corpus_key(&dir, "intoto/layout-demo/keys/alice.pub");
    let e = dsse::parse(&read(
        &dir,
        "intoto/attestations/witness-build.attestation-collection.dsse.json",
    ))
    .unwrap();
    assert_eq!(key.algorithm(), "ed25519");
    assert_eq!(
        dsse::verify(&e, &[("alice", &wrong), ("witness", &key)]),
        DsseOutcome::Verified {
            key: "witness".into(),
            signature: 0
        }
    );
    assert!(matches!(
        dsse::verify(&e, &[("alice", &wrong)]),
        DsseOutcome::NotVerified { .. }
    ));
}

#[test]
fn corpus_npm_publish_attestation_envelope() {
    let Some(dir) = corpus() else { return };
    let key = corpus_key(&dir, "sigstore/keypair/npm-registry-publish_key.pub");
    let wrong = corpus_key(&dir, "sigstore/keypair/chainloop-cosign.pub");
    let bundle: serde_json::Value = serde_json::from_slice(&read(
        &dir,
        "sigstore/keypair/npm-publish-attestation.bundle-v0.1.json",
    ))
    .unwrap();
    let envelope = serde_json::to_vec(&bundle["dsseEnvelope"]).unwrap();
    let e = dsse::parse(&envelope).unwrap();
    assert_eq!(
        dsse::verify(&e, &[("npm", &key)]),
        DsseOutcome::Verified {
            key: "npm".into(),
            signature: 0
        }
    );
    assert!(matches!(
        dsse::verify(&e, &[("chainloop", &wrong)]),
        DsseOutcome::NotVerified { .. }
    ));
}
