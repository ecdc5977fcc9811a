//! Customers and orders: register, place, look up, cancel.

use super::LegacyError;
use super::view::{load_order_view, order_answer};
use crate::demo::order_view::{OrderStatus, OrderView};
use crate::demo::pg_pool::PgPool;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;

/// Who changes rows from the web front end (`upd_usr_id`).
pub const WEB_USER: &str = "WEBAPP";
/// Largest quantity one order line may carry.
pub const MAX_LINE_QTY: i32 = 9_999;

/// `POST /customers` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCustomer {
    /// Customer number; generated when absent.
    #[serde(default)]
    pub customer_id: Option<String>,
    /// Name.
    pub name: String,
    /// E-mail address.
    #[serde(default)]
    pub email: Option<String>,
    /// Street line.
    pub address_line1: String,
    /// City.
    pub city: String,
    /// Postal code.
    pub post_code: String,
    /// ISO 3166 two-letter country.
    pub country: String,
}

/// `POST /customers`: registers a customer.
pub async fn register_customer(
    State(db): State<PgPool>,
    Json(c): Json<NewCustomer>,
) -> Result<(StatusCode, Json<serde_json::Value>), LegacyError> {
    let cust_no = match c.customer_id {
        Some(id) if id.is_empty() || id.len() > 12 => {
            return Err(LegacyError::BadRequest(
                "customer_id must be 1 to 12 characters".into(),
            ));
        }
        Some(id) => id,
        None => format!("C{}", &uuid::Uuid::new_v4().simple().to_string()[..10]).to_uppercase(),
    };
    if c.country.len() != 2 {
        return Err(LegacyError::BadRequest(
            "country must be a two-letter ISO code".into(),
        ));
    }
    let client = db.get().await.map_err(LegacyError::db("connecting"))?;
    let inserted = client
        .execute(
            "INSERT INTO cust_mstr (cust_no, cust_nm, email_addr, addr_ln1, city_nm, post_cd, \
             ctry_cd, upd_usr_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (cust_no) DO NOTHING",
            &[
                &cust_no,
                &c.name,
                &c.email,
                &c.address_line1,
                &c.city,
                &c.post_code,
                &c.country,
                &WEB_USER,
            ],
        )
        .await
        .map_err(LegacyError::db("registering the customer"))?;
    if inserted == 0 {
        return Err(LegacyError::Conflict(format!(
            "customer {cust_no} already exists"
        )));
    }
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "customer_id": cust_no })),
    ))
}

/// `POST /orders` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewOrder {
    /// Customer number.
    pub customer_id: String,
    /// ISO 4217 currency of every price.
    pub currency: String,
    /// `web` (default), `store`, `phone`, `edi`.
    #[serde(default)]
    pub channel: Option<String>,
    /// At least one line.
    pub lines: Vec<NewLine>,
}

/// One line of `POST /orders`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewLine {
    /// Stock-keeping unit.
    pub sku: String,
    /// Description shown on documents.
    #[serde(default)]
    pub description: Option<String>,
    /// Units, 1 to [`MAX_LINE_QTY`].
    pub quantity: i32,
    /// Decimal text, e.g. `"12.50"`.
    pub unit_price: String,
}

