//! `evault`: the command line of the evidence vault.
//!
//! A thin shell: it parses arguments, calls `evault-core`, and prints the result for people or,
//! with `--json`, for scripts. Errors are one line on stderr starting `error:`, with a stable
//! exit code (0 success, 1 internal error, 2 bad usage or invalid input, 3 not found,
//! 4 integrity failure, 6 token or permission refused). Some answers have codes of their own:
//! 5 a release gate failed (`gate check`, `audit completeness`), 7 not verified (`verify`).

mod audit;
mod backend;
mod demo;
mod gate;
mod log;
mod output;
mod pack;
mod query;
mod retention;
mod trust;

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use backend::{Backend, PushInput, Remote};
use clap::{Args, Parser, Subcommand};
use evault_core::auth::Role;
use evault_core::ingest::{LinkArgs, LinkStyle, PushProgress};
use evault_core::vault::InitOutcome;
use evault_core::{Digest, Error, RecordFilter, Vault};
use evault_schema::{Format, Kind, validate};

#[derive(Parser)]
#[command(
    name = "evault",
    version,
    about = "A supply-chain evidence vault: store, link and verify SBOMs, scans, signatures, provenance, approvals and deploy records.",
    after_help = "Exit codes: 0 success, 1 internal error, 2 bad usage or invalid input, 3 not found, 4 integrity failure, 5 gate failed (evault gate check, audit completeness), 6 token or permission refused, 7 not verified (evault verify)."
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Global {
    /// The vault directory.
    #[arg(
        long,
        global = true,
        env = "EVAULT_DATA_DIR",
        default_value = ".evault",
        value_name = "DIR"
    )]
    data_dir: PathBuf,
    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true)]
    json: bool,
    /// Who is acting (embedded mode only; recorded as the producer). Default: the OS user.
    #[arg(long, global = true, value_name = "NAME")]
    actor: Option<String>,
    /// Use the vault served at URL (`evault serve`) instead of a local directory; the token
    /// comes from $EVAULT_TOKEN.
    #[arg(long, global = true, env = "EVAULT_SERVER", value_name = "URL")]
    server: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Create a vault in the data directory (does nothing if one is there).
    Init,
    /// Store evidence: files, directories (recursive) and .tar/.tar.gz/.tar.zst archives.
    Push(PushArgs),
    /// Write a blob's original bytes to stdout or a file, verifying them.
    Get(GetArgs),
    /// Show one record.
    Show {
        /// Record id (or a unique prefix of at least 6 characters).
        id: String,
    },
    /// List records, newest first.
    Ls(LsArgs),
    /// Check every stored blob against its digest, and the index against the tamper-evident
    /// log.
    Fsck,
    /// Summarise what the vault holds.
    Status,
    /// List the evidence kinds and formats evault knows.
    Formats,
    /// Manage API tokens for `evault serve` (their secrets are shown once and stored hashed).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Run a guided tour: create a vault, push a realistic evidence bundle, query it.
    Demo(demo::DemoArgs),
    /// Serve the vault over HTTP (REST API; see docs/api.md).
    Serve(evault_server::ServeArgs),
    /// Manage what the vault trusts: keys, keyless identities, Sigstore roots, requirements.
    #[command(subcommand)]
    Trust(trust::TrustCommand),
    /// Re-verify a record under the trust in force and print the chain of reasoning
    /// (exit 0 verified, 7 not verified).
    Verify {
        /// Record id (or a unique prefix of at least 6 characters).
        id: String,
    },
    /// The tamper-evident log: its key, signed checkpoints, inclusion and consistency proofs,
    /// and full verification.
    #[command(subcommand)]
    Log(log::LogCommand),
    /// Reports for auditors: `audit changelog` (every deploy, approval and rollback of a
    /// period with its evidence), `audit access` (who read what, and every token) and `audit
    /// completeness` (deploys without their evidence or a passing gate; exit 5 when any).
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Verify a classic in-toto supply chain: a signed layout and its links (exit 0 verified,
    /// 7 not). Layout inspections are never run, so a layout that has any is not verified.
    VerifyLayout(trust::LayoutArgs),
    /// Record a deploy: which artifact of which blueprint version went to which environment
    /// (the actor is the token's name, or --actor / the OS user in embedded mode).
    Deploy(query::DeployArgs),
    /// Record a rollback: the environment runs --to-version again (it becomes the live one).
    Rollback(query::RollbackArgs),
    /// Release gates: check whether a version may go to an environment (exit 0 pass or warn,
    /// 5 fail), print the facts a policy judges, show or set the gate policy.
    #[command(subcommand)]
    Gate(gate::GateCommand),
    /// Record your approval (or rejection) of a version for an environment (the approver is
    /// the token's name, or --actor / the OS user in embedded mode).
    Approve(gate::ApproveArgs),
    /// Record an exception: accept the risk of some vulnerabilities of a version in an
    /// environment until it expires (the approver as for `approve`).
    Exception(gate::ExceptionArgs),
    /// Trace a deploy back to its commit and evidence, or a commit forward to its deploys.
    #[command(subcommand)]
    Trace(query::TraceCommand),
    /// Find where a component or a vulnerability is, and whether it is live.
    #[command(subcommand)]
    Search(query::SearchCommand),
    /// Write a self-contained, signed evidence pack for auditors (records, blobs, manifest,
    /// report, log proofs and a signed checkpoint).
    Export(pack::ExportArgs),
    /// Verify an evidence pack offline, without the vault (exit 0 verified, 4 not).
    VerifyPack(pack::VerifyPackArgs),
    /// How long evidence is kept: show or set the retention policy (docs/retention.md).
    #[command(subcommand)]
    Retention(retention::RetentionCommand),
    /// Legal holds: records they select are never deleted while they are active.
    #[command(subcommand)]
    Hold(retention::HoldCommand),
    /// Delete one record by hand, leaving a tombstone: after its retain-until date, or before
    /// it with --override in governance mode; never under a legal hold (refused: exit 6).
    Rm(retention::RmArgs),
    /// Write a consistent backup of the vault to DIR (new or empty) while it keeps accepting
    /// pushes (docs/operations.md).
    Backup { dir: PathBuf },
    /// Make a new vault in --data-dir (new or empty) from the backup in DIR; then check it with
    /// `evault fsck` and `evault log verify --checkpoint`.
    Restore { dir: PathBuf },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token and print its secret (once; only a hash is stored).
    Create {
        /// Token name: recorded as the producer of what it pushes and in access reviews.
        #[arg(long)]
        name: String,
        /// pusher (push evidence), auditor (read, query, export), approver (approve, read) or
        /// admin (everything, including tokens).
        #[arg(long)]
        role: Role,
        /// Limit the token to blueprints matching PATTERN (`*` wildcard); repeatable.
        #[arg(long = "scope", value_name = "PATTERN")]
        scopes: Vec<String>,
        /// Lifetime, e.g. 12h, 90d, 8w, 1y; default: no expiry.
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
    },
    /// List tokens with role, scopes, state, creation and last use (never secrets).
    Ls,
    /// Revoke a token; it stops working at once.
    Revoke { name: String },
}

