//! Errors of encoding and decoding domain events.

use crate::events::FieldError;

/// Why an event could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    /// The datum does not decode with the writer schema, or cannot resolve to ours.
    #[error("Avro datum does not decode with the writer schema `{writer}`")]
    Avro {
        /// Record name of the writer schema.
        writer: String,
        /// What apache-avro reported.
        #[source]
        source: Box<apache_avro::Error>,
    },
    /// The writer schema is none of ours (an event or aggregate record of this catalog).
    #[error(
        "writer schema `{writer}` is not a record of this contract catalog; upgrade the reader"
    )]
    UnknownWriter {
        /// Record name (or kind) of the writer schema.
        writer: String,
    },
    /// The datum decoded but a field does not fit our types.
    #[error("decoded `{record}` has an unusable field `{field}`")]
    BadField {
        /// The record being read.
        record: String,
        /// The field.
        field: &'static str,
    },
    /// Bytes were left after the datum: the writer schema is not what wrote it.
    #[error("{extra} bytes left after the datum written with `{writer}`")]
    TrailingBytes {
        /// Record name of the writer schema.
        writer: String,
        /// Bytes left.
        extra: usize,
    },
    /// The envelope says something else than the payload is.
    #[error("envelope {field} is `{envelope}` but the payload is `{payload}`")]
    EnvelopeMismatch {
        /// The envelope field.
        field: &'static str,
        /// What the payload implies.
        payload: String,
        /// What the envelope says.
        envelope: String,
    },
    /// A payload field value does not fit the event field.
    #[error(transparent)]
    Field(#[from] FieldError),
}
