//! Telemetry in one place: every metric name and label key is a constant here, and each
//! telemetry event is one method that both logs (fields before the message, never row values)
//! and counts, so the log line and the counter never drift apart.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Domain events published, by event type.
pub const EVENTS_PUBLISHED: &str = "fig_bridge_events_published";
/// Legacy transactions committed into Kafka.
pub const LEGACY_TRANSACTIONS: &str = "fig_bridge_legacy_transactions";
/// Kafka transactions committed.
pub const KAFKA_TRANSACTIONS: &str = "fig_bridge_kafka_transactions";
/// Legacy transactions skipped on restart because Kafka already had them.
pub const SKIPPED_TRANSACTIONS: &str = "fig_bridge_skipped_transactions";
/// Rows sent to the dead-letter topic, by reason.
pub const DEAD_LETTERS: &str = "fig_bridge_dead_letters";
/// Seconds from the legacy commit to the Kafka commit that carries it.
pub const COMMIT_TO_ACK_SECONDS: &str = "fig_bridge_commit_to_ack_seconds";
/// Seconds one Kafka commit takes: waiting for the batch's deliveries, then `EndTxn`.
pub const KAFKA_COMMIT_SECONDS: &str = "fig_bridge_kafka_commit_seconds";
/// Bytes of WAL between the server's current position and the slot's confirmed flush.
pub const SLOT_LAG_BYTES: &str = "fig_bridge_slot_lag_bytes";
/// Bytes of WAL the slot forces the server to keep (from its restart LSN).
pub const SLOT_RETAINED_BYTES: &str = "fig_bridge_slot_retained_bytes";
/// 1 for the slot's current `wal_status`.
pub const SLOT_WAL_STATUS: &str = "fig_bridge_slot_wal_status";
/// Last source LSN committed to Kafka.
pub const COMMITTED_LSN: &str = "fig_bridge_committed_lsn";
/// Snapshot rows copied, by table.
pub const SNAPSHOT_ROWS: &str = "fig_bridge_snapshot_rows";
/// Snapshot progress of each table, 0 to 1.
pub const SNAPSHOT_PROGRESS: &str = "fig_bridge_snapshot_progress_ratio";
/// 1 while this instance streams, 0 as standby or while starting.
pub const STREAMING: &str = "fig_bridge_streaming";
/// Session restarts after a transient error.
pub const SESSION_RESTARTS: &str = "fig_bridge_session_restarts";

/// Label key: event type.
pub const LABEL_EVENT_TYPE: &str = "event_type";
/// Label key: dead-letter reason.
pub const LABEL_REASON: &str = "reason";
/// Label key: legacy table.
pub const LABEL_TABLE: &str = "table";
/// Label key: slot WAL status.
pub const LABEL_WAL_STATUS: &str = "wal_status";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventTypeLabel {
    event_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableLabel {
    table: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WalStatusLabel {
    wal_status: String,
}

/// The bridge's metrics and readiness, shared by all tasks.
#[derive(Clone)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    events: Family<EventTypeLabel, Counter>,
    legacy_txns: Counter,
    kafka_txns: Counter,
    skipped_txns: Counter,
    dead_letters: Family<ReasonLabel, Counter>,
    commit_to_ack: Histogram,
    kafka_commit: Histogram,
    slot_lag: Gauge,
    slot_retained: Gauge,
    slot_wal_status: Family<WalStatusLabel, Gauge>,
    committed_lsn: Gauge,
    committed_lsn_raw: AtomicU64,
    snapshot_rows: Family<TableLabel, Counter>,
    snapshot_progress: Family<TableLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    streaming: Gauge,
    streaming_flag: AtomicBool,
    restarts: Counter,
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry::new()
    }
}

/// Bucket bounds of the commit-to-ack histogram, in seconds: 5 ms steps up to 100 ms, where
/// latency objectives sit (a p99 read from doubling buckets could only say "between 32 and
/// 64 ms"), then coarser up to 30 s for backlogs and outages.
const COMMIT_TO_ACK_BUCKETS: [f64; 30] = [
    0.001, 0.002, 0.005, 0.010, 0.015, 0.020, 0.025, 0.030, 0.035, 0.040, 0.045, 0.050, 0.055,
    0.060, 0.065, 0.070, 0.075, 0.080, 0.090, 0.100, 0.150, 0.200, 0.300, 0.500, 1.0, 2.0, 5.0,
    10.0, 20.0, 30.0,
];

