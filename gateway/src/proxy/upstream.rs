//! Pooled upstream clients (HTTP/1.1 keep-alive and HTTP/2 prior knowledge), and the one call
//! that sends a request to one side.
//!
//! [`Upstreams::send`] is the seam for per-side failure isolation: timeouts, a bulkhead, a
//! breaker and fallback to legacy wrap this call without touching routing or header handling.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::time::Duration;

use crate::config::UpstreamProtocol;

/// Error type of bodies sent upstream.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Body of a request sent upstream: the client's body, streamed (and size-limited).
pub type UpstreamBody = UnsyncBoxBody<Bytes, BoxError>;

/// How long an idle pooled connection is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Idle pooled connections kept per upstream.
const POOL_MAX_IDLE_PER_HOST: usize = 1024;
/// Connect timeout until per-side timeouts are configured.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why an upstream call failed; the upstream is at fault, not the client.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No connection could be made.
    #[error("could not connect to the upstream")]
    Connect(#[source] hyper_util::client::legacy::Error),
    /// The connection was made but the exchange failed before a response head.
    #[error("the upstream failed before answering")]
    Exchange(#[source] hyper_util::client::legacy::Error),
}

impl UpstreamError {
    /// Status the client gets.
    pub fn status(&self) -> StatusCode {
        StatusCode::BAD_GATEWAY
    }

    /// Whether the request certainly did not reach the upstream (safe to send elsewhere).
    pub fn is_connect(&self) -> bool {
        matches!(self, UpstreamError::Connect(_))
    }
}

/// The pooled clients, shared by all capabilities.
#[derive(Clone)]
pub struct Upstreams {
    http1: Client<HttpConnector, UpstreamBody>,
    http2: Client<HttpConnector, UpstreamBody>,
}

impl Default for Upstreams {
    fn default() -> Self {
        Upstreams::new()
    }
}

impl Upstreams {
    /// Clients with keep-alive pools and `TCP_NODELAY`.
    pub fn new() -> Upstreams {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_keepalive(Some(Duration::from_secs(60)));
        let builder = |h2: bool| {
            let mut b = Client::builder(TokioExecutor::new());
            b.pool_idle_timeout(POOL_IDLE_TIMEOUT)
                .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
                .pool_timer(TokioTimer::new())
                .timer(TokioTimer::new());
            if h2 {
                b.http2_only(true);
            }
            b.build(connector.clone())
        };
        Upstreams {
            http1: builder(false),
            http2: builder(true),
        }
    }

    /// Sends one request to one side and returns the response head with its body streaming.
    pub async fn send(
        &self,
        protocol: UpstreamProtocol,
        req: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let client = match protocol {
            UpstreamProtocol::Http1 => &self.http1,
            UpstreamProtocol::Http2 => &self.http2,
        };
        client.request(req).await.map_err(|e| {
            if e.is_connect() {
                UpstreamError::Connect(e)
            } else {
                UpstreamError::Exchange(e)
            }
        })
    }
}
