//! Classic in-toto layout verification (in-toto specification v1.0, §4–§5): is every step of
//! a supply chain that the project owner signed off on backed by link metadata from the
//! functionaries the owner authorized, and do the recorded artifacts flow between steps the way
//! the owner's artifact rules demand?
//!
//! This is a pure function of the layout bytes, the owner's public keys, the link files and a
//! clock: no file system, no network, and above all **no subprocesses**. The reference
//! implementation (`in-toto-verify`, and the in-toto crate, see `docs/dependencies.md` §5) runs
//! the layout's *inspection* commands on the verifying machine; in a server that stores
//! evidence uploaded by others that would be remote code execution by design.
//!
//! # Inspections: fail closed
//!
//! A layout with inspections makes the owner's guarantee conditional on those commands having
//! been run and their rules having held. evault cannot honour that without running them, so
//! such a layout is **never reported as verified**: every other check still runs and is
//! reported (so the operator can see that signatures, thresholds and step rules hold), each
//! inspection gets a line "inspection X not run (evault never executes layout commands)", and
//! the outcome is `verified == false` with the failure "layout requires inspections, which
//! evault does not run". A security engineer reading "verified" must be able to rely on it
//! meaning the whole layout held; a partial pass is shown in the reasoning, never in the
//! verdict. (The corpus demo layout has `"inspect": []`, so its pass case is a full pass.)
//!
//! # What is checked, in order (first failure stops, as `in_toto_verify` does)
//!
//! 1. Layout signatures: **every** given owner key must have a valid signature over the
//!    canonical JSON of `signed` (in-toto-verify semantics; at least one key is required). The
//!    keyid of a PEM key is computed as securesystemslib's `SSlibKey.from_pem` does.
//! 2. `_type` is `layout`; `expires` (RFC 3339) is after `now`.
//! 3. Layout well-formedness: keys (each keyid must be the hash of its key), steps, inspections,
//!    rules, unique names, thresholds ≥ 1. Malformed rules fail here, before any link is read.
//! 4. For each step: candidate links are files named `<step>.<keyid[:8]>.link` for an
//!    authorized keyid, and any link whose `signed.name` is the step. A link counts only if
//!    its `signed.name` is the step and it carries a valid signature by a key the step lists in
//!    `pubkeys`, verified with that key from the layout's `keys`. Links with bad or unauthorized
//!    signatures are skipped with a reason, as in-toto skips them. At least `threshold`
//!    *distinct* functionaries (distinct public keys, not keyid spellings) must remain, and all
//!    counted links of a step must record identical materials and products. in-toto only
//!    demands that when `threshold > 1`; we demand it always, because two authorized but
//!    disagreeing links leave it undefined which artifacts the step produced.
//! 5. `expected_command` is compared with the link's `command` and a difference is reported
//!    as a note only (in-toto only warns: a functionary can alias any command).
//! 6. Artifact rules of every step, materials then products ([`rules`]).
//! 7. Inspections: reported as not run; see above.
//!
//! Not supported, and refused rather than skipped: sublayouts (a step delegated to a nested
//! layout), DSSE-enveloped layouts and links, GPG keys, parameter substitution.
//!
//! # Bounds
//!
//! Every input is bounded so hostile input costs bounded time and memory: each document
//! ≤ [`MAX_DOCUMENT_BYTES`], ≤ [`MAX_LINK_FILES`] link files totalling ≤
//! [`MAX_TOTAL_LINK_BYTES`], ≤ [`MAX_ARTIFACTS_PER_LINK`]
//! artifacts per link, ≤ [`MAX_RULES`] rules per layout, ≤ [`MAX_ITEMS`] steps and
//! inspections, ≤ [`MAX_KEYS`] keys, ≤ [`MAX_SIGNATURES`] signatures per document, paths and
//! patterns ≤ 4096 bytes, and a global budget on pattern-matching work. Exceeding a bound is a
//! failure, never a silent truncation.

mod canonical;
mod glob;
mod key;
mod rules;

