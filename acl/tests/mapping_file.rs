//! Mapping-file errors name the key; non-declarative rules plug in beside the declarative ones.

use acl::{ConfigError, DomainEvent, MapError, MapReason, Mapper, RowView, Rule};
use contracts::events::OrderException;
use contracts::{FieldValue, Payload, TimestampMicros};

use crate::support::*;

fn invalid(text: &str) -> (String, String) {
    match Mapper::from_toml(text) {
        Err(ConfigError::Invalid { key, reason }) => (key, reason),
        other => panic!("expected an invalid-key error, got {other:?}"),
    }
}

const BASE: &str = r#"
[code_tables.order_status]
S = "secured"
[[table]]
name = "ord_hdr"
aggregate = "order"
key = ["ord_no"]
aggregate_id = "order_id"
[table.fields]
order_id = { column = "ord_no" }
status = { column = "ord_stat_cd", codes = "order_status" }
total = { money = "ord_tot_amt", currency = "curr_cd" }
changed_at = { column = "upd_ts", type = "timestamp" }
[[table.events]]
on = "update"
event = "OrderSecured"
when = [{ field = "status", changed = true, equals = "secured" }]
fields = { secured_at = "changed_at" }
"#;

/// The base file is valid; each broken variant names the offending key.
#[test]
fn errors_name_the_key() {
    assert!(Mapper::from_toml(BASE).is_ok());
    let cases = [
        (
            BASE.replace("codes = \"order_status\"", "codes = \"status\""),
            "table[ord_hdr].fields.status.codes",
        ),
        (
            BASE.replace("event = \"OrderSecured\"", "event = \"OrderSecurd\""),
            "table[ord_hdr].events[0].event",
        ),
        (
            BASE.replace("event = \"OrderSecured\"", "event = \"PaymentCaptured\""),
            "table[ord_hdr].events[0].event",
        ),
        (
            BASE.replace("field = \"status\"", "field = \"stat\""),
            "table[ord_hdr].events[0].when[0].field",
        ),
        (
            BASE.replace("secured_at = \"changed_at\"", "secured_at = \"total\""),
            "table[ord_hdr].events[0].fields.secured_at",
        ),
        (
            BASE.replace("fields = { secured_at = \"changed_at\" }", ""),
            "table[ord_hdr].events[0].fields.secured_at",
        ),
        (
            BASE.replace("on = \"update\"", "on = \"insert\""),
            "table[ord_hdr].events[0].when[0].changed",
        ),
        (
            BASE.replace("aggregate_id = \"order_id\"", "aggregate_id = \"id\""),
            "table[ord_hdr].aggregate_id",
        ),
        (
            BASE.replace(", currency = \"curr_cd\"", ""),
            "table[ord_hdr].fields.total.currency",
        ),
    ];
    for (text, key) in cases {
        assert_eq!(invalid(&text).0, key);
    }
}

/// Unknown keys are refused by the parser, which says which key and where.
#[test]
fn unknown_keys_are_refused() {
    let err = Mapper::from_toml(&BASE.replace(
        "aggregate = \"order\"",
        "aggregate = \"order\"\nagregate_typ = 1",
    ))
    .expect_err("typo");
    let text = format!(
        "{err}: {}",
        std::error::Error::source(&err)
            .map(ToString::to_string)
            .unwrap_or_default()
    );
    assert!(text.contains("agregate_typ"), "{text}");
    assert!(Mapper::load(std::path::Path::new("/nonexistent/mapping.toml")).is_err());
}

/// A hand-written rule: a cancelled high-value order also raises an exception for review.
struct HighValueCancellation;

impl Rule for HighValueCancellation {
    fn name(&self) -> &str {
        "high_value_cancellation"
    }

    fn apply(&self, row: &RowView<'_>, events: &mut Vec<DomainEvent>) -> Result<(), MapError> {
        if !events.iter().any(|e| e.event_type() == "OrderCancelled") {
            return Ok(());
        }
        let FieldValue::Money(total) = row.value("total")? else {
            return Err(row.error(Some("ord_tot_amt"), MapReason::BadMoney { source: None }));
        };
        if total.amount() < rust_decimal::Decimal::new(100, 0) {
            return Ok(());
        }
        let FieldValue::Text(order_id) = row.value("order_id")? else {
            return Ok(());
        };
        events.push(row.event(Payload::OrderException(OrderException {
            order_id,
            previous_status: "cancelled".into(),
            reason: Some("high-value cancellation: review refund".into()),
            raised_at: TimestampMicros(row.change().commit_ts_micros),
        }))?);
        Ok(())
    }
}

/// Non-declarative rules run after the declarative ones and see converted domain fields.
#[test]
fn custom_rules_extend_the_mapping() {
    let mapper = Mapper::from_toml(MAPPING)
        .and_then(|m| m.with_rule("public", "ord_hdr", Box::new(HighValueCancellation)))
        .expect("builds");
    let types: Vec<String> = mapper
        .map(&status_change("P", "X"))
        .expect("maps")
        .iter()
        .map(|e| e.event_type().to_owned())
        .collect();
    assert_eq!(types, ["OrderCancelled", "OrderException"]);
    assert_eq!(mapper.map(&status_change("A", "S")).expect("maps").len(), 1);
    assert!(
        Mapper::from_toml(MAPPING)
            .and_then(|m| m.with_rule("public", "nope", Box::new(HighValueCancellation)))
            .is_err()
    );
}
