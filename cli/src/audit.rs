//! `evault audit ...`: reports for auditors: `audit changelog` (change management), `audit
//! access`, the SOC 2 access review: who read what, when and from where (the access log,
//! `docs/access-log.md`), and every token with its role, scopes, creation and last use; and
//! `audit completeness` (deploys without their evidence or a passing gate, in `gate.rs`).

use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use evault_core::Error;
use evault_core::access::{self, AccessEvent, AccessFilter, AccessLog};
use evault_core::auth::TokenInfo;
use evault_schema::validate;
use serde::Serialize;

use crate::backend::{Backend, encode};
use crate::query::time_arg;
use crate::{Global, backend, output, print_json, write_stdout};
use evault_core::query::QueryContext;
use evault_core::query::changelog::Changelog;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Change management (SOC 2): every deploy, approval and rollback in the period, each with
    /// its version's evidence and what is missing.
    Changelog(ChangelogArgs),
    /// Access review: every read of evidence by a token in the period (who, what, when, from
    /// where, answer), and every token with its role, scopes, creation and last use.
    Access(AccessArgs),
    /// Release gates: the deploys to an environment whose version lacks evidence the gate
    /// policy requires, or never passed its gate before the deploy (exit 0 none, 5 some: an
    /// alert for cron jobs).
    Completeness(crate::gate::CompletenessArgs),
}

#[derive(Args)]
pub struct ChangelogArgs {
    /// Changes at or after this time (RFC 3339, or a date: 2026-04-01).
    #[arg(long, value_name = "TIME")]
    since: String,
    /// Changes before this time (RFC 3339, or a date: 2026-07-01).
    #[arg(long, value_name = "TIME")]
    until: String,
    /// Only this environment, e.g. production.
    #[arg(long = "env", value_name = "ENV")]
    environment: Option<String>,
    /// Answer with only what the vault knew at this time.
    #[arg(long, value_name = "TIME")]
    as_of: Option<String>,
}

#[derive(Args)]
pub struct AccessArgs {
    /// Reads at or after this time (RFC 3339, or a date: 2026-04-01).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Reads before this time (RFC 3339, or a date: 2026-07-01).
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    /// Only the reads of this token.
    #[arg(long, value_name = "NAME")]
    token: Option<String>,
}

/// `audit access --json`.
#[derive(Debug, Serialize)]
struct AccessReview {
    since: Option<String>,
    until: Option<String>,
    events: Vec<AccessEvent>,
    tokens: Vec<TokenInfo>,
}

/// Events fetched per request or query.
const PAGE: usize = 1000;

pub fn run(g: &Global, command: AuditCommand) -> Result<ExitCode, Error> {
    match command {
        AuditCommand::Access(args) => access_review(g, args).map(|()| ExitCode::SUCCESS),
        AuditCommand::Changelog(args) => changelog(g, args).map(|()| ExitCode::SUCCESS),
        AuditCommand::Completeness(args) => crate::gate::completeness(g, args),
    }
}

fn access_review(g: &Global, args: AccessArgs) -> Result<(), Error> {
    let since = time_arg("--since", args.since.as_deref())?;
    let until = time_arg("--until", args.until.as_deref())?;
    let backend = backend(g)?;
    let events = match &backend {
        Backend::Local { vault, .. } => {
            // Reads through `evault serve` are the events; a vault never served has none.
            let path = vault.dir().join(access::FILE_NAME);
            if path.exists() {
                local_events(&AccessLog::open(vault.dir())?, since, until, &args.token)?
            } else {
                Vec::new()
            }
        }
        Backend::Remote(r) => {
            let mut query = format!("limit={PAGE}");
            for (name, value) in [
                ("since", &args.since),
                ("until", &args.until),
                ("token", &args.token),
            ] {
                if let Some(v) = value {
                    query.push_str(&format!("&{name}={}", encode(v)));
                }
            }
            #[derive(serde::Deserialize)]
            struct Page {
                events: Vec<AccessEvent>,
                next: Option<u64>,
            }
            let mut events = Vec::new();
            let mut after: Option<u64> = None;
            loop {
                let path = match after {
                    None => format!("/v1/log/access?{query}"),
                    Some(seq) => format!("/v1/log/access?{query}&after={seq}"),
                };
                let page: Page = r.get_json(&path)?;
                events.extend(page.events);
                match page.next {
                    Some(seq) => after = Some(seq),
                    None => break,
                }
            }
            events
        }
    };
    let review = AccessReview {
        since: since.map(evault_core::record::format_time),
        until: until.map(evault_core::record::format_time),
        events,
        tokens: backend.tokens()?,
    };
    if g.json {
        return print_json(&review);
    }
    let period = match (&review.since, &review.until) {
        (None, None) => "all time".to_string(),
        (Some(s), None) => format!("since {s}"),
        (None, Some(u)) => format!("until {u}"),
        (Some(s), Some(u)) => format!("{s} to {u}"),
    };
    let mut out = format!(
        "access review, {period}: {} read(s) by tokens\n",
        review.events.len()
    );
    out.push_str(&output::access_table(&review.events));
    out.push_str(&format!("\ntokens ({}):\n", review.tokens.len()));
    out.push_str(&output::token_table(&review.tokens, Utc::now()));
    write_stdout(&out)
}

