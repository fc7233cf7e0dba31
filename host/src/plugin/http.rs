//! Outgoing HTTP for network plugins: the host's own wasi:http sender.
//!
//! A driver that declares `network-access` gets an endpoint computed from its
//! parameters, and its requests reach only that endpoint's scheme and port,
//! on its host or a subdomain of it (a bucket addressed virtual-hosted
//! style). Anything else is refused with an error naming the host; a plugin
//! without network access (every validator) has every request refused.
//!
//! The connection pool belongs to the driver, not to an instance: a per-call
//! driver gets a fresh Store for every operation, and a connection per
//! request would cost a TCP (and TLS) handshake each time. TLS is the host's
//! too: the system roots (`SSL_CERT_FILE` and `SSL_CERT_DIR` are honoured),
//! plus the driver's CA bundle parameter, if set.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::uri::Scheme;
use http::Uri;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use tokio_rustls::rustls::crypto::{ring, CryptoProvider};
use tokio_rustls::rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use super::session::NetworkAccess;

/// How long opening a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a response's head may take after the request was sent, unless
/// the guest asks for another limit.
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle pooled connections are closed after this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the body of a signed read may pause before the read fails.
const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A driver's granted endpoint and its connection pool.
pub struct Network {
    endpoint: Endpoint,
    client: Client<HttpsConnector<HttpConnector>, WasiBody>,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network").field("endpoint", &self.endpoint).finish()
    }
}

/// Where requests may go: a scheme, a port, and a host with its subdomains.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Endpoint {
    scheme: Scheme,
    host: String,
    port: u16,
}

impl Network {
    /// The endpoint and TLS settings that `access` names, read from
    /// `parameters`; the error says which parameter is missing or wrong.
    pub fn new(access: &NetworkAccess, parameters: &[(String, String)]) -> Result<Self, String> {
        let param = |name: &str| {
            parameters
                .iter()
                .find(|(key, value)| key == name && !value.is_empty())
                .map(|(_, value)| value.as_str())
        };
        let url = match (param(&access.endpoint_parameter), &access.default_endpoint) {
            (Some(url), _) => url.to_string(),
            (None, Some(template)) => fill_template(template, param).map_err(|missing| {
                format!(
                    "the parameter `{missing}` is required unless `{}` is set",
                    access.endpoint_parameter
                )
            })?,
            (None, None) => return Err(format!("the parameter `{}` is required", access.endpoint_parameter)),
        };
        let endpoint = Endpoint::parse(&url)
            .map_err(|why| format!("the endpoint `{url}` ({}) {why}", access.endpoint_parameter))?;
        let skip_verify = access
            .skip_verify_parameter
            .as_deref()
            .and_then(param)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let ca_bundle = access.ca_bundle_parameter.as_deref().and_then(param);
        let tls = tls_config(skip_verify, ca_bundle)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(IDLE_TIMEOUT)
            .build(https);
        Ok(Network { endpoint, client })
    }

    /// The origin requests may go to, for messages: `https://host:443`.
    pub fn origin(&self) -> String {
        let Endpoint { scheme, host, port } = &self.endpoint;
        format!("{scheme}://{host}:{port}")
    }

    /// Refuses a request for anywhere but the endpoint, naming the host.
    fn check(&self, uri: &Uri) -> Result<(), String> {
        let scheme = uri.scheme().cloned().unwrap_or(Scheme::HTTPS);
        let host = uri
            .host()
            .unwrap_or_default()
            .trim_matches(['[', ']'])
            .to_ascii_lowercase();
        let port = uri.port_u16().unwrap_or(default_port(&scheme));
        let allowed = &self.endpoint;
        let host_allowed = host == allowed.host
            || (allowed.host.parse::<std::net::IpAddr>().is_err() && host.ends_with(&format!(".{}", allowed.host)));
        if scheme == allowed.scheme && port == allowed.port && host_allowed {
            Ok(())
        } else {
            Err(format!(
                "refused a request to {scheme}://{host}:{port}: this plugin may reach only {}",
                self.origin()
            ))
        }
    }
}

