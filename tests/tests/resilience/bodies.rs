//! Requests with a body, when new fails: a small idempotent body is kept and sent to legacy
//! byte for byte; a body over `max_replay_body_bytes` streams once and is never resent (the
//! answer says why); a write that reached new is never sent again, even with
//! `fallback.unsent_writes`.

use axum::Router;
use axum::body::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::support::{Gateway, TempDir};
use super::{capability, http, metric, store};

/// An upstream that answers every request with the body it received, counting requests.
pub(super) struct Echo {
    pub url: String,
    pub seen: Arc<AtomicUsize>,
}

impl Echo {
    pub async fn start() -> Echo {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = seen.clone();
        let app = Router::new().fallback(move |body: Bytes| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                body
            }
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Echo { url, seen }
    }
}

/// A URL nothing listens on: connecting is refused.
pub(super) fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    url
}

/// Reads one HTTP/1.1 request (head and a `content-length` body); returns the body's length.
pub(super) async fn read_request(socket: &mut TcpStream) -> Option<usize> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(length)
}

/// A new upstream that reads each whole request, counts it with its body length, and closes the
/// connection without answering (a crash after the write was processed).
struct Dropper {
    url: String,
    bodies: Arc<std::sync::Mutex<Vec<usize>>>,
}

impl Dropper {
    async fn start() -> Dropper {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let bodies = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = bodies.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    if let Some(len) = read_request(&mut socket).await {
                        seen.lock().expect("lock").push(len);
                    }
                    let _ = socket.shutdown().await;
                });
            }
        });
        Dropper { url, bodies }
    }
}

/// `PUT /orders/7` with `body`.
async fn put(http: &reqwest::Client, gw: &Gateway, body: Vec<u8>) -> reqwest::Response {
    http.put(format!("{}/orders/7", gw.public))
        .body(body)
        .send()
        .await
        .expect("answered")
}

/// A body of `len` bytes that differ from one position to the next.
fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// With new down, an idempotent PUT with a 20 KB body is answered by legacy with exactly the
/// bytes the client sent, and the fallback is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_with_body_falls_back_to_legacy_with_the_same_bytes() {
    let legacy = Echo::start().await;
    let dir = TempDir::new();
    let extra = "[capability.resilience.slo_guard]\nenabled = false\n";
    let config = format!(
        "{}{}",
        store(&dir),
        capability("orders", &dead_url(), extra)
    );
    let gw = Gateway::start(&dir, &legacy.url, &config).await;
    let http = http();
    let sent = payload(20_000);
    let resp = put(&http, &gw, sent.clone()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-fig-side"], "legacy");
    let echoed = resp.bytes().await.expect("body");
    assert_eq!(echoed.len(), sent.len(), "legacy got the whole body");
    assert!(echoed == sent, "legacy got the client's bytes, in order");
    assert_eq!(legacy.seen.load(Ordering::SeqCst), 1);
    let fallbacks = metric(
        &http,
        &gw,
        gateway::observability::FALLBACKS,
        &["capability=\"orders\"", "failure=\"connect\""],
    )
    .await;
    assert_eq!(fallbacks, 1.0, "the fallback is counted");
    gw.shutdown().await;
}

/// A body larger than `max_replay_body_bytes` is streamed, not kept: with new down the PUT
/// fails fast with 502 saying the body was over the replay limit, and legacy never sees it,
/// while a body under the limit on the same capability still falls back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_over_the_replay_limit_is_not_replayed() {
    let legacy = Echo::start().await;
    let dir = TempDir::new();
    let extra = "[capability.resilience]\nmax_replay_body_bytes = 1024\n\
        [capability.resilience.slo_guard]\nenabled = false\n";
    let config = format!(
        "{}{}",
        store(&dir),
        capability("orders", &dead_url(), extra)
    );
    let gw = Gateway::start(&dir, &legacy.url, &config).await;
    let http = http();
    let started = Instant::now();
    let resp = put(&http, &gw, payload(4096)).await;
    assert_eq!(resp.status(), 502);
    assert!(started.elapsed() < Duration::from_secs(2), "fails fast");
    let text = resp.text().await.expect("text");
    assert!(
        text.contains("not sent to legacy") && text.contains("replay limit (1024 bytes)"),
        "the answer says why: {text}"
    );
    assert_eq!(legacy.seen.load(Ordering::SeqCst), 0, "never replayed");
    let not_resent = metric(
        &http,
        &gw,
        gateway::observability::NOT_RESENT,
        &["capability=\"orders\"", "reason=\"body_over_replay_limit\""],
    )
    .await;
    assert_eq!(not_resent, 1.0, "counted with its reason");

    let small = payload(1000);
    let resp = put(&http, &gw, small.clone()).await;
    assert_eq!(resp.status(), 200, "a body under the limit falls back");
    assert!(resp.bytes().await.expect("body") == small);
    assert_eq!(legacy.seen.load(Ordering::SeqCst), 1);
    gw.shutdown().await;
}

/// A POST that reached new, which then dropped the connection, is not sent again — not to new,
/// not to legacy, even with `fallback.unsent_writes` — and fails fast with 502/504 saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_that_reached_new_is_not_resent() {
    let legacy = Echo::start().await;
    let new = Dropper::start().await;
    let dir = TempDir::new();
    let extra = "[capability.resilience.fallback]\nunsent_writes = true\n\
        [capability.resilience.new.retry]\nmax_retries = 3\nbudget_min_per_sec = 100\n\
        [capability.resilience.slo_guard]\nenabled = false\n";
    let config = format!("{}{}", store(&dir), capability("orders", &new.url, extra));
    let gw = Gateway::start(&dir, &legacy.url, &config).await;
    let http = http();
    let started = Instant::now();
    let resp = http
        .post(format!("{}/orders", gw.public))
        .body(payload(2048))
        .send()
        .await
        .expect("answered");
    let status = resp.status().as_u16();
    assert!([502, 504].contains(&status), "status {status}");
    assert!(started.elapsed() < Duration::from_secs(2), "fails fast");
    let text = resp.text().await.expect("text");
    assert!(
        text.contains("not sent to legacy") && text.contains("not idempotent"),
        "the answer says why: {text}"
    );
    assert_eq!(
        *new.bodies.lock().expect("lock"),
        vec![2048],
        "new got the write once"
    );
    assert_eq!(legacy.seen.load(Ordering::SeqCst), 0, "legacy never got it");
    gw.shutdown().await;
}
