//! A streaming, bounded-memory XML scanner: checks well-formedness and records the root element,
//! its namespace and its direct children, which is all format detection needs.
//!
//! Markup (tags, the XML declaration, processing instructions, the DOCTYPE) is parsed by
//! `quick-xml`, which checks tag syntax, matching end tags, attribute syntax and uniqueness, and
//! namespace declarations; the scanner adds what `quick-xml` leaves out: element and attribute
//! names must be XML names, there must be exactly one root element with nothing but whitespace,
//! comments, processing instructions and the prolog around it, text must not contain `]]>` and
//! its `&` references must be closed. (Still accepted: `--` inside comments, undeclared namespace
//! prefixes.) `quick-xml` buffers each event whole, though, and the events that get
//! big in practice are character data: a JUnit report can carry hundreds of MiB of test output in
//! one `<system-out>` text node or CDATA section. So the scanner steps over text, CDATA sections
//! and comments itself, streaming, and hands `quick-xml` only markup, each piece capped at 4 MiB.
//! What stays in memory is then bounded whatever the input: one piece of markup, the open start
//! tags (at most 16 MiB together, at most 4096 deep), and the recorded facts.
//!
//! Entities are never expanded: the DOCTYPE is read but its declarations are not used, text is not
//! unescaped at all, and root attribute values are unescaped with the predefined entities only
//! (a value using another entity is kept as written). That is what keeps "billion laughs" inert
//! and rules out fetching external entities. Character data is not decoded either, so invalid
//! UTF-8 there is not an error (markup must be UTF-8; `quick-xml` checks that).

use std::collections::BTreeSet;
use std::io::{self, BufRead, Read};

use quick_xml::XmlVersion;
use quick_xml::events::attributes::{AttrError, Attributes};
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{NamespaceResolver, ResolveResult};
use quick_xml::reader::NsReader;

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
///
/// A leading UTF-8 byte order mark is skipped. Positions in errors are byte offsets into the
/// input, the BOM included. Resource limits (see the module documentation) are reported as syntax
/// errors too: a document needing more is not one detection should trust.
pub fn probe_xml<R: BufRead>(reader: R) -> Result<XmlFacts, XmlProbeError> {
    Probe::new(reader, &mut |_| {}).run()
}

/// An element boundary, as [`scan_xml`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XmlTag<'a> {
    /// A start tag (`empty`: self-closing, no end follows) of an element `depth` deep (the root
    /// is 0), with its local name.
    Start {
        name: &'a str,
        depth: usize,
        empty: bool,
    },
    /// The end tag of the element `depth` deep.
    End { depth: usize },
}

/// [`probe_xml`], also telling `visit` every element's start and end, in document order, for
/// extractors that need more than the root (a JUnit report's test cases). The same bounds
/// hold: nothing but the element names passes to `visit`.
pub fn scan_xml<R: BufRead>(
    reader: R,
    visit: &mut dyn FnMut(XmlTag<'_>),
) -> Result<XmlFacts, XmlProbeError> {
    Probe::new(reader, visit).run()
}

const MAX_ROOT_ATTRIBUTES: usize = 64;
const MAX_ATTRIBUTE_VALUE: usize = 1024;
const MAX_CHILDREN: usize = 256;
/// Recorded names (root attribute names, child names) longer than this are cut (attributes) or
/// left out (children); real ones are a few dozen bytes.
const MAX_NAME: usize = 1024;
/// Largest single piece of markup handed to `quick-xml`, which buffers it whole.
const MAX_MARKUP: usize = 4 << 20;
/// Largest total size of the start tags of the open elements: `quick-xml` keeps their names and
/// namespace declarations until the elements close.
const MAX_OPEN_MARKUP: usize = 16 << 20;
/// Deepest element nesting accepted.
const MAX_DEPTH: usize = 4096;
/// Size of the read buffer.
const BUFFER: usize = 64 << 10;

const BOM: &[u8] = b"\xEF\xBB\xBF";
const CDATA_START: &[u8] = b"<![CDATA[";
const COMMENT_START: &[u8] = b"<!--";

/// What comes next in the input.
enum Next {
    Eof,
    Text,
    CData,
    Comment,
    /// A tag, declaration, processing instruction or DOCTYPE: parsed by `quick-xml`.
    Markup,
}

struct Probe<'v, R> {
    xml: NsReader<Source<R>>,
    /// Event buffer, reused (cleared) for every piece of markup.
    buf: Vec<u8>,
    doc: Document,
    visit: &'v mut dyn FnMut(XmlTag<'_>),
}

