//! Who is asking, and what they may do: the `auth` section. Users prove
//! who they are with htpasswd (HTTP Basic), and `auth.access` says what
//! each may do to which repository and what callers without credentials
//! may; or they bring a bearer token from a token server (`auth.token`),
//! whose `access` claim says what it grants. A configuration asking for
//! another scheme does not load.

mod access;
mod htpasswd;
mod token;

use std::net::SocketAddr;
use std::path::Path;

use axum::http::{header, HeaderMap};
use base64::Engine as _;

use crate::config::AuthConfig;
pub use access::{AccessConfig, Action};
use htpasswd::Htpasswd;
use token::{Grant, Tokens};

/// How requests prove who they are, and what they may do.
pub struct Auth {
    scheme: Scheme,
}

enum Scheme {
    Basic {
        realm: String,
        users: Htpasswd,
        /// `None`: every user may do everything, anonymous callers nothing.
        access: Option<AccessConfig>,
    },
    Token {
        realm: Realm,
        service: String,
        tokens: Tokens,
    },
}

/// Where clients get tokens.
pub enum Realm {
    /// `auth.token.realm`.
    Fixed(String),
    /// `auth.token.autoredirect`: this path on the host the client asked
    /// (`https://<Host><path>`), for a token server behind the same name.
    SameHost(String),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = match self.scheme {
            Scheme::Basic { .. } => "htpasswd",
            Scheme::Token { .. } => "token",
        };
        f.debug_struct("Auth").field("scheme", &scheme).finish_non_exhaustive()
    }
}

/// What a request needs, for the check and for the challenge naming it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    /// `/v2/`: only to be someone the registry accepts.
    Login,
    /// `/v2/_catalog`.
    Catalog,
    /// An action on a repository.
    Repository(&'a str, Action),
}

/// Who is asking, once their credentials (if any) were checked.
#[derive(Debug, Default)]
pub struct Identity {
    /// The htpasswd user, or a token's subject; `None`: anonymous.
    user: Option<String>,
    /// A verified token's grants; `None`: no token.
    grants: Option<Vec<Grant>>,
}

/// Why a request is refused.
#[derive(Debug)]
pub enum Refusal {
    /// 401: no, bad or insufficient credentials; `www_authenticate` says
    /// how to get good ones.
    Unauthorized { www_authenticate: String, message: String },
    /// 403 `DENIED`: a known user who may not do this.
    Denied(String),
}

impl Auth {
    /// The `auth` section's scheme with its files read, `None` without
    /// one; the error is the field whose file is unusable, and why.
    pub fn from_config(config: &AuthConfig) -> Result<Option<Auth>, (&'static str, String)> {
        if let Some(htpasswd) = &config.htpasswd {
            let auth = Auth::htpasswd(&htpasswd.realm, &htpasswd.path, config.access.clone())
                .map_err(|why| ("auth.htpasswd.path", why))?;
            return Ok(Some(auth));
        }
        let Some(token) = &config.token else {
            return Ok(None);
        };
        let (roots, jwks) = (token.rootcertbundle.as_deref(), token.jwks.as_deref());
        let tokens = Tokens::open(&token.issuer, &token.service, roots, jwks).map_err(|why| ("auth.token", why))?;
        Ok(Some(Auth {
            scheme: Scheme::Token {
                realm: token.realm(),
                service: token.service.clone(),
                tokens,
            },
        }))
    }

    /// htpasswd auth with `realm` over the file at `path`; the error names
    /// the file, or the line of an entry that is not bcrypt.
    pub fn htpasswd(realm: &str, path: &Path, access: Option<AccessConfig>) -> Result<Auth, String> {
        let users = Htpasswd::open(path)?;
        Ok(Auth {
            scheme: Scheme::Basic {
                realm: realm.to_string(),
                users,
                access,
            },
        })
    }

    /// Who `headers` prove to be, once they may do what `scope` needs; or
    /// why not. Failed logins and bad tokens are logged with the user name
    /// (if any) and `client`, never the password or the token.
    pub async fn check(
        &self,
        headers: &HeaderMap,
        client: Option<SocketAddr>,
        scope: Scope<'_>,
    ) -> Result<Identity, Refusal> {
        let client = client.map_or_else(|| "unknown".to_string(), |addr| addr.to_string());
        let authorization = headers.get(header::AUTHORIZATION).map(|value| value.as_bytes());
        let identity = match &self.scheme {
            Scheme::Basic { users, .. } => {
                let Some(value) = authorization else {
                    return self.anonymous(headers, scope);
                };
                let Some((user, password)) = basic_credentials(value) else {
                    tracing::info!(%client, "refused a request whose Authorization header is not HTTP Basic credentials");
                    return Err(self.unauthorized(
                        headers,
                        scope,
                        None,
                        "the Authorization header is not valid Basic credentials",
                    ));
                };
                if !users.verify(&user, &password).await {
                    tracing::warn!(user = %user, %client, "failed login: unknown user or wrong password");
                    return Err(self.unauthorized(headers, scope, None, "unknown user or wrong password"));
                }
                Identity {
                    user: Some(user),
                    grants: None,
                }
            }
            Scheme::Token { tokens, .. } => {
                let Some(token) = authorization.and_then(bearer_token) else {
                    return self.anonymous(headers, scope);
                };
                let claims = tokens.verify(token).map_err(|why| {
                    tracing::warn!(%client, %why, "refused a bearer token");
                    self.unauthorized(headers, scope, Some("invalid_token"), "the bearer token is not valid")
                })?;
                let user = (!claims.sub.is_empty()).then_some(claims.sub);
                Identity {
                    user,
                    grants: Some(claims.access),
                }
            }
        };
        if self.may(&identity, scope) {
            return Ok(identity);
        }
        match (&self.scheme, &identity.user, scope) {
            (Scheme::Basic { .. }, Some(user), Scope::Repository(repository, action)) => Err(Refusal::Denied(format!(
                "{user} may not {} {repository}",
                action.verb()
            ))),
            // A token that lacks the scope: the client asks for a new one.
            _ => Err(self.unauthorized(
                headers,
                scope,
                Some("insufficient_scope"),
                "the token does not grant this",
            )),
        }
    }

