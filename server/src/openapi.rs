//! The OpenAPI 3.1 document: its frame (info, bearer security scheme), what every `/v1`
//! operation has in common, and schemas for the JSON shapes `evault-core` serialises.
//!
//! The core types (`Record`, `TokenInfo`, `FsckReport`...) do not depend on utoipa, so their
//! schemas are mirrors declared here (`*Doc` types, named after the core type in the document).
//! The tests in `server/tests/openapi.rs` serialise real values and compare their keys with
//! these schemas, so a field added in core without its mirror fails the build's tests.

use std::borrow::Cow;

use evault_core::auth::Role;
use evault_schema::{Format, Kind};
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Ref, RefOr, Schema,
};
use utoipa::{PartialSchema, ToSchema};

use crate::problem::PROBLEM_JSON;

/// Name of the security scheme in the document.
pub const BEARER: &str = "bearer";

/// Info and components every document starts from.
pub fn base_document() -> OpenApi {
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("evault")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Supply-chain evidence vault. Everything under /v1 needs \
                     `Authorization: Bearer <token>` (`evault token create`). Errors are RFC 9457 \
                     `application/problem+json`. Guide: docs/api.md.",
                ))
                .build(),
        )
        .components(Some(
            ComponentsBuilder::new()
                .security_scheme(
                    BEARER,
                    SecurityScheme::Http(
                        HttpBuilder::new()
                            .scheme(HttpAuthScheme::Bearer)
                            .description(Some("a token secret from `evault token create`"))
                            .build(),
                    ),
                )
                .schema("Problem", crate::problem::Problem::schema())
                .build(),
        ))
        .build()
}

/// Adds what every `/v1` operation shares: the bearer requirement and the 401, 403 and 500
/// problems. Done here, once, rather than repeated in each handler's description.
pub fn complete(doc: &mut OpenApi) {
    for (path, item) in doc.paths.paths.iter_mut() {
        if !path.starts_with("/v1/") {
            continue;
        }
        let operations = [
            &mut item.get,
            &mut item.head,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in operations.into_iter().flatten() {
            add_common(op);
        }
    }
}

fn add_common(op: &mut Operation) {
    op.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
    for (status, description) in [
        ("401", "no token, or an unknown, expired or revoked one"),
        ("403", "the token's role or scope does not allow this"),
        ("500", "stored data failed verification, or a server fault"),
    ] {
        op.responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| problem_response(description));
    }
}

fn problem_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
        .into()
}

/// A string schema whose values are a closed set of names taken from the code.
fn names(description: &str, values: impl IntoIterator<Item = &'static str>) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .enum_values(Some(values))
        .into()
}

/// Schema of `Kind` names, listed from `Kind::ALL`.
pub struct KindName;

impl PartialSchema for KindName {
    fn schema() -> RefOr<Schema> {
        names(
            "What a piece of evidence is.",
            Kind::ALL.into_iter().map(Kind::as_str),
        )
    }
}

impl ToSchema for KindName {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Kind")
    }
}

/// Schema of `Format` names, listed from `Format::ALL`.
pub struct FormatName;

impl PartialSchema for FormatName {
    fn schema() -> RefOr<Schema> {
        names(
            "How a piece of evidence is encoded (detected from content).",
            Format::ALL.into_iter().map(Format::as_str),
        )
    }
}

impl ToSchema for FormatName {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Format")
    }
}

/// Schema of role names, listed from `Role::ALL`.
pub struct RoleName;

impl PartialSchema for RoleName {
    fn schema() -> RefOr<Schema> {
        names(
            "What a token may do: pusher (push), auditor (read), approver (read, approve), \
             admin (everything).",
            Role::ALL.into_iter().map(Role::as_str),
        )
    }
}

impl ToSchema for RoleName {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Role")
    }
}

