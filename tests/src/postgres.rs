//! A fresh PostgreSQL database per test, dropped with its replication slots afterwards.

use crate::{Stack, block_on_side, unique_name};
use tokio_postgres::{Client, NoTls};

/// A database created for one test. Dropping it terminates its sessions, drops the replication
/// slots that live in it and drops the database.
pub struct TestDb {
    /// Where the stack runs.
    pub stack: Stack,
    /// The database's name.
    pub name: String,
}

impl TestDb {
    /// Creates a database named after `prefix` plus a unique suffix.
    pub async fn create(prefix: &str) -> anyhow::Result<TestDb> {
        let stack = Stack::from_env();
        let name = unique_name(prefix);
        let admin = connect(&stack.pg_conn_string("postgres")).await?;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await?;
        Ok(TestDb { stack, name })
    }

    /// Connection string for this database.
    pub fn conn_string(&self) -> String {
        self.stack.pg_conn_string(&self.name)
    }

    /// A new ordinary (non-replication) connection to this database.
    pub async fn connect(&self) -> anyhow::Result<Client> {
        connect(&self.conn_string()).await
    }
}

/// Connects and drives the connection on the current runtime.
pub async fn connect(conn: &str) -> anyhow::Result<Client> {
    let (client, connection) = tokio_postgres::connect(conn, NoTls).await.map_err(|e| {
        anyhow::anyhow!("cannot connect to PostgreSQL ({conn}): {e}; is `deploy/local/up` running?")
    })?;
    tokio::spawn(connection);
    Ok(client)
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let conn = self.stack.pg_conn_string("postgres");
        let name = self.name.clone();
        block_on_side(async move {
            let Ok(admin) = connect(&conn).await else {
                return;
            };
            // Walsenders hold slots active; end them first, then the slots, then the database.
            let _ = admin
                .execute(
                    "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots \
                     WHERE database = $1 AND active_pid IS NOT NULL",
                    &[&name],
                )
                .await;
            let _ = admin
                .execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
                     WHERE database = $1",
                    &[&name],
                )
                .await;
            let _ = admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
        });
    }
}
