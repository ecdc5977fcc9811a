//! Tests of response comparison, noise subtraction and redaction.

use super::*;

fn response(status: u16, content_type: &str, body: &str) -> ObservedResponse {
    let mut headers = HeaderMap::new();
    if !content_type.is_empty() {
        headers.insert(
            http::header::CONTENT_TYPE,
            content_type.parse().expect("valid header value"),
        );
    }
    ObservedResponse {
        status: StatusCode::from_u16(status).expect("valid status"),
        headers,
        body: Bytes::copy_from_slice(body.as_bytes()),
    }
}

fn json(body: &str) -> ObservedResponse {
    response(200, "application/json", body)
}

fn comparator() -> Comparator {
    let config = CompareConfig {
        ignore: vec!["/created_at".into(), "/items/*/id".into()],
        unordered_arrays: vec!["/tags".into()],
        redact: vec!["/**/password".into()],
        ..CompareConfig::default()
    };
    Comparator::new(&config, "compare").expect("valid settings")
}

fn locations(comparison: &Comparison) -> Vec<&str> {
    comparison
        .differences
        .iter()
        .map(|d| d.at.as_str())
        .collect()
}

/// Each kind of difference is found at its location, and what is configured away is not.
#[test]
fn differences_are_found_where_they_are() {
    let order =
        r#"{"total":10,"items":[{"id":"a","price":10}],"created_at":"t1","tags":["x","y"]}"#;
    let cases: Vec<(&str, ObservedResponse, ObservedResponse, Vec<&str>)> = vec![
        ("identical", json(order), json(order), vec![]),
        (
            "key order and 10 vs 10.0",
            json(r#"{"a":1,"b":10}"#),
            json(r#"{"b":10.0,"a":1}"#),
            vec![],
        ),
        (
            "status",
            json("{}"),
            response(500, "application/json", "{}"),
            vec!["status"],
        ),
        (
            "content type",
            json("{}"),
            response(200, "application/hal+json", "{}"),
            vec!["header content-type"],
        ),
        (
            "one field",
            json(order),
            json(&order.replace(r#""price":10"#, r#""price":12"#)),
            vec!["body /items/0/price"],
        ),
        (
            "ignored timestamp",
            json(order),
            json(&order.replace("t1", "t2")),
            vec![],
        ),
        (
            "ignored generated id",
            json(order),
            json(&order.replace(r#""id":"a""#, r#""id":"b""#)),
            vec![],
        ),
        (
            "unordered tags reordered",
            json(order),
            json(&order.replace(r#"["x","y"]"#, r#"["y","x"]"#)),
            vec![],
        ),
        (
            "unordered tags changed",
            json(order),
            json(&order.replace(r#"["x","y"]"#, r#"["x","z"]"#)),
            vec!["body /tags/*", "body /tags/*"],
        ),
        (
            "ordered array reordered",
            json(r#"{"l":[1,2]}"#),
            json(r#"{"l":[2,1]}"#),
            vec!["body /l/0", "body /l/1"],
        ),
        (
            "missing key",
            json(r#"{"a":1,"b":2}"#),
            json(r#"{"a":1}"#),
            vec!["body /b"],
        ),
        (
            "type change",
            json(r#"{"a":[1]}"#),
            json(r#"{"a":{"0":1}}"#),
            vec!["body /a"],
        ),
        (
            "text bodies",
            response(200, "text/plain", "hello"),
            response(200, "text/plain", "help!"),
            vec!["body"],
        ),
        (
            "JSON vs text",
            json("{}"),
            response(200, "application/json", "oops"),
            vec!["body"],
        ),
        (
            "empty bodies",
            response(204, "", ""),
            response(204, "", ""),
            vec![],
        ),
    ];
    let comparator = comparator();
    for (name, legacy, new, want) in cases {
        let comparison = comparator.compare(&legacy, &new);
        assert_eq!(locations(&comparison), want, "{name}: {comparison}");
        assert_eq!(comparison.is_match(), want.is_empty(), "{name}");
    }
}

/// Values in a diff are shown in full for ordinary fields and as <redacted> for secrets,
/// also when the secret sits inside a larger value that differs.
#[test]
fn diffs_show_values_and_redact_secrets() {
    let comparator = comparator();
    let cases = [
        (
            r#"{"price":10}"#,
            r#"{"price":12}"#,
            ("body /price", Some("10"), Some("12")),
        ),
        (
            r#"{"user":{"password":"hunter2"}}"#,
            r#"{"user":{"password":"swordfish"}}"#,
            (
                "body /user/password",
                Some("\"<redacted>\""),
                Some("\"<redacted>\""),
            ),
        ),
        (
            r#"{"user":{"name":"a","password":"hunter2"}}"#,
            r#"{}"#,
            (
                "body /user",
                Some(r#"{"name":"a","password":"<redacted>"}"#),
                None,
            ),
        ),
    ];
    for (legacy, new, (at, want_legacy, want_new)) in cases {
        let comparison = comparator.compare(&json(legacy), &json(new));
        let difference = &comparison.differences[0];
        assert_eq!(
            (
                difference.at.as_str(),
                difference.legacy.as_deref(),
                difference.new.as_deref()
            ),
            (at, want_legacy, want_new)
        );
        let text = comparison.to_string();
        assert!(
            !text.contains("hunter2") && !text.contains("swordfish"),
            "{text}"
        );
    }
}

/// Redacted headers never show their values, and text bodies never show their content.
#[test]
fn redacted_headers_and_text_bodies_hide_content() {
    let config = CompareConfig {
        headers: vec!["set-cookie".into()],
        ..CompareConfig::default()
    };
    let comparator = Comparator::new(&config, "compare").expect("valid");
    let mut legacy = response(200, "text/plain", "secret-a");
    let mut new = response(200, "text/plain", "secret-b");
    legacy
        .headers
        .insert("set-cookie", "sid=1".parse().expect("value"));
    new.headers
        .insert("set-cookie", "sid=2".parse().expect("value"));
    let text = comparator.compare(&legacy, &new).to_string();
    assert_eq!(
        text,
        "header set-cookie: legacy <redacted> | new <redacted>\n\
         body: legacy 8 bytes | new 8 bytes, differs from byte 7\n"
    );
}

/// What differs between two legacy answers is noise; what differs only in new is a mismatch.
#[test]
fn noise_subtraction_drops_what_legacy_changes_itself() {
    let comparator = comparator();
    let cases = [
        (
            "changing request id and clock",
            r#"{"request_id":"a1","now":1,"total":10}"#,
            r#"{"request_id":"b2","now":2,"total":10}"#,
            r#"{"request_id":"c3","now":3,"total":11}"#,
            (vec!["body /total"], 2),
        ),
        (
            "noisy parent covers its children",
            r#"{"debug":{"host":"l1"},"ok":true}"#,
            r#"{"debug":null,"ok":true}"#,
            r#"{"debug":{"host":"n1","extra":1},"ok":true}"#,
            (vec![], 2),
        ),
        (
            "stable legacy keeps every difference",
            r#"{"a":1,"b":1}"#,
            r#"{"a":1,"b":1}"#,
            r#"{"a":2,"b":2}"#,
            (vec!["body /a", "body /b"], 0),
        ),
    ];
    for (name, legacy, legacy_again, new, (want, subtracted)) in cases {
        let comparison =
            comparator.compare_without_noise(&json(legacy), &json(new), &json(legacy_again));
        assert_eq!(
            (locations(&comparison), comparison.noise_subtracted),
            (want, subtracted),
            "{name}: {comparison}"
        );
    }
}

/// Noise in one header does not hide a difference in the status.
#[test]
fn noise_is_per_location() {
    let comparator = comparator();
    let legacy = response(200, "application/json", "{}");
    let legacy_again = response(200, "application/json; charset=utf-8", "{}");
    let new = response(201, "text/json", "{}");
    let comparison = comparator.compare_without_noise(&legacy, &new, &legacy_again);
    assert_eq!(locations(&comparison), vec!["status"]);
    assert_eq!(comparison.noise_subtracted, 1);
}

/// With all arrays unordered, nested arrays are compared as multisets too.
#[test]
fn all_arrays_unordered_applies_at_every_depth() {
    let config = CompareConfig {
        all_arrays_unordered: true,
        ..CompareConfig::default()
    };
    let comparator = Comparator::new(&config, "compare").expect("valid");
    let legacy = json(r#"[{"k":[1,2]},{"k":[3]}]"#);
    let same = json(r#"[{"k":[3]},{"k":[2,1]}]"#);
    let different = json(r#"[{"k":[3]},{"k":[2,2]}]"#);
    assert!(comparator.compare(&legacy, &same).is_match());
    assert_eq!(
        locations(&comparator.compare(&legacy, &different)),
        vec!["body /*", "body /*"]
    );
}

/// Long values are cut so one diff cannot flood the admin page.
#[test]
fn long_values_are_shortened() {
    let long = "x".repeat(1_000);
    let comparison = comparator().compare(
        &json(&format!(r#"{{"a":"{long}"}}"#)),
        &json(r#"{"a":"y"}"#),
    );
    let shown = comparison.differences[0]
        .legacy
        .clone()
        .expect("legacy value");
    assert_eq!(shown.chars().count(), MAX_RENDERED_VALUE + 1);
    assert!(shown.ends_with('…'));
}

proptest::proptest! {
    /// A JSON document always matches itself re-serialised with its object keys in another
    /// order, and never matches after one leaf value is changed.
    #[test]
    fn key_order_never_matters_but_values_do(
        entries in proptest::collection::btree_map("[a-z]{1,6}", 0i64..1_000, 1..12),
        changed in 0usize..12,
    ) {
        let forward: Vec<String> = entries.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        let backward: Vec<String> = forward.iter().rev().cloned().collect();
        let legacy = json(&format!("{{{}}}", forward.join(",")));
        let reordered = json(&format!("{{{}}}", backward.join(",")));
        let comparator = Comparator::new(&CompareConfig::default(), "compare").expect("valid");
        proptest::prop_assert!(comparator.compare(&legacy, &reordered).is_match());
        let (key, value) = entries.iter().nth(changed % entries.len()).expect("non-empty");
        let mut altered = entries.clone();
        altered.insert(key.clone(), value + 1);
        let body: Vec<String> = altered.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        let new = json(&format!("{{{}}}", body.join(",")));
        let comparison = comparator.compare(&legacy, &new);
        let want = format!("body /{key}");
        proptest::prop_assert_eq!(locations(&comparison), vec![want.as_str()]);
    }
}
