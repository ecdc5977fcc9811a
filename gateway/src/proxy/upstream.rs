//! Upstream clients (the gateway's own HTTP/1.1 keep-alive pool per worker, see
//! [`super::h1::client`], and hyper's pooled HTTP/2 client with prior knowledge), and the one call
//! that sends a request to one side.
//!
//! [`Upstreams::send`] is the seam for per-side failure isolation: timeouts, a bulkhead, a
//! breaker and fallback to legacy wrap this call without touching routing or header handling.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::h1::client::{self as pool, Http1Pool, PoolError};
use crate::config::UpstreamProtocol;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};

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
    ///
    /// The protocol's own future is boxed where it is made: its state is large, and every
    /// layer of `async fn` around it would copy all of it once more per request.
    pub fn send<'a>(
        &'a self,
        connect_timeout: Duration,
        call: Call<'a>,
        now: Instant,
    ) -> Sending<'a> {
        match call.protocol {
            UpstreamProtocol::Http1 => {
                Sending::Http1(Box::pin(self.http1.send(call, connect_timeout, now)))
            }
            UpstreamProtocol::Http2 => {
                let i = self
                    .http2_by_connect_timeout
                    .partition_point(|(t, _)| *t < connect_timeout)
                    .min(self.http2_by_connect_timeout.len() - 1);
                Sending::Http2(
                    self.http2_by_connect_timeout[i]
                        .1
                        .request(call.into_request()),
                )
            }
        }
    }
}

/// A request on its way to an upstream (from [`Upstreams::send`]).
pub enum Sending<'a> {
    /// Through the gateway's HTTP/1.1 pool.
    Http1(
        Pin<Box<dyn Future<Output = Result<Response<pool::ResponseBody>, PoolError>> + Send + 'a>>,
    ),
    /// Through hyper's HTTP/2 client.
    Http2(hyper_util::client::legacy::ResponseFuture),
}

impl Future for Sending<'_> {
    type Output = Result<Response<ResponseBody>, UpstreamError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Sending::Http1(f) => f.as_mut().poll(cx).map(|r| match r {
                Ok(resp) => Ok(resp.map(ResponseBody::Http1)),
                Err(e @ (PoolError::Connect { .. } | PoolError::NoAuthority)) => {
                    Err(UpstreamError::Connect(e.into()))
                }
                Err(PoolError::Exchange(e)) => Err(UpstreamError::Exchange(e)),
            }),
            Sending::Http2(f) => Pin::new(f).poll(cx).map(|r| match r {
                Ok(resp) => Ok(resp.map(ResponseBody::Http2)),
                Err(e) if e.is_connect() => Err(UpstreamError::Connect(e.into())),
                Err(e) => Err(UpstreamError::Exchange(e.into())),
            }),
        }
    }
}

/// One request to one upstream, borrowing what every attempt shares (the HTTP/1.1 client
/// writes it without copying the headers).
pub struct Call<'a> {
    /// Method.
    pub method: &'a Method,
    /// Absolute URI on the upstream.
    pub uri: Uri,
    /// `Host` for HTTP/1.1.
    pub host: &'a HeaderValue,
    /// Request headers, hop-by-hop ones removed, without `Host`'s final value.
    pub headers: &'a HeaderMap,
    /// How to speak to the upstream.
    pub protocol: UpstreamProtocol,
    /// The body of this attempt.
    pub body: UpstreamBody,
}

impl Call<'_> {
    /// The call as an owned request (for hyper's client).
    pub fn into_request(self) -> Request<UpstreamBody> {
        let mut req = Request::new(self.body);
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri;
        *req.headers_mut() = self.headers.clone();
        match self.protocol {
            UpstreamProtocol::Http1 => {
                *req.version_mut() = Version::HTTP_11;
                req.headers_mut().insert(header::HOST, self.host.clone());
            }
            UpstreamProtocol::Http2 => {
                *req.version_mut() = Version::HTTP_2;
                req.headers_mut().remove(header::HOST);
            }
        }
        req
    }
}

/// An upstream's response body, read by whoever forwards it.
#[derive(Debug)]
pub enum ResponseBody {
    /// From the gateway's HTTP/1.1 pool.
    Http1(pool::ResponseBody),
    /// From hyper's HTTP/2 client.
    Http2(Incoming),
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ResponseBody::Http1(b) => Pin::new(b).poll_frame(cx),
            ResponseBody::Http2(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Http1(b) => b.is_end_stream(),
            ResponseBody::Http2(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Http1(b) => b.size_hint(),
            ResponseBody::Http2(b) => b.size_hint(),
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
