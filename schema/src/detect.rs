//! Content-based format detection.
//!
//! [`detect`] reads a piece of evidence once, in a single streaming pass with bounded memory,
//! and says what it is: its [`Format`], the [`Kind`] its content implies, the format's version,
//! the in-toto predicate type and the artifact digests it is about (`subjects`). The file name is
//! never consulted: `scan.json` may hold anything.
//!
//! Detection is deliberately forgiving about documents it cannot recognise (they become
//! `unknown`, or `text`/`markdown`) and strict about documents that identify themselves but are
//! broken (an evault approval without a decision, a DSSE envelope whose payload is not base64):
//! those are [`DetectError::Invalid`]. When a user or a bundle manifest *declares* what a file
//! is, [`resolve_kind`] checks the declaration against the content.

use std::io::{self, BufRead, BufReader, Read};

use base64::Engine as _;

use crate::documents::{self, NativeDocument};
use crate::json_probe::{
    self, Container, ContainerType, JsonFacts, LongString, ProbeConfig, ProbeError,
};
use crate::model::{Format, Kind};
use crate::xml_probe::{self, XmlFacts, XmlProbeError};

/// Bytes of the start of the input kept in memory for text sniffing and for parsing small
/// documents whole (evault's own documents must fit in it).
pub const HEAD_LIMIT: usize = 1 << 20;

/// Largest base64 DSSE payload decoded to look inside (predicate type, subjects).
pub const PAYLOAD_LIMIT: usize = 16 << 20;

/// Most subjects taken from one document.
pub const SUBJECT_LIMIT: usize = 4096;

/// What [`detect`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub format: Format,
    /// The kind the content implies (refined from [`Format::default_kind`] by content).
    pub kind: Kind,
    /// The format's own version, e.g. `1.5` (CycloneDX), `2.3` (SPDX), `v0.3` (Sigstore bundle).
    pub format_version: Option<String>,
    /// The in-toto predicate type, when the evidence is or wraps an in-toto Statement.
    pub predicate_type: Option<String>,
    /// `sha256:<hex>` digests of the artifacts the content says it is about.
    pub subjects: Vec<String>,
    /// evault's own documents, parsed and validated.
    pub native: Option<NativeDocument>,
    /// Why a structured reading was abandoned (e.g. "invalid JSON at line 3, column 7: ..."),
    /// kept so that a declared kind can be refused with the reason.
    pub syntax_error: Option<String>,
    /// Things worth telling the user that do not stop the push.
    pub warnings: Vec<String>,
}

impl Detection {
    fn new(format: Format) -> Self {
        Detection {
            format,
            kind: format.default_kind(),
            format_version: None,
            predicate_type: None,
            subjects: Vec::new(),
            native: None,
            syntax_error: None,
            warnings: Vec::new(),
        }
    }

    fn version(mut self, v: Option<impl Into<String>>) -> Self {
        self.format_version = v.map(Into::into);
        self
    }

    fn kind(mut self, kind: Kind) -> Self {
        self.kind = kind;
        self
    }

    /// What unreadable content is recorded as: unknown bytes, with nothing taken from them.
    pub fn unknown() -> Self {
        Detection::new(Format::Unknown)
    }

    /// A short description for messages: `CycloneDX JSON 1.5` or `plain text`.
    pub fn describe(&self) -> String {
        match &self.format_version {
            Some(v) => format!("{} {v}", self.format.title()),
            None => self.format.title().to_string(),
        }
    }
}

/// Why detection refused the content.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// The content identifies itself as `format` but is not a valid instance of it.
    #[error("not a valid {}: {reason}", format.title())]
    Invalid { format: Format, reason: String },
    /// The content must not be stored at all (e.g. a private key).
    #[error("{0}")]
    Refused(String),
    #[error("read failed: {0}")]
    Io(#[from] io::Error),
}

