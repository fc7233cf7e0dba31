//! The bundled `s3` driver against real S3 servers started here: moto (the
//! broadest API) for the conformance suite and the provisioner, whose work is
//! checked with a native S3 client; s3s-fs (which checks SigV4 signatures)
//! for wrong credentials.

mod common;

use std::time::Duration;

use aws_sdk_s3::types::ServerSideEncryption;
use berth::plugin::{one_instance_per_request, Condition, PluginHost, PluginHostOptions, Provision};
use berth::storage::{conformance, open_driver, open_driver_reading, ReadPath, StorageDriver, StorageError};
use common::s3::{pattern, unique_bucket_name, Moto, ACCESS_KEY, SECRET_KEY};

fn host() -> PluginHost {
    PluginHost::new(PluginHostOptions::default()).expect("plugin host")
}

fn with(mut params: Vec<(String, String)>, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    for (key, value) in extra {
        params.retain(|(k, _)| k != key);
        params.push((key.to_string(), value.to_string()));
    }
    params
}

/// `(type, status)` of each condition, for one assertion with a readable
/// failure.
fn statuses(conditions: &[Condition]) -> Vec<(String, String)> {
    conditions.iter().map(|c| (c.type_.clone(), c.status.clone())).collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conformance_suite_passes_on_moto() {
    let moto = Moto::start();
    let bucket = moto.new_bucket().await;
    let host = host();
    // The host sends the GETs the driver signs, as the registry reads; the
    // driver's own reader is part of the contract too.
    for read_path in [ReadPath::Direct, ReadPath::PluginReader] {
        let driver = open_driver_reading(&host, "s3", moto.driver_parameters(&bucket), read_path)
            .await
            .expect("open the s3 driver");
        // 64 MiB: several 10 MiB parts, within what moto holds comfortably.
        let options = conformance::SuiteOptions {
            large_stream_bytes: 64 << 20,
        };
        let outcomes = tokio::time::timeout(Duration::from_secs(600), conformance::run(driver, &options, |_| {}))
            .await
            .expect("the suite ends within 10 minutes");
        let failures: Vec<String> = outcomes
            .iter()
            .filter_map(|case| case.result.as_ref().err().map(|why| format!("{}: {why}", case.name)))
            .collect();
        assert!(outcomes.len() >= 30, "only {} cases ran", outcomes.len());
        assert!(
            failures.is_empty(),
            "s3, {read_path:?}, failed:\n{}",
            failures.join("\n")
        );
    }
}

/// Everything a reader gives, read in pieces of at most `piece` bytes.
async fn read_all(driver: &dyn StorageDriver, path: &str, offset: u64, piece: u32) -> Result<Vec<u8>, StorageError> {
    let mut reader = driver.reader(path, offset).await?;
    let mut content = Vec::new();
    loop {
        let data = reader.read(piece).await?;
        assert!(data.len() <= piece as usize, "a read gave more than asked");
        if data.is_empty() {
            return Ok(content);
        }
        content.extend_from_slice(&data);
    }
}

/// A pull's GET is signed by the plugin and sent by the host: a server that
/// checks signatures (ranges included) serves it, the content passes
/// through one plugin call however large it is, and a wrong secret is a
/// clear error with the status and S3's code, not a short body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_signed_by_the_plugin_and_sent_by_the_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = common::signing::SigningServer::start(dir.path(), "signed-bucket").await;
    let host = host();
    let driver = open_driver(&host, "s3", server.driver_parameters("signed-bucket"))
        .await
        .expect("open");
    let content: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 251) as u8).collect();
    driver.put_content("/a/blob", &content).await.expect("put");

    let before = driver.plugin_usage().expect("a plugin");
    let read = one_instance_per_request(read_all(&*driver, "/a/blob", 0, 1 << 20)).await;
    let used = driver.plugin_usage().expect("a plugin");
    assert!(read.expect("read") == content, "the content read back differs");
    assert_eq!(
        (used.instances - before.instances, used.calls - before.calls),
        (1, 1),
        "3 MiB read with one instance and one call (read-request)"
    );
    let tail = read_all(&*driver, "/a/blob", 1000, 4096).await.expect("ranged read");
    assert!(tail == content[1000..], "the ranged read differs");
    let past = read_all(&*driver, "/a/blob", content.len() as u64, 4096).await;
    assert!(past.expect("read at the end").is_empty());
    match read_all(&*driver, "/a/missing", 0, 4096).await {
        Err(StorageError::PathNotFound(path)) => assert_eq!(path, "/a/missing"),
        other => panic!("a missing object read as {other:?}"),
    }

    let params = with(
        server.driver_parameters("signed-bucket"),
        &[("secretkey", "not-the-secret")],
    );
    let wrong = open_driver(&host, "s3", params).await.expect("open");
    let message = match tokio::time::timeout(Duration::from_secs(60), read_all(&*wrong, "/a/blob", 0, 4096)).await {
        Ok(Err(StorageError::Backend(message))) => message,
        other => panic!("a read with the wrong secret gave {other:?}"),
    };
    assert!(
        message.contains("/a/blob") && message.contains("HTTP 403") && message.contains("SignatureDoesNotMatch"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensure_creates_and_configures_the_bucket_as_checked_natively() {
    let moto = Moto::start();
    let bucket = unique_bucket_name();
    let params = with(moto.driver_parameters(&bucket), &[("tags", "team=registry,env=test")]);
    let host = host();

    let exists = host
        .provision("s3", Provision::Exists, &params)
        .await
        .expect("plugin")
        .expect("exists");
    assert_eq!(statuses(&exists), pairs(&[("StorageExists", "False")]));

    let expected = pairs(&[
        ("StorageExists", "True"),
        ("StoragePublicAccessBlocked", "True"),
        ("StorageEncrypted", "True"),
        ("StorageIncompleteUploadCleanupEnabled", "True"),
        ("StorageTagged", "True"),
    ]);
    // Twice: ensure repairs, and changes nothing when all is in place.
    for round in 0..2 {
        let conditions = host
            .provision("s3", Provision::Ensure, &params)
            .await
            .expect("plugin")
            .expect("ensure");
        let mut got = statuses(&conditions);
        got.sort();
        let mut want = expected.clone();
        want.sort();
        assert_eq!(got, want, "round {round}: {conditions:#?}");
        assert!(conditions.iter().all(|c| !c.reason.is_empty() && !c.message.is_empty()));
    }

    let client = moto.client();
    client
        .head_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("the bucket exists");
    let block = client
        .get_public_access_block()
        .bucket(&bucket)
        .send()
        .await
        .expect("public access block");
    let block = block.public_access_block_configuration().expect("configuration");
    assert_eq!(
        (
            block.block_public_acls(),
            block.ignore_public_acls(),
            block.block_public_policy(),
            block.restrict_public_buckets()
        ),
        (Some(true), Some(true), Some(true), Some(true))
    );
    assert_eq!(
        default_encryption(&client, &bucket).await,
        (Some(ServerSideEncryption::Aes256), None)
    );
    let lifecycle = client
        .get_bucket_lifecycle_configuration()
        .bucket(&bucket)
        .send()
        .await
        .expect("lifecycle");
    let abort_days: Vec<Option<i32>> = lifecycle
        .rules()
        .iter()
        .filter_map(|rule| rule.abort_incomplete_multipart_upload())
        .map(|abort| abort.days_after_initiation())
        .collect();
    assert_eq!(abort_days, vec![Some(1)], "{lifecycle:?}");
    let tagging = client.get_bucket_tagging().bucket(&bucket).send().await.expect("tags");
    let mut tags: Vec<(String, String)> = tagging
        .tag_set()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect();
    tags.sort();
    assert_eq!(tags, pairs(&[("env", "test"), ("team", "registry")]));

    let exists = host
        .provision("s3", Provision::Exists, &params)
        .await
        .expect("plugin")
        .expect("exists");
    assert_eq!(statuses(&exists), pairs(&[("StorageExists", "True")]));

    // Remove empties the bucket first.
    let driver = open_driver(&host, "s3", params.clone()).await.expect("open");
    driver.put_content("/docker/registry/v2/x", b"data").await.expect("put");
    host.provision("s3", Provision::Remove, &params)
        .await
        .expect("plugin")
        .expect("remove");
    assert!(
        client.head_bucket().bucket(&bucket).send().await.is_err(),
        "the bucket is gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_driver_writes_is_where_distribution_puts_it() {
    let moto = Moto::start();
    let bucket = moto.new_bucket().await;
    let host = host();
    let params = with(
        moto.driver_parameters(&bucket),
        &[
            ("rootdirectory", "/registry-root"),
            ("multipartcopythresholdsize", "5242880"),
            ("multipartcopychunksize", "5242880"),
        ],
    );
    let driver = open_driver(&host, "s3", params).await.expect("open");
    driver
        .put_content("/docker/registry/v2/a/b", b"hello")
        .await
        .expect("put");
    assert_eq!(
        moto.object(&bucket, "registry-root/docker/registry/v2/a/b")
            .await
            .as_deref(),
        Some(&b"hello"[..])
    );
    // A multipart writer in chunksize parts, completed on commit.
    let data = pattern(12 << 20);
    let mut writer = driver.writer("/big", false).await.expect("writer");
    for chunk in data.chunks(1 << 20) {
        writer.write(chunk).await.expect("write");
    }
    writer.commit().await.expect("commit");
    assert_eq!(moto.object(&bucket, "registry-root/big").await.as_ref(), Some(&data));
    assert!(
        moto.multipart_uploads(&bucket).await.is_empty(),
        "the upload was completed"
    );

    // Moved by a multipart copy of parts copied at once (above the copy
    // threshold, 5 MiB here), then deleted at its source.
    driver.move_to("/big", "/moved").await.expect("move");
    assert_eq!(moto.object(&bucket, "registry-root/moved").await, Some(data));
    let moved = moto
        .client()
        .head_object()
        .bucket(&bucket)
        .key("registry-root/moved")
        .send()
        .await
        .expect("head");
    // A multipart ETag ends with its part count: 12 MiB in 5, 5 and 2.
    let etag = moved.e_tag().unwrap_or_default();
    assert!(etag.trim_matches('"').ends_with("-3"), "{etag}");
    assert_eq!(moto.object(&bucket, "registry-root/big").await, None);
    assert!(
        moto.multipart_uploads(&bucket).await.is_empty(),
        "the copy was completed"
    );

    // A cancelled writer leaves neither an object nor an upload in progress.
    let mut writer = driver.writer("/cancelled", false).await.expect("writer");
    writer.write(&pattern(11 << 20)).await.expect("write");
    writer.cancel().await.expect("cancel");
    assert_eq!(moto.object(&bucket, "registry-root/cancelled").await, None);
    assert!(
        moto.multipart_uploads(&bucket).await.is_empty(),
        "the upload was aborted"
    );
}

/// With `encrypt` and a `keyid`, objects are written with SSE-KMS under that
/// key, single and multipart alike, and `ensure` makes it the bucket's
/// default encryption.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kms_key_encrypts_objects_and_becomes_the_bucket_default() {
    const KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/berth-test";
    let moto = Moto::start();
    let bucket = moto.new_bucket().await;
    let host = host();
    let params = with(moto.driver_parameters(&bucket), &[("encrypt", "true"), ("keyid", KEY)]);
    let driver = open_driver(&host, "s3", params.clone()).await.expect("open");
    driver.put_content("/small", b"hello").await.expect("put");
    let mut writer = driver.writer("/large", false).await.expect("writer");
    writer.write(&pattern(11 << 20)).await.expect("write");
    writer.commit().await.expect("commit");
    let client = moto.client();
    for key in ["small", "large"] {
        let head = client
            .head_object()
            .bucket(&bucket)
            .key(key)
            .send()
            .await
            .expect("head");
        assert_eq!(
            head.server_side_encryption(),
            Some(&ServerSideEncryption::AwsKms),
            "{key}"
        );
        assert_eq!(head.ssekms_key_id(), Some(KEY), "{key}");
    }

    let conditions = host
        .provision("s3", Provision::Ensure, &params)
        .await
        .expect("plugin")
        .expect("ensure");
    let encrypted = conditions
        .iter()
        .find(|c| c.type_ == "StorageEncrypted")
        .expect("a StorageEncrypted condition");
    assert_eq!(encrypted.status, "True", "{encrypted:?}");
    assert_eq!(
        default_encryption(&client, &bucket).await,
        (Some(ServerSideEncryption::AwsKms), Some(KEY.to_string()))
    );
}

/// The bucket's default encryption as a native client reads it: the
/// algorithm and the KMS key.
async fn default_encryption(
    client: &aws_sdk_s3::Client,
    bucket: &str,
) -> (Option<ServerSideEncryption>, Option<String>) {
    let encryption = client
        .get_bucket_encryption()
        .bucket(bucket)
        .send()
        .await
        .expect("encryption");
    let default = encryption
        .server_side_encryption_configuration()
        .and_then(|c| c.rules().first())
        .and_then(|rule| rule.apply_server_side_encryption_by_default());
    (
        default.map(|d| d.sse_algorithm().clone()),
        default.and_then(|d| d.kms_master_key_id()).map(str::to_string),
    )
}

/// `redirect-url` presigns a GET that a signature-checking server honours
/// (and refuses once tampered with), addressed to `redirectendpoint` when
/// one is set: there, another name of the same server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_redirects_are_honoured_and_go_to_the_redirect_endpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = common::signing::SigningServer::start(dir.path(), "signed-bucket").await;
    let public = server.endpoint.replace("127.0.0.1", "localhost");
    let host = host();
    let direct = server.driver_parameters("signed-bucket");
    let redirected = with(direct.clone(), &[("redirectendpoint", &public)]);
    for (params, base) in [(direct, &server.endpoint), (redirected, &public)] {
        let driver = open_driver(&host, "s3", params).await.expect("open");
        driver.put_content("/a/blob", b"redirected").await.expect("put");
        let url = driver
            .redirect_url("GET", "/a/blob")
            .await
            .expect("presign")
            .expect("a redirect URL");
        assert!(url.starts_with(&format!("{base}/")), "{url} is not on {base}");
        assert_eq!(http_get(&url).await, (200, b"redirected".to_vec()), "{url}");
        // The last hex digit of the signature, changed.
        let flipped = if url.ends_with('0') { '1' } else { '0' };
        let tampered = match url.find("X-Amz-Signature=") {
            Some(at) => {
                let end = url[at..].find('&').map_or(url.len(), |i| at + i);
                format!("{}{flipped}{}", &url[..end - 1], &url[end..])
            }
            None => panic!("no signature in {url}"),
        };
        assert_eq!(http_get(&tampered).await.0, 403, "{tampered}");
    }
}

/// Status and body of a plain GET.
async fn http_get(url: &str) -> (u16, Vec<u8>) {
    use http_body_util::{BodyExt, Empty};
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<hyper::body::Bytes>>();
    let response = tokio::time::timeout(Duration::from_secs(30), client.get(url.parse().expect("a URI")))
        .await
        .expect("an answer in bounded time")
        .expect("GET");
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.expect("body").to_bytes();
    (status, body.to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_region_is_an_error_at_start_not_a_panic() {
    let host = host();
    let without_region: Vec<(String, String)> = [("bucket", "b"), ("accesskey", ACCESS_KEY), ("secretkey", SECRET_KEY)]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let message = match open_driver(&host, "s3", without_region).await {
        Err(err) => err.to_string(),
        Ok(_) => panic!("a driver without region nor regionendpoint"),
    };
    assert!(
        message.contains("region") && message.contains("regionendpoint") && !message.contains("panic"),
        "{message}"
    );
}

/// Wrong credentials against a server that checks signatures: a clear error
/// with the bucket and S3's code, in bounded time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_name_the_bucket_and_the_s3_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = common::signing::SigningServer::start(dir.path(), "signed-bucket").await;
    let host = host();
    let params = with(
        server.driver_parameters("signed-bucket"),
        &[("secretkey", "not-the-secret")],
    );
    let outcome = tokio::time::timeout(Duration::from_secs(60), async {
        let driver: std::sync::Arc<dyn StorageDriver> = open_driver(&host, "s3", params).await?;
        driver.stat("/docker/registry/v2").await.map(|_| ())
    })
    .await
    .expect("the answer comes in bounded time");
    let message = match outcome {
        Err(StorageError::PathNotFound(_)) | Ok(()) => panic!("wrong credentials were accepted"),
        Err(err) => err.to_string(),
    };
    assert!(
        message.contains("signed-bucket") && message.contains("SignatureDoesNotMatch"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_endpoint_fails_in_bounded_time_naming_it() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let host = host();
    let params = common::s3::driver_parameters(&format!("http://{closed}"), "nowhere");
    let outcome = tokio::time::timeout(Duration::from_secs(60), async {
        let driver = open_driver(&host, "s3", params).await?;
        driver.stat("/").await.map(|_| ())
    })
    .await
    .expect("the answer comes in bounded time");
    let message = outcome.expect_err("nothing listens there").to_string();
    assert!(message.contains(&closed.to_string()), "{message}");
}

/// `berth storage ensure` as an operator (or a person) runs it: one line
/// per condition, exit 0; a configuration without region is refused with
/// exit 2 before anything is contacted.
#[test]
fn berth_storage_ensure_from_the_command_line() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let bucket = unique_bucket_name();
    let mut yaml = "version: 0.1\nstorage:\n  s3:\n".to_string();
    for (key, value) in moto.driver_parameters(&bucket) {
        yaml.push_str(&format!("    {key}: {value}\n"));
    }
    let config = dir.path().join("config.yml");
    std::fs::write(&config, &yaml).expect("config");
    let run = |config: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["storage", "ensure", "--config"])
            .arg(config)
            .output()
            .expect("berth storage ensure")
    };
    let output = run(&config);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{stdout}");
    assert!(
        lines.iter().all(|line| line.split_whitespace().nth(1) == Some("True")),
        "{stdout}"
    );
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime
        .block_on(moto.client().head_bucket().bucket(&bucket).send())
        .expect("the bucket was created");

    let without_region = dir.path().join("no-region.yml");
    let yaml: String = yaml
        .lines()
        .filter(|line| !line.contains("region"))
        .map(|line| format!("{line}\n"))
        .collect();
    std::fs::write(&without_region, yaml).expect("config");
    let output = run(&without_region);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("storage.s3.region") && stderr.contains("MissingRegion"),
        "{stderr}"
    );
}