#[derive(Args)]
struct PushArgs {
    /// Files, directories or archives to push; `-` reads one file from stdin.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Blueprint (service or agent) name, e.g. checkout-api.
    #[arg(long, value_name = "NAME")]
    blueprint: Option<String>,
    /// Blueprint version, e.g. 1.4.2.
    #[arg(long = "version", value_name = "V")]
    blueprint_version: Option<String>,
    /// Git commit the evidence belongs to (40 or 64 hex characters).
    #[arg(long, value_name = "SHA")]
    git_sha: Option<String>,
    /// Source repository URL.
    #[arg(long, value_name = "URL")]
    repo: Option<String>,
    /// CI pipeline run id.
    #[arg(long, value_name = "ID")]
    run_id: Option<String>,
    /// Environment, e.g. staging or production.
    #[arg(long = "env", value_name = "ENV")]
    environment: Option<String>,
    /// Kind of every file the bundle manifest does not classify.
    #[arg(long, value_name = "KIND")]
    kind: Option<Kind>,
    /// Digest of an artifact the evidence is about (repeatable).
    #[arg(long = "subject", value_name = "sha256:HEX")]
    subjects: Vec<String>,
    /// Store archives as single blobs instead of expanding them.
    #[arg(long)]
    no_expand: bool,
    /// Name recorded as the source path for `-` (stdin).
    #[arg(long, default_value = "stdin", value_name = "NAME")]
    stdin_name: String,
}

