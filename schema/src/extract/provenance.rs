//! The facts of a SLSA build provenance attestation: who built it (`builder_id`), how
//! (`build_type`), from what source (`source_repo`, `source_commit`) and which artifacts it is
//! about (`subjects`).
//!
//! Provenance reaches the vault in many wrappings, and gates must read the same facts from all
//! of them: a bare in-toto Statement, a DSSE envelope, a Sigstore bundle (v0.1 to v0.3) with a
//! DSSE envelope, the npm registry's attestations document, a Google Cloud Build provenance
//! export, or a bare SLSA predicate. [`statement_bytes`] unwraps the first five down to the
//! Statement's exact bytes (what a signature covers, so verification shares it);
//! [`provenance`] then reads the Statement and its predicate.
//!
//! # Reading the source
//!
//! SLSA says where the source came from in a different place in each version. The rules, in
//! order, per predicate version:
//!
//! * **v0.2**: `invocation.configSource` when it has a `uri`: the repository is that URI and the
//!   commit its `digest.gitCommit` (else `digest.sha1`); when that digest names no commit, the
//!   commit of a `materials` entry for the same repository. Without a `configSource.uri`: the
//!   first `materials` entry whose digest has `gitCommit` or `sha1`.
//! * **v1**: the first `buildDefinition.resolvedDependencies` entry whose digest has `gitCommit`
//!   or `sha1`; else `buildDefinition.externalParameters.workflow.repository` (GitHub's build
//!   types) with no commit.
//! * **v0.1** (Google Cloud Build): `materials[0]`; its commit is `digest.gitCommit`/`sha1`, or
//!   the `<hex>` of a `.../commit/<hex>` URI, which is how Cloud Build names its source.
//!
//! The repository and commit always come from the same entry, so a gate never pairs one
//! repository with another repository's commit. A repository URI is cleaned into a plain
//! repository address: a `git+` prefix is dropped and so is an `@<ref>` suffix in the path
//! (`git+https://github.com/org/repo@refs/heads/main` → `https://github.com/org/repo`); an `@` in
//! the authority (`https://user@host/...`) is user information and stays. A commit is
//! lowercased and kept only when it is 40 (SHA-1) or 64 (SHA-256) hex digits: anything else is
//! not a commit a gate could compare, so it becomes `None` rather than a misleading value.
//!
//! # Strictness
//!
//! Wrappings and the Statement are checked (a Statement `_type` other than in-toto v0.1/v1, a
//! payload that is not base64, a subject without a digest, a field of the wrong type, a
//! duplicated key are [`ExtractError`]s), because provenance that cannot be read exactly must
//! not be half-read into a gate. Fields evault does not read are not checked. A document that
//! simply wraps no SLSA provenance (another predicate type, a DSSE payload that is not in-toto,
//! a Sigstore bundle with a message signature) is `Ok(None)`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};

use super::{ExtractError, Provenance, Subject};
use crate::detect::{SUBJECT_LIMIT, decode_base64};
use crate::model::Format;

/// Largest document read: provenance is small (tens of KiB), and the whole document is held in
/// memory, so anything bigger is refused rather than parsed.
const MAX_DOCUMENT: usize = 16 << 20;

/// Longest error reason: serde repeats offending values, which may be long user data.
const MAX_REASON: usize = 300;

const STATEMENT_V0_1: &str = "https://in-toto.io/Statement/v0.1";
const STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";
/// The DSSE payload type of an in-toto Statement.
const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// Every SLSA provenance predicate type starts with this.
const SLSA_PROVENANCE: &str = "https://slsa.dev/provenance/";

