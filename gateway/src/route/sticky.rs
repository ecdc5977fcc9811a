//! Sticky keys, the bucket a key hashes into, and the forced side testers can ask for.
//!
//! A key is hashed with the capability's name into one of [`BUCKETS`] buckets; `percent` N sends
//! buckets `0 .. N*100` to new. The bucket does not depend on N, so raising the percentage only
//! adds users to new and lowering it only removes them (monotone, like Unleash's flexible rollout).

use http::{HeaderMap, HeaderName};
use std::net::IpAddr;
use subtle::ConstantTimeEq;

use super::{RequestParts, Side};
use crate::config::{ForcedSideConfig, StickyConfig};
use crate::toggle::BUCKETS;

/// What identifies a user for sticky percentages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StickyKey {
    /// A request header.
    Header(HeaderName),
    /// A cookie.
    Cookie(String),
    /// A query parameter (raw, not percent-decoded).
    Query(String),
    /// The client address (the last resort, and the fallback when the key is absent).
    ClientAddress,
}

impl StickyKey {
    /// From `sticky = { header = "x-user-id" }` and friends.
    pub fn from_config(c: &StickyConfig) -> Result<StickyKey, String> {
        match (&c.header, &c.cookie, &c.query) {
            (Some(h), None, None) => HeaderName::from_bytes(h.as_bytes())
                .map(StickyKey::Header)
                .map_err(|_| format!("`{h}` is not a header name")),
            (None, Some(c), None) => Ok(StickyKey::Cookie(c.clone())),
            (None, None, Some(q)) => Ok(StickyKey::Query(q.clone())),
            _ => Err("set exactly one of `header`, `cookie`, `query`".to_string()),
        }
    }

    /// The key's value in this request, if present and non-empty.
    pub fn value<'a>(&self, req: &RequestParts<'a>) -> Option<&'a [u8]> {
        let v = match self {
            StickyKey::Header(h) => req.headers.get(h).map(|v| v.as_bytes()),
            StickyKey::Cookie(name) => cookie(req.headers, name).map(str::as_bytes),
            StickyKey::Query(name) => req
                .query
                .and_then(|q| query_param(q, name))
                .map(str::as_bytes),
            StickyKey::ClientAddress => None,
        };
        v.filter(|v| !v.is_empty())
    }
}

/// The bucket (0..10,000) of `key` for capability `capability`.
pub fn bucket(capability: &str, key: &[u8]) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in capability.as_bytes().iter().chain(&[0xff]).chain(key) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // splitmix64 finaliser: FNV's low bits alone spread poorly over 10,000 buckets.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    (h % u64::from(BUCKETS)) as u32
}

/// The bucket of a client address.
pub fn address_bucket(capability: &str, ip: IpAddr) -> u32 {
    match ip {
        IpAddr::V4(v4) => bucket(capability, &v4.octets()),
        IpAddr::V6(v6) => bucket(capability, &v6.octets()),
    }
}

/// Whether `bucket` is on new at `percent`.
pub fn on_new(bucket: u32, percent: u8) -> bool {
    bucket < u32::from(percent) * (BUCKETS / 100)
}

/// Forced side: a header or cookie whose value is `legacy:SECRET` or `new:SECRET`.
#[derive(Clone)]
pub struct ForcedSide {
    header: Option<HeaderName>,
    cookie: Option<String>,
    secret: Vec<u8>,
}

