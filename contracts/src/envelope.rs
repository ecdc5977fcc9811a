//! The envelope every domain event carries, and its deterministic event id.

use apache_avro::types::Value;

use crate::datum::{AvroField, write_bytes, write_long};

/// Where a change came from in the legacy WAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourcePosition {
    /// LSN of the commit record of the legacy transaction.
    pub commit_lsn: u64,
    /// Legacy transaction id.
    pub xid: u32,
    /// 0-based position of the row change in its transaction.
    pub seq: u32,
}

/// How the bridge came to see the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The replication stream.
    Stream,
    /// The initial snapshot of a table.
    Snapshot,
    /// A reconciliation run comparing legacy and new state.
    Reconciliation,
}

impl Origin {
    /// The symbols of the Avro enum `fig.events.Origin`, in schema order.
    pub const SYMBOLS: [&'static str; 3] = ["STREAM", "SNAPSHOT", "RECONCILIATION"];

    fn index(self) -> u32 {
        match self {
            Origin::Stream => 0,
            Origin::Snapshot => 1,
            Origin::Reconciliation => 2,
        }
    }

    fn from_symbol(symbol: &str) -> Option<Origin> {
        match symbol {
            "STREAM" => Some(Origin::Stream),
            "SNAPSHOT" => Some(Origin::Snapshot),
            "RECONCILIATION" => Some(Origin::Reconciliation),
            _ => None,
        }
    }
}

/// What every domain event carries besides its payload (schema `schemas/Envelope/v1.avsc`).
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// Deterministic UUID (v5) text, see [`event_id`].
    pub event_id: String,
    /// E.g. "OrderSecured".
    pub event_type: String,
    /// N of the `vN.avsc` the payload is written with.
    pub schema_version: u32,
    /// Legacy commit timestamp, µs since the Unix epoch.
    pub occurred_at_micros: i64,
    /// E.g. "order".
    pub aggregate_type: String,
    /// Business key, also the Kafka message key.
    pub aggregate_id: String,
    /// Where the change came from.
    pub source: SourcePosition,
    /// How the bridge came to see it.
    pub origin: Origin,
    /// Groups events of one business flow.
    pub correlation_id: Option<String>,
    /// The event or command that caused this one.
    pub causation_id: Option<String>,
}

/// Namespace of every event id: a random UUID chosen once for fig, fixed forever.
pub const EVENT_ID_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x6f1c_2a4e_93d5_5b7a_8e21_4c0f_d3a9_b6e8);

/// Deterministic id: the same source change (position + event type + aggregate) always yields
/// the same id.
///
/// UUID v5 in [`EVENT_ID_NAMESPACE`] of the bytes `commit_lsn` (8, big-endian) ‖ `xid` (4, BE) ‖
/// `seq` (4, BE) ‖ `event_type` ‖ `0x00` ‖ `aggregate_id`.
pub fn event_id(source: &SourcePosition, event_type: &str, aggregate_id: &str) -> String {
    let mut name = [0u8; 256];
    let len = 16 + event_type.len() + 1 + aggregate_id.len();
    let mut heap;
    let buf: &mut [u8] = if len <= name.len() {
        &mut name[..len]
    } else {
        heap = vec![0u8; len];
        &mut heap[..]
    };
    buf[..8].copy_from_slice(&source.commit_lsn.to_be_bytes());
    buf[8..12].copy_from_slice(&source.xid.to_be_bytes());
    buf[12..16].copy_from_slice(&source.seq.to_be_bytes());
    buf[16..16 + event_type.len()].copy_from_slice(event_type.as_bytes());
    buf[16 + event_type.len()] = 0;
    buf[17 + event_type.len()..].copy_from_slice(aggregate_id.as_bytes());
    let id = uuid::Uuid::new_v5(&EVENT_ID_NAMESPACE, buf);
    let mut text = uuid::Uuid::encode_buffer();
    id.hyphenated().encode_lower(&mut text).to_owned()
}

