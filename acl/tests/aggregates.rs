//! Golden tests of the payment, reservation and customer tables: fixture rows → domain events.

use acl::{OldImage, Op};
use contracts::events::*;
use contracts::{Money, Payload, TimestampMicros};
use rust_decimal::Decimal;

use crate::support::*;

fn gbp(cents: i64) -> Money {
    Money::new(Decimal::new(cents, 2), "GBP").expect("money")
}

const CUSTOMER: &[(&str, &str)] = &[
    ("cust_no", "C-000042"),
    ("cust_nm", "Ada Lovelace"),
    ("cust_typ_cd", "R"),
    ("email_addr", "ada@example.com"),
    ("addr_ln1", "12 St James's Square"),
    ("city_nm", "London"),
    ("post_cd", "SW1Y 4JH"),
    ("ctry_cd", "GB"),
    ("actv_flg", "Y"),
    ("cust_nts_txt", "very long notes"),
    ("crt_ts", "2026-01-02 03:04:05"),
    ("upd_ts", "2026-01-02 03:04:05"),
];

/// Unsent TOAST values are not NULL: unmapped ones are ignored, mapped ones come from the full old image.
#[test]
fn unchanged_toast_is_not_null() {
    let new = with(
        "cust_mstr",
        CUSTOMER,
        &[
            ("cust_nts_txt", "<unchanged>"),
            ("addr_ln1", "1 Main St"),
            ("upd_ts", "2026-02-01 00:00:00"),
        ],
    );
    let events = MAPPER
        .map(&update_full("cust_mstr", CUSTOMER, &new))
        .expect("maps");
    let Payload::CustomerAddressChanged(changed) = &events[0].payload else {
        panic!("{events:?}")
    };
    assert_eq!(
        (
            changed.address_line1.as_str(),
            changed.address_line2.as_deref()
        ),
        ("1 Main St", None)
    );

    // Only the (unmapped, TOASTed) notes changed: no event.
    let new = with("cust_mstr", CUSTOMER, &[("cust_nts_txt", "other notes")]);
    assert!(
        MAPPER
            .map(&update_full("cust_mstr", CUSTOMER, &new))
            .expect("maps")
            .is_empty()
    );

    // A mapped value that was not sent, and no full old image: an error that says what to do.
    let mut row = insert(
        "cust_mstr",
        &with("cust_mstr", CUSTOMER, &[("city_nm", "<unchanged>")]),
    );
    row.op = Op::Update;
    row.old_image = OldImage::Key;
    row.old = tuple("cust_mstr", &[("cust_no", "C-000042")]);
    let err = MAPPER
        .map(&row)
        .expect_err("address change needs the old image");
    assert_eq!(
        (err.key(), err.reason_code()),
        ("C-000042", "missing_old_image")
    );

    let mut row = insert(
        "cust_mstr",
        &with("cust_mstr", CUSTOMER, &[("city_nm", "<unchanged>")]),
    );
    row.op = Op::Insert;
    let err = MAPPER.map(&row).expect_err("unchanged on insert");
    assert_eq!(
        (err.column(), err.reason_code()),
        (Some("city_nm"), "unchanged_toast")
    );
    assert!(err.to_string().contains("REPLICA IDENTITY FULL"), "{err}");
}

const AUTH: &[(&str, &str)] = &[
    ("txn_id", "500001"),
    ("ord_no", "100001"),
    ("txn_typ_cd", "A"),
    ("txn_amt", "129.50"),
    ("curr_cd", "GBP"),
    ("prov_cd", "ADYN"),
    ("txn_ts", "2026-12-03 17:08:30"),
    ("upd_ts", "2026-12-03 17:08:30"),
];

