//! Sliding time windows of call outcomes, shared by the circuit breaker (failure rate) and the
//! SLO guard (error rate and p99 latency).
//!
//! A window of span `S` is a ring of `buckets` slots, each covering `S / buckets`; a slot older
//! than the span is cleared before reuse, so memory is fixed whatever the traffic. Time is
//! always passed in (`now`), never read from the system clock.
//!
//! Latency is kept in a log-linear histogram (8 buckets per doubling, 1 µs to ~134 s), so a
//! quantile is exact to within 9 % and reported as the bucket's upper bound (never optimistic).

use std::time::{Duration, Instant};

/// What a window slot accumulates.
pub trait WindowStats: Default + Clone {
    /// Adds `other` into `self`.
    fn merge(&mut self, other: &Self);
}

/// Ring of time slots covering the last `span`.
#[derive(Debug, Clone)]
pub struct SlidingWindow<S> {
    origin: Instant,
    slot_width: Duration,
    slots: Vec<(u64, S)>,
}

impl<S: WindowStats> SlidingWindow<S> {
    /// A window covering `span`, split into `buckets` slots (at least 1), starting at `origin`.
    pub fn new(span: Duration, buckets: u32, origin: Instant) -> Self {
        let buckets = buckets.max(1);
        let slot_width = (span / buckets).max(Duration::from_nanos(1));
        Self {
            origin,
            slot_width,
            slots: vec![(u64::MAX, S::default()); buckets as usize],
        }
    }

    fn epoch(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.origin).as_nanos();
        u64::try_from(since / self.slot_width.as_nanos()).unwrap_or(u64::MAX - 1)
    }

    /// The slot for `now`, cleared first if it last held an older period.
    pub fn current(&mut self, now: Instant) -> &mut S {
        let epoch = self.epoch(now);
        let len = self.slots.len() as u64;
        let slot = &mut self.slots[(epoch % len) as usize];
        if slot.0 != epoch {
            *slot = (epoch, S::default());
        }
        &mut slot.1
    }

    /// Everything recorded within the span ending at `now`.
    pub fn total(&self, now: Instant) -> S {
        let epoch = self.epoch(now);
        let len = self.slots.len() as u64;
        let mut total = S::default();
        for (slot_epoch, stats) in &self.slots {
            if *slot_epoch <= epoch && epoch - *slot_epoch < len {
                total.merge(stats);
            }
        }
        total
    }

    /// Forgets everything (e.g. when a breaker closes or a capability is rolled back).
    pub fn clear(&mut self) {
        for slot in &mut self.slots {
            *slot = (u64::MAX, S::default());
        }
    }
}

/// Number of calls and how many failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CallCounts {
    /// Calls recorded.
    pub calls: u64,
    /// Of which failed.
    pub failures: u64,
}

impl CallCounts {
    /// Records one call.
    pub fn record(&mut self, failed: bool) {
        self.calls += 1;
        self.failures += u64::from(failed);
    }

    /// Failures / calls, 0 when there were no calls.
    pub fn failure_rate(&self) -> f64 {
        if self.calls == 0 {
            0.0
        } else {
            self.failures as f64 / self.calls as f64
        }
    }
}

impl WindowStats for CallCounts {
    fn merge(&mut self, other: &Self) {
        self.calls += other.calls;
        self.failures += other.failures;
    }
}

const SUB_BUCKETS_PER_DOUBLING: f64 = 8.0;
const LATENCY_BUCKETS: usize = 8 * 27;

/// Log-linear latency histogram with fixed memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatencyHistogram {
    counts: Box<[u32; LATENCY_BUCKETS]>,
    total: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            counts: Box::new([0; LATENCY_BUCKETS]),
            total: 0,
        }
    }
}

impl LatencyHistogram {
    /// Records one latency.
    pub fn record(&mut self, latency: Duration) {
        let micros = latency.as_micros().max(1) as f64;
        let index = (micros.log2() * SUB_BUCKETS_PER_DOUBLING).floor() as usize;
        let slot = &mut self.counts[index.min(LATENCY_BUCKETS - 1)];
        *slot = slot.saturating_add(1);
        self.total += 1;
    }

    /// Latencies recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The `q` quantile (0 < q ≤ 1) as the upper bound of its bucket, `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (index, count) in self.counts.iter().enumerate() {
            seen += u64::from(*count);
            if seen >= rank {
                let upper = 2f64.powf((index + 1) as f64 / SUB_BUCKETS_PER_DOUBLING);
                return Some(Duration::from_micros(upper.ceil() as u64));
            }
        }
        None
    }
}

impl WindowStats for LatencyHistogram {
    fn merge(&mut self, other: &Self) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine = mine.saturating_add(*theirs);
        }
        self.total += other.total;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Calls older than the span drop out of the total; newer ones stay.
    #[test]
    fn old_slots_expire_from_the_total() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut window = SlidingWindow::<CallCounts>::new(s(10), 10, t0);
        window.current(t0).record(true);
        window.current(t0 + s(5)).record(false);
        window.current(t0 + s(9)).record(false);
        let cases = [
            (
                s(9),
                CallCounts {
                    calls: 3,
                    failures: 1,
                },
            ),
            (
                s(10),
                CallCounts {
                    calls: 2,
                    failures: 0,
                },
            ),
            (
                s(15),
                CallCounts {
                    calls: 1,
                    failures: 0,
                },
            ),
            (
                s(18),
                CallCounts {
                    calls: 1,
                    failures: 0,
                },
            ),
            (s(19), CallCounts::default()),
        ];
        for (at, want) in cases {
            assert_eq!(window.total(t0 + at), want, "at {at:?}");
        }
    }

    /// A slot reused after a full turn of the ring starts from zero.
    #[test]
    fn reused_slot_is_cleared() {
        let t0 = Instant::now();
        let mut window = SlidingWindow::<CallCounts>::new(Duration::from_secs(4), 4, t0);
        window.current(t0).record(true);
        window.current(t0 + Duration::from_secs(4)).record(false);
        assert_eq!(
            window.total(t0 + Duration::from_secs(4)),
            CallCounts {
                calls: 1,
                failures: 0
            }
        );
    }

    /// Quantiles are never below the true value and at most 9 % above it.
    #[test]
    fn quantiles_are_within_nine_percent_and_never_optimistic() {
        let mut histogram = LatencyHistogram::default();
        for ms in 1..=1000u64 {
            histogram.record(Duration::from_millis(ms));
        }
        for (q, exact_ms) in [(0.5, 500.0), (0.9, 900.0), (0.99, 990.0), (1.0, 1000.0)] {
            let got = histogram.quantile(q).expect("non-empty").as_secs_f64() * 1000.0;
            assert!(
                got >= exact_ms && got <= exact_ms * 1.09,
                "q{q}: {got} vs {exact_ms}"
            );
        }
        assert_eq!(LatencyHistogram::default().quantile(0.99), None);
    }

    /// Merged histograms answer as if all samples had been recorded in one.
    #[test]
    fn merged_histograms_equal_one_histogram() {
        let (mut a, mut b, mut all) = Default::default();
        for ms in [3u64, 40, 500] {
            LatencyHistogram::record(&mut a, Duration::from_millis(ms));
            LatencyHistogram::record(&mut all, Duration::from_millis(ms));
        }
        for ms in [7u64, 9_000] {
            LatencyHistogram::record(&mut b, Duration::from_millis(ms));
            LatencyHistogram::record(&mut all, Duration::from_millis(ms));
        }
        a.merge(&b);
        assert_eq!(a, all);
    }
}
