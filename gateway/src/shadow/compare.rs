//! Comparison of a shadow (new) response with the legacy one that the client received.
//!
//! - **Status** and the **chosen headers** (case-insensitive; several values joined by `, `).
//! - **Body**: when both bodies are JSON they are compared structurally: object key order never
//!   matters, numbers compare by value (`1` = `1.0`), locations matching an `ignore` pattern are
//!   skipped, and arrays matching `unordered_arrays` (or all, with `all_arrays_unordered`) are
//!   compared as multisets. Other bodies are compared byte for byte, and a diff shows only
//!   their sizes and the first differing offset, never their content.
//! - **Noise subtraction** (as Diffy does it): given a second legacy answer to the same request,
//!   whatever differs between the two legacy answers is noise; a difference between legacy and
//!   new at a noisy location, or inside one, is not a mismatch.
//! - **Diffs are readable and redacted**: each difference names its location (`status`,
//!   `header content-type`, `body /items/2/price`) and both values, with values at `redact`
//!   patterns and `redact_headers` shown as `<redacted>`, and long values cut short.
//!
//! Pure: no I/O, no hyper types; the caller buffers both bodies (bounded) first.

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, StatusCode};
use serde::Serialize;
use serde_json::Value;

use super::config::CompareConfig;
use super::pointer::{PointerPattern, any_matches, compile_all, render};
use crate::resilience::InvalidSetting;

/// Longest value shown in a diff, in characters.
pub const MAX_RENDERED_VALUE: usize = 200;
const REDACTED: &str = "<redacted>";

/// A response as the shadow path saw it, body fully buffered.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedResponse {
    /// Status code.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// Response body.
    pub body: Bytes,
}

/// One difference between legacy and new, ready to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// Where: `status`, `header <name>`, `body` or `body <json pointer>`.
    pub at: String,
    /// Legacy's value (redacted, shortened), `None` when absent.
    pub legacy: Option<String>,
    /// New's value (redacted, shortened), `None` when absent.
    pub new: Option<String>,
}

/// The outcome of one comparison.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Comparison {
    /// Differences that count as a mismatch.
    pub differences: Vec<Difference>,
    /// Differences dropped because legacy itself differed there.
    pub noise_subtracted: usize,
}

impl Comparison {
    /// True when new answered like legacy.
    pub fn is_match(&self) -> bool {
        self.differences.is_empty()
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_match() {
            return write!(f, "no differences");
        }
        for difference in &self.differences {
            let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(absent)".to_owned());
            writeln!(
                f,
                "{}: legacy {} | new {}",
                difference.at,
                show(&difference.legacy),
                show(&difference.new)
            )?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Location {
    Status,
    Header(String),
    Body,
    Json(Vec<String>),
}

impl Location {
    /// True when a difference here lies at or inside the noisy location `noise`.
    fn within(&self, noise: &Location) -> bool {
        match (self, noise) {
            (Location::Body | Location::Json(_), Location::Body) => true,
            (Location::Json(path), Location::Json(noisy)) => path.starts_with(noisy),
            _ => self == noise,
        }
    }

    fn describe(&self) -> String {
        match self {
            Location::Status => "status".to_owned(),
            Location::Header(name) => format!("header {name}"),
            Location::Body => "body".to_owned(),
            Location::Json(path) if path.is_empty() => "body".to_owned(),
            Location::Json(path) => format!("body {}", render(path)),
        }
    }
}

#[derive(Debug)]
struct RawDifference {
    at: Location,
    legacy: Option<String>,
    new: Option<String>,
}

/// Compiled comparison settings.
#[derive(Debug, Clone)]
pub struct Comparator {
    headers: Vec<HeaderName>,
    redact_headers: Vec<HeaderName>,
    ignore: Vec<PointerPattern>,
    unordered: Vec<PointerPattern>,
    all_unordered: bool,
    redact: Vec<PointerPattern>,
}

fn header_names(names: &[String], key: &str) -> Result<Vec<HeaderName>, InvalidSetting> {
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            HeaderName::from_bytes(name.as_bytes()).map_err(|_| InvalidSetting {
                key: format!("{key}[{i}]"),
                reason: format!("{name:?} is not a valid header name"),
            })
        })
        .collect()
}

impl Comparator {
    /// Compiles `config`; `at` is its key path, for errors.
    pub fn new(config: &CompareConfig, at: &str) -> Result<Self, InvalidSetting> {
        Ok(Self {
            headers: header_names(&config.headers, &format!("{at}.headers"))?,
            redact_headers: header_names(&config.redact_headers, &format!("{at}.redact_headers"))?,
            ignore: compile_all(&config.ignore, &format!("{at}.ignore"))?,
            unordered: compile_all(&config.unordered_arrays, &format!("{at}.unordered_arrays"))?,
            all_unordered: config.all_arrays_unordered,
            redact: compile_all(&config.redact, &format!("{at}.redact"))?,
        })
    }

