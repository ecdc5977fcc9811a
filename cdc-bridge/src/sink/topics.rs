//! Creates the topics the bridge writes when they are missing: event topics per aggregate, the
//! dead-letter topic, and the compacted single-partition progress topic.

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::Consumer;
use rdkafka::types::RDKafkaErrorCode;
use std::time::Duration;

use crate::error::BridgeError;

/// One topic to have.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    /// Name.
    pub name: String,
    /// Partitions.
    pub partitions: i32,
    /// Compacted (progress) rather than deleted by age.
    pub compacted: bool,
}

/// Names of the topics in `wanted` that the broker does not have.
pub async fn missing(
    client: &ClientConfig,
    wanted: &[TopicSpec],
) -> Result<Vec<String>, BridgeError> {
    let consumer: rdkafka::consumer::BaseConsumer = client
        .create()
        .map_err(|e| BridgeError::kafka("creating a metadata client", e))?;
    let names: Vec<String> = wanted.iter().map(|t| t.name.clone()).collect();
    tokio::task::spawn_blocking(move || {
        let md = consumer
            .fetch_metadata(None, Duration::from_secs(10))
            .map_err(|e| BridgeError::kafka("reading cluster metadata", e))?;
        let have: std::collections::HashSet<&str> = md.topics().iter().map(|t| t.name()).collect();
        Ok(names
            .into_iter()
            .filter(|n| !have.contains(n.as_str()))
            .collect())
    })
    .await
    .unwrap_or_else(|_| Err(BridgeError::Shutdown))
}

/// Creates every topic of `wanted` that is missing; existing ones are left alone.
pub async fn ensure(client: &ClientConfig, wanted: &[TopicSpec]) -> Result<(), BridgeError> {
    let missing = missing(client, wanted).await?;
    if missing.is_empty() {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = client
        .create()
        .map_err(|e| BridgeError::kafka("creating an admin client", e))?;
    let specs: Vec<&TopicSpec> = wanted
        .iter()
        .filter(|t| missing.contains(&t.name))
        .collect();
    let new: Vec<NewTopic<'_>> = specs
        .iter()
        .map(|t| {
            let n = NewTopic::new(&t.name, t.partitions, TopicReplication::Fixed(-1));
            if t.compacted {
                n.set("cleanup.policy", "compact")
            } else {
                n
            }
        })
        .collect();
    let results = admin
        .create_topics(
            &new,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .map_err(|e| BridgeError::kafka("creating topics", e))?;
    for r in results {
        match r {
            Ok(name) => tracing::info!(topic = %name, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(BridgeError::definite(
                    format!("cannot create topic `{name}`: {code}"),
                    format!(
                        "create it: kafka-topics.sh --create --topic {name}, or grant the bridge CREATE on the cluster"
                    ),
                ));
            }
        }
    }
    Ok(())
}
