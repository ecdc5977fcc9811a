//! The legacy monolith alone: its order-to-cash flow and its answers to bad input.

use super::apps::{legacy_db, register_customer, start_legacy};
use serde_json::{Value, json};

async fn post(http: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let resp = http.post(url).json(&body).send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Place → reserve → authorise → capture confirms an order, and the legacy tables say so in codes.
#[tokio::test]
async fn legacy_order_to_cash_confirms_an_order() {
    let db = legacy_db().await;
    let legacy = start_legacy(&db).await;
    let http = reqwest::Client::new();
    let customer = register_customer(&http, &legacy).await;
    let lines = json!([
        {"sku": "BOOK-1", "quantity": 2, "unit_price": "12.50"},
        {"sku": "PEN-7", "quantity": 1, "unit_price": "3.10"}
    ]);
    let (status, order) = post(
        &http,
        legacy.url("/orders"),
        json!({"customer_id": customer, "currency": "EUR", "lines": lines}),
    )
    .await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["status"], "accepted");
    assert_eq!(
        order["total"],
        json!({"amount": "28.10", "currency": "EUR"})
    );
    let id = order["order_id"].as_str().expect("order_id").to_string();

    let (status, body) = post(
        &http,
        legacy.url(&format!("/orders/{id}/payment/authorize")),
        json!({}),
    )
    .await;
    assert_eq!(
        status, 409,
        "authorising before reserving stock must be refused: {body}"
    );

    let (status, body) = post(
        &http,
        legacy.url("/inventory/reservations"),
        json!({"order_id": id}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["reservations"].as_array().map(Vec::len), Some(2));
    let (status, order) = post(
        &http,
        legacy.url(&format!("/orders/{id}/payment/authorize")),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{order}");
    assert_eq!(
        (order["status"].as_str(), order["payment"].as_str()),
        (Some("secured"), Some("authorized"))
    );
    let (status, order) = post(
        &http,
        legacy.url(&format!("/orders/{id}/payment/capture")),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{order}");
    assert_eq!(
        (order["status"].as_str(), order["payment"].as_str()),
        (Some("confirmed"), Some("captured"))
    );

    let client = db.connect().await.expect("connect");
    let row = client
        .query_one("SELECT ord_stat_cd::text, ord_tot_amt::text FROM ord_hdr WHERE ord_no = $1::text::bigint", &[&id])
        .await
        .expect("header");
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, String>(1)),
        ("C".into(), "28.10".into())
    );
    let codes: Vec<String> = client
        .query("SELECT txn_typ_cd::text || coalesce(prov_rslt_cd, '-') FROM pmt_txn WHERE ord_no = $1::text::bigint ORDER BY txn_id", &[&id])
        .await
        .expect("payments")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(codes, ["A00", "C00"]);
}

/// A declined card puts the order in exception with the reason; cancelling releases its stock and
/// writes an outbox message in the same transaction.
#[tokio::test]
async fn legacy_decline_and_cancel() {
    let db = legacy_db().await;
    let legacy = start_legacy(&db).await;
    let http = reqwest::Client::new();
    let customer = register_customer(&http, &legacy).await;
    let (_, order) = post(
        &http,
        legacy.url("/orders"),
        json!({"customer_id": customer,
        "currency": "EUR", "lines": [{"sku": "MUG", "quantity": 1, "unit_price": "9"}]}),
    )
    .await;
    let id = order["order_id"].as_str().expect("order_id").to_string();
    post(
        &http,
        legacy.url("/inventory/reservations"),
        json!({"order_id": id}),
    )
    .await;
    let (status, order) = post(
        &http,
        legacy.url(&format!("/orders/{id}/payment/authorize")),
        json!({"card_token": "tok_insufficient_funds"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(order["status"], "exception");
    assert_eq!(order["payment"], "declined");
    assert_eq!(
        order["exception_reason"],
        "payment declined by ADYN: insufficient funds (51)"
    );

    let (status, order) = post(
        &http,
        legacy.url(&format!("/orders/{id}/cancel")),
        json!({"reason": "customer gave up"}),
    )
    .await;
    assert_eq!(status, 200, "{order}");
    assert_eq!(
        (order["status"].as_str(), order["stock"].as_str()),
        (Some("cancelled"), Some("released"))
    );
    let (status, _) = post(
        &http,
        legacy.url(&format!("/orders/{id}/cancel")),
        json!({"reason": "again"}),
    )
    .await;
    assert_eq!(status, 409, "a cancelled order cannot be cancelled again");
    let outbox: i64 = db
        .connect()
        .await
        .expect("connect")
        .query_one(
            "SELECT count(*) FROM evt_outbox WHERE aggregate_id = $1 \
                    AND event_type = 'OrderCancellationRequested'",
            &[&id],
        )
        .await
        .expect("outbox")
        .get(0);
    assert_eq!(outbox, 1);
}

/// Bad input gets 4xx naming what is wrong; nothing is written.
#[tokio::test]
async fn legacy_rejects_bad_input_with_reasons() {
    let db = legacy_db().await;
    let legacy = start_legacy(&db).await;
    let http = reqwest::Client::new();
    let customer = register_customer(&http, &legacy).await;
    let (status, body) = post(
        &http,
        legacy.url("/orders"),
        json!({"customer_id": customer,
        "currency": "EUR", "lines": [{"sku": "MUG", "quantity": 0, "unit_price": "9"}]}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap_or("")
            .contains("lines[0].quantity"),
        "{body}"
    );
    let (status, body) = post(
        &http,
        legacy.url("/orders"),
        json!({"customer_id": "NOBODY",
        "currency": "EUR", "lines": [{"sku": "MUG", "quantity": 1, "unit_price": "9"}]}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let resp = http
        .get(legacy.url("/orders/abc"))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 400);
    let resp = http
        .get(legacy.url("/orders/42"))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 404);
    let orders: i64 = db
        .connect()
        .await
        .expect("connect")
        .query_one("SELECT count(*) FROM ord_hdr", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(orders, 0);
}