/// Reads `reader` to its end and says what it holds.
pub fn detect<R: Read>(reader: R) -> Result<Detection, DetectError> {
    let mut input = BufReader::with_capacity(64 * 1024, HeadCapture::new(reader));
    let first = first_significant_byte(&mut input)?;
    let structured = match first {
        Some(b'{') | Some(b'[') => Some(detect_json(&mut input)),
        Some(b'<') => Some(detect_xml(&mut input)),
        _ => None,
    };
    match structured {
        Some(Ok(found)) => Ok(found),
        Some(Err(Structured::Fatal(e))) => Err(e),
        Some(Err(Structured::Syntax(message))) => {
            // Not the JSON or XML it started out as: maybe text that happens to start with
            // '[' or '<' (Markdown often does). Text is judged by its head.
            fill_head(&mut input)?;
            let head = input.into_inner();
            let mut found = detect_text(&head.head, head.complete());
            if matches!(found.format, Format::Text | Format::Unknown) {
                found.warnings.push(format!(
                    "content starts like {} but is not: {message}; stored as {}",
                    if first == Some(b'<') { "XML" } else { "JSON" },
                    found.format
                ));
            }
            found.syntax_error = Some(message);
            Ok(found)
        }
        None => {
            fill_head(&mut input)?;
            let head = input.into_inner();
            let complete = head.complete();
            refuse_secrets(&head.head)?;
            Ok(detect_text(&head.head, complete))
        }
    }
}

/// Checks a declared kind and/or format against what detection found, and returns the kind the
/// record gets. Declarations are how a pipeline says "this file is our SBOM": if the content
/// disagrees, the push must fail rather than store something the gates will misread.
pub fn resolve_kind(
    found: &Detection,
    declared_kind: Option<Kind>,
    declared_format: Option<Format>,
) -> Result<Kind, String> {
    let why = || match &found.syntax_error {
        Some(e) => format!("; {e}"),
        None => String::new(),
    };
    if let Some(format) = declared_format
        && format != found.format
    {
        return Err(format!(
            "declares format {format} but content is {}{}",
            found.describe(),
            why()
        ));
    }
    match declared_kind {
        None => Ok(found.kind),
        Some(kind) if found.format.allows_kind(kind) => Ok(kind),
        Some(kind) => Err(format!(
            "declares kind {kind} but content is {}, which cannot be {kind}{}",
            found.describe(),
            why()
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Input plumbing

/// A reader that keeps the first [`HEAD_LIMIT`] bytes it passes on.
struct HeadCapture<R> {
    inner: R,
    head: Vec<u8>,
    total: u64,
    eof: bool,
}

impl<R> HeadCapture<R> {
    fn new(inner: R) -> Self {
        HeadCapture {
            inner,
            head: Vec::new(),
            total: 0,
            eof: false,
        }
    }

    /// Whether `head` holds the whole input.
    fn complete(&self) -> bool {
        self.eof && self.total == self.head.len() as u64
    }
}

impl<R: Read> Read for HeadCapture<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 {
            self.eof = true;
        }
        let room = HEAD_LIMIT.saturating_sub(self.head.len()).min(n);
        self.head.extend_from_slice(&buf[..room]);
        self.total += n as u64;
        Ok(n)
    }
}

/// Reads until the head buffer is full or the input ends, so that [`HeadCapture::complete`]
/// tells whether the head is the whole input. The rest of the input is left unread: a caller
/// streaming the same bytes elsewhere sees the detector stop listening.
fn fill_head<R: Read>(input: &mut BufReader<HeadCapture<R>>) -> io::Result<()> {
    io::copy(&mut input.take(HEAD_LIMIT as u64 + 1), &mut io::sink())?;
    Ok(())
}

/// The first byte after an optional UTF-8 BOM and whitespace, without consuming anything.
fn first_significant_byte<R: BufRead>(input: &mut R) -> io::Result<Option<u8>> {
    let buf = input.fill_buf()?;
    let buf = buf.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(buf);
    Ok(buf.iter().copied().find(|b| !b.is_ascii_whitespace()))
}

enum Structured {
    /// Not well-formed: fall back to treating the bytes as text.
    Syntax(String),
    Fatal(DetectError),
}

impl From<ProbeError> for Structured {
    fn from(e: ProbeError) -> Self {
        match e {
            ProbeError::Syntax(s) => Structured::Syntax(s.to_string()),
            ProbeError::Io(e) => Structured::Fatal(DetectError::Io(e)),
        }
    }
}

impl From<XmlProbeError> for Structured {
    fn from(e: XmlProbeError) -> Self {
        match e {
            XmlProbeError::Syntax(s) => Structured::Syntax(s.to_string()),
            XmlProbeError::Io(e) => Structured::Fatal(DetectError::Io(e)),
        }
    }
}

fn invalid(format: Format, reason: impl Into<String>) -> Structured {
    Structured::Fatal(DetectError::Invalid {
        format,
        reason: reason.into(),
    })
}

// ---------------------------------------------------------------------------------------------
// JSON

const CAPTURE: &[&str] = &["/payload", "/dsseEnvelope/payload"];
const COLLECT: &[&str] = &["/subject/*/digest/sha256", "/attestations/*/predicateType"];

fn probe_config() -> ProbeConfig<'static> {
    ProbeConfig {
        max_depth: 6,
        scalar_limit: 1024,
        capture_long: CAPTURE,
        long_limit: PAYLOAD_LIMIT,
        collect: COLLECT,
        collect_limit: SUBJECT_LIMIT,
        max_paths: 4096,
        max_nesting: 512,
    }
}

/// Read access to the facts of one JSON document.
struct Facts<'a>(&'a JsonFacts);

