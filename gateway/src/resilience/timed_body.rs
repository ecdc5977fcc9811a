//! A response body with the idle and whole-request timeouts applied while it streams.
//!
//! Once the response head has arrived, the only timeouts left are "no chunk for `idle`" and
//! "the whole call past its deadline". [`TimedBody`] wraps the upstream body and ends it with a
//! [`BodyTimedOut`] error when either fires, so a stalled upstream cannot hold a client (and a
//! bulkhead slot) forever. The error says which timer fired; the proxy classifies it as
//! [`super::retry::AttemptFailure::AfterResponseStarted`]: never retried, never sent to legacy.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use super::timeouts::TimedOut;

/// Error type of bodies that may time out.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The upstream body stalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("upstream response body timed out ({phase:?}) after the response had started")]
pub struct BodyTimedOut {
    /// `Idle` or `Request`.
    pub phase: TimedOut,
}

pin_project! {
    /// A body that fails with [`BodyTimedOut`] when it stalls.
    #[derive(Debug)]
    pub struct TimedBody<B> {
        #[pin]
        inner: B,
        #[pin]
        idle_timer: Sleep,
        #[pin]
        request_timer: Sleep,
        idle: Duration,
        waiting: bool,
        finished: bool,
    }
}

impl<B> TimedBody<B> {
    /// Wraps `body`: once it is polled and has nothing ready, the next chunk must come within
    /// `idle`; and the body must end by `finish_by`. Time the client spends not reading (back
    /// pressure) is not counted as upstream idleness.
    pub fn new(body: B, idle: Duration, finish_by: Instant) -> Self {
        Self {
            inner: body,
            // Reset to now + `idle` before it is first polled; built without reading the clock
            // (a small body is often ready at once and never waits).
            idle_timer: tokio::time::sleep_until(finish_by),
            request_timer: tokio::time::sleep_until(finish_by),
            idle,
            waiting: false,
            finished: false,
        }
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        if *this.finished {
            return Poll::Ready(None);
        }
        match this.inner.poll_frame(cx) {
            Poll::Ready(frame) => {
                *this.waiting = false;
                return Poll::Ready(frame.map(|r| r.map_err(Into::into)));
            }
            Poll::Pending if !*this.waiting => {
                // The idle clock starts when we begin waiting on the upstream, not at the last
                // chunk: a client that reads slowly must not make the upstream look idle.
                *this.waiting = true;
                let next = Instant::now() + *this.idle;
                this.idle_timer.as_mut().reset(next);
            }
            Poll::Pending => {}
        }
        let fired = if this.request_timer.poll(cx).is_ready() {
            Some(TimedOut::Request)
        } else if this.idle_timer.poll(cx).is_ready() {
            Some(TimedOut::Idle)
        } else {
            None
        };
        match fired {
            Some(phase) => {
                *this.finished = true;
                Poll::Ready(Some(Err(Box::new(BodyTimedOut { phase }))))
            }
            None => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.finished || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http_body_util::{BodyExt, StreamBody};
    use tokio::sync::mpsc;

    use super::*;

    type Chunks = mpsc::Sender<Result<Frame<Bytes>, std::convert::Infallible>>;

    fn channel_body() -> (
        Chunks,
        impl Body<Data = Bytes, Error = std::convert::Infallible>,
    ) {
        let (sender, receiver) = mpsc::channel(4);
        let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|item| (item, receiver))
        });
        (sender, StreamBody::new(stream))
    }

    fn phase_of(error: &BoxError) -> Option<TimedOut> {
        error.downcast_ref::<BodyTimedOut>().map(|e| e.phase)
    }

    /// A body silent for longer than `idle` fails with an idle timeout at that moment.
    #[tokio::test(start_paused = true)]
    async fn silent_body_times_out_when_idle() {
        let (sender, body) = channel_body();
        let started = Instant::now();
        let mut body = std::pin::pin!(TimedBody::new(
            body,
            Duration::from_secs(2),
            started + Duration::from_secs(60),
        ));
        sender
            .send(Ok(Frame::data(Bytes::from_static(b"a"))))
            .await
            .expect("open");
        let first = body.frame().await.expect("frame").expect("data");
        assert_eq!(first.into_data().ok(), Some(Bytes::from_static(b"a")));
        let error = body
            .frame()
            .await
            .expect("an error frame")
            .expect_err("timed out");
        assert_eq!(phase_of(&error), Some(TimedOut::Idle));
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        assert!(
            body.frame().await.is_none(),
            "the body ends after the timeout"
        );
    }

    /// Chunks arriving within `idle` keep the body alive until the whole-request deadline.
    #[tokio::test(start_paused = true)]
    async fn steady_trickle_stops_at_the_request_deadline() {
        let (sender, body) = channel_body();
        let started = Instant::now();
        let mut body = std::pin::pin!(TimedBody::new(
            body,
            Duration::from_secs(2),
            started + Duration::from_millis(5_500),
        ));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if sender
                    .send(Ok(Frame::data(Bytes::from_static(b"."))))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
        let mut chunks = 0;
        let error = loop {
            match body.frame().await.expect("frames until the deadline") {
                Ok(_) => chunks += 1,
                Err(error) => break error,
            }
        };
        assert_eq!(phase_of(&error), Some(TimedOut::Request));
        assert_eq!(started.elapsed(), Duration::from_millis(5_500));
        assert_eq!(chunks, 5);
    }

    /// A client that stops reading for longer than `idle` does not make the upstream look idle.
    #[tokio::test(start_paused = true)]
    async fn slow_reader_is_not_upstream_idleness() {
        let (sender, body) = channel_body();
        let started = Instant::now();
        let mut body = std::pin::pin!(TimedBody::new(
            body,
            Duration::from_secs(2),
            started + Duration::from_secs(60),
        ));
        sender
            .send(Ok(Frame::data(Bytes::from_static(b"a"))))
            .await
            .expect("open");
        let _ = body.frame().await.expect("frame").expect("data");
        tokio::time::sleep(Duration::from_secs(10)).await;
        let upstream = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            sender
                .send(Ok(Frame::data(Bytes::from_static(b"b"))))
                .await
                .expect("open");
        });
        let second = body.frame().await.expect("frame").expect("no idle timeout");
        assert_eq!(second.into_data().ok(), Some(Bytes::from_static(b"b")));
        upstream.await.expect("task");
    }

    /// A body that ends in time passes through whole, with no error.
    #[tokio::test(start_paused = true)]
    async fn prompt_body_passes_through() {
        let (sender, body) = channel_body();
        let body = TimedBody::new(
            body,
            Duration::from_secs(1),
            Instant::now() + Duration::from_secs(10),
        );
        for chunk in [&b"hello "[..], &b"world"[..]] {
            sender
                .send(Ok(Frame::data(Bytes::copy_from_slice(chunk))))
                .await
                .expect("open");
        }
        drop(sender);
        let collected = body.collect().await.expect("no timeout").to_bytes();
        assert_eq!(collected.as_ref(), b"hello world");
    }
}