/// What the scan has learnt so far, apart from the reader.
#[derive(Default)]
struct Document {
    facts: XmlFacts,
    root_seen: bool,
    /// Anything other than whitespace came before (the XML declaration must come first).
    markup_seen: bool,
    doctype_seen: bool,
    /// Byte lengths of the start tags of the open elements.
    open: Vec<usize>,
    open_bytes: usize,
}

impl<'v, R: BufRead> Probe<'v, R> {
    fn new(reader: R, visit: &'v mut dyn FnMut(XmlTag<'_>)) -> Self {
        Probe {
            xml: NsReader::from_reader(Source::new(reader)),
            buf: Vec::new(),
            doc: Document::default(),
            visit,
        }
    }

    fn run(mut self) -> Result<XmlFacts, XmlProbeError> {
        let source = self.xml.get_mut();
        if source.fill(BOM.len())?.starts_with(BOM) {
            source.skip(BOM.len());
        }
        loop {
            let source = self.xml.get_mut();
            let start = source.offset;
            let ahead = source.fill(CDATA_START.len())?;
            let next = match ahead.first() {
                None => Next::Eof,
                Some(b'<') if ahead.starts_with(CDATA_START) => Next::CData,
                Some(b'<') if ahead.starts_with(COMMENT_START) => Next::Comment,
                Some(b'<') => Next::Markup,
                Some(_) => Next::Text,
            };
            match next {
                Next::Eof => return self.doc.finish(start),
                Next::Text => self.skip_text()?,
                Next::CData => {
                    if self.doc.open.is_empty() {
                        return Err(self.doc.outside_root(start).into());
                    }
                    self.xml.get_mut().skip(CDATA_START.len());
                    self.skip_past(b']', start, "unclosed CDATA section")?;
                }
                Next::Comment => {
                    self.xml.get_mut().skip(COMMENT_START.len());
                    self.skip_past(b'-', start, "unclosed comment")?;
                }
                Next::Markup => self.read_markup(start)?,
            }
            self.doc.markup_seen |= !matches!(next, Next::Text);
        }
    }

    /// Steps over character data up to the next `<` without keeping it. Outside the root element
    /// only whitespace is allowed; inside, references must be closed by `;` (as `quick-xml`
    /// checks), but are not resolved.
    fn skip_text(&mut self) -> Result<(), XmlProbeError> {
        let outside = self.doc.open.is_empty();
        let mut open_reference = None;
        // Consecutive `]` just seen, to reject `]]>`, which text must not contain.
        let mut brackets = 0u8;
        loop {
            let source = self.xml.get_mut();
            let offset = source.offset;
            let chunk = source.fill(1)?;
            if chunk.is_empty() {
                break;
            }
            let mut end = chunk.len();
            for (i, &b) in chunk.iter().enumerate() {
                let at = offset + i as u64;
                if b == b'>' && brackets == 2 {
                    return Err(syntax(at.saturating_sub(2), "`]]>` in text").into());
                }
                brackets = if b == b']' {
                    brackets.saturating_add(1).min(2)
                } else {
                    0
                };
                match b {
                    b'<' => {
                        end = i;
                        break;
                    }
                    b' ' | b'\t' | b'\r' | b'\n' => {}
                    _ if outside => return Err(self.doc.outside_root(at).into()),
                    b'&' => {
                        if let Some(previous) = open_reference {
                            return Err(unclosed_reference(previous).into());
                        }
                        open_reference = Some(at);
                    }
                    b';' => open_reference = None,
                    _ => {}
                }
            }
            let stop = end < chunk.len();
            source.skip(end);
            if stop {
                break;
            }
        }
        match open_reference {
            Some(at) => Err(unclosed_reference(at).into()),
            None => Ok(()),
        }
    }

    /// Steps over the rest of a comment or CDATA section: up to and including the first `>` that
    /// follows two `repeated` bytes (`-->`, `]]>`).
    fn skip_past(&mut self, repeated: u8, start: u64, unclosed: &str) -> Result<(), XmlProbeError> {
        let mut run = 0u8;
        loop {
            let source = self.xml.get_mut();
            let chunk = source.fill(1)?;
            if chunk.is_empty() {
                return Err(syntax(start, unclosed).into());
            }
            let mut found = None;
            for (i, &b) in chunk.iter().enumerate() {
                if b == repeated {
                    run = run.saturating_add(1).min(2);
                } else if b == b'>' && run == 2 {
                    found = Some(i + 1);
                    break;
                } else {
                    run = 0;
                }
            }
            let used = found.unwrap_or(chunk.len());
            source.skip(used);
            if found.is_some() {
                return Ok(());
            }
        }
    }

    /// Lets `quick-xml` read one piece of markup starting at `start`.
    fn read_markup(&mut self, start: u64) -> Result<(), XmlProbeError> {
        self.buf.clear();
        self.xml.get_mut().begin_event();
        let event = match self.xml.read_event_into(&mut self.buf) {
            Ok(event) => event,
            Err(err) => return Err(convert_error(&self.xml, err, start)),
        };
        let len = usize::try_from(self.xml.get_ref().offset - start).unwrap_or(usize::MAX);
        let doc = &mut self.doc;
        let visit = &mut self.visit;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(event, Event::Empty(_));
                let depth = doc.open.len();
                doc.element(e, empty, self.xml.resolver(), start, len)?;
                visit(XmlTag::Start {
                    name: e.local_name().into_inner(),
                    depth,
                    empty,
                });
            }
            Event::End(_) => {
                doc.end_element(start)?;
                visit(XmlTag::End {
                    depth: doc.open.len(),
                });
            }
            Event::Decl(_) if doc.markup_seen => {
                return Err(syntax(start, "XML declaration is only allowed at the start").into());
            }
            Event::Decl(decl) if decl.version().is_err() => {
                return Err(syntax(start, "XML declaration without a version").into());
            }
            Event::DocType(_) if doc.root_seen => {
                return Err(syntax(start, "DOCTYPE after the root element").into());
            }
            Event::DocType(_) if doc.doctype_seen => {
                return Err(syntax(start, "more than one DOCTYPE").into());
            }
            Event::DocType(_) => doc.doctype_seen = true,
            // Character data is stepped over before `quick-xml` sees it, but stay correct should
            // it ever report some.
            Event::Text(text) if doc.open.is_empty() => {
                if let Some(i) = text.bytes().position(|b| !b" \t\r\n".contains(&b)) {
                    return Err(doc.outside_root(start + i as u64).into());
                }
            }
            Event::CData(_) | Event::GeneralRef(_) if doc.open.is_empty() => {
                return Err(doc.outside_root(start).into());
            }
            Event::Decl(_)
            | Event::PI(_)
            | Event::Text(_)
            | Event::CData(_)
            | Event::GeneralRef(_)
            | Event::Comment(_)
            | Event::Eof => {}
        }
        Ok(())
    }
}