use chrono::{DateTime, SecondsFormat, Utc};
use glob::Budget;
use key::PublicKey;
use rules::{Artifacts, Kind, LinkArtifacts, Rule, RuleError, quote};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Largest layout or link document accepted, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 16 << 20;
/// Most link files accepted in one verification.
pub const MAX_LINK_FILES: usize = 10_000;
/// Most bytes of all link files together.
pub const MAX_TOTAL_LINK_BYTES: usize = 256 << 20;
/// Most artifacts (materials plus products) in one link.
pub const MAX_ARTIFACTS_PER_LINK: usize = 100_000;
/// Most artifact rules in one layout (steps and inspections together).
pub const MAX_RULES: usize = 10_000;
/// Most steps plus inspections in one layout.
pub const MAX_ITEMS: usize = 1_000;
/// Most keys in a layout's `keys`.
pub const MAX_KEYS: usize = 1_000;
/// Most signatures on one layout or link.
pub const MAX_SIGNATURES: usize = 100;
/// Pattern-matching steps allowed per verification: about 2 s of CPU in a release build,
/// far above what real layouts need (a step's rules touch each artifact a few times).
const MATCH_BUDGET: u64 = 300_000_000;

/// What to verify: a layout, its owner's keys and the link files gathered for it.
#[derive(Debug, Clone, Copy)]
pub struct LayoutInput<'a> {
    /// The signed layout document (`{"signed": {"_type": "layout", ...}, "signatures": [...]}`).
    pub layout: &'a [u8],
    /// PEM SubjectPublicKeyInfo public keys of the layout's owner(s). Every one of them must
    /// have signed the layout. A securesystemslib JSON key object (`{"keytype": ...}`) is
    /// accepted too, for schemes that a bare PEM cannot express (e.g. `rsa-pkcs1v15-sha256`).
    pub layout_keys: &'a [&'a str],
    /// Link files as (file name, bytes); the file name matters for `<step>.<keyid>.link`
    /// lookup and for messages.
    pub links: &'a [(String, Vec<u8>)],
}

/// The outcome of [`verify_layout`], with the reasoning that led to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutReport {
    /// One line per check, in the order performed: what was checked, against what, outcome.
    pub steps: Vec<String>,
    /// `true` only if every check passed and the layout has no inspections.
    pub verified: bool,
    /// Why verification failed, naming the step, link, key or artifact concerned.
    pub failure: Option<String>,
}

/// Verifies a classic in-toto layout and its links at time `now`. Never panics, never runs a
/// command; see the module documentation for the checks and the inspection stance.
pub fn verify_layout(input: &LayoutInput<'_>, now: DateTime<Utc>) -> LayoutReport {
    let mut steps = Vec::new();
    match run(input, now, &mut steps) {
        Ok(()) => {
            steps.push("result: verified: every check of the layout passed".into());
            LayoutReport {
                steps,
                verified: true,
                failure: None,
            }
        }
        Err(failure) => {
            steps.push(format!("result: NOT verified: {failure}"));
            LayoutReport {
                steps,
                verified: false,
                failure: Some(failure),
            }
        }
    }
}

/// A parsed `{signed, signatures}` document.
struct Metablock {
    signed: Map<String, Value>,
    signatures: Vec<Signature>,
    /// Canonical JSON of `signed`: the bytes every signature covers.
    canonical: Vec<u8>,
}

struct Signature {
    keyid: String,
    sig: String,
}

struct Step {
    name: String,
    pubkeys: Vec<String>,
    threshold: usize,
    expected_command: Vec<String>,
    expected_materials: Vec<Rule>,
    expected_products: Vec<Rule>,
}

struct Inspection {
    name: String,
    run: Vec<String>,
}

struct Link {
    name: String,
    command: Option<Vec<String>>,
    materials: Artifacts,
    products: Artifacts,
}

enum LinkDoc {
    Link(Box<Link>),
    Sublayout,
}

struct LinkFile<'a> {
    file: &'a str,
    block: Metablock,
    doc: LinkDoc,
}