impl Envelope {
    /// Appends the envelope as the Avro datum of `fig.events.Envelope`.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        write_bytes(self.event_id.as_bytes(), out);
        write_bytes(self.event_type.as_bytes(), out);
        write_long(i64::from(self.schema_version), out);
        write_long(self.occurred_at_micros, out);
        write_bytes(self.aggregate_type.as_bytes(), out);
        write_bytes(self.aggregate_id.as_bytes(), out);
        write_long(self.source.commit_lsn as i64, out);
        write_long(i64::from(self.source.xid), out);
        write_long(i64::from(self.source.seq), out);
        write_long(i64::from(self.origin.index()), out);
        self.correlation_id.write(out);
        self.causation_id.write(out);
    }

    /// The envelope as an apache-avro value (tests and the slow path).
    pub(crate) fn to_value(&self) -> Value {
        Value::Record(vec![
            ("event_id".into(), Value::String(self.event_id.clone())),
            ("event_type".into(), Value::String(self.event_type.clone())),
            (
                "schema_version".into(),
                Value::Int(self.schema_version as i32),
            ),
            (
                "occurred_at".into(),
                Value::TimestampMicros(self.occurred_at_micros),
            ),
            (
                "aggregate_type".into(),
                Value::String(self.aggregate_type.clone()),
            ),
            (
                "aggregate_id".into(),
                Value::String(self.aggregate_id.clone()),
            ),
            (
                "source".into(),
                Value::Record(vec![
                    (
                        "commit_lsn".into(),
                        Value::Long(self.source.commit_lsn as i64),
                    ),
                    ("xid".into(), Value::Long(i64::from(self.source.xid))),
                    ("seq".into(), Value::Long(i64::from(self.source.seq))),
                ]),
            ),
            (
                "origin".into(),
                Value::Enum(
                    self.origin.index(),
                    Origin::SYMBOLS[self.origin.index() as usize].into(),
                ),
            ),
            ("correlation_id".into(), self.correlation_id.to_value()),
            ("causation_id".into(), self.causation_id.to_value()),
        ])
    }

    /// The envelope from a decoded `fig.events.Envelope` record; `Err` names the bad field.
    pub(crate) fn from_value(value: Value) -> Result<Envelope, &'static str> {
        let Value::Record(fields) = value else {
            return Err("envelope");
        };
        let mut f = fields.into_iter().map(|(_, v)| v);
        let mut next = |name: &'static str| f.next().ok_or(name);
        let event_id = String::from_value(next("event_id")?).ok_or("event_id")?;
        let event_type = String::from_value(next("event_type")?).ok_or("event_type")?;
        let schema_version = match next("schema_version")? {
            Value::Int(n) => u32::try_from(n).map_err(|_| "schema_version")?,
            _ => return Err("schema_version"),
        };
        let occurred_at_micros = match next("occurred_at")? {
            Value::TimestampMicros(n) | Value::Long(n) => n,
            _ => return Err("occurred_at"),
        };
        let aggregate_type = String::from_value(next("aggregate_type")?).ok_or("aggregate_type")?;
        let aggregate_id = String::from_value(next("aggregate_id")?).ok_or("aggregate_id")?;
        let source = match next("source")? {
            Value::Record(s) => match s.as_slice() {
                [
                    (_, Value::Long(lsn)),
                    (_, Value::Long(xid)),
                    (_, Value::Long(seq)),
                ] => SourcePosition {
                    commit_lsn: *lsn as u64,
                    xid: u32::try_from(*xid).map_err(|_| "source.xid")?,
                    seq: u32::try_from(*seq).map_err(|_| "source.seq")?,
                },
                _ => return Err("source"),
            },
            _ => return Err("source"),
        };
        let origin = match next("origin")? {
            Value::Enum(_, symbol) => Origin::from_symbol(&symbol).ok_or("origin")?,
            _ => return Err("origin"),
        };
        let correlation_id =
            Option::<String>::from_value(next("correlation_id")?).ok_or("correlation_id")?;
        let causation_id =
            Option::<String>::from_value(next("causation_id")?).ok_or("causation_id")?;
        Ok(Envelope {
            event_id,
            event_type,
            schema_version,
            occurred_at_micros,
            aggregate_type,
            aggregate_id,
            source,
            origin,
            correlation_id,
            causation_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same change always gets the same id; any part of the change that differs changes it.
    #[test]
    fn event_id_is_deterministic_and_discriminating() {
        let p = SourcePosition {
            commit_lsn: 0x16_B374_D848,
            xid: 771,
            seq: 3,
        };
        let id = event_id(&p, "OrderSecured", "100001");
        assert_eq!(id, event_id(&p, "OrderSecured", "100001"));
        assert_eq!(
            uuid::Uuid::parse_str(&id).map(|u| u.get_version_num()),
            Ok(5)
        );
        assert_ne!(
            id,
            event_id(&SourcePosition { seq: 4, ..p }, "OrderSecured", "100001")
        );
        assert_ne!(id, event_id(&p, "OrderConfirmed", "100001"));
        assert_ne!(id, event_id(&p, "OrderSecured", "100002"));
        // The separator keeps ("Ab", "c") and ("A", "bc") apart.
        assert_ne!(event_id(&p, "Ab", "c"), event_id(&p, "A", "bc"));
        // Long aggregate ids take the heap path and stay deterministic.
        let long = "k".repeat(1000);
        assert_eq!(event_id(&p, "X", &long), event_id(&p, "X", &long));
    }

    /// Pinned value: changing the id derivation would break deduplication downstream.
    #[test]
    fn event_id_is_stable_across_releases() {
        let p = SourcePosition {
            commit_lsn: 1,
            xid: 2,
            seq: 3,
        };
        assert_eq!(event_id(&p, "OrderSubmitted", "100000"), PINNED_ID);
    }

    const PINNED_ID: &str = "bc0041d5-b988-519e-a223-c1cdae4b8695";
}
