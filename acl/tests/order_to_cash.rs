//! Golden tests of the reference mapping: fixture rows of the legacy schema → domain events.

use acl::{Cell, OldImage, Op};
use contracts::events::*;
use contracts::{Money, Payload, SubjectStrategy, TimestampMicros, event_id};
use rust_decimal::Decimal;

use crate::support::*;

fn gbp(cents: i64) -> Money {
    Money::new(Decimal::new(cents, 2), "GBP").expect("money")
}

/// Every mapped column exists in schema.sql, and tables that need old values have REPLICA IDENTITY FULL.
#[test]
fn mapping_agrees_with_the_legacy_schema() {
    for spec in MAPPER.tables() {
        let legacy = LEGACY
            .get(&spec.table)
            .unwrap_or_else(|| panic!("{} not in schema.sql", spec.table));
        for column in &spec.mapped_columns {
            assert!(
                legacy.columns.contains(column),
                "{}.{column} is mapped but not in schema.sql",
                spec.table
            );
        }
        if spec.needs_full_identity {
            assert!(
                legacy.replica_identity_full,
                "{} needs REPLICA IDENTITY FULL",
                spec.table
            );
        }
    }
    let outbox: Vec<_> = MAPPER
        .tables()
        .iter()
        .filter(|t| t.is_outbox)
        .map(|t| t.table.as_str())
        .collect();
    assert_eq!(outbox, ["evt_outbox"]);
    assert_eq!(MAPPER.message_prefix(), Some("fig.outbox"));
    let ord_ln = MAPPER
        .tables()
        .iter()
        .find(|t| t.table == "ord_ln")
        .expect("ord_ln");
    assert!(
        !ord_ln.needs_full_identity,
        "a key-only delete image is enough for order lines"
    );
}

/// A new order row becomes OrderSubmitted with business names, decoded codes and exact money.
#[test]
fn order_insert_submits_the_order() {
    let events = MAPPER.map(&insert("ord_hdr", ORDER)).expect("maps");
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.envelope.event_type, "OrderSubmitted");
    assert_eq!(e.envelope.schema_version, 2);
    assert_eq!((e.aggregate_type(), e.aggregate_id()), ("order", "100001"));
    assert_eq!(
        e.envelope.event_id,
        event_id(&position(4), "OrderSubmitted", "100001")
    );
    assert_eq!(e.envelope.occurred_at_micros, COMMIT_TS);
    assert_eq!(
        e.payload,
        Payload::OrderSubmitted(OrderSubmitted {
            order_id: "100001".into(),
            customer_id: "C-000042".into(),
            customer_name: "Ada Lovelace".into(),
            customer_email: Some("ada@example.com".into()),
            channel: "web".into(),
            total: gbp(12_950),
            submitted_at: TimestampMicros(1_796_317_700_123_456),
            ship_to_country: Some("GB".into()),
        })
    );
}

/// Old status ≠ new status and new = 'S' ⇒ OrderSecured, and it encodes with the order writer.
#[test]
fn status_transition_to_secured() {
    let events = MAPPER.map(&status_change("A", "S")).expect("maps");
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].payload,
        Payload::OrderSecured(OrderSecured {
            order_id: "100001".into(),
            total: gbp(12_950),
            secured_at: TimestampMicros(1_796_317_740_000_000)
        })
    );
    let mut datum = Vec::new();
    events[0]
        .encode(SubjectStrategy::TopicName, &mut datum)
        .expect("encodes");
    let writer = events[0].writer(SubjectStrategy::TopicName);
    assert_eq!(writer.record_name, "fig.events.OrderEvent");
    assert_eq!(
        contracts::DomainEvent::decode(writer.schema, &datum).expect("decodes"),
        events[0]
    );
}

/// Each legacy status code transition yields its own honest domain event.
#[test]
fn every_status_transition_has_its_event() {
    let cases = [
        ("N", "A", "OrderAccepted"),
        ("A", "P", "OrderPaymentPending"),
        ("P", "S", "OrderSecured"),
        ("S", "C", "OrderConfirmed"),
        ("P", "X", "OrderCancelled"),
        ("S", "E", "OrderException"),
    ];
    for (from, to, event) in cases {
        let events = MAPPER.map(&status_change(from, to)).expect("maps");
        let types: Vec<&str> = events.iter().map(|e| e.event_type()).collect();
        assert_eq!(types, [event], "{from} → {to}");
    }
    let events = MAPPER.map(&status_change("P", "X")).expect("maps");
    let Payload::OrderCancelled(cancelled) = &events[0].payload else {
        panic!("cancelled")
    };
    assert_eq!(cancelled.previous_status, "pending_payment");
    assert_eq!(cancelled.reason, None);
}

/// An update that touches no mapped column, or keeps the status, yields no event.
#[test]
fn updates_without_a_transition_yield_nothing() {
    let new = with("ord_hdr", ORDER, &[("upd_usr_id", "NIGHTLY")]);
    assert!(
        MAPPER
            .map(&update_full("ord_hdr", ORDER, &new))
            .expect("maps")
            .is_empty()
    );
    assert!(
        MAPPER
            .map(&status_change("S", "S"))
            .expect("maps")
            .is_empty()
    );
}

