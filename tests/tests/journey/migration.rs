//! The whole strangler journey in-process: legacy monolith → CDC bridge → Kafka → order-status
//! service, and the gateway in front, while the journey moves the capability under load.

use super::apps::{Running, legacy_db, named_topics, start_legacy, start_order_service};
use e2e::demo::journey::{self, JourneyConfig, load::LoadConfig, shop};
use e2e::demo::legacy::load_order_view;
use e2e::demo::orders_service::ConsumerConfig;
use e2e::{
    DEFAULT_DEADLINE, Stack, SubjectPrefix, TestDb, TestTopic, read_committed_consumer,
    transactional_producer, unique_name, wait_for,
};
use rdkafka::Message;
use rdkafka::consumer::Consumer;
use rdkafka::producer::{FutureRecord, Producer};
use std::sync::Arc;
use std::time::Duration;

const OPERATOR_TOKEN: &str = "journey-operator-token";
const CAPABILITY: &str = "order-status";

/// The CDC bridge, in-process, streaming `db` into topics named `<prefix><aggregate>`.
async fn start_bridge(
    db: &TestDb,
    prefix: &str,
) -> (tokio::sync::watch::Sender<bool>, Vec<TestTopic>) {
    let stack = Stack::from_env();
    let slot = unique_name("demo_slot");
    let mapping = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../acl/mappings/order_to_cash.toml"
    );
    let toml = format!(
        r#"
[postgres]
conn = "{conn}"
slot = "{slot}"
publication = "{slot}"
[kafka]
brokers = "{brokers}"
transactional_id = "{slot}"
topic_prefix = "{prefix}"
progress_topic = "{prefix}progress"
dead_letter_topic = "{prefix}dead-letter"
[registry]
url = "{registry}"
[mapping]
path = "{mapping}"
"#,
        conn = db.conn_string(),
        brokers = stack.kafka_brokers,
        registry = stack.registry_url,
    );
    let config = cdc_bridge::config::Config::from_toml(&toml, |_| None).expect("bridge config");
    let mapper = acl::Mapper::load(std::path::Path::new(mapping)).expect("mapping");
    let telemetry = cdc_bridge::observability::Telemetry::new();
    let shared = Arc::new(cdc_bridge::session::Shared::new(
        config,
        mapper,
        telemetry.clone(),
    ));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        if let Err(e) = cdc_bridge::session::supervise(shared, stopped).await {
            panic!("bridge stopped: {}", cdc_bridge::session::error_chain(&e));
        }
    });
    // Changes committed before the slot exists are not streamed (no initial snapshot here).
    wait_for("the bridge to stream", DEFAULT_DEADLINE, || async {
        telemetry.is_streaming().then_some(())
    })
    .await;
    let cleanup = ["progress", "dead-letter"]
        .iter()
        .map(|t| TestTopic {
            brokers: stack.kafka_brokers.clone(),
            name: format!("{prefix}{t}"),
        })
        .collect();
    (stop, cleanup)
}

/// The gateway, in-process, with the side header on and the order-status capability on legacy.
async fn start_gateway(legacy: &Running, orders: &Running) -> (Running, Running, tempdir::Dir) {
    let dir = tempdir::Dir::new();
    let tokens = dir.path.join("tokens");
    std::fs::write(&tokens, format!("journey:operator:{OPERATOR_TOKEN}\n")).expect("tokens");
    let toml = format!(
        r#"
legacy = "{legacy}"
expose_side_header = true
[admin]
tokens_file = "{tokens}"
[store]
kind = "file"
path = "{store}"
[[capability]]
name = "{CAPABILITY}"
new = "{new}"
sticky = {{ header = "{sticky}" }}
routes = [{{ path = "/orders/{{id}}", methods = ["GET"] }}]
"#,
        legacy = legacy.url(""),
        new = orders.url(""),
        tokens = tokens.display(),
        store = dir.path.join("toggles.json").display(),
        sticky = journey::STICKY_HEADER,
    );
    let config = gateway::config::Config::parse(&toml).expect("gateway config");
    let public = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let (public_addr, admin_addr) = (
        public.local_addr().expect("addr"),
        admin.local_addr().expect("addr"),
    );
    let (stop_public, signal) = tokio::sync::oneshot::channel::<()>();
    let (stop_admin, _) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = signal.await;
        };
        if let Err(e) = gateway::app::serve(config, public, admin, shutdown).await {
            panic!("gateway stopped: {e}");
        }
    });
    (
        Running::new(public_addr, stop_public),
        Running::new(admin_addr, stop_admin),
        dir,
    )
}

mod tempdir {
    /// A directory removed when dropped.
    pub struct Dir {
        pub path: std::path::PathBuf,
    }