fn run(input: &LayoutInput<'_>, now: DateTime<Utc>, out: &mut Vec<String>) -> Result<(), String> {
    // 1. Layout signatures.
    let layout = parse_metablock(input.layout).map_err(|e| format!("layout {e}"))?;
    out.push(format!(
        "layout: {} bytes parsed; signatures are checked over the {}-byte canonical JSON of \
         `signed`",
        input.layout.len(),
        layout.canonical.len()
    ));
    if layout.signatures.is_empty() {
        return Err("layout carries no signatures (unsigned layout)".into());
    }
    if input.layout_keys.is_empty() {
        return Err("no layout key given: at least one owner key is required".into());
    }
    for (i, text) in input.layout_keys.iter().enumerate() {
        let n = i + 1;
        let owner = owner_key(text).map_err(|e| format!("layout key #{n}: {e}"))?;
        // securesystemslib checks the first signature carrying the key's keyid.
        let Some(signature) = layout.signatures.iter().find(|s| owner.is_named(&s.keyid)) else {
            let signers: Vec<&str> = layout.signatures.iter().map(|s| s.keyid.as_str()).collect();
            return Err(format!(
                "layout is not signed by layout key #{n} (keyid {}); it carries signatures by {}",
                owner.keyid,
                rules::list(&signers)
            ));
        };
        if let Err(e) = owner.verify(&layout.canonical, &signature.sig) {
            return Err(format!(
                "layout signature by layout key #{n} (keyid {}) is invalid: {e}",
                owner.keyid
            ));
        }
        out.push(format!(
            "layout signature: valid for layout key #{n} (keyid {}, {}/{})",
            owner.keyid, owner.keytype, owner.scheme
        ));
    }

    // 2. Type and expiry.
    let signed = &layout.signed;
    match signed.get("_type").and_then(Value::as_str) {
        Some("layout") => out.push("layout: _type is \"layout\"".into()),
        other => {
            return Err(format!(
                "layout _type is {}, not \"layout\"",
                other.map_or("missing".into(), quote)
            ));
        }
    }
    let expires_text = signed
        .get("expires")
        .and_then(Value::as_str)
        .ok_or("layout has no string field \"expires\"")?;
    let expires = DateTime::parse_from_rfc3339(expires_text)
        .map_err(|e| {
            format!(
                "layout expires {} is not RFC 3339: {e}",
                quote(expires_text)
            )
        })?
        .with_timezone(&Utc);
    let now_text = now.to_rfc3339_opts(SecondsFormat::Secs, true);
    if expires <= now {
        return Err(format!(
            "layout expired at {} (now {now_text})",
            expires.to_rfc3339_opts(SecondsFormat::Secs, true)
        ));
    }
    out.push(format!(
        "layout: expires {} is after now ({now_text})",
        expires.to_rfc3339_opts(SecondsFormat::Secs, true)
    ));

    // 3. Structure.
    let keys = layout_keys(signed, out)?;
    let (steps, inspections) = items(signed)?;
    out.push(format!(
        "layout: {} step(s) {}, {} inspection(s) {}",
        steps.len(),
        rules::list(&steps.iter().map(|s| s.name.as_str()).collect::<Vec<_>>()),
        inspections.len(),
        rules::list(
            &inspections
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
        )
    ));

    // 4. Links, per step.
    if input.links.len() > MAX_LINK_FILES {
        return Err(format!(
            "{} link files given; at most {MAX_LINK_FILES} are accepted",
            input.links.len()
        ));
    }
    let total: usize = input.links.iter().map(|(_, b)| b.len()).sum();
    if total > MAX_TOTAL_LINK_BYTES {
        return Err(format!(
            "link files total {total} bytes; at most {MAX_TOTAL_LINK_BYTES} are accepted"
        ));
    }
    let mut files: Vec<LinkFile<'_>> = Vec::new();
    for (file, bytes) in input.links {
        match parse_link(bytes) {
            Ok((block, doc)) => files.push(LinkFile {
                file: file.as_str(),
                block,
                doc,
            }),
            Err(e) => out.push(format!("link file {} ignored: {e}", quote(file))),
        }
    }
    files.sort_by(|a, b| a.file.cmp(b.file));
    let mut used: BTreeSet<&str> = BTreeSet::new();
    let mut chosen: HashMap<String, LinkArtifacts<'_>> = HashMap::new();
    for step in &steps {
        let picked = verify_step_links(step, &keys, &files, out)?;
        for f in &picked {
            used.insert(f.file);
        }
        if let Some(first) = picked.first()
            && let LinkDoc::Link(link) = &first.doc
        {
            chosen.insert(
                step.name.clone(),
                LinkArtifacts {
                    materials: &link.materials,
                    products: &link.products,
                },
            );
        }
    }
    for f in &files {
        if !used.contains(f.file) {
            let what = match &f.doc {
                LinkDoc::Link(l) => format!("records step {}", quote(&l.name)),
                LinkDoc::Sublayout => "is a layout".into(),
            };
            out.push(format!(
                "link file {} not used: it {what} and counts for no step",
                quote(f.file)
            ));
        }
    }

    // 6. Artifact rules.
    let mut budget = Budget::new(MATCH_BUDGET);
    for step in &steps {
        for (kind, list) in [
            (Kind::Materials, &step.expected_materials),
            (Kind::Products, &step.expected_products),
        ] {
            rules::verify_item_rules(&step.name, kind, list, &chosen, &mut budget, out).map_err(
                |e| match e {
                    RuleError::Violated(m) => m,
                    RuleError::OutOfBudget => format!(
                        "step {}: artifact rules exceeded the pattern-matching work budget",
                        quote(&step.name)
                    ),
                },
            )?;
        }
    }

    // 7. Inspections.
    if inspections.is_empty() {
        out.push("inspections: none in the layout".into());
        return Ok(());
    }
    for inspection in &inspections {
        out.push(format!(
            "inspection {} not run (evault never executes layout commands); its command {} and \
             artifact rules are unverified",
            quote(&inspection.name),
            json_list(&inspection.run)
        ));
    }
    Err(format!(
        "layout requires inspections, which evault does not run: {}",
        rules::list(
            &inspections
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
        )
    ))
}

