//! What the registry tests with real clients share: the registry served on
//! loopback, bounded commands, test data.
#![allow(dead_code)] // each test binary uses its own part of this

use std::future::Future;
use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use berth::plugin::{PluginHost, PluginHostOptions};
use berth::registry::{Registry, RegistryOptions};
use berth::storage::open_driver;
use sha2::{Digest as _, Sha256};
use tokio::process::Command;

/// Every test is bounded in time.
pub async fn bounded<F: Future<Output = ()>>(test: F) {
    tokio::time::timeout(Duration::from_secs(300), test)
        .await
        .expect("the test took longer than 5 minutes");
}

pub fn sha256(content: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(content)))
}

/// An HTTP client for loopback: no proxy, no redirects, a timeout.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .no_proxy()
        .build()
        .expect("client")
}

/// Runs `command` to its end within `timeout`, its output captured.
pub async fn run(mut command: Command, timeout: Duration) -> Output {
    let shown = format!("{:?}", command.as_std());
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start {shown}: {err}"));
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(err)) => panic!("{shown}: {err}"),
        // Dropping the future dropped the child, which kills it.
        Err(_) => panic!("{shown} took longer than {timeout:?}; killed"),
    }
}

/// Berth's router on loopback over the filesystem driver at a root; every
/// request is logged as `METHOD URI -> STATUS`.
pub struct Berth {
    /// `127.0.0.1:port`
    pub address: String,
    requests: Arc<Mutex<Vec<String>>>,
    server: tokio::task::JoinHandle<()>,
    _host: PluginHost,
}

impl Drop for Berth {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Berth {
    pub async fn serve(root: &Path, delete_enabled: bool) -> Berth {
        let host = PluginHost::new(PluginHostOptions::default()).expect("plugin host");
        let params = vec![("rootdirectory".to_string(), root.display().to_string())];
        let driver = open_driver(&host, "filesystem", params)
            .await
            .expect("filesystem driver");
        let registry = Registry::new(
            driver,
            RegistryOptions {
                delete_enabled,
                ..RegistryOptions::default()
            },
        );
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        let router = registry
            .router()
            .layer(axum::middleware::from_fn(move |request: Request, next: Next| {
                let log = log.clone();
                async move {
                    let line = format!("{} {}", request.method(), request.uri());
                    let response = next.run(request).await;
                    log.lock()
                        .unwrap()
                        .push(format!("{line} -> {}", response.status().as_u16()));
                    response
                }
            }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Berth {
            address,
            requests,
            server,
            _host: host,
        }
    }

    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    pub fn clear_requests(&self) {
        self.requests.lock().unwrap().clear();
    }
}

/// Pseudo-random bytes (xorshift), different for every seed.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}
