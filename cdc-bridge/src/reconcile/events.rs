//! The event side: the order topic read to its end with `read_committed` (only what Kafka
//! committed), each message unframed (Confluent wire format), its writer schema fetched once per
//! id from the registry, decoded with the contracts and folded.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::error::ReconcileError;
use super::fold::{OrderFold, SnapshotView};
use super::options::ReconcileOptions;
use super::report::push_capped;
use crate::registry::SchemaRegistry;
use crate::session::error_chain;
use crate::sink::producer::client_config;

/// How often reading logs its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// Prefetched messages librdkafka may buffer (KiB): bounds the reader's memory.
const PREFETCH_KBYTES: &str = "16384";
/// How long metadata and watermark look-ups may take.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// What reading the topic found besides the fold.
#[derive(Debug, Default)]
pub struct TopicRead {
    /// Messages read.
    pub messages: u64,
    /// Messages that could not be read: where and why (capped).
    pub unreadable: Vec<String>,
    /// How many could not be read.
    pub unreadable_count: u64,
}

impl TopicRead {
    fn unreadable(&mut self, limit: usize, what: String) {
        self.unreadable_count += 1;
        push_capped(&mut self.unreadable, limit, what);
    }
}

/// Reads the order topic from the beginning to its end (last stable offset) and folds every
/// order event the snapshot sees.
pub async fn fold_order_topic(
    opts: &ReconcileOptions,
    view: &SnapshotView,
    fold: &mut OrderFold,
) -> Result<TopicRead, ReconcileError> {
    let topic = opts.order_topic.as_str();
    let consumer = consumer(opts)?;
    let (assignment, mut pending, total) = assignment(&consumer, topic)?;
    let mut read = TopicRead::default();
    if pending.is_empty() {
        return Ok(read);
    }
    consumer
        .assign(&assignment)
        .map_err(|e| ReconcileError::kafka(format!("assigning {topic}"), e))?;
    let registry = SchemaRegistry::new(&opts.registry_url, &opts.registry_compatibility);
    let mut schemas: HashMap<u32, Result<apache_avro::Schema, String>> = HashMap::new();
    let limit = opts.settings.max_listed;
    let started = Instant::now();
    let deadline = started + opts.settings.event_read_timeout;
    let mut logged = started;
    while !pending.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        let next = tokio::time::timeout(left, consumer.recv())
            .await
            .map_err(|_| ReconcileError::Timeout {
                what: format!("reading {topic} to its end"),
                seconds: opts.settings.event_read_timeout.as_secs(),
                key: "event_read_timeout",
            })?;
        let msg = match next {
            Err(KafkaError::PartitionEOF(p)) => {
                pending.remove(&p);
                continue;
            }
            Err(e) => return Err(ReconcileError::kafka(format!("reading {topic}"), e)),
            Ok(msg) => msg,
        };
        read.messages += 1;
        let at = format!(
            "{topic} partition {} offset {}",
            msg.partition(),
            msg.offset()
        );
        let Some(bytes) = msg.payload() else {
            continue; // a tombstone after a delete: no state to fold
        };
        let (schema_id, datum) = match contracts::wire::unframe(bytes) {
            Ok(parts) => parts,
            Err(e) => {
                read.unreadable(limit, format!("{at}: {e}"));
                continue;
            }
        };
        let schema = match schemas.entry(schema_id) {
            Entry::Occupied(known) => known.into_mut(),
            Entry::Vacant(new) => new.insert(fetch_schema(&registry, schema_id).await?),
        };
        let schema = match schema {
            Ok(s) => s,
            Err(problem) => {
                read.unreadable(limit, format!("{at}: schema id {schema_id} {problem}"));
                continue;
            }
        };
        match contracts::DomainEvent::decode(schema, datum) {
            Ok(event) => {
                if let Err(bad) = fold.apply(view, &event) {
                    read.unreadable(
                        limit,
                        format!("{at}: order id `{}` is not an order number", bad.0),
                    );
                }
            }
            Err(e) => read.unreadable(limit, format!("{at}: {}", error_chain(&e))),
        }
        if logged.elapsed() >= PROGRESS_EVERY {
            logged = Instant::now();
            log_progress("order events", read.messages, total, started);
        }
    }
    log_progress("order events", read.messages, total, started);
    Ok(read)
}

fn consumer(opts: &ReconcileOptions) -> Result<StreamConsumer, ReconcileError> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut config = client_config(&opts.brokers, &opts.kafka_properties);
    config
        .set(
            "group.id",
            format!("fig-reconcile-{}-{nanos}", std::process::id()),
        )
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        .set("queued.max.messages.kbytes", PREFETCH_KBYTES);
    config
        .create()
        .map_err(|e| ReconcileError::kafka("creating the order topic reader", e))
}

/// Every non-empty partition from its beginning, and how many messages they hold.
fn assignment(
    consumer: &StreamConsumer,
    topic: &str,
) -> Result<(TopicPartitionList, HashSet<i32>, u64), ReconcileError> {
    let metadata = consumer
        .fetch_metadata(Some(topic), METADATA_TIMEOUT)
        .map_err(|e| ReconcileError::kafka(format!("reading metadata of {topic}"), e))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(ReconcileError::Setting {
            key: "kafka.topics",
            problem: format!("order topic `{topic}` does not exist on the broker"),
        });
    }
    let mut list = TopicPartitionList::new();
    let mut pending = HashSet::new();
    let mut total = 0u64;
    for p in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, METADATA_TIMEOUT)
            .map_err(|e| ReconcileError::kafka(format!("reading watermarks of {topic}"), e))?;
        if high > low {
            total += u64::try_from(high - low).unwrap_or(0);
            list.add_partition_offset(topic, p, Offset::Beginning)
                .map_err(|e| ReconcileError::kafka(format!("assigning {topic}"), e))?;
            pending.insert(p);
        }
    }
    Ok((list, pending, total))
}

/// The writer schema registered under `id`; `Err` (kept per id) when it does not parse.
async fn fetch_schema(
    registry: &SchemaRegistry,
    id: u32,
) -> Result<Result<apache_avro::Schema, String>, ReconcileError> {
    let text = registry
        .schema_by_id(id)
        .await
        .map_err(|source| ReconcileError::Registry {
            context: format!("fetching writer schema id {id}"),
            source,
        })?;
    Ok(apache_avro::Schema::parse_str(&text).map_err(|e| format!("does not parse: {e}")))
}

/// Logs how far a pass is: done, total, percent and the estimated seconds left.
pub(super) fn log_progress(stage: &'static str, done: u64, total: u64, started: Instant) {
    let percent = if total == 0 {
        100.0
    } else {
        done as f64 * 100.0 / total as f64
    };
    let rate = done as f64 / started.elapsed().as_secs_f64().max(0.001);
    let eta_s = if rate > 0.0 {
        total.saturating_sub(done) as f64 / rate
    } else {
        0.0
    };
    tracing::info!(
        stage,
        done,
        total,
        percent = format!("{percent:.1}"),
        eta_s = eta_s.round(),
        "reconciliation progress"
    );
}
