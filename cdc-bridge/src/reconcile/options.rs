//! What a reconciliation reads and how: the bridge's own configuration (legacy database, broker,
//! registry, topics, checkpoint) plus the `[reconcile]` settings, one serde tree with unknown keys
//! refused, defaults as named constants and [`ReconcileSettings::validate`] naming the key.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::error::ReconcileError;
use crate::config::Config;

/// Legacy rows fetched per round trip.
pub const DEFAULT_CHUNK_ROWS: u32 = 10_000;
/// Pending orders older than this are listed as stuck.
pub const DEFAULT_STUCK_AFTER: Duration = Duration::from_secs(3600);
/// Legacy codes that mean "pending": new, accepted, pending payment.
pub const DEFAULT_PENDING_CODES: &str = "NAP";
/// Orders listed per list in a report (counts are always complete).
pub const DEFAULT_MAX_LISTED: usize = 1000;
/// A legacy change this close before the last published commit may still be in flight.
pub const DEFAULT_IN_FLIGHT_GRACE: Duration = Duration::from_secs(5);
/// How long reading the order topic to its end may take.
pub const DEFAULT_EVENT_READ_TIMEOUT: Duration = Duration::from_secs(1800);
/// The aggregate reconciled.
pub const ORDER_AGGREGATE: &str = "order";

/// The `[reconcile]` settings (a file of its own, or defaults).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ReconcileSettings {
    /// Legacy rows per fetch.
    #[serde(default = "default_chunk_rows")]
    pub chunk_rows: u32,
    /// Pending orders older than this are stuck.
    #[serde(default = "default_stuck_after", with = "humantime_serde")]
    pub stuck_after: Duration,
    /// Legacy `ord_stat_cd` codes that mean pending.
    #[serde(default = "default_pending_codes")]
    pub pending_codes: String,
    /// Orders listed per list.
    #[serde(default = "default_max_listed")]
    pub max_listed: usize,
    /// See [`DEFAULT_IN_FLIGHT_GRACE`].
    #[serde(default = "default_in_flight_grace", with = "humantime_serde")]
    pub in_flight_grace: Duration,
    /// See [`DEFAULT_EVENT_READ_TIMEOUT`].
    #[serde(default = "default_event_read_timeout", with = "humantime_serde")]
    pub event_read_timeout: Duration,
    /// The new service's read model, compared beside the events.
    #[serde(default)]
    pub read_model: Option<ReadModelSettings>,
}

/// `[reconcile.read_model]`: a SQL query over the new service's store.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ReadModelSettings {
    /// libpq connection string of the read model's database.
    pub conn: String,
    /// Returns one row per order: (order id as bigint or text, status as text: a business
    /// name such as `Secured` or a legacy code such as `S`).
    pub query: String,
}

impl Default for ReconcileSettings {
    fn default() -> Self {
        ReconcileSettings {
            chunk_rows: DEFAULT_CHUNK_ROWS,
            stuck_after: DEFAULT_STUCK_AFTER,
            pending_codes: DEFAULT_PENDING_CODES.into(),
            max_listed: DEFAULT_MAX_LISTED,
            in_flight_grace: DEFAULT_IN_FLIGHT_GRACE,
            event_read_timeout: DEFAULT_EVENT_READ_TIMEOUT,
            read_model: None,
        }
    }
}

fn default_chunk_rows() -> u32 {
    DEFAULT_CHUNK_ROWS
}
fn default_stuck_after() -> Duration {
    DEFAULT_STUCK_AFTER
}
fn default_pending_codes() -> String {
    DEFAULT_PENDING_CODES.into()
}
fn default_max_listed() -> usize {
    DEFAULT_MAX_LISTED
}
fn default_in_flight_grace() -> Duration {
    DEFAULT_IN_FLIGHT_GRACE
}
fn default_event_read_timeout() -> Duration {
    DEFAULT_EVENT_READ_TIMEOUT
}

