//! The gateway end to end: real upstreams and gateways on port 0, toggles changed through the
//! admin API, the PostgreSQL store shared by replicas.

mod support;

use e2e::{TestDb, wait_for};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use support::{Backend, Gateway, OPERATOR, TempDir, VIEWER};

fn orders(dir: &TempDir, new: &str, extra: &str) -> String {
    format!(
        "[store]\nkind = \"file\"\npath = \"{}\"\n[[capability]]\nname = \"orders\"\nnew = \"{new}\"\nroutes = [{{ prefix = \"/orders\" }}]\n{extra}\n",
        dir.0.join("toggles.json").display()
    )
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// 1,000 toggle flips during sustained load: no request fails, and every response comes from a
/// side that was in effect at some moment while the request was in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn toggle_flips_under_load_fail_no_request() {
    let (legacy, new) = (Backend::start("legacy").await, Backend::start("new").await);
    let dir = TempDir::new();
    // Two public workers (thread per core), as in production.
    let config = format!("workers = 2\n{}", orders(&dir, &new.url, ""));
    let gw = Gateway::start(&dir, &legacy.url, &config).await;
    let http = http();
    let epoch = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let mut loaders = Vec::new();
    for _ in 0..6 {
        let (http, url, stop) = (http.clone(), gw.public.clone(), stop.clone());
        loaders.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let start = epoch.elapsed();
                let resp = http
                    .get(format!("{url}/orders/42"))
                    .send()
                    .await
                    .expect("request must not fail");
                assert_eq!(resp.status(), 200, "request failed during flips");
                let header = resp.headers()["x-fig-side"]
                    .to_str()
                    .expect("side")
                    .to_string();
                let body = resp.text().await.expect("body must stream fully");
                assert_eq!(
                    header, body,
                    "x-fig-side must name the backend that answered"
                );
                seen.push((start, epoch.elapsed(), body == "new"));
            }
            seen
        }));
    }
    // flips[k] = (sent, acknowledged, state is new) for the k-th change; the initial state is legacy.
    let mut flips = Vec::with_capacity(1000);
    for k in 0..1000 {
        let to_new = k % 2 == 0;
        let sent = epoch.elapsed();
        let state = if to_new { "new" } else { "legacy" };
        let status = gw
            .set(
                &http,
                Some(OPERATOR),
                "orders",
                json!({ "state": state, "reason": format!("flip {k}") }),
            )
            .await;
        assert_eq!(status, 200, "flip {k}");
        flips.push((sent, epoch.elapsed(), to_new));
    }
    stop.store(true, Ordering::Relaxed);
    let (mut total, mut from_new) = (0, 0);
    for loader in loaders {
        for (start, end, got_new) in loader.await.expect("loader") {
            total += 1;
            from_new += usize::from(got_new);
            // States possibly in effect during [start, end]: from the last change acknowledged
            // before `start` to the last change sent before `end`.
            let first = flips.iter().filter(|f| f.1 <= start).count();
            let last = flips.iter().filter(|f| f.0 <= end).count();
            let valid = (first..=last).any(|i| {
                if i == 0 {
                    !got_new
                } else {
                    flips[i - 1].2 == got_new
                }
            });
            assert!(
                valid,
                "response from {} at {start:?}..{end:?} matches no state in effect",
                if got_new { "new" } else { "legacy" }
            );
        }
    }
    assert!(
        total > 1000,
        "load was not sustained: only {total} requests"
    );
    assert!(
        from_new > 0 && from_new < total,
        "both sides answered: {from_new} of {total} from new"
    );
    gw.shutdown().await;
}

