//! The response body the gateway sends: the upstream's, streamed through untouched, or a short
//! local one (errors, refusals). The upstream variant carries the in-flight guard and the
//! bulkhead slot, so a request counts (and holds its slot) until its response has streamed.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use prometheus_client::metrics::gauge::Gauge;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::resilience::{BulkheadPermit, TimedBody, timed_body::BoxError};
use crate::shadow::TeeBody;

/// Decrements the in-flight gauge when dropped.
#[derive(Debug)]
pub struct InFlight(Gauge);

impl InFlight {
    /// Counts one request in.
    pub fn enter(gauge: &Gauge) -> InFlight {
        gauge.inc();
        InFlight(gauge.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// A response body.
#[derive(Debug)]
pub enum ProxyBody {
    /// The upstream's body.
    Upstream {
        /// The streaming body, with the idle and whole-request timers.
        body: Pin<Box<TimedBody<Incoming>>>,
        /// The bulkhead slot, freed when the body is done or dropped.
        _slot: BulkheadPermit,
        /// Released when the body is done or dropped.
        _in_flight: InFlight,
    },
    /// Legacy's body under shadow: streamed unchanged while a bounded copy is kept for the
    /// comparison.
    Teed {
        /// The streaming body.
        body: Pin<Box<TeeBody<TimedBody<Incoming>>>>,
        /// The bulkhead slot.
        _slot: BulkheadPermit,
        /// Released when the body is done or dropped.
        _in_flight: InFlight,
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
            ProxyBody::Upstream { body, .. } => body.as_mut().poll_frame(cx),
            ProxyBody::Teed { body, .. } => body.as_mut().poll_frame(cx),
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