/// Every event of the local access log matching the filter, oldest first.
fn local_events(
    log: &AccessLog,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    token: &Option<String>,
) -> Result<Vec<AccessEvent>, Error> {
    let mut events: Vec<AccessEvent> = Vec::new();
    loop {
        let page = log.query(&AccessFilter {
            since,
            until,
            token: token.clone(),
            action: None,
            limit: PAGE,
            after_seq: events.last().map(|e| e.seq),
        })?;
        let full = page.len() == PAGE;
        events.extend(page);
        if !full {
            return Ok(events);
        }
    }
}

fn changelog(g: &Global, args: ChangelogArgs) -> Result<(), Error> {
    let required = |flag: &str, v: &str| {
        time_arg(flag, Some(v))?.ok_or_else(|| Error::Invalid(format!("{flag} is required")))
    };
    let since = required("--since", &args.since)?;
    let until = required("--until", &args.until)?;
    let as_of = time_arg("--as-of", args.as_of.as_deref())?;
    if let Some(env) = &args.environment {
        validate::environment(env)
            .map_err(|e| Error::Invalid(format!("invalid --env '{}': {}", e.value, e.reason)))?;
    }
    let log: Changelog = match backend(g)? {
        Backend::Local { vault, .. } => vault.changelog(
            since,
            until,
            args.environment.as_deref(),
            &QueryContext {
                as_of,
                scopes: Vec::new(),
            },
        )?,
        Backend::Remote(r) => {
            let mut path = format!(
                "/v1/audit/changelog?since={}&until={}",
                encode(&args.since),
                encode(&args.until)
            );
            for (name, value) in [("env", &args.environment), ("as_of", &args.as_of)] {
                if let Some(v) = value {
                    path.push_str(&format!("&{name}={}", encode(v)));
                }
            }
            r.get_json(&path)?
        }
    };
    if g.json {
        return print_json(&log);
    }
    let mut out = format!(
        "change log {} to {}{}: {} deploy(s), {} approval(s), {} rollback(s); {} complete, {} \
         with gaps\n",
        log.since,
        log.until,
        log.environment
            .as_ref()
            .map(|e| format!(" in {e}"))
            .unwrap_or_default(),
        log.deploys,
        log.approvals,
        log.rollbacks,
        log.complete,
        log.incomplete
    );
    if let Some(t) = &log.as_of {
        out.push_str(&format!("(as the vault knew it at {t})\n"));
    }
    for e in &log.entries {
        let detail = match &e.detail {
            serde_json::Value::Object(m) if !m.is_empty() => {
                format!("  {}", output::inline(&e.detail))
            }
            _ => String::new(),
        };
        out.push_str(&format!(
            "\n{}  {:<8} {:<12} {} {}  by {}  commit {}  [{}]{detail}\n",
            e.time,
            e.kind.as_str(),
            e.environment,
            e.blueprint.name,
            e.blueprint.version,
            e.actor,
            &e.git_sha[..e.git_sha.len().min(12)],
            &e.record_id[..e.record_id.len().min(12)],
        ));
        let evidence: Vec<String> = e.evidence.iter().map(|(k, n)| format!("{k} {n}")).collect();
        out.push_str(&format!(
            "  evidence: {}\n",
            if evidence.is_empty() {
                "none".into()
            } else {
                evidence.join(", ")
            }
        ));
        if e.gaps.is_empty() {
            out.push_str("  complete\n");
        }
        for gap in &e.gaps {
            out.push_str(&format!("  gap: {gap}\n"));
        }
    }
    write_stdout(&out)
}
