//! The server's configuration file (`evault serve --config FILE`) and how it combines with the
//! command line.
//!
//! Precedence: `--listen` beats the file's `listen`; the file's `data_dir` beats the global
//! `--data-dir`. Unknown keys are errors: a misspelt limit must not silently fall back to its
//! default.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use evault_core::Error;
use evault_core::config::Limits;
use serde::Deserialize;

/// Where the server listens when neither `--listen` nor the file says.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8700";

/// The whole file. Every section and key is optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// The vault directory; relative paths are relative to the configuration file's directory.
    pub data_dir: Option<PathBuf>,
    /// `host:port` to listen on.
    pub listen: Option<String>,
    #[serde(default)]
    pub limits: ServerLimits,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub shutdown: ShutdownConfig,
    #[serde(default)]
    pub retention: RetentionConfig,
}

/// Bounds on what a request may cost. The three push limits, when present, replace the vault's
/// own (`<data-dir>/config.toml`), so that one vault can be served with tighter bounds than the
/// CLI uses on it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerLimits {
    /// Most bytes read from one upload body (before any decompression).
    pub max_upload_bytes: u64,
    pub max_file_bytes: Option<u64>,
    pub max_push_bytes: Option<u64>,
    pub max_push_files: Option<u64>,
    /// Longest a request may take until its response starts.
    pub request_timeout_secs: u64,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_upload_bytes: 8 << 30,
            max_file_bytes: None,
            max_push_bytes: None,
            max_push_files: None,
            request_timeout_secs: 600,
        }
    }
}

impl ServerLimits {
    /// The vault's push limits with this file's overrides applied.
    pub fn push_limits(&self, vault: &Limits) -> Limits {
        Limits {
            max_file_bytes: self.max_file_bytes.unwrap_or(vault.max_file_bytes),
            max_push_bytes: self.max_push_bytes.unwrap_or(vault.max_push_bytes),
            max_push_files: self.max_push_files.unwrap_or(vault.max_push_files),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter directive (`info`, `debug`, `evault_server=debug,info`). `RUST_LOG`
    /// overrides it.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    /// How long in-flight requests may run after SIGINT/SIGTERM before the process exits anyway.
    pub grace_secs: u64,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig { grace_secs: 30 }
    }
}

/// The background retention sweeper (docs/retention.md).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Seconds between two sweeps, the first one interval after start; 0 disables the sweeper.
    pub sweep_interval_secs: u64,
}

/// Longest interval between sweeps: 366 days (a longer one is a typo, and could overflow the
/// timer).
pub const MAX_SWEEP_INTERVAL_SECS: u64 = 366 * 24 * 3600;

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            sweep_interval_secs: 24 * 3600,
        }
    }
}

impl RetentionConfig {
    /// The time between two sweeps, or `None` when the sweeper is disabled.
    pub fn sweep_interval(&self) -> Option<Duration> {
        (self.sweep_interval_secs > 0).then(|| Duration::from_secs(self.sweep_interval_secs))
    }
}

