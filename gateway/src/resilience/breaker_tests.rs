//! Tests of the circuit breaker state machine and its shared wrapper.

use super::*;

const S: CallResult = CallResult::Success;
const F: CallResult = CallResult::Failure;

fn config() -> BreakerConfig {
    BreakerConfig {
        consecutive_failures: 3,
        failure_rate: 0.5,
        window: Duration::from_secs(10),
        min_samples: 6,
        cool_down: Duration::from_secs(5),
        half_open_probes: 1,
        successes_to_close: 2,
    }
}

/// Runs `calls` (ms offset, outcome) through a fresh breaker; each call is admitted and its
/// outcome reported at once. Returns the state after the last call and how many were refused.
fn run(calls: &[(u64, CallResult)], at_end_ms: u64) -> (BreakerState, usize) {
    let t0 = Instant::now();
    let mut breaker = CircuitBreaker::new(config(), t0);
    let mut refused = 0;
    for (ms, result) in calls {
        let now = t0 + Duration::from_millis(*ms);
        match breaker.admit(now) {
            Admission::Allowed(ticket) => breaker.record(ticket, *result, now),
            Admission::Rejected { .. } => refused += 1,
        }
    }
    (
        breaker.state(t0 + Duration::from_millis(at_end_ms)),
        refused,
    )
}

/// (name, calls, when to read the state, (expected state, refused calls)).
type Case = (
    &'static str,
    Vec<(u64, CallResult)>,
    u64,
    (BreakerState, usize),
);

/// The breaker opens, half-opens and closes exactly on the configured thresholds.
#[test]
fn transitions_follow_the_thresholds() {
    let cases: Vec<Case> = vec![
        (
            "two failures stay closed",
            vec![(0, F), (1, F)],
            2,
            (BreakerState::Closed, 0),
        ),
        (
            "three in a row open",
            vec![(0, F), (1, F), (2, F)],
            3,
            (BreakerState::Open, 0),
        ),
        (
            "a success resets the streak",
            vec![(0, F), (1, F), (2, S), (3, F), (4, F)],
            5,
            (BreakerState::Closed, 0),
        ),
        (
            "rate at min sample opens",
            vec![(0, F), (1, S), (2, F), (3, S), (4, F), (5, S)],
            6,
            (BreakerState::Open, 0),
        ),
        (
            "rate below min sample stays closed",
            vec![(0, F), (1, S), (2, F), (3, S), (4, F)],
            5,
            (BreakerState::Closed, 0),
        ),
        (
            "failures older than the window do not count",
            vec![
                (0, F),
                (1, S),
                (2, F),
                (20_000, S),
                (20_001, F),
                (20_002, S),
                (20_003, S),
            ],
            20_004,
            (BreakerState::Closed, 0),
        ),
        (
            "open refuses calls during cool-down",
            vec![(0, F), (1, F), (2, F), (100, S), (4_000, S)],
            4_001,
            (BreakerState::Open, 2),
        ),
        (
            "after cool-down it reads half-open",
            vec![(0, F), (1, F), (2, F)],
            5_002,
            (BreakerState::HalfOpen, 0),
        ),
        (
            "one probe success is not enough to close",
            vec![(0, F), (1, F), (2, F), (5_002, S)],
            5_003,
            (BreakerState::HalfOpen, 0),
        ),
        (
            "two probe successes close",
            vec![(0, F), (1, F), (2, F), (5_002, S), (5_003, S)],
            5_004,
            (BreakerState::Closed, 0),
        ),
        (
            "a probe failure re-opens for a full cool-down",
            vec![(0, F), (1, F), (2, F), (5_002, S), (5_003, F), (10_000, S)],
            10_001,
            (BreakerState::Open, 1),
        ),
    ];
    for (name, calls, at_end, want) in cases {
        assert_eq!(run(&calls, at_end), want, "{name}");
    }
}

/// While half-open only `half_open_probes` calls run; the rest are refused until one reports.
#[test]
fn half_open_limits_concurrent_probes() {
    let t0 = Instant::now();
    let mut breaker = CircuitBreaker::new(config(), t0);
    for ms in 0..3 {
        let now = t0 + Duration::from_millis(ms);
        let Admission::Allowed(ticket) = breaker.admit(now) else {
            panic!("closed breaker refused a call");
        };
        breaker.record(ticket, F, now);
    }
    let later = t0 + Duration::from_secs(6);
    let Admission::Allowed(probe) = breaker.admit(later) else {
        panic!("no probe after cool-down");
    };
    assert!(probe.is_probe());
    assert!(matches!(breaker.admit(later), Admission::Rejected { .. }));
    breaker.record(probe, CallResult::Abandoned, later);
    assert!(matches!(breaker.admit(later), Admission::Allowed(_)));
}

