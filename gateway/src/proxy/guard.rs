//! The per-side call with failure isolation around [`Upstreams::send`]: bulkhead, breaker and
//! timeouts (see [`crate::resilience`] for the rules). One [`SideGuard`] per capability and side,
//! built once from the configuration and shared by every public worker.
//!
//! [`SideGuard::attempt`] makes one attempt and classifies how it ended; the proxy decides from
//! that whether to retry, fall back to legacy or answer fast.

use http::{Response, StatusCode};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::shadowing::ShadowState;
use crate::shadow::ShadowConfig;

use super::upstream::{Call, ResponseBody, UpstreamError, Upstreams};
use crate::resilience::retry::{is_idempotent, may_fall_back};
use crate::resilience::{
    AttemptBody, AttemptFailure, Breach, Bulkhead, BulkheadPermit, FallbackConfig, NotResendable,
    ReplayableBody, RequestFacts, ResilienceConfig, RetryPolicy, SharedBreaker, SideResilience,
    SloGuard, TimedBody, TimedOut, TimeoutConfig, Verdict,
};
use crate::route::{RouteTable, Side};

/// Failure isolation of one side of one capability.
#[derive(Debug)]
pub struct SideGuard {
    bulkhead: Bulkhead,
    /// The upstream's breaker.
    pub breaker: SharedBreaker,
    /// Same-side retries and their budget.
    pub retry: RetryPolicy,
    timeouts: TimeoutConfig,
}

/// Both sides of one capability plus its fallback rule.
#[derive(Debug)]
pub struct CapabilityGuard {
    /// `[legacy, new]`.
    pub sides: [SideGuard; 2],
    /// When new's failures go to legacy.
    pub fallback: FallbackConfig,
    /// Shadow gate, comparator and mismatch log.
    pub shadow: Arc<ShadowState>,
    slo: Option<Mutex<SloWatch>>,
    /// Largest request body kept for a retry or fallback.
    max_replay_body_bytes: usize,
}

/// The SLO guard of one capability and when it last evaluated.
#[derive(Debug)]
struct SloWatch {
    guard: SloGuard,
    evaluated: Instant,
}

/// Least time between two SLO evaluations of one capability (they read the whole window).
const SLO_EVALUATION_INTERVAL: Duration = Duration::from_millis(100);

/// A breach of a capability's SLO guard, for the control plane to roll back.
#[derive(Debug)]
pub struct SloBreach {
    /// Index of the capability in the table.
    pub capability: usize,
    /// The figures.
    pub breach: Breach,
}

impl CapabilityGuard {
    /// The client's body made ready for the attempts on `side`: kept in memory (up to
    /// `max_replay_body_bytes`, waiting at most the side's first-byte timeout) when some rule
    /// could send the request again, streamed once otherwise.
    pub async fn request_body(
        &self,
        body: AttemptBody,
        method: &http::Method,
        side: Side,
    ) -> ReplayableBody {
        let this = &self.sides[side as usize];
        let fallback = side == Side::New && self.fallback.enabled;
        let may_resend = if is_idempotent(method) {
            fallback || this.retry.retries_enabled()
        } else {
            fallback && self.fallback.unsent_writes
        };
        let limit = may_resend.then_some(self.max_replay_body_bytes);
        ReplayableBody::read(body, limit, this.timeouts.first_byte).await
    }

    /// Why a request new failed with `failure` was not sent to legacy (`None` if it may be).
    pub fn why_not_resent(
        &self,
        facts: RequestFacts,
        failure: AttemptFailure,
        body: &ReplayableBody,
    ) -> Option<NotResent> {
        let why = may_fall_back(&self.fallback, facts, failure).err()?;
        let (label, text) = match (why, body.not_buffered()) {
            (NotResendable::BodyNotReplayable, Some(body)) => (body.as_label(), body.to_string()),
            (NotResendable::NotIdempotent, _) if !failure.request_may_have_left() => (
                why.as_label(),
                format!("{why} (writes go to legacy only with fallback.unsent_writes)"),
            ),
            _ => (why.as_label(), why.to_string()),
        };
        Some(NotResent { label, text })
    }

