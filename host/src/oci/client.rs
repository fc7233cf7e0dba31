//! A small client of the OCI distribution API: what pushing and pulling one
//! artifact needs, with docker's credentials, Basic and Bearer challenges,
//! bounded bodies and deadlines.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{header, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;

/// Where Docker Hub's API is, whatever name a reference gives it.
pub(super) const DOCKER_HUB: &str = "registry-1.docker.io";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest one request may take, its body included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
/// Redirects followed on a GET (a blob served from object storage).
const MAX_REDIRECTS: usize = 5;
/// The largest body read where none matters (an error, a token, what a
/// registry says beside a 201 or 202).
pub(super) const SMALL_REPLY: usize = 1 << 20;

/// A username and password for a registry.
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({})", self.username)
    }
}

impl Credentials {
    /// The entry for `registry` in a docker or podman auth file: `file` if
    /// given, else `$DOCKER_CONFIG/config.json`, `~/.docker/config.json`,
    /// `$XDG_RUNTIME_DIR/containers/auth.json` (podman's), the first that
    /// exists. (Podman's `REGISTRY_AUTH_FILE` is not read: `REGISTRY_*`
    /// variables set the registry's configuration.)
    pub fn from_auth_file(registry: &str, file: Option<&Path>) -> Result<Option<Credentials>, String> {
        let candidates: Vec<PathBuf> = match file {
            Some(file) => vec![file.to_path_buf()],
            None => [
                std::env::var_os("DOCKER_CONFIG").map(|dir| PathBuf::from(dir).join("config.json")),
                std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker/config.json")),
                std::env::var_os("XDG_RUNTIME_DIR").map(|dir| PathBuf::from(dir).join("containers/auth.json")),
            ]
            .into_iter()
            .flatten()
            .collect(),
        };
        for path in candidates.iter().filter(|p| file.is_some() || p.is_file()) {
            if let Some(found) = Self::from_one_file(registry, path)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// The entry for `registry` in the auth file at `path`, if it has one.
    fn from_one_file(registry: &str, path: &Path) -> Result<Option<Credentials>, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|err| format!("cannot read the auth file {}: {err}", path.display()))?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|err| format!("the auth file {} is not JSON: {err}", path.display()))?;
        let auths = json.get("auths").and_then(|a| a.as_object());
        let entry = auths.and_then(|auths| {
            auths.iter().find_map(|(key, entry)| {
                let host = key.trim_start_matches("https://").trim_start_matches("http://");
                let host = host.split('/').next().unwrap_or_default();
                let hub = registry == DOCKER_HUB && matches!(host, "index.docker.io" | "docker.io");
                (host == registry || hub).then_some(entry)
            })
        });
        let Some(entry) = entry else {
            if json.get("credsStore").is_some() || json.get("credHelpers").is_some() {
                tracing::warn!(
                    "{} names a credential helper; Berth reads only the `auths` entries written inline \
                     (`docker login` with no helper, `podman login`)",
                    path.display()
                );
            }
            return Ok(None);
        };
        let field = |name: &str| entry.get(name).and_then(|v| v.as_str()).filter(|v| !v.is_empty());
        if let (Some(username), Some(password)) = (field("username"), field("password")) {
            return Ok(Some(Credentials {
                username: username.into(),
                password: password.into(),
            }));
        }
        let Some(auth) = field("auth") else {
            return Ok(None);
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| format!("the auth for {registry} in {} is not base64 text", path.display()))?;
        let (username, password) = decoded
            .split_once(':')
            .ok_or_else(|| format!("the auth for {registry} in {} is not user:password", path.display()))?;
        Ok(Some(Credentials {
            username: username.into(),
            password: password.into(),
        }))
    }

    fn basic(&self) -> String {
        let pair = format!("{}:{}", self.username, self.password);
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
    }
}

/// A response whose body has been read, up to the limit the caller set.
pub struct Reply {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The registry's error, for a message: its status and its first words.
    pub fn error(&self, what: &str) -> String {
        let text = String::from_utf8_lossy(&self.body[..self.body.len().min(500)])
            .trim()
            .to_string();
        format!(
            "{what}: HTTP {}{}{text}",
            self.status,
            if text.is_empty() { "" } else { ": " }
        )
    }
}

/// A client of one registry.
pub struct Client {
    http: HyperClient<HttpsConnector<HttpConnector>, Full<Bytes>>,
    base: String,
    credentials: Option<Credentials>,
    /// The `Authorization` the last challenge asked for.
    authorization: Mutex<Option<String>>,
}

