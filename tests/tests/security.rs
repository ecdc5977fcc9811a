//! Security checks against a real gateway on 127.0.0.1:0 with real upstreams that count what
//! reaches them: admin authentication and roles, bad admin bodies, the public listener never
//! serving admin routes, request smuggling over raw TCP ([`smuggling`]), and secrets kept out of
//! the logs ([`logs`]).

// The gateway tests' harness, compiled here too: this module uses part of it.
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "gateway/support.rs"]
mod support;

mod logs;
mod smuggling;

use axum::Router;
use axum::extract::Request;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{Gateway, OPERATOR, TempDir, VIEWER};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Longest reason a refused admin call may give: a sentence, not an echo of the body.
const SHORT_REASON: usize = 200;
/// The admin API's request body limit (axum's default).
const ADMIN_BODY_LIMIT: usize = 2 * 1024 * 1024;
/// The forced-side secret of the gateways in this module.
const FORCE_SECRET: &str = "force-secret-5a7c9e1b3d";
/// Header and cookie carrying `legacy:SECRET` or `new:SECRET`.
const FORCE_HEADER: &str = "x-fig-force-side";

/// An upstream that answers every request with its name and records `METHOD path` of each, and
/// its headers as `name: value` lines.
struct CountingBackend {
    url: String,
    seen: Arc<Mutex<Vec<String>>>,
    heads: Arc<Mutex<Vec<String>>>,
}

impl CountingBackend {
    async fn start(name: &'static str) -> CountingBackend {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind backend");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let (log, head_log) = (seen.clone(), heads.clone());
        let app = Router::new().fallback(move |req: Request| {
            let (log, head_log) = (log.clone(), head_log.clone());
            async move {
                let line = format!("{} {}", req.method(), req.uri().path());
                log.lock().expect("seen").push(line);
                let head: String = req
                    .headers()
                    .iter()
                    .map(|(k, v)| format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())))
                    .collect();
                head_log.lock().expect("heads").push(head);
                name
            }
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        CountingBackend { url, seen, heads }
    }

    /// Every request's headers as received, one string per request.
    fn heads(&self) -> Vec<String> {
        self.heads.lock().expect("heads").clone()
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().expect("seen").clone()
    }

    fn count(&self, path: &str) -> usize {
        self.seen().iter().filter(|l| l.ends_with(path)).count()
    }
}

/// One capability `orders` (prefix `/orders`), its new side on `new`, forced side configured.
fn orders(dir: &TempDir, new: &str) -> String {
    format!(
        "[store]\nkind = \"file\"\npath = \"{}\"\n[forced_side]\nheader = \"{FORCE_HEADER}\"\nsecret = \"{FORCE_SECRET}\"\n[[capability]]\nname = \"orders\"\nnew = \"{new}\"\nroutes = [{{ prefix = \"/orders\" }}]\n",
        dir.0.join("toggles.json").display()
    )
}

/// Counting legacy and new upstreams, and a gateway in front of them with `orders` on legacy.
struct Rig {
    legacy: CountingBackend,
    new: CountingBackend,
    gw: Gateway,
    dir: TempDir,
}

