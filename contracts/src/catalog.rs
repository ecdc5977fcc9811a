//! Every schema of every event and version, and the writer schemas built from them.
//!
//! The files under `contracts/schemas/` are embedded at build time (`build.rs`) and parsed once,
//! at first use ([`catalog`]). For each event type the latest `vN.avsc` is what we write with;
//! older versions stay for the compatibility gate ([`check_backward_transitive`]).

mod assembly;
mod gate;
mod resolution;

use std::sync::LazyLock;

use apache_avro::Schema;
use serde_json::Value as Json;

pub use assembly::{EVENTS_NAMESPACE, aggregate_record_name};
pub use gate::{Incompatibility, check_against_registered, check_backward_transitive};

use crate::domain_event::Writer;
use crate::events::EventKind;

/// A schema file as embedded in the crate.
#[derive(Debug, Clone, Copy)]
pub struct SchemaFile {
    /// Path under `contracts/schemas/`, e.g. `OrderSecured/v1.avsc`.
    pub path: &'static str,
    /// The file's text.
    pub json: &'static str,
}

/// Every `.avsc` under `contracts/schemas/`, sorted by path.
pub static SCHEMA_FILES: &[SchemaFile] = include!(concat!(env!("OUT_DIR"), "/schema_files.rs"));

/// Aggregate type of outbox messages whose aggregate is none of ours.
pub const OUTBOX_AGGREGATE: &str = "outbox";
const ENVELOPE_FOLDER: &str = "Envelope";

/// A schema file that cannot be used; names the file and says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("contracts/schemas/{file}: {reason}")]
pub struct CatalogError {
    /// Path under `contracts/schemas/`.
    pub file: String,
    /// What is wrong with it.
    pub reason: String,
}

fn error(file: impl Into<String>, reason: impl Into<String>) -> CatalogError {
    CatalogError {
        file: file.into(),
        reason: reason.into(),
    }
}

/// One version of one event's payload schema.
#[derive(Debug)]
pub struct EventSchema {
    /// E.g. "OrderSubmitted".
    pub event_type: String,
    /// N of `vN.avsc`.
    pub version: u32,
    /// Path under `contracts/schemas/`.
    pub path: String,
    /// The file as JSON.
    pub json: Json,
    /// The parsed payload record.
    pub schema: Schema,
}

/// A writer schema with its JSON text and record name.
#[derive(Debug)]
pub(crate) struct WriterData {
    pub(crate) schema: Schema,
    pub(crate) json: String,
    pub(crate) record_name: String,
}

impl WriterData {
    fn build(json: Json, file: &str) -> Result<WriterData, CatalogError> {
        let text = json.to_string();
        let schema =
            Schema::parse_str(&text).map_err(|e| error(file, format!("writer schema: {e}")))?;
        let record_name = match &schema {
            Schema::Record(r) => r.name.fullname(None),
            _ => return Err(error(file, "writer schema is not a record")),
        };
        Ok(WriterData {
            schema,
            json: text,
            record_name,
        })
    }

    pub(crate) fn writer(&'static self) -> Writer {
        Writer {
            schema: &self.schema,
            schema_json: &self.json,
            record_name: &self.record_name,
        }
    }
}

/// The writer of one aggregate: envelope + union of its events' latest payloads.
#[derive(Debug)]
pub(crate) struct AggregateWriter {
    pub(crate) aggregate_type: String,
    pub(crate) members: Vec<EventKind>,
    pub(crate) data: WriterData,
}

/// All schemas, parsed, and the writers built from them.
#[derive(Debug)]
pub struct Catalog {
    pub(crate) envelope: Json,
    pub(crate) envelope_schema: Schema,
    schemas: Vec<EventSchema>,
    latest: Vec<usize>,
    pub(crate) event_writers: Vec<WriterData>,
    pub(crate) aggregates: Vec<AggregateWriter>,
}

static CATALOG: LazyLock<Result<Catalog, CatalogError>> =
    LazyLock::new(|| Catalog::build(SCHEMA_FILES));

