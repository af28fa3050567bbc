//! A running `evault serve` for the HTTP end-to-end suite: the real binary on a throw-away vault,
//! bound to a loopback port the kernel picks, with its logs collected so tests can read them.
//!
//! Include with `#[path = "common/server.rs"] mod server_common;` after `common`. Tokens are made
//! through the binary (`evault token create`), exactly as an operator would, and every secret
//! handed out is remembered so that a test can check none of them reaches the logs.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{EVAULT, Run, Vault};

/// How long the server may take to say it listens, or to exit after SIGTERM.
const STARTUP: Duration = Duration::from_secs(30);

/// Largest response body a test reads (the biggest test blob is far smaller).
const MAX_BODY: u64 = 128 << 20;

/// A `evault serve` child process on a fresh vault.
pub struct Server {
    /// The vault the server serves; tests may run the binary on it while the server runs.
    pub vault: Vault,
    child: Option<Child>,
    pid: u32,
    addr: SocketAddr,
    /// Everything the server wrote to stderr (and stdout, after a marker), line by line.
    log: Arc<Mutex<String>>,
    drains: Vec<JoinHandle<()>>,
    agent: ureq::Agent,
    secrets: Mutex<Vec<String>>,
    exit: Option<ExitStatus>,
}

/// What came back from one request: status, headers and the whole body.
pub struct Reply {
    pub method: String,
    pub path: String,
    pub status: u16,
    pub headers: ureq::http::HeaderMap,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = String::from_utf8_lossy(&self.body);
        let body: String = body.chars().take(2000).collect();
        write!(
            f,
            "{} {} -> {}\nheaders: {:?}\nbody: {}",
            self.method, self.path, self.status, self.headers, body
        )
    }
}

