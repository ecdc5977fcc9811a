//! Table-driven tests of [`find`](super::find) and of the table's ambiguity check.

use super::*;
use crate::config::Config;
use crate::toggle::{Toggle, ToggleState, Toggles};
use http::HeaderValue;

const CONFIG: &str = r#"
legacy = "http://legacy.internal:8000"
[forced_side]
header = "x-fig-force-side"
cookie = "fig_force"
secret = "s3cret"

[[capability]]
name = "orders"
new = "http://orders.internal:8001"
sticky = { header = "x-user-id" }
routes = [{ prefix = "/orders" }]

[[capability]]
name = "payments"
new = "http://payments.internal:8002"
routes = [{ path = "/orders/{id}/payment", methods = ["POST", "put"] }]

[[capability]]
name = "order-read"
new = "http://reads.internal:8003"
routes = [{ path = "/orders/{id}", methods = ["GET"] }]

[[capability]]
name = "tenant-orders"
new = "http://tenant.internal:8004"
routes = [{ prefix = "/orders", headers = { "x-tenant" = "acme" } }]

[[capability]]
name = "eu-shop"
new = "http://eu.internal:8005"
routes = [{ prefix = "/", host = "EU.shop.example" }]
"#;

fn table() -> RouteTable {
    let config = Config::parse(CONFIG).expect("parses");
    RouteTable::build(&config).expect("valid table")
}

fn toggles(table: &RouteTable, state: ToggleState) -> Toggles {
    Toggles(
        table
            .capabilities
            .iter()
            .map(|_| Toggle::initial(state))
            .collect(),
    )
}

fn decide(
    table: &RouteTable,
    toggles: &Toggles,
    method: &str,
    path: &str,
    host: Option<&str>,
    headers: &[(&str, &str)],
) -> Decision {
    let method = Method::from_bytes(method.as_bytes()).expect("method");
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.append(
            http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
            HeaderValue::from_str(v).expect("value"),
        );
    }
    let (path, query) = path
        .split_once('?')
        .map_or((path, None), |(p, q)| (p, Some(q)));
    let req = RequestParts {
        method: &method,
        path,
        query,
        host,
        headers: &map,
        client_ip: Some([10, 0, 0, 1].into()),
    };
    find(table, &req, toggles)
}

/// The most specific matching route wins, whatever the configuration order; unmatched requests
/// take the default route to legacy.
#[test]
fn most_specific_route_wins() {
    let t = table();
    let all_new = toggles(&t, ToggleState::New);
    type Case<'a> = (
        &'a str,
        &'a str,
        Option<&'a str>,
        &'a [(&'a str, &'a str)],
        Option<&'a str>,
    );
    let cases: &[Case] = &[
        ("GET", "/orders", None, &[], Some("orders")),
        ("GET", "/orders/7", None, &[], Some("order-read")),
        ("DELETE", "/orders/7", None, &[], Some("orders")),
        ("POST", "/orders/7/payment", None, &[], Some("payments")),
        ("PUT", "/orders/7/payment", None, &[], Some("payments")),
        ("GET", "/orders/7/payment", None, &[], Some("orders")),
        (
            "GET",
            "/orders/list/all",
            None,
            &[("x-tenant", "acme")],
            Some("tenant-orders"),
        ),
        (
            "GET",
            "/orders/list/all",
            None,
            &[("x-tenant", "other")],
            Some("orders"),
        ),
        (
            "GET",
            "/orders/7",
            None,
            &[("x-tenant", "acme")],
            Some("order-read"),
        ),
        (
            "GET",
            "/catalog",
            Some("eu.shop.example:443"),
            &[],
            Some("eu-shop"),
        ),
        ("GET", "/catalog", Some("us.shop.example"), &[], None),
        ("GET", "/ordersx", None, &[], None),
        ("GET", "/", None, &[], None),
    ];
    for (method, path, host, headers, want) in cases {
        let d = decide(&t, &all_new, method, path, *host, headers);
        let got = d.capability.map(|i| &*t.capabilities[i].name);
        assert_eq!(
            got, *want,
            "{method} {path} host={host:?} headers={headers:?}"
        );
        let side = if want.is_some() {
            Side::New
        } else {
            Side::Legacy
        };
        assert_eq!(d.side, side, "{method} {path}");
    }
}

