//! The legacy writer of the bridge cases: a task committing order transactions into the legacy
//! database while faults are injected, and the exactly-once, atomic check of what Kafka holds.
//!
//! The writer counts only what PostgreSQL committed. When a transaction fails (PostgreSQL
//! restarting) it reconnects, asks the database whether the transaction's rows exist (the commit
//! may have happened before the connection dropped) and retries it with the same order ids if
//! not, so `committed` is exactly the set of transactions the bridge owes to Kafka.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_postgres::Client;

use crate::tally::Published;

/// How long the writer waits for PostgreSQL to come back before giving up.
const RECONNECT_DEADLINE: Duration = Duration::from_secs(120);
/// Pause between legacy transactions.
const PACE: Duration = Duration::from_millis(15);

/// What the writer shares with the case while it runs.
#[derive(Default)]
pub struct WriterProgress {
    /// Committed transactions, each with its order ids and when it committed.
    committed: Mutex<Vec<(Vec<i64>, Instant)>>,
    /// Transactions interrupted by a lost connection (found closed before the attempt, or
    /// failing during it) and retried on a new one.
    pub interruptions: AtomicU64,
    stop: AtomicBool,
}

impl WriterProgress {
    /// How many transactions have committed.
    pub fn committed(&self) -> usize {
        self.lock().len()
    }

