//! The public side: one request in, routed by [`crate::route::find`] against the live snapshot,
//! streamed to the chosen side and back. Bodies are never buffered whole.
//!
//! Per request: check the head size → request id and trace context → load the snapshot (no
//! lock) → route → check the body limit → rewrite headers (hop-by-hop out, `X-Forwarded-*` in,
//! `Host` set to the upstream) → [`guard::SideGuard::attempt`] (bulkhead, breaker, timeouts
//! around [`upstream::Upstreams::send`]) with same-side retries, then fallback to legacy when new
//! failed a request safe to resend, else a fast 502/503/504 with a reason → strip hop-by-hop
//! from the response, add `x-fig-side` (the side that answered) if configured → stream.

pub mod body;
pub mod guard;
pub mod h1;
pub mod headers;
pub mod shadowing;
pub mod upstream;

use arc_swap::ArcSwap;
use http::header::{self, HeaderValue};
use http::uri::{PathAndQuery, Uri};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

use crate::config::{SIDE_HEADER, UpstreamProtocol};
use crate::control::Live;
use crate::observability::Metrics;
use crate::resilience::retry::may_fall_back;
use crate::resilience::{AttemptFailure, ReplayableBody, RequestFacts};
use crate::route::{self, RequestParts, Side, Upstream};
use crate::shadow::{ShadowAdmission, tee};
use body::{InFlight, ProxyBody};
use guard::{Answer, Guards, Outcome, fail_fast_status, reason};
use shadowing::ShadowJob;
use upstream::{BoxError, Call, UpstreamBody, Upstreams};

/// What the public listener needs.
pub struct Proxy {
    /// The live snapshot.
    pub live: Arc<ArcSwap<Live>>,
    /// Pooled upstream clients.
    pub upstreams: Upstreams,
    /// Bulkheads, breakers and retry budgets, shared by every worker.
    pub guards: Arc<Guards>,
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
    pub async fn handle<B>(
        &self,
        mut req: Request<B>,
        client: &ClientConnection,
    ) -> Response<ProxyBody>
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
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
        let span = tracing::info_span!("proxy", capability = name, side = decision.side.as_str(), request_id = ?request_id, traceparent = ?req.headers().get(&headers::TRACEPARENT));

