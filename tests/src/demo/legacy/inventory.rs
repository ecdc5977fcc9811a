//! Stock reservations: every open line of an accepted order is reserved in one transaction.

use super::LegacyError;
use super::orders::{lock_order, parse_order_no};
use super::view::stock_state;
use crate::demo::order_view::{OrderStatus, StockState};
use crate::demo::pg_pool::PgPool;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

/// Warehouse used when the request names none.
pub const DEFAULT_WAREHOUSE: &str = "WH01";

/// `POST /inventory/reservations` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reserve {
    /// The order whose open lines to reserve.
    pub order_id: String,
    /// Warehouse code, up to 6 characters.
    #[serde(default)]
    pub warehouse: Option<String>,
}

/// One reservation made.
#[derive(Debug, Serialize)]
pub struct Reservation {
    /// `inv_rsv.rsv_id`.
    pub reservation_id: String,
    /// Order line reserved.
    pub line_no: i32,
    /// Stock-keeping unit.
    pub sku: String,
    /// Units held.
    pub quantity: i32,
    /// Warehouse holding them.
    pub warehouse: String,
}

/// `POST /inventory/reservations`: needs an accepted order with nothing reserved yet; holds every
/// open line for 30 minutes.
pub async fn reserve(
    State(db): State<PgPool>,
    Json(req): Json<Reserve>,
) -> Result<(StatusCode, Json<serde_json::Value>), LegacyError> {
    let ord_no = parse_order_no(&req.order_id)?;
    let warehouse = req
        .warehouse
        .unwrap_or_else(|| DEFAULT_WAREHOUSE.to_string());
    if warehouse.is_empty() || warehouse.len() > 6 {
        return Err(LegacyError::BadRequest(
            "warehouse must be 1 to 6 characters".into(),
        ));
    }
    let mut client = db.get().await.map_err(LegacyError::db("connecting"))?;
    let tx = client
        .transaction()
        .await
        .map_err(LegacyError::db("beginning"))?;
    let status = lock_order(&tx, ord_no).await?;
    if status != OrderStatus::Accepted {
        return Err(LegacyError::Conflict(format!(
            "order {ord_no} is {}; stock is reserved for accepted orders",
            status.name()
        )));
    }
    if stock_state(&tx, ord_no).await? == StockState::Reserved {
        return Err(LegacyError::Conflict(format!(
            "order {ord_no} already has stock reserved"
        )));
    }
    let rows = tx
        .query(
            "INSERT INTO inv_rsv (rsv_id, ord_no, ln_no, sku_cd, whs_cd, rsv_qty, exp_ts) \
             SELECT nextval('inv_rsv_seq'), ord_no, ln_no, sku_cd, $2, ord_qty, \
                    (now() at time zone 'utc') + interval '30 minutes' \
             FROM ord_ln WHERE ord_no = $1 AND ln_stat_cd = 'O' ORDER BY ln_no \
             RETURNING rsv_id, ln_no, sku_cd, rsv_qty",
            &[&ord_no, &warehouse],
        )
        .await
        .map_err(LegacyError::db("reserving stock"))?;
    tx.commit()
        .await
        .map_err(LegacyError::db("committing the reservations"))?;
    let reservations: Vec<Reservation> = rows
        .iter()
        .map(|r| Reservation {
            reservation_id: r.get::<_, i64>(0).to_string(),
            line_no: r.get(1),
            sku: r.get(2),
            quantity: r.get(3),
            warehouse: warehouse.clone(),
        })
        .collect();
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "order_id": ord_no.to_string(), "reservations": reservations })),
    ))
}
