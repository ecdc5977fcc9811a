//! Automatic rollback guard: does the new side do clearly worse than legacy?
//!
//! The proxy records every call to either side of a capability (`ok = false` for connect
//! errors, timeouts and 5xx, including new-side failures that were then served by legacy) and
//! asks [`SloGuard::evaluate`] afterwards. Over the sliding `window`:
//!
//! - with fewer than `min_samples` calls to new, nothing is decided;
//! - the baseline is legacy's own figures when legacy has `min_samples` calls in the window,
//!   otherwise the absolute ceilings `max_error_rate` / `max_p99` (a capability at 100 % new
//!   sends legacy nothing to compare with);
//! - against legacy, new breaches when its error rate exceeds legacy's by more than
//!   `error_rate_margin`, or its p99 exceeds legacy's p99 × (1 + `p99_margin`) + `p99_slack`;
//!   against the ceilings, when it exceeds `max_error_rate` or `max_p99` themselves.
//!
//! A [`Breach`] carries every figure that led to it, ready for the audit record, the metric and
//! the error-level log line; the caller rolls the capability back and calls [`SloGuard::reset`].
//! Pure: time is passed in.

use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::config::InvalidSetting;
use super::window::{CallCounts, LatencyHistogram, SlidingWindow, WindowStats};

/// Default span compared.
pub const DEFAULT_SLO_WINDOW: Duration = Duration::from_secs(60);
/// Default fewest calls (per side) before anything is decided.
pub const DEFAULT_SLO_MIN_SAMPLES: u64 = 100;
/// Default extra error rate new may have over legacy (0.02 = 2 percentage points).
pub const DEFAULT_ERROR_RATE_MARGIN: f64 = 0.02;
/// Default relative p99 allowance over legacy (0.5 = 50 % slower).
pub const DEFAULT_P99_MARGIN: f64 = 0.5;
/// Default absolute p99 allowance on top of the relative one.
pub const DEFAULT_P99_SLACK: Duration = Duration::from_millis(20);
/// Default error-rate ceiling when legacy has too few calls to compare with.
pub const DEFAULT_MAX_ERROR_RATE: f64 = 0.05;
const WINDOW_SLOTS: u32 = 12;

/// SLO guard settings (`[capability.resilience.slo_guard]`).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SloGuardConfig {
    /// Roll back automatically on a breach.
    pub enabled: bool,
    /// Span compared.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Fewest calls per side in the window before deciding.
    pub min_samples: u64,
    /// Extra error rate (absolute, 0..1) new may have over the baseline.
    pub error_rate_margin: f64,
    /// Relative p99 allowance over legacy's p99 (0.5 = 50 %).
    pub p99_margin: f64,
    /// Absolute p99 allowance added to the relative one.
    #[serde(with = "humantime_serde")]
    pub p99_slack: Duration,
    /// Error-rate baseline when legacy has fewer than `min_samples` calls.
    pub max_error_rate: f64,
    /// p99 baseline when legacy has fewer than `min_samples` calls (unset: not checked).
    #[serde(with = "humantime_serde")]
    pub max_p99: Option<Duration>,
}

impl Default for SloGuardConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            window: DEFAULT_SLO_WINDOW,
            min_samples: DEFAULT_SLO_MIN_SAMPLES,
            error_rate_margin: DEFAULT_ERROR_RATE_MARGIN,
            p99_margin: DEFAULT_P99_MARGIN,
            p99_slack: DEFAULT_P99_SLACK,
            max_error_rate: DEFAULT_MAX_ERROR_RATE,
            max_p99: None,
        }
    }
}

impl SloGuardConfig {
    /// Every problem, with key paths under `at`.
    pub fn validate(&self, at: &str) -> Vec<InvalidSetting> {
        let mut problems = Vec::new();
        if self.window < Duration::from_secs(1) {
            problems.push(InvalidSetting::new(at, "window", "must be at least 1s"));
        }
        if self.min_samples == 0 {
            problems.push(InvalidSetting::new(at, "min_samples", "must be at least 1"));
        }
        for (field, value) in [
            ("error_rate_margin", self.error_rate_margin),
            ("max_error_rate", self.max_error_rate),
        ] {
            if !(0.0..=1.0).contains(&value) {
                problems.push(InvalidSetting::new(at, field, "must be in [0, 1]"));
            }
        }
        if !(self.p99_margin >= 0.0 && self.p99_margin.is_finite()) {
            problems.push(InvalidSetting::new(at, "p99_margin", "must be 0 or more"));
        }
        problems
    }
}

#[derive(Debug, Clone, Default)]
struct SideStats {
    counts: CallCounts,
    latency: LatencyHistogram,
}

impl WindowStats for SideStats {
    fn merge(&mut self, other: &Self) {
        self.counts.merge(&other.counts);
        self.latency.merge(&other.latency);
    }
}

/// One side's figures over the window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SideFigures {
    /// Calls in the window.
    pub samples: u64,
    /// Of which failed.
    pub errors: u64,
    /// errors / samples.
    pub error_rate: f64,
    /// p99 latency in milliseconds (bucket upper bound), when there were calls.
    pub p99_ms: Option<f64>,
}

impl SideFigures {
    fn of(stats: &SideStats) -> Self {
        Self {
            samples: stats.counts.calls,
            errors: stats.counts.failures,
            error_rate: stats.counts.failure_rate(),
            p99_ms: stats.latency.quantile(0.99).map(|d| d.as_secs_f64() * 1e3),
        }
    }
}

