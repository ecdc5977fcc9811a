//! End-to-end tests of `cdc-bridge reconcile` against the real PostgreSQL, Kafka and registry.
//!
//! Each test gets its own database (the reference legacy schema), its own order topic, progress
//! topic and registry subjects. Events are produced by the test itself with the contracts'
//! encoder, Confluent framing and a transactional producer, exactly as the bridge writes them, so
//! these tests pin the reconciler's behaviour independently of the bridge.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cdc_bridge::checkpoint::Checkpoint;
use cdc_bridge::reconcile::{
    self, FindingKind, ReadModelSettings, ReconcileOptions, ReconcileSettings, Side,
};
use contracts::events::{
    OrderAccepted, OrderConfirmed, OrderPaymentPending, OrderSecured, OrderSubmitted,
};
use contracts::{
    DomainEvent, Envelope, EventKind, Money, Origin, Payload, SourcePosition, SubjectStrategy,
    TimestampMicros,
};
use e2e::{Stack, SubjectPrefix, TestDb, TestTopic, transactional_producer, unique_name};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use tokio_postgres::Client;

#[path = "reconcile/bench.rs"]
mod bench;

const SLOT: &str = "fig_bridge";
const LEGACY_SCHEMA: &str = include_str!("../../deploy/legacy/schema.sql");
const HOUR_MICROS: i64 = 3_600_000_000;

/// One test's legacy database, topics and subjects.
struct World {
    _subjects: SubjectPrefix,
    _db: TestDb,
    topic: TestTopic,
    progress: TestTopic,
    sql: Client,
    producer: FutureProducer,
    registry_url: String,
    conn: String,
}

impl World {
    async fn new(name: &str) -> World {
        let subjects = SubjectPrefix::new(name);
        let db = TestDb::create(name).await.expect("database");
        let sql = db.connect().await.expect("connect");
        sql.batch_execute(LEGACY_SCHEMA)
            .await
            .expect("legacy schema");
        sql.batch_execute(
            "INSERT INTO cust_mstr (cust_no, cust_nm, addr_ln1, city_nm, post_cd, ctry_cd) \
             VALUES ('C1', 'Ada Lovelace', '1 Analytical Way', 'London', 'N1', 'GB')",
        )
        .await
        .expect("customer");
        let topic = TestTopic::create(&subjects.prefix, 3)
            .await
            .expect("order topic");
        let progress = TestTopic::create(&format!("{}_progress", subjects.prefix), 1)
            .await
            .expect("progress topic");
        let stack = Stack::from_env();
        let producer =
            transactional_producer(&stack.kafka_brokers, &unique_name("txn")).expect("producer");
        World {
            conn: db.conn_string(),
            _subjects: subjects,
            _db: db,
            topic,
            progress,
            sql,
            producer,
            registry_url: stack.registry_url,
        }
    }

    fn options(&self, settings: ReconcileSettings) -> ReconcileOptions {
        ReconcileOptions {
            legacy_conn: self.conn.clone(),
            brokers: self.topic.brokers.clone(),
            kafka_properties: Default::default(),
            order_topic: self.topic.name.clone(),
            progress: Some((self.progress.name.clone(), SLOT.into())),
            registry_url: self.registry_url.clone(),
            subject_strategy: SubjectStrategy::TopicName,
            registry_compatibility: "BACKWARD_TRANSITIVE".into(),
            redrive_transactional_id: unique_name("redrive"),
            settings,
        }
    }

