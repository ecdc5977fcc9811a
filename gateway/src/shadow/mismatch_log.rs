//! The last N mismatches of one capability, with their diffs, and the counters behind the
//! shadow metrics (compared, mismatched, skipped by reason, shadow errors).
//!
//! One [`MismatchLog`] per capability. The ring is bounded: the oldest mismatch is dropped when
//! a new one arrives at capacity, so memory stays fixed however many mismatches occur. Only
//! the path (never the query string), the method, the request id and the redacted diff are
//! kept; never a request or response body.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::compare::Comparison;
use super::gate::SkipReason;

/// One mismatch as shown by the admin API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MismatchRecord {
    /// When it was recorded, in milliseconds since the Unix epoch.
    pub recorded_at_ms: u64,
    /// The request's `x-request-id`, if any.
    pub request_id: Option<String>,
    /// Request method.
    pub method: String,
    /// Request path, without the query string.
    pub path: String,
    /// The differences (values redacted, shortened).
    pub comparison: Comparison,
}

/// What the shadow path did for one capability since start.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ShadowCounts {
    /// Shadow answers compared with legacy.
    pub compared: u64,
    /// Of which differed.
    pub mismatched: u64,
    /// Differences dropped as noise.
    pub noise_subtracted: u64,
    /// Shadow calls that failed (new unreachable, timed out, body too large to compare).
    pub shadow_errors: u64,
    /// Requests not shadowed, by reason.
    pub skipped: BTreeMap<SkipReason, u64>,
}

impl ShadowCounts {
    /// mismatched / compared, 0 when nothing was compared.
    pub fn mismatch_rate(&self) -> f64 {
        if self.compared == 0 {
            0.0
        } else {
            self.mismatched as f64 / self.compared as f64
        }
    }
}

#[derive(Debug, Default)]
struct State {
    recent: VecDeque<MismatchRecord>,
    counts: ShadowCounts,
}

/// Bounded record of one capability's shadow results.
#[derive(Debug)]
pub struct MismatchLog {
    capacity: usize,
    state: Mutex<State>,
    /// Skips by [`SkipReason::index`]: counted on the request's path, so without the lock.
    skipped: [AtomicU64; SkipReason::ALL.len()],
}

impl MismatchLog {
    /// A log keeping at most `capacity` (at least 1) mismatches.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            state: Mutex::new(State::default()),
            skipped: Default::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records one comparison of `method path` (the query string is dropped here) made at `at`.
    pub fn record(
        &self,
        comparison: Comparison,
        method: &str,
        path_and_query: &str,
        request_id: Option<&str>,
        at: SystemTime,
    ) {
        let mut state = self.lock();
        state.counts.compared += 1;
        state.counts.noise_subtracted += comparison.noise_subtracted as u64;
        if comparison.is_match() {
            return;
        }
        state.counts.mismatched += 1;
        if state.recent.len() == self.capacity {
            state.recent.pop_front();
        }
        let path = path_and_query.split('?').next().unwrap_or_default();
        state.recent.push_back(MismatchRecord {
            recorded_at_ms: at
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            request_id: request_id.map(str::to_owned),
            method: method.to_owned(),
            path: path.to_owned(),
            comparison,
        });
    }

    /// Counts a request that was not shadowed.
    pub fn count_skipped(&self, reason: SkipReason) {
        self.skipped[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a shadow call that failed before it could be compared.
    pub fn count_shadow_error(&self) {
        self.lock().counts.shadow_errors += 1;
    }

    /// The kept mismatches, newest first.
    pub fn recent(&self) -> Vec<MismatchRecord> {
        self.lock().recent.iter().rev().cloned().collect()
    }

    /// The counters.
    pub fn counts(&self) -> ShadowCounts {
        let mut counts = self.lock().counts.clone();
        for reason in SkipReason::ALL {
            let n = self.skipped[reason.index()].load(Ordering::Relaxed);
            if n > 0 {
                counts.skipped.insert(reason, n);
            }
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::shadow::compare::Difference;

    fn mismatch(at: &str) -> Comparison {
        Comparison {
            differences: vec![Difference {
                at: at.to_owned(),
                legacy: Some("1".to_owned()),
                new: Some("2".to_owned()),
            }],
            noise_subtracted: 1,
        }
    }

    fn matched() -> Comparison {
        Comparison {
            differences: vec![],
            noise_subtracted: 0,
        }
    }

    /// Only the newest N mismatches are kept, newest first, and matches are only counted.
    #[test]
    fn ring_keeps_the_newest_mismatches() {
        let log = MismatchLog::new(3);
        let t0 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        for i in 0..5u64 {
            log.record(
                mismatch(&format!("body /n{i}")),
                "GET",
                "/orders/1",
                None,
                t0 + Duration::from_secs(i),
            );
            log.record(matched(), "GET", "/orders/1", None, t0);
        }
        let kept: Vec<String> = log
            .recent()
            .into_iter()
            .map(|r| r.comparison.differences[0].at.clone())
            .collect();
        assert_eq!(kept, vec!["body /n4", "body /n3", "body /n2"]);
        let counts = log.counts();
        assert_eq!(
            (counts.compared, counts.mismatched, counts.noise_subtracted),
            (10, 5, 5)
        );
        assert!((counts.mismatch_rate() - 0.5).abs() < 1e-9);
    }

    /// The query string (which may carry tokens) is never stored.
    #[test]
    fn query_string_is_dropped() {
        let log = MismatchLog::new(2);
        log.record(
            mismatch("status"),
            "GET",
            "/orders/7?token=s3cret",
            Some("req-1"),
            UNIX_EPOCH + Duration::from_millis(42),
        );
        let record = &log.recent()[0];
        assert_eq!(
            (
                record.path.as_str(),
                record.request_id.as_deref(),
                record.recorded_at_ms
            ),
            ("/orders/7", Some("req-1"), 42)
        );
        let json = serde_json::to_string(record).expect("serialises");
        assert!(!json.contains("s3cret"), "{json}");
    }

    /// Skips are counted per reason and errors separately, and they serialise for the admin API.
    #[test]
    fn skips_and_errors_are_counted() {
        let log = MismatchLog::new(1);
        for reason in [
            SkipReason::Saturated,
            SkipReason::Saturated,
            SkipReason::BodyOverBound,
        ] {
            log.count_skipped(reason);
        }
        log.count_shadow_error();
        let counts = log.counts();
        assert_eq!(counts.skipped.get(&SkipReason::Saturated), Some(&2));
        assert_eq!(counts.skipped.get(&SkipReason::BodyOverBound), Some(&1));
        assert_eq!(counts.shadow_errors, 1);
        assert_eq!(counts.mismatch_rate(), 0.0);
        let json = serde_json::to_value(&counts).expect("serialises");
        assert_eq!(json["skipped"]["saturated"], 2);
    }
}
