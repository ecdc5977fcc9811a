//! The operator console: one page (`GET /console`), its script (`/console/app.js`) and
//! stylesheet (`/console/app.css`), plain files embedded in the binary. The page holds no data
//! and is served without a token; the script asks for an admin token, keeps it in
//! `sessionStorage`, and sends it as `Authorization: Bearer` on every `/api/v1` call (never in a
//! URL). Data comes from [`super::overview`], [`super::bridge`] and the existing admin API.
//!
//! [`security_headers`] applies to every admin response: no caching, no framing, and a
//! Content-Security-Policy that allows only this origin's script and style (no inline script).

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::bridge::BridgeClient;
use super::overview::{RateWindow, RequestReadings};

/// The page.
const INDEX_HTML: &str = include_str!("console/index.html");
/// Its behaviour.
const APP_JS: &str = include_str!("console/app.js");
/// Its look.
const APP_CSS: &str = include_str!("console/app.css");

/// Only same-origin script, style and fetches; nothing inline, no framing, no forms elsewhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// What the console's endpoints keep between calls.
pub struct ConsoleState {
    /// Request counter readings, for the overview's rates.
    pub request_readings: RequestReadings,
    /// Bridge event-count readings, for events per second.
    pub bridge_readings: std::sync::Mutex<RateWindow<f64>>,
    /// The client that scrapes the bridge.
    pub bridge_client: BridgeClient,
}

impl ConsoleState {
    /// Empty readings and a fresh client.
    pub fn new() -> ConsoleState {
        ConsoleState {
            request_readings: Default::default(),
            bridge_readings: Default::default(),
            bridge_client: super::bridge::client(),
        }
    }
}

impl Default for ConsoleState {
    fn default() -> Self {
        ConsoleState::new()
    }
}

/// `GET /console`.
pub(super) async fn page() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        INDEX_HTML,
    )
        .into_response()
}

/// `GET /console/app.js`.
pub(super) async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        APP_JS,
    )
        .into_response()
}

/// `GET /console/app.css`.
pub(super) async fn stylesheet() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], APP_CSS).into_response()
}

/// Adds the security headers to an admin response: API answers are never cached, nothing is
/// framed or sniffed, and only same-origin resources run.
pub(super) async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    resp
}