impl Facts<'_> {
    fn str(&self, pointer: &str) -> Option<&str> {
        self.0.scalars.get(pointer).and_then(|s| s.as_str())
    }

    fn number(&self, pointer: &str) -> Option<&str> {
        match self.0.scalars.get(pointer) {
            Some(json_probe::Scalar::Number(n)) => Some(n),
            _ => None,
        }
    }

    fn has(&self, pointer: &str) -> bool {
        self.0.scalars.contains_key(pointer) || self.0.containers.contains_key(pointer)
    }

    fn container(&self, pointer: &str) -> Option<Container> {
        self.0.containers.get(pointer).copied()
    }

    fn is_object(&self, pointer: &str) -> bool {
        self.container(pointer)
            .is_some_and(|c| c.ty == ContainerType::Object)
    }

    fn array_len(&self, pointer: &str) -> Option<usize> {
        self.container(pointer)
            .filter(|c| c.ty == ContainerType::Array)
            .map(|c| c.len)
    }

    fn has_wild(&self, pattern: &str) -> bool {
        self.0.wildcard_paths.contains(pattern)
    }

    fn collected(&self, pattern: &str) -> impl Iterator<Item = &str> {
        self.0
            .collected
            .get(pattern)
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str())
    }

    fn long(&self, pointer: &str) -> Option<&LongString> {
        self.0.long_strings.get(pointer)
    }
}

fn detect_json<R: Read>(input: &mut BufReader<HeadCapture<R>>) -> Result<Detection, Structured> {
    let facts = json_probe::probe_json(&mut *input, &probe_config())?;
    let head = input.get_ref();
    let complete = head.complete();
    let mut found = classify_json(&Facts(&facts), &head.head, complete)?;
    if facts.documents > 1 {
        found.warnings.push(format!(
            "JSON Lines with {} documents; detected from the first",
            facts.documents
        ));
    }
    Ok(found)
}

