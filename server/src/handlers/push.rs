//! `POST /v1/push`: the body streams straight into ingest.
//!
//! The body is read on the blocking pool through `SyncIoBridge`, counted against
//! `limits.max_upload_bytes`, and handed to `Vault::push` as a `PushSource::Reader`, so an upload
//! of any size takes bounded memory. Everything else (detection, archives, manifests, limits on
//! decompressed size and file count, all-or-nothing commit) is ingest's.
//!
//! An answer given before the upload was read (bad token, bad parameter, a limit hit half-way)
//! would reach a client that is still sending as a broken pipe, not as the problem it is. So the
//! rest of the body is read and discarded first, up to [`DRAIN_LIMIT`] bytes for at most
//! [`DRAIN_TIME`]; beyond that the connection is simply closed.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use evault_core::auth::Permission;
use evault_core::index::Status;
use evault_core::ingest::{
    LimitExceeded, LinkArgs, LinkStyle, PushRequest, PushSource, PushedRecord,
};
use evault_schema::{Kind, validate};
use futures_util::{StreamExt, TryStreamExt};
use tokio_util::io::{StreamReader, SyncIoBridge};

use crate::app::{AppState, blocking};
use crate::auth::Caller;
use crate::openapi::{KindName, PushedRecordDoc};
use crate::problem::{ApiError, Problem, ProblemKind};
use crate::query::{Params, Spec, invalid};

/// Source path recorded for an upload when the query gives no `name`.
pub const DEFAULT_NAME: &str = "upload";

/// Most bytes of a refused upload read and discarded so that the client gets to read the answer.
pub const DRAIN_LIMIT: u64 = 16 << 20;
/// Longest spent discarding a refused upload.
pub const DRAIN_TIME: Duration = Duration::from_secs(5);

const SPEC: Spec = Spec {
    single: &[
        "blueprint",
        "version",
        "git_sha",
        "repo",
        "run_id",
        "env",
        "kind",
        "name",
        "expand",
    ],
    repeated: &["subject"],
    // The producer is the token's name; these are accepted so that a client cannot tell a
    // server that ignores them from one that honours them, and ignored.
    ignored: &["producer", "actor"],
};

