//! The new service's read model, read with its configured query into a compact map (order id →
//! status), streamed row by row.

use std::collections::HashMap;

use futures_util::{TryStreamExt, pin_mut};
use tokio_postgres::types::Type;

use super::error::ReconcileError;
use super::options::ReadModelSettings;
use super::status::OrderStatus;

/// Runs the query and keeps (order id, status) per row.
pub async fn load(
    settings: &ReadModelSettings,
) -> Result<HashMap<i64, OrderStatus>, ReconcileError> {
    let client = crate::pg::connect(&settings.conn).await?;
    let rows = client
        .query_raw(settings.query.as_str(), std::iter::empty::<i64>())
        .await
        .map_err(|e| ReconcileError::postgres("running the read-model query", e))?;
    pin_mut!(rows);
    let mut statuses = HashMap::new();
    let mut n = 0u64;
    while let Some(row) = rows
        .try_next()
        .await
        .map_err(|e| ReconcileError::postgres("reading the read-model query's rows", e))?
    {
        n += 1;
        let bad = |column, problem: &str| ReconcileError::ReadModelRow {
            row: n,
            column,
            problem: problem.into(),
        };
        if row.len() < 2 {
            return Err(bad(0, "fewer than two columns"));
        }
        let id = match *row.columns()[0].type_() {
            Type::INT8 => row.try_get::<_, i64>(0).ok(),
            Type::INT4 => row.try_get::<_, i32>(0).ok().map(i64::from),
            _ => row
                .try_get::<_, String>(0)
                .ok()
                .and_then(|t| t.trim().parse().ok()),
        }
        .ok_or_else(|| {
            bad(
                0,
                "order id is not a number (bigint, integer or numeric text)",
            )
        })?;
        let status = row
            .try_get::<_, String>(1)
            .ok()
            .and_then(|t| OrderStatus::parse(&t))
            .ok_or_else(|| bad(1, "status is not a known order status name or legacy code"))?;
        statuses.insert(id, status);
    }
    Ok(statuses)
}
