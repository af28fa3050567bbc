//! Where commands run: on a local vault directory (embedded mode) or against `evault serve`
//! (remote mode, `--server URL` with the token in `$EVAULT_TOKEN`). Both return the same types,
//! so every command prints exactly the same in either mode.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use evault_core::auth::{NewToken, Role, TokenInfo};
use evault_core::index::IndexStats;
use evault_core::ingest::{LinkArgs, PushProgress, PushRequest, PushSource, PushedRecord};
use evault_core::retention::{PolicySet, PolicyView};
use evault_core::sweep::{SweepReport, Tombstone};
use evault_core::vault::FsckReport;
use evault_core::{Cursor, Digest, Error, Record, RecordFilter, RecordView, Vault};
use evault_retention::{Hold, HoldSelector};
use evault_schema::Kind;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

/// A push as the user asked for it.
pub struct PushInput {
    pub paths: Vec<PathBuf>,
    pub stdin_name: String,
    pub links: LinkArgs,
    pub kind: Option<Kind>,
    pub expand_archives: bool,
}

pub struct Pushed {
    pub records: Vec<PushedRecord>,
    pub warnings: Vec<String>,
}

pub enum Backend {
    /// A local vault directory. `actor` is who acts, or why `--actor` is unusable (checked
    /// only by the commands that record an actor).
    Local {
        vault: Vault,
        actor: Result<String, String>,
    },
    Remote(Remote),
}

/// Largest page the server serves; longer listings are fetched page by page.
const SERVER_PAGE: usize = 1000;

impl Backend {
    pub fn push(
        &self,
        input: PushInput,
        progress: &mut dyn FnMut(PushProgress),
    ) -> Result<Pushed, Error> {
        match self {
            Backend::Local { vault, actor } => {
                let sources = input
                    .paths
                    .into_iter()
                    .map(|p| {
                        if p.as_os_str() == "-" {
                            PushSource::Reader {
                                name: input.stdin_name.clone(),
                                reader: Box::new(io::stdin()),
                            }
                        } else {
                            PushSource::Path(p)
                        }
                    })
                    .collect();
                let outcome = vault.push(
                    PushRequest {
                        sources,
                        links: input.links,
                        kind: input.kind,
                        producer: actor.clone().map_err(Error::Invalid)?,
                        expand_archives: input.expand_archives,
                        allowed_blueprints: Vec::new(),
                    },
                    progress,
                )?;
                Ok(Pushed {
                    records: outcome.records,
                    warnings: outcome.warnings,
                })
            }
            Backend::Remote(remote) => remote.push(input, progress),
        }
    }

    /// A record with its summary.
    pub fn record(&self, id: &str) -> Result<RecordView, Error> {
        match self {
            Backend::Local { vault, .. } => vault.view(vault.record(id)?),
            Backend::Remote(remote) => remote.get_json(&format!("/v1/records/{}", encode(id))),
        }
    }

    pub fn records(&self, filter: &RecordFilter) -> Result<(Vec<Record>, Option<Cursor>), Error> {
        match self {
            Backend::Local { vault, .. } => vault.records(filter),
            Backend::Remote(remote) => remote.records(filter),
        }
    }

    /// How many records match, when the backend can tell cheaply.
    pub fn count_records(&self, filter: &RecordFilter) -> Result<Option<u64>, Error> {
        match self {
            Backend::Local { vault, .. } => vault.count_records(filter).map(Some),
            Backend::Remote(_) => Ok(None),
        }
    }

    pub fn stats(&self) -> Result<IndexStats, Error> {
        match self {
            Backend::Local { vault, .. } => vault.stats(),
            Backend::Remote(remote) => remote.get_json("/v1/status"),
        }
    }

    /// Where the vault is, for messages.
    pub fn location(&self) -> String {
        match self {
            Backend::Local { vault, .. } => vault.dir().display().to_string(),
            Backend::Remote(remote) => remote.base.clone(),
        }
    }