/// Store evidence: the raw bytes of one file or of one `.tar`, `.tar.gz` or `.tar.zst` archive.
///
/// Same detection, manifest, idempotency and all-or-nothing rules as `evault push`. The
/// producer of every record is the token's name.
#[utoipa::path(post, path = "/v1/push", tag = "evidence",
    params(
        ("blueprint" = Option<String>, Query, description = "Blueprint name, e.g. checkout-api \
            (or `blueprint.name` in the bundle manifest)"),
        ("version" = Option<String>, Query, description = "Blueprint version, e.g. 1.4.2"),
        ("git_sha" = Option<String>, Query, description = "Commit: 40 or 64 hexadecimal characters"),
        ("repo" = Option<String>, Query, description = "Source repository URL"),
        ("run_id" = Option<String>, Query, description = "CI pipeline run id"),
        ("env" = Option<String>, Query, description = "Environment, e.g. production"),
        ("kind" = Option<KindName>, Query, description = "Kind of every file the bundle manifest \
            does not classify"),
        ("subject" = Option<Vec<String>>, Query, explode, description = "Digest \
            (`sha256:<hex>`) of an artifact the evidence is about; repeatable"),
        ("name" = Option<String>, Query, description = "Source path of a single file \
            (default `upload`)"),
        ("expand" = Option<bool>, Query, description = "`false` stores an archive as one blob \
            (default `true`)"),
    ),
    request_body(content(("application/octet-stream")),
        description = "One file, or one .tar/.tar.gz/.tar.zst archive (recognised by content). \
            Or multipart/form-data with one part per file of a bundle, each named by its path \
            (filename); a part named evault-bundle.json is the bundle's manifest."),
    responses(
        (status = 201, description = "at least one record was created", body = Vec<PushedRecordDoc>,
            headers(("evault-warning" = String, description = "a note that did not stop the push \
                (a skipped link, content that looked like JSON but was not); repeated"))),
        (status = 200, description = "every record was already present", body = Vec<PushedRecordDoc>,
            headers(("evault-warning" = String, description = "a note that did not stop the push; \
                repeated"))),
        (status = 400, description = "a query parameter is wrong, or a link is missing",
            body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "over limits.max_upload_bytes, max_push_bytes, \
            max_file_bytes or max_push_files; nothing was stored",
            body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "a multipart type other than multipart/form-data", body = Problem,
            content_type = "application/problem+json"),
        (status = 422, description = "the content contradicts what it is declared to be, or a \
            bundle is broken; nothing was stored", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn push(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, HeaderMap, Json<Vec<PushedRecord>>), ApiError> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let (caller, upload) = match prepare(&state, caller, query.as_deref(), &headers, declared) {
        Ok(prepared) => prepared,
        Err(e) => {
            if declared.is_none_or(|n| n <= DRAIN_LIMIT) {
                drain(body).await;
            }
            return Err(e);
        }
    };
    let Upload {
        links,
        kind,
        name,
        expand,
        multipart,
    } = upload;

    if let Some(boundary) = multipart {
        let max_files = state.vault.config().limits.max_push_files;
        let (dir, received) =
            receive_parts(body, boundary, state.limits.max_upload_bytes, max_files).await?;
        let source = PushSource::Directory {
            path: dir.path().to_path_buf(),
            label: "upload".into(),
        };
        let request = push_request(source, links, kind, &caller, expand);
        let outcome = blocking(&state.vault, move |v| {
            let outcome = v.push(request, &mut |_| {});
            drop(dir);
            outcome
        })
        .await?;
        return Ok(answer(&state, outcome, received));
    }

    let cancelled = Arc::new(AtomicBool::new(false));
    let _cancel_on_drop = CancelOnDrop(Arc::clone(&cancelled));
    let received = Arc::new(AtomicU64::new(0));
    let on_blocking_thread = Arc::new(AtomicBool::new(false));
    let stream = body.into_data_stream().map_err(io::Error::other);
    let reader = UploadReader {
        inner: SyncIoBridge::new(StreamReader::new(stream)),
        read: 0,
        limit: state.limits.max_upload_bytes,
        received: Arc::clone(&received),
        cancelled,
        drain_on_drop: Arc::clone(&on_blocking_thread),
    };
    let source = PushSource::Reader {
        name,
        reader: Box::new(reader),
    };
    let request = push_request(source, links, kind, &caller, expand);
    let outcome = blocking(&state.vault, move |v| {
        on_blocking_thread.store(true, Ordering::Relaxed);
        v.push(request, &mut |_| {})
    })
    .await?;

    Ok(answer(&state, outcome, received.load(Ordering::Relaxed)))
}

/// A push of `source` by the caller: the producer is the token's name and the token's scopes
/// bound the blueprints it may push for.
fn push_request(
    source: PushSource,
    links: LinkArgs,
    kind: Option<Kind>,
    caller: &Caller,
    expand_archives: bool,
) -> PushRequest {
    PushRequest {
        sources: vec![source],
        links,
        kind,
        producer: caller.0.name.clone(),
        expand_archives,
        allowed_blueprints: caller.0.scopes.clone(),
    }
}

/// 201 if anything was created, else 200; warnings as headers; metrics and the log line.
fn answer(
    state: &AppState,
    outcome: evault_core::ingest::PushOutcome,
    received: u64,
) -> (StatusCode, HeaderMap, Json<Vec<PushedRecord>>) {
    state.metrics.add_ingested(received);
    for warning in &outcome.warnings {
        tracing::info!(%warning, "push warning");
    }
    let created = outcome
        .records
        .iter()
        .filter(|r| r.status == Status::Created)
        .count();
    tracing::info!(
        records = outcome.records.len(),
        created,
        bytes = received,
        "pushed"
    );
    let status = if created > 0 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (
        status,
        warning_headers(&outcome.warnings),
        Json(outcome.records),
    )
}

/// Most warnings returned in headers (the rest are in the server log).
const MAX_WARNING_HEADERS: usize = 32;

/// Push warnings as `Evault-Warning` headers, so that `evault push --server` prints them as a
/// local push does. Header values must be visible ASCII: other characters become `?`.
fn warning_headers(warnings: &[String]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for warning in warnings.iter().take(MAX_WARNING_HEADERS) {
        let text: String = warning
            .chars()
            .take(512)
            .map(|c| {
                if c == ' ' || c.is_ascii_graphic() {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        if let Ok(value) = axum::http::HeaderValue::from_str(&text) {
            headers.append("evault-warning", value);
        }
    }
    headers
}

/// What the query says about the upload.
struct Upload {
    links: LinkArgs,
    kind: Option<Kind>,
    name: String,
    expand: bool,
    /// The boundary of a `multipart/form-data` body.
    multipart: Option<String>,
}

/// Everything checked before a byte of the body is read: the token, its role, the media type,
/// the query, a declared length over the limit.
fn prepare(
    state: &AppState,
    caller: Result<Caller, ApiError>,
    query: Option<&str>,
    headers: &HeaderMap,
    declared: Option<u64>,
) -> Result<(Caller, Upload), ApiError> {
    let caller = caller?;
    caller.require(Permission::Push)?;
    let multipart = multipart_boundary(headers)?;
    let params = Params::parse(query, &SPEC)?;
    let links = LinkArgs {
        style: LinkStyle::Query,
        blueprint: params.checked("blueprint", validate::blueprint_name)?,
        version: params.checked("version", validate::version)?,
        git_sha: params.checked("git_sha", validate::git_sha)?,
        repo: params.checked("repo", validate::repo)?,
        run_id: params.checked("run_id", validate::run_id)?,
        environment: params.checked("env", validate::environment)?,
        subjects: params
            .all("subject")
            .map(|s| validate::digest(s).map_err(|e| invalid("subject", &e)))
            .collect::<Result<_, _>>()?,
    };
    let kind = params
        .get("kind")
        .map(|k| {
            k.parse::<Kind>()
                .map_err(|e| ApiError::invalid(e.to_string()))
        })
        .transpose()?;
    let name = params
        .checked("name", validate::bundle_path)?
        .unwrap_or_else(|| DEFAULT_NAME.to_string());
    let expand = match params.get("expand") {
        None | Some("true") => true,
        Some("false") => false,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "invalid expand '{}': expected true or false",
                validate::excerpt(other)
            )));
        }
    };

    let limit = state.limits.max_upload_bytes;
    // A declared length over the limit is refused before a byte is read.
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::new(
            ProblemKind::TooLarge,
            format!("{name}: the upload is larger than {limit} bytes (limits.max_upload_bytes)"),
        ));
    }
    Ok((
        caller,
        Upload {
            links,
            kind,
            name,
            expand,
            multipart,
        },
    ))
}

