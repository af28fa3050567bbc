//! `evault trust ...` and `evault verify`: what the vault trusts, and the verdict on a record.

use std::path::PathBuf;

use clap::Subcommand;
use evault_core::verification::VerificationStatus;
use evault_core::{Error, Vault};
use serde_json::json;

use crate::{Global, actor, print_json, write_stdout};

#[derive(Subcommand)]
pub enum TrustCommand {
    /// List every trusted key, identity, Sigstore root and requirement.
    Ls,
    /// Trusted public keys (Ed25519, ECDSA P-256/P-384, RSA; PEM).
    #[command(subcommand)]
    Key(KeyCommand),
    /// Trusted keyless identities (Sigstore/Fulcio certificate SAN + OIDC issuer).
    #[command(subcommand)]
    Identity(IdentityCommand),
    /// Sigstore trusted roots (`trusted_root.json`) used to verify bundles offline.
    #[command(subcommand)]
    Root(RootCommand),
    /// Make pushes for blueprints matching PATTERN fail unless their evidence verifies.
    Require { pattern: String },
    /// Stop requiring verified evidence for PATTERN.
    Unrequire { pattern: String },
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Trust a public key.
    Add {
        name: String,
        /// PEM public key file.
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
        /// Trust it only for blueprints matching PATTERN (`*` wildcard); repeatable.
        #[arg(long = "scope", value_name = "PATTERN")]
        scopes: Vec<String>,
    },
    /// Stop trusting a key.
    Rm { name: String },
}

#[derive(Subcommand)]
pub enum IdentityCommand {
    /// Trust certificates for an identity.
    Add {
        name: String,
        /// The certificate's subject alternative name, exactly (e.g. a workflow URI).
        #[arg(
            long,
            value_name = "SAN",
            conflicts_with = "san_regex",
            required_unless_present = "san_regex"
        )]
        san: Option<String>,
        /// A regular expression the whole SAN must match.
        #[arg(long, value_name = "REGEX")]
        san_regex: Option<String>,
        /// The OIDC issuer, exactly (e.g. https://token.actions.githubusercontent.com).
        #[arg(long, value_name = "URL")]
        issuer: String,
        /// Trust it only for blueprints matching PATTERN; repeatable.
        #[arg(long = "scope", value_name = "PATTERN")]
        scopes: Vec<String>,
    },
    /// Stop trusting an identity.
    Rm { name: String },
}

#[derive(Subcommand)]
pub enum RootCommand {
    /// Add (or replace) a trusted root.
    Add {
        name: String,
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
    },
    /// Remove a trusted root.
    Rm { name: String },
}

#[derive(clap::Args)]
pub struct LayoutArgs {
    /// The signed layout (in-toto metablock JSON).
    pub layout: PathBuf,
    /// A public key (PEM) of the layout's owner; repeatable, each must have signed the layout.
    #[arg(long = "layout-key", value_name = "FILE", required = true)]
    pub layout_keys: Vec<PathBuf>,
    /// Directory holding the link files (`<step>.<keyid>.link`).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub links: PathBuf,
}

/// Most link files read from a directory.
const MAX_LINK_FILES: usize = 10_000;

/// `evault verify-layout`: a pure check of files on disk; nothing is stored.
pub fn verify_layout(g: &Global, args: &LayoutArgs) -> Result<std::process::ExitCode, Error> {
    let layout = read(&args.layout)?;
    let keys = args
        .layout_keys
        .iter()
        .map(|k| {
            String::from_utf8(read(k)?)
                .map_err(|_| Error::Invalid(format!("{}: not a PEM text file", k.display())))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let mut links = Vec::new();
    let entries = std::fs::read_dir(&args.links)
        .map_err(|e| Error::Invalid(format!("{}: cannot read: {e}", args.links.display())))?;
    for entry in entries {
        let entry = entry
            .map_err(|e| Error::Invalid(format!("{}: cannot read: {e}", args.links.display())))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".link") || !entry.path().is_file() {
            continue;
        }
        if links.len() == MAX_LINK_FILES {
            return Err(Error::TooLarge(format!(
                "{}: more than {MAX_LINK_FILES} link files",
                args.links.display()
            )));
        }
        links.push((name, read(&entry.path())?));
    }
    links.sort();
    let input = evault_core::verify::layout::LayoutInput {
        layout: &layout,
        layout_keys: &key_refs,
        links: &links,
    };
    let report = evault_core::verify::layout::verify_layout(&input, chrono::Utc::now());
    if g.json {
        print_json(
            &json!({"verified": report.verified, "failure": report.failure, "steps": report.steps}),
        )?;
    } else {
        write_stdout(
            &report
                .steps
                .iter()
                .map(|s| format!("{s}\n"))
                .collect::<String>(),
        )?;
    }
    Ok(if report.verified {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(NOT_VERIFIED)
    })
}

/// Exit code of `evault verify` when the record is not verified.
pub const NOT_VERIFIED: u8 = 7;

/// The local vault, for commands that do not work over `--server` yet (`what` names them).
pub(crate) fn local(g: &Global, what: &str) -> Result<Vault, Error> {
    if g.server.is_some() {
        return Err(Error::Invalid(format!(
            "{what} work on a local vault directory for now; drop --server"
        )));
    }
    Vault::open(&g.data_dir)
}

pub(crate) fn read(path: &PathBuf) -> Result<Vec<u8>, Error> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Error::Invalid(format!("{}: cannot read: {e}", path.display())))?;
    if meta.len() > 16 << 20 {
        return Err(Error::TooLarge(format!(
            "{}: larger than 16 MiB",
            path.display()
        )));
    }
    std::fs::read(path).map_err(|e| Error::Invalid(format!("{}: cannot read: {e}", path.display())))
}

