//! `evault audit ...`: reports for auditors. Today `audit access`, the SOC 2 access review:
//! who read what, when and from where (the access log, `docs/access-log.md`), and every token
//! with its role, scopes, creation and last use.

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use evault_core::Error;
use evault_core::access::{self, AccessEvent, AccessFilter, AccessLog};
use evault_core::auth::TokenInfo;
use evault_schema::validate;
use serde::Serialize;

use crate::backend::{Backend, encode};
use crate::{Global, backend, output, print_json, write_stdout};

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Access review: every read of evidence by a token in the period (who, what, when, from
    /// where, answer), and every token with its role, scopes, creation and last use.
    Access(AccessArgs),
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

pub fn run(g: &Global, command: AuditCommand) -> Result<(), Error> {
    match command {
        AuditCommand::Access(args) => access_review(g, args),
    }
}

fn time_arg(name: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>, Error> {
    value
        .map(|v| {
            validate::rfc3339(v).map_err(|e| {
                Error::Invalid(format!("invalid {name} '{}': {e}", validate::excerpt(v)))
            })
        })
        .transpose()
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