/// A code missing from its code table is an error naming table, key, column and reason.
#[test]
fn unmapped_status_code_is_an_error() {
    let new = with("ord_hdr", ORDER, &[("ord_stat_cd", "Q")]);
    let err = MAPPER
        .map(&update_full("ord_hdr", ORDER, &new))
        .expect_err("Q is no status");
    assert_eq!(
        (err.table(), err.key(), err.column(), err.reason_code()),
        (
            "public.ord_hdr",
            "100001",
            Some("ord_stat_cd"),
            "unmapped_code"
        )
    );
    assert!(err.to_string().contains("order_status"), "{err}");
    assert!(
        !err.to_string().contains("\"Q\""),
        "row values stay out of messages: {err}"
    );
}

/// A mapped column missing from the relation is an error saying so; unknown extra columns are ignored.
#[test]
fn missing_mapped_column_errors_and_extra_columns_are_ignored() {
    let mut row = insert("ord_hdr", ORDER);
    let keep: Vec<usize> = (0..row.columns.len())
        .filter(|&i| row.columns[i] != "curr_cd")
        .collect();
    row.columns = keep
        .iter()
        .map(|&i| row.columns[i].clone())
        .collect::<Vec<_>>()
        .into();
    row.new = keep.iter().map(|&i| row.new[i].clone()).collect();
    let err = MAPPER.map(&row).expect_err("curr_cd dropped");
    assert_eq!(
        (err.column(), err.reason_code()),
        (Some("curr_cd"), "missing_column")
    );
    assert!(err.to_string().contains("dropped"), "{err}");

    let mut row = insert("ord_hdr", ORDER);
    let mut columns: Vec<String> = row.columns.to_vec();
    columns.push("loyalty_tier_cd".into());
    row.columns = columns.into();
    row.new.push(Cell::Text("G".into()));
    assert_eq!(MAPPER.map(&row).expect("extra column ignored").len(), 1);
}

/// A NULL in a required event field is an error naming the column; NULL in an optional one is None.
#[test]
fn nulls_follow_the_contract() {
    let events = MAPPER
        .map(&insert(
            "ord_hdr",
            &with("ord_hdr", ORDER, &[])
                .into_iter()
                .filter(|(c, _)| *c != "cust_email")
                .collect::<Vec<_>>(),
        ))
        .expect("maps");
    let Payload::OrderSubmitted(p) = &events[0].payload else {
        panic!("submitted")
    };
    assert_eq!(p.customer_email, None);

    let row = insert(
        "ord_hdr",
        &ORDER
            .iter()
            .copied()
            .filter(|(c, _)| *c != "cust_nm")
            .collect::<Vec<_>>(),
    );
    let err = MAPPER.map(&row).expect_err("name required");
    assert_eq!(
        (err.column(), err.reason_code()),
        (Some("cust_nm"), "null_value")
    );
}

/// Bad numbers and timestamps are errors with their own reason codes.
#[test]
fn bad_values_are_named() {
    let err = MAPPER
        .map(&insert(
            "ord_hdr",
            &with("ord_hdr", ORDER, &[("crt_ts", "yesterday")]),
        ))
        .expect_err("bad ts");
    assert_eq!(
        (err.column(), err.reason_code()),
        (Some("crt_ts"), "bad_timestamp")
    );
    let err = MAPPER
        .map(&insert(
            "ord_hdr",
            &with("ord_hdr", ORDER, &[("ord_tot_amt", "12.34567")]),
        ))
        .expect_err("sub-cent");
    assert_eq!(
        (err.column(), err.reason_code()),
        (Some("ord_tot_amt"), "bad_money")
    );
    let line = [
        ("ord_no", "100001"),
        ("ln_no", "1"),
        ("sku_cd", "SKU-1"),
        ("ord_qty", "3000000000"),
        ("unit_prc_amt", "1.00"),
        ("curr_cd", "GBP"),
    ];
    let err = MAPPER
        .map(&insert("ord_ln", &line))
        .expect_err("qty overflows int");
    assert_eq!(
        (err.key(), err.column(), err.reason_code()),
        ("100001,1", Some("ord_qty"), "field_type")
    );
}

/// Order lines: inserts add, key-only deletes (REPLICA IDENTITY DEFAULT) remove.
#[test]
fn order_lines_add_and_remove() {
    let line = [
        ("ord_no", "100001"),
        ("ln_no", "2"),
        ("sku_cd", "SKU-7"),
        ("ord_qty", "3"),
        ("unit_prc_amt", "9.99"),
        ("curr_cd", "GBP"),
    ];
    let events = MAPPER.map(&insert("ord_ln", &line)).expect("maps");
    assert_eq!(
        events[0].payload,
        Payload::OrderLineAdded(OrderLineAdded {
            order_id: "100001".into(),
            line_number: 2,
            sku: "SKU-7".into(),
            quantity: 3,
            unit_price: gbp(999)
        })
    );
    let delete = change(
        "ord_ln",
        Op::Delete,
        Vec::new(),
        tuple("ord_ln", &[("ord_no", "100001"), ("ln_no", "2")]),
        OldImage::Key,
    );
    let events = MAPPER.map(&delete).expect("maps");
    assert_eq!(
        events[0].payload,
        Payload::OrderLineRemoved(OrderLineRemoved {
            order_id: "100001".into(),
            line_number: 2
        })
    );
    assert_eq!(events[0].aggregate_id(), "100001");
    // Updates of lines are not mapped: no event, no need for old values.
    let update = change(
        "ord_ln",
        Op::Update,
        tuple("ord_ln", &line),
        Vec::new(),
        OldImage::None,
    );
    assert!(MAPPER.map(&update).expect("maps").is_empty());
}
