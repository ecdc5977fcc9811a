//! The order-status service's own database: the projection and its inbox.
//!
//! Each event is applied in one transaction together with its inbox row, so an event id seen
//! twice changes nothing:
//!
//! ```text
//! BEGIN
//!   INSERT INTO inbox (event_id, ...) ON CONFLICT DO NOTHING   -- 0 rows: duplicate, ROLLBACK
//!   SELECT state FROM order_status WHERE order_id = $1 FOR UPDATE
//!   apply (pure)  ->  UPSERT order_status
//! COMMIT                                                        -- then, and only then, the
//!                                                               -- Kafka offset is committed
//! ```

use super::OrderServiceError;
use super::projection::{self, OrderState};
use crate::demo::order_view::OrderView;
use contracts::DomainEvent;
use tokio_postgres::GenericClient;

/// Tables of the service, created at start when missing.
pub const SCHEMA_SQL: &str = "\
CREATE TABLE IF NOT EXISTS inbox (
    event_id        text        PRIMARY KEY,
    event_type      text        NOT NULL,
    aggregate_id    text        NOT NULL,
    topic           text        NOT NULL,
    kafka_partition integer     NOT NULL,
    kafka_offset    bigint      NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS order_status (
    order_id   text        PRIMARY KEY,
    status     text,
    state      jsonb       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS rejected_message (
    topic           text        NOT NULL,
    kafka_partition integer     NOT NULL,
    kafka_offset    bigint      NOT NULL,
    reason          text        NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, kafka_partition, kafka_offset)
);";

/// Where a message was read from, kept in the inbox for operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessagePosition {
    /// Kafka topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

/// What applying one event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The event changed (or created) an order's state.
    Changed,
    /// The event was recorded in the inbox but concerns no order status.
    Recorded,
    /// The event id was already in the inbox: nothing changed.
    Duplicate,
}

/// Creates the service's tables when missing.
pub async fn migrate(db: &impl GenericClient) -> Result<(), OrderServiceError> {
    db.batch_execute(SCHEMA_SQL)
        .await
        .map_err(OrderServiceError::db("creating tables"))
}

/// Applies `event` and records it in the inbox, in one transaction.
pub async fn apply_event(
    db: &mut tokio_postgres::Client,
    event: &DomainEvent,
    at: &MessagePosition,
) -> Result<Applied, OrderServiceError> {
    let tx = db
        .transaction()
        .await
        .map_err(OrderServiceError::db("beginning"))?;
    let env = &event.envelope;
    let inserted = tx
        .execute(
            "INSERT INTO inbox (event_id, event_type, aggregate_id, topic, kafka_partition, \
             kafka_offset) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO NOTHING",
            &[
                &env.event_id,
                &env.event_type,
                &env.aggregate_id,
                &at.topic,
                &at.partition,
                &at.offset,
            ],
        )
        .await
        .map_err(OrderServiceError::db("recording the event in the inbox"))?;
    if inserted == 0 {
        tx.rollback()
            .await
            .map_err(OrderServiceError::db("rolling back a duplicate"))?;
        return Ok(Applied::Duplicate);
    }
    let Some(order_id) = projection::order_of(event) else {
        tx.commit()
            .await
            .map_err(OrderServiceError::db("committing the inbox row"))?;
        return Ok(Applied::Recorded);
    };
    let mut state = load_state_for_update(&tx, order_id)
        .await?
        .unwrap_or_default();
    projection::apply(&mut state, event);
    let json = serde_json::to_string(&state).map_err(OrderServiceError::State)?;
    tx.execute(
        "INSERT INTO order_status (order_id, status, state) VALUES ($1, $2, $3::text::jsonb) \
         ON CONFLICT (order_id) DO UPDATE SET status = excluded.status, state = excluded.state, \
         updated_at = now()",
        &[&order_id, &state.status, &json],
    )
    .await
    .map_err(OrderServiceError::db("writing the order status"))?;
    tx.commit()
        .await
        .map_err(OrderServiceError::db("committing the event"))?;
    Ok(Applied::Changed)
}

async fn load_state_for_update(
    tx: &tokio_postgres::Transaction<'_>,
    order_id: &str,
) -> Result<Option<OrderState>, OrderServiceError> {
    let row = tx
        .query_opt(
            "SELECT state::text FROM order_status WHERE order_id = $1 FOR UPDATE",
            &[&order_id],
        )
        .await
        .map_err(OrderServiceError::db("reading the order status"))?;
    row.map(|r| serde_json::from_str(r.get(0)).map_err(OrderServiceError::State))
        .transpose()
}

/// The order as the service shows it, or `None` when it has not seen `OrderSubmitted` for it.
pub async fn load_view(
    db: &impl GenericClient,
    order_id: &str,
) -> Result<Option<OrderView>, OrderServiceError> {
    let row = db
        .query_opt(
            "SELECT state::text FROM order_status WHERE order_id = $1",
            &[&order_id],
        )
        .await
        .map_err(OrderServiceError::db("reading the order status"))?;
    let Some(row) = row else { return Ok(None) };
    let state: OrderState = serde_json::from_str(row.get(0)).map_err(OrderServiceError::State)?;
    Ok(projection::view(order_id, &state))
}

/// Records a message that could not be decoded, so that it is never dropped silently.
pub async fn reject_message(
    db: &impl GenericClient,
    at: &MessagePosition,
    reason: &str,
) -> Result<(), OrderServiceError> {
    db.execute(
        "INSERT INTO rejected_message (topic, kafka_partition, kafka_offset, reason) \
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        &[&at.topic, &at.partition, &at.offset, &reason],
    )
    .await
    .map_err(OrderServiceError::db("recording a rejected message"))?;
    Ok(())
}
