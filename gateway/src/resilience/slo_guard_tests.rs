//! Tests of the SLO guard's comparison of new against legacy.

use super::*;

/// (calls, errors, latency in ms) recorded for one side.
type Load = (u64, u64, u64);

/// (name, settings, new, legacy, (verdict, breach reasons)).
type Case = (
    &'static str,
    SloGuardConfig,
    Load,
    Load,
    (&'static str, Vec<&'static str>),
);

fn config() -> SloGuardConfig {
    SloGuardConfig {
        min_samples: 100,
        ..SloGuardConfig::default()
    }
}

fn guard_with(config: SloGuardConfig, new: Load, legacy: Load, t0: Instant) -> SloGuard {
    let mut guard = SloGuard::new(config, t0);
    for (load, is_new) in [(new, true), (legacy, false)] {
        let (calls, errors, latency_ms) = load;
        for i in 0..calls {
            let ok = i >= errors;
            let latency = Duration::from_millis(latency_ms);
            if is_new {
                guard.record_new(ok, latency, t0);
            } else {
                guard.record_legacy(ok, latency, t0);
            }
        }
    }
    guard
}

fn kinds(verdict: &Verdict) -> (&'static str, Vec<&'static str>) {
    match verdict {
        Verdict::NotEnoughData(_) => ("not_enough_data", vec![]),
        Verdict::Healthy(_) => ("healthy", vec![]),
        Verdict::Breach(breach) => (
            "breach",
            breach
                .reasons
                .iter()
                .map(|r| match r {
                    BreachReason::ErrorRate { .. } => "error_rate",
                    BreachReason::P99Latency { .. } => "p99",
                })
                .collect(),
        ),
    }
}

/// Breaches exactly when new exceeds the baseline by more than the configured margins.
#[test]
fn verdicts_follow_the_margins() {
    let with_max_p99 = SloGuardConfig {
        max_p99: Some(Duration::from_millis(200)),
        ..config()
    };
    let cases: Vec<Case> = vec![
        (
            "too few calls to new",
            config(),
            (99, 99, 10),
            (500, 0, 10),
            ("not_enough_data", vec![]),
        ),
        (
            "within error margin",
            config(),
            (200, 6, 10),
            (200, 2, 10),
            ("healthy", vec![]),
        ),
        (
            "over error margin",
            config(),
            (200, 20, 10),
            (200, 2, 10),
            ("breach", vec!["error_rate"]),
        ),
        (
            "p99 within margins",
            config(),
            (200, 0, 30),
            (200, 0, 10),
            ("healthy", vec![]),
        ),
        (
            "p99 over margins",
            config(),
            (200, 0, 100),
            (200, 0, 10),
            ("breach", vec!["p99"]),
        ),
        (
            "both limits",
            config(),
            (200, 40, 100),
            (200, 0, 10),
            ("breach", vec!["error_rate", "p99"]),
        ),
        (
            "legacy quiet, under ceiling",
            config(),
            (200, 8, 900),
            (10, 0, 1),
            ("healthy", vec![]),
        ),
        (
            "legacy quiet, over ceiling",
            config(),
            (200, 12, 10),
            (10, 0, 1),
            ("breach", vec!["error_rate"]),
        ),
        (
            "p99 ceiling when legacy quiet",
            with_max_p99,
            (200, 0, 500),
            (0, 0, 0),
            ("breach", vec!["p99"]),
        ),
        (
            "legacy as bad as new",
            config(),
            (200, 100, 10),
            (200, 100, 10),
            ("healthy", vec![]),
        ),
    ];
    let t0 = Instant::now();
    for (name, config, new, legacy, want) in cases {
        let verdict = guard_with(config, new, legacy, t0).evaluate(t0);
        let (kind, reasons) = kinds(&verdict);
        assert_eq!((kind, reasons), (want.0, want.1), "{name}: {verdict:?}");
    }
}

/// A breach carries the figures that caused it, readable in a log line and as JSON.
#[test]
fn breach_says_why_with_figures() {
    let t0 = Instant::now();
    let verdict = guard_with(config(), (200, 20, 10), (400, 4, 10), t0).evaluate(t0);
    let Verdict::Breach(breach) = verdict else {
        panic!("expected a breach, got {verdict:?}");
    };
    assert_eq!(breach.figures.baseline, Baseline::Legacy);
    assert_eq!(
        (breach.figures.new.samples, breach.figures.new.errors),
        (200, 20)
    );
    assert_eq!(
        (breach.figures.legacy.samples, breach.figures.legacy.errors),
        (400, 4)
    );
    let line = breach.to_string();
    assert!(
        line.contains("new error rate 10.0% over limit 3.0%"),
        "{line}"
    );
    assert!(line.contains("new 200 calls 20 errors"), "{line}");
    let json = serde_json::to_value(&breach).expect("serialises");
    assert_eq!(json["reasons"][0]["kind"], "error_rate");
    assert_eq!(json["figures"]["new"]["errors"], 20);
}

/// Errors older than the window are forgotten, and reset() forgets everything at once.
#[test]
fn old_errors_expire_and_reset_clears() {
    let t0 = Instant::now();
    let mut guard = guard_with(config(), (200, 200, 10), (200, 0, 10), t0);
    assert!(matches!(guard.evaluate(t0), Verdict::Breach(_)));
    let later = t0 + Duration::from_secs(61);
    for _ in 0..200 {
        guard.record_new(true, Duration::from_millis(10), later);
        guard.record_legacy(true, Duration::from_millis(10), later);
    }
    assert!(matches!(guard.evaluate(later), Verdict::Healthy(_)));
    guard.reset();
    assert!(matches!(guard.evaluate(later), Verdict::NotEnoughData(_)));
}

/// Settings outside their range are refused with the key named.
#[test]
fn validate_names_bad_keys() {
    let cases = [
        (
            SloGuardConfig {
                min_samples: 0,
                ..config()
            },
            "g.min_samples",
        ),
        (
            SloGuardConfig {
                error_rate_margin: 1.5,
                ..config()
            },
            "g.error_rate_margin",
        ),
        (
            SloGuardConfig {
                p99_margin: -1.0,
                ..config()
            },
            "g.p99_margin",
        ),
        (
            SloGuardConfig {
                window: Duration::ZERO,
                ..config()
            },
            "g.window",
        ),
    ];
    for (cfg, key) in cases {
        let keys: Vec<String> = cfg.validate("g").into_iter().map(|p| p.key).collect();
        assert_eq!(keys, vec![key.to_owned()], "{cfg:?}");
    }
}
