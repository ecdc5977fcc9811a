//! The gateway's configuration: one serde tree read from TOML, unknown keys rejected, defaults as
//! named constants, and [`Config::validate`] naming the offending key of every problem.
//!
//! ```toml
//! listen = "0.0.0.0:8080"
//! legacy = "http://127.0.0.1:8000"        # the monolith: every unmatched request goes here
//!
//! [admin]
//! listen = "127.0.0.1:9090"
//! tokens_file = "/etc/fig/tokens"          # "name:role:token" lines; or env FIG_GATEWAY_TOKENS
//!
//! [store]
//! kind = "file"                            # or kind = "postgres", url = "host=... dbname=..."
//! path = "/var/lib/fig/toggles.json"
//!
//! [[capability]]
//! name = "orders"
//! new = "http://127.0.0.1:8001"
//! state = "percent"
//! percent = 10
//! sticky = { header = "x-user-id" }
//! routes = [{ path = "/orders/{id}", methods = ["GET"] }, { prefix = "/orders" }]
//! ```

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::toggle::ToggleState;

/// Public listener unless configured.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8080";
/// Admin listener unless configured.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9090";
/// Largest request head (request line plus headers) accepted unless configured.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;
/// Largest request body accepted per capability unless configured.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 10 * 1024 * 1024;
/// How long in-flight requests may run after SIGTERM unless configured.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Where the file store keeps toggle state unless configured.
pub const DEFAULT_STORE_PATH: &str = "fig-gateway-toggles.json";
/// Environment variable holding admin tokens ("name:role:token", comma-separated).
pub const TOKENS_ENV: &str = "FIG_GATEWAY_TOKENS";
/// Response header naming the side that answered, when enabled.
pub const SIDE_HEADER: &str = "x-fig-side";

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Public listener address.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Base URL of the legacy monolith: the default route, and every capability's legacy side
    /// unless the capability names its own.
    pub legacy: String,
    /// Add `x-fig-side: legacy|new` to every proxied response.
    #[serde(default)]
    pub expose_side_header: bool,
    /// Largest request head accepted, in bytes; larger heads get 400.
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: usize,
    /// Public-listener worker threads, each with its own single-threaded runtime and upstream
    /// pools (thread per core, like nginx's worker processes); 0 runs the public listener on
    /// the caller's runtime.
    #[serde(default)]
    pub workers: usize,
    /// How long in-flight requests may finish after a shutdown signal.
    #[serde(default = "default_drain_timeout", with = "humantime_serde")]
    pub drain_timeout: Duration,
    /// Admin listener and its tokens.
    #[serde(default)]
    pub admin: AdminConfig,
    /// Where toggle state and the audit log are kept.
    #[serde(default)]
    pub store: StoreConfig,
    /// How testers force a side.
    #[serde(default)]
    pub forced_side: Option<ForcedSideConfig>,
    /// The capabilities being migrated.
    #[serde(default, rename = "capability")]
    pub capabilities: Vec<CapabilityConfig>,
    /// The operator console (`GET /console` on the admin listener).
    #[serde(default)]
    pub console: ConsoleConfig,
}

/// `[console]`: what the operator console shows besides the gateway's own state.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// The CDC bridge's Prometheus endpoint, e.g. `http://127.0.0.1:9187/metrics`, fetched by the
    /// gateway (never the browser) for the console's CDC panel; the panel says "not configured"
    /// when absent.
    #[serde(default)]
    pub bridge_metrics_url: Option<String>,
}

impl ConsoleConfig {
    /// Problems with `[console]`, each naming its key.
    pub fn validate(&self) -> Vec<ConfigProblem> {
        let Some(url) = &self.bridge_metrics_url else {
            return Vec::new();
        };
        let key = "console.bridge_metrics_url";
        match url.parse::<http::Uri>() {
            Err(e) => vec![ConfigProblem::new(
                key,
                format!("`{url}` is not a URL: {e}"),
            )],
            Ok(uri) if uri.scheme() != Some(&http::uri::Scheme::HTTP) => vec![ConfigProblem::new(
                key,
                format!("`{url}`: only http:// URLs are supported"),
            )],
            Ok(uri) if uri.authority().is_none() => {
                vec![ConfigProblem::new(key, format!("`{url}` has no host"))]
            }
            Ok(uri) if uri.authority().is_some_and(|a| a.as_str().contains('@')) => {
                vec![ConfigProblem::new(
                    key,
                    "credentials in the URL are not supported; expose the bridge's metrics on a private address",
                )]
            }
            Ok(_) => Vec::new(),
        }
    }
}

/// `[admin]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Admin listener address; never the public one.
    #[serde(default = "default_admin_listen")]
    pub listen: SocketAddr,
    /// File of "name:role:token" lines; [`TOKENS_ENV`] is read as well.
    #[serde(default)]
    pub tokens_file: Option<PathBuf>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: default_admin_listen(),
            tokens_file: None,
        }
    }
}

