//! `evault demo`: a guided tour on a throw-away vault.
//!
//! It writes the folder a release lane's DevSecOps stage produces (see the domain notes:
//! `artifacts/runs/<RUN_ID>/devsecops/` with an SBOM, a scan report, a rollback plan, a deploy
//! receipt, plus provenance, an approval and test results), packs it as a `.tar.zst` bundle, and
//! drives the real `evault` binary through init, push, an idempotent re-push, queries, a verified
//! download, the production release gate (refused, approved, passed), the missing-evidence alert
//! and an integrity check, printing each command and what it answered.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{SecondsFormat, Utc};
use clap::Args;
use evault_core::Error;
use serde_json::json;
use sha2::{Digest as _, Sha256};

#[derive(Args)]
pub struct DemoArgs {
    /// Keep the demo vault and bundle in DIR (must not exist yet) instead of a temporary directory.
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
}

const BLUEPRINT: &str = "checkout-api";
const VERSION: &str = "1.4.2";
const RUN_ID: &str = "8812";
const REPO: &str = "https://github.com/acme/checkout-api";
/// Who runs the demo's pipeline steps.
const PIPELINE: &str = "ci-pipeline";

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn io_err(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let context = format!("{what} {}", path.display());
    move |e| Error::io(context, e)
}

fn write(dir: &Path, name: &str, content: &str) -> Result<(), Error> {
    let path = dir.join(name);
    fs::write(&path, content).map_err(io_err("cannot write", &path))
}

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default() + "\n"
}

