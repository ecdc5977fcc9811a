//! Failure isolation at the edge: a slow or broken new service degrades its capability, never
//! the whole gateway.
//!
//! Building blocks, one per file, none holding hyper types in its logic: [`timeouts`],
//! [`bulkhead`], [`breaker`], [`retry`] (retry and fallback rules plus the retry budget),
//! [`slo_guard`] (automatic rollback), all configured through [`config::ResilienceConfig`]
//! (one per capability, with a `legacy` and a `new` side), over the time windows in [`window`].
//!
//! The proxy keeps one `Bulkhead` per capability and side, one `SharedBreaker` per upstream,
//! one `RetryPolicy` per capability and side and one `SloGuard` per capability, and applies them
//! to each call in this order:
//!
//! ```text
//! bulkhead.acquire()          full → Shed: 503 + Retry-After at once (or fall back, see retry)
//!   breaker.try_call(now)     open → BreakerOpen: fall back to legacy or 503 + Retry-After
//!     CallDeadlines::start    connect / first byte / whole request timers; TimedBody for idle
//!       call the upstream
//!     classify → AttemptFailure (or success); permit.success()/failure() if it
//!                counts_against_upstream(); slo_guard.record_new/legacy(ok, latency, now)
//!   retry: policy.may_retry → backoff(n, jitter) → again from the breaker
//!   fallback: may_fall_back → same call on the legacy side (its own bulkhead/breaker)
//!   otherwise → fast 502 (connect) / 504 (no response) / 503 (refused) with the reason
//! ```
//!
//! Request bodies up to `max_replay_body_bytes` are read into memory before the first attempt
//! ([`replay`]) so that retries and fallbacks send the same bytes; larger ones stream once.
//!
//! Keep the bulkhead permit (and the breaker permit) alive inside the response body, so that a
//! slot is freed only when the response has finished streaming. Once the first response byte
//! has gone to the client the call is never retried or sent to legacy.

pub mod breaker;
pub mod bulkhead;
pub mod config;
pub mod replay;
pub mod retry;
pub mod slo_guard;
pub mod timed_body;
pub mod timeouts;
pub mod window;

pub use breaker::{
    BreakerConfig, BreakerOpen, BreakerPermit, BreakerSnapshot, BreakerState, SharedBreaker,
};
pub use bulkhead::{Bulkhead, BulkheadConfig, BulkheadPermit, Shed};
pub use config::{InvalidSetting, ResilienceConfig, SideResilience};
pub use replay::{AttemptBody, NotBuffered, ReplayableBody};
pub use retry::{
    AttemptFailure, FallbackConfig, NotResendable, RequestFacts, RetryConfig, RetryPolicy,
};
pub use slo_guard::{Breach, SloGuard, SloGuardConfig, Verdict};
pub use timed_body::{BodyTimedOut, TimedBody};
pub use timeouts::{CallDeadlines, TimedOut, TimeoutConfig};