    /// Inserts (or updates) an order in its own legacy transaction, `age` before now, and
    /// returns where that change sits in the WAL.
    async fn legacy_order(&self, id: i64, code: &str, age_micros: i64) -> SourcePosition {
        let upd = format!("(now() at time zone 'utc') - interval '{age_micros} microseconds'");
        let sql = format!(
            "BEGIN; \
             INSERT INTO ord_hdr (ord_no, cust_no, cust_nm, ship_addr_ln1, ship_city_nm, \
               ship_post_cd, ship_ctry_cd, ord_stat_cd, ord_tot_amt, curr_cd, upd_ts) \
             VALUES ({id}, 'C1', 'Ada Lovelace', '1 Analytical Way', 'London', 'N1', 'GB', \
               '{code}', 12.50, 'EUR', {upd}) \
             ON CONFLICT (ord_no) DO UPDATE SET ord_stat_cd = excluded.ord_stat_cd, \
               upd_ts = excluded.upd_ts;"
        );
        self.sql.batch_execute(&sql).await.expect("write order");
        let xid: i64 = self
            .sql
            .query_one("SELECT (txid_current() % 4294967296)::int8", &[])
            .await
            .expect("xid")
            .get(0);
        self.sql.batch_execute("COMMIT").await.expect("commit");
        let lsn: String = self
            .sql
            .query_one("SELECT pg_current_wal_lsn()::text", &[])
            .await
            .expect("lsn")
            .get(0);
        SourcePosition {
            commit_lsn: cdc_bridge::checkpoint::parse_lsn(&lsn).expect("lsn"),
            xid: xid as u32,
            seq: 0,
        }
    }

    /// Publishes `events` in one Kafka transaction, framed like the bridge frames them.
    async fn publish(&self, events: &[DomainEvent]) {
        let http = reqwest::Client::new();
        let mut records = Vec::new();
        for event in events {
            let id = register(&http, &self.registry_url, &self.topic.name, event).await;
            let mut datum = Vec::new();
            event
                .encode(SubjectStrategy::TopicName, &mut datum)
                .expect("encode");
            let mut framed = Vec::new();
            contracts::wire::frame(id, &datum, &mut framed);
            records.push((
                self.topic.name.clone(),
                event.aggregate_id().to_string(),
                framed,
            ));
        }
        self.commit(records).await;
    }

    /// Records the bridge's checkpoint as the bridge would, inside a Kafka transaction.
    async fn checkpoint(&self, commit_lsn: u64) {
        let value = Checkpoint {
            commit_lsn,
            end_lsn: commit_lsn + 1,
        }
        .to_value();
        self.commit(vec![(self.progress.name.clone(), SLOT.to_string(), value)])
            .await;
    }

    /// Produces (topic, key, value) records in one Kafka transaction.
    async fn commit(&self, records: Vec<(String, String, Vec<u8>)>) {
        self.producer.begin_transaction().expect("begin");
        for (topic, key, value) in &records {
            let record = FutureRecord::to(topic).key(key).payload(value);
            self.producer
                .send(record, Duration::from_secs(10))
                .await
                .map_err(|(e, _)| e)
                .expect("send");
        }
        self.producer
            .commit_transaction(Duration::from_secs(30))
            .expect("commit");
    }
}

/// Registers the writer of `event` under its subject for `topic` (TopicName strategy), like
/// the bridge does, and returns the schema id.
async fn register(http: &reqwest::Client, registry: &str, topic: &str, event: &DomainEvent) -> u32 {
    let writer = event.writer(SubjectStrategy::TopicName);
    let subject = SubjectStrategy::TopicName.subject(topic, writer.record_name);
    let body: serde_json::Value = http
        .post(format!("{registry}/subjects/{subject}/versions"))
        .header("content-type", "application/vnd.schemaregistry.v1+json")
        .json(&serde_json::json!({ "schema": writer.schema_json }))
        .send()
        .await
        .expect("registry")
        .json()
        .await
        .expect("registry id");
    body["id"].as_u64().expect("id") as u32
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or_default()
}