/// A sticky key lands on the same side across 1,000 requests, and a key on new stays on new as
/// the percentage grows (10 → 20 → 50 → 100).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_key_keeps_its_side_as_percent_grows() {
    let (legacy, new) = (Backend::start("legacy").await, Backend::start("new").await);
    let dir = TempDir::new();
    let extra = "state = \"percent\"\npercent = 10\nsticky = { header = \"x-user-id\" }";
    let gw = Gateway::start(&dir, &legacy.url, &orders(&dir, &new.url, extra)).await;
    let http = http();
    let users: Vec<String> = (0..40).map(|u| format!("user-{u}")).collect();
    let mut on_new_before = vec![false; users.len()];
    for percent in [10u8, 20, 50, 100] {
        if percent != 10 {
            let status = gw
                .set(
                    &http,
                    Some(OPERATOR),
                    "orders",
                    json!({ "state": "percent", "percent": percent, "reason": "widen rollout" }),
                )
                .await;
            assert_eq!(status, 200);
        }
        let mut on_new = 0;
        for (u, user) in users.iter().enumerate() {
            let (first, _) = gw
                .side(&http, "/orders/1", &[("x-user-id", user)])
                .await
                .expect("request");
            for _ in 0..24 {
                let (side, body) = gw
                    .side(&http, "/orders/1", &[("x-user-id", user)])
                    .await
                    .expect("request");
                assert_eq!(
                    (&side, &body),
                    (&first, &first),
                    "{user} changed side at {percent}%"
                );
            }
            let now_new = first == "new";
            assert!(
                !on_new_before[u] || now_new,
                "{user} left new when the percentage grew to {percent}"
            );
            on_new_before[u] = now_new;
            on_new += usize::from(now_new);
        }
        if percent == 100 {
            assert_eq!(on_new, users.len());
        }
        assert!(
            on_new <= users.len() * usize::from(percent) / 100 + 8,
            "{on_new} users on new at {percent}%"
        );
    }
    gw.shutdown().await;
}

/// Admin calls without a token, with a wrong token, or with the viewer role change nothing, and
/// each refusal is in the audit history with who and why; an operator's change is audited with
/// from, to and reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_calls_without_the_right_role_change_nothing_and_are_audited() {
    let (legacy, new) = (Backend::start("legacy").await, Backend::start("new").await);
    let dir = TempDir::new();
    let gw = Gateway::start(&dir, &legacy.url, &orders(&dir, &new.url, "")).await;
    let http = http();
    let to_new = json!({ "state": "new", "reason": "try it" });
    assert_eq!(gw.set(&http, None, "orders", to_new.clone()).await, 401);
    assert_eq!(
        gw.set(
            &http,
            Some("not-a-real-token-at-all"),
            "orders",
            to_new.clone()
        )
        .await,
        401
    );
    assert_eq!(
        gw.set(&http, Some(VIEWER), "orders", to_new.clone()).await,
        403
    );
    assert_eq!(
        gw.set(&http, Some(OPERATOR), "orders", json!({ "state": "new" }))
            .await,
        400,
        "reason is required"
    );
    let rollback = http
        .post(format!("{}/api/v1/capabilities/orders/rollback", gw.admin))
        .bearer_auth(VIEWER)
        .json(&json!({ "reason": "x" }))
        .send()
        .await
        .expect("call");
    assert_eq!(rollback.status(), 403);
    let list = http
        .get(format!("{}/api/v1/capabilities", gw.admin))
        .send()
        .await
        .expect("call");
    assert_eq!(list.status(), 401);

    let cap = gw.view(&http, "/api/v1/capabilities/orders").await;
    assert_eq!(
        (cap["state"].as_str(), cap["version"].as_u64()),
        (Some("legacy"), Some(0)),
        "{cap}"
    );
    assert_eq!(
        gw.side(&http, "/orders/1", &[]).await.expect("request").1,
        "legacy"
    );

    let history = gw.view(&http, "/api/v1/history").await;
    let refused: Vec<(&str, &str)> = history
        .as_array()
        .expect("array")
        .iter()
        .filter(|e| e["outcome"] == "refused")
        .map(|e| {
            (
                e["actor"].as_str().unwrap_or(""),
                e["detail"].as_str().unwrap_or(""),
            )
        })
        .collect();
    for (actor, detail) in [
        ("anonymous", "401 missing"),
        ("anonymous", "401 invalid"),
        ("watcher", "403"),
        ("ops", "400"),
        ("anonymous", "401 missing"),
    ] {
        assert!(
            refused
                .iter()
                .any(|(a, d)| *a == actor && d.starts_with(detail)),
            "no refusal ({actor}, {detail}) in {refused:?}"
        );
    }
    assert!(
        refused.iter().filter(|(a, _)| *a == "watcher").count() >= 2,
        "viewer's set and rollback both audited: {refused:?}"
    );

    assert_eq!(gw.set(&http, Some(OPERATOR), "orders", to_new).await, 200);
    let history = gw.view(&http, "/api/v1/history?limit=1").await;
    let last = &history[0];
    assert_eq!(
        (
            last["actor"].as_str(),
            last["outcome"].as_str(),
            last["reason"].as_str()
        ),
        (Some("ops"), Some("applied"), Some("try it"))
    );
    assert_eq!(
        (last["from"]["state"].as_str(), last["to"]["state"].as_str()),
        (Some("legacy"), Some("new"))
    );
    assert_eq!(
        gw.side(&http, "/orders/1", &[]).await.expect("request").1,
        "new"
    );
    gw.shutdown().await;
}