/// Failures of calls admitted before the breaker closed do not re-open it.
#[test]
fn stale_outcomes_are_ignored() {
    let t0 = Instant::now();
    let mut breaker = CircuitBreaker::new(config(), t0);
    let Admission::Allowed(old) = breaker.admit(t0) else {
        panic!("closed breaker refused a call");
    };
    for ms in 1..4 {
        let now = t0 + Duration::from_millis(ms);
        let Admission::Allowed(ticket) = breaker.admit(now) else {
            panic!("closed breaker refused a call");
        };
        breaker.record(ticket, F, now);
    }
    assert_eq!(breaker.state(t0), BreakerState::Open);
    let later = t0 + Duration::from_secs(6);
    breaker.record(old, F, later);
    assert_eq!(breaker.state(later), BreakerState::HalfOpen);
}

/// The snapshot shows state, counts and time to the next probe, and serialises for the admin API.
#[test]
fn snapshot_reports_counts_and_retry_time() {
    let t0 = Instant::now();
    let shared = SharedBreaker::new(config(), t0);
    for _ in 0..3 {
        shared.try_call(t0).expect("closed").failure(t0);
    }
    let at = t0 + Duration::from_secs(2);
    let snapshot = shared.snapshot(at);
    assert_eq!(snapshot.state, BreakerState::Open);
    assert_eq!(snapshot.retry_in_ms, Some(3_000));
    assert_eq!(snapshot.times_opened, 1);
    let refused = shared.try_call(at).expect_err("open breaker refuses");
    assert_eq!(refused.retry_in, Duration::from_secs(3));
    let json = serde_json::to_value(&snapshot).expect("serialises");
    assert_eq!(json["state"], "open");
    assert_eq!(json["consecutive_failures"], 3);
}

/// A permit dropped without an outcome frees the probe slot and counts as nothing.
#[test]
fn dropped_permit_frees_the_probe_slot() {
    let t0 = Instant::now();
    let shared = SharedBreaker::new(config(), t0);
    for _ in 0..3 {
        shared.try_call(t0).expect("closed").failure(t0);
    }
    let later = t0 + Duration::from_secs(6);
    let probe = shared.try_call(later).expect("probe allowed");
    assert!(probe.is_probe());
    assert!(shared.try_call(later).is_err());
    drop(probe);
    let snapshot = shared.snapshot(later);
    assert_eq!(
        (snapshot.state, snapshot.probes_in_flight),
        (BreakerState::HalfOpen, 0)
    );
    shared
        .try_call(later)
        .expect("slot free again")
        .success(later);
}

/// Out-of-range settings are refused with the key that is wrong.
#[test]
fn validate_names_bad_keys() {
    let cases = [
        (
            BreakerConfig {
                failure_rate: 0.0,
                ..config()
            },
            "b.failure_rate",
        ),
        (
            BreakerConfig {
                failure_rate: f64::NAN,
                ..config()
            },
            "b.failure_rate",
        ),
        (
            BreakerConfig {
                consecutive_failures: 0,
                ..config()
            },
            "b.consecutive_failures",
        ),
        (
            BreakerConfig {
                half_open_probes: 0,
                ..config()
            },
            "b.half_open_probes",
        ),
        (
            BreakerConfig {
                cool_down: Duration::ZERO,
                ..config()
            },
            "b.cool_down",
        ),
    ];
    for (cfg, key) in cases {
        let keys: Vec<String> = cfg.validate("b").into_iter().map(|p| p.key).collect();
        assert_eq!(keys, vec![key.to_owned()], "{cfg:?}");
    }
    assert!(config().validate("b").is_empty());
}

/// Under real concurrent tasks, a half-open breaker lets exactly `half_open_probes` calls through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_get_exactly_the_probe_slots() {
    let t0 = Instant::now();
    let shared = SharedBreaker::new(
        BreakerConfig {
            half_open_probes: 3,
            ..config()
        },
        t0,
    );
    for _ in 0..3 {
        shared.try_call(t0).expect("closed").failure(t0);
    }
    let later = t0 + Duration::from_secs(6);
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(50));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (shared, start) = (shared.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                shared.try_call(later).ok()
            })
        })
        .collect();
    let mut probes = Vec::new();
    for task in tasks {
        probes.extend(task.await.expect("task"));
    }
    assert_eq!(probes.len(), 3);
    assert!(probes.iter().all(BreakerPermit::is_probe));
    assert_eq!(shared.snapshot(later).probes_in_flight, 3);
    for probe in probes {
        probe.success(later);
    }
    assert_eq!(shared.snapshot(later).state, BreakerState::Closed);
}