    /// Compares new with legacy.
    pub fn compare(&self, legacy: &ObservedResponse, new: &ObservedResponse) -> Comparison {
        let differences = self.differences(legacy, new);
        Comparison {
            differences: differences.into_iter().map(|d| self.finish(d)).collect(),
            noise_subtracted: 0,
        }
    }

    /// Compares new with legacy, dropping differences where `legacy_again` (a second legacy
    /// answer to the same request) differs from `legacy` too.
    pub fn compare_without_noise(
        &self,
        legacy: &ObservedResponse,
        new: &ObservedResponse,
        legacy_again: &ObservedResponse,
    ) -> Comparison {
        let noise: Vec<Location> = self
            .differences(legacy, legacy_again)
            .into_iter()
            .map(|d| d.at)
            .collect();
        let (kept, dropped): (Vec<_>, Vec<_>) = self
            .differences(legacy, new)
            .into_iter()
            .partition(|d| !noise.iter().any(|n| d.at.within(n)));
        Comparison {
            differences: kept.into_iter().map(|d| self.finish(d)).collect(),
            noise_subtracted: dropped.len(),
        }
    }

    fn finish(&self, raw: RawDifference) -> Difference {
        Difference {
            at: raw.at.describe(),
            legacy: raw.legacy,
            new: raw.new,
        }
    }

    fn differences(&self, legacy: &ObservedResponse, new: &ObservedResponse) -> Vec<RawDifference> {
        let mut out = Vec::new();
        if legacy.status != new.status {
            out.push(RawDifference {
                at: Location::Status,
                legacy: Some(legacy.status.as_u16().to_string()),
                new: Some(new.status.as_u16().to_string()),
            });
        }
        for name in &self.headers {
            let (l, n) = (joined(&legacy.headers, name), joined(&new.headers, name));
            if l != n {
                let redacted = self.redact_headers.contains(name);
                let show = |v: Option<String>| {
                    v.map(|v| {
                        if redacted {
                            REDACTED.to_owned()
                        } else {
                            shorten(format!("{v:?}"))
                        }
                    })
                };
                out.push(RawDifference {
                    at: Location::Header(name.as_str().to_owned()),
                    legacy: show(l),
                    new: show(n),
                });
            }
        }
        self.body_differences(&legacy.body, &new.body, &mut out);
        out
    }

    fn body_differences(&self, legacy: &[u8], new: &[u8], out: &mut Vec<RawDifference>) {
        if legacy == new {
            return;
        }
        let parsed = (
            serde_json::from_slice::<Value>(legacy),
            serde_json::from_slice::<Value>(new),
        );
        match parsed {
            (Ok(l), Ok(n)) => self.json_differences(&mut Vec::new(), Some(&l), Some(&n), out),
            (Err(_), Err(_)) => {
                let first = legacy.iter().zip(new).position(|(a, b)| a != b);
                let offset = first.unwrap_or(legacy.len().min(new.len()));
                out.push(RawDifference {
                    at: Location::Body,
                    legacy: Some(format!("{} bytes", legacy.len())),
                    new: Some(format!("{} bytes, differs from byte {offset}", new.len())),
                });
            }
            (l, n) => {
                let kind = |json: bool, len: usize| {
                    format!("{} ({len} bytes)", if json { "JSON" } else { "not JSON" })
                };
                out.push(RawDifference {
                    at: Location::Body,
                    legacy: Some(kind(l.is_ok(), legacy.len())),
                    new: Some(kind(n.is_ok(), new.len())),
                });
            }
        }
    }

    fn unordered(&self, path: &[String]) -> bool {
        self.all_unordered || any_matches(&self.unordered, path)
    }

