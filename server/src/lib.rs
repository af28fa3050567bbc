//! # evault-server
//!
//! The REST API (`evault serve`), a thin shell over `evault-core`: handlers authenticate the
//! bearer token, translate HTTP into calls on [`evault_core::Vault`] (always on the blocking
//! pool, since every call does file or SQLite IO) and map results to JSON or RFC 9457 problems.
//! docs/api.md is the contract; the OpenAPI document at `/openapi.json` is generated from the
//! handlers in this crate.
//!
//! Layout: [`config`] (the TOML file), [`app`] (router, state, shared extractors), [`auth`]
//! (bearer tokens), [`observe`] (request ids, access log, metrics, problem bodies), [`problem`],
//! [`metrics`], [`openapi`], [`query`], [`sweeper`] (the background retention sweeps), and
//! `handlers/` (one module per area).

pub mod app;
pub mod auth;
pub mod config;
pub mod handlers;
pub mod metrics;
pub mod observe;
pub mod openapi;
pub mod problem;
pub mod query;
pub mod sweeper;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use evault_core::access::AccessLog;
use evault_core::{Error, Vault};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

pub use app::{app, openapi as openapi_document};
pub use config::{ServerConfig, ServerLimits, Settings};

use config::{LogConfig, LogFormat};
use metrics::Metrics;

/// Arguments of `evault serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (default 127.0.0.1:8700, or the config file's `listen`).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Server configuration file (TOML; see docs/configuration.md).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Runs the server until SIGINT or SIGTERM. `data_dir` is the global `--data-dir` (the config
/// file's `data_dir` wins when given).
pub fn run(args: ServeArgs, data_dir: PathBuf) -> Result<(), Error> {
    let file = match &args.config {
        Some(path) => ServerConfig::load(path)?,
        None => ServerConfig::default(),
    };
    let settings = Settings::resolve(file, args.listen, data_dir);
    init_logging(&settings.log);
    let vault = Vault::open(&settings.data_dir)?;
    let limits = settings.limits.push_limits(&vault.config().limits);
    let vault = vault.with_limits(limits);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("evault-serve")
        .build()
        .map_err(|e| Error::io("cannot start the async runtime", e))?;
    let result = runtime.block_on(serve(settings, vault));
    // Blocking tasks still running after the grace period (a stuck upload) must not keep the
    // process alive: the index commits are single transactions, so stopping is safe.
    runtime.shutdown_timeout(Duration::from_secs(1));
    if result.is_ok() {
        tracing::info!("stopped");
    }
    result
}

