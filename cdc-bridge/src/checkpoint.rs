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

    /// The progress record's value.
    pub fn to_value(self) -> Vec<u8> {
        serde_json::to_vec(&ProgressValue {
            commit_lsn: self.commit_lsn,
            end_lsn: self.end_lsn,
            commit: format_lsn(self.commit_lsn),
        })
        .unwrap_or_default()
    }

    /// Parses a progress record's value.
    pub fn from_value(bytes: &[u8]) -> Option<Checkpoint> {
        let v: ProgressValue = serde_json::from_slice(bytes).ok()?;
        Some(Checkpoint {
            commit_lsn: v.commit_lsn,
            end_lsn: v.end_lsn,
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
    let mut best: Option<Checkpoint> = None;
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
                if let Some(cp) = msg.payload().and_then(Checkpoint::from_value) {
                    best = Some(
                        best.map_or(cp, |b| if cp.commit_lsn >= b.commit_lsn { cp } else { b }),
                    );
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

    /// LSNs print and parse in PostgreSQL's notation.
    #[test]
    fn lsn_notation_round_trips() {
        assert_eq!(format_lsn(0x16_B374_D848), "16/B374D848");
        assert_eq!(parse_lsn("16/B374D848"), Some(0x16_B374_D848));
        assert_eq!(parse_lsn("nonsense"), None);
    }
}
