//! Shadow traffic on the proxy path (toggle state `shadow`): legacy answers the client while a
//! spawned task, holding a slot of the capability's [`ShadowGate`], sends the same request to
//! new (and, with noise subtraction, to legacy again), compares the answers and records
//! mismatches. See [`crate::shadow`] for the pieces.
//!
//! The task only ever waits on the two bounded copies (request body, legacy response body) made
//! by tees on the client's streams, so it never delays or changes what the client receives.

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::Outbound;
use super::upstream::Upstreams;
use crate::observability::Metrics;
use crate::route::Upstream;
use crate::shadow::tee::ShadowCopy;
use crate::shadow::{
    Comparator, CompareConfig, MismatchLog, ObservedResponse, ShadowConfig, ShadowGate, SkipReason,
    TeeOutcome, gate::ShadowPermit,
};

/// One capability's shadow machinery.
#[derive(Debug)]
pub struct ShadowState {
    /// Its settings.
    pub config: ShadowConfig,
    /// Method, sample and concurrency admission.
    pub gate: ShadowGate,
    comparator: Comparator,
    /// The last mismatches and the counters.
    pub log: MismatchLog,
}

impl ShadowState {
    /// From validated settings (an invalid comparison setting, already reported by
    /// `Config::validate`, falls back to the default comparison).
    pub fn new(config: &ShadowConfig, at: &str) -> ShadowState {
        let comparator = Comparator::new(&config.compare, at).unwrap_or_else(|_| {
            Comparator::new(&CompareConfig::default(), at).expect("the default comparison is valid")
        });
        ShadowState {
            config: config.clone(),
            gate: ShadowGate::new(config),
            comparator,
            log: MismatchLog::new(config.mismatch_log_size),
        }
    }

    /// Counts a request not shadowed, in the mismatch log (admin API) and the metrics.
    pub fn count_skip(&self, metrics: &Metrics, capability: Option<usize>, reason: SkipReason) {
        self.log.count_skipped(reason);
        metrics.count_shadow_skip(capability, reason);
    }
}

/// Everything the shadow task needs, gathered on the request path.
pub(super) struct ShadowJob {
    pub state: Arc<ShadowState>,
    pub permit: ShadowPermit,
    pub upstreams: Upstreams,
    pub out: Outbound,
    pub new: Upstream,
    pub legacy: Upstream,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub metrics: Arc<Metrics>,
    pub capability: Option<usize>,
    pub request_id: String,
}

impl ShadowJob {
    /// Starts the shadow work for a request whose body is copied into `request_copy` and whose
    /// legacy answer's body is copied into `body_copy`.
    pub fn spawn(
        self,
        request_copy: ShadowCopy,
        status: StatusCode,
        headers: HeaderMap,
        body_copy: ShadowCopy,
    ) {
        tokio::spawn(self.run(request_copy, status, headers, body_copy));
    }

    async fn run(
        self,
        request_copy: ShadowCopy,
        status: StatusCode,
        headers: HeaderMap,
        body_copy: ShadowCopy,
    ) {
        let _slot = &self.permit;
        let request_body = match request_copy.outcome().await.into_body() {
            Ok(b) => b,
            Err(reason) => {
                self.state
                    .count_skip(&self.metrics, self.capability, reason);
                return;
            }
        };
        let TeeOutcome::Complete(legacy_body) = body_copy.outcome().await else {
            return self.failed();
        };
        let legacy = ObservedResponse {
            status,
            headers,
            body: legacy_body,
        };
        let Some(new) = self.call(&self.new, request_body.clone()).await else {
            return self.failed();
        };
        let comparator = &self.state.comparator;
        let comparison = if self.state.config.noise_subtraction {
            match self.call(&self.legacy, request_body).await {
                Some(again) => comparator.compare_without_noise(&legacy, &new, &again),
                None => return self.failed(),
            }
        } else {
            comparator.compare(&legacy, &new)
        };
        let outcome = if comparison.is_match() {
            "match"
        } else {
            "mismatch"
        };
        self.metrics.count_shadow(self.capability, outcome);
        self.state.log.record(
            comparison,
            self.out.method.as_str(),
            self.out.pq.as_str(),
            Some(&self.request_id),
            SystemTime::now(),
        );
    }

    fn failed(&self) {
        self.state.log.count_shadow_error();
        self.metrics.count_shadow(self.capability, "error");
    }

    /// One buffered call; `None` when it fails, times out or answers more than the bound.
    async fn call(&self, upstream: &Upstream, body: Bytes) -> Option<ObservedResponse> {
        let body = Full::new(body)
            .map_err(|never| match never {})
            .boxed_unsync();
        let uri = self.out.uri(upstream)?;
        let limit = self.state.config.max_response_bytes;
        let call = async {
            let resp = self
                .upstreams
                .send(
                    self.connect_timeout,
                    self.out.call(upstream, uri, body),
                    std::time::Instant::now(),
                )
                .await
                .ok()?;
            let (parts, body) = resp.into_parts();
            let body = Limited::new(body, limit).collect().await.ok()?.to_bytes();
            Some(ObservedResponse {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(self.request_timeout, call)
            .await
            .ok()
            .flatten()
    }
}
