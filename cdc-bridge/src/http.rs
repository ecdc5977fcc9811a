//! `/metrics` (Prometheus text), `/health/live` (the process answers) and `/health/ready`
//! (this instance is streaming; a standby or a restarting session answers 503).

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::observability::Telemetry;

/// The router, without a socket (tests call it directly).
pub fn app(telemetry: Telemetry) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/health/live", get(|| async { "live\n" }))
        .route("/health/ready", get(ready))
        .with_state(telemetry)
}

async fn metrics(State(t): State<Telemetry>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        t.encode(),
    )
}

async fn ready(State(t): State<Telemetry>) -> impl IntoResponse {
    if t.is_streaming() {
        (StatusCode::OK, "streaming\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not streaming\n")
    }
}

/// Serves [`app`] on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    telemetry: Telemetry,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(telemetry))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get_status(t: Telemetry, path: &str) -> (u16, String) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(serve(listener, t, std::future::pending()));
        let resp = reqwest::get(format!("http://{addr}{path}"))
            .await
            .expect("request");
        let out = (
            resp.status().as_u16(),
            resp.text().await.unwrap_or_default(),
        );
        server.abort();
        out
    }

    /// Ready only while streaming; metrics are served in the Prometheus format.
    #[tokio::test]
    async fn ready_follows_streaming_and_metrics_are_served() {
        let t = Telemetry::new();
        assert_eq!(get_status(t.clone(), "/health/ready").await.0, 503);
        assert_eq!(get_status(t.clone(), "/health/live").await.0, 200);
        t.set_streaming(true);
        assert_eq!(get_status(t.clone(), "/health/ready").await.0, 200);
        let (status, body) = get_status(t, "/metrics").await;
        assert_eq!(status, 200);
        assert!(body.contains("fig_bridge_streaming 1"), "{body}");
    }
}
