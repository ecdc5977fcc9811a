//! Shadow traffic: legacy answers the client while the same request also goes to new, off the
//! client's path, and the two answers are compared.
//!
//! Pieces: [`config::ShadowConfig`] (per capability), [`gate`] (may this request be shadowed:
//! method, sample, concurrency), [`tee`] (copies the request body, bounded, while it streams to
//! legacy), [`compare`] (structural comparison with noise subtraction and redaction) and
//! [`mismatch_log`] (last N mismatches and the counters behind the mismatch-rate metric).
//!
//! How the proxy uses them for a capability in toggle state `shadow`:
//!
//! ```text
//! client ─▶ gate.admit(method, sample, primary in flight) ── Skipped(reason) ─▶ log.count_skipped(reason); plain proxy
//!              │ Admitted(permit)
//!              ▼
//!         tee(request body, max_body_bytes) ──▶ legacy (primary: streams unchanged, answers client)
//!              │ copy: Complete(bytes) | OverBound | Aborted   (awaited in a spawned task only)
//!              ▼  spawned task, holding the permit
//!         new(request parts + copy) ─ and, with noise_subtraction, legacy again
//!              ▼  both bodies buffered up to max_response_bytes
//!         Comparator::compare / compare_without_noise ─▶ MismatchLog::record
//! ```
//!
//! The client's response never waits for, and is never changed by, the shadow task: the legacy
//! response is forwarded as it streams, and the primary response's body is buffered for the
//! comparison only through a second bounded tee. Shadow calls run under their own semaphore
//! (`max_concurrent`); when it is full the shadow is dropped and counted, never queued.

pub mod compare;
pub mod config;
pub mod gate;
pub mod mismatch_log;
pub mod pointer;
pub mod tee;

pub use compare::{Comparator, Comparison, Difference, ObservedResponse};
pub use config::{CompareConfig, ShadowConfig};
pub use gate::{ShadowAdmission, ShadowGate, SkipReason};
pub use mismatch_log::{MismatchLog, MismatchRecord, ShadowCounts};
pub use tee::{TeeBody, TeeOutcome, tee};
