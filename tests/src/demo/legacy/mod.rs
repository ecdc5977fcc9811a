//! The legacy monolith of the demo world: a small order-to-cash HTTP application on the reference
//! legacy schema (`deploy/legacy/schema.sql`), writing only to its own database.
//!
//! It behaves the way such systems do: one-letter status codes in `ord_hdr`, transactions that
//! touch several tables at once, a payment provider whose answer arrives in a second transaction,
//! and an outbox row written by the "newer" cancel path. The CDC bridge turns its commits into
//! domain events; it knows nothing about them.
//!
//! | request | what it does |
//! |---|---|
//! | `POST /customers` | registers a customer in `cust_mstr` |
//! | `POST /orders` | header + lines, total computed, validated: status `N` → `A` in one transaction |
//! | `POST /inventory/reservations` | reserves every open line (`inv_rsv`, `R`) |
//! | `POST /orders/{id}/payment/authorize` | `P` while the provider answers, then `S` or `E` |
//! | `POST /orders/{id}/payment/capture` | capture transaction, status `C` |
//! | `POST /orders/{id}/cancel` | `X`, lines cancelled, reservations released, outbox row |
//! | `GET /orders/{id}` (also `/orders/{id}/status`) | the order as [`OrderView`](crate::demo::order_view::OrderView) |

mod error;
mod inventory;
mod orders;
mod payments;
mod view;

pub use error::LegacyError;
pub use view::load_order_view;

use crate::demo::pg_pool::PgPool;
use axum::Router;
use axum::routing::{get, post};
use std::future::Future;
use tokio::net::TcpListener;

/// The reference legacy schema, loaded into a fresh database by the demo and the tests.
pub const SCHEMA_SQL: &str = include_str!("../../../../deploy/legacy/schema.sql");

/// How many database connections the monolith keeps.
pub const DEFAULT_POOL_SIZE: usize = 8;

/// The monolith's routes over its database.
pub fn app(db: PgPool) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/customers", post(orders::register_customer))
        .route("/orders", post(orders::place_order))
        .route("/orders/{id}", get(orders::get_order))
        .route("/orders/{id}/status", get(orders::get_order))
        .route("/orders/{id}/cancel", post(orders::cancel_order))
        .route("/orders/{id}/payment/authorize", post(payments::authorize))
        .route("/orders/{id}/payment/capture", post(payments::capture))
        .route("/inventory/reservations", post(inventory::reserve))
        .with_state(db)
}

/// Serves the monolith on `listener` until `shutdown` resolves.
pub async fn serve(
    db: PgPool,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(db))
        .with_graceful_shutdown(shutdown)
        .await
}
