//! The response body the gateway sends: the upstream's, streamed through untouched, or a short
//! local one (errors, refusals). The upstream variant carries the in-flight guard and the
//! bulkhead slot, so a request counts (and holds its slot) until its response has streamed; a
//! body cut by the idle or whole-request timeout is counted in
//! [`crate::observability::RESPONSE_BODY_TIMEOUTS`] as it fails.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::upstream::ResponseBody;
use crate::observability::SideMetrics;
use crate::resilience::{BodyTimedOut, BulkheadPermit, TimedBody, timed_body::BoxError};
use crate::shadow::TeeBody;

/// Decrements the in-flight gauge when dropped, and counts a response body cut by a timeout.
#[derive(Debug)]
pub struct InFlight {
    gauge: Gauge,
    body_timeouts: Counter,
}

impl InFlight {
    /// Counts one request of this capability and side in.
    pub fn enter(side: &SideMetrics) -> InFlight {
        side.in_flight.inc();
        InFlight {
            gauge: side.in_flight.clone(),
            body_timeouts: side.body_timeouts.clone(),
        }
    }

    /// Passes a polled frame on, counting a timeout that ends the body.
    fn watch(
        &self,
        polled: Poll<Option<Result<Frame<Bytes>, BoxError>>>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Poll::Ready(Some(Err(e))) = &polled
            && e.is::<BodyTimedOut>()
        {
            self.body_timeouts.inc();
        }
        polled
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// A response body.
#[derive(Debug)]
pub enum ProxyBody {
    /// The upstream's body.
    Upstream {
        /// The streaming body, with the idle and whole-request timers.
        body: Pin<Box<TimedBody<ResponseBody>>>,
        /// The bulkhead slot, freed when the body is done or dropped.
        _slot: BulkheadPermit,
        /// Released when the body is done or dropped; counts a timeout.
        in_flight: InFlight,
    },
    /// Legacy's body under shadow: streamed unchanged while a bounded copy is kept for the
    /// comparison.
    Teed {
        /// The streaming body.
        body: Pin<Box<TeeBody<TimedBody<ResponseBody>>>>,
        /// The bulkhead slot.
        _slot: BulkheadPermit,
        /// Released when the body is done or dropped; counts a timeout.
        in_flight: InFlight,
    },
    /// A body made here.
    Local(Full<Bytes>),
}

impl ProxyBody {
    /// A short local body.
    pub fn text(text: impl Into<Bytes>) -> ProxyBody {
        ProxyBody::Local(Full::new(text.into()))
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ProxyBody::Upstream {
                body, in_flight, ..
            } => in_flight.watch(body.as_mut().poll_frame(cx)),
            ProxyBody::Teed {
                body, in_flight, ..
            } => in_flight.watch(body.as_mut().poll_frame(cx)),
            ProxyBody::Local(full) => Pin::new(full)
                .poll_frame(cx)
                .map_err(|never| match never {}),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Upstream { body, .. } => body.is_end_stream(),
            ProxyBody::Teed { body, .. } => body.is_end_stream(),
            ProxyBody::Local(full) => full.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Upstream { body, .. } => body.size_hint(),
            ProxyBody::Teed { body, .. } => body.size_hint(),
            ProxyBody::Local(full) => full.size_hint(),
        }
    }
}