impl ServerConfig {
    /// Reads and checks `path`. Errors name the file, the line and the offending key.
    pub fn load(path: &Path) -> Result<ServerConfig, Error> {
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound(format!(
                    "no server configuration file at {}",
                    path.display()
                )));
            }
            Err(e) => return Err(Error::io_path("cannot read", path, e)),
        };
        let mut config = ServerConfig::parse(&text)
            .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
        // A relative data_dir means "next to this file", not "wherever the server was started".
        if let Some(dir) = &config.data_dir
            && dir.is_relative()
            && let Some(base) = path.parent()
        {
            config.data_dir = Some(base.join(dir));
        }
        Ok(config)
    }

    /// Parses and checks the text of a configuration file.
    pub fn parse(text: &str) -> Result<ServerConfig, String> {
        let config: ServerConfig = toml::from_str(text).map_err(|e| {
            let Some(at) = e.span().map(|s| s.start.min(text.len())) else {
                return e.message().to_string();
            };
            let line = text.as_bytes()[..at]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1;
            // A wrong value's message ("invalid type: string \"x\", expected u64") does not
            // say whose value it is.
            match key_at(text, at) {
                Some(key) if !e.message().contains(key.rsplit('.').next().unwrap_or(&key)) => {
                    format!("line {line}: {key}: {}", e.message())
                }
                _ => format!("line {line}: {}", e.message()),
            }
        })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        let l = &self.limits;
        let positive = [
            ("limits.max_upload_bytes", Some(l.max_upload_bytes)),
            ("limits.max_file_bytes", l.max_file_bytes),
            ("limits.max_push_bytes", l.max_push_bytes),
            ("limits.max_push_files", l.max_push_files),
            ("limits.request_timeout_secs", Some(l.request_timeout_secs)),
        ];
        for (key, value) in positive {
            if value == Some(0) {
                return Err(format!("{key} must be greater than zero"));
            }
        }
        if self.retention.sweep_interval_secs > MAX_SWEEP_INTERVAL_SECS {
            return Err(format!(
                "retention.sweep_interval_secs must be at most {MAX_SWEEP_INTERVAL_SECS} (366 \
                 days); 0 disables the background sweeper"
            ));
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|e| format!("invalid log.level '{}': {e}", self.log.level))?;
        if let Some(listen) = &self.listen
            && listen.trim().is_empty()
        {
            return Err("listen must not be empty (e.g. \"127.0.0.1:8700\")".into());
        }
        Ok(())
    }
}

/// The key of the `key = value` line holding byte `at` of `text`, with its table
/// (`retention.sweep_interval_secs`), if that line is one.
fn key_at(text: &str, at: usize) -> Option<String> {
    let start = text.get(..at)?.rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next()?;
    let key = line.split_once('=')?.0.trim();
    if key.is_empty() || key.starts_with(['#', '[']) {
        return None;
    }
    let table = text[..start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && l.ends_with(']'))
        .map(|l| l.trim_matches(['[', ']']).trim());
    Some(match table {
        Some(table) => format!("{table}.{key}"),
        None => key.to_string(),
    })
}

/// Everything `evault serve` needs once the command line and the file are combined.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub listen: String,
    pub limits: ServerLimits,
    pub log: LogConfig,
    pub shutdown: ShutdownConfig,
    pub retention: RetentionConfig,
}

