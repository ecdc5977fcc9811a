//! The edge gateway: capability routing, runtime toggles, failure isolation.

pub mod resilience;
pub mod shadow;
