//! What can go wrong, split the way an operator needs it (after Materialize's Postgres source):
//!
//! - **transient** — the broker, the registry or PostgreSQL is briefly away. The session is torn
//!   down and restarted from committed progress with backoff; nothing is lost or duplicated.
//! - **definite** — retrying cannot help (a missing publication, an incompatible schema, a slot
//!   whose WAL was removed). The bridge stops and the message says what to run.
//! - **standby** — another instance holds the slot or fenced our Kafka producer: this instance
//!   goes back to waiting as standby.

use std::time::Duration;

/// Errors of the bridge. Each says whose fault it is and what to do next.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// The replication connection failed or dropped.
    #[error("PostgreSQL replication stream: {context}")]
    Replication {
        /// What the bridge was doing.
        context: String,
        /// The driver's error.
        #[source]
        source: pg_walstream::ReplicationError,
    },
    /// An ordinary SQL statement failed.
    #[error("PostgreSQL: {context}")]
    Postgres {
        /// What the bridge was doing.
        context: String,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A Kafka operation failed.
    #[error("Kafka: {context}")]
    Kafka {
        /// What the bridge was doing.
        context: String,
        /// The client's error.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// The schema registry failed.
    #[error("schema registry")]
    Registry(#[from] crate::registry::RegistryError),
    /// The pgoutput stream did not follow the protocol (a change outside a transaction, an
    /// unknown relation).
    #[error("pgoutput stream out of protocol at LSN {lsn}: {what}")]
    Protocol {
        /// Where in the WAL.
        lsn: String,
        /// What was wrong.
        what: String,
    },
    /// Another instance holds the replication slot or has fenced this producer.
    #[error("another bridge instance is active: {0}")]
    Superseded(String),
    /// Retrying cannot help; the message says what to run.
    #[error("{problem}; to fix: {fix}")]
    Definite {
        /// What is wrong.
        problem: String,
        /// What to run or change.
        fix: String,
    },
    /// A service the bridge needs is not answering yet.
    #[error("{0}")]
    Unavailable(String),
    /// The session was asked to stop.
    #[error("shutting down")]
    Shutdown,
}

/// How the supervisor reacts to an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Restart the session from committed progress after a backoff.
    Retry,
    /// Wait as standby for the slot, then restart.
    Standby,
    /// Stop the process.
    Stop,
}

impl BridgeError {
    /// A definite error with the fix to apply.
    pub fn definite(problem: impl Into<String>, fix: impl Into<String>) -> BridgeError {
        BridgeError::Definite {
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    /// Wraps a replication error with what the bridge was doing.
    pub fn replication(context: impl Into<String>, source: pg_walstream::ReplicationError) -> Self {
        BridgeError::Replication {
            context: context.into(),
            source,
        }
    }

    /// Wraps a SQL error with what the bridge was doing.
    pub fn postgres(context: impl Into<String>, source: tokio_postgres::Error) -> Self {
        BridgeError::Postgres {
            context: context.into(),
            source,
        }
    }

    /// Wraps a Kafka error with what the bridge was doing.
    pub fn kafka(context: impl Into<String>, source: rdkafka::error::KafkaError) -> Self {
        BridgeError::Kafka {
            context: context.into(),
            source,
        }
    }

    /// What the supervisor should do about this error.
    pub fn recovery(&self) -> Recovery {
        match self {
            BridgeError::Definite { .. } | BridgeError::Protocol { .. } => Recovery::Stop,
            BridgeError::Superseded(_) => Recovery::Standby,
            BridgeError::Shutdown => Recovery::Stop,
            BridgeError::Unavailable(_) => Recovery::Retry,
            BridgeError::Replication { source, .. } => {
                let text = source.to_string();
                if is_slot_busy(&text) {
                    Recovery::Standby
                } else if text.contains("does not exist") || source.is_permanent() {
                    Recovery::Stop
                } else {
                    Recovery::Retry
                }
            }
            BridgeError::Kafka { source, .. } => match source {
                rdkafka::error::KafkaError::Transaction(e) if e.is_fatal() => {
                    if is_fenced(&e.to_string()) {
                        Recovery::Standby
                    } else {
                        Recovery::Retry
                    }
                }
                _ => Recovery::Retry,
            },
            BridgeError::Registry(e) => {
                if e.is_definite() {
                    Recovery::Stop
                } else {
                    Recovery::Retry
                }
            }
            BridgeError::Postgres { source, .. } => {
                if source.as_db_error().is_some_and(|db| {
                    db.code().code().starts_with("42") || db.code().code() == "55006"
                }) {
                    Recovery::Stop
                } else {
                    Recovery::Retry
                }
            }
        }
    }
}

/// PostgreSQL's message when another walsender streams from the slot.
pub fn is_slot_busy(message: &str) -> bool {
    message.contains("is active for PID")
}

/// librdkafka's wording when a newer producer with our transactional id exists.
fn is_fenced(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("fenced") || m.contains("producer_fenced") || m.contains("epoch")
}

/// Exponential backoff with full jitter, capped.
#[derive(Debug, Clone)]
pub struct Backoff {
    attempt: u32,
    base: Duration,
    cap: Duration,
}

impl Backoff {
    /// Starts at `base`, doubles per attempt, never above `cap`.
    pub fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff {
            attempt: 0,
            base,
            cap,
        }
    }

    /// The next pause.
    pub fn next_delay(&mut self) -> Duration {
        let exp = self.base.saturating_mul(1 << self.attempt.min(16));
        self.attempt = self.attempt.saturating_add(1);
        let ceiling = exp.min(self.cap);
        let millis = u64::try_from(ceiling.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        Duration::from_millis(rand::random_range(millis / 2..=millis))
    }

    /// Called after a session made progress: the next failure starts small again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Backoff grows, stays under its cap, and starts over after a reset.
    #[test]
    fn backoff_grows_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let first = b.next_delay();
        assert!(first <= Duration::from_millis(100));
        for _ in 0..10 {
            assert!(b.next_delay() <= Duration::from_secs(2));
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    /// A walsender conflict sends the instance to standby instead of stopping it.
    #[test]
    fn a_busy_slot_means_standby() {
        let e = BridgeError::replication(
            "start",
            pg_walstream::ReplicationError::ReplicationConnection(
                "replication slot \"s\" is active for PID 42".into(),
            ),
        );
        assert_eq!(e.recovery(), Recovery::Standby);
    }
}