/// Mirror of `evault_core::Blueprint`.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = Blueprint)]
pub struct BlueprintDoc {
    #[schema(example = "checkout-api")]
    name: String,
    #[schema(example = "1.4.2")]
    version: String,
}

/// Mirror of `evault_core::Record`: one piece of evidence.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = Record)]
pub struct RecordDoc {
    /// 32 hex characters, deterministic from digest, kind and links.
    id: String,
    #[schema(value_type = KindName)]
    kind: String,
    #[schema(value_type = FormatName)]
    format: String,
    format_version: Option<String>,
    predicate_type: Option<String>,
    /// `sha256:<hex>` of the original bytes.
    digest: String,
    /// Original size in bytes.
    size: u64,
    blueprint: BlueprintDoc,
    git_sha: String,
    repo: Option<String>,
    run_id: Option<String>,
    environment: Option<String>,
    /// Digests of the artifacts the evidence is about.
    subjects: Vec<String>,
    /// The name of the token that pushed it.
    producer: String,
    /// RFC 3339, UTC, microseconds.
    ingested_at: String,
    /// Path of the file inside the push or bundle.
    source_path: String,
    /// Is the evidence signed by a key or identity the vault trusts? (docs/verification.md)
    verification: Option<VerificationDoc>,
    /// How long it is kept (docs/retention.md).
    retention: Option<RetentionDoc>,
}

/// Mirror of `evault_core::retention::Retention`.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = Retention)]
pub struct RetentionDoc {
    /// RFC 3339, UTC: from then on the record may be deleted, unless a legal hold keeps it.
    retain_until: String,
    /// What decided it: a policy rule (`rule 2 (kind=provenance): 7y`, `default: 1y`) or the
    /// deploy whose retention it follows.
    rule: String,
}

/// Mirror of `evault_core::verification::Verification`.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = Verification)]
pub struct VerificationDoc {
    /// `verified`, `failed`, `untrusted` or `unsigned`.
    #[schema(pattern = "^(verified|failed|untrusted|unsigned)$")]
    status: String,
    /// Who verified it: a key, an identity, or the signature record that vouches for it.
    by: Option<String>,
    /// Why it is not verified.
    reason: Option<String>,
}

/// Whether a pushed record was new.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = PushStatus)]
#[serde(rename_all = "lowercase")]
pub enum PushStatusDoc {
    Created,
    Present,
}

/// Mirror of `evault_core::ingest::PushedRecord`: a record and whether this push created it.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = PushedRecord)]
pub struct PushedRecordDoc {
    #[serde(flatten)]
    record: RecordDoc,
    status: PushStatusDoc,
}

/// Mirror of `evault_core::RecordView`: a record and what its evidence says.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = RecordView)]
pub struct RecordViewDoc {
    #[serde(flatten)]
    record: RecordDoc,
    /// What the evidence says, by kind: `components` (SBOM); `findings`, `by_severity`,
    /// `after_vex`, `suppressed_by_vex`, `vex_records` (scan); `statements`, `by_status` (VEX);
    /// `builder_id`, `build_type`, `source_repo`, `source_commit`, `subjects` (provenance);
    /// the document's main fields (approval, deploy, rollback). `null` when there is nothing.
    #[schema(value_type = Option<Object>)]
    summary: Option<serde_json::Value>,
    /// Names of the active legal holds on the record (absent when none): it is not deleted
    /// while there are any.
    holds: Option<Vec<String>>,
}

/// Mirror of `evault_core::auth::TokenInfo` (never with its secret).
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = Token)]
pub struct TokenDoc {
    #[schema(example = "ci-checkout")]
    name: String,
    #[schema(value_type = RoleName)]
    role: String,
    /// Blueprint name patterns (`*` wildcards); empty means every blueprint.
    scopes: Vec<String>,
    created_at: String,
    created_by: String,
    expires_at: Option<String>,
    revoked_at: Option<String>,
    last_used_at: Option<String>,
}

