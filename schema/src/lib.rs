//! # evault-schema
//!
//! The evidence model and everything that can be decided by looking at bytes alone:
//! kinds and formats ([`model`]), content-based format detection ([`detect`]), the streaming
//! scanners detection runs on ([`json_probe`], [`xml_probe`]), evault's own documents and their
//! JSON Schemas ([`documents`]), and validation of the values that link evidence together
//! ([`validate`]).
//!
//! This crate does no IO of its own: it reads only from the readers it is handed and never
//! touches the file system, the network or a clock.

pub mod detect;
pub mod documents;
pub mod extract;
pub mod json_probe;
pub mod model;
pub mod validate;
pub mod xml_probe;

pub use model::{Format, Kind, UnknownName};
