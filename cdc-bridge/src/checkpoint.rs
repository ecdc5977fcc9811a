//! Progress: what Kafka has committed, and therefore what PostgreSQL may forget.
//!
//! # The rule: acknowledge to PostgreSQL only what Kafka has committed
//!
//! ```text
//!  PostgreSQL (slot)             bridge                                  Kafka
//!  ─────────────────             ──────                                  ─────
//!  BEGIN  final_lsn=L ───────▶ L <= checkpoint.commit_lsn ? ── yes ──▶ skip: already published
//!                                 │ no
//!  row, row, … (any number) ──▶ produce into the open transaction ───▶ events, dead letters
//!  COMMIT end_lsn=E ─────────▶ at a batch boundary (latency/rows bound):
//!                               produce progress {L, E} ─────────────▶ progress topic, same txn
//!                               commit_transaction ──────────────────▶ all of it visible at once
//!  confirmed_flush = E ◀──────── acknowledge E (next status tick), only after commit returned Ok
//! ```
//!
//! - The progress record (the last committed source LSN) travels **inside the same Kafka
//!   transaction** as the events, so it is committed if and only if they are.
//! - PostgreSQL is acknowledged **only after** the Kafka commit returned. A crash before the
//!   acknowledgement makes PostgreSQL resend transactions Kafka already has; on restart the
//!   bridge reads its progress topic with `read_committed` and skips every legacy transaction
//!   whose commit LSN is at or below the checkpoint. A crash before the Kafka commit aborts (or
//!   fences) the open transaction, so nothing of it is ever visible.
//! - When nothing is open (every handed-over transaction committed in Kafka, none in flight),
//!   the stream's current position is acknowledged too, so an idle slot never piles up WAL.
//!
//! Together: every committed legacy transaction appears in Kafka exactly once for a
//! `read_committed` consumer.

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::time::{Duration, Instant};

use crate::error::BridgeError;

/// The last legacy transaction committed into Kafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    /// Commit LSN of that transaction: transactions at or below it are skipped.
    pub commit_lsn: u64,
    /// Its end LSN: where PostgreSQL may resume.
    pub end_lsn: u64,
}

impl Checkpoint {
    /// Whether the transaction committing at `commit_lsn` is already in Kafka.
    pub fn covers(&self, commit_lsn: u64) -> bool {
        commit_lsn <= self.commit_lsn
    }

    /// The progress record's value, without per-table marks.
    pub fn to_value(self) -> Vec<u8> {
        Progress {
            checkpoint: self,
            tables: Vec::new(),
        }
        .to_value()
    }

    /// Parses a progress record's value.
    pub fn from_value(bytes: &[u8]) -> Option<Checkpoint> {
        Progress::from_value(bytes).map(|p| p.checkpoint)
    }
}

/// The newest change of one legacy table that Kafka has committed, carried in every progress
/// record (the whole set, since the compacted topic keeps only the last record), so
/// `cdc-bridge status` can say how far behind each table is without reading the event topics.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TableProgress {
    /// `schema.table`.
    pub table: String,
    /// Commit LSN of the legacy transaction of that change.
    pub commit_lsn: u64,
    /// Its legacy commit time, µs since the Unix epoch.
    pub commit_ts_micros: i64,
}

/// A progress record: the checkpoint and the per-table marks committed with it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Progress {
    /// Where the stream resumes.
    pub checkpoint: Checkpoint,
    /// One mark per legacy table that ever had a change published.
    pub tables: Vec<TableProgress>,
}

impl Progress {
    /// The progress record's value.
    pub fn to_value(&self) -> Vec<u8> {
        serde_json::to_vec(&ProgressValue {
            commit_lsn: self.checkpoint.commit_lsn,
            end_lsn: self.checkpoint.end_lsn,
            commit: format_lsn(self.checkpoint.commit_lsn),
            tables: self.tables.clone(),
        })
        .unwrap_or_default()
    }