impl Reply {
    /// A response header as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    /// The body parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("the body is not JSON ({e}): {self:?}"))
    }

    /// Asserts the status and returns the reply.
    #[track_caller]
    pub fn expect(self, status: u16) -> Reply {
        assert_eq!(self.status, status, "unexpected status: {self:?}");
        self
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One request to send: method, path (with query), bearer token, extra headers and body.
pub struct Req<'a> {
    pub method: &'a str,
    pub path: String,
    pub token: Option<&'a str>,
    pub headers: Vec<(&'a str, String)>,
    pub body: Option<Vec<u8>>,
}

impl<'a> Req<'a> {
    pub fn new(method: &'a str, path: impl Into<String>) -> Req<'a> {
        Req {
            method,
            path: path.into(),
            token: None,
            headers: Vec::new(),
            body: None,
        }
    }

    pub fn token(mut self, token: &'a str) -> Self {
        self.token = Some(token);
        self
    }

    pub fn maybe_token(mut self, token: Option<&'a str>) -> Self {
        self.token = token;
        self
    }

    pub fn header(mut self, name: &'a str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }
}

/// Percent-encodes a query parameter value (RFC 3986 unreserved characters stay).
pub fn encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `path?k=v&...` with the values percent-encoded.
pub fn with_query(path: &str, params: &[(&str, &str)]) -> String {
    if params.is_empty() {
        return path.to_string();
    }
    let query: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    format!("{path}?{}", query.join("&"))
}

/// An HTTP client that hands back 4xx and 5xx as replies instead of errors. It keeps no idle
/// connections, so a connection the server closed (after an early 413, during shutdown) is never
/// reused by the next request.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_idle_connections(0)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

impl Server {
    /// A server on a fresh, initialised vault with default settings.
    pub fn start() -> Server {
        Server::start_on(Vault::initialised(), None)
    }

    /// A server on `vault`; with `config`, that TOML is written to `<work dir>/server.toml` and
    /// passed as `serve --config`.
    pub fn start_on(vault: Vault, config: Option<&str>) -> Server {
        let mut cmd = Command::new(EVAULT);
        cmd.arg("--data-dir")
            .arg(vault.data_dir())
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .current_dir(vault.root())
            .env_remove("EVAULT_DATA_DIR")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(toml) = config {
            let path = vault.write("server.toml", toml);
            cmd.arg("--config").arg(path);
        }
        let mut child = cmd.spawn().expect("cannot start `evault serve`");
        let pid = child.id();
        let log = Arc::new(Mutex::new(String::new()));
        let (lines_tx, lines_rx) = mpsc::channel::<String>();
        let stderr = child.stderr.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let drains = vec![
            drain(stderr, "", Arc::clone(&log), Some(lines_tx)),
            drain(stdout, "stdout: ", Arc::clone(&log), None),
        ];

        let deadline = Instant::now() + STARTUP;
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines_rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = listening_address(&line) {
                        break addr;
                    }
                }
                Err(e) => {
                    // Timed out, or stderr closed because the server exited.
                    let _ = child.kill();
                    let status = child.wait().ok();
                    thread::sleep(Duration::from_millis(50));
                    panic!(
                        "`evault serve` did not report `listening on http://127.0.0.1:PORT` \
                         ({e:?}; exit status {status:?}); its output:\n{}",
                        log.lock().unwrap()
                    );
                }
            }
        };
        assert!(
            addr.ip() == IpAddr::from([127, 0, 0, 1]),
            "the server must listen on loopback only, says {addr}"
        );
        Server {
            vault,
            child: Some(child),
            pid,
            addr,
            log,
            drains,
            agent: agent(),
            secrets: Mutex::new(Vec::new()),
            exit: None,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn data_dir(&self) -> PathBuf {
        self.vault.data_dir()
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The shared HTTP client.
    pub fn agent(&self) -> &ureq::Agent {
        &self.agent
    }

    /// Creates a token through the binary (`evault --json token create`); its secret.
    #[track_caller]
    pub fn token(&self, name: &str, role: &str, scopes: &[&str], expires: Option<&str>) -> String {
        let mut args: Vec<String> = ["--json", "token", "create", "--name", name, "--role", role]
            .iter()
            .map(|s| s.to_string())
            .collect();
        for scope in scopes {
            args.push("--scope".into());
            args.push(scope.to_string());
        }
        if let Some(expires) = expires {
            args.push("--expires".into());
            args.push(expires.to_string());
        }
        let created = self.vault.run(&args).success().json();
        let secret = created["secret"]
            .as_str()
            .unwrap_or_else(|| panic!("`token create --json` printed no secret: {created:#}"))
            .to_string();
        self.remember_secret(&secret);
        secret
    }

    /// Adds a secret to those [`Server::secrets`] returns (e.g. one made over the API).
    pub fn remember_secret(&self, secret: &str) {
        self.secrets.lock().unwrap().push(secret.to_string());
    }

    /// Every secret handed out by [`Server::token`] or [`Server::remember_secret`].
    pub fn secrets(&self) -> Vec<String> {
        self.secrets.lock().unwrap().clone()
    }

    /// Sends a request and reads the whole answer. A transport error (connection refused or
    /// reset, a truncated body) panics with the server's logs.
    #[track_caller]
    pub fn send(&self, req: Req<'_>) -> Reply {
        match self.try_send(&req) {
            Ok(reply) => reply,
            Err(e) => panic!(
                "{} {} failed: {e}\nserver log:\n{}",
                req.method,
                req.path,
                self.logs()
            ),
        }
    }

    /// Like [`Server::send`], handing back transport errors.
    pub fn try_send(&self, req: &Req<'_>) -> Result<Reply, ureq::Error> {
        send_with(&self.agent, &self.url(&req.path), req)
    }

    /// The value of a series (`name` or `name{labels}`) in the `/metrics` text.
    #[track_caller]
    pub fn metric(&self, series: &str) -> u64 {
        let text = self.get("/metrics", None).expect(200).text();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{series} ")))
            .unwrap_or_else(|| panic!("no {series} in /metrics:\n{text}"))
            .parse()
            .unwrap()
    }

    /// `GET path` with an optional bearer token.
    #[track_caller]
    pub fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.send(Req::new("GET", path).maybe_token(token))
    }

    /// `POST /v1/push?params` with `body` and `token`.
    #[track_caller]
    pub fn push(&self, token: &str, params: &[(&str, &str)], body: &[u8]) -> Reply {
        self.send(
            Req::new("POST", with_query("/v1/push", params))
                .token(token)
                .body(body.to_vec()),
        )
    }

    /// Everything the server has logged so far.
    pub fn logs(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status()
            .expect("cannot run kill");
        assert!(status.success(), "kill -TERM {} failed", self.pid);
    }

    /// Waits (at most 30 s) for the server to exit; its exit status. The log drains are joined,
    /// so [`Server::logs`] is complete afterwards.
    #[track_caller]
    pub fn wait(&mut self) -> ExitStatus {
        if let Some(status) = self.exit {
            return status;
        }
        let child = self.child.as_mut().expect("the server was started");
        let deadline = Instant::now() + STARTUP;
        let status = loop {
            if let Some(status) = child.try_wait().expect("cannot wait for the server") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the server did not exit within {STARTUP:?}; its output:\n{}",
                    self.logs()
                );
            }
            thread::sleep(Duration::from_millis(20));
        };
        for handle in self.drains.drain(..) {
            let _ = handle.join();
        }
        self.exit = Some(status);
        status
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut()
            && let Ok(None) = child.try_wait()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends `req` to `url` with `agent` and reads the whole answer.
pub fn send_with(agent: &ureq::Agent, url: &str, req: &Req<'_>) -> Result<Reply, ureq::Error> {
    let mut builder = ureq::http::Request::builder().method(req.method).uri(url);
    if let Some(token) = req.token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    for (name, value) in &req.headers {
        builder = builder.header(*name, value.as_str());
    }
    let response = match &req.body {
        Some(body) => agent.run(builder.body(body.as_slice()).expect("a valid request"))?,
        None => agent.run(builder.body(()).expect("a valid request"))?,
    };
    let (parts, mut body) = response.into_parts();
    let bytes = if req.method == "HEAD" {
        Vec::new()
    } else {
        body.with_config().limit(MAX_BODY).read_to_vec()?
    };
    Ok(Reply {
        method: req.method.to_string(),
        path: req.path.clone(),
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: bytes,
    })
}

/// Copies `pipe` line by line into `log` (each line after `prefix`), forwarding lines to `lines`
/// while someone listens, until the pipe closes.
fn drain(
    pipe: impl Read + Send + 'static,
    prefix: &'static str,
    log: Arc<Mutex<String>>,
    lines: Option<mpsc::Sender<String>>,
) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf).into_owned();
                    {
                        let mut log = log.lock().unwrap();
                        log.push_str(prefix);
                        log.push_str(&line);
                        if !line.ends_with('\n') {
                            log.push('\n');
                        }
                    }
                    if let Some(tx) = &lines {
                        let _ = tx.send(line);
                    }
                }
            }
        }
    })
}

