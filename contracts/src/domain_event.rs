//! A domain event (envelope + payload), how it is written (subject strategy, writer schema) and
//! its Avro datum, encoded by hand on the hot path and decoded through apache-avro.
//!
//! Encoding never builds an `apache_avro::Value`: the writer's record layout is known, so the
//! envelope, the union branch (aggregate writers) and the payload fields are appended directly.
//! Tests prove the bytes equal apache-avro's own encoding of the same event.

use apache_avro::Schema;
use apache_avro::types::Value;

use crate::catalog::catalog;
use crate::datum::write_long;
use crate::envelope::Envelope;
use crate::error::ContractError;
use crate::events::{EventKind, Payload};

/// A domain event: what happened, to which aggregate, and where the change came from.
#[derive(Debug, Clone, PartialEq)]
pub struct DomainEvent {
    /// Ids, type, version, time, aggregate and source position.
    pub envelope: Envelope,
    /// The business content.
    pub payload: Payload,
}

/// How the Confluent value subject is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SubjectStrategy {
    /// `<topic>-value`: one subject per topic, written with the aggregate's record.
    #[default]
    TopicName,
    /// `<record>`: one subject per event record, whatever the topic.
    RecordName,
    /// `<topic>-<record>`: one subject per topic and event record.
    TopicRecordName,
}

impl SubjectStrategy {
    /// The Confluent value-subject name.
    pub fn subject(&self, topic: &str, record_name: &str) -> String {
        match self {
            SubjectStrategy::TopicName => format!("{topic}-value"),
            SubjectStrategy::RecordName => record_name.to_owned(),
            SubjectStrategy::TopicRecordName => format!("{topic}-{record_name}"),
        }
    }
}

/// What a message is written with: register `schema_json` under the subject, frame with the id.
#[derive(Debug, Clone, Copy)]
pub struct Writer {
    /// The parsed writer schema.
    pub schema: &'static Schema,
    /// Its JSON text, as registered.
    pub schema_json: &'static str,
    /// Its full record name, e.g. `fig.events.OrderEvent`.
    pub record_name: &'static str,
}

impl DomainEvent {
    /// E.g. "OrderSecured".
    pub fn event_type(&self) -> &str {
        &self.envelope.event_type
    }

    /// E.g. "order".
    pub fn aggregate_type(&self) -> &str {
        &self.envelope.aggregate_type
    }

    /// The business key, also the Kafka message key.
    pub fn aggregate_id(&self) -> &str {
        &self.envelope.aggregate_id
    }

    /// Under TopicName all event types of one aggregate share one topic and so one subject: the
    /// writer is then the aggregate-level record (envelope + `payload` union of that aggregate's
    /// latest event records). Under RecordName / TopicRecordName it is the event's own record.
    pub fn writer(&self, strategy: SubjectStrategy) -> Writer {
        let catalog = catalog();
        let kind = self.payload.kind();
        match strategy {
            SubjectStrategy::TopicName => catalog
                .aggregate_of(kind, &self.envelope.aggregate_type)
                .0
                .data
                .writer(),
            SubjectStrategy::RecordName | SubjectStrategy::TopicRecordName => {
                catalog.event_writers[kind as usize].writer()
            }
        }
    }

    /// Appends the raw Avro datum (no wire header) written with `self.writer(strategy)`.
    ///
    /// Refuses an envelope that contradicts the payload (event type, schema version), since
    /// consumers would then mis-read it.
    pub fn encode(
        &self,
        strategy: SubjectStrategy,
        out: &mut Vec<u8>,
    ) -> Result<(), ContractError> {
        let kind = self.payload.kind();
        if self.envelope.event_type != kind.name() {
            return Err(ContractError::EnvelopeMismatch {
                field: "event_type",
                payload: kind.name().to_owned(),
                envelope: self.envelope.event_type.clone(),
            });
        }
        let version = kind.latest_version();
        if self.envelope.schema_version != version {
            return Err(ContractError::EnvelopeMismatch {
                field: "schema_version",
                payload: version.to_string(),
                envelope: self.envelope.schema_version.to_string(),
            });
        }
        self.envelope.write(out);
        if strategy == SubjectStrategy::TopicName {
            let (_, branch) = catalog().aggregate_of(kind, &self.envelope.aggregate_type);
            write_long(branch as i64, out);
        }
        self.payload.write(out);
        Ok(())
    }

