//! What goes on the wire, as pure functions (vector's `request_builder`): domain events framed in
//! the Confluent wire format with their headers, dead letters, tombstones and progress records.

use acl::{Cell, DomainEvent, Origin, RowChange, SourcePosition};

use crate::checkpoint::{Progress, format_lsn};

/// Header: the event's deterministic id.
pub const HEADER_EVENT_ID: &str = "event_id";
/// Header: the event type, e.g. `OrderPlaced`.
pub const HEADER_EVENT_TYPE: &str = "event_type";
/// Header: commit LSN of the legacy transaction, `X/Y`.
pub const HEADER_SOURCE_LSN: &str = "source_lsn";
/// Header: legacy transaction id.
pub const HEADER_SOURCE_XID: &str = "source_xid";
/// Header: `stream`, `snapshot` or `reconciliation`.
pub const HEADER_ORIGIN: &str = "origin";
/// Dead-letter header: short stable reason (`unmapped_code`, `encode`, `truncate`, ...).
pub const HEADER_REASON: &str = "reason";
/// Dead-letter header: `schema.table`.
pub const HEADER_TABLE: &str = "table";
/// Dead-letter header: the row's key as text.
pub const HEADER_KEY: &str = "key";
/// Dead-letter header: commit LSN, `X/Y`.
pub const HEADER_LSN: &str = "lsn";
/// Dead-letter header: the offending column, when known.
pub const HEADER_COLUMN: &str = "column";
/// Dead-letter header: the error message.
pub const HEADER_ERROR: &str = "error";

/// One Kafka record, owned.
#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingRecord {
    /// Topic.
    pub topic: String,
    /// Key (the aggregate id for events).
    pub key: Option<Vec<u8>>,
    /// Value; `None` is a tombstone.
    pub payload: Option<Vec<u8>>,
    /// Headers.
    pub headers: Vec<(&'static str, Vec<u8>)>,
}

/// The record of a domain event: `frame` is the Confluent-framed Avro value.
pub fn event_record(topic: &str, event: &DomainEvent, frame: Vec<u8>) -> OutgoingRecord {
    let env = &event.envelope;
    OutgoingRecord {
        topic: topic.to_string(),
        key: Some(event.aggregate_id().as_bytes().to_vec()),
        payload: Some(frame),
        headers: vec![
            (HEADER_EVENT_ID, env.event_id.clone().into_bytes()),
            (HEADER_EVENT_TYPE, event.event_type().as_bytes().to_vec()),
            (
                HEADER_SOURCE_LSN,
                format_lsn(env.source.commit_lsn).into_bytes(),
            ),
            (HEADER_SOURCE_XID, env.source.xid.to_string().into_bytes()),
            (HEADER_ORIGIN, origin_name(env.origin).as_bytes().to_vec()),
        ],
    }
}

/// A tombstone for `key` (after a delete, for compacted topics).
pub fn tombstone(topic: &str, key: &str) -> OutgoingRecord {
    OutgoingRecord {
        topic: topic.to_string(),
        key: Some(key.as_bytes().to_vec()),
        payload: None,
        headers: Vec::new(),
    }
}

/// Why a row went to the dead-letter topic.
#[derive(Debug, Clone)]
pub struct Rejection<'a> {
    /// Short stable reason.
    pub reason: &'a str,
    /// `schema.table` (or the message prefix).
    pub table: String,
    /// The row's key as text.
    pub key: String,
    /// The offending column, if known.
    pub column: Option<String>,
    /// The full error message (no row values).
    pub error: String,
    /// Where in the WAL.
    pub position: SourcePosition,
}

/// The dead-letter record: headers say why and where; the value is the row as JSON (column →
/// text, null or `{"unchanged": true}`) so it can be repaired and replayed.
pub fn dead_letter(topic: &str, rejection: &Rejection<'_>, body: Vec<u8>) -> OutgoingRecord {
    let mut headers = vec![
        (HEADER_REASON, rejection.reason.as_bytes().to_vec()),
        (HEADER_TABLE, rejection.table.clone().into_bytes()),
        (HEADER_KEY, rejection.key.clone().into_bytes()),
        (
            HEADER_LSN,
            format_lsn(rejection.position.commit_lsn).into_bytes(),
        ),
        (
            HEADER_SOURCE_XID,
            rejection.position.xid.to_string().into_bytes(),
        ),
        (HEADER_ERROR, rejection.error.clone().into_bytes()),
    ];
    if let Some(c) = &rejection.column {
        headers.push((HEADER_COLUMN, c.clone().into_bytes()));
    }
    OutgoingRecord {
        topic: topic.to_string(),
        key: Some(format!("{}:{}", rejection.table, rejection.key).into_bytes()),
        payload: Some(body),
        headers,
    }
}

