//! Table-style tests of the order-status projection.

use super::*;
use contracts::events::{
    OrderAccepted, OrderPaymentPending, OrderSecured, OrderSubmitted, PaymentAuthorizationFailed,
    PaymentAuthorized, ReservationReleased, StockReserved,
};

fn eur(amount: i64) -> contracts::Money {
    contracts::Money::new(amount.into(), "EUR").expect("valid money")
}

fn event(seq: u32, payload: impl Into<Payload>) -> DomainEvent {
    let at = 1_700_000_000_000_000 + i64::from(seq);
    crate::demo::domain_event::stream_event(1_000 + u64::from(seq), seq, at, "100001", payload)
}

fn journey() -> Vec<DomainEvent> {
    let t = TimestampMicros(0);
    vec![
        event(
            0,
            OrderSubmitted {
                order_id: "100001".into(),
                customer_id: "C1".into(),
                customer_name: "Ada".into(),
                customer_email: None,
                channel: "web".into(),
                total: eur(25),
                submitted_at: t,
                ship_to_country: None,
            },
        ),
        event(
            1,
            OrderAccepted {
                order_id: "100001".into(),
                customer_id: "C1".into(),
                accepted_at: t,
            },
        ),
        event(
            2,
            StockReserved {
                reservation_id: "700001".into(),
                order_id: "100001".into(),
                line_number: 1,
                sku: "SKU".into(),
                warehouse: "WH01".into(),
                quantity: 1,
                expires_at: None,
            },
        ),
        event(
            3,
            OrderPaymentPending {
                order_id: "100001".into(),
                total: eur(25),
                pending_since: t,
            },
        ),
        event(
            4,
            PaymentAuthorized {
                payment_id: "500001".into(),
                order_id: "100001".into(),
                amount: eur(25),
                provider: "ADYN".into(),
                provider_reference: None,
                authorized_at: t,
            },
        ),
        event(
            5,
            OrderSecured {
                order_id: "100001".into(),
                total: eur(25),
                secured_at: t,
            },
        ),
    ]
}

fn run(events: &[DomainEvent]) -> OrderState {
    let mut state = OrderState::default();
    for e in events {
        apply(&mut state, e);
    }
    state
}

/// A secured order reads like the legacy look-up: status, total, payment and stock.
#[test]
fn secured_order_reads_like_legacy() {
    let v = view("100001", &run(&journey())).expect("order known");
    assert_eq!(v.status, "secured");
    assert_eq!(v.customer_id, "C1");
    assert_eq!(
        (v.total.amount.as_str(), v.total.currency.as_str()),
        ("25.00", "EUR")
    );
    assert_eq!(
        (v.payment.as_str(), v.stock.as_str()),
        ("authorized", "reserved")
    );
    assert_eq!(v.lines, None);
}

/// Payment and reservation events may overtake order events (other topics): same result.
#[test]
fn interleaving_of_topics_does_not_matter() {
    let mut events = journey();
    let expected = view("100001", &run(&events));
    let (reservation, payment) = (events.remove(2), events.remove(3));
    events.insert(0, payment);
    events.insert(0, reservation);
    assert_eq!(view("100001", &run(&events)), expected);
}

/// An accepted order says honestly what is still being confirmed.
#[test]
fn accepted_order_shows_what_is_pending() {
    let v = view("100001", &run(&journey()[..2])).expect("order known");
    assert_eq!(v.status, "accepted");
    assert_eq!(
        v.detail.as_deref(),
        Some("accepted, confirming payment and stock")
    );
}

/// Before `OrderSubmitted` arrives the order is not shown, even if other events came first.
#[test]
fn order_unknown_until_submitted() {
    let events = journey();
    assert_eq!(view("100001", &run(&events[2..3])), None);
}

/// A provider that did not answer (91) leaves the payment open; a real decline shows; a
/// released reservation shows as released.
#[test]
fn failed_authorisations_and_releases() {
    let failed = |id: &str, code: &str| PaymentAuthorizationFailed {
        payment_id: id.into(),
        order_id: "100001".into(),
        amount: eur(25),
        provider: "ADYN".into(),
        decline_reason: "x".into(),
        provider_result_code: code.into(),
        failed_at: TimestampMicros(0),
    };
    let mut events = journey()[..3].to_vec();
    events.push(event(10, failed("500001", "91")));
    assert_eq!(payment_state(&run(&events)), PaymentState::None);
    events.push(event(11, failed("500002", "51")));
    assert_eq!(payment_state(&run(&events)), PaymentState::Declined);
    events.push(event(
        12,
        ReservationReleased {
            reservation_id: "700001".into(),
            order_id: "100001".into(),
            sku: "SKU".into(),
            quantity: 1,
            released_at: TimestampMicros(0),
        },
    ));
    assert_eq!(stock_state(&run(&events)), StockState::Released);
}
