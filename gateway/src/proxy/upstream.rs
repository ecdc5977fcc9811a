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
/// Connect timeout of the default pool (routes without resilience settings use their defaults).
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

/// The pooled clients, shared by all capabilities: one HTTP/1.1 and one HTTP/2 client per
/// distinct connect timeout configured (the timeout belongs to the connector).
#[derive(Clone)]
pub struct Upstreams {
    by_connect_timeout: Vec<(Duration, Clients)>,
}

#[derive(Clone)]
struct Clients {
    http1: Client<HttpConnector, UpstreamBody>,
    http2: Client<HttpConnector, UpstreamBody>,
}

impl Default for Upstreams {
    fn default() -> Self {
        Upstreams::new([CONNECT_TIMEOUT])
    }
}

impl Upstreams {
    /// Clients with keep-alive pools and `TCP_NODELAY`, one pair per connect timeout.
    pub fn new(connect_timeouts: impl IntoIterator<Item = Duration>) -> Upstreams {
        let mut timeouts: Vec<Duration> = connect_timeouts.into_iter().collect();
        timeouts.push(CONNECT_TIMEOUT);
        timeouts.sort();
        timeouts.dedup();
        Upstreams {
            by_connect_timeout: timeouts.into_iter().map(|t| (t, clients(t))).collect(),
        }
    }

    /// Sends one request to one side and returns the response head with its body streaming.
    pub async fn send(
        &self,
        protocol: UpstreamProtocol,
        connect_timeout: Duration,
        req: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let i = self
            .by_connect_timeout
            .partition_point(|(t, _)| *t < connect_timeout)
            .min(self.by_connect_timeout.len() - 1);
        let clients = &self.by_connect_timeout[i].1;
        let client = match protocol {
            UpstreamProtocol::Http1 => &clients.http1,
            UpstreamProtocol::Http2 => &clients.http2,
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

fn clients(connect_timeout: Duration) -> Clients {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(connect_timeout));
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
    Clients {
        http1: builder(false),
        http2: builder(true),
    }
}