/// The provenance in a document: a bare in-toto Statement (v0.1/v1), a DSSE envelope wrapping
/// one, a Sigstore bundle (v0.1–v0.3) with a `dsseEnvelope` wrapping one, an npm attestations
/// document (the provenance entry's bundle), a Google Cloud Build provenance export (the first
/// `provenance_summary.provenance[].envelope`), or a bare SLSA predicate
/// ([`Format::SlsaPredicate`]; then `predicate_type` is inferred: v0.2 or v1 by shape, and
/// `subjects` are empty).
///
/// `Ok(None)` when the document wraps no SLSA provenance (e.g. a Statement with another
/// predicate type), and for formats that never hold provenance. JSON Lines input (several
/// envelopes, one a line, as `.intoto.jsonl` files may be) is read from its first document.
/// See the module documentation for how the source is found.
///
/// # Errors
///
/// An [`ExtractError`] naming the problem when the document is larger than 16 MiB, is not the
/// JSON its format says, or wraps a Statement or SLSA predicate evault cannot read exactly.
pub fn provenance(format: Format, bytes: &[u8]) -> Result<Option<Provenance>, ExtractError> {
    check_size(bytes)?;
    if format == Format::SlsaPredicate {
        return bare_predicate(bytes).map(Some);
    }
    match wrapped_statement(format, bytes)? {
        Some(wrapped) => from_statement(
            &wrapped.statement,
            &wrapped.what,
            wrapped.claimed.as_deref(),
        ),
        None => Ok(None),
    }
}

/// The in-toto Statement wrapped by a document of these formats (bare, DSSE, Sigstore bundle),
/// decoded — shared by provenance extraction and (later) verification.
///
/// The bytes are exactly the decoded DSSE payload (what the signature covers), or for a bare
/// Statement the first JSON document of the input. Google Cloud Build exports and npm
/// attestations documents are unwrapped as [`provenance`] does (the first envelope; the SLSA
/// provenance entry's bundle). `Ok(None)` when the payload is not in-toto
/// (`payloadType` other than `application/vnd.in-toto+json`), when a Sigstore bundle holds a
/// message signature, when an npm document has no provenance entry, and for other formats. The
/// Statement itself is not checked here: [`provenance`] does that.
///
/// # Errors
///
/// An [`ExtractError`] when the document is larger than 16 MiB, is not the JSON its format
/// says, or its in-toto payload is missing or not base64.
pub fn statement_bytes(format: Format, bytes: &[u8]) -> Result<Option<Vec<u8>>, ExtractError> {
    check_size(bytes)?;
    Ok(wrapped_statement(format, bytes)?.map(|w| w.statement))
}

// ---------------------------------------------------------------------------------------------
// Wrappings

/// A Statement taken out of its wrapping.
struct Wrapped {
    statement: Vec<u8>,
    /// Where the Statement was found, for messages ("in-toto Statement in the DSSE payload").
    what: String,
    /// The predicate type the wrapping claims for it (an npm attestations entry's
    /// `predicateType`), which the Statement must agree with.
    claimed: Option<String>,
}

impl Wrapped {
    fn new(statement: Vec<u8>, found_in: &str) -> Self {
        Wrapped {
            statement,
            what: format!("in-toto Statement{found_in}"),
            claimed: None,
        }
    }
}

/// A DSSE envelope; only what unwrapping needs (signatures are verification's business).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    payload_type: Option<String>,
    payload: Option<String>,
}

/// A Sigstore bundle: v0.1 to v0.3 all put the DSSE envelope at `dsseEnvelope`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bundle {
    dsse_envelope: Option<Envelope>,
    message_signature: Option<IgnoredAny>,
}

