//! The bridge's configuration: one serde tree read from TOML, unknown keys refused, defaults as
//! named constants, `FIG_BRIDGE_*` environment overrides on top, and [`Config::validate`]
//! naming the offending key.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Default replication slot and publication name.
pub const DEFAULT_SLOT: &str = "fig_bridge";
/// Default topic prefix: events of aggregate `order` go to `legacy.order`.
pub const DEFAULT_TOPIC_PREFIX: &str = "legacy.";
/// Default compacted topic holding the last committed source LSN.
pub const DEFAULT_PROGRESS_TOPIC: &str = "fig.bridge.progress";
/// Default dead-letter topic.
pub const DEFAULT_DEAD_LETTER_TOPIC: &str = "legacy.dead-letter";
/// Default Kafka transactional id (one per slot).
pub const DEFAULT_TRANSACTIONAL_ID: &str = "fig-bridge";
/// Default latency bound for batching small legacy transactions into one Kafka transaction.
pub const DEFAULT_MAX_BATCH_LATENCY: Duration = Duration::from_millis(15);
/// Default cap on rows per Kafka transaction (a bigger legacy transaction is never split).
pub const DEFAULT_MAX_BATCH_ROWS: usize = 20_000;
/// Default Kafka transaction timeout: long enough for a million-row legacy transaction.
pub const DEFAULT_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(600);
/// Default partitions of topics the bridge creates.
pub const DEFAULT_TOPIC_PARTITIONS: i32 = 3;
/// How often the bridge reports progress to PostgreSQL when nothing else happens.
pub const DEFAULT_STATUS_INTERVAL: Duration = Duration::from_secs(1);
/// How often slot lag is measured.
pub const DEFAULT_SLOT_LAG_INTERVAL: Duration = Duration::from_secs(5);
/// Slot lag above which the bridge warns.
pub const DEFAULT_SLOT_LAG_WARN_BYTES: u64 = 1 << 30;
/// How often a standby checks whether the slot is free.
pub const DEFAULT_STANDBY_POLL: Duration = Duration::from_secs(1);
/// Default metrics and health listener.
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:9187";
/// Rows per snapshot chunk.
pub const DEFAULT_SNAPSHOT_CHUNK_ROWS: u32 = 10_000;
/// Prefix of `pg_logical_emit_message` heartbeats the bridge writes itself.
pub const HEARTBEAT_PREFIX: &str = "fig.bridge.heartbeat";

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The legacy database.
    pub postgres: PostgresConfig,
    /// The broker and topics.
    pub kafka: KafkaConfig,
    /// The schema registry.
    pub registry: RegistryConfig,
    /// The ACL mapping file.
    pub mapping: MappingConfig,
    /// Metrics and health listener.
    #[serde(default)]
    pub http: HttpConfig,
    /// Initial snapshot.
    #[serde(default)]
    pub snapshot: SnapshotConfig,
}

/// `[postgres]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// libpq key=value connection string (without `replication=`).
    pub conn: String,
    /// Replication slot.
    #[serde(default = "default_slot")]
    pub slot: String,
    /// Publication.
    #[serde(default = "default_slot")]
    pub publication: String,
    /// Create the slot when it is missing.
    #[serde(default = "yes")]
    pub create_slot: bool,
    /// Create the publication (for the mapped tables) when it is missing.
    #[serde(default = "yes")]
    pub create_publication: bool,
    /// Progress report cadence when the stream is quiet.
    #[serde(default = "default_status_interval", with = "humantime_serde")]
    pub status_interval: Duration,
    /// Slot lag measurement cadence.
    #[serde(default = "default_slot_lag_interval", with = "humantime_serde")]
    pub slot_lag_interval: Duration,
    /// Warn when the slot retains more WAL than this.
    #[serde(default = "default_slot_lag_warn_bytes")]
    pub slot_lag_warn_bytes: u64,
    /// Write a `pg_logical_emit_message` heartbeat this often, so an idle slot keeps advancing.
    #[serde(default, with = "humantime_serde")]
    pub heartbeat_interval: Option<Duration>,
    /// How often a standby looks at the slot.
    #[serde(default = "default_standby_poll", with = "humantime_serde")]
    pub standby_poll: Duration,
}

