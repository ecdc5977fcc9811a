//! Builds the writer schemas out of the schema files: an event's own record (envelope + payload)
//! and an aggregate's record (envelope + union of the aggregate's payload records).
//!
//! A named type used by several payloads (e.g. `fig.types.Money`) must be defined once per
//! schema and referenced by name afterwards; `dedup_named_types` does that, and refuses two
//! different definitions under one name.

use std::collections::BTreeMap;

use serde_json::{Value as Json, json};

/// Namespace of the writer records (event, aggregate, envelope).
pub const EVENTS_NAMESPACE: &str = "fig.events";

/// The JSON of an event's own writer record `fig.events.<EventType>`.
pub fn event_record(event_type: &str, envelope: &Json, payload: &Json) -> Result<Json, String> {
    let mut record = json!({
        "type": "record", "name": event_type, "namespace": EVENTS_NAMESPACE,
        "doc": format!("The {event_type} domain event: envelope and payload."),
        "fields": [
            {"name": "envelope", "type": envelope},
            {"name": "payload", "type": payload},
        ],
    });
    dedup_named_types(&mut record)?;
    Ok(record)
}

/// The JSON of an aggregate's writer record, e.g. `fig.events.OrderEvent`.
pub fn aggregate_record(
    record_name: &str,
    envelope: &Json,
    payloads: &[&Json],
) -> Result<Json, String> {
    let mut record = json!({
        "type": "record", "name": record_name, "namespace": EVENTS_NAMESPACE,
        "doc": "Every domain event of one aggregate: envelope and the payload of one of its event types.",
        "fields": [
            {"name": "envelope", "type": envelope},
            {"name": "payload", "type": payloads},
        ],
    });
    dedup_named_types(&mut record)?;
    Ok(record)
}

/// The writer record name of an aggregate type: "order" → "OrderEvent".
pub fn aggregate_record_name(aggregate_type: &str) -> String {
    let mut name = String::with_capacity(aggregate_type.len() + 5);
    let mut upper = true;
    for c in aggregate_type.chars() {
        if c == '_' || c == '-' || c == '.' {
            upper = true;
        } else if upper {
            name.extend(c.to_uppercase());
            upper = false;
        } else {
            name.push(c);
        }
    }
    name.push_str("Event");
    name
}

/// Replaces every repeated definition of a named type by a reference to its full name.
pub fn dedup_named_types(schema: &mut Json) -> Result<(), String> {
    let mut seen = BTreeMap::new();
    walk(schema, "", &mut seen)
}

fn walk(node: &mut Json, namespace: &str, seen: &mut BTreeMap<String, Json>) -> Result<(), String> {
    match node {
        Json::Array(members) => members
            .iter_mut()
            .try_for_each(|m| walk(m, namespace, seen)),
        Json::Object(obj) => {
            let kind = obj.get("type").and_then(Json::as_str).unwrap_or_default();
            if matches!(kind, "record" | "enum" | "fixed") {
                let name = obj
                    .get("name")
                    .and_then(Json::as_str)
                    .ok_or("named type without a name")?;
                let own_ns = obj.get("namespace").and_then(Json::as_str);
                let fullname = match (name.contains('.'), own_ns) {
                    (true, _) => name.to_owned(),
                    (false, Some(ns)) if !ns.is_empty() => format!("{ns}.{name}"),
                    (false, _) if !namespace.is_empty() => format!("{namespace}.{name}"),
                    _ => name.to_owned(),
                };
                if let Some(first) = seen.get(&fullname) {
                    if first != node {
                        return Err(format!(
                            "named type `{fullname}` is defined twice, differently"
                        ));
                    }
                    *node = Json::String(fullname);
                    return Ok(());
                }
                seen.insert(fullname.clone(), node.clone());
                let inner_ns = fullname
                    .rsplit_once('.')
                    .map(|(ns, _)| ns.to_owned())
                    .unwrap_or_default();
                if let Some(Json::Array(fields)) = node.get_mut("fields") {
                    for field in fields {
                        if let Some(t) = field.get_mut("type") {
                            walk(t, &inner_ns, seen)?;
                        }
                    }
                }
                return Ok(());
            }
            for key in ["type", "items", "values"] {
                if let Some(child) = obj.get_mut(key).filter(|c| c.is_object() || c.is_array()) {
                    walk(child, namespace, seen)?;
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A type used twice is defined once and then referenced; a conflicting definition is refused.
    #[test]
    fn repeated_named_types_become_references() {
        let money = json!({"type": "record", "name": "Money", "namespace": "t", "fields": []});
        let mut schema = json!(["null", money.clone(), {"type": "array", "items": money.clone()}]);
        dedup_named_types(&mut schema).expect("same definition twice is fine");
        assert_eq!(
            schema,
            json!(["null", money, {"type": "array", "items": "t.Money"}])
        );

        let other = json!({"type": "record", "name": "Money", "namespace": "t", "fields": [{"name": "x", "type": "int"}]});
        let mut conflicting =
            json!([{"type": "record", "name": "Money", "namespace": "t", "fields": []}, other]);
        let err = dedup_named_types(&mut conflicting).expect_err("conflict");
        assert!(err.contains("t.Money"), "{err}");
    }

    /// Aggregate types turn into record names consumers can read.
    #[test]
    fn aggregate_record_names() {
        assert_eq!(aggregate_record_name("order"), "OrderEvent");
        assert_eq!(
            aggregate_record_name("stock_reservation"),
            "StockReservationEvent"
        );
    }
}
