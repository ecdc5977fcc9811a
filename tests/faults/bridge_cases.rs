//! Faults under the CDC bridge while legacy writes run: the bridge killed with SIGKILL, the
//! Kafka broker restarted, PostgreSQL restarted with a fast shutdown, the schema registry frozen.
//! Each case ends by reading the order topic `read_committed` from the beginning and checking
//! that every committed legacy transaction arrived exactly once and whole.

use std::sync::atomic::Ordering as AtomicOrdering;
use std::time::{Duration, Instant};

use e2e::{Fault, PrivateStack, Service, wait_for};
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::fixture::{Bridge, CATCH_UP, Received, Setup, random_in};
use crate::legacy_writer::{LegacyWriter, assert_delivered, check_delivery};
use crate::report::{CaseReport, max_ms};
use crate::settings::Settings;
use crate::tally::{Published, Tally};

/// How long a fault may take to show (the bridge noticing, the writer failing).
const NOTICE: Duration = Duration::from_secs(60);
/// Legacy transactions committed before each fault, so it lands mid-stream.
const BEFORE_FAULT: usize = 20;

/// A legacy database with customer C1, a streaming bridge and a running writer.
async fn start(tag: &str, extra_postgres: &str) -> (Setup, Bridge, LegacyWriter) {
    let setup = Setup::new(tag, extra_postgres, "").await;
    setup
        .legacy
        .execute(
            "INSERT INTO cust_mstr (cust_no, cust_nm, email_addr, addr_ln1, city_nm, post_cd, ctry_cd) \
             VALUES ('C1', 'Ada Lovelace', 'ada@example.com', 'Main St 1', 'Bern', '3000', 'CH')",
            &[],
        )
        .await
        .expect("insert customer C1");
    let bridge = setup.start_bridge(0);
    setup.wait_streaming(&bridge).await;
    let writer = LegacyWriter::start(setup.db.conn_string());
    (setup, bridge, writer)
}

async fn committed_at_least(writer: &LegacyWriter, what: &str, n: usize) {
    let progress = &writer.progress;
    // Long outages (FIG_FAULT_OUTAGE_TXNS) get time for their writes: 50 ms each at worst.
    let deadline = NOTICE + Duration::from_millis(50) * u32::try_from(n).unwrap_or(u32::MAX);
    wait_for(what, deadline, || async {
        (progress.committed() >= n).then_some(())
    })
    .await;
}

/// Runs a fault script step on a worker that may block.
fn inject(stack: &PrivateStack, fault: Fault, service: Service) {
    tokio::task::block_in_place(|| stack.fault(fault, service))
        .unwrap_or_else(|e| panic!("injecting {fault:?} into {service:?}: {e}"));
}

fn submitted(received: &[Received]) -> usize {
    received
        .iter()
        .filter_map(|r| r.event.as_ref())
        .filter(|e| e.event_type() == "OrderSubmitted")
        .count()
}

fn orders(published: &[Published]) -> usize {
    published
        .iter()
        .filter(|p| p.event_type == "OrderSubmitted")
        .count()
}

/// The order topic as the fault checks read it (read_committed, keys and headers).
fn order_tally(setup: &Setup, from_now: bool) -> Tally {
    let brokers = e2e::Stack::from_env().kafka_brokers;
    let topic = setup.topic("order");
    tokio::task::block_in_place(|| {
        if from_now {
            Tally::from_now(&brokers, &topic)
        } else {
            Tally::from_beginning(&brokers, &topic)
        }
    })
}

/// Time from `healed` until a legacy transaction committed after it is visible to a
/// read_committed consumer: the bridge is publishing again. `tally` was opened at `healed`.
async fn recovery_since(
    mut tally: Tally,
    bridge: &Bridge,
    writer: &LegacyWriter,
    healed: Instant,
) -> Duration {
    let progress = &writer.progress;
    let marker = wait_for(
        "a legacy transaction committed after the fault was healed",
        CATCH_UP,
        || async { progress.first_committed_since(healed) },
    )
    .await
    .to_string();
    let what = format!(
        "order {marker} (committed after the fault) published; bridge log {}",
        bridge.log.display()
    );
    tokio::task::block_in_place(|| {
        tally.read_until(&what, CATCH_UP * 2, |r| r.iter().any(|p| p.key == marker));
    });
    healed.elapsed()
}

/// Stops the writer, reads everything and checks it; returns (transactions, rows, lost).
async fn finish(case: &str, setup: &Setup, writer: LegacyWriter) -> (u64, usize, u64) {
    let committed = writer.stop().await;
    let rows: usize = committed.iter().map(Vec::len).sum();
    let mut tally = order_tally(setup, false);
    let what = format!("{case}: all {rows} committed orders published");
    tokio::task::block_in_place(|| {
        tally.read_until(&what, CATCH_UP * 2, |r| orders(r) >= rows);
        tally.read_to_end(CATCH_UP);
    });
    let delivery = check_delivery(&tally.records, &committed);
    assert_delivered(case, &delivery);
    (committed.len() as u64, rows, delivery.lost())
}

