//! Helpers shared by the end-to-end suites: a throw-away vault driven through the real `evault`
//! binary, snapshots of its directory, and generators for bundles and archives.
//!
//! Include from a test file with `#[path = "common/mod.rs"] mod common;`. Not every suite uses
//! every helper.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// The real binary under test.
pub const EVAULT: &str = env!("CARGO_BIN_EXE_evault");

/// The actor every [`Vault`] command runs as, unless [`Vault::with_actor`] says otherwise.
pub const ACTOR: &str = "e2e-tester";

/// A 40-character git SHA the default links use.
pub const GIT_SHA: &str = "0123456789abcdef0123456789abcdef01234567";
pub const BLUEPRINT: &str = "checkout-api";
pub const VERSION: &str = "1.4.2";

/// The links a push needs when no bundle manifest supplies them.
pub const LINKS: [&str; 6] = [
    "--blueprint",
    BLUEPRINT,
    "--version",
    VERSION,
    "--git-sha",
    GIT_SHA,
];

/// `args` followed by [`LINKS`], as owned strings.
pub fn with_links(args: &[&str]) -> Vec<String> {
    args.iter()
        .chain(LINKS.iter())
        .map(|s| s.to_string())
        .collect()
}

/// `sha256:<hex>` of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Standard base64 with padding (the encoding DSSE and Sigstore bundles use).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// What one run of the binary did.
pub struct Run {
    pub args: Vec<String>,
    /// Exit code; -1 when the process was killed by a signal.
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`evault {}`\nexit code: {}\nstdout:\n{}\nstderr:\n{}",
            self.args.join(" "),
            self.code,
            self.stdout_text(),
            self.stderr
        )
    }
}

impl Run {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// stdout parsed as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "`evault {}` did not print JSON ({e}):\n{}\nstderr:\n{}",
                self.args.join(" "),
                self.stdout_text(),
                self.stderr
            )
        })
    }

    /// Asserts exit code 0 and returns the run.
    #[track_caller]
    pub fn success(self) -> Run {
        assert_eq!(
            self.code,
            0,
            "`evault {}` failed\nstdout:\n{}\nstderr:\n{}",
            self.args.join(" "),
            self.stdout_text(),
            self.stderr
        );
        self
    }

    /// Asserts the CLI's error contract: exit `code`, nothing on stdout, and exactly one line on
    /// stderr that starts with `error:`, contains every one of `needles` and shows no panic.
    #[track_caller]
    pub fn fails(&self, code: i32, needles: &[&str]) -> &Run {
        let context = || {
            format!(
                "`evault {}`\nexit code: {}\nstdout:\n{}\nstderr:\n{}",
                self.args.join(" "),
                self.code,
                self.stdout_text(),
                self.stderr
            )
        };
        assert_eq!(self.code, code, "wrong exit code for {}", context());
        assert_no_panic(&self.stderr);
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "expected exactly one line on stderr: {}",
            context()
        );
        assert!(
            lines[0].starts_with("error: "),
            "stderr must start with `error: `: {}",
            context()
        );
        for needle in needles {
            assert!(
                lines[0].contains(needle),
                "stderr does not mention {needle:?}: {}",
                context()
            );
        }
        assert!(
            self.stdout.is_empty(),
            "a failed command wrote to stdout: {}",
            context()
        );
        self
    }

    /// The stderr lines starting with `warning:`.
    pub fn warnings(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("warning:"))
            .collect()
    }
}

/// Fails if `stderr` shows a Rust panic or a backtrace.
#[track_caller]
pub fn assert_no_panic(stderr: &str) {
    for sign in [
        "panicked",
        "stack backtrace",
        "RUST_BACKTRACE",
        "internal error",
    ] {
        assert!(
            !stderr.contains(sign),
            "stderr shows a panic ({sign:?}):\n{stderr}"
        );
    }
}

/// A vault in a fresh temporary directory, driven through the real binary. The directory (the
/// "work dir") is also the current directory of every command, so tests write their inputs into
/// it and name them by relative path; the vault itself is `<work dir>/vault`.
pub struct Vault {
    temp: tempfile::TempDir,
    actor: String,
}

impl Default for Vault {
    fn default() -> Self {
        Vault::new()
    }
}

impl Vault {
    /// A work dir without a vault yet.
    pub fn new() -> Vault {
        Vault {
            temp: tempfile::Builder::new()
                .prefix("evault-e2e-")
                .tempdir()
                .expect("cannot create a temporary directory"),
            actor: ACTOR.to_string(),
        }
    }

