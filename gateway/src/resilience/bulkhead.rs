//! Bulkhead: a cap on concurrent calls per capability and side, with a short bounded queue.
//!
//! A call first tries to take a slot at once. If all `max_concurrent` slots are busy it may wait,
//! but only if fewer than `max_queue` calls are already waiting, and for at most `max_wait`.
//! Otherwise it gets [`Shed`] immediately, which the proxy turns into `503` with `Retry-After`
//! (load shedding). There is no unbounded queue anywhere: a slow side can hold at most
//! `max_concurrent + max_queue` requests, and the other capabilities keep their own slots.
//!
//! Slots are `tokio::sync::Semaphore` permits (fair, FIFO), released when the
//! [`BulkheadPermit`] is dropped, i.e. when the response body has finished streaming if the proxy
//! keeps the permit inside the body.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::config::InvalidSetting;

/// Default cap on concurrent calls to one side of a capability.
pub const DEFAULT_MAX_CONCURRENT: usize = 256;
/// Default number of calls that may wait for a slot.
pub const DEFAULT_MAX_QUEUE: usize = 32;
/// Default longest wait for a slot.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_millis(50);
/// Default `Retry-After` sent with a shed request.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Bulkhead settings (`[capability.resilience.<side>.bulkhead]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BulkheadConfig {
    /// Calls allowed at once.
    pub max_concurrent: usize,
    /// Calls allowed to wait for a slot (0: shed as soon as all slots are busy).
    pub max_queue: usize,
    /// Longest a call waits for a slot.
    #[serde(with = "humantime_serde")]
    pub max_wait: Duration,
    /// `Retry-After` given to shed requests (whole seconds, at least 1 s on the wire).
    #[serde(with = "humantime_serde")]
    pub retry_after: Duration,
}

impl Default for BulkheadConfig {
    fn default() -> Self {
        Self {
            max_concurrent: DEFAULT_MAX_CONCURRENT,
            max_queue: DEFAULT_MAX_QUEUE,
            max_wait: DEFAULT_MAX_WAIT,
            retry_after: DEFAULT_RETRY_AFTER,
        }
    }
}

impl BulkheadConfig {
    /// Every problem, with key paths under `at`.
    pub fn validate(&self, at: &str) -> Vec<InvalidSetting> {
        let mut problems = Vec::new();
        if self.max_concurrent == 0 {
            problems.push(InvalidSetting::new(
                at,
                "max_concurrent",
                "must be at least 1",
            ));
        }
        if self.max_concurrent > Semaphore::MAX_PERMITS {
            problems.push(InvalidSetting::new(
                at,
                "max_concurrent",
                format!("must be at most {}", Semaphore::MAX_PERMITS),
            ));
        }
        if self.max_queue > 0 && self.max_wait.is_zero() {
            problems.push(InvalidSetting::new(
                at,
                "max_wait",
                "must be greater than 0 when max_queue is above 0",
            ));
        }
        problems
    }
}

/// Why a call was shed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ShedReason {
    /// All slots busy and the wait queue full.
    QueueFull,
    /// Waited `max_wait` without getting a slot.
    WaitExpired,
}

/// The call was refused at once: answer `503` with `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("bulkhead full ({reason:?}): shedding load, retry after {retry_after:?}")]
pub struct Shed {
    /// Why.
    pub reason: ShedReason,
    /// Value for `Retry-After`.
    pub retry_after: Duration,
}

impl Shed {
    /// `Retry-After` header value in whole seconds, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_secs_f64().ceil().max(1.0) as u64
    }
}

/// Point-in-time load of a bulkhead, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct BulkheadSnapshot {
    /// Calls holding a slot.
    pub in_flight: usize,
    /// Calls waiting for a slot.
    pub queued: usize,
    /// Configured cap.
    pub max_concurrent: usize,
}

/// Concurrency cap for one capability and side.
#[derive(Debug, Clone)]
pub struct Bulkhead {
    config: BulkheadConfig,
    slots: Arc<Semaphore>,
    queued: Arc<AtomicUsize>,
}

/// A held slot; dropping it frees the slot.
#[derive(Debug)]
pub struct BulkheadPermit {
    _slot: OwnedSemaphorePermit,
}