impl Client {
    pub fn new(registry: &str, plain_http: bool, credentials: Option<Credentials>) -> Result<Client, String> {
        let tls = crate::plugin::tls_config(false, None)?;
        let mut connector = HttpConnector::new();
        connector.enforce_http(false);
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let scheme = if plain_http { "http" } else { "https" };
        Ok(Client {
            http: HyperClient::builder(TokioExecutor::new()).build(https),
            base: format!("{scheme}://{registry}"),
            credentials,
            authorization: Mutex::new(None),
        })
    }

    /// Sends a request to `path` (below the registry's origin, or an
    /// absolute URL), answering a challenge once and following a GET's
    /// redirects; reads at most `limit` bytes of the body.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(header::HeaderName, &str)],
        body: Bytes,
        limit: usize,
    ) -> Result<Reply, String> {
        let url = resolve(&self.base, path)?;
        // The registry's credentials go to the registry only, never to
        // another host an upload location or a redirect names.
        let ours = url == self.base || url.starts_with(&format!("{}/", self.base));
        let mut reply = self
            .send_once(&method, &url, headers, body.clone(), limit, ours)
            .await?;
        if reply.status == StatusCode::UNAUTHORIZED && ours {
            let challenge = reply.header(header::WWW_AUTHENTICATE).unwrap_or_default().to_string();
            let authorization = self.answer(&challenge).await?;
            *self.authorization.lock().unwrap_or_else(|e| e.into_inner()) = Some(authorization);
            reply = self.send_once(&method, &url, headers, body, limit, true).await?;
            if reply.status == StatusCode::UNAUTHORIZED {
                let who = self
                    .credentials
                    .as_ref()
                    .map_or("no one".into(), |c| c.username.clone());
                return Err(format!(
                    "{} refused the credentials of {who}: check the password",
                    self.base
                ));
            }
        }
        let mut url = url;
        for _ in 0..MAX_REDIRECTS {
            if method != Method::GET || !reply.status.is_redirection() {
                break;
            }
            let Some(location) = reply.header(header::LOCATION) else {
                break;
            };
            url = resolve(&url, location)?;
            // Elsewhere (object storage) the registry's credentials are not sent.
            reply = self
                .send_once(&method, &url, headers, Bytes::new(), limit, false)
                .await?;
        }
        Ok(reply)
    }

    async fn send_once(
        &self,
        method: &Method,
        url: &str,
        headers: &[(header::HeaderName, &str)],
        body: Bytes,
        limit: usize,
        authorize: bool,
    ) -> Result<Reply, String> {
        let uri: Uri = url.parse().map_err(|err| format!("`{url}` is not a URL: {err}"))?;
        let mut request = Request::builder().method(method.clone()).uri(uri);
        for (name, value) in headers {
            request = request.header(name, *value);
        }
        let authorization = self.authorization.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(authorization) = authorization.filter(|_| authorize) {
            request = request.header(header::AUTHORIZATION, authorization);
        }
        let request = request
            .header(header::CONTENT_LENGTH, body.len())
            .body(Full::new(body))
            .map_err(|err| format!("{method} {url}: {err}"))?;
        let exchange = async {
            let response = self.http.request(request).await.map_err(|err| {
                let cause = std::error::Error::source(&err)
                    .map(|s| format!(": {s}"))
                    .unwrap_or_default();
                format!("{method} {url}: {err}{cause}")
            })?;
            let (parts, body) = response.into_parts();
            let limit = if parts.status.is_success() { limit } else { SMALL_REPLY };
            let body = Limited::new(body, limit)
                .collect()
                .await
                .map_err(|err| format!("{method} {url}: reading the answer: {err} (at most {limit} bytes are read)"))?
                .to_bytes();
            Ok(Reply {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| format!("{method} {url}: did not finish within {} s", REQUEST_TIMEOUT.as_secs()))?
    }

    /// The `Authorization` that answers `challenge` (a `WWW-Authenticate`).
    async fn answer(&self, challenge: &str) -> Result<String, String> {
        let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
        let login = || {
            format!(
                "{} asks for credentials: log in with `podman login` or `docker login` \
                 (without a credential helper), or pass --username and --password-stdin",
                self.base
            )
        };
        if scheme.eq_ignore_ascii_case("basic") {
            return Ok(self.credentials.as_ref().ok_or_else(login)?.basic());
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(format!(
                "{} asks for `{scheme}` authentication, which Berth does not speak",
                self.base
            ));
        }
        let params = challenge_params(params);
        let get = |key: &str| params.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        let realm = get("realm").ok_or_else(|| format!("{}: a Bearer challenge without a realm", self.base))?;
        if realm.starts_with("http://") && self.base.starts_with("https://") && self.credentials.is_some() {
            return Err(format!(
                "{} sends its clients for tokens to {realm}, over plain HTTP: the password is not sent there",
                self.base
            ));
        }
        let mut url = realm.to_string();
        for key in ["service", "scope"] {
            if let Some(value) = get(key) {
                url.push(if url.contains('?') { '&' } else { '?' });
                url.push_str(&format!("{key}={}", query_escape(value)));
            }
        }
        let uri: Uri = url
            .parse()
            .map_err(|err| format!("the token realm `{url}` is not a URL: {err}"))?;
        let mut request = Request::builder().uri(uri);
        if let Some(credentials) = &self.credentials {
            request = request.header(header::AUTHORIZATION, credentials.basic());
        }
        let request = request.body(Full::new(Bytes::new())).map_err(|err| err.to_string())?;
        let fetch = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|err| format!("GET {url}: {err}"))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), SMALL_REPLY)
                .collect()
                .await
                .map_err(|err| format!("GET {url}: {err}"))?
                .to_bytes();
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                return Err(login());
            }
            if !status.is_success() {
                return Err(format!("the token service {url} answered HTTP {status}"));
            }
            let json: serde_json::Value =
                serde_json::from_slice(&body).map_err(|err| format!("the token service {url}: {err}"))?;
            let token = json
                .get("token")
                .or_else(|| json.get("access_token"))
                .and_then(|t| t.as_str())
                .ok_or_else(|| format!("the token service {url} answered no token"))?;
            Ok(format!("Bearer {token}"))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, fetch)
            .await
            .map_err(|_| format!("the token service {url} did not answer in time"))?
    }
}