/// Payments: no answer yet ⇒ nothing; the provider's answer by update ⇒ authorised or failed with its reason.
#[test]
fn payment_answers() {
    assert!(
        MAPPER
            .map(&insert("pmt_txn", AUTH))
            .expect("maps")
            .is_empty(),
        "pending: no event yet"
    );

    let declined = with(
        "pmt_txn",
        AUTH,
        &[("prov_rslt_cd", "51"), ("upd_ts", "2026-12-03 17:08:31")],
    );
    let events = MAPPER
        .map(&update_full("pmt_txn", AUTH, &declined))
        .expect("maps");
    assert_eq!(
        events[0].payload,
        Payload::PaymentAuthorizationFailed(PaymentAuthorizationFailed {
            payment_id: "500001".into(),
            order_id: "100001".into(),
            amount: gbp(12_950),
            provider: "ADYN".into(),
            decline_reason: "insufficient_funds".into(),
            provider_result_code: "51".into(),
            failed_at: TimestampMicros(1_796_317_711_000_000),
        })
    );
    assert_eq!(
        (events[0].aggregate_type(), events[0].aggregate_id()),
        ("payment", "500001")
    );

    let approved = with(
        "pmt_txn",
        AUTH,
        &[("prov_rslt_cd", "00"), ("prov_ref_no", "PSP-REF-9")],
    );
    let events = MAPPER.map(&insert("pmt_txn", &approved)).expect("maps");
    let Payload::PaymentAuthorized(auth) = &events[0].payload else {
        panic!("{events:?}")
    };
    assert_eq!(auth.provider_reference.as_deref(), Some("PSP-REF-9"));

    let odd = with("pmt_txn", AUTH, &[("prov_rslt_cd", "77")]);
    let events = MAPPER.map(&insert("pmt_txn", &odd)).expect("maps");
    let Payload::PaymentAuthorizationFailed(failed) = &events[0].payload else {
        panic!("{events:?}")
    };
    assert_eq!(
        (
            failed.decline_reason.as_str(),
            failed.provider_result_code.as_str()
        ),
        ("other", "77")
    );

    let refund = with(
        "pmt_txn",
        AUTH,
        &[
            ("txn_id", "500002"),
            ("txn_typ_cd", "R"),
            ("prov_rslt_cd", "00"),
            ("orig_txn_id", "500001"),
        ],
    );
    let events = MAPPER.map(&insert("pmt_txn", &refund)).expect("maps");
    let Payload::PaymentRefunded(r) = &events[0].payload else {
        panic!("{events:?}")
    };
    assert_eq!(r.original_payment_id.as_deref(), Some("500001"));
}

/// Reservations: reserved on insert, released on the R → L transition.
#[test]
fn reservations() {
    let rsv = [
        ("rsv_id", "700001"),
        ("ord_no", "100001"),
        ("ln_no", "1"),
        ("sku_cd", "SKU-7"),
        ("whs_cd", "LON1"),
        ("rsv_qty", "3"),
        ("rsv_stat_cd", "R"),
        ("upd_ts", "2026-12-03 17:08:40"),
    ];
    let events = MAPPER.map(&insert("inv_rsv", &rsv)).expect("maps");
    let Payload::StockReserved(r) = &events[0].payload else {
        panic!("{events:?}")
    };
    assert_eq!((r.quantity, r.expires_at), (3, None));
    let released = with("inv_rsv", &rsv, &[("rsv_stat_cd", "L")]);
    let events = MAPPER
        .map(&update_full("inv_rsv", &rsv, &released))
        .expect("maps");
    assert_eq!(events[0].event_type(), "ReservationReleased");
}

/// Snapshot rows map like inserts and keep their origin; ids stay deterministic per position.
#[test]
fn snapshot_rows_and_deterministic_ids() {
    let mut row = insert("cust_mstr", CUSTOMER);
    row.origin = acl::Origin::Snapshot;
    let first = MAPPER.map(&row).expect("maps");
    let again = MAPPER.map(&row).expect("maps");
    assert_eq!(first, again);
    assert_eq!(first[0].envelope.origin, acl::Origin::Snapshot);
    row.position.seq += 1;
    assert_ne!(
        MAPPER.map(&row).expect("maps")[0].envelope.event_id,
        first[0].envelope.event_id
    );
}