/// The npm registry's attestations document.
#[derive(Deserialize)]
struct NpmDocument {
    attestations: Vec<NpmAttestation>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NpmAttestation {
    predicate_type: Option<String>,
    bundle: Option<Bundle>,
}

/// Google Cloud Build's provenance export (`gcloud artifacts docker images describe
/// --show-provenance`): the signed Statement is in `provenance_summary.provenance[].envelope`.
/// (The unsigned copy at `build.intotoStatement` is ignored.)
#[derive(Deserialize)]
struct GcbExport {
    provenance_summary: Option<GcbSummary>,
}

#[derive(Deserialize)]
struct GcbSummary {
    provenance: Option<Vec<GcbOccurrence>>,
}

#[derive(Deserialize)]
struct GcbOccurrence {
    envelope: Option<Envelope>,
}

fn wrapped_statement(format: Format, bytes: &[u8]) -> Result<Option<Wrapped>, ExtractError> {
    match format {
        Format::IntotoStatement => {
            let doc = first_document(bytes, "in-toto Statement")?;
            require_object(doc, "in-toto Statement")?;
            Ok(Some(Wrapped::new(doc.to_vec(), "")))
        }
        Format::DsseEnvelope => {
            let what = "DSSE envelope";
            let envelope: Envelope = parse(first_document(bytes, what)?, what)?;
            Ok(envelope_payload(&envelope, what)?.map(|s| Wrapped::new(s, " in the DSSE payload")))
        }
        Format::SigstoreBundle => {
            let what = "Sigstore bundle";
            let bundle: Bundle = parse(first_document(bytes, what)?, what)?;
            Ok(bundle_payload(&bundle, what)?
                .map(|s| Wrapped::new(s, " in the Sigstore bundle's DSSE payload")))
        }
        Format::NpmAttestations => npm_statement(bytes),
        Format::GcbProvenance => gcb_statement(bytes),
        _ => Ok(None),
    }
}

/// The decoded payload of an envelope, when it is an in-toto Statement.
fn envelope_payload(envelope: &Envelope, what: &str) -> Result<Option<Vec<u8>>, ExtractError> {
    let Some(payload_type) = &envelope.payload_type else {
        return Err(error(what, "DSSE envelope without a \"payloadType\""));
    };
    if payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Ok(None);
    }
    let Some(payload) = &envelope.payload else {
        return Err(error(what, "DSSE envelope without a \"payload\""));
    };
    decode_base64(payload)
        .map(Some)
        .ok_or_else(|| error(what, "DSSE \"payload\" is not valid base64"))
}

fn bundle_payload(bundle: &Bundle, what: &str) -> Result<Option<Vec<u8>>, ExtractError> {
    match (&bundle.dsse_envelope, &bundle.message_signature) {
        (Some(envelope), _) => envelope_payload(envelope, what),
        (None, Some(_)) => Ok(None),
        (None, None) => Err(error(
            what,
            "neither \"dsseEnvelope\" nor \"messageSignature\"",
        )),
    }
}

/// The Statement of the npm document's SLSA provenance entry. The entry's own
/// `predicateType` is what the registry claims; the Statement must agree (checked later).
fn npm_statement(bytes: &[u8]) -> Result<Option<Wrapped>, ExtractError> {
    let what = "npm attestations";
    let doc: NpmDocument = parse(first_document(bytes, what)?, what)?;
    let Some((index, entry)) = doc.attestations.iter().enumerate().find(|(_, a)| {
        a.predicate_type
            .as_deref()
            .is_some_and(|t| t.starts_with(SLSA_PROVENANCE))
    }) else {
        return Ok(None);
    };
    let Some(bundle) = &entry.bundle else {
        return Err(error(
            what,
            format!("provenance attestation {index} without a \"bundle\""),
        ));
    };
    let in_bundle = format!("Sigstore bundle of npm attestation {index}");
    match bundle_payload(bundle, &in_bundle)? {
        Some(statement) => Ok(Some(Wrapped {
            statement,
            what: format!("in-toto Statement of npm attestation {index}"),
            claimed: entry.predicate_type.clone(),
        })),
        None => Err(error(
            &in_bundle,
            "a provenance attestation's bundle without an in-toto DSSE envelope",
        )),
    }
}

fn gcb_statement(bytes: &[u8]) -> Result<Option<Wrapped>, ExtractError> {
    let what = "Cloud Build provenance";
    let doc: GcbExport = parse(first_document(bytes, what)?, what)?;
    let envelope = doc
        .provenance_summary
        .and_then(|s| s.provenance)
        .into_iter()
        .flatten()
        .find_map(|o| o.envelope)
        .ok_or_else(|| error(what, "no \"provenance_summary.provenance[].envelope\""))?;
    Ok(envelope_payload(&envelope, what)?.map(|s| Wrapped::new(s, " in the Cloud Build envelope")))
}

