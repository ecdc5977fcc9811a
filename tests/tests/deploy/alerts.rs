//! `deploy/k8s/alerts.yaml` against the metric list and runbooks of `deploy/OPERATIONS.md`, and
//! that list against the metric names in each crate's `observability.rs`.

use super::files::{read, repo_root, str_at, yaml};
use std::collections::BTreeSet;

/// Alerts use only the metrics OPERATIONS.md lists, and each alert has its section there.
#[test]
fn alerts_use_only_listed_metrics_and_each_has_a_runbook() {
    let guide = read("deploy/OPERATIONS.md");
    let listed: BTreeSet<String> = guide
        .lines()
        .filter_map(|l| l.strip_prefix("| `fig_"))
        .map(|row| {
            let metric = format!("fig_{}", row.split('`').next().unwrap_or_default());
            let exposed = in_observability_source(&metric);
            let status = row
                .trim_end()
                .trim_end_matches('|')
                .rsplit('|')
                .next()
                .unwrap_or_default();
            let expected = if exposed { "exposed" } else { "assumed" };
            assert_eq!(
                status.trim(),
                expected,
                "OPERATIONS.md marks {metric} wrongly"
            );
            metric
        })
        .collect();
    assert!(
        listed.len() >= 5,
        "OPERATIONS.md lists no metrics: {listed:?}"
    );
    let mut used = BTreeSet::new();
    let rules = yaml("deploy/k8s/alerts.yaml");
    for group in rules["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            let alert = str_at(rule, "/alert", "rule");
            let severity = str_at(rule, "/labels/severity", alert);
            assert!(
                ["warning", "critical"].contains(&severity),
                "{alert}: {severity}"
            );
            assert!(
                guide.contains(&format!("\n### {alert}\n")),
                "{alert}: no section"
            );
            let runbook = format!("deploy/OPERATIONS.md#{}", alert.to_lowercase());
            assert_eq!(str_at(rule, "/annotations/runbook", alert), runbook);
            str_at(rule, "/annotations/summary", alert);
            for token in str_at(rule, "/expr", alert)
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            {
                if !token.starts_with("fig_") {
                    continue;
                }
                let metric = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| token.strip_suffix(s))
                    .unwrap_or(token);
                assert!(
                    listed.contains(metric),
                    "{alert}: {metric} is not in OPERATIONS.md's list"
                );
                used.insert(metric.to_string());
            }
        }
    }
    let unused: Vec<_> = listed.difference(&used).collect();
    assert!(
        unused.is_empty(),
        "listed but no alert uses them: {unused:?}"
    );
}

/// Whether a metric name is a constant in its crate's `observability.rs` (a counter's constant
/// has no `_total`: the Prometheus encoder adds it).
fn in_observability_source(metric: &str) -> bool {
    let krate = if metric.starts_with("fig_gateway_") {
        "gateway"
    } else {
        "cdc-bridge"
    };
    let path = repo_root().join(krate).join("src/observability.rs");
    let source = std::fs::read_to_string(path).unwrap_or_default();
    let base = metric.strip_suffix("_total").unwrap_or(metric);
    source.contains(&format!("\"{metric}\"")) || source.contains(&format!("\"{base}\""))
}
