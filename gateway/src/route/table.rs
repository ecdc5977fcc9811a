//! The route table built from the configuration: capabilities, their routes (flattened, with a
//! precomputed specificity), upstreams parsed once, and the check that rejects ambiguous routes.

use http::uri::{Authority, Scheme};
use http::{HeaderName, HeaderValue, Method};
use std::collections::HashMap;
use std::sync::Arc;

use super::path::{PathPattern, PathSpecificity};
use super::sticky::{ForcedSide, StickyKey};
use crate::config::{CapabilityConfig, Config, ConfigProblem, RouteConfig, UpstreamProtocol};
use crate::toggle::ToggleState;

/// An upstream base URL, parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// `http` (TLS to upstreams is not offered).
    pub scheme: Scheme,
    /// `host:port`.
    pub authority: Authority,
    /// Path prefix put before the request path; empty or starting with `/`, no trailing `/`.
    pub base_path: String,
    /// `Host` header value sent to an HTTP/1.1 upstream, built once.
    pub host: HeaderValue,
}

impl Upstream {
    /// Parses `http://host:port[/base]`.
    pub fn parse(url: &str) -> Result<Upstream, String> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        let scheme = uri
            .scheme()
            .cloned()
            .ok_or_else(|| format!("`{url}` has no scheme"))?;
        if scheme != Scheme::HTTP {
            return Err(format!("`{url}`: only http:// upstreams are supported"));
        }
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| format!("`{url}` has no host"))?;
        if uri.query().is_some() {
            return Err(format!("`{url}`: an upstream URL takes no query"));
        }
        let base_path = uri.path().trim_end_matches('/').to_string();
        let host = HeaderValue::from_str(authority.as_str())
            .map_err(|_| format!("`{url}`: host is not a valid header value"))?;
        Ok(Upstream {
            scheme,
            authority,
            base_path,
            host,
        })
    }
}

/// One capability in the table.
#[derive(Debug, Clone)]
pub struct Capability {
    /// Its name.
    pub name: Arc<str>,
    /// Legacy side.
    pub legacy: Upstream,
    /// New side.
    pub new: Upstream,
    /// What keeps a user on one side.
    pub sticky: StickyKey,
    /// Largest request body accepted.
    pub max_body_bytes: u64,
    /// Protocol to both upstreams.
    pub protocol: UpstreamProtocol,
    /// State used when the store knows nothing of this capability.
    pub initial: ToggleState,
}

/// How specific a route is; the greatest matching one wins.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Specificity {
    path: PathSpecificity,
    host: bool,
    headers: usize,
    methods: bool,
}

/// One route (matcher) of a capability.
#[derive(Debug, Clone)]
pub struct Route {
    /// Index of its capability in [`RouteTable::capabilities`].
    pub capability: usize,
    /// Where it was configured, e.g. `capability[0].routes[1]`.
    pub key: String,
    pub(super) path: PathPattern,
    pub(super) methods: Vec<Method>,
    pub(super) host: Option<String>,
    pub(super) headers: Vec<(HeaderName, HeaderValue)>,
    pub(super) specificity: Specificity,
}

impl Route {
    /// A short description: `GET,POST /orders/{}` plus host and headers.
    pub fn describe(&self) -> String {
        let methods = if self.methods.is_empty() {
            "*".to_string()
        } else {
            self.methods
                .iter()
                .map(Method::as_str)
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut out = format!("{methods} {}", self.path);
        if let Some(h) = &self.host {
            out.push_str(&format!(" host={h}"));
        }
        for (k, v) in &self.headers {
            out.push_str(&format!(" {k}={}", v.to_str().unwrap_or("?")));
        }
        out
    }

    /// Whether some request matches both routes.
    fn overlaps(&self, other: &Route) -> bool {
        let methods = self.methods.is_empty()
            || other.methods.is_empty()
            || self.methods.iter().any(|m| other.methods.contains(m));
        let host = match (&self.host, &other.host) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        let headers = self
            .headers
            .iter()
            .all(|(k, v)| other.headers.iter().all(|(k2, v2)| k != k2 || v == v2));
        methods && host && headers && self.path.overlaps(&other.path)
    }
}

/// The complete, validated route table. Immutable; replaced whole.
#[derive(Debug, Clone)]
pub struct RouteTable {
    /// The monolith: where unmatched requests go.
    pub default_legacy: Upstream,
    /// Capabilities in configuration order.
    pub capabilities: Vec<Capability>,
    /// Every route of every capability.
    pub routes: Vec<Route>,
    /// How testers force a side, if configured.
    pub forced: Option<ForcedSide>,
    by_name: HashMap<String, usize>,
}

impl RouteTable {
    /// Builds the table, or returns every problem found (each naming its key), including each
    /// pair of ambiguous routes.
    pub fn build(config: &Config) -> Result<RouteTable, Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        let default_legacy = Upstream::parse(&config.legacy).unwrap_or_else(|e| {
            problems.push(ConfigProblem::new("legacy", e));
            placeholder_upstream()
        });
        let mut capabilities = Vec::new();
        let mut routes = Vec::new();
        let mut by_name = HashMap::new();
        for (i, cap) in config.capabilities.iter().enumerate() {
            let key = format!("capability[{i}]");
            if cap.name.is_empty()
                || !cap
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                problems.push(ConfigProblem::new(
                    format!("{key}.name"),
                    "use letters, digits, `-` and `_`",
                ));
            }
            if by_name.insert(cap.name.clone(), i).is_some() {
                problems.push(ConfigProblem::new(
                    format!("{key}.name"),
                    format!("`{}` is used twice", cap.name),
                ));
            }
            capabilities.push(build_capability(&key, cap, &config.legacy, &mut problems));
            if cap.routes.is_empty() {
                problems.push(ConfigProblem::new(
                    format!("{key}.routes"),
                    "at least one route is needed",
                ));
            }
            for (j, rc) in cap.routes.iter().enumerate() {
                if let Some(route) =
                    build_route(i, &format!("{key}.routes[{j}]"), rc, &mut problems)
                {
                    routes.push(route);
                }
            }
        }
        check_ambiguity(&routes, &capabilities, &mut problems);
        let forced = config.forced_side.as_ref().and_then(|f| {
            ForcedSide::new(f)
                .map_err(|e| problems.push(ConfigProblem::new("forced_side", e)))
                .ok()
        });
        if problems.is_empty() {
            Ok(RouteTable {
                default_legacy,
                capabilities,
                routes,
                forced,
                by_name,
            })
        } else {
            Err(problems)
        }
    }

    /// Index of the capability named `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }
}