impl Document {
    /// A start tag (`empty`: self-closing) of `len` bytes at `start`.
    fn element(
        &mut self,
        e: &BytesStart<'_>,
        empty: bool,
        resolver: &NamespaceResolver,
        start: u64,
        len: usize,
    ) -> Result<(), XmlSyntaxError> {
        let depth = self.open.len();
        if !is_name(e.name().into_inner()) {
            return Err(syntax(start + 1, "invalid element name"));
        }
        if depth == 0 {
            if self.root_seen {
                return Err(self.outside_root(start));
            }
            self.root_seen = true;
            self.record_root(e, resolver, start)?;
        } else {
            for attribute in checked(e.attributes(), start) {
                attribute?;
            }
            if depth == 1 {
                let name = e.local_name().into_inner();
                if self.facts.children.len() < MAX_CHILDREN && name.len() <= MAX_NAME {
                    self.facts.children.insert(name.to_owned());
                }
            }
        }
        self.facts.elements += 1;
        if !empty {
            if depth >= MAX_DEPTH {
                return Err(syntax(
                    start,
                    format!("elements nested deeper than {MAX_DEPTH}"),
                ));
            }
            self.open.push(len);
            self.open_bytes = self.open_bytes.saturating_add(len);
            if self.open_bytes > MAX_OPEN_MARKUP {
                return Err(syntax(
                    start,
                    "start tags of the open elements exceed 16 MiB",
                ));
            }
        }
        Ok(())
    }

