//! Request bodies that can be sent more than once, so that a retry or a fallback to legacy
//! carries the same bytes as the first attempt.
//!
//! Before the first attempt the proxy reads a request's body into memory when it is small:
//!
//! ```text
//! no body                                   → Buffered (empty): every attempt sends nothing
//! Content-Length > max_replay_body_bytes    → Streamed(OverLimit) at once, nothing read
//! read frames until the end                 → Buffered: every attempt sends a copy (no clone of
//!                                             the bytes, only of the handles)
//!   total passes the limit                  → Streamed(OverLimit): what was read, then the rest
//!   the client is slower than `patience`    → Streamed(TooSlow):   what was read, then the rest
//!   the client's body fails (framing, size) → Streamed(ReadFailed): what was read, then the
//!                                             error, which the first attempt reports as the
//!                                             client's fault, exactly as without buffering
//! ```
//!
//! A streamed body goes to the first attempt only, unchanged; [`RequestFacts::body_replayable`]
//! is false for it, so it is never retried nor sent to legacy, and the fast answer says why
//! ([`NotBuffered`]). Requests that no rule could ever resend (a non-idempotent method without
//! `fallback.unsent_writes`) are not buffered at all: buffering would only add latency.
//!
//! [`RequestFacts::body_replayable`]: super::RequestFacts::body_replayable

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;

use super::timed_body::BoxError;

/// Default largest request body kept in memory for a retry or fallback (64 KiB).
pub const DEFAULT_MAX_REPLAY_BODY_BYTES: usize = 64 * 1024;
/// Highest `max_replay_body_bytes` accepted (4 MiB): each request in flight may hold this much.
pub const MAX_REPLAY_BODY_BYTES_CEILING: usize = 4 * 1024 * 1024;

/// Why a request body was streamed rather than kept for replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotBuffered {
    /// Larger than the capability's `max_replay_body_bytes`.
    #[error("the request body is larger than the replay limit ({limit} bytes)")]
    OverLimit {
        /// The configured limit.
        limit: usize,
    },
    /// The client did not finish sending it within the side's first-byte timeout.
    #[error("the request body arrived too slowly to be buffered")]
    TooSlow,
    /// The client's body failed (bad framing, over the size limit, cut short).
    #[error("the request body could not be read")]
    ReadFailed,
    /// The method may never be resent, so the body was not buffered.
    #[error("the request may not be sent again")]
    NeverResent,
}

impl NotBuffered {
    /// Log field value.
    pub fn as_label(self) -> &'static str {
        match self {
            Self::OverLimit { .. } => "body_over_replay_limit",
            Self::TooSlow => "body_too_slow_to_buffer",
            Self::ReadFailed => "body_read_failed",
            Self::NeverResent => "never_resent",
        }
    }
}

/// The body of one attempt, as the upstream clients take it.
pub type AttemptBody = UnsyncBoxBody<Bytes, BoxError>;

/// A request body ready for one or more attempts.
pub struct ReplayableBody {
    kept: Kept<AttemptBody>,
}

enum Kept<B> {
    /// No body: the client's (empty) body for the first attempt, then empty ones.
    Empty { first: Option<B> },
    /// The whole body: a copy for every attempt.
    Buffered {
        data: Bytes,
        trailers: Option<HeaderMap>,
    },
    /// For the first attempt only (`None` once taken).
    Streamed {
        body: Option<ReplayBody<B>>,
        why: NotBuffered,
    },
}

