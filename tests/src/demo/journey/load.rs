//! The load generator: virtual customers walking orders through the shop while others read
//! order status, all through the gateway, every request counted and every read's side recorded.
//!
//! Reads only ask for orders the new service has already seen (the *settled* pool, filled by
//! [`settle`] asking the new service directly, outside the counted traffic): an order placed a
//! millisecond ago is not yet known downstream, and a strangler migration does not pretend
//! otherwise. Everything after that — stale intermediate states included — must answer 200.

use super::shop::{Outcome, Shop};
use rand::Rng;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How many failed requests a step keeps for its report.
pub const MAX_FAILURE_SAMPLES: usize = 20;

/// Shape of the load.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Concurrent virtual customers.
    pub concurrency: usize,
    /// Distinct sticky keys the readers use (`x-user-id`).
    pub readers: usize,
    /// Share of a customer's turns spent reading an order's status.
    pub read_share: f64,
    /// Share of orders whose card is declined.
    pub decline_share: f64,
    /// Share of authorised orders cancelled instead of captured.
    pub cancel_share: f64,
}

impl Default for LoadConfig {
    fn default() -> Self {
        LoadConfig {
            concurrency: 8,
            readers: 200,
            read_share: 0.6,
            decline_share: 0.05,
            cancel_share: 0.15,
        }
    }
}

/// Orders across the whole journey.
#[derive(Default)]
pub struct Orders {
    /// Every order placed.
    pub touched: Mutex<Vec<String>>,
    /// Placed, not yet seen by the new service.
    pub pending: Mutex<Vec<String>>,
    /// Seen by the new service: safe to read through either side.
    pub settled: Mutex<Vec<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Orders {
    fn placed(&self, id: &str) {
        lock(&self.touched).push(id.to_string());
        lock(&self.pending).push(id.to_string());
    }

    fn random_settled(&self) -> Option<String> {
        let settled = lock(&self.settled);
        (!settled.is_empty()).then(|| settled[rand::rng().random_range(0..settled.len())].clone())
    }

    /// Every order placed so far.
    pub fn all(&self) -> Vec<String> {
        lock(&self.touched).clone()
    }
}

/// One status read: who asked, for what, and which side answered.
#[derive(Debug, Clone)]
pub struct Read {
    /// The sticky key sent.
    pub user: String,
    /// The order read.
    pub order_id: String,
    /// `x-fig-side` of the answer.
    pub side: Option<String>,
}

/// What one step's traffic did.
#[derive(Default)]
pub struct Tally {
    /// Client requests sent.
    pub requests: AtomicU64,
    /// Client requests that failed (transport error or non-2xx).
    pub errors: AtomicU64,
    /// The first failures, for the report.
    pub failures: Mutex<Vec<Outcome>>,
    /// Every status read.
    pub reads: Mutex<Vec<Read>>,
    /// Sides that answered writes.
    pub write_sides: Mutex<Vec<Option<String>>>,
}

impl Tally {
    fn record(&self, outcome: &Outcome) -> bool {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if !outcome.ok() {
            self.errors.fetch_add(1, Ordering::Relaxed);
            let mut failures = lock(&self.failures);
            if failures.len() < MAX_FAILURE_SAMPLES {
                failures.push(outcome.clone());
            }
        }
        outcome.ok()
    }

    /// Reads recorded so far.
    pub fn reads(&self) -> Vec<Read> {
        lock(&self.reads).clone()
    }

    /// Failures kept for the report.
    pub fn failures(&self) -> Vec<Outcome> {
        lock(&self.failures).clone()
    }

    /// Sides that answered writes.
    pub fn write_sides(&self) -> Vec<Option<String>> {
        lock(&self.write_sides).clone()
    }
}

/// One virtual customer: registers, then takes turns until `until` (finishing the order it is on).
pub async fn customer(
    shop: Shop,
    worker: usize,
    config: LoadConfig,
    orders: std::sync::Arc<Orders>,
    tally: std::sync::Arc<Tally>,
    until: Instant,
) {
    let me = format!("buyer-{worker}");
    let registered = shop.register_customer(&me).await;
    if !tally.record(&registered) {
        return;
    }
    let Some(customer) = registered.body["customer_id"].as_str().map(str::to_string) else {
        return;
    };
    while Instant::now() < until {
        let (read, reader) = {
            let mut rng = rand::rng();
            let reader = format!("reader-{}", rng.random_range(0..config.readers.max(1)));
            (rng.random_bool(config.read_share.clamp(0.0, 1.0)), reader)
        };
        match orders.random_settled().filter(|_| read) {
            Some(order_id) => {
                let outcome = shop.order(&reader, &order_id).await;
                tally.record(&outcome);
                let read = Read {
                    user: reader,
                    order_id,
                    side: outcome.side,
                };
                lock(&tally.reads).push(read);
            }
            None => order_flow(&shop, &me, &customer, &config, &orders, &tally).await,
        }
    }
}

async fn order_flow(
    shop: &Shop,
    me: &str,
    customer: &str,
    config: &LoadConfig,
    orders: &Orders,
    tally: &Tally,
) {
    let write = |o: &Outcome| {
        lock(&tally.write_sides).push(o.side.clone());
        tally.record(o)
    };
    let (lines, declined, cancel): (&[(&str, i32, &str)], bool, bool) = {
        let mut rng = rand::rng();
        let lines: &[(&str, i32, &str)] = if rng.random_bool(0.5) {
            &[("BOOK-1", 2, "12.50"), ("PEN-7", 1, "3.10")]
        } else {
            &[("MUG-3", 1, "9.99")]
        };
        (
            lines,
            rng.random_bool(config.decline_share),
            rng.random_bool(config.cancel_share),
        )
    };
    let placed = shop.place_order(me, customer, lines).await;
    if !write(&placed) {
        return;
    }
    let Some(order) = placed.body["order_id"].as_str().map(str::to_string) else {
        return;
    };
    orders.placed(&order);
    if !write(&shop.reserve(me, &order).await) {
        return;
    }
    let token = if declined {
        "tok_insufficient_funds"
    } else {
        "tok_visa"
    };
    if !write(&shop.authorize(me, &order, token).await) {
        return;
    }
    if declined || cancel {
        write(&shop.cancel(me, &order).await);
    } else {
        write(&shop.capture(me, &order).await);
    }
}

/// Moves orders from pending to settled once the new service (at `orders_service`, asked
/// directly) knows them. Runs until `stop` is set.
pub async fn settle(
    orders: std::sync::Arc<Orders>,
    orders_service: String,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap_or_default();
    while !*stop.borrow() {
        let pending: Vec<String> = lock(&orders.pending).clone();
        for id in pending {
            let url = format!("{}/orders/{id}", orders_service.trim_end_matches('/'));
            let known = http.get(url).send().await.is_ok_and(|r| r.status() == 200);
            if known {
                lock(&orders.pending).retain(|p| p != &id);
                lock(&orders.settled).push(id);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
