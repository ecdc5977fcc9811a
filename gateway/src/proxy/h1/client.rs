//! HTTP/1.1 to upstreams: a keep-alive pool per public worker, and an exchange that runs inside
//! the request's own task.
//!
//! The request head and a body that is ready go out in one write; the response head is parsed
//! from the connection's read buffer, and the body is read by whoever polls it (the client's
//! connection), straight from the socket: no connection task, no channel, no wake-up between
//! tasks. A connection goes back to the pool when its response body has been read to the end;
//! a body dropped early closes it.
//!
//! An idle connection is checked before reuse without a system call: the reactor has marked it
//! readable if the upstream closed it meanwhile. A request that finds its reused connection
//! closed before any answer byte is sent again on a new one, once, when it has no body and its
//! method is idempotent; nothing else is resent here.

use bytes::{Bytes, BytesMut};
use http::header::HeaderValue;
use http::uri::Authority;
use http::{HeaderMap, Method, Response, Uri};
use http_body::{Body, Frame, SizeHint};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker, ready};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::codec::{self, ChunkState, ChunkStep, Framing, HeadError};
use super::io::{WriteError, reserve, write_message};
use crate::proxy::upstream::{BoxError, Call, UpstreamBody};
use crate::resilience::retry::is_idempotent;

/// Connections unused for this long are closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Most idle connections kept per upstream and worker.
pub const MAX_PER_UPSTREAM: usize = 1024;
/// TCP keep-alive probe interval on upstream connections.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);
/// Largest response head accepted.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// Read buffer grown by this much when it runs low.
const READ_CHUNK: usize = 16 * 1024;

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
    Exchange(#[source] BoxError),
    /// The request has no authority to connect to.
    #[error("the upstream request has no host")]
    NoAuthority,
}

/// The upstream closed the connection before answering.
#[derive(Debug, thiserror::Error)]
#[error("the upstream closed the connection before answering")]
pub struct ClosedBeforeAnswer;

/// What the request head is written from.
struct Head<'a> {
    method: &'a Method,
    uri: &'a Uri,
    host: &'a HeaderValue,
    headers: &'a HeaderMap,
}

/// One upstream connection with its buffers.
struct Conn {
    io: TcpStream,
    /// Read, not yet consumed.
    buf: BytesMut,
    /// Head (and small body) being written.
    out: Vec<u8>,
}

struct Idle {
    conn: Conn,
    last_used: Instant,
}

/// The idle connections of one upstream.
struct Upstream {
    authority: Authority,
    idle: Vec<Idle>,
}

