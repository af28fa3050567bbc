//! `GET /v1/export`: an evidence pack (`docs/evidence-packs.md`), built and signed by the
//! server, streamed as it is written.
//!
//! The records are chosen first (a wrong parameter or a period over the limit is an ordinary
//! problem answer), then `evault_core::pack::export` runs on the blocking pool writing into a
//! bounded channel whose receiver is the response body: memory holds a few chunks whatever the
//! pack's size. The writer holds back the last chunk until the export has succeeded, so a pack
//! that cannot be completed (a blob failing verification half-way) never ends cleanly: the error
//! sent into the body makes hyper abort the connection and the client sees a truncated
//! transfer. A failure before the first chunk is an ordinary problem answer.

use std::io::{self, Write};

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::HeaderValue;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::response::Response;
use evault_core::auth::Permission;
use evault_core::pack::{self, ExportRequest};
use evault_schema::validate;
use tokio::sync::mpsc;

use super::{Chunk, Streamed};
use crate::app::{AppState, blocking};
use crate::auth::Caller;
use crate::problem::{ApiError, Problem, ProblemKind};
use crate::query::{Params, Spec};

/// Chunks in flight per export.
const CHANNEL_CHUNKS: usize = 4;
/// Size of the chunks sent (the writer gathers zstd's small writes into these).
const CHUNK: usize = 256 * 1024;

const SPEC: Spec = Spec {
    single: &["since", "until", "blueprint", "env"],
    repeated: &[],
    ignored: &[],
};

/// An evidence pack of the records ingested in `[since, until)` (and the evidence of the
/// blueprint versions deployed or rolled back in it), as `evault export` writes it.
#[utoipa::path(get, path = "/v1/export", tag = "evidence",
    params(
        ("since" = String, Query, description = "Records ingested at or after (RFC 3339 or \
            YYYY-MM-DD); required"),
        ("until" = String, Query, description = "Records ingested before (RFC 3339 or \
            YYYY-MM-DD); required"),
        ("blueprint" = Option<String>, Query, description = "Only this blueprint"),
        ("env" = Option<String>, Query, description = "Only records linked to this environment"),
    ),
    responses(
        (status = 200, description = "the pack (a zstd-compressed tar, signed with the vault's \
            log key), streamed; a pack that cannot be completed aborts the connection",
            content_type = "application/zstd",
            headers(
                ("Content-Disposition" = String, description = "attachment; \
                    filename=\"evault-pack.tar.zst\""),
                ("X-Content-Type-Options" = String, description = "nosniff"),
            )),
        (status = 400, description = "a query parameter is missing or wrong (the detail names \
            it)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "the pack would hold more records than one pack may",
            body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn export(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    caller.require(Permission::Read)?;
    let p = Params::parse(query.as_deref(), &SPEC)?;
    let required = |name: &str| {
        p.checked(name, validate::rfc3339)?.ok_or_else(|| {
            ApiError::invalid(format!(
                "missing query parameter '{name}' (RFC 3339 or YYYY-MM-DD): a pack covers a \
                 period"
            ))
        })
    };
    let request = ExportRequest {
        since: required("since")?,
        until: required("until")?,
        blueprint: p.checked("blueprint", validate::blueprint_name)?,
        environment: p.checked("env", validate::environment)?,
        scopes: caller.scopes().to_vec(),
        exported_by: caller.0.name.clone(),
    };
    let selecting = request.clone();
    let selection = blocking(&state.vault, move |v| pack::select(v, &selecting)).await?;

    let (tx, rx) = mpsc::channel::<Chunk>(CHANNEL_CHUNKS);
    let vault = state.vault.clone();
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        let mut writer = ChunkWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
            held: None,
        };
        match pack::export(&vault, &request, &selection, &mut writer, &mut |_| {}) {
            Ok(summary) => {
                let last = writer.finish();
                if last.is_ok() {
                    tracing::info!(
                        records = summary.records,
                        blobs = summary.blobs,
                        bytes = summary.bytes,
                        "evidence pack exported"
                    );
                }
            }
            Err(e) => {
                let gone = matches!(&e, evault_core::Error::Io { source, .. }
                    if source.kind() == io::ErrorKind::BrokenPipe);
                if !gone {
                    tracing::error!(error = %e, "evidence pack export failed");
                }
                let _ = tx.blocking_send(Chunk::Failed(e));
            }
        }
    });

    match super::stream_chunks(
        rx,
        "the evidence pack could not be completed; transfer aborted",
    )
    .await
    {
        Streamed::Failed(e) => Err(ApiError::from(e)),
        Streamed::Body(body) => {
            let mut response = Response::new(body);
            let h = response.headers_mut();
            h.insert(CONTENT_TYPE, HeaderValue::from_static("application/zstd"));
            h.insert(
                CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"evault-pack.tar.zst\""),
            );
            h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
            Ok(response)
        }
        Streamed::Empty => Err(ApiError::see_log(
            ProblemKind::Internal,
            "the export ended without writing a pack",
        )),
    }
}

/// Gathers writes into chunks of [`CHUNK`] bytes and sends them, always one chunk behind:
/// the last one leaves only through [`ChunkWriter::finish`], once the pack is complete.
struct ChunkWriter {
    tx: mpsc::Sender<Chunk>,
    buf: Vec<u8>,
    held: Option<Bytes>,
}

impl ChunkWriter {
    fn send(&mut self, chunk: Bytes) -> io::Result<()> {
        self.tx
            .blocking_send(Chunk::Data(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }

    /// Sends everything held back.
    fn finish(mut self) -> io::Result<()> {
        if let Some(held) = self.held.take() {
            self.send(held)?;
        }
        if !self.buf.is_empty() {
            let last = Bytes::from(std::mem::take(&mut self.buf));
            self.send(last)?;
        }
        Ok(())
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = data.len().min(room);
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            let full = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
            if let Some(previous) = self.held.replace(full) {
                self.send(previous)?;
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writer_sends_full_chunks_one_behind_and_the_rest_on_finish() {
        let (tx, mut rx) = mpsc::channel(8);
        let mut w = ChunkWriter {
            tx,
            buf: Vec::new(),
            held: None,
        };
        w.write_all(&vec![1u8; CHUNK + 10]).unwrap();
        assert!(rx.try_recv().is_err(), "the first full chunk is held back");
        w.write_all(&vec![2u8; CHUNK]).unwrap();
        match rx.try_recv() {
            Ok(Chunk::Data(b)) => assert_eq!(b.len(), CHUNK),
            _ => panic!("expected the first chunk"),
        }
        w.finish().unwrap();
        let mut rest = 0;
        while let Ok(Chunk::Data(b)) = rx.try_recv() {
            rest += b.len();
        }
        assert_eq!(rest, CHUNK + 10);
    }
}
