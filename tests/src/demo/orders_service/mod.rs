//! The new order-status service: takes over `GET /orders/{id}` from the legacy monolith, with
//! state built only from the domain events the CDC bridge publishes.
//!
//! ```text
//! Kafka (read_committed) ─▶ consumer ─▶ decode (registry) ─▶ store: inbox + projection, one tx
//!                                                                   │ then offset commit
//! GET /orders/{id} ─▶ http ─▶ store::load_view ─▶ projection::view ◀┘
//! ```
//!
//! [`projection`] is pure (event in, state change out); [`store`] owns its database; [`consumer`]
//! owns Kafka. It answers with the legacy JSON shape for the fields both know, plus `detail`, an
//! honest sentence of what is still being confirmed, and `as_of`.

pub mod consumer;
mod error;
pub mod observability;
pub mod projection;
pub mod registry;
pub mod store;

pub use consumer::ConsumerConfig;
pub use error::OrderServiceError;

use crate::demo::pg_pool::PgPool;
use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use observability::Metrics;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// How many database connections the HTTP side keeps.
pub const DEFAULT_POOL_SIZE: usize = 4;

#[derive(Clone)]
struct AppState {
    db: PgPool,
    metrics: Arc<Metrics>,
}

/// The HTTP routes: the order look-up, health and metrics.
pub fn app(db: PgPool, metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/metrics", get(metrics_text))
        .route("/orders/{id}", get(get_order))
        .route("/orders/{id}/status", get(get_order))
        .with_state(AppState { db, metrics })
}

async fn metrics_text(State(s): State<AppState>) -> String {
    s.metrics.render()
}

async fn get_order(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, OrderServiceError> {
    let client =
        s.db.get()
            .await
            .map_err(OrderServiceError::db("connecting"))?;
    Ok(match store::load_view(&*client, &id).await? {
        Some(view) => Json(view).into_response(),
        None => {
            let body = serde_json::json!({
                "error": format!("order {id} is not known here yet"),
                "detail": "orders appear once their submission has arrived from the legacy system",
            });
            (StatusCode::NOT_FOUND, Json(body)).into_response()
        }
    })
}

/// Runs the consumer and the HTTP side until `shutdown` resolves; creates the tables first.
pub async fn serve(
    database: &str,
    consumer: ConsumerConfig,
    listener: TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), OrderServiceError> {
    let db = PgPool::connect(database, DEFAULT_POOL_SIZE)
        .await
        .map_err(OrderServiceError::db("connecting"))?;
    store::migrate(
        &*db.get()
            .await
            .map_err(OrderServiceError::db("connecting"))?,
    )
    .await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let database = database.to_string();
    let consumer_metrics = metrics.clone();
    let consumer_stop = stopped(stop_rx.clone());
    let mut consumer_task = tokio::spawn(async move {
        consumer::consume(&consumer, &database, consumer_metrics, consumer_stop).await
    });
    let http = axum::serve(listener, app(db, metrics)).with_graceful_shutdown(stopped(stop_rx));
    let http_task = tokio::spawn(async move { http.await });
    // Stop on the signal, or when the consumer gives up (a definite Kafka failure).
    let ended = tokio::select! {
        () = shutdown => None,
        r = &mut consumer_task => Some(r),
    };
    let _ = stop_tx.send(true);
    let _ = http_task.await;
    let ended = match ended {
        Some(r) => r,
        None => consumer_task.await,
    };
    ended.unwrap_or_else(|join| {
        tracing::error!(error = %join, "order-status consumer task failed");
        Ok(())
    })
}
