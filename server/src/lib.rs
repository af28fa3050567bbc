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
//! [`metrics`], [`openapi`], [`query`], and `handlers/` (one module per area).

pub mod app;
pub mod auth;
pub mod config;
pub mod handlers;
pub mod metrics;
pub mod observe;
pub mod openapi;
pub mod problem;
pub mod query;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use evault_core::{Error, Vault};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use app::{app, openapi as openapi_document};
pub use config::{ServerConfig, ServerLimits, Settings};

use config::{LogConfig, LogFormat};

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
    let router = app(vault, settings.limits.clone());

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    });

    eprintln!("evault: listening on http://{addr} (vault {data_dir})");
    let mut graceful = stop_rx.clone();
    let server = axum::serve(listener, router).with_graceful_shutdown(async move {
        let _ = graceful.wait_for(|stop| *stop).await;
    });
    let grace = Duration::from_secs(settings.shutdown.grace_secs);
    let mut deadline = stop_rx;
    tokio::select! {
        served = server => served.map_err(|e| Error::io("the server failed", e)),
        _ = async move {
            let _ = deadline.wait_for(|stop| *stop).await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(grace_secs = grace.as_secs(), "grace period over; exiting with requests still running");
            Ok(())
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
