//! Header rewriting at the edge: hop-by-hop removal, `X-Forwarded-*`, `X-Request-Id` and W3C
//! `traceparent`.

use http::header::{self, Entry, HeaderMap, HeaderName, HeaderValue};

/// Request id header, kept when the client sent a usable one, generated otherwise.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// W3C trace context header.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
/// Longest request id kept from a client.
const MAX_REQUEST_ID: usize = 128;

/// Removes hop-by-hop headers (RFC 9110 §7.6.1): the fixed list and whatever `Connection` names.
/// `TE: trailers` survives, as HTTP/2 upstreams (gRPC) need it.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none: one pass over the names beats a hash lookup per listed header.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
        headers.remove(header::CONNECTION);
    }
    let te_trailers = headers
        .get(header::TE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    for name in [
        KEEP_ALIVE,
        PROXY_CONNECTION,
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
    if !te_trailers {
        headers.remove(header::TE);
    }
}

/// Whether `name` is one of the headers [`remove_hop_by_hop`] may remove.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    *name == header::CONNECTION
        || *name == header::TE
        || *name == header::TRANSFER_ENCODING
        || *name == header::UPGRADE
        || *name == header::TRAILER
        || *name == header::PROXY_AUTHENTICATE
        || *name == header::PROXY_AUTHORIZATION
        || *name == KEEP_ALIVE
        || *name == PROXY_CONNECTION
}

/// Appends the client to `X-Forwarded-For`; sets `X-Forwarded-Proto` and `-Host` unless an outer
/// proxy already did.
pub fn set_forwarded(headers: &mut HeaderMap, client: &HeaderValue, host: Option<HeaderValue>) {
    // Entries: one hash per header whether it is there or not.
    match headers.entry(X_FORWARDED_FOR) {
        Entry::Occupied(mut e) => {
            let prev = e.get().to_str().unwrap_or_default();
            let joined = format!("{prev}, {}", client.to_str().unwrap_or("unknown"));
            if let Ok(v) = HeaderValue::try_from(joined) {
                e.insert(v);
            }
        }
        Entry::Vacant(e) => {
            e.insert(client.clone());
        }
    }
    headers
        .entry(X_FORWARDED_PROTO)
        .or_insert_with(|| HeaderValue::from_static("http"));
    if let Some(v) = host
        && let Entry::Vacant(e) = headers.entry(X_FORWARDED_HOST)
    {
        e.insert(v);
    }
}

/// The request id: the client's when it is short printable ASCII, else a new random one (set in
/// `headers` too).
pub fn ensure_request_id(headers: &mut HeaderMap) -> HeaderValue {
    let new_id = || {
        let mut buf = [0u8; 32];
        hex(rand::random::<u128>(), &mut buf);
        HeaderValue::from_bytes(&buf).unwrap_or(HeaderValue::from_static("unknown"))
    };
    match headers.entry(REQUEST_ID) {
        Entry::Occupied(e) if usable_request_id(e.get()) => e.get().clone(),
        Entry::Occupied(mut e) => {
            let id = new_id();
            e.insert(id.clone());
            id
        }
        Entry::Vacant(e) => e.insert(new_id()).clone(),
    }
}

fn usable_request_id(v: &HeaderValue) -> bool {
    !v.is_empty() && v.len() <= MAX_REQUEST_ID && v.as_bytes().iter().all(|b| b.is_ascii_graphic())
}

/// Writes the low `out.len() / 2` bytes of `n` as lowercase hex, most significant first (no
/// formatting machinery: this runs for most requests).
fn hex(mut n: u128, out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in out.iter_mut().rev() {
        *b = DIGITS[(n & 0xf) as usize];
        n >>= 4;
    }
}