/// The event of `kind` for order `id`, from the legacy change at `source`.
fn event(kind: EventKind, id: i64, source: SourcePosition) -> DomainEvent {
    let order_id = id.to_string();
    let at = TimestampMicros(now_micros());
    let eur = Money::zero("EUR");
    let payload: Payload = match kind {
        EventKind::OrderSubmitted => OrderSubmitted {
            order_id: order_id.clone(),
            customer_id: "C1".into(),
            customer_name: "Ada Lovelace".into(),
            customer_email: None,
            channel: "web".into(),
            total: eur,
            submitted_at: at,
            ship_to_country: Some("GB".into()),
        }
        .into(),
        EventKind::OrderAccepted => OrderAccepted {
            order_id: order_id.clone(),
            customer_id: "C1".into(),
            accepted_at: at,
        }
        .into(),
        EventKind::OrderPaymentPending => OrderPaymentPending {
            order_id: order_id.clone(),
            total: eur,
            pending_since: at,
        }
        .into(),
        EventKind::OrderSecured => OrderSecured {
            order_id: order_id.clone(),
            total: eur,
            secured_at: at,
        }
        .into(),
        EventKind::OrderConfirmed => OrderConfirmed {
            order_id: order_id.clone(),
            confirmed_at: at,
        }
        .into(),
        other => Payload::sample(other),
    };
    DomainEvent {
        envelope: Envelope {
            event_id: contracts::event_id(&source, kind.name(), &order_id),
            event_type: kind.name().into(),
            schema_version: kind.latest_version(),
            occurred_at_micros: at.0,
            aggregate_type: "order".into(),
            aggregate_id: order_id,
            source,
            origin: Origin::Stream,
            correlation_id: None,
            causation_id: None,
        },
        payload,
    }
}

/// Submitted, then the event of `status` (unless it is Submitted).
fn history(id: i64, status: EventKind, source: SourcePosition) -> Vec<DomainEvent> {
    let mut out = vec![event(EventKind::OrderSubmitted, id, source)];
    if status != EventKind::OrderSubmitted {
        out.push(event(status, id, SourcePosition { seq: 1, ..source }));
    }
    out
}

fn messages(report: &reconcile::Report) -> Vec<String> {
    report
        .divergences
        .iter()
        .map(|f| f.message.clone())
        .collect()
}

/// Legacy and events that agree give a clean report and exit status 0; stuck orders are listed.
#[tokio::test]
async fn matching_world_reports_nothing_and_exits_zero() {
    let w = World::new("rec_match").await;
    let mut events = Vec::new();
    for (id, code, kind) in [
        (1001, "N", EventKind::OrderSubmitted),
        (1002, "A", EventKind::OrderAccepted),
        (1003, "P", EventKind::OrderPaymentPending),
        (1004, "S", EventKind::OrderSecured),
        (1005, "C", EventKind::OrderConfirmed),
    ] {
        let age = if id == 1003 {
            3 * HOUR_MICROS
        } else {
            HOUR_MICROS / 2
        };
        let source = w.legacy_order(id, code, age).await;
        events.extend(history(id, kind, source));
    }
    w.publish(&events).await;
    let report = reconcile::reconcile(&w.options(ReconcileSettings::default()))
        .await
        .expect("reconcile");
    assert_eq!(report.exit_code(), 0, "{}", report.to_table());
    assert_eq!(report.counts.legacy_orders, 5);
    assert_eq!(report.counts.matching, 5);
    assert_eq!(report.counts.events_applied, 9);
    assert!(report.divergences.is_empty());
    assert_eq!(report.stuck.len(), 1, "{}", report.to_table());
    assert!(
        report.stuck[0]
            .message
            .starts_with("order 1003: Payment pending since"),
        "{}",
        report.stuck[0].message
    );
    assert!(
        report
            .to_table()
            .contains("RESULT: legacy and events agree")
    );
}