    /// The event as an apache-avro value of `self.writer(strategy)` (the slow reference path).
    pub fn to_value(&self, strategy: SubjectStrategy) -> Value {
        let payload = match strategy {
            SubjectStrategy::TopicName => {
                let (_, branch) =
                    catalog().aggregate_of(self.payload.kind(), &self.envelope.aggregate_type);
                Value::Union(branch as u32, Box::new(self.payload.to_value()))
            }
            _ => self.payload.to_value(),
        };
        Value::Record(vec![
            ("envelope".into(), self.envelope.to_value()),
            ("payload".into(), payload),
        ])
    }

    /// Decodes a datum written with `writer_schema` (fetched from the registry by id) into our types.
    ///
    /// The writer may be any version of an event record or aggregate record of this catalog; the
    /// payload is resolved to the latest version we know (new optional fields take defaults).
    pub fn decode(writer_schema: &Schema, datum: &[u8]) -> Result<DomainEvent, ContractError> {
        let writer = writer_name(writer_schema);
        let payload_schema = payload_field(writer_schema).ok_or_else(|| unknown(&writer))?;
        let mut rest = datum;
        let value = apache_avro::from_avro_datum(writer_schema, &mut rest, None).map_err(|e| {
            ContractError::Avro {
                writer: writer.clone(),
                source: Box::new(e),
            }
        })?;
        if !rest.is_empty() {
            return Err(ContractError::TrailingBytes {
                writer,
                extra: rest.len(),
            });
        }
        let Value::Record(mut fields) = value else {
            return Err(unknown(&writer));
        };
        let (payload_value, envelope_value) = match (fields.pop(), fields.pop()) {
            (Some((_, p)), Some((_, e))) => (p, e),
            _ => return Err(unknown(&writer)),
        };
        let (kind, payload_value) = match (payload_schema, payload_value) {
            (Schema::Union(union), Value::Union(branch, inner)) => {
                let member = union
                    .variants()
                    .get(branch as usize)
                    .ok_or_else(|| unknown(&writer))?;
                (kind_of(member).ok_or_else(|| unknown(&writer))?, *inner)
            }
            (schema, value) => (kind_of(schema).ok_or_else(|| unknown(&writer))?, value),
        };
        let catalog = catalog();
        let bad = |field| ContractError::BadField {
            record: writer.clone(),
            field,
        };
        let envelope = envelope_value
            .resolve(&catalog.envelope_schema)
            .map_err(|_| bad("envelope"))?;
        let envelope = Envelope::from_value(envelope).map_err(bad)?;
        let reader = catalog
            .latest(kind.name())
            .map(|s| &s.schema)
            .ok_or_else(|| unknown(&writer))?;
        let payload_value = payload_value
            .resolve(reader)
            .map_err(|e| ContractError::Avro {
                writer: writer.clone(),
                source: Box::new(e),
            })?;
        let payload = Payload::from_value(kind, payload_value).map_err(bad)?;
        Ok(DomainEvent { envelope, payload })
    }
}

fn unknown(writer: &str) -> ContractError {
    ContractError::UnknownWriter {
        writer: writer.to_owned(),
    }
}

fn writer_name(schema: &Schema) -> String {
    match schema {
        Schema::Record(r) => r.name.fullname(None),
        other => format!("{:?}", apache_avro::schema::SchemaKind::from(other)),
    }
}

/// The schema of the `payload` field, if the writer has our envelope + payload shape.
fn payload_field(schema: &Schema) -> Option<&Schema> {
    let Schema::Record(r) = schema else {
        return None;
    };
    match r.fields.as_slice() {
        [e, p] if e.name == "envelope" && p.name == "payload" => Some(&p.schema),
        _ => None,
    }
}

fn kind_of(schema: &Schema) -> Option<EventKind> {
    match schema {
        Schema::Record(r) => EventKind::from_name(&r.name.name),
        Schema::Ref { name } => EventKind::from_name(&name.name),
        _ => None,
    }
}
