//! Schema-registry subjects per test: a unique prefix, and deletion of its subjects afterwards.

use crate::{Stack, block_on_side, unique_name};

/// A subject prefix owned by one test. Subjects starting with it are deleted (soft, then hard)
/// when it is dropped.
pub struct SubjectPrefix {
    /// Registry base URL.
    pub registry_url: String,
    /// The prefix, unique to this test.
    pub prefix: String,
}

impl SubjectPrefix {
    /// A new prefix named after `prefix`.
    pub fn new(prefix: &str) -> SubjectPrefix {
        SubjectPrefix {
            registry_url: Stack::from_env().registry_url,
            prefix: unique_name(prefix),
        }
    }

    /// The full subject name for `name` under this prefix.
    pub fn subject(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }
}

impl Drop for SubjectPrefix {
    fn drop(&mut self) {
        let url = self.registry_url.clone();
        let prefix = self.prefix.clone();
        block_on_side(async move {
            let http = reqwest::Client::new();
            let Ok(resp) = http.get(format!("{url}/subjects")).send().await else {
                return;
            };
            let Ok(subjects) = resp.json::<Vec<String>>().await else {
                return;
            };
            for s in subjects.iter().filter(|s| s.starts_with(&prefix)) {
                let _ = http.delete(format!("{url}/subjects/{s}")).send().await;
                let _ = http
                    .delete(format!("{url}/subjects/{s}?permanent=true"))
                    .send()
                    .await;
            }
        });
    }
}
