//! The order-status projection, pure: what one domain event changes in the state of one order,
//! and how that state reads as an [`OrderView`].
//!
//! Events about one order arrive on three topics (order, payment and reservation aggregates), so
//! only the order's own events are in order with each other. The state is therefore kept per
//! source — the status from order events, each payment and each reservation by its own id — and
//! the view is derived from all of them, the way the legacy look-up derives it from its tables.
//! That makes the result independent of how the three topics interleave.

use crate::demo::order_view::{Money, OrderStatus, OrderView, PaymentState, StockState};
use contracts::{DomainEvent, Payload, TimestampMicros};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Provider result code that means "no answer"; such a failure leaves the payment open.
pub const PROVIDER_UNAVAILABLE: &str = "91";

/// What the service knows about one order (stored as JSON in its own database).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderState {
    /// Set once `OrderSubmitted` was seen: until then the order is not shown.
    pub customer_id: Option<String>,
    /// Name of the last order status event's status.
    pub status: Option<String>,
    /// Amount and currency of the order total.
    pub total: Option<(String, String)>,
    /// Exception reason from `OrderException`.
    pub exception_reason: Option<String>,
    /// Each payment transaction by id: `authorized`, `declined`, `unanswered`, `captured`.
    pub payments: BTreeMap<String, String>,
    /// Each reservation by id: `reserved` or `released`.
    pub reservations: BTreeMap<String, String>,
    /// `occurred_at` of the latest event applied, µs since the epoch.
    pub last_occurred_at: Option<i64>,
}

/// The order an event is about, when it is about an order's status at all.
pub fn order_of(event: &DomainEvent) -> Option<&str> {
    Some(match &event.payload {
        Payload::OrderSubmitted(e) => &e.order_id,
        Payload::OrderAccepted(e) => &e.order_id,
        Payload::OrderPaymentPending(e) => &e.order_id,
        Payload::OrderSecured(e) => &e.order_id,
        Payload::OrderConfirmed(e) => &e.order_id,
        Payload::OrderCancelled(e) => &e.order_id,
        Payload::OrderException(e) => &e.order_id,
        Payload::PaymentAuthorized(e) => &e.order_id,
        Payload::PaymentAuthorizationFailed(e) => &e.order_id,
        Payload::PaymentCaptured(e) => &e.order_id,
        Payload::StockReserved(e) => &e.order_id,
        Payload::ReservationReleased(e) => &e.order_id,
        _ => return None,
    })
}

fn money(m: &contracts::Money) -> (String, String) {
    (m.amount().round_dp(2).to_string(), m.currency().to_string())
}

/// Applies `event` to `state`. Events that do not concern order status change nothing.
pub fn apply(state: &mut OrderState, event: &DomainEvent) {
    let status = |s: OrderStatus| Some(s.name().to_string());
    match &event.payload {
        Payload::OrderSubmitted(e) => {
            state.customer_id = Some(e.customer_id.clone());
            state.total = Some(money(&e.total));
            state.status = status(OrderStatus::Submitted);
        }
        Payload::OrderAccepted(e) => {
            state.customer_id = Some(e.customer_id.clone());
            state.status = status(OrderStatus::Accepted);
        }
        Payload::OrderPaymentPending(e) => {
            state.total = Some(money(&e.total));
            state.status = status(OrderStatus::PendingPayment);
        }
        Payload::OrderSecured(e) => {
            state.total = Some(money(&e.total));
            state.status = status(OrderStatus::Secured);
        }
        Payload::OrderConfirmed(_) => state.status = status(OrderStatus::Confirmed),
        Payload::OrderCancelled(_) => state.status = status(OrderStatus::Cancelled),
        Payload::OrderException(e) => {
            state.status = status(OrderStatus::Exception);
            state.exception_reason = e.reason.clone();
        }
        Payload::PaymentAuthorized(e) => {
            state
                .payments
                .insert(e.payment_id.clone(), "authorized".into());
        }
        Payload::PaymentAuthorizationFailed(e) => {
            let outcome = if e.provider_result_code == PROVIDER_UNAVAILABLE {
                "unanswered"
            } else {
                "declined"
            };
            state.payments.insert(e.payment_id.clone(), outcome.into());
        }
        Payload::PaymentCaptured(e) => {
            state
                .payments
                .insert(e.payment_id.clone(), "captured".into());
        }
        Payload::StockReserved(e) => {
            state
                .reservations
                .insert(e.reservation_id.clone(), "reserved".into());
        }
        Payload::ReservationReleased(e) => {
            state
                .reservations
                .insert(e.reservation_id.clone(), "released".into());
        }
        _ => return,
    }
    let at = event.envelope.occurred_at_micros;
    state.last_occurred_at = Some(state.last_occurred_at.map_or(at, |t| t.max(at)));
}