    fn record_root(
        &mut self,
        e: &BytesStart<'_>,
        resolver: &NamespaceResolver,
        start: u64,
    ) -> Result<(), XmlSyntaxError> {
        let facts = &mut self.facts;
        facts.root = e.local_name().into_inner().to_owned();
        // `NsReader` has already applied the root's own `xmlns` declarations.
        facts.namespace = match resolver.resolve_element(e.name()).0 {
            ResolveResult::Bound(namespace) => Some(namespace.0.to_owned()),
            ResolveResult::Unbound | ResolveResult::Unknown(_) => None,
        };
        for attribute in checked(e.attributes(), start) {
            let attribute = attribute?;
            if facts.root_attributes.len() < MAX_ROOT_ATTRIBUTES {
                // Only predefined entities and character references are expanded; a value using
                // any other entity is kept as written.
                let value = attribute
                    .normalized_value(XmlVersion::Implicit1_0)
                    .unwrap_or_else(|_| attribute.value.clone());
                facts.root_attributes.push((
                    cut(attribute.key.into_inner(), MAX_NAME),
                    cut(&value, MAX_ATTRIBUTE_VALUE),
                ));
            }
        }
        Ok(())
    }

    /// An end tag at `start`; `quick-xml` has checked that it matches.
    fn end_element(&mut self, start: u64) -> Result<(), XmlSyntaxError> {
        let Some(len) = self.open.pop() else {
            return Err(syntax(start, "end tag without a start tag"));
        };
        self.open_bytes = self.open_bytes.saturating_sub(len);
        Ok(())
    }

    /// End of input at `offset`.
    fn finish(mut self, offset: u64) -> Result<XmlFacts, XmlProbeError> {
        if !self.root_seen {
            return Err(syntax(offset, "no root element").into());
        }
        match self.open.len() {
            0 => Ok(std::mem::take(&mut self.facts)),
            1 => Err(syntax(offset, "unexpected end of input: 1 element not closed").into()),
            n => Err(syntax(
                offset,
                format!("unexpected end of input: {n} elements not closed"),
            )
            .into()),
        }
    }

    /// The error for content at `at` that is neither whitespace, a comment, a processing
    /// instruction nor (before the root) a DOCTYPE, outside the root element.
    fn outside_root(&self, at: u64) -> XmlSyntaxError {
        if self.root_seen {
            syntax(at, "content after the root element")
        } else {
            syntax(at, "text before the root element")
        }
    }
}

fn syntax(position: u64, message: impl Into<String>) -> XmlSyntaxError {
    XmlSyntaxError {
        position,
        message: message.into(),
    }
}

fn unclosed_reference(at: u64) -> XmlSyntaxError {
    syntax(at, "unclosed reference: `&` without `;`")
}

/// The attributes of the start tag at `start`, checked for syntax, uniqueness (which `quick-xml`
/// only does when they are iterated) and valid names.
fn checked<'a>(
    attributes: Attributes<'a>,
    start: u64,
) -> impl Iterator<Item = Result<quick_xml::events::attributes::Attribute<'a>, XmlSyntaxError>> {
    // `quick-xml` counts attribute positions from the byte after `<`.
    let at = move |position: usize| start + 1 + position as u64;
    attributes.map(move |attribute| match attribute {
        Ok(attribute) if is_name(attribute.key.into_inner()) => Ok(attribute),
        Ok(_) => Err(syntax(start, "invalid attribute name")),
        Err(AttrError::ExpectedEq(position)) => {
            Err(syntax(at(position), "attribute name not followed by `=`"))
        }
        Err(AttrError::ExpectedValue(position)) => {
            Err(syntax(at(position), "attribute without a value"))
        }
        Err(AttrError::UnquotedValue(position)) => {
            Err(syntax(at(position), "attribute value not quoted"))
        }
        Err(AttrError::ExpectedQuote(position, quote)) => Err(syntax(
            at(position),
            format!("attribute value not closed by `{}`", char::from(quote)),
        )),
        Err(AttrError::Duplicated(position, _)) => Err(syntax(at(position), "duplicate attribute")),
    })
}

/// Whether `name` matches the XML 1.0 `Name` production (which `quick-xml` does not check).
fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(is_name_start_char) && chars.all(is_name_char)
}

