//! Tests of retry and fallback eligibility, the retry budget and backoff.

use super::*;

const GET: RequestFacts = RequestFacts {
    idempotent: true,
    body_replayable: true,
};
const POST: RequestFacts = RequestFacts {
    idempotent: false,
    body_replayable: true,
};
const STREAMED_PUT: RequestFacts = RequestFacts {
    idempotent: true,
    body_replayable: false,
};

fn policy(max_retries: u32, ratio: f32) -> RetryPolicy {
    RetryPolicy::new(RetryConfig {
        max_retries,
        budget_ratio: ratio,
        budget_min_per_sec: 0,
        ..RetryConfig::default()
    })
}

/// Fallback follows the table in the module doc, for both settings of `unsent_writes`.
#[test]
fn fallback_follows_the_safety_table() {
    use AttemptFailure::*;
    use NotResendable::*;
    let cases = [
        (GET, Connect, false, Ok(())),
        (GET, NoResponse, false, Ok(())),
        (GET, ServerError(503), false, Ok(())),
        (GET, BreakerOpen, false, Ok(())),
        (GET, Shed, false, Ok(())),
        (GET, AfterResponseStarted, false, Err(ResponseStarted)),
        (POST, Connect, false, Err(NotIdempotent)),
        (POST, BreakerOpen, false, Err(NotIdempotent)),
        (POST, Connect, true, Ok(())),
        (POST, BreakerOpen, true, Ok(())),
        (POST, NoResponse, true, Err(NotIdempotent)),
        (POST, ServerError(500), true, Err(NotIdempotent)),
        (STREAMED_PUT, Connect, false, Err(BodyNotReplayable)),
        (
            STREAMED_PUT,
            AfterResponseStarted,
            false,
            Err(ResponseStarted),
        ),
    ];
    for (facts, failure, unsent_writes, want) in cases {
        let config = FallbackConfig {
            enabled: true,
            unsent_writes,
        };
        assert_eq!(
            may_fall_back(&config, facts, failure),
            want,
            "{facts:?} {failure:?} unsent_writes={unsent_writes}"
        );
    }
    let off = FallbackConfig {
        enabled: false,
        unsent_writes: true,
    };
    assert_eq!(may_fall_back(&off, GET, Connect), Err(FallbackDisabled));
}

/// Same-side retries only for idempotent, replayable requests, never into an open breaker.
#[test]
fn retry_eligibility() {
    use AttemptFailure::*;
    use NotResendable::*;
    let cases = [
        (GET, Connect, 0, Ok(())),
        (GET, NoResponse, 0, Ok(())),
        (GET, ServerError(502), 0, Ok(())),
        (GET, ServerError(502), 2, Err(RetriesExhausted)),
        (GET, BreakerOpen, 0, Err(SideRefusing)),
        (GET, Shed, 0, Err(SideRefusing)),
        (GET, AfterResponseStarted, 0, Err(ResponseStarted)),
        (POST, Connect, 0, Err(NotIdempotent)),
        (POST, ServerError(500), 0, Err(NotIdempotent)),
        (STREAMED_PUT, NoResponse, 0, Err(BodyNotReplayable)),
    ];
    for (facts, failure, retries_so_far, want) in cases {
        let policy = policy(2, 1.0);
        policy.record_request();
        assert_eq!(
            policy.may_retry(facts, failure, retries_so_far),
            want,
            "{facts:?} {failure:?} after {retries_so_far}"
        );
    }
}

/// With the default 20 % ratio, 100 requests earn exactly 20 retries.
#[test]
fn budget_caps_retries_at_twenty_percent() {
    let policy = RetryPolicy::new(RetryConfig {
        budget_min_per_sec: 0,
        ..RetryConfig::default()
    });
    for _ in 0..100 {
        policy.record_request();
    }
    let granted = (0..100)
        .filter(|_| policy.may_retry(GET, AttemptFailure::Connect, 0).is_ok())
        .count();
    assert_eq!(granted, 20);
    assert_eq!(
        policy.may_retry(GET, AttemptFailure::Connect, 0),
        Err(NotResendable::BudgetSpent)
    );
}

