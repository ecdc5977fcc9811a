//! Whether one request is shadowed: its method must be configured as safe to shadow, it must
//! fall in the sample, and a shadow slot must be free at once (shadow calls have their own
//! bounded concurrency; when it is full the shadow is dropped, never queued).
//!
//! The check order keeps the counters meaningful: method, then sample, then slot, so a
//! sampled-out request never takes a slot. The random roll is passed in, so tests decide it.

use std::sync::Arc;

use http::Method;
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::config::ShadowConfig;

/// Why a request was not shadowed (or its shadow call not made).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The method is not configured as safe to shadow.
    MethodNotShadowed,
    /// Outside the sample percentage.
    SampledOut,
    /// All shadow slots were busy.
    Saturated,
    /// The request body was larger than the copy bound.
    BodyOverBound,
    /// The request body failed or was cut off before its end.
    BodyAborted,
}

impl SkipReason {
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
            slots: Arc::new(Semaphore::new(capacity)),
        }
    }

    /// Decides for one request. `sample_percent` is the toggle's shadow sample (100 when
    /// unset); `roll` is uniform in `[0, 1)`, e.g. `rand::random::<f64>()`.
    pub fn admit(&self, method: &Method, sample_percent: f64, roll: f64) -> ShadowAdmission {
        if !self.methods.contains(method) {
            return ShadowAdmission::Skipped(SkipReason::MethodNotShadowed);
        }
        if roll * 100.0 >= sample_percent {
            return ShadowAdmission::Skipped(SkipReason::SampledOut);
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(max_concurrent: usize) -> ShadowGate {
        ShadowGate::new(&ShadowConfig {
            max_concurrent,
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
                outcome(&gate.admit(&method, percent, roll)),
                want,
                "{method} {percent} {roll}"
            );
        }
    }

    /// When every slot is busy the shadow is dropped at once; a finished shadow frees its slot.
    #[test]
    fn saturated_gate_drops_shadows() {
        let gate = gate(2);
        let first = gate.admit(&Method::GET, 100.0, 0.0);
        let _second = gate.admit(&Method::GET, 100.0, 0.0);
        assert_eq!(gate.in_flight(), 2);
        assert_eq!(
            outcome(&gate.admit(&Method::GET, 100.0, 0.0)),
            Some(SkipReason::Saturated)
        );
        assert_eq!(
            outcome(&gate.admit(&Method::POST, 100.0, 0.0)),
            Some(SkipReason::MethodNotShadowed)
        );
        drop(first);
        assert_eq!(outcome(&gate.admit(&Method::GET, 100.0, 0.0)), None);
    }
}