    fn json_differences(
        &self,
        path: &mut Vec<String>,
        legacy: Option<&Value>,
        new: Option<&Value>,
        out: &mut Vec<RawDifference>,
    ) {
        if any_matches(&self.ignore, path) {
            return;
        }
        match (legacy, new) {
            (Some(Value::Object(l)), Some(Value::Object(n))) => {
                let keys: std::collections::BTreeSet<&String> = l.keys().chain(n.keys()).collect();
                for key in keys {
                    path.push(key.clone());
                    self.json_differences(path, l.get(key), n.get(key), out);
                    path.pop();
                }
            }
            (Some(Value::Array(l)), Some(Value::Array(n))) if self.unordered(path) => {
                self.multiset_differences(path, l, n, out);
            }
            (Some(Value::Array(l)), Some(Value::Array(n))) => {
                for i in 0..l.len().max(n.len()) {
                    path.push(i.to_string());
                    self.json_differences(path, l.get(i), n.get(i), out);
                    path.pop();
                }
            }
            (Some(l), Some(n)) if same_value(l, n) => {}
            (None, None) => {}
            (l, n) => out.push(RawDifference {
                at: Location::Json(path.clone()),
                legacy: l.map(|v| self.render_value(path, v)),
                new: n.map(|v| self.render_value(path, v)),
            }),
        }
    }

    fn multiset_differences(
        &self,
        path: &mut Vec<String>,
        legacy: &[Value],
        new: &[Value],
        out: &mut Vec<RawDifference>,
    ) {
        // canonical form → (legacy occurrences, new occurrences)
        let mut counts: BTreeMap<String, (Vec<usize>, Vec<usize>)> = BTreeMap::new();
        for (side, values) in [(0, legacy), (1, new)] {
            for (i, value) in values.iter().enumerate() {
                path.push(i.to_string());
                let canonical = self.normalize(path, value).to_string();
                path.pop();
                let entry = counts.entry(canonical).or_default();
                if side == 0 {
                    &mut entry.0
                } else {
                    &mut entry.1
                }
                .push(i);
            }
        }
        for (in_legacy, in_new) in counts.values() {
            // Equal elements pair off; only the surplus on either side is a difference.
            let (from_legacy, surplus) = if in_legacy.len() > in_new.len() {
                (true, &in_legacy[in_new.len()..])
            } else {
                (false, &in_new[in_legacy.len()..])
            };
            for &i in surplus {
                path.push(i.to_string());
                let shown = if from_legacy { &legacy[i] } else { &new[i] };
                let rendered = Some(self.render_value(path, shown));
                path.pop();
                let mut at = path.clone();
                at.push("*".to_owned());
                out.push(RawDifference {
                    at: Location::Json(at),
                    legacy: if from_legacy { rendered.clone() } else { None },
                    new: if from_legacy { None } else { rendered },
                });
            }
        }
    }

    /// `value` without ignored locations and with unordered arrays sorted, for multiset keys.
    fn normalize(&self, path: &mut Vec<String>, value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut kept = serde_json::Map::new();
                for (key, child) in map {
                    path.push(key.clone());
                    if !any_matches(&self.ignore, path) {
                        kept.insert(key.clone(), self.normalize(path, child));
                    }
                    path.pop();
                }
                Value::Object(kept)
            }
            Value::Array(items) => {
                let mut normalized: Vec<Value> = items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, child)| {
                        path.push(i.to_string());
                        let kept =
                            (!any_matches(&self.ignore, path)).then(|| self.normalize(path, child));
                        path.pop();
                        kept
                    })
                    .collect();
                if self.unordered(path) {
                    normalized.sort_by_cached_key(Value::to_string);
                }
                Value::Array(normalized)
            }
            Value::Number(n) => n
                .as_f64()
                .and_then(serde_json::Number::from_f64)
                .map_or_else(|| value.clone(), Value::Number),
            other => other.clone(),
        }
    }

    fn render_value(&self, path: &mut Vec<String>, value: &Value) -> String {
        shorten(self.redacted(path, value).to_string())
    }

    fn redacted(&self, path: &mut Vec<String>, value: &Value) -> Value {
        if any_matches(&self.redact, path) {
            return Value::String(REDACTED.to_owned());
        }
        match value {
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(key, child)| {
                        path.push(key.clone());
                        let child = self.redacted(path, child);
                        path.pop();
                        (key.clone(), child)
                    })
                    .collect(),
            ),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, child)| {
                        path.push(i.to_string());
                        let child = self.redacted(path, child);
                        path.pop();
                        child
                    })
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

fn same_value(legacy: &Value, new: &Value) -> bool {
    match (legacy, new) {
        (Value::Number(l), Value::Number(n)) => {
            l == n || (l.as_f64().is_some() && l.as_f64() == n.as_f64())
        }
        _ => legacy == new,
    }
}

fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let values: Vec<String> = headers
        .get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

fn shorten(mut text: String) -> String {
    if let Some((cut, _)) = text.char_indices().nth(MAX_RENDERED_VALUE) {
        text.truncate(cut);
        text.push('…');
    }
    text
}

#[cfg(test)]
#[path = "compare_tests.rs"]
mod tests;