    /// Records one call to `side` that took `latency` and ended at `now` (`ok` false for connect
    /// errors, timeouts and 5xx) and returns a breach when new now does worse than allowed; the
    /// windows restart after a breach.
    pub fn record_call(
        &self,
        side: Side,
        ok: bool,
        latency: Duration,
        now: Instant,
    ) -> Option<Breach> {
        let slo = self.slo.as_ref()?;
        let mut watch = slo.lock().unwrap_or_else(PoisonError::into_inner);
        match side {
            Side::New => watch.guard.record_new(ok, latency, now),
            Side::Legacy => watch.guard.record_legacy(ok, latency, now),
        }
        if side == Side::Legacy || now.duration_since(watch.evaluated) < SLO_EVALUATION_INTERVAL {
            return None;
        }
        watch.evaluated = now;
        match watch.guard.evaluate(now) {
            Verdict::Breach(b) => {
                watch.guard.reset();
                Some(b)
            }
            _ => None,
        }
    }
}

/// Why a failed request was not sent to legacy: a metric label and the text for the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotResent {
    /// For `fig_gateway_not_resent{reason}`, e.g. `body_over_replay_limit`.
    pub label: &'static str,
    /// For the fast answer and the log.
    pub text: String,
}

/// Every capability's guards, in table order; the default route last.
#[derive(Debug)]
pub struct Guards {
    caps: Vec<CapabilityGuard>,
    breaches: Option<tokio::sync::mpsc::Sender<SloBreach>>,
}

impl Guards {
    /// Guards for the table, from each capability's `resilience` settings (validated already).
    pub fn new(table: &RouteTable, configs: &[(ResilienceConfig, ShadowConfig)]) -> Guards {
        let now = Instant::now();
        let side = |c: &SideResilience| SideGuard {
            bulkhead: Bulkhead::new(c.bulkhead),
            breaker: SharedBreaker::new(c.breaker, now),
            retry: RetryPolicy::new(c.retry),
            timeouts: c.timeouts,
        };
        let default = (ResilienceConfig::default(), ShadowConfig::default());
        let caps = (0..=table.capabilities.len())
            .map(|i| {
                let (c, shadow) = configs.get(i).unwrap_or(&default);
                CapabilityGuard {
                    sides: [side(&c.legacy), side(&c.new)],
                    fallback: c.fallback,
                    slo: c.slo_guard.enabled.then(|| {
                        Mutex::new(SloWatch {
                            guard: SloGuard::new(c.slo_guard, now),
                            evaluated: now,
                        })
                    }),
                    shadow: Arc::new(ShadowState::new(
                        shadow,
                        &format!("capability[{i}].shadow.compare"),
                    )),
                    max_replay_body_bytes: c.max_replay_body_bytes,
                }
            })
            .collect();
        Guards {
            caps,
            breaches: None,
        }
    }

    /// Where SLO breaches are sent (the control plane's rollback task).
    pub fn with_breaches(mut self, breaches: tokio::sync::mpsc::Sender<SloBreach>) -> Guards {
        self.breaches = Some(breaches);
        self
    }

    /// Records one call of a capability (`None`: the default route, not guarded) that ran from
    /// `started` to `ended`, and hands a breach to the rollback task.
    pub fn record_call(
        &self,
        capability: Option<usize>,
        side: Side,
        ok: bool,
        started: Instant,
        ended: Instant,
    ) {
        let Some(i) = capability else { return };
        let latency = ended.saturating_duration_since(started);
        if let Some(breach) = self.caps[i].record_call(side, ok, latency, ended)
            && let Some(tx) = &self.breaches
        {
            // A full queue means a rollback of this kind is already pending.
            let _ = tx.try_send(SloBreach {
                capability: i,
                breach,
            });
        }
    }

    /// The guard of a capability (`None`: the default route).
    pub fn capability(&self, capability: Option<usize>) -> &CapabilityGuard {
        let last = self.caps.len() - 1;
        &self.caps[capability.unwrap_or(last).min(last)]
    }

    /// The shadow machinery of capability `name`.
    pub fn shadow(&self, table: &RouteTable, name: &str) -> Option<&ShadowState> {
        table.index_of(name).map(|i| &*self.caps[i].shadow)
    }

    /// Every connect timeout configured, so the client pools can honour each.
    pub fn connect_timeouts(&self) -> Vec<Duration> {
        self.caps
            .iter()
            .flat_map(|c| c.sides.iter().map(|s| s.timeouts.connect))
            .collect()
    }
}

/// A response head with its body timed and the bulkhead slot held until it has streamed.
pub struct Answer {
    /// The upstream's response, body wrapped in the idle/whole-request timers.
    pub response: Response<TimedBody<ResponseBody>>,
    /// Freed when the response body is dropped.
    pub slot: BulkheadPermit,
}

