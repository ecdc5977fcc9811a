//! Smoke tests of the local stack: each would fail against a fake or a wrong service.

use e2e::{
    DEFAULT_DEADLINE, SubjectPrefix, TestDb, TestTopic, read_committed_consumer,
    transactional_producer, wait_for,
};
use rdkafka::Message;
use rdkafka::consumer::Consumer;
use rdkafka::producer::{FutureRecord, Producer};
use std::time::Duration;

/// A logical replication slot created before an INSERT sees that INSERT, and only it.
#[tokio::test]
async fn logical_slot_sees_insert_made_after_it() {
    let db = TestDb::create("smoke_slot").await.unwrap();
    let pg = db.connect().await.unwrap();
    pg.batch_execute("CREATE TABLE probe (id int primary key, note text)")
        .await
        .unwrap();
    pg.execute("INSERT INTO probe VALUES (1, 'before the slot')", &[])
        .await
        .unwrap();
    let slot = e2e::unique_name("slot");
    pg.execute(
        "SELECT pg_create_logical_replication_slot($1, 'test_decoding')",
        &[&slot],
    )
    .await
    .unwrap();
    pg.execute("INSERT INTO probe VALUES (2, 'after the slot')", &[])
        .await
        .unwrap();

    let rows = pg
        .query(
            "SELECT data FROM pg_logical_slot_get_changes($1, NULL, NULL)",
            &[&slot],
        )
        .await
        .unwrap();
    let changes: Vec<String> = rows.iter().map(|r| r.get::<_, String>(0)).collect();
    let inserts: Vec<&String> = changes.iter().filter(|c| c.contains("INSERT")).collect();
    assert_eq!(
        inserts.len(),
        1,
        "expected exactly one INSERT, got {changes:?}"
    );
    assert!(
        inserts[0].contains("id[integer]:2"),
        "wrong row decoded: {}",
        inserts[0]
    );
    assert!(
        inserts[0].contains("after the slot"),
        "wrong row decoded: {}",
        inserts[0]
    );
}

/// A read_committed consumer sees the committed Kafka transaction and never the aborted one.
#[tokio::test]
async fn kafka_transactions_commit_and_abort() {
    let topic = TestTopic::create("smoke_txn", 1).await.unwrap();
    let producer = transactional_producer(&topic.brokers, &e2e::unique_name("tx")).unwrap();
    let send = |payload: &'static str| {
        let record = FutureRecord::to(&topic.name).key("k").payload(payload);
        producer.send(record, Duration::from_secs(10))
    };

    producer.begin_transaction().unwrap();
    send("aborted-1").await.unwrap();
    send("aborted-2").await.unwrap();
    producer.abort_transaction(Duration::from_secs(10)).unwrap();

    producer.begin_transaction().unwrap();
    send("committed-1").await.unwrap();
    send("committed-2").await.unwrap();
    producer
        .commit_transaction(Duration::from_secs(10))
        .unwrap();

    // A marker after both, so the consumer knows when it has read everything before it.
    producer.begin_transaction().unwrap();
    send("end").await.unwrap();
    producer
        .commit_transaction(Duration::from_secs(10))
        .unwrap();

    let consumer = read_committed_consumer(&topic.brokers).unwrap();
    consumer.subscribe(&[&topic.name]).unwrap();
    let mut seen = Vec::new();
    let collected = tokio::time::timeout(DEFAULT_DEADLINE, async {
        loop {
            let msg = consumer.recv().await.unwrap();
            let payload = String::from_utf8(msg.payload().unwrap().to_vec()).unwrap();
            if payload == "end" {
                break;
            }
            seen.push(payload);
        }
    })
    .await;
    assert!(collected.is_ok(), "never saw the end marker; saw {seen:?}");
    assert_eq!(seen, vec!["committed-1", "committed-2"]);
}

/// The registry assigns an id, returns the schema by that id, and refuses an incompatible next
/// version with 409.
#[tokio::test]
async fn registry_assigns_ids_and_refuses_incompatible_versions() {
    let prefix = SubjectPrefix::new("smoke");
    let subject = prefix.subject("value");
    let url = &prefix.registry_url;
    let http = reqwest::Client::new();
    let v1 = r#"{"type":"record","name":"Probe","namespace":"fig.smoke","fields":[{"name":"id","type":"long"}]}"#;
    // Adds a required field with no default: old data cannot be read with it (not BACKWARD).
    let bad = r#"{"type":"record","name":"Probe","namespace":"fig.smoke","fields":[{"name":"id","type":"long"},{"name":"sku","type":"string"}]}"#;

    let config = http
        .put(format!("{url}/config/{subject}"))
        .json(&serde_json::json!({"compatibility": "BACKWARD"}))
        .send()
        .await
        .unwrap();
    assert!(
        config.status().is_success(),
        "PUT /config answered {}",
        config.status()
    );

    let registered: serde_json::Value = http
        .post(format!("{url}/subjects/{subject}/versions"))
        .json(&serde_json::json!({"schema": v1}))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = registered["id"]
        .as_i64()
        .expect("registry answered without an id");

    let fetched: serde_json::Value = wait_for("schema readable by id", DEFAULT_DEADLINE, || {
        let http = http.clone();
        let u = format!("{url}/schemas/ids/{id}");
        async move {
            let r = http.get(u).send().await.ok()?;
            if !r.status().is_success() {
                return None;
            }
            r.json().await.ok()
        }
    })
    .await;
    let schema: serde_json::Value =
        serde_json::from_str(fetched["schema"].as_str().expect("no schema field")).unwrap();
    assert_eq!(schema["name"], "Probe");
    assert_eq!(schema["fields"][0]["name"], "id");

    let refused = http
        .post(format!("{url}/subjects/{subject}/versions"))
        .json(&serde_json::json!({"schema": bad}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused.status().as_u16(),
        409,
        "incompatible schema was not refused"
    );
}
