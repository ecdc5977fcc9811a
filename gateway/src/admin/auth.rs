//! Admin tokens and roles: `name:role:token` entries from a file and/or `FIG_GATEWAY_TOKENS`,
//! presented as `Authorization: Bearer <token>` and compared in constant time.

use subtle::ConstantTimeEq;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Read-only: list, history, explain.
    Viewer,
    /// Also change toggles and roll back.
    Operator,
}

impl Role {
    /// `viewer` or `operator`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
        }
    }
}

/// One configured token.
#[derive(Clone)]
struct Token {
    name: String,
    role: Role,
    secret: Vec<u8>,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Token name.
    pub name: String,
    /// Its role.
    pub role: Role,
}

/// Why a caller was not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No bearer token.
    Missing,
    /// A token that matches none configured.
    Invalid,
}

/// All configured tokens.
#[derive(Clone, Default)]
pub struct Tokens(Vec<Token>);

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|t| (&t.name, t.role)))
            .finish()
    }
}

impl Tokens {
    /// Parses `name:role:token` entries separated by newlines or commas; `#` starts a comment.
    /// `source` names where they came from in errors.
    pub fn parse(text: &str, source: &str) -> Result<Tokens, String> {
        let mut out = Vec::new();
        for (n, entry) in text.split(['\n', ',']).map(str::trim).enumerate() {
            if entry.is_empty() || entry.starts_with('#') {
                continue;
            }
            let mut parts = entry.splitn(3, ':');
            let (Some(name), Some(role), Some(secret)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(format!(
                    "{source}: entry {} is not `name:role:token`",
                    n + 1
                ));
            };
            let role = match role {
                "viewer" => Role::Viewer,
                "operator" => Role::Operator,
                other => {
                    return Err(format!(
                        "{source}: entry {} (`{name}`) has unknown role `{other}`; use viewer or operator",
                        n + 1
                    ));
                }
            };
            if secret.len() < 16 {
                return Err(format!(
                    "{source}: token `{name}` is shorter than 16 characters"
                ));
            }
            out.push(Token {
                name: name.to_string(),
                role,
                secret: secret.as_bytes().to_vec(),
            });
        }
        Ok(Tokens(out))
    }

    /// Adds another set.
    pub fn extend(&mut self, other: Tokens) {
        self.0.extend(other.0);
    }

    /// Whether no token is configured (then every API call is refused).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Checks an `Authorization` header value. Every configured token is compared, in constant
    /// time, whatever matches first.
    pub fn authenticate(&self, authorization: Option<&[u8]>) -> Result<Principal, AuthFailure> {
        let presented = authorization
            .and_then(|v| {
                v.strip_prefix(b"Bearer ")
                    .or_else(|| v.strip_prefix(b"bearer "))
            })
            .map(<[u8]>::trim_ascii)
            .filter(|t| !t.is_empty())
            .ok_or(AuthFailure::Missing)?;
        let mut found: Option<&Token> = None;
        for token in &self.0 {
            if bool::from(token.secret.as_slice().ct_eq(presented)) {
                found = found.or(Some(token));
            }
        }
        found
            .map(|t| Principal {
                name: t.name.clone(),
                role: t.role,
            })
            .ok_or(AuthFailure::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tokens parse from lines or commas, and only an exact token authenticates.
    #[test]
    fn authenticates_exact_tokens_only() {
        let t = Tokens::parse(
            "# ops\nalice:operator:aaaaaaaaaaaaaaaa1, bob:viewer:bbbbbbbbbbbbbbbb2",
            "test",
        )
        .expect("valid");
        let who = |h: &str| t.authenticate(Some(h.as_bytes()));
        assert_eq!(
            who("Bearer aaaaaaaaaaaaaaaa1").map(|p| p.role),
            Ok(Role::Operator)
        );
        assert_eq!(
            who("Bearer bbbbbbbbbbbbbbbb2").map(|p| p.name),
            Ok("bob".to_string())
        );
        assert_eq!(who("Bearer aaaaaaaaaaaaaaaa"), Err(AuthFailure::Invalid));
        assert_eq!(who("Basic aaaaaaaaaaaaaaaa1"), Err(AuthFailure::Missing));
        assert_eq!(t.authenticate(None), Err(AuthFailure::Missing));
    }

    /// Bad token entries are refused with where they are.
    #[test]
    fn rejects_bad_entries() {
        assert!(
            Tokens::parse("alice:root:aaaaaaaaaaaaaaaa", "f")
                .expect_err("role")
                .contains("unknown role `root`")
        );
        assert!(
            Tokens::parse("alice:viewer", "f")
                .expect_err("shape")
                .contains("entry 1")
        );
        assert!(
            Tokens::parse("alice:viewer:short", "f")
                .expect_err("short")
                .contains("shorter")
        );
    }
}
