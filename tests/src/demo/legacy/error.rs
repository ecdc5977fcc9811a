//! What a legacy request can fail with, and the status each failure answers.
//!
//! Bad input and wrong states keep their status and say what is wrong; database failures become
//! a generic 500 that is logged with its cause and never leaked to the client.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A failed legacy request.
#[derive(Debug, thiserror::Error)]
pub enum LegacyError {
    /// The request is malformed; the message names the field.
    #[error("{0}")]
    BadRequest(String),
    /// The order, customer or reservation does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The order is in a state that does not allow this step.
    #[error("{0}")]
    Conflict(String),
    /// The request refers to something unusable (an inactive customer).
    #[error("{0}")]
    Unprocessable(String),
    /// The payment provider did not answer; the client may retry.
    #[error("payment provider {provider} unavailable (91); retry later")]
    ProviderUnavailable {
        /// The provider code.
        provider: String,
    },
    /// The database failed.
    #[error("database: {context}")]
    Database {
        /// What the monolith was doing.
        context: &'static str,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
}

impl LegacyError {
    /// Wraps a database error with what was being done.
    pub fn db(context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> LegacyError {
        move |source| LegacyError::Database { context, source }
    }
}

impl IntoResponse for LegacyError {
    fn into_response(self) -> Response {
        let status = match &self {
            LegacyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            LegacyError::NotFound(_) => StatusCode::NOT_FOUND,
            LegacyError::Conflict(_) => StatusCode::CONFLICT,
            LegacyError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            LegacyError::ProviderUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            LegacyError::Database { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = match &self {
            LegacyError::Database { context, source } => {
                tracing::error!(context, error = %source, "legacy request failed");
                "internal error".to_string()
            }
            other => other.to_string(),
        };
        (status, Json(serde_json::json!({ "error": message }))).into_response()
    }
}