/// What new was compared against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Baseline {
    /// Legacy's figures over the same window.
    Legacy,
    /// The configured ceilings (legacy had too few calls).
    Ceilings,
}

/// Everything the guard looked at.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SloFigures {
    /// Span compared, in seconds.
    pub window_secs: u64,
    /// New side.
    pub new: SideFigures,
    /// Legacy side.
    pub legacy: SideFigures,
    /// What new was compared against.
    pub baseline: Baseline,
}

/// One limit new went over.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BreachReason {
    /// New's error rate went over `limit`.
    ErrorRate {
        /// New's error rate.
        new: f64,
        /// Baseline plus margin.
        limit: f64,
    },
    /// New's p99 went over `limit_ms`.
    P99Latency {
        /// New's p99 in ms.
        new_ms: f64,
        /// Baseline p99 with margins, in ms.
        limit_ms: f64,
    },
}

/// New did worse than allowed: roll back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Breach {
    /// The limits that were exceeded (at least one).
    pub reasons: Vec<BreachReason>,
    /// All figures, for the audit record.
    pub figures: SloFigures,
}

impl fmt::Display for Breach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reasons: Vec<String> = self
            .reasons
            .iter()
            .map(|reason| match reason {
                BreachReason::ErrorRate { new, limit } => format!(
                    "new error rate {:.1}% over limit {:.1}%",
                    new * 100.0,
                    limit * 100.0
                ),
                BreachReason::P99Latency { new_ms, limit_ms } => {
                    format!("new p99 {new_ms:.1}ms over limit {limit_ms:.1}ms")
                }
            })
            .collect();
        let figures = &self.figures;
        write!(
            f,
            "{} (window {}s, new {} calls {} errors, legacy {} calls {} errors, baseline {:?})",
            reasons.join("; "),
            figures.window_secs,
            figures.new.samples,
            figures.new.errors,
            figures.legacy.samples,
            figures.legacy.errors,
            figures.baseline
        )
    }
}

/// The guard's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Too few calls to new in the window.
    NotEnoughData(SloFigures),
    /// New is within its limits.
    Healthy(SloFigures),
    /// New went over a limit.
    Breach(Breach),
}

/// Sliding comparison of new against legacy for one capability.
#[derive(Debug, Clone)]
pub struct SloGuard {
    config: SloGuardConfig,
    new: SlidingWindow<SideStats>,
    legacy: SlidingWindow<SideStats>,
}

impl SloGuard {
    /// A guard with empty windows starting at `now`.
    pub fn new(config: SloGuardConfig, now: Instant) -> Self {
        Self {
            config,
            new: SlidingWindow::new(config.window, WINDOW_SLOTS, now),
            legacy: SlidingWindow::new(config.window, WINDOW_SLOTS, now),
        }
    }

    /// Records one call to new.
    pub fn record_new(&mut self, ok: bool, latency: Duration, now: Instant) {
        let slot = self.new.current(now);
        slot.counts.record(!ok);
        slot.latency.record(latency);
    }

    /// Records one call to legacy.
    pub fn record_legacy(&mut self, ok: bool, latency: Duration, now: Instant) {
        let slot = self.legacy.current(now);
        slot.counts.record(!ok);
        slot.latency.record(latency);
    }

    /// Forgets everything, e.g. after a rollback or a toggle change.
    pub fn reset(&mut self) {
        self.new.clear();
        self.legacy.clear();
    }

    /// Compares the sides over the window ending at `now`.
    pub fn evaluate(&self, now: Instant) -> Verdict {
        let (new, legacy) = (self.new.total(now), self.legacy.total(now));
        let baseline = if legacy.counts.calls >= self.config.min_samples {
            Baseline::Legacy
        } else {
            Baseline::Ceilings
        };
        let figures = SloFigures {
            window_secs: self.config.window.as_secs(),
            new: SideFigures::of(&new),
            legacy: SideFigures::of(&legacy),
            baseline,
        };
        if new.counts.calls < self.config.min_samples {
            return Verdict::NotEnoughData(figures);
        }
        let reasons = self.breaches(&figures);
        if reasons.is_empty() {
            Verdict::Healthy(figures)
        } else {
            Verdict::Breach(Breach { reasons, figures })
        }
    }

    fn breaches(&self, figures: &SloFigures) -> Vec<BreachReason> {
        let config = &self.config;
        let (base_error_rate, base_p99_ms) = match figures.baseline {
            Baseline::Legacy => (figures.legacy.error_rate, figures.legacy.p99_ms),
            Baseline::Ceilings => (
                config.max_error_rate,
                config.max_p99.map(|d| d.as_secs_f64() * 1e3),
            ),
        };
        let mut reasons = Vec::new();
        let error_limit = match figures.baseline {
            Baseline::Legacy => base_error_rate + config.error_rate_margin,
            Baseline::Ceilings => base_error_rate,
        };
        if figures.new.error_rate > error_limit {
            reasons.push(BreachReason::ErrorRate {
                new: figures.new.error_rate,
                limit: error_limit,
            });
        }
        if let (Some(new_ms), Some(base_ms)) = (figures.new.p99_ms, base_p99_ms) {
            let limit_ms = match figures.baseline {
                Baseline::Legacy => {
                    base_ms * (1.0 + config.p99_margin) + config.p99_slack.as_secs_f64() * 1e3
                }
                Baseline::Ceilings => base_ms,
            };
            if new_ms > limit_ms {
                reasons.push(BreachReason::P99Latency { new_ms, limit_ms });
            }
        }
        reasons
    }
}

#[cfg(test)]
#[path = "slo_guard_tests.rs"]
mod tests;
