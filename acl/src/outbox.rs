//! The outbox: rows of a transactional outbox table and `pg_logical_emit_message` payloads both
//! become `OutboxMessage` events, passed through without interpretation.
//!
//! Outbox table inserts take the row's `id` as event id (a UUID as is; any other id is turned
//! into a deterministic UUID v5). Updates and deletes of outbox rows yield no event; the bridge
//! warns about them. Logical messages get `event_id(position, event_type, aggregate_id)`.

use std::collections::BTreeMap;
use std::sync::RwLock;

use contracts::catalog::OUTBOX_AGGREGATE;
use contracts::events::OutboxMessage;
use contracts::{
    DomainEvent, EVENT_ID_NAMESPACE, Envelope, EventKind, Origin, Payload, SourcePosition, event_id,
};
use serde_json::Value as Json;

use crate::compile::{Columns, CompiledTable, TableSpec};
use crate::config::TableConfig;
use crate::error::{ConfigError, MapError, MapReason};
use crate::evaluate::{Image, RowEval};
use crate::row::Op;

/// The columns every outbox table has, in this order.
pub const OUTBOX_COLUMNS: [&str; 7] = [
    "id",
    "aggregate_type",
    "aggregate_id",
    "event_type",
    "payload",
    "headers",
    "created_at",
];
const ID: usize = 0;
const AGGREGATE_TYPE: usize = 1;
const AGGREGATE_ID: usize = 2;
const EVENT_TYPE: usize = 3;
const PAYLOAD: usize = 4;
const HEADERS: usize = 5;
/// Header keys copied into the envelope.
pub const CORRELATION_HEADER: &str = "correlation_id";
/// Header keys copied into the envelope.
pub const CAUSATION_HEADER: &str = "causation_id";

/// Marker: the table is an outbox (its column ids are the `OUTBOX_COLUMNS` indexes).
#[derive(Debug, Clone, Copy)]
pub(crate) struct OutboxColumns;

pub(crate) fn compile_outbox(
    config: &TableConfig,
    key: &str,
) -> Result<(CompiledTable, TableSpec), ConfigError> {
    if !config.fields.is_empty()
        || !config.events.is_empty()
        || config.aggregate.is_some()
        || config.aggregate_id.is_some()
    {
        return Err(ConfigError::invalid(
            key,
            "an outbox table takes only `schema`, `name`, `outbox` and `key`",
        ));
    }
    if !(config.key.is_empty() || config.key == ["id"]) {
        return Err(ConfigError::invalid(
            format!("{key}.key"),
            "an outbox table's key is `id`",
        ));
    }
    let mut columns = Columns::default();
    for name in OUTBOX_COLUMNS {
        columns.id(name);
    }
    let spec = TableSpec {
        schema: config.schema.clone(),
        table: config.name.clone(),
        aggregate_type: OUTBOX_AGGREGATE.to_owned(),
        key_columns: vec!["id".to_owned()],
        mapped_columns: columns.0.clone(),
        needs_full_identity: false,
        is_outbox: true,
    };
    let table = CompiledTable {
        qualified: format!("{}.{}", config.schema, config.name),
        aggregate_type: OUTBOX_AGGREGATE.to_owned(),
        columns: columns.0,
        key: vec![ID],
        fields: Vec::new(),
        aggregate_id: 0,
        rules: Vec::new(),
        mapped: Vec::new(),
        outbox: Some(OutboxColumns),
        resolution: RwLock::new(None),
        custom: Vec::new(),
    };
    Ok((table, spec))
}

/// An outbox row: inserts become one `OutboxMessage`; updates and deletes none.
pub(crate) fn map_outbox_row(
    row: &RowEval<'_>,
    out: &mut Vec<DomainEvent>,
) -> Result<(), MapError> {
    if row.change.op != Op::Insert {
        return Ok(());
    }
    let required = |col: usize| {
        row.cell(Image::New, col)?
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                row.error(
                    Some(col),
                    MapReason::BadOutbox {
                        what: "required column is NULL or empty",
                    },
                )
            })
    };
    let id = required(ID)?;
    let aggregate_type = required(AGGREGATE_TYPE)?;
    let aggregate_id = required(AGGREGATE_ID)?;
    let message_type = required(EVENT_TYPE)?;
    let payload = required(PAYLOAD)?;
    if serde_json::from_str::<serde::de::IgnoredAny>(payload).is_err() {
        return Err(row.error(
            Some(PAYLOAD),
            MapReason::BadOutbox {
                what: "payload is not JSON",
            },
        ));
    }
    let headers = match row.cell(Image::New, HEADERS)? {
        None => BTreeMap::new(),
        Some(text) => match serde_json::from_str::<Json>(text) {
            Ok(Json::Object(map)) => header_map(map),
            _ => {
                return Err(row.error(
                    Some(HEADERS),
                    MapReason::BadOutbox {
                        what: "headers are not a JSON object",
                    },
                ));
            }
        },
    };
    let change = row.change;
    out.push(outbox_event(
        outbox_event_id(&row.table.qualified, id),
        aggregate_type,
        aggregate_id,
        message_type,
        payload.to_owned(),
        headers,
        change.position,
        change.commit_ts_micros,
        change.origin,
    ));
    Ok(())
}

