//! The four timeouts of one upstream call and the deadline arithmetic the proxy applies to them.
//!
//! ```text
//!  start ──connect──▶ connected ──first_byte──▶ response head ──idle between chunks──▶ end
//!  └──────────────────────────────── request (whole call) ─────────────────────────────┘
//! ```
//!
//! `first_byte` counts from the start of the call (so it includes connecting); `request` caps
//! everything, so each phase's timer is the smaller of its own deadline and the whole-request one.
//! [`CallDeadlines`] computes those timers from an injected `Instant`; the proxy feeds them to
//! `tokio::time::timeout` and turns an expiry into a [`TimedOut`] phase for classification.

use std::time::{Duration, Instant};

use serde::Deserialize;

use super::config::InvalidSetting;

/// Default time allowed to open the TCP (and TLS) connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default time from the start of the call to the response head.
pub const DEFAULT_FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(15);
/// Default cap on the whole call, body included.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Default longest silence between two body chunks once the response has started.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(15);

/// Timeouts for calls to one side of a capability (`[capability.resilience.<side>.timeouts]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimeoutConfig {
    /// Time allowed to connect.
    #[serde(with = "humantime_serde")]
    pub connect: Duration,
    /// Time from the start of the call to the response head.
    #[serde(with = "humantime_serde")]
    pub first_byte: Duration,
    /// Cap on the whole call, including streaming the body.
    #[serde(with = "humantime_serde")]
    pub request: Duration,
    /// Longest silence between two body chunks.
    #[serde(with = "humantime_serde")]
    pub idle: Duration,
}

impl Default for TimeoutConfig {
    fn default() -> Self {
        Self {
            connect: DEFAULT_CONNECT_TIMEOUT,
            first_byte: DEFAULT_FIRST_BYTE_TIMEOUT,
            request: DEFAULT_REQUEST_TIMEOUT,
            idle: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

impl TimeoutConfig {
    /// Every problem, with key paths under `at`.
    pub fn validate(&self, at: &str) -> Vec<InvalidSetting> {
        let mut problems = Vec::new();
        for (field, value) in [
            ("connect", self.connect),
            ("first_byte", self.first_byte),
            ("request", self.request),
            ("idle", self.idle),
        ] {
            if value.is_zero() {
                problems.push(InvalidSetting::new(at, field, "must be greater than 0"));
            }
        }
        if self.connect > self.first_byte {
            problems.push(InvalidSetting::new(
                at,
                "connect",
                format!("must not exceed first_byte ({:?})", self.first_byte),
            ));
        }
        if self.first_byte > self.request {
            problems.push(InvalidSetting::new(
                at,
                "first_byte",
                format!("must not exceed request ({:?})", self.request),
            ));
        }
        problems
    }
}

/// The phase of a call in which a timeout expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimedOut {
    /// The connection was not open in time: the request was never sent.
    Connect,
    /// No response head in time: the request may have been processed.
    FirstByte,
    /// The body went silent for longer than `idle` after the response started.
    Idle,
    /// The whole call took longer than `request`.
    Request,
}

impl TimedOut {
    /// True when no byte of the response had arrived, so nothing reached the client yet.
    pub fn before_first_byte(self) -> bool {
        matches!(self, Self::Connect | Self::FirstByte)
    }
}

/// Deadlines of one call, fixed when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallDeadlines {
    connect_by: Instant,
    first_byte_by: Instant,
    finish_by: Instant,
    idle: Duration,
}

impl CallDeadlines {
    /// Deadlines for a call starting at `started`.
    pub fn start(config: &TimeoutConfig, started: Instant) -> Self {
        Self {
            connect_by: started + config.connect,
            first_byte_by: started + config.first_byte,
            finish_by: started + config.request,
            idle: config.idle,
        }
    }

    /// Timer for connecting, as seen at `now` (zero once expired).
    pub fn connect_timer(&self, now: Instant) -> (Duration, TimedOut) {
        self.timer(now, self.connect_by, TimedOut::Connect)
    }

