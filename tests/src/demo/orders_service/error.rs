//! What the order-status service can fail with, split into transient (retry, the event is not
//! lost) and definite (the message can never be read: it is recorded as rejected and skipped).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A failure of the order-status service.
#[derive(Debug, thiserror::Error)]
pub enum OrderServiceError {
    /// Its own database failed (transient).
    #[error("order-status database: {context}")]
    Database {
        /// What the service was doing.
        context: &'static str,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A stored state could not be read or written as JSON.
    #[error("order state in the database is not valid JSON")]
    State(#[source] serde_json::Error),
    /// The schema registry did not answer (transient).
    #[error("schema registry at {url} unreachable")]
    RegistryUnreachable {
        /// Registry base URL.
        url: String,
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
    },
    /// The registry does not know the schema id the message names (definite).
    #[error("schema id {id} unknown to the registry (HTTP {status})")]
    SchemaUnknown {
        /// Schema id from the message header.
        id: u32,
        /// HTTP status the registry answered.
        status: u16,
    },
    /// The registry's schema text does not parse (definite).
    #[error("schema id {id} from the registry is not valid Avro")]
    SchemaInvalid {
        /// Schema id.
        id: u32,
        /// The parser's error.
        #[source]
        source: apache_avro::Error,
    },
    /// The message is not in the Confluent wire format (definite).
    #[error("message is not in the Confluent wire format")]
    Wire(#[source] contracts::WireError),
    /// The datum does not decode into a domain event we know (definite).
    #[error("message does not decode into a domain event")]
    Decode(#[source] contracts::ContractError),
    /// The Kafka client failed.
    #[error("Kafka: {context}")]
    Kafka {
        /// What the service was doing.
        context: &'static str,
        /// The client's error.
        #[source]
        source: rdkafka::error::KafkaError,
    },
}

impl OrderServiceError {
    /// Wraps a database error with what was being done.
    pub fn db(context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> OrderServiceError {
        move |source| OrderServiceError::Database { context, source }
    }

    /// Whether trying again later may succeed (the message must then not be skipped).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            OrderServiceError::Database { .. }
                | OrderServiceError::RegistryUnreachable { .. }
                | OrderServiceError::Kafka { .. }
        )
    }
}

impl IntoResponse for OrderServiceError {
    fn into_response(self) -> Response {
        tracing::error!(error = %self, "order-status request failed");
        let body = Json(serde_json::json!({ "error": "internal error" }));
        (StatusCode::INTERNAL_SERVER_ERROR, body).into_response()
    }
}