/// `POST /orders`: header and lines inserted as `N`, total computed, validated to `A`, all in one
/// transaction, the customer's name and address copied into the header as the monolith always did.
pub async fn place_order(
    State(db): State<PgPool>,
    Json(order): Json<NewOrder>,
) -> Result<(StatusCode, Json<OrderView>), LegacyError> {
    let chnl_cd = channel_code(order.channel.as_deref())?;
    validate_order(&order)?;
    let mut client = db.get().await.map_err(LegacyError::db("connecting"))?;
    let tx = client
        .transaction()
        .await
        .map_err(LegacyError::db("beginning"))?;
    let cust = tx
        .query_opt(
            "SELECT cust_nm, email_addr, addr_ln1, city_nm, post_cd, ctry_cd::text, actv_flg::text \
             FROM cust_mstr WHERE cust_no = $1 FOR SHARE",
            &[&order.customer_id],
        )
        .await
        .map_err(LegacyError::db("reading the customer"))?
        .ok_or_else(|| {
            LegacyError::Unprocessable(format!("customer {} does not exist", order.customer_id))
        })?;
    if cust.get::<_, String>(6) != "Y" {
        return Err(LegacyError::Unprocessable(format!(
            "customer {} is inactive",
            order.customer_id
        )));
    }
    // The order-entry screen showed the total before saving: the header is born with it.
    let quantities: Vec<i32> = order.lines.iter().map(|l| l.quantity).collect();
    let prices: Vec<String> = order.lines.iter().map(|l| l.unit_price.clone()).collect();
    let ord_no: i64 = tx
        .query_one(
            "INSERT INTO ord_hdr (ord_no, cust_no, cust_nm, cust_email, ship_addr_ln1, \
             ship_city_nm, ship_post_cd, ship_ctry_cd, ord_stat_cd, chnl_cd, curr_cd, upd_usr_id, \
             ord_tot_amt) \
             VALUES (nextval('ord_no_seq'), $1, $2, $3, $4, $5, $6, $7, 'N', $8, $9, $10, \
             (SELECT sum(q * p::numeric) FROM unnest($11::int4[], $12::text[]) AS l (q, p))) \
             RETURNING ord_no",
            &[
                &order.customer_id,
                &cust.get::<_, String>(0),
                &cust.get::<_, Option<String>>(1),
                &cust.get::<_, String>(2),
                &cust.get::<_, String>(3),
                &cust.get::<_, String>(4),
                &cust.get::<_, String>(5),
                &chnl_cd,
                &order.currency,
                &WEB_USER,
                &quantities,
                &prices,
            ],
        )
        .await
        .map_err(LegacyError::db("inserting the order header"))?
        .get(0);
    for (i, line) in order.lines.iter().enumerate() {
        let ln_no = i32::try_from(i + 1).unwrap_or(i32::MAX);
        tx.execute(
            "INSERT INTO ord_ln (ord_no, ln_no, sku_cd, sku_desc, ord_qty, unit_prc_amt, curr_cd) \
             VALUES ($1, $2, $3, $4, $5, $6::text::numeric, $7)",
            &[
                &ord_no,
                &ln_no,
                &line.sku,
                &line.description,
                &line.quantity,
                &line.unit_price,
                &order.currency,
            ],
        )
        .await
        .map_err(LegacyError::db("inserting an order line"))?;
    }
    // The validation step of the old order-entry screen: status N -> A.
    tx.execute(
        "UPDATE ord_hdr SET ord_stat_cd = 'A', upd_ts = now() at time zone 'utc', \
         upd_usr_id = 'ORDVAL' WHERE ord_no = $1",
        &[&ord_no],
    )
    .await
    .map_err(LegacyError::db("accepting the order"))?;
    tx.commit()
        .await
        .map_err(LegacyError::db("committing the order"))?;
    Ok((StatusCode::CREATED, order_answer(&*client, ord_no).await?))
}

fn channel_code(channel: Option<&str>) -> Result<&'static str, LegacyError> {
    match channel.unwrap_or("web") {
        "web" => Ok("W"),
        "store" => Ok("S"),
        "phone" => Ok("P"),
        "edi" => Ok("E"),
        other => Err(LegacyError::BadRequest(format!(
            "channel {other:?} is not one of web, store, phone, edi"
        ))),
    }
}

fn validate_order(order: &NewOrder) -> Result<(), LegacyError> {
    let bad = |m: String| Err(LegacyError::BadRequest(m));
    if order.currency.len() != 3 || !order.currency.chars().all(|c| c.is_ascii_uppercase()) {
        return bad("currency must be a three-letter ISO 4217 code".into());
    }
    if order.lines.is_empty() {
        return bad("lines must hold at least one line".into());
    }
    for (i, l) in order.lines.iter().enumerate() {
        if l.sku.is_empty() || l.sku.len() > 24 {
            return bad(format!("lines[{i}].sku must be 1 to 24 characters"));
        }
        if !(1..=MAX_LINE_QTY).contains(&l.quantity) {
            return bad(format!(
                "lines[{i}].quantity must be between 1 and {MAX_LINE_QTY}"
            ));
        }
        if !is_price(&l.unit_price) {
            return bad(format!(
                "lines[{i}].unit_price must be decimal text like \"12.50\""
            ));
        }
    }
    Ok(())
}

/// Decimal text with at most 11 integer digits and 2 fraction digits (`numeric(13,2)`).
fn is_price(s: &str) -> bool {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    !int.is_empty()
        && int.len() <= 11
        && frac.len() <= 2
        && int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit())
}

