//! The legacy side, read at one consistent snapshot: a `REPEATABLE READ READ ONLY` transaction
//! whose WAL position and transaction snapshot are recorded, and a cursor that streams orders in
//! key order, a chunk at a time, keeping only what is compared.

use tokio_postgres::Client;

use super::compare::LegacyOrder;
use super::error::ReconcileError;
use super::fold::SnapshotView;
use super::status::OrderStatus;
use crate::checkpoint::parse_lsn;

/// The cursor's name inside the snapshot transaction.
const CURSOR: &str = "fig_reconcile_orders";

/// An open snapshot of the legacy database.
pub struct LegacySnapshot {
    client: Client,
    /// What the snapshot sees.
    pub view: SnapshotView,
    /// The snapshot's clock (start of its transaction), µs since the epoch.
    pub now_micros: i64,
    /// Orders the snapshot holds (for progress).
    pub total_orders: u64,
    cursor_open: bool,
}

impl LegacySnapshot {
    /// Opens the snapshot: the first statement of a `REPEATABLE READ` transaction fixes it, and
    /// the same statement reads its WAL position and transaction snapshot.
    pub async fn open(conn: &str) -> Result<LegacySnapshot, ReconcileError> {
        let client = crate::pg::connect(conn).await?;
        client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(|e| ReconcileError::postgres("opening the snapshot transaction", e))?;
        let row = client
            .query_one(
                "SELECT pg_current_wal_lsn()::text, txid_current_snapshot()::text, \
                 (extract(epoch FROM now()) * 1000000)::int8, \
                 (SELECT count(*) FROM ord_hdr)::int8",
                &[],
            )
            .await
            .map_err(|e| ReconcileError::postgres("reading the snapshot position of ord_hdr", e))?;
        let lsn_text: String = row.get(0);
        let snapshot_text: String = row.get(1);
        let lsn = parse_lsn(&lsn_text).ok_or_else(|| ReconcileError::Setting {
            key: "postgres.conn",
            problem: format!("server returned an unreadable WAL position `{lsn_text}`"),
        })?;
        let view =
            SnapshotView::parse(lsn, &snapshot_text).ok_or_else(|| ReconcileError::Setting {
                key: "postgres.conn",
                problem: format!("server returned an unreadable snapshot `{snapshot_text}`"),
            })?;
        Ok(LegacySnapshot {
            client,
            view,
            now_micros: row.get(2),
            total_orders: u64::try_from(row.get::<_, i64>(3)).unwrap_or(0),
            cursor_open: false,
        })
    }

    /// The next chunk of at most `rows` orders in `ord_no` order; empty at the end.
    pub async fn next_orders(&mut self, rows: u32) -> Result<Vec<LegacyOrder>, ReconcileError> {
        if !self.cursor_open {
            self.client
                .batch_execute(&format!(
                    "DECLARE {CURSOR} NO SCROLL CURSOR FOR \
                     SELECT ord_no, ord_stat_cd::text, \
                     (extract(epoch FROM upd_ts) * 1000000)::int8 \
                     FROM ord_hdr ORDER BY ord_no"
                ))
                .await
                .map_err(|e| ReconcileError::postgres("declaring the ord_hdr cursor", e))?;
            self.cursor_open = true;
        }
        let chunk = self
            .client
            .query(&format!("FETCH FORWARD {rows} FROM {CURSOR}"), &[])
            .await
            .map_err(|e| ReconcileError::postgres("fetching ord_hdr rows", e))?;
        chunk
            .iter()
            .map(|row| {
                let id: i64 = row.get(0);
                let code: String = row.get(1);
                let status = OrderStatus::from_legacy_code(&code).ok_or_else(|| {
                    ReconcileError::LegacyRow {
                        order: id,
                        column: "ord_stat_cd",
                        problem: "not one of the codes N A P S C X E".into(),
                    }
                })?;
                Ok(LegacyOrder {
                    id,
                    status,
                    changed_at_micros: row.get(2),
                })
            })
            .collect()
    }

    /// The connection inside the snapshot transaction.
    pub(super) fn client(&self) -> &Client {
        &self.client
    }

    /// Ends the snapshot transaction.
    pub async fn close(self) -> Result<(), ReconcileError> {
        self.client
            .batch_execute("COMMIT")
            .await
            .map_err(|e| ReconcileError::postgres("ending the snapshot transaction", e))
    }
}
