//! JSON pointer patterns for the comparison settings (`ignore`, `unordered_arrays`, `redact`).
//!
//! A pattern is an RFC 6901 JSON pointer (`/order/items/0/id`, with `~1` for `/` and `~0` for
//! `~`) in which a segment may also be `*` (any one key or index) or `**` (any number of
//! segments, including none): `/items/*/id` ignores every item's id, `/**/password` redacts a
//! `password` key at any depth. The empty pattern `""` is the whole document.

use super::super::resilience::InvalidSetting;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Exact(String),
    AnyOne,
    AnyMany,
}

/// A compiled pointer pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointerPattern {
    segments: Vec<Segment>,
}

impl PointerPattern {
    /// Parses `text`; `key` names the setting for the error.
    pub fn parse(text: &str, key: &str) -> Result<Self, InvalidSetting> {
        if text.is_empty() {
            return Ok(Self {
                segments: Vec::new(),
            });
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err(InvalidSetting {
                key: key.to_owned(),
                reason: format!(
                    "{text:?} is not a JSON pointer: it must be empty or start with '/'"
                ),
            });
        };
        let segments = rest
            .split('/')
            .map(|raw| match raw {
                "*" => Segment::AnyOne,
                "**" => Segment::AnyMany,
                other => Segment::Exact(other.replace("~1", "/").replace("~0", "~")),
            })
            .collect();
        Ok(Self { segments })
    }

    /// True when the pattern matches the location `path` exactly.
    pub fn matches(&self, path: &[String]) -> bool {
        matches_from(&self.segments, path)
    }
}

fn matches_from(pattern: &[Segment], path: &[String]) -> bool {
    match (pattern.first(), path.first()) {
        (None, None) => true,
        (Some(Segment::AnyMany), _) => {
            matches_from(&pattern[1..], path)
                || (!path.is_empty() && matches_from(pattern, &path[1..]))
        }
        (Some(Segment::AnyOne), Some(_)) => matches_from(&pattern[1..], &path[1..]),
        (Some(Segment::Exact(want)), Some(got)) if want == got => {
            matches_from(&pattern[1..], &path[1..])
        }
        _ => false,
    }
}

/// Compiles every pattern of a setting, naming `key[i]` on error.
pub fn compile_all(texts: &[String], key: &str) -> Result<Vec<PointerPattern>, InvalidSetting> {
    texts
        .iter()
        .enumerate()
        .map(|(i, text)| PointerPattern::parse(text, &format!("{key}[{i}]")))
        .collect()
}

/// True when any pattern matches `path`.
pub fn any_matches(patterns: &[PointerPattern], path: &[String]) -> bool {
    patterns.iter().any(|p| p.matches(path))
}

/// Renders a location as a JSON pointer (`""` for the whole document).
pub fn render(path: &[String]) -> String {
    path.iter()
        .map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(text: &str) -> Vec<String> {
        text.split('/').skip(1).map(str::to_owned).collect()
    }

    /// Exact segments, `*` and `**` match the locations documented above and no others.
    #[test]
    fn patterns_match_as_documented() {
        let cases = [
            ("/a/b", "/a/b", true),
            ("/a/b", "/a/c", false),
            ("/a/b", "/a/b/c", false),
            ("/items/*/id", "/items/3/id", true),
            ("/items/*/id", "/items/id", false),
            ("/**/password", "/password", true),
            ("/**/password", "/user/auth/password", true),
            ("/**/password", "/user/password/x", false),
            ("/a/**", "/a", true),
            ("/a/**", "/a/b/c", true),
            ("/x~1y/z~0", "/x~1y/z~0", true),
            ("", "", true),
        ];
        for (pattern, location, want) in cases {
            let compiled = PointerPattern::parse(pattern, "k").expect("valid pattern");
            let location = path(location)
                .into_iter()
                .map(|s| s.replace("~1", "/").replace("~0", "~"))
                .collect::<Vec<_>>();
            assert_eq!(
                compiled.matches(&location),
                want,
                "{pattern} vs {location:?}"
            );
        }
    }

    /// A pattern that is not a pointer is refused with the key and index named.
    #[test]
    fn non_pointer_is_refused_with_its_key() {
        let err = compile_all(&["/ok".to_owned(), "id".to_owned()], "compare.ignore")
            .expect_err("second is not a pointer");
        assert_eq!(err.key, "compare.ignore[1]");
    }

    /// Rendering escapes '/' and '~' so the pointer can be pasted back into the config.
    #[test]
    fn render_escapes_special_characters() {
        let location = vec!["a/b".to_owned(), "c~d".to_owned(), "0".to_owned()];
        assert_eq!(render(&location), "/a~1b/c~0d/0");
        assert_eq!(render(&[]), "");
    }
}