fn is_name_start_char(c: char) -> bool {
    matches!(c,
        ':' | 'A'..='Z' | '_' | 'a'..='z'
        | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}' | '\u{F8}'..='\u{2FF}' | '\u{370}'..='\u{37D}'
        | '\u{37F}'..='\u{1FFF}' | '\u{200C}'..='\u{200D}' | '\u{2070}'..='\u{218F}'
        | '\u{2C00}'..='\u{2FEF}' | '\u{3001}'..='\u{D7FF}' | '\u{F900}'..='\u{FDCF}'
        | '\u{FDF0}'..='\u{FFFD}' | '\u{10000}'..='\u{EFFFF}')
}

fn is_name_char(c: char) -> bool {
    is_name_start_char(c)
        || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

/// `text` cut to at most `max` bytes at a character boundary.
fn cut(text: &str, max: usize) -> String {
    text[..text.floor_char_boundary(max)].to_owned()
}

/// Maps a `quick-xml` error for the markup starting at `start`.
fn convert_error<R>(xml: &NsReader<Source<R>>, err: quick_xml::Error, start: u64) -> XmlProbeError {
    let source = xml.get_ref();
    if source.over_budget {
        return syntax(
            start,
            format!("markup longer than {} MiB", MAX_MARKUP >> 20),
        )
        .into();
    }
    match err {
        quick_xml::Error::Io(err) => XmlProbeError::Io(
            std::sync::Arc::try_unwrap(err)
                .unwrap_or_else(|err| io::Error::new(err.kind(), err.to_string())),
        ),
        err => {
            // `quick-xml` counts only the bytes it consumed itself. Its error position is only
            // maintained for some errors; others are reported where the markup starts.
            let position = (xml.error_position() + source.skipped).max(start);
            syntax(position, err.to_string()).into()
        }
    }
}

/// The input, buffered so that the scanner can look a few bytes ahead (to tell `<![CDATA[` and
/// `<!--` from other markup across read boundaries) and step over data itself, and so that each
/// piece of markup `quick-xml` reads can be capped.
struct Source<R> {
    inner: R,
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
    /// Absolute offset of `buf[pos]`.
    offset: u64,
    /// Bytes consumed by the scanner itself rather than by `quick-xml`.
    skipped: u64,
    /// Bytes `quick-xml` may still consume for the current piece of markup.
    budget: usize,
    /// `quick-xml` hit the budget: its I/O error means "markup too long".
    over_budget: bool,
}

impl<R: BufRead> Source<R> {
    fn new(inner: R) -> Self {
        Source {
            inner,
            buf: vec![0; BUFFER].into_boxed_slice(),
            pos: 0,
            end: 0,
            offset: 0,
            skipped: 0,
            budget: 0,
            over_budget: false,
        }
    }

    /// Makes at least `min` bytes available (fewer only at end of input, none at the end) and
    /// returns everything available.
    fn fill(&mut self, min: usize) -> io::Result<&[u8]> {
        while self.end - self.pos < min && self.refill()? {}
        Ok(&self.buf[self.pos..self.end])
    }

    /// Moves what is left to the front and appends from `inner`; false at end of input.
    fn refill(&mut self) -> io::Result<bool> {
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
        let chunk = loop {
            match self.inner.fill_buf() {
                Ok(chunk) => break chunk,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        };
        let n = chunk.len().min(self.buf.len() - self.end);
        if n == 0 {
            return Ok(false);
        }
        self.buf[self.end..self.end + n].copy_from_slice(&chunk[..n]);
        self.inner.consume(n);
        self.end += n;
        Ok(true)
    }

    /// Consumes `n` available bytes on the scanner's own account.
    fn skip(&mut self, n: usize) {
        let n = n.min(self.end - self.pos);
        self.pos += n;
        self.offset += n as u64;
        self.skipped += n as u64;
    }

    fn begin_event(&mut self) {
        self.budget = MAX_MARKUP;
        self.over_budget = false;
    }
}

impl<R: BufRead> Read for Source<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

/// What `quick-xml` reads through: the same buffer, limited to the current budget.
impl<R: BufRead> BufRead for Source<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.budget == 0 {
            self.over_budget = true;
            return Err(io::Error::other("markup too long"));
        }
        if self.pos == self.end {
            self.refill()?;
        }
        let n = (self.end - self.pos).min(self.budget);
        Ok(&self.buf[self.pos..self.pos + n])
    }

    fn consume(&mut self, amount: usize) {
        let amount = amount.min(self.end - self.pos);
        self.pos += amount;
        self.offset += amount as u64;
        self.budget = self.budget.saturating_sub(amount);
    }
}
