//! Which failed calls may be tried again (on the same side) or sent to legacy instead, within a
//! retry budget, with backoff and jitter.
//!
//! How far a failed attempt got decides what is safe:
//!
//! | failure                          | request left? | retry same side | fall back to legacy        |
//! |----------------------------------|---------------|-----------------|----------------------------|
//! | connect error, breaker open, shed| no            | idempotent¹     | idempotent, or any method with `unsent_writes` |
//! | no response head (timeout, reset)| maybe         | idempotent      | idempotent                 |
//! | 5xx response head, not forwarded | yes           | idempotent      | idempotent                 |
//! | anything after the response began streaming to the client | yes | never | never          |
//!
//! ¹ never on the same side when the breaker is open or the bulkhead shed the call.
//! Idempotent methods are those of RFC 9110 §9.2.2: GET, HEAD, OPTIONS, TRACE, PUT, DELETE.
//! Every rule also needs a body the proxy can send again (none, or fully buffered up to
//! `max_replay_body_bytes`, see [`super::replay`]); a larger body streams once and is never resent.
//!
//! Same-side retries are further limited by a [`tower::retry::budget::TpsBudget`]: each original
//! request deposits, each retry withdraws, so retries stay within `budget_ratio` (20 %) of
//! requests plus `budget_min_per_sec`. Fallbacks go to a different upstream and are not
//! budgeted, only counted by the proxy.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use serde::Deserialize;
use tower::retry::budget::{Budget, TpsBudget};

use super::config::InvalidSetting;
use super::timeouts::TimedOut;

/// Default same-side retries per request.
pub const DEFAULT_MAX_RETRIES: u32 = 1;
/// Default retries allowed per original request (0.2 = at most 20 % extra load).
pub const DEFAULT_BUDGET_RATIO: f32 = 0.2;
/// Default retries per second allowed regardless of the ratio (0: the ratio alone decides).
pub const DEFAULT_BUDGET_MIN_PER_SEC: u32 = 0;
/// Default span over which deposits are remembered.
pub const DEFAULT_BUDGET_TTL: Duration = Duration::from_secs(10);
/// Default first backoff.
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_millis(25);
/// Default longest backoff.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_millis(500);

/// Same-side retry settings (`[capability.resilience.<side>.retry]`).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Retries per request after the first attempt (0 disables retries).
    pub max_retries: u32,
    /// Retries allowed per original request, e.g. 0.2 for 20 %. Ratios are applied as
    /// 1 retry per `floor(1 / ratio)` requests, so 0.3 allows one in three.
    pub budget_ratio: f32,
    /// Retries per second always allowed on top of the ratio.
    pub budget_min_per_sec: u32,
    /// How long deposits count (1 s to 60 s).
    #[serde(with = "humantime_serde")]
    pub budget_ttl: Duration,
    /// First backoff; each further retry doubles it, up to `backoff_max`.
    #[serde(with = "humantime_serde")]
    pub backoff_base: Duration,
    /// Longest backoff.
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_retries: DEFAULT_MAX_RETRIES,
            budget_ratio: DEFAULT_BUDGET_RATIO,
            budget_min_per_sec: DEFAULT_BUDGET_MIN_PER_SEC,
            budget_ttl: DEFAULT_BUDGET_TTL,
            backoff_base: DEFAULT_BACKOFF_BASE,
            backoff_max: DEFAULT_BACKOFF_MAX,
        }
    }
}

impl RetryConfig {
    /// Every problem, with key paths under `at`. (The budget's own limits are checked here so
    /// that building it can never panic.)
    pub fn validate(&self, at: &str) -> Vec<InvalidSetting> {
        let mut problems = Vec::new();
        if !(0.0..=10.0).contains(&self.budget_ratio) {
            problems.push(InvalidSetting::new(
                at,
                "budget_ratio",
                "must be in [0, 10]",
            ));
        }
        if !(Duration::from_secs(1)..=Duration::from_secs(60)).contains(&self.budget_ttl) {
            problems.push(InvalidSetting::new(
                at,
                "budget_ttl",
                "must be between 1s and 60s",
            ));
        }
        if self.budget_min_per_sec > 1_000_000 {
            problems.push(InvalidSetting::new(
                at,
                "budget_min_per_sec",
                "must be at most 1000000",
            ));
        }
        if self.backoff_base > self.backoff_max {
            problems.push(InvalidSetting::new(
                at,
                "backoff_base",
                format!("must not exceed backoff_max ({:?})", self.backoff_max),
            ));
        }
        problems
    }
}

