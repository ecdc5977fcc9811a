//! Contract tests: the embedded schemas load, match the Rust types, pass the gate, and the
//! hand-written encoder writes exactly what apache-avro writes.

use apache_avro::types::Value;
use apache_avro::{Schema, to_avro_datum};

use super::*;
use crate::{DomainEvent, Envelope, Origin, Payload, SourcePosition, SubjectStrategy, event_id};

fn envelope_for(kind: EventKind, aggregate_type: &str) -> Envelope {
    let source = SourcePosition {
        commit_lsn: 0x0000_0016_b374_d848,
        xid: 771,
        seq: 2,
    };
    Envelope {
        event_id: event_id(&source, kind.name(), "100001"),
        event_type: kind.name().to_owned(),
        schema_version: kind.latest_version(),
        occurred_at_micros: 1_796_300_000_000_001,
        aggregate_type: aggregate_type.to_owned(),
        aggregate_id: "100001".to_owned(),
        source,
        origin: Origin::Snapshot,
        correlation_id: Some("corr-1".to_owned()),
        causation_id: None,
    }
}

fn sample_event(kind: EventKind) -> DomainEvent {
    let aggregate = kind.aggregate_type().unwrap_or("shipment");
    DomainEvent {
        envelope: envelope_for(kind, aggregate),
        payload: Payload::sample(kind),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every embedded schema file parses, and the catalog names what it holds.
#[test]
fn embedded_catalog_loads() {
    let catalog = try_catalog().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        catalog.schemas().len() > EventKind::ALL.len(),
        "at least one event has a v2"
    );
    assert_eq!(catalog.latest("OrderSubmitted").map(|s| s.version), Some(2));
    assert_eq!(catalog.latest("OrderSecured").map(|s| s.version), Some(1));
    assert!(catalog.latest("NoSuchEvent").is_none());
}

/// A malformed schema file fails the build of the catalog with the file's name in the message.
#[test]
fn malformed_schema_file_is_named() {
    for (bad_json, why) in [
        ("{\"type\": \"record\", \"name\": ", "not JSON"),
        ("{\"type\": \"recrod\"}", "not an Avro schema"),
    ] {
        let mut files: Vec<SchemaFile> = SCHEMA_FILES.to_vec();
        let i = files
            .iter()
            .position(|f| f.path == "OrderSecured/v1.avsc")
            .expect("file exists");
        files[i].json = bad_json;
        let err = Catalog::build(&files).expect_err("malformed file must fail");
        assert!(
            err.to_string()
                .contains("contracts/schemas/OrderSecured/v1.avsc"),
            "{err}"
        );
        assert!(err.to_string().contains(why), "{err}");
    }
}

/// A latest schema whose fields differ from the Rust type is refused, naming both.
#[test]
fn schema_and_rust_type_must_agree() {
    let mut files: Vec<SchemaFile> = SCHEMA_FILES.to_vec();
    let v2 = r#"{"type":"record","name":"OrderSecured","namespace":"fig.payload","fields":[
        {"name":"order_id","type":"string"}]}"#;
    files.push(SchemaFile {
        path: "OrderSecured/v2.avsc",
        json: v2,
    });
    let err = Catalog::build(&files)
        .expect_err("field mismatch must fail")
        .to_string();
    assert!(
        err.contains("OrderSecured/v2.avsc") && err.contains("secured_at"),
        "{err}"
    );
}

/// Versions must run from v1 without gaps, and folders must be known event types.
#[test]
fn version_gaps_and_unknown_folders_are_refused() {
    let mut files: Vec<SchemaFile> = SCHEMA_FILES.to_vec();
    let json = files
        .iter()
        .find(|f| f.path == "OrderSecured/v1.avsc")
        .map(|f| f.json)
        .unwrap_or_default();
    files.push(SchemaFile {
        path: "OrderSecured/v3.avsc",
        json,
    });
    let err = Catalog::build(&files).expect_err("gap").to_string();
    assert!(
        err.contains("OrderSecured/v3.avsc") && err.contains("expected v2"),
        "{err}"
    );

    let mut files: Vec<SchemaFile> = SCHEMA_FILES.to_vec();
    files.push(SchemaFile {
        path: "OrderShipped/v1.avsc",
        json,
    });
    assert!(
        Catalog::build(&files)
            .expect_err("unknown")
            .to_string()
            .contains("OrderShipped")
    );
}