fn classify_json(f: &Facts<'_>, head: &[u8], complete: bool) -> Result<Detection, Structured> {
    if let Some(type_uri) = f.str("/_type") {
        if let Some(format) = documents::native_type(type_uri) {
            return native(format, head, complete);
        }
        if let Some(version) = type_uri.strip_prefix("https://in-toto.io/Statement/") {
            return statement(f, Format::IntotoStatement, Some(version.to_string()));
        }
    }
    match f.str("/signed/_type") {
        Some("layout") if f.has("/signatures") => return Ok(Detection::new(Format::IntotoLayout)),
        Some("link") if f.has("/signatures") => return Ok(Detection::new(Format::IntotoLink)),
        _ => {}
    }
    let media_type = f.str("/mediaType");
    if media_type.is_some_and(|m| m.starts_with("application/vnd.dev.sigstore.trustedroot"))
        || (f.has("/tlogs") && f.has("/certificateAuthorities"))
    {
        return Ok(Detection::new(Format::SigstoreTrustedRoot)
            .version(media_type.and_then(media_type_version)));
    }
    if media_type.is_some_and(|m| m.starts_with("application/vnd.dev.sigstore.bundle"))
        || (f.is_object("/verificationMaterial")
            && (f.is_object("/dsseEnvelope") || f.is_object("/messageSignature")))
    {
        return sigstore_bundle(f, media_type);
    }
    if f.has("/payloadType") && f.has("/payload") && f.has("/signatures") {
        return dsse_envelope(f);
    }
    if f.str("/bomFormat") == Some("CycloneDX") {
        let Some(version) = f.str("/specVersion") else {
            return Err(invalid(Format::CyclonedxJson, "missing \"specVersion\""));
        };
        let kind = if f.has_wild("/vulnerabilities/*/analysis") {
            Kind::Vex
        } else if f.array_len("/vulnerabilities").is_some_and(|n| n > 0) {
            Kind::VulnScan
        } else {
            Kind::Sbom
        };
        return Ok(Detection::new(Format::CyclonedxJson)
            .version(Some(version))
            .kind(kind));
    }
    if let Some(v) = f.str("/spdxVersion").and_then(|v| v.strip_prefix("SPDX-")) {
        return Ok(Detection::new(Format::SpdxJson).version(Some(v)));
    }
    if let Some(v) = f.str("/document/csaf_version") {
        return Ok(Detection::new(Format::Csaf).version(Some(v)));
    }
    if let Some(ns) = f
        .str("/@context")
        .and_then(|c| c.strip_prefix("https://openvex.dev/ns"))
    {
        let version = ns.trim_start_matches('/');
        return Ok(
            Detection::new(Format::Openvex).version((!version.is_empty()).then_some(version))
        );
    }
    let sarif_schema = f
        .str("/$schema")
        .is_some_and(|s| s.to_ascii_lowercase().contains("sarif"));
    let sarif_shape = f.str("/version").is_some_and(|v| v.starts_with("2."))
        && f.array_len("/runs").is_some()
        && (f.array_len("/runs") == Some(0) || f.has("/runs/0/tool"));
    if sarif_schema || sarif_shape {
        if f.array_len("/runs").is_none() {
            return Err(invalid(Format::Sarif, "missing \"runs\""));
        }
        return Ok(Detection::new(Format::Sarif).version(f.str("/version")));
    }
    if f.array_len("/matches").is_some()
        && (f.str("/descriptor/name") == Some("grype") || (f.has("/source") && f.has("/distro")))
    {
        return Ok(Detection::new(Format::GrypeJson).version(f.str("/descriptor/version")));
    }
    if let Some(v) = f.number("/SchemaVersion")
        && (f.has("/ArtifactName") || f.has("/Results"))
    {
        return Ok(Detection::new(Format::TrivyJson).version(Some(v)));
    }
    if f.array_len("/results").is_some()
        && f.has_wild("/results/*/source")
        && f.has_wild("/results/*/packages")
    {
        return Ok(Detection::new(Format::OsvScannerJson));
    }
    if f.array_len("/attestations").is_some() && f.has_wild("/attestations/*/bundle") {
        let provenance = f
            .collected("/attestations/*/predicateType")
            .any(is_slsa_provenance);
        return Ok(Detection::new(Format::NpmAttestations).kind(if provenance {
            Kind::Provenance
        } else {
            Kind::Attestation
        }));
    }
    if f.is_object("/image_summary") && f.is_object("/provenance_summary") {
        return Ok(Detection::new(Format::GcbProvenance));
    }
    if f.str("/buildType").is_some() && f.has("/builder/id") {
        return Ok(Detection::new(Format::SlsaPredicate).version(Some("v0.2")));
    }
    if f.has("/buildDefinition/buildType") && f.has("/runDetails/builder/id") {
        return Ok(Detection::new(Format::SlsaPredicate).version(Some("v1")));
    }
    Ok(Detection::new(Format::Unknown))
}

/// `application/vnd.dev.sigstore.bundle+json;version=0.2` → `v0.2`,
/// `application/vnd.dev.sigstore.bundle.v0.3+json` → `v0.3`.
fn media_type_version(media_type: &str) -> Option<String> {
    if let Some((_, v)) = media_type.split_once("version=") {
        return Some(format!("v{}", v.trim()));
    }
    let start = media_type.find(".v")? + 1;
    let rest = &media_type[start..];
    let end = rest.find('+').unwrap_or(rest.len());
    Some(rest[..end].to_string())
}