/// Finds, authenticates and counts the links of `step`; returns the counted ones (all with
/// identical artifacts), sorted by file name.
fn verify_step_links<'f, 'a>(
    step: &Step,
    keys: &BTreeMap<String, Result<PublicKey, String>>,
    files: &'f [LinkFile<'a>],
    out: &mut Vec<String>,
) -> Result<Vec<&'f LinkFile<'a>>, String> {
    let label = format!("step {}", quote(&step.name));
    let by_file_name: BTreeSet<String> = step
        .pubkeys
        .iter()
        .map(|k| format!("{}.{}.link", step.name, k.get(..8).unwrap_or(k)))
        .collect();
    let mut counted: Vec<&LinkFile<'a>> = Vec::new();
    let mut functionaries: BTreeMap<&[u8], &str> = BTreeMap::new();
    let mut rejected: Vec<String> = Vec::new();
    for f in files {
        let named_for_step = by_file_name.contains(f.file);
        let link = match &f.doc {
            LinkDoc::Sublayout if named_for_step => {
                return Err(format!(
                    "{label}: link file {} is a sublayout, which evault does not verify",
                    quote(f.file)
                ));
            }
            LinkDoc::Sublayout => continue,
            LinkDoc::Link(link) => link,
        };
        if link.name != step.name {
            if named_for_step {
                let why = format!(
                    "{} records step {}, not this step",
                    quote(f.file),
                    quote(&link.name)
                );
                out.push(format!("{label}: link file {why}; ignored"));
                rejected.push(why);
            }
            continue;
        }
        let mut valid_by: Vec<&str> = Vec::new();
        let mut reasons: Vec<String> = Vec::new();
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        for s in &f.block.signatures {
            // Only the first signature per keyid is checked, as securesystemslib does; this
            // also bounds the work a link with many copies of one keyid can cause.
            if !seen.insert(s.keyid.as_str()) {
                continue;
            }
            if !step.pubkeys.contains(&s.keyid) {
                reasons.push(format!(
                    "signed by {}, which is not an authorized functionary of this step",
                    quote(&s.keyid)
                ));
                continue;
            }
            match keys.get(&s.keyid) {
                None => reasons.push(format!(
                    "signed by {}, which the step authorizes but the layout's keys lack",
                    quote(&s.keyid)
                )),
                Some(Err(e)) => reasons.push(format!(
                    "signed by {}, whose layout key is unusable: {e}",
                    s.keyid
                )),
                Some(Ok(key)) => match key.verify(&f.block.canonical, &s.sig) {
                    Ok(()) => {
                        if !valid_by.contains(&key.keyid.as_str()) {
                            valid_by.push(&key.keyid);
                        }
                        functionaries
                            .entry(key.spki_der.as_slice())
                            .or_insert(&key.keyid);
                    }
                    Err(e) => reasons.push(format!(
                        "signature by authorized functionary {} is invalid ({e}): the link was \
                         altered after signing or signed by another key",
                        s.keyid
                    )),
                },
            }
        }
        if f.block.signatures.is_empty() {
            reasons.push("it carries no signatures".into());
        }
        if valid_by.is_empty() {
            let why = format!("{}: {}", quote(f.file), reasons.join("; "));
            out.push(format!("{label}: link file {why}; not counted"));
            rejected.push(why);
        } else {
            out.push(format!(
                "{label}: link file {} has a valid signature by authorized functionary {}",
                quote(f.file),
                valid_by.join(", ")
            ));
            counted.push(f);
        }
    }
    let found = functionaries.len();
    if found < step.threshold {
        let mut msg = format!(
            "{label} requires {} link(s) validly signed by distinct authorized functionaries \
             {}, found {found}",
            step.threshold,
            rules::list(&step.pubkeys.iter().map(String::as_str).collect::<Vec<_>>())
        );
        if !rejected.is_empty() {
            msg.push_str(&format!(" (rejected: {})", rejected.join("; ")));
        }
        return Err(msg);
    }
    out.push(format!(
        "{label}: {found} distinct authorized functionary(ies) {} meet threshold {}",
        functionaries
            .values()
            .copied()
            .collect::<Vec<_>>()
            .join(", "),
        step.threshold
    ));
    // Agreement: every counted link must record the same artifacts.
    if let Some((first, rest)) = counted.split_first() {
        let LinkDoc::Link(reference) = &first.doc else {
            return Err(format!("{label}: internal error: counted a non-link"));
        };
        for other in rest {
            let LinkDoc::Link(link) = &other.doc else {
                return Err(format!("{label}: internal error: counted a non-link"));
            };
            if link.materials != reference.materials || link.products != reference.products {
                return Err(format!(
                    "{label}: links {} and {} disagree on materials or products",
                    quote(first.file),
                    quote(other.file)
                ));
            }
        }
        if counted.len() > 1 {
            out.push(format!(
                "{label}: all {} counted links record identical materials and products",
                counted.len()
            ));
        }
        // 5. Command alignment: informational.
        for f in &counted {
            if let LinkDoc::Link(link) = &f.doc
                && let Some(cmd) = &link.command
                && *cmd != step.expected_command
            {
                out.push(format!(
                    "{label}: note: {} recorded command {} differs from expected_command {} \
                     (informational only, as in in-toto)",
                    quote(f.file),
                    json_list(cmd),
                    json_list(&step.expected_command)
                ));
            }
        }
    }
    Ok(counted)
}