/// CI gate: every vN of every event reads every earlier version, also inside the writer records.
#[test]
fn compatibility_gate_backward_transitive() {
    if let Err(failures) = check_backward_transitive() {
        let lines: Vec<String> = failures.iter().map(ToString::to_string).collect();
        panic!("incompatible contract versions:\n{}", lines.join("\n"));
    }
}

/// The gate fails a new version that old data cannot be read with, and says which one.
#[test]
fn compatibility_gate_catches_a_breaking_version() {
    let mut files: Vec<SchemaFile> = SCHEMA_FILES.to_vec();
    let v2 = files
        .iter()
        .find(|f| f.path == "OrderSubmitted/v2.avsc")
        .map(|f| f.json)
        .unwrap_or_default();
    // Same field names as the Rust type, but the new field lost its default: v1 data has no value.
    let v3: &'static str = Box::leak(
        v2.replacen(
            "\"null\",\n        \"string\"\n      ],\n      \"doc\": \"ISO",
            "\"string\",\n        \"null\"\n      ],\n      \"doc\": \"ISO",
            1,
        )
        .replace("\"default\": null\n    }\n  ]", "\"x\": 1\n    }\n  ]")
        .into_boxed_str(),
    );
    assert_ne!(v3, v2, "test fixture must change the schema");
    files.push(SchemaFile {
        path: "OrderSubmitted/v3.avsc",
        json: v3,
    });
    let catalog = Catalog::build(&files).unwrap_or_else(|e| panic!("{e}"));
    let failures = catalog
        .check_backward_transitive()
        .expect_err("v3 breaks v1 readers");
    let text: Vec<String> = failures.iter().map(ToString::to_string).collect();
    assert!(
        text.iter()
            .any(|t| t.contains("OrderSubmitted v3 reading v1")),
        "{text:?}"
    );
    assert!(
        text.iter().any(|t| t.contains("ship_to_country")),
        "{text:?}"
    );
}

