//! Writer schemas by id from a Confluent-compatible schema registry, fetched once and cached.

use super::OrderServiceError;
use apache_avro::Schema;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Fetches `GET /schemas/ids/{id}` and keeps every schema it has seen.
#[derive(Clone)]
pub struct SchemaCache {
    url: String,
    http: reqwest::Client,
    schemas: Arc<Mutex<HashMap<u32, Arc<Schema>>>>,
}

#[derive(serde::Deserialize)]
struct SchemaById {
    schema: String,
}

impl SchemaCache {
    /// A cache over the registry at `url` (no trailing slash needed).
    pub fn new(url: &str) -> SchemaCache {
        SchemaCache {
            url: url.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
            schemas: Arc::default(),
        }
    }

    /// The writer schema registered under `id`.
    pub async fn schema(&self, id: u32) -> Result<Arc<Schema>, OrderServiceError> {
        if let Some(s) = self
            .schemas
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
        {
            return Ok(s.clone());
        }
        let unreachable = |source| OrderServiceError::RegistryUnreachable {
            url: self.url.clone(),
            source,
        };
        let resp = self
            .http
            .get(format!("{}/schemas/ids/{id}", self.url))
            .send()
            .await
            .map_err(unreachable)?;
        let status = resp.status();
        let resp = match resp.error_for_status() {
            Ok(resp) => resp,
            // The registry is there but failing: try again later.
            Err(source) if status.is_server_error() => return Err(unreachable(source)),
            Err(_) => {
                return Err(OrderServiceError::SchemaUnknown {
                    id,
                    status: status.as_u16(),
                });
            }
        };
        let body: SchemaById = resp.json().await.map_err(unreachable)?;
        let schema = Arc::new(
            Schema::parse_str(&body.schema)
                .map_err(|source| OrderServiceError::SchemaInvalid { id, source })?,
        );
        self.schemas
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, schema.clone());
        Ok(schema)
    }
}