/// Captured if any capture was seen; otherwise the outcome of the latest authorisation (by
/// payment id, as the legacy sequence hands them out).
pub fn payment_state(state: &OrderState) -> PaymentState {
    if state.payments.values().any(|p| p == "captured") {
        return PaymentState::Captured;
    }
    let latest = state
        .payments
        .iter()
        .max_by_key(|(id, _)| (id.parse::<i64>().ok(), id.as_str()));
    match latest.map(|(_, outcome)| outcome.as_str()) {
        Some("authorized") => PaymentState::Authorized,
        Some("declined") => PaymentState::Declined,
        _ => PaymentState::None,
    }
}

/// Reserved while any reservation holds stock; released once all were released.
pub fn stock_state(state: &OrderState) -> StockState {
    if state.reservations.values().any(|r| r == "reserved") {
        StockState::Reserved
    } else if state.reservations.is_empty() {
        StockState::None
    } else {
        StockState::Released
    }
}

/// What is still open, in words a customer understands.
pub fn detail(status: Option<OrderStatus>, payment: PaymentState, stock: StockState) -> String {
    use OrderStatus as S;
    match (status, payment, stock) {
        (Some(S::Submitted), ..) => "received, validating".into(),
        (Some(S::Accepted), _, StockState::Reserved) => {
            "accepted, stock reserved, confirming payment".into()
        }
        (Some(S::Accepted), ..) => "accepted, confirming payment and stock".into(),
        (Some(S::PendingPayment), ..) => "stock reserved, waiting for the payment provider".into(),
        (Some(S::Secured), ..) => "payment authorised and stock reserved, confirming".into(),
        (Some(S::Confirmed), ..) => "confirmed, fulfilment may start".into(),
        (Some(S::Cancelled), ..) => "cancelled".into(),
        (Some(S::Exception), ..) => "on hold, a person is looking at it".into(),
        (None, ..) => "received, details still arriving".into(),
    }
}

/// The order as `GET /orders/{id}` shows it, or `None` while `OrderSubmitted` has not arrived.
pub fn view(order_id: &str, state: &OrderState) -> Option<OrderView> {
    let customer_id = state.customer_id.clone()?;
    let status = state.status.as_deref().and_then(OrderStatus::from_name);
    let (payment, stock) = (payment_state(state), stock_state(state));
    let (amount, currency) = state.total.clone().unwrap_or_default();
    Some(OrderView {
        order_id: order_id.to_string(),
        status: state.status.clone().unwrap_or_else(|| "submitted".into()),
        customer_id,
        total: Money { amount, currency },
        payment: payment.name().to_string(),
        stock: stock.name().to_string(),
        exception_reason: state.exception_reason.clone(),
        lines: None,
        detail: Some(detail(status, payment, stock)),
        as_of: state.last_occurred_at.map(rfc3339),
    })
}

fn rfc3339(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_else(|| TimestampMicros(micros).0.to_string())
}

#[cfg(test)]
mod tests;
