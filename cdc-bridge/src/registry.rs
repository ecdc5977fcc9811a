//! A small client of the Confluent-compatible schema registry: register the writer schema under
//! its subject, cache the id, set the subject's compatibility level.
//!
//! Works around rivven-schema's gaps: `POST /subjects/{s}` (look-up) answers 405, so the id is
//! obtained by registering again (idempotent: the same schema yields the same id), and the
//! compatibility level is set with `PUT /config/{subject}`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Registry failures: unreachable and 5xx are transient; 409 and 422 are definite.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No answer (connection refused, timeout).
    #[error("schema registry at {url} is unreachable")]
    Unreachable {
        /// The request URL.
        url: String,
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
    },
    /// The schema is incompatible with what the subject already holds.
    #[error(
        "schema for subject `{subject}` is incompatible with its registered versions; publish a new contract version that passes `cdc-bridge check`, or change the subject's compatibility"
    )]
    Incompatible {
        /// The subject.
        subject: String,
    },
    /// Another status.
    #[error("schema registry answered {status} to {method} {url}")]
    Status {
        /// Method.
        method: &'static str,
        /// The request URL.
        url: String,
        /// HTTP status.
        status: u16,
    },
    /// The body was not what the API documents.
    #[error("schema registry answered {url} with an unexpected body")]
    BadBody {
        /// The request URL.
        url: String,
        /// The decode error.
        #[source]
        source: reqwest::Error,
    },
}

impl RegistryError {
    /// Whether retrying cannot help.
    pub fn is_definite(&self) -> bool {
        match self {
            RegistryError::Incompatible { .. } => true,
            RegistryError::Status { status, .. } => {
                (400..500).contains(status) && *status != 408 && *status != 429
            }
            RegistryError::Unreachable { .. } | RegistryError::BadBody { .. } => false,
        }
    }
}

#[derive(serde::Deserialize)]
struct IdBody {
    id: u32,
}

#[derive(serde::Deserialize)]
struct SchemaBody {
    schema: String,
}

/// Registry client with an id cache keyed by subject and schema text.
pub struct SchemaRegistry {
    http: reqwest::Client,
    base: String,
    compatibility: String,
    /// subject → [(schema text address, id)]; schema texts are `'static`, so the address is a
    /// stable identity and a look-up hashes only the subject.
    ids: Mutex<HashMap<String, Vec<(usize, u32)>>>,
}

impl SchemaRegistry {
    /// A client for `base_url` that sets `compatibility` on each subject it registers under.
    pub fn new(base_url: &str, compatibility: &str) -> SchemaRegistry {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        SchemaRegistry {
            http,
            base: base_url.trim_end_matches('/').to_string(),
            compatibility: compatibility.to_string(),
            ids: Mutex::new(HashMap::new()),
        }
    }

    /// The id of `schema_json` under `subject`, registering it (and setting the subject's
    /// compatibility level) on first use.
    pub async fn id_for(
        &self,
        subject: &str,
        schema_json: &'static str,
    ) -> Result<u32, RegistryError> {
        let addr = schema_json.as_ptr() as usize;
        if let Some(id) = self.cached(subject, addr) {
            return Ok(id);
        }
        self.set_compatibility(subject).await?;
        let id = self.register(subject, schema_json).await?;
        self.ids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(subject.to_string())
            .or_default()
            .push((addr, id));
        Ok(id)
    }

    fn cached(&self, subject: &str, addr: usize) -> Option<u32> {
        let ids = self
            .ids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        ids.get(subject)?
            .iter()
            .find(|(a, _)| *a == addr)
            .map(|(_, id)| *id)
    }

    /// `PUT /config/{subject}`.
    pub async fn set_compatibility(&self, subject: &str) -> Result<(), RegistryError> {
        let url = format!("{}/config/{subject}", self.base);
        let body = serde_json::json!({ "compatibility": self.compatibility });
        let resp = self
            .send("PUT", self.http.put(&url).json(&body), &url)
            .await?;
        check(resp, "PUT", &url, subject).map(drop)
    }

    /// `POST /subjects/{subject}/versions`: registers (or finds) the schema and returns its id.
    pub async fn register(&self, subject: &str, schema_json: &str) -> Result<u32, RegistryError> {
        let url = format!("{}/subjects/{subject}/versions", self.base);
        let body = serde_json::json!({ "schema": schema_json });
        let resp = self
            .send(
                "POST",
                self.http
                    .post(&url)
                    .header("content-type", "application/vnd.schemaregistry.v1+json")
                    .json(&body),
                &url,
            )
            .await?;
        let resp = check(resp, "POST", &url, subject)?;
        let id: IdBody = resp
            .json()
            .await
            .map_err(|source| RegistryError::BadBody { url, source })?;
        Ok(id.id)
    }

    /// `GET /schemas/ids/{id}`: the schema text registered under `id`.
    pub async fn schema_by_id(&self, id: u32) -> Result<String, RegistryError> {
        let url = format!("{}/schemas/ids/{id}", self.base);
        let resp = self.send("GET", self.http.get(&url), &url).await?;
        let resp = check(resp, "GET", &url, "")?;
        let body: SchemaBody = resp
            .json()
            .await
            .map_err(|source| RegistryError::BadBody { url, source })?;
        Ok(body.schema)
    }

    /// `GET /subjects/{subject}/versions/latest`: the latest schema text, or `None` for a new
    /// subject.
    pub async fn latest(&self, subject: &str) -> Result<Option<String>, RegistryError> {
        let url = format!("{}/subjects/{subject}/versions/latest", self.base);
        let resp = self.send("GET", self.http.get(&url), &url).await?;
        if resp.status().as_u16() == 404 {
            return Ok(None);
        }
        let resp = check(resp, "GET", &url, subject)?;
        let body: SchemaBody = resp
            .json()
            .await
            .map_err(|source| RegistryError::BadBody { url, source })?;
        Ok(Some(body.schema))
    }

    /// `GET /subjects`: proves the registry answers.
    pub async fn ping(&self) -> Result<(), RegistryError> {
        let url = format!("{}/subjects", self.base);
        let resp = self.send("GET", self.http.get(&url), &url).await?;
        check(resp, "GET", &url, "").map(drop)
    }

    async fn send(
        &self,
        _method: &'static str,
        req: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<reqwest::Response, RegistryError> {
        req.send()
            .await
            .map_err(|source| RegistryError::Unreachable {
                url: url.to_string(),
                source,
            })
    }
}

fn check(
    resp: reqwest::Response,
    method: &'static str,
    url: &str,
    subject: &str,
) -> Result<reqwest::Response, RegistryError> {
    let status = resp.status().as_u16();
    match status {
        200..=299 => Ok(resp),
        409 => Err(RegistryError::Incompatible {
            subject: subject.to_string(),
        }),
        _ => Err(RegistryError::Status {
            method,
            url: url.to_string(),
            status,
        }),
    }
}
