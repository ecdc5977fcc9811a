//! The operator console end to end: a real gateway on 127.0.0.1:0 in front of two real
//! upstreams, a real CDC bridge metrics endpoint, and a real headless Chromium (Debian's
//! `chromium` through `chromedriver`; `deploy/local/browser` installs them) that signs in,
//! flips a capability with a reason and sees the change, while the admin API and a proxied
//! request confirm it took effect. A screenshot is saved to
//! `${FIG_ARTIFACTS_DIR:-target/artifacts}/console.png`.

// The gateway tests' harness, compiled here too: this module uses part of it.
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "gateway/support.rs"]
mod support;

mod browser;

use browser::Browser;
use e2e::wait_for;
use std::path::PathBuf;
use std::time::Duration;
use support::{Backend, Gateway, OPERATOR, TempDir, VIEWER};
use tokio::net::TcpListener;

/// How long the page may take to show a change (it refreshes every 2 s).
const PAGE_DEADLINE: Duration = Duration::from_secs(20);

/// A real bridge metrics endpoint (`cdc_bridge::http`) with some telemetry recorded.
struct BridgeMetrics {
    url: String,
    telemetry: cdc_bridge::observability::Telemetry,
    _task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl BridgeMetrics {
    async fn start() -> BridgeMetrics {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind bridge");
        let url = format!("http://{}/metrics", listener.local_addr().expect("addr"));
        let telemetry = cdc_bridge::observability::Telemetry::new();
        telemetry.set_streaming(true);
        for _ in 0..7 {
            telemetry.event_published("OrderPlaced");
        }
        telemetry.dead_lettered("unmapped_code", "t_ord_hdr", 42);
        telemetry.slot_measured(8192, 16384, "reserved", u64::MAX);
        telemetry.snapshot_progress("t_ord_hdr", 250, 0.5);
        let task = tokio::spawn(cdc_bridge::http::serve(
            listener,
            telemetry.clone(),
            std::future::pending(),
        ));
        BridgeMetrics {
            url,
            telemetry,
            _task: task,
        }
    }
}

/// Two upstreams and a gateway in front of them with one capability, `orders`, on the file
/// store; the console reads the bridge at `bridge_url` when given.
struct World {
    gw: Gateway,
    _upstreams: (Backend, Backend),
    _dir: TempDir,
}

impl World {
    async fn start(bridge_url: Option<&str>) -> World {
        let (legacy, new) = (Backend::start("legacy").await, Backend::start("new").await);
        let dir = TempDir::new();
        let console = bridge_url
            .map(|url| format!("[console]\nbridge_metrics_url = \"{url}\"\n"))
            .unwrap_or_default();
        let body = format!(
            "[store]\nkind = \"file\"\npath = \"{}\"\n[[capability]]\nname = \"orders\"\nnew = \"{}\"\nroutes = [{{ prefix = \"/orders\" }}]\n{console}",
            dir.0.join("toggles.json").display(),
            new.url
        );
        let gw = Gateway::start(&dir, &legacy.url, &body).await;
        World {
            gw,
            _upstreams: (legacy, new),
            _dir: dir,
        }
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// Where the screenshot goes.
fn artifact(name: &str) -> PathBuf {
    std::env::var_os("FIG_ARTIFACTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| e2e::private_stack::repo_root().join("target/artifacts"))
        .join(name)
}

/// Signs in on the console with `token` and waits until the page names the role.
async fn sign_in(b: &Browser, console: &str, token: &str, role: &str) {
    b.client.goto(console).await.expect("open the console");
    b.type_into("#token", token).await;
    b.click("#login-button").await;
    wait_for(
        &format!("the page to show role {role}"),
        PAGE_DEADLINE,
        || async {
            b.text("#who")
                .await
                .filter(|t| t.contains(&format!("role {role}")))
        },
    )
    .await;
}

/// Text of the orders row's `cell` once it satisfies `ok`.
async fn wait_cell(b: &Browser, cell: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let css = format!("tr[data-capability=\"orders\"] td[data-cell=\"{cell}\"]");
    wait_for(what, PAGE_DEADLINE, || async {
        b.text(&css).await.filter(|t| ok(t))
    })
    .await
}

/// An operator signs in, sees a refused rollback's message, flips `orders` to new with a reason
/// in the dialog (an empty reason is refused on the page), and the table shows it; the admin API, the audit history and a real
/// proxied request agree; request rates and the bridge's CDC status appear; a screenshot is saved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_flips_a_capability_from_the_console() {
    let bridge = BridgeMetrics::start().await;
    let world = World::start(Some(&bridge.url)).await;
    let gw = &world.gw;
    let http = http();
    let b = Browser::start().await;

    sign_in(&b, &format!("{}/console", gw.admin), OPERATOR, "operator").await;
    assert!(b.text("#who").await.unwrap_or_default().contains("ops"));
    wait_cell(&b, "state", "orders shown on legacy", |t| t == "legacy").await;

    // A change the gateway refuses: its message is shown in the dialog.
    b.click("button[data-action=\"rollback\"][data-capability=\"orders\"]")
        .await;
    b.type_into("#reason", "console test: nothing to roll back yet")
        .await;
    b.click("#reason-confirm").await;
    let refusal = wait_for(
        "the gateway's refusal on the page",
        PAGE_DEADLINE,
        || async { b.text("#reason-error").await.filter(|t| !t.is_empty()) },
    )
    .await;
    assert!(refusal.contains("no previous state"), "{refusal}");
    b.click("#reason-cancel").await;

    b.click("button[data-action=\"new\"][data-capability=\"orders\"]")
        .await;
    b.click("#reason-confirm").await;
    let refused = wait_for("the page to ask for a reason", PAGE_DEADLINE, || async {
        b.text("#reason-error").await.filter(|t| !t.is_empty())
    })
    .await;
    assert!(refused.contains("reason is required"), "{refused}");
    assert_eq!(
        gw.view(&http, "/api/v1/capabilities/orders").await["state"],
        "legacy"
    );

    let reason = "console test: new side verified in staging";
    b.type_into("#reason", reason).await;
    b.click("#reason-confirm").await;
    wait_cell(&b, "state", "the table to show orders on new", |t| {
        t == "new"
    })
    .await;
    let percent = wait_cell(&b, "percent", "100 % to new", |t| t == "100").await;
    assert_eq!(percent, "100");

    // The change took effect: admin API, audit history, and a real request through the proxy.
    assert_eq!(
        gw.view(&http, "/api/v1/capabilities/orders").await["state"],
        "new"
    );
    let history = gw.view(&http, "/api/v1/history?limit=10").await;
    let entry = history
        .as_array()
        .and_then(|h| h.iter().find(|e| e["outcome"] == "applied"))
        .expect("an applied change in the history")
        .clone();
    assert_eq!(
        (&entry["actor"], &entry["to"]["state"], &entry["reason"]),
        (&"ops".into(), &"new".into(), &reason.into())
    );
    for i in 0..20 {
        let (side, body) = gw
            .side(&http, &format!("/orders/{i}"), &[])
            .await
            .expect("proxied request");
        assert_eq!((side.as_str(), body.as_str()), ("new", "new"));
    }
    // Live rates from the gateway's counters, and the CDC figures read from the bridge.
    wait_cell(&b, "new-rate", "a request rate on the new side", |t| {
        t.parse::<f64>().is_ok_and(|r| r > 0.0)
    })
    .await;
    let cdc = wait_for("the CDC panel", PAGE_DEADLINE, || async {
        b.text("#bridge dl[data-bridge=\"reachable\"]").await
    })
    .await;
    assert!(cdc.contains("streaming"), "{cdc}");
    assert!(cdc.contains("8.0 KiB"), "slot lag shown: {cdc}");
    assert!(
        cdc.contains("unmapped_code: 1"),
        "dead letters by reason: {cdc}"
    );
    assert!(cdc.contains("t_ord_hdr 50 %"), "snapshot progress: {cdc}");
    let history_text = b.text("#history").await.unwrap_or_default();
    assert!(history_text.contains(reason), "{history_text}");

    let png = artifact("console.png");
    b.screenshot(&png).await;
    let bytes = std::fs::read(&png).expect("read the screenshot");
    assert!(
        bytes.len() > 1000 && bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG ({} bytes)",
        png.display(),
        bytes.len()
    );
    drop(b);
    world.gw.shutdown().await;
}

/// A viewer sees the capabilities but every action is disabled with a tooltip saying the
/// operator role is needed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_sees_disabled_actions() {
    let world = World::start(None).await;
    let gw = &world.gw;
    let b = Browser::start().await;

    sign_in(&b, &format!("{}/console", gw.admin), VIEWER, "viewer").await;
    wait_cell(&b, "state", "orders shown on legacy", |t| t == "legacy").await;
    let buttons = b
        .client
        .find_all(fantoccini::Locator::Css(
            "tr[data-capability=\"orders\"] button[data-action]",
        ))
        .await
        .expect("action buttons");
    assert_eq!(buttons.len(), 5, "legacy, new, shadow, set %, roll back");
    for button in &buttons {
        assert!(!button.is_enabled().await.expect("enabled?"));
        assert_eq!(
            button.attr("title").await.expect("title").as_deref(),
            Some("operator role needed")
        );
    }
    let cdc = b.text("#bridge").await.unwrap_or_default();
    assert!(cdc.contains("Bridge not configured"), "{cdc}");
    drop(b);
    world.gw.shutdown().await;
}

/// Without a browser: the page and its script are served without a token under a strict CSP
/// and no-framing; data calls need a token and are never cached; the bridge endpoint reads a
/// real bridge's metrics, and says honestly when the bridge is unreachable or not configured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_endpoints_are_secured_and_read_the_bridge() {
    let bridge = BridgeMetrics::start().await;
    let world = World::start(Some(&bridge.url)).await;
    let gw = &world.gw;
    let http = http();