/// A restart keeps the toggle state (file store), and rollback after the restart returns to the
/// state before the last change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_toggle_state() {
    let (legacy, new) = (Backend::start("legacy").await, Backend::start("new").await);
    let dir = TempDir::new();
    let config = orders(&dir, &new.url, "");
    let gw = Gateway::start(&dir, &legacy.url, &config).await;
    let http = http();
    assert_eq!(
        gw.set(
            &http,
            Some(OPERATOR),
            "orders",
            json!({ "state": "percent", "percent": 30, "reason": "start" })
        )
        .await,
        200
    );
    assert_eq!(
        gw.set(
            &http,
            Some(OPERATOR),
            "orders",
            json!({ "state": "new", "reason": "all in" })
        )
        .await,
        200
    );
    gw.shutdown().await;

    let gw = Gateway::start(&dir, &legacy.url, &config).await;
    let cap = gw.view(&http, "/api/v1/capabilities/orders").await;
    assert_eq!(
        (cap["state"].as_str(), cap["version"].as_u64()),
        (Some("new"), Some(2)),
        "{cap}"
    );
    assert_eq!(
        gw.side(&http, "/orders/9", &[]).await.expect("request"),
        ("new".to_string(), "new".to_string())
    );
    let resp = http
        .post(format!("{}/api/v1/capabilities/orders/rollback", gw.admin))
        .bearer_auth(OPERATOR)
        .json(&json!({ "reason": "back" }))
        .send()
        .await
        .expect("call");
    assert_eq!(resp.status(), 200);
    let cap = gw.view(&http, "/api/v1/capabilities/orders").await;
    assert_eq!(
        (cap["state"].as_str(), cap["percent"].as_u64()),
        (Some("percent"), Some(30)),
        "{cap}"
    );
    assert_eq!(
        gw.view(&http, "/api/v1/history")
            .await
            .as_array()
            .map(Vec::len),
        Some(3)
    );
    gw.shutdown().await;
}

