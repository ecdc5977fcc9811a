//! Failure isolation at the gateway's edge, end to end: a real gateway on 127.0.0.1:0 in front of
//! real upstreams that can be killed, held (slow) or made to fail. Killing the new upstream under
//! load costs idempotent requests nothing (fallback to legacy) and fails writes fast; a slow new
//! upstream trips its timeout and then its breaker, which half-opens and recovers; a full
//! bulkhead sheds with 503 while another capability is unaffected. Shadow traffic and its
//! comparison are in [`shadow`]; requests with a body (kept for fallback, or not) in [`bodies`];
//! response-body timeouts and same-side retries in [`retries`].

// The gateway tests' harness, compiled here too: this module uses part of it.
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "gateway/support.rs"]
mod support;

mod bodies;
mod retries;
mod shadow;

use axum::Router;
use axum::response::IntoResponse;
use e2e::wait_for;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::{Backend, Gateway, TempDir};
use tokio::sync::{oneshot, watch};

/// Answers with its name.
const OK: u8 = 0;
/// Holds every request until the mode changes.
const HOLD: u8 = 1;

/// An upstream on its own runtime and thread, so that killing it closes every connection at
/// once (listener and kept-alive ones), like a crashed process.
struct Upstream {
    url: String,
    mode: watch::Sender<u8>,
    in_flight: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Upstream {
    fn start(name: &'static str) -> Upstream {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind upstream");
        listener.set_nonblocking(true).expect("nonblocking");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (mode, mode_rx) = watch::channel(OK);
        let in_flight = Arc::new(AtomicUsize::new(0));
        let (stop, stopped) = oneshot::channel::<()>();
        let counter = in_flight.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("upstream runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let app = Router::new().fallback(move || {
                    let (mut rx, counter) = (mode_rx.clone(), counter.clone());
                    async move {
                        counter.fetch_add(1, Ordering::SeqCst);
                        let _ = rx.wait_for(|m| *m != HOLD).await;
                        counter.fetch_sub(1, Ordering::SeqCst);
                        name.into_response()
                    }
                });
                tokio::select! {
                    _ = axum::serve(listener, app) => {}
                    _ = stopped => {}
                }
            });
            // Dropping the runtime here drops every connection task: the sockets close.
        });
        Upstream {
            url,
            mode,
            in_flight,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn set(&self, mode: u8) {
        self.mode.send_replace(mode);
    }

    fn kill(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().expect("upstream thread");
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.set(OK);
        self.kill();
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

fn capability(name: &str, new: &str, extra: &str) -> String {
    format!(
        "[[capability]]\nname = \"{name}\"\nnew = \"{new}\"\nstate = \"new\"\nroutes = [{{ prefix = \"/{name}\" }}]\n{extra}\n"
    )
}

fn store(dir: &TempDir) -> String {
    format!(
        "[store]\nkind = \"file\"\npath = \"{}\"\n",
        dir.0.join("toggles.json").display()
    )
}

/// Sum of the samples of `metric` whose labels contain every one of `labels`.
async fn metric(http: &reqwest::Client, gw: &Gateway, metric: &str, labels: &[&str]) -> f64 {
    let text = http
        .get(format!("{}/metrics", gw.admin))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .filter(|l| l.starts_with(metric) && labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Killing the new upstream under load: every GET still gets 200 (legacy answers by fallback,
/// counted in a metric), and POSTs, which may not be resent, fail fast with 502/503.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_new_upstream_costs_reads_nothing_and_fails_writes_fast() {
    let legacy = Backend::start("legacy").await;
    let mut new = Upstream::start("new");
    let dir = TempDir::new();
    // The SLO guard would roll the capability back to legacy; this test is about fallback.
    let extra = "[capability.resilience.slo_guard]\nenabled = false\n";
    let config = format!("{}{}", store(&dir), capability("orders", &new.url, extra));
    let gw = Gateway::start(&dir, &legacy.url, &config).await;
    let http = http();
    let stop = Arc::new(AtomicBool::new(false));
    let served_new = Arc::new(AtomicUsize::new(0));
    let mut loaders = Vec::new();
    for _ in 0..4 {
        let (http, url, stop, served_new) = (
            http.clone(),
            gw.public.clone(),
            stop.clone(),
            served_new.clone(),
        );
        loaders.push(tokio::spawn(async move {
            let mut after_kill = 0usize;
            while !stop.load(Ordering::SeqCst) {
                let resp = http
                    .get(format!("{url}/orders/7"))
                    .send()
                    .await
                    .expect("a read must never fail");
                assert_eq!(resp.status(), 200, "a read failed while new died");
                let body = resp.text().await.expect("body");
                if body == "new" {
                    served_new.fetch_add(1, Ordering::SeqCst);
                } else {
                    assert_eq!(body, "legacy");
                    after_kill += 1;
                }
            }
            after_kill
        }));
    }
    wait_for("new to serve some load", Duration::from_secs(10), || {
        let n = served_new.load(Ordering::SeqCst);
        async move { (n >= 50).then_some(()) }
    })
    .await;
    new.kill();
    let fell_back = wait_for("reads to fall back", Duration::from_secs(10), || {
        let (http, gw) = (&http, &gw);
        async move {
            let n = metric(
                http,
                gw,
                gateway::observability::FALLBACKS,
                &["capability=\"orders\""],
            )
            .await;
            (n >= 200.0).then_some(n)
        }
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    let mut legacy_answers = 0;
    for l in loaders {
        legacy_answers += l.await.expect("loader");
    }
    assert!(
        legacy_answers >= 200,
        "legacy answered {legacy_answers}, fallbacks {fell_back}"
    );
    for i in 0..20 {
        let started = Instant::now();
        let resp = http
            .post(format!("{}/orders", gw.public))
            .send()
            .await
            .expect("write answered");
        let took = started.elapsed();
        assert!(
            [502, 503].contains(&resp.status().as_u16()),
            "write {i}: {}",
            resp.status()
        );
        assert!(took < Duration::from_secs(1), "write {i} took {took:?}");
    }
    gw.shutdown().await;
}

/// A new upstream that stops answering: each call times out (504 after the first-byte timeout),
/// consecutive timeouts open the breaker (503 with Retry-After, at once, state "open" in the
/// admin view and the metric), and once the upstream answers again a half-open probe closes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_new_upstream_trips_timeout_then_breaker_which_recovers() {
    let legacy = Backend::start("legacy").await;
    let new = Upstream::start("new");
    let dir = TempDir::new();
    let extra = "[capability.resilience.fallback]\nenabled = false\n\
        [capability.resilience.new.timeouts]\nconnect = \"100ms\"\nfirst_byte = \"200ms\"\n\
        [capability.resilience.new.retry]\nmax_retries = 0\n\
        [capability.resilience.new.breaker]\nconsecutive_failures = 3\ncool_down = \"300ms\"\n";
    let config = format!("{}{}", store(&dir), capability("orders", &new.url, extra));
    let gw = Gateway::start(&dir, &legacy.url, &config).await;
    let http = http();
    new.set(HOLD);
    for i in 0..3 {
        let started = Instant::now();
        let resp = http
            .get(format!("{}/orders/1", gw.public))
            .send()
            .await
            .expect("answered");
        assert_eq!(resp.status(), 504, "call {i} must time out");
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_secs(2),
            "timeout after {took:?}"
        );
    }
    let started = Instant::now();
    let resp = http
        .get(format!("{}/orders/1", gw.public))
        .send()
        .await
        .expect("answered");
    assert_eq!(resp.status(), 503, "the breaker must be open");
    assert!(resp.headers().contains_key("retry-after"));
    assert!(
        started.elapsed() < Duration::from_millis(150),
        "open breaker answers at once"
    );
    let view = gw.view(&http, "/api/v1/capabilities/orders").await;
    assert_eq!(view["breakers"]["new"]["state"], "open", "{view}");
    let gauge = metric(
        &http,
        &gw,
        gateway::observability::BREAKER_STATE,
        &["capability=\"orders\"", "side=\"new\""],
    )
    .await;
    assert_eq!(gauge, 2.0, "breaker gauge shows open");

    new.set(OK);
    wait_for("the breaker to recover", Duration::from_secs(10), || {
        let (http, gw) = (&http, &gw);
        async move {
            let resp = http
                .get(format!("{}/orders/1", gw.public))
                .send()
                .await
                .ok()?;
            (resp.status() == 200 && resp.text().await.ok()? == "new").then_some(())
        }
    })
    .await;
    let view = gw.view(&http, "/api/v1/capabilities/orders").await;
    assert_eq!(view["breakers"]["new"]["state"], "closed", "{view}");
    gw.shutdown().await;
}

/// A capability whose new side is full sheds further requests with 503 and Retry-After at once,
/// while another capability keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn full_bulkhead_sheds_while_other_capability_is_unaffected() {
    let legacy = Backend::start("legacy").await;
    let slow = Upstream::start("orders-new");
    let users = Backend::start("users-new").await;
    let dir = TempDir::new();
    let extra = "[capability.resilience.fallback]\nenabled = false\n\
        [capability.resilience.new.bulkhead]\nmax_concurrent = 2\nmax_queue = 0\n";
    let config = format!(
        "{}{}{}",
        store(&dir),
        capability("orders", &slow.url, extra),
        capability("users", &users.url, "")
    );
    let gw = Gateway::start(&dir, &legacy.url, &config).await;
    let http = http();
    slow.set(HOLD);
    let held: Vec<_> = (0..2)
        .map(|_| {
            let (http, url) = (http.clone(), gw.public.clone());
            tokio::spawn(async move { http.get(format!("{url}/orders/1")).send().await })
        })
        .collect();
    wait_for("both slots to be taken", Duration::from_secs(10), || {
        let n = slow.in_flight.load(Ordering::SeqCst);
        async move { (n == 2).then_some(()) }
    })
    .await;
    for _ in 0..5 {
        let started = Instant::now();
        let resp = http
            .get(format!("{}/orders/2", gw.public))
            .send()
            .await
            .expect("answered");
        assert_eq!(resp.status(), 503, "a full bulkhead sheds");
        assert!(resp.headers().contains_key("retry-after"));
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "shed at once"
        );
        let resp = http
            .get(format!("{}/users/1", gw.public))
            .send()
            .await
            .expect("answered");
        assert_eq!(resp.status(), 200, "the other capability is unaffected");
        assert_eq!(resp.text().await.expect("body"), "users-new");
    }
    let shed = metric(
        &http,
        &gw,
        gateway::observability::SHED,
        &["capability=\"orders\"", "side=\"new\""],
    )
    .await;
    assert_eq!(shed, 5.0, "shed requests are counted");
    slow.set(OK);
    for h in held {
        let resp = h.await.expect("task").expect("held request answered");
        assert_eq!(resp.status(), 200);
    }
    gw.shutdown().await;
}

/// A new upstream answering 500 to everything: reads keep working through fallback, and the SLO
/// guard rolls the capability back to legacy, audited as a system action with its figures and
/// counted in a metric.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failing_new_upstream_is_rolled_back_automatically_and_audited() {
    let legacy = Backend::start("legacy").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let new_url = format!("http://{}", listener.local_addr().expect("addr"));
    let app = Router::new().fallback(|| async { axum::http::StatusCode::INTERNAL_SERVER_ERROR });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let dir = TempDir::new();
    let extra = "[capability.resilience.slo_guard]\nmin_samples = 20\n";
    let config = format!("{}{}", store(&dir), capability("orders", &new_url, extra));
    let gw = Gateway::start(&dir, &legacy.url, &config).await;
    let http = http();
    wait_for("the automatic rollback", Duration::from_secs(10), || {
        let (http, gw) = (&http, &gw);
        async move {
            let resp = http
                .get(format!("{}/orders/1", gw.public))
                .send()
                .await
                .expect("answered");
            assert_eq!(resp.status(), 200, "reads are served by fallback meanwhile");
            let view = gw.view(http, "/api/v1/capabilities/orders").await;
            (view["state"] == "legacy").then_some(())
        }
    })
    .await;
    let history = gw.view(&http, "/api/v1/history").await.to_string();
    assert!(
        history.contains(gateway::app::SLO_GUARD_ACTOR),
        "the rollback is audited as a system action: {history}"
    );
    assert!(
        history.contains("error rate") && history.contains("samples"),
        "the audit carries the figures: {history}"
    );
    let rollbacks = metric(
        &http,
        &gw,
        gateway::observability::AUTO_ROLLBACKS,
        &["capability=\"orders\""],
    )
    .await;
    assert_eq!(rollbacks, 1.0, "the rollback is counted");
    gw.shutdown().await;
}
