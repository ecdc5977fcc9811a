//! `orders_service`: the new order-status service of the demo (see `e2e::demo::orders_service`).

use anyhow::Context;
use clap::Parser;
use e2e::demo::orders_service::{self, ConsumerConfig, observability::Metrics};
use e2e::demo::shutdown_signal;
use std::sync::Arc;

/// The order-status service: `GET /orders/{id}` from the domain events in Kafka.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "FIG_DEMO_ORDERS_LISTEN", default_value = "127.0.0.1:8001")]
    listen: std::net::SocketAddr,
    /// Its own database (libpq-style); tables are created when missing.
    #[arg(long, env = "FIG_DEMO_ORDERS_DB")]
    database: String,
    /// Kafka bootstrap servers.
    #[arg(long, env = "FIG_KAFKA_BROKERS", default_value = "127.0.0.1:19092")]
    brokers: String,
    /// Schema registry URL.
    #[arg(
        long,
        env = "FIG_REGISTRY_URL",
        default_value = "http://127.0.0.1:18081"
    )]
    registry: String,
    /// The bridge's topic prefix: reads `<prefix>order`, `<prefix>payment`, `<prefix>reservation`.
    #[arg(long, default_value = "legacy.")]
    topic_prefix: String,
    /// Consumer group.
    #[arg(long, default_value = "fig-demo-order-status")]
    group_id: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    e2e::demo::init_tracing();
    let args = Args::parse();
    let consumer = ConsumerConfig {
        brokers: args.brokers,
        group_id: args.group_id,
        topics: ConsumerConfig::topics_for_prefix(&args.topic_prefix),
        registry_url: args.registry,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    tracing::info!(listen = %args.listen, topics = ?consumer.topics, "order-status service serving");
    let metrics = Arc::new(Metrics::default());
    orders_service::serve(
        &args.database,
        consumer,
        listener,
        metrics,
        shutdown_signal(),
    )
    .await
    .context("order-status service")
}
