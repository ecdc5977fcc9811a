//! Starting the demo apps in-process for a test, each on its own port and database.

use e2e::demo::legacy;
use e2e::demo::orders_service::{self, ConsumerConfig, observability::Metrics};
use e2e::demo::pg_pool::PgPool;
use e2e::{Stack, TestDb, TestTopic, unique_name};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::oneshot;

/// A running app; stops when dropped.
pub struct Running {
    pub addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

impl Running {
    pub fn new(addr: SocketAddr, stop: oneshot::Sender<()>) -> Running {
        Running { addr, _stop: stop }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

fn stop_signal() -> (
    oneshot::Sender<()>,
    impl Future<Output = ()> + Send + 'static,
) {
    let (tx, rx) = oneshot::channel::<()>();
    (tx, async move {
        let _ = rx.await;
    })
}

/// A fresh legacy database loaded with the reference schema.
pub async fn legacy_db() -> TestDb {
    let db = TestDb::create("demo_legacy")
        .await
        .expect("legacy database");
    db.connect()
        .await
        .expect("connect")
        .batch_execute(legacy::SCHEMA_SQL)
        .await
        .expect("schema");
    db
}

/// The legacy monolith serving `db`.
pub async fn start_legacy(db: &TestDb) -> Running {
    let pool = PgPool::connect(&db.conn_string(), 4)
        .await
        .expect("legacy pool");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, signal) = stop_signal();
    tokio::spawn(legacy::serve(pool, listener, signal));
    Running { addr, _stop: stop }
}

/// The order-status service on its own fresh database, consuming `topics`.
pub async fn start_order_service(topics: Vec<String>) -> (Running, TestDb, Arc<Metrics>) {
    let db = TestDb::create("demo_orders")
        .await
        .expect("orders database");
    let config = ConsumerConfig {
        brokers: Stack::from_env().kafka_brokers,
        group_id: unique_name("demo_orders"),
        topics,
        registry_url: Stack::from_env().registry_url,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, signal) = stop_signal();
    let metrics = Arc::new(Metrics::default());
    let (conn, m) = (db.conn_string(), metrics.clone());
    tokio::spawn(async move {
        if let Err(e) = orders_service::serve(&conn, config, listener, m, signal).await {
            panic!("order-status service stopped: {e}");
        }
    });
    (Running { addr, _stop: stop }, db, metrics)
}

/// Topics with exactly these names (as the bridge names them), deleted when dropped.
pub async fn named_topics(names: &[String], partitions: i32) -> Vec<TestTopic> {
    let brokers = Stack::from_env().kafka_brokers;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .expect("admin");
    let new: Vec<NewTopic> = names
        .iter()
        .map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1)))
        .collect();
    for r in admin
        .create_topics(&new, &AdminOptions::new())
        .await
        .expect("create topics")
    {
        r.expect("topic created");
    }
    names
        .iter()
        .map(|n| TestTopic {
            brokers: brokers.clone(),
            name: n.clone(),
        })
        .collect()
}

/// A customer registered through the legacy API.
pub async fn register_customer(http: &reqwest::Client, legacy: &Running) -> String {
    let resp = http
        .post(legacy.url("/customers"))
        .json(&serde_json::json!({
            "name": "Ada Lovelace", "email": "ada@example.invalid", "address_line1": "1 Analytical St",
            "city": "London", "post_code": "NW1", "country": "GB"
        }))
        .send()
        .await
        .expect("register customer");
    assert_eq!(resp.status(), 201);
    let body: serde_json::Value = resp.json().await.expect("json");
    body["customer_id"]
        .as_str()
        .expect("customer_id")
        .to_string()
}