    /// A work dir with an initialised vault.
    pub fn initialised() -> Vault {
        let v = Vault::new();
        v.init().success();
        v
    }

    pub fn with_actor(mut self, actor: &str) -> Vault {
        self.actor = actor.to_string();
        self
    }

    pub fn actor(&self) -> &str {
        &self.actor
    }

    /// The temporary work dir (current directory of every command).
    pub fn root(&self) -> &Path {
        self.temp.path()
    }

    /// The vault directory given as `--data-dir`.
    pub fn data_dir(&self) -> PathBuf {
        self.temp.path().join("vault")
    }

    /// A path inside the work dir.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.temp.path().join(rel)
    }

    /// Writes `bytes` to `rel` in the work dir (creating parent directories).
    pub fn write(&self, rel: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(&path, bytes).unwrap();
        path
    }

    /// A command for the binary with `--data-dir` and `--actor` set, run in the work dir.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(EVAULT);
        cmd.arg("--data-dir")
            .arg(self.data_dir())
            .arg("--actor")
            .arg(&self.actor)
            .current_dir(self.root())
            .env_remove("EVAULT_DATA_DIR")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `evault --data-dir <vault> --actor <actor> ARGS...` with stdin empty.
    pub fn run<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.run_inner(args, None)
    }

    /// Like [`Vault::run`], with `stdin` on standard input.
    pub fn run_with_stdin<I, S>(&self, args: I, stdin: &[u8]) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.run_inner(args, Some(stdin))
    }

    fn run_inner<I, S>(&self, args: I, stdin: Option<&[u8]>) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<std::ffi::OsString> =
            args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let mut cmd = self.command();
        cmd.args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if stdin.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd.spawn().expect("cannot start evault");
        let writer = stdin.map(|bytes| {
            let mut pipe = child.stdin.take().unwrap();
            let bytes = bytes.to_vec();
            // A separate thread, so that a child that stops reading cannot block the test.
            std::thread::spawn(move || {
                let _ = pipe.write_all(&bytes);
            })
        });
        let out = child.wait_with_output().expect("cannot wait for evault");
        if let Some(w) = writer {
            let _ = w.join();
        }
        Run {
            args: args
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
            code: out.status.code().unwrap_or(-1),
            stdout: out.stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn init(&self) -> Run {
        self.run(["init"])
    }

    /// `evault --json push ARGS...`, which must succeed; the pushed records.
    #[track_caller]
    pub fn push_json<I, S>(&self, args: I) -> Vec<Value>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut all: Vec<std::ffi::OsString> = vec!["--json".into(), "push".into()];
        all.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        records(&self.run(all).success())
    }

    /// `evault --json push ARGS...` with `stdin` on standard input, which must succeed.
    #[track_caller]
    pub fn push_json_stdin<I, S>(&self, args: I, stdin: &[u8]) -> Vec<Value>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut all: Vec<std::ffi::OsString> = vec!["--json".into(), "push".into()];
        all.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        records(&self.run_with_stdin(all, stdin).success())
    }

    /// `evault --json push PATH` with the default [`LINKS`]; the one record it must create.
    #[track_caller]
    pub fn push_one(&self, path: &str) -> Value {
        let mut records = self.push_json(with_links(&[path]));
        assert_eq!(records.len(), 1, "expected one record: {records:#?}");
        records.remove(0)
    }

    /// `evault --json ls ARGS...`, which must succeed.
    #[track_caller]
    pub fn ls_json<I, S>(&self, args: I) -> Vec<Value>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut all: Vec<std::ffi::OsString> = vec!["--json".into(), "ls".into()];
        all.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        records(&self.run(all).success())
    }

    /// `evault --json show ID`, which must succeed.
    #[track_caller]
    pub fn show_json(&self, id: &str) -> Value {
        self.run(["--json", "show", id]).success().json()
    }

    /// Writes `<vault>/config.toml`.
    pub fn write_config(&self, toml: &str) {
        fs::write(self.data_dir().join("config.toml"), toml).unwrap();
    }

    /// The file a blob is stored in: `<vault>/blobs/sha256/<first two hex>/<hex>.zst`.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").expect("a sha256: digest");
        self.data_dir()
            .join("blobs/sha256")
            .join(&hex[..2])
            .join(format!("{hex}.zst"))
    }

    /// Every `*.zst` file under `<vault>/blobs`, sorted.
    pub fn blob_files(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = walk(&self.data_dir().join("blobs"))
            .into_iter()
            .filter(|p| p.is_file() && p.extension() == Some(OsStr::new("zst")))
            .collect();
        out.sort();
        out
    }

    /// The vault directory as relative path → SHA-256 of the file's bytes (`<dir>/` → `dir` for
    /// directories), leaving out SQLite's `index.db-wal` and `index.db-shm` and the `tmp/`
    /// directory itself (files in it are listed; see [`Vault::assert_tmp_empty`]).
    pub fn snapshot(&self) -> BTreeMap<String, String> {
        snapshot(&self.data_dir())
    }

    /// The vault's staging directory holds no files.
    #[track_caller]
    pub fn assert_tmp_empty(&self) {
        let tmp = self.data_dir().join("tmp");
        let left: Vec<PathBuf> = match fs::read_dir(&tmp) {
            Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => panic!("cannot list {}: {e}", tmp.display()),
        };
        assert!(left.is_empty(), "staging files left behind: {left:?}");
    }
}

