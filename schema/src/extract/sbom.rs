//! The components an SBOM lists: CycloneDX JSON and XML (spec versions 1.2 to 1.6) and SPDX JSON
//! and tag-value (2.2, 2.3).
//!
//! SBOMs are the biggest evidence evault sees (a container image easily lists tens of thousands of
//! packages), so every reader here streams:
//!
//! - JSON goes through `serde_json`'s streaming deserializer with hand-written visitors. Only the
//!   `components` (CycloneDX) or `packages` (SPDX) array is descended into, one element at a time,
//!   and everything else (dependency graphs, `files`, relationships, embedded license texts) is
//!   stepped over with [`IgnoredAny`] without being built. One element is materialised at a time.
//! - XML goes through `quick-xml` events, each capped at [`MAX_EVENT`] bytes, with a stack of what
//!   the open elements mean.
//! - Tag-value is read line by line, each line capped at [`MAX_LINE`] bytes.
//!
//! What is kept is capped by [`Extracted::push`]; what stays in memory besides is one component per
//! open nesting level (at most [`MAX_NESTING`]) and one XML event or tag-value line. Deep nesting
//! in what is skipped costs `serde_json` a byte per level and no recursion; XML elements may nest
//! at most 1024 deep.
//!
//! A component is counted only if it has a non-empty name: a component without one is not valid
//! in either specification, and a nameless entry is useless to anyone looking for a package.
//! CycloneDX's `metadata.component` is the subject the BOM describes, not one of its components,
//! and is not counted.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::io::{self, BufRead, BufReader, Read};

use quick_xml::XmlVersion;
use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{Component, ExtractError, Extracted, Limits};
use crate::Format;

/// Deepest nesting of CycloneDX components accepted (a component's `components` inside another's).
///
/// Real BOMs nest a handful of levels (an application, its modules, their packages). The cap keeps
/// the recursion of the JSON reader and the stack of the XML reader small, and stays well within
/// `serde_json`'s own recursion limit of 128 container levels (each component level costs two:
/// the object and its `components` array; licenses add three more at the deepest level), so that
/// a document the cap admits is never refused by `serde_json` instead.
pub const MAX_NESTING: usize = 32;

/// Longest tag-value line read; longer lines are skipped (no field of interest is that long,
/// while a pasted blob could be arbitrarily long).
pub const MAX_LINE: usize = 1 << 20;

/// Longest text kept for one field (an XML element's text, a multi-line tag-value `<text>` value).
pub const MAX_TEXT: usize = 1 << 20;

/// Largest single piece of XML (a tag, or a run of text between markup) `quick-xml` may buffer.
pub const MAX_EVENT: usize = 16 << 20;

/// Largest total size of the start tags of the open XML elements, which `quick-xml` keeps (names,
/// namespace declarations) until the elements close.
const MAX_OPEN_MARKUP: usize = 16 << 20;

/// Deepest XML element nesting accepted, extensions included.
const MAX_XML_DEPTH: usize = 1024;

const BUFFER: usize = 64 << 10;
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";
const CYCLONEDX_NAMESPACE: &str = "http://cyclonedx.org/schema/bom/";

/// Reads the components of an SBOM in `format` from `reader`, keeping at most
/// [`Limits::max_items`] of them (the rest are counted in `total`).
///
/// `format` is what [`crate::detect::detect`] found; any format other than CycloneDX JSON or XML
/// or SPDX JSON or tag-value is refused without reading. A document that cannot be read as
/// `format` is an [`ExtractError`] saying why and, for JSON, where (line and column) and, for XML,
/// at which byte.
pub fn components(
    format: Format,
    reader: impl Read,
    limits: &Limits,
) -> Result<Extracted<Component>, ExtractError> {
    let syntax = match format {
        Format::CyclonedxJson => Syntax::CyclonedxJson,
        Format::CyclonedxXml => Syntax::CyclonedxXml,
        Format::SpdxJson => Syntax::SpdxJson,
        Format::SpdxTagValue => Syntax::SpdxTagValue,
        other => {
            return Err(ExtractError(format!(
                "{} is not an SBOM format",
                other.title()
            )));
        }
    };
    let input = BufReader::with_capacity(BUFFER, skip_utf8_bom(reader)?);
    let mut sink = Sink::new(limits);
    match syntax {
        Syntax::CyclonedxJson => read_json(format, input, BomVisitor { sink: &mut sink })?,
        Syntax::SpdxJson => read_json(format, input, SpdxVisitor { sink: &mut sink })?,
        Syntax::CyclonedxXml => read_cyclonedx_xml(input, &mut sink)?,
        Syntax::SpdxTagValue => read_spdx_tag_value(input, &mut sink)?,
    }
    Ok(sink.out)
}