    pub fn fsck(&self, progress: &mut dyn FnMut(u64, u64)) -> Result<FsckReport, Error> {
        match self {
            Backend::Local { vault, .. } => vault.fsck(progress),
            Backend::Remote(remote) => remote.send_json("POST", "/v1/fsck", None),
        }
    }

    pub fn create_token(
        &self,
        name: &str,
        role: Role,
        scopes: &[String],
        expires: Option<&str>,
    ) -> Result<NewToken, Error> {
        match self {
            Backend::Local { vault, actor } => {
                let lifetime = expires
                    .map(|e| evault_core::auth::parse_lifetime(e).map_err(Error::Invalid))
                    .transpose()?;
                let actor = actor.clone().map_err(Error::Invalid)?;
                vault.create_token(name, role, scopes, lifetime, &actor)
            }
            Backend::Remote(remote) => {
                let body = serde_json::json!({"name": name, "role": role, "scopes": scopes, "expires": expires});
                remote.send_json("POST", "/v1/tokens", Some(body))
            }
        }
    }

    pub fn retention_policy(&self) -> Result<PolicyView, Error> {
        match self {
            Backend::Local { vault, .. } => vault.retention_policy(),
            Backend::Remote(remote) => remote.get_json("/v1/retention/policy"),
        }
    }

    pub fn set_retention_policy(&self, policy: &str) -> Result<PolicySet, Error> {
        match self {
            Backend::Local { vault, actor } => {
                let actor = actor.clone().map_err(Error::Invalid)?;
                vault.set_retention_policy(policy, &actor)
            }
            Backend::Remote(remote) => remote.send_json(
                "PUT",
                "/v1/retention/policy",
                Some(serde_json::json!({ "policy": policy })),
            ),
        }
    }

    /// A retention sweep (`dry_run`: what it would remove). `at` (dry runs on a local vault
    /// only) judges retention at another instant than now.
    pub fn sweep(
        &self,
        dry_run: bool,
        at: Option<chrono::DateTime<chrono::Utc>>,
        progress: &mut dyn FnMut(&str, u64),
    ) -> Result<SweepReport, Error> {
        match (self, at) {
            (Backend::Local { vault, .. }, Some(at)) => vault.sweep_at(at, dry_run, progress),
            (Backend::Local { vault, .. }, None) => vault.sweep(dry_run, progress),
            (Backend::Remote(_), Some(_)) => Err(Error::Invalid(
                "--at works on a local vault (--data-dir); a server judges retention at its \
                 own time"
                    .into(),
            )),
            (Backend::Remote(remote), None) => remote.send_json(
                "POST",
                "/v1/retention/sweep",
                Some(serde_json::json!({ "dry_run": dry_run })),
            ),
        }
    }

    /// Deletes one record by hand (`evault rm`).
    pub fn delete_record(
        &self,
        id: &str,
        reason: &str,
        override_retention: bool,
    ) -> Result<Tombstone, Error> {
        match self {
            Backend::Local { vault, actor } => {
                let actor = actor.clone().map_err(Error::Invalid)?;
                vault.delete_record(id, reason, override_retention, &actor)
            }
            Backend::Remote(remote) => remote.send_json(
                "DELETE",
                &format!("/v1/records/{}", encode(id)),
                Some(serde_json::json!({ "reason": reason, "override": override_retention })),
            ),
        }
    }

    /// Tombstones of deleted records matching `filter` (newest first, at most its limit).
    pub fn tombstones(&self, filter: &RecordFilter) -> Result<Vec<Tombstone>, Error> {
        match self {
            Backend::Local { vault, .. } => vault.tombstones(filter),
            Backend::Remote(remote) => {
                #[derive(Deserialize)]
                struct Page {
                    tombstones: Vec<Tombstone>,
                }
                let mut q: Vec<String> = filter_query(filter)
                    .iter()
                    .map(|(k, v)| format!("{k}={}", encode(v)))
                    .collect();
                // One page: a server answers at most SERVER_PAGE.
                q.push(format!("limit={}", filter.limit.min(SERVER_PAGE)));
                let page: Page = remote.get_json(&format!("/v1/tombstones?{}", q.join("&")))?;
                Ok(page.tombstones)
            }
        }
    }