/// Keeps a valid `traceparent` as it is (the gateway records no spans of its own to a tracer,
/// so the upstream's parent stays the caller's span); replaces a missing or malformed one with a
/// new trace so the services behind still correlate.
pub fn ensure_traceparent(headers: &mut HeaderMap) {
    // "00-" trace id (32 hex) "-" parent id (16 hex) "-01"; neither id may be all zeros.
    let new_parent = || {
        let mut buf = *b"00-00000000000000000000000000000000-0000000000000000-01";
        hex(rand::random::<u128>() | 1, &mut buf[3..35]);
        hex(u128::from(rand::random::<u64>() | 1), &mut buf[36..52]);
        HeaderValue::from_bytes(&buf).ok()
    };
    match headers.entry(TRACEPARENT) {
        Entry::Occupied(e) if valid_trace_id(e.get().as_bytes()).is_some() => return,
        Entry::Occupied(mut e) => match new_parent() {
            Some(v) => {
                e.insert(v);
            }
            None => {
                e.remove();
            }
        },
        Entry::Vacant(e) => {
            if let Some(v) = new_parent() {
                e.insert(v);
            }
        }
    }
    // The state belonged to the trace that was missing or malformed.
    headers.remove(TRACESTATE);
}

/// The trace id of a well-formed version-00 `traceparent`.
fn valid_trace_id(v: &[u8]) -> Option<&str> {
    let s = std::str::from_utf8(v).ok()?;
    let mut parts = s.split('-');
    let (ver, trace, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |p: &str, n: usize| {
        p.len() == n
            && p.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let ok = ver == "00"
        && parts.next().is_none()
        && hex(trace, 32)
        && hex(parent, 16)
        && hex(flags, 2)
        && trace.bytes().any(|b| b != b'0')
        && parent.bytes().any(|b| b != b'0');
    ok.then_some(trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    /// Hop-by-hop headers, including those named by `Connection`, never reach the other hop.
    #[test]
    fn removes_hop_by_hop_headers() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret-hop"),
            ("x-secret-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("upgrade", "h2c"),
            ("te", "gzip"),
            ("x-app", "kept"),
        ]);
        remove_hop_by_hop(&mut h);
        let names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, vec!["x-app"]);
        let mut h = map(&[("te", "trailers")]);
        remove_hop_by_hop(&mut h);
        assert!(h.contains_key("te"));
    }

    /// X-Forwarded-For grows by the client; proto and host are set once.
    #[test]
    fn sets_forwarded_headers() {
        let mut h = map(&[("x-forwarded-for", "203.0.113.9")]);
        set_forwarded(
            &mut h,
            &HeaderValue::from_static("10.0.0.2"),
            Some(HeaderValue::from_static("shop.example")),
        );
        assert_eq!(h["x-forwarded-for"], "203.0.113.9, 10.0.0.2");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "shop.example");
    }

    /// A valid traceparent passes unchanged; a bad one is replaced by a new, valid one.
    #[test]
    fn propagates_or_starts_traces() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut h = map(&[("traceparent", good)]);
        ensure_traceparent(&mut h);
        assert_eq!(h["traceparent"], good);
        let mut h = map(&[("traceparent", "00-zz-00f067aa0ba902b7-01")]);
        ensure_traceparent(&mut h);
        assert!(valid_trace_id(h["traceparent"].as_bytes()).is_some());
    }

    /// Generated ids are lowercase hex of the right length, and traceparents are valid.
    #[test]
    fn generated_ids_are_well_formed() {
        let mut buf = [0u8; 8];
        hex(0xdead_beef, &mut buf);
        assert_eq!(&buf, b"deadbeef");
        for _ in 0..100 {
            let mut h = HeaderMap::new();
            ensure_traceparent(&mut h);
            assert!(valid_trace_id(h["traceparent"].as_bytes()).is_some());
            let id = ensure_request_id(&mut h);
            assert!(id.as_bytes().iter().all(|b| b.is_ascii_hexdigit()));
        }
    }

    /// A client's request id is kept; a missing or unusable one is generated.
    #[test]
    fn keeps_or_generates_request_ids() {
        let mut h = map(&[("x-request-id", "abc-123")]);
        assert_eq!(ensure_request_id(&mut h), "abc-123");
        let mut h = map(&[("x-request-id", "has space")]);
        let id = ensure_request_id(&mut h);
        assert_eq!(id.len(), 32);
        assert_eq!(h["x-request-id"], id);
    }
}