/// SIGKILL of the bridge at random points (startup, streaming, between a Kafka commit and its
/// acknowledgement) `kills` times in a row while legacy writes run: nothing lost, nothing twice.
pub async fn bridge_sigkill(settings: &Settings) -> CaseReport {
    // Acknowledgements every 2 s leave most kills between a Kafka commit and the acknowledgement
    // to PostgreSQL, so restarts replay what Kafka already has and must skip it.
    let (setup, mut bridge, writer) = start("fkill", r#"status_interval = "2s""#).await;
    committed_at_least(&writer, "writes before the first kill", BEFORE_FAULT).await;
    let mut recoveries = Vec::new();
    for _ in 0..settings.kills {
        // A random point in time, not a wait for a condition: that is the fault.
        tokio::time::sleep(Duration::from_millis(random_in(0..1200))).await;
        bridge.kill9();
        let restarted = Instant::now();
        bridge = setup.start_bridge(0);
        setup.wait_streaming(&bridge).await;
        recoveries.push(restarted.elapsed());
    }
    let (txns, rows, lost) = finish("bridge_sigkill", &setup, writer).await;
    drop(bridge);
    CaseReport {
        injected: format!(
            "SIGKILL of the bridge {} times at random points, restarted at once",
            settings.kills
        ),
        injections: settings.kills,
        operations: txns,
        operation_kind: "legacy transactions".into(),
        lost,
        recovery_max_ms: max_ms(&recoveries),
        recovery_condition: "restarted bridge answers /health/ready (holds the slot, streams)"
            .into(),
        notes: format!("{rows} rows"),
        ..CaseReport::passed("bridge_sigkill")
    }
}

/// The Kafka broker stopped (SIGTERM) and started again mid-stream while legacy writes go on:
/// the bridge recovers by itself and every transaction arrives exactly once.
pub async fn kafka_restart(stack: &PrivateStack, settings: &Settings) -> CaseReport {
    restart_mid_stream(stack, settings, Service::Kafka).await
}

/// PostgreSQL stopped with `pg_ctl stop -m fast` and started again mid-stream: the writer
/// retries its failed transactions, the bridge reconnects to its slot by itself, and every
/// committed transaction arrives exactly once.
pub async fn postgres_restart(stack: &PrivateStack, settings: &Settings) -> CaseReport {
    restart_mid_stream(stack, settings, Service::Postgres).await
}

/// Stops `service` once the writer is mid-stream, keeps it down until the fault has shown
/// (Kafka: the writer committed `outage_txns` more transactions; PostgreSQL: the bridge stopped
/// streaming and the writer saw a failure), starts it again and measures the recovery.
async fn restart_mid_stream(
    stack: &PrivateStack,
    settings: &Settings,
    service: Service,
) -> CaseReport {
    let case = format!("{}_restart", service.name());
    let (setup, bridge, writer) = start(&format!("f{}", service.name()), "").await;
    let progress = &writer.progress;
    let interruptions = || progress.interruptions.load(AtomicOrdering::SeqCst);
    let mut recoveries = Vec::new();
    for round in 0..settings.rounds {
        let before = progress.committed();
        committed_at_least(&writer, "writes before the fault", before + BEFORE_FAULT).await;
        let interrupted_before = interruptions();
        inject(stack, Fault::Stop, service);
        if service == Service::Postgres {
            let ready_url = format!("http://127.0.0.1:{}/health/ready", bridge.port);
            wait_for(
                "the bridge to stop streaming and the writer to lose its connection",
                NOTICE,
                || async {
                    let streaming = reqwest::get(&ready_url)
                        .await
                        .is_ok_and(|r| r.status().is_success());
                    (!streaming && interruptions() > interrupted_before).then_some(())
                },
            )
            .await;
        } else {
            let stopped = tokio::time::Instant::now();
            let down = progress.committed();
            let what = format!("legacy writes while {} is down", service.name());
            committed_at_least(&writer, &what, down + settings.outage_txns).await;
            // The outage's length is the fault itself: the broker stays away this long
            // whatever the writes did meanwhile.
            tokio::time::sleep_until(stopped + settings.broker_down).await;
        }
        inject(stack, Fault::Start, service);
        let healed = Instant::now();
        let tally = order_tally(&setup, true);
        recoveries.push(recovery_since(tally, &bridge, &writer, healed).await);
        eprintln!("{case}: round {round} recovered in {:?}", recoveries[round]);
    }
    let restarts = bridge
        .metric(cdc_bridge::observability::SESSION_RESTARTS)
        .await
        .unwrap_or(0.0);
    let interrupted = interruptions();
    let (txns, rows, lost) = finish(&case, &setup, writer).await;
    let injected = match service {
        Service::Postgres => "PostgreSQL `pg_ctl stop -m fast` mid-stream, then started".into(),
        _ => format!(
            "{} stopped (SIGTERM) mid-stream for at least {} s and {} legacy transactions, started again",
            service.name(),
            settings.broker_down.as_secs(),
            settings.outage_txns
        ),
    };
    CaseReport {
        injected,
        injections: settings.rounds,
        operations: txns,
        operation_kind: "committed legacy transactions".into(),
        lost,
        recovery_max_ms: max_ms(&recoveries),
        recovery_condition: format!(
            "{} answering → a transaction committed after that is visible read_committed",
            service.name()
        ),
        notes: format!(
            "{rows} rows, {interrupted} writer transactions interrupted and retried, {restarts} bridge session restarts"
        ),
        ..CaseReport::passed(&case)
    }
}

/// Sum of the high watermarks of `topic`'s partitions: records produced at all, committed or not.
fn produced(brokers: &str, topic: &str) -> i64 {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("watermark consumer");
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("topic metadata");
    md.topics()
        .iter()
        .flat_map(|t| t.partitions())
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                .expect("watermarks")
                .1
        })
        .sum()
}

