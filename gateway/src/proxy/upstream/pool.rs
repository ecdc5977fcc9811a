//! A keep-alive pool of HTTP/1.1 upstream connections on hyper's connection API, one pool per
//! public worker.
//!
//! Why not `hyper_util`'s pooled client: for HTTP/1 it spawns one extra task per request to put
//! the connection back once the response has been read, and it takes a shared lock per checkout.
//! Here a connection never leaves the pool: a checkout picks one whose connection task says it
//! wants a request ([`SendRequest::is_ready`]), hands it the request and lets go at once, so a
//! request costs no extra task and the lock is held for a few atomic loads. A connection that is
//! busy (its response still streaming) or closed (the upstream hung up) is skipped; closed ones
//! and ones unused for [`IDLE_TIMEOUT`] are dropped during later checkouts.
//!
//! A request that hyper hands back unsent (the connection closed before writing it) is sent again
//! on a new connection, once; anything that may have reached the upstream is never resent here.

use http::uri::{Authority, Uri};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

use super::{BoxError, UpstreamBody};

/// Connections unused for this long are closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Most connections kept per upstream and worker; beyond it a connection serves one request.
pub const MAX_PER_UPSTREAM: usize = 1024;
/// TCP keep-alive probe interval on upstream connections.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// Why a pooled call failed.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// No connection could be made: the request certainly did not reach the upstream.
    #[error("could not connect to {authority}")]
    Connect {
        /// Where.
        authority: Authority,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// The exchange failed after the request was handed to a connection.
    #[error("the exchange with the upstream failed")]
    Exchange(#[source] hyper::Error),
    /// The request has no authority to connect to.
    #[error("the upstream request has no host")]
    NoAuthority,
}

/// One upstream connection in the pool.
struct Pooled {
    sender: SendRequest<UpstreamBody>,
    last_used: Instant,
}

/// The connections of one upstream.
struct Upstream {
    authority: Authority,
    conns: Vec<Pooled>,
}

/// HTTP/1.1 keep-alive connections per upstream authority.
#[derive(Default)]
pub struct Http1Pool {
    upstreams: Mutex<Vec<Upstream>>,
}

impl std::fmt::Debug for Http1Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http1Pool").finish_non_exhaustive()
    }
}

impl Http1Pool {
    /// Sends `req` (absolute-form URI) on a ready pooled connection to its authority, or on a
    /// new one made within `connect_timeout`; `now` is the caller's latest clock reading.
    pub async fn send(
        &self,
        mut req: Request<UpstreamBody>,
        connect_timeout: Duration,
        now: Instant,
    ) -> Result<Response<Incoming>, PoolError> {
        let authority = req
            .uri()
            .authority()
            .cloned()
            .ok_or(PoolError::NoAuthority)?;
        origin_form(&mut req);
        if let Some(sent) = self.try_pooled(&authority, &mut req, now) {
            match sent.await {
                Ok(resp) => return Ok(resp),
                Err(mut e) => match e.take_message() {
                    // Never written: the connection closed under it. A new one is safe.
                    Some(back) => req = back,
                    None => return Err(PoolError::Exchange(e.into_error())),
                },
            }
        }
        let mut sender = self.connect(&authority, connect_timeout).await?;
        let sent = sender.send_request(req);
        self.keep(&authority, sender);
        sent.await.map_err(PoolError::Exchange)
    }

    /// Hands `req` to a ready pooled connection, if there is one. The request is taken only
    /// when a connection accepted it.
    fn try_pooled(
        &self,
        authority: &Authority,
        req: &mut Request<UpstreamBody>,
        now: Instant,
    ) -> Option<
        impl Future<
            Output = Result<
                Response<Incoming>,
                hyper::client::conn::TrySendError<Request<UpstreamBody>>,
            >,
        > + Send
        + use<>,
    > {
        let mut upstreams = self
            .upstreams
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let upstream = upstreams.iter_mut().find(|u| u.authority == *authority)?;
        let conns = &mut upstream.conns;
        let mut i = conns.len();
        while i > 0 {
            i -= 1;
            let c = &mut conns[i];
            if c.sender.is_closed() || now.duration_since(c.last_used) > IDLE_TIMEOUT {
                conns.swap_remove(i);
                continue;
            }
            if c.sender.is_ready() {
                c.last_used = now;
                let req = std::mem::replace(req, Request::new(empty()));
                return Some(c.sender.try_send_request(req));
            }
        }
        None
    }

    /// A new connection to `authority`, ready for a request.
    async fn connect(
        &self,
        authority: &Authority,
        connect_timeout: Duration,
    ) -> Result<SendRequest<UpstreamBody>, PoolError> {
        let failed = |source: BoxError| PoolError::Connect {
            authority: authority.clone(),
            source,
        };
        let port = authority.port_u16().unwrap_or(80);
        let stream = tokio::time::timeout(
            connect_timeout,
            TcpStream::connect((authority.host(), port)),
        )
        .await
        .map_err(|_| failed(format!("no connection within {connect_timeout:?}").into()))?
        .map_err(|e| failed(e.into()))?;
        let _ = stream.set_nodelay(true);
        let _ = socket2::SockRef::from(&stream)
            .set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE));
        let (mut sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| failed(e.into()))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        sender.ready().await.map_err(|e| failed(e.into()))?;
        Ok(sender)
    }

    /// Keeps a connection for later requests (unless the upstream already has the most).
    fn keep(&self, authority: &Authority, sender: SendRequest<UpstreamBody>) {
        let pooled = Pooled {
            sender,
            last_used: Instant::now(),
        };
        let mut upstreams = self
            .upstreams
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match upstreams.iter_mut().find(|u| u.authority == *authority) {
            Some(u) if u.conns.len() < MAX_PER_UPSTREAM => u.conns.push(pooled),
            Some(_) => {}
            None => upstreams.push(Upstream {
                authority: authority.clone(),
                conns: vec![pooled],
            }),
        }
    }
}

/// HTTP/1.1 wants the origin form (`/path?query`) on the request line; `Host` is already set.
fn origin_form(req: &mut Request<UpstreamBody>) {
    if let Some(pq) = req.uri().path_and_query().cloned() {
        *req.uri_mut() = Uri::from(pq);
    }
}

fn empty() -> UpstreamBody {
    use http_body_util::BodyExt;
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}