/// The answer to a signed read (`signed-reads`): its head, and its body
/// piece by piece as the connection delivers it.
pub struct ReadResponse {
    head: http::response::Parts,
    body: Incoming,
}

/// Why a signed read has no answer.
#[derive(Debug)]
pub enum SendError {
    /// The request is not one the plugin may send: not a URL, not to its
    /// endpoint, or a bad header. The plugin broke the contract.
    Refused(String),
    /// It was sent and no answer came.
    Failed(String),
}

impl Network {
    /// Sends a driver's signed GET of `url` with `headers`, to its endpoint
    /// only.
    pub async fn send_read(&self, url: &str, headers: &[(String, String)]) -> Result<ReadResponse, SendError> {
        let uri: Uri = url
            .parse()
            .map_err(|_| SendError::Refused(format!("`{url}` is not a URL")))?;
        self.check(&uri).map_err(SendError::Refused)?;
        let mut request = http::Request::get(uri);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let body = Empty::<Bytes>::new().map_err(|never| match never {}).boxed_unsync();
        let request = request
            .body(body)
            .map_err(|err| SendError::Refused(format!("the GET of {url} has a header that is not valid: {err}")))?;
        match tokio::time::timeout(FIRST_BYTE_TIMEOUT, self.client.request(request)).await {
            Ok(Ok(response)) => {
                let (head, body) = response.into_parts();
                Ok(ReadResponse { head, body })
            }
            Ok(Err(err)) => {
                let cause = std::error::Error::source(&err)
                    .map(|s| format!(": {s}"))
                    .unwrap_or_default();
                Err(SendError::Failed(format!("GET {url}: {err}{cause}")))
            }
            Err(_) => Err(SendError::Failed(format!(
                "GET {url}: no answer within {} s",
                FIRST_BYTE_TIMEOUT.as_secs()
            ))),
        }
    }
}

impl ReadResponse {
    pub fn status(&self) -> u16 {
        self.head.status.as_u16()
    }

    /// The value of the header `name`, if it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The next non-empty piece of the body; `None` at its end.
    pub async fn next_piece(&mut self) -> Result<Option<Bytes>, String> {
        loop {
            let frame = match tokio::time::timeout(BODY_IDLE_TIMEOUT, self.body.frame()).await {
                Err(_) => return Err(format!("no data for {} s", BODY_IDLE_TIMEOUT.as_secs())),
                Ok(None) => return Ok(None),
                Ok(Some(frame)) => frame.map_err(|err| err.to_string())?,
            };
            if let Ok(data) = frame.into_data() {
                if !data.is_empty() {
                    return Ok(Some(data));
                }
            }
        }
    }

    /// The start of the body as one line of text, for an error message.
    pub async fn text(mut self) -> String {
        const LIMIT: usize = 512;
        let mut body = Vec::new();
        while body.len() < LIMIT {
            match self.next_piece().await {
                Ok(Some(piece)) => body.extend_from_slice(&piece),
                _ => break,
            }
        }
        let text = String::from_utf8_lossy(&body[..body.len().min(LIMIT)]).into_owned();
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

impl Endpoint {
    fn parse(url: &str) -> Result<Self, &'static str> {
        let uri: Uri = url.parse().map_err(|_| "is not a URL")?;
        let scheme = uri.scheme().cloned().ok_or("has no scheme (http:// or https://)")?;
        if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
            return Err("must be http:// or https://");
        }
        let host = uri.host().filter(|h| !h.is_empty()).ok_or("has no host")?;
        let port = uri.port_u16().unwrap_or(default_port(&scheme));
        Ok(Endpoint {
            host: host.trim_matches(['[', ']']).to_ascii_lowercase(),
            scheme,
            port,
        })
    }
}