/// `key="value", key2="value2"` of a challenge.
fn challenge_params(text: &str) -> Vec<(String, String)> {
    let mut params = Vec::new();
    let mut rest = text.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let (value, after) = match after.strip_prefix('"') {
            Some(quoted) => quoted.split_once('"').unwrap_or((quoted, "")),
            None => after.split_once(',').unwrap_or((after, "")),
        };
        params.push((key, value.to_string()));
        rest = after.trim_start_matches([',', ' ']);
    }
    params
}

fn query_escape(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `location` (absolute, or absolute-path) against `base`.
pub fn resolve(base: &str, location: &str) -> Result<String, String> {
    if location.starts_with("http://") || location.starts_with("https://") {
        return Ok(location.to_string());
    }
    let uri: Uri = base.parse().map_err(|err| format!("`{base}`: {err}"))?;
    let (scheme, authority) = (
        uri.scheme_str().unwrap_or("https"),
        uri.authority().map_or("", |a| a.as_str()),
    );
    if !location.starts_with('/') {
        return Err(format!(
            "the registry sent the location `{location}`, which is not a path"
        ));
    }
    Ok(format!("{scheme}://{authority}{location}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_and_locations_read_as_registries_send_them() {
        let params =
            challenge_params(r#"realm="https://auth.io/token",service="registry.io",scope="repository:a/b:pull,push""#);
        assert_eq!(
            params,
            [
                ("realm".into(), "https://auth.io/token".into()),
                ("service".into(), "registry.io".into()),
                ("scope".into(), "repository:a/b:pull,push".into()),
            ]
        );
        assert_eq!(query_escape("repository:a/b:pull"), "repository%3Aa%2Fb%3Apull");
        assert_eq!(
            resolve(
                "http://127.0.0.1:5000/v2/x/blobs/uploads/",
                "/v2/x/blobs/uploads/u?state=1"
            )
            .unwrap(),
            "http://127.0.0.1:5000/v2/x/blobs/uploads/u?state=1"
        );
        assert_eq!(resolve("http://a/b", "https://s3/x").unwrap(), "https://s3/x");
    }

    #[test]
    fn auth_files_give_the_registrys_entry() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.json");
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        std::fs::write(
            &file,
            format!(r#"{{"auths": {{"https://reg.io": {{"auth": "{auth}"}}, "other.io": {{"username": "bob", "password": "pw"}}}}}}"#),
        )
        .unwrap();
        let found = Credentials::from_auth_file("reg.io", Some(&file)).unwrap().unwrap();
        assert_eq!((found.username.as_str(), found.password.as_str()), ("alice", "s3cret"));
        let found = Credentials::from_auth_file("other.io", Some(&file)).unwrap().unwrap();
        assert_eq!(found.username, "bob");
        assert!(Credentials::from_auth_file("none.io", Some(&file)).unwrap().is_none());
        let missing = Credentials::from_auth_file("reg.io", Some(&dir.path().join("nope.json")));
        assert!(missing.unwrap_err().contains("cannot read the auth file"));
    }
}
