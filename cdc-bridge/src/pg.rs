//! Ordinary SQL against the legacy database (tokio-postgres): slot state, slot lag, heartbeats.

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::{Client, NoTls};

use crate::config::HEARTBEAT_PREFIX;
use crate::error::BridgeError;
use crate::session::Shared;

/// Opens an ordinary connection and drives it on the runtime.
pub async fn connect(conn: &str) -> Result<Client, BridgeError> {
    let (client, connection) = tokio_postgres::connect(conn, NoTls)
        .await
        .map_err(|e| BridgeError::postgres("connecting", e))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "PostgreSQL connection closed");
        }
    });
    Ok(client)
}

/// The pid of the walsender holding `slot`, if any.
pub async fn slot_holder(conn: &str, slot: &str) -> Result<Option<i32>, BridgeError> {
    let client = connect(conn).await?;
    let row = client
        .query_opt(
            "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(|e| BridgeError::postgres("reading pg_replication_slots", e))?;
    Ok(row.and_then(|r| r.get::<_, Option<i32>>(0)))
}

/// Whether `slot` exists.
pub async fn slot_exists(conn: &str, slot: &str) -> Result<bool, BridgeError> {
    let client = connect(conn).await?;
    let row = client
        .query_opt(
            "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(|e| BridgeError::postgres("reading pg_replication_slots", e))?;
    Ok(row.is_some())
}

/// A slot's position and health.
#[derive(Debug, Clone)]
pub struct SlotStatus {
    /// Bytes between the current WAL position and the confirmed flush.
    pub lag_bytes: i64,
    /// Bytes of WAL the slot retains (from its restart LSN).
    pub retained_bytes: i64,
    /// `reserved`, `extended`, `unreserved` or `lost`.
    pub wal_status: String,
    /// Confirmed flush LSN, `X/Y`.
    pub confirmed_flush: String,
    /// Walsender pid, if streaming.
    pub active_pid: Option<i32>,
}

/// Reads a slot's lag and health; `None` when the slot does not exist.
pub async fn slot_status(client: &Client, slot: &str) -> Result<Option<SlotStatus>, BridgeError> {
    let row = client
        .query_opt(
            "SELECT coalesce((pg_current_wal_lsn() - confirmed_flush_lsn)::bigint, 0), \
                    coalesce((pg_current_wal_lsn() - restart_lsn)::bigint, 0), \
                    coalesce(wal_status, 'unknown'), coalesce(confirmed_flush_lsn::text, ''), active_pid \
             FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(|e| BridgeError::postgres("reading slot lag", e))?;
    Ok(row.map(|r| SlotStatus {
        lag_bytes: r.get(0),
        retained_bytes: r.get(1),
        wal_status: r.get(2),
        confirmed_flush: r.get(3),
        active_pid: r.get(4),
    }))
}

/// Measures slot lag every `slot_lag_interval` into the metrics, warning above the threshold.
pub async fn monitor_slot(shared: Arc<Shared>) {
    let cfg = &shared.config.postgres;
    let mut tick = tokio::time::interval(cfg.slot_lag_interval);
    let mut client: Option<Client> = None;
    loop {
        tick.tick().await;
        if client.as_ref().is_none_or(Client::is_closed) {
            client = connect(&cfg.conn).await.ok();
        }
        let Some(c) = &client else { continue };
        match slot_status(c, &cfg.slot).await {
            Ok(Some(s)) => {
                shared.telemetry.slot_measured(
                    s.lag_bytes,
                    s.retained_bytes,
                    &s.wal_status,
                    cfg.slot_lag_warn_bytes,
                );
            }
            Ok(None) => tracing::warn!(slot = %cfg.slot, "replication slot disappeared"),
            Err(e) => tracing::debug!(error = %e, "slot lag not measured"),
        }
    }
}

/// Writes a non-transactional logical message every `every`, so the stream's position moves
/// (and is acknowledged) even when nothing the publication covers changes.
pub async fn heartbeat(shared: Arc<Shared>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    let mut client: Option<Client> = None;
    loop {
        tick.tick().await;
        if client.as_ref().is_none_or(Client::is_closed) {
            client = connect(&shared.config.postgres.conn).await.ok();
        }
        let Some(c) = &client else { continue };
        if let Err(e) = c
            .execute(
                "SELECT pg_logical_emit_message(false, $1, '')",
                &[&HEARTBEAT_PREFIX],
            )
            .await
        {
            tracing::debug!(error = %e, "heartbeat not written");
        }
    }
}

/// Drops `slot` (it must not be active).
pub async fn drop_slot(conn: &str, slot: &str) -> Result<(), BridgeError> {
    let client = connect(conn).await?;
    client
        .execute("SELECT pg_drop_replication_slot($1)", &[&slot])
        .await
        .map_err(|e| BridgeError::postgres(format!("dropping slot `{slot}`"), e))?;
    Ok(())
}

/// The slot's confirmed flush LSN (right after creation: its consistent point).
pub async fn confirmed_flush(conn: &str, slot: &str) -> Result<u64, BridgeError> {
    let client = connect(conn).await?;
    let row = client
        .query_one(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(|e| BridgeError::postgres("reading the slot's consistent point", e))?;
    let text: String = row.get(0);
    crate::checkpoint::parse_lsn(&text)
        .ok_or_else(|| BridgeError::definite(format!("unreadable LSN `{text}`"), "report a bug"))
}

/// Logs, every few seconds, the transactions a logical slot creation is waiting for.
pub async fn report_slot_creation_blockers(conn: String) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    tick.tick().await;
    loop {
        tick.tick().await;
        let Ok(client) = connect(&conn).await else {
            continue;
        };
        let Ok(rows) = client
            .query(
                "SELECT pid, coalesce(datname::text, ''), coalesce(state, ''), extract(epoch FROM now() - xact_start)::float8 \
                 FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid() ORDER BY xact_start",
                &[],
            )
            .await
        else {
            continue;
        };
        for r in rows {
            let (pid, db, state, secs): (i32, String, String, f64) =
                (r.get(0), r.get(1), r.get(2), r.get(3));
            tracing::warn!(pid, database = %db, state = %state, open_for_secs = secs.round(), "creating the replication slot waits for this transaction to end (pg_terminate_backend(pid) ends it)");
        }
    }
}
