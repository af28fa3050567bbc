//! Helpers shared by the unit tests of core's modules.

use std::io::Cursor;

use serde_json::json;

use crate::ingest::{LinkArgs, PushRequest, PushSource};
use crate::record::Record;
use crate::vault::Vault;

/// Pushes `doc` as file `file` for `blueprint` `version` (git SHA `aaa…`), producer `ci`, and
/// returns its record.
pub(crate) fn push_links(
    vault: &Vault,
    blueprint: &str,
    version: &str,
    file: &str,
    doc: &serde_json::Value,
) -> Record {
    let outcome = vault
        .push(
            PushRequest {
                sources: vec![PushSource::Reader {
                    name: file.to_string(),
                    reader: Box::new(Cursor::new(serde_json::to_vec(doc).unwrap())),
                }],
                links: LinkArgs {
                    blueprint: Some(blueprint.into()),
                    version: Some(version.into()),
                    git_sha: Some("a".repeat(40)),
                    ..LinkArgs::default()
                },
                kind: None,
                producer: "ci".into(),
                expand_archives: false,
                allowed_blueprints: Vec::new(),
            },
            &mut |_| {},
        )
        .unwrap();
    outcome.records[0].record.clone()
}

/// A CycloneDX SBOM with one component.
pub(crate) fn sbom(name: &str) -> serde_json::Value {
    json!({"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
           "components": [{"type": "library", "name": name, "version": "1.0.0"}]})
}

/// evault's deploy document for checkout-api `version` to `env` at `time`.
pub(crate) fn deploy(version: &str, env: &str, time: &str) -> serde_json::Value {
    json!({"_type": "https://evault.dev/deploy/v1", "environment": env,
           "artifact": format!("sha256:{}", "d".repeat(64)), "actor": "ci",
           "status": "succeeded", "time": time,
           "blueprint": {"name": "checkout-api", "version": version}})
}
