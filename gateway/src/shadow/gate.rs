//! Whether one request is shadowed: its method must be configured as safe to shadow, it must
//! fall in the sample, and a shadow slot must be free at once (shadow calls have their own
//! bounded concurrency; when it is full the shadow is dropped, never queued). The slots in use
//! are also held to `max_share` of the primary requests in flight, at least [`MIN_SLOTS`]: on a busy
//! gateway a fixed number of slots would be refilled as fast as they free up, and the shadow
//! would take CPU and upstream capacity from the primary in proportion to its slots.
//!
//! The check order keeps the counters meaningful: method, then sample, then slot, so a
//! sampled-out request never takes a slot. The random roll is passed in, so tests decide it.

use std::sync::Arc;

use http::Method;
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::config::ShadowConfig;

/// Shadow calls always allowed in flight whatever the share says (within `max_concurrent`): a
/// quiet capability's requests come one after another, and each shadow call outlives the
/// answer it copies (with noise subtraction it makes two calls), so fewer slots would drop
/// many of them.
pub const MIN_SLOTS: usize = 3;

/// Why a request was not shadowed (or its shadow call not made).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The method is not configured as safe to shadow.
    MethodNotShadowed,
    /// Outside the sample percentage.
    SampledOut,
    /// All shadow slots were busy, or the shadow calls already in flight reached their share
    /// of the primary's.
    Saturated,
    /// The request body was larger than the copy bound.
    BodyOverBound,
    /// The request body failed or was cut off before its end.
    BodyAborted,
}

impl SkipReason {
    /// Every reason, in declaration order ([`SkipReason::index`]).
    pub const ALL: [SkipReason; 5] = [
        Self::MethodNotShadowed,
        Self::SampledOut,
        Self::Saturated,
        Self::BodyOverBound,
        Self::BodyAborted,
    ];

    /// Position in [`SkipReason::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Label value for metrics.
    pub fn as_label(self) -> &'static str {
        match self {
            Self::MethodNotShadowed => "method_not_shadowed",
            Self::SampledOut => "sampled_out",
            Self::Saturated => "saturated",
            Self::BodyOverBound => "body_over_bound",
            Self::BodyAborted => "body_aborted",
        }
    }
}

/// A held shadow slot; the shadow task keeps it until it has finished comparing.
#[derive(Debug)]
pub struct ShadowPermit {
    _slot: OwnedSemaphorePermit,
}

/// The gate's answer.
#[derive(Debug)]
pub enum ShadowAdmission {
    /// Shadow this request, holding the slot for the duration of the shadow work.
    Admitted(ShadowPermit),
    /// Do not shadow it; count the reason.
    Skipped(SkipReason),
}

/// Shadow admission for one capability.
#[derive(Debug, Clone)]
pub struct ShadowGate {
    methods: Vec<Method>,
    capacity: usize,
    max_share: f64,
    slots: Arc<Semaphore>,
}

