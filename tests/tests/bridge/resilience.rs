//! Crashes, standby takeover and idle slots: nothing lost, nothing twice, no WAL pile-up.

use std::collections::HashMap;
use std::time::Duration;

use e2e::wait_for;

use super::fixture::{Bridge, CATCH_UP, Setup, random_in};
use super::flows::{insert_customer, insert_orders, order_ids};

/// `kill -9` of the bridge at random points of a long run of legacy transactions (some of them
/// large) loses nothing and duplicates nothing for a `read_committed` consumer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_points_publishes_every_transaction_exactly_once() {
    // Acknowledging only every 2 s leaves most kills between a Kafka commit and the
    // acknowledgement to PostgreSQL, so restarts replay what Kafka has and must skip it.
    let setup = Setup::new("brkill", r#"status_interval = "2s""#, "").await;
    insert_customer(&setup.legacy, "C1").await;
    let mut bridge = setup.start_bridge(0);
    setup.wait_streaming(&bridge).await;

    // The writer: 300 legacy transactions, every 40th one large, paced over a few seconds.
    let writer_db = setup.db.connect().await.expect("writer connection");
    let writer = tokio::spawn(async move {
        let mut expected = Vec::new();
        let mut next_id: i64 = 1_000;
        let mut pace = tokio::time::interval(Duration::from_millis(15));
        for txn in 0..300 {
            pace.tick().await;
            let rows = if txn % 40 == 0 { 400 } else { 1 + (txn % 3) };
            let ids: Vec<i64> = (next_id..next_id + rows).collect();
            next_id += rows;
            insert_orders(&writer_db, "C1", &ids).await;
            expected.extend(ids);
        }
        expected
    });

    // Kill at three random points while the writer runs, restarting each time.
    for _ in 0..3 {
        // A random point in time, not a wait for a condition.
        tokio::time::sleep(Duration::from_millis(random_in(300..1500))).await;
        bridge.kill9();
        bridge = setup.start_bridge(0);
    }
    let expected = writer.await.expect("writer");
    setup.wait_streaming(&bridge).await;

    let mut reader = setup.reader(&setup.topic("order"));
    let want = expected.len();
    reader
        .read_until("every committed order exactly once", CATCH_UP, |r| {
            order_ids(r, "OrderSubmitted").len() >= want
        })
        .await;
    reader.read_to_end().await;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for id in order_ids(&reader.received, "OrderSubmitted") {
        *seen.entry(id).or_default() += 1;
    }
    let duplicates: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        duplicates.is_empty(),
        "published more than once: {duplicates:?}"
    );
    let missing: Vec<_> = expected
        .iter()
        .filter(|id| !seen.contains_key(&id.to_string()))
        .collect();
    assert!(missing.is_empty(), "never published: {missing:?}");
    drop(bridge);
}

/// A second instance waits as standby while the first streams, and takes over when the first
/// is killed, with nothing lost and nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_takes_over_when_the_active_instance_dies() {
    let setup = Setup::new("brstandby", "", "").await;
    insert_customer(&setup.legacy, "C1").await;
    let mut active = setup.start_bridge(0);
    setup.wait_streaming(&active).await;
    let standby: Bridge = setup.start_bridge(1);
    wait_for("standby answers /health/live", CATCH_UP, || async {
        reqwest::get(format!("http://127.0.0.1:{}/health/live", standby.port))
            .await
            .ok()
            .map(drop)
    })
    .await;
    let ready = reqwest::get(format!("http://127.0.0.1:{}/health/ready", standby.port))
        .await
        .expect("standby ready probe");
    assert_eq!(
        ready.status().as_u16(),
        503,
        "the standby must not claim to stream"
    );

    insert_orders(&setup.legacy, "C1", &[1, 2, 3]).await;
    let mut reader = setup.reader(&setup.topic("order"));
    reader
        .read_until("orders before takeover", CATCH_UP, |r| {
            order_ids(r, "OrderSubmitted").len() >= 3
        })
        .await;

    let before = setup.slot_holder().await;
    active.kill9();
    insert_orders(&setup.legacy, "C1", &[4, 5, 6]).await;
    setup.wait_streaming(&standby).await;
    wait_for("the standby holds the slot", CATCH_UP, || async {
        setup.slot_holder().await.filter(|pid| Some(*pid) != before)
    })
    .await;
    insert_orders(&setup.legacy, "C1", &[7]).await;
    reader
        .read_until("orders after takeover", CATCH_UP, |r| {
            order_ids(r, "OrderSubmitted").len() >= 7
        })
        .await;
    reader.read_to_end().await;
    let mut ids = order_ids(&reader.received, "OrderSubmitted");
    ids.sort();
    assert_eq!(
        ids,
        ["1", "2", "3", "4", "5", "6", "7"],
        "each order exactly once across the takeover"
    );
}

/// While nothing the publication covers changes, the slot's confirmed position follows the
/// server's WAL (heartbeats and idle acknowledgement), so unrelated writes do not pile up WAL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_slot_keeps_up_with_unrelated_wal() {
    let setup = Setup::new("bridle", r#"heartbeat_interval = "200ms""#, "").await;
    setup
        .legacy
        .batch_execute("CREATE TABLE noise (id serial PRIMARY KEY, filler text)")
        .await
        .expect("noise table");
    let bridge = setup.start_bridge(0);
    setup.wait_streaming(&bridge).await;
    for round in 0..3 {
        // About 8 MB of WAL the publication does not cover.
        setup
            .legacy
            .batch_execute("INSERT INTO noise (filler) SELECT repeat(md5(g::text), 64) FROM generate_series(1, 4000) g")
            .await
            .expect("noise");
        let lag = wait_for(
            &format!("slot lag back under 1 MiB after round {round}"),
            CATCH_UP,
            || async { setup.slot_lag().await.filter(|lag| *lag < 1 << 20) },
        )
        .await;
        assert!(lag >= 0);
    }
    let metric = wait_for("slot lag metric", CATCH_UP, || {
        bridge.metric("fig_bridge_slot_lag_bytes")
    })
    .await;
    assert!(
        metric < 8.0 * 1024.0 * 1024.0,
        "the slot lag metric follows the slot: {metric}"
    );
}
