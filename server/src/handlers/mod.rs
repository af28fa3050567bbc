//! The endpoints, one module per area. Each handler extracts, authenticates, calls `Vault` on
//! the blocking pool and maps the result; decisions about evidence stay in `evault-core`.

pub mod access;
pub mod blobs;
pub mod export;
pub mod gates;
pub mod log;
pub mod ops;
pub mod push;
pub mod queries;
pub mod records;
pub mod retention;
pub mod tokens;

use axum::body::{Body, Bytes};
use futures_util::stream;
use tokio::sync::mpsc;

/// A piece of a streamed answer (a blob, an evidence pack), or why it stopped.
pub(crate) enum Chunk {
    Data(Bytes),
    Failed(evault_core::Error),
}

/// How a streamed answer began.
pub(crate) enum Streamed {
    /// The first chunk arrived: the body streams it and the rest.
    Body(Body),
    /// Nothing was sent yet: answer with an ordinary problem.
    Failed(evault_core::Error),
    /// The writer finished without a byte.
    Empty,
}

/// Waits for the first chunk of `rx`, then streams the rest; a failure after the first chunk
/// aborts the transfer with `aborted` (the client sees a broken body, never a short one that
/// ends cleanly).
pub(crate) async fn stream_chunks(
    mut rx: mpsc::Receiver<Chunk>,
    aborted: &'static str,
) -> Streamed {
    match rx.recv().await {
        Some(Chunk::Failed(e)) => Streamed::Failed(e),
        None => Streamed::Empty,
        Some(Chunk::Data(first)) => {
            let rest = stream::unfold(rx, move |mut rx| async move {
                match rx.recv().await {
                    Some(Chunk::Data(b)) => Some((Ok(b), rx)),
                    Some(Chunk::Failed(_)) => Some((Err(std::io::Error::other(aborted)), rx)),
                    None => None,
                }
            });
            let body = stream::once(async move { Ok::<_, std::io::Error>(first) });
            Streamed::Body(Body::from_stream(futures_util::StreamExt::chain(
                body, rest,
            )))
        }
    }
}
