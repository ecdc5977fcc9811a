//! Outbox rows and logical messages become OutboxMessage events, passed through as they are.

use acl::{OldImage, Op};
use contracts::{Payload, SourcePosition, event_id};

use crate::support::*;

const ROW: &[(&str, &str)] = &[
    ("id", "0B7A3C1E-8F2D-4A6B-9C3E-1D2F3A4B5C6D"),
    ("aggregate_type", "shipment"),
    ("aggregate_id", "SHP-1"),
    ("event_type", "ShipmentBooked"),
    ("payload", r#"{"carrier": "DHL", "parcels": 2}"#),
    ("headers", r#"{"correlation_id": "corr-9", "attempt": 1}"#),
    ("created_at", "2026-12-03 17:08:20.123456+00"),
];

/// An outbox insert is one OutboxMessage whose event id is the row id, headers into the envelope.
#[test]
fn outbox_insert_passes_the_message_through() {
    let events = MAPPER.map(&insert("evt_outbox", ROW)).expect("maps");
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.envelope.event_id, "0b7a3c1e-8f2d-4a6b-9c3e-1d2f3a4b5c6d");
    assert_eq!(
        (e.event_type(), e.aggregate_type(), e.aggregate_id()),
        ("OutboxMessage", "shipment", "SHP-1")
    );
    assert_eq!(e.envelope.correlation_id.as_deref(), Some("corr-9"));
    let Payload::OutboxMessage(m) = &e.payload else {
        panic!("outbox")
    };
    assert_eq!(m.message_type, "ShipmentBooked");
    assert_eq!(m.payload_json, r#"{"carrier": "DHL", "parcels": 2}"#);
    assert_eq!(m.headers.get("attempt").map(String::as_str), Some("1"));
}

/// Updates and deletes of outbox rows yield nothing (the bridge warns); bad rows are errors.
#[test]
fn outbox_updates_deletes_and_bad_rows() {
    let update = change(
        "evt_outbox",
        Op::Update,
        tuple("evt_outbox", ROW),
        Vec::new(),
        OldImage::None,
    );
    assert!(MAPPER.map(&update).expect("maps").is_empty());
    let delete = change(
        "evt_outbox",
        Op::Delete,
        Vec::new(),
        tuple("evt_outbox", &ROW[..1]),
        OldImage::Key,
    );
    assert!(MAPPER.map(&delete).expect("maps").is_empty());

    let bad = with("evt_outbox", ROW, &[("payload", "{not json")]);
    let err = MAPPER
        .map(&insert("evt_outbox", &bad))
        .expect_err("bad payload");
    assert_eq!(
        (err.column(), err.reason_code()),
        (Some("payload"), "bad_outbox")
    );
    let bad = with("evt_outbox", ROW, &[("headers", "[1]")]);
    assert_eq!(
        MAPPER
            .map(&insert("evt_outbox", &bad))
            .expect_err("bad headers")
            .column(),
        Some("headers")
    );

    let numeric_id = with("evt_outbox", ROW, &[("id", "42")]);
    let a = MAPPER
        .map(&insert("evt_outbox", &numeric_id))
        .expect("maps");
    assert_eq!(
        uuid_version(&a[0].envelope.event_id),
        Some(5),
        "non-UUID ids become deterministic UUIDs"
    );
    assert_eq!(
        a,
        MAPPER
            .map(&insert("evt_outbox", &numeric_id))
            .expect("maps")
    );
}

fn uuid_version(text: &str) -> Option<usize> {
    let parts: Vec<&str> = text.split('-').collect();
    (parts.len() == 5)
        .then(|| {
            parts[2]
                .chars()
                .next()
                .and_then(|c| c.to_digit(16))
                .map(|d| d as usize)
        })
        .flatten()
}

/// A logical message with the mapping's prefix becomes an OutboxMessage with a deterministic id.
#[test]
fn logical_message_outbox() {
    let pos = SourcePosition {
        commit_lsn: 99,
        xid: 5,
        seq: 0,
    };
    let content = br#"{"aggregate_type":"order","aggregate_id":100001,"event_type":"OrderNoteAdded","payload":{"note":"x"},"headers":{"causation_id":"cmd-1"}}"#;
    let events = MAPPER
        .map_message("fig.outbox", content, pos, COMMIT_TS)
        .expect("maps");
    let e = &events[0];
    assert_eq!(
        e.envelope.event_id,
        event_id(&pos, "OrderNoteAdded", "100001")
    );
    assert_eq!((e.aggregate_type(), e.aggregate_id()), ("order", "100001"));
    assert_eq!(e.envelope.causation_id.as_deref(), Some("cmd-1"));
    let Payload::OutboxMessage(m) = &e.payload else {
        panic!("outbox")
    };
    assert_eq!(m.payload_json, r#"{"note":"x"}"#);

    let err = MAPPER
        .map_message("other", content, pos, COMMIT_TS)
        .expect_err("prefix");
    assert_eq!(err.reason_code(), "unknown_prefix");
    let err = MAPPER
        .map_message("fig.outbox", b"{\"aggregate_type\":1}", pos, COMMIT_TS)
        .expect_err("shape");
    assert_eq!(
        (err.table(), err.reason_code()),
        ("message:fig.outbox", "bad_outbox")
    );
}