    /// Timer for the response head, as seen at `now`.
    pub fn first_byte_timer(&self, now: Instant) -> (Duration, TimedOut) {
        self.timer(now, self.first_byte_by, TimedOut::FirstByte)
    }

    /// Timer for the next body chunk, as seen at `now`: the idle timeout, cut short by the
    /// whole-request deadline.
    pub fn next_chunk_timer(&self, now: Instant) -> (Duration, TimedOut) {
        self.timer(now, now + self.idle, TimedOut::Idle)
    }

    fn timer(&self, now: Instant, phase_by: Instant, phase: TimedOut) -> (Duration, TimedOut) {
        if self.finish_by < phase_by {
            (
                self.finish_by.saturating_duration_since(now),
                TimedOut::Request,
            )
        } else {
            (phase_by.saturating_duration_since(now), phase)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(connect: u64, first_byte: u64, request: u64, idle: u64) -> TimeoutConfig {
        TimeoutConfig {
            connect: Duration::from_millis(connect),
            first_byte: Duration::from_millis(first_byte),
            request: Duration::from_millis(request),
            idle: Duration::from_millis(idle),
        }
    }

    /// Each phase's timer is its own deadline unless the whole-request cap comes first.
    #[test]
    fn phase_timers_are_capped_by_the_request_deadline() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let d = CallDeadlines::start(&config(100, 1_000, 3_000, 500), t0);
        let cases = [
            (
                "connect at start",
                d.connect_timer(t0),
                (ms(100), TimedOut::Connect),
            ),
            (
                "connect late",
                d.connect_timer(t0 + ms(150)),
                (ms(0), TimedOut::Connect),
            ),
            (
                "first byte at 200",
                d.first_byte_timer(t0 + ms(200)),
                (ms(800), TimedOut::FirstByte),
            ),
            (
                "chunk at 1000",
                d.next_chunk_timer(t0 + ms(1_000)),
                (ms(500), TimedOut::Idle),
            ),
            (
                "chunk at 2800",
                d.next_chunk_timer(t0 + ms(2_800)),
                (ms(200), TimedOut::Request),
            ),
            (
                "chunk past end",
                d.next_chunk_timer(t0 + ms(4_000)),
                (ms(0), TimedOut::Request),
            ),
        ];
        for (name, got, want) in cases {
            assert_eq!(got, want, "{name}");
        }
    }

    /// A first-byte timeout longer than the whole request is cut to the request deadline.
    #[test]
    fn first_byte_beyond_request_reports_request_timeout() {
        let t0 = Instant::now();
        let d = CallDeadlines::start(&config(100, 5_000, 2_000, 500), t0);
        assert_eq!(
            d.first_byte_timer(t0),
            (Duration::from_secs(2), TimedOut::Request)
        );
    }

    /// Only connect and first-byte expiries happen before the client could have seen a byte.
    #[test]
    fn before_first_byte_only_for_early_phases() {
        let cases = [
            (TimedOut::Connect, true),
            (TimedOut::FirstByte, true),
            (TimedOut::Idle, false),
            (TimedOut::Request, false),
        ];
        for (phase, want) in cases {
            assert_eq!(phase.before_first_byte(), want, "{phase:?}");
        }
    }

    /// Zero and inverted timeouts are rejected with the key that is wrong.
    #[test]
    fn validate_rejects_zero_and_inverted_timeouts() {
        let cases = [
            (config(0, 1_000, 2_000, 100), vec!["t.connect"]),
            (config(100, 1_000, 2_000, 0), vec!["t.idle"]),
            (config(2_000, 1_000, 3_000, 100), vec!["t.connect"]),
            (config(100, 3_000, 2_000, 100), vec!["t.first_byte"]),
            (config(100, 1_000, 2_000, 100), vec![]),
        ];
        for (cfg, want) in cases {
            let keys: Vec<String> = cfg.validate("t").into_iter().map(|p| p.key).collect();
            assert_eq!(keys, want, "{cfg:?}");
        }
    }
}