fn native(format: Format, head: &[u8], complete: bool) -> Result<Detection, Structured> {
    if !complete {
        return Err(invalid(
            format,
            format!("document larger than {} KiB", HEAD_LIMIT / 1024),
        ));
    }
    let doc = documents::parse_native(head).map_err(|e| invalid(format, e.to_string()))?;
    let mut found = Detection::new(format);
    found.subjects = doc.subjects();
    found.native = Some(doc);
    Ok(found)
}

/// An in-toto Statement (bare, or the payload of an envelope).
fn statement(
    f: &Facts<'_>,
    format: Format,
    version: Option<String>,
) -> Result<Detection, Structured> {
    let Some(predicate_type) = f.str("/predicateType") else {
        return Err(invalid(
            format,
            "in-toto Statement without \"predicateType\"",
        ));
    };
    if f.array_len("/subject").is_none() {
        return Err(invalid(
            format,
            "in-toto Statement without a \"subject\" list",
        ));
    }
    let mut found = Detection::new(format)
        .version(version)
        .kind(kind_of_predicate(predicate_type));
    found.predicate_type = Some(predicate_type.to_string());
    found.subjects = sha256_subjects(f.collected("/subject/*/digest/sha256"));
    Ok(found)
}

fn kind_of_predicate(predicate_type: &str) -> Kind {
    let p = predicate_type;
    if is_slsa_provenance(p) {
        Kind::Provenance
    } else if p.starts_with("https://spdx.dev/") || p.starts_with("https://cyclonedx.org/bom") {
        Kind::Sbom
    } else if p.starts_with("https://openvex.dev/ns") {
        Kind::Vex
    } else if p.starts_with("https://in-toto.io/attestation/vulns")
        || p.starts_with("https://cosign.sigstore.dev/attestation/vuln")
    {
        Kind::VulnScan
    } else if p.starts_with("https://in-toto.io/attestation/test-result") {
        Kind::TestReport
    } else if p == "https://sigstore.dev/cosign/sign/v1" {
        Kind::Signature
    } else {
        Kind::Attestation
    }
}

fn is_slsa_provenance(predicate_type: &str) -> bool {
    predicate_type.starts_with("https://slsa.dev/provenance/")
}

fn sha256_subjects<'a>(digests: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for hex in digests {
        if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let subject = format!("sha256:{}", hex.to_ascii_lowercase());
            if !out.contains(&subject) && out.len() < SUBJECT_LIMIT {
                out.push(subject);
            }
        }
    }
    out
}

/// Decodes a DSSE payload and classifies the in-toto Statement inside, if it is one.
fn envelope_payload(
    format: Format,
    payload: Option<&LongString>,
    payload_type: Option<&str>,
) -> Result<Option<Detection>, Structured> {
    let encoded = match payload {
        Some(LongString::Captured(s)) => s,
        Some(LongString::TooLong) => return Ok(None),
        None => return Err(invalid(format, "DSSE envelope \"payload\" is not a string")),
    };
    let bytes = decode_base64(encoded)
        .ok_or_else(|| invalid(format, "DSSE envelope \"payload\" is not valid base64"))?;
    let in_toto = payload_type.is_some_and(|t| t.starts_with("application/vnd.in-toto"));
    match json_probe::probe_json(bytes.as_slice(), &probe_config()) {
        Ok(inner) => {
            let inner = Facts(&inner);
            match inner
                .str("/_type")
                .and_then(|t| t.strip_prefix("https://in-toto.io/Statement/"))
            {
                Some(_) => statement(&inner, format, None).map(Some),
                None if in_toto => Err(invalid(
                    format,
                    "payloadType is in-toto but the payload is not an in-toto Statement",
                )),
                None => Ok(None),
            }
        }
        Err(e) if in_toto => Err(invalid(format, format!("in-toto payload is not JSON: {e}"))),
        Err(_) => Ok(None),
    }
}

fn dsse_envelope(f: &Facts<'_>) -> Result<Detection, Structured> {
    let format = Format::DsseEnvelope;
    if f.array_len("/signatures").is_none() {
        return Err(invalid(format, "\"signatures\" is not a list"));
    }
    let payload_type = f.str("/payloadType");
    Ok(envelope_payload(format, f.long("/payload"), payload_type)?
        .unwrap_or_else(|| Detection::new(format)))
}