fn placeholder_upstream() -> Upstream {
    Upstream {
        scheme: Scheme::HTTP,
        authority: Authority::from_static("invalid"),
        base_path: String::new(),
        host: HeaderValue::from_static("invalid"),
    }
}

fn build_capability(
    key: &str,
    cap: &CapabilityConfig,
    default_legacy: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Capability {
    let mut upstream = |field: &str, url: &str| {
        Upstream::parse(url).unwrap_or_else(|e| {
            problems.push(ConfigProblem::new(format!("{key}.{field}"), e));
            placeholder_upstream()
        })
    };
    let legacy = upstream("legacy", cap.legacy.as_deref().unwrap_or(default_legacy));
    let new = upstream("new", &cap.new);
    let sticky = match &cap.sticky {
        Some(s) => StickyKey::from_config(s).unwrap_or_else(|e| {
            problems.push(ConfigProblem::new(format!("{key}.sticky"), e));
            StickyKey::ClientAddress
        }),
        None => StickyKey::ClientAddress,
    };
    Capability {
        name: Arc::from(cap.name.as_str()),
        legacy,
        new,
        sticky,
        max_body_bytes: cap.max_body_bytes,
        protocol: cap.upstream_protocol,
        initial: cap.initial_state().unwrap_or(ToggleState::Legacy),
    }
}

fn build_route(
    capability: usize,
    key: &str,
    rc: &RouteConfig,
    problems: &mut Vec<ConfigProblem>,
) -> Option<Route> {
    let path = match (&rc.prefix, &rc.path) {
        (Some(p), None) => PathPattern::prefix(p).map_err(|e| (format!("{key}.prefix"), e)),
        (None, Some(p)) => PathPattern::template(p).map_err(|e| (format!("{key}.path"), e)),
        _ => Err((
            key.to_string(),
            "set exactly one of `prefix` and `path`".to_string(),
        )),
    };
    let path = path
        .map_err(|(k, e)| problems.push(ConfigProblem::new(k, e)))
        .ok()?;
    let mut methods = Vec::new();
    for (n, m) in rc.methods.iter().enumerate() {
        match Method::from_bytes(m.to_ascii_uppercase().as_bytes()) {
            Ok(m) => methods.push(m),
            Err(_) => problems.push(ConfigProblem::new(
                format!("{key}.methods[{n}]"),
                format!("`{m}` is not a method"),
            )),
        }
    }
    let mut headers = Vec::new();
    for (name, value) in &rc.headers {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(n), Ok(v)) => headers.push((n, v)),
            _ => problems.push(ConfigProblem::new(
                format!("{key}.headers.{name}"),
                "not a valid header name and value",
            )),
        }
    }
    let host = rc.host.as_ref().map(|h| h.to_ascii_lowercase());
    let specificity = Specificity {
        path: path.specificity(),
        host: host.is_some(),
        headers: headers.len(),
        methods: !methods.is_empty(),
    };
    Some(Route {
        capability,
        key: key.to_string(),
        path,
        methods,
        host,
        headers,
        specificity,
    })
}

/// Two routes of different capabilities that can match one request with equal specificity
/// would make the winner depend on configuration order: refuse them, naming both.
fn check_ambiguity(routes: &[Route], caps: &[Capability], problems: &mut Vec<ConfigProblem>) {
    for (i, a) in routes.iter().enumerate() {
        for b in &routes[i + 1..] {
            if a.capability != b.capability && a.specificity == b.specificity && a.overlaps(b) {
                problems.push(ConfigProblem::new(
                    b.key.clone(),
                    format!(
                        "ambiguous: `{}` ({}) and {} `{}` ({}) match the same requests equally specifically",
                        b.describe(),
                        caps[b.capability].name,
                        a.key,
                        a.describe(),
                        caps[a.capability].name,
                    ),
                ));
            }
        }
    }
}