/// `[store]`: where toggles and the audit log live.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum StoreConfig {
    /// A local JSON file written atomically (temporary file, then rename); the audit log is a
    /// JSON-lines file beside it.
    File {
        /// The state file.
        path: PathBuf,
    },
    /// A PostgreSQL table shared by replicas, changes announced with `LISTEN/NOTIFY`.
    Postgres {
        /// libpq-style connection string or URL.
        url: String,
    },
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig::File {
            path: PathBuf::from(DEFAULT_STORE_PATH),
        }
    }
}

/// `[forced_side]`: a header or cookie carrying `legacy:SECRET` or `new:SECRET`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForcedSideConfig {
    /// Header name, e.g. `x-fig-force-side`.
    #[serde(default)]
    pub header: Option<String>,
    /// Cookie name, e.g. `fig_force_side`.
    #[serde(default)]
    pub cookie: Option<String>,
    /// The secret itself (prefer `secret_env`).
    #[serde(default)]
    pub secret: Option<String>,
    /// Environment variable holding the secret.
    #[serde(default)]
    pub secret_env: Option<String>,
}

impl ForcedSideConfig {
    /// The secret, from the file or the environment.
    pub fn resolve_secret(&self) -> Option<String> {
        self.secret
            .clone()
            .or_else(|| self.secret_env.as_ref().and_then(|v| std::env::var(v).ok()))
            .filter(|s| !s.is_empty())
    }
}

/// One `[[capability]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapabilityConfig {
    /// Name used in the admin API, metrics and logs.
    pub name: String,
    /// Legacy side; the top-level `legacy` when absent.
    #[serde(default)]
    pub legacy: Option<String>,
    /// New side.
    pub new: String,
    /// Which requests belong to this capability.
    pub routes: Vec<RouteConfig>,
    /// State at first start, before the store knows this capability.
    #[serde(default = "default_state")]
    pub state: String,
    /// Percentage for `percent` (share to new) and `shadow` (sample) at first start.
    #[serde(default)]
    pub percent: Option<u8>,
    /// What keeps a user on one side under `percent`; the client address when absent.
    #[serde(default)]
    pub sticky: Option<StickyConfig>,
    /// Largest request body, in bytes.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: u64,
    /// Protocol spoken to both upstreams: `http1` or `http2` (prior knowledge, h2c).
    #[serde(default)]
    pub upstream_protocol: UpstreamProtocol,
    /// Timeouts, bulkhead, breaker, retries and fallback per side; defaults when absent.
    #[serde(default)]
    pub resilience: crate::resilience::ResilienceConfig,
    /// Shadow traffic (toggle state `shadow`): methods, bounds, comparison.
    #[serde(default)]
    pub shadow: crate::shadow::ShadowConfig,
}

impl CapabilityConfig {
    /// The configured initial toggle state.
    pub fn initial_state(&self) -> Result<ToggleState, String> {
        ToggleState::from_parts(&self.state, self.percent)
    }
}

/// Protocol spoken to upstreams.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamProtocol {
    /// HTTP/1.1 with keep-alive.
    #[default]
    Http1,
    /// HTTP/2 over cleartext with prior knowledge.
    Http2,
}

/// One matcher of a capability. All given parts must match.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Path prefix on segment boundaries: `/orders` matches `/orders` and `/orders/7`, not
    /// `/ordersx`.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Path template with `{name}` segments: `/orders/{id}/payment`.
    #[serde(default)]
    pub path: Option<String>,
    /// Methods; any method when empty.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Host (without port), compared case-insensitively; any host when absent.
    #[serde(default)]
    pub host: Option<String>,
    /// Headers that must carry exactly these values.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// Sticky key: exactly one of the three.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StickyConfig {
    /// Header name.
    #[serde(default)]
    pub header: Option<String>,
    /// Cookie name.
    #[serde(default)]
    pub cookie: Option<String>,
    /// Query parameter name.
    #[serde(default)]
    pub query: Option<String>,
}

/// One problem found in a configuration, with the key it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Key path, e.g. `capability[1].routes[0].path`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