/// Mirror of `evault_core::auth::NewToken`: a token with its secret, shown once.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = NewToken)]
pub struct NewTokenDoc {
    #[serde(flatten)]
    token: TokenDoc,
    /// `evt_` and 64 hex characters. Only a hash is stored.
    secret: String,
}

/// Mirror of `evault_core::vault::BlobFault`.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = BlobFault)]
#[serde(rename_all = "kebab-case")]
pub enum BlobFaultDoc {
    Corrupt,
    Missing,
    SizeMismatch,
}

/// Mirror of `evault_core::vault::FsckProblem`.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = FsckProblem)]
pub struct FsckProblemDoc {
    digest: String,
    problem: BlobFaultDoc,
    detail: String,
}

/// Mirror of `evault_core::vault::FsckReport`.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = FsckReport)]
pub struct FsckReportDoc {
    blobs_checked: u64,
    bytes_checked: u64,
    records: u64,
    /// Damaged or missing evidence.
    problems: Vec<FsckProblemDoc>,
    /// Blob files no record references (left by an interrupted push); harmless.
    unreferenced_blobs: Vec<String>,
    /// Where the index disagrees with the tamper-evident log.
    log_problems: Vec<String>,
    /// Events of the access log whose hash chain was recomputed.
    access_events_checked: u64,
    /// Breaks in the access log's hash chain (an edited, inserted or deleted event).
    access_problems: Vec<String>,
    /// Derived index tables (what each deploy and rollback changed) that disagree with the
    /// records and documents they are derived from.
    index_problems: Vec<String>,
}

/// Mirror of `evault_core::log::LogKey`.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = LogKey)]
pub struct LogKeyDoc {
    /// The log's name: the first line of every checkpoint.
    #[schema(example = "evault/3f9c0a5e21b7d4c8")]
    origin: String,
    #[schema(example = "ed25519")]
    algorithm: String,
    /// First 4 bytes of SHA-256(name || 0x0A || 0x01 || key), hex.
    key_id: String,
    /// `name+keyid+base64(0x01 || key)`, the verifier key format of Go's `sumdb/note`.
    vkey: String,
    /// The 32-byte Ed25519 public key, base64.
    public_key: String,
}

/// Mirror of `evault_core::log::CheckpointView`.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = Checkpoint)]
pub struct CheckpointDoc {
    origin: String,
    size: u64,
    /// Hex.
    root_hash: String,
    signed_at: String,
    /// The C2SP signed note, exactly as signed.
    note: String,
}

/// Mirror of `evault_core::log::InclusionProof`.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = InclusionProof)]
pub struct InclusionProofDoc {
    record_id: String,
    log_index: u64,
    tree_size: u64,
    /// The entry, exactly as hashed (canonical JSON).
    entry: String,
    /// SHA-256(0x00 || entry), hex.
    leaf_hash: String,
    /// The RFC 6962 audit path, leaf side first, hex.
    hashes: Vec<String>,
    root_hash: String,
    /// The signed checkpoint of `tree_size` entries.
    checkpoint: String,
}

/// Mirror of `evault_core::log::ConsistencyProof`.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = ConsistencyProof)]
pub struct ConsistencyProofDoc {
    from: u64,
    to: u64,
    /// RFC 6962 consistency proof, hex.
    hashes: Vec<String>,
    /// For convenience only: a verifier takes the old root from the checkpoint it kept.
    from_root_hash: String,
    root_hash: String,
    /// The signed checkpoint of `to` entries.
    checkpoint: String,
}

/// Mirror of `evault_core::log::LogEntry`.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = LogEntry)]
pub struct LogEntryDoc {
    index: u64,
    /// Canonical JSON, exactly as hashed.
    entry: String,
}

/// Mirror of `evault_core::log::check::OldCheckpoint`.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = OldCheckpoint)]
pub struct OldCheckpointDoc {
    size: u64,
    root_hash: String,
    consistent: bool,
}