/// Each toggle state sends the request where it says.
#[test]
fn toggle_state_decides_the_side() {
    let t = table();
    let cases = [
        (ToggleState::Legacy, Side::Legacy, false),
        (ToggleState::New, Side::New, false),
        (ToggleState::Percent { percent: 0 }, Side::Legacy, false),
        (ToggleState::Percent { percent: 100 }, Side::New, false),
        (ToggleState::Shadow { percent: 100 }, Side::Legacy, true),
        (ToggleState::Shadow { percent: 0 }, Side::Legacy, false),
    ];
    for (state, side, shadow) in cases {
        let d = decide(
            &t,
            &toggles(&t, state),
            "GET",
            "/orders",
            None,
            &[("x-user-id", "u1")],
        );
        assert_eq!((d.side, d.shadow), (side, shadow), "{state}");
    }
}

/// A sticky key keeps its side; the bucket comes from the configured key, or the client address
/// when the key is absent.
#[test]
fn percent_uses_the_sticky_key() {
    let t = table();
    let half = toggles(&t, ToggleState::Percent { percent: 50 });
    let d = decide(&t, &half, "GET", "/orders", None, &[("x-user-id", "alice")]);
    let want = if on_new(bucket("orders", b"alice"), 50) {
        Side::New
    } else {
        Side::Legacy
    };
    assert_eq!(d.side, want);
    assert!(matches!(
        d.reason,
        Reason::Percent {
            key: KeySource::Configured,
            ..
        }
    ));
    let d = decide(&t, &half, "GET", "/orders", None, &[]);
    assert!(matches!(
        d.reason,
        Reason::Percent {
            key: KeySource::ClientAddress,
            ..
        }
    ));
    for _ in 0..100 {
        assert_eq!(
            decide(&t, &half, "GET", "/orders", None, &[("x-user-id", "alice")]).side,
            want
        );
    }
}

/// A forced side is honoured only with the right secret, by header or cookie, and never for
/// requests outside every capability.
#[test]
fn forced_side_needs_the_secret() {
    let t = table();
    let legacy = toggles(&t, ToggleState::Legacy);
    let cases: &[(&[(&str, &str)], Side)] = &[
        (&[("x-fig-force-side", "new:s3cret")], Side::New),
        (&[("x-fig-force-side", "new:wrong")], Side::Legacy),
        (&[("x-fig-force-side", "new")], Side::Legacy),
        (&[("x-fig-force-side", "new:s3cret0")], Side::Legacy),
        (&[("cookie", "a=b; fig_force=new:s3cret")], Side::New),
        (&[("cookie", "fig_force=new:nope")], Side::Legacy),
    ];
    for (headers, want) in cases {
        assert_eq!(
            decide(&t, &legacy, "GET", "/orders/1/x", None, headers).side,
            *want,
            "{headers:?}"
        );
    }
    let all_new = toggles(&t, ToggleState::New);
    let d = decide(
        &t,
        &all_new,
        "GET",
        "/orders",
        None,
        &[("x-fig-force-side", "legacy:s3cret")],
    );
    assert_eq!(
        (d.side, d.reason),
        (Side::Legacy, Reason::Forced { via: "header" })
    );
    let d = decide(
        &t,
        &all_new,
        "GET",
        "/nothing",
        None,
        &[("x-fig-force-side", "new:s3cret")],
    );
    assert_eq!(d.side, Side::Legacy);
}

