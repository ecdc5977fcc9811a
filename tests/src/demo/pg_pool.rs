//! A handful of PostgreSQL connections shared by the demo applications' request handlers.
//!
//! The demo apps run a few dozen requests at a time; a fixed set of connections, each behind an
//! async mutex and handed out round-robin, is all they need. A connection that the server closed
//! is replaced on its next use.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::{Mutex, MutexGuard};
use tokio_postgres::{Client, NoTls};

/// Fixed-size set of connections to one database.
#[derive(Clone)]
pub struct PgPool {
    inner: Arc<Inner>,
}

struct Inner {
    conn: String,
    clients: Vec<Mutex<Client>>,
    next: AtomicUsize,
}

/// One connection, held until dropped.
pub type PooledClient<'a> = MutexGuard<'a, Client>;

impl PgPool {
    /// Opens `size` connections to `conn` (a libpq-style connection string).
    pub async fn connect(conn: &str, size: usize) -> Result<PgPool, tokio_postgres::Error> {
        let mut clients = Vec::with_capacity(size.max(1));
        for _ in 0..size.max(1) {
            clients.push(Mutex::new(open(conn).await?));
        }
        Ok(PgPool {
            inner: Arc::new(Inner {
                conn: conn.to_string(),
                clients,
                next: AtomicUsize::new(0),
            }),
        })
    }

    /// A connection: a free one if any, else waits on the next in turn.
    pub async fn get(&self) -> Result<PooledClient<'_>, tokio_postgres::Error> {
        let clients = &self.inner.clients;
        let mut guard = match clients.iter().find_map(|c| c.try_lock().ok()) {
            Some(guard) => guard,
            None => {
                let i = self.inner.next.fetch_add(1, Ordering::Relaxed) % clients.len();
                clients[i].lock().await
            }
        };
        if guard.is_closed() {
            *guard = open(&self.inner.conn).await?;
        }
        Ok(guard)
    }
}

async fn open(conn: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(conn, NoTls).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(%error, "demo database connection closed");
        }
    });
    Ok(client)
}
