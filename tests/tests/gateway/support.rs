//! Real upstreams and real gateways on 127.0.0.1:0 for the gateway tests.

use axum::Router;
use axum::extract::Request;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use e2e::unique_name;
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Operator token written to every test gateway's tokens file.
pub const OPERATOR: &str = "operator-token-0123456789";
/// Viewer token.
pub const VIEWER: &str = "viewer-token-0123456789ab";

/// An HTTP upstream that answers every request with its own name, and `/echo/...` with the
/// request headers it received as JSON.
pub struct Backend {
    pub url: String,
    _task: JoinHandle<()>,
}

impl Backend {
    pub async fn start(name: &'static str) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind backend");
        let addr = listener.local_addr().expect("addr");
        let app = Router::new().fallback(move |req: Request| async move {
            if req.uri().path().starts_with("/echo") {
                let seen: serde_json::Map<String, serde_json::Value> = req
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("?").into()))
                    .collect();
                let mut h = HeaderMap::new();
                h.insert("connection", "keep-alive, x-hop".parse().expect("value"));
                h.insert("x-hop", "secret".parse().expect("value"));
                return (h, axum::Json(serde_json::Value::Object(seen))).into_response();
            }
            name.into_response()
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Backend {
            url: format!("http://{addr}"),
            _task: task,
        }
    }
}

/// An upstream that speaks only HTTP/2 over cleartext (prior knowledge) and answers
/// "{version} {method} {path} {body}", so a test sees what reached it.
pub struct Http2Backend {
    pub url: String,
    _task: JoinHandle<()>,
}

impl Http2Backend {
    pub async fn start() -> Http2Backend {
        use http_body_util::BodyExt;
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind h2 backend");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let service = hyper::service::service_fn(
                    |req: hyper::Request<hyper::body::Incoming>| async move {
                        let head =
                            format!("{:?} {} {}", req.version(), req.method(), req.uri().path());
                        let body = req.into_body().collect().await?.to_bytes();
                        let text = format!("{head} {}", String::from_utf8_lossy(&body));
                        Ok::<_, hyper::Error>(hyper::Response::new(http_body_util::Full::new(
                            bytes::Bytes::from(text),
                        )))
                    },
                );
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http2::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
                });
            }
        });
        Http2Backend {
            url: format!("http://{addr}"),
            _task: task,
        }
    }
}

/// A scratch directory, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let dir = std::env::temp_dir().join(unique_name("fig_gw"));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A gateway running in this process on port 0.
pub struct Gateway {
    pub public: String,
    pub admin: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), gateway::GatewayError>>>,
}

impl Gateway {
    /// Starts a gateway. `body` is the TOML after `legacy`, `listen` and `[admin]`, which this
    /// fills in (tokens file in `dir`).
    pub async fn start(dir: &TempDir, legacy: &str, body: &str) -> Gateway {
        let public = TcpListener::bind("127.0.0.1:0").await.expect("bind public");
        let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind admin");
        let (pa, aa): (SocketAddr, SocketAddr) = (
            public.local_addr().expect("addr"),
            admin.local_addr().expect("addr"),
        );
        let tokens = dir.0.join("tokens");
        std::fs::write(
            &tokens,
            format!("ops:operator:{OPERATOR}\nwatcher:viewer:{VIEWER}\n"),
        )
        .expect("write tokens");
        let text = format!(
            "listen = \"{pa}\"\nlegacy = \"{legacy}\"\nexpose_side_header = true\ndrain_timeout = \"2s\"\n{body}\n[admin]\nlisten = \"{aa}\"\ntokens_file = \"{}\"\n",
            tokens.display()
        );
        let config =
            gateway::Config::parse(&text).unwrap_or_else(|p| panic!("test config: {p:?}\n{text}"));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(gateway::serve(config, public, admin, async {
            let _ = stopped.await;
        }));
        Gateway {
            public: format!("http://{pa}"),
            admin: format!("http://{aa}"),
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops accepting, drains, and waits for the gateway to return.
    pub async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await
                .expect("gateway task")
                .expect("gateway ended cleanly");
        }
    }

    /// `PUT .../toggle` with `token`; returns the status.
    pub async fn set(
        &self,
        http: &reqwest::Client,
        token: Option<&str>,
        capability: &str,
        body: serde_json::Value,
    ) -> reqwest::StatusCode {
        let mut req = http
            .put(format!(
                "{}/api/v1/capabilities/{capability}/toggle",
                self.admin
            ))
            .json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("admin call").status()
    }

    /// `GET` an admin path as the viewer, as JSON.
    pub async fn view(&self, http: &reqwest::Client, path: &str) -> serde_json::Value {
        let resp = http
            .get(format!("{}{path}", self.admin))
            .bearer_auth(VIEWER)
            .send()
            .await
            .expect("admin call");
        assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
        resp.json().await.expect("json")
    }

    /// The side that answers `path` with `headers`: (x-fig-side, body).
    pub async fn side(
        &self,
        http: &reqwest::Client,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<(String, String), String> {
        let mut req = http.get(format!("{}{path}", self.public));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let status = resp.status();
        let side = resp
            .headers()
            .get("x-fig-side")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = resp.text().await.map_err(|e| format!("body failed: {e}"))?;
        if !status.is_success() {
            return Err(format!("status {status}: {body}"));
        }
        Ok((side, body))
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}