impl Rig {
    async fn start() -> Rig {
        let legacy = CountingBackend::start("legacy").await;
        let new = CountingBackend::start("new").await;
        let dir = TempDir::new();
        let gw = Gateway::start(&dir, &legacy.url, &orders(&dir, &new.url)).await;
        Rig {
            legacy,
            new,
            gw,
            dir,
        }
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// The toggle of `orders` as (state, version), read with the viewer token.
async fn orders_toggle(gw: &Gateway, http: &reqwest::Client) -> (String, u64) {
    let cap = gw.view(http, "/api/v1/capabilities/orders").await;
    (
        cap["state"].as_str().unwrap_or("?").to_string(),
        cap["version"].as_u64().unwrap_or(u64::MAX),
    )
}

/// Refused entries of the audit history as (actor, detail).
async fn refusals(gw: &Gateway, http: &reqwest::Client) -> Vec<(String, String)> {
    let history = gw.view(http, "/api/v1/history?limit=1000").await;
    let entries = history.as_array().cloned().unwrap_or_default();
    assert!(
        entries.iter().all(|e| e["outcome"] != "applied"),
        "nothing may have been applied: {history}"
    );
    entries
        .iter()
        .filter(|e| e["outcome"] == "refused")
        .map(|e| {
            (
                e["actor"].as_str().unwrap_or("").to_string(),
                e["detail"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// An admin call: method, path, optional `Authorization` value, JSON body.
async fn call(
    http: &reqwest::Client,
    base: &str,
    method: reqwest::Method,
    path: &str,
    authorization: Option<&str>,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = http.request(method, format!("{base}{path}"));
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.expect("admin call")
}

/// Every operator and viewer route of the admin API with a body that would be accepted.
fn admin_routes() -> Vec<(reqwest::Method, &'static str, Option<Value>)> {
    use reqwest::Method;
    vec![
        (Method::GET, "/api/v1/capabilities", None),
        (Method::GET, "/api/v1/capabilities/orders", None),
        (Method::GET, "/api/v1/history", None),
        (
            Method::POST,
            "/api/v1/explain",
            Some(json!({ "method": "GET", "path": "/orders/1" })),
        ),
        (
            Method::PUT,
            "/api/v1/capabilities/orders/toggle",
            Some(json!({ "state": "new", "reason": "attack" })),
        ),
        (
            Method::POST,
            "/api/v1/capabilities/orders/rollback",
            Some(json!({ "reason": "attack" })),
        ),
    ]
}

/// Every admin API route refuses a missing, malformed or unknown bearer token with 401, the
/// toggle and the public routing stay as they were, and each refusal is audited as anonymous.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_without_a_valid_token_is_401_and_changes_nothing() {
    let Rig {
        legacy: _legacy,
        new,
        gw,
        dir: _dir,
    } = Rig::start().await;
    let http = http();
    let near_miss = format!("Bearer {}", &OPERATOR[..OPERATOR.len() - 1]);
    let with_suffix = format!("Bearer {OPERATOR}x");
    let basic = format!("Basic {OPERATOR}");
    let credentials: [Option<&str>; 6] = [
        None,
        Some("Bearer "),
        Some(&basic),
        Some(&near_miss),
        Some(&with_suffix),
        Some("Bearer not-a-configured-token-at-all"),
    ];
    let mut refused = 0;
    for (method, path, body) in admin_routes() {
        for auth in credentials {
            let resp = call(&http, &gw.admin, method.clone(), path, auth, body.clone()).await;
            assert_eq!(resp.status(), 401, "{method} {path} with {auth:?}");
            refused += 1;
        }
    }
    assert_eq!(orders_toggle(&gw, &http).await, ("legacy".to_string(), 0));
    let side = gw.side(&http, "/orders/1", &[]).await.expect("request");
    assert_eq!(side.1, "legacy", "public routing unchanged");
    assert_eq!(new.seen(), Vec::<String>::new(), "new side never called");
    let audited = refusals(&gw, &http).await;
    let anonymous_401 = audited
        .iter()
        .filter(|(actor, detail)| actor == "anonymous" && detail.starts_with("401"))
        .count();
    assert_eq!(anonymous_401, refused, "every refusal audited: {audited:?}");
    gw.shutdown().await;
}

/// A viewer token on the operator actions (toggle, rollback) gets 403, changes nothing, and both
/// refusals are audited under the viewer's name with 403.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_token_on_operator_actions_is_403_changes_nothing_and_is_audited() {
    let Rig {
        legacy: _legacy,
        new: _new,
        gw,
        dir: _dir,
    } = Rig::start().await;
    let http = http();
    let viewer = format!("Bearer {VIEWER}");
    let mut forbidden = Vec::new();
    for (method, path, body) in admin_routes() {
        let resp = call(&http, &gw.admin, method.clone(), path, Some(&viewer), body).await;
        let status = resp.status().as_u16();
        if method == reqwest::Method::GET || path == "/api/v1/explain" {
            assert_eq!(status, 200, "viewer may read {method} {path}");
        } else {
            assert_eq!(status, 403, "viewer may not {method} {path}");
            let reason: Value = resp.json().await.expect("json reason");
            assert!(
                reason["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("viewer")),
                "the reason names the role: {reason}"
            );
            forbidden.push(path);
        }
    }
    assert_eq!(forbidden.len(), 2, "toggle and rollback both refused");
    assert_eq!(orders_toggle(&gw, &http).await, ("legacy".to_string(), 0));
    let side = gw.side(&http, "/orders/1", &[]).await.expect("request");
    assert_eq!(side.1, "legacy");
    let audited = refusals(&gw, &http).await;
    let by_viewer: Vec<_> = audited
        .iter()
        .filter(|(actor, detail)| actor == "watcher" && detail.starts_with("403"))
        .collect();
    assert_eq!(by_viewer.len(), 2, "both refusals audited: {audited:?}");
    gw.shutdown().await;
}

/// Oversized, malformed, mistyped and out-of-range bodies on toggle, rollback and explain, even
/// from an operator, get a 4xx with a short JSON reason and leave the toggle untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_malformed_admin_bodies_are_4xx_and_change_nothing() {
    let Rig {
        legacy: _legacy,
        new,
        gw,
        dir: _dir,
    } = Rig::start().await;
    let http = http();
    let toggle = "/api/v1/capabilities/orders/toggle";
    let rollback = "/api/v1/capabilities/orders/rollback";
    let explain = "/api/v1/explain";
    let json = "application/json";
    let cases: [(&str, &[u8], &str); 13] = [
        (toggle, b"{\"state\":", json),
        (toggle, b"[]", json),
        (toggle, b"\xff\xfe{}", json),
        (
            toggle,
            br#"{"state":"new","reason":"x","admin":true}"#,
            json,
        ),
        (
            toggle,
            br#"{"state":"percent","percent":300,"reason":"x"}"#,
            json,
        ),
        (
            toggle,
            br#"{"state":"percent","percent":101,"reason":"x"}"#,
            json,
        ),
        (toggle, br#"{"state":"sideways","reason":"x"}"#, json),
        (toggle, br#"{"state":"new","reason":"x"}"#, "text/plain"),
        (rollback, b"{\"reason\":1}", json),
        (rollback, b"{{{{", json),
        (explain, br#"{"method":"GE T","path":"/"}"#, json),
        (
            explain,
            br#"{"method":"GET","path":"/","headers":{"a b":"c"}}"#,
            json,
        ),
        (
            explain,
            br#"{"method":"GET","path":"/","client_ip":"999.1.1.1"}"#,
            json,
        ),
    ];
    for (path, body, content_type) in cases {
        let method = if path == toggle {
            reqwest::Method::PUT
        } else {
            reqwest::Method::POST
        };
        let shown = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
        let resp = http
            .request(method.clone(), format!("{}{path}", gw.admin))
            .bearer_auth(OPERATOR)
            .header("content-type", content_type)
            .body(body.to_vec())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path} {shown}: {e}"));
        let status = resp.status();
        assert!(
            status.is_client_error(),
            "{method} {path} {shown} ({content_type}): {status}"
        );
        let reason: Value = resp.json().await.expect("a JSON reason");
        let text = reason["error"].as_str().unwrap_or("");
        assert!(
            !text.is_empty() && text.len() <= SHORT_REASON,
            "{method} {path} {shown}: reason {text:?}"
        );
    }
    // Oversized: a body announced as 3 MiB, of which just over the 2 MiB limit is sent, over raw
    // TCP so the gateway has read all that was sent when it answers and closes.
    let prefix = "{\"state\":\"new\",\"reason\":\"";
    let head = format!(
        "PUT {toggle} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {OPERATOR}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{prefix}",
        3 * 1024 * 1024
    );
    let mut oversized = head.into_bytes();
    oversized.resize(oversized.len() + ADMIN_BODY_LIMIT + 1 - prefix.len(), b'x');
    let admin_addr = gw.admin.trim_start_matches("http://").to_string();
    let (reply, _) = raw_exchange(&admin_addr, &oversized).await;
    let status = first_status(&reply);
    assert!(
        status.is_some_and(|s| (400..500).contains(&s)),
        "oversized body: {reply:.300}"
    );
    let reason = reply.split("\r\n\r\n").nth(1).unwrap_or("");
    let reason: Value =
        serde_json::from_str(reason).unwrap_or_else(|e| panic!("{e}: {reply:.300}"));
    assert!(
        reason["error"]
            .as_str()
            .is_some_and(|e| !e.is_empty() && e.len() <= SHORT_REASON),
        "oversized body: {reason}"
    );

    assert_eq!(orders_toggle(&gw, &http).await, ("legacy".to_string(), 0));
    assert_eq!(
        gw.side(&http, "/orders/1", &[]).await.expect("request").1,
        "legacy"
    );
    assert_eq!(new.seen(), Vec::<String>::new(), "new side never called");
    gw.shutdown().await;
}

/// Admin paths sent to the public listener, even with the operator token, are proxied to the
/// legacy upstream like any other path and never reach the admin handler: no toggle changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_listener_never_serves_admin_routes() {
    let Rig {
        legacy,
        new: _new,
        gw,
        dir: _dir,
    } = Rig::start().await;
    let http = http();
    let operator = format!("Bearer {OPERATOR}");
    let mut routes = admin_routes();
    for path in [
        "/metrics",
        "/console",
        "/health/live",
        "/health/ready",
        "/api/v1/capabilities/orders/mismatches",
    ] {
        routes.push((reqwest::Method::GET, path, None));
    }
    for (method, path, body) in routes {
        let resp = call(
            &http,
            &gw.public,
            method.clone(),
            path,
            Some(&operator),
            body,
        )
        .await;
        let status = resp.status();
        let text = resp.text().await.expect("body");
        assert!(
            (status == 200 && text == "legacy") || status == 404,
            "{method} {path} on the public port answered {status}: {text:.200}"
        );
        assert!(
            legacy.seen().contains(&format!("{method} {path}")),
            "{method} {path} went to legacy: {:?}",
            legacy.seen()
        );
    }
    assert_eq!(orders_toggle(&gw, &http).await, ("legacy".to_string(), 0));
    gw.shutdown().await;
}

/// Sends raw bytes on a fresh connection and returns everything read until the gateway closes
/// it (or 5 s pass with the connection still open, which the caller sees as no close).
async fn raw_exchange(addr: &str, request: &[u8]) -> (String, bool) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => break false,
        }
    };
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

/// The status code of the first response in `reply`, if any.
fn first_status(reply: &str) -> Option<u16> {
    reply.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}
