//! Path patterns: segment-boundary prefixes and `{param}` templates, how specific each is, and
//! whether two patterns can match the same path.

use std::fmt;

/// One template segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Must equal this text.
    Literal(String),
    /// Any non-empty segment.
    Param,
}

/// A path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathPattern {
    /// Matches the prefix's segments and anything below them.
    Prefix(Vec<String>),
    /// Matches exactly as many segments, literals equal, `{param}` anything non-empty.
    Template(Vec<Segment>),
}

/// How specific a path pattern is. Templates beat prefixes; among templates matching the same
/// path (same length) the one with a literal earlier wins; among prefixes the longer wins.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum PathSpecificity {
    /// A prefix of this many segments.
    Prefix(usize),
    /// A template; `true` for each literal segment.
    Template(Vec<bool>),
}

impl PathPattern {
    /// Parses `prefix = "/orders"`.
    pub fn prefix(text: &str) -> Result<PathPattern, String> {
        if !text.starts_with('/') {
            return Err(format!("`{text}` must start with `/`"));
        }
        let segs = segments(text).map(str::to_string).collect::<Vec<_>>();
        if segs.iter().any(|s| s.contains(['{', '}'])) {
            return Err(format!(
                "`{text}`: a prefix takes no `{{param}}`; use `path`"
            ));
        }
        Ok(PathPattern::Prefix(segs))
    }

    /// Parses `path = "/orders/{id}/payment"`.
    pub fn template(text: &str) -> Result<PathPattern, String> {
        if !text.starts_with('/') {
            return Err(format!("`{text}` must start with `/`"));
        }
        let mut out = Vec::new();
        for seg in segments(text) {
            if seg.starts_with('{') && seg.ends_with('}') && seg.len() > 2 {
                let name = &seg[1..seg.len() - 1];
                if name.contains(['{', '}', '*']) {
                    return Err(format!("`{text}`: bad parameter `{seg}`"));
                }
                out.push(Segment::Param);
            } else if seg.contains(['{', '}']) {
                return Err(format!(
                    "`{text}`: a parameter must be a whole segment, not `{seg}`"
                ));
            } else {
                out.push(Segment::Literal(seg.to_string()));
            }
        }
        Ok(PathPattern::Template(out))
    }

    /// Whether `path` (without query) matches.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathPattern::Prefix(prefix) => {
                let mut got = segments(path);
                prefix.iter().all(|want| got.next() == Some(want.as_str()))
            }
            PathPattern::Template(template) => {
                let mut got = segments(path);
                for want in template {
                    match (want, got.next()) {
                        (_, None) => return false,
                        (Segment::Param, Some(_)) => {}
                        (Segment::Literal(l), Some(s)) if l == s => {}
                        _ => return false,
                    }
                }
                got.next().is_none()
            }
        }
    }

    /// How specific the pattern is.
    pub fn specificity(&self) -> PathSpecificity {
        match self {
            PathPattern::Prefix(p) => PathSpecificity::Prefix(p.len()),
            PathPattern::Template(t) => PathSpecificity::Template(
                t.iter().map(|s| matches!(s, Segment::Literal(_))).collect(),
            ),
        }
    }

    /// Whether some path matches both patterns.
    pub fn overlaps(&self, other: &PathPattern) -> bool {
        use PathPattern::{Prefix, Template};
        let seg_ok = |a: &Segment, b: &Segment| match (a, b) {
            (Segment::Literal(x), Segment::Literal(y)) => x == y,
            _ => true,
        };
        let lit_ok = |p: &String, s: &Segment| match s {
            Segment::Literal(l) => l == p,
            Segment::Param => true,
        };
        match (self, other) {
            (Prefix(a), Prefix(b)) => a.iter().zip(b).all(|(x, y)| x == y),
            (Template(a), Template(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| seg_ok(x, y))
            }
            (Prefix(p), Template(t)) | (Template(t), Prefix(p)) => {
                t.len() >= p.len() && p.iter().zip(t).all(|(x, y)| lit_ok(x, y))
            }
        }
    }
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (segs, suffix): (Vec<&str>, &str) = match self {
            PathPattern::Prefix(p) => (p.iter().map(String::as_str).collect(), "/**"),
            PathPattern::Template(t) => (
                t.iter()
                    .map(|s| match s {
                        Segment::Literal(l) => l.as_str(),
                        Segment::Param => "{}",
                    })
                    .collect(),
                "",
            ),
        };
        write!(f, "/{}{suffix}", segs.join("/"))
    }
}

/// Non-empty `/`-separated segments of a path (`//` and a trailing `/` add none).
fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Prefixes match on segment boundaries and templates match whole paths.
    #[test]
    fn matches_table() {
        let cases: &[(&str, bool, &str, bool)] = &[
            // (pattern, is_template, path, matches)
            ("/orders", false, "/orders", true),
            ("/orders", false, "/orders/7", true),
            ("/orders", false, "/ordersx", false),
            ("/orders", false, "/", false),
            ("/", false, "/anything/at/all", true),
            ("/orders/{id}", true, "/orders/7", true),
            ("/orders/{id}", true, "/orders/7/", true),
            ("/orders/{id}", true, "/orders", false),
            ("/orders/{id}", true, "/orders/7/payment", false),
            ("/orders/{id}/payment", true, "/orders/7/payment", true),
            ("/orders/{id}/payment", true, "/orders/7/refund", false),
        ];
        for (pat, tpl, path, want) in cases {
            let p = if *tpl {
                PathPattern::template(pat)
            } else {
                PathPattern::prefix(pat)
            };
            assert_eq!(p.expect("valid").matches(path), *want, "{pat} vs {path}");
        }
    }

    /// Overlap is exact: two patterns overlap only if some path matches both.
    #[test]
    fn overlap_table() {
        let t = |s| PathPattern::template(s).expect("valid");
        let p = |s| PathPattern::prefix(s).expect("valid");
        assert!(t("/orders/{id}").overlaps(&t("/{kind}/7")));
        assert!(!t("/orders/{id}").overlaps(&t("/orders/{id}/x")));
        assert!(!t("/orders/{id}").overlaps(&t("/users/{id}")));
        assert!(p("/orders").overlaps(&p("/orders/archive")));
        assert!(!p("/orders").overlaps(&p("/users")));
        assert!(p("/orders").overlaps(&t("/{x}/7")));
        assert!(!p("/orders/a/b").overlaps(&t("/orders/{x}")));
    }

    /// Bad patterns are refused with the reason.
    #[test]
    fn rejects_bad_patterns() {
        assert!(PathPattern::template("orders").is_err());
        assert!(PathPattern::template("/orders/x{id}").is_err());
        assert!(PathPattern::prefix("/orders/{id}").is_err());
    }
}
