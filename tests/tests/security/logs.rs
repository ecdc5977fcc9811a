//! Secrets (admin tokens, the forced-side secret) never reach the gateway's log, audit history
//! or files, nor the upstreams behind it.

use std::io::Write;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

use super::support::{Gateway, OPERATOR, TempDir, VIEWER};
use super::{FORCE_HEADER, FORCE_SECRET, Rig, admin_routes, call, http, orders};

/// A `tracing` writer that keeps everything written to it, for the log assertions.
#[derive(Clone, Default)]
struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl Write for CapturedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLog {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log")).into_owned()
    }
}

/// With every log level on, admin tokens (valid, wrong, near misses) and the forced-side secret
/// never appear in the gateway's log, its audit history or its files, across authorised,
/// refused and failing calls and forced-side requests.
#[tokio::test]
async fn secrets_never_appear_in_logs() {
    let log = CapturedLog::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // The test runs on a current-thread runtime: the gateway's tasks run on this thread. While
    // only one dispatcher exists, tracing-core asks the *calling thread's* dispatcher whether a
    // new callsite is wanted, so a callsite first hit by a parallel test (no subscriber) would be
    // cached as never enabled. A second, silent dispatcher makes it ask every dispatcher.
    let _guard = tracing::subscriber::set_default(subscriber);
    let _every_dispatcher_asked = tracing::Dispatch::new(tracing_subscriber::registry());

    let Rig {
        legacy,
        new: _new,
        gw,
        dir,
    } = Rig::start().await;
    let http = http();
    let wrong_token = "wrong-token-3f9d2c7a1e5b";
    let near_miss = &OPERATOR[..OPERATOR.len() - 2];
    for auth in [
        format!("Bearer {OPERATOR}"),
        format!("Bearer {VIEWER}"),
        format!("Bearer {wrong_token}"),
        format!("Bearer {near_miss}"),
        format!("Basic {OPERATOR}"),
    ] {
        for (method, path, body) in admin_routes() {
            call(&http, &gw.admin, method, path, Some(&auth), body).await;
        }
    }
    for value in [
        format!("new:{FORCE_SECRET}"),
        format!("legacy:{FORCE_SECRET}"),
        format!("new:{FORCE_SECRET}x"),
    ] {
        gw.side(&http, "/orders/1", &[(FORCE_HEADER, &value)])
            .await
            .expect("forced request");
    }
    // An upstream failure logs a warning for the forced request that hit it.
    let dead = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let dead_url = format!("http://{}", dead.local_addr().expect("addr"));
    drop(dead);
    let dir2 = TempDir::new();
    let broken = Gateway::start(&dir2, &legacy.url, &orders(&dir2, &dead_url)).await;
    let failed = broken
        .side(
            &http,
            "/orders/1",
            &[(FORCE_HEADER, &format!("new:{FORCE_SECRET}"))],
        )
        .await;
    assert!(
        failed.is_err(),
        "the dead new side cannot answer: {failed:?}"
    );
    broken.shutdown().await;
    let history = gw
        .view(&http, "/api/v1/history?limit=1000")
        .await
        .to_string();
    gw.shutdown().await;

    let text = log.text();
    for expected in [
        "gateway serving",
        "toggle changed",
        "admin attempt refused",
        "upstream call failed",
    ] {
        assert!(
            text.contains(expected),
            "log capture works: no `{expected}` in\n{text}"
        );
    }
    let mut files = String::new();
    for d in [&dir, &dir2] {
        for entry in std::fs::read_dir(&d.0).expect("dir").flatten() {
            if entry.file_name() != "tokens" {
                files.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
            }
        }
    }
    for secret in [OPERATOR, VIEWER, wrong_token, near_miss, FORCE_SECRET] {
        let leaks: Vec<&str> = text.lines().filter(|l| l.contains(secret)).collect();
        assert!(leaks.is_empty(), "a secret is in the log: {leaks:#?}");
        assert!(
            !history.contains(secret),
            "a secret is in the audit history: {history}"
        );
        assert!(
            !files.contains(secret),
            "a secret is in the gateway's files: {files}"
        );
    }
}

/// The forced-side header carries a secret meant for the gateway alone: a forced request is
/// answered by the side it asks for, and neither upstream ever receives the secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_side_secret_never_reaches_an_upstream() {
    let Rig {
        legacy,
        new,
        gw,
        dir: _dir,
    } = Rig::start().await;
    let http = http();
    for (side, value) in [
        ("new", format!("new:{FORCE_SECRET}")),
        ("legacy", format!("legacy:{FORCE_SECRET}")),
    ] {
        let (answered, _) = gw
            .side(&http, "/orders/1", &[(FORCE_HEADER, &value)])
            .await
            .expect("forced request");
        assert_eq!(answered, side, "the forced side answers");
    }
    let heads: Vec<String> = legacy.heads().into_iter().chain(new.heads()).collect();
    assert_eq!(heads.len(), 2, "one request per side: {heads:?}");
    for head in heads {
        assert!(
            !head.contains(FORCE_SECRET),
            "an upstream received the secret:\n{head}"
        );
    }
    gw.shutdown().await;
}