    impl Dir {
        pub fn new() -> Dir {
            let path = std::env::temp_dir().join(e2e::unique_name("fig_journey"));
            std::fs::create_dir_all(&path).expect("temp dir");
            Dir { path }
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Legacy → shadow → 10% → 50% → 100% → rollback under load: no client request fails, every
/// read lands on the side the gateway's toggle gives its reader, the new service ends up agreeing
/// with the legacy database on every order touched, and a duplicate event changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migration_journey_moves_order_status_without_errors() {
    let legacy_db = legacy_db().await;
    let legacy = start_legacy(&legacy_db).await;
    let subjects = SubjectPrefix::new("demo_journey");
    let prefix = format!("{}.", subjects.prefix);
    let topic_names: Vec<String> = ["order", "payment", "reservation", "customer"]
        .iter()
        .map(|a| format!("{prefix}{a}"))
        .collect();
    let _topics = named_topics(&topic_names, 3).await;
    let (stop_bridge, _bridge_topics) = start_bridge(&legacy_db, &prefix).await;
    let (orders, orders_db, metrics) =
        start_order_service(ConsumerConfig::topics_for_prefix(&prefix)).await;
    let (public, admin, _dir) = start_gateway(&legacy, &orders).await;

    let config = JourneyConfig {
        gateway: public.url(""),
        admin: admin.url(""),
        admin_token: OPERATOR_TOKEN.into(),
        orders_service: orders.url(""),
        capability: CAPABILITY.into(),
        step_duration: Duration::from_secs(3),
        load: LoadConfig {
            concurrency: 4,
            ..LoadConfig::default()
        },
    };
    let report = journey::run(&config, &journey::migration_steps(), |step| {
        eprintln!("{}", step.line());
    })
    .await
    .expect("journey");

    assert_eq!(
        report.errors(),
        0,
        "failed client requests: {:#?}",
        report.failures()
    );
    for step in &report.steps {
        let reads = step.tally.reads();
        assert!(
            !reads.is_empty() || step.step.name == "legacy",
            "step {} read nothing",
            step.step.name
        );
        assert_eq!(
            step.changed_during_step, None,
            "step {}: nobody but the journey may move the toggle",
            step.step.name
        );
        assert!(
            step.misrouted().is_empty(),
            "step {}: misrouted reads {:?}",
            step.step.name,
            step.misrouted()
        );
        let sides: Vec<_> = reads.iter().filter_map(|r| r.side.as_deref()).collect();
        match step.capability["state"].as_str() {
            Some("legacy" | "shadow") => {
                assert!(sides.iter().all(|s| *s == "legacy"), "{}", step.step.name)
            }
            Some("new") => assert!(sides.iter().all(|s| *s == "new"), "{}", step.step.name),
            _ => {}
        }
        assert!(
            step.tally
                .write_sides()
                .iter()
                .all(|s| s.as_deref() == Some("legacy")),
            "step {}: writes must stay on legacy",
            step.step.name
        );
    }
    let percent_50 = report
        .steps
        .iter()
        .find(|s| s.step.name == "50%")
        .expect("50% step");
    let on_new = percent_50
        .tally
        .reads()
        .iter()
        .filter(|r| r.side.as_deref() == Some("new"))
        .count();
    assert!(
        on_new > 0 && on_new < percent_50.tally.reads().len(),
        "50% must split the readers"
    );

    let legacy_client = legacy_db.connect().await.expect("connect");
    let new_side = shop::Shop::new(&orders.url(""), journey::STICKY_HEADER);
    assert!(
        report.orders.len() > 10,
        "the journey placed only {} orders",
        report.orders.len()
    );
    for order in &report.orders {
        let ord_no: i64 = order.parse().expect("order number");
        let expected = load_order_view(&legacy_client, ord_no)
            .await
            .expect("legacy")
            .expect("order");
        let agree = wait_for("agreement", DEFAULT_DEADLINE * 2, || async {
            let seen = shop::order_view(&new_side.order("test", order).await)?;
            shop::differences(&expected, &seen).is_empty().then_some(())
        });
        if tokio::time::timeout(DEFAULT_DEADLINE, agree).await.is_err() {
            let seen = shop::order_view(&new_side.order("test", order).await);
            let diffs = seen.as_ref().map(|s| shop::differences(&expected, s));
            panic!("order {order} disagrees with the legacy database: {diffs:?}");
        }
    }

    // Deliver the order topic's first event again: applied twice it would reset that order.
    let brokers = Stack::from_env().kafka_brokers;
    let reader = read_committed_consumer(&brokers).expect("consumer");
    reader
        .subscribe(&[topic_names[0].as_str()])
        .expect("subscribe");
    let first = tokio::time::timeout(Duration::from_secs(30), reader.recv())
        .await
        .expect("an event on the order topic")
        .expect("message");
    let (key, payload) = (
        first.key().expect("key").to_vec(),
        first.payload().expect("payload").to_vec(),
    );
    let order_id = String::from_utf8(key.clone()).expect("utf-8 key");
    let before = shop::order_view(&new_side.order("test", &order_id).await).expect("order known");
    let inbox_before = count(&orders_db, "inbox").await;
    let duplicates_before = metrics.duplicates.get();
    let producer = transactional_producer(&brokers, &unique_name("demo_dup")).expect("producer");
    producer.begin_transaction().expect("begin");
    producer
        .send(
            FutureRecord::to(&topic_names[0])
                .key(&key)
                .payload(&payload),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("send");
    producer
        .commit_transaction(Duration::from_secs(10))
        .expect("commit");
    wait_for("the duplicate to be seen", DEFAULT_DEADLINE, || async {
        (metrics.duplicates.get() > duplicates_before).then_some(())
    })
    .await;
    let after = shop::order_view(&new_side.order("test", &order_id).await).expect("order known");
    assert_eq!(after, before, "a duplicate event changed order {order_id}");
    assert_eq!(count(&orders_db, "inbox").await, inbox_before);
    let _ = stop_bridge.send(true);
}

async fn count(db: &TestDb, table: &str) -> i64 {
    db.connect()
        .await
        .expect("connect")
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .expect("count")
        .get(0)
}
