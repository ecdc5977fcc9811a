//! A fast read_committed reader of what the bridge published: key, event type and source
//! transaction id from each record's key and headers, without decoding the Avro value (the bridge
//! tests decode; here the point is counting tens of thousands of records quickly, also to spot
//! one marker record right after a fault is healed).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use cdc_bridge::sink::record::{HEADER_EVENT_TYPE, HEADER_SOURCE_XID};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

/// One record as the fault checks see it.
#[derive(Debug, Clone)]
pub struct Published {
    /// The record key (the aggregate id).
    pub key: String,
    /// The `event_type` header.
    pub event_type: String,
    /// The `source_xid` header: the legacy transaction.
    pub xid: u64,
}

/// A read_committed consumer of one topic, assigned explicitly (no group rebalancing).
pub struct Tally {
    consumer: BaseConsumer,
    partitions: Vec<i32>,
    at_end: HashSet<i32>,
    /// Everything read so far.
    pub records: Vec<Published>,
}

impl Tally {
    /// Reads `topic` from its first record.
    pub fn from_beginning(brokers: &str, topic: &str) -> Tally {
        Tally::assigned(brokers, topic, |_, _| Offset::Beginning)
    }

    /// Reads only what `topic` receives from now on (each partition from its current end).
    pub fn from_now(brokers: &str, topic: &str) -> Tally {
        Tally::assigned(brokers, topic, |consumer, partition| {
            let (_, high) = consumer
                .fetch_watermarks(topic, partition, Duration::from_secs(10))
                .expect("watermarks");
            Offset::Offset(high)
        })
    }

    fn assigned(brokers: &str, topic: &str, start: impl Fn(&BaseConsumer, i32) -> Offset) -> Tally {
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", e2e::unique_name("g"))
            .set("isolation.level", "read_committed")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .create()
            .expect("consumer");
        let md = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .expect("topic metadata");
        let partitions: Vec<i32> = md
            .topics()
            .iter()
            .flat_map(|t| t.partitions())
            .map(|p| p.id())
            .collect();
        assert!(!partitions.is_empty(), "topic {topic} does not exist");
        let mut tpl = TopicPartitionList::new();
        for p in &partitions {
            tpl.add_partition_offset(topic, *p, start(&consumer, *p))
                .expect("assign");
        }
        consumer.assign(&tpl).expect("assign");
        Tally {
            consumer,
            partitions,
            at_end: HashSet::new(),
            records: Vec::new(),
        }
    }

    /// Reads until `done(&records)` holds, or panics with `what` after `deadline`.
    pub fn read_until(
        &mut self,
        what: &str,
        deadline: Duration,
        done: impl Fn(&[Published]) -> bool,
    ) {
        let start = Instant::now();
        while !done(&self.records) {
            assert!(
                start.elapsed() < deadline,
                "gave up after {:?} waiting for: {what}; read {} records",
                start.elapsed(),
                self.records.len()
            );
            self.poll_once();
        }
    }

    /// Reads until every partition is at its end (read_committed: its last stable offset).
    pub fn read_to_end(&mut self, deadline: Duration) {
        let start = Instant::now();
        while self.partitions.iter().any(|p| !self.at_end.contains(p)) {
            assert!(
                start.elapsed() < deadline,
                "partitions never reached their end"
            );
            self.poll_once();
        }
    }

    fn poll_once(&mut self) {
        match self.consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                self.at_end.insert(p);
            }
            // Transient client errors (a broker reconnecting) resolve by polling on.
            Some(Err(_)) => {}
            Some(Ok(m)) => {
                self.at_end.remove(&m.partition());
                let header = |name: &str| {
                    m.headers()
                        .and_then(|h| h.iter().find(|x| x.key == name))
                        .and_then(|x| x.value)
                        .map(|v| String::from_utf8_lossy(v).to_string())
                        .unwrap_or_default()
                };
                self.records.push(Published {
                    key: m
                        .key()
                        .map(|k| String::from_utf8_lossy(k).to_string())
                        .unwrap_or_default(),
                    event_type: header(HEADER_EVENT_TYPE),
                    xid: header(HEADER_SOURCE_XID).parse().unwrap_or(u64::MAX),
                });
            }
        }
    }
}
