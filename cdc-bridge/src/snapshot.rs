//! Initial snapshot, consistent with the slot: the rows that existed before streaming starts.
//!
//! When the bridge creates its slot it exports a snapshot; before `START_REPLICATION` (which
//! destroys it) a second connection imports it and reads every mapped table in key order, in
//! chunks, as ordinary row inserts marked [`Origin::Snapshot`]. They flow through the same
//! publisher as streamed rows, as **one** Kafka transaction ending with the checkpoint at the
//! slot's consistent point — so a crash during the snapshot leaves nothing visible and no
//! checkpoint, and the next start drops the half-used slot and snapshots again from scratch.
//! Progress (rows, percent, ETA) goes to the log and the metrics.

use std::sync::Arc;
use std::time::Instant;

use acl::{Cell, OldImage, Op, Origin, RowChange, SourcePosition, TableSpec};
use tokio::sync::mpsc;
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::checkpoint::format_lsn;
use crate::error::BridgeError;
use crate::pg;
use crate::session::Shared;
use crate::sink::producer::TransactionalProducer;
use crate::sink::publisher::Publisher;
use crate::source::WalEvent;

/// Reads every mapped table inside the exported snapshot `snapshot_name` (consistent at
/// `consistent_lsn`) and sends the rows as one transaction into `out`.
pub async fn run_initial(
    shared: &Arc<Shared>,
    snapshot_name: &str,
    consistent_lsn: u64,
    out: &mpsc::Sender<Vec<WalEvent>>,
) -> Result<(), BridgeError> {
    let client = pg::connect(&shared.config.postgres.conn).await?;
    client
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}",
            quote(snapshot_name)
        ))
        .await
        .map_err(|e| BridgeError::postgres("importing the slot's exported snapshot", e))?;
    let now = now_micros();
    send(
        out,
        WalEvent::Begin {
            xid: 0,
            final_lsn: consistent_lsn,
            commit_ts_micros: now,
        },
    )
    .await?;
    let mut seq = 0u32;
    for spec in shared.mapper.tables().iter().filter(|t| !t.is_outbox) {
        copy_table(shared, &client, spec, consistent_lsn, now, &mut seq, out).await?;
    }
    send(
        out,
        WalEvent::Commit {
            commit_lsn: consistent_lsn,
            end_lsn: consistent_lsn,
            commit_ts_micros: now,
        },
    )
    .await?;
    client
        .batch_execute("COMMIT")
        .await
        .map_err(|e| BridgeError::postgres("ending the snapshot transaction", e))?;
    tracing::info!(lsn = %format_lsn(consistent_lsn), rows = seq, "initial snapshot handed over");
    Ok(())
}

/// Re-copies one mapped table (`schema.table` or `table`) into Kafka as snapshot events, in one
/// Kafka transaction of its own (a separate transactional id, so a streaming bridge is not
/// fenced), without touching the streaming checkpoint.
pub async fn run_on_demand(shared: &Arc<Shared>, table: &str) -> Result<(), BridgeError> {
    let spec = shared
        .mapper
        .tables()
        .iter()
        .find(|t| table == t.table || table == format!("{}.{}", t.schema, t.table))
        .ok_or_else(|| {
            BridgeError::definite(
                format!("table `{table}` is not in the ACL mapping"),
                "name a mapped table (see acl mapping file)",
            )
        })?;
    let cfg = &shared.config;
    let producer = TransactionalProducer::start(
        &shared.kafka,
        &format!("{}.resnapshot", cfg.kafka.transactional_id),
        cfg.kafka.transaction_timeout,
    )
    .await?;
    let (tx, rx) = mpsc::channel(8);
    let (ack_tx, mut ack_rx) = tokio::sync::watch::channel(0u64);
    let publisher =
        Publisher::new(Arc::clone(shared), producer, Default::default()).without_progress();
    let publishing = tokio::spawn(publisher.run(rx, ack_tx));
    let client = pg::connect(&cfg.postgres.conn).await?;
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .map_err(|e| BridgeError::postgres("starting the snapshot transaction", e))?;
    let lsn_text: String = client
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .map_err(|e| BridgeError::postgres("reading the current WAL position", e))?
        .get(0);
    let lsn = crate::checkpoint::parse_lsn(&lsn_text).unwrap_or_default();
    let now = now_micros();
    let mut seq = 0;
    send(
        &tx,
        WalEvent::Begin {
            xid: 0,
            final_lsn: lsn,
            commit_ts_micros: now,
        },
    )
    .await?;
    copy_table(shared, &client, spec, lsn, now, &mut seq, &tx).await?;
    send(
        &tx,
        WalEvent::Commit {
            commit_lsn: lsn,
            end_lsn: lsn,
            commit_ts_micros: now,
        },
    )
    .await?;
    drop(tx);
    publishing.await.map_err(|e| {
        BridgeError::definite(format!("publisher task failed: {e}"), "report a bug")
    })??;
    if *ack_rx.borrow_and_update() != lsn {
        return Err(BridgeError::Unavailable(
            "the re-snapshot was not committed".into(),
        ));
    }
    tracing::info!(table = %spec.table, rows = seq, "re-snapshot committed");
    Ok(())
}