    /// Every hold (`all`), or the active ones.
    pub fn holds(&self, all: bool) -> Result<Vec<Hold>, Error> {
        let holds: Vec<Hold> = match self {
            Backend::Local { vault, .. } => vault.holds()?,
            Backend::Remote(remote) => remote.get_json(&format!("/v1/holds?all={all}"))?,
        };
        Ok(holds.into_iter().filter(|h| all || h.is_active()).collect())
    }

    pub fn add_hold(
        &self,
        name: &str,
        reason: &str,
        selector: HoldSelector,
    ) -> Result<Hold, Error> {
        match self {
            Backend::Local { vault, actor } => {
                let actor = actor.clone().map_err(Error::Invalid)?;
                vault.add_hold(name, reason, selector, &actor)
            }
            Backend::Remote(remote) => {
                let mut body = serde_json::to_value(&selector)
                    .map_err(|e| Error::Internal(format!("cannot encode a hold: {e}")))?;
                body["name"] = name.into();
                body["reason"] = reason.into();
                remote.send_json("POST", "/v1/holds", Some(body))
            }
        }
    }

    pub fn release_hold(&self, name: &str, reason: &str) -> Result<Hold, Error> {
        match self {
            Backend::Local { vault, actor } => {
                let actor = actor.clone().map_err(Error::Invalid)?;
                vault.release_hold(name, reason, &actor)
            }
            Backend::Remote(remote) => remote.send_json(
                "POST",
                &format!("/v1/holds/{}/release", encode(name)),
                Some(serde_json::json!({ "reason": reason })),
            ),
        }
    }

    pub fn tokens(&self) -> Result<Vec<TokenInfo>, Error> {
        match self {
            Backend::Local { vault, .. } => vault.tokens(),
            Backend::Remote(remote) => remote.get_json("/v1/tokens"),
        }
    }

    pub fn revoke_token(&self, name: &str) -> Result<TokenInfo, Error> {
        match self {
            Backend::Local { vault, actor } => {
                let actor = actor.clone().map_err(Error::Invalid)?;
                vault.revoke_token(name, &actor)
            }
            Backend::Remote(remote) => {
                remote.send_json("DELETE", &format!("/v1/tokens/{}", encode(name)), None)
            }
        }
    }

    /// Writes a blob's verified bytes to `out`. Nothing unverified ever reaches `out`.
    pub fn get_blob(
        &self,
        digest: &Digest,
        out: &mut dyn Write,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), Error> {
        match self {
            Backend::Local { vault, .. } => {
                // Verify first so that corrupt bytes never reach a pipe; the copy verifies again.
                vault.verify_blob(digest)?;
                vault.copy_blob(digest, out).map(|_| ())
            }
            Backend::Remote(remote) => {
                let mut temp = tempfile::tempfile()
                    .map_err(|e| Error::io("cannot create a temporary file", e))?;
                remote.download(digest, &mut temp, progress)?;
                io::Seek::rewind(&mut temp)
                    .map_err(|e| Error::io("cannot read the download", e))?;
                io::copy(&mut temp, out).map_err(|e| Error::io("cannot write output", e))?;
                Ok(())
            }
        }
    }

    /// Writes a blob's verified bytes to `path`, atomically.
    pub fn get_blob_to_file(
        &self,
        digest: &Digest,
        path: &Path,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), Error> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut temp = tempfile::Builder::new()
            .prefix(".evault-get-")
            .tempfile_in(&dir)
            .map_err(|e| Error::io_path("cannot create a file in", &dir, e))?;
        match self {
            Backend::Local { vault, .. } => {
                let mut out = io::BufWriter::new(temp.as_file_mut());
                vault.copy_blob(digest, &mut out)?;
                out.flush()
                    .map_err(|e| Error::io_path("cannot write", path, e))?;
            }
            Backend::Remote(remote) => remote.download(digest, temp.as_file_mut(), progress)?,
        }
        temp.as_file()
            .sync_all()
            .map_err(|e| Error::io_path("cannot write", path, e))?;
        temp.persist(path)
            .map_err(|e| Error::io_path("cannot write", path, e.error))?;
        Ok(())
    }
}

