//! `GET /api/v1/bridge`: the CDC bridge's status for the operator console, read by the gateway
//! (never the browser) from the bridge's Prometheus endpoint (`[console] bridge_metrics_url`)
//! with a short timeout, and answered as JSON that says honestly whether the bridge is configured
//! and reachable.
//!
//! ```text
//! console ──GET /api/v1/bridge──▶ gateway ──GET bridge_metrics_url (≤ 2 s)──▶ cdc-bridge /metrics
//!                                    │ parse_exposition (pure) ─▶ BridgeStatus ─▶ JSON
//! ```

use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::{Extension, Json};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::auth::Role;
use super::console::ConsoleState;
use super::overview::per_second;
use super::{AdminError, AdminState, authorize};
use crate::config::ConsoleConfig;

/// Longest wait for the bridge's metrics, connect included.
pub const BRIDGE_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest metrics page read from the bridge.
pub const MAX_EXPOSITION_BYTES: usize = 4 * 1024 * 1024;

/// Bridge metric names as the bridge exposes them (`cdc-bridge/src/observability.rs`; counters
/// carry the `_total` suffix). `tests/tests/console.rs` checks them against the real bridge.
pub mod names {
    /// Domain events published, by event type.
    pub const EVENTS_PUBLISHED: &str = "fig_bridge_events_published_total";
    /// Rows sent to the dead-letter topic, by reason.
    pub const DEAD_LETTERS: &str = "fig_bridge_dead_letters_total";
    /// WAL bytes between the server's position and the slot's confirmed flush.
    pub const SLOT_LAG_BYTES: &str = "fig_bridge_slot_lag_bytes";
    /// Snapshot progress per table, 0 to 1.
    pub const SNAPSHOT_PROGRESS: &str = "fig_bridge_snapshot_progress_ratio";
    /// Snapshot rows copied per table.
    pub const SNAPSHOT_ROWS: &str = "fig_bridge_snapshot_rows_total";
    /// 1 while the instance streams.
    pub const STREAMING: &str = "fig_bridge_streaming";
    /// Label key of the dead-letter reason.
    pub const LABEL_REASON: &str = "reason";
    /// Label key of the snapshot table.
    pub const LABEL_TABLE: &str = "table";
}

/// One sample line of a Prometheus text exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name, suffix included (`_total`, `_bucket`, …).
    pub name: String,
    /// Labels in the order given.
    pub labels: Labels,
    /// The value.
    pub value: f64,
}

/// A line of the exposition that is not a sample.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bridge metrics line {line}: {what}")]
pub struct ExpositionError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub what: String,
}

/// Parses the Prometheus/OpenMetrics text format: comments and blank lines are skipped, every
/// other line must be `name{labels} value [timestamp]`.
pub fn parse_exposition(text: &str) -> Result<Vec<Sample>, ExpositionError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        out.push(parse_sample(line).map_err(|what| ExpositionError { line: n + 1, what })?);
    }
    Ok(out)
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ', '\t']).unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() {
        return Err("no metric name".to_string());
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let (parsed, after) = parse_labels(inner)?;
        labels = parsed;
        rest = after;
    }
    let value = rest
        .split_whitespace()
        .next()
        .ok_or_else(|| format!("`{name}` has no value"))?;
    let value = value
        .parse::<f64>()
        .map_err(|_| format!("`{name}` has value `{value}`, not a number"))?;
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// A sample's labels, in the order given.
type Labels = Vec<(String, String)>;

/// Parses `k="v",k2="v2"}` and returns the labels and what follows the `}`.
fn parse_labels(mut s: &str) -> Result<(Labels, &str), String> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start_matches([' ', ',']);
        if let Some(after) = s.strip_prefix('}') {
            return Ok((labels, after));
        }
        let (key, after) = s
            .split_once("=\"")
            .ok_or_else(|| "a label without `=\"`".to_string())?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => return Err("an unterminated label value".to_string()),
                },
                Some((_, c)) => value.push(c),
                None => return Err("an unterminated label value".to_string()),
            }
        };
        labels.push((key.trim().to_string(), value));
        s = &after[end + 1..];
    }
}

/// Snapshot figures of one legacy table.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SnapshotTable {
    /// 0 to 1.
    pub progress: Option<f64>,
    /// Rows copied so far.
    pub rows: Option<f64>,
}

/// What the console shows of the bridge, from one scrape.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BridgeStatus {
    /// Whether this instance streams (`None` when the metric is absent).
    pub streaming: Option<bool>,
    /// Replication slot lag in bytes of WAL.
    pub slot_lag_bytes: Option<f64>,
    /// Domain events published since the bridge started.
    pub events_total: f64,
    /// Rows dead-lettered since the bridge started.
    pub dead_letters_total: f64,
    /// Dead letters by reason.
    pub dead_letters_by_reason: BTreeMap<String, f64>,
    /// Snapshot figures by table (empty when no snapshot ran).
    pub snapshot: BTreeMap<String, SnapshotTable>,
}