/// `[kafka]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers.
    pub brokers: String,
    /// Topic of aggregate `a` is `<topic_prefix>a` unless `topics` says otherwise.
    #[serde(default = "default_topic_prefix")]
    pub topic_prefix: String,
    /// Per-aggregate topic overrides.
    #[serde(default)]
    pub topics: BTreeMap<String, String>,
    /// Compacted topic with the last committed source LSN per slot.
    #[serde(default = "default_progress_topic")]
    pub progress_topic: String,
    /// Where rows the ACL or the encoder rejects go.
    #[serde(default = "default_dead_letter_topic")]
    pub dead_letter_topic: String,
    /// Transactional id; one active producer per id.
    #[serde(default = "default_transactional_id")]
    pub transactional_id: String,
    /// Create missing topics at start.
    #[serde(default = "yes")]
    pub create_topics: bool,
    /// Partitions of created event topics.
    #[serde(default = "default_topic_partitions")]
    pub topic_partitions: i32,
    /// Publish a tombstone after each delete event (for compacted topics).
    #[serde(default)]
    pub tombstones: bool,
    /// Commit the open Kafka transaction at the first legacy commit after this much time.
    #[serde(default = "default_max_batch_latency", with = "humantime_serde")]
    pub max_batch_latency: Duration,
    /// Commit the open Kafka transaction at the first legacy commit after this many rows.
    #[serde(default = "default_max_batch_rows")]
    pub max_batch_rows: usize,
    /// Kafka `transaction.timeout.ms`.
    #[serde(default = "default_transaction_timeout", with = "humantime_serde")]
    pub transaction_timeout: Duration,
    /// Extra librdkafka properties (for TLS, SASL, tuning).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

/// `[registry]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// Base URL.
    pub url: String,
    /// How subjects are named.
    #[serde(default)]
    pub subject_strategy: contracts::SubjectStrategy,
    /// Compatibility level set on each subject the bridge writes.
    #[serde(default = "default_compatibility")]
    pub compatibility: String,
}

/// `[mapping]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingConfig {
    /// Path of the ACL mapping TOML.
    pub path: PathBuf,
}

/// `[http]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Listen address of `/metrics` and `/health/*`.
    #[serde(default = "default_http_listen")]
    pub listen: String,
}

/// `[snapshot]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotConfig {
    /// Copy existing rows when the bridge creates its slot.
    #[serde(default)]
    pub initial: bool,
    /// Rows per chunk.
    #[serde(default = "default_snapshot_chunk_rows")]
    pub chunk_rows: u32,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: default_http_listen(),
        }
    }
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        SnapshotConfig {
            initial: false,
            chunk_rows: DEFAULT_SNAPSHOT_CHUNK_ROWS,
        }
    }
}

fn yes() -> bool {
    true
}
fn default_slot() -> String {
    DEFAULT_SLOT.into()
}
fn default_status_interval() -> Duration {
    DEFAULT_STATUS_INTERVAL
}
fn default_slot_lag_interval() -> Duration {
    DEFAULT_SLOT_LAG_INTERVAL
}
fn default_slot_lag_warn_bytes() -> u64 {
    DEFAULT_SLOT_LAG_WARN_BYTES
}
fn default_standby_poll() -> Duration {
    DEFAULT_STANDBY_POLL
}
fn default_topic_prefix() -> String {
    DEFAULT_TOPIC_PREFIX.into()
}
fn default_progress_topic() -> String {
    DEFAULT_PROGRESS_TOPIC.into()
}
fn default_dead_letter_topic() -> String {
    DEFAULT_DEAD_LETTER_TOPIC.into()
}
fn default_transactional_id() -> String {
    DEFAULT_TRANSACTIONAL_ID.into()
}
fn default_topic_partitions() -> i32 {
    DEFAULT_TOPIC_PARTITIONS
}
fn default_max_batch_latency() -> Duration {
    DEFAULT_MAX_BATCH_LATENCY
}
fn default_max_batch_rows() -> usize {
    DEFAULT_MAX_BATCH_ROWS
}
fn default_transaction_timeout() -> Duration {
    DEFAULT_TRANSACTION_TIMEOUT
}
fn default_compatibility() -> String {
    "BACKWARD_TRANSITIVE".into()
}
fn default_http_listen() -> String {
    DEFAULT_HTTP_LISTEN.into()
}
fn default_snapshot_chunk_rows() -> u32 {
    DEFAULT_SNAPSHOT_CHUNK_ROWS
}