/// Two replicas on one PostgreSQL store: a change made on either is live on the other within
/// one second, and both report ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_converge_through_postgres_within_a_second() {
    let db = TestDb::create("gw_store").await.expect("test database");
    let (legacy, new) = (Backend::start("legacy").await, Backend::start("new").await);
    let (dir_a, dir_b) = (TempDir::new(), TempDir::new());
    let body = format!(
        "[store]\nkind = \"postgres\"\nurl = \"{}\"\n[[capability]]\nname = \"orders\"\nnew = \"{}\"\nroutes = [{{ prefix = \"/orders\" }}]\n",
        db.conn_string(),
        new.url
    );
    let a = Gateway::start(&dir_a, &legacy.url, &body).await;
    let b = Gateway::start(&dir_b, &legacy.url, &body).await;
    let http = http();
    for (changer, other, state) in [(&a, &b, "new"), (&b, &a, "legacy"), (&a, &b, "new")] {
        assert_eq!(
            changer
                .set(
                    &http,
                    Some(OPERATOR),
                    "orders",
                    json!({ "state": state, "reason": "converge" })
                )
                .await,
            200
        );
        let changed = Instant::now();
        wait_for(&format!("the other replica serving {state}"), Duration::from_secs(1), || {
            let http = http.clone();
            async move { (other.side(&http, "/orders/1", &[]).await.ok()?.1 == state).then_some(()) }
        })
        .await;
        assert!(changed.elapsed() < Duration::from_secs(1));
    }
    for gw in [&a, &b] {
        let ready = http
            .get(format!("{}/health/ready", gw.admin))
            .send()
            .await
            .expect("call");
        assert_eq!(ready.status(), 200);
    }
    assert_eq!(
        b.view(&http, "/api/v1/history")
            .await
            .as_array()
            .map(Vec::len),
        Some(3),
        "one shared audit log"
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// The proxy sets X-Forwarded-*, keeps the request id and a valid traceparent, drops hop-by-hop
/// headers both ways, and refuses an oversized body with 400 and a reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_rewrites_headers_and_enforces_limits() {
    let (legacy, new) = (Backend::start("legacy").await, Backend::start("new").await);
    let dir = TempDir::new();
    let gw = Gateway::start(
        &dir,
        &legacy.url,
        &orders(&dir, &new.url, "max_body_bytes = 1024"),
    )
    .await;
    let http = http();
    let trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let resp = http
        .get(format!("{}/echo/x", gw.public))
        .header("x-request-id", "req-77")
        .header("traceparent", trace)
        .header("connection", "x-private")
        .header("x-private", "hop")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.headers()["x-request-id"], "req-77");
    assert!(
        resp.headers().get("x-hop").is_none(),
        "hop-by-hop response header leaked"
    );
    let seen: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(seen["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen["x-forwarded-proto"], "http");
    assert!(
        seen["x-forwarded-host"]
            .as_str()
            .is_some_and(|h| h.starts_with("127.0.0.1:"))
    );
    assert_eq!(
        (&seen["x-request-id"], &seen["traceparent"]),
        (&json!("req-77"), &json!(trace))
    );
    assert!(
        seen.get("x-private").is_none(),
        "hop-by-hop request header leaked"
    );
    let resp = http
        .get(format!("{}/echo/y", gw.public))
        .send()
        .await
        .expect("request");
    let seen: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(
        seen["x-request-id"].as_str().map(str::len),
        Some(32),
        "generated request id"
    );
    assert!(
        seen["traceparent"].as_str().is_some_and(|t| t.len() == 55),
        "new trace started"
    );
    let big = http
        .post(format!("{}/orders/1", gw.public))
        .body(vec![b'x'; 4096])
        .send()
        .await
        .expect("request");
    assert_eq!(big.status(), 400);
    assert!(
        big.text()
            .await
            .expect("body")
            .contains("larger than 1024 bytes")
    );
    gw.shutdown().await;
}

/// A replica that loses its PostgreSQL store keeps serving its last table, reports not-ready and
/// refuses changes with 503; when the database is back it becomes ready and accepts changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_that_loses_the_store_keeps_serving() {
    let db = TestDb::create("gw_lost").await.expect("test database");
    let (legacy, new) = (Backend::start("legacy").await, Backend::start("new").await);
    let dir = TempDir::new();
    let body = format!(
        "[store]\nkind = \"postgres\"\nurl = \"{}\"\n[[capability]]\nname = \"orders\"\nnew = \"{}\"\nroutes = [{{ prefix = \"/orders\" }}]\n",
        db.conn_string(),
        new.url
    );
    let gw = Gateway::start(&dir, &legacy.url, &body).await;
    let http = http();
    assert_eq!(
        gw.set(
            &http,
            Some(OPERATOR),
            "orders",
            json!({ "state": "new", "reason": "go" })
        )
        .await,
        200
    );
    let (admin, connection) =
        tokio_postgres::connect(&db.stack.pg_conn_string("postgres"), tokio_postgres::NoTls)
            .await
            .expect("admin connection");
    tokio::spawn(connection);
    let block = format!("ALTER DATABASE {} ALLOW_CONNECTIONS false", db.name);
    admin
        .batch_execute(&block)
        .await
        .expect("block connections");
    admin
        .execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'fig-gateway'", &[&db.name])
        .await
        .expect("terminate the gateway's session");
    let ready = |http: reqwest::Client, url: String| async move {
        http.get(url).send().await.ok().map(|r| r.status().as_u16())
    };
    let ready_url = format!("{}/health/ready", gw.admin);
    wait_for(
        "not-ready after losing the store",
        Duration::from_secs(5),
        || {
            let f = ready(http.clone(), ready_url.clone());
            async move { (f.await == Some(503)).then_some(()) }
        },
    )
    .await;
    assert_eq!(
        gw.side(&http, "/orders/1", &[])
            .await
            .expect("still serving")
            .1,
        "new",
        "last known table"
    );
    assert_eq!(
        gw.set(
            &http,
            Some(OPERATOR),
            "orders",
            json!({ "state": "legacy", "reason": "nope" })
        )
        .await,
        503
    );
    assert_eq!(
        gw.side(&http, "/orders/1", &[])
            .await
            .expect("still serving")
            .1,
        "new",
        "refused change changed nothing"
    );

    admin
        .batch_execute(&format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS true",
            db.name
        ))
        .await
        .expect("unblock");
    wait_for(
        "ready again after the store is back",
        Duration::from_secs(10),
        || {
            let f = ready(http.clone(), ready_url.clone());
            async move { (f.await == Some(200)).then_some(()) }
        },
    )
    .await;
    assert_eq!(
        gw.set(
            &http,
            Some(OPERATOR),
            "orders",
            json!({ "state": "legacy", "reason": "back" })
        )
        .await,
        200
    );
    assert_eq!(
        gw.side(&http, "/orders/1", &[]).await.expect("request").1,
        "legacy"
    );
    gw.shutdown().await;
}

