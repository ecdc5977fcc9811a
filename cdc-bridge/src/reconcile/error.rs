//! Why a reconciliation or a re-drive could not run. A divergence is not an error: it is the
//! report's content and the exit status.

use std::path::PathBuf;

use crate::error::BridgeError;
use crate::registry::RegistryError;

/// Errors of `cdc-bridge reconcile`, each saying what and where.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The reconciliation settings file could not be read.
    #[error("cannot read reconciliation settings {path}")]
    ReadSettings {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// TOML syntax, or an unknown or mistyped key.
    #[error("reconciliation settings are not valid")]
    ParseSettings(#[source] toml::de::Error),
    /// A setting out of range.
    #[error("reconciliation setting `{key}`: {problem}")]
    Setting {
        /// Dotted key path.
        key: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// The schema registry failed.
    #[error("schema registry: {context}")]
    Registry {
        /// What was being done.
        context: String,
        /// The registry client's error.
        #[source]
        source: RegistryError,
    },
    /// PostgreSQL, Kafka, or a shared part of the bridge (checkpoint reader, producer) failed.
    #[error(transparent)]
    Bridge(#[from] BridgeError),
    /// A legacy row the comparison cannot read.
    #[error("legacy row ord_hdr ord_no={order}, column {column}: {problem}")]
    LegacyRow {
        /// The order number.
        order: i64,
        /// The column.
        column: &'static str,
        /// What is wrong (never the value itself).
        problem: String,
    },
    /// A read-model row the comparison cannot read.
    #[error(
        "read model row {row} (column {column}): {problem}; the query must return (order id, status)"
    )]
    ReadModelRow {
        /// 1-based row number of the query's result.
        row: u64,
        /// The column index.
        column: usize,
        /// What is wrong.
        problem: String,
    },
    /// A re-drive event could not be built or encoded.
    #[error("re-drive of order {order}: {problem}")]
    Redrive {
        /// The order number.
        order: i64,
        /// What is wrong.
        problem: String,
    },
    /// A helper task stopped before answering (panicked or cancelled).
    #[error("{what} stopped before it finished")]
    Interrupted {
        /// What.
        what: &'static str,
    },
    /// Something did not finish in time.
    #[error("{what} did not finish within {seconds}s; raise `{key}`")]
    Timeout {
        /// What.
        what: String,
        /// The limit.
        seconds: u64,
        /// The setting that sets it.
        key: &'static str,
    },
}

impl ReconcileError {
    pub(crate) fn postgres(context: impl Into<String>, source: tokio_postgres::Error) -> Self {
        ReconcileError::Bridge(BridgeError::postgres(context, source))
    }

    pub(crate) fn kafka(context: impl Into<String>, source: rdkafka::error::KafkaError) -> Self {
        ReconcileError::Bridge(BridgeError::kafka(context, source))
    }
}