/// A missing event, an extra aggregate and a divergent state are each reported in business
/// language, in the table and the JSON, with a non-zero exit status.
#[tokio::test]
async fn missing_extra_and_divergent_orders_are_reported() {
    let w = World::new("rec_diverge").await;
    let ok = w.legacy_order(2001, "S", HOUR_MICROS).await;
    let _missing = w.legacy_order(2002, "A", HOUR_MICROS).await;
    let divergent = w.legacy_order(2003, "S", HOUR_MICROS).await;
    let mut events = history(2001, EventKind::OrderSecured, ok);
    events.extend(history(2003, EventKind::OrderAccepted, divergent));
    events.extend(history(
        2999,
        EventKind::OrderAccepted,
        SourcePosition { xid: ok.xid, ..ok },
    ));
    w.publish(&events).await;
    let report = reconcile::reconcile(&w.options(ReconcileSettings::default()))
        .await
        .expect("reconcile");
    let c = report.counts;
    assert_eq!(
        (c.matching, c.missing, c.extra, c.divergent),
        (1, 1, 1, 1),
        "{}",
        report.to_table()
    );
    assert_eq!(report.exit_code(), 1);
    let m = messages(&report);
    assert!(
        m[0].starts_with("order 2002: legacy says Accepted since ")
            && m[0].ends_with("events have no trace of it"),
        "{m:?}"
    );
    assert!(
        m[1].starts_with("order 2003: legacy says Secured since ")
            && m[1].contains(", events say Accepted since "),
        "{m:?}"
    );
    assert!(
        m[2].starts_with("order 2999: events say Accepted since ")
            && m[2].ends_with("legacy has no such order"),
        "{m:?}"
    );
    let table = report.to_table();
    assert!(
        table.contains("DIVERGENCE FOUND") && table.contains(&m[1]),
        "{table}"
    );
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).expect("json");
    assert_eq!(json["counts"]["divergent"], 1);
    assert_eq!(json["divergences"][1]["legacy"]["status"], "Secured");
    assert_eq!(json["divergences"][1]["other"]["status"], "Accepted");
}

/// Events of legacy transactions newer than the snapshot, and legacy changes newer than the
/// bridge's committed position, are in flight: counted, listed apart, never divergence.
#[tokio::test]
async fn changes_in_flight_are_not_reported_as_divergence() {
    let w = World::new("rec_flight").await;
    let a = w.legacy_order(3001, "A", HOUR_MICROS).await;
    let b = w.legacy_order(3002, "A", HOUR_MICROS).await;
    let mut events = history(3001, EventKind::OrderAccepted, a);
    events.extend(history(3002, EventKind::OrderAccepted, b));
    // A legacy transaction the snapshot cannot see yet (it commits later): its event is ahead.
    let future = SourcePosition {
        commit_lsn: b.commit_lsn + (1 << 30),
        xid: b.xid.wrapping_add(1_000_000),
        seq: 0,
    };
    events.push(event(EventKind::OrderSecured, 3001, future));
    w.publish(&events).await;
    w.checkpoint(b.commit_lsn).await;
    // A legacy change the bridge has not published yet.
    w.legacy_order(3002, "S", 0).await;
    w.legacy_order(3003, "N", 0).await;
    let report = reconcile::reconcile(&w.options(ReconcileSettings::default()))
        .await
        .expect("reconcile");
    let c = report.counts;
    assert_eq!(report.exit_code(), 0, "{}", report.to_table());
    assert_eq!(
        (c.matching, c.in_flight, c.events_after_snapshot),
        (1, 2, 1),
        "{}",
        report.to_table()
    );
    assert_eq!(
        report.position.bridge_checkpoint.as_deref(),
        Some(cdc_bridge::checkpoint::format_lsn(b.commit_lsn).as_str())
    );
    let flight: Vec<(i64, FindingKind)> =
        report.in_flight.iter().map(|f| (f.order, f.kind)).collect();
    assert_eq!(
        flight,
        vec![(3002, FindingKind::InFlight), (3003, FindingKind::InFlight)]
    );
    assert!(
        report.in_flight[0].message.contains("legacy says Secured"),
        "{}",
        report.in_flight[0].message
    );
}