#[derive(Args)]
struct GetArgs {
    /// Blob digest (sha256:HEX) or record id.
    target: String,
    /// Write to FILE instead of stdout (written atomically, only once verified).
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Args)]
struct LsArgs {
    #[arg(long, value_name = "NAME")]
    blueprint: Option<String>,
    #[arg(long = "version", value_name = "V")]
    blueprint_version: Option<String>,
    /// Full SHA or a prefix of at least 7 characters.
    #[arg(long, value_name = "SHA")]
    git_sha: Option<String>,
    #[arg(long, value_name = "KIND")]
    kind: Option<Kind>,
    #[arg(long, value_name = "FORMAT")]
    format: Option<Format>,
    #[arg(long = "env", value_name = "ENV")]
    environment: Option<String>,
    #[arg(long, value_name = "ID")]
    run_id: Option<String>,
    /// Records about this artifact digest.
    #[arg(long, value_name = "sha256:HEX")]
    subject: Option<String>,
    /// Records of this blob digest.
    #[arg(long, value_name = "sha256:HEX")]
    digest: Option<String>,
    /// Ingested at or after (RFC 3339 or YYYY-MM-DD).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Ingested before (RFC 3339 or YYYY-MM-DD).
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    /// Most records to show.
    #[arg(long, default_value_t = 100, value_name = "N")]
    limit: usize,
    /// Also list deleted records (their tombstones: who deleted them, when and why).
    #[arg(long)]
    include_deleted: bool,
}

/// Largest `--limit` accepted (a bound on memory and output).
const MAX_LIMIT: usize = 100_000;

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("error: internal error: {msg}{location} (please report this)");
    }));
    let cli = Cli::parse();
    match std::panic::catch_unwind(|| run(cli)) {
        Ok(Ok(code)) => code,
        Ok(Err(Error::Io { source, .. })) if source.kind() == io::ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
        Err(_) => ExitCode::from(1),
    }
}

fn run(cli: Cli) -> Result<ExitCode, Error> {
    if let Command::Verify { id } = &cli.command {
        return trust::verify(&cli.global, id);
    }
    if let Command::VerifyLayout(args) = &cli.command {
        return trust::verify_layout(&cli.global, args);
    }
    // Commands whose answer has an exit code of its own (a failed gate is 5).
    match cli.command {
        Command::Gate(command) => gate::run(&cli.global, command),
        Command::Audit(command) => audit::run(&cli.global, command),
        command => run_command(&cli.global, command).map(|()| ExitCode::SUCCESS),
    }
}

fn run_command(g: &Global, command: Command) -> Result<(), Error> {
    if g.server.is_some()
        && matches!(
            command,
            Command::Init
                | Command::Demo(_)
                | Command::Serve(_)
                | Command::Backup { .. }
                | Command::Restore { .. }
        )
    {
        return Err(Error::Invalid(
            "init, demo, serve, backup and restore work on a local vault directory; drop --server \
             (or unset EVAULT_SERVER)"
                .into(),
        ));
    }
    match command {
        Command::Init => init(g),
        Command::Push(args) => push(g, args),
        Command::Get(args) => get(g, args),
        Command::Show { id } => {
            let record = backend(g)?.record(&id)?;
            if g.json {
                print_json(&record)
            } else {
                write_stdout(&output::record_view(&record))
            }
        }
        Command::Ls(args) => ls(g, args),
        Command::Fsck => fsck(g),
        Command::Status => status(g),
        Command::Formats => formats(g),
        Command::Token(cmd) => token(g, cmd),
        Command::Demo(args) => demo::run(args, g.json),
        Command::Serve(args) => evault_server::run(args, g.data_dir.clone()),
        Command::Trust(command) => trust::run(g, command),
        Command::Log(command) => log::run(g, command),
        Command::Deploy(args) => query::deploy(g, args),
        Command::Rollback(args) => query::rollback(g, args),
        Command::Approve(args) => gate::approve(g, args),
        Command::Exception(args) => gate::exception(g, args),
        Command::Trace(command) => query::trace(g, command),
        Command::Search(command) => query::search(g, command),
        Command::Export(args) => pack::export(g, args),
        Command::VerifyPack(args) => pack::verify_pack(g, args),
        Command::Retention(command) => retention::retention(g, command),
        Command::Hold(command) => retention::hold(g, command),
        Command::Rm(args) => retention::rm(g, args),
        Command::Backup { dir } => retention::backup(g, &dir),
        Command::Restore { dir } => retention::restore(g, &dir),
        Command::Verify { .. }
        | Command::VerifyLayout(_)
        | Command::Gate(_)
        | Command::Audit(_) => Err(Error::Internal(
            "verify, gate and audit are dispatched before".into(),
        )),
    }
}

fn invalid(flag: &str, e: validate::ValueError) -> Error {
    Error::Invalid(format!("invalid {flag} '{}': {}", e.value, e.reason))
}