/// The catalog of the embedded schema files, parsed at first use.
///
/// # Panics
/// If an embedded schema file is malformed, naming the file. The files are part of the build and
/// the contract tests load them, so this cannot reach a release.
pub fn catalog() -> &'static Catalog {
    match &*CATALOG {
        Ok(catalog) => catalog,
        Err(e) => panic!("invalid contract schema: {e}"),
    }
}

/// The catalog, or why an embedded schema file is unusable.
pub fn try_catalog() -> Result<&'static Catalog, &'static CatalogError> {
    CATALOG.as_ref()
}

/// Every (event type, version, schema) of the embedded catalog.
pub fn schemas() -> &'static [EventSchema] {
    &catalog().schemas
}

/// The latest version of an event type's payload schema.
pub fn latest(event_type: &str) -> Option<&'static EventSchema> {
    catalog().latest(event_type)
}

impl Catalog {
    /// Parses and checks schema files: names, versions 1..=N without gaps, JSON, Avro, and that the
    /// latest version of each event has exactly the fields of its Rust type.
    pub fn build(files: &[SchemaFile]) -> Result<Catalog, CatalogError> {
        let mut envelope: Option<(u32, Json, Schema)> = None;
        let mut schemas = Vec::new();
        for file in files {
            let (folder, version) = parse_path(file.path)?;
            let json: Json = serde_json::from_str(file.json)
                .map_err(|e| error(file.path, format!("not JSON: {e}")))?;
            let schema = Schema::parse(&json)
                .map_err(|e| error(file.path, format!("not an Avro schema: {e}")))?;
            if folder == ENVELOPE_FOLDER {
                if envelope.as_ref().is_none_or(|(v, _, _)| *v < version) {
                    envelope = Some((version, json, schema));
                }
                continue;
            }
            if EventKind::from_name(folder).is_none() {
                return Err(error(
                    file.path,
                    format!("no Rust event type `{folder}` in contracts::events"),
                ));
            }
            if json.get("name").and_then(Json::as_str) != Some(folder) {
                return Err(error(
                    file.path,
                    format!("record name must be the folder name `{folder}`"),
                ));
            }
            schemas.push(EventSchema {
                event_type: folder.to_owned(),
                version,
                path: file.path.to_owned(),
                json,
                schema,
            });
        }
        let (_, envelope, envelope_schema) =
            envelope.ok_or_else(|| error("Envelope/", "no envelope schema"))?;
        schemas.sort_by(|a, b| (&a.event_type, a.version).cmp(&(&b.event_type, b.version)));

        let mut latest = Vec::with_capacity(EventKind::ALL.len());
        for &kind in EventKind::ALL {
            let folder = format!("{}/", kind.name());
            let versions: Vec<usize> = (0..schemas.len())
                .filter(|&i| schemas[i].event_type == kind.name())
                .collect();
            let last = *versions
                .last()
                .ok_or_else(|| error(&folder, "no schema file for this event type"))?;
            for (n, &i) in versions.iter().enumerate() {
                if schemas[i].version as usize != n + 1 {
                    return Err(error(
                        &schemas[i].path,
                        format!("versions must run v1..vN without gaps; expected v{}", n + 1),
                    ));
                }
            }
            check_fields(kind, &schemas[last])?;
            latest.push(last);
        }

        let mut event_writers = Vec::new();
        for &kind in EventKind::ALL {
            let s = &schemas[latest[kind as usize]];
            let json = assembly::event_record(kind.name(), &envelope, &s.json)
                .map_err(|e| error(&s.path, e))?;
            let data = WriterData::build(json, &s.path)?;
            event_writers.push(data);
        }

        let mut aggregates = Vec::new();
        let mut types: Vec<&'static str> = EventKind::ALL
            .iter()
            .filter_map(|k| k.aggregate_type())
            .collect();
        types.dedup();
        types.push(OUTBOX_AGGREGATE);
        for aggregate_type in types {
            let mut members: Vec<EventKind> = EventKind::ALL
                .iter()
                .copied()
                .filter(|k| k.aggregate_type() == Some(aggregate_type))
                .collect();
            members.push(EventKind::OutboxMessage);
            let payloads: Vec<&Json> = members
                .iter()
                .map(|k| &schemas[latest[*k as usize]].json)
                .collect();
            let name = aggregate_record_name(aggregate_type);
            let json = assembly::aggregate_record(&name, &envelope, &payloads)
                .map_err(|e| error(&name, e))?;
            let data = WriterData::build(json, &name)?;
            aggregates.push(AggregateWriter {
                aggregate_type: aggregate_type.to_owned(),
                members,
                data,
            });
        }
        Ok(Catalog {
            envelope,
            envelope_schema,
            schemas,
            latest,
            event_writers,
            aggregates,
        })
    }

