//! The end-to-end test binary: one module per area, all against the real local stack
//! (`deploy/local/up`).

mod bridge;
mod console;
mod deploy;
mod gateway;
mod journey;
mod reconcile;
mod resilience;
mod security;
mod smoke;
