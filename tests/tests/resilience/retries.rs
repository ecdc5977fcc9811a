//! Timeouts once the response has started, and same-side retries: an upstream that sends its
//! head and then stalls is cut after the idle timeout (counted); a GET whose first attempt gets
//! a 5xx or a reset is retried and succeeds; under a burst of failures the retry budget keeps
//! the extra load within its ratio.

use axum::Router;
use axum::http::StatusCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use super::bodies::{Echo, read_request};
use super::support::{Gateway, TempDir};
use super::{capability, http, metric, store};

/// Keeps the fallback, the breaker and the SLO guard out of the way: these tests are about what
/// happens on the new side alone.
const NEW_SIDE_ONLY: &str = "[capability.resilience.fallback]\nenabled = false\n\
    [capability.resilience.slo_guard]\nenabled = false\n\
    [capability.resilience.new.breaker]\nconsecutive_failures = 1000\nmin_samples = 100000\n";

/// An upstream on a raw socket: for the `n`-th connection (0-based), `script(n)` says what to
/// write after reading the request (`None`: close without answering). Counts connections.
async fn scripted(
    script: fn(usize) -> Option<&'static [u8]>,
    hold: bool,
) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                if read_request(&mut socket).await.is_none() {
                    return;
                }
                if let Some(answer) = script(n) {
                    let _ = socket.write_all(answer).await;
                    if hold {
                        // Keep the socket open and silent: the body stalls.
                        std::future::pending::<()>().await;
                    }
                }
                let _ = socket.shutdown().await;
            });
        }
    });
    (url, count)
}

/// An upstream that sends the response head and a first chunk, then never another byte: the
/// client gets the head, then its body is cut within the idle timeout, and the cut is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_response_body_is_cut_after_the_idle_timeout() {
    let legacy = Echo::start().await;
    let (new, _) = scripted(
        |_| {
            Some(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        },
        true,
    )
    .await;
    let dir = TempDir::new();
    let extra = "[capability.resilience.new.timeouts]\nidle = \"300ms\"\n";
    let gw = gateway_on(&dir, &legacy, &new, extra).await;
    let http = http();
    let mut resp = http
        .get(format!("{}/orders/1", gw.public))
        .send()
        .await
        .expect("head arrives");
    assert_eq!(resp.status(), 200);
    let first = resp
        .chunk()
        .await
        .expect("first chunk")
        .expect("some bytes");
    assert_eq!(&first[..], b"first");
    let stalled_at = Instant::now();
    let rest = resp.chunk().await;
    let waited = stalled_at.elapsed();
    assert!(
        rest.is_err(),
        "the stalled body must end in an error, got {rest:?}"
    );
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "cut after {waited:?}, idle timeout 300ms"
    );
    let cut = metric(
        &http,
        &gw,
        gateway::observability::RESPONSE_BODY_TIMEOUTS,
        &["capability=\"orders\"", "side=\"new\""],
    )
    .await;
    assert_eq!(cut, 1.0, "the cut is counted");
    gw.shutdown().await;
}

/// An axum upstream whose `n`-th call (0-based) gets `answer(n)`; counts its calls.
async fn counting(answer: fn(usize) -> (StatusCode, &'static str)) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let app = Router::new().fallback(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        async move { answer(n) }
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, calls)
}

/// A gateway whose capability `orders` is on `new`, with [`NEW_SIDE_ONLY`] and `extra`.
async fn gateway_on(dir: &TempDir, legacy: &Echo, new: &str, extra: &str) -> Gateway {
    let extra = format!("{NEW_SIDE_ONLY}{extra}");
    let config = format!("{}{}", store(dir), capability("orders", new, &extra));
    Gateway::start(dir, &legacy.url, &config).await
}

/// Retries on new counted so far.
async fn retries_on_new(http: &reqwest::Client, gw: &Gateway) -> f64 {
    let labels = ["capability=\"orders\"", "side=\"new\""];
    metric(http, gw, gateway::observability::RETRIES, &labels).await
}

/// One GET through `gw`: must be new's 200 after exactly one retry.
async fn assert_answered_after_one_retry(gw: &Gateway) {
    let http = http();
    let resp = http
        .get(format!("{}/orders/1", gw.public))
        .send()
        .await
        .expect("answered");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.expect("body"), "new");
    assert_eq!(retries_on_new(&http, gw).await, 1.0, "one retry counted");
}

/// Lets the first failure be retried at once (the ratio alone needs 5 requests' deposits).
const RETRY_AT_ONCE: &str = "[capability.resilience.new.retry]\nbudget_min_per_sec = 10\n";

/// First attempt 500, second 200: the client gets new's 200 and one retry is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_after_a_5xx_is_retried_and_succeeds() {
    let legacy = Echo::start().await;
    let (new, calls) = counting(|n| match n {
        0 => (StatusCode::INTERNAL_SERVER_ERROR, "broken"),
        _ => (StatusCode::OK, "new"),
    })
    .await;
    let dir = TempDir::new();
    let gw = gateway_on(&dir, &legacy, &new, RETRY_AT_ONCE).await;
    assert_answered_after_one_retry(&gw).await;
    assert_eq!(calls.load(Ordering::SeqCst), 2, "new was called twice");
    gw.shutdown().await;
}

/// First connection reset before any answer, the next one answers: the GET is retried on a new
/// connection and succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_after_a_connection_reset_is_retried_and_succeeds() {
    let legacy = Echo::start().await;
    let (new, connections) = scripted(
        |n| {
            (n > 0).then_some(
                &b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\nnew"[..],
            )
        },
        false,
    )
    .await;
    let dir = TempDir::new();
    let gw = gateway_on(&dir, &legacy, &new, RETRY_AT_ONCE).await;
    assert_answered_after_one_retry(&gw).await;
    let connections = connections.load(Ordering::SeqCst);
    assert_eq!(connections, 2, "the reset call was tried again");
    gw.shutdown().await;
}

/// A burst of 100 GETs against a new side that answers 500 to everything: retries stay within
/// the budget (ratio 0.2, no per-second allowance), so new sees at most 20 % extra calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retry_budget_caps_retries_under_a_burst() {
    const REQUESTS: usize = 100;
    let legacy = Echo::start().await;
    let (new, calls) = counting(|_| (StatusCode::INTERNAL_SERVER_ERROR, "broken")).await;
    let dir = TempDir::new();
    let extra = "[capability.resilience.new.retry]\nmax_retries = 3\nbudget_ratio = 0.2\n\
        budget_min_per_sec = 0\nbackoff_base = \"1ms\"\nbackoff_max = \"2ms\"\n";
    let gw = gateway_on(&dir, &legacy, &new, extra).await;
    let http = http();
    let burst: Vec<_> = (0..REQUESTS)
        .map(|i| {
            let (http, url) = (http.clone(), gw.public.clone());
            tokio::spawn(async move { http.get(format!("{url}/orders/{i}")).send().await })
        })
        .collect();
    for request in burst {
        let resp = request.await.expect("task").expect("answered");
        assert_eq!(resp.status(), 500, "new's own 500 is relayed");
    }
    let retries = retries_on_new(&http, &gw).await;
    let budget = (REQUESTS / 5) as f64;
    assert!(
        retries >= 1.0 && retries <= budget,
        "{retries} retries for {REQUESTS} requests, budget {budget}"
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        REQUESTS + retries as usize,
        "new saw each request once plus the budgeted retries"
    );
    gw.shutdown().await;
}
