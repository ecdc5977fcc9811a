//! Shadow traffic end to end: legacy answers the client with its exact bytes while new gets a
//! copy of the request off the client's path; a crafted difference is recorded as a mismatch, a
//! field that changes on every legacy call is subtracted as noise, and a request body over the
//! copy bound skips the shadow without touching the primary.

use axum::Router;
use axum::body::Bytes;
use axum::http::Uri;
use axum::response::IntoResponse;
use e2e::wait_for;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

use super::support::{Gateway, TempDir};
use super::{http, metric, store};

/// A JSON upstream: `{"id", "total", "received", "generated_at"}`. Legacy's `generated_at`
/// changes on every call (noise); new answers `total` 11 for id `crafted` (a real mismatch).
/// Every body sent is kept, so the test can check the client got one of legacy's exact answers.
struct JsonUpstream {
    url: String,
    sent: Arc<Mutex<Vec<String>>>,
}

impl JsonUpstream {
    async fn start(is_new: bool) -> JsonUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let calls = Arc::new(AtomicU64::new(0));
        let kept = sent.clone();
        let app = Router::new().fallback(move |uri: Uri, body: Bytes| {
            let (kept, calls) = (kept.clone(), calls.clone());
            async move {
                let id = uri.path().rsplit('/').next().unwrap_or("").to_string();
                let n = calls.fetch_add(1, Ordering::SeqCst);
                let total = if is_new && id == "crafted" { 11 } else { 10 };
                let generated_at = if is_new { 0 } else { 1_000 + n };
                let text = json!({
                    "id": id,
                    "total": total,
                    "received": body.len(),
                    "generated_at": generated_at,
                })
                .to_string();
                kept.lock().expect("lock").push(text.clone());
                ([("content-type", "application/json")], text).into_response()
            }
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        JsonUpstream { url, sent }
    }

    fn sent(&self) -> Vec<String> {
        self.sent.lock().expect("lock").clone()
    }
}

/// Shadow at 100% with noise subtraction: the crafted difference is the one mismatch kept (with
/// its diff, served to a viewer), the ever-changing `generated_at` is noise, an over-bound body
/// skips the shadow, and every client gets legacy's exact bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shadow_finds_the_crafted_mismatch_ignores_noise_and_never_alters_the_answer() {
    let (legacy, new) = (
        JsonUpstream::start(false).await,
        JsonUpstream::start(true).await,
    );
    let dir = TempDir::new();
    let config = format!(
        "{}[[capability]]\nname = \"orders\"\nnew = \"{}\"\nstate = \"shadow\"\npercent = 100\n\
         routes = [{{ prefix = \"/orders\" }}]\n\
         [capability.shadow]\nnoise_subtraction = true\nmax_body_bytes = 64\n",
        store(&dir),
        new.url
    );
    let gw = Gateway::start(&dir, &legacy.url, &config).await;
    let http = http();
    let mut answers = Vec::new();
    for (path, body) in [
        ("/orders/1", Vec::new()),
        ("/orders/crafted", Vec::new()),
        ("/orders/big", vec![b'x'; 4096]),
    ] {
        let resp = http
            .get(format!("{}{path}", gw.public))
            .body(body)
            .send()
            .await
            .expect("answered");
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(resp.headers()["x-fig-side"], "legacy", "{path}");
        answers.push(resp.text().await.expect("body"));
    }
    let big: Value = serde_json::from_str(&answers[2]).expect("json");
    assert_eq!(
        big["received"], 4096,
        "the primary got the whole over-bound body"
    );

    let report = wait_for("the shadow comparisons", Duration::from_secs(10), || {
        let (http, gw) = (&http, &gw);
        async move {
            let v = gw
                .view(http, "/api/v1/capabilities/orders/mismatches")
                .await;
            let counts = &v["counts"];
            (counts["compared"] == 2 && counts["skipped"]["body_over_bound"] == 1).then_some(v)
        }
    })
    .await;
    let sent_by_legacy = legacy.sent();
    for answer in &answers {
        assert!(
            sent_by_legacy.contains(answer),
            "the client got bytes legacy never sent: {answer}"
        );
    }
    assert_eq!(
        new.sent().len(),
        2,
        "new saw the two shadowed requests only"
    );
    assert_eq!(report["counts"]["mismatched"], 1, "{report}");
    assert!(
        report["counts"]["noise_subtracted"].as_u64() >= Some(2),
        "generated_at is noise on both comparisons: {report}"
    );
    let kept = report["mismatches"].as_array().expect("mismatches");
    assert_eq!(kept.len(), 1, "{report}");
    assert_eq!(kept[0]["path"], "/orders/crafted");
    let diff = kept[0]["comparison"].to_string();
    assert!(diff.contains("total"), "the diff names the field: {diff}");
    assert!(
        !diff.contains("generated_at"),
        "noise is not reported: {diff}"
    );
    let mismatches = metric(
        &http,
        &gw,
        gateway::observability::SHADOW,
        &["capability=\"orders\"", "outcome=\"mismatch\""],
    )
    .await;
    assert_eq!(mismatches, 1.0, "the mismatch is counted in metrics");
    gw.shutdown().await;
}