/// Who is acting in embedded mode: `--actor`, else the OS user.
fn actor(g: &Global) -> Result<String, Error> {
    let name = match &g.actor {
        Some(a) => a.clone(),
        None => ["USER", "LOGNAME", "USERNAME"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
            .or_else(os_user_from_uid)
            .unwrap_or_else(|| "unknown".into()),
    };
    validate::actor(&name).map_err(|e| invalid("--actor", e))
}

/// The vault commands act on: the local directory, or the server given by `--server`.
/// Progress of a pass over blobs (`<what> blobs: done/total`) on stderr, for a terminal, every
/// 64 blobs.
fn blob_progress(g: &Global, what: &'static str) -> impl FnMut(u64, u64) {
    let show = !g.json && io::stderr().is_terminal();
    move |done, total| {
        if show && (done == total || done.is_multiple_of(64)) {
            eprint!("\r{what} blobs: {done}/{total}");
            if done == total {
                eprintln!();
            }
        }
    }
}

fn backend(g: &Global) -> Result<Backend, Error> {
    match &g.server {
        Some(url) => {
            if g.actor.is_some() {
                return Err(Error::Invalid(
                    "--actor is for embedded mode; on a server the identity comes from the token"
                        .into(),
                ));
            }
            Ok(Backend::Remote(Remote::new(
                url,
                std::env::var("EVAULT_TOKEN").ok(),
            )?))
        }
        None => Ok(Backend::Local {
            vault: Vault::open(&g.data_dir)?,
            actor: actor(g).map_err(|e| e.to_string()),
        }),
    }
}

/// Progress on stderr while a terminal is watching, at most five times a second.
struct Progress {
    enabled: bool,
    last: Option<std::time::Instant>,
}

impl Progress {
    fn new(g: &Global) -> Progress {
        Progress {
            enabled: !g.json && io::stderr().is_terminal(),
            last: None,
        }
    }

    fn show(&mut self, text: impl FnOnce() -> String) {
        if self.enabled && self.last.is_none_or(|t| t.elapsed().as_millis() >= 200) {
            self.last = Some(std::time::Instant::now());
            eprint!("\r\x1b[K{}", text());
        }
    }

    fn clear(&self) {
        if self.last.is_some() {
            eprint!("\r\x1b[K");
        }
    }
}

/// The OS user when no environment variable names it (e.g. in minimal containers).
fn os_user_from_uid() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").ok()?.uid();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            (f.nth(1)? == uid.to_string()).then(|| name.to_string())
        })
        .or_else(|| Some(format!("uid-{uid}")))
}

fn print_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<(), Error> {
    let mut text =
        serde_json::to_string_pretty(value).map_err(|e| Error::Internal(e.to_string()))?;
    text.push('\n');
    write_stdout(&text)
}

fn write_stdout(text: &str) -> Result<(), Error> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|_| out.flush())
        .map_err(|e| Error::io("cannot write to stdout", e))
}

fn init(g: &Global) -> Result<(), Error> {
    let (vault, outcome) = Vault::init(&g.data_dir, &actor(g)?)?;
    // An existing vault whose log key is missing or swapped can be read but not changed: say
    // so now rather than at the next push.
    vault.writable()?;
    let key = vault.log_key()?;
    if g.json {
        return print_json(&serde_json::json!({
            "data_dir": vault.dir().display().to_string(),
            "created": outcome == InitOutcome::Created,
            "log_started": outcome != InitOutcome::Existing,
            "backfilled": match outcome {
                InitOutcome::Adopted { backfilled } => backfilled,
                _ => 0,
            },
            "log": key,
        }));
    }
    let log = format!(
        "its log {} is signed with key {} ({}; back it up, keep it private)",
        key.origin,
        key.key_id,
        vault.dir().join(evault_core::log::KEY_FILE).display()
    );
    let dir = vault.dir().display();
    write_stdout(&match outcome {
        InitOutcome::Created => format!("created an evault vault in {dir}\n{log}\n"),
        InitOutcome::Existing => {
            format!("a vault already exists in {dir}; nothing changed\n{log}\n")
        }
        InitOutcome::Adopted { backfilled } => format!(
            "started the tamper-evident log of the existing vault in {dir}: recorded its \
             {backfilled} objects (records, blobs, tokens, trust) as backfilled entries\n{log}\n"
        ),
    })
}