enum Syntax {
    CyclonedxJson,
    CyclonedxXml,
    SpdxJson,
    SpdxTagValue,
}

/// `reader` without a leading UTF-8 byte order mark, which detection tolerates but `serde_json`
/// would not.
fn skip_utf8_bom<R: Read>(mut reader: R) -> Result<impl Read, ExtractError> {
    let mut head = [0u8; 3];
    let mut filled = 0;
    while filled < head.len() {
        match reader.read(&mut head[filled..]) {
            Ok(0) => break,
            // `min`: a reader claiming more than it was given must not make us panic.
            Ok(n) => filled = (filled + n).min(head.len()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(read_failed(&e)),
        }
    }
    let head = &head[..filled];
    let kept = head.strip_prefix(UTF8_BOM).unwrap_or(head);
    Ok(io::Cursor::new(kept.to_vec()).chain(reader))
}

fn read_failed(e: &io::Error) -> ExtractError {
    ExtractError(format!("read failed: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Collecting components

/// Where components go: the capped list, plus the bookkeeping that lets a CycloneDX parent come
/// before its nested components although its last fields may follow them.
struct Sink<'l> {
    out: Extracted<Component>,
    limits: &'l Limits,
}

/// A component being read, and whether it has been handed to the [`Sink`] yet.
#[derive(Default)]
struct Pending {
    component: Component,
    slot: Slot,
}

#[derive(Default)]
enum Slot {
    /// Not handed over yet.
    #[default]
    Unplaced,
    /// Kept at this index of `items`; fields read later are written there when it ends.
    Kept(usize),
    /// Counted but dropped at the limit.
    Dropped,
}

impl<'l> Sink<'l> {
    fn new(limits: &'l Limits) -> Self {
        Sink {
            out: Extracted::default(),
            limits,
        }
    }

    /// Adds a finished component, if it is named.
    fn push(&mut self, mut component: Component) {
        if named(&component) {
            dedupe_licenses(&mut component);
            self.out.push(component, self.limits);
        }
    }

    /// Hands over a component whose nested components are about to be read, so that the list
    /// keeps document order (parent first). A component whose name has not been seen yet (it
    /// follows the nested list) is handed over when it ends, after its children.
    fn place(&mut self, pending: &mut Pending) {
        if matches!(pending.slot, Slot::Unplaced) && named(&pending.component) {
            dedupe_licenses(&mut pending.component);
            let before = self.out.items.len();
            self.out.push(pending.component.clone(), self.limits);
            pending.slot = if self.out.items.len() > before {
                Slot::Kept(before)
            } else {
                Slot::Dropped
            };
        }
    }

    /// A component has ended: add it, or complete the copy [`Sink::place`] added.
    fn finish(&mut self, pending: Pending) {
        match pending.slot {
            Slot::Unplaced => self.push(pending.component),
            Slot::Kept(index) => {
                let mut component = pending.component;
                if named(&component)
                    && let Some(item) = self.out.items.get_mut(index)
                {
                    dedupe_licenses(&mut component);
                    *item = component;
                }
            }
            Slot::Dropped => {}
        }
    }
}

fn named(component: &Component) -> bool {
    !component.name.trim().is_empty()
}

/// Adds a license (id, name or expression); duplicates are removed when the component is
/// handed over (see [`dedupe_licenses`]).
fn add_license(licenses: &mut Vec<String>, license: &str) {
    let license = license.trim();
    if !license.is_empty() {
        licenses.push(license.to_owned());
    }
}

/// Keeps the first of each license. Done once per component with a set rather than by searching
/// the list on every addition, which a hostile component with a million licenses would turn
/// quadratic.
fn dedupe_licenses(component: &mut Component) {
    if component.licenses.len() > 1 {
        let mut seen = HashSet::new();
        component.licenses.retain(|l| seen.insert(l.clone()));
    }
}

/// SPDX's "no information" values are not licenses.
fn add_spdx_license(licenses: &mut Vec<String>, license: &str) {
    let license = license.trim();
    if !license.eq_ignore_ascii_case("NOASSERTION") && !license.eq_ignore_ascii_case("NONE") {
        add_license(licenses, license);
    }
}

fn add_hash(component: &mut Component, algorithm: &str, value: &str) {
    let (algorithm, value) = (algorithm.trim(), value.trim());
    if !algorithm.is_empty() && !value.is_empty() {
        component
            .hashes
            .insert(algorithm.to_owned(), value.to_ascii_lowercase());
    }
}

/// An optional text field, with an empty value meaning absent.
fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// SPDX 2.2 spells the category `PACKAGE-MANAGER`, 2.3 `PACKAGE_MANAGER`.
fn is_purl_ref(category: &str, reference_type: &str) -> bool {
    matches!(category, "PACKAGE-MANAGER" | "PACKAGE_MANAGER") && reference_type == "purl"
}

// ---------------------------------------------------------------------------------------------
// JSON

/// Runs `visitor` over the top-level object of the JSON document and checks nothing but
/// whitespace follows it.
fn read_json<R, V>(format: Format, input: R, visitor: V) -> Result<(), ExtractError>
where
    R: Read,
    V: for<'de> Visitor<'de, Value = ()>,
{
    let fail = |e: serde_json::Error| match e.io_error_kind() {
        Some(_) => ExtractError(format!("read failed: {e}")),
        None => ExtractError(format!("invalid {}: {e}", format.title())),
    };
    let mut de = serde_json::Deserializer::from_reader(input);
    serde::Deserializer::deserialize_map(&mut de, visitor).map_err(fail)?;
    de.end().map_err(fail)
}

/// Keys of a CycloneDX BOM; only `components` matters.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
enum BomField {
    Components,
    #[serde(other)]
    Other,
}

/// Keys of a CycloneDX component that are kept.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
enum ComponentField {
    Name,
    Version,
    Purl,
    Licenses,
    Hashes,
    Components,
    #[serde(other)]
    Other,
}

/// One entry of a CycloneDX `licenses` list: `{"license": {...}}` or `{"expression": "..."}`.
#[derive(Deserialize)]
struct LicenseChoice {
    license: Option<LicenseRef>,
    expression: Option<String>,
}

#[derive(Deserialize)]
struct LicenseRef {
    id: Option<String>,
    name: Option<String>,
}

impl LicenseChoice {
    /// The license id, else its name, else the expression.
    fn into_license(self) -> Option<String> {
        let license = self
            .license
            .and_then(|l| non_empty(l.id).or(non_empty(l.name)));
        license.or(non_empty(self.expression))
    }
}

/// One entry of a CycloneDX `hashes` list.
#[derive(Deserialize)]
struct Hash {
    alg: Option<String>,
    content: Option<String>,
}

/// The top-level CycloneDX BOM object.
struct BomVisitor<'s, 'l> {
    sink: &'s mut Sink<'l>,
}

impl<'de> Visitor<'de> for BomVisitor<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a CycloneDX BOM object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(field) = map.next_key::<BomField>()? {
            match field {
                BomField::Components => map.next_value_seed(ComponentList {
                    sink: &mut *self.sink,
                    level: 1,
                })?,
                BomField::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// A `components` array whose elements are at nesting `level` (1 for the BOM's own list).
struct ComponentList<'s, 'l> {
    sink: &'s mut Sink<'l>,
    level: usize,
}

impl<'de> DeserializeSeed<'de> for ComponentList<'_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        // `any` rather than `seq` so that `null` can be read as "no components".
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ComponentList<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of components")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(ComponentSeed {
                sink: &mut *self.sink,
                level: self.level,
            })?
            .is_some()
        {}
        Ok(())
    }
}

/// One CycloneDX component at nesting `level`; it is handed to the sink as it ends, and its nested
/// components as they are read.
struct ComponentSeed<'s, 'l> {
    sink: &'s mut Sink<'l>,
    level: usize,
}

impl<'de> DeserializeSeed<'de> for ComponentSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ComponentSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a CycloneDX component object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if self.level > MAX_NESTING {
            return Err(de::Error::custom(format_args!(
                "components nested more than {MAX_NESTING} deep"
            )));
        }
        let mut pending = Pending::default();
        while let Some(field) = map.next_key::<ComponentField>()? {
            let component = &mut pending.component;
            match field {
                ComponentField::Name => {
                    component.name = map.next_value::<Option<String>>()?.unwrap_or_default();
                }
                ComponentField::Version => component.version = non_empty(map.next_value()?),
                ComponentField::Purl => component.purl = non_empty(map.next_value()?),
                ComponentField::Licenses => {
                    let choices = map.next_value::<Option<Vec<LicenseChoice>>>()?;
                    for license in choices
                        .into_iter()
                        .flatten()
                        .filter_map(|c| c.into_license())
                    {
                        add_license(&mut component.licenses, &license);
                    }
                }
                ComponentField::Hashes => {
                    for hash in map.next_value::<Option<Vec<Hash>>>()?.into_iter().flatten() {
                        if let (Some(alg), Some(content)) = (hash.alg, hash.content) {
                            add_hash(component, &alg, &content);
                        }
                    }
                }
                ComponentField::Components => {
                    self.sink.place(&mut pending);
                    map.next_value_seed(ComponentList {
                        sink: &mut *self.sink,
                        level: self.level + 1,
                    })?;
                }
                ComponentField::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        self.sink.finish(pending);
        Ok(())
    }
}

/// Keys of an SPDX document; only `packages` matters (`files` and `snippets` are not components).
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
enum SpdxField {
    Packages,
    #[serde(other)]
    Other,
}

/// The fields of an SPDX package that are kept; the others are skipped by the derived visitor.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Package {
    name: Option<String>,
    version_info: Option<String>,
    external_refs: Option<Vec<ExternalRef>>,
    license_concluded: Option<String>,
    license_declared: Option<String>,
    checksums: Option<Vec<Checksum>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExternalRef {
    reference_category: Option<String>,
    reference_type: Option<String>,
    reference_locator: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Checksum {
    algorithm: Option<String>,
    checksum_value: Option<String>,
}

impl Package {
    fn into_component(self) -> Component {
        let mut component = Component {
            name: self.name.unwrap_or_default(),
            version: non_empty(self.version_info),
            ..Component::default()
        };
        component.purl = self
            .external_refs
            .into_iter()
            .flatten()
            .find(|r| {
                is_purl_ref(
                    r.reference_category.as_deref().unwrap_or(""),
                    r.reference_type.as_deref().unwrap_or(""),
                )
            })
            .and_then(|r| non_empty(r.reference_locator));
        for license in [self.license_concluded, self.license_declared]
            .into_iter()
            .flatten()
        {
            add_spdx_license(&mut component.licenses, &license);
        }
        for checksum in self.checksums.into_iter().flatten() {
            if let (Some(algorithm), Some(value)) = (checksum.algorithm, checksum.checksum_value) {
                add_hash(&mut component, &algorithm, &value);
            }
        }
        component
    }
}

/// The top-level SPDX document object.
struct SpdxVisitor<'s, 'l> {
    sink: &'s mut Sink<'l>,
}

impl<'de> Visitor<'de> for SpdxVisitor<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an SPDX document object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(field) = map.next_key::<SpdxField>()? {
            match field {
                SpdxField::Packages => map.next_value_seed(PackageList {
                    sink: &mut *self.sink,
                })?,
                SpdxField::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// The `packages` array, read one package at a time.
struct PackageList<'s, 'l> {
    sink: &'s mut Sink<'l>,
}

impl<'de> DeserializeSeed<'de> for PackageList<'_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for PackageList<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of packages")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(package) = seq.next_element::<Package>()? {
            self.sink.push(package.into_component());
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// CycloneDX XML

fn read_cyclonedx_xml<R: BufRead>(input: R, sink: &mut Sink<'_>) -> Result<(), ExtractError> {
    let mut xml = NsReader::from_reader(Budgeted::new(input));
    // `<name/>` then reads like `<name></name>`: one code path for both.
    xml.config_mut().expand_empty_elements = true;
    let mut buf = Vec::new();
    let mut doc = XmlDocument::new(sink);
    loop {
        buf.clear();
        xml.get_mut().begin_event();
        let event = match xml.read_event_into(&mut buf) {
            Ok(event) => event,
            Err(e) => return Err(xml_error(&xml, &e)),
        };
        let markup = xml.get_ref().used();
        // `NsReader` has already applied the element's own `xmlns` declarations.
        let namespace_of = |e: &BytesStart<'_>| match xml.resolver().resolve_element(e.name()).0 {
            ResolveResult::Bound(ns) => Some(ns.0),
            ResolveResult::Unbound | ResolveResult::Unknown(_) => None,
        };
        let step = match event {
            Event::Start(e) => doc.start(&e, namespace_of(&e), markup),
            Event::Empty(e) => doc
                .start(&e, namespace_of(&e), markup)
                .and_then(|()| doc.end()),
            Event::End(_) => doc.end(),
            Event::Text(t) => doc.text(&t.xml_content(XmlVersion::Implicit1_0)),
            Event::CData(t) => doc.text(&t.xml_content(XmlVersion::Implicit1_0)),
            Event::GeneralRef(r) => doc.reference(&r),
            Event::Eof => return doc.finish().map_err(|m| xml_message(&xml, m)),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => Ok(()),
        };
        step.map_err(|m| xml_message(&xml, m))?;
    }
}

fn xml_message<R>(xml: &NsReader<R>, message: impl fmt::Display) -> ExtractError {
    ExtractError(format!(
        "invalid CycloneDX XML at byte {}: {message}",
        xml.buffer_position()
    ))
}

fn xml_error<R: BufRead>(xml: &NsReader<Budgeted<R>>, e: &quick_xml::Error) -> ExtractError {
    if xml.get_ref().exceeded {
        return ExtractError(format!(
            "invalid CycloneDX XML at byte {}: text or markup longer than {} MiB",
            xml.buffer_position(),
            MAX_EVENT >> 20
        ));
    }
    match e {
        quick_xml::Error::Io(e) => read_failed(e),
        e => ExtractError(format!(
            "invalid CycloneDX XML at byte {}: {e}",
            xml.error_position()
        )),
    }
}

/// What an open XML element means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frame {
    Bom,
    /// A `<components>` list, the BOM's own or a component's.
    Components,
    /// A `<component>`; its data is the last of [`XmlDocument::pending`].
    Component,
    Licenses,
    /// A `<license>`; its `<id>` and `<name>` are collected in [`XmlDocument::license`].
    License,
    Hashes,
    /// An element whose text is a field value, collected in [`XmlDocument::text`].
    Capture(XmlField),
    /// Anything else, with all it contains (`<metadata>`, `<services>`, extensions...).
    Skip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum XmlField {
    Name,
    Version,
    Purl,
    LicenseId,
    LicenseName,
    Expression,
    /// `<hash alg="...">`; the algorithm is in [`XmlDocument::hash_alg`].
    Hash,
}

/// The state of one CycloneDX XML document being read.
struct XmlDocument<'s, 'l> {
    sink: &'s mut Sink<'l>,
    /// Open elements, innermost last, with the size of their start tags.
    open: Vec<(Frame, usize)>,
    open_markup: usize,
    /// The open components, innermost last.
    pending: Vec<Pending>,
    /// The namespace of the root `<bom>`; elements in other namespaces are extensions.
    namespace: Option<String>,
    root_seen: bool,
    text: String,
    license: (Option<String>, Option<String>),
    hash_alg: Option<String>,
}

impl<'s, 'l> XmlDocument<'s, 'l> {
    fn new(sink: &'s mut Sink<'l>) -> Self {
        XmlDocument {
            sink,
            open: Vec::new(),
            open_markup: 0,
            pending: Vec::new(),
            namespace: None,
            root_seen: false,
            text: String::new(),
            license: (None, None),
            hash_alg: None,
        }
    }

    /// A start tag of `markup` bytes in `namespace`.
    fn start(
        &mut self,
        e: &BytesStart<'_>,
        namespace: Option<&str>,
        markup: usize,
    ) -> Result<(), String> {
        if self.open.len() >= MAX_XML_DEPTH {
            return Err(format!("elements nested deeper than {MAX_XML_DEPTH}"));
        }
        self.open_markup = self.open_markup.saturating_add(markup);
        if self.open_markup > MAX_OPEN_MARKUP {
            return Err(format!(
                "start tags of the open elements exceed {} MiB",
                MAX_OPEN_MARKUP >> 20
            ));
        }
        let local = e.local_name().into_inner();
        let ours = namespace.is_some() && namespace == self.namespace.as_deref();
        let frame = match self.open.last().map(|&(frame, _)| frame) {
            None => self.root(e, namespace)?,
            Some(_) if !ours => Frame::Skip,
            Some(Frame::Bom) if local == "components" => Frame::Components,
            Some(Frame::Components) if local == "component" => {
                if self.pending.len() >= MAX_NESTING {
                    return Err(format!("components nested more than {MAX_NESTING} deep"));
                }
                self.pending.push(Pending::default());
                Frame::Component
            }
            Some(Frame::Component) => match local {
                "name" => Frame::Capture(XmlField::Name),
                "version" => Frame::Capture(XmlField::Version),
                "purl" => Frame::Capture(XmlField::Purl),
                "licenses" => Frame::Licenses,
                "hashes" => Frame::Hashes,
                "components" => {
                    if let Some(parent) = self.pending.last_mut() {
                        self.sink.place(parent);
                    }
                    Frame::Components
                }
                _ => Frame::Skip,
            },
            Some(Frame::Licenses) => match local {
                "license" => {
                    self.license = (None, None);
                    Frame::License
                }
                "expression" => Frame::Capture(XmlField::Expression),
                _ => Frame::Skip,
            },
            Some(Frame::License) => match local {
                "id" => Frame::Capture(XmlField::LicenseId),
                "name" => Frame::Capture(XmlField::LicenseName),
                _ => Frame::Skip,
            },
            Some(Frame::Hashes) if local == "hash" => {
                let alg = e
                    .try_get_attribute("alg")
                    .map_err(|err| err.to_string())?
                    .map(|a| {
                        a.normalized_value(XmlVersion::Implicit1_0)
                            .map(Cow::into_owned)
                            .map_err(|err| err.to_string())
                    })
                    .transpose()?;
                self.hash_alg = alg;
                Frame::Capture(XmlField::Hash)
            }
            Some(_) => Frame::Skip,
        };
        if matches!(frame, Frame::Capture(_)) {
            self.text.clear();
        }
        self.open.push((frame, markup));
        Ok(())
    }

    /// The root element, which must be a CycloneDX `<bom>`.
    fn root(&mut self, e: &BytesStart<'_>, namespace: Option<&str>) -> Result<Frame, String> {
        if self.root_seen {
            return Err("more than one root element".into());
        }
        self.root_seen = true;
        match namespace {
            Some(ns)
                if e.local_name().into_inner() == "bom" && ns.starts_with(CYCLONEDX_NAMESPACE) =>
            {
                self.namespace = Some(ns.to_owned());
                Ok(Frame::Bom)
            }
            _ => Err(format!(
                "root element <{}> is not a CycloneDX <bom> in namespace {CYCLONEDX_NAMESPACE}1.x",
                e.name().into_inner()
            )),
        }
    }

    fn end(&mut self) -> Result<(), String> {
        let Some((frame, markup)) = self.open.pop() else {
            return Err("end tag without a start tag".into());
        };
        self.open_markup = self.open_markup.saturating_sub(markup);
        match frame {
            Frame::Capture(field) => {
                let text = std::mem::take(&mut self.text);
                self.field(field, text.trim());
            }
            Frame::License => {
                let (id, name) = std::mem::take(&mut self.license);
                if let (Some(license), Some(pending)) = (id.or(name), self.pending.last_mut()) {
                    add_license(&mut pending.component.licenses, &license);
                }
            }
            Frame::Component => {
                if let Some(pending) = self.pending.pop() {
                    self.sink.finish(pending);
                }
            }
            Frame::Bom | Frame::Components | Frame::Licenses | Frame::Hashes | Frame::Skip => {}
        }
        Ok(())
    }

    fn field(&mut self, field: XmlField, value: &str) {
        let value = (!value.is_empty()).then(|| value.to_owned());
        match field {
            XmlField::LicenseId => self.license.0 = value,
            XmlField::LicenseName => self.license.1 = value,
            _ => {
                let Some(pending) = self.pending.last_mut() else {
                    return;
                };
                let component = &mut pending.component;
                match field {
                    XmlField::Name => component.name = value.unwrap_or_default(),
                    XmlField::Version => component.version = value,
                    XmlField::Purl => component.purl = value,
                    XmlField::Expression => {
                        if let Some(expression) = value {
                            add_license(&mut component.licenses, &expression);
                        }
                    }
                    XmlField::Hash => {
                        if let (Some(alg), Some(value)) = (&self.hash_alg, value) {
                            add_hash(component, alg, &value);
                        }
                    }
                    XmlField::LicenseId | XmlField::LicenseName => {}
                }
            }
        }
    }

    fn text(&mut self, text: &str) -> Result<(), String> {
        match self.open.last() {
            None if !text.trim().is_empty() => Err("text outside the root element".into()),
            Some((Frame::Capture(_), _)) => {
                if self.text.len() + text.len() > MAX_TEXT {
                    return Err(format!("element text longer than {} MiB", MAX_TEXT >> 20));
                }
                self.text.push_str(text);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// An entity or character reference: only the predefined entities and character references
    /// are expanded (the DTD is never used, which keeps entity-expansion attacks inert); any
    /// other reference is kept as written.
    fn reference(&mut self, reference: &BytesRef<'_>) -> Result<(), String> {
        if self.open.is_empty() {
            return Err("reference outside the root element".into());
        }
        let mut utf8 = [0u8; 4];
        let expanded: Cow<'_, str> = match reference.resolve_char_ref() {
            Ok(Some(c)) => Cow::Borrowed(c.encode_utf8(&mut utf8)),
            Ok(None) => match &**reference {
                "amp" => "&".into(),
                "lt" => "<".into(),
                "gt" => ">".into(),
                "quot" => "\"".into(),
                "apos" => "'".into(),
                other => format!("&{other};").into(),
            },
            Err(e) => return Err(e.to_string()),
        };
        self.text(&expanded)
    }

    fn finish(&self) -> Result<(), String> {
        if !self.root_seen {
            return Err("no root element".into());
        }
        match self.open.len() {
            0 => Ok(()),
            n => Err(format!("document ends with {n} elements open")),
        }
    }
}

/// The input as `quick-xml` sees it: at most [`MAX_EVENT`] bytes per event, since `quick-xml`
/// buffers an event whole (a multi-gigabyte text node would otherwise be read into memory).
struct Budgeted<R> {
    inner: R,
    remaining: usize,
    exceeded: bool,
}

impl<R> Budgeted<R> {
    fn new(inner: R) -> Self {
        Budgeted {
            inner,
            remaining: MAX_EVENT,
            exceeded: false,
        }
    }

    fn begin_event(&mut self) {
        self.remaining = MAX_EVENT;
        self.exceeded = false;
    }

    /// Bytes read for the current event.
    fn used(&self) -> usize {
        MAX_EVENT - self.remaining
    }
}

impl<R: BufRead> BufRead for Budgeted<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.remaining == 0 {
            self.exceeded = true;
            return Err(io::Error::other("XML event too long"));
        }
        let remaining = self.remaining;
        let available = self.inner.fill_buf()?;
        Ok(&available[..available.len().min(remaining)])
    }

    fn consume(&mut self, amount: usize) {
        self.remaining = self.remaining.saturating_sub(amount);
        self.inner.consume(amount);
    }
}

impl<R: BufRead> Read for Budgeted<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

// ---------------------------------------------------------------------------------------------
// SPDX tag-value

const TEXT_OPEN: &str = "<text>";
const TEXT_CLOSE: &str = "</text>";

fn read_spdx_tag_value<R: BufRead>(input: R, sink: &mut Sink<'_>) -> Result<(), ExtractError> {
    let mut lines = Lines::new(input);
    let mut doc = TagValue {
        sink,
        package: None,
        version_seen: false,
    };
    let mut block: Option<TextBlock> = None;
    while let Some(info) = lines.next_line().map_err(|e| read_failed(&e))? {
        let line = String::from_utf8_lossy(&lines.buf);
        if let Some(open) = &mut block {
            let end = line.find(TEXT_CLOSE);
            match end {
                Some(end) => open.append(&line[..end]),
                None if info.closes_text => open.overflow = true,
                None => {
                    open.append(line.trim_end_matches('\r'));
                    open.append("\n");
                }
            }
            if (end.is_some() || info.closes_text)
                && let Some(done) = block.take()
            {
                match done.overflow {
                    false => doc.apply(&done.tag, done.value.trim()),
                    true => doc.skipped(&done.tag),
                }
            }
            continue;
        }
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let Some((tag, value)) = trimmed.split_once(':') else {
            continue;
        };
        let (tag, value) = (tag.trim(), value.trim());
        let value = match value.strip_prefix(TEXT_OPEN) {
            Some(rest) => match rest.find(TEXT_CLOSE) {
                Some(end) => rest[..end].trim(),
                // Closed in the part of an overlong line that was dropped.
                None if info.closes_text => {
                    doc.skipped(tag);
                    continue;
                }
                None => {
                    let mut open = TextBlock {
                        line: lines.number,
                        tag: tag.to_owned(),
                        value: String::new(),
                        overflow: info.overlong,
                    };
                    open.append(rest.trim_end_matches('\r'));
                    open.append("\n");
                    block = Some(open);
                    continue;
                }
            },
            None => value,
        };
        match info.overlong {
            false => doc.apply(tag, value),
            true => doc.skipped(tag),
        }
    }
    if let Some(open) = block {
        return Err(ExtractError(format!(
            "invalid SPDX tag-value: {TEXT_OPEN} opened on line {} is never closed",
            open.line
        )));
    }
    if !doc.version_seen {
        return Err(ExtractError(
            "invalid SPDX tag-value: no SPDXVersion tag".into(),
        ));
    }
    doc.end_package();
    Ok(())
}

/// A `<text>` value spanning lines. Everything inside is data, never tags.
struct TextBlock {
    line: u64,
    tag: String,
    value: String,
    /// The value outgrew [`MAX_TEXT`] (or started on an overlong line) and is not used.
    overflow: bool,
}

impl TextBlock {
    fn append(&mut self, text: &str) {
        if self.overflow || self.value.len() + text.len() > MAX_TEXT {
            self.overflow = true;
            self.value = String::new();
        } else {
            self.value.push_str(text);
        }
    }
}

/// The package being read from a tag-value document.
struct TagValue<'s, 'l> {
    sink: &'s mut Sink<'l>,
    /// The package whose fields the next `Package...` tags describe, if any.
    package: Option<Component>,
    version_seen: bool,
}

impl TagValue<'_, '_> {
    fn apply(&mut self, tag: &str, value: &str) {
        match tag {
            "SPDXVersion" => self.version_seen = true,
            "PackageName" => {
                self.end_package();
                self.package = Some(Component {
                    name: value.to_owned(),
                    ..Component::default()
                });
            }
            // The package's section is over: what follows describes files, snippets, licenses
            // or relationships.
            "FileName" | "SnippetSPDXID" | "LicenseID" | "Relationship" => self.end_package(),
            _ => {
                if let Some(package) = &mut self.package {
                    package_field(package, tag, value);
                }
            }
        }
    }

    /// A tag whose value was too long to read. A section boundary still counts as one, so that
    /// the fields that follow do not land on the package before it; a package named by an overlong
    /// line is read without a name, and so not counted.
    fn skipped(&mut self, tag: &str) {
        if matches!(
            tag,
            "PackageName" | "FileName" | "SnippetSPDXID" | "LicenseID" | "Relationship"
        ) {
            self.apply(tag, "");
        }
    }

    fn end_package(&mut self) {
        if let Some(package) = self.package.take() {
            self.sink.push(package);
        }
    }
}

fn package_field(package: &mut Component, tag: &str, value: &str) {
    match tag {
        "PackageVersion" if !value.is_empty() => package.version = Some(value.to_owned()),
        "ExternalRef" => {
            let mut parts = value.split_whitespace();
            if let (Some(category), Some(reference_type), Some(locator)) =
                (parts.next(), parts.next(), parts.next())
                && is_purl_ref(category, reference_type)
                && package.purl.is_none()
            {
                package.purl = Some(locator.to_owned());
            }
        }
        "PackageLicenseConcluded" | "PackageLicenseDeclared" => {
            add_spdx_license(&mut package.licenses, value);
        }
        "PackageChecksum" => {
            if let Some((algorithm, checksum)) = value.split_once(':') {
                add_hash(package, algorithm, checksum);
            }
        }
        _ => {}
    }
}

/// Lines of at most [`MAX_LINE`] bytes; the rest of a longer line is dropped, but still searched
/// for `</text>` so that a multi-line value is known to end even there.
struct Lines<R> {
    reader: R,
    /// The current line, without its `\n`, cut at [`MAX_LINE`].
    buf: Vec<u8>,
    /// 1-based number of the current line.
    number: u64,
}

struct LineInfo {
    /// The line was longer than [`MAX_LINE`] and was cut.
    overlong: bool,
    /// `</text>` occurs in the part of an overlong line that was dropped.
    closes_text: bool,
}

impl<R: BufRead> Lines<R> {
    fn new(reader: R) -> Self {
        Lines {
            reader,
            buf: Vec::new(),
            number: 0,
        }
    }

    fn next_line(&mut self) -> io::Result<Option<LineInfo>> {
        self.buf.clear();
        let mut info = LineInfo {
            overlong: false,
            closes_text: false,
        };
        let close = TEXT_CLOSE.as_bytes();
        // How much of `</text>` the bytes just dropped end with.
        let mut matched = 0;
        let step = |matched: &mut usize, b: u8| {
            *matched = if b == close[*matched] {
                *matched + 1
            } else {
                usize::from(b == close[0])
            };
            if *matched == close.len() {
                *matched = 0;
                true
            } else {
                false
            }
        };
        let mut read_any = false;
        loop {
            let chunk = match self.reader.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                if !read_any {
                    return Ok(None);
                }
                break;
            }
            read_any = true;
            let newline = chunk.iter().position(|&b| b == b'\n');
            let part = &chunk[..newline.unwrap_or(chunk.len())];
            let keep = MAX_LINE.saturating_sub(self.buf.len()).min(part.len());
            self.buf.extend_from_slice(&part[..keep]);
            if keep < part.len() {
                if !info.overlong {
                    info.overlong = true;
                    // A `</text>` may straddle the cut.
                    let tail = self.buf.len().saturating_sub(close.len() - 1);
                    for &b in &self.buf[tail..] {
                        step(&mut matched, b);
                    }
                }
                for &b in &part[keep..] {
                    info.closes_text |= step(&mut matched, b);
                }
            }
            let used = newline.map_or(chunk.len(), |i| i + 1);
            self.reader.consume(used);
            if newline.is_some() {
                break;
            }
        }
        self.number += 1;
        Ok(Some(info))
    }
}