impl Settings {
    /// `--listen` beats the file; the file's `data_dir` beats the global `--data-dir`.
    pub fn resolve(file: ServerConfig, listen: Option<String>, data_dir: PathBuf) -> Settings {
        Settings {
            data_dir: file.data_dir.unwrap_or(data_dir),
            listen: listen
                .or(file.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.to_string()),
            limits: file.limits,
            log: file.log,
            shutdown: file.shutdown,
            retention: file.retention,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_means_every_default() {
        let c = ServerConfig::parse("").unwrap();
        assert_eq!(c, ServerConfig::default());
        assert_eq!(c.limits.max_upload_bytes, 8 << 30);
        assert_eq!(c.limits.request_timeout_secs, 600);
        assert_eq!(c.shutdown.grace_secs, 30);
        assert_eq!(c.log.level, "info");
        assert_eq!(c.retention.sweep_interval_secs, 86400);
        assert_eq!(
            c.retention.sweep_interval(),
            Some(Duration::from_secs(86400))
        );
    }

    #[test]
    fn a_full_file_reads_back() {
        let c = ServerConfig::parse(
            r#"
data_dir = "/srv/evault"
listen = "0.0.0.0:9000"
[limits]
max_upload_bytes = 1000
max_file_bytes = 10
max_push_bytes = 20
max_push_files = 3
request_timeout_secs = 5
[log]
format = "json"
level = "debug"
[shutdown]
grace_secs = 2
[retention]
sweep_interval_secs = 0
"#,
        )
        .unwrap();
        assert_eq!(c.listen.as_deref(), Some("0.0.0.0:9000"));
        assert_eq!(c.log.format, LogFormat::Json);
        assert_eq!(c.retention.sweep_interval(), None, "0 disables the sweeper");
        let vault = Limits::default();
        let merged = c.limits.push_limits(&vault);
        assert_eq!(
            (
                merged.max_file_bytes,
                merged.max_push_bytes,
                merged.max_push_files
            ),
            (10, 20, 3)
        );
    }

    #[test]
    fn absent_push_limits_keep_the_vaults_own() {
        let c = ServerConfig::parse("[limits]\nmax_push_files = 7\n").unwrap();
        let vault = Limits::default();
        let merged = c.limits.push_limits(&vault);
        assert_eq!(merged.max_push_files, 7);
        assert_eq!(merged.max_file_bytes, vault.max_file_bytes);
        assert_eq!(merged.max_push_bytes, vault.max_push_bytes);
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        for (text, key) in [
            ("lisen = \"x\"\n", "lisen"),
            (
                "[limits]\nmax_upload = 3\n",
                "line 2: unknown field `max_upload`",
            ),
            ("[log]\ncolour = true\n", "colour"),
            ("[shutdown]\ngrace = 3\n", "grace"),
            (
                "[retention]\nsweep_interval = 3\n",
                "line 2: unknown field `sweep_interval`",
            ),
            ("[server]\n", "server"),
        ] {
            let err = ServerConfig::parse(text).unwrap_err();
            assert!(err.contains(key), "{text:?}: {err}");
        }
    }

    #[test]
    fn bad_values_are_errors_naming_the_key() {
        let err = ServerConfig::parse("[log]\nformat = \"xml\"\n").unwrap_err();
        assert!(err.contains("log.format") && err.contains("xml"), "{err}");
        let err = ServerConfig::parse("[limits]\nmax_upload_bytes = 0\n").unwrap_err();
        assert!(err.contains("limits.max_upload_bytes"), "{err}");
        let err = ServerConfig::parse("[log]\nlevel = \"=\"\n").unwrap_err();
        assert!(err.contains("log.level"), "{err}");
        let err = ServerConfig::parse("[retention]\nsweep_interval_secs = \"x\"\n").unwrap_err();
        assert!(
            err.starts_with("line 2: retention.sweep_interval_secs: invalid type: string"),
            "{err}"
        );
        let err = ServerConfig::parse("listen = 8700\n").unwrap_err();
        assert!(err.starts_with("line 1: listen: invalid type"), "{err}");
        let err = ServerConfig::parse("[retention]\nsweep_interval_secs = -1\n").unwrap_err();
        assert!(err.starts_with("line 2:"), "{err}");
        let err =
            ServerConfig::parse("[retention]\nsweep_interval_secs = 99999999999\n").unwrap_err();
        assert!(err.contains("retention.sweep_interval_secs"), "{err}");
    }

    #[test]
    fn the_command_line_and_the_file_combine() {
        let file = ServerConfig {
            data_dir: Some("/from/file".into()),
            listen: Some("127.0.0.1:1".into()),
            ..Default::default()
        };
        let s = Settings::resolve(file.clone(), Some("127.0.0.1:2".into()), "/flag".into());
        assert_eq!(s.listen, "127.0.0.1:2");
        assert_eq!(s.data_dir, PathBuf::from("/from/file"));
        let s = Settings::resolve(ServerConfig::default(), None, "/flag".into());
        assert_eq!(s.listen, DEFAULT_LISTEN);
        assert_eq!(s.data_dir, PathBuf::from("/flag"));
    }

    #[test]
    fn the_documented_example_is_valid_and_shows_the_defaults() {
        let doc = include_str!("../../docs/configuration.md");
        let section = doc
            .split("## Server configuration")
            .nth(1)
            .expect("docs/configuration.md has a Server configuration section");
        let example = section
            .split("```toml\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("the section has a TOML example");
        let c = ServerConfig::parse(example).unwrap();
        assert_eq!(c.limits, ServerLimits::default());
        assert_eq!(c.log, LogConfig::default());
        assert_eq!(c.shutdown, ShutdownConfig::default());
        assert_eq!(c.retention, RetentionConfig::default());
        assert_eq!(c.listen.as_deref(), Some(DEFAULT_LISTEN));
    }

    #[test]
    fn a_relative_data_dir_is_next_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.toml");
        fs::write(&path, "data_dir = \"vault\"\n").unwrap();
        let c = ServerConfig::load(&path).unwrap();
        assert_eq!(c.data_dir, Some(dir.path().join("vault")));
        let missing = ServerConfig::load(&dir.path().join("nope.toml")).unwrap_err();
        assert!(matches!(missing, Error::NotFound(_)), "{missing}");
    }
}
