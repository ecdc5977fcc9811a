//! The demo world: a legacy monolith, the new service taking over one capability from it, and the
//! scripted migration journey between them.
//!
//! ```text
//! journey ──▶ gateway ──▶ legacy (writes, reads)  ──▶ legacy PostgreSQL ──▶ cdc-bridge ──▶ Kafka
//!                    └──▶ orders_service (reads of `GET /orders/{id}`) ◀── domain events ◀──┘
//! ```
//!
//! - [`legacy`]: order-to-cash HTTP app on the reference legacy schema;
//! - [`orders_service`]: the order-status capability rebuilt from domain events;
//! - [`journey`]: load generator and the scripted migration through the gateway's admin API;
//! - [`order_view`]: the JSON both answer `GET /orders/{id}` with;
//! - [`pg_pool`]: a few shared database connections;
//! - [`domain_event`]: events built the way the bridge builds them, for tests.
//!
//! The binaries `legacy_monolith`, `orders_service` and `journey` are thin wrappers over these
//! modules; the end-to-end test `journey` runs the same code in-process.

pub mod domain_event;
pub mod journey;
pub mod legacy;
pub mod order_view;
pub mod orders_service;
pub mod pg_pool;

/// Resolves on SIGINT or SIGTERM: the shutdown signal of the demo binaries.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
