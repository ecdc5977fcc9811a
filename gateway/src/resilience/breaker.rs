//! Circuit breaker of one upstream.
//!
//! ```text
//!            N consecutive failures, or failure rate ≥ R over the window (≥ M calls)
//!  Closed ─────────────────────────────────────────────────────────────▶ Open
//!    ▲                                                                   │ cool_down
//!    │ successes_to_close probe successes      any probe failure         ▼
//!    └──────────────────────────────────── HalfOpen ◀────────────────────┘
//!                                     (≤ half_open_probes in flight)
//! ```
//!
//! [`CircuitBreaker`] is the pure state machine (time passed in). [`SharedBreaker`] wraps it for
//! concurrent use and hands out a [`BreakerPermit`] per call; a permit dropped without an outcome
//! (client gone, call cancelled) frees its probe slot without counting as success or failure.
//! Outcomes of calls admitted before the last state change are ignored, so a burst of slow
//! failures that were already in flight cannot re-open a breaker that has just closed.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::config::InvalidSetting;
use super::window::{CallCounts, SlidingWindow};

/// Default number of consecutive failures that opens the breaker.
pub const DEFAULT_CONSECUTIVE_FAILURES: u32 = 5;
/// Default failure rate over the window that opens the breaker.
pub const DEFAULT_FAILURE_RATE: f64 = 0.5;
/// Default span of the failure-rate window.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(10);
/// Default fewest calls in the window before the failure rate counts.
pub const DEFAULT_MIN_SAMPLES: u64 = 20;
/// Default time the breaker stays open before probing.
pub const DEFAULT_COOL_DOWN: Duration = Duration::from_secs(5);
/// Default number of concurrent probes while half-open.
pub const DEFAULT_HALF_OPEN_PROBES: u32 = 1;
/// Default probe successes needed to close again.
pub const DEFAULT_SUCCESSES_TO_CLOSE: u32 = 1;
const WINDOW_SLOTS: u32 = 10;

/// Breaker settings (`[capability.resilience.<side>.breaker]`).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker.
    pub consecutive_failures: u32,
    /// Failure rate (0 < r ≤ 1) over `window` that opens the breaker.
    pub failure_rate: f64,
    /// Span of the failure-rate window.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Fewest calls in the window before the failure rate is trusted.
    pub min_samples: u64,
    /// Time open before the first probe.
    #[serde(with = "humantime_serde")]
    pub cool_down: Duration,
    /// Probes allowed in flight while half-open.
    pub half_open_probes: u32,
    /// Probe successes that close the breaker.
    pub successes_to_close: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            consecutive_failures: DEFAULT_CONSECUTIVE_FAILURES,
            failure_rate: DEFAULT_FAILURE_RATE,
            window: DEFAULT_WINDOW,
            min_samples: DEFAULT_MIN_SAMPLES,
            cool_down: DEFAULT_COOL_DOWN,
            half_open_probes: DEFAULT_HALF_OPEN_PROBES,
            successes_to_close: DEFAULT_SUCCESSES_TO_CLOSE,
        }
    }
}

impl BreakerConfig {
    /// Every problem, with key paths under `at`.
    pub fn validate(&self, at: &str) -> Vec<InvalidSetting> {
        let mut problems = Vec::new();
        let mut at_least_one = |field: &str, value: u64| {
            if value == 0 {
                problems.push(InvalidSetting::new(at, field, "must be at least 1"));
            }
        };
        at_least_one("consecutive_failures", self.consecutive_failures.into());
        at_least_one("min_samples", self.min_samples);
        at_least_one("half_open_probes", self.half_open_probes.into());
        at_least_one("successes_to_close", self.successes_to_close.into());
        if !(self.failure_rate > 0.0 && self.failure_rate <= 1.0) {
            problems.push(InvalidSetting::new(at, "failure_rate", "must be in (0, 1]"));
        }
        if self.window.is_zero() {
            problems.push(InvalidSetting::new(at, "window", "must be greater than 0"));
        }
        if self.cool_down.is_zero() {
            problems.push(InvalidSetting::new(
                at,
                "cool_down",
                "must be greater than 0",
            ));
        }
        problems
    }
}

/// Breaker state, as shown in metrics and the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls flow.
    Closed,
    /// Calls are refused until the cool-down ends.
    Open,
    /// A few probes test whether the upstream recovered.
    HalfOpen,
}

