//! The domain-event consumer: Kafka (read_committed) → Confluent wire format → writer schema from
//! the registry → [`DomainEvent::decode`] → [`store::apply_event`] → offset stored.
//!
//! The offset of a message is stored for commit only after the database transaction that applied
//! it (or recorded it as rejected) has committed; stored offsets are committed every
//! [`OFFSET_COMMIT_INTERVAL`] and on shutdown. A crash in between re-delivers what came after the
//! last commit; the inbox turns each second delivery into a no-op. (Committing every message
//! instead floods the group coordinator: in the demo journey its queue of commits grew until the
//! consumer's heartbeats and fetches stalled behind it.) Transient failures (database, registry)
//! are retried with backoff on the same message; nothing is skipped.

use super::OrderServiceError;
use super::observability::Metrics;
use super::registry::SchemaCache;
use super::store::{self, Applied, MessagePosition};
use contracts::DomainEvent;
use rdkafka::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::NoTls;

/// How often stored offsets are committed to the consumer group.
pub const OFFSET_COMMIT_INTERVAL: Duration = Duration::from_secs(1);

/// Longest pause between retries of a transient failure.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Where the events come from.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// Consumer group (its committed offsets are the service's progress).
    pub group_id: String,
    /// Topics of the order, payment and reservation aggregates.
    pub topics: Vec<String>,
    /// Schema registry base URL.
    pub registry_url: String,
}

impl ConsumerConfig {
    /// The topics the bridge writes for `prefix` (its `topic_prefix`): order, payment and
    /// reservation aggregates.
    pub fn topics_for_prefix(prefix: &str) -> Vec<String> {
        ["order", "payment", "reservation"]
            .iter()
            .map(|a| format!("{prefix}{a}"))
            .collect()
    }
}

/// Consumes until `shutdown` resolves. Returns early only on a definite Kafka failure.
pub async fn consume(
    config: &ConsumerConfig,
    database: &str,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), OrderServiceError> {
    let kafka = |context| move |source| OrderServiceError::Kafka { context, source };
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &config.brokers)
        .set("group.id", &config.group_id)
        .set("isolation.level", "read_committed")
        // librdkafka commits what `store_offset_from_message` stored, on a timer.
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set(
            "auto.commit.interval.ms",
            OFFSET_COMMIT_INTERVAL.as_millis().to_string(),
        )
        .set("auto.offset.reset", "earliest")
        // Topics the bridge has not created yet are picked up within seconds, not minutes.
        .set("topic.metadata.refresh.interval.ms", "2000")
        .create()
        .map_err(kafka("creating the consumer"))?;
    let topics: Vec<&str> = config.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics).map_err(kafka("subscribing"))?;
    let schemas = SchemaCache::new(&config.registry_url);
    let mut db = connect_with_retry(database).await;
    tokio::pin!(shutdown);
    loop {
        let message = tokio::select! {
            () = &mut shutdown => {
                // What was applied is committed now, so a restart re-reads as little as possible.
                if let Err(error) = consumer.commit_consumer_state(CommitMode::Sync) {
                    tracing::warn!(%error, "committing offsets at shutdown failed; the inbox absorbs the re-delivery");
                }
                return Ok(());
            }
            m = consumer.recv() => m,
        };
        let message = match message {
            Ok(m) => m,
            Err(error) => {
                tracing::warn!(%error, "Kafka receive failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let mut backoff = Duration::from_millis(50);
        loop {
            match handle(&message, &schemas, &mut db, &metrics).await {
                Ok(()) => break,
                Err(error) if error.is_transient() => {
                    tracing::warn!(error = %error, topic = message.topic(),
                        offset = message.offset(), "transient failure; retrying the message");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    if db.is_closed() {
                        db = connect_with_retry(database).await;
                    }
                }
                Err(error) => return Err(error),
            }
        }
        consumer
            .store_offset_from_message(&message)
            .map_err(kafka("storing the offset"))?;
    }
}

async fn handle(
    message: &BorrowedMessage<'_>,
    schemas: &SchemaCache,
    db: &mut tokio_postgres::Client,
    metrics: &Metrics,
) -> Result<(), OrderServiceError> {
    let at = MessagePosition {
        topic: message.topic().to_string(),
        partition: message.partition(),
        offset: message.offset(),
    };
    let Some(bytes) = message.payload() else {
        // Tombstones follow delete events on compacted topics; the delete event itself counted.
        return Ok(());
    };
    let event = match decode(bytes, schemas).await {
        Ok(event) => event,
        Err(error) if error.is_transient() => return Err(error),
        Err(error) => {
            let reason = error_chain(&error);
            tracing::warn!(topic = %at.topic, partition = at.partition, offset = at.offset,
                %reason, "undecodable message recorded as rejected");
            store::reject_message(&*db, &at, &reason).await?;
            metrics.rejected.inc();
            return Ok(());
        }
    };
    match store::apply_event(db, &event, &at).await? {
        Applied::Changed => metrics.applied.inc(),
        Applied::Recorded => metrics.recorded.inc(),
        Applied::Duplicate => {
            tracing::info!(event_id = %event.envelope.event_id, "duplicate event ignored");
            metrics.duplicates.inc()
        }
    };
    Ok(())
}

/// Decodes one Confluent-framed message value into a domain event.
pub async fn decode(bytes: &[u8], schemas: &SchemaCache) -> Result<DomainEvent, OrderServiceError> {
    let (id, datum) = contracts::wire::unframe(bytes).map_err(OrderServiceError::Wire)?;
    let schema = schemas.schema(id).await?;
    DomainEvent::decode(&schema, datum).map_err(OrderServiceError::Decode)
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

async fn connect_with_retry(database: &str) -> tokio_postgres::Client {
    let mut backoff = Duration::from_millis(50);
    loop {
        match tokio_postgres::connect(database, NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::warn!(%error, "order-status consumer connection closed");
                    }
                });
                return client;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot reach the order-status database; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}