/// Re-drive republishes legacy state as reconciliation events that fold to it, with the same
/// ids when repeated; the next reconciliation is clean. The read model is compared too.
#[tokio::test]
async fn redrive_repairs_what_diverged() {
    let w = World::new("rec_redrive").await;
    let a = w.legacy_order(4001, "S", HOUR_MICROS).await;
    w.legacy_order(4002, "C", HOUR_MICROS).await;
    w.legacy_order(4003, "X", HOUR_MICROS).await;
    w.publish(&history(4001, EventKind::OrderAccepted, a)).await;
    w.sql
        .batch_execute(
            "CREATE TABLE order_view (order_id text, status text); \
             INSERT INTO order_view VALUES ('4001', 'Secured'), ('4002', 'CONFIRMED'), ('4003', 'accepted'), ('4999', 'S')",
        )
        .await
        .expect("read model");
    let settings = ReconcileSettings {
        read_model: Some(ReadModelSettings {
            conn: w.conn.clone(),
            query: "SELECT order_id, status FROM order_view".into(),
        }),
        ..ReconcileSettings::default()
    };
    let opts = w.options(settings);
    let before = reconcile::reconcile(&opts).await.expect("reconcile");
    assert_eq!(
        (
            before.counts.divergent,
            before.counts.missing,
            before.counts.extra
        ),
        (2, 2, 1),
        "{}",
        before.to_table()
    );
    let by_model: Vec<String> = before
        .divergences
        .iter()
        .filter(|f| f.side == Side::ReadModel)
        .map(|f| f.message.clone())
        .collect();
    assert_eq!(by_model.len(), 2, "{by_model:?}");
    assert!(
        by_model[0].starts_with("order 4003: legacy says Cancelled since ")
            && by_model[0].ends_with("the read model says Accepted"),
        "{by_model:?}"
    );

    let outcome = reconcile::redrive(&opts, &[4001, 4002, 4003, 404])
        .await
        .expect("redrive");
    assert_eq!(outcome.republished, vec![4001, 4002, 4003]);
    assert_eq!(outcome.not_in_legacy, vec![404]);
    let again = reconcile::redrive(&opts, &[4001, 4002, 4003])
        .await
        .expect("redrive again");
    assert_eq!(again.events, outcome.events);

    let mut no_model = opts.clone();
    no_model.settings.read_model = None;
    let after = reconcile::reconcile(&no_model).await.expect("reconcile");
    assert_eq!(after.exit_code(), 0, "{}", after.to_table());
    assert_eq!(after.counts.matching, 3);

    let ids = reconciliation_event_ids(&w, 2 + 2 * outcome.events).await;
    assert_eq!(
        ids.len() as u64,
        2 * outcome.events,
        "both re-drives are on the topic"
    );
    let distinct: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(
        distinct.len() as u64,
        outcome.events,
        "a repeated re-drive repeats the same ids"
    );
}

/// Ids of every reconciliation-origin event on the topic (read_committed, decoded).
async fn reconciliation_event_ids(w: &World, total: u64) -> Vec<String> {
    let consumer: StreamConsumer =
        e2e::read_committed_consumer(&w.topic.brokers).expect("consumer");
    consumer.subscribe(&[&w.topic.name]).expect("subscribe");
    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    let mut seen = 0;
    while seen < total {
        let msg = tokio::time::timeout(e2e::DEFAULT_DEADLINE, consumer.recv())
            .await
            .expect("message in time")
            .expect("message");
        seen += 1;
        let (id, datum) =
            contracts::wire::unframe(msg.payload().expect("payload")).expect("framed");
        let schema: serde_json::Value = http
            .get(format!("{}/schemas/ids/{id}", w.registry_url))
            .send()
            .await
            .expect("registry")
            .json()
            .await
            .expect("schema");
        let schema = apache_avro::Schema::parse_str(schema["schema"].as_str().expect("text"))
            .expect("parses");
        let event = DomainEvent::decode(&schema, datum).expect("decodes");
        if event.envelope.origin == Origin::Reconciliation {
            ids.push(event.envelope.event_id);
        }
    }
    ids
}

/// Not a test: the seeding and reconciling steps of `deploy/bench/reconcile.sh`. Without
/// `FIG_RECONCILE_BENCH` set it does nothing.
#[test]
#[ignore = "entry point of deploy/bench/reconcile.sh"]
fn bench_process() {
    let Ok(mode) = std::env::var("FIG_RECONCILE_BENCH") else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    std::process::exit(runtime.block_on(bench::run(&mode)));
}
