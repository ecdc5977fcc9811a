//! The order-status service alone, fed with events produced by the contracts' encoder through the
//! real registry and Kafka: it builds the order's state, ignores duplicates and records what it
//! cannot read.

use super::apps::{named_topics, start_order_service};
use contracts::events::{
    OrderConfirmed, OrderSecured, OrderSubmitted, PaymentAuthorized, StockReserved,
};
use contracts::{DomainEvent, Payload, SubjectStrategy, TimestampMicros};
use e2e::demo::domain_event::stream_event;
use e2e::demo::orders_service::ConsumerConfig;
use e2e::{DEFAULT_DEADLINE, SubjectPrefix, transactional_producer, unique_name, wait_for};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use std::collections::HashMap;
use std::time::Duration;

fn eur(amount: i64) -> contracts::Money {
    contracts::Money::new(amount.into(), "EUR").expect("money")
}

fn event(seq: u32, aggregate_id: &str, payload: impl Into<Payload>) -> DomainEvent {
    let at = 1_764_000_000_000_000 + i64::from(seq);
    stream_event(0x1_0000 + u64::from(seq), seq, at, aggregate_id, payload)
}

/// Encodes events the way the bridge does: writer schema registered under `<topic>-value`,
/// Confluent framing, keyed by aggregate id.
struct Publisher {
    prefix: String,
    registry: String,
    http: reqwest::Client,
    ids: HashMap<String, u32>,
    producer: FutureProducer,
}

impl Publisher {
    async fn frame(&mut self, event: &DomainEvent) -> (String, Vec<u8>) {
        let topic = format!("{}{}", self.prefix, event.aggregate_type());
        let writer = event.writer(SubjectStrategy::TopicName);
        let subject = SubjectStrategy::TopicName.subject(&topic, writer.record_name);
        let id = match self.ids.get(&subject) {
            Some(id) => *id,
            None => {
                let resp: serde_json::Value = self
                    .http
                    .post(format!("{}/subjects/{subject}/versions", self.registry))
                    .json(&serde_json::json!({ "schema": writer.schema_json }))
                    .send()
                    .await
                    .expect("register")
                    .json()
                    .await
                    .expect("registry answer");
                let id = u32::try_from(resp["id"].as_u64().expect("schema id")).expect("u32");
                self.ids.insert(subject, id);
                id
            }
        };
        let mut datum = Vec::new();
        event
            .encode(SubjectStrategy::TopicName, &mut datum)
            .expect("encode");
        let mut framed = Vec::new();
        contracts::wire::frame(id, &datum, &mut framed);
        (topic, framed)
    }

    async fn send_raw(&self, topic: &str, key: &str, bytes: &[u8]) {
        self.producer.begin_transaction().expect("begin");
        self.producer
            .send(
                FutureRecord::to(topic).key(key).payload(bytes),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("send");
        self.producer
            .commit_transaction(Duration::from_secs(10))
            .expect("commit");
    }

    async fn publish(&mut self, event: &DomainEvent) -> (String, Vec<u8>) {
        let (topic, bytes) = self.frame(event).await;
        self.send_raw(&topic, event.aggregate_id(), &bytes).await;
        (topic, bytes)
    }
}

async fn view(http: &reqwest::Client, url: &str) -> Option<serde_json::Value> {
    let resp = http.get(url).send().await.ok()?;
    if resp.status() != 200 {
        return None;
    }
    resp.json().await.ok()
}

/// Events from the registry-framed topics build the order's status; a duplicate delivery and an
/// undecodable message change nothing, and later events still flow.
#[tokio::test]
async fn order_service_builds_status_from_events_and_ignores_duplicates() {
    let subjects = SubjectPrefix::new("demo_os");
    let prefix = format!("{}.", subjects.prefix);
    let names = ConsumerConfig::topics_for_prefix(&prefix);
    let _topics = named_topics(&names, 1).await;
    let (service, db, metrics) = start_order_service(names).await;
    let brokers = e2e::Stack::from_env().kafka_brokers;
    let mut publisher = Publisher {
        prefix,
        registry: subjects.registry_url.clone(),
        http: reqwest::Client::new(),
        ids: HashMap::new(),
        producer: transactional_producer(&brokers, &unique_name("demo_pub")).expect("producer"),
    };
    let http = reqwest::Client::new();
    let url = service.url("/orders/300001");
    let t = TimestampMicros(0);
    let submitted = event(
        0,
        "300001",
        OrderSubmitted {
            order_id: "300001".into(),
            customer_id: "C9".into(),
            customer_name: "Ada".into(),
            customer_email: None,
            channel: "web".into(),
            total: eur(40),
            submitted_at: t,
            ship_to_country: Some("GB".into()),
        },
    );
    let (order_topic, submitted_bytes) = publisher.publish(&submitted).await;
    let first = wait_for("the submitted order to show", DEFAULT_DEADLINE, || async {
        view(&http, &url).await
    })
    .await;
    assert_eq!(first["status"], "submitted");
    assert_eq!(
        first["total"],
        serde_json::json!({"amount": "40.00", "currency": "EUR"})
    );

    let resp = http
        .get(service.url("/orders/300002"))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 404, "an order never seen is not invented");