/// HTTP/2 both ways: a client speaking h2c (prior knowledge) to the public listener reaches an
/// HTTP/2-only upstream through a capability with `upstream_protocol = "http2"`, streaming a
/// request body there and back; an HTTP/1.1 client on the same listener gets the same answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_to_clients_and_upstreams() {
    use http_body_util::{BodyExt, Full};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let legacy = Backend::start("legacy").await;
    let new = support::Http2Backend::start().await;
    let dir = TempDir::new();
    let gw = Gateway::start(
        &dir,
        &legacy.url,
        &orders(
            &dir,
            &new.url,
            "state = \"new\"\nupstream_protocol = \"http2\"",
        ),
    )
    .await;

    let h2: Client<_, Full<bytes::Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let req = http::Request::post(format!("{}/orders/9", gw.public))
        .body(Full::new(bytes::Bytes::from_static(b"hello over h2")))
        .expect("request");
    let resp = tokio::time::timeout(Duration::from_secs(10), h2.request(req))
        .await
        .expect("answer within 10 s")
        .expect("h2c request through the gateway");
    assert_eq!(
        resp.version(),
        http::Version::HTTP_2,
        "client side spoke h2"
    );
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-fig-side"], "new");
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(
        String::from_utf8_lossy(&body),
        "HTTP/2.0 POST /orders/9 hello over h2",
        "the upstream saw HTTP/2 and the whole body"
    );

    let (side, body) = gw
        .side(&http(), "/orders/10", &[])
        .await
        .expect("HTTP/1.1 client");
    assert_eq!(
        (side.as_str(), body.as_str()),
        ("new", "HTTP/2.0 GET /orders/10 ")
    );
    gw.shutdown().await;
}