impl BreakerState {
    /// Gauge value for metrics: closed 0, half-open 1, open 2.
    pub fn as_gauge(self) -> i64 {
        match self {
            Self::Closed => 0,
            Self::HalfOpen => 1,
            Self::Open => 2,
        }
    }
}

/// Point-in-time view of a breaker for metrics and the admin API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BreakerSnapshot {
    /// Current state.
    pub state: BreakerState,
    /// Failures in a row since the last success.
    pub consecutive_failures: u32,
    /// Calls and failures in the current window.
    pub window: CallCounts,
    /// Milliseconds until the next probe is allowed, when open.
    pub retry_in_ms: Option<u64>,
    /// Probes in flight, when half-open.
    pub probes_in_flight: u32,
    /// How many times the breaker has opened since start.
    pub times_opened: u64,
}

/// Whether a call may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead; report the outcome with this ticket.
    Allowed(Ticket),
    /// Refused: the breaker is open (or all probe slots are taken).
    Rejected {
        /// When trying again makes sense.
        retry_in: Duration,
    },
}

/// Identifies an admitted call when its outcome is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    generation: u64,
    probe: bool,
}

impl Ticket {
    /// True when the call is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }
}

/// How an admitted call ended, as far as the breaker cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallResult {
    /// The upstream answered acceptably.
    Success,
    /// Connect error, timeout or 5xx (see `retry::AttemptFailure::counts_against_upstream`).
    Failure,
    /// The call was given up for reasons not the upstream's (client left): not counted.
    Abandoned,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Closed,
    Open { until: Instant },
    HalfOpen { in_flight: u32, successes: u32 },
}

/// Pure circuit breaker state machine.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    phase: Phase,
    generation: u64,
    consecutive_failures: u32,
    window: SlidingWindow<CallCounts>,
    times_opened: u64,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig, now: Instant) -> Self {
        Self {
            config,
            phase: Phase::Closed,
            generation: 0,
            consecutive_failures: 0,
            window: SlidingWindow::new(config.window, WINDOW_SLOTS, now),
            times_opened: 0,
        }
    }

    /// Asks whether a call may start at `now`.
    pub fn admit(&mut self, now: Instant) -> Admission {
        if let Phase::Open { until } = self.phase {
            if now < until {
                return Admission::Rejected {
                    retry_in: until - now,
                };
            }
            self.enter(Phase::HalfOpen {
                in_flight: 0,
                successes: 0,
            });
        }
        match &mut self.phase {
            Phase::HalfOpen { in_flight, .. } if *in_flight < self.config.half_open_probes => {
                *in_flight += 1;
                Admission::Allowed(Ticket {
                    generation: self.generation,
                    probe: true,
                })
            }
            Phase::HalfOpen { .. } | Phase::Open { .. } => Admission::Rejected {
                retry_in: self.config.cool_down,
            },
            Phase::Closed => Admission::Allowed(Ticket {
                generation: self.generation,
                probe: false,
            }),
        }
    }

    /// Reports how the call admitted with `ticket` ended.
    pub fn record(&mut self, ticket: Ticket, result: CallResult, now: Instant) {
        if ticket.generation != self.generation {
            return;
        }
        match (&mut self.phase, result) {
            (_, CallResult::Abandoned) => {
                if let Phase::HalfOpen { in_flight, .. } = &mut self.phase {
                    *in_flight = in_flight.saturating_sub(1);
                }
            }
            (Phase::Closed, result) => {
                let failed = result == CallResult::Failure;
                self.window.current(now).record(failed);
                self.consecutive_failures = if failed {
                    self.consecutive_failures.saturating_add(1)
                } else {
                    0
                };
                if self.should_trip(now) {
                    self.open(now);
                }
            }
            (Phase::HalfOpen { .. }, CallResult::Failure) => self.open(now),
            (
                Phase::HalfOpen {
                    in_flight,
                    successes,
                },
                CallResult::Success,
            ) => {
                *in_flight = in_flight.saturating_sub(1);
                *successes += 1;
                if *successes >= self.config.successes_to_close {
                    self.enter(Phase::Closed);
                }
            }
            (Phase::Open { .. }, _) => {}
        }
    }

    fn should_trip(&self, now: Instant) -> bool {
        if self.consecutive_failures >= self.config.consecutive_failures {
            return true;
        }
        let counts = self.window.total(now);
        counts.calls >= self.config.min_samples && counts.failure_rate() >= self.config.failure_rate
    }

    fn open(&mut self, now: Instant) {
        self.times_opened += 1;
        self.enter(Phase::Open {
            until: now + self.config.cool_down,
        });
    }

    fn enter(&mut self, phase: Phase) {
        self.phase = phase;
        self.generation += 1;
        if phase == Phase::Closed {
            self.consecutive_failures = 0;
            self.window.clear();
        }
    }

    /// The state at `now` (an open breaker whose cool-down has passed reads as half-open).
    pub fn state(&self, now: Instant) -> BreakerState {
        match self.phase {
            Phase::Closed => BreakerState::Closed,
            Phase::Open { until } if now < until => BreakerState::Open,
            Phase::Open { .. } | Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// State and counts at `now`, for metrics and the admin API.
    pub fn snapshot(&self, now: Instant) -> BreakerSnapshot {
        let (retry_in_ms, probes_in_flight) = match self.phase {
            Phase::Open { until } if now < until => (Some((until - now).as_millis() as u64), 0),
            Phase::HalfOpen { in_flight, .. } => (None, in_flight),
            _ => (None, 0),
        };
        BreakerSnapshot {
            state: self.state(now),
            consecutive_failures: self.consecutive_failures,
            window: self.window.total(now),
            retry_in_ms,
            probes_in_flight,
            times_opened: self.times_opened,
        }
    }
}

/// The breaker refused the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("circuit breaker open: upstream is failing, next probe in {retry_in:?}")]
pub struct BreakerOpen {
    /// When trying again makes sense (use for `Retry-After`).
    pub retry_in: Duration,
}

impl BreakerOpen {
    /// `Retry-After` header value in whole seconds, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_in.as_secs_f64().ceil().max(1.0) as u64
    }
}

