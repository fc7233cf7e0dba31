//! Who is asking, and what they may do: the `auth` section. Users prove
//! who they are with htpasswd (HTTP Basic; a configuration asking for
//! another scheme does not load); `auth.access` says what each may do to
//! which repository, and what callers without credentials may.

mod access;
mod htpasswd;

use std::net::SocketAddr;
use std::path::Path;

use axum::http::{header, HeaderMap};
use base64::Engine as _;

pub use access::{AccessConfig, Action};
use htpasswd::Htpasswd;

/// How requests prove who they are, and what they may do.
pub struct Auth {
    realm: String,
    users: Htpasswd,
    /// `None`: every user may do everything, anonymous callers nothing.
    access: Option<AccessConfig>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("realm", &self.realm)
            .finish_non_exhaustive()
    }
}

/// A request without valid credentials: answer 401 with this challenge.
#[derive(Debug)]
pub struct Challenge {
    /// The `WWW-Authenticate` value.
    pub www_authenticate: String,
    /// Why, for the client: never which of user or password was wrong.
    pub message: &'static str,
}

impl Auth {
    /// htpasswd auth with `realm` over the file at `path`; the error names
    /// the file, or the line of an entry that is not bcrypt.
    pub fn htpasswd(realm: &str, path: &Path, access: Option<AccessConfig>) -> Result<Auth, String> {
        Ok(Auth {
            realm: realm.to_string(),
            users: Htpasswd::open(path)?,
            access,
        })
    }

    /// The user `headers` prove to be (`None` without credentials), or the
    /// challenge to answer bad ones with. Failed logins are logged with the
    /// user name and `client`, never the password.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        client: Option<SocketAddr>,
    ) -> Result<Option<String>, Challenge> {
        let client = client.map_or_else(|| "unknown".to_string(), |addr| addr.to_string());
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Ok(None);
        };
        let Some((user, password)) = basic_credentials(value.as_bytes()) else {
            tracing::info!(%client, "refused a request whose Authorization header is not HTTP Basic credentials");
            return Err(self.challenge("the Authorization header is not valid Basic credentials"));
        };
        if self.users.verify(&user, &password).await {
            return Ok(Some(user));
        }
        tracing::warn!(user = %user, %client, "failed login: unknown user or wrong password");
        Err(self.challenge("unknown user or wrong password"))
    }

    /// Whether `user` (`None`: anonymous) may take `action` on
    /// `repository`.
    pub fn allows(&self, user: Option<&str>, repository: &str, action: Action) -> bool {
        match &self.access {
            None => user.is_some(),
            Some(access) => access.allowed(user, repository).contains(&action),
        }
    }

    /// Whether anonymous callers may do anything at all, so that `/v2/`
    /// and the catalog answer them.
    pub fn admits_anonymous(&self) -> bool {
        self.access.as_ref().is_some_and(AccessConfig::admits_anonymous)
    }

    /// Whether repositories' permissions differ, so that a blob mount must
    /// name a repository the caller may pull from.
    pub fn restricts_repositories(&self) -> bool {
        self.access.is_some()
    }

    /// The challenge to a request that needs credentials it did not send.
    pub fn challenge(&self, message: &'static str) -> Challenge {
        let realm = self.realm.replace(['\\', '"'], "");
        Challenge {
            www_authenticate: format!("Basic realm=\"{realm}\""),
            message,
        }
    }
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