/// A configuration that cannot be used, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// TOML syntax or an unknown or mistyped key.
    #[error("config is not valid")]
    Parse(#[source] toml::de::Error),
    /// A value out of range.
    #[error("config key `{key}`: {problem}")]
    Invalid {
        /// Dotted key path.
        key: &'static str,
        /// What is wrong with it.
        problem: String,
    },
}

/// Environment variables that override file values, with the key each one sets.
pub const ENV_OVERRIDES: &[(&str, &str)] = &[
    ("FIG_BRIDGE_PG_CONN", "postgres.conn"),
    ("FIG_BRIDGE_SLOT", "postgres.slot"),
    ("FIG_BRIDGE_KAFKA_BROKERS", "kafka.brokers"),
    ("FIG_BRIDGE_REGISTRY_URL", "registry.url"),
    ("FIG_BRIDGE_HTTP_LISTEN", "http.listen"),
];

impl Config {
    /// Reads, overrides from the process environment, and validates.
    pub fn load(path: &std::path::Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_toml(&text, |k| std::env::var(k).ok())
    }

    /// Parses `text`, applies overrides from `env` (injected so tests need no process
    /// environment), and validates.
    pub fn from_toml(
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(ConfigError::Parse)?;
        for (var, key) in ENV_OVERRIDES {
            if let Some(v) = env(var) {
                *config.field_mut(key) = v;
            }
        }
        config.validate()?;
        Ok(config)
    }

    fn field_mut(&mut self, key: &str) -> &mut String {
        match key {
            "postgres.conn" => &mut self.postgres.conn,
            "postgres.slot" => &mut self.postgres.slot,
            "kafka.brokers" => &mut self.kafka.brokers,
            "registry.url" => &mut self.registry.url,
            _ => &mut self.http.listen,
        }
    }

    /// Checks every value that serde cannot, naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, problem: &str| ConfigError::Invalid {
            key,
            problem: problem.to_string(),
        };
        if self.postgres.conn.contains("replication=") {
            return Err(invalid(
                "postgres.conn",
                "must not set `replication=`; the bridge adds it",
            ));
        }
        for (key, name) in [
            ("postgres.slot", &self.postgres.slot),
            ("postgres.publication", &self.postgres.publication),
        ] {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                return Err(invalid(
                    key,
                    "must be non-empty and use only a-z, 0-9 and _",
                ));
            }
        }
        if self.postgres.status_interval.is_zero() {
            return Err(invalid("postgres.status_interval", "must be above zero"));
        }
        if self.kafka.brokers.trim().is_empty() {
            return Err(invalid("kafka.brokers", "must name at least one broker"));
        }
        for (key, topic) in [
            ("kafka.progress_topic", &self.kafka.progress_topic),
            ("kafka.dead_letter_topic", &self.kafka.dead_letter_topic),
        ] {
            if !valid_topic(topic) {
                return Err(invalid(key, "is not a valid Kafka topic name"));
            }
        }
        if self.kafka.topics.values().any(|t| !valid_topic(t)) {
            return Err(invalid(
                "kafka.topics",
                "holds a value that is not a valid Kafka topic name",
            ));
        }
        if self.kafka.topic_partitions < 1 {
            return Err(invalid("kafka.topic_partitions", "must be at least 1"));
        }
        if self.kafka.max_batch_rows == 0 {
            return Err(invalid("kafka.max_batch_rows", "must be at least 1"));
        }
        if self.kafka.transaction_timeout < Duration::from_secs(1) {
            return Err(invalid("kafka.transaction_timeout", "must be at least 1s"));
        }
        if self.kafka.properties.contains_key("transactional.id") {
            return Err(invalid(
                "kafka.properties",
                "must not set transactional.id; use kafka.transactional_id",
            ));
        }
        if !self.registry.url.starts_with("http://") && !self.registry.url.starts_with("https://") {
            return Err(invalid(
                "registry.url",
                "must start with http:// or https://",
            ));
        }
        const LEVELS: &[&str] = &[
            "NONE",
            "BACKWARD",
            "BACKWARD_TRANSITIVE",
            "FORWARD",
            "FORWARD_TRANSITIVE",
            "FULL",
            "FULL_TRANSITIVE",
        ];
        if !LEVELS.contains(&self.registry.compatibility.as_str()) {
            return Err(invalid(
                "registry.compatibility",
                "must be one of NONE, BACKWARD(_TRANSITIVE), FORWARD(_TRANSITIVE), FULL(_TRANSITIVE)",
            ));
        }
        if self.http.listen.parse::<SocketAddr>().is_err() {
            return Err(invalid(
                "http.listen",
                "must be an address like 127.0.0.1:9187",
            ));
        }
        if self.snapshot.chunk_rows == 0 {
            return Err(invalid("snapshot.chunk_rows", "must be at least 1"));
        }
        Ok(())
    }

    /// The topic that events of `aggregate_type` go to.
    pub fn topic_for(&self, aggregate_type: &str) -> String {
        self.kafka
            .topics
            .get(aggregate_type)
            .cloned()
            .unwrap_or_else(|| format!("{}{aggregate_type}", self.kafka.topic_prefix))
    }

    /// The replication connection string.
    pub fn replication_conn(&self) -> String {
        format!("{} replication=database", self.postgres.conn)
    }
}