impl std::fmt::Debug for ForcedSide {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForcedSide")
            .field("header", &self.header)
            .field("cookie", &self.cookie)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl ForcedSide {
    /// From `[forced_side]`.
    pub fn new(c: &ForcedSideConfig) -> Result<ForcedSide, String> {
        let header = match &c.header {
            Some(h) => Some(
                HeaderName::from_bytes(h.as_bytes())
                    .map_err(|_| format!("`{h}` is not a header name"))?,
            ),
            None => None,
        };
        let secret = c.resolve_secret().ok_or("no secret configured")?;
        Ok(ForcedSide {
            header,
            cookie: c.cookie.clone(),
            secret: secret.into_bytes(),
        })
    }

    /// The side this request forces, if it carries the secret.
    pub fn side(&self, headers: &HeaderMap) -> Option<(Side, &'static str)> {
        if let Some(h) = &self.header
            && let Some(side) = headers.get(h).and_then(|v| self.check(v.as_bytes()))
        {
            return Some((side, "header"));
        }
        if let Some(c) = &self.cookie
            && let Some(side) = cookie(headers, c).and_then(|v| self.check(v.as_bytes()))
        {
            return Some((side, "cookie"));
        }
        None
    }

    /// Removes the forced-side header and cookie (whatever their value) so the secret never
    /// reaches an upstream; other cookies are kept, and an emptied `Cookie` header is dropped.
    pub fn strip(&self, headers: &mut HeaderMap) {
        if let Some(h) = &self.header {
            headers.remove(h);
        }
        let Some(name) = &self.cookie else { return };
        if !headers.contains_key(http::header::COOKIE) {
            return;
        }
        let kept: Vec<String> = headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .map(str::trim)
            .filter(|pair| !pair.is_empty())
            .filter(|pair| pair.split_once('=').map_or(*pair, |(k, _)| k).trim() != name)
            .map(str::to_string)
            .collect();
        headers.remove(http::header::COOKIE);
        if !kept.is_empty()
            && let Ok(v) = http::HeaderValue::try_from(kept.join("; "))
        {
            headers.insert(http::header::COOKIE, v);
        }
    }

    fn check(&self, value: &[u8]) -> Option<Side> {
        let (side, secret) = match value.iter().position(|b| *b == b':') {
            Some(i) => (&value[..i], &value[i + 1..]),
            None => return None,
        };
        let side = match side {
            b"legacy" => Side::Legacy,
            b"new" => Side::New,
            _ => return None,
        };
        bool::from(secret.ct_eq(&self.secret)).then_some(side)
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

/// The raw value of query parameter `name`.
pub fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The forced-side header and cookie are removed before proxying; other cookies survive.
    #[test]
    fn strips_the_forced_side_secret() {
        let forced = ForcedSide::new(&ForcedSideConfig {
            header: Some("x-fig-force-side".into()),
            cookie: Some("fig_force".into()),
            secret: Some("s3cret".into()),
            secret_env: None,
        })
        .expect("forced side");
        let mut h = HeaderMap::new();
        h.insert("x-fig-force-side", "new:s3cret".parse().expect("value"));
        h.append(
            "cookie",
            "a=1; fig_force=new:s3cret".parse().expect("value"),
        );
        h.append("cookie", "fig_force=legacy:s3cret".parse().expect("value"));
        forced.strip(&mut h);
        assert!(!h.contains_key("x-fig-force-side"));
        let cookies: Vec<_> = h.get_all("cookie").iter().collect();
        assert_eq!(cookies, vec!["a=1"]);
    }

    /// Raising the percentage never moves a user from new to legacy, and lowering it never moves
    /// one from legacy to new.
    #[test]
    fn rollout_is_monotone() {
        for user in 0..2_000 {
            let b = bucket("orders", format!("user-{user}").as_bytes());
            let mut was_new = false;
            for percent in 0..=100 {
                let now_new = on_new(b, percent);
                assert!(!was_new || now_new, "user-{user} left new at {percent}%");
                was_new = now_new;
            }
        }
    }

    /// Buckets spread evenly: about N% of users land on new at N%.
    #[test]
    fn buckets_spread_evenly() {
        let n = 20_000;
        let on = (0..n)
            .filter(|u| on_new(bucket("orders", format!("u{u}").as_bytes()), 30))
            .count();
        let share = on as f64 / n as f64;
        assert!((0.28..0.32).contains(&share), "share at 30% was {share}");
    }

    /// Cookies and query parameters are found by exact name.
    #[test]
    fn finds_cookies_and_query_parameters() {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::COOKIE,
            "a=1; uid=42; uidx=9".parse().expect("valid"),
        );
        assert_eq!(cookie(&h, "uid"), Some("42"));
        assert_eq!(cookie(&h, "ui"), None);
        assert_eq!(query_param("x=1&user=bob&flag", "user"), Some("bob"));
        assert_eq!(query_param("x=1&flag", "flag"), Some(""));
        assert_eq!(query_param("x=1", "user"), None);
    }
}
