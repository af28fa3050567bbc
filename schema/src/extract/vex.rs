//! The statements of a VEX document: OpenVEX (v0.2.0, and the legacy v0.0.x shapes), the
//! `analysis` of CycloneDX vulnerabilities, and CSAF 2.0 (`csaf_vex`).
//!
//! Documents are read as a stream like scan reports (see [`super::scan`]): statements and
//! vulnerabilities are visited one at a time and only what a [`VexStatement`] needs is kept.
//!
//! # Mapping, per format
//!
//! **OpenVEX**: one statement per `statements[]`.
//! - `vulnerability`: `vulnerability.name` (v0.2), else `vulnerability["@id"]`, or the plain
//!   string of v0.0.x; `aliases`: `vulnerability.aliases`.
//! - `products`: each product's `@id` (else its `identifiers` purl, CPE 2.3, CPE 2.2), followed
//!   by the ids of its `subcomponents`, then the statement's own `subcomponents` (v0.0.x);
//!   products may be plain strings (v0.0.x). Repeats are dropped. The subcomponents are listed
//!   because a statement about an image with subcomponents is about those packages in it.
//! - `status`: `not_affected`, `affected`, `fixed`, `under_investigation`; any other is an error.
//! - `justification`: `justification`, else `impact_statement` (OpenVEX requires one of the two
//!   for `not_affected`, so a gate asking for a justification accepts either).
//!
//! **CycloneDX**: one statement per `vulnerabilities[]` that has an `analysis.state`;
//! vulnerabilities without one are findings, not statements. `id`, `references[].id` as
//! aliases, `affects[].ref` as products (as written: BOM refs or BOM-Links), and
//! `analysis.justification`. States: `not_affected` and `false_positive` → not affected,
//! `exploitable` → affected, `resolved` and `resolved_with_pedigree` → fixed, `in_triage` →
//! under investigation; any other is an error.
//!
//! **CSAF**: for each `vulnerabilities[]`, one statement per non-empty `product_status` group,
//! in document order: `known_not_affected` → not affected; `known_affected`, `first_affected`,
//! `last_affected` → affected; `fixed`, `first_fixed` → fixed; `under_investigation` → under
//! investigation (`recommended` says which version to use, not a status, and is skipped).
//! - `vulnerability`: `cve`, else the first `ids[].text` (the VEX profile requires one);
//!   `aliases`: the other `ids[].text`.
//! - `products`: the group's product ids as the document writes them (CSAF's document-local
//!   ids, which the `product_tree` maps to names).
//! - `justification` (not affected only): a product's first `flags[]` label, else the `details`
//!   of its first `threats[]` entry of category `impact`. The not-affected group is split into one
//!   statement per distinct justification (products without one form their own statement), so
//!   that no statement claims a justification for a product the document did not give it.
//!   Flags and threats that name `group_ids` are resolved against the `product_tree`'s
//!   `product_groups` when the tree comes before the vulnerabilities (as CSAF producers write it).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::Read;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::scan::{
    CdxVulnerability, Member, Sink, distinct_aliases, each, excerpt, non_empty, null_as_default,
    read_json,
};
use super::{ExtractError, Extracted, Limits, VexStatement, VexStatus};
use crate::Format;

/// Reads the statements of a VEX document.
///
/// Any format that cannot carry VEX is an error, so that "not VEX" never reads as "no
/// statements".
pub fn statements(
    format: Format,
    reader: impl Read,
    limits: &Limits,
) -> Result<Extracted<VexStatement>, ExtractError> {
    let mut sink = Sink::new(limits);
    match format {
        Format::Openvex => read_json(format, reader, OpenVexDocument { sink: &mut sink })?,
        Format::CyclonedxJson => read_json(format, reader, CdxVex { sink: &mut sink })?,
        Format::Csaf => read_json(format, reader, CsafDocument { sink: &mut sink })?,
        // Not extracted yet: an XML BOM's analysis stays in the stored document.
        Format::CyclonedxXml => {}
        other => {
            return Err(ExtractError(format!(
                "{} is not a VEX format",
                other.title()
            )));
        }
    }
    Ok(sink.finish())
}

// ---------------------------------------------------------------------------------------------
// OpenVEX

struct OpenVexDocument<'s, 'l> {
    sink: &'s mut Sink<'l, VexStatement>,
}

#[derive(Deserialize)]
#[serde(field_identifier)]
enum OpenVexKey {
    #[serde(rename = "statements")]
    Statements,
    #[serde(other)]
    Other,
}

