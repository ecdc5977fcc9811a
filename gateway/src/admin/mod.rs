//! The admin API, served on its own listener only: health, metrics, capabilities and their
//! toggles, rollback, history and explain; and the operator console (`/console`, see
//! [`console`]) with the endpoints it reads ([`overview`], [`bridge`]).
//!
//! Every `/api/v1` call needs a bearer token; `viewer` may read, `operator` may also change.
//! Every change, and every refused attempt (no token, wrong token, wrong role, bad body, store
//! unreachable), is written to the audit log with who, when, from what to what and why.

pub mod auth;
pub mod bridge;
pub mod console;
pub mod overview;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crate::audit::{AuditEntry, Outcome};
use crate::control::{Actor, ChangeError, ControlPlane};
use crate::observability::Metrics;
use crate::proxy::guard::Guards;
use crate::resilience::BreakerSnapshot;
use crate::route::{self, RequestParts, RouteTable, Side};
use crate::store::StoreError;
use crate::toggle::{Toggle, ToggleState};
use auth::{AuthFailure, Role, Tokens};

/// How many history entries `GET /api/v1/history` returns unless `?limit=` says otherwise.
pub const DEFAULT_HISTORY_LIMIT: usize = 100;

/// What the admin handlers share.
#[derive(Clone)]
pub struct AdminState {
    /// The control plane.
    pub control: Arc<ControlPlane>,
    /// Configured tokens.
    pub tokens: Arc<Tokens>,
    /// Metrics, for `/metrics`.
    pub metrics: Arc<Metrics>,
}

/// The admin router. Serve it with `into_make_service_with_connect_info::<SocketAddr>()`.
pub fn app(state: AdminState) -> Router {
    Router::new()
        .route("/health/live", get(|| async { "live\n" }))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/api/v1/capabilities", get(list))
        .route("/api/v1/capabilities/{name}", get(show))
        .route("/api/v1/capabilities/{name}/toggle", put(set_toggle))
        .route("/api/v1/capabilities/{name}/rollback", post(rollback))
        .route("/api/v1/capabilities/{name}/mismatches", get(mismatches))
        .route("/api/v1/history", get(history))
        .route("/api/v1/explain", post(explain))
        .route("/api/v1/whoami", get(overview::whoami))
        .route("/api/v1/overview", get(overview::overview))
        .route("/api/v1/bridge", get(bridge::bridge))
        .route("/console", get(console::page))
        .route("/console/app.js", get(console::script))
        .route("/console/app.css", get(console::stylesheet))
        .layer(Extension(Arc::new(console::ConsoleState::new())))
        .layer(axum::middleware::map_response(console::security_headers))
        .with_state(state)
}

/// An admin error: its status and a short message (internal details are logged, not sent).
#[derive(Debug)]
pub struct AdminError(StatusCode, String);

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<ChangeError> for AdminError {
    fn from(e: ChangeError) -> Self {
        let status = match &e {
            ChangeError::UnknownCapability(_) => StatusCode::NOT_FOUND,
            ChangeError::MissingReason | ChangeError::NothingToRollBack(_) => {
                StatusCode::BAD_REQUEST
            }
            ChangeError::Store(StoreError::Conflict { .. }) => StatusCode::CONFLICT,
            ChangeError::Store(StoreError::Unavailable) => StatusCode::SERVICE_UNAVAILABLE,
            ChangeError::Store(other) => {
                tracing::error!(error = %other, "toggle store failed");
                return AdminError(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "toggle store failed; see the gateway log".into(),
                );
            }
        };
        AdminError(status, e.to_string())
    }
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        ChangeError::Store(e).into()
    }
}

/// Who is calling, what they may do: refusals are audited.
async fn authorize(
    st: &AdminState,
    headers: &HeaderMap,
    remote: SocketAddr,
    need: Role,
    action: &str,
    capability: Option<&str>,
) -> Result<Actor, AdminError> {
    let auth = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
    let refuse = |actor: &str, role: Option<&str>, status: StatusCode, detail: String| {
        let mut e = AuditEntry::now(actor, action, Outcome::Refused);
        e.role = role.map(str::to_string);
        e.remote = Some(remote.to_string());
        e.capability = capability.map(str::to_string);
        e.detail = Some(format!("{} {detail}", status.as_u16()));
        (e, AdminError(status, detail))
    };
    let (entry, err) = match st.tokens.authenticate(auth) {
        Ok(p) if p.role >= need => {
            return Ok(Actor {
                name: p.name,
                role: p.role.as_str().to_string(),
                remote: Some(remote.to_string()),
            });
        }
        Ok(p) => refuse(
            &p.name,
            Some(p.role.as_str()),
            StatusCode::FORBIDDEN,
            format!(
                "role {} may not do this; {} needed",
                p.role.as_str(),
                need.as_str()
            ),
        ),
        Err(AuthFailure::Missing) => refuse(
            "anonymous",
            None,
            StatusCode::UNAUTHORIZED,
            "missing bearer token".to_string(),
        ),
        Err(AuthFailure::Invalid) => refuse(
            "anonymous",
            None,
            StatusCode::UNAUTHORIZED,
            "invalid bearer token".to_string(),
        ),
    };
    st.control.audit_refusal(entry).await;
    Err(err)
}

