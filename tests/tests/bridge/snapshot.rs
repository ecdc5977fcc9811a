//! Snapshots against the real stack: the initial snapshot (consistent with the slot) and the
//! on-demand `cdc-bridge snapshot --table`, and what each guarantees for rows written meanwhile.
//!
//! - **Initial** (`[snapshot] initial = true`): the slot is created with an exported snapshot;
//!   rows committed before that point are read by the snapshot, later ones are streamed. Every
//!   row appears exactly once, whichever side of the point it committed on.
//! - **On demand**: reads one table at the moment it starts, in a Kafka transaction of its own,
//!   beside a streaming bridge that it never touches. Every row that existed when it started
//!   gets one more event marked `snapshot`; the stream still carries every row exactly once, so
//!   a row written while it runs has one stream event and at most one snapshot event.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use contracts::Origin;

use super::fixture::{CATCH_UP, Received, Setup};
use super::flows::{insert_customer, insert_orders};

/// Snapshot chunks small enough that the seeded rows take several.
const SNAPSHOT_SETTINGS: &str = "\n[snapshot]\ninitial = true\nchunk_rows = 40\n";

/// The origins of the `OrderSubmitted` events of each order id read so far (checking that each
/// event's `origin` header agrees with its envelope).
fn submitted_by_order(received: &[Received]) -> HashMap<i64, Vec<Origin>> {
    let mut out: HashMap<i64, Vec<Origin>> = HashMap::new();
    for r in received {
        let Some(e) = r
            .event
            .as_ref()
            .filter(|e| e.event_type() == "OrderSubmitted")
        else {
            continue;
        };
        let id: i64 = e.aggregate_id().parse().expect("numeric order id");
        let header = r.headers.get("origin").map_or("", String::as_str);
        let expected = cdc_bridge::sink::record::origin_name(e.envelope.origin);
        assert_eq!(header, expected, "origin header of order {id}");
        out.entry(id).or_default().push(e.envelope.origin);
    }
    out
}

/// Inserts orders `first..` one per legacy transaction until `stop` is set; returns the ids.
async fn write_orders_until(setup: &Setup, first: i64, stop: Arc<AtomicBool>) -> Vec<i64> {
    let db = setup.db.connect().await.expect("writer connection");
    let mut ids = Vec::new();
    let mut id = first;
    while !stop.load(Ordering::Relaxed) {
        insert_orders(&db, "C1", &[id]).await;
        ids.push(id);
        id += 1;
    }
    ids
}

/// Rows present before the bridge starts arrive once each, marked `snapshot`, in several chunks;
/// rows written while it creates its slot and snapshots arrive once each too (from the snapshot
/// or the stream, never both, never neither); and the progress record carries the order table's
/// newest committed change for `cdc-bridge status`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_snapshot_publishes_existing_rows_once_and_streams_the_rest_once() {
    let setup = Setup::new("brsnap", "", SNAPSHOT_SETTINGS).await;
    insert_customer(&setup.legacy, "C1").await;
    let seeded: Vec<i64> = (1..=150).collect();
    insert_orders(&setup.legacy, "C1", &seeded).await;

    let stop = Arc::new(AtomicBool::new(false));
    let bridge = setup.start_bridge(0);
    let (written, ()) = tokio::join!(
        write_orders_until(&setup, 10_000, Arc::clone(&stop)),
        async {
            setup.wait_streaming(&bridge).await;
            // One order once streaming, so the stream side certainly has one.
            let db = setup.db.connect().await.expect("connect");
            insert_orders(&db, "C1", &[9_000]).await;
            stop.store(true, Ordering::Relaxed);
        }
    );
    let expected: Vec<i64> = seeded
        .iter()
        .copied()
        .chain(written.iter().copied())
        .chain([9_000])
        .collect();

    let mut reader = setup.reader(&setup.topic("order"));
    reader
        .read_until("an OrderSubmitted event for every order", CATCH_UP, |r| {
            let by = submitted_by_order(r);
            expected.iter().all(|id| by.contains_key(id))
        })
        .await;
    reader.read_to_end().await;
    let by = submitted_by_order(&reader.received);

    for id in &seeded {
        assert_eq!(by[id], vec![Origin::Snapshot], "seeded order {id}");
    }
    for id in written.iter().chain([&9_000]) {
        assert_eq!(
            by[id].len(),
            1,
            "order {id} written during start-up: {:?}",
            by[id]
        );
    }
    assert_eq!(
        by.len(),
        expected.len(),
        "no order appears that was not written"
    );
    assert_eq!(by[&9_000], vec![Origin::Stream], "written while streaming");

    // Per-table progress: the order table's mark is the newest order event's commit.
    let newest = reader
        .events()
        .iter()
        .filter(|e| e.event_type() == "OrderSubmitted")
        .map(|e| e.envelope.source.commit_lsn)
        .max()
        .expect("order events");
    let progress = read_progress(&setup)
        .await
        .expect("a committed progress record");
    let mark = progress
        .tables
        .iter()
        .find(|t| t.table == "public.ord_hdr")
        .unwrap_or_else(|| panic!("no ord_hdr mark in {:?}", progress.tables));
    assert_eq!(mark.commit_lsn, newest);
    assert!(progress.checkpoint.commit_lsn >= newest);
}