/// The JSON body of a dead-lettered row change.
pub fn row_body(change: &RowChange) -> Vec<u8> {
    let image = |cells: &[Cell]| -> serde_json::Value {
        let map: serde_json::Map<String, serde_json::Value> = change
            .columns
            .iter()
            .zip(cells)
            .map(|(name, cell)| {
                let v = match cell {
                    Cell::Null => serde_json::Value::Null,
                    Cell::Unchanged => serde_json::json!({ "unchanged": true }),
                    Cell::Text(t) => serde_json::Value::String(t.clone()),
                };
                (name.clone(), v)
            })
            .collect();
        serde_json::Value::Object(map)
    };
    let body = serde_json::json!({
        "op": format!("{:?}", change.op).to_lowercase(),
        "schema": change.schema,
        "table": change.table,
        "new": if change.new.is_empty() { serde_json::Value::Null } else { image(&change.new) },
        "old": if change.old.is_empty() { serde_json::Value::Null } else { image(&change.old) },
        "commit_ts_micros": change.commit_ts_micros,
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The progress record committed with every Kafka transaction (see [`crate::checkpoint`]).
pub fn progress(topic: &str, slot: &str, progress: &Progress) -> OutgoingRecord {
    OutgoingRecord {
        topic: topic.to_string(),
        key: Some(slot.as_bytes().to_vec()),
        payload: Some(progress.to_value()),
        headers: Vec::new(),
    }
}

/// Header value of an origin.
pub fn origin_name(origin: Origin) -> &'static str {
    match origin {
        Origin::Stream => "stream",
        Origin::Snapshot => "snapshot",
        Origin::Reconciliation => "reconciliation",
    }
}

/// The key of a row as text: key columns' values joined by `,` as the ACL does (from the new image, else the
/// old one).
pub fn row_key(change: &RowChange, key_columns: &[String]) -> String {
    let cells = if change.new.is_empty() {
        &change.old
    } else {
        &change.new
    };
    key_columns
        .iter()
        .filter_map(|k| change.columns.iter().position(|c| c == k))
        .map(|i| match cells.get(i) {
            Some(Cell::Text(t)) => t.as_str(),
            _ => "",
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use acl::{OldImage, Op};
    use std::sync::Arc;

    fn change() -> RowChange {
        RowChange {
            schema: "public".into(),
            table: "ord_ln".into(),
            op: Op::Update,
            columns: Arc::from(vec![
                "ord_no".to_string(),
                "ln_no".to_string(),
                "sku_desc".to_string(),
            ]),
            new: vec![
                Cell::Text("7".into()),
                Cell::Text("2".into()),
                Cell::Unchanged,
            ],
            old: vec![],
            old_image: OldImage::None,
            position: SourcePosition {
                commit_lsn: 0x1_0000_0002,
                xid: 9,
                seq: 3,
            },
            commit_ts_micros: 5,
            origin: Origin::Stream,
        }
    }

    /// A dead letter says why, where and which row in its headers.
    #[test]
    fn dead_letter_headers_name_reason_table_key_and_lsn() {
        let c = change();
        let rej = Rejection {
            reason: "bad_number",
            table: "public.ord_ln".into(),
            key: row_key(&c, &["ord_no".into(), "ln_no".into()]),
            column: Some("ord_qty".into()),
            error: "not a number".into(),
            position: c.position,
        };
        let r = dead_letter("dlq", &rej, row_body(&c));
        let h = |k: &str| {
            r.headers
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| String::from_utf8_lossy(v).to_string())
        };
        assert_eq!(h(HEADER_REASON).as_deref(), Some("bad_number"));
        assert_eq!(h(HEADER_TABLE).as_deref(), Some("public.ord_ln"));
        assert_eq!(h(HEADER_KEY).as_deref(), Some("7,2"));
        assert_eq!(h(HEADER_LSN).as_deref(), Some("1/2"));
        assert_eq!(h(HEADER_COLUMN).as_deref(), Some("ord_qty"));
        let body: serde_json::Value =
            serde_json::from_slice(r.payload.as_deref().unwrap_or_default()).expect("json");
        assert_eq!(body["new"]["sku_desc"]["unchanged"], true);
        assert_eq!(body["op"], "update");
    }

    /// The progress record is keyed by slot and carries the checkpoint.
    #[test]
    fn progress_record_is_keyed_by_slot() {
        let p = Progress {
            checkpoint: crate::checkpoint::Checkpoint {
                commit_lsn: 1,
                end_lsn: 2,
            },
            tables: Vec::new(),
        };
        let r = progress("p", "slot_a", &p);
        assert_eq!(r.key.as_deref(), Some(&b"slot_a"[..]));
        assert_eq!(r.payload.as_deref().and_then(Progress::from_value), Some(p));
    }
}