/// Mirror of `evault_core::log::check::LogReport`.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = LogReport)]
pub struct LogReportDoc {
    origin: String,
    key_id: String,
    size: u64,
    root_hash: String,
    checkpoints_checked: u64,
    objects_checked: u64,
    blobs_checked: u64,
    bytes_checked: u64,
    old_checkpoint: Option<OldCheckpointDoc>,
    /// Everything wrong; empty when the log and the vault agree.
    problems: Vec<String>,
    notes: Vec<String>,
}

/// `pass`, `warn` or `fail`: what a gate, or one of its requirements, decided.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = Outcome)]
#[serde(rename_all = "lowercase")]
pub enum OutcomeDoc {
    /// Satisfied.
    Pass,
    /// Satisfied, with something a reviewer should look at: the deploy may go ahead.
    Warn,
    /// Not satisfied: the deploy must not go ahead.
    Fail,
}

/// What an approver decided.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = Decision)]
#[serde(rename_all = "lowercase")]
pub enum DecisionDoc {
    Approve,
    Reject,
}

/// Mirror of `evault_core::gate::CheckRequest`: which version, going where.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = CheckRequest)]
pub struct CheckRequestDoc {
    #[schema(example = "checkout-api")]
    blueprint: String,
    #[schema(example = "1.4.2")]
    version: String,
    #[schema(example = "production")]
    env: String,
    /// `sha256:<hex>` of the artifact about to be deployed: provenance and signatures must
    /// name it.
    artifact: Option<String>,
    /// The commit being deployed; default: the one the version's evidence names.
    git_sha: Option<String>,
    /// A policy (TOML or Rego text) for this one check instead of the vault's (`/v1/gates/check`
    /// only). Recorded with source `file`; never counts as the gate passing for
    /// `/v1/audit/completeness`.
    policy: Option<String>,
}

/// Mirror of `evault_schema::documents::PolicyRef`: the policy a decision applied.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = PolicyRef)]
pub struct PolicyRefDoc {
    /// `built-in`, `vault` or `file`.
    #[schema(pattern = "^(built-in|vault|file)$")]
    source: String,
    /// `toml` or `rego`.
    #[schema(pattern = "^(toml|rego)$")]
    engine: String,
    /// `sha256:<hex>` of the policy text.
    digest: String,
}

/// Mirror of `evault_schema::documents::RequirementResult`: what one requirement found.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = RequirementResult)]
pub struct RequirementResultDoc {
    /// e.g. `version`, `evidence:sbom`, `vulnerabilities:critical`, `approvals`, `rego:deny`.
    name: String,
    status: OutcomeDoc,
    message: String,
    /// The records it was judged on (absent when none).
    records: Option<Vec<String>>,
}

/// Mirror of `evault_core::gate::GateDecision`: a gate's answer.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = GateDecision)]
pub struct GateDecisionDoc {
    /// The decision: a pipeline deploys on `pass` or `warn`, never on `fail`.
    decision: OutcomeDoc,
    blueprint: String,
    version: String,
    environment: String,
    /// The commit judged (empty when the evidence names none or several).
    git_sha: String,
    /// Absent when the check named none.
    artifact: Option<String>,
    policy: PolicyRefDoc,
    /// The `[[gate]]` entries that applied (TOML policies), counted from 1; absent when none.
    policy_entries: Option<Vec<usize>>,
    requirements: Vec<RequirementResultDoc>,
    /// RFC 3339, UTC.
    time: String,
    /// The token's name.
    actor: String,
    /// The `policy-result` record of this decision; null when it could not be linked to a
    /// commit (see `warnings`).
    record: Option<String>,
    /// Absent when none.
    warnings: Option<Vec<String>>,
}