/// Writes the lane folder and returns (folder, git sha, image digest).
fn write_lane(root: &Path) -> Result<(PathBuf, String, String), Error> {
    let lane = root.join("artifacts/runs").join(RUN_ID).join("devsecops");
    fs::create_dir_all(&lane).map_err(io_err("cannot create", &lane))?;
    let git_sha = sha256_hex(b"acme/checkout-api commit for 1.4.2")[..40].to_string();
    let image = format!(
        "sha256:{}",
        sha256_hex(b"ghcr.io/acme/checkout-api:1.4.2 image manifest")
    );
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);

    let components: Vec<_> = [
        ("express", "4.19.2", "pkg:npm/express@4.19.2", "MIT"),
        ("body-parser", "1.20.2", "pkg:npm/body-parser@1.20.2", "MIT"),
        ("jsonwebtoken", "9.0.2", "pkg:npm/jsonwebtoken@9.0.2", "MIT"),
        ("pg", "8.11.3", "pkg:npm/pg@8.11.3", "MIT"),
        ("lodash", "4.17.20", "pkg:npm/lodash@4.17.20", "MIT"),
        (
            "openssl",
            "3.0.7-r0",
            "pkg:apk/alpine/openssl@3.0.7-r0?distro=3.17",
            "Apache-2.0",
        ),
    ]
    .iter()
    .map(|(name, version, purl, license)| {
        json!({"type": "library", "bom-ref": purl, "name": name, "version": version, "purl": purl,
               "licenses": [{"license": {"id": license}}]})
    })
    .collect();
    let sbom = json!({
        "bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
        "serialNumber": "urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79",
        "metadata": {"timestamp": now, "tools": {"components": [{"type": "application", "name": "syft", "version": "1.4.1"}]},
                     "component": {"type": "container", "name": "ghcr.io/acme/checkout-api", "version": VERSION}},
        "components": components,
    });
    write(&lane, "sbom.json", &pretty(&sbom))?;

    let scan = json!({
        "matches": [
            {"vulnerability": {"id": "CVE-2021-23337", "dataSource": "https://nvd.nist.gov/vuln/detail/CVE-2021-23337",
                               "severity": "High", "fix": {"versions": ["4.17.21"], "state": "fixed"}},
             "artifact": {"name": "lodash", "version": "4.17.20", "type": "npm", "purl": "pkg:npm/lodash@4.17.20"}},
            {"vulnerability": {"id": "CVE-2023-0464", "dataSource": "https://nvd.nist.gov/vuln/detail/CVE-2023-0464",
                               "severity": "Medium", "fix": {"versions": ["3.0.8-r2"], "state": "fixed"}},
             "artifact": {"name": "openssl", "version": "3.0.7-r0", "type": "apk",
                          "purl": "pkg:apk/alpine/openssl@3.0.7-r0?distro=3.17"}}
        ],
        "source": {"type": "image", "target": {"userInput": "ghcr.io/acme/checkout-api:1.4.2", "manifestDigest": image}},
        "distro": {"name": "alpine", "version": "3.17"},
        "descriptor": {"name": "grype", "version": "0.74.0", "timestamp": now},
    });
    write(&lane, "scan_report.json", &pretty(&scan))?;

    write(
        &lane,
        "rollback_plan.md",
        "# Rollback Plan: checkout-api 1.4.2\n\n\
         ## Trigger Conditions\n\
         - error rate > 5% for 5 minutes\n\
         - p95 latency > 2x baseline\n\n\
         ## Rollback Procedure\n\
         1. `kubectl -n checkout rollout pause deploy/checkout-api`\n\
         2. `kubectl -n checkout rollout undo deploy/checkout-api --to-revision=41`\n\
         3. `kubectl -n checkout rollout status deploy/checkout-api`\n\n\
         ## Data Recovery\nNo schema migration in this release; nothing to restore.\n\n\
         ## Estimated time\nUnder 5 minutes.\n\n\
         ## Verification\nSmoke tests `make smoke ENV=production` pass; error rate back under 1%.\n",
    )?;

    let deploy = json!({
        "_type": "https://evault.dev/deploy/v1",
        "environment": "staging",
        "artifact": image,
        "time": now,
        "actor": "ci-deployer",
        "blueprint": {"name": BLUEPRINT, "version": VERSION},
        "git_sha": git_sha,
        "status": "succeeded",
        "target": "eu-west-1/checkout",
    });
    write(&lane, "deploy_receipt.json", &pretty(&deploy))?;

    let approval = json!({
        "_type": "https://evault.dev/approval/v1",
        "approver": "maria.lopez",
        "decision": "approve",
        "reason": "Staging soak clean for 24h; high CVE-2021-23337 in lodash is not reachable (template API unused).",
        "environment": "production",
        "time": now,
        "blueprint": {"name": BLUEPRINT, "version": VERSION},
        "git_sha": git_sha,
    });
    write(&lane, "approval.json", &pretty(&approval))?;

    let provenance = json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "ghcr.io/acme/checkout-api", "digest": {"sha256": &image["sha256:".len()..]}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": "https://actions.github.io/buildtypes/workflow/v1",
                "externalParameters": {"workflow": {"ref": "refs/tags/v1.4.2", "repository": REPO, "path": ".github/workflows/release.yml"}},
                "resolvedDependencies": [{"uri": format!("git+{REPO}@refs/tags/v1.4.2"), "digest": {"gitCommit": git_sha}}]
            },
            "runDetails": {
                "builder": {"id": "https://github.com/actions/runner/github-hosted"},
                "metadata": {"invocationId": format!("{REPO}/actions/runs/{RUN_ID}/attempts/1")}
            }
        }
    });
    write(&lane, "provenance.intoto.json", &pretty(&provenance))?;

    write(
        &lane,
        "junit.xml",
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <testsuites name=\"checkout-api\" tests=\"3\" failures=\"0\" errors=\"0\" time=\"1.42\">\n\
         \x20 <testsuite name=\"cart\" tests=\"2\" failures=\"0\" time=\"0.91\">\n\
         \x20   <testcase classname=\"cart\" name=\"adds an item\" time=\"0.40\"/>\n\
         \x20   <testcase classname=\"cart\" name=\"applies a coupon\" time=\"0.51\"/>\n\
         \x20 </testsuite>\n\
         \x20 <testsuite name=\"payments\" tests=\"1\" failures=\"0\" time=\"0.51\">\n\
         \x20   <testcase classname=\"payments\" name=\"refuses an expired card\" time=\"0.51\"/>\n\
         \x20 </testsuite>\n\
         </testsuites>\n",
    )?;

    let manifest = json!({
        "_type": "https://evault.dev/bundle/v1",
        "blueprint": {"name": BLUEPRINT, "version": VERSION},
        "git_sha": git_sha,
        "repo": REPO,
        "run_id": RUN_ID,
        "files": [
            {"path": "rollback_plan.md", "kind": "rollback-plan"},
            {"path": "sbom.json", "kind": "sbom", "subjects": [image]},
            {"path": "scan_report.json", "kind": "vuln-scan", "subjects": [image]}
        ]
    });
    write(&lane, "evault-bundle.json", &pretty(&manifest))?;
    Ok((lane, git_sha, image))
}