// ---------------------------------------------------------------------------------------------
// The Statement

/// First reading of a Statement: what it is, before its predicate is read (the predicate may
/// precede `predicateType` in the JSON, and only SLSA predicates are read at all).
#[derive(Deserialize)]
struct StatementHeader {
    #[serde(rename = "_type")]
    type_uri: Option<String>,
    #[serde(rename = "predicateType")]
    predicate_type: Option<String>,
}

#[derive(Deserialize)]
struct StatementBody {
    subject: Option<Vec<RawSubject>>,
    predicate: Option<Predicate>,
    /// Cloud Build's legacy name for the predicate, used when `predicate` is absent.
    #[serde(rename = "slsaProvenance")]
    slsa_provenance: Option<Predicate>,
}

/// A subject: `name` and `digest` in v0.1; a ResourceDescriptor (of which `name` is optional) in
/// v1.
#[derive(Deserialize)]
struct RawSubject {
    name: Option<String>,
    uri: Option<String>,
    digest: Option<BTreeMap<String, String>>,
}

fn from_statement(
    statement: &[u8],
    what: &str,
    claimed: Option<&str>,
) -> Result<Option<Provenance>, ExtractError> {
    let header: StatementHeader = parse(statement, what)?;
    match header.type_uri.as_deref() {
        Some(STATEMENT_V0_1 | STATEMENT_V1) => {}
        Some(other) => {
            return Err(error(
                what,
                format!(
                    "\"_type\" {:?} is neither {STATEMENT_V0_1} nor {STATEMENT_V1}",
                    excerpt(other)
                ),
            ));
        }
        None => return Err(error(what, "no \"_type\"")),
    }
    let Some(predicate_type) = header.predicate_type else {
        return Err(error(what, "no \"predicateType\""));
    };
    if let Some(claimed) = claimed
        && claimed != predicate_type
    {
        return Err(error(
            what,
            format!(
                "predicateType {:?} differs from the {:?} its attestation entry claims",
                excerpt(&predicate_type),
                excerpt(claimed)
            ),
        ));
    }
    if !predicate_type.starts_with(SLSA_PROVENANCE) {
        return Ok(None);
    }
    let body: StatementBody = parse(statement, what)?;
    let Some(raw_subjects) = body.subject else {
        return Err(error(what, "no \"subject\" list"));
    };
    let subjects = subjects(raw_subjects, what)?;
    let Some(predicate) = body.predicate.or(body.slsa_provenance) else {
        return Err(error(
            what,
            "SLSA provenance Statement without a \"predicate\"",
        ));
    };
    let version = SlsaVersion::of(&predicate_type, &predicate);
    Ok(Some(facts(predicate_type, version, &predicate, subjects)))
}

/// The Statement's subjects; beyond [`SUBJECT_LIMIT`] they are dropped (as detection drops
/// them), so that a huge release is still recorded with its builder and source.
fn subjects(raw: Vec<RawSubject>, what: &str) -> Result<Vec<Subject>, ExtractError> {
    raw.into_iter()
        .take(SUBJECT_LIMIT)
        .enumerate()
        .map(|(i, s)| {
            let digest = s
                .digest
                .filter(|d| !d.is_empty())
                .ok_or_else(|| error(what, format!("subject {i} has no \"digest\"")))?;
            Ok(Subject {
                name: s.name.or(s.uri).unwrap_or_default(),
                digest: digest
                    .into_iter()
                    .map(|(algorithm, value)| (algorithm, normalise_hex(value)))
                    .collect(),
            })
        })
        .collect()
}

/// Hex digests in lowercase, so that they compare with the digests evault computes; values that
/// are not hex (some algorithms are base64) are kept as written.
fn normalise_hex(value: String) -> String {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        value.to_ascii_lowercase()
    } else {
        value
    }
}

// ---------------------------------------------------------------------------------------------
// SLSA predicates

