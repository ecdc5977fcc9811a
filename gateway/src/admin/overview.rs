//! `GET /api/v1/whoami` and `GET /api/v1/overview`, the operator console's data: who the caller
//! is, and every capability's toggle, live request and error rates per side, breakers and shadow
//! figures, all from the gateway's own counters (the browser never parses Prometheus text).
//!
//! Counters are cumulative; a rate needs two readings. Each overview call records one reading in
//! a [`RateWindow`] and compares it with the oldest reading of the last [`RATE_WINDOW`], so the
//! first call answers `null` rates and the console's next poll (every ~2 s) has figures.

use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::{Extension, Json};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::auth::Role;
use super::{AdminError, AdminState, authorize};
use crate::observability::RequestTotals;
use crate::proxy::guard::Guards;
use crate::route::Side;
use crate::toggle::ToggleState;

/// Rates are computed over at most this much recent time.
pub const RATE_WINDOW: Duration = Duration::from_secs(10);
/// Two readings closer than this give no rate (too noisy).
pub const MIN_RATE_SPAN: Duration = Duration::from_millis(500);
/// Readings kept at most, however often the overview is polled.
const MAX_READINGS: usize = 256;

/// Timed readings of cumulative counters, for rates over the last [`RATE_WINDOW`].
#[derive(Debug)]
pub struct RateWindow<T> {
    readings: VecDeque<(Instant, T)>,
}

impl<T> Default for RateWindow<T> {
    fn default() -> Self {
        RateWindow {
            readings: VecDeque::new(),
        }
    }
}

impl<T: Clone> RateWindow<T> {
    /// Records the reading taken at `now` and returns the baseline to compute rates against:
    /// the oldest reading within the window and at least [`MIN_RATE_SPAN`] old, with the
    /// seconds since it. `None` until there is such a reading.
    pub fn record(&mut self, now: Instant, reading: T) -> Option<(f64, T)> {
        while self
            .readings
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) > RATE_WINDOW)
            || self.readings.len() >= MAX_READINGS
        {
            self.readings.pop_front();
        }
        let baseline = self
            .readings
            .front()
            .map(|(at, r)| (now.saturating_duration_since(*at), r.clone()))
            .filter(|(span, _)| *span >= MIN_RATE_SPAN)
            .map(|(span, r)| (span.as_secs_f64(), r));
        self.readings.push_back((now, reading));
        baseline
    }
}

/// Per-second rate of a cumulative count since its baseline.
pub fn per_second(now: u64, then: u64, seconds: f64) -> f64 {
    now.saturating_sub(then) as f64 / seconds
}

/// Readings of every capability's `[legacy, new]` totals, for the overview's rates.
pub type RequestReadings = Mutex<RateWindow<Vec<[RequestTotals; 2]>>>;

