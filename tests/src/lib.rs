//! Test harness shared by the end-to-end tests and the other crates' integration tests.
//!
//! Every test gets resources of its own, named uniquely and removed when dropped, so that tests
//! run in parallel against one local stack without seeing each other:
//!
//! - [`TestDb`]: a fresh PostgreSQL database (its replication slots are dropped with it);
//! - [`TestTopic`]: a Kafka topic;
//! - [`SubjectPrefix`]: a schema-registry subject prefix whose subjects are deleted afterwards.
//!
//! [`Stack`] says where the services run (environment first, then the defaults of
//! `deploy/local/up`), [`PrivateStack`] starts a stack of one's own for fault injection, and
//! [`wait_for`] is the only way a test waits: on a condition, with a
//! deadline, never on a fixed sleep.

pub mod demo;
mod kafka;
mod postgres;
pub mod private_stack;
mod registry;
mod stack;
mod wait;

pub use kafka::{TestTopic, read_committed_consumer, transactional_producer};
pub use postgres::TestDb;
pub use private_stack::{Fault, PrivateStack, Service};
pub use registry::SubjectPrefix;
pub use stack::{Stack, unique_name};
pub use wait::{DEFAULT_DEADLINE, wait_for};

/// Runs a future to completion on a private runtime in its own thread.
///
/// `Drop` cannot be async, and it may run inside or outside a runtime; cleanup goes through here.
pub(crate) fn block_on_side<F>(fut: F) -> F::Output
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map(|rt| rt.block_on(fut))
    })
    .join()
    .ok()
    .and_then(Result::ok)
    .expect("cleanup thread failed to run")
}
