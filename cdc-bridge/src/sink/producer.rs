//! The transactional Kafka producer, as I/O only: enqueue records into the open transaction with
//! bounded memory, commit, abort. Resolves only on delivery or commit, never on enqueue.

use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use std::collections::VecDeque;
use std::time::Duration;

use super::record::OutgoingRecord;
use crate::error::BridgeError;

/// Records enqueued but not yet acknowledged by the broker before the producer waits for the
/// oldest one: with librdkafka's own queue limits, this bounds memory in huge transactions.
pub const MAX_IN_FLIGHT: usize = 20_000;
/// Producer tuning the bridge sets unless `kafka.properties` says otherwise: librdkafka's local
/// queue limits (bounded memory), and no linger. Every Kafka commit first waits for its last
/// records, so a linger is paid once per commit on the commit-to-ack path; batches still form
/// from whatever queues while earlier requests are in flight. Measured with
/// `deploy/bench/cdc.sh`: 5 ms → 0 took the mean commit from 16–28 ms to 6–12 ms and the p50
/// commit-to-ack at 5,000 rows/s from 25 ms to 7 ms, with no loss of throughput.
const TUNING_DEFAULTS: &[(&str, &str)] = &[
    ("queue.buffering.max.kbytes", "32768"),
    ("queue.buffering.max.messages", "100000"),
    ("linger.ms", "0"),
];
/// How long [`settle`] waits for delivered messages to be released before committing anyway.
const SETTLE_LIMIT: Duration = Duration::from_millis(20);
/// How often [`settle`] looks.
const SETTLE_STEP: Duration = Duration::from_micros(100);
/// How long after a commit the next transaction's first record waits, at most. Until the broker
/// has written the previous transaction's markers it answers the next one's partition
/// registration with CONCURRENT_TRANSACTIONS, and librdkafka then backs off a fixed 20 ms: the
/// p99 of a commit cycle on the local broker went from 26.5 ms to 6.5 ms with a 3 ms pause
/// (three records per transaction, back to back). Records that arrive later do not wait, and
/// a commit made under a backlog skips the pause: there the next batch is already waiting and
/// the pause would cost throughput on every commit to save 20 ms on a few.
pub const MARKER_GRACE: Duration = Duration::from_millis(3);
/// How long init, commit and abort may take.
const TXN_OP_TIMEOUT: Duration = Duration::from_secs(60);

/// A producer with `transactional.id` set and transactions initialised.
pub struct TransactionalProducer {
    producer: FutureProducer,
    in_flight: VecDeque<DeliveryFuture>,
    open: bool,
    /// When the last commit ended, when it asked for the marker grace, until the next
    /// transaction's first record.
    ended_at: Option<tokio::time::Instant>,
}

/// Client settings shared by the producer, the admin client and the progress reader.
pub fn client_config(
    brokers: &str,
    properties: &std::collections::BTreeMap<String, String>,
) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    for (k, v) in properties {
        c.set(k, v);
    }
    c
}

impl TransactionalProducer {
    /// Creates the producer and initialises transactions, fencing any older producer with the
    /// same transactional id (a zombie of this bridge): its open transaction is aborted.
    pub async fn start(
        base: &ClientConfig,
        transactional_id: &str,
        transaction_timeout: Duration,
    ) -> Result<Self, BridgeError> {
        let producer: FutureProducer =
            transactional_config(base, transactional_id, transaction_timeout)
                .create()
                .map_err(|e| BridgeError::kafka("creating the transactional producer", e))?;
        let p = producer.clone();
        blocking(move || p.init_transactions(TXN_OP_TIMEOUT))
            .await
            .map_err(|e| {
                BridgeError::kafka(
                    format!("initialising transactions for `{transactional_id}`"),
                    e,
                )
            })?;
        Ok(TransactionalProducer {
            producer,
            in_flight: VecDeque::new(),
            open: false,
            ended_at: None,
        })
    }

    /// Whether a transaction is open.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Begins a transaction.
    pub fn begin(&mut self) -> Result<(), BridgeError> {
        self.producer
            .begin_transaction()
            .map_err(|e| BridgeError::kafka("beginning a transaction", e))?;
        self.open = true;
        Ok(())
    }

    /// Enqueues one record into the open transaction. Waits for the oldest deliveries when the
    /// local queue or the in-flight window is full.
    pub async fn send(&mut self, record: &OutgoingRecord) -> Result<(), BridgeError> {
        if let Some(ended) = self.ended_at.take()
            && ended.elapsed() < MARKER_GRACE
        {
            tokio::time::sleep_until(ended + MARKER_GRACE).await;
        }
        if self.in_flight.len() >= MAX_IN_FLIGHT {
            self.await_oldest().await?;
        }
        loop {
            let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
            for (k, v) in &record.headers {
                headers = headers.insert(Header {
                    key: k,
                    value: Some(v.as_slice()),
                });
            }
            let mut fr: FutureRecord<'_, [u8], [u8]> =
                FutureRecord::to(&record.topic).headers(headers);
            if let Some(k) = &record.key {
                fr = fr.key(k.as_slice());
            }
            if let Some(p) = &record.payload {
                fr = fr.payload(p.as_slice());
            }
            match self.producer.send_result(fr) {
                Ok(delivery) => {
                    self.in_flight.push_back(delivery);
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    if self.in_flight.is_empty() {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    } else {
                        self.await_oldest().await?;
                    }
                }
                Err((e, _)) => {
                    return Err(BridgeError::kafka(
                        format!("producing to {}", record.topic),
                        e,
                    ));
                }
            }
        }
    }