    /// A caller without credentials: let in where anonymous callers may
    /// do what `scope` needs, otherwise asked to log in.
    fn anonymous(&self, headers: &HeaderMap, scope: Scope<'_>) -> Result<Identity, Refusal> {
        let identity = Identity::default();
        if self.may(&identity, scope) {
            return Ok(identity);
        }
        Err(self.unauthorized(headers, scope, None, "authentication required"))
    }

    /// Whether `identity` may do what `scope` needs.
    pub fn may(&self, identity: &Identity, scope: Scope<'_>) -> bool {
        let user = identity.user.as_deref();
        match &self.scheme {
            Scheme::Basic { access, .. } => match (scope, access) {
                (Scope::Login | Scope::Catalog, _) => {
                    user.is_some() || access.as_ref().is_some_and(AccessConfig::admits_anonymous)
                }
                (Scope::Repository(..), None) => user.is_some(),
                (Scope::Repository(repository, action), Some(access)) => {
                    access.allowed(user, repository).contains(&action)
                }
            },
            Scheme::Token { .. } => {
                let Some(grants) = &identity.grants else {
                    return false;
                };
                let granted =
                    |kind: &str, name: &str, action: &str| grants.iter().any(|g| g.grants(kind, name, action));
                match scope {
                    Scope::Login => true,
                    Scope::Catalog => granted("registry", "catalog", "*"),
                    // distribution's rule: a write needs pull and push.
                    Scope::Repository(name, Action::Push) => {
                        granted("repository", name, "pull") && granted("repository", name, "push")
                    }
                    Scope::Repository(name, action) => granted("repository", name, action.verb()),
                }
            }
        }
    }

    /// Whether the catalog shows `repository` to `identity`, who may read
    /// the catalog: with htpasswd, the repositories they may pull; a token
    /// granting the catalog shows all of them, as distribution does.
    pub fn lists(&self, identity: &Identity, repository: &str) -> bool {
        match self.scheme {
            Scheme::Basic { .. } => self.may(identity, Scope::Repository(repository, Action::Pull)),
            Scheme::Token { .. } => true,
        }
    }

    /// Whether repositories' permissions differ, so that a blob mount must
    /// name a repository the caller may pull from.
    pub fn restricts_repositories(&self) -> bool {
        match &self.scheme {
            Scheme::Basic { access, .. } => access.is_some(),
            Scheme::Token { .. } => true,
        }
    }

    /// The 401 for a request needing `scope`: a Basic challenge, or a
    /// Bearer one naming the realm, the service, the scope and, for a bad
    /// token, `error`.
    fn unauthorized(&self, headers: &HeaderMap, scope: Scope<'_>, error: Option<&str>, message: &str) -> Refusal {
        let quoted = |text: &str| text.replace(['\\', '"'], "");
        let www_authenticate = match &self.scheme {
            Scheme::Basic { realm, .. } => format!("Basic realm=\"{}\"", quoted(realm)),
            Scheme::Token { realm, service, .. } => {
                let realm = match realm {
                    Realm::Fixed(realm) => realm.clone(),
                    Realm::SameHost(path) => {
                        let host = headers
                            .get(header::HOST)
                            .and_then(|h| h.to_str().ok())
                            .unwrap_or("localhost");
                        format!("https://{host}{path}")
                    }
                };
                let mut challenge = format!("Bearer realm=\"{}\",service=\"{}\"", quoted(&realm), quoted(service));
                let scope = match scope {
                    Scope::Login => None,
                    Scope::Catalog => Some("registry:catalog:*".to_string()),
                    Scope::Repository(name, Action::Push) => Some(format!("repository:{name}:pull,push")),
                    Scope::Repository(name, action) => Some(format!("repository:{name}:{}", action.verb())),
                };
                if let Some(scope) = scope {
                    challenge.push_str(&format!(",scope=\"{scope}\""));
                }
                if let Some(error) = error {
                    challenge.push_str(&format!(",error=\"{error}\""));
                }
                challenge
            }
        };
        Refusal::Unauthorized {
            www_authenticate,
            message: message.to_string(),
        }
    }
}

/// The token of `Bearer <token>`.
fn bearer_token(value: &[u8]) -> Option<&str> {
    let (scheme, token) = std::str::from_utf8(value).ok()?.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The user and password of `Basic <base64 of user:password>`.
fn basic_credentials(value: &[u8]) -> Option<(String, String)> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    (!user.is_empty()).then(|| (user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::basic_credentials;

    #[test]
    fn basic_credentials_are_read_and_anything_else_is_not() {
        assert_eq!(
            basic_credentials(b"Basic YWxpY2U6b3BlbjpzZXNhbWU="),
            Some(("alice".into(), "open:sesame".into()))
        );
        assert_eq!(
            basic_credentials(b"basic YWxpY2U6"),
            Some(("alice".into(), String::new()))
        );
        for bad in [
            &b"Bearer YWxpY2U6b3Blbg=="[..],
            b"Basic",
            b"Basic !!!",
            b"Basic YWxpY2U=",     // no colon
            b"Basic OnNlY3JldA==", // no user
            b"Basic /w==",         // not UTF-8
            b"\xff",
        ] {
            assert_eq!(basic_credentials(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }
}
