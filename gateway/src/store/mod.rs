//! Where toggle state and the audit log are kept, so a restart keeps the toggles and replicas
//! agree.
//!
//! - [`file`]: the embedded default; a JSON file written atomically (temporary file, fsync,
//!   rename) and a JSON-lines audit log beside it.
//! - [`postgres`]: for several replicas; a table of toggles and one of audit entries, each change
//!   committed with a version check and announced with `NOTIFY`, which every replica `LISTEN`s
//!   to and reloads on. A replica that loses the database keeps serving its last table and
//!   reports not-ready (changes are refused) until it reconnects.

pub mod file;
pub mod postgres;

use std::collections::HashMap;
use std::path::PathBuf;

use crate::audit::AuditEntry;
use crate::config::StoreConfig;
use crate::toggle::Toggle;

/// Stored toggles by capability name.
pub type StoredToggles = HashMap<String, Toggle>;

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The state or audit file could not be read or written.
    #[error("toggle store file {path}: I/O error; check the path and its permissions")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The state file is not what this gateway wrote.
    #[error(
        "toggle store file {path} is corrupt; restore it or remove it to start from the config's states"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: serde_json::Error,
    },
    /// A PostgreSQL call failed.
    #[error("toggle store PostgreSQL: {what} failed")]
    Postgres {
        /// What was being done.
        what: &'static str,
        /// Cause.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The store is not reachable now; the last known table keeps serving.
    #[error(
        "toggle store unreachable; serving the last known table, changes refused until it is back"
    )]
    Unavailable,
    /// Another replica changed the capability first.
    #[error("capability `{capability}` was changed concurrently; reload and retry")]
    Conflict {
        /// The capability.
        capability: String,
    },
    /// A stored row does not decode.
    #[error("toggle store row for `{capability}` does not decode")]
    BadRow {
        /// The capability.
        capability: String,
        /// Cause.
        #[source]
        source: serde_json::Error,
    },
}

/// The configured store.
pub enum Store {
    /// Local file.
    File(file::FileStore),
    /// Shared PostgreSQL.
    Postgres(postgres::PgStore),
}

impl Store {
    /// Opens the store; a PostgreSQL store connects (and creates its tables) here.
    pub async fn open(config: &StoreConfig) -> Result<Store, StoreError> {
        match config {
            StoreConfig::File { path } => {
                Ok(Store::File(file::FileStore::open(path.clone()).await?))
            }
            StoreConfig::Postgres { url } => {
                Ok(Store::Postgres(postgres::PgStore::open(url).await?))
            }
        }
    }

    /// Every stored toggle.
    pub async fn load(&self) -> Result<StoredToggles, StoreError> {
        match self {
            Store::File(f) => Ok(f.load().await),
            Store::Postgres(p) => p.load().await,
        }
    }

    /// Stores `toggle` for `capability` if its stored version is still `expected_version`, and
    /// appends `audit`, in one step.
    pub async fn commit(
        &self,
        capability: &str,
        expected_version: u64,
        toggle: &Toggle,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        match self {
            Store::File(f) => f.commit(capability, toggle, audit).await,
            Store::Postgres(p) => p.commit(capability, expected_version, toggle, audit).await,
        }
    }

    /// Appends an audit entry that changed nothing (a refused attempt).
    pub async fn append_audit(&self, audit: &AuditEntry) -> Result<(), StoreError> {
        match self {
            Store::File(f) => f.append_audit(audit).await,
            Store::Postgres(p) => p.append_audit(audit).await,
        }
    }

    /// The latest `limit` audit entries, oldest first.
    pub async fn history(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        match self {
            Store::File(f) => f.history(limit).await,
            Store::Postgres(p) => p.history(limit).await,
        }
    }

    /// Whether the store accepts changes now.
    pub fn is_ready(&self) -> bool {
        match self {
            Store::File(_) => true,
            Store::Postgres(p) => p.is_ready(),
        }
    }
}