fn sigstore_bundle(f: &Facts<'_>, media_type: Option<&str>) -> Result<Detection, Structured> {
    let format = Format::SigstoreBundle;
    let version = media_type.and_then(|m| {
        m.starts_with("application/vnd.dev.sigstore.bundle")
            .then(|| media_type_version(m))
            .flatten()
    });
    let mut found = if f.is_object("/dsseEnvelope") {
        let payload_type = f.str("/dsseEnvelope/payloadType");
        match envelope_payload(format, f.long("/dsseEnvelope/payload"), payload_type)? {
            Some(inner) => inner,
            None => Detection::new(format).kind(Kind::Attestation),
        }
    } else if f.is_object("/messageSignature") {
        let mut found = Detection::new(format).kind(Kind::Signature);
        if f.str("/messageSignature/messageDigest/algorithm") == Some("SHA2_256")
            && let Some(digest) = f
                .str("/messageSignature/messageDigest/digest")
                .and_then(decode_base64)
            && digest.len() == 32
        {
            found.subjects = vec![format!("sha256:{}", to_hex(&digest))];
        }
        found
    } else {
        return Err(invalid(
            format,
            "neither \"dsseEnvelope\" nor \"messageSignature\"",
        ));
    };
    found.format_version = version;
    if found.format_version.is_none() {
        found.warnings.push(format!(
            "unrecognised Sigstore bundle media type {:?}; verification will reject it",
            media_type.unwrap_or("(none)")
        ));
    }
    Ok(found)
}

/// DSSE payloads and Sigstore digests are standard base64, but some producers write the URL-safe
/// alphabet or drop the padding.
pub(crate) fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(s))
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(s))
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s))
        .ok()
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------------------------
// XML

fn detect_xml<R: Read>(input: &mut BufReader<HeadCapture<R>>) -> Result<Detection, Structured> {
    let facts = xml_probe::probe_xml(&mut *input)?;
    Ok(classify_xml(&facts))
}

fn classify_xml(x: &XmlFacts) -> Detection {
    let ns = x.namespace.as_deref().unwrap_or("");
    if x.root == "bom"
        && let Some(v) = ns.strip_prefix("http://cyclonedx.org/schema/bom/")
    {
        let kind = if x.children.contains("vulnerabilities") {
            if x.children.contains("components") {
                Kind::VulnScan
            } else {
                Kind::Vex
            }
        } else {
            Kind::Sbom
        };
        return Detection::new(Format::CyclonedxXml)
            .version(Some(v))
            .kind(kind);
    }
    if x.root == "testsuites" || x.root == "testsuite" {
        return Detection::new(Format::JunitXml);
    }
    Detection::new(Format::Unknown)
}

// ---------------------------------------------------------------------------------------------
// Text and small binary formats

/// Private keys have no business in an evidence vault, and a vault never forgets.
fn refuse_secrets(head: &[u8]) -> Result<(), DetectError> {
    let text = String::from_utf8_lossy(&head[..head.len().min(64 * 1024)]);
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("-----BEGIN") && line.ends_with("PRIVATE KEY-----") {
            return Err(DetectError::Refused(
                "content is a private key; evault refuses to store secrets (push the public key)"
                    .into(),
            ));
        }
    }
    Ok(())
}

fn detect_text(head: &[u8], complete: bool) -> Detection {
    if complete && let Some(found) = detect_signature(head) {
        return found;
    }
    let Some(text) = utf8_text(head, complete) else {
        return Detection::new(Format::Unknown);
    };
    let trimmed = text.trim_start();
    if trimmed.starts_with("-----BEGIN PUBLIC KEY-----")
        || trimmed.starts_with("-----BEGIN EC PUBLIC KEY-----")
        || trimmed.starts_with("-----BEGIN RSA PUBLIC KEY-----")
    {
        return Detection::new(Format::PemPublicKey);
    }
    if trimmed.starts_with("-----BEGIN CERTIFICATE-----") {
        return Detection::new(Format::PemCertificate);
    }
    if let Some(version) = text.lines().find_map(|l| {
        l.trim()
            .strip_prefix("SPDXVersion:")
            .map(|v| v.trim())
            .and_then(|v| v.strip_prefix("SPDX-"))
    }) {
        return Detection::new(Format::SpdxTagValue).version(Some(version));
    }
    if is_markdown(text) {
        let plan = text.lines().any(|l| {
            let l = l.trim_start();
            l.starts_with('#') && {
                let h = l.to_ascii_lowercase();
                h.contains("rollback plan") || h.contains("rollback procedure")
            }
        });
        return Detection::new(Format::Markdown).kind(if plan {
            Kind::RollbackPlan
        } else {
            Kind::Other
        });
    }
    Detection::new(Format::Text)
}