impl Telemetry {
    /// Registers every metric.
    pub fn new() -> Telemetry {
        let mut registry = Registry::default();
        let inner = Inner {
            events: Family::default(),
            legacy_txns: Counter::default(),
            kafka_txns: Counter::default(),
            skipped_txns: Counter::default(),
            dead_letters: Family::default(),
            commit_to_ack: Histogram::new(COMMIT_TO_ACK_BUCKETS.iter().copied()),
            kafka_commit: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            slot_lag: Gauge::default(),
            slot_retained: Gauge::default(),
            slot_wal_status: Family::default(),
            committed_lsn: Gauge::default(),
            committed_lsn_raw: AtomicU64::new(0),
            snapshot_rows: Family::default(),
            snapshot_progress: Family::default(),
            streaming: Gauge::default(),
            streaming_flag: AtomicBool::new(false),
            restarts: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            EVENTS_PUBLISHED,
            "Domain events published, by event type",
            inner.events.clone(),
        );
        registry.register(
            LEGACY_TRANSACTIONS,
            "Legacy transactions committed into Kafka",
            inner.legacy_txns.clone(),
        );
        registry.register(
            KAFKA_TRANSACTIONS,
            "Kafka transactions committed",
            inner.kafka_txns.clone(),
        );
        registry.register(
            SKIPPED_TRANSACTIONS,
            "Legacy transactions skipped because Kafka already had them",
            inner.skipped_txns.clone(),
        );
        registry.register(
            DEAD_LETTERS,
            "Rows sent to the dead-letter topic, by reason",
            inner.dead_letters.clone(),
        );
        registry.register(
            COMMIT_TO_ACK_SECONDS,
            "Seconds from the legacy commit to the Kafka commit carrying it",
            inner.commit_to_ack.clone(),
        );
        registry.register(
            KAFKA_COMMIT_SECONDS,
            "Seconds one Kafka commit takes (deliveries of the batch, then EndTxn)",
            inner.kafka_commit.clone(),
        );
        registry.register(
            SLOT_LAG_BYTES,
            "WAL bytes between the current position and the slot's confirmed flush",
            inner.slot_lag.clone(),
        );
        registry.register(
            SLOT_RETAINED_BYTES,
            "WAL bytes the slot retains",
            inner.slot_retained.clone(),
        );
        registry.register(
            SLOT_WAL_STATUS,
            "1 for the slot's current wal_status",
            inner.slot_wal_status.clone(),
        );
        registry.register(
            COMMITTED_LSN,
            "Last source LSN committed to Kafka",
            inner.committed_lsn.clone(),
        );
        registry.register(
            SNAPSHOT_ROWS,
            "Snapshot rows copied, by table",
            inner.snapshot_rows.clone(),
        );
        registry.register(
            SNAPSHOT_PROGRESS,
            "Snapshot progress per table, 0 to 1",
            inner.snapshot_progress.clone(),
        );
        registry.register(
            STREAMING,
            "1 while this instance streams",
            inner.streaming.clone(),
        );
        registry.register(
            SESSION_RESTARTS,
            "Session restarts after transient errors",
            inner.restarts.clone(),
        );
        let inner = Inner { registry, ..inner };
        Telemetry {
            inner: Arc::new(inner),
        }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.inner.registry);
        out
    }

    /// One domain event went into the open Kafka transaction.
    pub fn event_published(&self, event_type: &str) {
        self.inner
            .events
            .get_or_create(&EventTypeLabel {
                event_type: event_type.to_string(),
            })
            .inc();
    }

    /// A Kafka transaction committed `legacy_txns` legacy transactions up to `lsn` in
    /// `commit_seconds`; `commit_ages` are the seconds since each legacy commit.
    pub fn kafka_committed(
        &self,
        legacy_txns: u64,
        lsn: u64,
        commit_seconds: f64,
        commit_ages: &[f64],
    ) {
        self.inner.kafka_txns.inc();
        self.inner.kafka_commit.observe(commit_seconds);
        self.inner.legacy_txns.inc_by(legacy_txns);
        for age in commit_ages {
            self.inner.commit_to_ack.observe(*age);
        }
        self.inner
            .committed_lsn
            .set(i64::try_from(lsn).unwrap_or(i64::MAX));
        self.inner.committed_lsn_raw.store(lsn, Ordering::Relaxed);
        tracing::debug!(lsn = %crate::checkpoint::format_lsn(lsn), legacy_txns, commit_seconds, "kafka transaction committed");
    }

    /// Last source LSN committed to Kafka by this process.
    pub fn committed_lsn(&self) -> u64 {
        self.inner.committed_lsn_raw.load(Ordering::Relaxed)
    }

    /// A legacy transaction was skipped on restart: Kafka already has it.
    pub fn transaction_skipped(&self, commit_lsn: u64) {
        self.inner.skipped_txns.inc();
        tracing::info!(lsn = %crate::checkpoint::format_lsn(commit_lsn), "transaction already in Kafka, skipped");
    }

    /// A row went to the dead-letter topic.
    pub fn dead_lettered(&self, reason: &str, table: &str, lsn: u64) {
        self.inner
            .dead_letters
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc();
        tracing::warn!(reason, table, lsn = %crate::checkpoint::format_lsn(lsn), "row sent to the dead-letter topic");
    }

    /// Slot lag was measured.
    pub fn slot_measured(
        &self,
        lag_bytes: i64,
        retained_bytes: i64,
        wal_status: &str,
        warn_above: u64,
    ) {
        self.inner.slot_lag.set(lag_bytes);
        self.inner.slot_retained.set(retained_bytes);
        for status in ["reserved", "extended", "unreserved", "lost"] {
            let v = i64::from(status == wal_status);
            self.inner
                .slot_wal_status
                .get_or_create(&WalStatusLabel {
                    wal_status: status.to_string(),
                })
                .set(v);
        }
        if u64::try_from(retained_bytes).unwrap_or(0) > warn_above
            || wal_status == "unreserved"
            || wal_status == "lost"
        {
            tracing::warn!(
                lag_bytes,
                retained_bytes,
                wal_status,
                "replication slot retains a lot of WAL"
            );
        }
    }

    /// Snapshot progress of one table.
    pub fn snapshot_progress(&self, table: &str, rows_added: u64, ratio: f64) {
        let label = TableLabel {
            table: table.to_string(),
        };
        self.inner
            .snapshot_rows
            .get_or_create(&label)
            .inc_by(rows_added);
        self.inner
            .snapshot_progress
            .get_or_create(&label)
            .set(ratio);
    }

    /// Whether this instance is streaming (drives `/health/ready`).
    pub fn set_streaming(&self, on: bool) {
        self.inner.streaming.set(i64::from(on));
        self.inner.streaming_flag.store(on, Ordering::Relaxed);
    }

    /// Whether this instance is streaming.
    pub fn is_streaming(&self) -> bool {
        self.inner.streaming_flag.load(Ordering::Relaxed)
    }

    /// The session restarts after a transient error.
    pub fn session_restarted(&self) {
        self.inner.restarts.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counted events show up in the exposition under their constant names.
    #[test]
    fn exposition_carries_the_named_metrics() {
        let t = Telemetry::new();
        t.event_published("OrderPlaced");
        t.dead_lettered("bad_number", "ord_hdr", 0x10);
        t.kafka_committed(2, 0x20, 0.004, &[0.01]);
        let text = t.encode();
        assert!(
            text.contains("fig_bridge_events_published_total{event_type=\"OrderPlaced\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("fig_bridge_dead_letters_total{reason=\"bad_number\"} 1"),
            "{text}"
        );
        assert!(text.contains("fig_bridge_committed_lsn 32"), "{text}");
        assert!(
            text.contains("fig_bridge_kafka_commit_seconds_count 1"),
            "{text}"
        );
        assert_eq!(t.committed_lsn(), 0x20);
    }
}