/// A refused retry does not spend budget: ineligible requests cannot drain it.
#[test]
fn ineligible_retries_do_not_spend_budget() {
    let policy = policy(1, 0.2);
    for _ in 0..5 {
        policy.record_request();
    }
    for _ in 0..10 {
        assert!(policy.may_retry(POST, AttemptFailure::Connect, 0).is_err());
    }
    assert_eq!(policy.may_retry(GET, AttemptFailure::Connect, 0), Ok(()));
}

/// Backoff doubles per retry up to the cap, and jitter stays within the upper half.
#[test]
fn backoff_doubles_with_bounded_jitter() {
    let policy = RetryPolicy::new(RetryConfig {
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_millis(300),
        ..RetryConfig::default()
    });
    let ms = Duration::from_millis;
    let cases = [
        (1, 0.0, ms(50)),
        (1, 1.0, ms(100)),
        (2, 0.0, ms(100)),
        (2, 0.5, ms(150)),
        (3, 1.0, ms(300)),
        (40, 0.0, ms(150)),
        (1, 7.0, ms(100)),
    ];
    for (retry, fraction, want) in cases {
        assert_eq!(
            policy.backoff(retry, fraction),
            want,
            "retry {retry} at {fraction}"
        );
    }
    let jittered = policy.backoff_with_jitter(2);
    assert!(jittered >= ms(100) && jittered <= ms(200));
}

/// A connect timeout means the request never left; later timeouts mean it may have.
#[test]
fn timeouts_map_to_attempt_failures() {
    use AttemptFailure::*;
    let cases = [
        (TimedOut::Connect, false, Connect),
        (TimedOut::FirstByte, false, NoResponse),
        (TimedOut::Request, false, NoResponse),
        (TimedOut::Idle, true, AfterResponseStarted),
        (TimedOut::Request, true, AfterResponseStarted),
    ];
    for (phase, started, want) in cases {
        assert_eq!(
            AttemptFailure::from_timeout(phase, started),
            want,
            "{phase:?}"
        );
    }
    assert!(!BreakerOpen.counts_against_upstream());
    assert!(ServerError(500).counts_against_upstream());
}

/// Budget settings that would make tower's budget panic are refused by validate().
#[test]
fn validate_refuses_budget_settings_that_would_panic() {
    let cases = [
        (
            RetryConfig {
                budget_ttl: Duration::from_millis(500),
                ..Default::default()
            },
            "r.budget_ttl",
        ),
        (
            RetryConfig {
                budget_ttl: Duration::from_secs(61),
                ..Default::default()
            },
            "r.budget_ttl",
        ),
        (
            RetryConfig {
                budget_ratio: -0.1,
                ..Default::default()
            },
            "r.budget_ratio",
        ),
        (
            RetryConfig {
                budget_ratio: f32::NAN,
                ..Default::default()
            },
            "r.budget_ratio",
        ),
        (
            RetryConfig {
                backoff_base: Duration::from_secs(2),
                ..Default::default()
            },
            "r.backoff_base",
        ),
    ];
    for (cfg, key) in cases {
        let keys: Vec<String> = cfg.validate("r").into_iter().map(|p| p.key).collect();
        assert_eq!(keys, vec![key.to_owned()], "{cfg:?}");
    }
}

/// Requests that cannot be resent get a fast answer whose status says what went wrong.
#[test]
fn fail_fast_status_names_the_failure() {
    use AttemptFailure::*;
    let cases = [
        (Connect, Some(502)),
        (BreakerOpen, Some(503)),
        (Shed, Some(503)),
        (NoResponse, Some(504)),
        (ServerError(500), None),
        (AfterResponseStarted, None),
    ];
    for (failure, want) in cases {
        assert_eq!(
            failure.fail_fast_status().map(|s| s.as_u16()),
            want,
            "{failure:?}"
        );
    }
}