/// Packs `dir`'s files (not the directory itself) into a zstd-compressed tar.
fn pack(dir: &Path, out: &Path) -> Result<(), Error> {
    let file = fs::File::create(out).map_err(io_err("cannot create", out))?;
    let encoder =
        zstd::stream::write::Encoder::new(file, 3).map_err(io_err("cannot write", out))?;
    let mut tar = tar::Builder::new(encoder);
    tar.mode(tar::HeaderMode::Deterministic);
    tar.append_dir_all(".", dir)
        .map_err(io_err("cannot pack", dir))?;
    let encoder = tar.into_inner().map_err(io_err("cannot write", out))?;
    encoder.finish().map_err(io_err("cannot write", out))?;
    Ok(())
}

#[derive(Clone)]
struct Step {
    args: Vec<String>,
    code: i32,
    /// The exit code the step should end with (5: a gate that is meant to fail).
    expected: i32,
    stdout: String,
    stderr: String,
}

fn evault(data_dir: &Path, actor: &str, args: &[&str], expected: i32) -> Result<Step, Error> {
    let exe = std::env::current_exe().map_err(|e| Error::io("cannot find the evault binary", e))?;
    let out = Command::new(exe)
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--actor")
        .arg(actor)
        .args(args)
        .env_remove("EVAULT_DATA_DIR")
        .output()
        .map_err(|e| Error::io("cannot run evault", e))?;
    Ok(Step {
        args: args.iter().map(|s| s.to_string()).collect(),
        code: out.status.code().unwrap_or(1),
        expected,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Runs the demo's steps and keeps what each answered.
struct Runner {
    vault: PathBuf,
    json_output: bool,
    steps: Vec<(&'static str, Step)>,
}

impl Runner {
    /// Runs `evault args` as `actor`, which should exit with `expected`.
    fn run(
        &mut self,
        title: &'static str,
        actor: &str,
        args: &[&str],
        expected: i32,
    ) -> Result<Step, Error> {
        let step = evault(&self.vault, actor, args, expected)?;
        if !self.json_output {
            let who = if actor == PIPELINE {
                String::new()
            } else {
                format!("--actor {actor} ")
            };
            let shown: Vec<String> = args
                .iter()
                .map(|a| {
                    if a.contains(|c: char| c.is_whitespace() || ";()'".contains(c)) {
                        format!("\"{a}\"")
                    } else {
                        a.to_string()
                    }
                })
                .collect();
            println!("\n## {title}\n$ evault {who}{}", shown.join(" "));
            print!("{}", step.stdout);
            eprint!("{}", step.stderr);
        }
        self.steps.push((title, step.clone()));
        Ok(step)
    }

    /// A pipeline step that should succeed.
    fn step(&mut self, title: &'static str, args: &[&str]) -> Result<Step, Error> {
        self.run(title, PIPELINE, args, 0)
    }
}

pub fn run(args: DemoArgs, json_output: bool) -> Result<(), Error> {
    let (_temp, root) = match &args.keep {
        Some(dir) => {
            if dir.exists() {
                return Err(Error::Invalid(format!(
                    "--keep {}: already exists; give a new directory",
                    dir.display()
                )));
            }
            fs::create_dir_all(dir).map_err(io_err("cannot create", dir))?;
            (None, dir.clone())
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("evault-demo-")
                .tempdir()
                .map_err(|e| Error::io("cannot create a temporary directory", e))?;
            let p = t.path().to_path_buf();
            (Some(t), p)
        }
    };
    let vault = root.join("vault");
    let (lane, git_sha, image) = write_lane(&root)?;
    let bundle = root.join(format!("checkout-api-{VERSION}-run-{RUN_ID}.tar.zst"));
    pack(&lane, &bundle)?;
    let bundle_arg = bundle.display().to_string();
    let mut r = Runner {
        vault: vault.clone(),
        json_output,
        steps: Vec::new(),
    };

    if !json_output {
        println!(
            "evault demo: a DevSecOps lane for {BLUEPRINT} {VERSION} (run {RUN_ID}, commit {}) wrote {}\n\
             and packed it as {}.",
            &git_sha[..12],
            lane.display(),
            bundle.display()
        );
    }
    r.step("Create a vault", &["init"])?;
    let pushed = r.step(
        "Push the bundle (links come from its evault-bundle.json)",
        &["push", &bundle_arg],
    )?;
    r.step(
        "Push it again: same bytes, same links, nothing new",
        &["push", &bundle_arg],
    )?;
    r.step(
        "Everything for the release",
        &["ls", "--blueprint", BLUEPRINT, "--version", VERSION],
    )?;
    r.step(
        "Everything about the deployed image",
        &["ls", "--subject", &image],
    )?;
    let sbom_id = pushed
        .stdout
        .lines()
        .find(|l| l.ends_with("sbom.json"))
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_string)
        .ok_or_else(|| Error::Internal("the demo push did not report sbom.json".into()))?;
    r.step("One record in full", &["show", &sbom_id])?;
    let copy = root.join("sbom-from-vault.json");
    let copy_arg = copy.display().to_string();
    r.step(
        "Get the SBOM back, verified against its digest",
        &["get", &sbom_id, "-o", &copy_arg],
    )?;
    let original = fs::read(lane.join("sbom.json")).map_err(io_err("cannot read", &lane))?;
    let returned = fs::read(&copy).map_err(io_err("cannot read", &copy))?;
    if original != returned {
        return Err(Error::Integrity(
            "the SBOM read back differs from the one pushed".into(),
        ));
    }
    r.step(
        "Prove the SBOM's ingestion is in the signed, append-only log",
        &["log", "prove", &sbom_id],
    )?;
    r.step(
        "Recompute the log and check the vault against it",
        &["log", "verify"],
    )?;
    r.step(
        "Trace the staging deploy back to its commit, evidence and gaps",
        &["trace", "deploy", &image],
    )?;
    let gate = [
        "gate",
        "check",
        "--blueprint",
        BLUEPRINT,
        "--version",
        VERSION,
        "--env",
        "production",
        "--artifact",
        &image,
    ];
    r.run(
        "May it go to production? Not yet: the approval in the bundle was pushed by the pipeline, not by its approver (exit 5)",
        PIPELINE,
        &gate,
        5,
    )?;
    r.run(
        "The release manager approves, under her own name",
        "maria.lopez",
        &[
            "approve",
            "--blueprint",
            BLUEPRINT,
            "--version",
            VERSION,
            "--env",
            "production",
            "--decision",
            "approve",
            "--reason",
            "Staging soak clean for 24h; CVE-2021-23337 (lodash) not reachable",
            "--expires",
            "7d",
        ],
        0,
    )?;
    r.step(
        "The gate passes; the decision is recorded as evidence",
        &gate,
    )?;
    r.step(
        "Record the production deploy (the actor is who runs it)",
        &[
            "deploy",
            "--blueprint",
            BLUEPRINT,
            "--version",
            VERSION,
            "--env",
            "production",
            "--artifact",
            &image,
        ],
    )?;
    r.step(
        "Are we exposed to the lodash CVE, and where is it live?",
        &["search", "vuln", "CVE-2021-23337"],
    )?;
    let today = Utc::now().date_naive();
    let since = (today - chrono::Days::new(1)).to_string();
    let until = (today + chrono::Days::new(1)).to_string();
    r.step(
        "The change log of production, with the evidence of each change",
        &[
            "audit",
            "changelog",
            "--since",
            &since,
            "--until",
            &until,
            "--env",
            "production",
        ],
    )?;
    r.step(
        "Missing-evidence alert: production deploys lacking evidence or a passing gate (none)",
        &["audit", "completeness", "--env", "production"],
    )?;
    r.run(
        "The same for staging: the bundle's staging deploy never went through a gate (exit 5)",
        PIPELINE,
        &["audit", "completeness", "--env", "staging"],
        5,
    )?;
    let pack_path = root.join("evidence-pack.tar.zst").display().to_string();
    r.step(
        "Export a signed evidence pack of the period for the auditor",
        &[
            "export", "--since", &since, "--until", &until, "-o", &pack_path,
        ],
    )?;
    r.step(
        "The auditor verifies it offline",
        &["verify-pack", &pack_path],
    )?;
    r.step("Check every stored blob", &["fsck"])?;

    let steps = r.steps;
    let failed: Vec<_> = steps.iter().filter(|(_, s)| s.code != s.expected).collect();
    if json_output {
        let out: Vec<_> = steps
            .iter()
            .map(|(title, s)| json!({"title": title, "args": s.args, "exit_code": s.code, "stdout": s.stdout, "stderr": s.stderr}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"vault": vault, "steps": out}))
                .unwrap_or_default()
        );
    } else {
        match &args.keep {
            Some(_) => println!(
                "\nThe vault is in {}; try `evault --data-dir {} ls`.",
                vault.display(),
                vault.display()
            ),
            None => println!(
                "\nDone. The demo vault was temporary; `evault demo --keep DIR` keeps one to explore."
            ),
        }
    }
    if let Some((title, step)) = failed.first() {
        return Err(Error::Internal(format!(
            "demo step '{title}' exited with code {}, not {}",
            step.code, step.expected
        )));
    }
    Ok(())
}
