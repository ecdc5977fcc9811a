//! The demo world end to end: the legacy monolith on its own database, the order-status service
//! fed from Kafka, and the migration journey through the gateway.
//!
//! Everything runs in-process on 127.0.0.1:0 against the real local stack: no prior build needed.

mod apps;
mod legacy_flow;
mod migration;
mod order_service;