/// Routes of different capabilities that match the same requests equally specifically are
/// refused at load, naming both routes; different specificity or disjoint matchers are fine.
#[test]
fn ambiguous_routes_are_rejected() {
    let cases: &[(&str, &str, Option<&str>)] = &[
        (
            r#"{ prefix = "/a" }"#,
            r#"{ prefix = "/a" }"#,
            Some("capability[0].routes[0]"),
        ),
        (
            r#"{ path = "/a/{x}" }"#,
            r#"{ path = "/a/{id}" }"#,
            Some("capability[0].routes[0]"),
        ),
        (
            r#"{ path = "/a/{x}", methods = ["GET"] }"#,
            r#"{ path = "/a/{x}", methods = ["GET", "POST"] }"#,
            Some("ambiguous"),
        ),
        (
            r#"{ path = "/a/{x}", methods = ["GET"] }"#,
            r#"{ path = "/a/{x}", methods = ["POST"] }"#,
            None,
        ),
        (r#"{ prefix = "/a" }"#, r#"{ prefix = "/a/b" }"#, None),
        (r#"{ path = "/a/{x}" }"#, r#"{ path = "/{y}/b" }"#, None),
        (
            r#"{ prefix = "/a", host = "x" }"#,
            r#"{ prefix = "/a", host = "y" }"#,
            None,
        ),
        (
            r#"{ prefix = "/a", headers = { h = "1" } }"#,
            r#"{ prefix = "/a", headers = { h = "2" } }"#,
            None,
        ),
        (
            r#"{ prefix = "/a", headers = { h = "1" } }"#,
            r#"{ prefix = "/a", headers = { g = "2" } }"#,
            Some("ambiguous"),
        ),
    ];
    for (a, b, want) in cases {
        let text = format!(
            "legacy = \"http://l:1\"\n[[capability]]\nname = \"one\"\nnew = \"http://n:1\"\nroutes = [{a}]\n\
             [[capability]]\nname = \"two\"\nnew = \"http://n:2\"\nroutes = [{b}]\n"
        );
        let config = Config::parse(&text).expect("parses");
        let problems = config.validate();
        match want {
            None => assert!(problems.is_empty(), "{a} / {b}: {problems:?}"),
            Some(w) => {
                assert_eq!(problems.len(), 1, "{a} / {b}: {problems:?}");
                assert_eq!(problems[0].key, "capability[1].routes[0]");
                assert!(
                    problems[0].message.contains(w),
                    "{a} / {b}: {}",
                    problems[0].message
                );
            }
        }
    }
}

/// Every problem in a bad config is reported with its key path.
#[test]
fn problems_name_their_keys() {
    let text = r#"
legacy = "ftp://x"
[admin]
listen = "0.0.0.0:8080"
[[capability]]
name = "bad name"
new = "not a url"
state = "percent"
routes = [{ prefix = "orders" }, { path = "/a/{b", methods = ["G ET"] }, {}]
"#;
    let config = Config::parse(text).expect("parses");
    let keys: Vec<String> = config.validate().into_iter().map(|p| p.key).collect();
    for want in [
        "admin.listen",
        "legacy",
        "capability[0].name",
        "capability[0].new",
        "capability[0].state",
        "capability[0].routes[0].prefix",
        "capability[0].routes[1].path",
        "capability[0].routes[2]",
    ] {
        assert!(keys.iter().any(|k| k == want), "missing {want} in {keys:?}");
    }
    let unknown =
        Config::parse("legacy = \"http://l:1\"\nlisten_addr = \"x\"\n").expect_err("unknown key");
    assert!(unknown[0].message.contains("listen_addr"), "{unknown:?}");
}

/// The shipped example configuration is valid.
#[test]
fn example_config_is_valid() {
    let text = include_str!("../../examples/gateway.toml").replace(
        "secret_env = \"FIG_GATEWAY_FORCE_SECRET\"",
        "secret = \"example\"",
    );
    let config = Config::parse(&text).expect("parses");
    assert_eq!(config.validate(), vec![]);
}
