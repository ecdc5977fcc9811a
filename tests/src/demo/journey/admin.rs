//! The gateway's admin API, as the journey drives it: set a toggle, roll back, read a
//! capability, read the audit history, ask which side a request would take.

use serde_json::{Value, json};

/// Why an admin call failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No answer.
    #[error("gateway admin API at {url} unreachable")]
    Unreachable {
        /// The URL called.
        url: String,
        /// The client's error.
        #[source]
        source: reqwest::Error,
    },
    /// The gateway refused the call.
    #[error("gateway admin API refused {what}: HTTP {status}: {body}")]
    Refused {
        /// The call.
        what: String,
        /// HTTP status.
        status: u16,
        /// The gateway's explanation.
        body: String,
    },
}

/// A client of the gateway's admin listener with an operator token.
#[derive(Clone)]
pub struct Admin {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Admin {
    /// A client of the admin listener at `base` using `token`.
    pub fn new(base: &str, token: &str) -> Admin {
        Admin {
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
            http: reqwest::Client::new(),
        }
    }

    async fn send(&self, what: String, req: reqwest::RequestBuilder) -> Result<Value, AdminError> {
        let url = self.base.clone();
        let resp = req
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|source| AdminError::Unreachable { url, source })?;
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        if !(200..300).contains(&status) {
            return Err(AdminError::Refused { what, status, body });
        }
        Ok(serde_json::from_str(&body).unwrap_or(Value::String(body)))
    }

    /// `PUT /api/v1/capabilities/{name}/toggle`.
    pub async fn set(
        &self,
        capability: &str,
        state: &str,
        percent: Option<u8>,
        reason: &str,
    ) -> Result<Value, AdminError> {
        let url = format!("{}/api/v1/capabilities/{capability}/toggle", self.base);
        let mut body = json!({"state": state, "reason": reason});
        if let Some(p) = percent {
            body["percent"] = json!(p);
        }
        self.send(
            format!("toggle {capability} to {state}"),
            self.http.put(url).json(&body),
        )
        .await
    }

    /// `POST /api/v1/capabilities/{name}/rollback`.
    pub async fn rollback(&self, capability: &str, reason: &str) -> Result<Value, AdminError> {
        let url = format!("{}/api/v1/capabilities/{capability}/rollback", self.base);
        let body = json!({"reason": reason});
        self.send(
            format!("roll back {capability}"),
            self.http.post(url).json(&body),
        )
        .await
    }

    /// `GET /api/v1/capabilities/{name}`.
    pub async fn capability(&self, capability: &str) -> Result<Value, AdminError> {
        let url = format!("{}/api/v1/capabilities/{capability}", self.base);
        self.send(format!("show {capability}"), self.http.get(url))
            .await
    }

    /// `GET /api/v1/history?limit=N`: the newest `limit` audit entries, oldest first.
    pub async fn history(&self, limit: usize) -> Result<Value, AdminError> {
        let url = format!("{}/api/v1/history?limit={limit}", self.base);
        self.send("read the audit history".into(), self.http.get(url))
            .await
    }

    /// `POST /api/v1/explain` for `GET path` with one header: the side it would take.
    pub async fn explain_get(
        &self,
        path: &str,
        header: &str,
        value: &str,
    ) -> Result<Value, AdminError> {
        let url = format!("{}/api/v1/explain", self.base);
        let body = json!({"method": "GET", "path": path, "headers": {header: value}});
        self.send(
            format!("explain GET {path}"),
            self.http.post(url).json(&body),
        )
        .await
    }
}

/// `"legacy"`, `"shadow 10%"`, `"percent 50%"` from a capability's JSON.
pub fn describe_state(capability: &Value) -> String {
    let state = capability["state"].as_str().unwrap_or("?");
    match capability["percent"].as_u64() {
        Some(p) => format!("{state} {p}%"),
        None => state.to_string(),
    }
}
