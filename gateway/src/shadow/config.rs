//! Shadow-traffic settings of one capability (`[capability.shadow]`): which methods are
//! shadowed, how much request body may be buffered for the copy, the shadow calls' own
//! concurrency cap, and how responses are compared.
//!
//! ```toml
//! [capability.shadow]
//! methods = ["GET", "HEAD"]        # writes only with explicit opt-in
//! max_body_bytes = 1048576         # request-body copy bound; larger bodies skip the shadow
//! max_concurrent = 32              # shadow calls in flight; more are dropped and counted
//! max_share = 0.05                 # and at most this share of the primary requests in flight
//! noise_subtraction = true         # call legacy twice, ignore what differs between them
//! [capability.shadow.compare]
//! headers = ["content-type"]
//! ignore = ["/created_at", "/items/*/id"]
//! unordered_arrays = ["/tags"]
//! redact = ["/**/password"]
//! ```

use http::Method;
use serde::Deserialize;

use super::pointer::compile_all;
use crate::resilience::InvalidSetting;

/// Default methods shadowed: safe ones only.
pub const DEFAULT_SHADOW_METHODS: [&str; 2] = ["GET", "HEAD"];
/// Default bound on the request-body copy (1 MiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Default bound on each response body buffered for comparison (1 MiB).
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 1024 * 1024;
/// Default shadow calls in flight per capability.
pub const DEFAULT_SHADOW_MAX_CONCURRENT: usize = 32;
/// Default cap on shadow calls in flight as a share of the capability's primary requests in
/// flight. A shadow call costs the gateway about twice a primary one (a second upstream call,
/// both bodies kept and compared), so 5 % keeps the primary's throughput within 10 % of what
/// it is without shadowing even when the gateway is short of CPU (`deploy/bench/gateway.sh`).
pub const DEFAULT_SHADOW_MAX_SHARE: f64 = 0.05;
/// Default number of mismatches kept per capability.
pub const DEFAULT_MISMATCH_LOG_SIZE: usize = 50;
/// Default headers compared.
pub const DEFAULT_COMPARED_HEADERS: [&str; 1] = ["content-type"];
/// Default headers whose values never appear in a diff.
pub const DEFAULT_REDACTED_HEADERS: [&str; 3] = ["set-cookie", "authorization", "cookie"];

/// Shadow settings of one capability.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShadowConfig {
    /// Methods that may be shadowed (upper case). Writes need explicit opt-in here.
    pub methods: Vec<String>,
    /// Largest request body copied for the shadow; larger bodies skip the shadow call.
    pub max_body_bytes: usize,
    /// Largest response body buffered for comparison; larger ones are compared by status and
    /// headers only and counted as not compared.
    pub max_response_bytes: usize,
    /// Shadow calls in flight; when all are busy further shadow calls are dropped.
    pub max_concurrent: usize,
    /// Shadow calls in flight as a share of the capability's primary requests in flight (at
    /// least [`super::gate::MIN_SLOTS`]): under load the shadow takes a bounded slice of the CPU and upstream
    /// capacity the primary needs, and the rest is dropped and counted as `saturated`.
    pub max_share: f64,
    /// Call legacy a second time and treat what differs between its two answers as noise.
    pub noise_subtraction: bool,
    /// Mismatches kept for the admin API.
    pub mismatch_log_size: usize,
    /// How responses are compared.
    pub compare: CompareConfig,
}

impl Default for ShadowConfig {
    fn default() -> Self {
        Self {
            methods: DEFAULT_SHADOW_METHODS.map(str::to_owned).to_vec(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_concurrent: DEFAULT_SHADOW_MAX_CONCURRENT,
            max_share: DEFAULT_SHADOW_MAX_SHARE,
            noise_subtraction: false,
            mismatch_log_size: DEFAULT_MISMATCH_LOG_SIZE,
            compare: CompareConfig::default(),
        }
    }
}

impl ShadowConfig {
    /// Every problem, with key paths under `at`.
    pub fn validate(&self, at: &str) -> Vec<InvalidSetting> {
        let mut problems = Vec::new();
        for (i, method) in self.methods.iter().enumerate() {
            if Method::from_bytes(method.as_bytes()).is_err() || method.to_uppercase() != *method {
                problems.push(InvalidSetting::new(
                    at,
                    &format!("methods[{i}]"),
                    format!("{method:?} is not an upper-case HTTP method"),
                ));
            }
        }
        for (field, value) in [
            ("max_concurrent", self.max_concurrent),
            ("mismatch_log_size", self.mismatch_log_size),
            ("max_response_bytes", self.max_response_bytes),
        ] {
            if value == 0 {
                problems.push(InvalidSetting::new(at, field, "must be at least 1"));
            }
        }
        if !(self.max_share > 0.0 && self.max_share <= 1.0) {
            problems.push(InvalidSetting::new(
                at,
                "max_share",
                format!(
                    "{} is not a share in (0, 1]: 0.1 lets shadow calls add about 10 % load",
                    self.max_share
                ),
            ));
        }
        problems.extend(self.compare.validate(&format!("{at}.compare")));
        problems
    }