impl ReplayableBody {
    /// Reads `body` into memory if it has at most `limit` bytes and arrives within `patience`;
    /// otherwise keeps what was read in front of the rest for a single, streamed attempt.
    /// `limit: None` streams at once (the request may never be resent).
    pub async fn read(mut body: AttemptBody, limit: Option<usize>, patience: Duration) -> Self {
        if body.is_end_stream() {
            return Self {
                kept: Kept::Empty { first: Some(body) },
            };
        }
        let Some(limit) = limit else {
            return Self::streamed(Vec::new(), body, None, NotBuffered::NeverResent);
        };
        if body.size_hint().lower() > limit as u64 {
            return Self::streamed(Vec::new(), body, None, NotBuffered::OverLimit { limit });
        }
        let deadline = tokio::time::Instant::now() + patience;
        let mut chunks: Vec<Bytes> = Vec::new();
        let mut len = 0usize;
        loop {
            let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
                Err(_elapsed) => return Self::streamed(chunks, body, None, NotBuffered::TooSlow),
                Ok(None) => return Self::buffered(join(chunks, len), None),
                Ok(Some(Err(e))) => {
                    return Self::streamed(chunks, body, Some(e), NotBuffered::ReadFailed);
                }
                Ok(Some(Ok(frame))) => frame,
            };
            match frame.into_data() {
                Ok(data) => {
                    len += data.len();
                    if !data.is_empty() {
                        chunks.push(data);
                    }
                    if len > limit {
                        let why = NotBuffered::OverLimit { limit };
                        return Self::streamed(chunks, body, None, why);
                    }
                }
                Err(frame) => {
                    // Trailers end the body.
                    return Self::buffered(join(chunks, len), frame.into_trailers().ok());
                }
            }
            if body.is_end_stream() {
                return Self::buffered(join(chunks, len), None);
            }
        }
    }

    fn buffered(data: Bytes, trailers: Option<HeaderMap>) -> Self {
        Self {
            kept: Kept::Buffered { data, trailers },
        }
    }

    fn streamed(
        read: Vec<Bytes>,
        rest: AttemptBody,
        error: Option<BoxError>,
        why: NotBuffered,
    ) -> Self {
        let prefix_len = read.iter().map(|c| c.len() as u64).sum();
        let body = ReplayBody::Prefixed {
            prefix: read.into(),
            prefix_len,
            rest: Some(rest),
            error,
        };
        Self {
            kept: Kept::Streamed {
                body: Some(body),
                why,
            },
        }
    }

    /// Whether every attempt can send the whole body.
    pub fn replayable(&self) -> bool {
        !matches!(self.kept, Kept::Streamed { .. })
    }

    /// Why the body cannot be sent again (`None` when it can).
    pub fn not_buffered(&self) -> Option<NotBuffered> {
        match &self.kept {
            Kept::Streamed { why, .. } => Some(*why),
            _ => None,
        }
    }

    /// The body for the next attempt: a copy of a buffered body, the streamed body the first
    /// time, and an empty body after that (the retry rules never get there).
    pub fn for_attempt(&mut self) -> AttemptBody {
        let body = match &mut self.kept {
            Kept::Empty { first } => first.take().map(Ok),
            Kept::Buffered { data, trailers } => Some(Err(ReplayBody::Buffered {
                data: (!data.is_empty()).then(|| data.clone()),
                trailers: trailers.clone(),
            })),
            Kept::Streamed { body, .. } => body.take().map(Err),
        };
        match body {
            Some(Ok(first)) => first,
            Some(Err(replay)) => replay.boxed_unsync(),
            None => ReplayBody::<AttemptBody>::Buffered {
                data: None,
                trailers: None,
            }
            .boxed_unsync(),
        }
    }
}

fn join(chunks: Vec<Bytes>, len: usize) -> Bytes {
    match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.into_iter().next().unwrap_or_default(),
        _ => {
            let mut joined = BytesMut::with_capacity(len);
            for c in chunks {
                joined.extend_from_slice(&c);
            }
            joined.freeze()
        }
    }
}

/// The body of one attempt.
pub enum ReplayBody<B> {
    /// A copy of the buffered body.
    Buffered {
        /// The bytes, `None` once sent or when empty.
        data: Option<Bytes>,
        /// Trailers, sent after the data.
        trailers: Option<HeaderMap>,
    },
    /// What was read while trying to buffer, then the rest of the client's body (or the error
    /// that stopped the reading).
    Prefixed {
        /// Chunks read already.
        prefix: VecDeque<Bytes>,
        /// Their total length, for the size hint.
        prefix_len: u64,
        /// The rest of the client's body (`None` after an error).
        rest: Option<B>,
        /// The client's error, reported after the prefix.
        error: Option<BoxError>,
    },
}

impl<B> Body for ReplayBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ReplayBody::Buffered { data, trailers } => {
                if let Some(d) = data.take() {
                    return Poll::Ready(Some(Ok(Frame::data(d))));
                }
                Poll::Ready(trailers.take().map(|t| Ok(Frame::trailers(t))))
            }
            ReplayBody::Prefixed {
                prefix,
                prefix_len,
                rest,
                error,
            } => {
                if let Some(chunk) = prefix.pop_front() {
                    *prefix_len -= chunk.len() as u64;
                    return Poll::Ready(Some(Ok(Frame::data(chunk))));
                }
                if let Some(e) = error.take() {
                    return Poll::Ready(Some(Err(e)));
                }
                match rest {
                    Some(body) => Pin::new(body)
                        .poll_frame(cx)
                        .map(|f| f.map(|r| r.map_err(Into::into))),
                    None => Poll::Ready(None),
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReplayBody::Buffered { data, trailers } => data.is_none() && trailers.is_none(),
            ReplayBody::Prefixed {
                prefix,
                rest,
                error,
                ..
            } => prefix.is_empty() && error.is_none() && rest.as_ref().is_none_or(B::is_end_stream),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ReplayBody::Buffered { data, .. } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            ReplayBody::Prefixed {
                prefix_len,
                rest,
                error,
                ..
            } => {
                if error.is_some() {
                    return SizeHint::default();
                }
                let rest = rest.as_ref().map_or(SizeHint::with_exact(0), B::size_hint);
                let mut hint = SizeHint::new();
                hint.set_lower(rest.lower().saturating_add(*prefix_len));
                if let Some(upper) = rest.upper() {
                    hint.set_upper(upper.saturating_add(*prefix_len));
                }
                hint
            }
        }
    }
}

#[cfg(test)]
#[path = "replay_tests.rs"]
mod tests;
