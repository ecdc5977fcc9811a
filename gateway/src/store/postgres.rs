//! The PostgreSQL store shared by gateway replicas.
//!
//! One connection per replica carries commands and `LISTEN fig_gateway_toggles`. A change is a
//! single statement: upsert the toggle row if its version is still the expected one, append the
//! audit entry, `pg_notify` the capability; all or nothing. Every replica (the writer included)
//! reloads on the notification, so a change made anywhere is live everywhere in milliseconds.
//!
//! ```text
//!  replica A ── PUT toggle ──▶ upsert + audit + NOTIFY (one statement) ──▶ PostgreSQL
//!                                                                           │ notification
//!  replica A, B, … ◀── reload toggles, swap the table ◀──────────────────────┘
//! ```
//!
//! When the connection drops, the replica keeps serving its last table, reports not-ready and
//! refuses changes, reconnects with backoff, then reloads (changes missed meanwhile included).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, Client, NoTls};

use super::{StoreError, StoredToggles};
use crate::audit::AuditEntry;
use crate::toggle::Toggle;

/// Notification channel.
pub const CHANNEL: &str = "fig_gateway_toggles";
/// Reconnect pause bounds.
const RECONNECT_MIN: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(2);

const SCHEMA: &str = "BEGIN;
SELECT pg_advisory_xact_lock(746173);
CREATE TABLE IF NOT EXISTS fig_gateway_toggles (
  capability text PRIMARY KEY,
  toggle text NOT NULL,
  version bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS fig_gateway_audit (
  id bigserial PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT now(),
  entry text NOT NULL);
COMMIT;
LISTEN fig_gateway_toggles;";

const COMMIT: &str = "WITH up AS (
  INSERT INTO fig_gateway_toggles (capability, toggle, version) VALUES ($1, $2, $3)
  ON CONFLICT (capability) DO UPDATE
    SET toggle = EXCLUDED.toggle, version = EXCLUDED.version, updated_at = now()
    WHERE fig_gateway_toggles.version = $4
  RETURNING capability),
au AS (INSERT INTO fig_gateway_audit (entry) SELECT $5 FROM up RETURNING id)
SELECT up.capability, pg_notify('fig_gateway_toggles', up.capability)::text, (SELECT count(*) FROM au)
FROM up";

/// Toggles in PostgreSQL.
pub struct PgStore {
    client: Arc<RwLock<Option<Arc<Client>>>>,
    ready: Arc<AtomicBool>,
    changes: watch::Receiver<u64>,
    task: JoinHandle<()>,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PgStore {
    /// Connects (failing if the database is unreachable now), creates the tables, listens, and
    /// keeps the connection up in the background.
    pub async fn open(url: &str) -> Result<PgStore, StoreError> {
        let mut config: tokio_postgres::Config =
            url.parse().map_err(|source| StoreError::Postgres {
                what: "parse store.url",
                source,
            })?;
        config.application_name("fig-gateway");
        let (tx, rx) = watch::channel(0u64);
        let tx = Arc::new(tx);
        let first = connect(&config, tx.clone()).await?;
        let client = Arc::new(RwLock::new(Some(first.0)));
        let ready = Arc::new(AtomicBool::new(true));
        let task = tokio::spawn(keep_connected(
            config,
            client.clone(),
            ready.clone(),
            tx,
            first.1,
        ));
        Ok(PgStore {
            client,
            ready,
            changes: rx,
            task,
        })
    }

    /// A receiver that changes whenever the stored toggles may have changed (a notification, or
    /// a reconnection after which missed notifications must be made up by a reload).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }

    /// Whether the store is connected.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    fn client(&self) -> Result<Arc<Client>, StoreError> {
        let guard = self.client.read().unwrap_or_else(|p| p.into_inner());
        guard
            .clone()
            .filter(|c| !c.is_closed())
            .ok_or(StoreError::Unavailable)
    }

    /// Every stored toggle.
    pub async fn load(&self) -> Result<StoredToggles, StoreError> {
        let rows = self
            .client()?
            .query("SELECT capability, toggle FROM fig_gateway_toggles", &[])
            .await
            .map_err(|source| unavailable_or("load toggles", source))?;
        let mut out = StoredToggles::new();
        for row in rows {
            let capability: String = row.get(0);
            let text: String = row.get(1);
            let toggle = serde_json::from_str(&text).map_err(|source| StoreError::BadRow {
                capability: capability.clone(),
                source,
            })?;
            out.insert(capability, toggle);
        }
        Ok(out)
    }