/// The input as text, if it is UTF-8 without NULs or other control characters. When `head` is
/// only the start of the input, a multi-byte character cut at its end is tolerated.
fn utf8_text(head: &[u8], complete: bool) -> Option<&str> {
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let text = match std::str::from_utf8(head) {
        Ok(t) => t,
        Err(e) if !complete && e.error_len().is_none() => {
            std::str::from_utf8(&head[..e.valid_up_to()]).ok()?
        }
        Err(_) => return None,
    };
    let binary = text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t' | '\x0c'));
    (!binary).then_some(text)
}

fn is_markdown(text: &str) -> bool {
    text.lines().take(2000).any(|line| {
        let hashes = line.bytes().take_while(|&b| b == b'#').count();
        let heading = (1..=6).contains(&hashes)
            && line[hashes..].starts_with([' ', '\t'])
            && !line[hashes..].trim().is_empty();
        heading || line.trim_start().starts_with("```") || line.contains("](http")
    })
}

/// A raw or base64-encoded DER ECDSA signature (`SEQUENCE { INTEGER r, INTEGER s }`), as
/// `cosign sign-blob` and `openssl dgst -sign` write them.
fn detect_signature(bytes: &[u8]) -> Option<Detection> {
    if is_der_ecdsa_signature(bytes) {
        return Some(Detection::new(Format::SignatureDer));
    }
    if bytes.len() <= 512 {
        let text = std::str::from_utf8(bytes).ok()?.trim();
        if !text.is_empty()
            && let Some(der) = decode_base64(text)
            && is_der_ecdsa_signature(&der)
        {
            return Some(Detection::new(Format::SignatureBase64));
        }
    }
    None
}