/// Percent-encodes a path segment or query value.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An RFC 9457 problem as the server sends it.
#[derive(Debug, Deserialize)]
struct Problem {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    detail: Option<String>,
    #[serde(default)]
    title: Option<String>,
}

/// A vault behind `evault serve`.
pub struct Remote {
    base: String,
    token: String,
    agent: ureq::Agent,
}

/// Largest JSON answer read into memory.
const JSON_LIMIT: u64 = 256 << 20;

impl Remote {
    pub fn new(server: &str, token: Option<String>) -> Result<Remote, Error> {
        let base = server.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::Invalid(format!(
                "invalid --server '{server}': expected an http:// or https:// URL"
            )));
        }
        let token = token.filter(|t| !t.is_empty()).ok_or_else(|| {
            Error::Unauthenticated(
                "remote mode needs a token: set EVAULT_TOKEN (see `evault token create`)".into(),
            )
        })?;
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        Ok(Remote { base, token, agent })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn unreachable(&self, e: ureq::Error) -> Error {
        Error::io(
            format!("cannot reach the evault server at {}", self.base),
            io::Error::other(e),
        )
    }

    /// Turns a non-success answer into the error the same failure has in embedded mode.
    fn failure(&self, response: ureq::http::Response<ureq::Body>) -> Error {
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .into_with_config()
            .limit(1 << 20)
            .read_to_vec()
            .unwrap_or_default();
        let problem: Option<Problem> = serde_json::from_slice(&body).ok();
        let detail = problem
            .as_ref()
            .and_then(|p| p.detail.clone().or_else(|| p.title.clone()))
            .unwrap_or_else(|| format!("the server answered {status}"));
        let integrity = problem
            .as_ref()
            .is_some_and(|p| p.kind.ends_with("/integrity"));
        match status {
            400 => Error::Invalid(detail),
            401 => Error::Unauthenticated(format!("{detail} (check EVAULT_TOKEN)")),
            403 => Error::Forbidden(detail),
            404 => Error::NotFound(detail),
            409 => Error::Conflict(detail),
            413 => Error::TooLarge(detail),
            415 | 422 => Error::Unprocessable(detail),
            500 if integrity => Error::Integrity(detail),
            _ => Error::Internal(format!("server error {status}: {detail}")),
        }
    }

    fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        response: ureq::http::Response<ureq::Body>,
    ) -> Result<T, Error> {
        if !response.status().is_success() {
            return Err(self.failure(response));
        }
        let body = response
            .into_body()
            .into_with_config()
            .limit(JSON_LIMIT)
            .read_to_vec()
            .map_err(|e| self.unreachable(e))?;
        serde_json::from_slice(&body).map_err(|e| {
            Error::Internal(format!(
                "the server's answer is not what evault expects: {e}"
            ))
        })
    }

    pub fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        let response = self
            .agent
            .get(self.url(path))
            .header("authorization", format!("Bearer {}", self.token))
            .call()
            .map_err(|e| self.unreachable(e))?;
        self.read_json(response)
    }

    pub fn send_json<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T, Error> {
        let auth = format!("Bearer {}", self.token);
        let url = self.url(path);
        let response = match (method, body) {
            ("DELETE", Some(body)) => self
                .agent
                .delete(&url)
                .header("authorization", &auth)
                .header("content-type", "application/json")
                .force_send_body()
                .send(body.to_string()),
            ("DELETE", None) => self
                .agent
                .delete(&url)
                .header("authorization", &auth)
                .call(),
            ("PUT", Some(body)) => self
                .agent
                .put(&url)
                .header("authorization", &auth)
                .header("content-type", "application/json")
                .send(body.to_string()),
            (_, Some(body)) => self
                .agent
                .post(&url)
                .header("authorization", &auth)
                .header("content-type", "application/json")
                .send(body.to_string()),
            (_, None) => self
                .agent
                .post(&url)
                .header("authorization", &auth)
                .send_empty(),
        }
        .map_err(|e| self.unreachable(e))?;
        self.read_json(response)
    }

    fn records(&self, filter: &RecordFilter) -> Result<(Vec<Record>, Option<Cursor>), Error> {
        #[derive(Deserialize)]
        struct Page {
            records: Vec<Record>,
            next_cursor: Option<String>,
        }
        let query = filter_query(filter);
        let mut records = Vec::new();
        let mut cursor = filter.before.map(|c| c.to_string());
        loop {
            let want = (filter.limit - records.len()).min(SERVER_PAGE);
            let mut q: Vec<String> = query
                .iter()
                .map(|(k, v)| format!("{k}={}", encode(v)))
                .collect();
            q.push(format!("limit={want}"));
            if let Some(c) = &cursor {
                q.push(format!("cursor={}", encode(c)));
            }
            let page: Page = self.get_json(&format!("/v1/records?{}", q.join("&")))?;
            records.extend(page.records);
            cursor = page.next_cursor;
            if cursor.is_none() || records.len() >= filter.limit {
                break;
            }
        }
        let next = cursor
            .map(|c| c.parse::<Cursor>().map_err(Error::Internal))
            .transpose()?;
        Ok((records, next))
    }

    fn push(
        &self,
        input: PushInput,
        progress: &mut dyn FnMut(PushProgress),
    ) -> Result<Pushed, Error> {
        let [path] = input.paths.as_slice() else {
            return Err(Error::Invalid(
                "a remote push takes one file, directory or archive (pack several into one archive)".into(),
            ));
        };
        let mut query: Vec<String> = Vec::new();
        let links = &input.links;
        for (k, v) in [
            ("blueprint", &links.blueprint),
            ("version", &links.version),
            ("git_sha", &links.git_sha),
            ("repo", &links.repo),
            ("run_id", &links.run_id),
            ("env", &links.environment),
        ] {
            if let Some(v) = v {
                query.push(format!("{k}={}", encode(v)));
            }
        }
        for s in &links.subjects {
            query.push(format!("subject={}", encode(s)));
        }
        if let Some(kind) = input.kind {
            query.push(format!("kind={kind}"));
        }
        if !input.expand_archives {
            query.push("expand=false".into());
        }
        let (name, body): (String, Box<dyn Read + Send>) = if path.as_os_str() == "-" {
            (input.stdin_name.clone(), Box::new(io::stdin()))
        } else if path.is_dir() {
            (file_label(path), Box::new(tar_stream(path.clone())?))
        } else {
            let file = File::open(path).map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => {
                    Error::NotFound(format!("{}: no such file or directory", path.display()))
                }
                _ => Error::Invalid(format!("{}: cannot read: {e}", path.display())),
            })?;
            (file_label(path), Box::new(file))
        };
        query.push(format!("name={}", encode(&name)));
        let mut sent = 0u64;
        let mut counting = Counting {
            inner: body,
            sent: &mut sent,
            report: progress,
        };
        let response = self
            .agent
            .post(self.url(&format!("/v1/push?{}", query.join("&"))))
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", "application/octet-stream")
            .send(ureq::SendBody::from_reader(&mut counting))
            .map_err(|e| self.unreachable(e))?;
        let warnings = response
            .headers()
            .get_all("evault-warning")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect();
        let records: Vec<PushedRecord> = self.read_json(response)?;
        Ok(Pushed { records, warnings })
    }

    /// Downloads a blob into `out`, hashing as it goes; a mismatch is an integrity error.
    fn download(
        &self,
        digest: &Digest,
        out: &mut dyn Write,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), Error> {
        let response = self
            .agent
            .get(self.url(&format!("/v1/blobs/{digest}")))
            .header("authorization", format!("Bearer {}", self.token))
            .call()
            .map_err(|e| self.unreachable(e))?;
        if !response.status().is_success() {
            return Err(self.failure(response));
        }
        let mut reader = response.into_body().into_reader();
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Error::Integrity(format!(
                        "blob {digest}: the download broke off after {total} bytes ({e}); the server may have found it corrupt"
                    )));
                }
            };
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])
                .map_err(|e| Error::io("cannot write output", e))?;
            total += n as u64;
            progress(total);
        }
        let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
        if actual != digest.to_string() {
            return Err(Error::Integrity(format!(
                "blob {digest}: the server sent bytes that hash to {actual}"
            )));
        }
        Ok(())
    }
}