    /// The first order id of the first transaction committed at or after `since`.
    pub fn first_committed_since(&self, since: Instant) -> Option<i64> {
        self.lock()
            .iter()
            .find(|(_, at)| *at >= since)
            .and_then(|(ids, _)| ids.first().copied())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Vec<i64>, Instant)>> {
        self.committed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A running writer.
pub struct LegacyWriter {
    /// Shared progress.
    pub progress: Arc<WriterProgress>,
    task: tokio::task::JoinHandle<()>,
}

impl LegacyWriter {
    /// Starts committing orders of customer `C1` (which must exist) into the database at
    /// `conn`, one to three rows per transaction and every 40th transaction with 100 rows.
    pub fn start(conn: String) -> LegacyWriter {
        let progress = Arc::new(WriterProgress::default());
        let shared = Arc::clone(&progress);
        let task = tokio::spawn(async move {
            let mut client: Option<Client> = None;
            let mut next_id: i64 = 1_000;
            let mut pace = tokio::time::interval(PACE);
            let mut txn: i64 = 0;
            while !shared.stop.load(Ordering::SeqCst) {
                pace.tick().await;
                let rows = if txn % 40 == 0 { 100 } else { 1 + txn % 3 };
                let ids: Vec<i64> = (next_id..next_id + rows).collect();
                next_id += rows;
                txn += 1;
                commit_with_retry(&conn, &mut client, &ids, &shared).await;
                shared.lock().push((ids, Instant::now()));
            }
        });
        LegacyWriter { progress, task }
    }

    /// Stops after the transaction in progress and returns every committed transaction.
    pub async fn stop(self) -> Vec<Vec<i64>> {
        self.progress.stop.store(true, Ordering::SeqCst);
        self.task.await.expect("the legacy writer panicked");
        self.progress
            .lock()
            .iter()
            .map(|(ids, _)| ids.clone())
            .collect()
    }
}

/// Commits `ids` as one transaction, whatever it takes (the outcome of a commit whose
/// connection dropped is read back from the database).
async fn commit_with_retry(
    conn: &str,
    client: &mut Option<Client>,
    ids: &[i64],
    progress: &WriterProgress,
) {
    loop {
        // The server may have closed the connection between two transactions (a fast shutdown
        // terminates idle sessions too): that is an interruption as well.
        if client.as_ref().is_some_and(Client::is_closed) {
            progress.interruptions.fetch_add(1, Ordering::SeqCst);
            *client = None;
        }
        if client.is_none() {
            *client = Some(
                e2e::wait_for(
                    "the legacy database to accept connections again",
                    RECONNECT_DEADLINE,
                    || async { crate::connect_quietly(conn).await },
                )
                .await,
            );
        }
        let db = client.as_ref().expect("connected above");
        match insert_orders(db, ids).await {
            Ok(()) => return,
            Err(_) => {
                progress.interruptions.fetch_add(1, Ordering::SeqCst);
                *client = None;
            }
        }
        let db = e2e::wait_for(
            "the legacy database to come back after a failed transaction",
            RECONNECT_DEADLINE,
            || async { crate::connect_quietly(conn).await },
        )
        .await;
        let present: i64 = db
            .query_one(
                "SELECT count(*) FROM ord_hdr WHERE ord_no = ANY($1)",
                &[&ids],
            )
            .await
            .expect("count the transaction's rows")
            .get(0);
        *client = Some(db);
        match usize::try_from(present) {
            Ok(n) if n == ids.len() => return,
            Ok(0) => {}
            _ => panic!(
                "PostgreSQL kept {present} of the {} rows of one transaction",
                ids.len()
            ),
        }
    }
}

async fn insert_orders(db: &Client, ids: &[i64]) -> Result<(), tokio_postgres::Error> {
    db.execute(
        "INSERT INTO ord_hdr (ord_no, cust_no, cust_nm, cust_email, ship_addr_ln1, ship_city_nm, ship_post_cd, ship_ctry_cd, ord_tot_amt, curr_cd) \
         SELECT id, 'C1', 'Ada Lovelace', 'ada@example.com', 'Main St 1', 'Bern', '3000', 'CH', 99.50, 'CHF' FROM unnest($1::bigint[]) AS id",
        &[&ids],
    )
    .await
    .map(drop)
}

/// What Kafka holds compared with what PostgreSQL committed.
#[derive(Debug, Default)]
pub struct Delivery {
    /// Committed order ids never published.
    pub missing: Vec<i64>,
    /// Order ids published more than once.
    pub duplicated: Vec<i64>,
    /// Published order ids that no committed transaction wrote.
    pub unexpected: Vec<String>,
    /// Legacy transactions whose events do not form exactly one source transaction.
    pub torn: Vec<usize>,
}

impl Delivery {
    /// Every problem counted once.
    pub fn lost(&self) -> u64 {
        (self.missing.len() + self.duplicated.len() + self.unexpected.len() + self.torn.len())
            as u64
    }
}

/// Compares the `OrderSubmitted` events read (read_committed) with the committed transactions:
/// each order exactly once, and each legacy transaction's orders published together under one
/// source transaction id (no legacy transaction split across source transactions or merged
/// with parts of another).
pub fn check_delivery(published: &[Published], committed: &[Vec<i64>]) -> Delivery {
    let mut xid_of: HashMap<String, (u64, usize)> = HashMap::new();
    let mut per_xid: HashMap<u64, usize> = HashMap::new();
    for e in published
        .iter()
        .filter(|p| p.event_type == "OrderSubmitted")
    {
        let entry = xid_of.entry(e.key.clone()).or_insert((e.xid, 0));
        entry.1 += 1;
        *per_xid.entry(e.xid).or_default() += 1;
    }
    let mut d = Delivery::default();
    let mut expected = std::collections::HashSet::new();
    for (i, ids) in committed.iter().enumerate() {
        let mut xids = std::collections::HashSet::new();
        for id in ids {
            expected.insert(id.to_string());
            match xid_of.get(&id.to_string()) {
                None => d.missing.push(*id),
                Some((xid, n)) => {
                    if *n > 1 {
                        d.duplicated.push(*id);
                    }
                    xids.insert(*xid);
                }
            }
        }
        let whole = xids.len() == 1
            && xids
                .iter()
                .all(|x| per_xid.get(x).copied() == Some(ids.len()));
        if !xids.is_empty() && !whole {
            d.torn.push(i);
        }
    }
    d.unexpected = xid_of
        .keys()
        .filter(|k| !expected.contains(*k))
        .cloned()
        .collect();
    d
}

/// Panics with a readable summary unless everything arrived exactly once and whole.
pub fn assert_delivered(case: &str, d: &Delivery) {
    assert!(
        d.lost() == 0,
        "{case}: {} missing (first {:?}), {} duplicated (first {:?}), {} unexpected, {} legacy transactions torn",
        d.missing.len(),
        d.missing.iter().take(10).collect::<Vec<_>>(),
        d.duplicated.len(),
        d.duplicated.iter().take(10).collect::<Vec<_>>(),
        d.unexpected.len(),
        d.torn.len()
    );
}