/// Parses a caller-given owner key: PEM, or a securesystemslib JSON key object.
fn owner_key(text: &str) -> Result<PublicKey, String> {
    if text.trim_start().starts_with('{') {
        let value = canonical::parse_strict(text.as_bytes())
            .map_err(|e| format!("not a valid JSON key object: {e}"))?;
        let obj = value.as_object().ok_or("not a JSON key object")?;
        let key = PublicKey::from_sslib(obj)?;
        if let Some(given) = obj.get("keyid").and_then(Value::as_str)
            && given != key.keyid
        {
            return Err(format!(
                "key object says keyid {} but its key hashes to {}",
                quote(given),
                key.keyid
            ));
        }
        Ok(key)
    } else {
        PublicKey::from_pem(text)
    }
}

fn parse_metablock(bytes: &[u8]) -> Result<Metablock, String> {
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(format!(
            "is {} bytes, more than the {MAX_DOCUMENT_BYTES}-byte limit",
            bytes.len()
        ));
    }
    let value = canonical::parse_strict(bytes).map_err(|e| format!("is not valid JSON: {e}"))?;
    let obj = value.as_object().ok_or("is not a JSON object")?;
    if obj.contains_key("payloadType") {
        return Err(
            "is a DSSE envelope; evault verifies classic {signed, signatures} \
                    in-toto metadata only"
                .into(),
        );
    }
    let signed_value = obj.get("signed").ok_or("has no \"signed\" object")?;
    let signed = signed_value
        .as_object()
        .ok_or("has no \"signed\" object")?
        .clone();
    let canonical = canonical::encode(signed_value)?;
    let sig_values = obj
        .get("signatures")
        .and_then(Value::as_array)
        .ok_or("has no \"signatures\" list")?;
    if sig_values.len() > MAX_SIGNATURES {
        return Err(format!(
            "has {} signatures; at most {MAX_SIGNATURES} are accepted",
            sig_values.len()
        ));
    }
    let mut signatures = Vec::with_capacity(sig_values.len());
    for s in sig_values {
        let keyid = s.get("keyid").and_then(Value::as_str);
        let sig = s.get("sig").and_then(Value::as_str);
        match (keyid, sig) {
            (Some(keyid), Some(sig)) => signatures.push(Signature {
                keyid: keyid.to_owned(),
                sig: sig.to_owned(),
            }),
            _ => return Err("has a signature without string \"keyid\" and \"sig\"".into()),
        }
    }
    Ok(Metablock {
        signed,
        signatures,
        canonical,
    })
}