/// HTTP/1.1 keep-alive connections per upstream authority, for one worker.
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
    /// Sends `call` (absolute-form URI) on an idle connection to its authority, or on a new one
    /// made within `connect_timeout`; `now` is the caller's latest clock reading.
    pub async fn send(
        self: &Arc<Self>,
        call: Call<'_>,
        connect_timeout: Duration,
        now: Instant,
    ) -> Result<Response<ResponseBody>, PoolError> {
        let authority = call
            .uri
            .authority()
            .cloned()
            .ok_or(PoolError::NoAuthority)?;
        let Call {
            method,
            uri,
            host,
            headers,
            body,
            ..
        } = call;
        let head = Head {
            method,
            uri: &uri,
            host,
            headers,
        };
        let resendable = body.is_end_stream() && is_idempotent(method);
        let mut body = Some(body);
        let mut idle = self.checkout(&authority, now);
        let mut may_resend = resendable && idle.is_some();
        // One call site for the exchange: its state is then laid out (and copied) once.
        loop {
            let conn = match idle.take() {
                Some(conn) => conn,
                None => connect(&authority, connect_timeout).await?,
            };
            let body = body.take().unwrap_or_else(empty);
            match self.exchange(conn, &authority, &head, body, now).await {
                Ok(resp) => return Ok(resp),
                // The request had no body, so the retry sends an empty one again.
                Err(e) if may_resend && e.is::<ClosedBeforeAnswer>() => may_resend = false,
                Err(e) => return Err(PoolError::Exchange(e)),
            }
        }
    }

    /// Writes the request and reads the response head; the body is left to the caller. `now`,
    /// read when the call began, is kept as the connection's last use (a clock read less per
    /// request; the idle limit is then counted from a little earlier, never later).
    async fn exchange(
        self: &Arc<Self>,
        mut conn: Conn,
        authority: &Authority,
        head: &Head<'_>,
        body: UpstreamBody,
        now: Instant,
    ) -> Result<Response<ResponseBody>, BoxError> {
        let length = if body.is_end_stream() {
            Some(0)
        } else {
            body.size_hint().exact()
        };
        conn.out.clear();
        codec::write_request_head(
            &mut conn.out,
            head.method,
            head.uri,
            head.host,
            head.headers,
            length,
        );
        let mut out = std::mem::take(&mut conn.out);
        let mut body = body;
        // The upstream may answer before it has read the whole body (a refusal, or a stalled
        // upload): the head is read while the body is written, and the first to finish decides.
        let (answer, sent_all) = {
            let (mut reader, mut writer) = conn.io.split();
            let write = write_message(
                &mut writer,
                &mut out,
                Pin::new(&mut body),
                length.is_none(),
                length,
            );
            let read = read_head(&mut reader, &mut conn.buf, head.method);
            tokio::pin!(write, read);
            tokio::select! {
                biased;
                written = &mut write => match written {
                    Ok(()) => (read.await?, true),
                    // The client's body failed: keep its error, so the caller blames the client.
                    Err(WriteError::Body(e)) => return Err(e),
                    Err(WriteError::Io(e)) if is_reset(&e) => return Err(ClosedBeforeAnswer.into()),
                    Err(e) => return Err(e.into()),
                },
                answer = &mut read => (answer?, false),
            }
        };
        conn.out = out;
        let state = match answer.framing {
            Framing::Empty => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Chunked(ChunkState::Size),
            Framing::Close => State::Close,
        };
        let mut body = ResponseBody {
            state,
            conn: Some(conn),
            // A connection whose request body was cut short cannot carry another request.
            keep_alive: answer.keep_alive && sent_all,
            home: Some((self.clone(), authority.clone())),
            used: now,
        };
        if body.state == State::Done || body.state == State::Length(0) {
            body.state = State::Done;
            body.finish();
        }
        Ok(Response::from_parts(answer.parts, body))
    }

    /// An idle connection to `authority` that still looks open.
    fn checkout(&self, authority: &Authority, now: Instant) -> Option<Conn> {
        let mut upstreams = self
            .upstreams
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let upstream = upstreams.iter_mut().find(|u| u.authority == *authority)?;
        while let Some(idle) = upstream.idle.pop() {
            if now.saturating_duration_since(idle.last_used) <= IDLE_TIMEOUT
                && still_open(&idle.conn)
            {
                return Some(idle.conn);
            }
        }
        None
    }

    /// Keeps a connection whose last response was read to the end; `last_used` is when its
    /// last exchange began.
    fn check_in(&self, authority: &Authority, conn: Conn, last_used: Instant) {
        let idle = Idle { conn, last_used };
        let mut upstreams = self
            .upstreams
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match upstreams.iter_mut().find(|u| u.authority == *authority) {
            Some(u) if u.idle.len() < MAX_PER_UPSTREAM => u.idle.push(idle),
            Some(_) => {}
            None => upstreams.push(Upstream {
                authority: authority.clone(),
                idle: vec![idle],
            }),
        }
    }
}