        let (mut parts, body) = req.into_parts();
        headers::remove_hop_by_hop(&mut parts.headers);
        if let Some(forced) = &live.table.forced {
            forced.strip(&mut parts.headers);
        }
        headers::set_forwarded(&mut parts.headers, &client.forwarded_for, host);
        let out = Outbound {
            method: parts.method,
            pq: parts
                .uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
            headers: parts.headers,
            protocol,
        };
        let Some(uri) = out.uri(upstream) else {
            return local(
                StatusCode::BAD_REQUEST,
                "request path cannot be forwarded\n",
            );
        };
        let cap = decision.capability;
        let guard = self.guards.capability(cap);
        let client_body = |e: B::Error| BoxError::from(ClientBodyError(e.into()));
        let mut shadow = None;
        let body =
            match (decision.shadow && cap.is_some() && decision.side == Side::Legacy).then(|| {
                // Legacy answers in shadow state: its requests in flight are the primary's.
                let primary = self.metrics.side(cap, Side::Legacy).in_flight.get();
                let primary = usize::try_from(primary).unwrap_or(0);
                guard.shadow.gate.admit(&out.method, 100.0, 0.0, primary)
            }) {
                Some(ShadowAdmission::Admitted(permit)) => {
                    let (teed, copy) = tee(body, guard.shadow.config.max_body_bytes);
                    shadow = Some((permit, copy));
                    teed.map_err(client_body).boxed_unsync()
                }
                Some(ShadowAdmission::Skipped(reason)) => {
                    guard.shadow.count_skip(&self.metrics, cap, reason);
                    body.map_err(client_body).boxed_unsync()
                }
                None => body.map_err(client_body).boxed_unsync(),
            };
        let limited = Limited::new(body, usize::try_from(max_body).unwrap_or(usize::MAX))
            .map_err(BoxError::from)
            .boxed_unsync();
        // Small bodies are kept so that a retry or a fallback can send them again.
        let mut body = guard
            .request_body(limited, &out.method, decision.side)
            .await;
        let facts = RequestFacts::new(&out.method, body.replayable());
        let legacy_upstream = match cap {
            Some(i) => &live.table.capabilities[i].legacy,
            None => &live.table.default_legacy,
        };
        let mut answered_by = decision.side;
        let started = Instant::now();
        let (mut outcome, ended) = self
            .call_side(
                cap,
                decision.side,
                upstream,
                uri,
                &out,
                facts,
                &mut body,
                started,
            )
            .instrument(span.clone())
            .await;
        if !matches!(outcome, Outcome::ClientBody(_)) {
            let ok = outcome.failure().is_none();
            self.guards
                .record_call(cap, decision.side, ok, started, ended);
        }
        // A tester who forced new wants new's own answer, failures included: no fallback.
        let forced = matches!(decision.reason, route::Reason::Forced { .. });
        if decision.side == Side::New
            && cap.is_some()
            && !forced
            && let Some(failure) = outcome.failure()
            && may_fall_back(&guard.fallback, facts, failure).is_ok()
        {
            self.metrics.count_fallback(cap, failure_name(failure));
            span.in_scope(|| {
                tracing::info!(
                    failure = failure_name(failure),
                    "new failed; falling back to legacy"
                )
            });
            answered_by = Side::Legacy;
            outcome = match out.uri(legacy_upstream) {
                Some(uri) => {
                    let call = self.call_side(
                        cap,
                        Side::Legacy,
                        legacy_upstream,
                        uri,
                        &out,
                        facts,
                        &mut body,
                        ended,
                    );
                    call.instrument(span.clone()).await.0
                }
                None => Outcome::Failed(AttemptFailure::Connect, None),
            };
        }
        let side_metrics = self.metrics.side(cap, answered_by);
        match outcome {
            Outcome::Answered(answer) => {
                let Answer { response, slot } = *answer;
                side_metrics.count_status(response.status().as_u16());
                let in_flight = InFlight::enter(side_metrics);
                let (mut parts, body) = response.into_parts();
                headers::remove_hop_by_hop(&mut parts.headers);
                let shadowed = match shadow.take() {
                    Some((permit, request_copy)) if answered_by == Side::Legacy => {
                        let (teed, response_copy) =
                            tee(body, guard.shadow.config.max_response_bytes);
                        let new_timeouts = guard.sides[Side::New as usize].timeouts();
                        let job = ShadowJob {
                            state: guard.shadow.clone(),
                            permit,
                            upstreams: self.upstreams.clone(),
                            out: out.clone(),
                            new: upstream_new(&live.table, cap).clone(),
                            legacy: legacy_upstream.clone(),
                            connect_timeout: new_timeouts.connect,
                            request_timeout: new_timeouts.request,
                            metrics: self.metrics.clone(),
                            capability: cap,
                            request_id: request_id.to_str().unwrap_or_default().to_string(),
                        };
                        job.spawn(
                            request_copy,
                            parts.status,
                            parts.headers.clone(),
                            response_copy,
                        );
                        Ok(teed)
                    }
                    _ => Err(body),
                };
                if self.expose_side_header {
                    parts.headers.insert(
                        SIDE_HEADER_NAME.clone(),
                        HeaderValue::from_static(answered_by.as_str()),
                    );
                }
                parts
                    .headers
                    .entry(headers::REQUEST_ID)
                    .or_insert(request_id);
                let body = match shadowed {
                    Ok(teed) => ProxyBody::Teed {
                        body: Box::pin(teed),
                        _slot: slot,
                        in_flight,
                    },
                    Err(body) => ProxyBody::Upstream {
                        body: Box::pin(body),
                        _slot: slot,
                        in_flight,
                    },
                };
                Response::from_parts(parts, body)
            }
            Outcome::ClientBody(e) if caused_by_body_limit(&e) => {
                side_metrics.count_status(400);
                self.metrics.count_rejected("body_too_large");
                local(
                    StatusCode::BAD_REQUEST,
                    format!("request body larger than {max_body} bytes\n"),
                )
            }
            Outcome::ClientBody(_) => {
                // The client's body was malformed (bad chunk framing) or cut short: the client's
                // fault, so never counted against the side.
                side_metrics.count_status(400);
                self.metrics.count_rejected("malformed_body");
                local(StatusCode::BAD_REQUEST, "malformed request body\n")
            }
            Outcome::Failed(failure, retry_after) => {
                let status = fail_fast_status(failure);
                if failure.counts_against_upstream() {
                    side_metrics.count_error();
                } else {
                    side_metrics.count_status(status.as_u16());
                }
                let not_resent = (answered_by == Side::New && cap.is_some())
                    .then(|| guard.why_not_resent(facts, failure, &body))
                    .flatten();
                span.in_scope(|| {
                    tracing::warn!(
                        failure = failure_name(failure),
                        side = answered_by.as_str(),
                        not_resent = not_resent.as_ref().map(|w| w.label),
                        "upstream call failed"
                    )
                });
                if let Some(why) = &not_resent {
                    self.metrics.count_not_resent(cap, why.label);
                }
                let text = reason(
                    failure,
                    answered_by,
                    name,
                    not_resent.as_ref().map(|w| w.text.as_str()),
                );
                let mut resp = local(status, text);
                if let Some(after) = retry_after
                    && let Ok(v) = HeaderValue::try_from(after.as_secs().max(1).to_string())
                {
                    resp.headers_mut().insert(header::RETRY_AFTER, v);
                }
                resp
            }
        }
    }

    /// Calls one side with its guard, retrying on the same side while the rules and the retry
    /// budget allow. Each attempt takes its body from `body` (a copy when it was buffered; the
    /// rules never resend a streamed one). `started` is now, read once by the caller; returns
    /// the outcome and when it came.
    #[allow(clippy::too_many_arguments)]
    async fn call_side(
        &self,
        cap: Option<usize>,
        side: Side,
        upstream: &Upstream,
        uri: Uri,
        out: &Outbound,
        facts: RequestFacts,
        body: &mut ReplayableBody,
        mut started: Instant,
    ) -> (Outcome, Instant) {
        let guard = &self.guards.capability(cap).sides[side as usize];
        let side_metrics = self.metrics.side(cap, side);
        guard.retry.record_request();
        let mut retries = 0;
        loop {
            let call = out.call(upstream, uri.clone(), body.for_attempt());
            let (outcome, now) = guard
                .attempt(&self.upstreams, call, started, |e| {
                    caused_by::<ClientBodyError>(e) || caused_by_body_limit(e)
                })
                .await;
            side_metrics
                .duration
                .observe(now.saturating_duration_since(started).as_secs_f64());
            side_metrics
                .breaker_state
                .set(guard.breaker.state(now).as_gauge());
            if let Outcome::Failed(AttemptFailure::Shed, _) = outcome {
                self.metrics.count_shed(cap, side);
            }
            let Some(failure) = outcome.failure() else {
                return (outcome, now);
            };
            if guard.retry.may_retry(facts, failure, retries).is_err() {
                return (outcome, now);
            }
            retries += 1;
            self.metrics.count_retry(cap, side);
            drop(outcome);
            tokio::time::sleep(guard.retry.backoff_with_jitter(retries)).await;
            started = Instant::now();
        }
    }
}