/// When a failed call to new may be sent to legacy (`[capability.resilience.fallback]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FallbackConfig {
    /// Fall back to legacy at all.
    pub enabled: bool,
    /// Also fall back for non-idempotent requests that provably never reached new (connect
    /// error, open breaker, shed). Off by default: such requests fail fast with 502/503.
    pub unsent_writes: bool,
}

impl Default for FallbackConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            unsent_writes: false,
        }
    }
}

impl FallbackConfig {
    /// Every problem, with key paths under `at` (there are none today; kept for symmetry).
    pub fn validate(&self, _at: &str) -> Vec<InvalidSetting> {
        Vec::new()
    }
}

/// How an attempt failed, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptFailure {
    /// Could not connect: the request never left.
    Connect,
    /// The breaker refused the call: the request never left.
    BreakerOpen,
    /// The bulkhead shed the call: the request never left.
    Shed,
    /// Sent, but no response head arrived (first-byte timeout, connection reset).
    NoResponse,
    /// A 5xx response head arrived; nothing was forwarded to the client yet.
    ServerError(u16),
    /// Failed after the response had started streaming to the client.
    AfterResponseStarted,
}

impl AttemptFailure {
    /// The failure for an expired timeout, given whether response bytes reached the client.
    pub fn from_timeout(phase: TimedOut, response_started: bool) -> Self {
        match phase {
            _ if response_started => Self::AfterResponseStarted,
            TimedOut::Connect => Self::Connect,
            _ => Self::NoResponse,
        }
    }

    /// True when the upstream may have seen the request.
    pub fn request_may_have_left(self) -> bool {
        !matches!(self, Self::Connect | Self::BreakerOpen | Self::Shed)
    }

    /// True when the failure is the upstream's and must be reported to its breaker.
    pub fn counts_against_upstream(self) -> bool {
        !matches!(self, Self::BreakerOpen | Self::Shed)
    }

    /// The status of the fast answer when the request is neither retried nor sent to legacy:
    /// 502 (could not connect), 503 (breaker open or shed: add `Retry-After`), 504 (no response
    /// in time). `None` when the upstream's own response is relayed (5xx) or the response had
    /// already started (the connection to the client is cut instead).
    pub fn fail_fast_status(self) -> Option<StatusCode> {
        match self {
            Self::Connect => Some(StatusCode::BAD_GATEWAY),
            Self::BreakerOpen | Self::Shed => Some(StatusCode::SERVICE_UNAVAILABLE),
            Self::NoResponse => Some(StatusCode::GATEWAY_TIMEOUT),
            Self::ServerError(_) | Self::AfterResponseStarted => None,
        }
    }
}

/// What the proxy knows about the request when an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestFacts {
    /// The method is idempotent (RFC 9110 §9.2.2).
    pub idempotent: bool,
    /// The body can be sent again (no body, or fully buffered).
    pub body_replayable: bool,
}

impl RequestFacts {
    /// Facts for `method`, with the body's replayability as the proxy knows it.
    pub fn new(method: &Method, body_replayable: bool) -> Self {
        Self {
            idempotent: is_idempotent(method),
            body_replayable,
        }
    }
}

/// RFC 9110 §9.2.2 idempotent methods.
pub fn is_idempotent(method: &Method) -> bool {
    [
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::TRACE,
        Method::PUT,
        Method::DELETE,
    ]
    .contains(method)
}

/// Why a failed request may not be sent again; the proxy answers fast with [`Self::status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum NotResendable {
    /// Response bytes already reached the client.
    #[error("the response had already started streaming")]
    ResponseStarted,
    /// The method is not idempotent and the request may have been processed.
    #[error("the method is not idempotent and the upstream may have processed it")]
    NotIdempotent,
    /// The body was streamed and cannot be sent again.
    #[error("the request body was streamed and cannot be replayed")]
    BodyNotReplayable,
    /// Retrying the same side makes no sense (open breaker, shed).
    #[error("the upstream is refusing calls (open breaker or full bulkhead)")]
    SideRefusing,
    /// `max_retries` reached.
    #[error("the retry limit was reached")]
    RetriesExhausted,
    /// The retry budget is spent.
    #[error("the retry budget is spent")]
    BudgetSpent,
    /// Fallback is disabled for this capability.
    #[error("fallback to legacy is disabled")]
    FallbackDisabled,
}