/// The boundary of a `multipart/form-data` body, `None` for any other body; other multipart
/// types are refused (415).
fn multipart_boundary(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(ct) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let lower = ct.trim().to_ascii_lowercase();
    if !lower.starts_with("multipart/") {
        return Ok(None);
    }
    if !lower.starts_with("multipart/form-data") {
        return Err(ApiError::new(
            ProblemKind::UnsupportedMediaType,
            "of the multipart types only multipart/form-data is accepted (one part per file of \
             the bundle)",
        ));
    }
    multer::parse_boundary(ct).map(Some).map_err(|_| {
        ApiError::invalid("multipart/form-data without a boundary parameter in Content-Type")
    })
}

/// Writes the file parts of a `multipart/form-data` upload into a private temporary directory,
/// each at the path its filename gives, bounded by the upload size and the push's file count.
/// The directory is then pushed like any directory bundle (a part named `evault-bundle.json`
/// is its manifest).
async fn receive_parts(
    body: Body,
    boundary: String,
    max_bytes: u64,
    max_files: u64,
) -> Result<(tempfile::TempDir, u64), ApiError> {
    let dir = tempfile::Builder::new()
        .prefix("evault-upload-")
        .tempdir()
        .map_err(|e| {
            ApiError::from(evault_core::Error::io(
                "cannot create an upload directory",
                e,
            ))
        })?;
    let constraints =
        multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(max_bytes));
    let mut parts =
        multer::Multipart::with_constraints(body.into_data_stream(), boundary, constraints);
    let too_large = || {
        ApiError::new(
            ProblemKind::TooLarge,
            format!("the upload is larger than {max_bytes} bytes (limits.max_upload_bytes)"),
        )
    };
    let part_error = |e: multer::Error| match e {
        multer::Error::StreamSizeExceeded { .. } => too_large(),
        other => ApiError::invalid(format!("the multipart body is malformed: {other}")),
    };
    let mut files = 0u64;
    let mut received = 0u64;
    let mut seen = std::collections::HashSet::new();
    while let Some(mut part) = parts.next_field().await.map_err(part_error)? {
        let Some(filename) = part.file_name().map(str::to_string) else {
            return Err(ApiError::invalid(format!(
                "multipart part '{}' has no filename: every part is a file of the bundle, named \
                 by its path",
                validate::excerpt(part.name().unwrap_or(""))
            )));
        };
        let path = validate::bundle_path(&filename).map_err(|e| {
            ApiError::from(evault_core::Error::Unprocessable(format!("upload: {e}")))
        })?;
        if !seen.insert(path.clone()) {
            return Err(ApiError::from(evault_core::Error::Unprocessable(format!(
                "upload: '{path}' appears twice in the multipart body"
            ))));
        }
        files += 1;
        if files > max_files {
            return Err(ApiError::new(
                ProblemKind::TooLarge,
                format!("upload: the push has more than {max_files} files (limits.max_push_files)"),
            ));
        }
        let target = dir.path().join(&path);
        let write_error = |e: io::Error| {
            ApiError::from(evault_core::Error::io("cannot store an uploaded part", e))
        };
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(write_error)?;
        }
        let mut file = tokio::fs::File::create(&target)
            .await
            .map_err(write_error)?;
        while let Some(chunk) = part.chunk().await.map_err(part_error)? {
            received += chunk.len() as u64;
            tokio::io::AsyncWriteExt::write_all(&mut file, &chunk)
                .await
                .map_err(write_error)?;
        }
        tokio::io::AsyncWriteExt::flush(&mut file)
            .await
            .map_err(write_error)?;
    }
    if files == 0 {
        return Err(ApiError::invalid("the multipart body holds no file parts"));
    }
    Ok((dir, received))
}