/// A breaker shared by all calls to one upstream.
#[derive(Debug, Clone)]
pub struct SharedBreaker {
    inner: Arc<Mutex<CircuitBreaker>>,
}

impl SharedBreaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig, now: Instant) -> Self {
        Self {
            inner: Arc::new(Mutex::new(CircuitBreaker::new(config, now))),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CircuitBreaker> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A permit for one call at `now`, or the reason there is none.
    pub fn try_call(&self, now: Instant) -> Result<BreakerPermit, BreakerOpen> {
        match self.lock().admit(now) {
            Admission::Allowed(ticket) => Ok(BreakerPermit {
                breaker: self.clone(),
                ticket: Some(ticket),
            }),
            Admission::Rejected { retry_in } => Err(BreakerOpen { retry_in }),
        }
    }

    /// State and counts at `now`.
    pub fn snapshot(&self, now: Instant) -> BreakerSnapshot {
        self.lock().snapshot(now)
    }

    /// State at `now` (no window totals: cheap enough for every call).
    pub fn state(&self, now: Instant) -> BreakerState {
        self.lock().state(now)
    }
}

/// Leave to make one call; report its outcome, or drop it to abandon the call.
#[derive(Debug)]
#[must_use = "report the outcome with success() or failure(); dropping abandons the call"]
pub struct BreakerPermit {
    breaker: SharedBreaker,
    ticket: Option<Ticket>,
}

impl BreakerPermit {
    /// True when this call is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.ticket.is_some_and(|t| t.is_probe())
    }

    /// The call succeeded.
    pub fn success(mut self, now: Instant) {
        self.finish(CallResult::Success, now);
    }

    /// The call failed in a way that counts against the upstream.
    pub fn failure(mut self, now: Instant) {
        self.finish(CallResult::Failure, now);
    }

    fn finish(&mut self, result: CallResult, now: Instant) {
        if let Some(ticket) = self.ticket.take() {
            self.breaker.lock().record(ticket, result, now);
        }
    }
}

impl Drop for BreakerPermit {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            // Abandoned calls only free their probe slot; the time is not used.
            self.breaker
                .lock()
                .record(ticket, CallResult::Abandoned, Instant::now());
        }
    }
}

#[cfg(test)]
#[path = "breaker_tests.rs"]
mod tests;