    /// Parses a progress record's value; records written before per-table marks existed
    /// parse with none.
    pub fn from_value(bytes: &[u8]) -> Option<Progress> {
        let v: ProgressValue = serde_json::from_slice(bytes).ok()?;
        Some(Progress {
            checkpoint: Checkpoint {
                commit_lsn: v.commit_lsn,
                end_lsn: v.end_lsn,
            },
            tables: v.tables,
        })
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ProgressValue {
    commit_lsn: u64,
    end_lsn: u64,
    /// Human-readable commit LSN, for operators reading the topic.
    #[serde(default)]
    commit: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    tables: Vec<TableProgress>,
}

/// PostgreSQL's `X/Y` notation.
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

/// Parses PostgreSQL's `X/Y` notation.
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.split_once('/')?;
    let hi = u64::from_str_radix(hi, 16).ok()?;
    let lo = u64::from_str_radix(lo, 16).ok()?;
    (hi <= 0xFFFF_FFFF && lo <= 0xFFFF_FFFF).then_some((hi << 32) | lo)
}

/// How long reading the progress topic may take before the session is retried.
const PROGRESS_READ_DEADLINE: Duration = Duration::from_secs(60);

/// Reads the newest checkpoint stored under `key` in `topic`, with `read_committed`, to the end
/// of every partition. Blocking: call it from a blocking thread.
pub fn read_checkpoint(
    client: &ClientConfig,
    topic: &str,
    key: &str,
) -> Result<Option<Checkpoint>, BridgeError> {
    Ok(read_progress(client, topic, key)?.map(|p| p.checkpoint))
}

/// Reads the newest progress record (checkpoint and per-table marks) stored under `key` in
/// `topic`, as [`read_checkpoint`] does. Blocking: call it from a blocking thread.
pub fn read_progress(
    client: &ClientConfig,
    topic: &str,
    key: &str,
) -> Result<Option<Progress>, BridgeError> {
    let mut config = client.clone();
    config
        .set("group.id", format!("fig-bridge-progress-{key}"))
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest");
    let consumer: BaseConsumer = config
        .create()
        .map_err(|e| BridgeError::kafka("creating the progress reader", e))?;
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(|e| {
            BridgeError::kafka(format!("reading metadata of progress topic {topic}"), e)
        })?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(BridgeError::definite(
            format!("progress topic `{topic}` does not exist"),
            format!(
                "set kafka.create_topics = true, or create it: kafka-topics.sh --create --topic {topic} --partitions 1 --config cleanup.policy=compact"
            ),
        ));
    }
    let mut assignment = TopicPartitionList::new();
    let mut pending = Vec::new();
    for p in &partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, *p, Duration::from_secs(10))
            .map_err(|e| BridgeError::kafka("reading progress topic watermarks", e))?;
        if high > low {
            assignment
                .add_partition_offset(topic, *p, Offset::Beginning)
                .map_err(|e| BridgeError::kafka("assigning the progress topic", e))?;
            pending.push(*p);
        }
    }
    if pending.is_empty() {
        return Ok(None);
    }
    consumer
        .assign(&assignment)
        .map_err(|e| BridgeError::kafka("assigning the progress topic", e))?;
    let started = Instant::now();
    let mut best: Option<Progress> = None;
    while !pending.is_empty() {
        if started.elapsed() > PROGRESS_READ_DEADLINE {
            return Err(BridgeError::kafka(
                format!("reading progress topic {topic} to its end"),
                KafkaError::MessageConsumption(rdkafka::types::RDKafkaErrorCode::OperationTimedOut),
            ));
        }
        match consumer.poll(Duration::from_millis(500)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) => pending.retain(|x| *x != p),
            Some(Err(e)) => return Err(BridgeError::kafka("reading the progress topic", e)),
            Some(Ok(msg)) if msg.key() == Some(key.as_bytes()) => {
                if let Some(p) = msg.payload().and_then(Progress::from_value)
                    && best
                        .as_ref()
                        .is_none_or(|b| p.checkpoint.commit_lsn >= b.checkpoint.commit_lsn)
                {
                    best = Some(p);
                }
            }
            Some(Ok(_)) => {}
        }
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Transactions at or below the checkpoint are skipped, later ones are not.
    #[test]
    fn checkpoint_covers_exactly_what_was_committed() {
        let cp = Checkpoint {
            commit_lsn: 0x100,
            end_lsn: 0x108,
        };
        assert!(cp.covers(0xFF));
        assert!(cp.covers(0x100));
        assert!(!cp.covers(0x101));
        assert!(!Checkpoint::default().covers(1));
    }

    /// The progress value survives a round trip and junk is refused.
    #[test]
    fn progress_value_round_trips() {
        let cp = Checkpoint {
            commit_lsn: 0x1_0000_0010,
            end_lsn: 0x1_0000_0020,
        };
        assert_eq!(Checkpoint::from_value(&cp.to_value()), Some(cp));
        assert_eq!(Checkpoint::from_value(b"not json"), None);
    }

    /// Per-table marks survive a round trip, and a record written before they existed still
    /// parses (with none).
    #[test]
    fn progress_with_table_marks_round_trips_and_old_records_parse() {
        let p = Progress {
            checkpoint: Checkpoint {
                commit_lsn: 0x30,
                end_lsn: 0x38,
            },
            tables: vec![TableProgress {
                table: "public.ord_hdr".into(),
                commit_lsn: 0x30,
                commit_ts_micros: 1_700_000_000_000_000,
            }],
        };
        assert_eq!(Progress::from_value(&p.to_value()), Some(p.clone()));
        assert_eq!(Checkpoint::from_value(&p.to_value()), Some(p.checkpoint));
        let old = br#"{"commit_lsn":16,"end_lsn":24,"commit":"0/10"}"#;
        let parsed = Progress::from_value(old).expect("old record");
        assert_eq!(parsed.checkpoint.end_lsn, 24);
        assert!(parsed.tables.is_empty());
    }

    /// LSNs print and parse in PostgreSQL's notation.
    #[test]
    fn lsn_notation_round_trips() {
        assert_eq!(format_lsn(0x16_B374_D848), "16/B374D848");
        assert_eq!(parse_lsn("16/B374D848"), Some(0x16_B374_D848));
        assert_eq!(parse_lsn("nonsense"), None);
    }
}
