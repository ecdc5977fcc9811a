//! The public side of HTTP/1.1: one task per client connection reads request heads, hands each
//! request to [`Proxy::handle`] and writes the response back, head and a ready body in one write.
//!
//! It takes the plain requests (HTTP/1.1, no `Expect`, no `Upgrade`, a body of at most
//! [`MAX_DIRECT_BODY`] bytes with a `Content-Length`), which is nearly all traffic. At the first
//! request that is not plain (a chunked or large upload, HTTP/1.0, a malformed head, an HTTP/2
//! preface), the connection with every byte read so far goes to the general server (hyper's), which
//! serves it from then on with the same [`Proxy::handle`].

use bytes::{Bytes, BytesMut};
use http::Request;
use http_body::Body;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::cell::RefCell;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use super::codec::{self, ResponseFraming};
use super::io::{Prefixed, flush, reserve, write_message};
use crate::proxy::{ClientConnection, Proxy};

/// Largest request body read here before the request is handled; larger ones are streamed by the
/// general server.
pub const MAX_DIRECT_BODY: u64 = 64 * 1024;
/// Read buffer grown by this much when it runs low.
const READ_CHUNK: usize = 8 * 1024;

/// Held by every connection task; the accept loop's drain ends when the last one is dropped.
pub type DrainToken = mpsc::Sender<()>;

/// What serves one accepted connection.
pub struct Connection {
    /// The proxy of this worker.
    pub proxy: Arc<Proxy>,
    /// The client's address.
    pub client: Arc<ClientConnection>,
    /// The general server for what this engine does not take.
    pub general: Arc<auto::Builder<TokioExecutor>>,
    /// Turns true when the gateway shuts down.
    pub stop: watch::Receiver<bool>,
    /// How long a client may take to send a request head, or stay idle between requests.
    pub head_timeout: Duration,
}

/// How the direct part of a connection ended.
enum Next {
    /// Closed (by either side, an error, or shutdown).
    Close,
    /// To be served by the general server from here, these bytes being already read.
    HandOff(Bytes),
}