/// Reads the final response head (skipping `1xx` ones) from `reader` into `buf`.
async fn read_head(
    reader: &mut tokio::net::tcp::ReadHalf<'_>,
    buf: &mut BytesMut,
    method: &Method,
) -> Result<codec::ResponseHead, BoxError> {
    loop {
        if let Some(found) = codec::find_response(buf)? {
            let head = buf.split_to(found.len).freeze();
            if found.is_informational() {
                continue;
            }
            return Ok(codec::build_response(&head, found, method)?);
        }
        if buf.len() > MAX_RESPONSE_HEAD {
            return Err(HeadError::TooLarge(MAX_RESPONSE_HEAD).into());
        }
        reserve(buf, READ_CHUNK);
        match reader.read_buf(buf).await {
            Ok(0) if buf.is_empty() => return Err(ClosedBeforeAnswer.into()),
            Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
            Ok(_) => {}
            Err(e) if buf.is_empty() && is_reset(&e) => return Err(ClosedBeforeAnswer.into()),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Whether an idle connection has seen nothing since its last response: no readiness event
/// (no system call), or a read that would block.
fn still_open(conn: &Conn) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    match conn.io.poll_read_ready(&mut cx) {
        Poll::Pending => true,
        Poll::Ready(Err(_)) => false,
        Poll::Ready(Ok(())) => {
            let mut probe = [0u8; 1];
            matches!(conn.io.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
        }
    }
}

/// A new connection to `authority`.
async fn connect(authority: &Authority, connect_timeout: Duration) -> Result<Conn, PoolError> {
    let failed = |source: BoxError| PoolError::Connect {
        authority: authority.clone(),
        source,
    };
    let port = authority.port_u16().unwrap_or(80);
    let io = tokio::time::timeout(
        connect_timeout,
        TcpStream::connect((authority.host(), port)),
    )
    .await
    .map_err(|_| failed(format!("no connection within {connect_timeout:?}").into()))?
    .map_err(|e| failed(e.into()))?;
    let _ = io.set_nodelay(true);
    let _ = socket2::SockRef::from(&io)
        .set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE));
    Ok(Conn {
        io,
        buf: BytesMut::with_capacity(READ_CHUNK),
        out: Vec::with_capacity(4096),
    })
}

/// The peer had closed the connection (an idle one the upstream let go of).
fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
    )
}

fn empty() -> UpstreamBody {
    use http_body_util::BodyExt;
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Length(u64),
    Chunked(ChunkState),
    Close,
    Done,
}

/// A response body read from the upstream connection by whoever polls it.
pub struct ResponseBody {
    state: State,
    /// `None` once the body has ended (the connection went back or was closed).
    conn: Option<Conn>,
    keep_alive: bool,
    /// The pool to return the connection to, and under which upstream.
    home: Option<(Arc<Http1Pool>, Authority)>,
    /// When the exchange began.
    used: Instant,
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// The upstream's response body broke its framing or ended early.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The socket failed.
    #[error("reading the upstream's response body failed")]
    Io(#[from] io::Error),
    /// Chunk framing was invalid.
    #[error("the upstream's response body is malformed")]
    Framing(#[from] HeadError),
    /// The connection closed before the declared end.
    #[error("the upstream closed the connection mid-body")]
    Truncated,
}

impl ResponseBody {
    /// The body has ended: the connection goes back to the pool if it can serve another.
    fn finish(&mut self) {
        self.state = State::Done;
        if let Some(conn) = self.conn.take()
            && self.keep_alive
            && conn.buf.is_empty()
            && let Some((pool, authority)) = self.home.take()
        {
            pool.check_in(&authority, conn, self.used);
        }
    }

    fn fail(&mut self, e: BodyError) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.conn = None;
        self.state = State::Done;
        Poll::Ready(Some(Err(e.into())))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match &mut this.state {
                State::Done => {
                    this.finish();
                    return Poll::Ready(None);
                }
                State::Length(left) if !conn.buf.is_empty() => {
                    let take = usize::try_from(*left)
                        .unwrap_or(usize::MAX)
                        .min(conn.buf.len());
                    let data = conn.buf.split_to(take).freeze();
                    *left -= take as u64;
                    if *left == 0 {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                State::Chunked(chunks) => match chunks.step(&mut conn.buf) {
                    Ok(ChunkStep::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    Ok(ChunkStep::Progress) => continue,
                    Ok(ChunkStep::Done) => {
                        this.finish();
                        return Poll::Ready(None);
                    }
                    Ok(ChunkStep::NeedMore) => {}
                    Err(e) => return this.fail(e.into()),
                },
                State::Close if !conn.buf.is_empty() => {
                    let data = conn.buf.split().freeze();
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                State::Length(_) | State::Close => {}
            }
            reserve(&mut conn.buf, READ_CHUNK);
            match ready!(tokio_util::io::poll_read_buf(
                Pin::new(&mut conn.io),
                cx,
                &mut conn.buf
            )) {
                Ok(0) if this.state == State::Close => {
                    this.keep_alive = false;
                    this.finish();
                    return Poll::Ready(None);
                }
                Ok(0) => return this.fail(BodyError::Truncated),
                Ok(_) => {}
                Err(e) => return this.fail(e.into()),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.state == State::Done
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Length(n) => SizeHint::with_exact(n),
            State::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}
