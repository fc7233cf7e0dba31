//! What the registry tests share: the registry served on loopback over a
//! storage of its own (filesystem or S3), bounded commands, test data.
#![allow(dead_code)] // each test binary uses its own part of this

#[path = "../../../host/tests/common/s3.rs"]
pub mod s3;
pub mod storage;

use std::future::Future;
use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use berth::plugin::{PluginHost, PluginHostOptions};
use berth::registry::{Registry, RegistryOptions};
use berth::storage::{open_driver, StorageDriver};
use sha2::{Digest as _, Sha256};
use tokio::process::Command;

#[allow(unused_imports)] // not every test binary runs on both storages
pub use storage::{StorageKind, TestStorage};

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

/// One `#[tokio::test]` per storage for each test body
/// `async fn NAME(storage: TestStorage)` of the calling file, named
/// `filesystem::NAME` and `s3::NAME`; each runs within [`bounded`] on a
/// storage of its own (on S3: its own moto server and bucket).
#[allow(unused_macros)]
macro_rules! on_every_storage {
    ($($test:ident),+ $(,)?) => {
        mod filesystem {
            $crate::common::on_every_storage!(@kind Filesystem; $($test),+);
        }
        mod s3 {
            $crate::common::on_every_storage!(@kind S3; $($test),+);
        }
    };
    (@kind $kind:ident; $($test:ident),+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                $crate::common::bounded(async {
                    let storage =
                        $crate::common::TestStorage::new($crate::common::StorageKind::$kind).await;
                    super::$test(storage).await;
                })
                .await;
            }
        )+
    };
}
#[allow(unused_imports)]
pub(crate) use on_every_storage;

/// Deletes enabled, everything else as by default.
pub fn deletes_enabled() -> RegistryOptions {
    RegistryOptions {
        delete_enabled: true,
        ..RegistryOptions::default()
    }
}

/// Berth's router on loopback over a storage driver; every request is
/// logged as `METHOD URI -> STATUS`.
pub struct Berth {
    /// `127.0.0.1:port`
    pub address: String,
    /// The registry behind the router, for what has no HTTP API (purge).
    pub registry: Registry,
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
    /// Over the filesystem driver at `root`.
    pub async fn serve(root: &Path, delete_enabled: bool) -> Berth {
        let host = PluginHost::new(PluginHostOptions::default()).expect("plugin host");
        let driver = open_driver(&host, "filesystem", storage::filesystem_parameters(root))
            .await
            .expect("filesystem driver");
        let options = RegistryOptions {
            delete_enabled,
            ..RegistryOptions::default()
        };
        Berth::serve_driver(host, driver, options).await
    }

    /// Over `storage`, through a plugin host and driver instance of its own
    /// (as one replica among others on the same storage).
    pub async fn serve_on(storage: &TestStorage, options: RegistryOptions) -> Berth {
        let host = PluginHost::new(PluginHostOptions::default()).expect("plugin host");
        let driver = storage.open(&host).await;
        Berth::serve_driver(host, driver, options).await
    }

    /// Over `driver`, opened on `host`.
    pub async fn serve_driver(host: PluginHost, driver: Arc<dyn StorageDriver>, options: RegistryOptions) -> Berth {
        let registry = Registry::new(driver, options);
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
            registry,
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