/// The schema registry frozen (SIGSTOP: connections open, no answers) while the first payment
/// event, whose subject the bridge has never registered, is waiting: the bridge produces nothing
/// for it, keeps running, and continues once the registry answers (SIGCONT). Injected once per
/// run: after the first payment the subject's id is cached and the registry is not asked again.
pub async fn registry_pause(stack: &PrivateStack, settings: &Settings) -> CaseReport {
    let (setup, bridge, writer) = start("freg", "").await;
    committed_at_least(&writer, "writes before the registry freezes", BEFORE_FAULT).await;
    // The order subject is registered (an order event is readable) before the freeze.
    let mut reader = setup.reader(&setup.topic("order"));
    reader
        .read_until("an order event before the freeze", CATCH_UP, |r| {
            submitted(r) > 0
        })
        .await;
    let restarts = || async {
        bridge
            .metric(cdc_bridge::observability::SESSION_RESTARTS)
            .await
            .unwrap_or(0.0)
    };
    let restarts_before = restarts().await;
    inject(stack, Fault::Pause, Service::Registry);
    // The payment topic's subject is new: its id is not cached, the bridge must ask the
    // frozen registry. Order 1000 is the writer's first, committed before the freeze.
    setup
        .db
        .connect()
        .await
        .expect("connect")
        .execute(
            "INSERT INTO pmt_txn (txn_id, ord_no, txn_typ_cd, txn_amt, curr_cd, prov_cd, prov_rslt_cd) \
             VALUES (1, 1000, 'A', 10.00, 'CHF', 'ACME', '00')",
            &[],
        )
        .await
        .expect("insert payment");
    wait_for(
        "the bridge to give up on the frozen registry and restart its session",
        NOTICE,
        || async { (restarts().await > restarts_before).then_some(()) },
    )
    .await;
    let down = writer.progress.committed();
    committed_at_least(
        &writer,
        "legacy writes while the registry is frozen",
        down + settings.outage_txns,
    )
    .await;
    let topic = setup.topic("payment");
    let brokers = e2e::Stack::from_env().kafka_brokers;
    let produced = tokio::task::block_in_place(|| produced(&brokers, &topic));
    assert_eq!(
        produced, 0,
        "nothing may reach Kafka for a subject the registry never answered"
    );
    inject(stack, Fault::Resume, Service::Registry);
    let healed = Instant::now();
    let tally = order_tally(&setup, true);
    let recovery = recovery_since(tally, &bridge, &writer, healed).await;
    let mut payments = setup.reader(&topic);
    payments
        .read_until("the payment event", CATCH_UP, |r| !r.is_empty())
        .await;
    payments.read_to_end().await;
    let ids: Vec<String> = payments
        .events()
        .iter()
        .map(|e| e.aggregate_id().to_string())
        .collect();
    assert_eq!(ids, ["1"], "the payment exactly once");
    let restarted = restarts().await - restarts_before;
    let (txns, rows, lost) = finish("registry_pause", &setup, writer).await;
    CaseReport {
        injected:
            "registry SIGSTOP while the first payment event (new subject) waits, then SIGCONT"
                .into(),
        injections: 1,
        operations: txns + 1,
        operation_kind: "legacy transactions (orders, one payment)".into(),
        lost,
        recovery_max_ms: max_ms(&[recovery]),
        recovery_condition:
            "registry resumed → a transaction committed after that is visible read_committed".into(),
        notes: format!(
            "{rows} order rows; payment topic empty while frozen; {restarted} session restarts"
        ),
        ..CaseReport::passed("registry_pause")
    }
}