    async fn await_oldest(&mut self) -> Result<(), BridgeError> {
        let Some(oldest) = self.in_flight.pop_front() else {
            return Ok(());
        };
        match oldest.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err((e, msg))) => Err(BridgeError::kafka(
                format!("delivering to {}", rdkafka::Message::topic(&msg)),
                e,
            )),
            Err(_) => Err(BridgeError::kafka("delivering", KafkaError::Canceled)),
        }
    }

    /// Commits the open transaction: waits for every delivery, then makes everything in it
    /// visible at once.
    ///
    /// The deliveries are awaited here, not left to `commit_transaction`: rdkafka's commit first
    /// flushes, and its flush polls in fixed 100 ms steps while anything is outstanding, so
    /// every Kafka transaction would cost at least 100 ms. A failed delivery is returned as the
    /// error and the caller aborts the transaction.
    ///
    /// `caught_up`: the caller has nothing else waiting, so the next transaction's first record
    /// may pause up to [`MARKER_GRACE`] after this commit.
    pub async fn commit(&mut self, caught_up: bool) -> Result<(), BridgeError> {
        while !self.in_flight.is_empty() {
            self.await_oldest().await?;
        }
        let p = self.producer.clone();
        let result = blocking(move || {
            settle(&p);
            p.commit_transaction(TXN_OP_TIMEOUT)
        })
        .await;
        self.open = false;
        self.ended_at = caught_up.then(tokio::time::Instant::now);
        result.map_err(|e| BridgeError::kafka("committing the transaction", e))
    }

    /// Aborts the open transaction, if any; nothing of it becomes visible.
    pub async fn abort(&mut self) -> Result<(), BridgeError> {
        self.in_flight.clear();
        if !self.open {
            return Ok(());
        }
        self.open = false;
        let p = self.producer.clone();
        blocking(move || p.abort_transaction(TXN_OP_TIMEOUT))
            .await
            .map_err(|e| BridgeError::kafka("aborting the transaction", e))
    }
}

/// The producer's settings: what exactly-once needs (not overridable), then the tuning defaults
/// unless `kafka.properties` (already in `base`) sets them.
fn transactional_config(
    base: &ClientConfig,
    transactional_id: &str,
    transaction_timeout: Duration,
) -> ClientConfig {
    let mut config = base.clone();
    let timeout_ms = transaction_timeout.as_millis().to_string();
    config
        .set("transactional.id", transactional_id)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("transaction.timeout.ms", &timeout_ms)
        .set("message.timeout.ms", &timeout_ms);
    for (key, value) in TUNING_DEFAULTS {
        if config.get(key).is_none() {
            config.set(*key, *value);
        }
    }
    config
}

/// Waits (briefly, on a blocking thread) until librdkafka has released every delivered message:
/// a delivery future resolves just before its message is freed, and a commit that finds one
/// still counted falls into the 100 ms flush poll. Bounded: past [`SETTLE_LIMIT`] the commit's
/// own flush takes over, which is slower but equally correct.
fn settle(producer: &FutureProducer) {
    let started = std::time::Instant::now();
    while producer.in_flight_count() > 0 && started.elapsed() < SETTLE_LIMIT {
        std::thread::sleep(SETTLE_STEP);
    }
}

/// Runs a blocking librdkafka call off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, KafkaError> + Send + 'static,
) -> Result<T, KafkaError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or(Err(KafkaError::Canceled))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tuning from `kafka.properties` wins over the defaults; what exactly-once needs does not
    /// yield to it.
    #[test]
    fn properties_override_tuning_but_not_exactly_once_settings() {
        let mut properties = std::collections::BTreeMap::new();
        properties.insert("linger.ms".to_string(), "1".to_string());
        properties.insert("acks".to_string(), "1".to_string());
        let base = client_config("127.0.0.1:9092", &properties);
        let c = transactional_config(&base, "fig", Duration::from_secs(60));
        assert_eq!(c.get("linger.ms"), Some("1"));
        assert_eq!(c.get("queue.buffering.max.kbytes"), Some("32768"));
        assert_eq!(c.get("acks"), Some("all"));
        assert_eq!(c.get("transactional.id"), Some("fig"));
        assert_eq!(c.get("transaction.timeout.ms"), Some("60000"));
    }
}