fn valid_topic(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 249
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [postgres]
        conn = "host=127.0.0.1 dbname=legacy"
        [kafka]
        brokers = "127.0.0.1:19092"
        [registry]
        url = "http://127.0.0.1:18081"
        [mapping]
        path = "acl/mappings/order_to_cash.toml"
    "#;

    /// A minimal file gets the documented defaults.
    #[test]
    fn minimal_config_takes_defaults() {
        let c = Config::from_toml(MINIMAL, |_| None).expect("valid");
        assert_eq!(c.postgres.slot, DEFAULT_SLOT);
        assert_eq!(c.kafka.max_batch_latency, DEFAULT_MAX_BATCH_LATENCY);
        assert_eq!(c.topic_for("order"), "legacy.order");
        assert!(c.postgres.heartbeat_interval.is_none());
    }

    /// An unknown key is refused, and the message names it.
    #[test]
    fn unknown_key_is_named() {
        let text = MINIMAL.replace("[kafka]", "[kafka]\nbrokerz = \"x\"");
        let err = Config::from_toml(&text, |_| None).expect_err("unknown key");
        let chain = format!("{:?}", anyhow_chain(&err));
        assert!(chain.contains("brokerz"), "{chain}");
    }

    /// Environment overrides win over the file.
    #[test]
    fn env_overrides_the_file() {
        let c = Config::from_toml(MINIMAL, |k| {
            (k == "FIG_BRIDGE_SLOT").then(|| "s2".to_string())
        })
        .expect("valid");
        assert_eq!(c.postgres.slot, "s2");
    }

    /// A bad value is refused with its key path.
    #[test]
    fn invalid_values_name_their_key() {
        let text = MINIMAL.replace("[kafka]", "[kafka]\nmax_batch_rows = 0");
        let err = Config::from_toml(&text, |_| None).expect_err("zero rows");
        assert!(err.to_string().contains("kafka.max_batch_rows"), "{err}");
        let text = MINIMAL.replace("[registry]", "[registry]\ncompatibility = \"SOMETIMES\"");
        let err = Config::from_toml(&text, |_| None).expect_err("bad level");
        assert!(err.to_string().contains("registry.compatibility"), "{err}");
    }

    fn anyhow_chain(e: &dyn std::error::Error) -> Vec<String> {
        let mut out = vec![e.to_string()];
        let mut cur = e.source();
        while let Some(s) = cur {
            out.push(s.to_string());
            cur = s.source();
        }
        out
    }
}