/// The records of a `--json` push or ls.
#[track_caller]
pub fn records(run: &Run) -> Vec<Value> {
    match run.json() {
        Value::Array(records) => records,
        other => panic!("expected a JSON array of records, got {other:#}"),
    }
}

/// The `id` of each record, in order.
pub fn ids(records: &[Value]) -> Vec<String> {
    records.iter().map(|r| str_field(r, "id")).collect()
}

/// A string field of a record.
#[track_caller]
pub fn str_field(record: &Value, field: &str) -> String {
    record[field]
        .as_str()
        .unwrap_or_else(|| panic!("record has no string {field:?}: {record:#}"))
        .to_string()
}

/// Every file and directory under `dir`, recursively (symbolic links are not followed).
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        let is_dir = fs::symlink_metadata(&path).unwrap().is_dir();
        out.push(path.clone());
        if is_dir {
            out.extend(walk(&path));
        }
    }
    out
}

/// See [`Vault::snapshot`].
pub fn snapshot(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for path in walk(dir) {
        let rel = path
            .strip_prefix(dir)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if rel == "index.db-wal" || rel == "index.db-shm" || rel == "tmp" {
            continue;
        }
        let meta = fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            out.insert(format!("{rel}/"), "dir".to_string());
        } else {
            let mut bytes = Vec::new();
            fs::File::open(&path)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            out.insert(rel, sha256_hex(&bytes));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Archives

/// A tar archive of regular files, in the given order, with fixed metadata.
pub fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(1_700_000_000);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, path, *data).unwrap();
    }
    builder.into_inner().unwrap()
}

/// One raw tar entry, for names `tar::Builder` refuses to write (`../x`, `/etc/passwd`): the
/// name and link name bytes go straight into the header.
pub struct RawEntry<'a> {
    pub name: &'a [u8],
    pub entry_type: tar::EntryType,
    pub link_name: &'a [u8],
    pub data: &'a [u8],
}

impl<'a> RawEntry<'a> {
    pub fn file(name: &'a str, data: &'a [u8]) -> Self {
        RawEntry {
            name: name.as_bytes(),
            entry_type: tar::EntryType::Regular,
            link_name: b"",
            data,
        }
    }

    pub fn symlink(name: &'a str, target: &'a str) -> Self {
        RawEntry {
            name: name.as_bytes(),
            entry_type: tar::EntryType::Symlink,
            link_name: target.as_bytes(),
            data: b"",
        }
    }
}

/// A tar archive written header by header, without `tar::Builder`'s path checks.
pub fn raw_tar(entries: &[RawEntry<'_>]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for e in entries {
        let mut header = tar::Header::new_ustar();
        assert!(e.name.len() <= 100 && e.link_name.len() <= 100);
        {
            let old = header.as_old_mut();
            old.name = [0; 100];
            old.name[..e.name.len()].copy_from_slice(e.name);
            old.linkname = [0; 100];
            old.linkname[..e.link_name.len()].copy_from_slice(e.link_name);
        }
        header.set_entry_type(e.entry_type);
        header.set_size(e.data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(1_700_000_000);
        header.set_cksum();
        builder.append(&header, e.data).unwrap();
    }
    builder.into_inner().unwrap()
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

pub fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::encode_all(bytes, 3).unwrap()
}