/// Mirror of `evault_core::gate::GatePolicyView`: the gate policy in force.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = GatePolicyView)]
pub struct GatePolicyViewDoc {
    /// `built-in` (none was set) or `vault`.
    source: String,
    /// `toml` or `rego`.
    engine: String,
    /// `sha256:<hex>` of the text, as decisions cite it.
    digest: String,
    /// The policy text.
    policy: String,
    set_at: Option<String>,
    /// The name of the token that set it.
    set_by: Option<String>,
}

/// Mirror of `evault_core::gate::ApprovalRequest`. The approver and their role are the token's.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = ApprovalRequest)]
pub struct ApprovalRequestDoc {
    #[schema(example = "checkout-api")]
    blueprint: String,
    #[schema(example = "1.4.2")]
    version: String,
    #[schema(example = "production")]
    env: String,
    decision: DecisionDoc,
    /// Why; not blank.
    reason: String,
    /// How long it counts: `12h`, `7d`, `2w` (at most 366 days); default forever.
    #[schema(example = "7d")]
    expires: Option<String>,
    /// A change ticket: URL or id.
    ticket: Option<String>,
    /// Default: the commit the version's evidence names.
    git_sha: Option<String>,
}

/// Mirror of `evault_core::gate::ExceptionRequest`. The approver and their role are the
/// token's.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = ExceptionRequest)]
pub struct ExceptionRequestDoc {
    #[schema(example = "checkout-api")]
    blueprint: String,
    #[schema(example = "1.4.2")]
    version: String,
    #[schema(example = "production")]
    env: String,
    /// Vulnerability ids (or aliases) whose risk is accepted; at least one.
    vulnerabilities: Vec<String>,
    reason: String,
    /// How long it holds: `12h`, `7d`, `2w` (at most 366 days). Required.
    #[schema(example = "14d")]
    expires: String,
    ticket: Option<String>,
    git_sha: Option<String>,
}

/// Mirror of `evault_core::query::record::Recorded`: a record evault wrote (deploy, rollback,
/// approval, exception) and what it noticed.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = Recorded)]
pub struct RecordedDoc {
    #[serde(flatten)]
    record: PushedRecordDoc,
    /// Notes that did not stop the recording.
    warnings: Vec<String>,
}

/// Mirror of `evault_core::gate::IncompleteDeploy`.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = IncompleteDeploy)]
pub struct IncompleteDeployDoc {
    /// The deploy record.
    deploy: String,
    blueprint: String,
    version: String,
    environment: String,
    time: String,
    actor: String,
    /// Absent when the deploy names none.
    artifact: Option<String>,
    /// Evidence kinds the policy requires that the version lacks.
    missing: Vec<String>,
    /// The policy the deploy is judged by: the vault's (or the built-in one) as it was at the
    /// deploy's time.
    policy: PolicyRefDoc,
    /// Present (true) when no entry of the vault's policy covers this blueprint in this
    /// environment.
    uncovered: Option<bool>,
    /// `never-passed`, `passed-after-deploy`, or `passed` (then `missing` is why it is listed).
    #[schema(pattern = "^(never-passed|passed-after-deploy|passed)$")]
    gate: String,
    /// The passing decision, when there is one.
    gate_record: Option<String>,
    /// The newest decision before the deploy, when it failed.
    last_decision: Option<String>,
}

/// Mirror of `evault_core::gate::CompletenessReport`.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = CompletenessReport)]
pub struct CompletenessReportDoc {
    environment: String,
    since: Option<String>,
    /// The policy the required evidence was taken from (the vault's, or the built-in one).
    policy: PolicyRefDoc,
    /// Deploys examined.
    deploys: u64,
    incomplete: Vec<IncompleteDeployDoc>,
}

/// Mirror of `evault_core::gate::input::Item`: one record of the version.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = GateEvidence)]
pub struct GateEvidenceDoc {
    id: String,
    format: String,
    /// The digest of its content.
    digest: String,
    /// Who pushed it.
    producer: String,
    ingested_at: String,
    /// `verified`, `failed`, `unsigned`, `untrusted`, or `none`.
    verification: String,
    subjects: Vec<String>,
}