    publisher
        .publish(&event(
            1,
            "700001",
            StockReserved {
                reservation_id: "700001".into(),
                order_id: "300001".into(),
                line_number: 1,
                sku: "MUG".into(),
                warehouse: "WH01".into(),
                quantity: 1,
                expires_at: None,
            },
        ))
        .await;
    publisher
        .publish(&event(
            2,
            "500001",
            PaymentAuthorized {
                payment_id: "500001".into(),
                order_id: "300001".into(),
                amount: eur(40),
                provider: "ADYN".into(),
                provider_reference: None,
                authorized_at: t,
            },
        ))
        .await;
    publisher
        .publish(&event(
            3,
            "300001",
            OrderSecured {
                order_id: "300001".into(),
                total: eur(40),
                secured_at: t,
            },
        ))
        .await;
    let secured = wait_for("the order to be secured", DEFAULT_DEADLINE, || async {
        view(&http, &url).await.filter(|v| {
            v["status"] == "secured" && v["payment"] == "authorized" && v["stock"] == "reserved"
        })
    })
    .await;

    // The very first event again: applied twice it would set the status back to "submitted".
    let inbox_before = inbox_rows(&db).await;
    publisher
        .send_raw(&order_topic, "300001", &submitted_bytes)
        .await;
    wait_for("the duplicate to be seen", DEFAULT_DEADLINE, || async {
        (metrics.duplicates.get() == 1).then_some(())
    })
    .await;
    assert_eq!(
        view(&http, &url).await.as_ref(),
        Some(&secured),
        "a duplicate changed the order"
    );
    assert_eq!(inbox_rows(&db).await, inbox_before);

    // A message that is not in the wire format is recorded, and the stream goes on.
    publisher
        .send_raw(&order_topic, "300001", b"not avro")
        .await;
    publisher
        .publish(&event(
            4,
            "300001",
            OrderConfirmed {
                order_id: "300001".into(),
                confirmed_at: t,
            },
        ))
        .await;
    wait_for(
        "the order to be confirmed after a bad message",
        DEFAULT_DEADLINE,
        || async {
            view(&http, &url)
                .await
                .filter(|v| v["status"] == "confirmed")
        },
    )
    .await;
    assert_eq!(metrics.rejected.get(), 1);
    let rejected: i64 = db
        .connect()
        .await
        .expect("connect")
        .query_one("SELECT count(*) FROM rejected_message", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(rejected, 1);
}

async fn inbox_rows(db: &e2e::TestDb) -> i64 {
    db.connect()
        .await
        .expect("connect")
        .query_one("SELECT count(*) FROM inbox", &[])
        .await
        .expect("count")
        .get(0)
}