impl ReconcileSettings {
    /// Reads and validates a settings file.
    pub fn load(path: &Path) -> Result<ReconcileSettings, ReconcileError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ReconcileError::ReadSettings {
                path: path.to_owned(),
                source,
            })?;
        ReconcileSettings::from_toml(&text)
    }

    /// Parses and validates settings text.
    pub fn from_toml(text: &str) -> Result<ReconcileSettings, ReconcileError> {
        let settings: ReconcileSettings =
            toml::from_str(text).map_err(ReconcileError::ParseSettings)?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what serde cannot, naming the key.
    pub fn validate(&self) -> Result<(), ReconcileError> {
        let bad = |key, problem: &str| ReconcileError::Setting {
            key,
            problem: problem.into(),
        };
        if self.chunk_rows == 0 {
            return Err(bad("chunk_rows", "must be at least 1"));
        }
        if self.max_listed == 0 {
            return Err(bad("max_listed", "must be at least 1"));
        }
        if !self.pending_codes.chars().all(|c| "NAPSCXE".contains(c)) {
            return Err(bad(
                "pending_codes",
                "may hold only the ord_stat_cd codes N A P S C X E",
            ));
        }
        if self.event_read_timeout < Duration::from_secs(1) {
            return Err(bad("event_read_timeout", "must be at least 1s"));
        }
        if let Some(rm) = &self.read_model {
            if rm.conn.trim().is_empty() {
                return Err(bad("read_model.conn", "must be a connection string"));
            }
            if rm.query.trim().is_empty() {
                return Err(bad(
                    "read_model.query",
                    "must be a query returning (order id, status)",
                ));
            }
        }
        Ok(())
    }
}

/// Where a reconciliation reads from and publishes to.
#[derive(Debug, Clone)]
pub struct ReconcileOptions {
    /// The legacy database (libpq key=value).
    pub legacy_conn: String,
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// Extra librdkafka properties (TLS, SASL).
    pub kafka_properties: BTreeMap<String, String>,
    /// The order events topic.
    pub order_topic: String,
    /// The bridge's progress topic and key (its slot), to know what it has published.
    pub progress: Option<(String, String)>,
    /// Schema registry base URL.
    pub registry_url: String,
    /// How subjects are named (re-drive registers under the same subject as the bridge).
    pub subject_strategy: contracts::SubjectStrategy,
    /// Compatibility level set on subjects a re-drive registers under.
    pub registry_compatibility: String,
    /// Kafka transactional id of re-drives.
    pub redrive_transactional_id: String,
    /// The `[reconcile]` settings.
    pub settings: ReconcileSettings,
}

impl ReconcileOptions {
    /// Options from the bridge's configuration and the reconciliation settings.
    pub fn from_bridge(config: &Config, settings: ReconcileSettings) -> ReconcileOptions {
        ReconcileOptions {
            legacy_conn: config.postgres.conn.clone(),
            brokers: config.kafka.brokers.clone(),
            kafka_properties: config.kafka.properties.clone(),
            order_topic: config.topic_for(ORDER_AGGREGATE),
            progress: Some((
                config.kafka.progress_topic.clone(),
                config.postgres.slot.clone(),
            )),
            registry_url: config.registry.url.clone(),
            subject_strategy: config.registry.subject_strategy,
            registry_compatibility: config.registry.compatibility.clone(),
            redrive_transactional_id: format!("{}-reconcile", config.kafka.transactional_id),
            settings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An empty file takes the documented defaults.
    #[test]
    fn empty_settings_take_defaults() {
        let s = ReconcileSettings::from_toml("").expect("valid");
        assert_eq!(s, ReconcileSettings::default());
    }

    /// Unknown keys and bad values are refused, naming the key.
    #[test]
    fn bad_settings_name_their_key() {
        let err = ReconcileSettings::from_toml("chunk_rowz = 5").expect_err("unknown");
        let chain = format!(
            "{err} {:?}",
            std::error::Error::source(&err).map(ToString::to_string)
        );
        assert!(chain.contains("chunk_rowz"), "{chain}");
        let err = ReconcileSettings::from_toml("pending_codes = \"NQ\"").expect_err("bad code");
        assert!(err.to_string().contains("pending_codes"), "{err}");
        let err = ReconcileSettings::from_toml("[read_model]\nconn = \"host=x\"\nquery = \" \"")
            .expect_err("empty query");
        assert!(err.to_string().contains("read_model.query"), "{err}");
        let ok = ReconcileSettings::from_toml("stuck_after = \"30m\"\nmax_listed = 5").expect("ok");
        assert_eq!(ok.stuck_after, Duration::from_secs(1800));
    }
}
