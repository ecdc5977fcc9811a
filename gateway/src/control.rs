//! The control plane: the live snapshot (route table + toggles) and every way it changes.
//!
//! Readers (`Live::load`, once per request) never lock: the snapshot sits in an `ArcSwap` and
//! is replaced whole. Writers are serialised by one mutex: a change is checked, persisted with
//! its audit entry in the store, then a complete new snapshot is built and swapped in. A change
//! the store refuses changes nothing.

use arc_swap::ArcSwap;
use std::sync::Arc;
use tokio::sync::Mutex;

use crate::audit::{AuditEntry, Outcome};
use crate::observability::Metrics;
use crate::route::RouteTable;
use crate::store::{Store, StoreError, StoredToggles};
use crate::toggle::{Toggle, ToggleState, Toggles};

/// One consistent view: the table and the toggles that go with it.
#[derive(Debug)]
pub struct Live {
    /// The route table (fixed for the process's life).
    pub table: Arc<RouteTable>,
    /// The toggles, in table order.
    pub toggles: Toggles,
}

/// Who asks for a change.
#[derive(Debug, Clone)]
pub struct Actor {
    /// Token name.
    pub name: String,
    /// Role name.
    pub role: String,
    /// Client address.
    pub remote: Option<String>,
}

/// Why a change was not made.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// No such capability.
    #[error("no capability named `{0}`")]
    UnknownCapability(String),
    /// No reason given.
    #[error("a non-empty `reason` is required")]
    MissingReason,
    /// Rollback without a previous state.
    #[error("capability `{0}` has no previous state to roll back to")]
    NothingToRollBack(String),
    /// The store refused or is unreachable.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The live snapshot plus its writers.
pub struct ControlPlane {
    live: Arc<ArcSwap<Live>>,
    store: Store,
    metrics: Arc<Metrics>,
    writer: Mutex<()>,
}

impl ControlPlane {
    /// Starts from the stored toggles, falling back to each capability's configured state.
    pub fn new(
        table: Arc<RouteTable>,
        stored: &StoredToggles,
        store: Store,
        metrics: Arc<Metrics>,
    ) -> ControlPlane {
        let toggles = merge(&table, stored, None);
        metrics.set_toggles(&toggles);
        metrics.store_ready.set(i64::from(store.is_ready()));
        let live = Arc::new(ArcSwap::from_pointee(Live { table, toggles }));
        ControlPlane {
            live,
            store,
            metrics,
            writer: Mutex::new(()),
        }
    }

    /// The shared snapshot the proxy reads.
    pub fn live(&self) -> Arc<ArcSwap<Live>> {
        self.live.clone()
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Moves capability `name` to `to`.
    pub async fn set(
        &self,
        actor: &Actor,
        name: &str,
        to: ToggleState,
        reason: &str,
    ) -> Result<AuditEntry, ChangeError> {
        self.change(actor, "set", name, reason, |_| Ok(to)).await
    }

    /// Moves capability `name` back to its previous state.
    pub async fn rollback(
        &self,
        actor: &Actor,
        name: &str,
        reason: &str,
    ) -> Result<AuditEntry, ChangeError> {
        self.change(actor, "rollback", name, reason, |t| {
            t.previous
                .ok_or_else(|| ChangeError::NothingToRollBack(name.to_string()))
        })
        .await
    }

    async fn change(
        &self,
        actor: &Actor,
        action: &str,
        name: &str,
        reason: &str,
        target: impl FnOnce(&Toggle) -> Result<ToggleState, ChangeError>,
    ) -> Result<AuditEntry, ChangeError> {
        let _writer = self.writer.lock().await;
        let live = self.live.load_full();
        let index = live
            .table
            .index_of(name)
            .ok_or_else(|| ChangeError::UnknownCapability(name.to_string()))?;
        if reason.trim().is_empty() {
            return Err(ChangeError::MissingReason);
        }
        let current = live.toggles.0[index];
        let to = target(&current)?;
        let next = current.changed_to(to);
        let mut entry = entry(actor, action, Outcome::Applied);
        entry.capability = Some(name.to_string());
        entry.from = Some(current.state);
        entry.to = Some(to);
        entry.reason = Some(reason.to_string());
        self.store
            .commit(name, current.version, &next, &entry)
            .await?;
        let toggles = live.toggles.with(index, next);
        self.metrics.set_toggles(&toggles);
        self.live.store(Arc::new(Live {
            table: live.table.clone(),
            toggles,
        }));
        tracing::info!(
            capability = name,
            actor = %actor.name,
            from = %current.state,
            to = %to,
            reason,
            "toggle changed"
        );
        Ok(entry)
    }

    /// Records a refused attempt; a store failure here is logged, never hidden from the log.
    pub async fn audit_refusal(&self, entry: AuditEntry) {
        tracing::warn!(actor = %entry.actor, action = %entry.action, detail = ?entry.detail, "admin attempt refused");
        self.metrics.count_change("refused");
        if let Err(e) = self.store.append_audit(&entry).await {
            tracing::error!(error = %e, "could not append a refused attempt to the audit log");
        }
    }

    /// Reloads toggles from the store (another replica changed them, or the store came back)
    /// and swaps in the result; a toggle never goes back to an older version.
    pub async fn reload(&self) -> Result<(), StoreError> {
        let _writer = self.writer.lock().await;
        self.metrics
            .store_ready
            .set(i64::from(self.store.is_ready()));
        let stored = self.store.load().await?;
        let live = self.live.load_full();
        let toggles = merge(&live.table, &stored, Some(&live.toggles));
        if toggles != live.toggles {
            self.metrics.set_toggles(&toggles);
            self.live.store(Arc::new(Live {
                table: live.table.clone(),
                toggles,
            }));
            tracing::info!("toggles reloaded from the store");
        }
        Ok(())
    }
}

/// An audit entry for `actor`.
pub fn entry(actor: &Actor, action: &str, outcome: Outcome) -> AuditEntry {
    let mut e = AuditEntry::now(&actor.name, action, outcome);
    e.role = Some(actor.role.clone());
    e.remote = actor.remote.clone();
    e
}

fn merge(table: &RouteTable, stored: &StoredToggles, current: Option<&Toggles>) -> Toggles {
    Toggles(
        table
            .capabilities
            .iter()
            .enumerate()
            .map(|(i, cap)| {
                let from_store = stored.get(&*cap.name).copied();
                let now = current.and_then(|c| c.0.get(i).copied());
                match (from_store, now) {
                    (Some(s), Some(n)) if n.version > s.version => n,
                    (Some(s), _) => s,
                    (None, Some(n)) => n,
                    (None, None) => Toggle::initial(cap.initial),
                }
            })
            .collect(),
    )
}