fn parse_link(bytes: &[u8]) -> Result<(Metablock, LinkDoc), String> {
    let block = parse_metablock(bytes)?;
    let doc = match block.signed.get("_type").and_then(Value::as_str) {
        Some("link") => {
            let s = &block.signed;
            let name = s
                .get("name")
                .and_then(Value::as_str)
                .ok_or("link has no string field \"name\"")?
                .to_owned();
            let command = match s.get("command") {
                None | Some(Value::Null) => None,
                Some(v) => Some(string_list(v).map_err(|e| format!("link command {e}"))?),
            };
            let materials = artifacts(s.get("materials"), "materials")?;
            let products = artifacts(s.get("products"), "products")?;
            if materials.len() + products.len() > MAX_ARTIFACTS_PER_LINK {
                return Err(format!(
                    "link has {} artifacts; at most {MAX_ARTIFACTS_PER_LINK} are accepted",
                    materials.len() + products.len()
                ));
            }
            LinkDoc::Link(Box::new(Link {
                name,
                command,
                materials,
                products,
            }))
        }
        Some("layout") => LinkDoc::Sublayout,
        other => {
            return Err(format!(
                "_type is {}, not \"link\"",
                other.map_or("missing".into(), quote)
            ));
        }
    };
    Ok((block, doc))
}

