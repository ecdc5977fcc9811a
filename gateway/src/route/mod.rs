//! Capability routing, as a pure function: [`find`]`(&table, &request, &toggles) -> Decision`.
//!
//! No sockets, no runtime, no hyper types: only plain `http` values. The proxy, the admin API's
//! `explain` and the tests all call the same function.
//!
//! 1. Among the routes matching the request (path, methods, host, headers), the most specific
//!    wins ([`table::Specificity`]); ambiguous tables are refused when built, so there is never a
//!    tie. No match: the default route, legacy.
//! 2. A valid forced-side header or cookie (carrying the secret) decides the side.
//! 3. Otherwise the capability's toggle does: `legacy`, `new`, `percent` (sticky bucket below
//!    N*100 goes to new), or `shadow` (legacy answers; a sample is mirrored to new).

mod path;
mod sticky;
mod table;

#[cfg(test)]
mod tests;

pub use path::PathPattern;
pub use sticky::{ForcedSide, StickyKey, address_bucket, bucket, cookie, on_new, query_param};
pub use table::{Capability, Route, RouteTable, Specificity, Upstream};

use http::{HeaderMap, Method};
use serde::Serialize;
use std::net::IpAddr;

use crate::toggle::{ToggleState, Toggles};

/// The parts of a request that routing looks at.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    /// Request method.
    pub method: &'a Method,
    /// Path, without the query.
    pub path: &'a str,
    /// Raw query string, without `?`.
    pub query: Option<&'a str>,
    /// `Host` header or URI authority, possibly with a port.
    pub host: Option<&'a str>,
    /// All request headers.
    pub headers: &'a HeaderMap,
    /// The client's address.
    pub client_ip: Option<IpAddr>,
}

/// Which upstream answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The monolith.
    Legacy,
    /// The new service.
    New,
}

impl Side {
    /// `legacy` or `new`.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Legacy => "legacy",
            Side::New => "new",
        }
    }
}

/// Where a sticky bucket came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeySource {
    /// The configured header, cookie or query parameter.
    Configured,
    /// The client address (key not configured, or absent from the request).
    ClientAddress,
    /// Neither: no bucket, the request goes to legacy unless the percentage is 100.
    Missing,
}

/// Why a request goes where it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// No capability matched: the default route.
    NoCapability,
    /// The capability's toggle is `legacy` or `new`.
    Toggle {
        /// The state.
        state: &'static str,
    },
    /// `percent`: the sticky bucket decided.
    Percent {
        /// The share to new.
        percent: u8,
        /// The request's bucket (0..10,000), if it has a key.
        bucket: Option<u32>,
        /// Where the key came from.
        key: KeySource,
    },
    /// `shadow`: legacy answers; `mirrored` says whether this request is in the sample.
    Shadow {
        /// Sample percentage.
        percent: u8,
        /// Whether this request is also sent to new.
        mirrored: bool,
    },
    /// A tester forced the side.
    Forced {
        /// `header` or `cookie`.
        via: &'static str,
    },
}

/// The routing decision for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Index of the matched capability in the table, `None` for the default route.
    pub capability: Option<usize>,
    /// Index of the winning route in [`RouteTable::routes`].
    pub route: Option<usize>,
    /// The side that answers.
    pub side: Side,
    /// Whether the request is also mirrored to new (toggle `shadow`).
    pub shadow: bool,
    /// Why.
    pub reason: Reason,
}

/// Routes one request. Pure: same inputs, same decision.
pub fn find(table: &RouteTable, req: &RequestParts<'_>, toggles: &Toggles) -> Decision {
    let Some(route_index) = best_route(table, req) else {
        return Decision {
            capability: None,
            route: None,
            side: Side::Legacy,
            shadow: false,
            reason: Reason::NoCapability,
        };
    };
    let index = table.routes[route_index].capability;
    let decide = |side, shadow, reason| Decision {
        capability: Some(index),
        route: Some(route_index),
        side,
        shadow,
        reason,
    };
    if let Some((side, via)) = table.forced.as_ref().and_then(|f| f.side(req.headers)) {
        return decide(side, false, Reason::Forced { via });
    }
    let cap = &table.capabilities[index];
    match toggles.state(index) {
        ToggleState::Legacy => decide(Side::Legacy, false, Reason::Toggle { state: "legacy" }),
        ToggleState::New => decide(Side::New, false, Reason::Toggle { state: "new" }),
        ToggleState::Percent { percent } => {
            let (bucket, key) = sticky_bucket(cap, req);
            let new = bucket.map_or(percent >= 100, |b| on_new(b, percent));
            let side = if new { Side::New } else { Side::Legacy };
            decide(
                side,
                false,
                Reason::Percent {
                    percent,
                    bucket,
                    key,
                },
            )
        }
        ToggleState::Shadow { percent } => {
            let (bucket, _) = sticky_bucket(cap, req);
            let mirrored = bucket.map_or(percent >= 100, |b| on_new(b, percent));
            decide(Side::Legacy, mirrored, Reason::Shadow { percent, mirrored })
        }
    }
}

fn sticky_bucket(cap: &Capability, req: &RequestParts<'_>) -> (Option<u32>, KeySource) {
    if let Some(v) = cap.sticky.value(req) {
        return (Some(bucket(&cap.name, v)), KeySource::Configured);
    }
    match req.client_ip {
        Some(ip) => (
            Some(address_bucket(&cap.name, ip)),
            KeySource::ClientAddress,
        ),
        None => (None, KeySource::Missing),
    }
}

/// The most specific matching route.
fn best_route(table: &RouteTable, req: &RequestParts<'_>) -> Option<usize> {
    let host = req.host.map(strip_port);
    let mut best: Option<usize> = None;
    for (i, route) in table.routes.iter().enumerate() {
        if !route_matches(route, req, host) {
            continue;
        }
        if best.is_none_or(|b| route.specificity > table.routes[b].specificity) {
            best = Some(i);
        }
    }
    best
}

fn route_matches(route: &Route, req: &RequestParts<'_>, host: Option<&str>) -> bool {
    (route.methods.is_empty() || route.methods.contains(req.method))
        && route
            .host
            .as_deref()
            .is_none_or(|want| host.is_some_and(|h| h.eq_ignore_ascii_case(want)))
        && route
            .headers
            .iter()
            .all(|(k, v)| req.headers.get_all(k).iter().any(|got| got == v))
        && route.path.matches(req.path)
}

/// `shop.example:8080` → `shop.example`; `[::1]:80` → `[::1]`.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |i| &host[..=i]);
    }
    host.split_once(':').map_or(host, |(h, _)| h)
}