impl ConfigProblem {
    /// A problem about `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigProblem {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl Config {
    /// Parses TOML text; a syntax or type error becomes one problem naming its key.
    pub fn parse(text: &str) -> Result<Config, Vec<ConfigProblem>> {
        toml::from_str(text).map_err(|e| {
            let key = e
                .span()
                .map(|s| format!("line {}", text[..s.start].lines().count().max(1)))
                .unwrap_or_else(|| "(file)".to_string());
            vec![ConfigProblem::new(key, e.message().to_string())]
        })
    }

    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<Config, Vec<ConfigProblem>> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            vec![ConfigProblem::new(
                path.display().to_string(),
                format!("cannot read: {e}"),
            )]
        })?;
        Config::parse(&text)
    }

    /// Every problem in the configuration, each naming its key; empty when it is usable.
    ///
    /// Includes the route table's own checks (templates, ambiguous routes, upstream URLs).
    pub fn validate(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        if self.listen == self.admin.listen {
            problems.push(ConfigProblem::new(
                "admin.listen",
                "must differ from `listen`: the admin API never shares the public listener",
            ));
        }
        if self.max_header_bytes < 1024 {
            problems.push(ConfigProblem::new(
                "max_header_bytes",
                "must be at least 1024",
            ));
        }
        if let StoreConfig::Postgres { url } = &self.store
            && url.trim().is_empty()
        {
            problems.push(ConfigProblem::new("store.url", "must not be empty"));
        }
        if let Some(forced) = &self.forced_side {
            if forced.header.is_none() && forced.cookie.is_none() {
                problems.push(ConfigProblem::new(
                    "forced_side",
                    "set `header` or `cookie`",
                ));
            }
            if forced.resolve_secret().is_none() {
                problems.push(ConfigProblem::new(
                    "forced_side.secret",
                    "a non-empty `secret` or a set `secret_env` is required",
                ));
            }
        }
        for (i, cap) in self.capabilities.iter().enumerate() {
            let key = format!("capability[{i}]");
            if let Err(e) = cap.initial_state() {
                problems.push(ConfigProblem::new(format!("{key}.state"), e));
            }
            let shadow_at = format!("{key}.shadow");
            let shadow_problems = cap.shadow.validate(&shadow_at).into_iter().chain(
                crate::shadow::Comparator::new(
                    &cap.shadow.compare,
                    &format!("{shadow_at}.compare"),
                )
                .err(),
            );
            for p in shadow_problems.chain(cap.resilience.validate(&format!("{key}.resilience"))) {
                problems.push(ConfigProblem::new(p.key, p.reason));
            }
            if let Some(sticky) = &cap.sticky {
                let n = [&sticky.header, &sticky.cookie, &sticky.query]
                    .iter()
                    .filter(|o| o.is_some())
                    .count();
                if n != 1 {
                    problems.push(ConfigProblem::new(
                        format!("{key}.sticky"),
                        "set exactly one of `header`, `cookie`, `query`",
                    ));
                }
            }
        }
        problems.extend(self.console.validate());
        if let Err(mut table_problems) = crate::route::RouteTable::build(self) {
            problems.append(&mut table_problems);
        }
        problems
    }
}

fn default_listen() -> SocketAddr {
    DEFAULT_LISTEN
        .parse()
        .expect("DEFAULT_LISTEN is an address")
}
fn default_admin_listen() -> SocketAddr {
    DEFAULT_ADMIN_LISTEN
        .parse()
        .expect("DEFAULT_ADMIN_LISTEN is an address")
}
fn default_max_header_bytes() -> usize {
    DEFAULT_MAX_HEADER_BYTES
}
fn default_max_body_bytes() -> u64 {
    DEFAULT_MAX_BODY_BYTES
}
fn default_drain_timeout() -> Duration {
    DEFAULT_DRAIN_TIMEOUT
}
fn default_state() -> String {
    "legacy".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Resilience and shadow settings are checked with the rest, each problem naming its key;
    /// a capability without them gets the defaults.
    #[test]
    fn resilience_and_shadow_problems_name_their_keys() {
        let text = "legacy = \"http://127.0.0.1:1\"\n\
            [[capability]]\nname = \"orders\"\nnew = \"http://127.0.0.1:2\"\nroutes = [{ prefix = \"/orders\" }]\n\
            [capability.resilience.new.bulkhead]\nmax_concurrent = 0\n\
            [capability.shadow]\nmethods = [\"get\"]\n\
            [[capability]]\nname = \"users\"\nnew = \"http://127.0.0.1:3\"\nroutes = [{ prefix = \"/users\" }]\n";
        let config = Config::parse(text).expect("parses");
        let keys: Vec<String> = config.validate().into_iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            vec![
                "capability[0].shadow.methods[0]",
                "capability[0].resilience.new.bulkhead.max_concurrent",
            ]
        );
        assert_eq!(
            config.capabilities[1].resilience,
            crate::resilience::ResilienceConfig::default()
        );
    }

    /// A console bridge URL that is not an http:// URL is refused, naming the key.
    #[test]
    fn console_bridge_url_problems_name_their_key() {
        let base = "legacy = \"http://127.0.0.1:1\"\n[console]\n";
        for bad in [
            "not a url",
            "https://bridge:9187/metrics",
            "/metrics",
            "http://user:secret@bridge:9187/metrics",
        ] {
            let config =
                Config::parse(&format!("{base}bridge_metrics_url = \"{bad}\"\n")).expect("parses");
            let keys: Vec<String> = config.validate().into_iter().map(|p| p.key).collect();
            assert_eq!(keys, vec!["console.bridge_metrics_url"], "{bad}");
        }
        let good = Config::parse(&format!(
            "{base}bridge_metrics_url = \"http://127.0.0.1:9187/metrics\"\n"
        ))
        .expect("parses");
        assert!(good.validate().is_empty());
        assert!(Config::parse(&format!("{base}bridge = 1\n")).is_err());
    }
}
