//! The processes `deploy/bench/reconcile.sh` runs (not tests): seed the order topic with the
//! events of orders the script generated in SQL, reconcile, and drop the topic. The test binary
//! is the program so the benchmark needs no binary of its own; the reconciliation it times is
//! the library entry point the `cdc-bridge reconcile` subcommand calls.
//!
//! Environment: `FIG_RECONCILE_BENCH` = `seed` | `reconcile` | `drop`, plus `FIG_REC_CONN`,
//! `FIG_REC_TOPIC`, `FIG_REC_FIRST`, `FIG_REC_ORDERS`, `FIG_REC_XID`, `FIG_REC_LSN`,
//! `FIG_REC_SKIP_EVERY` (orders whose events are left out: they must be reported missing) and
//! `FIG_REC_JSON` (where the JSON report goes).

use std::time::Duration;

use cdc_bridge::reconcile::{self, OrderStatus, ReconcileOptions, ReconcileSettings};
use contracts::{SourcePosition, SubjectStrategy};
use e2e::Stack;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use super::{history, register};

/// Events per Kafka transaction while seeding.
const EVENTS_PER_TRANSACTION: usize = 200_000;
/// The legacy status codes the script's SQL assigns: `codes[g % 7]` for order `first + g`.
const CODES: [&str; 7] = ["N", "A", "P", "S", "C", "X", "E"];

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} must be set"))
}

fn num(name: &str) -> u64 {
    var(name)
        .parse()
        .unwrap_or_else(|_| panic!("{name} must be a number"))
}

/// Runs one benchmark step; returns the process exit status.
pub async fn run(mode: &str) -> i32 {
    let stack = Stack::from_env();
    let topic = var("FIG_REC_TOPIC");
    match mode {
        "seed" => seed(&stack, &topic).await,
        "reconcile" => reconcile_once(&stack, &topic).await,
        "drop" => {
            let admin = admin(&stack);
            let _ = admin.delete_topics(&[&topic], &AdminOptions::new()).await;
            0
        }
        other => {
            eprintln!("unknown FIG_RECONCILE_BENCH mode `{other}`");
            2
        }
    }
}

fn admin(stack: &Stack) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_brokers)
        .create()
        .expect("admin client")
}

async fn seed(stack: &Stack, topic: &str) -> i32 {
    let (first, orders, skip_every) = (
        num("FIG_REC_FIRST"),
        num("FIG_REC_ORDERS"),
        num("FIG_REC_SKIP_EVERY"),
    );
    let source = SourcePosition {
        commit_lsn: num("FIG_REC_LSN"),
        xid: num("FIG_REC_XID") as u32,
        seq: 0,
    };
    let created = admin(stack)
        .create_topics(
            &[NewTopic::new(topic, 3, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("create topic");
    for r in created {
        r.map_err(|(t, code)| format!("creating {t}: {code}"))
            .expect("topic created");
    }
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_brokers)
        .set("transactional.id", format!("{topic}-seed"))
        .set("enable.idempotence", "true")
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("transaction.timeout.ms", "600000")
        .create()
        .expect("producer");
    producer
        .init_transactions(Duration::from_secs(30))
        .expect("init transactions");
    let http = reqwest::Client::new();
    let mut schema_id = None;
    let mut in_txn = 0usize;
    let mut sent = 0u64;
    let (mut datum, mut framed) = (Vec::new(), Vec::new());
    for g in 0..orders {
        if skip_every > 0 && g % skip_every == 0 {
            continue;
        }
        let id = (first + g) as i64;
        let status = OrderStatus::from_legacy_code(CODES[(g % 7) as usize]).expect("code");
        let source = SourcePosition {
            seq: (g * 2) as u32,
            ..source
        };
        for event in history(id, status.event().expect("event"), source) {
            let schema_id = match schema_id {
                Some(id) => id,
                None => {
                    *schema_id.insert(register(&http, &stack.registry_url, topic, &event).await)
                }
            };
            if in_txn == 0 {
                producer.begin_transaction().expect("begin");
            }
            datum.clear();
            framed.clear();
            event
                .encode(SubjectStrategy::TopicName, &mut datum)
                .expect("encode");
            contracts::wire::frame(schema_id, &datum, &mut framed);
            let key = event.aggregate_id().to_string();
            loop {
                match producer.send(BaseRecord::to(topic).key(&key).payload(&framed)) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        producer.poll(Duration::from_millis(50));
                    }
                    Err((e, _)) => panic!("producing: {e}"),
                }
            }
            in_txn += 1;
            sent += 1;
            if in_txn >= EVENTS_PER_TRANSACTION {
                producer
                    .commit_transaction(Duration::from_secs(120))
                    .expect("commit");
                in_txn = 0;
            }
        }
    }
    if in_txn > 0 {
        producer
            .commit_transaction(Duration::from_secs(120))
            .expect("commit");
    }
    println!("{sent}");
    0
}

async fn reconcile_once(stack: &Stack, topic: &str) -> i32 {
    let opts = ReconcileOptions {
        legacy_conn: var("FIG_REC_CONN"),
        brokers: stack.kafka_brokers.clone(),
        kafka_properties: Default::default(),
        order_topic: topic.to_string(),
        progress: None,
        registry_url: stack.registry_url.clone(),
        subject_strategy: SubjectStrategy::TopicName,
        registry_compatibility: "BACKWARD_TRANSITIVE".into(),
        redrive_transactional_id: format!("{topic}-redrive"),
        settings: ReconcileSettings {
            max_listed: 20,
            ..ReconcileSettings::default()
        },
    };
    match reconcile::reconcile(&opts).await {
        Ok(report) => {
            print!("{}", report.to_table());
            std::fs::write(var("FIG_REC_JSON"), report.to_json()).expect("write JSON report");
            report.exit_code()
        }
        Err(e) => {
            eprintln!("reconcile failed: {}", cdc_bridge::session::error_chain(&e));
            2
        }
    }
}