fn is_der_ecdsa_signature(b: &[u8]) -> bool {
    fn integer(b: &[u8]) -> Option<&[u8]> {
        let (&tag, rest) = b.split_first()?;
        let (&len, rest) = rest.split_first()?;
        let len = usize::from(len);
        (tag == 0x02 && (1..=66).contains(&len) && rest.len() >= len).then(|| &rest[len..])
    }
    if b.len() < 8 || b.len() > 141 || b[0] != 0x30 {
        return false;
    }
    let (len, body) = match b[1] {
        n if n < 0x80 => (usize::from(n), &b[2..]),
        0x81 if b.len() > 3 => (usize::from(b[2]), &b[3..]),
        _ => return false,
    };
    if len != body.len() {
        return false;
    }
    integer(body)
        .and_then(integer)
        .is_some_and(|rest| rest.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detect_bytes(b: &[u8]) -> Detection {
        detect(b).unwrap()
    }

    #[test]
    fn media_type_versions() {
        assert_eq!(
            media_type_version("application/vnd.dev.sigstore.bundle+json;version=0.2").as_deref(),
            Some("v0.2")
        );
        assert_eq!(
            media_type_version("application/vnd.dev.sigstore.bundle.v0.3+json").as_deref(),
            Some("v0.3")
        );
    }

    #[test]
    fn der_signatures() {
        let mut sig = vec![0x30, 0x44, 0x02, 0x20];
        sig.extend([0x11; 32]);
        sig.extend([0x02, 0x20]);
        sig.extend([0x22; 32]);
        assert!(is_der_ecdsa_signature(&sig));
        assert_eq!(detect_bytes(&sig).format, Format::SignatureDer);
        let b64 = base64::engine::general_purpose::STANDARD.encode(&sig);
        assert_eq!(detect_bytes(b64.as_bytes()).format, Format::SignatureBase64);
        sig.push(0);
        assert!(!is_der_ecdsa_signature(&sig));
    }

    #[test]
    fn text_markdown_and_binary() {
        assert_eq!(detect_bytes(b"hello\n").format, Format::Text);
        let plan = detect_bytes(b"# Rollback Plan\n\n## Trigger Conditions\n- error rate > 5%\n");
        assert_eq!(
            (plan.format, plan.kind),
            (Format::Markdown, Kind::RollbackPlan)
        );
        let notes = detect_bytes(b"# Release notes\n\nNothing to see.\n");
        assert_eq!((notes.format, notes.kind), (Format::Markdown, Kind::Other));
        assert_eq!(detect_bytes(&[0u8, 1, 2, 3, 0xff]).format, Format::Unknown);
        assert_eq!(detect_bytes(b"").format, Format::Text);
    }

    #[test]
    fn text_is_judged_by_its_head_without_reading_the_rest() {
        struct Counting<R>(R, u64);
        impl<R: Read> Read for Counting<R> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.0.read(buf)?;
                self.1 += n as u64;
                Ok(n)
            }
        }
        let text = b"a line of build log\n".repeat(500_000);
        let mut reader = Counting(text.as_slice(), 0);
        let found = detect(&mut reader).unwrap();
        assert_eq!(found.format, Format::Text);
        assert!(
            reader.1 < text.len() as u64 / 4,
            "read {} of {} bytes",
            reader.1,
            text.len()
        );
    }

    #[test]
    fn private_keys_are_refused() {
        let err =
            detect(&b"-----BEGIN EC PRIVATE KEY-----\nMHcC\n-----END EC PRIVATE KEY-----\n"[..])
                .unwrap_err();
        assert!(matches!(err, DetectError::Refused(_)), "{err}");
    }

    #[test]
    fn a_gate_decision_is_detected_with_its_links() {
        let doc = br#"{
          "_type": "https://evault.dev/policy-result/v1",
          "blueprint": { "name": "checkout-api", "version": "1.4.2" },
          "git_sha": "3CDD1207E3F0E552BFE79149DD98BF5151F2378C",
          "environment": "production",
          "artifact": "sha256:63ede188c102dc7e741492f51b5271003c0e1323a6e3f1e2f5c71545315bf715",
          "decision": "warn",
          "time": "2025-03-14T09:30:00Z",
          "actor": "github-actions[bot]",
          "policy": {
            "source": "vault",
            "engine": "toml",
            "digest": "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
          },
          "requirements": [
            { "name": "evidence:sbom", "status": "pass", "message": "SBOM present.",
              "records": ["0123456789abcdef0123456789abcdef"] },
            { "name": "vulnerabilities:high", "status": "warn",
              "message": "2 high vulnerabilities, at most 5 allowed." }
          ]
        }"#;
        let found = detect_bytes(doc);
        assert_eq!(
            (found.format, found.kind),
            (Format::EvaultPolicyResult, Kind::PolicyResult)
        );
        assert_eq!(found.kind.as_str(), "policy-result");
        assert_eq!(
            found.subjects,
            ["sha256:63ede188c102dc7e741492f51b5271003c0e1323a6e3f1e2f5c71545315bf715"]
        );
        let native = found.native.as_ref().unwrap();
        assert_eq!(native.blueprint(), Some(("checkout-api", Some("1.4.2"))));
        assert_eq!(
            native.git_sha(),
            Some("3cdd1207e3f0e552bfe79149dd98bf5151f2378c")
        );
        assert_eq!(native.environment(), "production");
        let err = resolve_kind(&found, Some(Kind::Approval), None).unwrap_err();
        assert!(err.contains("cannot be approval"), "{err}");

        // A gate decision that contradicts itself is refused, not stored as unknown.
        let bad = String::from_utf8(doc.to_vec())
            .unwrap()
            .replace(r#""decision": "warn""#, r#""decision": "pass""#);
        let err = detect(bad.as_bytes()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("not a valid evault gate decision: field 'decision'"),
            "{err}"
        );
    }

    #[test]
    fn declared_kinds_are_checked() {
        let text = detect_bytes(b"just words\n");
        assert_eq!(
            resolve_kind(&text, Some(Kind::RollbackPlan), None),
            Ok(Kind::RollbackPlan)
        );
        let err = resolve_kind(&text, Some(Kind::Sbom), None).unwrap_err();
        assert!(
            err.contains("declares kind sbom but content is plain text"),
            "{err}"
        );
        let err = resolve_kind(&text, None, Some(Format::Sarif)).unwrap_err();
        assert!(err.contains("declares format sarif"), "{err}");
    }
}
