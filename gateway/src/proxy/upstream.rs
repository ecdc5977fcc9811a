//! Upstream clients (an HTTP/1.1 keep-alive pool per worker, and a pooled HTTP/2 client with
//! prior knowledge), and the one call that sends a request to one side.
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
use std::sync::Arc;
use std::time::{Duration, Instant};

mod pool;

use crate::config::UpstreamProtocol;
use pool::{Http1Pool, PoolError};

/// Error type of bodies sent upstream.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Body of a request sent upstream: the client's body, streamed (and size-limited).
pub type UpstreamBody = UnsyncBoxBody<Bytes, BoxError>;

/// Connect timeout of the HTTP/2 clients made for routes without resilience settings.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why an upstream call failed; the upstream is at fault, not the client.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No connection could be made.
    #[error("could not connect to the upstream")]
    Connect(#[source] BoxError),
    /// The connection was made but the exchange failed before a response head.
    #[error("the upstream failed before answering")]
    Exchange(#[source] BoxError),
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

/// The upstream clients of one public worker: an HTTP/1.1 pool, and one HTTP/2 client per
/// distinct connect timeout configured (there the timeout belongs to the connector).
#[derive(Clone)]
pub struct Upstreams {
    http1: Arc<Http1Pool>,
    http2_by_connect_timeout: Vec<(Duration, Client<HttpConnector, UpstreamBody>)>,
}

impl Default for Upstreams {
    fn default() -> Self {
        Upstreams::new([CONNECT_TIMEOUT])
    }
}

impl Upstreams {
    /// Clients with keep-alive pools and `TCP_NODELAY`; HTTP/2 ones per connect timeout.
    pub fn new(connect_timeouts: impl IntoIterator<Item = Duration>) -> Upstreams {
        let mut timeouts: Vec<Duration> = connect_timeouts.into_iter().collect();
        timeouts.push(CONNECT_TIMEOUT);
        timeouts.sort();
        timeouts.dedup();
        Upstreams {
            http1: Arc::new(Http1Pool::default()),
            http2_by_connect_timeout: timeouts.into_iter().map(|t| (t, http2(t))).collect(),
        }
    }

    /// Sends one request to one side and returns the response head with its body streaming;
    /// `now` is the time the caller read last (for the pool's idle bookkeeping).
    pub async fn send(
        &self,
        protocol: UpstreamProtocol,
        connect_timeout: Duration,
        req: Request<UpstreamBody>,
        now: Instant,
    ) -> Result<Response<Incoming>, UpstreamError> {
        match protocol {
            UpstreamProtocol::Http1 => {
                self.http1
                    .send(req, connect_timeout, now)
                    .await
                    .map_err(|e| match e {
                        PoolError::Connect { .. } | PoolError::NoAuthority => {
                            UpstreamError::Connect(e.into())
                        }
                        PoolError::Exchange(e) => UpstreamError::Exchange(e.into()),
                    })
            }
            UpstreamProtocol::Http2 => {
                let i = self
                    .http2_by_connect_timeout
                    .partition_point(|(t, _)| *t < connect_timeout)
                    .min(self.http2_by_connect_timeout.len() - 1);
                self.http2_by_connect_timeout[i]
                    .1
                    .request(req)
                    .await
                    .map_err(|e| {
                        if e.is_connect() {
                            UpstreamError::Connect(e.into())
                        } else {
                            UpstreamError::Exchange(e.into())
                        }
                    })
            }
        }
    }
}

fn http2(connect_timeout: Duration) -> Client<HttpConnector, UpstreamBody> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_keepalive(Some(Duration::from_secs(60)));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(pool::IDLE_TIMEOUT)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .http2_only(true)
        .build(connector)
}