/// `GET /api/v1/whoami`: the caller's token name and role, and whether it may change toggles.
pub(super) async fn whoami(
    State(st): State<AdminState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<Value>, AdminError> {
    let actor = authorize(
        &st,
        &headers,
        remote,
        Role::Viewer,
        "GET /api/v1/whoami",
        None,
    )
    .await?;
    Ok(Json(json!({
        "name": actor.name,
        "role": actor.role,
        "may_change": actor.role == Role::Operator.as_str(),
    })))
}

/// One side of a capability in the overview.
#[derive(Debug, Serialize)]
struct SideView {
    requests_total: u64,
    errors_total: u64,
    /// Requests per second over the window; `null` until two readings exist.
    requests_per_second: Option<f64>,
    /// Errors (5xx or no upstream answer) per second over the window.
    errors_per_second: Option<f64>,
    /// Errors as a share of requests over the window (0..1); `null` without requests.
    error_ratio: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    breaker: Option<crate::resilience::BreakerSnapshot>,
}

fn side_view(
    now: RequestTotals,
    baseline: Option<(f64, RequestTotals)>,
    breaker: Option<crate::resilience::BreakerSnapshot>,
) -> SideView {
    let rate = baseline.map(|(secs, then)| {
        let requests = per_second(now.requests, then.requests, secs);
        let errors = per_second(now.errors, then.errors, secs);
        (
            requests,
            errors,
            (requests > 0.0).then(|| errors / requests),
        )
    });
    SideView {
        requests_total: now.requests,
        errors_total: now.errors,
        requests_per_second: rate.map(|r| r.0),
        errors_per_second: rate.map(|r| r.1),
        error_ratio: rate.and_then(|r| r.2),
        breaker,
    }
}

/// The share sent to new (`percent`), the shadow sample (`shadow`), 0 or 100 otherwise.
fn effective_percent(state: ToggleState) -> u8 {
    match state {
        ToggleState::Legacy => 0,
        ToggleState::New => 100,
        ToggleState::Percent { percent } | ToggleState::Shadow { percent } => percent,
    }
}

/// `GET /api/v1/overview`: every capability with its toggle, per-side rates, breakers and shadow
/// figures.
pub(super) async fn overview(
    State(st): State<AdminState>,
    guards: Option<Extension<Arc<Guards>>>,
    Extension(console): Extension<Arc<super::console::ConsoleState>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<Value>, AdminError> {
    let _ = authorize(
        &st,
        &headers,
        remote,
        Role::Viewer,
        "GET /api/v1/overview",
        None,
    )
    .await?;
    let live = st.control.live().load_full();
    let count = live.table.capabilities.len();
    let totals: Vec<[RequestTotals; 2]> = (0..count)
        .map(|i| [Side::Legacy, Side::New].map(|s| st.metrics.side(Some(i), s).totals()))
        .collect();
    let now = Instant::now();
    let baseline = console
        .request_readings
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .record(now, totals.clone());
    let guards = guards.as_deref().map(|g| &**g);
    let capabilities: Vec<Value> = live
        .table
        .capabilities
        .iter()
        .enumerate()
        .map(|(i, cap)| {
            let toggle = live.toggles.0[i];
            let sides = [Side::Legacy, Side::New].map(|side| {
                let then = baseline
                    .as_ref()
                    .and_then(|(secs, b)| b.get(i).map(|t| (*secs, t[side as usize])));
                let breaker = guards.map(|g| {
                    g.capability(Some(i)).sides[side as usize]
                        .breaker
                        .snapshot(now)
                });
                side_view(totals[i][side as usize], then, breaker)
            });
            let shadow = guards
                .and_then(|g| g.shadow(&live.table, &cap.name))
                .map(|s| {
                    let counts = s.log.counts();
                    json!({
                        "mismatch_rate": counts.mismatch_rate(),
                        "compared": counts.compared,
                        "mismatched": counts.mismatched,
                        "shadow_errors": counts.shadow_errors,
                    })
                });
            let [legacy, new] = sides;
            json!({
                "name": cap.name.as_ref(),
                "state": toggle.state.name(),
                "percent": effective_percent(toggle.state),
                "previous": toggle.previous.map(|p| p.to_string()),
                "version": toggle.version,
                "sides": { "legacy": legacy, "new": new },
                "shadow": shadow,
            })
        })
        .collect();
    Ok(Json(json!({
        "capabilities": capabilities,
        "rate_window_seconds": baseline.map(|(secs, _)| secs),
        "slo_guard_actor": crate::app::SLO_GUARD_ACTOR,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No rate from a single reading or readings too close; then rates against the oldest
    /// reading of the window, and readings older than the window are forgotten.
    #[test]
    fn rates_come_from_readings_within_the_window() {
        let t0 = Instant::now();
        let mut w = RateWindow::default();
        assert_eq!(w.record(t0, 10u64), None);
        assert_eq!(w.record(t0 + Duration::from_millis(100), 11), None);
        let (secs, base) = w.record(t0 + Duration::from_secs(2), 30).expect("rate");
        assert_eq!((secs, base), (2.0, 10));
        assert_eq!(per_second(30, base, secs), 10.0);
        // 20 s later everything before is out of the window: no baseline until the next reading.
        assert_eq!(w.record(t0 + Duration::from_secs(22), 50), None);
        let (secs, base) = w.record(t0 + Duration::from_secs(24), 70).expect("rate");
        assert_eq!((secs, base), (2.0, 50));
    }

    /// The window keeps a bounded number of readings however often it is polled.
    #[test]
    fn readings_are_bounded() {
        let t0 = Instant::now();
        let mut w = RateWindow::default();
        for i in 0..10_000u64 {
            w.record(t0 + Duration::from_micros(i), i);
        }
        assert!(w.readings.len() <= MAX_READINGS);
    }

    /// Error ratio is errors over requests in the window, absent without requests.
    #[test]
    fn side_view_computes_rates_and_ratio() {
        let then = RequestTotals {
            requests: 100,
            errors: 1,
        };
        let now = RequestTotals {
            requests: 300,
            errors: 51,
        };
        let v = side_view(now, Some((4.0, then)), None);
        assert_eq!(v.requests_per_second, Some(50.0));
        assert_eq!(v.errors_per_second, Some(12.5));
        assert_eq!(v.error_ratio, Some(0.25));
        let idle = side_view(then, Some((4.0, then)), None);
        assert_eq!(idle.error_ratio, None);
        assert_eq!(side_view(now, None, None).requests_per_second, None);
    }
}
