//! `GET`/`HEAD /v1/blobs/{digest}`: a blob's original bytes, verified while they stream.
//!
//! `Vault::copy_blob` runs on the blocking pool and writes into a bounded channel whose receiver
//! is the response body. Verification can only conclude at the end of the blob, so the writer
//! always holds back the last chunk until `copy_blob` has returned `Ok`: a blob that fails
//! verification never reaches its full `Content-Length`, and the error sent into the body makes
//! hyper abort the connection. The client sees a truncated transfer, never wrong bytes presented
//! as complete. A failure before any byte was sent (a missing blob file, a small corrupt blob)
//! is an ordinary 500 `integrity` problem.

use std::io::{self, Write};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, ETAG, IF_NONE_MATCH, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use evault_core::auth::Permission;
use evault_core::{Digest, RecordFilter};
use tokio::sync::mpsc;

use super::{Chunk, Streamed};
use crate::app::{AppState, PathParam, blocking};
use crate::auth::Caller;
use crate::problem::{ApiError, Problem, ProblemKind};

/// Chunks in flight per download (each up to 256 KiB, the blob store's read size).
const CHANNEL_CHUNKS: usize = 4;

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Stream a blob's original bytes.
#[utoipa::path(get, path = "/v1/blobs/{digest}", tag = "evidence",
    params(
        ("digest" = String, Path, description = "`sha256:<hex>` or the bare hex"),
        ("If-None-Match" = Option<String>, Header, description = "The blob's ETag gives 304"),
    ),
    responses(
        (status = 200, description = "the original bytes, verified as they stream; a blob that \
            fails verification mid-stream aborts the connection",
            content_type = "application/octet-stream",
            headers(
                ("ETag" = String, description = "\"sha256:<hex>\""),
                ("Cache-Control" = String, description = "public, max-age=31536000, immutable"),
                ("Content-Length" = u64, description = "original size in bytes"),
                ("X-Content-Type-Options" = String, description = "nosniff"),
            )),
        (status = 304, description = "If-None-Match matched the ETag"),
        (status = 400, description = "not a digest", body = Problem,
            content_type = "application/problem+json"),
        (status = 404, description = "no such blob (or not in the token's scopes)", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn get_blob(
    state: State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    raw: PathParam,
) -> Result<Response, ApiError> {
    serve_blob(state, caller, Method::GET, headers, raw).await
}

/// A blob's headers (size, ETag) without its bytes. Its stored bytes must be present: a blob
/// the store lost is a 500 integrity problem here as for `GET`.
#[utoipa::path(head, path = "/v1/blobs/{digest}", tag = "evidence",
    params(
        ("digest" = String, Path, description = "`sha256:<hex>` or the bare hex"),
        ("If-None-Match" = Option<String>, Header, description = "The blob's ETag gives 304"),
    ),
    responses(
        (status = 200, description = "the headers a GET would send, without the body",
            headers(
                ("ETag" = String, description = "\"sha256:<hex>\""),
                ("Cache-Control" = String, description = "public, max-age=31536000, immutable"),
                ("Content-Length" = u64, description = "original size in bytes"),
                ("X-Content-Type-Options" = String, description = "nosniff"),
            )),
        (status = 304, description = "If-None-Match matched the ETag"),
        (status = 400, description = "not a digest", body = Problem,
            content_type = "application/problem+json"),
        (status = 404, description = "no such blob (or not in the token's scopes)", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn head_blob(
    state: State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    raw: PathParam,
) -> Result<Response, ApiError> {
    serve_blob(state, caller, Method::HEAD, headers, raw).await
}

async fn serve_blob(
    State(state): State<AppState>,
    caller: Caller,
    method: Method,
    headers: HeaderMap,
    PathParam(raw): PathParam,
) -> Result<Response, ApiError> {
    caller.require(Permission::Read)?;
    let digest = parse_digest(&raw)?;
    let scopes = caller.scopes().to_vec();
    let checked = blocking(&state.vault, move |v| {
        // A scoped token sees a blob only through a record it may see.
        if !scopes.is_empty() {
            let filter = RecordFilter {
                digest: Some(digest.to_string()),
                blueprint_patterns: scopes,
                limit: 1,
                ..RecordFilter::default()
            };
            if v.records(&filter)?.0.is_empty() {
                return Ok(Err(evault_core::Error::NotFound(format!(
                    "no blob {digest} in the vault"
                ))));
            }
        }
        // HEAD and GET alike: a blob whose bytes the store lost is an integrity failure.
        Ok(v.blob(&digest))
    })
    .await?;
    let row = checked.map_err(|e| download_error(e, &digest))?;

    let etag = format!("\"{digest}\"");
    let mut response = Response::new(Body::empty());
    let h = response.headers_mut();
    // Digests, sizes and these constants are always valid header values.
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(ETAG, v);
    }
    h.insert(CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if if_none_match(&headers, &etag) {
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        return Ok(response);
    }
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(CONTENT_LENGTH, HeaderValue::from(row.size));
    if method == Method::HEAD {
        return Ok(response);
    }

    let (tx, rx) = mpsc::channel::<Chunk>(CHANNEL_CHUNKS);
    let vault = state.vault.clone();
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        let mut writer = ChunkWriter {
            tx: tx.clone(),
            held: None,
        };
        let result = vault.copy_blob(&digest, &mut writer);
        match result {
            Ok(_) => {
                if let Some(last) = writer.held.take() {
                    let _ = tx.blocking_send(Chunk::Data(last));
                }
            }
            Err(e) => {
                if !matches!(&e, evault_core::Error::Io { source, .. } if source.kind() == io::ErrorKind::BrokenPipe)
                {
                    tracing::error!(%digest, error = %e, "blob download failed");
                }
                let _ = tx.blocking_send(Chunk::Failed(e));
            }
        }
    });

    match super::stream_chunks(rx, "blob failed verification; transfer aborted").await {
        // Nothing was sent yet: an ordinary problem answer.
        Streamed::Failed(e) => Err(download_error(e, &digest)),
        Streamed::Body(body) => {
            *response.body_mut() = body;
            Ok(response)
        }
        // The blob is empty (or the copy died without a word, and the short body shows it).
        Streamed::Empty => Ok(response),
    }
}

/// `sha256:<hex>`, or the bare hex.
fn parse_digest(raw: &str) -> Result<Digest, ApiError> {
    let bare = raw.len() == 64 && raw.bytes().all(|b| b.is_ascii_hexdigit());
    let text = if bare {
        format!("sha256:{raw}")
    } else {
        raw.to_string()
    };
    text.parse::<Digest>().map_err(ApiError::invalid)
}

/// Whether `If-None-Match` names this ETag (or `*`); weak comparison, as RFC 9110 asks for it.
fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim())
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

/// A failure before the first byte. The digest is safe to name; the core message may hold the
/// blob file's path, so it stays in the log.
fn download_error(e: evault_core::Error, digest: &Digest) -> ApiError {
    match e {
        evault_core::Error::Integrity(_) => ApiError::see_log(
            ProblemKind::Integrity,
            format!("blob {digest} failed verification"),
        ),
        other => ApiError::from(other),
    }
}

/// Sends written bytes into the response channel, always one chunk behind (see the module
/// documentation).
struct ChunkWriter {
    tx: mpsc::Sender<Chunk>,
    held: Option<Bytes>,
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        if let Some(previous) = self.held.replace(Bytes::copy_from_slice(data)) {
            self.tx
                .blocking_send(Chunk::Data(previous))
                .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_with_or_without_prefix() {
        let hex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(parse_digest(hex).unwrap(), Digest::of(b"abc"));
        assert_eq!(
            parse_digest(&format!("sha256:{hex}")).unwrap(),
            Digest::of(b"abc")
        );
        let e = parse_digest("sha256:xyz").unwrap_err();
        assert!(e.problem("", "").detail.starts_with("invalid digest"));
    }

    #[test]
    fn if_none_match_lists_and_weak_tags() {
        let etag = "\"sha256:ab\"";
        let mut h = HeaderMap::new();
        assert!(!if_none_match(&h, etag));
        h.insert(
            IF_NONE_MATCH,
            HeaderValue::from_static("\"x\", W/\"sha256:ab\""),
        );
        assert!(if_none_match(&h, etag));
        h.insert(IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(if_none_match(&h, etag));
        h.insert(IF_NONE_MATCH, HeaderValue::from_static("\"sha256:cd\""));
        assert!(!if_none_match(&h, etag));
    }

    #[test]
    fn the_writer_holds_back_the_last_chunk() {
        let (tx, mut rx) = mpsc::channel(8);
        let mut w = ChunkWriter { tx, held: None };
        w.write_all(b"one").unwrap();
        assert!(rx.try_recv().is_err(), "the only chunk must be held back");
        w.write_all(b"two").unwrap();
        match rx.try_recv() {
            Ok(Chunk::Data(b)) => assert_eq!(&b[..], b"one"),
            _ => panic!("expected the first chunk"),
        }
        assert_eq!(w.held.as_deref(), Some(&b"two"[..]));
    }
}