async fn copy_table(
    shared: &Shared,
    client: &Client,
    spec: &TableSpec,
    lsn: u64,
    ts: i64,
    seq: &mut u32,
    out: &mpsc::Sender<Vec<WalEvent>>,
) -> Result<(), BridgeError> {
    let name = format!("{}.{}", quote_ident(&spec.schema), quote_ident(&spec.table));
    let q = |e| BridgeError::postgres(format!("snapshot of {}.{}", spec.schema, spec.table), e);
    let columns: Vec<(String, String)> = client
        .query(
            "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute \
             WHERE attrelid = $1::text::regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
            &[&name],
        )
        .await
        .map_err(q)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let names: Arc<[String]> = columns
        .iter()
        .map(|(n, _)| n.clone())
        .collect::<Vec<_>>()
        .into();
    let keys: Vec<(usize, &str)> = spec
        .key_columns
        .iter()
        .filter_map(|k| {
            columns
                .iter()
                .position(|(n, _)| n == k)
                .map(|i| (i, columns[i].1.as_str()))
        })
        .collect();
    if keys.len() != spec.key_columns.len() || keys.is_empty() {
        return Err(BridgeError::definite(
            format!(
                "snapshot: key columns {:?} of {name} not found in the table",
                spec.key_columns
            ),
            "correct key_columns in the ACL mapping",
        ));
    }
    let total: i64 = client
        .query_one(&format!("SELECT count(*) FROM {name}"), &[])
        .await
        .map_err(q)?
        .get(0);
    let select = columns
        .iter()
        .map(|(n, _)| quote_ident(n))
        .collect::<Vec<_>>()
        .join(", ");
    let order = keys
        .iter()
        .map(|(i, _)| quote_ident(&columns[*i].0))
        .collect::<Vec<_>>()
        .join(", ");
    let started = Instant::now();
    let mut copied: u64 = 0;
    let mut last: Option<Vec<String>> = None;
    loop {
        let filter = match &last {
            None => String::new(),
            Some(vals) => {
                let lits = keys
                    .iter()
                    .zip(vals)
                    .map(|((_, ty), v)| format!("{}::{ty}", quote(v)))
                    .collect::<Vec<_>>()
                    .join(", ");
                format!("WHERE ({order}) > ({lits})")
            }
        };
        let sql = format!(
            "SELECT {select} FROM {name} {filter} ORDER BY {order} LIMIT {}",
            shared.config.snapshot.chunk_rows
        );
        let rows = client.simple_query(&sql).await.map_err(q)?;
        let mut chunk = 0u64;
        let mut events = Vec::with_capacity(rows.len());
        for msg in rows {
            let SimpleQueryMessage::Row(row) = msg else {
                continue;
            };
            let cells: Vec<Cell> = (0..names.len())
                .map(|i| row.get(i).map_or(Cell::Null, |v| Cell::Text(v.to_string())))
                .collect();
            last = Some(
                keys.iter()
                    .map(|(i, _)| match &cells[*i] {
                        Cell::Text(t) => t.clone(),
                        _ => String::new(),
                    })
                    .collect(),
            );
            let change = RowChange {
                schema: spec.schema.clone(),
                table: spec.table.clone(),
                op: Op::Insert,
                columns: Arc::clone(&names),
                new: cells,
                old: Vec::new(),
                old_image: OldImage::None,
                position: SourcePosition {
                    commit_lsn: lsn,
                    xid: 0,
                    seq: *seq,
                },
                commit_ts_micros: ts,
                origin: Origin::Snapshot,
            };
            *seq = seq.saturating_add(1);
            events.push(WalEvent::Change(change));
            chunk += 1;
        }
        // One chunk per query: at most `chunk_rows` rows in memory.
        send_all(out, events).await?;
        copied += chunk;
        let ratio = if total > 0 {
            copied as f64 / total as f64
        } else {
            1.0
        };
        let eta = if ratio > 0.0 {
            started.elapsed().mul_f64((1.0 - ratio).max(0.0) / ratio)
        } else {
            std::time::Duration::ZERO
        };
        shared
            .telemetry
            .snapshot_progress(&spec.table, chunk, ratio.min(1.0));
        tracing::info!(table = %spec.table, rows = copied, total, percent = format!("{:.1}", ratio * 100.0), eta = ?eta, "snapshot progress");
        if chunk < u64::from(shared.config.snapshot.chunk_rows) {
            return Ok(());
        }
    }
}

async fn send(out: &mpsc::Sender<Vec<WalEvent>>, ev: WalEvent) -> Result<(), BridgeError> {
    send_all(out, vec![ev]).await
}

/// Hands a chunk of events to the publisher.
async fn send_all(
    out: &mpsc::Sender<Vec<WalEvent>>,
    events: Vec<WalEvent>,
) -> Result<(), BridgeError> {
    out.send(events)
        .await
        .map_err(|_| BridgeError::Unavailable("the publisher stopped".into()))
}

/// A SQL string literal (standard_conforming_strings on).
fn quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

/// A SQL identifier.
fn quote_ident(v: &str) -> String {
    format!("\"{}\"", v.replace('"', "\"\""))
}

/// Now, µs since the Unix epoch.
pub(crate) fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Literals and identifiers are quoted so a value cannot break out of the statement.
    #[test]
    fn quoting_escapes_quotes() {
        assert_eq!(quote("o'brien"), "'o''brien'");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
    }
}