impl BridgeStatus {
    /// Picks the console's figures out of the bridge's samples.
    pub fn from_samples(samples: &[Sample]) -> BridgeStatus {
        let label = |s: &Sample, key: &str| {
            s.labels
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let mut status = BridgeStatus::default();
        for s in samples {
            match s.name.as_str() {
                names::EVENTS_PUBLISHED => status.events_total += s.value,
                names::DEAD_LETTERS => {
                    status.dead_letters_total += s.value;
                    *status
                        .dead_letters_by_reason
                        .entry(label(s, names::LABEL_REASON))
                        .or_default() += s.value;
                }
                names::SLOT_LAG_BYTES => status.slot_lag_bytes = Some(s.value),
                names::STREAMING => status.streaming = Some(s.value >= 1.0),
                names::SNAPSHOT_PROGRESS => {
                    let t = status.snapshot.entry(label(s, names::LABEL_TABLE));
                    t.or_default().progress = Some(s.value);
                }
                names::SNAPSHOT_ROWS => {
                    let t = status.snapshot.entry(label(s, names::LABEL_TABLE));
                    t.or_default().rows = Some(s.value);
                }
                _ => {}
            }
        }
        status
    }
}

/// The HTTP client that scrapes the bridge.
pub type BridgeClient = Client<HttpConnector, Empty<Bytes>>;

/// A client for scraping, with the connect timeout bounded.
pub fn client() -> BridgeClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(BRIDGE_TIMEOUT));
    Client::builder(TokioExecutor::new()).build(connector)
}

/// Fetches the exposition, within [`BRIDGE_TIMEOUT`] and [`MAX_EXPOSITION_BYTES`].
async fn scrape(client: &BridgeClient, url: &str) -> Result<String, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|_| "the configured URL does not parse".to_string())?;
    let fetch = async {
        let resp = client
            .get(uri)
            .await
            .map_err(|e| format!("cannot reach the bridge: {}", root_cause(&e)))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!("the bridge answered HTTP {}", status.as_u16()));
        }
        let body = Limited::new(resp.into_body(), MAX_EXPOSITION_BYTES)
            .collect()
            .await
            .map_err(|e| format!("reading the bridge's metrics failed: {e}"))?
            .to_bytes();
        String::from_utf8(body.to_vec()).map_err(|_| "the bridge's metrics are not UTF-8".into())
    };
    tokio::time::timeout(BRIDGE_TIMEOUT, fetch)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "the bridge did not answer within {} ms",
                BRIDGE_TIMEOUT.as_millis()
            ))
        })
}

/// The innermost error's message (connection refused, …).
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// `GET /api/v1/bridge`.
pub(super) async fn bridge(
    State(st): State<AdminState>,
    Extension(console): Extension<Arc<ConsoleState>>,
    config: Option<Extension<ConsoleConfig>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, AdminError> {
    let _ = authorize(
        &st,
        &headers,
        remote,
        Role::Viewer,
        "GET /api/v1/bridge",
        None,
    )
    .await?;
    let Some(url) = config.and_then(|Extension(c)| c.bridge_metrics_url) else {
        return Ok(Json(
            serde_json::json!({ "configured": false, "reachable": false }),
        ));
    };
    let text = match scrape(&console.bridge_client, &url).await {
        Ok(text) => text,
        Err(error) => {
            tracing::warn!(error = %error, "console could not read the bridge's metrics");
            return Ok(Json(serde_json::json!({
                "configured": true, "reachable": false, "error": error,
            })));
        }
    };
    let status = match parse_exposition(&text) {
        Ok(samples) => BridgeStatus::from_samples(&samples),
        Err(e) => {
            return Ok(Json(serde_json::json!({
                "configured": true, "reachable": true, "error": e.to_string(),
            })));
        }
    };
    let baseline = console
        .bridge_readings
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .record(Instant::now(), status.events_total);
    let events_per_second = baseline.map(|(secs, then)| {
        // Totals are whole counts carried as floats.
        per_second(status.events_total as u64, then as u64, secs)
    });
    let mut body = serde_json::to_value(&status).unwrap_or_default();
    if let Some(map) = body.as_object_mut() {
        map.insert("configured".into(), true.into());
        map.insert("reachable".into(), true.into());
        map.insert("events_per_second".into(), events_per_second.into());
    }
    Ok(Json(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPOSITION: &str = "# HELP fig_bridge_events_published Domain events.\n\
        # TYPE fig_bridge_events_published counter\n\
        fig_bridge_events_published_total{event_type=\"OrderPlaced\"} 7\n\
        fig_bridge_events_published_total{event_type=\"PaymentCaptured\"} 5\n\
        fig_bridge_dead_letters_total{reason=\"unmapped \\\"code\\\"\"} 2\n\
        fig_bridge_slot_lag_bytes 4096\n\
        fig_bridge_streaming 1\n\
        fig_bridge_snapshot_progress_ratio{table=\"t_ord_hdr\"} 0.5\n\
        fig_bridge_snapshot_rows_total{table=\"t_ord_hdr\"} 1000\n\
        fig_bridge_commit_to_ack_seconds_bucket{le=\"+Inf\"} 3\n\
        # EOF\n";

    /// The console's figures come out of a bridge exposition, escaped labels included.
    #[test]
    fn bridge_status_from_exposition() {
        let samples = parse_exposition(EXPOSITION).expect("parses");
        let s = BridgeStatus::from_samples(&samples);
        assert_eq!(s.events_total, 12.0);
        assert_eq!(s.dead_letters_total, 2.0);
        assert_eq!(s.dead_letters_by_reason["unmapped \"code\""], 2.0);
        assert_eq!(s.slot_lag_bytes, Some(4096.0));
        assert_eq!(s.streaming, Some(true));
        assert_eq!(
            s.snapshot["t_ord_hdr"],
            SnapshotTable {
                progress: Some(0.5),
                rows: Some(1000.0)
            }
        );
    }

    /// A malformed line is refused with its line number.
    #[test]
    fn malformed_lines_name_their_line() {
        for bad in [
            "metric{a=\"b\" 1",
            "metric notanumber",
            "metric",
            "{a=\"b\"} 1",
        ] {
            let e = parse_exposition(&format!("# c\n{bad}\n")).expect_err(bad);
            assert_eq!(e.line, 2, "{bad}");
        }
    }
}
