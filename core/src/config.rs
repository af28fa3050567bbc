//! A vault's own configuration: `<data-dir>/config.toml`, written by `evault init`.

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub const CONFIG_FILE: &str = "config.toml";

/// Settings stored with the vault.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultConfig {
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub storage: Storage,
}

/// Bounds on what one push may bring in. Every one of them is there so that a mistaken or
/// hostile push fails early with a clear message instead of filling the disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest single file, in bytes (after decompression when it comes from an archive).
    pub max_file_bytes: u64,
    /// Largest total of all files in one push, in bytes (decompressed).
    pub max_push_bytes: u64,
    /// Most files in one push.
    pub max_push_files: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_bytes: 8 << 30,
            max_push_bytes: 32 << 30,
            max_push_files: 10_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Storage {
    /// zstd compression level for blobs at rest (1 = fastest, 19 = smallest).
    pub zstd_level: i32,
}

impl Default for Storage {
    fn default() -> Self {
        Storage { zstd_level: 3 }
    }
}

impl VaultConfig {
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(CONFIG_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(Error::io_path("cannot read", &path, e)),
        };
        let config: VaultConfig = toml::from_str(&text)
            .map_err(|e| Error::Invalid(format!("{}: {}", path.display(), e.message())))?;
        config
            .validate()
            .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
        Ok(config)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        if !(1..=19).contains(&self.storage.zstd_level) {
            return Err(format!(
                "storage.zstd_level {} is not in 1..=19",
                self.storage.zstd_level
            ));
        }
        if self.limits.max_file_bytes == 0
            || self.limits.max_push_bytes == 0
            || self.limits.max_push_files == 0
        {
            return Err("limits must be greater than zero".into());
        }
        Ok(())
    }

    /// The commented file `evault init` writes.
    pub fn render(&self) -> String {
        format!(
            "# evault vault configuration (see docs/configuration.md)\n\n\
             [limits]\n\
             # Largest single file in bytes (decompressed, when it comes from an archive).\n\
             max_file_bytes = {}\n\
             # Largest total size of one push in bytes (decompressed).\n\
             max_push_bytes = {}\n\
             # Most files in one push.\n\
             max_push_files = {}\n\n\
             [storage]\n\
             # zstd level for blobs at rest, 1 (fast) to 19 (small).\n\
             zstd_level = {}\n",
            self.limits.max_file_bytes,
            self.limits.max_push_bytes,
            self.limits.max_push_files,
            self.storage.zstd_level
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_config_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let config = VaultConfig::default();
        fs::write(dir.path().join(CONFIG_FILE), config.render()).unwrap();
        assert_eq!(VaultConfig::load(dir.path()).unwrap(), config);
    }

    #[test]
    fn bad_config_names_the_file_and_field() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(CONFIG_FILE), "[limits]\nmax_files = 3\n").unwrap();
        let err = VaultConfig::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("config.toml") && err.contains("max_files"),
            "{err}"
        );
        fs::write(dir.path().join(CONFIG_FILE), "[storage]\nzstd_level = 40\n").unwrap();
        let err = VaultConfig::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("zstd_level 40"), "{err}");
    }
}
