//! The resilience settings of one capability: one serde tree per side (`legacy`, `new`), each
//! with timeouts, bulkhead, breaker and retry, plus the fallback policy and the SLO guard.
//!
//! Every struct rejects unknown keys and has defaults as named constants in its own module;
//! `validate(at)` returns every problem with the full key path, e.g.
//! `capability[2].resilience.new.bulkhead.max_concurrent: must be at least 1`.
//!
//! ```toml
//! [capability.resilience]
//! max_replay_body_bytes = 65536   # bodies up to this size can be retried / sent to legacy
//! [capability.resilience.new.timeouts]
//! connect = "500ms"
//! first_byte = "2s"
//! [capability.resilience.new.bulkhead]
//! max_concurrent = 64
//! [capability.resilience.slo_guard]
//! error_rate_margin = 0.02
//! ```

use serde::Deserialize;

use super::breaker::BreakerConfig;
use super::bulkhead::BulkheadConfig;
use super::replay::{DEFAULT_MAX_REPLAY_BODY_BYTES, MAX_REPLAY_BODY_BYTES_CEILING};
use super::retry::{FallbackConfig, RetryConfig};
use super::slo_guard::SloGuardConfig;
use super::timeouts::TimeoutConfig;

/// One problem in a resilience or shadow setting, naming the offending key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct InvalidSetting {
    /// Full key path, e.g. `capability[0].resilience.new.breaker.failure_rate`.
    pub key: String,
    /// What is wrong and what is allowed.
    pub reason: String,
}

impl InvalidSetting {
    /// A problem at `at.field`.
    pub fn new(at: &str, field: &str, reason: impl Into<String>) -> Self {
        let key = if at.is_empty() {
            field.to_owned()
        } else {
            format!("{at}.{field}")
        };
        Self {
            key,
            reason: reason.into(),
        }
    }
}

/// Failure-isolation settings of one side (legacy or new) of a capability.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SideResilience {
    /// Connect, first-byte, whole-request and idle timeouts.
    pub timeouts: TimeoutConfig,
    /// Cap on concurrent calls and the short wait queue.
    pub bulkhead: BulkheadConfig,
    /// Circuit breaker of this side's upstream.
    pub breaker: BreakerConfig,
    /// Same-side retries of idempotent requests, within a budget.
    pub retry: RetryConfig,
}

impl SideResilience {
    /// Every problem in this side's settings, with key paths under `at`.
    pub fn validate(&self, at: &str) -> Vec<InvalidSetting> {
        let mut problems = self.timeouts.validate(&format!("{at}.timeouts"));
        problems.extend(self.bulkhead.validate(&format!("{at}.bulkhead")));
        problems.extend(self.breaker.validate(&format!("{at}.breaker")));
        problems.extend(self.retry.validate(&format!("{at}.retry")));
        problems
    }
}

/// Failure isolation and automatic rollback of one capability (`[capability.resilience]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResilienceConfig {
    /// Settings for calls to the legacy upstream.
    pub legacy: SideResilience,
    /// Settings for calls to the new upstream.
    pub new: SideResilience,
    /// When a failed call to new may be sent to legacy instead.
    pub fallback: FallbackConfig,
    /// Automatic rollback when new does worse than legacy.
    pub slo_guard: SloGuardConfig,
    /// Largest request body kept in memory so that a retry or a fallback can send it again;
    /// larger bodies stream to the first attempt only and are never resent (0: only requests
    /// without a body are ever resent).
    pub max_replay_body_bytes: usize,
}

impl Default for ResilienceConfig {
    fn default() -> Self {
        Self {
            legacy: SideResilience::default(),
            new: SideResilience::default(),
            fallback: FallbackConfig::default(),
            slo_guard: SloGuardConfig::default(),
            max_replay_body_bytes: DEFAULT_MAX_REPLAY_BODY_BYTES,
        }
    }
}

impl ResilienceConfig {
    /// Every problem in the tree, with key paths under `at` (e.g. `capability[0].resilience`).
    pub fn validate(&self, at: &str) -> Vec<InvalidSetting> {
        let mut problems = self.legacy.validate(&format!("{at}.legacy"));
        problems.extend(self.new.validate(&format!("{at}.new")));
        problems.extend(self.fallback.validate(&format!("{at}.fallback")));
        problems.extend(self.slo_guard.validate(&format!("{at}.slo_guard")));
        if self.max_replay_body_bytes > MAX_REPLAY_BODY_BYTES_CEILING {
            problems.push(InvalidSetting::new(
                at,
                "max_replay_body_bytes",
                format!(
                    "must be at most {MAX_REPLAY_BODY_BYTES_CEILING} (each request in flight may hold this much)"
                ),
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An empty table gives the documented defaults, and the defaults are valid.
    #[test]
    fn empty_table_gives_valid_defaults() {
        let config: ResilienceConfig = toml::from_str("").expect("empty config parses");
        assert_eq!(config, ResilienceConfig::default());
        assert_eq!(config.validate("resilience"), Vec::new());
    }

    /// A misspelt key is rejected at load instead of being silently ignored.
    #[test]
    fn unknown_keys_are_rejected() {
        for text in [
            "[new]\ntimeout = \"1s\"",
            "[new.bulkhead]\nmax_concurent = 3",
            "[legacy.breaker]\nfailures = 3",
            "[slo_guard]\nmargin = 0.1",
        ] {
            let err = toml::from_str::<ResilienceConfig>(text).expect_err(text);
            assert!(err.to_string().contains("unknown field"), "{text}: {err}");
        }
    }

    /// Problems deep in the tree are reported with their full key path, all at once.
    #[test]
    fn validate_names_every_offending_key() {
        let text = "max_replay_body_bytes = 99999999\n[new.bulkhead]\nmax_concurrent = 0\n[legacy.breaker]\nfailure_rate = 1.5\n";
        let config: ResilienceConfig = toml::from_str(text).expect("parses");
        let keys: Vec<String> = config
            .validate("capability[3].resilience")
            .into_iter()
            .map(|p| p.key)
            .collect();
        assert_eq!(
            keys,
            vec![
                "capability[3].resilience.legacy.breaker.failure_rate",
                "capability[3].resilience.new.bulkhead.max_concurrent",
                "capability[3].resilience.max_replay_body_bytes",
            ]
        );
    }

    /// Durations are written the human way ("250ms", "2s") in the file.
    #[test]
    fn durations_parse_from_human_text() {
        let text = "[new.timeouts]\nconnect = \"250ms\"\nfirst_byte = \"2s\"\n";
        let config: ResilienceConfig = toml::from_str(text).expect("parses");
        assert_eq!(
            config.new.timeouts.connect,
            std::time::Duration::from_millis(250)
        );
        assert_eq!(
            config.new.timeouts.first_byte,
            std::time::Duration::from_secs(2)
        );
    }
}