/// `cdc-bridge snapshot --table ord_hdr` beside a streaming bridge adds exactly one event marked
/// `snapshot` per existing order, while the stream keeps carrying every order exactly once —
/// including orders written while the snapshot runs (which it may or may not also include).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_demand_snapshot_adds_one_marked_event_per_row_and_leaves_the_stream_alone() {
    let setup = Setup::new("brresnap", "", "").await;
    let bridge = setup.start_bridge(0);
    setup.wait_streaming(&bridge).await;
    insert_customer(&setup.legacy, "C1").await;
    let seeded: Vec<i64> = (1..=120).collect();
    insert_orders(&setup.legacy, "C1", &seeded).await;

    let stop = Arc::new(AtomicBool::new(false));
    let config = setup.config_path.clone();
    let (written, snapshot) = tokio::join!(
        write_orders_until(&setup, 10_000, Arc::clone(&stop)),
        async {
            let args: Vec<std::ffi::OsString> = vec![
                "cdc-bridge".into(),
                "--config".into(),
                config.into_os_string(),
                "snapshot".into(),
                "--table".into(),
                "ord_hdr".into(),
            ];
            // The command builds its own runtime, so it runs on a thread of its own.
            let outcome = tokio::task::spawn_blocking(move || {
                std::thread::spawn(move || {
                    cdc_bridge::cli::main_with_args(args)
                        .map_err(|e| cdc_bridge::session::error_chain(&e))
                })
                .join()
                .expect("snapshot thread")
            })
            .await
            .expect("join");
            stop.store(true, Ordering::Relaxed);
            outcome
        }
    );
    snapshot.expect("cdc-bridge snapshot --table ord_hdr");
    assert!(!written.is_empty(), "the writer ran during the snapshot");

    let mut reader = setup.reader(&setup.topic("order"));
    reader
        .read_until("stream and snapshot events of every order", CATCH_UP, |r| {
            let by = submitted_by_order(r);
            seeded
                .iter()
                .all(|id| by.get(id).is_some_and(|o| o.len() == 2))
                && written.iter().all(|id| by.contains_key(id))
        })
        .await;
    reader.read_to_end().await;
    let by = submitted_by_order(&reader.received);
    let count = |id: &i64, origin: Origin| by[id].iter().filter(|o| **o == origin).count();

    for id in &seeded {
        assert_eq!(count(id, Origin::Stream), 1, "order {id} streamed once");
        assert_eq!(
            count(id, Origin::Snapshot),
            1,
            "order {id} snapshotted once"
        );
    }
    for id in &written {
        assert_eq!(
            count(id, Origin::Stream),
            1,
            "order {id} written during the snapshot"
        );
        assert!(count(id, Origin::Snapshot) <= 1, "order {id}: {:?}", by[id]);
    }
    assert_eq!(by.len(), seeded.len() + written.len());
}

async fn read_progress(setup: &Setup) -> Option<cdc_bridge::checkpoint::Progress> {
    let config = cdc_bridge::config::Config::load(&setup.config_path).expect("bridge config");
    let client =
        cdc_bridge::sink::producer::client_config(&config.kafka.brokers, &config.kafka.properties);
    tokio::task::spawn_blocking(move || {
        cdc_bridge::checkpoint::read_progress(
            &client,
            &config.kafka.progress_topic,
            &config.postgres.slot,
        )
    })
    .await
    .expect("join")
    .expect("read the progress topic")
}
