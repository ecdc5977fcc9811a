//! Versioned Avro contracts of the domain events that the CDC bridge publishes.
//!
//! Layout and data flow:
//! - `schemas/<EventType>/vN.avsc` (data, append-only) hold each event's payload record;
//!   `schemas/Envelope/v1.avsc` the envelope every event carries. [`catalog`] embeds and parses
//!   them once, builds the writer schemas and runs the compatibility gate.
//! - [`events`] has one Rust struct per event (shaped like its latest schema) and [`Payload`].
//! - [`DomainEvent`] = [`Envelope`] + [`Payload`]; [`DomainEvent::writer`] picks the writer schema
//!   for a [`SubjectStrategy`], [`DomainEvent::encode`] appends the Avro datum (hand-written
//!   encoder, proven equal to apache-avro's), [`DomainEvent::decode`] reads any version back.
//! - [`wire`] frames datums in the Confluent wire format.
//!
//! Pure: no I/O, no async, no driver types.

pub mod catalog;
mod datum;
mod domain_event;
mod envelope;
mod error;
pub mod events;
mod money;
pub mod wire;

pub use datum::FieldValue;
pub use domain_event::{DomainEvent, SubjectStrategy, Writer};
pub use envelope::{EVENT_ID_NAMESPACE, Envelope, Origin, SourcePosition, event_id};
pub use error::ContractError;
pub use events::{EventKind, FieldError, Payload};
pub use money::{MONEY_PRECISION, MONEY_SCALE, Money, MoneyError, TimestampMicros};
pub use wire::WireError;