    /// Every (event type, version, schema), sorted by event type and version.
    pub fn schemas(&self) -> &[EventSchema] {
        &self.schemas
    }

    /// The latest version of an event type's payload schema.
    pub fn latest(&self, event_type: &str) -> Option<&EventSchema> {
        EventKind::from_name(event_type).map(|k| &self.schemas[self.latest[k as usize]])
    }

    /// All versions of an event type, oldest first.
    pub fn versions(&self, event_type: &str) -> impl Iterator<Item = &EventSchema> {
        self.schemas
            .iter()
            .filter(move |s| s.event_type == event_type)
    }

    /// The aggregate writer and the union position of `kind` in it, for an event of
    /// `aggregate_type` (outbox messages of aggregates we do not know use the outbox writer).
    pub(crate) fn aggregate_of(
        &self,
        kind: EventKind,
        aggregate_type: &str,
    ) -> (&AggregateWriter, usize) {
        let wanted = kind.aggregate_type().unwrap_or(aggregate_type);
        let aggregate = self
            .aggregates
            .iter()
            .find(|a| a.aggregate_type == wanted)
            .or_else(|| {
                self.aggregates
                    .iter()
                    .find(|a| a.aggregate_type == OUTBOX_AGGREGATE)
            })
            .unwrap_or(&self.aggregates[self.aggregates.len() - 1]);
        let index = aggregate
            .members
            .iter()
            .position(|m| *m == kind)
            .unwrap_or(0);
        (aggregate, index)
    }
}

impl EventKind {
    /// The latest schema version of this event: what the crate writes with.
    pub fn latest_version(self) -> u32 {
        let catalog = catalog();
        catalog.schemas[catalog.latest[self as usize]].version
    }
}

impl Catalog {
    /// The writer of each event's own record (subjects under RecordName / TopicRecordName).
    pub fn event_writers(&'static self) -> impl Iterator<Item = (EventKind, Writer)> {
        EventKind::ALL
            .iter()
            .map(|&k| (k, self.event_writers[k as usize].writer()))
    }

    /// The writer of each aggregate's record (subjects under TopicName), by aggregate type.
    pub fn aggregate_writers(&'static self) -> impl Iterator<Item = (&'static str, Writer)> {
        self.aggregates
            .iter()
            .map(|a| (a.aggregate_type.as_str(), a.data.writer()))
    }
}

fn parse_path(path: &str) -> Result<(&str, u32), CatalogError> {
    let bad = || {
        error(
            path,
            "schema files must be named <EventType>/v<N>.avsc with N ≥ 1",
        )
    };
    let (folder, file) = path.split_once('/').ok_or_else(bad)?;
    let n = file
        .strip_prefix('v')
        .and_then(|f| f.strip_suffix(".avsc"))
        .ok_or_else(bad)?;
    let version: u32 = n.parse().map_err(|_| bad())?;
    if version == 0 || n.starts_with('0') {
        return Err(bad());
    }
    Ok((folder, version))
}

fn check_fields(kind: EventKind, latest: &EventSchema) -> Result<(), CatalogError> {
    let names: Vec<&str> = match &latest.schema {
        Schema::Record(r) => r.fields.iter().map(|f| f.name.as_str()).collect(),
        _ => return Err(error(&latest.path, "payload schema must be a record")),
    };
    if names != kind.field_names() {
        return Err(error(
            &latest.path,
            format!(
                "fields {names:?} differ from the Rust type contracts::events::{} {:?}",
                kind.name(),
                kind.field_names()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