/// Mirror of `evault_core::gate::input::Vulnerability`.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = GateVulnerability)]
pub struct GateVulnerabilityDoc {
    id: String,
    aliases: Vec<String>,
    /// `critical`, `high`, `medium`, `low` or `unknown`.
    severity: String,
    package: Option<String>,
    package_version: Option<String>,
    purl: Option<String>,
    /// The scan records that report it.
    records: Vec<String>,
    vex_status: Option<String>,
    vex_record: Option<String>,
    /// VEX says `not_affected` or `fixed`: it does not count.
    suppressed: bool,
    /// The same, believing only VEX records whose signature verified.
    suppressed_by_verified_vex: bool,
    /// Exceptions naming it or one of its aliases, valid or not.
    exceptions: Vec<String>,
}

/// Mirror of `evault_core::gate::input::ProvenanceFact`.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = GateProvenance)]
pub struct GateProvenanceDoc {
    id: String,
    verified: bool,
    verification: String,
    verified_by: Option<String>,
    builder_id: Option<String>,
    source_repo: Option<String>,
    source_commit: Option<String>,
    subjects: Vec<String>,
    /// No artifact was named, or it is among the subjects.
    about_artifact: bool,
}

/// Mirror of `evault_core::gate::input::SignatureFact`.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = GateSignature)]
pub struct GateSignatureDoc {
    id: String,
    verified: bool,
    verification: String,
    verified_by: Option<String>,
    /// The trusted key's or identity's name.
    signer: Option<String>,
    subjects: Vec<String>,
    about_artifact: bool,
}

/// Mirror of `evault_core::gate::input::ApprovalFact`: an approval or exception.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = GateApproval)]
pub struct GateApprovalDoc {
    id: String,
    approver: String,
    role: Option<String>,
    /// `approve` or `reject`.
    decision: String,
    reason: String,
    time: String,
    expires_at: Option<String>,
    /// Given by now and not expired.
    current: bool,
    /// Who pushed the record.
    producer: String,
    /// Recorded by the approver it names.
    by_approver: bool,
    /// The approver also pushed evidence of the version.
    approver_pushed: bool,
    /// For exceptions: the vulnerability ids accepted.
    vulnerabilities: Vec<String>,
}

/// Mirror of `evault_core::gate::GateInput`: the facts a gate policy judges (`input` in Rego).
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = GateInput)]
pub struct GateInputDoc {
    /// `https://evault.dev/gate-input/v1`.
    schema: String,
    blueprint: String,
    version: String,
    environment: String,
    /// The commit judged; empty when the evidence names none or several.
    git_sha: String,
    /// Every commit the version's evidence names.
    git_shas: Vec<String>,
    artifact: Option<String>,
    /// When the check runs (RFC 3339, UTC).
    now: String,
    /// Who pushed the version's evidence (approvals and decisions aside).
    pushers: Vec<String>,
    /// The version's records by kind name.
    evidence: std::collections::BTreeMap<String, Vec<GateEvidenceDoc>>,
    vulnerabilities: Vec<GateVulnerabilityDoc>,
    provenance: Vec<GateProvenanceDoc>,
    signatures: Vec<GateSignatureDoc>,
    approvals: Vec<GateApprovalDoc>,
    exceptions: Vec<GateApprovalDoc>,
    /// What the version's test reports say.
    tests: Vec<GateTestReportDoc>,
}

/// Mirror of `evault_core::gate::input::TestReport`.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = GateTestReport)]
pub struct GateTestReportDoc {
    id: String,
    /// Its results could be read (a JUnit XML report).
    readable: bool,
    /// Why not, when they could not.
    problem: Option<String>,
    /// Test cases, and those that failed, errored and were skipped.
    tests: u64,
    failed: u64,
    errors: u64,
    skipped: u64,
}
