//! Outgoing HTTP of network plugins, through the host's wasi:http sender: the
//! `fetch` fixture GETs `<target><path>` in `get-content`, with `target`
//! defaulting to its granted `endpoint`. Servers here are small HTTP/1.1
//! servers on 127.0.0.1 that count the connections they accept.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use berth::plugin::{PluginHost, PluginHostOptions};
use berth::storage::{open_driver, StorageDriver, StorageError};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

mod common;

fn host() -> PluginHost {
    let mut host = PluginHost::new(PluginHostOptions {
        call_timeout: Duration::from_secs(20),
        ..PluginHostOptions::default()
    })
    .expect("plugin host");
    let wasm = std::path::PathBuf::from(env!("BERTH_PLUGIN_BUILD_DIR")).join("fetch.wasm");
    host.add_file(&wasm).expect("fetch fixture");
    host
}

async fn fetch_driver(host: &PluginHost, params: &[(&str, String)]) -> Result<Arc<dyn StorageDriver>, StorageError> {
    let params = params.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    open_driver(host, "fetch", params).await
}

/// A keep-alive HTTP/1.1 server answering every GET with its path as the
/// body; returns its address and the number of connections it accepted.
async fn counting_server() -> (SocketAddr, Arc<AtomicUsize>) {
    serve(None).await
}

/// The same over TLS with a self-signed certificate for 127.0.0.1; returns
/// its address and the certificate's PEM file.
async fn tls_server(dir: &std::path::Path) -> (SocketAddr, std::path::PathBuf) {
    let (cert, key) = common::self_signed(dir);
    let certs = CertificateDer::pem_file_iter(&cert)
        .expect("cert")
        .collect::<Result<Vec<_>, _>>()
        .expect("cert");
    let key = PrivateKeyDer::from_pem_file(&key).expect("key");
    let config = ServerConfig::builder_with_provider(Arc::new(tokio_rustls::rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("TLS config");
    let (addr, _) = serve(Some(TlsAcceptor::from(Arc::new(config)))).await;
    (addr, cert)
}

async fn serve(tls: Option<TlsAcceptor>) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    Some(tls) => {
                        if let Ok(stream) = tls.accept(socket).await {
                            answer_paths(stream).await;
                        }
                    }
                    None => answer_paths(socket).await,
                }
            });
        }
    });
    (addr, accepted)
}

/// Answers each request on `stream` with its path, until the client closes.
async fn answer_paths(stream: impl AsyncRead + AsyncWrite + Unpin) {
    let (read, mut write) = tokio::io::split(stream);
    let mut lines = BufReader::new(read).lines();
    let mut path = None;
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(rest) = line.strip_prefix("GET ") {
            path = rest.split(' ').next().map(str::to_string);
        } else if line.is_empty() {
            let body = path.take().unwrap_or_default();
            let response = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len());
            if write.write_all(response.as_bytes()).await.is_err() || write.flush().await.is_err() {
                return;
            }
        }
    }
}

#[tokio::test]
async fn requests_reach_the_endpoint_over_pooled_connections() {
    let (addr, accepted) = counting_server().await;
    let host = host();
    let fetch = fetch_driver(&host, &[("endpoint", format!("http://{addr}"))])
        .await
        .expect("open fetch");
    // A per-call driver: every call is a fresh instance, all share one pool.
    for i in 0..5 {
        let path = format!("/item{i}");
        let body = fetch.get_content(&path).await.expect("get through the endpoint");
        assert_eq!(body, path.as_bytes());
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "the five requests shared one connection"
    );
}

#[tokio::test]
async fn another_host_is_refused_with_its_name() {
    let (granted, _) = counting_server().await;
    let (other, other_accepted) = counting_server().await;
    let host = host();
    let fetch = fetch_driver(
        &host,
        &[
            ("endpoint", format!("http://{granted}")),
            ("target", format!("http://{other}")),
        ],
    )
    .await
    .expect("open fetch");
    let err = fetch
        .get_content("/secret")
        .await
        .expect_err("another host must be refused");
    let message = err.to_string();
    assert!(
        message.contains(&format!("refused a request to http://{other}")) && message.contains(&granted.to_string()),
        "{message}"
    );
    assert_eq!(
        other_accepted.load(Ordering::SeqCst),
        0,
        "nothing reached the other server"
    );
}

#[tokio::test]
async fn an_unreachable_endpoint_fails_in_bounded_time() {
    // A port that was just free: nothing listens there.
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
        .local_addr()
        .expect("addr");
    let host = host();
    let fetch = fetch_driver(&host, &[("endpoint", format!("http://{closed}"))])
        .await
        .expect("open fetch");
    let outcome = tokio::time::timeout(Duration::from_secs(30), fetch.get_content("/x"))
        .await
        .expect("the call must end on its own");
    let message = outcome.expect_err("nobody listens").to_string();
    assert!(
        message.contains(&closed.to_string()),
        "the error names the endpoint: {message}"
    );
}

#[tokio::test]
async fn a_missing_endpoint_parameter_is_an_error_at_start() {
    let host = host();
    let err = fetch_driver(&host, &[]).await.err().expect("no endpoint");
    assert!(err.to_string().contains("`endpoint` is required"), "{err}");
}

#[tokio::test]
async fn tls_trusts_the_system_roots_plus_the_ca_bundle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (addr, cert) = tls_server(dir.path()).await;
    let host = host();
    let endpoint = format!("https://{addr}");

    let untrusted = fetch_driver(&host, &[("endpoint", endpoint.clone())])
        .await
        .expect("open");
    let message = untrusted
        .get_content("/a")
        .await
        .expect_err("a self-signed certificate")
        .to_string();
    assert!(message.to_lowercase().contains("certificate"), "{message}");

    let bundled = fetch_driver(
        &host,
        &[("endpoint", endpoint.clone()), ("cabundle", cert.display().to_string())],
    )
    .await
    .expect("open");
    assert_eq!(
        bundled.get_content("/a").await.expect("trusted through the bundle"),
        b"/a"
    );

    let skipping = fetch_driver(&host, &[("endpoint", endpoint), ("skipverify", "true".into())])
        .await
        .expect("open");
    assert_eq!(skipping.get_content("/b").await.expect("verification off"), b"/b");
}