    /// True when requests with `method` may be shadowed.
    pub fn shadows(&self, method: &Method) -> bool {
        self.methods.iter().any(|m| m == method.as_str())
    }
}

/// How a shadow response is compared with legacy's.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompareConfig {
    /// Response headers compared (case-insensitive).
    pub headers: Vec<String>,
    /// JSON pointer patterns left out of the body comparison (timestamps, generated ids).
    pub ignore: Vec<String>,
    /// JSON pointer patterns of arrays compared as multisets (order ignored).
    pub unordered_arrays: Vec<String>,
    /// Compare every array as a multiset.
    pub all_arrays_unordered: bool,
    /// JSON pointer patterns whose values are shown as `<redacted>` in diffs.
    pub redact: Vec<String>,
    /// Headers whose values are shown as `<redacted>` in diffs.
    pub redact_headers: Vec<String>,
}

impl Default for CompareConfig {
    fn default() -> Self {
        Self {
            headers: DEFAULT_COMPARED_HEADERS.map(str::to_owned).to_vec(),
            ignore: Vec::new(),
            unordered_arrays: Vec::new(),
            all_arrays_unordered: false,
            redact: Vec::new(),
            redact_headers: DEFAULT_REDACTED_HEADERS.map(str::to_owned).to_vec(),
        }
    }
}

impl CompareConfig {
    /// Every problem, with key paths under `at`.
    pub fn validate(&self, at: &str) -> Vec<InvalidSetting> {
        let mut problems = Vec::new();
        for (field, patterns) in [
            ("ignore", &self.ignore),
            ("unordered_arrays", &self.unordered_arrays),
            ("redact", &self.redact),
        ] {
            if let Err(problem) = compile_all(patterns, &format!("{at}.{field}")) {
                problems.push(problem);
            }
        }
        for (field, names) in [
            ("headers", &self.headers),
            ("redact_headers", &self.redact_headers),
        ] {
            for (i, name) in names.iter().enumerate() {
                if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    problems.push(InvalidSetting::new(
                        at,
                        &format!("{field}[{i}]"),
                        format!("{name:?} is not a valid header name"),
                    ));
                }
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Defaults shadow only GET and HEAD, and are valid.
    #[test]
    fn defaults_shadow_only_safe_methods() {
        let config: ShadowConfig = toml::from_str("").expect("parses");
        assert!(config.validate("shadow").is_empty());
        let cases = [
            (Method::GET, true),
            (Method::HEAD, true),
            (Method::POST, false),
            (Method::PUT, false),
            (Method::DELETE, false),
        ];
        for (method, want) in cases {
            assert_eq!(config.shadows(&method), want, "{method}");
        }
    }

    /// Writes are shadowed once listed explicitly.
    #[test]
    fn writes_need_explicit_opt_in() {
        let config: ShadowConfig = toml::from_str("methods = [\"GET\", \"POST\"]").expect("parses");
        assert!(config.shadows(&Method::POST));
    }

    /// Misspelt keys are rejected, and bad values are reported with their key path.
    #[test]
    fn bad_settings_name_their_key() {
        let err = toml::from_str::<ShadowConfig>("[compare]\nignored = []").expect_err("typo");
        assert!(err.to_string().contains("unknown field"), "{err}");
        let text = "methods = [\"get\"]\nmax_concurrent = 0\nmax_share = 1.5\n[compare]\nignore = [\"id\"]\nheaders = [\"bad header\"]";
        let config: ShadowConfig = toml::from_str(text).expect("parses");
        let keys: Vec<String> = config.validate("s").into_iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            vec![
                "s.methods[0]",
                "s.max_concurrent",
                "s.max_share",
                "s.compare.ignore[0]",
                "s.compare.headers[0]"
            ]
        );
    }
}
