//! Reads one order, with its lines, payments and reservations, into the shared [`OrderView`].

use super::LegacyError;
use crate::demo::order_view::{LineView, Money, OrderStatus, OrderView, PaymentState, StockState};
use tokio_postgres::GenericClient;

/// The answer to a request that changed order `ord_no`: the order as it now is.
pub async fn order_answer(
    db: &impl GenericClient,
    ord_no: i64,
) -> Result<axum::Json<OrderView>, LegacyError> {
    load_order_view(db, ord_no)
        .await?
        .map(axum::Json)
        .ok_or_else(|| LegacyError::NotFound(format!("order {ord_no} vanished")))
}

/// The order `ord_no` as the status look-up shows it, or `None` when there is no such order.
pub async fn load_order_view(
    db: &impl GenericClient,
    ord_no: i64,
) -> Result<Option<OrderView>, LegacyError> {
    let Some(hdr) = db
        .query_opt(
            "SELECT ord_stat_cd::text, cust_no, ord_tot_amt::text, curr_cd::text, excp_rsn_txt \
             FROM ord_hdr WHERE ord_no = $1",
            &[&ord_no],
        )
        .await
        .map_err(LegacyError::db("reading the order header"))?
    else {
        return Ok(None);
    };
    let code: String = hdr.get(0);
    let status = OrderStatus::from_code(&code).map_or("unknown", OrderStatus::name);
    let lines = db
        .query(
            "SELECT ln_no, sku_cd, ord_qty, unit_prc_amt::text, ln_stat_cd::text \
             FROM ord_ln WHERE ord_no = $1 ORDER BY ln_no",
            &[&ord_no],
        )
        .await
        .map_err(LegacyError::db("reading the order lines"))?
        .iter()
        .map(|r| LineView {
            line_no: r.get(0),
            sku: r.get(1),
            quantity: r.get(2),
            unit_price: r.get(3),
            status: line_status(r.get::<_, String>(4).trim()).to_string(),
        })
        .collect();
    Ok(Some(OrderView {
        order_id: ord_no.to_string(),
        status: status.to_string(),
        customer_id: hdr.get(1),
        total: Money {
            amount: hdr.get(2),
            currency: hdr.get(3),
        },
        payment: payment_state(db, ord_no).await?.name().to_string(),
        stock: stock_state(db, ord_no).await?.name().to_string(),
        exception_reason: hdr.get(4),
        lines: Some(lines),
        detail: None,
        as_of: None,
    }))
}

fn line_status(code: &str) -> &'static str {
    match code {
        "O" => "open",
        "B" => "back_ordered",
        "X" => "cancelled",
        _ => "unknown",
    }
}

/// Captured if a capture was approved; otherwise what the provider said to the latest
/// authorisation (no answer yet counts as none).
pub async fn payment_state(
    db: &impl GenericClient,
    ord_no: i64,
) -> Result<PaymentState, LegacyError> {
    let rows = db
        .query(
            "SELECT txn_typ_cd::text, prov_rslt_cd FROM pmt_txn WHERE ord_no = $1 \
             ORDER BY txn_id DESC",
            &[&ord_no],
        )
        .await
        .map_err(LegacyError::db("reading payment transactions"))?;
    let typ = |r: &tokio_postgres::Row| r.get::<_, String>(0);
    let rslt = |r: &tokio_postgres::Row| r.get::<_, Option<String>>(1);
    if rows
        .iter()
        .any(|r| typ(r) == "C" && rslt(r).as_deref() == Some("00"))
    {
        return Ok(PaymentState::Captured);
    }
    Ok(match rows.iter().find(|r| typ(r) == "A").map(rslt) {
        Some(Some(code)) if code == "00" => PaymentState::Authorized,
        Some(Some(code)) if code != "91" => PaymentState::Declined,
        _ => PaymentState::None,
    })
}

/// Reserved while any reservation holds stock; released once all were released.
pub async fn stock_state(db: &impl GenericClient, ord_no: i64) -> Result<StockState, LegacyError> {
    let row = db
        .query_one(
            "SELECT count(*) FILTER (WHERE rsv_stat_cd = 'R'), \
                    count(*) FILTER (WHERE rsv_stat_cd = 'L') \
             FROM inv_rsv WHERE ord_no = $1",
            &[&ord_no],
        )
        .await
        .map_err(LegacyError::db("reading reservations"))?;
    let (reserved, released): (i64, i64) = (row.get(0), row.get(1));
    Ok(if reserved > 0 {
        StockState::Reserved
    } else if released > 0 {
        StockState::Released
    } else {
        StockState::None
    })
}