struct QueuePlace<'a>(&'a AtomicUsize);

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Bulkhead {
    /// A bulkhead with all slots free.
    pub fn new(config: BulkheadConfig) -> Self {
        Self {
            config,
            slots: Arc::new(Semaphore::new(config.max_concurrent)),
            queued: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Takes a slot, waiting at most `max_wait` in a queue of at most `max_queue`.
    pub async fn acquire(&self) -> Result<BulkheadPermit, Shed> {
        if let Some(slot) = self.try_acquire() {
            return Ok(slot);
        }
        let Some(_place) = self.join_queue() else {
            return Err(self.shed(ShedReason::QueueFull));
        };
        let wait = Arc::clone(&self.slots).acquire_owned();
        match tokio::time::timeout(self.config.max_wait, wait).await {
            Ok(Ok(slot)) => Ok(BulkheadPermit { _slot: slot }),
            // The semaphore is never closed; treat it like an expired wait all the same.
            Ok(Err(_)) | Err(_) => Err(self.shed(ShedReason::WaitExpired)),
        }
    }

    /// A free slot now, without queueing.
    pub fn try_acquire(&self) -> Option<BulkheadPermit> {
        let slot = Arc::clone(&self.slots).try_acquire_owned().ok()?;
        Some(BulkheadPermit { _slot: slot })
    }

    fn join_queue(&self) -> Option<QueuePlace<'_>> {
        self.queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                (queued < self.config.max_queue).then_some(queued + 1)
            })
            .ok()
            .map(|_| QueuePlace(&self.queued))
    }

    fn shed(&self, reason: ShedReason) -> Shed {
        Shed {
            reason,
            retry_after: self.config.retry_after,
        }
    }

    /// Current load.
    pub fn snapshot(&self) -> BulkheadSnapshot {
        BulkheadSnapshot {
            in_flight: self.config.max_concurrent - self.slots.available_permits(),
            queued: self.queued.load(Ordering::Acquire),
            max_concurrent: self.config.max_concurrent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulkhead(max_concurrent: usize, max_queue: usize) -> Bulkhead {
        Bulkhead::new(BulkheadConfig {
            max_concurrent,
            max_queue,
            max_wait: Duration::from_millis(100),
            retry_after: Duration::from_millis(1_500),
        })
    }

    /// With all slots and the queue taken, the next call is shed at once with Retry-After.
    #[tokio::test(start_paused = true)]
    async fn full_bulkhead_sheds_immediately() {
        let bulkhead = bulkhead(2, 1);
        let _a = bulkhead.acquire().await.expect("slot 1");
        let _b = bulkhead.acquire().await.expect("slot 2");
        let waiter = tokio::spawn({
            let bulkhead = bulkhead.clone();
            async move { bulkhead.acquire().await.map(|_| ()) }
        });
        while bulkhead.snapshot().queued == 0 {
            tokio::task::yield_now().await;
        }
        let started = tokio::time::Instant::now();
        let shed = bulkhead.acquire().await.expect_err("queue full");
        assert_eq!(started.elapsed(), Duration::ZERO, "shed must not wait");
        assert_eq!(shed.reason, ShedReason::QueueFull);
        assert_eq!(shed.retry_after_secs(), 2);
        let waited = waiter.await.expect("task");
        assert_eq!(
            waited.expect_err("no slot freed").reason,
            ShedReason::WaitExpired
        );
        assert_eq!(bulkhead.snapshot().queued, 0);
    }

    /// A queued call gets the slot as soon as a running call finishes.
    #[tokio::test(start_paused = true)]
    async fn queued_call_gets_freed_slot() {
        let bulkhead = bulkhead(1, 1);
        let first = bulkhead.acquire().await.expect("slot");
        let waiter = tokio::spawn({
            let bulkhead = bulkhead.clone();
            async move {
                bulkhead
                    .acquire()
                    .await
                    .map(|_| tokio::time::Instant::now())
            }
        });
        while bulkhead.snapshot().queued == 0 {
            tokio::task::yield_now().await;
        }
        let released = tokio::time::Instant::now();
        drop(first);
        let got = waiter.await.expect("task").expect("slot after release");
        assert!(got - released < Duration::from_millis(100));
    }

    /// Without a queue, a busy bulkhead sheds rather than waits.
    #[tokio::test(start_paused = true)]
    async fn zero_queue_sheds_when_busy() {
        let bulkhead = bulkhead(1, 0);
        let _held = bulkhead.acquire().await.expect("slot");
        let shed = bulkhead.acquire().await.expect_err("busy");
        assert_eq!(shed.reason, ShedReason::QueueFull);
    }

    /// Many real tasks never exceed the cap; exactly the excess beyond slots + queue is shed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_tasks_never_exceed_the_cap() {
        let bulkhead = Bulkhead::new(BulkheadConfig {
            max_concurrent: 4,
            max_queue: 2,
            max_wait: Duration::from_secs(600),
            retry_after: DEFAULT_RETRY_AFTER,
        });
        let peak = Arc::new(AtomicUsize::new(0));
        let shed = Arc::new(AtomicUsize::new(0));
        let (release, released) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        for _ in 0..40 {
            let (bulkhead, peak, shed) = (bulkhead.clone(), peak.clone(), shed.clone());
            let mut released = released.clone();
            tasks.push(tokio::spawn(async move {
                let Ok(permit) = bulkhead.acquire().await else {
                    shed.fetch_add(1, Ordering::AcqRel);
                    return false;
                };
                peak.fetch_max(bulkhead.snapshot().in_flight, Ordering::AcqRel);
                let _ = released.wait_for(|r| *r).await;
                drop(permit);
                true
            }));
        }
        loop {
            let load = bulkhead.snapshot();
            if load.in_flight + load.queued + shed.load(Ordering::Acquire) == 40 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(shed.load(Ordering::Acquire), 34);
        release.send(true).expect("receivers alive");
        let mut served = 0;
        for task in tasks {
            served += usize::from(task.await.expect("task"));
        }
        assert_eq!(served, 6);
        assert!(peak.load(Ordering::Acquire) <= 4);
    }

    /// A zero cap and a queue without a wait time are refused with the key named.
    #[test]
    fn validate_names_bad_keys() {
        let cases = [
            (
                BulkheadConfig {
                    max_concurrent: 0,
                    ..Default::default()
                },
                vec!["b.max_concurrent"],
            ),
            (
                BulkheadConfig {
                    max_wait: Duration::ZERO,
                    ..Default::default()
                },
                vec!["b.max_wait"],
            ),
            (
                BulkheadConfig {
                    max_wait: Duration::ZERO,
                    max_queue: 0,
                    ..Default::default()
                },
                vec![],
            ),
        ];
        for (cfg, want) in cases {
            let keys: Vec<String> = cfg.validate("b").into_iter().map(|p| p.key).collect();
            assert_eq!(keys, want, "{cfg:?}");
        }
    }
}