fn push(g: &Global, args: PushArgs) -> Result<(), Error> {
    let backend = backend(g)?;
    let stdin_count = args.paths.iter().filter(|p| p.as_os_str() == "-").count();
    if stdin_count > 1 {
        return Err(Error::Invalid("`-` (stdin) can be given only once".into()));
    }
    let input = PushInput {
        paths: args.paths,
        stdin_name: args.stdin_name,
        links: LinkArgs {
            style: LinkStyle::Flags,
            blueprint: args.blueprint,
            version: args.blueprint_version,
            git_sha: args.git_sha,
            repo: args.repo,
            run_id: args.run_id,
            environment: args.environment,
            subjects: args.subjects,
        },
        kind: args.kind,
        expand_archives: !args.no_expand,
    };
    let mut bar = Progress::new(g);
    let mut progress = |p: PushProgress| {
        bar.show(|| {
            if p.files_staged == 0 {
                format!("sent: {}", output::human_bytes(p.bytes_staged))
            } else {
                format!(
                    "reading: {} file{}, {}",
                    p.files_staged,
                    if p.files_staged == 1 { "" } else { "s" },
                    output::human_bytes(p.bytes_staged)
                )
            }
        })
    };
    let outcome = backend.push(input, &mut progress);
    bar.clear();
    let outcome = outcome?;
    for w in &outcome.warnings {
        eprintln!("warning: {w}");
    }
    if g.json {
        return print_json(&outcome.records);
    }
    write_stdout(&output::push_lines(&outcome.records))?;
    eprintln!("{}", output::push_summary(&outcome.records));
    Ok(())
}

fn get(g: &Global, args: GetArgs) -> Result<(), Error> {
    let backend = backend(g)?;
    let bare_digest = args.target.len() == 64 && args.target.bytes().all(|b| b.is_ascii_hexdigit());
    let digest: Digest = if args.target.contains(':') || bare_digest {
        let target = if bare_digest {
            format!("sha256:{}", args.target)
        } else {
            args.target.clone()
        };
        target.parse().map_err(Error::Invalid)?
    } else {
        backend
            .record(&args.target)?
            .record
            .digest
            .parse()
            .map_err(Error::Internal)?
    };
    let mut bar = Progress::new(g);
    let mut progress = |n: u64| bar.show(|| format!("received: {}", output::human_bytes(n)));
    let result = match args.output {
        Some(path) => backend.get_blob_to_file(&digest, &path, &mut progress),
        None => {
            let mut out = io::BufWriter::new(io::stdout().lock());
            backend
                .get_blob(&digest, &mut out, &mut progress)
                .and_then(|_| {
                    out.flush()
                        .map_err(|e| Error::io("cannot write to stdout", e))
                })
        }
    };
    bar.clear();
    result
}

fn ls(g: &Global, args: LsArgs) -> Result<(), Error> {
    let backend = backend(g)?;
    if args.limit == 0 || args.limit > MAX_LIMIT {
        return Err(Error::Invalid(format!(
            "invalid --limit {}: expected 1 to {MAX_LIMIT}",
            args.limit
        )));
    }
    let opt =
        |flag: &str, v: Option<String>, f: fn(&str) -> Result<String, validate::ValueError>| {
            v.map(|v| f(&v).map_err(|e| invalid(flag, e))).transpose()
        };
    let time = |flag: &str, v: Option<String>| {
        v.map(|v| validate::rfc3339(&v).map_err(|e| invalid(flag, e)))
            .transpose()
    };
    let git_sha = match args.git_sha {
        Some(s) => {
            let lower = s.to_ascii_lowercase();
            if lower.len() < 7 || lower.len() > 64 || !lower.bytes().all(|b| b.is_ascii_hexdigit())
            {
                return Err(Error::Invalid(format!(
                    "invalid --git-sha '{s}': expected a commit SHA or a prefix of at least 7 hexadecimal characters"
                )));
            }
            Some(lower)
        }
        None => None,
    };
    let filter = RecordFilter {
        blueprint: opt("--blueprint", args.blueprint, validate::blueprint_name)?,
        version: opt("--version", args.blueprint_version, validate::version)?,
        git_sha,
        kind: args.kind,
        format: args.format,
        environment: opt("--env", args.environment, validate::environment)?,
        run_id: opt("--run-id", args.run_id, validate::run_id)?,
        subject: opt("--subject", args.subject, validate::digest)?,
        digest: opt("--digest", args.digest, validate::digest)?,
        since: time("--since", args.since)?,
        until: time("--until", args.until)?,
        limit: args.limit,
        ..RecordFilter::default()
    };
    let (records, _) = backend.records(&filter)?;
    if args.include_deleted {
        let tombstones = backend.tombstones(&filter)?;
        if g.json {
            return print_json(&serde_json::json!({
                "records": records,
                "tombstones": tombstones,
            }));
        }
        write_stdout(&output::record_table(&records))?;
        return write_stdout(&output::tombstone_table(&tombstones));
    }
    if g.json {
        return print_json(&records);
    }
    write_stdout(&output::record_table(&records))?;
    if records.len() == filter.limit
        && let Some(total) = backend.count_records(&filter)?
        && total > records.len() as u64
    {
        eprintln!(
            "showing the newest {} of {total} records; use --limit to see more",
            records.len()
        );
    }
    Ok(())
}

