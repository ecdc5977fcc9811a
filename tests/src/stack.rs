//! Where the local stack's services are: `FIG_*` environment variables first, then the
//! defaults that `deploy/local/up` binds on 127.0.0.1.

use std::sync::atomic::{AtomicU32, Ordering};

/// Default PostgreSQL port of the local stack.
pub const DEFAULT_PG_PORT: u16 = 54329;
/// Default Kafka bootstrap address of the local stack.
pub const DEFAULT_KAFKA_BROKERS: &str = "127.0.0.1:19092";
/// Default schema-registry URL of the local stack.
pub const DEFAULT_REGISTRY_URL: &str = "http://127.0.0.1:18081";

/// Addresses of the three services a test talks to.
#[derive(Debug, Clone)]
pub struct Stack {
    /// PostgreSQL host.
    pub pg_host: String,
    /// PostgreSQL port.
    pub pg_port: u16,
    /// PostgreSQL superuser that the stack created.
    pub pg_user: String,
    /// Kafka bootstrap servers.
    pub kafka_brokers: String,
    /// Schema registry base URL, without a trailing slash.
    pub registry_url: String,
}

impl Stack {
    /// Reads `FIG_PG_HOST`, `FIG_PG_PORT`, `FIG_PG_USER`, `FIG_KAFKA_BROKERS` and
    /// `FIG_REGISTRY_URL`, falling back to the local stack's defaults.
    pub fn from_env() -> Stack {
        let var = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
        let port = var("FIG_PG_PORT", &DEFAULT_PG_PORT.to_string());
        Stack {
            pg_host: var("FIG_PG_HOST", "127.0.0.1"),
            pg_port: port
                .parse()
                .unwrap_or_else(|_| panic!("FIG_PG_PORT={port:?} is not a port number")),
            pg_user: var("FIG_PG_USER", "fig"),
            kafka_brokers: var("FIG_KAFKA_BROKERS", DEFAULT_KAFKA_BROKERS),
            registry_url: var("FIG_REGISTRY_URL", DEFAULT_REGISTRY_URL)
                .trim_end_matches('/')
                .to_string(),
        }
    }

    /// A libpq-style connection string for `dbname`.
    pub fn pg_conn_string(&self, dbname: &str) -> String {
        format!(
            "host={} port={} user={} dbname={} connect_timeout=5",
            self.pg_host, self.pg_port, self.pg_user, dbname
        )
    }
}

/// A name no other test (in this process or another) is using: lower case, `[a-z0-9_]`,
/// safe as a database, slot, topic or subject name.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let rand = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}_{}_{n}_{}", std::process::id(), &rand[..8])
}