/// Released schema files are never edited: each file's content hash is pinned in RELEASED.
#[test]
fn released_schemas_are_never_edited() {
    let released = include_str!("../../schemas/RELEASED");
    let mut problems = Vec::new();
    for file in SCHEMA_FILES {
        let text = file.json.replace('\r', "");
        let line = format!("{} {:016x}", file.path, fnv1a(text.as_bytes()));
        match released
            .lines()
            .find(|l| l.split_whitespace().next() == Some(file.path))
        {
            Some(pinned) if pinned.trim() == line => {}
            Some(pinned) => problems.push(format!(
                "{} was edited after release (pinned `{pinned}`): add a new version instead",
                file.path
            )),
            None => problems.push(format!(
                "{} is not released yet: add `{line}` to contracts/schemas/RELEASED",
                file.path
            )),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// For every event and strategy the hand-written bytes equal apache-avro's, validate against
/// the writer schema, and decode back to the same event.
#[test]
fn every_event_round_trips_and_matches_apache_avro() {
    for &kind in EventKind::ALL {
        let event = sample_event(kind);
        for strategy in [SubjectStrategy::TopicName, SubjectStrategy::RecordName] {
            let writer = event.writer(strategy);
            let mut ours = Vec::new();
            event
                .encode(strategy, &mut ours)
                .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
            let reference =
                to_avro_datum(writer.schema, event.to_value(strategy)).unwrap_or_else(|e| {
                    panic!(
                        "{kind:?} {strategy:?} does not fit {}: {e}",
                        writer.record_name
                    )
                });
            assert_eq!(hex(&ours), hex(&reference), "{kind:?} {strategy:?}");
            let back = DomainEvent::decode(writer.schema, &ours)
                .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
            assert_eq!(back, event, "{kind:?} {strategy:?}");
        }
    }
}

/// Maps of several entries (outbox headers) come back whole, whatever their order on the wire.
#[test]
fn outbox_headers_round_trip() {
    let mut event = sample_event(EventKind::OutboxMessage);
    let headers = (0..5).map(|i| (format!("h{i}"), "v".repeat(i))).collect();
    event.payload = Payload::OutboxMessage(crate::events::OutboxMessage {
        message_type: "ShipmentBooked".into(),
        payload_json: r#"{"a":1}"#.into(),
        headers,
    });
    let mut datum = Vec::new();
    event
        .encode(SubjectStrategy::TopicName, &mut datum)
        .expect("encodes");
    let back = DomainEvent::decode(event.writer(SubjectStrategy::TopicName).schema, &datum)
        .expect("decodes");
    assert_eq!(back, event);
}

/// Golden bytes of an OrderSecured under the default strategy: any change to the layout breaks it.
#[test]
fn golden_bytes_order_secured() {
    let mut event = sample_event(EventKind::OrderSecured);
    event.payload = Payload::from_fields(
        EventKind::OrderSecured,
        [
            crate::FieldValue::Text("100001".into()),
            crate::FieldValue::Money(
                crate::Money::new(rust_decimal::Decimal::new(12_950, 2), "EUR").expect("money"),
            ),
            crate::FieldValue::Timestamp(1_796_300_000_000_000),
        ],
    )
    .expect("fields fit");
    let mut out = Vec::new();
    event
        .encode(SubjectStrategy::TopicName, &mut out)
        .expect("encodes");
    assert_eq!(
        event.writer(SubjectStrategy::TopicName).record_name,
        "fig.events.OrderEvent"
    );
    assert_eq!(hex(&out), GOLDEN_ORDER_SECURED);
}

/// envelope (id, type, version 1, time, "order", "100001", lsn/xid/seq, SNAPSHOT, "corr-1", null),
/// union branch 3 (OrderSecured), order_id, 8-byte amount 129.5000, "EUR", secured_at.
const GOLDEN_ORDER_SECURED: &str = "4837653766313936652d333933642d356662302d623865642d353162663736393862663639184f72646572536563757265640282e0c7f6b5eeb0060a6f726465720c31303030303190e1a6b7d605860c0402020c636f72722d3100060c31303030303110000000000013c2980645555280e0c7f6b5eeb006";

/// Data written with OrderSubmitted v1 decodes into today's type, the v2 field at its default.
#[test]
fn v1_data_decodes_with_v2_reader() {
    let catalog = catalog();
    let v1 = catalog.versions("OrderSubmitted").next().expect("v1");
    assert_eq!(v1.version, 1);
    let json =
        assembly::event_record("OrderSubmitted", &catalog.envelope, &v1.json).expect("assembles");
    let v1_writer = Schema::parse_str(&json.to_string()).expect("parses");
    let mut event = sample_event(EventKind::OrderSubmitted);
    let Value::Record(mut fields) = event.to_value(SubjectStrategy::RecordName) else {
        panic!("record")
    };
    if let Some((_, Value::Record(payload))) = fields.last_mut() {
        payload.retain(|(name, _)| name != "ship_to_country");
    }
    let datum = to_avro_datum(&v1_writer, Value::Record(fields)).expect("v1 datum");
    let decoded = DomainEvent::decode(&v1_writer, &datum).expect("decodes");
    let Payload::OrderSubmitted(p) = &mut event.payload else {
        panic!("kind")
    };
    p.ship_to_country = None;
    assert_eq!(decoded.payload, event.payload);
    assert_eq!(decoded.envelope, event.envelope);
}

/// The live-registry check accepts what we registered before and refuses a writer we cannot read.
#[test]
fn check_against_registered_schemas() {
    let writer = sample_event(EventKind::OrderSecured).writer(SubjectStrategy::TopicName);
    assert_eq!(
        check_against_registered(writer.schema_json, &writer),
        Ok(())
    );
    let newer =
        writer
            .schema_json
            .replacen("\"RECONCILIATION\"", "\"RECONCILIATION\",\"REPLAY\"", 1);
    assert_ne!(newer, writer.schema_json);
    let err = check_against_registered(&newer, &writer).expect_err("unknown enum symbol");
    assert!(err.what.contains("fig.events.OrderEvent"), "{err}");
    assert!(check_against_registered("{", &writer).is_err());
}

/// Subject names follow Confluent's three strategies.
#[test]
fn subject_strategies() {
    let record = "fig.events.OrderSecured";
    assert_eq!(
        SubjectStrategy::TopicName.subject("legacy.order", record),
        "legacy.order-value"
    );
    assert_eq!(
        SubjectStrategy::RecordName.subject("legacy.order", record),
        record
    );
    assert_eq!(
        SubjectStrategy::TopicRecordName.subject("legacy.order", record),
        "legacy.order-fig.events.OrderSecured"
    );
    assert_eq!(SubjectStrategy::default(), SubjectStrategy::TopicName);
}

/// Outbox messages of an aggregate we know share its topic's writer; unknown ones use the outbox writer.
#[test]
fn outbox_messages_follow_their_aggregate() {
    let mut event = sample_event(EventKind::OutboxMessage);
    event.envelope.aggregate_type = "order".into();
    assert_eq!(
        event.writer(SubjectStrategy::TopicName).record_name,
        "fig.events.OrderEvent"
    );
    event.envelope.aggregate_type = "shipment".into();
    assert_eq!(
        event.writer(SubjectStrategy::TopicName).record_name,
        "fig.events.OutboxEvent"
    );
    assert_eq!(
        event.writer(SubjectStrategy::RecordName).record_name,
        "fig.events.OutboxMessage"
    );
}

/// An envelope that contradicts its payload is refused instead of written.
#[test]
fn envelope_must_match_payload() {
    let mut event = sample_event(EventKind::OrderSecured);
    event.envelope.event_type = "OrderConfirmed".into();
    assert!(
        event
            .encode(SubjectStrategy::TopicName, &mut Vec::new())
            .is_err()
    );
    let mut event = sample_event(EventKind::OrderSecured);
    event.envelope.schema_version = 9;
    assert!(
        event
            .encode(SubjectStrategy::TopicName, &mut Vec::new())
            .is_err()
    );
}

/// Garbage and truncated datums are errors, never panics.
#[test]
fn bad_datums_are_errors() {
    let event = sample_event(EventKind::OrderSecured);
    let writer = event.writer(SubjectStrategy::TopicName);
    let mut datum = Vec::new();
    event
        .encode(SubjectStrategy::TopicName, &mut datum)
        .expect("encodes");
    for cut in 0..datum.len() {
        assert!(
            DomainEvent::decode(writer.schema, &datum[..cut]).is_err(),
            "cut at {cut}"
        );
    }
    let mut longer = datum.clone();
    longer.push(0);
    assert!(matches!(
        DomainEvent::decode(writer.schema, &longer),
        Err(crate::ContractError::TrailingBytes { .. })
    ));
    let not_ours =
        Schema::parse_str(r#"{"type":"record","name":"X","fields":[{"name":"a","type":"int"}]}"#)
            .expect("schema");
    assert!(matches!(
        DomainEvent::decode(&not_ours, &[2]),
        Err(crate::ContractError::UnknownWriter { .. })
    ));
}

proptest::proptest! {
    /// For any field values the hand-written encoder writes apache-avro's bytes, and they decode back.
    #[test]
    fn hand_encoder_equals_apache_avro_for_any_values(
        text in "\\PC{0,80}",
        email in proptest::option::of("\\PC{0,70}"),
        cents in -99_999_999_999_999_999i64..=99_999_999_999_999_999,
        micros in proptest::num::i64::ANY,
        lsn in proptest::num::u64::ANY,
        xid in proptest::num::u32::ANY,
    ) {
        let mut event = sample_event(EventKind::OrderSubmitted);
        event.envelope.source = SourcePosition { commit_lsn: lsn, xid, seq: xid / 2 };
        event.envelope.occurred_at_micros = micros;
        event.envelope.aggregate_id = text.clone();
        let amount = rust_decimal::Decimal::new(cents, 4);
        event.payload = Payload::OrderSubmitted(crate::events::OrderSubmitted {
            order_id: text.clone(),
            customer_id: text.repeat(2),
            customer_name: text,
            customer_email: email,
            channel: "web".into(),
            total: crate::Money::new(amount, "JPY").expect("in range"),
            submitted_at: crate::TimestampMicros(micros),
            ship_to_country: None,
        });
        for strategy in [SubjectStrategy::TopicName, SubjectStrategy::TopicRecordName] {
            let writer = event.writer(strategy);
            let mut ours = Vec::new();
            event.encode(strategy, &mut ours).expect("encodes");
            let reference = to_avro_datum(writer.schema, event.to_value(strategy)).expect("valid");
            proptest::prop_assert_eq!(&ours, &reference);
            proptest::prop_assert_eq!(&DomainEvent::decode(writer.schema, &ours).expect("decodes"), &event);
        }
    }
}
