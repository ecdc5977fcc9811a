//! Payment authorisation and capture, the way the monolith talks to its provider: the
//! authorisation row is written first with no answer (status `P`, waiting), the provider's result
//! code arrives in a second transaction that also moves the order on.

use super::LegacyError;
use super::orders::{WEB_USER, lock_order, parse_order_no};
use super::view::{order_answer, payment_state, stock_state};
use crate::demo::order_view::{OrderStatus, OrderView, PaymentState, StockState};
use crate::demo::pg_pool::PgPool;
use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;

/// Provider used when the request names none.
pub const DEFAULT_PROVIDER: &str = "ADYN";

/// `POST /orders/{id}/payment/authorize` body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authorize {
    /// Provider code (`ADYN`, `STRP`, `WRLD`).
    #[serde(default)]
    pub provider: Option<String>,
    /// The card token; the simulated provider declines a few well-known test tokens.
    #[serde(default)]
    pub card_token: Option<String>,
}

/// The simulated provider's answer for a card token (ISO 8583 style result codes).
pub fn provider_answer(card_token: Option<&str>) -> &'static str {
    match card_token.unwrap_or("") {
        "tok_do_not_honour" => "05",
        "tok_invalid_card" => "14",
        "tok_insufficient_funds" => "51",
        "tok_expired" => "54",
        "tok_provider_down" => "91",
        _ => "00",
    }
}

fn decline_reason(code: &str) -> &'static str {
    match code {
        "05" => "do not honour",
        "14" => "invalid card",
        "51" => "insufficient funds",
        "54" => "expired card",
        _ => "declined",
    }
}

/// `POST /orders/{id}/payment/authorize`: needs an accepted order with its stock reserved (or one
/// already waiting on the provider). Approved → `S`; declined → `E` with the reason; provider down
/// → stays `P` and answers 503 so the client retries.
pub async fn authorize(
    State(db): State<PgPool>,
    Path(id): Path<String>,
    Json(req): Json<Authorize>,
) -> Result<Json<OrderView>, LegacyError> {
    let ord_no = parse_order_no(&id)?;
    let provider = req.provider.unwrap_or_else(|| DEFAULT_PROVIDER.to_string());
    if provider.is_empty() || provider.len() > 8 {
        return Err(LegacyError::BadRequest(
            "provider must be 1 to 8 characters".into(),
        ));
    }
    let mut client = db.get().await.map_err(LegacyError::db("connecting"))?;

    // First transaction: the authorisation is asked, the order waits for payment.
    let tx = client
        .transaction()
        .await
        .map_err(LegacyError::db("beginning"))?;
    let status = lock_order(&tx, ord_no).await?;
    if !matches!(status, OrderStatus::Accepted | OrderStatus::PendingPayment) {
        return Err(LegacyError::Conflict(format!(
            "order {ord_no} is {}; authorisation needs accepted or pending_payment",
            status.name()
        )));
    }
    if stock_state(&tx, ord_no).await? != StockState::Reserved {
        return Err(LegacyError::Conflict(format!(
            "order {ord_no} has no stock reserved; reserve stock before authorising payment"
        )));
    }
    let txn_id: i64 = tx
        .query_one(
            "INSERT INTO pmt_txn (txn_id, ord_no, txn_typ_cd, txn_amt, curr_cd, prov_cd) \
             SELECT nextval('pmt_txn_seq'), ord_no, 'A', ord_tot_amt, curr_cd, $2 \
             FROM ord_hdr WHERE ord_no = $1 RETURNING txn_id",
            &[&ord_no, &provider],
        )
        .await
        .map_err(LegacyError::db("recording the authorisation"))?
        .get(0);
    set_status(&tx, ord_no, OrderStatus::PendingPayment, None).await?;
    tx.commit()
        .await
        .map_err(LegacyError::db("committing the authorisation request"))?;

    // The provider answers.
    let code = provider_answer(req.card_token.as_deref());
    let tx = client
        .transaction()
        .await
        .map_err(LegacyError::db("beginning"))?;
    lock_order(&tx, ord_no).await?;
    tx.execute(
        "UPDATE pmt_txn SET prov_rslt_cd = $2, prov_ref_no = $3, \
         upd_ts = now() at time zone 'utc' WHERE txn_id = $1",
        &[&txn_id, &code, &format!("{provider}-{txn_id}")],
    )
    .await
    .map_err(LegacyError::db("recording the provider's answer"))?;
    match code {
        "00" => set_status(&tx, ord_no, OrderStatus::Secured, None).await?,
        "91" => {}
        declined => {
            let reason = format!(
                "payment declined by {provider}: {} ({declined})",
                decline_reason(declined)
            );
            set_status(&tx, ord_no, OrderStatus::Exception, Some(&reason)).await?;
        }
    }
    tx.commit()
        .await
        .map_err(LegacyError::db("committing the provider's answer"))?;
    if code == "91" {
        return Err(LegacyError::ProviderUnavailable { provider });
    }
    order_answer(&*client, ord_no).await
}

/// `POST /orders/{id}/payment/capture`: captures the authorised amount of a secured order and
/// confirms it, in one transaction.
pub async fn capture(
    State(db): State<PgPool>,
    Path(id): Path<String>,
) -> Result<Json<OrderView>, LegacyError> {
    let ord_no = parse_order_no(&id)?;
    let mut client = db.get().await.map_err(LegacyError::db("connecting"))?;
    let tx = client
        .transaction()
        .await
        .map_err(LegacyError::db("beginning"))?;
    let status = lock_order(&tx, ord_no).await?;
    if status != OrderStatus::Secured
        || payment_state(&tx, ord_no).await? != PaymentState::Authorized
    {
        return Err(LegacyError::Conflict(format!(
            "order {ord_no} is {}; capture needs a secured order with an approved authorisation",
            status.name()
        )));
    }
    tx.execute(
        "INSERT INTO pmt_txn (txn_id, ord_no, txn_typ_cd, txn_amt, curr_cd, prov_cd, \
         prov_rslt_cd, prov_ref_no, orig_txn_id) \
         SELECT nextval('pmt_txn_seq'), ord_no, 'C', txn_amt, curr_cd, prov_cd, '00', \
                prov_cd || '-C-' || txn_id, txn_id \
         FROM pmt_txn WHERE ord_no = $1 AND txn_typ_cd = 'A' AND prov_rslt_cd = '00' \
         ORDER BY txn_id DESC LIMIT 1",
        &[&ord_no],
    )
    .await
    .map_err(LegacyError::db("recording the capture"))?;
    set_status(&tx, ord_no, OrderStatus::Confirmed, None).await?;
    tx.commit()
        .await
        .map_err(LegacyError::db("committing the capture"))?;
    order_answer(&*client, ord_no).await
}

async fn set_status(
    tx: &tokio_postgres::Transaction<'_>,
    ord_no: i64,
    status: OrderStatus,
    reason: Option<&str>,
) -> Result<(), LegacyError> {
    tx.execute(
        "UPDATE ord_hdr SET ord_stat_cd = $2, excp_rsn_txt = coalesce($3, excp_rsn_txt), \
         upd_ts = now() at time zone 'utc', upd_usr_id = $4 WHERE ord_no = $1",
        &[&ord_no, &status.code(), &reason, &WEB_USER],
    )
    .await
    .map_err(LegacyError::db("changing the order status"))?;
    Ok(())
}
