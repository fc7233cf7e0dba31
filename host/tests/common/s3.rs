//! A real S3 server for tests: moto (PyPI `moto[server]`, installed by
//! `.ci/run`) on 127.0.0.1, stopped when dropped, and a native aws-sdk-s3
//! client to check independently of the plugin what landed in a bucket.
//! Shared by `host/tests` and `tests/tests` (included by path).
#![allow(dead_code)] // each test binary uses its own part of this

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::Client;

/// moto accepts any credentials; these only have to be consistent.
pub const ACCESS_KEY: &str = "berth-test-access-key";
pub const SECRET_KEY: &str = "berth-test-secret-key";
pub const REGION: &str = "us-east-1";

/// A moto S3 server on a free loopback port.
pub struct Moto {
    /// `http://127.0.0.1:port`
    pub endpoint: String,
    child: Child,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// Starts moto and waits (up to 60 s) until it accepts connections.
    pub fn start() -> Moto {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 (moto comes from `pip install 'moto[server]'`)");
        let mut moto = Moto {
            endpoint: format!("http://127.0.0.1:{port}"),
            child,
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto exited at start ({status}); is it installed? pip install 'moto[server]'");
            }
            assert!(Instant::now() < deadline, "moto did not listen within 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    /// A native client of this server.
    pub fn client(&self) -> Client {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version_latest()
            .region(Region::new(REGION))
            .endpoint_url(&self.endpoint)
            .force_path_style(true)
            .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "berth-tests"))
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .build();
        Client::from_conf(config)
    }

    /// The `s3` driver's parameters for `bucket` on this server.
    pub fn driver_parameters(&self, bucket: &str) -> Vec<(String, String)> {
        driver_parameters(&self.endpoint, bucket)
    }

    /// The same as `REGISTRY_*` variables, for a `berth` process.
    pub fn registry_environment(&self, bucket: &str) -> Vec<(String, String)> {
        let mut env = vec![("REGISTRY_STORAGE".to_string(), "s3".to_string())];
        env.extend(
            self.driver_parameters(bucket)
                .into_iter()
                .map(|(k, v)| (format!("REGISTRY_STORAGE_S3_{}", k.to_uppercase()), v)),
        );
        env
    }

    /// Creates a bucket natively, named uniquely in this process.
    pub async fn new_bucket(&self) -> String {
        let bucket = unique_bucket_name();
        self.client()
            .create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .unwrap_or_else(|err| panic!("creating bucket {bucket}: {err:?}"));
        bucket
    }

    /// The content of `key` in `bucket`, if it is there.
    pub async fn object(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        match self.client().get_object().bucket(bucket).key(key).send().await {
            Ok(object) => Some(object.body.collect().await.expect("object body").into_bytes().to_vec()),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => None,
            Err(err) => panic!("GetObject {bucket}/{key}: {err:?}"),
        }
    }

    /// Every key in `bucket` under `prefix`.
    pub async fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut pages = self
            .client()
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.unwrap_or_else(|err| panic!("ListObjectsV2 {bucket}: {err:?}"));
            keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_string)));
        }
        keys
    }

    /// The multipart uploads in progress in `bucket`.
    pub async fn multipart_uploads(&self, bucket: &str) -> Vec<String> {
        let listed = self
            .client()
            .list_multipart_uploads()
            .bucket(bucket)
            .send()
            .await
            .unwrap_or_else(|err| panic!("ListMultipartUploads {bucket}: {err:?}"));
        listed
            .uploads()
            .iter()
            .filter_map(|u| u.key().map(str::to_string))
            .collect()
    }
}

/// `berth-test-<pid>-<n>`: valid, and distinct across parallel tests.
pub fn unique_bucket_name() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "berth-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

/// `len` bytes that differ from offset to offset.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect()
}

/// The `s3` driver's parameters for `bucket` at `endpoint`, with the test's
/// credentials.
pub fn driver_parameters(endpoint: &str, bucket: &str) -> Vec<(String, String)> {
    [
        ("region", REGION),
        ("regionendpoint", endpoint),
        ("bucket", bucket),
        ("accesskey", ACCESS_KEY),
        ("secretkey", SECRET_KEY),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}