fn default_port(scheme: &Scheme) -> u16 {
    if *scheme == Scheme::HTTP {
        80
    } else {
        443
    }
}

/// `https://s3.{region}.amazonaws.com` with `{region}` replaced by the value
/// of the parameter `region`; the error is the name of a parameter that is
/// not set. (An unclosed `{` is taken literally.)
fn fill_template<'a>(template: &str, param: impl Fn(&str) -> Option<&'a str>) -> Result<String, String> {
    let mut url = String::new();
    let mut rest = template;
    while let Some((start, end)) = rest.find('{').and_then(|s| Some((s, s + rest[s..].find('}')?))) {
        let name = &rest[start + 1..end];
        let value = param(name).ok_or_else(|| name.to_string())?;
        url.push_str(&rest[..start]);
        url.push_str(value);
        rest = &rest[end + 1..];
    }
    url.push_str(rest);
    Ok(url)
}

/// The client TLS configuration: system roots and `ca_bundle`'s certificates,
/// or no verification at all when the configuration asks for it.
pub fn tls_config(skip_verify: bool, ca_bundle: Option<&str>) -> Result<ClientConfig, String> {
    let provider = Arc::new(ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|err| format!("TLS setup failed: {err}"))?;
    if skip_verify {
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
            .with_no_client_auth());
    }
    let mut roots = system_roots().clone();
    if let Some(path) = ca_bundle {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|err| format!("cannot read the CA bundle {path}: {err}"))?;
        if certs.is_empty() {
            return Err(format!("the CA bundle {path} holds no certificate"));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|err| format!("a certificate in the CA bundle {path} is not usable: {err}"))?;
        }
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// The system's trusted roots, read once per process.
fn system_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for err in &found.errors {
            tracing::warn!("reading the system's CA certificates: {err}");
        }
        let mut roots = RootCertStore::empty();
        let (_, ignored) = roots.add_parsable_certificates(found.certs);
        if ignored > 0 {
            tracing::debug!("ignored {ignored} unparsable system CA certificates");
        }
        roots
    })
}

/// `skipverify`: any certificate is accepted, signatures are still checked
/// so the handshake itself stays sound.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, tokio_rustls::rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        tokio_rustls::rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        tokio_rustls::rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The wasi:http hooks of one Store: sends through the driver's pool, or
/// refuses.
pub(crate) struct HttpHooks {
    pub plugin: Arc<str>,
    pub network: Option<Arc<Network>>,
}

type SendFuture = Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), Error>> + Send>;
type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;

