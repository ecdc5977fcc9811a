//! An order's business status, as the legacy `ord_stat_cd` codes, the domain events and the
//! people reading a report each name it. Pure.

use contracts::EventKind;

/// Where an order stands in the order-to-cash process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum OrderStatus {
    /// Legacy `N`: submitted, not yet looked at (`OrderSubmitted`).
    Submitted,
    /// Legacy `A`: passed validation (`OrderAccepted`).
    Accepted,
    /// Legacy `P`: waiting for the payment authorisation (`OrderPaymentPending`).
    PaymentPending,
    /// Legacy `S`: payment authorised and stock reserved (`OrderSecured`).
    Secured,
    /// Legacy `C`: the customer has been told (`OrderConfirmed`).
    Confirmed,
    /// Legacy `X` (`OrderCancelled`).
    Cancelled,
    /// Legacy `E`: stuck, needs a human (`OrderException`).
    Exception,
    /// Events know the order (e.g. its lines) but none of them said its status.
    Unknown,
}

impl OrderStatus {
    /// Every status a legacy code can name, in process order.
    pub const LEGACY: [OrderStatus; 7] = [
        OrderStatus::Submitted,
        OrderStatus::Accepted,
        OrderStatus::PaymentPending,
        OrderStatus::Secured,
        OrderStatus::Confirmed,
        OrderStatus::Cancelled,
        OrderStatus::Exception,
    ];

    /// The status of a legacy `ord_stat_cd`; `None` for a code the schema does not allow.
    pub fn from_legacy_code(code: &str) -> Option<OrderStatus> {
        Some(match code.trim_end() {
            "N" => OrderStatus::Submitted,
            "A" => OrderStatus::Accepted,
            "P" => OrderStatus::PaymentPending,
            "S" => OrderStatus::Secured,
            "C" => OrderStatus::Confirmed,
            "X" => OrderStatus::Cancelled,
            "E" => OrderStatus::Exception,
            _ => return None,
        })
    }

    /// The legacy code, e.g. `S`; `?` for [`OrderStatus::Unknown`].
    pub fn legacy_code(self) -> char {
        match self {
            OrderStatus::Submitted => 'N',
            OrderStatus::Accepted => 'A',
            OrderStatus::PaymentPending => 'P',
            OrderStatus::Secured => 'S',
            OrderStatus::Confirmed => 'C',
            OrderStatus::Cancelled => 'X',
            OrderStatus::Exception => 'E',
            OrderStatus::Unknown => '?',
        }
    }

    /// The status an event moves the order to; `None` for events that leave it alone (lines).
    pub fn after(kind: EventKind) -> Option<OrderStatus> {
        Some(match kind {
            EventKind::OrderSubmitted => OrderStatus::Submitted,
            EventKind::OrderAccepted => OrderStatus::Accepted,
            EventKind::OrderPaymentPending => OrderStatus::PaymentPending,
            EventKind::OrderSecured => OrderStatus::Secured,
            EventKind::OrderConfirmed => OrderStatus::Confirmed,
            EventKind::OrderCancelled => OrderStatus::Cancelled,
            EventKind::OrderException => OrderStatus::Exception,
            _ => return None,
        })
    }

    /// The event that announces this status (what a re-drive publishes).
    pub fn event(self) -> Option<EventKind> {
        Some(match self {
            OrderStatus::Submitted => EventKind::OrderSubmitted,
            OrderStatus::Accepted => EventKind::OrderAccepted,
            OrderStatus::PaymentPending => EventKind::OrderPaymentPending,
            OrderStatus::Secured => EventKind::OrderSecured,
            OrderStatus::Confirmed => EventKind::OrderConfirmed,
            OrderStatus::Cancelled => EventKind::OrderCancelled,
            OrderStatus::Exception => EventKind::OrderException,
            OrderStatus::Unknown => return None,
        })
    }

    /// The word people use, e.g. "Secured", "Payment pending".
    pub fn name(self) -> &'static str {
        match self {
            OrderStatus::Submitted => "Submitted",
            OrderStatus::Accepted => "Accepted",
            OrderStatus::PaymentPending => "Payment pending",
            OrderStatus::Secured => "Secured",
            OrderStatus::Confirmed => "Confirmed",
            OrderStatus::Cancelled => "Cancelled",
            OrderStatus::Exception => "Exception",
            OrderStatus::Unknown => "unknown",
        }
    }

    /// Reads a status as a read model may store it: a business name in any case and spacing
    /// ("Secured", "PAYMENT_PENDING", "payment pending") or a legacy code ("S").
    pub fn parse(text: &str) -> Option<OrderStatus> {
        let text = text.trim();
        if text.len() == 1 {
            return OrderStatus::from_legacy_code(text);
        }
        let folded: String = text
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_lowercase())
            .collect();
        let folded = folded.strip_prefix("order").unwrap_or(&folded);
        OrderStatus::LEGACY.into_iter().find(|s| {
            let name: String = s
                .name()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .map(|c| c.to_ascii_lowercase())
                .collect();
            name == folded || (*s == OrderStatus::Submitted && folded == "new")
        })
    }

    /// Whether legacy code `code` is one of `pending_codes` (e.g. "NAP").
    pub fn is_pending(self, pending_codes: &str) -> bool {
        pending_codes.contains(self.legacy_code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every legacy code maps to a status, back to the same code, and to the event announcing it.
    #[test]
    fn legacy_codes_round_trip_through_events() {
        for code in ["N", "A", "P", "S", "C", "X", "E"] {
            let s = OrderStatus::from_legacy_code(code).expect(code);
            assert_eq!(s.legacy_code().to_string(), code);
            let kind = s.event().expect("status event");
            assert_eq!(OrderStatus::after(kind), Some(s));
        }
        assert_eq!(OrderStatus::from_legacy_code("Q"), None);
        assert_eq!(OrderStatus::after(EventKind::OrderLineAdded), None);
    }

    /// Read models may spell statuses many ways; all of them are understood, junk is not.
    #[test]
    fn read_model_spellings_parse() {
        for (text, want) in [
            ("Secured", OrderStatus::Secured),
            ("PAYMENT_PENDING", OrderStatus::PaymentPending),
            ("payment pending", OrderStatus::PaymentPending),
            ("OrderConfirmed", OrderStatus::Confirmed),
            ("new", OrderStatus::Submitted),
            ("X", OrderStatus::Cancelled),
        ] {
            assert_eq!(OrderStatus::parse(text), Some(want), "{text}");
        }
        assert_eq!(OrderStatus::parse("shipped"), None);
        assert_eq!(OrderStatus::parse(""), None);
    }
}