async fn serve(settings: Settings, vault: Vault) -> Result<(), Error> {
    let listener = TcpListener::bind(&settings.listen).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::InvalidInput {
            Error::Invalid(format!(
                "invalid listen address '{}': {e} (expected host:port, e.g. 127.0.0.1:8700)",
                settings.listen
            ))
        } else {
            Error::io(format!("cannot listen on {}", settings.listen), e)
        }
    })?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io("cannot read the listening address", e))?;
    let data_dir = vault.dir().display().to_string();
    // Reads are recorded in the access log, or refused: a server that cannot record them does
    // not start.
    let access = AccessLog::open(vault.dir())?;
    let vault = Arc::new(vault);
    let metrics = Arc::new(Metrics::new());
    let router = app::app_with_access_log(
        Arc::clone(&vault),
        Arc::clone(&metrics),
        settings.limits.clone(),
        access.clone(),
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    });
    let sweeper = match settings.retention.sweep_interval() {
        Some(interval) => Some(sweeper::spawn(vault, metrics, interval, stop_rx.clone())),
        None => {
            tracing::info!(
                "background retention sweeps disabled (retention.sweep_interval_secs = 0)"
            );
            None
        }
    };

    eprintln!("evault: listening on http://{addr} (vault {data_dir})");
    let header_timeout = HEADER_READ_TIMEOUT.min(Duration::from_secs(
        settings.limits.request_timeout_secs.max(1),
    ));
    let connections = TaskTracker::new();
    let mut stop = stop_rx.clone();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(connection) => connection,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.wait_for(|stop| *stop) => break,
        };
        connections.spawn(serve_connection(
            stream,
            peer,
            router.clone(),
            header_timeout,
            stop_rx.clone(),
        ));
    }
    // Stop accepting, then give the requests in flight the grace period to finish.
    drop(listener);
    connections.close();
    let grace = Duration::from_secs(settings.shutdown.grace_secs);
    let stopping = std::time::Instant::now();
    if tokio::time::timeout(grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_secs = grace.as_secs(),
            "grace period over; exiting with requests still running"
        );
    }
    // A sweep in progress may finish within what is left of the grace period; cut short, it
    // leaves a consistent vault and the next sweep completes its work.
    let left = grace.saturating_sub(stopping.elapsed());
    if let Some(sweeper) = sweeper
        && tokio::time::timeout(left, sweeper).await.is_err()
    {
        tracing::warn!(
            grace_secs = grace.as_secs(),
            "grace period over; exiting during a retention sweep"
        );
    }
    // What the finished requests recorded is committed before the process exits.
    let flushed = tokio::time::timeout(
        ACCESS_LOG_FLUSH,
        tokio::task::spawn_blocking(move || access.flush()),
    )
    .await;
    match flushed {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::error!(error = %e, "the access log could not be flushed"),
        Ok(Err(e)) => tracing::error!(error = %e, "the access log could not be flushed"),
        Err(_) => tracing::error!(
            secs = ACCESS_LOG_FLUSH.as_secs(),
            "the access log was not flushed in time"
        ),
    }
    Ok(())
}

/// Longest wait at shutdown for the access log's queue to be committed.
const ACCESS_LOG_FLUSH: Duration = Duration::from_secs(10);

/// Longest a client may take to send a request's headers (bounded by the request timeout):
/// without it, a client that never finishes its headers holds a connection forever.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a connection answered with `Connection: close` may linger for the answer to be
/// written before it is cut, even if the client is still sending a body nobody will read.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// Whether the connection must end after this answer: the request was cut short (a timeout, an
/// upload over a limit), so the rest of its body would never be read, or the answer says so.
fn closes_connection(response: &axum::response::Response) -> bool {
    let status = response.status();
    status == axum::http::StatusCode::REQUEST_TIMEOUT
        || status == axum::http::StatusCode::PAYLOAD_TOO_LARGE
        || response
            .headers()
            .get(axum::http::header::CONNECTION)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"))
}

/// Serves one HTTP/1.1 connection until the client leaves, an answer says `Connection: close`,
/// or the server shuts down (then the request in flight may finish within the grace period).
/// Every request carries the peer's address (`observe::Peer`) for the access log.
async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    router: axum::Router,
    header_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let close = Arc::new(Notify::new());
    let close_after = Arc::clone(&close);
    let service =
        hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let router = router.clone();
            let close = Arc::clone(&close_after);
            async move {
                let mut request = request.map(axum::body::Body::new);
                request.extensions_mut().insert(observe::Peer(peer));
                let response = router.oneshot(request).await;
                if let Ok(r) = &response
                    && closes_connection(r)
                {
                    close.notify_one();
                }
                response
            }
        });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
    tokio::pin!(connection);
    let linger = tokio::select! {
        _ = connection.as_mut() => return,
        _ = close.notified() => Some(CLOSE_LINGER),
        _ = stop.wait_for(|stop| *stop) => None,
    };
    connection.as_mut().graceful_shutdown();
    match linger {
        // Dropping the connection closes the socket.
        Some(linger) => {
            let _ = tokio::time::timeout(linger, connection).await;
        }
        None => {
            let _ = connection.await;
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn wait_for_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
}

/// Logs go to stderr, as text or JSON lines; `RUST_LOG` overrides the configured level.
fn init_logging(log: &LogConfig) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| tracing_subscriber::EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(&log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second initialisation (tests, embedding) keeps the first subscriber.
    let _ = match log.format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}