fn fsck(g: &Global) -> Result<(), Error> {
    let backend = backend(g)?;
    let report = backend.fsck(&mut blob_progress(g, "checking"))?;
    if g.json {
        print_json(&report)?;
    } else {
        write_stdout(&output::fsck_report(&report))?;
    }
    let access = report.access_problems.len();
    let index = report.index_problems.len();
    if index > 0 && report.problems.is_empty() && report.log_problems.is_empty() && access == 0 {
        return Err(Error::Integrity(format!(
            "{index} derived index row(s) disagree with the records they come from"
        )));
    }
    match (
        report.problems.len(),
        report.log_problems.len() + access + index,
    ) {
        (0, 0) => Ok(()),
        (0, n) => Err(Error::Integrity(if access == n {
            format!("{n} break(s) in the access log's hash chain")
        } else {
            format!("{n} disagreement(s) with the tamper-evident or access log, or in the index")
        })),
        (b, n) => Err(Error::Integrity(format!(
            "{b} of {} blobs failed verification{}",
            report.blobs_checked,
            if n > 0 {
                format!(
                    ", and {n} disagreement(s) with the tamper-evident or access log, or in the \
                     index"
                )
            } else {
                String::new()
            }
        ))),
    }
}

fn status(g: &Global) -> Result<(), Error> {
    let backend = backend(g)?;
    let stats = backend.stats()?;
    if g.json {
        return print_json(&serde_json::json!({
            "vault": backend.location(),
            "records": stats.records,
            "blobs": stats.blobs,
            "bytes": stats.bytes,
            "stored_bytes": stats.stored_bytes,
        }));
    }
    write_stdout(&format!(
        "vault:    {}\nrecords:  {}\nblobs:    {}\nbytes:    {} original, {} stored\n",
        backend.location(),
        stats.records,
        stats.blobs,
        output::human_bytes(stats.bytes),
        output::human_bytes(stats.stored_bytes),
    ))
}

fn formats(g: &Global) -> Result<(), Error> {
    if g.json {
        let formats: Vec<_> = Format::ALL
            .iter()
            .map(|f| serde_json::json!({"format": f, "title": f.title(), "default_kind": f.default_kind()}))
            .collect();
        return print_json(&serde_json::json!({"kinds": Kind::ALL, "formats": formats}));
    }
    let mut text = String::from("Kinds:\n");
    for k in Kind::ALL {
        text.push_str(&format!("  {k}\n"));
    }
    text.push_str("\nFormats (detected from content) and the kind they imply:\n");
    for f in Format::ALL {
        text.push_str(&format!(
            "  {:<22} {:<32} {}\n",
            f.as_str(),
            f.title(),
            f.default_kind()
        ));
    }
    write_stdout(&text)
}

fn token(g: &Global, cmd: TokenCommand) -> Result<(), Error> {
    let backend = backend(g)?;
    match cmd {
        TokenCommand::Create {
            name,
            role,
            scopes,
            expires,
        } => {
            let token = backend.create_token(&name, role, &scopes, expires.as_deref())?;
            if g.json {
                return print_json(&token);
            }
            eprintln!("{}", output::token_created(&token.info));
            write_stdout(&format!("{}\n", token.secret))
        }
        TokenCommand::Ls => {
            let tokens = backend.tokens()?;
            if g.json {
                return print_json(&tokens);
            }
            write_stdout(&output::token_table(&tokens, chrono::Utc::now()))
        }
        TokenCommand::Revoke { name } => {
            let token = backend.revoke_token(&name)?;
            if g.json {
                return print_json(&token);
            }
            write_stdout(&format!(
                "revoked token '{}' (at {})\n",
                token.name,
                token.revoked_at.as_deref().unwrap_or("-")
            ))
        }
    }
}