/// Parses the `{id}` path segment as an order number.
pub fn parse_order_no(id: &str) -> Result<i64, LegacyError> {
    id.parse()
        .map_err(|_| LegacyError::BadRequest(format!("order id {id:?} is not an order number")))
}

/// `GET /orders/{id}` and `GET /orders/{id}/status`.
pub async fn get_order(
    State(db): State<PgPool>,
    Path(id): Path<String>,
) -> Result<Json<OrderView>, LegacyError> {
    let ord_no = parse_order_no(&id)?;
    let client = db.get().await.map_err(LegacyError::db("connecting"))?;
    load_order_view(&*client, ord_no)
        .await?
        .map(Json)
        .ok_or_else(|| LegacyError::NotFound(format!("order {ord_no} does not exist")))
}

/// `POST /orders/{id}/cancel` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cancel {
    /// Why, kept in the outbox message.
    pub reason: String,
}

/// `POST /orders/{id}/cancel`: order and lines cancelled, reservations released and an outbox
/// message written, in one transaction. Confirmed orders are returned, not cancelled.
pub async fn cancel_order(
    State(db): State<PgPool>,
    Path(id): Path<String>,
    Json(cancel): Json<Cancel>,
) -> Result<Json<OrderView>, LegacyError> {
    let ord_no = parse_order_no(&id)?;
    let mut client = db.get().await.map_err(LegacyError::db("connecting"))?;
    let tx = client
        .transaction()
        .await
        .map_err(LegacyError::db("beginning"))?;
    let status = lock_order(&tx, ord_no).await?;
    if matches!(status, OrderStatus::Confirmed | OrderStatus::Cancelled) {
        return Err(LegacyError::Conflict(format!(
            "order {ord_no} is {}; it cannot be cancelled",
            status.name()
        )));
    }
    tx.execute(
        "UPDATE ord_hdr SET ord_stat_cd = 'X', upd_ts = now() at time zone 'utc', \
         upd_usr_id = $2 WHERE ord_no = $1",
        &[&ord_no, &WEB_USER],
    )
    .await
    .map_err(LegacyError::db("cancelling the order"))?;
    tx.execute(
        "UPDATE ord_ln SET ln_stat_cd = 'X', upd_ts = now() at time zone 'utc' WHERE ord_no = $1",
        &[&ord_no],
    )
    .await
    .map_err(LegacyError::db("cancelling the lines"))?;
    tx.execute(
        "UPDATE inv_rsv SET rsv_stat_cd = 'L', upd_ts = now() at time zone 'utc' \
         WHERE ord_no = $1 AND rsv_stat_cd = 'R'",
        &[&ord_no],
    )
    .await
    .map_err(LegacyError::db("releasing reservations"))?;
    let payload = serde_json::json!({ "order_id": ord_no.to_string(), "reason": cancel.reason });
    tx.execute(
        "INSERT INTO evt_outbox (aggregate_type, aggregate_id, event_type, payload) \
         VALUES ('order', $1, 'OrderCancellationRequested', $2::text::jsonb)",
        &[&ord_no.to_string(), &payload.to_string()],
    )
    .await
    .map_err(LegacyError::db("writing the outbox"))?;
    tx.commit()
        .await
        .map_err(LegacyError::db("committing the cancel"))?;
    order_answer(&*client, ord_no).await
}

/// Locks the order header for the rest of the transaction and returns its status.
pub async fn lock_order(
    tx: &tokio_postgres::Transaction<'_>,
    ord_no: i64,
) -> Result<OrderStatus, LegacyError> {
    let row = tx
        .query_opt(
            "SELECT ord_stat_cd::text FROM ord_hdr WHERE ord_no = $1 FOR UPDATE",
            &[&ord_no],
        )
        .await
        .map_err(LegacyError::db("locking the order"))?
        .ok_or_else(|| LegacyError::NotFound(format!("order {ord_no} does not exist")))?;
    let code: String = row.get(0);
    OrderStatus::from_code(&code).ok_or_else(|| {
        LegacyError::Conflict(format!("order {ord_no} has unknown status code {code:?}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Prices the schema cannot hold are refused before they reach the database.
    #[test]
    fn price_text_is_checked() {
        for ok in ["0", "12.5", "12.50", "99999999999.99"] {
            assert!(is_price(ok), "{ok}");
        }
        for bad in ["", ".5", "1.234", "-1", "1e3", "123456789012", "1,50"] {
            assert!(!is_price(bad), "{bad}");
        }
    }
}