    let page = http
        .get(format!("{}/console", gw.admin))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 200);
    let h = page.headers().clone();
    let csp = h["content-security-policy"].to_str().expect("csp");
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(h["x-frame-options"], "DENY");
    let html = page.text().await.expect("html");
    assert!(html.contains("src=\"/console/app.js\"") && !html.contains("<script>"));
    let js = http
        .get(format!("{}/console/app.js", gw.admin))
        .send()
        .await
        .expect("script");
    assert_eq!(js.status(), 200);
    assert!(
        js.headers()["content-type"]
            .to_str()
            .expect("type")
            .contains("javascript")
    );

    for path in ["/api/v1/overview", "/api/v1/whoami", "/api/v1/bridge"] {
        let anonymous = http
            .get(format!("{}{path}", gw.admin))
            .send()
            .await
            .expect("call");
        assert_eq!(anonymous.status(), 401, "{path} without a token");
        let ok = http
            .get(format!("{}{path}", gw.admin))
            .bearer_auth(VIEWER)
            .send()
            .await
            .expect("call");
        assert_eq!(ok.status(), 200, "{path}");
        assert_eq!(ok.headers()["cache-control"], "no-store", "{path}");
    }
    let me = gw.view(&http, "/api/v1/whoami").await;
    assert_eq!(
        (&me["name"], &me["role"], &me["may_change"]),
        (&"watcher".into(), &"viewer".into(), &false.into())
    );

