//! The public side: one request in, routed by [`crate::route::find`] against the live snapshot,
//! streamed to the chosen side and back. Bodies are never buffered whole.
//!
//! Per request: check the head size → request id and trace context → load the snapshot (no
//! lock) → route → check the body limit → rewrite headers (hop-by-hop out, `X-Forwarded-*` in,
//! `Host` set to the upstream) → [`upstream::Upstreams::send`] inside a span carrying capability
//! and side → strip hop-by-hop from the response, add `x-fig-side` if configured → stream.

pub mod body;
pub mod headers;
pub mod upstream;

use arc_swap::ArcSwap;
use http::header::{self, HeaderValue};
use http::uri::{PathAndQuery, Uri};
use http::{Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

use crate::config::{SIDE_HEADER, UpstreamProtocol};
use crate::control::Live;
use crate::observability::Metrics;
use crate::route::{self, RequestParts, Side};
use body::{InFlight, ProxyBody};
use upstream::{BoxError, Upstreams};

/// What the public listener needs.
pub struct Proxy {
    /// The live snapshot.
    pub live: Arc<ArcSwap<Live>>,
    /// Pooled upstream clients.
    pub upstreams: Upstreams,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Whether to add `x-fig-side`.
    pub expose_side_header: bool,
    /// Largest request head accepted.
    pub max_header_bytes: usize,
}

/// The client side of one connection: its address, and that address as a header value, built
/// once per connection rather than once per request.
#[derive(Debug, Clone)]
pub struct ClientConnection {
    /// Peer address.
    pub addr: SocketAddr,
    /// The peer IP as an `X-Forwarded-For` entry.
    pub forwarded_for: HeaderValue,
}

impl ClientConnection {
    /// For a newly accepted connection.
    pub fn new(addr: SocketAddr) -> ClientConnection {
        let forwarded_for = HeaderValue::try_from(addr.ip().to_string())
            .unwrap_or(HeaderValue::from_static("unknown"));
        ClientConnection {
            addr,
            forwarded_for,
        }
    }
}

static SIDE_HEADER_NAME: http::HeaderName = http::HeaderName::from_static(SIDE_HEADER);

impl Proxy {
    /// Handles one request; never fails (errors become responses).
    pub async fn handle(
        &self,
        mut req: Request<Incoming>,
        client: &ClientConnection,
    ) -> Response<ProxyBody> {
        if head_size(&req) > self.max_header_bytes {
            self.metrics.count_rejected("head_too_large");
            return local(StatusCode::BAD_REQUEST, "request head too large\n");
        }
        let request_id = headers::ensure_request_id(req.headers_mut());
        headers::ensure_traceparent(req.headers_mut());
        let live = self.live.load();
        // A HeaderValue clone shares its bytes: no allocation for the usual Host header.
        let host: Option<HeaderValue> = req.headers().get(header::HOST).cloned().or_else(|| {
            req.uri()
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        let decision = {
            let parts = RequestParts {
                method: req.method(),
                path: req.uri().path(),
                query: req.uri().query(),
                host: host.as_ref().and_then(|h| h.to_str().ok()),
                headers: req.headers(),
                client_ip: Some(client.addr.ip()),
            };
            route::find(&live.table, &parts, &live.toggles)
        };
        let (name, upstream, protocol, max_body) = match decision.capability {
            Some(i) => {
                let cap = &live.table.capabilities[i];
                let up = if decision.side == Side::New {
                    &cap.new
                } else {
                    &cap.legacy
                };
                (&*cap.name, up, cap.protocol, cap.max_body_bytes)
            }
            None => (
                crate::observability::DEFAULT_CAPABILITY,
                &live.table.default_legacy,
                UpstreamProtocol::Http1,
                crate::config::DEFAULT_MAX_BODY_BYTES,
            ),
        };
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max_body) {
            self.metrics.count_rejected("body_too_large");
            return local(
                StatusCode::BAD_REQUEST,
                format!("request body larger than {max_body} bytes\n"),
            );
        }
        let side_metrics = self.metrics.side(decision.capability, decision.side);
        let span = tracing::info_span!("proxy", capability = name, side = decision.side.as_str(), request_id = ?request_id, traceparent = ?req.headers().get(&headers::TRACEPARENT));

        let (mut parts, body) = req.into_parts();
        headers::remove_hop_by_hop(&mut parts.headers);
        if let Some(forced) = &live.table.forced {
            forced.strip(&mut parts.headers);
        }
        headers::set_forwarded(&mut parts.headers, &client.forwarded_for, host);
        let pq = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let pq = if upstream.base_path.is_empty() {
            Ok(pq)
        } else {
            PathAndQuery::try_from(format!("{}{}", upstream.base_path, pq.as_str()))
        };
        let uri = pq.map_err(http::Error::from).and_then(|pq| {
            Uri::builder()
                .scheme(upstream.scheme.clone())
                .authority(upstream.authority.clone())
                .path_and_query(pq)
                .build()
        });
        let Ok(uri) = uri else {
            return local(
                StatusCode::BAD_REQUEST,
                "request path cannot be forwarded\n",
            );
        };
        parts.uri = uri;
        match protocol {
            UpstreamProtocol::Http1 => {
                parts.version = Version::HTTP_11;
                parts.headers.insert(header::HOST, upstream.host.clone());
            }
            UpstreamProtocol::Http2 => {
                parts.version = Version::HTTP_2;
                parts.headers.remove(header::HOST);
            }
        }
        let body = body.map_err(|e| BoxError::from(ClientBodyError(e)));
        let limited = Limited::new(body, usize::try_from(max_body).unwrap_or(usize::MAX))
            .map_err(BoxError::from)
            .boxed_unsync();
        let upstream_req = Request::from_parts(parts, limited);

        let in_flight = InFlight::enter(&side_metrics.in_flight);
        let started = Instant::now();
        let result = self
            .upstreams
            .send(protocol, upstream_req)
            .instrument(span.clone())
            .await;
        side_metrics
            .duration
            .observe(started.elapsed().as_secs_f64());
        match result {
            Ok(resp) => {
                side_metrics.count_status(resp.status().as_u16());
                let (mut parts, body) = resp.into_parts();
                headers::remove_hop_by_hop(&mut parts.headers);
                if self.expose_side_header {
                    parts.headers.insert(
                        SIDE_HEADER_NAME.clone(),
                        HeaderValue::from_static(decision.side.as_str()),
                    );
                }
                parts
                    .headers
                    .entry(headers::REQUEST_ID)
                    .or_insert(request_id);
                Response::from_parts(
                    parts,
                    ProxyBody::Upstream {
                        body,
                        _in_flight: in_flight,
                    },
                )
            }
            Err(e) if caused_by_body_limit(&e) => {
                side_metrics.count_status(400);
                self.metrics.count_rejected("body_too_large");
                local(
                    StatusCode::BAD_REQUEST,
                    format!("request body larger than {max_body} bytes\n"),
                )
            }
            Err(e) if caused_by::<ClientBodyError>(&e) => {
                // The client's body was malformed (bad chunk framing) or cut short: the client's
                // fault, so never counted against the side.
                side_metrics.count_status(400);
                self.metrics.count_rejected("malformed_body");
                local(StatusCode::BAD_REQUEST, "malformed request body\n")
            }
            Err(e) => {
                side_metrics.count_error();
                span.in_scope(|| tracing::warn!(error = %e, cause = ?std::error::Error::source(&e), "upstream call failed"));
                local(
                    e.status(),
                    format!("{} ({} side of {name})\n", e, decision.side.as_str()),
                )
            }
        }
    }
}

/// Bytes of the request line and headers, as the client sent them (roughly).
fn head_size<B>(req: &Request<B>) -> usize {
    let uri = req.uri().path_and_query().map_or(1, |pq| pq.as_str().len());
    req.headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum::<usize>()
        + uri
        + req.method().as_str().len()
        + 12
}

/// An error reading the client's request body (framing, early close): the client's fault.
#[derive(Debug, thiserror::Error)]
#[error("reading the client's request body failed")]
struct ClientBodyError(#[source] hyper::Error);

fn caused_by_body_limit(e: &(dyn std::error::Error + 'static)) -> bool {
    caused_by::<LengthLimitError>(e)
}

fn caused_by<T: std::error::Error + 'static>(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<T>() {
            return true;
        }
        cur = err.source();
    }
    false
}

fn local(status: StatusCode, text: impl Into<bytes::Bytes>) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::text(text));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
