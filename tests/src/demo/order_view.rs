//! The JSON answer of `GET /orders/{id}`, shared by the legacy monolith and the order-status
//! service so that both speak the same shape for the fields both know.
//!
//! Legacy fills `lines` (only it reads the order lines); the new service fills `detail`, an honest
//! sentence about what is still being confirmed, and `as_of`, the legacy commit its view reflects.
//! Fields one side does not know are left out, never invented.

use serde::{Deserialize, Serialize};

/// An amount of money: decimal text (never a float) and an ISO 4217 currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    /// Decimal amount with two fraction digits, e.g. `"25.00"`.
    pub amount: String,
    /// ISO 4217 code, e.g. `"EUR"`.
    pub currency: String,
}

/// One order as the status look-up shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderView {
    /// Order number, as text.
    pub order_id: String,
    /// One of [`OrderStatus::name`].
    pub status: String,
    /// Customer number.
    pub customer_id: String,
    /// Order total.
    pub total: Money,
    /// `none`, `authorized`, `declined`, `captured`: see [`PaymentState`].
    pub payment: String,
    /// `none`, `reserved`, `released`: see [`StockState`].
    pub stock: String,
    /// Why the order is stuck, when its status is `exception`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exception_reason: Option<String>,
    /// Order lines (legacy only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<Vec<LineView>>,
    /// What is still being confirmed, in words (new service only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The legacy commit this view reflects, as `occurred_at` of the last event (new service only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of: Option<String>,
}

/// One order line (legacy only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineView {
    /// 1-based line number.
    pub line_no: i32,
    /// Stock-keeping unit.
    pub sku: String,
    /// Units ordered.
    pub quantity: i32,
    /// Price per unit.
    pub unit_price: String,
    /// `open`, `back_ordered`, `cancelled`.
    pub status: String,
}

/// The legacy `ord_hdr.ord_stat_cd` codes, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    /// `N`: submitted, not yet looked at.
    Submitted,
    /// `A`: passed validation.
    Accepted,
    /// `P`: stock held, waiting for the payment authorisation.
    PendingPayment,
    /// `S`: payment authorised and stock reserved.
    Secured,
    /// `C`: confirmed; payment captured, fulfilment may start.
    Confirmed,
    /// `X`: cancelled.
    Cancelled,
    /// `E`: stuck, needs a human.
    Exception,
}

impl OrderStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [OrderStatus; 7] = [
        OrderStatus::Submitted,
        OrderStatus::Accepted,
        OrderStatus::PendingPayment,
        OrderStatus::Secured,
        OrderStatus::Confirmed,
        OrderStatus::Cancelled,
        OrderStatus::Exception,
    ];

    /// The legacy one-letter code.
    pub fn code(self) -> &'static str {
        match self {
            OrderStatus::Submitted => "N",
            OrderStatus::Accepted => "A",
            OrderStatus::PendingPayment => "P",
            OrderStatus::Secured => "S",
            OrderStatus::Confirmed => "C",
            OrderStatus::Cancelled => "X",
            OrderStatus::Exception => "E",
        }
    }

    /// The name in the JSON answer.
    pub fn name(self) -> &'static str {
        match self {
            OrderStatus::Submitted => "submitted",
            OrderStatus::Accepted => "accepted",
            OrderStatus::PendingPayment => "pending_payment",
            OrderStatus::Secured => "secured",
            OrderStatus::Confirmed => "confirmed",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Exception => "exception",
        }
    }

    /// From the legacy code (`char(1)` may come padded).
    pub fn from_code(code: &str) -> Option<OrderStatus> {
        Self::ALL.into_iter().find(|s| s.code() == code.trim())
    }

    /// From the JSON name.
    pub fn from_name(name: &str) -> Option<OrderStatus> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// What happened to the order's payment, as far as the look-up tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentState {
    /// No authorisation asked yet (or the provider has not answered).
    None,
    /// The provider approved the authorisation.
    Authorized,
    /// The provider declined the last authorisation.
    Declined,
    /// The authorised amount was captured.
    Captured,
}

impl PaymentState {
    /// The name in the JSON answer.
    pub fn name(self) -> &'static str {
        match self {
            PaymentState::None => "none",
            PaymentState::Authorized => "authorized",
            PaymentState::Declined => "declined",
            PaymentState::Captured => "captured",
        }
    }
}

/// Whether the order's stock is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StockState {
    /// Nothing reserved.
    None,
    /// Every line reserved.
    Reserved,
    /// Reservations were released (cancelled order).
    Released,
}

impl StockState {
    /// The name in the JSON answer.
    pub fn name(self) -> &'static str {
        match self {
            StockState::None => "none",
            StockState::Reserved => "reserved",
            StockState::Released => "released",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every legacy status code round-trips through its name, so no code is shown wrongly.
    #[test]
    fn status_codes_and_names_round_trip() {
        for s in OrderStatus::ALL {
            assert_eq!(OrderStatus::from_code(s.code()), Some(s));
            assert_eq!(OrderStatus::from_name(s.name()), Some(s));
        }
        assert_eq!(OrderStatus::from_code("Z"), None);
        assert_eq!(OrderStatus::from_code("S "), Some(OrderStatus::Secured));
    }
}