async fn ready(State(st): State<AdminState>) -> Response {
    if st.control.store().is_ready() {
        (StatusCode::OK, Json(json!({ "ready": true }))).into_response()
    } else {
        let reason = "toggle store unreachable; serving the last known table, changes refused";
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "ready": false, "reason": reason })),
        )
            .into_response()
    }
}

async fn metrics(State(st): State<AdminState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        st.metrics.encode(),
    )
        .into_response()
}

/// A capability as the API shows it.
#[derive(Debug, Serialize)]
struct CapabilityView {
    name: String,
    #[serde(flatten)]
    state: ToggleState,
    previous: Option<ToggleState>,
    version: u64,
    legacy: String,
    new: String,
    routes: Vec<RouteView>,
    /// Circuit breakers of both upstreams, when the proxy's guards are attached.
    #[serde(skip_serializing_if = "Option::is_none")]
    breakers: Option<BreakersView>,
}

/// Breaker state of each side's upstream.
#[derive(Debug, Serialize)]
struct BreakersView {
    legacy: BreakerSnapshot,
    new: BreakerSnapshot,
}

#[derive(Debug, Serialize)]
struct RouteView {
    key: String,
    #[serde(rename = "match")]
    matcher: String,
}

fn view(
    table: &RouteTable,
    index: usize,
    toggle: &Toggle,
    guards: Option<&Guards>,
) -> CapabilityView {
    let cap = &table.capabilities[index];
    let now = std::time::Instant::now();
    let breakers = guards.map(|g| {
        let sides = &g.capability(Some(index)).sides;
        BreakersView {
            legacy: sides[Side::Legacy as usize].breaker.snapshot(now),
            new: sides[Side::New as usize].breaker.snapshot(now),
        }
    });
    let url = |u: &route::Upstream| format!("{}://{}{}", u.scheme, u.authority, u.base_path);
    CapabilityView {
        name: cap.name.to_string(),
        state: toggle.state,
        previous: toggle.previous,
        version: toggle.version,
        legacy: url(&cap.legacy),
        new: url(&cap.new),
        routes: table
            .routes
            .iter()
            .filter(|r| r.capability == index)
            .map(|r| RouteView {
                key: r.key.clone(),
                matcher: r.describe(),
            })
            .collect(),
        breakers,
    }
}