    /// Upserts the toggle if the stored version is `expected_version` (or no row exists), with
    /// its audit entry and notification, atomically.
    pub async fn commit(
        &self,
        capability: &str,
        expected_version: u64,
        toggle: &Toggle,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let toggle_json = serde_json::to_string(toggle).map_err(|source| StoreError::BadRow {
            capability: capability.to_string(),
            source,
        })?;
        let audit_json = serde_json::to_string(audit).map_err(|source| StoreError::BadRow {
            capability: capability.to_string(),
            source,
        })?;
        let version = i64::try_from(toggle.version).unwrap_or(i64::MAX);
        let expected = i64::try_from(expected_version).unwrap_or(i64::MAX);
        let rows = self
            .client()?
            .query(
                COMMIT,
                &[&capability, &toggle_json, &version, &expected, &audit_json],
            )
            .await
            .map_err(|source| unavailable_or("commit toggle", source))?;
        if rows.is_empty() {
            return Err(StoreError::Conflict {
                capability: capability.to_string(),
            });
        }
        Ok(())
    }

    /// Appends an audit entry.
    pub async fn append_audit(&self, audit: &AuditEntry) -> Result<(), StoreError> {
        let json = serde_json::to_string(audit).map_err(|source| StoreError::BadRow {
            capability: "(audit)".to_string(),
            source,
        })?;
        self.client()?
            .execute(
                "INSERT INTO fig_gateway_audit (entry) VALUES ($1)",
                &[&json],
            )
            .await
            .map_err(|source| unavailable_or("append audit", source))?;
        Ok(())
    }

    /// The latest `limit` audit entries, oldest first.
    pub async fn history(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .client()?
            .query("SELECT entry FROM (SELECT id, entry FROM fig_gateway_audit ORDER BY id DESC LIMIT $1) t ORDER BY id", &[&limit])
            .await
            .map_err(|source| unavailable_or("read history", source))?;
        rows.iter()
            .map(|r| {
                let text: String = r.get(0);
                serde_json::from_str(&text).map_err(|source| StoreError::BadRow {
                    capability: "(audit)".to_string(),
                    source,
                })
            })
            .collect()
    }
}

fn unavailable_or(what: &'static str, source: tokio_postgres::Error) -> StoreError {
    if source.is_closed() {
        StoreError::Unavailable
    } else {
        StoreError::Postgres { what, source }
    }
}

/// Connects, spawns the task driving the connection (which bumps `changes` on every
/// notification and ends with the connection), creates the tables and listens.
async fn connect(
    config: &tokio_postgres::Config,
    changes: Arc<watch::Sender<u64>>,
) -> Result<(Arc<Client>, JoinHandle<()>), StoreError> {
    let (client, mut connection) =
        config
            .connect(NoTls)
            .await
            .map_err(|source| StoreError::Postgres {
                what: "connect",
                source,
            })?;
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notification(_) = message {
                changes.send_modify(|n| *n += 1);
            }
        }
    });
    if let Err(source) = client.batch_execute(SCHEMA).await {
        driver.abort();
        return Err(StoreError::Postgres {
            what: "create tables and LISTEN",
            source,
        });
    }
    Ok((Arc::new(client), driver))
}

async fn keep_connected(
    config: tokio_postgres::Config,
    slot: Arc<RwLock<Option<Arc<Client>>>>,
    ready: Arc<AtomicBool>,
    changes: Arc<watch::Sender<u64>>,
    mut driver: JoinHandle<()>,
) {
    loop {
        let _ = (&mut driver).await;
        ready.store(false, Ordering::Release);
        *slot.write().unwrap_or_else(|p| p.into_inner()) = None;
        tracing::warn!(
            store = "postgres",
            "toggle store connection lost; serving the last known table"
        );
        let mut pause = RECONNECT_MIN;
        driver = loop {
            tokio::time::sleep(pause).await;
            match connect(&config, changes.clone()).await {
                Ok((client, d)) => {
                    *slot.write().unwrap_or_else(|p| p.into_inner()) = Some(client);
                    break d;
                }
                Err(e) => {
                    tracing::warn!(store = "postgres", error = %e, "toggle store still unreachable");
                    pause = (pause * 2).min(RECONNECT_MAX);
                }
            }
        };
        ready.store(true, Ordering::Release);
        tracing::info!(
            store = "postgres",
            "toggle store reconnected; reloading toggles"
        );
        changes.send_modify(|n| *n += 1);
    }
}