/// What is sent upstream, kept so that the request can be rebuilt for a retry, a fallback or
/// a shadow call.
#[derive(Clone)]
struct Outbound {
    method: http::Method,
    pq: PathAndQuery,
    headers: http::HeaderMap,
    protocol: UpstreamProtocol,
}

impl Outbound {
    /// The call to `upstream` at `uri` (from [`Outbound::uri`]).
    fn call<'a>(&'a self, upstream: &'a Upstream, uri: Uri, body: UpstreamBody) -> Call<'a> {
        Call {
            method: &self.method,
            uri,
            host: &upstream.host,
            headers: &self.headers,
            protocol: self.protocol,
            body,
        }
    }
}

impl Outbound {
    /// The request's URI on `upstream` (its base path put before the client's path).
    fn uri(&self, upstream: &Upstream) -> Option<Uri> {
        let pq = if upstream.base_path.is_empty() {
            self.pq.clone()
        } else {
            PathAndQuery::try_from(format!("{}{}", upstream.base_path, self.pq.as_str())).ok()?
        };
        Uri::builder()
            .scheme(upstream.scheme.clone())
            .authority(upstream.authority.clone())
            .path_and_query(pq)
            .build()
            .ok()
    }
}

/// New's upstream of a capability (the default route has none: its legacy stands in).
fn upstream_new(table: &route::RouteTable, cap: Option<usize>) -> &Upstream {
    match cap {
        Some(i) => &table.capabilities[i].new,
        None => &table.default_legacy,
    }
}

impl Outcome {
    /// The failure to act on: a failed attempt, or a 5xx response head (not yet forwarded).
    fn failure(&self) -> Option<AttemptFailure> {
        match self {
            Outcome::Failed(f, _) => Some(*f),
            Outcome::Answered(a) if a.response.status().is_server_error() => {
                Some(AttemptFailure::ServerError(a.response.status().as_u16()))
            }
            _ => None,
        }
    }
}

/// Metric label of a failure.
fn failure_name(f: AttemptFailure) -> &'static str {
    match f {
        AttemptFailure::Connect => "connect",
        AttemptFailure::BreakerOpen => "breaker_open",
        AttemptFailure::Shed => "shed",
        AttemptFailure::NoResponse => "no_response",
        AttemptFailure::ServerError(_) => "server_error",
        AttemptFailure::AfterResponseStarted => "after_response_started",
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
struct ClientBodyError(#[source] BoxError);

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