impl ShadowGate {
    /// A gate with every slot free. Methods that do not parse are left out (`validate()`
    /// reports them).
    pub fn new(config: &ShadowConfig) -> Self {
        let capacity = config.max_concurrent.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            methods: config
                .methods
                .iter()
                .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
                .collect(),
            capacity,
            max_share: config.max_share,
            slots: Arc::new(Semaphore::new(capacity)),
        }
    }

    /// Decides for one request. `sample_percent` is the toggle's shadow sample (100 when
    /// unset); `roll` is uniform in `[0, 1)`, e.g. `rand::random::<f64>()`;
    /// `primary_in_flight` is the capability's primary requests in flight.
    pub fn admit(
        &self,
        method: &Method,
        sample_percent: f64,
        roll: f64,
        primary_in_flight: usize,
    ) -> ShadowAdmission {
        if !self.methods.contains(method) {
            return ShadowAdmission::Skipped(SkipReason::MethodNotShadowed);
        }
        if roll * 100.0 >= sample_percent {
            return ShadowAdmission::Skipped(SkipReason::SampledOut);
        }
        if self.in_flight() >= self.share_limit(primary_in_flight) {
            return ShadowAdmission::Skipped(SkipReason::Saturated);
        }
        match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(slot) => ShadowAdmission::Admitted(ShadowPermit { _slot: slot }),
            Err(_) => ShadowAdmission::Skipped(SkipReason::Saturated),
        }
    }

    /// Shadow calls in flight.
    pub fn in_flight(&self) -> usize {
        self.capacity - self.slots.available_permits()
    }

    /// Most shadow calls allowed in flight beside `primary_in_flight` primary requests.
    fn share_limit(&self, primary_in_flight: usize) -> usize {
        // Both factors are small (connections, a share ≤ 1): the product fits.
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        // Rounded down: the share is a ceiling ("at most 5 %"), not a target.
        let share = (primary_in_flight as f64 * self.max_share).floor() as usize;
        share.max(MIN_SLOTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(max_concurrent: usize) -> ShadowGate {
        ShadowGate::new(&ShadowConfig {
            max_concurrent,
            max_share: 1.0,
            ..ShadowConfig::default()
        })
    }

    fn outcome(admission: &ShadowAdmission) -> Option<SkipReason> {
        match admission {
            ShadowAdmission::Admitted(_) => None,
            ShadowAdmission::Skipped(reason) => Some(*reason),
        }
    }

    /// Method, then sample, decide before any slot is taken.
    #[test]
    fn method_and_sample_decide_first() {
        let cases = [
            (Method::GET, 100.0, 0.999, None),
            (Method::HEAD, 50.0, 0.49, None),
            (Method::GET, 50.0, 0.5, Some(SkipReason::SampledOut)),
            (Method::GET, 0.0, 0.0, Some(SkipReason::SampledOut)),
            (
                Method::POST,
                100.0,
                0.0,
                Some(SkipReason::MethodNotShadowed),
            ),
            (
                Method::DELETE,
                100.0,
                0.0,
                Some(SkipReason::MethodNotShadowed),
            ),
        ];
        for (method, percent, roll, want) in cases {
            let gate = gate(1);
            assert_eq!(
                outcome(&gate.admit(&method, percent, roll, 0)),
                want,
                "{method} {percent} {roll}"
            );
        }
    }

    /// When every slot is busy the shadow is dropped at once; a finished shadow frees its slot.
    #[test]
    fn saturated_gate_drops_shadows() {
        let gate = gate(2);
        let first = gate.admit(&Method::GET, 100.0, 0.0, 100);
        let _second = gate.admit(&Method::GET, 100.0, 0.0, 100);
        assert_eq!(gate.in_flight(), 2);
        assert_eq!(
            outcome(&gate.admit(&Method::GET, 100.0, 0.0, 100)),
            Some(SkipReason::Saturated)
        );
        assert_eq!(
            outcome(&gate.admit(&Method::POST, 100.0, 0.0, 100)),
            Some(SkipReason::MethodNotShadowed)
        );
        drop(first);
        assert_eq!(outcome(&gate.admit(&Method::GET, 100.0, 0.0, 100)), None);
    }

    /// Shadow calls are held to their share of the primary requests in flight, never below
    /// `MIN_SLOTS`, and never above `max_concurrent`.
    #[test]
    fn shadow_calls_keep_to_their_share_of_the_primary() {
        // (primary requests in flight, shadow calls admitted before the first refusal)
        for (primary, want) in [(0, MIN_SLOTS), (41, 4), (64, 6), (500, 8)] {
            let gate = ShadowGate::new(&ShadowConfig {
                max_concurrent: 8,
                max_share: 0.1,
                ..ShadowConfig::default()
            });
            let mut held = Vec::new();
            loop {
                match gate.admit(&Method::GET, 100.0, 0.0, primary) {
                    ShadowAdmission::Admitted(permit) => held.push(permit),
                    ShadowAdmission::Skipped(reason) => {
                        assert_eq!(reason, SkipReason::Saturated);
                        break;
                    }
                }
            }
            assert_eq!(held.len(), want, "primary in flight {primary}");
        }
    }
}
