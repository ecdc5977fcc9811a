//! The audit record: every toggle change and every refused admin attempt, with who, when, from
//! what to what, and why.

use serde::{Deserialize, Serialize};

use crate::toggle::ToggleState;

/// Outcome of an admin attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The change was made.
    Applied,
    /// Nothing changed.
    Refused,
}

/// One audit entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// RFC 3339 time, UTC.
    pub at: String,
    /// Token name, or `anonymous` when none was valid.
    pub actor: String,
    /// The actor's role, when authenticated.
    pub role: Option<String>,
    /// Client address of the admin call.
    pub remote: Option<String>,
    /// `set`, `rollback`, or the refused call (`GET /api/v1/history`, …).
    pub action: String,
    /// Capability concerned.
    pub capability: Option<String>,
    /// State before.
    pub from: Option<ToggleState>,
    /// State after (or asked for, when refused).
    pub to: Option<ToggleState>,
    /// The reason the actor gave.
    pub reason: Option<String>,
    /// Applied or refused.
    pub outcome: Outcome,
    /// Why it was refused (`401 missing token`, `403 role viewer`, …).
    pub detail: Option<String>,
}

impl AuditEntry {
    /// An entry stamped now.
    pub fn now(actor: &str, action: &str, outcome: Outcome) -> AuditEntry {
        AuditEntry {
            at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            actor: actor.to_string(),
            role: None,
            remote: None,
            action: action.to_string(),
            capability: None,
            from: None,
            to: None,
            reason: None,
            outcome,
            detail: None,
        }
    }
}