impl WasiHttpHooks for HttpHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_done: IoFuture,
    ) -> SendFuture {
        let plugin = self.plugin.clone();
        let network = self.network.clone();
        Box::new(async move {
            let refuse = |why: String| {
                tracing::warn!(plugin = %plugin, "{why}");
                Error::InternalError(Some(why))
            };
            let Some(network) = network else {
                return Err(refuse(format!(
                    "refused a request to {}: this plugin has no network access",
                    request.uri()
                )));
            };
            network.check(request.uri()).map_err(refuse)?;
            let target = format!("{} {}", request.method(), request.uri());
            let first_byte = options.and_then(|o| o.first_byte_timeout).unwrap_or(FIRST_BYTE_TIMEOUT);
            let response = match tokio::time::timeout(first_byte, network.client.request(request)).await {
                Ok(Ok(response)) => response,
                Ok(Err(err)) => {
                    let cause = std::error::Error::source(&err)
                        .map(|s| format!(": {s}"))
                        .unwrap_or_default();
                    return Err(Error::InternalError(Some(format!("{target}: {err}{cause}"))));
                }
                Err(_) => return Err(Error::HttpResponseTimeout),
            };
            // The pool drives the connection: nothing is left to await.
            let done: IoFuture = Box::new(async { Ok(()) });
            Ok((response.map(|body| body.map_err(Error::from).boxed_unsync()), done))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(default: Option<&str>) -> NetworkAccess {
        NetworkAccess {
            endpoint_parameter: "regionendpoint".into(),
            default_endpoint: default.map(str::to_string),
            skip_verify_parameter: Some("skipverify".into()),
            ca_bundle_parameter: Some("cabundle".into()),
        }
    }

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[tokio::test]
    async fn the_endpoint_parameter_wins_over_the_default() {
        let network = Network::new(
            &access(Some("https://s3.{region}.amazonaws.com")),
            &params(&[("region", "eu-west-1"), ("regionendpoint", "http://127.0.0.1:9000")]),
        )
        .unwrap();
        assert_eq!(network.origin(), "http://127.0.0.1:9000");
        let network = Network::new(
            &access(Some("https://s3.{region}.amazonaws.com")),
            &params(&[("region", "eu-west-1")]),
        )
        .unwrap();
        assert_eq!(network.origin(), "https://s3.eu-west-1.amazonaws.com:443");
    }

    #[tokio::test]
    async fn a_missing_or_bad_endpoint_names_the_parameter() {
        let err = Network::new(&access(Some("https://s3.{region}.amazonaws.com")), &[]).unwrap_err();
        assert!(
            err.contains("`region` is required unless `regionendpoint` is set"),
            "{err}"
        );
        let err = Network::new(&access(None), &[]).unwrap_err();
        assert!(err.contains("`regionendpoint` is required"), "{err}");
        let err = Network::new(&access(None), &params(&[("regionendpoint", "minio:9000")])).unwrap_err();
        assert!(err.contains("regionendpoint") && err.contains("scheme"), "{err}");
        let err = Network::new(
            &access(None),
            &params(&[("regionendpoint", "https://h"), ("cabundle", "/nonexistent.pem")]),
        )
        .unwrap_err();
        assert!(err.contains("/nonexistent.pem"), "{err}");
    }

    #[tokio::test]
    async fn only_the_endpoint_and_its_subdomains_are_reachable() {
        let network = Network::new(&access(None), &params(&[("regionendpoint", "https://s3.example.com")])).unwrap();
        let allowed = |uri: &str| network.check(&uri.parse().unwrap()).is_ok();
        assert!(allowed("https://s3.example.com/bucket/key"));
        assert!(allowed("https://bucket.s3.example.com:443/key"));
        assert!(!allowed("http://s3.example.com/key"), "another scheme");
        assert!(!allowed("https://s3.example.com:8443/key"), "another port");
        assert!(!allowed("https://evil.com/key"));
        assert!(
            !allowed("https://evils3.example.com/key"),
            "a suffix that is not a subdomain"
        );
        let err = network.check(&"https://evil.com/x".parse().unwrap()).unwrap_err();
        assert!(err.contains("evil.com") && err.contains("s3.example.com"), "{err}");

        let local = Network::new(&access(None), &params(&[("regionendpoint", "http://127.0.0.1:9000")])).unwrap();
        // A signed read is held to the same rule, before anything is sent.
        let headers = [("authorization".to_string(), "AWS4-HMAC-SHA256 ...".to_string())];
        match local.send_read("http://127.0.0.2:9000/b/k", &headers).await {
            Err(SendError::Refused(why)) => assert!(why.contains("127.0.0.2"), "{why}"),
            Err(SendError::Failed(why)) => panic!("sent to another host: {why}"),
            Ok(_) => panic!("sent to another host"),
        }
        let bad_header = [("bad header".to_string(), String::new())];
        let refused = local.send_read("http://127.0.0.1:9000/b/k", &bad_header).await;
        assert!(matches!(refused, Err(SendError::Refused(_))), "{:?}", refused.err());
        assert!(local.check(&"http://127.0.0.1:9000/b".parse().unwrap()).is_ok());
        assert!(
            local.check(&"http://1.127.0.0.1:9000/b".parse().unwrap()).is_err(),
            "no subdomains of an IP"
        );
    }
}