/// Reads and discards what is left of a refused upload (bounded in bytes and time).
async fn drain(body: Body) {
    let mut stream = body.into_data_stream();
    let mut left = DRAIN_LIMIT;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while let Some(Ok(chunk)) = stream.next().await {
            match left.checked_sub(chunk.len() as u64) {
                Some(l) => left = l,
                None => break,
            }
        }
    })
    .await;
}

/// The request body as a blocking reader, failing once more than `limit` bytes have come, or
/// once the request is abandoned (timeout, shutdown) so that the push stops and stores nothing.
/// When ingest drops it early (a refused push), the rest of the body is drained (see the module
/// documentation).
struct UploadReader<R: Read> {
    inner: R,
    read: u64,
    limit: u64,
    received: Arc<AtomicU64>,
    cancelled: Arc<AtomicBool>,
    /// Set once the reader is on the blocking pool, the only place its blocking reads may run.
    drain_on_drop: Arc<AtomicBool>,
}

impl<R: Read> Read for UploadReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancelled.load(Ordering::Relaxed) {
            return Err(io::Error::other("the request was abandoned"));
        }
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        self.received.store(self.read, Ordering::Relaxed);
        if self.read > self.limit {
            return Err(LimitExceeded::error(format!(
                "the upload is larger than {} bytes (limits.max_upload_bytes)",
                self.limit
            )));
        }
        Ok(n)
    }
}

impl<R: Read> Drop for UploadReader<R> {
    fn drop(&mut self) {
        if !self.drain_on_drop.load(Ordering::Relaxed) {
            return;
        }
        let mut left = DRAIN_LIMIT;
        let mut buf = [0u8; 16 * 1024];
        while left > 0 && !self.cancelled.load(Ordering::Relaxed) {
            match self.inner.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n as u64),
            }
        }
    }
}

/// Tells the upload reader to fail when the handler's future is dropped (the request timed out
/// or the server is going away) while the push still runs on the blocking pool.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(data: &'static [u8], limit: u64) -> UploadReader<&'static [u8]> {
        UploadReader {
            inner: data,
            read: 0,
            limit,
            received: Arc::default(),
            cancelled: Arc::default(),
            drain_on_drop: Arc::new(AtomicBool::new(true)),
        }
    }

    #[test]
    fn the_upload_reader_stops_past_the_limit_with_a_limit_error() {
        let mut out = Vec::new();
        reader(b"12345", 5).read_to_end(&mut out).unwrap();
        assert_eq!(out, b"12345");
        let err = reader(b"123456", 5).read_to_end(&mut out).unwrap_err();
        let inner = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<LimitExceeded>());
        assert!(
            inner.is_some_and(|e| e.0.contains("larger than 5 bytes")),
            "{err}"
        );
    }

    #[test]
    fn an_abandoned_request_stops_the_upload() {
        let mut r = reader(b"12345", 5);
        drop(CancelOnDrop(Arc::clone(&r.cancelled)));
        assert!(r.read(&mut [0u8; 4]).is_err());
    }
}
