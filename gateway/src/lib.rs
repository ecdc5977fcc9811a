//! The edge gateway: capability routing, runtime toggles, sticky rollout, an admin API.
//!
//! How a request flows: [`proxy`] accepts it on the public listener, reads the current
//! [`control::Live`] snapshot (route table + toggles, swapped whole through `ArcSwap`), asks the pure
//! [`route::find`] which capability and side it belongs to, and streams it to that side's pooled
//! upstream client. The [`admin`] listener changes toggles: each change is checked, persisted in
//! the [`store`] (a local file, or PostgreSQL shared by replicas), audited, and swapped in as a
//! complete new snapshot. [`app::serve`] wires it all with injected listeners and shutdown.

pub mod admin;
pub mod app;
pub mod audit;
pub mod config;
pub mod control;
pub mod error;
pub mod observability;
pub mod proxy;
pub mod resilience;
pub mod route;
pub mod shadow;
pub mod store;
pub mod toggle;

pub use app::serve;
pub use config::Config;
pub use error::GatewayError;
