//! Request-body tee: the primary (legacy) call streams the body unchanged while up to
//! `limit` bytes are kept for the shadow call.
//!
//! ```text
//! client body ─▶ TeeBody ─▶ primary upstream   (every frame passed on as is, never delayed)
//!                   └─ keeps Bytes handles (no copy) while total ≤ limit
//!                        end of body      → TeeOutcome::Complete(body), the handles joined
//!                                           by the receiver (the shadow task), never here
//!                        total > limit    → TeeOutcome::OverBound at once, handles released
//!                        error / dropped  → TeeOutcome::Aborted
//! ```
//!
//! Over the bound, only the copy is abandoned: the primary keeps streaming exactly what the
//! client sent (unlike Traefik, which fails the primary, or Envoy, which silently skips). The
//! outcome is sent once through a oneshot channel, so the shadow task waits for it without ever
//! being on the primary's path. A body whose exact size is known to exceed the bound is
//! abandoned before the first byte. Trailers are passed to the primary and not copied.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::sync::oneshot;

use super::gate::SkipReason;

/// What the shadow gets from the tee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TeeOutcome {
    /// The whole body, which fitted in the bound.
    Complete(Bytes),
    /// The body was larger than `limit` bytes: skip the shadow call and count it.
    OverBound {
        /// The configured bound.
        limit: usize,
    },
    /// The primary body failed or was dropped before its end: skip the shadow call.
    Aborted,
}

impl TeeOutcome {
    /// The body for the shadow call, or why the shadow call is skipped (to be counted).
    pub fn into_body(self) -> Result<Bytes, SkipReason> {
        match self {
            Self::Complete(body) => Ok(body),
            Self::OverBound { .. } => Err(SkipReason::BodyOverBound),
            Self::Aborted => Err(SkipReason::BodyAborted),
        }
    }
}

/// The shadow's side of a tee: resolves once the primary body has ended or the copy was given up.
#[derive(Debug)]
pub struct ShadowCopy {
    outcome: oneshot::Receiver<Finished>,
}

impl ShadowCopy {
    /// Waits for the outcome (call only off the client's path, e.g. in the shadow task: a body
    /// kept in several chunks is joined here).
    pub async fn outcome(self) -> TeeOutcome {
        self.outcome
            .await
            .map_or(TeeOutcome::Aborted, Finished::into_outcome)
    }

    /// The outcome if it is already known.
    pub fn try_outcome(&mut self) -> Option<TeeOutcome> {
        self.outcome.try_recv().ok().map(Finished::into_outcome)
    }
}

/// What the tee sends: the kept chunks as they are, so that joining them (a copy of up to
/// `limit` bytes) happens in the receiver, off the primary's path.
#[derive(Debug)]
enum Finished {
    Complete { chunks: Vec<Bytes>, len: usize },
    Other(TeeOutcome),
}

impl Finished {
    fn into_outcome(self) -> TeeOutcome {
        let (chunks, len) = match self {
            Finished::Other(outcome) => return outcome,
            Finished::Complete { chunks, len } => (chunks, len),
        };
        let body = match chunks.len() {
            0 => Bytes::new(),
            1 => chunks.into_iter().next().unwrap_or_default(),
            _ => {
                let mut joined = BytesMut::with_capacity(len);
                for chunk in &chunks {
                    joined.extend_from_slice(chunk);
                }
                joined.freeze()
            }
        };
        TeeOutcome::Complete(body)
    }
}

#[derive(Debug)]
struct Copy {
    limit: usize,
    kept: Vec<Bytes>,
    kept_len: usize,
    sender: Option<oneshot::Sender<Finished>>,
}

impl Copy {
    fn keep(&mut self, chunk: &Bytes) {
        if self.sender.is_none() {
            return;
        }
        if self.kept_len + chunk.len() > self.limit {
            self.finish(Finished::Other(TeeOutcome::OverBound { limit: self.limit }));
        } else if !chunk.is_empty() {
            self.kept_len += chunk.len();
            self.kept.push(chunk.clone());
        }
    }

    fn complete(&mut self) {
        if self.sender.is_none() {
            return;
        }
        let chunks = std::mem::take(&mut self.kept);
        self.finish(Finished::Complete {
            chunks,
            len: self.kept_len,
        });
    }

    fn finish(&mut self, finished: Finished) {
        self.kept = Vec::new();
        if let Some(sender) = self.sender.take() {
            // The shadow task may have gone away already; nothing to tell then.
            let _ = sender.send(finished);
        }
    }
}

impl Drop for Copy {
    fn drop(&mut self) {
        self.finish(Finished::Other(TeeOutcome::Aborted));
    }
}

pin_project! {
    /// A request body passed through unchanged while a bounded copy is kept.
    #[derive(Debug)]
    pub struct TeeBody<B> {
        #[pin]
        inner: B,
        copy: Copy,
    }
}

/// Wraps `body` so it streams unchanged while up to `limit` bytes are kept for the shadow.
pub fn tee<B>(body: B, limit: usize) -> (TeeBody<B>, ShadowCopy)
where
    B: Body<Data = Bytes>,
{
    let (sender, receiver) = oneshot::channel();
    let mut copy = Copy {
        limit,
        kept: Vec::new(),
        kept_len: 0,
        sender: Some(sender),
    };
    let hint = body.size_hint();
    if hint.lower() > limit as u64 {
        copy.finish(Finished::Other(TeeOutcome::OverBound { limit }));
    } else if body.is_end_stream() {
        copy.complete();
    }
    let shadow = ShadowCopy { outcome: receiver };
    (TeeBody { inner: body, copy }, shadow)
}

impl<B> Body for TeeBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let polled = this.inner.as_mut().poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(chunk) = frame.data_ref() {
                    this.copy.keep(chunk);
                }
                if this.inner.is_end_stream() {
                    this.copy.complete();
                }
            }
            Poll::Ready(Some(Err(_))) => this.copy.finish(Finished::Other(TeeOutcome::Aborted)),
            Poll::Ready(None) => this.copy.complete(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
#[path = "tee_tests.rs"]
mod tests;
