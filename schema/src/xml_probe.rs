//! A streaming, bounded-memory XML scanner: checks well-formedness and records the root element,
//! its namespace and its direct children, which is all format detection needs.
//!
//! API CONTRACT (implementation pending).

use std::collections::BTreeSet;
use std::io::BufRead;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XmlFacts {
    /// Local name of the root element (`bom`, `testsuites`).
    pub root: String,
    /// Namespace URI of the root element, if any (resolved from its prefix or the default `xmlns`).
    pub namespace: Option<String>,
    /// Attributes of the root element as (qualified name, unescaped value); at most 64, values cut
    /// to 1 KiB.
    pub root_attributes: Vec<(String, String)>,
    /// Local names of the root's direct child elements, at most 256 distinct.
    pub children: BTreeSet<String>,
    /// Number of elements in the whole document.
    pub elements: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid XML at byte {position}: {message}")]
pub struct XmlSyntaxError {
    pub position: u64,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum XmlProbeError {
    #[error(transparent)]
    Syntax(#[from] XmlSyntaxError),
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Scans the whole input once; errors unless it is one well-formed XML document.
pub fn probe_xml<R: BufRead>(_reader: R) -> Result<XmlFacts, XmlProbeError> {
    unimplemented!("xml_probe is being written")
}
