//! Request smuggling over raw TCP against the public listener, counted at the upstreams.

use e2e::wait_for;
use std::time::Duration;

use super::support::Gateway;
use super::{CountingBackend, Rig, first_status, http, raw_exchange};

/// Request smuggling over raw TCP: conflicting Content-Length / Transfer-Encoding, duplicate
/// Content-Length, obs-fold, a non-final chunked coding. Malformed heads are rejected with 400
/// before any upstream is called; a request carrying both Content-Length and Transfer-Encoding
/// is read as chunked and the connection is closed after it, so the smuggled request behind it
/// never reaches an upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggling_attempts_never_reach_an_upstream_as_two_requests() {
    let Rig {
        legacy,
        new,
        gw,
        dir: _dir,
    } = Rig::start().await;
    let addr = gw.public.trim_start_matches("http://").to_string();
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    // (name, bytes, the head is malformed so the answer must be 400 with no upstream call)
    let cases: Vec<(&str, String, bool)> = vec![
        (
            "CL.TE",
            format!(
                "POST /orders/cl-te HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}",
                5 + smuggled.len()
            ),
            false,
        ),
        (
            "TE.CL",
            format!(
                "POST /orders/te-cl HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\n{smuggled}\r\n0\r\n\r\n"
            ),
            false,
        ),
        (
            "duplicate Content-Length",
            format!(
                "POST /orders/dup-cl HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: {}\r\n\r\n{smuggled}",
                smuggled.len()
            ),
            true,
        ),
        (
            "obs-fold",
            format!(
                "POST /orders/obs-fold HTTP/1.1\r\nHost: x\r\nX-Pad: a\r\n Transfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n{smuggled}"
            ),
            true,
        ),
        (
            "chunked not final",
            format!(
                "POST /orders/te-identity HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n{smuggled}"
            ),
            true,
        ),
        (
            "space before colon",
            format!(
                "POST /orders/te-space HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n{smuggled}"
            ),
            true,
        ),
        (
            "Transfer-Encoding on HTTP/1.0",
            format!(
                "POST /orders/te-10 HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
            ),
            true,
        ),
    ];
    for (name, bytes, malformed_head) in cases {
        let path = bytes
            .split_whitespace()
            .nth(1)
            .expect("request line")
            .to_string();
        let (reply, closed) = raw_exchange(&addr, bytes.as_bytes()).await;
        let status = first_status(&reply);
        assert!(closed, "{name}: the gateway must close the connection");
        assert_eq!(
            reply.matches("HTTP/1.").count(),
            usize::from(status.is_some()),
            "{name}: at most one response on the connection: {reply:.300}"
        );
        if malformed_head {
            assert_eq!(status, Some(400), "{name}: {reply:.300}");
        }
        settle(&addr, &legacy, name).await;
        let reached = legacy.count(&path) + new.count(&path);
        if malformed_head {
            assert_eq!(reached, 0, "{name}: a malformed head reached an upstream");
        } else {
            assert!(
                reached <= 1,
                "{name}: {path} reached upstreams {reached} times"
            );
        }
        assert_eq!(
            legacy.count("/smuggled") + new.count("/smuggled"),
            0,
            "{name}: the smuggled request reached an upstream: {:?}",
            legacy.seen()
        );
    }
    gw.shutdown().await;
}

/// Sends a sentinel request on a new connection and waits until legacy has seen it: by then
/// anything an earlier attack made the gateway send on the pooled upstream connection has
/// arrived too.
async fn settle(addr: &str, legacy: &CountingBackend, name: &str) {
    let sentinel = format!("/sentinel-{}", name.replace(' ', "-"));
    let request = format!("GET {sentinel} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let (reply, _) = raw_exchange(addr, request.as_bytes()).await;
    assert_eq!(first_status(&reply), Some(200), "sentinel: {reply:.300}");
    wait_for(
        &format!("legacy to see {sentinel}"),
        Duration::from_secs(5),
        || {
            let n = legacy.count(&sentinel);
            async move { (n == 1).then_some(()) }
        },
    )
    .await;
}

/// The value of the gateway's request counter for `orders` on the legacy side in `class`.
async fn legacy_requests(http: &reqwest::Client, gw: &Gateway, class: &str) -> f64 {
    let text = http
        .get(format!("{}/metrics", gw.admin))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .filter(|l| l.starts_with(gateway::observability::REQUESTS))
        .filter(|l| {
            l.contains("capability=\"orders\"")
                && l.contains("side=\"legacy\"")
                && l.contains(&format!("class=\"{class}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A chunked body with an invalid or overflowing chunk size is the client's fault: the gateway
/// answers 400 and does not count it as an error of the upstream it was streaming to (which
/// would let any client push a side towards its failure thresholds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_chunked_body_is_a_client_error_not_an_upstream_error() {
    let Rig {
        legacy,
        new: _new,
        gw,
        dir: _dir,
    } = Rig::start().await;
    let http = http();
    let addr = gw.public.trim_start_matches("http://").to_string();
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    for (name, size) in [
        ("invalid chunk size", "zz"),
        ("overflowing chunk size", "ffffffffffffffffff"),
    ] {
        let bytes = format!(
            "POST /orders/bad-chunk HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{size}\r\n{smuggled}\r\n0\r\n\r\n"
        );
        let (reply, closed) = raw_exchange(&addr, bytes.as_bytes()).await;
        assert!(closed, "{name}: the gateway must close the connection");
        settle(&addr, &legacy, name).await;
        assert_eq!(
            legacy.count("/smuggled"),
            0,
            "{name}: smuggled request reached legacy"
        );
        assert_eq!(first_status(&reply), Some(400), "{name}: {reply:.300}");
    }
    assert_eq!(
        legacy_requests(&http, &gw, "error").await,
        0.0,
        "a client's malformed body counted as an upstream error"
    );
    gw.shutdown().await;
}
