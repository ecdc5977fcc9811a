//! Telemetry names (metric names, label keys) in one place, and the Prometheus registry.
//!
//! Per-request metrics are created once per capability and side when the gateway starts, so the
//! request path only touches atomics: no label allocation, no family look-up.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::route::{RouteTable, Side};
use crate::shadow::SkipReason;
use crate::toggle::{ToggleState, Toggles};

/// Proxied requests, by capability, side and status class (`2xx`, …, `error`).
pub const REQUESTS: &str = "fig_gateway_requests";
/// Time to the upstream's response head, by capability and side.
pub const REQUEST_DURATION_SECONDS: &str = "fig_gateway_request_duration_seconds";
/// Requests whose response has not finished streaming, by capability and side.
pub const IN_FLIGHT: &str = "fig_gateway_in_flight_requests";
/// 1 for each capability's current toggle state, 0 for the others.
pub const TOGGLE_STATE: &str = "fig_gateway_toggle_state";
/// Each capability's toggle percentage (share to new, or shadow sample).
pub const TOGGLE_PERCENT: &str = "fig_gateway_toggle_percent";
/// Admin change attempts, by outcome (`applied`, `refused`).
pub const TOGGLE_CHANGES: &str = "fig_gateway_toggle_changes";
/// 1 while the toggle store accepts changes.
pub const STORE_READY: &str = "fig_gateway_store_ready";
/// Requests refused by the gateway itself before routing (bad head, too large), by reason.
pub const REJECTED: &str = "fig_gateway_rejected_requests";

/// Requests new failed that were answered by legacy instead, by capability and failure.
pub const FALLBACKS: &str = "fig_gateway_fallbacks";
/// Requests new failed that were not sent to legacy, by capability and reason
/// (`body_over_replay_limit`, `not_idempotent`, `fallback_disabled`, …).
pub const NOT_RESENT: &str = "fig_gateway_not_resent";
/// Requests refused by a full bulkhead (503 + `Retry-After`), by capability and side.
pub const SHED: &str = "fig_gateway_shed_requests";
/// Same-side retries, by capability and side.
pub const RETRIES: &str = "fig_gateway_retries";
/// Circuit breaker state per capability and side: closed 0, half-open 1, open 2.
pub const BREAKER_STATE: &str = "fig_gateway_breaker_state";
/// Responses cut because the upstream's body stalled (idle timeout) or ran past the whole-request
/// timeout after the head had been forwarded, by capability and side.
pub const RESPONSE_BODY_TIMEOUTS: &str = "fig_gateway_response_body_timeouts";

/// Shadowed requests per capability by outcome: `match`, `mismatch`, `error`, or why the shadow
/// call was skipped (`saturated`, `body_over_bound`, …).
pub const SHADOW: &str = "fig_gateway_shadow_requests";

/// Automatic rollbacks by the SLO guard, by capability.
pub const AUTO_ROLLBACKS: &str = "fig_gateway_slo_rollbacks";

/// Label key: why a call failed (`connect`, `breaker_open`, `shed`, `no_response`, …).
pub const LABEL_FAILURE: &str = "failure";
/// Label key: capability name (`default` for unmatched requests).
pub const LABEL_CAPABILITY: &str = "capability";
/// Label key: `legacy` or `new`.
pub const LABEL_SIDE: &str = "side";
/// Label key: status class.
pub const LABEL_CLASS: &str = "class";
/// Label key: toggle state.
pub const LABEL_STATE: &str = "state";
/// Label key: outcome of an admin change.
pub const LABEL_OUTCOME: &str = "outcome";
/// Label key: why a request was rejected.
pub const LABEL_REASON: &str = "reason";
/// Capability label of the default route.
pub const DEFAULT_CAPABILITY: &str = "default";

/// Status classes, in counter index order.
const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "error"];
/// Latency buckets, seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

type Labels = Vec<(&'static str, String)>;

/// Handles for one capability and side.
#[derive(Debug, Clone)]
pub struct SideMetrics {
    by_class: [Counter; 6],
    /// Time to response head.
    pub duration: Histogram,
    /// Requests in flight.
    pub in_flight: Gauge,
    /// The side's breaker state (closed 0, half-open 1, open 2).
    pub breaker_state: Gauge,
    /// Responses cut mid-body by the idle or whole-request timeout.
    pub body_timeouts: Counter,
}

impl SideMetrics {
    /// Counts a response by its status.
    pub fn count_status(&self, status: u16) {
        let i = match status {
            100..=199 => 0,
            200..=299 => 1,
            300..=399 => 2,
            400..=499 => 3,
            _ => 4,
        };
        self.by_class[i].inc();
    }

    /// Counts a request that got no upstream response.
    pub fn count_error(&self) {
        self.by_class[5].inc();
    }

    /// Requests answered so far, and of those the errors (5xx or no upstream response).
    pub fn totals(&self) -> RequestTotals {
        let count = |range: std::ops::Range<usize>| -> u64 {
            self.by_class[range].iter().map(Counter::get).sum()
        };
        RequestTotals {
            requests: count(0..CLASSES.len()),
            errors: count(4..CLASSES.len()),
        }
    }
}

/// Cumulative request counts of one capability and side, read from the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestTotals {
    /// Every request, whatever its outcome.
    pub requests: u64,
    /// Of which 5xx answers and requests that got no upstream response.
    pub errors: u64,
}