    let status = gw.view(&http, "/api/v1/bridge").await;
    assert_eq!(
        (&status["configured"], &status["reachable"]),
        (&true.into(), &true.into())
    );
    assert_eq!(status["events_total"], 7.0);
    assert_eq!(status["dead_letters_total"], 1.0);
    assert_eq!(status["slot_lag_bytes"], 8192.0);
    assert_eq!(status["streaming"], true);
    assert_eq!(status["snapshot"]["t_ord_hdr"]["progress"], 0.5);
    assert_eq!(status["snapshot"]["t_ord_hdr"]["rows"], 250.0);
    // Events per second once two scrapes are far enough apart.
    for _ in 0..30 {
        bridge.telemetry.event_published("OrderPlaced");
    }
    let rate = wait_for(
        "events per second from two scrapes",
        PAGE_DEADLINE,
        || async { gw.view(&http, "/api/v1/bridge").await["events_per_second"].as_f64() },
    )
    .await;
    assert!(rate > 0.0, "{rate}");
    world.gw.shutdown().await;

    // A bridge that does not answer, and no bridge configured at all.
    let gone = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let gone_url = format!("http://{}/metrics", gone.local_addr().expect("addr"));
    drop(gone);
    let unreachable = World::start(Some(&gone_url)).await;
    let status = unreachable.gw.view(&http, "/api/v1/bridge").await;
    assert_eq!(
        (&status["configured"], &status["reachable"]),
        (&true.into(), &false.into())
    );
    assert!(
        status["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{status}"
    );
    let unconfigured = World::start(None).await;
    assert_eq!(
        unconfigured.gw.view(&http, "/api/v1/bridge").await["configured"],
        false
    );
}