async fn list(
    State(st): State<AdminState>,
    guards: Option<Extension<Arc<Guards>>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<Vec<CapabilityView>>, AdminError> {
    authorize(
        &st,
        &headers,
        remote,
        Role::Viewer,
        "GET /api/v1/capabilities",
        None,
    )
    .await?;
    let live = st.control.live().load_full();
    Ok(Json(
        live.toggles
            .0
            .iter()
            .enumerate()
            .map(|(i, t)| view(&live.table, i, t, guards.as_deref().map(|g| &**g)))
            .collect(),
    ))
}

async fn show(
    State(st): State<AdminState>,
    guards: Option<Extension<Arc<Guards>>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Json<CapabilityView>, AdminError> {
    authorize(
        &st,
        &headers,
        remote,
        Role::Viewer,
        "GET /api/v1/capabilities/{name}",
        Some(&name),
    )
    .await?;
    let live = st.control.live().load_full();
    let i = live
        .table
        .index_of(&name)
        .ok_or_else(|| AdminError::from(ChangeError::UnknownCapability(name.clone())))?;
    Ok(Json(view(
        &live.table,
        i,
        &live.toggles.0[i],
        guards.as_deref().map(|g| &**g),
    )))
}

/// `GET .../mismatches`: the shadow counters and the last mismatches (newest first), with their
/// redacted diffs.
async fn mismatches(
    State(st): State<AdminState>,
    guards: Option<Extension<Arc<Guards>>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, AdminError> {
    authorize(
        &st,
        &headers,
        remote,
        Role::Viewer,
        "GET /api/v1/capabilities/{name}/mismatches",
        Some(&name),
    )
    .await?;
    let live = st.control.live().load_full();
    let unknown = || AdminError::from(ChangeError::UnknownCapability(name.clone()));
    live.table.index_of(&name).ok_or_else(unknown)?;
    let Some(Extension(guards)) = guards else {
        return Ok(
            Json(json!({ "capability": name, "counts": null, "mismatches": [] })).into_response(),
        );
    };
    let shadow = guards.shadow(&live.table, &name).ok_or_else(unknown)?;
    let counts = shadow.log.counts();
    Ok(Json(json!({
        "capability": name,
        "mismatch_rate": counts.mismatch_rate(),
        "counts": counts,
        "mismatches": shadow.log.recent(),
    }))
    .into_response())
}

/// `PUT .../toggle` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ToggleRequest {
    state: String,
    #[serde(default)]
    percent: Option<u8>,
    #[serde(default)]
    reason: Option<String>,
}

/// `POST .../rollback` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackRequest {
    #[serde(default)]
    reason: Option<String>,
}

async fn set_toggle(
    State(st): State<AdminState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Json<ToggleRequest>, JsonRejection>,
) -> Result<Json<AuditEntry>, AdminError> {
    let actor = authorize(&st, &headers, remote, Role::Operator, "set", Some(&name)).await?;
    let parsed = body
        .map_err(|e| AdminError(StatusCode::BAD_REQUEST, e.body_text()))
        .and_then(|Json(b)| {
            ToggleState::from_parts(&b.state, b.percent)
                .map(|s| (s, b.reason))
                .map_err(|e| AdminError(StatusCode::BAD_REQUEST, e))
        });
    let result = match parsed {
        Ok((to, reason)) => st
            .control
            .set(&actor, &name, to, reason.as_deref().unwrap_or(""))
            .await
            .map_err(AdminError::from),
        Err(e) => Err(e),
    };
    finish(&st, &actor, "set", &name, result).await
}

async fn rollback(
    State(st): State<AdminState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Json<RollbackRequest>, JsonRejection>,
) -> Result<Json<AuditEntry>, AdminError> {
    let actor = authorize(
        &st,
        &headers,
        remote,
        Role::Operator,
        "rollback",
        Some(&name),
    )
    .await?;
    let result = match body {
        Ok(Json(b)) => st
            .control
            .rollback(&actor, &name, b.reason.as_deref().unwrap_or(""))
            .await
            .map_err(AdminError::from),
        Err(e) => Err(AdminError(StatusCode::BAD_REQUEST, e.body_text())),
    };
    finish(&st, &actor, "rollback", &name, result).await
}

/// Counts and audits the outcome of a change by an authorised actor.
async fn finish(
    st: &AdminState,
    actor: &Actor,
    action: &str,
    name: &str,
    result: Result<AuditEntry, AdminError>,
) -> Result<Json<AuditEntry>, AdminError> {
    match result {
        Ok(entry) => {
            st.metrics.count_change("applied");
            Ok(Json(entry))
        }
        Err(err) => {
            let mut e = crate::control::entry(actor, action, Outcome::Refused);
            e.capability = Some(name.to_string());
            e.detail = Some(format!("{} {}", err.0.as_u16(), err.1));
            st.control.audit_refusal(e).await;
            Err(err)
        }
    }
}

#[derive(Debug, Deserialize)]
struct HistoryQuery {
    limit: Option<usize>,
}

async fn history(
    State(st): State<AdminState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Query(q): Query<HistoryQuery>,
    headers: HeaderMap,
) -> Result<Json<Vec<AuditEntry>>, AdminError> {
    authorize(
        &st,
        &headers,
        remote,
        Role::Viewer,
        "GET /api/v1/history",
        None,
    )
    .await?;
    Ok(Json(
        st.control
            .store()
            .history(q.limit.unwrap_or(DEFAULT_HISTORY_LIMIT))
            .await?,
    ))
}

/// `POST /api/v1/explain` body: the request to explain.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExplainRequest {
    method: String,
    path: String,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    client_ip: Option<IpAddr>,
}

async fn explain(
    State(st): State<AdminState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<ExplainRequest>, JsonRejection>,
) -> Result<Json<serde_json::Value>, AdminError> {
    authorize(
        &st,
        &headers,
        remote,
        Role::Viewer,
        "POST /api/v1/explain",
        None,
    )
    .await?;
    let Json(req) = body.map_err(|e| AdminError(StatusCode::BAD_REQUEST, e.body_text()))?;
    let bad = |what: String| AdminError(StatusCode::BAD_REQUEST, what);
    let method = http::Method::from_bytes(req.method.as_bytes())
        .map_err(|_| bad(format!("`{}` is not a method", req.method)))?;
    let mut map = http::HeaderMap::new();
    for (k, v) in &req.headers {
        let name = http::HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| bad(format!("header `{k}` is not a header name")))?;
        let value = http::HeaderValue::from_str(v)
            .map_err(|_| bad(format!("header `{k}` has an invalid value")))?;
        map.append(name, value);
    }
    let (path, query) = req
        .path
        .split_once('?')
        .map_or((req.path.as_str(), None), |(p, q)| (p, Some(q)));
    let parts = RequestParts {
        method: &method,
        path,
        query,
        host: req.host.as_deref(),
        headers: &map,
        client_ip: req.client_ip,
    };
    let live = st.control.live().load_full();
    let d = route::find(&live.table, &parts, &live.toggles);
    let capability = d
        .capability
        .map(|i| live.table.capabilities[i].name.to_string());
    let route = d
        .route
        .map(|i| &live.table.routes[i])
        .map(|r| json!({ "key": r.key, "match": r.describe() }));
    let upstream = match (d.capability, d.side) {
        (None, _) => &live.table.default_legacy,
        (Some(i), Side::Legacy) => &live.table.capabilities[i].legacy,
        (Some(i), Side::New) => &live.table.capabilities[i].new,
    };
    Ok(Json(json!({
        "capability": capability,
        "route": route,
        "side": d.side,
        "shadow": d.shadow,
        "reason": d.reason,
        "upstream": format!("{}://{}{}", upstream.scheme, upstream.authority, upstream.base_path),
    })))
}
