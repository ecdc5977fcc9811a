//! Socket helpers shared by both ends: writing a body after its head with as few writes as the
//! body allows, and a stream that replays bytes already read (for handing a connection on).

use bytes::{Buf, Bytes};
use http_body::Body;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::codec::{LAST_CHUNK, write_chunk};
use crate::proxy::upstream::BoxError;

/// Bytes gathered before a write is forced.
const FLUSH_AT: usize = 64 * 1024;
/// Data frames at least this large are written as they are rather than copied into the buffer.
const WRITE_DIRECT_AT: usize = 16 * 1024;

/// Why writing a message failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The socket failed.
    #[error("writing to the peer failed")]
    Io(#[from] io::Error),
    /// The body being forwarded failed.
    #[error("the body being sent failed")]
    Body(#[source] BoxError),
    /// The body did not match its declared length.
    #[error("the body was {sent} bytes, not the {declared} declared")]
    Length {
        /// Declared.
        declared: u64,
        /// Produced.
        sent: u64,
    },
}

/// Writes `out` (a head, already framed) and then `body`: small frames that are ready at once go
/// out in the same write as the head; `chunked` frames each data frame; `declared` is checked
/// when given. `out` is left empty.
pub async fn write_message<W, B>(
    io: &mut W,
    out: &mut Vec<u8>,
    mut body: Pin<&mut B>,
    chunked: bool,
    declared: Option<u64>,
) -> Result<(), WriteError>
where
    W: AsyncWrite + Unpin,
    B: Body<Data = Bytes> + ?Sized,
    B::Error: Into<BoxError>,
{
    let mut sent: u64 = 0;
    loop {
        let frame = match poll_now(body.as_mut()) {
            Some(frame) => frame,
            None => {
                flush(io, out).await?;
                std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await
            }
        };
        let data = match frame {
            None => break,
            Some(Err(e)) => return Err(WriteError::Body(e.into())),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                // Trailers are not forwarded.
                Err(_) => continue,
            },
        };
        sent += data.len() as u64;
        if declared.is_some_and(|d| sent > d) {
            return Err(WriteError::Length {
                declared: declared.unwrap_or_default(),
                sent,
            });
        }
        if chunked {
            write_chunk(out, &data);
        } else if data.len() >= WRITE_DIRECT_AT {
            flush(io, out).await?;
            io.write_all(&data).await?;
            continue;
        } else {
            out.extend_from_slice(&data);
        }
        if out.len() >= FLUSH_AT {
            flush(io, out).await?;
        }
    }
    if let Some(d) = declared
        && d != sent
    {
        return Err(WriteError::Length { declared: d, sent });
    }
    if chunked {
        out.extend_from_slice(LAST_CHUNK);
    }
    flush(io, out).await?;
    Ok(())
}

/// The next frame if the body has one ready now.
fn poll_now<B>(body: Pin<&mut B>) -> Option<Option<Result<http_body::Frame<Bytes>, B::Error>>>
where
    B: Body<Data = Bytes> + ?Sized,
{
    let mut cx = Context::from_waker(Waker::noop());
    match body.poll_frame(&mut cx) {
        Poll::Ready(frame) => Some(frame),
        Poll::Pending => None,
    }
}

/// Writes and empties `out`.
pub async fn flush<W: AsyncWrite + Unpin>(io: &mut W, out: &mut Vec<u8>) -> io::Result<()> {
    if !out.is_empty() {
        io.write_all(out).await?;
        out.clear();
    }
    Ok(())
}

pin_project_lite::pin_project! {
    /// A stream whose first reads return `prefix`: the bytes this engine read before it handed
    /// the connection to the general server.
    pub struct Prefixed<S> {
        prefix: Bytes,
        #[pin]
        inner: S,
    }
}

impl<S> Prefixed<S> {
    /// `inner`, with `prefix` to be read first.
    pub fn new(prefix: Bytes, inner: S) -> Prefixed<S> {
        Prefixed { prefix, inner }
    }
}

impl<S: AsyncRead> AsyncRead for Prefixed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        if this.prefix.has_remaining() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        this.inner.poll_read(cx, buf)
    }
}

impl<S: AsyncWrite> AsyncWrite for Prefixed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

/// Makes room in a read buffer: `chunk` more bytes once less than a quarter of that is left.
pub fn reserve(buf: &mut bytes::BytesMut, chunk: usize) {
    if buf.capacity() - buf.len() < chunk / 4 {
        buf.reserve(chunk);
    }
}