/// How one attempt ended.
pub enum Outcome {
    /// A response head arrived (a 5xx one counted against the upstream already).
    Answered(Box<Answer>),
    /// No usable answer: what failed, and the `Retry-After` for a refusal.
    Failed(AttemptFailure, Option<Duration>),
    /// The client's request body could not be read or was too large; the upstream is not at
    /// fault and the breaker did not count it.
    ClientBody(UpstreamError),
}

impl SideGuard {
    /// This side's timeouts.
    pub fn timeouts(&self) -> &TimeoutConfig {
        &self.timeouts
    }

    /// One attempt: take a slot, pass the breaker, send with the timers running. `started` is
    /// when the caller began it (one clock read per attempt, shared with the caller); returns how
    /// it ended and when the head (or the failure) came.
    pub async fn attempt(
        &self,
        upstreams: &Upstreams,
        call: Call<'_>,
        started: Instant,
        client_at_fault: impl Fn(&UpstreamError) -> bool,
    ) -> (Outcome, Instant) {
        // The timers start once a slot is held: after a wait in the queue, read the clock again.
        let (slot, started) = match self.bulkhead.try_acquire() {
            Some(slot) => (slot, started),
            None => match self.bulkhead.acquire().await {
                Ok(slot) => (slot, Instant::now()),
                Err(shed) => {
                    let failed = Outcome::Failed(AttemptFailure::Shed, Some(shed.retry_after));
                    return (failed, Instant::now());
                }
            },
        };
        let permit = match self.breaker.try_call(started) {
            Ok(p) => p,
            Err(open) => {
                let refused = Outcome::Failed(
                    AttemptFailure::BreakerOpen,
                    Some(Duration::from_secs(open.retry_after_secs())),
                );
                return (refused, started);
            }
        };
        let first_byte = self.timeouts.first_byte.min(self.timeouts.request);
        let sent = tokio::time::timeout_at(
            tokio::time::Instant::from_std(started + first_byte),
            upstreams.send(self.timeouts.connect, call, started),
        )
        .await;
        let now = Instant::now();
        let outcome = match sent {
            Err(_elapsed) => {
                permit.failure(now);
                Outcome::Failed(
                    AttemptFailure::from_timeout(TimedOut::FirstByte, false),
                    None,
                )
            }
            Ok(Err(e)) if client_at_fault(&e) => {
                drop(permit);
                Outcome::ClientBody(e)
            }
            Ok(Err(e)) => {
                permit.failure(now);
                let failure = if e.is_connect() {
                    AttemptFailure::Connect
                } else {
                    AttemptFailure::NoResponse
                };
                Outcome::Failed(failure, None)
            }
            Ok(Ok(resp)) => {
                if resp.status().is_server_error() {
                    permit.failure(now);
                } else {
                    permit.success(now);
                }
                let finish_by = tokio::time::Instant::from_std(started + self.timeouts.request);
                let response = resp.map(|b| TimedBody::new(b, self.timeouts.idle, finish_by));
                Outcome::Answered(Box::new(Answer { response, slot }))
            }
        };
        (outcome, now)
    }
}

/// The fast answer's status for a failure that is neither retried nor sent to legacy.
pub fn fail_fast_status(failure: AttemptFailure) -> StatusCode {
    failure
        .fail_fast_status()
        .unwrap_or(StatusCode::BAD_GATEWAY)
}

/// Short reason text for a fast answer, with why the request was not sent to legacy.
pub fn reason(
    failure: AttemptFailure,
    side: Side,
    capability: &str,
    not_resent: Option<&str>,
) -> String {
    let what = match failure {
        AttemptFailure::Connect => "could not connect to the upstream",
        AttemptFailure::BreakerOpen => "the upstream's circuit breaker is open",
        AttemptFailure::Shed => "too many requests in flight to the upstream",
        AttemptFailure::NoResponse => {
            "the upstream closed the connection or did not answer in time"
        }
        AttemptFailure::ServerError(_) => "the upstream failed",
        AttemptFailure::AfterResponseStarted => "the upstream failed mid-response",
    };
    match not_resent {
        Some(why) => format!(
            "{what} ({} side of {capability}); not sent to legacy: {why}\n",
            side.as_str()
        ),
        None => format!("{what} ({} side of {capability})\n", side.as_str()),
    }
}