/// The address in a `listening on http://ADDR` log line.
fn listening_address(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find("listening on http://")? + "listening on http://".len()..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Sets a token's `expires_at` directly in the vault's index.
pub fn set_token_expiry(data_dir: &Path, name: &str, expires_at: &str) {
    let conn = rusqlite::Connection::open(data_dir.join("index.db")).expect("cannot open index.db");
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    let changed = conn
        .execute(
            "UPDATE tokens SET expires_at = ?1 WHERE name = ?2",
            rusqlite::params![expires_at, name],
        )
        .expect("cannot update the token");
    assert_eq!(changed, 1, "no token named {name:?}");
}

/// What a vault holds, for "nothing changed" checks while a server has it open: the files of
/// [`Vault::snapshot`] except `index.db`, whose bytes lag behind its write-ahead log, plus every
/// row of the index's evidence tables (`blobs`, `records`, `record_subjects`) read through
/// SQLite, which sees the log. The `tokens` table is left out: using a token records its last use.
pub fn vault_state(vault: &Vault) -> BTreeMap<String, String> {
    let mut state = vault.snapshot();
    state.remove("index.db");
    // Reads are recorded in the access log: it changes without the vault changing.
    state.retain(|name, _| !name.starts_with("access.db"));
    let conn = rusqlite::Connection::open(vault.data_dir().join("index.db"))
        .expect("cannot open index.db");
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    for table in [
        "blobs",
        "records",
        "record_subjects",
        "log_entries",
        "log_checkpoints",
    ] {
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM {table} ORDER BY 1, 2"))
            .expect("cannot read the index");
        let columns = stmt.column_count();
        let rows: Vec<String> = stmt
            .query_map([], |row| {
                let values: Vec<String> = (0..columns)
                    .map(|i| format!("{:?}", row.get_ref(i).unwrap()))
                    .collect();
                Ok(values.join(" | "))
            })
            .expect("cannot read the index")
            .collect::<Result<_, _>>()
            .expect("cannot read the index");
        state.insert(format!("index.db: {table}"), rows.join("\n"));
    }
    state
}

/// Rows in the index's `blobs` table.
pub fn blob_rows(data_dir: &Path) -> u64 {
    let conn = rusqlite::Connection::open(data_dir.join("index.db")).expect("cannot open index.db");
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM blobs", [], |r| r.get(0))
        .expect("cannot count blobs");
    rows as u64
}

/// Runs `evault --server URL ARGS...` against `server` with `token` (or none) in the server's
/// work dir, with no `EVAULT_*` variables from the environment.
pub fn remote(server: &Server, token: Option<&str>, args: &[&str]) -> Run {
    let mut cmd = Command::new(EVAULT);
    cmd.arg("--server")
        .arg(server.url(""))
        .args(args)
        .current_dir(server.vault.root())
        .env_remove("EVAULT_DATA_DIR")
        .env_remove("EVAULT_TOKEN")
        .env_remove("EVAULT_SERVER")
        .stdin(Stdio::null());
    if let Some(t) = token {
        cmd.env("EVAULT_TOKEN", t);
    }
    let out = cmd.output().expect("cannot run evault");
    Run {
        args: args.iter().map(|s| s.to_string()).collect(),
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Asserts a problem answer: its status, its `type` slug, and a detail holding every needle.
#[track_caller]
pub fn assert_problem(reply: &Reply, status: u16, slug: &str, needles: &[&str]) {
    assert_eq!(reply.status, status, "{reply:?}");
    let problem = reply.json();
    assert_eq!(
        problem["type"],
        format!("https://evault.dev/problems/{slug}"),
        "{reply:?}"
    );
    let detail = problem["detail"].as_str().unwrap_or_default();
    for needle in needles {
        assert!(
            detail.contains(needle),
            "detail lacks {needle:?}: {reply:?}"
        );
    }
}