impl Connection {
    /// Serves the connection to its end.
    pub async fn serve(mut self, mut io: TcpStream, _drain: DrainToken) {
        let prefix = match self.direct(&mut io).await {
            Next::Close => return,
            Next::HandOff(prefix) => prefix,
        };
        let (proxy, client) = (self.proxy.clone(), self.client.clone());
        let service = service_fn(move |req| {
            let (proxy, client) = (proxy.clone(), client.clone());
            async move { Ok::<_, Infallible>(proxy.handle(req, &client).await) }
        });
        let conn = self
            .general
            .serve_connection(TokioIo::new(Prefixed::new(prefix, io)), service);
        tokio::pin!(conn);
        let ended = tokio::select! {
            ended = conn.as_mut() => ended,
            () = stopping(self.stop.clone()) => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(e) = ended {
            tracing::debug!(error = %e, "client connection ended with an error");
        }
    }

    /// Serves plain requests until the connection closes or one is not plain.
    async fn direct(&mut self, io: &mut TcpStream) -> Next {
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        let mut out = Vec::with_capacity(READ_CHUNK);
        let limit = self.proxy.max_header_bytes.max(READ_CHUNK) + READ_CHUNK;
        // One timer and one shutdown watch for the connection's life: arming either per request
        // costs more than the rest of reading it. The timer fires at the first head's deadline
        // and is moved on lazily to the deadline of the head being read then.
        let mut since = tokio::time::Instant::now();
        let deadline = tokio::time::sleep_until(since + self.head_timeout);
        tokio::pin!(deadline);
        let stop = stopping(self.stop.clone());
        tokio::pin!(stop);
        loop {
            // A whole head, then a whole (small) body.
            let mut waiting = false;
            let found = loop {
                match codec::find_request(&buf) {
                    Ok(Some(found)) => break found,
                    Ok(None) if buf.len() <= limit => {}
                    Ok(None) | Err(_) => return Next::HandOff(buf.freeze()),
                }
                if !waiting {
                    waiting = true;
                    since = tokio::time::Instant::now();
                }
                if !self
                    .read(io, &mut buf, deadline.as_mut(), since, stop.as_mut())
                    .await
                {
                    return Next::Close;
                }
            };
            let head = buf.split_to(found.len).freeze();
            let parsed = match codec::build_request(&head, found) {
                Ok(p) => p,
                Err(_) => return Next::HandOff(rejoin(&head, &buf)),
            };
            let body_len = match parsed.framing {
                codec::Framing::Empty => 0,
                codec::Framing::Length(n) if n <= MAX_DIRECT_BODY => n,
                _ => return Next::HandOff(rejoin(&head, &buf)),
            };
            if !parsed.plain {
                return Next::HandOff(rejoin(&head, &buf));
            }
            let body_len = usize::try_from(body_len).unwrap_or(usize::MAX);
            while buf.len() < body_len {
                if !self
                    .read(io, &mut buf, deadline.as_mut(), since, stop.as_mut())
                    .await
                {
                    return Next::Close;
                }
            }
            let body = buf.split_to(body_len).freeze();
            let method = parsed.parts.method.clone();
            let req = Request::from_parts(parsed.parts, Full::new(body));
            let resp = self.proxy.handle(req, &self.client).await;

            let close = !parsed.keep_alive || *self.stop.borrow();
            let (parts, body) = resp.into_parts();
            let bodiless = codec::is_bodiless(&method, parts.status);
            let framing = match body.size_hint().exact() {
                _ if bodiless => ResponseFraming::Bodiless,
                Some(n) => ResponseFraming::Length(n),
                None => ResponseFraming::Chunked,
            };
            DATE.with_borrow_mut(|date| {
                codec::write_response_head(
                    &mut out,
                    parts.status,
                    &parts.headers,
                    framing,
                    close,
                    date.now(),
                );
            });
            let written = match framing {
                ResponseFraming::Bodiless => {
                    drop(body);
                    flush(io, &mut out).await.map_err(Into::into)
                }
                ResponseFraming::Length(n) => {
                    write_message(io, &mut out, std::pin::pin!(body), false, Some(n)).await
                }
                ResponseFraming::Chunked => {
                    write_message(io, &mut out, std::pin::pin!(body), true, None).await
                }
            };
            if let Err(e) = written {
                // The head is out: the only way to tell the client is to cut the connection.
                tracing::debug!(error = %e, "response not completed; closing the client connection");
                return Next::Close;
            }
            if close {
                let _ = io.shutdown().await;
                return Next::Close;
            }
        }
    }

    /// Reads more into `buf`; false when the client closed, the head deadline (`since` plus the
    /// head timeout, checked when the connection's timer fires) passed, or the gateway is
    /// shutting down while no request is under way.
    async fn read<S: Future<Output = ()>>(
        &self,
        io: &mut TcpStream,
        buf: &mut BytesMut,
        mut deadline: Pin<&mut tokio::time::Sleep>,
        since: tokio::time::Instant,
        mut stop: Pin<&mut S>,
    ) -> bool {
        reserve(buf, READ_CHUNK);
        let idle = buf.is_empty();
        loop {
            tokio::select! {
                biased;
                read = io.read_buf(buf) => return matches!(read, Ok(n) if n > 0),
                () = deadline.as_mut() => {
                    let due = since + self.head_timeout;
                    if due <= tokio::time::Instant::now() {
                        return false;
                    }
                    deadline.as_mut().reset(due);
                }
                () = stop.as_mut(), if idle => return false,
            }
        }
    }
}

/// Completes once `stop` turns true (the gateway shuts down).
pub async fn stopping(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// A head already split off the buffer, put back before the rest for the general server.
fn rejoin(head: &Bytes, rest: &BytesMut) -> Bytes {
    let mut all = BytesMut::with_capacity(head.len() + rest.len());
    all.extend_from_slice(head);
    all.extend_from_slice(rest);
    all.freeze()
}

/// The `Date` header value, formatted once a second per thread.
struct DateCache {
    second: u64,
    text: Vec<u8>,
}

impl DateCache {
    fn now(&mut self) -> &[u8] {
        let now = SystemTime::now();
        let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if second != self.second || self.text.is_empty() {
            self.second = second;
            self.text = httpdate::fmt_http_date(now).into_bytes();
        }
        &self.text
    }
}

thread_local! {
    static DATE: RefCell<DateCache> = const {
        RefCell::new(DateCache {
            second: 0,
            text: Vec::new(),
        })
    };
}
