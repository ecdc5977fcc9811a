//! The gateway's error type: what went wrong at start or while serving, and what to do.

use crate::config::ConfigProblem;
use crate::store::StoreError;

/// A failure that stops the gateway.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The configuration has problems; each names its key.
    #[error("invalid configuration:\n{}", .0.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Config(Vec<ConfigProblem>),
    /// Admin tokens could not be read.
    #[error("admin tokens: {0}")]
    Tokens(String),
    /// The toggle store could not be opened or read at start.
    #[error("toggle store unusable at start")]
    Store(
        #[from]
        #[source]
        StoreError,
    ),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}; is another process using it?")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The public listener could not be shared with the worker threads.
    #[error("cannot hand the public listener to the worker threads")]
    Listener(#[source] std::io::Error),
    /// The admin server failed.
    #[error("admin listener failed")]
    Admin(#[source] std::io::Error),
}