impl<'de> DeserializeSeed<'de> for OpenVexDocument<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for OpenVexDocument<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an OpenVEX document object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut statements = false;
        while let Some(key) = map.next_key::<OpenVexKey>()? {
            match key {
                OpenVexKey::Statements => {
                    statements = true;
                    map.next_value_seed(each(|s: OpenVexStatement| {
                        self.sink.push(s.statement()?);
                        Ok(())
                    }))?;
                }
                OpenVexKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !statements {
            return Err(de::Error::custom("missing \"statements\""));
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct OpenVexStatement {
    vulnerability: Option<OpenVexVulnerability>,
    #[serde(default, deserialize_with = "null_as_default")]
    products: Vec<OpenVexProduct>,
    /// v0.0.x put subcomponents on the statement.
    #[serde(default, deserialize_with = "null_as_default")]
    subcomponents: Vec<OpenVexProduct>,
    status: Option<String>,
    justification: Option<String>,
    impact_statement: Option<String>,
}

/// `vulnerability`: an object in v0.2, a plain string in v0.0.x.
#[derive(Default)]
struct OpenVexVulnerability {
    name: Option<String>,
    id: Option<String>,
    aliases: Vec<String>,
}

#[derive(Deserialize)]
struct OpenVexVulnerabilityObject {
    name: Option<String>,
    #[serde(rename = "@id")]
    id: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    aliases: Vec<String>,
}

/// A product or subcomponent: an object in v0.2, a plain string in v0.0.x. Held as the list of
/// ids it contributes (its own, then its subcomponents').
#[derive(Default)]
struct OpenVexProduct {
    ids: Vec<String>,
}

#[derive(Deserialize)]
struct OpenVexProductObject {
    #[serde(rename = "@id")]
    id: Option<String>,
    identifiers: Option<OpenVexIdentifiers>,
    #[serde(default, deserialize_with = "null_as_default")]
    subcomponents: Vec<OpenVexProduct>,
}

#[derive(Deserialize)]
struct OpenVexIdentifiers {
    purl: Option<String>,
    cpe23: Option<String>,
    cpe22: Option<String>,
}

impl<'de> Deserialize<'de> for OpenVexVulnerability {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StringOrObject::new(
            "a vulnerability name or object",
            |name: &str| OpenVexVulnerability {
                name: Some(name.to_string()),
                ..OpenVexVulnerability::default()
            },
            |o: OpenVexVulnerabilityObject| OpenVexVulnerability {
                name: o.name,
                id: o.id,
                aliases: o.aliases,
            },
        ))
    }
}

impl<'de> Deserialize<'de> for OpenVexProduct {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StringOrObject::new(
            "a product id or object",
            |id: &str| OpenVexProduct {
                ids: vec![id.to_string()],
            },
            |o: OpenVexProductObject| {
                let identifiers = o.identifiers.and_then(|i| i.purl.or(i.cpe23).or(i.cpe22));
                let own = non_empty(o.id).or_else(|| non_empty(identifiers));
                OpenVexProduct {
                    ids: own
                        .into_iter()
                        .chain(o.subcomponents.into_iter().flat_map(|s| s.ids))
                        .collect(),
                }
            },
        ))
    }
}

impl OpenVexStatement {
    fn statement(self) -> Result<VexStatement, String> {
        let v = self.vulnerability.unwrap_or_default();
        let vulnerability = non_empty(v.name)
            .or_else(|| non_empty(v.id))
            .ok_or("statement without \"vulnerability\" name")?;
        let status = match self.status.as_deref() {
            Some("not_affected") => VexStatus::NotAffected,
            Some("affected") => VexStatus::Affected,
            Some("fixed") => VexStatus::Fixed,
            Some("under_investigation") => VexStatus::UnderInvestigation,
            Some(other) => return Err(format!("unknown status \"{}\"", excerpt(other))),
            None => return Err("statement without \"status\"".to_string()),
        };
        let products = self
            .products
            .into_iter()
            .chain(self.subcomponents)
            .flat_map(|p| p.ids);
        Ok(VexStatement {
            aliases: distinct_aliases(&vulnerability, v.aliases),
            vulnerability,
            products: distinct(products),
            status,
            justification: non_empty(self.justification).or(non_empty(self.impact_statement)),
        })
    }
}

/// A value that is either a string or an object of type `O`, each turned into `T`.
struct StringOrObject<O, S, M> {
    expecting: &'static str,
    from_str: S,
    from_object: M,
    object: std::marker::PhantomData<fn() -> O>,
}

