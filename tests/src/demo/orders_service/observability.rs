//! Metric names of the order-status service, in one place, and their registry.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

/// Events applied that changed an order's state.
pub const EVENTS_APPLIED: &str = "fig_demo_order_events_applied";
/// Events recorded in the inbox that concern no order status.
pub const EVENTS_RECORDED: &str = "fig_demo_order_events_recorded";
/// Events whose id was already in the inbox (nothing changed).
pub const EVENTS_DUPLICATE: &str = "fig_demo_order_events_duplicate";
/// Messages that could not be decoded, recorded in `rejected_message`.
pub const MESSAGES_REJECTED: &str = "fig_demo_order_messages_rejected";

/// The service's counters.
#[derive(Default)]
pub struct Metrics {
    /// See [`EVENTS_APPLIED`].
    pub applied: Counter,
    /// See [`EVENTS_RECORDED`].
    pub recorded: Counter,
    /// See [`EVENTS_DUPLICATE`].
    pub duplicates: Counter,
    /// See [`MESSAGES_REJECTED`].
    pub rejected: Counter,
}

impl Metrics {
    /// Every event the consumer took in (applied, recorded or duplicate).
    pub fn consumed(&self) -> u64 {
        self.applied.get() + self.recorded.get() + self.duplicates.get()
    }

    /// The Prometheus text exposition of the counters.
    pub fn render(&self) -> String {
        let mut registry = Registry::default();
        registry.register(
            EVENTS_APPLIED,
            "Events that changed an order",
            self.applied.clone(),
        );
        registry.register(
            EVENTS_RECORDED,
            "Events about no order status",
            self.recorded.clone(),
        );
        registry.register(
            EVENTS_DUPLICATE,
            "Events seen before",
            self.duplicates.clone(),
        );
        registry.register(
            MESSAGES_REJECTED,
            "Undecodable messages",
            self.rejected.clone(),
        );
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}