/// The gateway's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// `[legacy, new]` per capability, in table order; the default route last.
    sides: Vec<[SideMetrics; 2]>,
    toggle_state: Family<Labels, Gauge>,
    toggle_percent: Family<Labels, Gauge>,
    /// Admin change attempts by outcome.
    pub changes: Family<Labels, Counter>,
    /// Store readiness.
    pub store_ready: Gauge,
    rejected: Family<Labels, Counter>,
    fallbacks: Family<Labels, Counter>,
    not_resent: Family<Labels, Counter>,
    shed: Family<Labels, Counter>,
    retries: Family<Labels, Counter>,
    shadow: Family<Labels, Counter>,
    /// Skip counters per capability (last: the default route) and reason, made once: a skip
    /// is counted on the request's path.
    shadow_skips: Vec<[Counter; SkipReason::ALL.len()]>,
    auto_rollbacks: Family<Labels, Counter>,
    names: Vec<String>,
}

impl Metrics {
    /// Registers every metric for the table's capabilities.
    pub fn new(table: &RouteTable) -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<Labels, Counter>::default();
        let duration =
            Family::<Labels, Histogram>::new_with_constructor(new_histogram as fn() -> Histogram);
        let in_flight = Family::<Labels, Gauge>::default();
        let breaker_state = Family::<Labels, Gauge>::default();
        let body_timeouts = Family::<Labels, Counter>::default();
        let mut names: Vec<String> = table
            .capabilities
            .iter()
            .map(|c| c.name.to_string())
            .collect();
        names.push(DEFAULT_CAPABILITY.to_string());
        let sides = names
            .iter()
            .map(|name| {
                [Side::Legacy, Side::New].map(|side| {
                    let base = vec![
                        (LABEL_CAPABILITY, name.clone()),
                        (LABEL_SIDE, side.as_str().to_string()),
                    ];
                    SideMetrics {
                        by_class: CLASSES.map(|class| {
                            let mut l = base.clone();
                            l.push((LABEL_CLASS, class.to_string()));
                            requests.get_or_create(&l).clone()
                        }),
                        duration: duration.get_or_create(&base).clone(),
                        in_flight: in_flight.get_or_create(&base).clone(),
                        breaker_state: breaker_state.get_or_create(&base).clone(),
                        body_timeouts: body_timeouts.get_or_create(&base).clone(),
                    }
                })
            })
            .collect();
        registry.register(
            REQUESTS,
            "Proxied requests by capability, side and status class",
            requests,
        );
        registry.register(
            REQUEST_DURATION_SECONDS,
            "Time to the upstream response head",
            duration,
        );
        registry.register(
            IN_FLIGHT,
            "Requests whose response is still streaming",
            in_flight,
        );
        registry.register(
            RESPONSE_BODY_TIMEOUTS,
            "Responses cut mid-body by the idle or whole-request timeout",
            body_timeouts,
        );
        let toggle_state = Family::<Labels, Gauge>::default();
        let toggle_percent = Family::<Labels, Gauge>::default();
        let changes = Family::<Labels, Counter>::default();
        let rejected = Family::<Labels, Counter>::default();
        let store_ready = Gauge::default();
        registry.register(
            TOGGLE_STATE,
            "1 for the capability's current toggle state",
            toggle_state.clone(),
        );
        registry.register(
            TOGGLE_PERCENT,
            "Toggle percentage (share to new or shadow sample)",
            toggle_percent.clone(),
        );
        registry.register(
            TOGGLE_CHANGES,
            "Admin toggle change attempts by outcome",
            changes.clone(),
        );
        registry.register(
            STORE_READY,
            "1 while the toggle store accepts changes",
            store_ready.clone(),
        );
        registry.register(
            REJECTED,
            "Requests refused before routing, by reason",
            rejected.clone(),
        );
        let fallbacks = Family::<Labels, Counter>::default();
        let not_resent = Family::<Labels, Counter>::default();
        registry.register(
            NOT_RESENT,
            "Requests new failed that were not sent to legacy, by reason",
            not_resent.clone(),
        );
        let shed = Family::<Labels, Counter>::default();
        let retries = Family::<Labels, Counter>::default();
        registry.register(
            FALLBACKS,
            "Requests new failed that legacy answered instead, by failure",
            fallbacks.clone(),
        );
        registry.register(SHED, "Requests shed by a full bulkhead", shed.clone());
        registry.register(RETRIES, "Same-side retries", retries.clone());
        registry.register(
            BREAKER_STATE,
            "Circuit breaker state: closed 0, half-open 1, open 2",
            breaker_state.clone(),
        );
        let shadow = Family::<Labels, Counter>::default();
        registry.register(
            SHADOW,
            "Shadowed requests by outcome (match, mismatch, error, skip reason)",
            shadow.clone(),
        );
        let shadow_skips = names
            .iter()
            .map(|name| {
                SkipReason::ALL.map(|reason| {
                    shadow
                        .get_or_create(&vec![
                            (LABEL_CAPABILITY, name.clone()),
                            (LABEL_OUTCOME, reason.as_label().to_string()),
                        ])
                        .clone()
                })
            })
            .collect();
        let auto_rollbacks = Family::<Labels, Counter>::default();
        registry.register(
            AUTO_ROLLBACKS,
            "Automatic rollbacks by the SLO guard",
            auto_rollbacks.clone(),
        );
        Metrics {
            auto_rollbacks,
            shadow,
            shadow_skips,
            fallbacks,
            not_resent,
            shed,
            retries,
            registry,
            sides,
            toggle_state,
            toggle_percent,
            changes,
            store_ready,
            rejected,
            names,
        }
    }

    /// Handles for a capability (`None`: the default route) and side.
    pub fn side(&self, capability: Option<usize>, side: Side) -> &SideMetrics {
        &self.sides[self.slot(capability)][side as usize]
    }

    /// Publishes the toggle states.
    pub fn set_toggles(&self, toggles: &Toggles) {
        for (i, name) in self.names.iter().enumerate().take(self.names.len() - 1) {
            let state = toggles.state(i);
            for s in ToggleState::NAMES {
                let labels = vec![
                    (LABEL_CAPABILITY, name.clone()),
                    (LABEL_STATE, s.to_string()),
                ];
                self.toggle_state
                    .get_or_create(&labels)
                    .set(i64::from(state.name() == s));
            }
            let percent = match state {
                ToggleState::Legacy => 0,
                ToggleState::New => 100,
                ToggleState::Percent { percent } | ToggleState::Shadow { percent } => percent,
            };
            self.toggle_percent
                .get_or_create(&vec![(LABEL_CAPABILITY, name.clone())])
                .set(i64::from(percent));
        }
    }

    /// Counts an admin change attempt.
    pub fn count_change(&self, outcome: &'static str) {
        self.changes
            .get_or_create(&vec![(LABEL_OUTCOME, outcome.to_string())])
            .inc();
    }

    /// Counts a request refused before routing.
    pub fn count_rejected(&self, reason: &'static str) {
        self.rejected
            .get_or_create(&vec![(LABEL_REASON, reason.to_string())])
            .inc();
    }

    /// Counts a request new failed (`failure`) that legacy answered instead.
    pub fn count_fallback(&self, capability: Option<usize>, failure: &str) {
        self.fallbacks
            .get_or_create(&vec![
                (LABEL_CAPABILITY, self.name(capability).to_string()),
                (LABEL_FAILURE, failure.to_string()),
            ])
            .inc();
    }

    /// Counts a request new failed that was not sent to legacy, and why.
    pub fn count_not_resent(&self, capability: Option<usize>, reason: &str) {
        self.not_resent
            .get_or_create(&vec![
                (LABEL_CAPABILITY, self.name(capability).to_string()),
                (LABEL_REASON, reason.to_string()),
            ])
            .inc();
    }

    /// Counts a shadowed request's outcome.
    pub fn count_shadow(&self, capability: Option<usize>, outcome: &str) {
        self.shadow
            .get_or_create(&vec![
                (LABEL_CAPABILITY, self.name(capability).to_string()),
                (LABEL_OUTCOME, outcome.to_string()),
            ])
            .inc();
    }

    /// Counts a request not shadowed, by reason (no allocation, no lock).
    pub fn count_shadow_skip(&self, capability: Option<usize>, reason: SkipReason) {
        self.shadow_skips[self.slot(capability)][reason.index()].inc();
    }

    /// Counts an automatic rollback.
    pub fn count_auto_rollback(&self, capability: usize) {
        self.auto_rollbacks
            .get_or_create(&vec![(
                LABEL_CAPABILITY,
                self.name(Some(capability)).to_string(),
            )])
            .inc();
    }

    /// Counts a request shed by a full bulkhead.
    pub fn count_shed(&self, capability: Option<usize>, side: Side) {
        self.shed
            .get_or_create(&self.side_labels(capability, side))
            .inc();
    }

    /// Counts a same-side retry.
    pub fn count_retry(&self, capability: Option<usize>, side: Side) {
        self.retries
            .get_or_create(&self.side_labels(capability, side))
            .inc();
    }

    fn name(&self, capability: Option<usize>) -> &str {
        &self.names[self.slot(capability)]
    }

    /// Index of a capability's per-capability handles (`names`, `sides`, `shadow_skips` are all
    /// one per capability plus the default route, last).
    fn slot(&self, capability: Option<usize>) -> usize {
        let last = self.names.len() - 1;
        capability.unwrap_or(last).min(last)
    }

    fn side_labels(&self, capability: Option<usize>, side: Side) -> Labels {
        vec![
            (LABEL_CAPABILITY, self.name(capability).to_string()),
            (LABEL_SIDE, side.as_str().to_string()),
        ]
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

fn new_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}