/// The union of the SLSA v0.1, v0.2 and v1 predicate fields evault reads. Each version's fields
/// are distinct, so one struct reads them all; [`SlsaVersion`] says which to use.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Predicate {
    /// v0.1 and v0.2.
    builder: Option<Builder>,
    /// v0.2.
    build_type: Option<String>,
    /// v0.1.
    recipe: Option<Recipe>,
    /// v0.2.
    invocation: Option<Invocation>,
    /// v0.1 and v0.2.
    materials: Option<Vec<ResourceDescriptor>>,
    /// v1.
    build_definition: Option<BuildDefinition>,
    /// v1.
    run_details: Option<RunDetails>,
}

#[derive(Deserialize)]
struct Builder {
    id: Option<String>,
}

#[derive(Deserialize)]
struct Recipe {
    #[serde(rename = "type")]
    type_uri: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Invocation {
    config_source: Option<ResourceDescriptor>,
}

/// A material (v0.1, v0.2), `configSource` (v0.2) or resolved dependency (v1).
#[derive(Deserialize)]
struct ResourceDescriptor {
    uri: Option<String>,
    digest: Option<Digest>,
}

/// The digest algorithms that name a commit; others are ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Digest {
    git_commit: Option<String>,
    sha1: Option<String>,
}

impl ResourceDescriptor {
    /// The commit the digest names as written (`gitCommit`, else `sha1`), not yet checked.
    fn commit(&self) -> Option<&str> {
        let digest = self.digest.as_ref()?;
        digest.git_commit.as_deref().or(digest.sha1.as_deref())
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BuildDefinition {
    build_type: Option<String>,
    external_parameters: Option<ExternalParameters>,
    resolved_dependencies: Option<Vec<ResourceDescriptor>>,
}

/// `externalParameters` is defined by each build type; only GitHub's `workflow` object is read.
#[derive(Deserialize)]
struct ExternalParameters {
    #[serde(default)]
    workflow: Lenient<Workflow>,
}

#[derive(Deserialize)]
struct Workflow {
    repository: Option<String>,
}

#[derive(Deserialize)]
struct RunDetails {
    builder: Option<Builder>,
}

/// A value whose shape belongs to someone else's schema (a build type's parameters): read when
/// it has the shape evault knows, otherwise ignored rather than failing the whole document.
struct Lenient<T>(Option<T>);

impl<T> Default for Lenient<T> {
    fn default() -> Self {
        Lenient(None)
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        Ok(Lenient(T::deserialize(value).ok()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlsaVersion {
    V0_1,
    V0_2,
    V1,
}

impl SlsaVersion {
    /// From the predicate type; for a SLSA version evault does not know, from the predicate's
    /// shape, so that a new minor version still yields its builder and source.
    fn of(predicate_type: &str, predicate: &Predicate) -> SlsaVersion {
        match predicate_type.strip_prefix(SLSA_PROVENANCE) {
            Some("v0.1") => SlsaVersion::V0_1,
            Some("v0.2") => SlsaVersion::V0_2,
            Some(v) if v == "v1" || v.starts_with("v1.") => SlsaVersion::V1,
            _ => SlsaVersion::by_shape(predicate).unwrap_or(SlsaVersion::V0_2),
        }
    }

    fn by_shape(p: &Predicate) -> Option<SlsaVersion> {
        if p.build_definition.is_some() || p.run_details.is_some() {
            Some(SlsaVersion::V1)
        } else if p.build_type.is_some() || p.invocation.is_some() {
            Some(SlsaVersion::V0_2)
        } else if p.recipe.is_some() {
            Some(SlsaVersion::V0_1)
        } else {
            None
        }
    }

    fn predicate_type(self) -> &'static str {
        match self {
            SlsaVersion::V0_1 => "https://slsa.dev/provenance/v0.1",
            SlsaVersion::V0_2 => "https://slsa.dev/provenance/v0.2",
            SlsaVersion::V1 => "https://slsa.dev/provenance/v1",
        }
    }
}

/// A bare predicate says nothing about its subjects or version: the version is inferred from
/// the fields only that version has.
fn bare_predicate(bytes: &[u8]) -> Result<Provenance, ExtractError> {
    let what = "SLSA provenance predicate";
    let predicate: Predicate = parse(first_document(bytes, what)?, what)?;
    let version = SlsaVersion::by_shape(&predicate).ok_or_else(|| {
        error(
            what,
            "neither \"buildDefinition\"/\"runDetails\" (v1), \"buildType\"/\"invocation\" (v0.2) \
             nor \"recipe\" (v0.1)",
        )
    })?;
    Ok(facts(
        version.predicate_type().to_string(),
        version,
        &predicate,
        Vec::new(),
    ))
}

fn facts(
    predicate_type: String,
    version: SlsaVersion,
    p: &Predicate,
    subjects: Vec<Subject>,
) -> Provenance {
    let v0_builder = || p.builder.as_ref().and_then(|b| b.id.clone());
    let (builder_id, build_type, source) = match version {
        SlsaVersion::V0_1 => (
            v0_builder(),
            p.recipe.as_ref().and_then(|r| r.type_uri.clone()),
            source_v0_1(p),
        ),
        SlsaVersion::V0_2 => (v0_builder(), p.build_type.clone(), source_v0_2(p)),
        SlsaVersion::V1 => (
            p.run_details
                .as_ref()
                .and_then(|r| r.builder.as_ref())
                .and_then(|b| b.id.clone()),
            p.build_definition
                .as_ref()
                .and_then(|d| d.build_type.clone()),
            source_v1(p),
        ),
    };
    Provenance {
        predicate_type,
        builder_id,
        build_type,
        source_repo: source.repo,
        source_commit: source.commit,
        subjects,
    }
}

#[derive(Default)]
struct Source {
    repo: Option<String>,
    commit: Option<String>,
}

impl Source {
    fn from_entry(entry: &ResourceDescriptor) -> Source {
        Source {
            repo: entry.uri.as_deref().and_then(repository),
            commit: entry.commit().and_then(commit),
        }
    }
}

fn source_v0_2(p: &Predicate) -> Source {
    let materials = p.materials.as_deref().unwrap_or_default();
    let config_source = p.invocation.as_ref().and_then(|i| i.config_source.as_ref());
    if let Some(config) = config_source
        && let Some(repo) = config.uri.as_deref().and_then(repository)
    {
        let commit = match config.commit() {
            Some(c) => commit(c),
            // configSource names the repository but not the commit: a material for the same
            // repository may.
            None => materials
                .iter()
                .filter(|m| m.uri.as_deref().and_then(repository).as_ref() == Some(&repo))
                .find_map(ResourceDescriptor::commit)
                .and_then(commit),
        };
        return Source {
            repo: Some(repo),
            commit,
        };
    }
    materials
        .iter()
        .find(|m| m.commit().is_some())
        .map(Source::from_entry)
        .unwrap_or_default()
}

fn source_v1(p: &Predicate) -> Source {
    let Some(definition) = &p.build_definition else {
        return Source::default();
    };
    if let Some(dependency) = definition
        .resolved_dependencies
        .iter()
        .flatten()
        .find(|d| d.commit().is_some())
    {
        return Source::from_entry(dependency);
    }
    let workflow_repository = definition
        .external_parameters
        .as_ref()
        .and_then(|e| e.workflow.0.as_ref())
        .and_then(|w| w.repository.as_deref());
    Source {
        repo: workflow_repository.and_then(repository),
        commit: None,
    }
}

fn source_v0_1(p: &Predicate) -> Source {
    let Some(first) = p.materials.as_deref().and_then(|m| m.first()) else {
        return Source::default();
    };
    if first.commit().is_some() {
        return Source::from_entry(first);
    }
    let Some(uri) = first.uri.as_deref() else {
        return Source::default();
    };
    // Cloud Build: `https://github.com/org/repo/commit/<sha>`.
    if let Some((repo, sha)) = uri.rsplit_once("/commit/")
        && let Some(sha) = commit(sha)
    {
        return Source {
            repo: repository(repo),
            commit: Some(sha),
        };
    }
    Source {
        repo: repository(uri),
        commit: None,
    }
}

/// A source URI as a plain repository address: without a `git+` prefix and without an
/// `@<ref>` suffix in its path (`git+https://github.com/o/r@refs/heads/main` →
/// `https://github.com/o/r`). An `@` before the path is user information and is kept.
fn repository(uri: &str) -> Option<String> {
    let uri = uri.strip_prefix("git+").unwrap_or(uri);
    let path_start = match uri.find("://") {
        Some(i) => {
            let authority = i + "://".len();
            uri[authority..]
                .find('/')
                .map_or(uri.len(), |j| authority + j)
        }
        None => uri.find('/').unwrap_or(uri.len()),
    };
    let end = uri[path_start..]
        .find('@')
        .map_or(uri.len(), |j| path_start + j);
    let repo = &uri[..end];
    (!repo.is_empty()).then(|| repo.to_string())
}

/// A commit id as gates compare it: lowercase, 40 (SHA-1) or 64 (SHA-256) hex digits.
fn commit(value: &str) -> Option<String> {
    (matches!(value.len(), 40 | 64) && value.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| value.to_ascii_lowercase())
}

// ---------------------------------------------------------------------------------------------
// JSON plumbing

fn check_size(bytes: &[u8]) -> Result<(), ExtractError> {
    if bytes.len() > MAX_DOCUMENT {
        return Err(ExtractError(format!(
            "document is {} bytes, larger than the {} MiB provenance limit",
            bytes.len(),
            MAX_DOCUMENT >> 20
        )));
    }
    Ok(())
}

fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

/// The first JSON document of the input, without leading whitespace: `.intoto.jsonl` files may
/// hold one envelope a line, and the first is the document's.
fn first_document<'a>(bytes: &'a [u8], what: &str) -> Result<&'a [u8], ExtractError> {
    let bytes = strip_bom(bytes);
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .ok_or_else(|| error(what, "empty document"))?;
    let bytes = &bytes[start..];
    let mut stream = serde_json::Deserializer::from_slice(bytes).into_iter::<IgnoredAny>();
    match stream.next() {
        Some(Ok(_)) => Ok(&bytes[..stream.byte_offset().min(bytes.len())]),
        Some(Err(e)) => Err(error(what, format!("not JSON: {}", short(&e.to_string())))),
        None => Err(error(what, "empty document")),
    }
}

/// Derived deserializers also accept an array (fields by position); every document read here
/// is an object.
fn require_object(doc: &[u8], what: &str) -> Result<(), ExtractError> {
    match strip_bom(doc).iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Ok(()),
        Some(_) => Err(error(what, "not a JSON object")),
        None => Err(error(what, "empty document")),
    }
}

/// Reads one whole JSON object (trailing bytes are an error), naming the field at fault.
fn parse<T: DeserializeOwned>(doc: &[u8], what: &str) -> Result<T, ExtractError> {
    require_object(doc, what)?;
    let mut de = serde_json::Deserializer::from_slice(strip_bom(doc));
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = short(&inner.to_string());
        match inner.classify() {
            serde_json::error::Category::Data if path != "." => {
                error(what, format!("field '{}': {message}", excerpt(&path)))
            }
            serde_json::error::Category::Data => error(what, message),
            _ => error(what, format!("not JSON: {message}")),
        }
    })?;
    de.end()
        .map_err(|e| error(what, format!("not JSON: {}", short(&e.to_string()))))?;
    Ok(value)
}

fn error(what: &str, reason: impl AsRef<str>) -> ExtractError {
    ExtractError(format!("not valid {what}: {}", reason.as_ref()))
}

/// A reason cut to [`MAX_REASON`] characters.
fn short(message: &str) -> String {
    match message.char_indices().nth(MAX_REASON) {
        Some((i, _)) => format!("{}...", &message[..i]),
        None => message.to_string(),
    }
}

/// User data quoted in a message, cut to a readable length.
fn excerpt(value: &str) -> String {
    match value.char_indices().nth(80) {
        Some((i, _)) => format!("{}...", &value[..i]),
        None => value.to_string(),
    }
}