/// The content of a logical message used as an outbox.
#[derive(serde::Deserialize)]
struct MessageContent {
    aggregate_type: String,
    aggregate_id: Json,
    event_type: String,
    payload: Json,
    #[serde(default)]
    headers: Option<serde_json::Map<String, Json>>,
}

/// A `pg_logical_emit_message` payload with the mapping's prefix.
pub(crate) fn map_message(
    expected_prefix: Option<&str>,
    prefix: &str,
    content: &[u8],
    position: SourcePosition,
    commit_ts_micros: i64,
) -> Result<Vec<DomainEvent>, MapError> {
    let table = format!("message:{prefix}");
    let error = |key: &str, reason| MapError::new(&table, key, None, reason);
    if expected_prefix != Some(prefix) {
        return Err(error("", MapReason::UnknownPrefix));
    }
    let content: MessageContent = serde_json::from_slice(content).map_err(|_| {
        error(
            "",
            MapReason::BadOutbox {
                what: "content is not JSON with aggregate_type, aggregate_id, event_type, payload",
            },
        )
    })?;
    let aggregate_id = match &content.aggregate_id {
        Json::String(s) => s.clone(),
        Json::Number(n) => n.to_string(),
        _ => {
            return Err(error(
                "",
                MapReason::BadOutbox {
                    what: "aggregate_id is not a string or number",
                },
            ));
        }
    };
    if content.aggregate_type.is_empty() || aggregate_id.is_empty() || content.event_type.is_empty()
    {
        return Err(error(
            &aggregate_id,
            MapReason::BadOutbox {
                what: "aggregate_type, aggregate_id and event_type must not be empty",
            },
        ));
    }
    let id = event_id(&position, &content.event_type, &aggregate_id);
    Ok(vec![outbox_event(
        id,
        &content.aggregate_type,
        &aggregate_id,
        &content.event_type,
        content.payload.to_string(),
        content.headers.map(header_map).unwrap_or_default(),
        position,
        commit_ts_micros,
        Origin::Stream,
    )])
}

/// String headers as they are; any other JSON value as its JSON text.
fn header_map(map: serde_json::Map<String, Json>) -> BTreeMap<String, String> {
    map.into_iter()
        .map(|(k, v)| match v {
            Json::String(s) => (k, s),
            other => (k, other.to_string()),
        })
        .collect()
}

/// The outbox row id as event id: a UUID as is (lower-case), anything else as a UUID v5.
fn outbox_event_id(table: &str, id: &str) -> String {
    match uuid::Uuid::parse_str(id) {
        Ok(u) => u.hyphenated().to_string(),
        Err(_) => uuid::Uuid::new_v5(
            &EVENT_ID_NAMESPACE,
            format!("outbox\0{table}\0{id}").as_bytes(),
        )
        .hyphenated()
        .to_string(),
    }
}

#[allow(clippy::too_many_arguments)]
fn outbox_event(
    event_id: String,
    aggregate_type: &str,
    aggregate_id: &str,
    message_type: &str,
    payload_json: String,
    headers: BTreeMap<String, String>,
    source: SourcePosition,
    occurred_at_micros: i64,
    origin: Origin,
) -> DomainEvent {
    let kind = EventKind::OutboxMessage;
    DomainEvent {
        envelope: Envelope {
            event_id,
            event_type: kind.name().to_owned(),
            schema_version: kind.latest_version(),
            occurred_at_micros,
            aggregate_type: aggregate_type.to_owned(),
            aggregate_id: aggregate_id.to_owned(),
            source,
            origin,
            correlation_id: headers.get(CORRELATION_HEADER).cloned(),
            causation_id: headers.get(CAUSATION_HEADER).cloned(),
        },
        payload: Payload::OutboxMessage(OutboxMessage {
            message_type: message_type.to_owned(),
            payload_json,
            headers,
        }),
    }
}