impl<O, S, M> StringOrObject<O, S, M> {
    fn new(expecting: &'static str, from_str: S, from_object: M) -> Self {
        StringOrObject {
            expecting,
            from_str,
            from_object,
            object: std::marker::PhantomData,
        }
    }
}

impl<'de, O, T, S, M> Visitor<'de> for StringOrObject<O, S, M>
where
    O: Deserialize<'de>,
    S: FnOnce(&str) -> T,
    M: FnOnce(O) -> T,
{
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        Ok((self.from_str)(v))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        let object = O::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok((self.from_object)(object))
    }
}

// ---------------------------------------------------------------------------------------------
// CycloneDX

struct CdxVex<'s, 'l> {
    sink: &'s mut Sink<'l, VexStatement>,
}

#[derive(Deserialize)]
#[serde(field_identifier)]
enum CdxKey {
    #[serde(rename = "vulnerabilities")]
    Vulnerabilities,
    #[serde(other)]
    Other,
}

impl<'de> DeserializeSeed<'de> for CdxVex<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for CdxVex<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a CycloneDX BOM object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<CdxKey>()? {
            match key {
                CdxKey::Vulnerabilities => {
                    map.next_value_seed(each(|v: CdxVulnerability| {
                        if let Some(statement) = cdx_statement(v)? {
                            self.sink.push(statement);
                        }
                        Ok(())
                    }))?;
                }
                CdxKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// The statement a CycloneDX vulnerability's `analysis` makes, if it has a state.
fn cdx_statement(v: CdxVulnerability) -> Result<Option<VexStatement>, String> {
    let Some(analysis) = &v.analysis else {
        return Ok(None);
    };
    let Some(state) = analysis.state.as_deref() else {
        return Ok(None);
    };
    let status = match state {
        "not_affected" | "false_positive" => VexStatus::NotAffected,
        "exploitable" => VexStatus::Affected,
        "resolved" | "resolved_with_pedigree" => VexStatus::Fixed,
        "in_triage" => VexStatus::UnderInvestigation,
        other => {
            return Err(format!("unknown analysis.state \"{}\"", excerpt(other)));
        }
    };
    let vulnerability = v.require_id()?;
    let aliases = v.aliases(&vulnerability);
    let justification = non_empty(analysis.justification.clone());
    let products = distinct(v.affects.into_iter().filter_map(|a| non_empty(a.reference)));
    Ok(Some(VexStatement {
        vulnerability,
        aliases,
        products,
        status,
        justification,
    }))
}

// ---------------------------------------------------------------------------------------------
// CSAF

struct CsafDocument<'s, 'l> {
    sink: &'s mut Sink<'l, VexStatement>,
}

#[derive(Deserialize)]
#[serde(field_identifier)]
enum CsafKey {
    #[serde(rename = "product_tree")]
    ProductTree,
    #[serde(rename = "vulnerabilities")]
    Vulnerabilities,
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct CsafProductGroup {
    group_id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    product_ids: Vec<String>,
}

impl<'de> DeserializeSeed<'de> for CsafDocument<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for CsafDocument<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a CSAF document object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let sink = &mut *self.sink;
        let limit = sink.limits.max_items;
        let mut groups: HashMap<String, Vec<String>> = HashMap::new();
        let mut grouped = 0usize;
        while let Some(key) = map.next_key::<CsafKey>()? {
            match key {
                CsafKey::ProductTree => {
                    // Group members count against the item limit, so that a hostile tree
                    // cannot grow memory without bound.
                    let collect = each(|g: CsafProductGroup| {
                        if grouped.saturating_add(g.product_ids.len()) <= limit {
                            grouped += g.product_ids.len();
                            groups.entry(g.group_id).or_insert(g.product_ids);
                        }
                        Ok(())
                    });
                    map.next_value_seed(Member::new("product_groups", collect))?;
                }
                CsafKey::Vulnerabilities => {
                    map.next_value_seed(each(|v: CsafVulnerability| {
                        for statement in v.statements(&groups)? {
                            sink.push(statement);
                        }
                        Ok(())
                    }))?;
                }
                CsafKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct CsafVulnerability {
    cve: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    ids: Vec<CsafId>,
    #[serde(default)]
    product_status: ProductStatus,
    #[serde(default, deserialize_with = "null_as_default")]
    flags: Vec<CsafProductNote>,
    #[serde(default, deserialize_with = "null_as_default")]
    threats: Vec<CsafProductNote>,
}

#[derive(Deserialize)]
struct CsafId {
    text: Option<String>,
}

/// A flag or a threat: something said about some products.
#[derive(Deserialize)]
struct CsafProductNote {
    /// Flags only: the justification label.
    label: Option<String>,
    /// Threats only.
    category: Option<String>,
    details: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    product_ids: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    group_ids: Vec<String>,
}

/// `product_status`, as (status, product ids) in document order.
#[derive(Default)]
struct ProductStatus(Vec<(VexStatus, Vec<String>)>);

impl<'de> Deserialize<'de> for ProductStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ProductStatusVisitor)
    }
}

struct ProductStatusVisitor;

impl<'de> Visitor<'de> for ProductStatusVisitor {
    type Value = ProductStatus;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a product_status object")
    }

    fn visit_unit<E: de::Error>(self) -> Result<ProductStatus, E> {
        Ok(ProductStatus::default())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ProductStatus, A::Error> {
        let mut groups = Vec::new();
        while let Some(key) = map.next_key::<CsafStatusKey>()? {
            let status = match key {
                CsafStatusKey::KnownNotAffected => VexStatus::NotAffected,
                CsafStatusKey::KnownAffected
                | CsafStatusKey::FirstAffected
                | CsafStatusKey::LastAffected => VexStatus::Affected,
                CsafStatusKey::Fixed | CsafStatusKey::FirstFixed => VexStatus::Fixed,
                CsafStatusKey::UnderInvestigation => VexStatus::UnderInvestigation,
                CsafStatusKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            let products: Option<Vec<String>> = map.next_value()?;
            groups.push((status, products.unwrap_or_default()));
        }
        Ok(ProductStatus(groups))
    }
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum CsafStatusKey {
    FirstAffected,
    FirstFixed,
    Fixed,
    KnownAffected,
    KnownNotAffected,
    LastAffected,
    UnderInvestigation,
    /// `recommended`, and anything a later CSAF adds.
    #[serde(other)]
    Other,
}

impl CsafVulnerability {
    fn statements(
        self,
        groups: &HashMap<String, Vec<String>>,
    ) -> Result<Vec<VexStatement>, String> {
        let texts: Vec<String> = self
            .ids
            .into_iter()
            .filter_map(|i| non_empty(i.text))
            .collect();
        let vulnerability = non_empty(self.cve)
            .or_else(|| texts.first().cloned())
            .ok_or("vulnerability with neither \"cve\" nor \"ids\"")?;
        let aliases = distinct_aliases(&vulnerability, texts);

        // Product → justification: flags first, then impact statements.
        let mut justifications: HashMap<String, String> = HashMap::new();
        let impacts = self
            .threats
            .into_iter()
            .filter(|t| t.category.as_deref() == Some("impact"))
            .filter_map(|t| non_empty(t.details.clone()).map(|d| (d, t)));
        let labelled = self
            .flags
            .into_iter()
            .filter_map(|f| non_empty(f.label.clone()).map(|l| (l, f)));
        for (text, note) in labelled.chain(impacts) {
            let members = note
                .group_ids
                .iter()
                .filter_map(|g| groups.get(g))
                .flatten()
                .cloned();
            for product in note.product_ids.into_iter().chain(members) {
                justifications
                    .entry(product)
                    .or_insert_with(|| text.clone());
            }
        }

        let mut out = Vec::new();
        for (status, products) in self.product_status.0 {
            let products = distinct(products.into_iter().filter(|p| !p.trim().is_empty()));
            if products.is_empty() {
                continue;
            }
            let statement = |products: Vec<String>, justification: Option<String>| VexStatement {
                vulnerability: vulnerability.clone(),
                aliases: aliases.clone(),
                products,
                status,
                justification,
            };
            if status != VexStatus::NotAffected {
                out.push(statement(products, None));
                continue;
            }
            // One statement per justification, in order of first appearance.
            let mut parts: Vec<(Option<String>, Vec<String>)> = Vec::new();
            let mut part_of: HashMap<Option<String>, usize> = HashMap::new();
            for product in products {
                let justification = justifications.get(&product).cloned();
                let next = parts.len();
                let at = *part_of.entry(justification.clone()).or_insert(next);
                match parts.get_mut(at) {
                    Some((_, members)) => members.push(product),
                    None => parts.push((justification, vec![product])),
                }
            }
            for (justification, members) in parts {
                out.push(statement(members, justification));
            }
        }
        Ok(out)
    }
}

/// `items` without repeats, in order.
fn distinct(items: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut seen = HashSet::new();
    items
        .into_iter()
        .filter(|i| seen.insert(i.clone()))
        .collect()
}