pub fn run(g: &Global, command: TrustCommand) -> Result<(), Error> {
    let vault = local(g, "trust and verify")?;
    let by = actor(g)?;
    let done = |value: serde_json::Value, text: String| {
        if g.json {
            print_json(&value)
        } else {
            write_stdout(&format!("{text}\n"))
        }
    };
    match command {
        TrustCommand::Ls => {
            let (keys, identities, roots, requirements) = vault.trust_listing()?;
            if g.json {
                return print_json(&json!({
                    "keys": keys, "identities": identities, "roots": roots, "requirements": requirements,
                }));
            }
            let scope = |s: &[String]| {
                if s.is_empty() {
                    "all blueprints".to_string()
                } else {
                    s.join(", ")
                }
            };
            let mut out = String::from("keys:\n");
            for k in &keys {
                out.push_str(&format!(
                    "  {}  {}  {}  ({})\n",
                    k.name,
                    k.algorithm,
                    k.fingerprint,
                    scope(&k.scopes)
                ));
            }
            out.push_str("identities:\n");
            for i in &identities {
                let san = if i.san_is_regex {
                    format!("~/{}/", i.san)
                } else {
                    i.san.clone()
                };
                out.push_str(&format!(
                    "  {}  {san}  issuer {}  ({})\n",
                    i.name,
                    i.issuer,
                    scope(&i.scopes)
                ));
            }
            out.push_str("sigstore roots:\n");
            for r in &roots {
                out.push_str(&format!("  {}  (added {})\n", r.name, r.created_at));
            }
            out.push_str("verified evidence required for:\n");
            for r in &requirements {
                out.push_str(&format!("  {}\n", r.pattern));
            }
            write_stdout(&out)
        }
        TrustCommand::Key(KeyCommand::Add { name, file, scopes }) => {
            let pem = String::from_utf8(read(&file)?)
                .map_err(|_| Error::Invalid(format!("{}: not a PEM text file", file.display())))?;
            let key = vault.add_trusted_key(&name, &pem, &scopes, &by)?;
            let text = format!(
                "trusting {} key '{}' (fingerprint {})",
                key.algorithm, key.name, key.fingerprint
            );
            done(serde_json::to_value(&key).unwrap_or_default(), text)
        }
        TrustCommand::Key(KeyCommand::Rm { name }) => {
            vault.remove_trust("key", &name, &by)?;
            done(
                json!({"removed": name}),
                format!("no longer trusting key '{name}'"),
            )
        }
        TrustCommand::Identity(IdentityCommand::Add {
            name,
            san,
            san_regex,
            issuer,
            scopes,
        }) => {
            let (san, regex) = match (san, san_regex) {
                (Some(s), _) => (s, false),
                (None, Some(r)) => (r, true),
                (None, None) => return Err(Error::Invalid("give --san or --san-regex".into())),
            };
            let identity = vault.add_trusted_identity(&name, &san, regex, &issuer, &scopes, &by)?;
            let text = format!(
                "trusting identity '{}' ({} from {})",
                identity.name, identity.san, identity.issuer
            );
            done(serde_json::to_value(&identity).unwrap_or_default(), text)
        }
        TrustCommand::Identity(IdentityCommand::Rm { name }) => {
            vault.remove_trust("identity", &name, &by)?;
            done(
                json!({"removed": name}),
                format!("no longer trusting identity '{name}'"),
            )
        }
        TrustCommand::Root(RootCommand::Add { name, file }) => {
            let root = vault.set_trusted_root(&name, &read(&file)?, &by)?;
            done(
                serde_json::to_value(&root).unwrap_or_default(),
                format!("trusting Sigstore root '{}'", root.name),
            )
        }
        TrustCommand::Root(RootCommand::Rm { name }) => {
            vault.remove_trust("root", &name, &by)?;
            done(
                json!({"removed": name}),
                format!("no longer trusting Sigstore root '{name}'"),
            )
        }
        TrustCommand::Require { pattern } => {
            let r = vault.add_requirement(&pattern, &by)?;
            done(
                serde_json::to_value(&r).unwrap_or_default(),
                format!(
                    "pushes for blueprints matching {} now need verified evidence",
                    r.pattern
                ),
            )
        }
        TrustCommand::Unrequire { pattern } => {
            vault.remove_trust("requirement", &pattern, &by)?;
            done(
                json!({"removed": pattern}),
                format!("pushes for {pattern} no longer need verified evidence"),
            )
        }
    }
}

/// `evault verify RECORD_ID`: re-verify under the trust in force and print the reasoning.
pub fn verify(g: &Global, id: &str) -> Result<std::process::ExitCode, Error> {
    let vault = local(g, "trust and verify")?;
    let record = vault.record(id)?;
    let check = vault.verify_record(&record, &actor(g)?)?;
    if g.json {
        print_json(&json!({
            "record": record.id,
            "verification": check.verification,
            "steps": check.steps,
        }))?;
    } else {
        let mut out = String::new();
        for step in &check.steps {
            out.push_str(&format!("{step}\n"));
        }
        write_stdout(&out)?;
    }
    Ok(
        if check.verification.status == VerificationStatus::Verified {
            std::process::ExitCode::SUCCESS
        } else {
            std::process::ExitCode::from(NOT_VERIFIED)
        },
    )
}
