//! Verification: is a signature genuine, by a key or identity evault trusts, over what the
//! record says it is about?
//!
//! - [`keys`]: public keys (Ed25519, ECDSA P-256/P-384, RSA) and raw signature checks.
//! - [`dsse`]: DSSE envelopes (PAE) signed with those keys.
//! - [`blobsig`]: detached signatures over an artifact (cosign `sign-blob --key`).
//! - [`sigstore`]: Sigstore bundles v0.1–v0.3, offline, against a `trusted_root.json`.
//! - [`layout`]: classic in-toto layouts and links.
//!
//! Everything here is a pure function of bytes, keys, policies and a clock passed in; the trust
//! store and the records live in the index.

pub mod blobsig;
pub mod dsse;
pub mod keys;
pub mod layout;
pub mod sigstore;