impl NotResendable {
    /// Metric label value.
    pub fn as_label(self) -> &'static str {
        match self {
            Self::ResponseStarted => "response_started",
            Self::NotIdempotent => "not_idempotent",
            Self::BodyNotReplayable => "body_not_replayable",
            Self::SideRefusing => "side_refusing",
            Self::RetriesExhausted => "retries_exhausted",
            Self::BudgetSpent => "budget_spent",
            Self::FallbackDisabled => "fallback_disabled",
        }
    }
}

/// Whether a request that failed with `failure` may be sent to legacy instead.
pub fn may_fall_back(
    config: &FallbackConfig,
    facts: RequestFacts,
    failure: AttemptFailure,
) -> Result<(), NotResendable> {
    if !config.enabled {
        return Err(NotResendable::FallbackDisabled);
    }
    resendable(facts, failure, config.unsent_writes)
}

fn resendable(
    facts: RequestFacts,
    failure: AttemptFailure,
    unsent_writes: bool,
) -> Result<(), NotResendable> {
    if failure == AttemptFailure::AfterResponseStarted {
        return Err(NotResendable::ResponseStarted);
    }
    if !facts.idempotent && (failure.request_may_have_left() || !unsent_writes) {
        return Err(NotResendable::NotIdempotent);
    }
    if !facts.body_replayable {
        return Err(NotResendable::BodyNotReplayable);
    }
    Ok(())
}

/// Same-side retry decisions for one side of one capability, with its shared budget.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    config: RetryConfig,
    budget: Arc<TpsBudget>,
}

impl RetryPolicy {
    /// A policy with a fresh budget. `config` must have passed `validate()`.
    pub fn new(config: RetryConfig) -> Self {
        let budget = TpsBudget::new(
            config
                .budget_ttl
                .clamp(Duration::from_secs(1), Duration::from_secs(60)),
            config.budget_min_per_sec.min(1_000_000),
            if config.budget_ratio.is_nan() {
                0.0
            } else {
                config.budget_ratio.clamp(0.0, 1_000.0)
            },
        );
        Self {
            config,
            budget: Arc::new(budget),
        }
    }

    /// Whether this side retries at all (`max_retries > 0`).
    pub fn retries_enabled(&self) -> bool {
        self.config.max_retries > 0
    }

    /// Call once per original request (not per retry): it earns budget for retries.
    pub fn record_request(&self) {
        self.budget.deposit();
    }

    /// Whether retry number `retries_so_far + 1` may go to the same side. Spends budget only
    /// when every other rule allows the retry.
    pub fn may_retry(
        &self,
        facts: RequestFacts,
        failure: AttemptFailure,
        retries_so_far: u32,
    ) -> Result<(), NotResendable> {
        if matches!(failure, AttemptFailure::BreakerOpen | AttemptFailure::Shed) {
            return Err(NotResendable::SideRefusing);
        }
        resendable(facts, failure, false)?;
        if retries_so_far >= self.config.max_retries {
            return Err(NotResendable::RetriesExhausted);
        }
        if !self.budget.withdraw() {
            return Err(NotResendable::BudgetSpent);
        }
        Ok(())
    }

    /// Backoff before retry number `retry` (1-based): half of `min(max, base·2^(retry-1))`
    /// plus `random_fraction` (0..1, e.g. `rand::random()`) of the other half ("equal jitter").
    pub fn backoff(&self, retry: u32, random_fraction: f64) -> Duration {
        let doublings = retry.saturating_sub(1).min(30);
        let ceiling = self
            .config
            .backoff_base
            .saturating_mul(1 << doublings)
            .min(self.config.backoff_max);
        let half = ceiling / 2;
        half + half.mul_f64(random_fraction.clamp(0.0, 1.0))
    }

    /// [`Self::backoff`] with a random fraction from the thread-local generator.
    pub fn backoff_with_jitter(&self, retry: u32) -> Duration {
        self.backoff(retry, rand::random::<f64>())
    }
}

#[cfg(test)]
#[path = "retry_tests.rs"]
mod tests;
