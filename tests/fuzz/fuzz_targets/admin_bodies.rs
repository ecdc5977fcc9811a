//! The admin API's JSON request bodies (toggle, rollback, explain) on arbitrary bytes, sent as an
//! authorised operator through the real admin router (`gateway::admin::app`) backed by a file
//! store: a bad body is a 4xx with a short JSON reason, never a panic or a 5xx.
//!
//! Input layout: the first byte picks the endpoint and capability, the rest is the body.

#![no_main]

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use gateway::admin::auth::Tokens;
use gateway::admin::{self, AdminState};
use gateway::control::ControlPlane;
use gateway::observability::Metrics;
use gateway::route::RouteTable;
use gateway::store::Store;
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use tokio::runtime::Runtime;
use tower::ServiceExt;

const OPERATOR: &str = "fuzz-operator-token-0123456789";
/// How much longer than the body a 4xx reason may be: a sentence, not a dump.
const REASON_OVERHEAD_BYTES: usize = 512;

/// The audit log is emptied once it grows past this, so long runs stay small in tmpfs.
const MAX_AUDIT_BYTES: u64 = 4 * 1024 * 1024;
const SCRATCH_PREFIX: &str = "fig-fuzz-admin-";

struct Admin {
    runtime: Runtime,
    router: axum::Router,
    audit_log: PathBuf,
}

/// A scratch directory on tmpfs when there is one: the file store syncs every audit line.
fn scratch() -> PathBuf {
    let base = ["/dev/shm", "/tmp"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    // Scratch directories of earlier runs whose process is gone.
    for entry in std::fs::read_dir(&base).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix(SCRATCH_PREFIX)
            && !PathBuf::from(format!("/proc/{pid}")).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let dir = base.join(format!("{SCRATCH_PREFIX}{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

fn admin() -> &'static Admin {
    static ADMIN: OnceLock<Admin> = OnceLock::new();
    ADMIN.get_or_init(|| {
        let dir = scratch();
        let audit_log = dir.join("toggles.json.audit.jsonl");
        let text = format!(
            "listen = \"127.0.0.1:1\"\nlegacy = \"http://127.0.0.1:2\"\n\
             [admin]\nlisten = \"127.0.0.1:3\"\n\
             [store]\nkind = \"file\"\npath = \"{}\"\n\
             [[capability]]\nname = \"orders\"\nnew = \"http://127.0.0.1:4\"\n\
             routes = [{{ prefix = \"/orders\" }}, {{ path = \"/orders/{{id}}/payment\", methods = [\"POST\"] }}]\n\
             [[capability]]\nname = \"customers\"\nnew = \"http://127.0.0.1:5\"\n\
             state = \"percent\"\npercent = 10\nsticky = {{ header = \"x-user\" }}\n\
             routes = [{{ prefix = \"/customers\", host = \"shop.example\" }}]\n",
            dir.join("toggles.json").display()
        );
        let config = gateway::Config::parse(&text).expect("fuzz config parses");
        assert!(config.validate().is_empty(), "fuzz config is valid");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let router = runtime.block_on(async {
            let table = Arc::new(RouteTable::build(&config).expect("route table"));
            let metrics = Arc::new(Metrics::new(&table));
            let store = Store::open(&config.store).await.expect("file store");
            let stored = store.load().await.expect("stored toggles");
            let control = Arc::new(ControlPlane::new(table, &stored, store, metrics.clone()));
            let tokens = Tokens::parse(&format!("fuzz:operator:{OPERATOR}"), "fuzz").expect("token");
            admin::app(AdminState {
                control,
                tokens: Arc::new(tokens),
                metrics,
            })
        });
        Admin {
            runtime,
            router,
            audit_log,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let capability = if selector & 0x10 == 0 {
        "orders"
    } else {
        "nope"
    };
    let (method, path) = match selector % 3 {
        0 => (
            Method::PUT,
            format!("/api/v1/capabilities/{capability}/toggle"),
        ),
        1 => (
            Method::POST,
            format!("/api/v1/capabilities/{capability}/rollback"),
        ),
        _ => (Method::POST, "/api/v1/explain".to_string()),
    };
    let mut request = Request::builder()
        .method(method)
        .uri(&path)
        .header(header::AUTHORIZATION, format!("Bearer {OPERATOR}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_vec()))
        .expect("request");
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 9))));
    let admin = admin();
    if std::fs::metadata(&admin.audit_log).is_ok_and(|m| m.len() > MAX_AUDIT_BYTES) {
        let _ = std::fs::write(&admin.audit_log, b"");
    }
    let (status, reply) = admin.runtime.block_on(async {
        let response = admin
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("router is infallible");
        let status = response.status();
        let reply = response
            .into_body()
            .collect()
            .await
            .expect("response body")
            .to_bytes();
        (status, reply)
    });
    assert!(
        !status.is_server_error(),
        "{path} answered {status} to a client's body: {}",
        String::from_utf8_lossy(&reply)
    );
    if status.is_client_error() && status != StatusCode::CONFLICT {
        let reason: serde_json::Value =
            serde_json::from_slice(&reply).expect("a 4xx carries a JSON reason");
        let text = reason["error"]
            .as_str()
            .expect("the reason is under `error`");
        assert!(
            !text.is_empty() && text.len() <= body.len() + REASON_OVERHEAD_BYTES,
            "{path} {status}: reason of {} bytes",
            text.len()
        );
    }
});