fn file_label(path: &Path) -> String {
    path.file_name().map_or_else(
        || "upload".to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// A tar stream of a directory's contents, written on a thread into a pipe. Symbolic links are
/// archived as links (never followed) so that the server applies the same bundle rules as a
/// local push.
fn tar_stream(dir: PathBuf) -> Result<io::PipeReader, Error> {
    let (reader, writer) = io::pipe().map_err(|e| Error::io("cannot create a pipe", e))?;
    std::thread::spawn(move || {
        let mut tar = tar::Builder::new(writer);
        tar.follow_symlinks(false);
        // A failure here surfaces to the server as a truncated archive (422).
        let _ = tar.append_dir_all(".", &dir).and_then(|_| tar.finish());
    });
    Ok(reader)
}

struct Counting<'a> {
    inner: Box<dyn Read + Send>,
    sent: &'a mut u64,
    report: &'a mut dyn FnMut(PushProgress),
}

impl Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        *self.sent += n as u64;
        (self.report)(PushProgress {
            files_staged: 0,
            bytes_staged: *self.sent,
        });
        Ok(n)
    }
}

/// Downloads of evidence packs (`evault export` against a server).
impl Remote {
    /// Streams the body of `GET path` into `out`; `progress` hears the bytes received. A body
    /// that breaks off is an error (the server aborts the transfer when the pack cannot be
    /// completed), so a caller never keeps half a download.
    pub fn download_to(
        &self,
        path: &str,
        out: &mut dyn Write,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64, Error> {
        let response = self
            .agent
            .get(self.url(path))
            .header("authorization", format!("Bearer {}", self.token))
            .call()
            .map_err(|e| self.unreachable(e))?;
        if !response.status().is_success() {
            return Err(self.failure(response));
        }
        let mut reader = response.into_body().into_reader();
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Error::Integrity(format!(
                        "the download from {} broke off after {total} bytes ({e}); the server \
                         could not complete it (see its log)",
                        self.base
                    )));
                }
            };
            out.write_all(&buf[..n])
                .map_err(|e| Error::io("cannot write the download", e))?;
            total += n as u64;
            progress(total);
        }
        Ok(total)
    }
}

/// A record filter as the query parameters of `/v1/records` and `/v1/tombstones` (without
/// `limit` and `cursor`).
fn filter_query(filter: &RecordFilter) -> Vec<(&'static str, String)> {
    let mut query: Vec<(&str, String)> = Vec::new();
    let mut add = |k: &'static str, v: Option<String>| {
        if let Some(v) = v {
            query.push((k, v));
        }
    };
    add("blueprint", filter.blueprint.clone());
    add("version", filter.version.clone());
    add("git_sha", filter.git_sha.clone());
    add("kind", filter.kind.map(|k| k.to_string()));
    add("format", filter.format.map(|f| f.to_string()));
    add("env", filter.environment.clone());
    add("run_id", filter.run_id.clone());
    add("subject", filter.subject.clone());
    add("digest", filter.digest.clone());
    add("since", filter.since.map(evault_core::record::format_time));
    add("until", filter.until.map(evault_core::record::format_time));
    query
}
