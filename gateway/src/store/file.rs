//! The local file store: toggles in one JSON file replaced atomically, audit entries appended to
//! `<file>.audit.jsonl`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use tokio::sync::Mutex;

use super::{StoreError, StoredToggles};
use crate::audit::AuditEntry;
use crate::toggle::Toggle;

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    toggles: BTreeMap<String, Toggle>,
}

/// Toggles in a local file.
pub struct FileStore {
    path: PathBuf,
    audit_path: PathBuf,
    state: Mutex<StateFile>,
}

impl FileStore {
    /// Reads the file if it exists; a missing file means nothing stored yet.
    pub async fn open(path: PathBuf) -> Result<FileStore, StoreError> {
        let p = path.clone();
        let state = blocking(move || read_state(&p)).await?;
        let mut audit = path.clone().into_os_string();
        audit.push(".audit.jsonl");
        Ok(FileStore {
            path,
            audit_path: PathBuf::from(audit),
            state: Mutex::new(state),
        })
    }

    /// The stored toggles.
    pub async fn load(&self) -> StoredToggles {
        self.state
            .lock()
            .await
            .toggles
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    /// Writes the whole state with `toggle` in it, then appends the audit entry.
    pub async fn commit(
        &self,
        capability: &str,
        toggle: &Toggle,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let mut state = self.state.lock().await;
        let mut next = state.toggles.clone();
        next.insert(capability.to_string(), *toggle);
        let text = serde_json::to_vec_pretty(&StateFile {
            toggles: next.clone(),
        })
        .map_err(|source| StoreError::Corrupt {
            path: self.path.clone(),
            source,
        })?;
        let path = self.path.clone();
        blocking(move || write_atomically(&path, &text)).await?;
        state.toggles = next;
        drop(state);
        self.append_audit(audit).await
    }

    /// Appends one audit line.
    pub async fn append_audit(&self, audit: &AuditEntry) -> Result<(), StoreError> {
        let mut line = serde_json::to_vec(audit).map_err(|source| StoreError::Corrupt {
            path: self.audit_path.clone(),
            source,
        })?;
        line.push(b'\n');
        let path = self.audit_path.clone();
        blocking(move || {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|source| StoreError::Io {
                    path: path.clone(),
                    source,
                })?;
            f.write_all(&line)
                .and_then(|()| f.sync_data())
                .map_err(|source| StoreError::Io { path, source })
        })
        .await
    }

    /// The last `limit` audit entries.
    pub async fn history(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let path = self.audit_path.clone();
        blocking(move || {
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(source) => return Err(StoreError::Io { path, source }),
            };
            let mut entries = Vec::new();
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let entry = serde_json::from_str(line).map_err(|source| StoreError::Corrupt {
                    path: path.clone(),
                    source,
                })?;
                entries.push(entry);
            }
            let skip = entries.len().saturating_sub(limit);
            Ok(entries.split_off(skip))
        })
        .await
    }
}

fn read_state(path: &Path) -> Result<StateFile, StoreError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| StoreError::Corrupt {
            path: path.to_path_buf(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(StateFile::default()),
        Err(source) => Err(StoreError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Temporary file in the same directory, fsync, rename over the target, fsync the directory:
/// a crash leaves either the old file or the new one, never a mix.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let io = |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(StoreError::Io {
            path: PathBuf::from("(store task)"),
            source: std::io::Error::other(e.to_string()),
        })
    })
}
