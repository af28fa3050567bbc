//! # evault-server
//!
//! The REST API (`evault serve`). Being written; see docs/api.md for the contract.

use std::path::PathBuf;

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
pub fn run(_args: ServeArgs, _data_dir: PathBuf) -> Result<(), evault_core::Error> {
    Err(evault_core::Error::Internal("evault serve is not built yet".into()))
}