/// A link's `materials` or `products`: path to a hash object of string values.
fn artifacts(value: Option<&Value>, field: &str) -> Result<Artifacts, String> {
    let obj = match value {
        None | Some(Value::Null) => return Ok(Artifacts::new()),
        Some(v) => v
            .as_object()
            .ok_or_else(|| format!("link {field} is not an object"))?,
    };
    if obj.len() > MAX_ARTIFACTS_PER_LINK {
        return Err(format!(
            "link has {} {field}; at most {MAX_ARTIFACTS_PER_LINK} are accepted",
            obj.len()
        ));
    }
    let mut out = Artifacts::new();
    for (path, hashes) in obj {
        if path.len() > rules::MAX_PATH_LEN {
            return Err(format!(
                "link {field} has a path longer than {} bytes",
                rules::MAX_PATH_LEN
            ));
        }
        let ok = hashes
            .as_object()
            .is_some_and(|h| h.values().all(Value::is_string));
        if !ok {
            return Err(format!(
                "link {field} entry {} is not a hash object of strings",
                quote(path)
            ));
        }
        out.insert(path.clone(), hashes.clone());
    }
    Ok(out)
}

/// The layout's `keys`, keyed by keyid. Entries of unsupported types are kept as `Err` so that
/// a step relying on them fails with the reason; an entry whose keyid does not hash to its key
/// makes the layout malformed.
fn layout_keys(
    signed: &Map<String, Value>,
    out: &mut Vec<String>,
) -> Result<BTreeMap<String, Result<PublicKey, String>>, String> {
    let obj = signed
        .get("keys")
        .and_then(Value::as_object)
        .ok_or("layout has no object field \"keys\"")?;
    if obj.len() > MAX_KEYS {
        return Err(format!(
            "layout has {} keys; at most {MAX_KEYS} are accepted",
            obj.len()
        ));
    }
    let mut keys = BTreeMap::new();
    for (keyid, value) in obj {
        let entry = value
            .as_object()
            .ok_or_else(|| format!("layout key {} is not an object", quote(keyid)))?;
        if let Some(inner) = entry.get("keyid")
            && inner.as_str() != Some(keyid.as_str())
        {
            return Err(format!(
                "layout key {} has a different \"keyid\" field inside",
                quote(keyid)
            ));
        }
        match PublicKey::from_sslib(entry) {
            Ok(key) if key.keyid != *keyid => {
                return Err(format!(
                    "layout key {} does not match its key: the key hashes to keyid {}",
                    quote(keyid),
                    key.keyid
                ));
            }
            Ok(key) => {
                out.push(format!(
                    "layout key {keyid}: {}/{}, keyid matches the key",
                    key.keytype, key.scheme
                ));
                keys.insert(keyid.clone(), Ok(key));
            }
            Err(e) => {
                out.push(format!(
                    "layout key {}: unusable ({e}); links signed with it cannot count",
                    quote(keyid)
                ));
                keys.insert(keyid.clone(), Err(e));
            }
        }
    }
    Ok(keys)
}

