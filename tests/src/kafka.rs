//! Kafka topics per test, and clients configured the way the product uses them.

use crate::{Stack, block_on_side, unique_name};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::StreamConsumer;
use rdkafka::producer::FutureProducer;

/// A topic created for one test and deleted when dropped.
pub struct TestTopic {
    /// Bootstrap servers of the broker holding the topic.
    pub brokers: String,
    /// The topic's name.
    pub name: String,
}

fn admin(brokers: &str) -> anyhow::Result<AdminClient<DefaultClientContext>> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?)
}

impl TestTopic {
    /// Creates a topic named after `prefix` with `partitions` partitions.
    pub async fn create(prefix: &str, partitions: i32) -> anyhow::Result<TestTopic> {
        let stack = Stack::from_env();
        let name = unique_name(prefix);
        let results = admin(&stack.kafka_brokers)?
            .create_topics(
                &[NewTopic::new(&name, partitions, TopicReplication::Fixed(1))],
                &AdminOptions::new().operation_timeout(Some(std::time::Duration::from_secs(10))),
            )
            .await?;
        for r in results {
            r.map_err(|(topic, code)| anyhow::anyhow!("creating topic {topic}: {code}"))?;
        }
        Ok(TestTopic {
            brokers: stack.kafka_brokers,
            name,
        })
    }
}

impl Drop for TestTopic {
    fn drop(&mut self) {
        let brokers = self.brokers.clone();
        let name = self.name.clone();
        block_on_side(async move {
            if let Ok(admin) = admin(&brokers) {
                let _ = admin.delete_topics(&[&name], &AdminOptions::new()).await;
            }
        });
    }
}

/// A producer with `transactional.id` set, transactions initialised.
pub fn transactional_producer(
    brokers: &str,
    transactional_id: &str,
) -> anyhow::Result<FutureProducer> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("transactional.id", transactional_id)
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "30000")
        .create()?;
    rdkafka::producer::Producer::init_transactions(&producer, std::time::Duration::from_secs(30))?;
    Ok(producer)
}

/// A consumer that reads only committed transactions, from the earliest offset, in a group of
/// its own.
pub fn read_committed_consumer(brokers: &str) -> anyhow::Result<StreamConsumer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique_name("g"))
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?)
}