/// The layout's steps and inspections, validated.
fn items(signed: &Map<String, Value>) -> Result<(Vec<Step>, Vec<Inspection>), String> {
    let step_values = signed
        .get("steps")
        .and_then(Value::as_array)
        .ok_or("layout has no list field \"steps\"")?;
    let inspect_values = match signed.get("inspect") {
        None | Some(Value::Null) => &Vec::new(),
        Some(v) => v
            .as_array()
            .ok_or("layout field \"inspect\" is not a list")?,
    };
    if step_values.len() + inspect_values.len() > MAX_ITEMS {
        return Err(format!(
            "layout has {} steps and inspections; at most {MAX_ITEMS} are accepted",
            step_values.len() + inspect_values.len()
        ));
    }
    let mut names = BTreeSet::new();
    let mut rule_count = 0usize;
    let mut steps = Vec::new();
    for (i, v) in step_values.iter().enumerate() {
        let obj = v
            .as_object()
            .ok_or_else(|| format!("layout step #{} is not an object", i + 1))?;
        let name = item_name(obj, "step", i, &mut names)?;
        let ctx = |e: String| format!("layout step {}: {e}", quote(&name));
        let pubkeys = match obj.get("pubkeys") {
            None => Vec::new(),
            Some(v) => string_list(v).map_err(|e| ctx(format!("pubkeys {e}")))?,
        };
        let threshold = match obj.get("threshold") {
            None => 1,
            Some(v) => match v.as_u64() {
                Some(t) if t >= 1 => usize::try_from(t).unwrap_or(usize::MAX),
                _ => return Err(ctx("threshold must be an integer >= 1".into())),
            },
        };
        let expected_command = match obj.get("expected_command") {
            None => Vec::new(),
            Some(v) => string_list(v).map_err(|e| ctx(format!("expected_command {e}")))?,
        };
        let expected_materials =
            rule_list(obj.get("expected_materials"), &mut rule_count).map_err(ctx)?;
        let expected_products =
            rule_list(obj.get("expected_products"), &mut rule_count).map_err(ctx)?;
        steps.push(Step {
            name,
            pubkeys,
            threshold,
            expected_command,
            expected_materials,
            expected_products,
        });
    }
    let mut inspections = Vec::new();
    for (i, v) in inspect_values.iter().enumerate() {
        let obj = v
            .as_object()
            .ok_or_else(|| format!("layout inspection #{} is not an object", i + 1))?;
        let name = item_name(obj, "inspection", i, &mut names)?;
        let ctx = |e: String| format!("layout inspection {}: {e}", quote(&name));
        let run = match obj.get("run") {
            None => Vec::new(),
            Some(v) => string_list(v).map_err(|e| ctx(format!("run {e}")))?,
        };
        // Parsed for well-formedness and the rule bound only: without running the inspection
        // there is no link to apply them to.
        rule_list(obj.get("expected_materials"), &mut rule_count).map_err(ctx)?;
        rule_list(obj.get("expected_products"), &mut rule_count).map_err(ctx)?;
        inspections.push(Inspection { name, run });
    }
    Ok((steps, inspections))
}

fn item_name(
    obj: &Map<String, Value>,
    kind: &str,
    index: usize,
    names: &mut BTreeSet<String>,
) -> Result<String, String> {
    let name = obj
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty() && n.len() <= rules::MAX_PATH_LEN)
        .ok_or_else(|| format!("layout {kind} #{} has no valid \"name\"", index + 1))?;
    match obj.get("_type") {
        None => {}
        Some(t) if t.as_str() == Some(kind) => {}
        Some(_) => {
            return Err(format!(
                "layout {kind} {}: _type is not {kind:?}",
                quote(name)
            ));
        }
    }
    if !names.insert(name.to_owned()) {
        return Err(format!(
            "layout has two steps or inspections named {}",
            quote(name)
        ));
    }
    Ok(name.to_owned())
}

fn rule_list(value: Option<&Value>, count: &mut usize) -> Result<Vec<Rule>, String> {
    let list = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(v) => v.as_array().ok_or("artifact rules are not a list")?,
    };
    *count = count.saturating_add(list.len());
    if *count > MAX_RULES {
        return Err(format!("layout has more than {MAX_RULES} artifact rules"));
    }
    list.iter().map(Rule::parse).collect()
}

fn string_list(value: &Value) -> Result<Vec<String>, String> {
    value
        .as_array()
        .ok_or("is not a list of strings")?
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_owned)
                .ok_or("is not a list of strings")
        })
        .collect::<Result<_, _>>()
        .map_err(str::to_owned)
}

/// A command list for messages: JSON, capped.
fn json_list(items: &[String]) -> String {
    let text = serde_json::to_string(items).unwrap_or_default();
    if text.chars().count() > 300 {
        format!("{}...", text.chars().take(300).collect::<String>())
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyids_match_the_securesystemslib_corpus() {
        // The demo keys of the evault corpus (in-toto 3.1.0 / securesystemslib 1.6.0).
        let owner = "-----BEGIN PUBLIC KEY-----\n\
                     MCowBQYDK2VwAyEAoobeo8esvVL4C2Y0jh6ibRHVfbsB/lYCrcuMRJnE9II=\n\
                     -----END PUBLIC KEY-----\n";
        let key = PublicKey::from_pem(owner).unwrap();
        assert_eq!(
            key.keyid,
            "f9f04f6d46a316ccb2bd70ee32b17a2c60483a36762cde0e30b9157894aa696f"
        );
    }
}
