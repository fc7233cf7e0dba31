//! The OCI distribution API end to end: the real router on 127.0.0.1 over
//! the bundled filesystem driver and over the bundled S3 driver (on moto),
//! talked to with a real HTTP client. What a test expects in storage it
//! checks in the backend itself (the files, the bucket), not through the
//! plugin.
//!
//! Every test body below runs on both storages (`filesystem::NAME`,
//! `s3::NAME`, see `on_every_storage!` at the end) except the one on the
//! inmemory driver, which brings its own storage.

mod common;

use berth::plugin::{PluginHost, PluginHostOptions, PluginUsage};
use berth::registry::RegistryOptions;
use berth::storage::{open_driver, open_driver_reading, ReadPath};
use common::storage::{blob_data_path, repository_path, uploads_path};
use common::{bounded, deletes_enabled, http, on_every_storage, sha256, Berth, StorageKind, TestStorage};
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// A registry served on loopback, and a client of it.
struct Served {
    url: String,
    http: reqwest::Client,
    berth: Berth,
}

/// A registry with a plugin host and driver instance of its own over
/// `storage`.
async fn serve(storage: &TestStorage, options: RegistryOptions) -> Served {
    Served::new(Berth::serve_on(storage, options).await)
}

impl Served {
    fn new(berth: Berth) -> Served {
        Served {
            url: format!("http://{}", berth.address),
            http: http(),
            berth,
        }
    }

    async fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Response {
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.url)
        };
        let mut request = self.http.request(method, url).body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("request")
    }

    async fn get(&self, path: &str) -> Response {
        self.send("GET", path, &[], Vec::new()).await
    }

    /// Uploads `content` in one `POST ?digest=`; returns its digest.
    async fn push_blob(&self, name: &str, content: &[u8]) -> String {
        let digest = sha256(content);
        let response = self
            .send(
                "POST",
                &format!("/v2/{name}/blobs/uploads/?digest={digest}"),
                &[],
                content.to_vec(),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED, "{}", body_text(response).await);
        digest
    }

    async fn push_manifest(&self, name: &str, reference: &str, media_type: &str, bytes: &[u8]) -> Response {
        self.send(
            "PUT",
            &format!("/v2/{name}/manifests/{reference}"),
            &[("content-type", media_type)],
            bytes.to_vec(),
        )
        .await
    }

    /// A config and a layer in `name`, and an image manifest of them.
    async fn image(&self, name: &str, seed: &str) -> Vec<u8> {
        let config = self
            .push_blob(name, format!("{{\"seed\":\"{seed}\"}}").as_bytes())
            .await;
        let layer = self.push_blob(name, format!("layer of {seed}").as_bytes()).await;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 1},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": 1}],
        });
        serde_json::to_vec_pretty(&manifest).expect("json")
    }
}

fn header(response: &Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

async fn body_text(response: Response) -> String {
    response.text().await.unwrap_or_default()
}

/// The status and the first OCI error code of a response.
async fn error(response: Response) -> (StatusCode, String) {
    let status = response.status();
    let body: Value = response.json().await.expect("an OCI error body");
    let code = body["errors"][0]["code"].as_str().unwrap_or_default().to_string();
    assert!(body["errors"][0]["message"].is_string(), "{body}");
    (status, code)
}

/// A GET of `path` exactly as written (a client library would resolve `..`
/// and `%2e%2e` first); the status and the body.
async fn raw_get(url: &str, path: &str) -> (u16, String) {
    raw_request(url, &format!("GET {path} HTTP/1.1\r\n"), "").await
}

/// Sends `request_line`, then `Host` and `Connection: close`, then the
/// `rest` of the request (further headers, the blank line, a body) exactly
/// as written; the status and the body.
async fn raw_request(url: &str, request_line: &str, rest: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.expect("connect");
    let rest = if rest.is_empty() { "\r\n" } else { rest };
    let request = format!("{request_line}Host: {address}\r\nConnection: close\r\n{rest}");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("receive");
    let status = answer.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    (status, body)
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

async fn base_endpoint_and_unknown_paths(storage: TestStorage) {
    let r = serve(&storage, deletes_enabled()).await;
    let response = r.get("/v2/").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "docker-distribution-api-version"), "registry/2.0");
    assert_eq!(body_text(response).await, "{}");
    assert_eq!(r.get("/v3/").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(r.get("/v2/a/nothing-here").await.status(), StatusCode::NOT_FOUND);
    let (status, code) = error(r.send("POST", "/v2/a/tags/list", &[], Vec::new()).await).await;
    assert_eq!((status, code.as_str()), (StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED"));
}

async fn monolithic_upload_then_pull_with_ranges(storage: TestStorage) {
    let r = serve(&storage, deletes_enabled()).await;
    let content = pattern(100_000, 7);
    let digest = sha256(&content);
    let response = r
        .send(
            "POST",
            &format!("/v2/lib/app/blobs/uploads/?digest={digest}"),
            &[],
            content.clone(),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(header(&response, "location"), format!("/v2/lib/app/blobs/{digest}"));
    assert_eq!(header(&response, "docker-content-digest"), digest);

    // Exactly distribution's layout, in the backend itself.
    assert_eq!(
        storage.read(&blob_data_path(&digest)).await.as_deref(),
        Some(content.as_slice())
    );
    let link = format!("{}/_layers/sha256/{}/link", repository_path("lib/app"), &digest[7..]);
    assert_eq!(storage.read_text(&link).await, digest);
    assert_eq!(
        storage.paths_under(&uploads_path("lib/app")).await,
        Vec::<String>::new()
    );
    assert_eq!(storage.multipart_uploads().await, Vec::<String>::new());

    let response = r.get(&format!("/v2/lib/app/blobs/{digest}")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "content-type"), "application/octet-stream");
    assert_eq!(header(&response, "content-length"), "100000");
    assert_eq!(header(&response, "docker-content-digest"), digest);
    assert_eq!(response.bytes().await.unwrap().as_ref(), content.as_slice());

    let response = r
        .send("HEAD", &format!("/v2/lib/app/blobs/{digest}"), &[], Vec::new())
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "content-length"), "100000");
    assert!(response.bytes().await.unwrap().is_empty());

    let ranged = r
        .send(
            "GET",
            &format!("/v2/lib/app/blobs/{digest}"),
            &[("range", "bytes=10-19")],
            Vec::new(),
        )
        .await;
    assert_eq!(ranged.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&ranged, "content-range"), "bytes 10-19/100000");
    assert_eq!(ranged.bytes().await.unwrap().as_ref(), &content[10..20]);
    let suffix = r
        .send(
            "GET",
            &format!("/v2/lib/app/blobs/{digest}"),
            &[("range", "bytes=-5")],
            Vec::new(),
        )
        .await;
    assert_eq!(suffix.bytes().await.unwrap().as_ref(), &content[99_995..]);
    let outside = r
        .send(
            "GET",
            &format!("/v2/lib/app/blobs/{digest}"),
            &[("range", "bytes=100000-")],
            Vec::new(),
        )
        .await;
    assert_eq!(outside.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(&outside, "content-range"), "bytes */100000");

    // Only a repository that links the blob serves it.
    let (status, code) = error(r.get(&format!("/v2/other/blobs/{digest}")).await).await;
    assert_eq!((status, code.as_str()), (StatusCode::NOT_FOUND, "BLOB_UNKNOWN"));
    let missing = sha256(b"never pushed");
    let (status, code) = error(r.get(&format!("/v2/lib/app/blobs/{missing}")).await).await;
    assert_eq!((status, code.as_str()), (StatusCode::NOT_FOUND, "BLOB_UNKNOWN"));
}

async fn chunked_upload_in_order_and_out_of_order(storage: TestStorage) {
    let r = serve(&storage, deletes_enabled()).await;
    // Larger than the registry's 4 MiB write pieces, of odd sizes.
    let first = pattern(9 * 1024 * 1024 + 3, 1);
    let second = pattern(1000, 2);
    let last = pattern(77, 3);
    let whole: Vec<u8> = [first.clone(), second.clone(), last.clone()].concat();
    let digest = sha256(&whole);

    let started = r.send("POST", "/v2/chunky/blobs/uploads/", &[], Vec::new()).await;
    assert_eq!(started.status(), StatusCode::ACCEPTED);
    let location = header(&started, "location");
    let id = header(&started, "docker-upload-uuid");
    assert_eq!(location, format!("/v2/chunky/blobs/uploads/{id}"));
    assert_eq!(header(&started, "range"), "0-0");
    let started_at = format!("{}/{id}/startedat", uploads_path("chunky"));
    assert!(storage.read(&started_at).await.is_some(), "{started_at}");

    // A range that disagrees with the body's length (and would overflow).
    let response = r
        .send(
            "PATCH",
            &location,
            &[("content-range", "0-18446744073709551615")],
            vec![0; 5],
        )
        .await;
    assert_eq!(
        error(response).await,
        (StatusCode::BAD_REQUEST, "SIZE_INVALID".to_string())
    );

    let range = format!("0-{}", first.len() - 1);
    let response = r
        .send(
            "PATCH",
            &location,
            &[("content-range", &range), ("content-type", "application/octet-stream")],
            first.clone(),
        )
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(header(&response, "range"), range);
    let location = header(&response, "location");

    // A chunk that does not start at the offset.
    let response = r
        .send("PATCH", &location, &[("content-range", "5-9")], vec![0; 5])
        .await;
    assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(&response, "range"), range);
    assert_eq!(error(response).await.1, "RANGE_INVALID");

    let status = r.get(&location).await;
    assert_eq!(status.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&status, "range"), range);

    // A streamed chunk, without Content-Range.
    let response = r.send("PATCH", &location, &[], second.clone()).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(
        header(&response, "range"),
        format!("0-{}", first.len() + second.len() - 1)
    );

    let response = r
        .send("PUT", &format!("{location}?digest={digest}"), &[], last.clone())
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(header(&response, "location"), format!("/v2/chunky/blobs/{digest}"));
    assert_eq!(header(&response, "docker-content-digest"), digest);

    let pulled = r.get(&format!("/v2/chunky/blobs/{digest}")).await;
    assert_eq!(pulled.bytes().await.unwrap().len(), whole.len());
    let (status, code) = error(r.get(&location).await).await;
    assert_eq!((status, code.as_str()), (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN"));
    let stored = storage.read(&blob_data_path(&digest)).await.expect("the blob's data");
    assert!(stored == whole, "the stored blob differs from what was uploaded");
    assert_eq!(storage.paths_under(&uploads_path("chunky")).await, Vec::<String>::new());
    assert_eq!(storage.multipart_uploads().await, Vec::<String>::new());
}

/// Chunks smaller than S3's 5 MiB minimum part, each in a PATCH of its own
/// (as `docker push` of a small layer, or a client with a small chunk size),
/// the offset asked after each: nothing may be lost between them.
async fn small_chunks_each_in_a_patch(storage: TestStorage) {
    let r = serve(&storage, deletes_enabled()).await;
    let chunks = [
        pattern(1024 * 1024 + 5, 4),
        pattern(5000, 5),
        pattern(3 * 1024 * 1024, 6),
        pattern(17, 7),
    ];
    let whole = chunks.concat();
    let digest = sha256(&whole);
    let started = r.send("POST", "/v2/small/blobs/uploads/", &[], Vec::new()).await;
    let mut location = header(&started, "location");
    let mut offset = 0;
    for (i, chunk) in chunks.iter().enumerate() {
        let range = format!("{offset}-{}", offset + chunk.len() - 1);
        let response = r
            .send("PATCH", &location, &[("content-range", &range)], chunk.clone())
            .await;
        assert_eq!(response.status(), StatusCode::ACCEPTED, "chunk {i}");
        offset += chunk.len();
        assert_eq!(header(&response, "range"), format!("0-{}", offset - 1), "chunk {i}");
        location = header(&response, "location");
        let status = r.get(&location).await;
        assert_eq!(header(&status, "range"), format!("0-{}", offset - 1), "after chunk {i}");
    }
    let response = r
        .send("PUT", &format!("{location}?digest={digest}"), &[], Vec::new())
        .await;
    assert_eq!(response.status(), StatusCode::CREATED, "{}", body_text(response).await);
    let pulled = r.get(&format!("/v2/small/blobs/{digest}")).await;
    assert!(pulled.bytes().await.unwrap() == whole, "the pulled blob differs");
    let stored = storage.read(&blob_data_path(&digest)).await.expect("the blob's data");
    assert!(stored == whole, "the stored blob differs from what was uploaded");
    assert_eq!(storage.paths_under(&uploads_path("small")).await, Vec::<String>::new());
    assert_eq!(storage.multipart_uploads().await, Vec::<String>::new());
}

async fn digest_mismatch_leaves_nothing_visible(storage: TestStorage) {
    let r = serve(&storage, deletes_enabled()).await;
    let content = b"these bytes".to_vec();
    let claimed = sha256(b"other bytes");
    let response = r
        .send(
            "POST",
            &format!("/v2/m/blobs/uploads/?digest={claimed}"),
            &[],
            content.clone(),
        )
        .await;
    assert_eq!(
        error(response).await,
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID".to_string())
    );

    let started = r.send("POST", "/v2/m/blobs/uploads/", &[], Vec::new()).await;
    let location = header(&started, "location");
    let response = r
        .send("PUT", &format!("{location}?digest={claimed}"), &[], content.clone())
        .await;
    assert_eq!(
        error(response).await,
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID".to_string())
    );
    // The failed upload is gone (as distribution does): the client starts over.
    assert_eq!(error(r.get(&location).await).await.1, "BLOB_UPLOAD_UNKNOWN");
    let response = r.send("PUT", &location, &[], Vec::new()).await;
    assert_eq!(error(response).await.1, "DIGEST_INVALID");

    for digest in [claimed, sha256(&content)] {
        assert_eq!(
            r.get(&format!("/v2/m/blobs/{digest}")).await.status(),
            StatusCode::NOT_FOUND
        );
        let data = blob_data_path(&digest);
        assert_eq!(storage.read(&data).await, None, "{data}");
    }
    // A digest the registry cannot verify.
    let response = r
        .send("POST", "/v2/m/blobs/uploads/?digest=md5:abc", &[], content)
        .await;
    assert_eq!(
        error(response).await,
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID".to_string())
    );
    assert_eq!(storage.paths_under(&uploads_path("m")).await, Vec::<String>::new());
    assert_eq!(
        storage.paths_under("docker/registry/v2/blobs").await,
        Vec::<String>::new()
    );
    // No part of the failed uploads lingers in the bucket (S3).
    assert_eq!(storage.multipart_uploads().await, Vec::<String>::new());
}

async fn cancelled_upload_is_gone(storage: TestStorage) {
    let r = serve(&storage, deletes_enabled()).await;
    let started = r.send("POST", "/v2/c/blobs/uploads/", &[], Vec::new()).await;
    let location = header(&started, "location");
    assert_eq!(
        r.send("PATCH", &location, &[], vec![1; 10]).await.status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        r.send("DELETE", &location, &[], Vec::new()).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(error(r.get(&location).await).await.1, "BLOB_UPLOAD_UNKNOWN");
    assert_eq!(
        error(r.send("PATCH", &location, &[], vec![1]).await).await.1,
        "BLOB_UPLOAD_UNKNOWN"
    );
    assert_eq!(
        error(r.get("/v2/c/blobs/uploads/not-an-upload").await).await,
        (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN".to_string())
    );
    // Nothing of it is left in storage, nor a multipart upload (S3).
    assert_eq!(storage.paths_under(&uploads_path("c")).await, Vec::<String>::new());
    assert_eq!(
        storage.paths_under("docker/registry/v2/blobs").await,
        Vec::<String>::new()
    );
    assert_eq!(storage.multipart_uploads().await, Vec::<String>::new());
}

async fn cross_repository_mount(storage: TestStorage) {
    let r = serve(&storage, deletes_enabled()).await;
    let digest = r.push_blob("src", b"shared layer").await;
    let response = r
        .send(
            "POST",
            &format!("/v2/dst/blobs/uploads/?mount={digest}&from=src"),
            &[],
            Vec::new(),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(header(&response, "location"), format!("/v2/dst/blobs/{digest}"));
    assert_eq!(
        r.get(&format!("/v2/dst/blobs/{digest}"))
            .await
            .bytes()
            .await
            .unwrap()
            .as_ref(),
        b"shared layer"
    );
    // Without `from`: the blob exists, so it is mounted all the same.
    let response = r
        .send(
            "POST",
            &format!("/v2/third/blobs/uploads/?mount={digest}"),
            &[],
            Vec::new(),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    // An unknown blob: a plain upload starts instead.
    let unknown = sha256(b"nowhere");
    let response = r
        .send(
            "POST",
            &format!("/v2/dst/blobs/uploads/?mount={unknown}&from=src"),
            &[],
            Vec::new(),
        )
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert!(header(&response, "location").starts_with("/v2/dst/blobs/uploads/"));
}

async fn manifests_by_tag_and_digest_keep_exact_bytes(storage: TestStorage) {
    let r = serve(&storage, deletes_enabled()).await;
    let manifest = r.image("a/b/c", "one").await;
    let digest = sha256(&manifest);

    let response = r.push_manifest("a/b/c", "v1", OCI_MANIFEST, &manifest).await;
    assert_eq!(response.status(), StatusCode::CREATED, "{}", body_text(response).await);
    assert_eq!(header(&response, "location"), format!("/v2/a/b/c/manifests/{digest}"));
    assert_eq!(header(&response, "docker-content-digest"), digest);
    assert_eq!(header(&response, "oci-subject"), "");

    for reference in ["v1", digest.as_str()] {
        let response = r.get(&format!("/v2/a/b/c/manifests/{reference}")).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "content-type"), OCI_MANIFEST);
        assert_eq!(header(&response, "docker-content-digest"), digest);
        assert_eq!(response.bytes().await.unwrap().as_ref(), manifest.as_slice());
        let head = r
            .send("HEAD", &format!("/v2/a/b/c/manifests/{reference}"), &[], Vec::new())
            .await;
        assert_eq!(head.status(), StatusCode::OK);
        assert_eq!(header(&head, "content-length"), manifest.len().to_string());
        assert_eq!(header(&head, "docker-content-digest"), digest);
    }
    let hex = &digest[7..];
    let base = format!("{}/_manifests", repository_path("a/b/c"));
    assert_eq!(storage.read_text(&format!("{base}/tags/v1/current/link")).await, digest);
    for link in [
        format!("{base}/tags/v1/index/sha256/{hex}/link"),
        format!("{base}/revisions/sha256/{hex}/link"),
    ] {
        assert_eq!(storage.read_text(&link).await, digest, "{link}");
    }
    assert_eq!(
        storage.read(&blob_data_path(&digest)).await.as_deref(),
        Some(manifest.as_slice())
    );

    // By digest; a Docker schema 2 manifest is served as one.
    let config = r.push_blob("a/b/c", b"{}").await;
    let docker = json!({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": config, "size": 2},
        "layers": []})
    .to_string()
    .into_bytes();
    let docker_digest = sha256(&docker);
    let response = r.push_manifest("a/b/c", &docker_digest, DOCKER_MANIFEST, &docker).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let response = r.get(&format!("/v2/a/b/c/manifests/{docker_digest}")).await;
    assert_eq!(header(&response, "content-type"), DOCKER_MANIFEST);

    // An index of the two.
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": digest, "size": manifest.len()},
        {"mediaType": DOCKER_MANIFEST, "digest": docker_digest, "size": docker.len()}]})
    .to_string()
    .into_bytes();
    assert_eq!(
        r.push_manifest("a/b/c", "multi", OCI_INDEX, &index).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        header(&r.get("/v2/a/b/c/manifests/multi").await, "content-type"),
        OCI_INDEX
    );

    // Accept: a type the client lists, or a wildcard, is served; a client
    // listing only other types is told the manifest is unknown to it.
    let accept = |value: &'static str| [("accept", value)];
    let listed = format!("{DOCKER_MANIFEST}, {OCI_MANIFEST};q=0.5");
    for value in [listed.as_str(), "*/*", "application/*", ""] {
        let response = r
            .send("GET", "/v2/a/b/c/manifests/v1", &[("accept", value)], Vec::new())
            .await;
        assert_eq!(response.status(), StatusCode::OK, "Accept: {value}");
        assert_eq!(header(&response, "content-type"), OCI_MANIFEST);
    }
    let response = r
        .send("GET", "/v2/a/b/c/manifests/multi", &accept(DOCKER_MANIFEST), Vec::new())
        .await;
    assert_eq!(
        error(response).await,
        (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN".to_string())
    );
    let response = r
        .send("HEAD", "/v2/a/b/c/manifests/v1", &accept("text/*"), Vec::new())
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    // Wrong digest in the URL, unknown tag, unknown digest.
    let response = r.push_manifest("a/b/c", &sha256(b"x"), OCI_MANIFEST, &manifest).await;
    assert_eq!(
        error(response).await,
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID".to_string())
    );
    assert_eq!(
        error(r.get("/v2/a/b/c/manifests/nope").await).await,
        (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN".to_string())
    );
    assert_eq!(
        error(r.get(&format!("/v2/a/b/c/manifests/{}", sha256(b"y"))).await)
            .await
            .1,
        "MANIFEST_UNKNOWN"
    );
    // Another repository does not see it.
    assert_eq!(r.get("/v2/a/b/manifests/v1").await.status(), StatusCode::NOT_FOUND);
}

async fn manifest_errors(storage: TestStorage) {
    let r = serve(&storage, deletes_enabled()).await;
    let config = r.push_blob("e", b"{}").await;
    let missing = sha256(b"missing layer");
    let manifest = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": missing, "size": 1}]})
    .to_string();
    let response = r.push_manifest("e", "t", OCI_MANIFEST, manifest.as_bytes()).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"][0]["code"], "MANIFEST_BLOB_UNKNOWN");
    assert_eq!(body["errors"][0]["detail"]["digest"], missing.as_str());

    // A blob of another repository does not count.
    let elsewhere = r.push_blob("other", b"layer").await;
    let manifest = manifest.replace(&missing, &elsewhere);
    assert_eq!(
        error(r.push_manifest("e", "t", OCI_MANIFEST, manifest.as_bytes()).await)
            .await
            .1,
        "MANIFEST_BLOB_UNKNOWN"
    );
    // An index of a manifest the repository lacks.
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": missing, "size": 1}]})
    .to_string();
    assert_eq!(
        error(r.push_manifest("e", "i", OCI_INDEX, index.as_bytes()).await)
            .await
            .1,
        "MANIFEST_BLOB_UNKNOWN"
    );
    for (bad, content_type) in [
        ("{not json".to_string(), OCI_MANIFEST),
        (
            json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST}).to_string(),
            OCI_MANIFEST,
        ),
        (json!({"schemaVersion": 2, "layers": []}).to_string(), "text/plain"),
    ] {
        assert_eq!(
            error(r.push_manifest("e", "t", content_type, bad.as_bytes()).await).await,
            (StatusCode::BAD_REQUEST, "MANIFEST_INVALID".to_string()),
            "{bad}"
        );
    }
    let huge = vec![b' '; 4 * 1024 * 1024 + 1];
    let response = r.push_manifest("e", "t", OCI_MANIFEST, &huge).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.get("/v2/e/manifests/t").await.status(), StatusCode::NOT_FOUND);
}

/// A filesystem root or a bucket that docker-registry filled is served as it is.
async fn existing_docker_registry_root_is_served(storage: TestStorage) {
    // Written straight into the backend, as docker-registry lays it out: a
    // manifest without a mediaType field, a tag, and a layer.
    let layer = b"old layer".to_vec();
    let layer_digest = sha256(&layer);
    let manifest = format!(
        "{{\"schemaVersion\":2,\"config\":{{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\
         \"digest\":\"{layer_digest}\",\"size\":9}},\"layers\":[]}}"
    )
    .into_bytes();
    let digest = sha256(&manifest);
    for (d, content) in [(&layer_digest, &layer), (&digest, &manifest)] {
        storage.write(&blob_data_path(d), content).await;
    }
    let repo = repository_path("old/image");
    for (path, content) in [
        (
            format!("{repo}/_layers/sha256/{}/link", &layer_digest[7..]),
            &layer_digest,
        ),
        (
            format!("{repo}/_manifests/revisions/sha256/{}/link", &digest[7..]),
            &digest,
        ),
        (format!("{repo}/_manifests/tags/latest/current/link"), &digest),
    ] {
        storage.write(&path, content.as_bytes()).await;
    }

    let r = serve(&storage, deletes_enabled()).await;
    let response = r.get("/v2/old/image/manifests/latest").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "content-type"), OCI_MANIFEST);
    assert_eq!(header(&response, "docker-content-digest"), digest);
    assert_eq!(response.bytes().await.unwrap().as_ref(), manifest.as_slice());
    let blob = r.get(&format!("/v2/old/image/blobs/{layer_digest}")).await;
    assert_eq!(blob.bytes().await.unwrap().as_ref(), layer.as_slice());
    let catalog: Value = r.get("/v2/_catalog").await.json().await.unwrap();
    assert_eq!(catalog["repositories"], json!(["old/image"]));
    let tags: Value = r.get("/v2/old/image/tags/list").await.json().await.unwrap();
    assert_eq!(tags, json!({"name": "old/image", "tags": ["latest"]}));
}

async fn tags_and_catalog_paginate_with_link(storage: TestStorage) {
    let r = serve(&storage, deletes_enabled()).await;
    let manifest = r.image("pag", "x").await;
    for tag in ["t3", "t1", "t5", "t2", "t4"] {
        assert_eq!(
            r.push_manifest("pag", tag, OCI_MANIFEST, &manifest).await.status(),
            StatusCode::CREATED
        );
    }
    let all: Value = r.get("/v2/pag/tags/list").await.json().await.unwrap();
    assert_eq!(all, json!({"name": "pag", "tags": ["t1", "t2", "t3", "t4", "t5"]}));

    let mut next = Some("/v2/pag/tags/list?n=2".to_string());
    let mut pages = Vec::new();
    while let Some(path) = next.take() {
        let response = r.get(&path).await;
        assert_eq!(response.status(), StatusCode::OK);
        let link = header(&response, "link");
        if !link.is_empty() {
            assert!(link.ends_with(">; rel=\"next\""), "{link}");
            next = Some(link[1..link.find('>').unwrap()].to_string());
        }
        let page: Value = response.json().await.unwrap();
        pages.push(page["tags"].clone());
    }
    assert_eq!(pages, vec![json!(["t1", "t2"]), json!(["t3", "t4"]), json!(["t5"])]);
    let after: Value = r.get("/v2/pag/tags/list?last=t4").await.json().await.unwrap();
    assert_eq!(after["tags"], json!(["t5"]));
    assert_eq!(
        error(r.get("/v2/nobody/tags/list").await).await,
        (StatusCode::NOT_FOUND, "NAME_UNKNOWN".to_string())
    );
    assert_eq!(
        error(r.get("/v2/pag/tags/list?n=x").await).await.0,
        StatusCode::BAD_REQUEST
    );

    for name in ["zeta", "alpha/one", "alpha/one/deeper", "mid-dle"] {
        r.push_blob(name, b"something").await;
    }
    // An upload in progress alone does not make a repository.
    let started = r
        .send("POST", "/v2/only-uploading/blobs/uploads/", &[], Vec::new())
        .await;
    assert_eq!(started.status(), StatusCode::ACCEPTED);
    let catalog: Value = r.get("/v2/_catalog").await.json().await.unwrap();
    assert_eq!(
        catalog["repositories"],
        json!(["alpha/one", "alpha/one/deeper", "mid-dle", "pag", "zeta"])
    );
    let response = r.get("/v2/_catalog?n=2").await;
    assert_eq!(
        header(&response, "link"),
        "</v2/_catalog?n=2&last=alpha/one/deeper>; rel=\"next\""
    );
    let first: Value = response.json().await.unwrap();
    assert_eq!(first["repositories"], json!(["alpha/one", "alpha/one/deeper"]));
    let response = r.get("/v2/_catalog?n=2&last=pag").await;
    assert_eq!(header(&response, "link"), "");
    let rest: Value = response.json().await.unwrap();
    assert_eq!(rest["repositories"], json!(["zeta"]));

    // Without `n`, a page of 100, as distribution answers, and a Link on.
    for i in 0..100 {
        r.push_blob(&format!("many/{i:03}"), b"something").await;
    }
    let response = r.get("/v2/_catalog").await;
    assert_eq!(
        header(&response, "link"),
        "</v2/_catalog?n=100&last=many/097>; rel=\"next\""
    );
    let first: Value = response.json().await.unwrap();
    assert_eq!(first["repositories"].as_array().unwrap().len(), 100);
    let rest: Value = r.get("/v2/_catalog?last=many/097").await.json().await.unwrap();
    assert_eq!(
        rest["repositories"],
        json!(["many/098", "many/099", "mid-dle", "pag", "zeta"])
    );
}

async fn referrers_with_and_without_filter(storage: TestStorage) {
    let r = serve(&storage, deletes_enabled()).await;
    let image = r.image("ref", "subject").await;
    let subject = sha256(&image);
    assert_eq!(
        r.push_manifest("ref", "v1", OCI_MANIFEST, &image).await.status(),
        StatusCode::CREATED
    );
    let empty = r.push_blob("ref", b"{}").await;
    let mut referrers = Vec::new();
    for (artifact_type, note) in [
        ("application/vnd.example.sig", "a"),
        ("application/vnd.example.sbom", "b"),
    ] {
        let artifact = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
            "layers": [],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": image.len()},
            "annotations": {"note": note}})
        .to_string()
        .into_bytes();
        let digest = sha256(&artifact);
        let response = r.push_manifest("ref", &digest, OCI_MANIFEST, &artifact).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(header(&response, "oci-subject"), subject);
        referrers.push((digest, artifact.len(), artifact_type));
    }

    let response = r.get(&format!("/v2/ref/referrers/{subject}")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "content-type"), OCI_INDEX);
    assert_eq!(header(&response, "oci-filters-applied"), "");
    let index: Value = response.json().await.unwrap();
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["mediaType"], OCI_INDEX);
    let mut found: Vec<(String, u64, String)> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            assert_eq!(d["mediaType"], OCI_MANIFEST);
            (
                d["digest"].as_str().unwrap().to_string(),
                d["size"].as_u64().unwrap(),
                d["artifactType"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    found.sort();
    let mut expected: Vec<(String, u64, String)> = referrers
        .iter()
        .map(|(d, len, t)| (d.clone(), *len as u64, t.to_string()))
        .collect();
    expected.sort();
    assert_eq!(found, expected);

    let response = r
        .get(&format!(
            "/v2/ref/referrers/{subject}?artifactType=application/vnd.example.sbom"
        ))
        .await;
    assert_eq!(header(&response, "oci-filters-applied"), "artifactType");
    let index: Value = response.json().await.unwrap();
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1);
    assert_eq!(manifests[0]["annotations"]["note"], "b");

    let nothing: Value = r
        .get(&format!("/v2/ref/referrers/{}", sha256(b"z")))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(nothing["manifests"], json!([]));
    assert_eq!(
        error(r.get("/v2/ref/referrers/sha256:short").await).await,
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID".to_string())
    );
}

async fn deletes_of_tags_manifests_and_blobs(storage: TestStorage) {
    let r = serve(&storage, deletes_enabled()).await;
    let manifest = r.image("del", "d").await;
    let digest = sha256(&manifest);
    for tag in ["keep", "drop", "also"] {
        r.push_manifest("del", tag, OCI_MANIFEST, &manifest).await;
    }
    // By tag: the tag only.
    let response = r.send("DELETE", "/v2/del/manifests/drop", &[], Vec::new()).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(r.get("/v2/del/manifests/drop").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        r.get(&format!("/v2/del/manifests/{digest}")).await.status(),
        StatusCode::OK
    );
    let tags: Value = r.get("/v2/del/tags/list").await.json().await.unwrap();
    assert_eq!(tags["tags"], json!(["also", "keep"]));
    // By digest: the manifest and the tags on it.
    let response = r
        .send("DELETE", &format!("/v2/del/manifests/{digest}"), &[], Vec::new())
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(
        r.get(&format!("/v2/del/manifests/{digest}")).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(r.get("/v2/del/manifests/keep").await.status(), StatusCode::NOT_FOUND);
    let response = r
        .send("DELETE", &format!("/v2/del/manifests/{digest}"), &[], Vec::new())
        .await;
    assert_eq!(error(response).await.1, "MANIFEST_UNKNOWN");

    let blob = r.push_blob("del", b"a blob to delete").await;
    let response = r
        .send("DELETE", &format!("/v2/del/blobs/{blob}"), &[], Vec::new())
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(
        r.get(&format!("/v2/del/blobs/{blob}")).await.status(),
        StatusCode::NOT_FOUND
    );
    let response = r
        .send("DELETE", &format!("/v2/del/blobs/{blob}"), &[], Vec::new())
        .await;
    assert_eq!(
        error(response).await,
        (StatusCode::NOT_FOUND, "BLOB_UNKNOWN".to_string())
    );
}

async fn deletes_disabled_and_read_only_mode(storage: TestStorage) {
    let r = serve(&storage, RegistryOptions::default()).await;
    let manifest = r.image("ro", "r").await;
    r.push_manifest("ro", "v1", OCI_MANIFEST, &manifest).await;
    let blob = r.push_blob("ro", b"blob").await;
    // A 405 names what the route still serves (RFC 9110).
    for (path, allow) in [
        ("/v2/ro/manifests/v1".to_string(), "GET, HEAD, PUT"),
        (format!("/v2/ro/blobs/{blob}"), "GET, HEAD"),
    ] {
        let response = r.send("DELETE", &path, &[], Vec::new()).await;
        assert_eq!(header(&response, "allow"), allow, "{path}");
        assert_eq!(
            error(response).await,
            (StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED".to_string())
        );
    }
    assert_eq!(r.get("/v2/ro/manifests/v1").await.status(), StatusCode::OK);
    drop(r);

    let read_only = RegistryOptions {
        read_only: true,
        delete_enabled: true,
        ..RegistryOptions::default()
    };
    let r = serve(&storage, read_only).await;
    assert_eq!(r.get("/v2/ro/manifests/v1").await.status(), StatusCode::OK);
    assert_eq!(r.get(&format!("/v2/ro/blobs/{blob}")).await.status(), StatusCode::OK);
    for (method, path, allow) in [
        ("POST", "/v2/ro/blobs/uploads/".to_string(), ""),
        ("PUT", "/v2/ro/manifests/v2".to_string(), "GET, HEAD"),
        ("DELETE", "/v2/ro/manifests/v1".to_string(), "GET, HEAD"),
        ("PATCH", "/v2/ro/blobs/uploads/abc".to_string(), "GET"),
    ] {
        let response = r.send(method, &path, &[], Vec::new()).await;
        assert_eq!(header(&response, "allow"), allow, "{method} {path}");
        assert_eq!(
            error(response).await,
            (StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED".to_string()),
            "{method} {path}"
        );
    }
}

async fn invalid_names_tags_and_digests_are_400(storage: TestStorage) {
    let r = serve(&storage, deletes_enabled()).await;
    let long = "a".repeat(256);
    let good = sha256(b"g");
    let cases = [
        ("GET", "/v2/Upper/tags/list".to_string(), "NAME_INVALID"),
        ("POST", "/v2/a__-b/blobs/uploads/".to_string(), "NAME_INVALID"),
        ("GET", format!("/v2/{long}/tags/list"), "NAME_INVALID"),
        ("GET", format!("/v2/-a/blobs/{good}"), "NAME_INVALID"),
        ("PUT", format!("/v2/a/manifests/{}", "t".repeat(129)), "TAG_INVALID"),
        ("GET", "/v2/a/blobs/sha256:1234".to_string(), "DIGEST_INVALID"),
        (
            "GET",
            format!("/v2/a/blobs/sha256:{}", "G".repeat(64)),
            "DIGEST_INVALID",
        ),
        ("GET", format!("/v2/a/blobs/md5:{}", "0".repeat(32)), "DIGEST_INVALID"),
        ("GET", "/v2/a/manifests/sha256:zz".to_string(), "DIGEST_INVALID"),
        (
            "PUT",
            "/v2/a/blobs/uploads/some-id?digest=sha256:00".to_string(),
            "DIGEST_INVALID",
        ),
    ];
    for (method, path, code) in cases {
        let response = r.send(method, &path, &[], Vec::new()).await;
        assert_eq!(
            error(response).await,
            (StatusCode::BAD_REQUEST, code.to_string()),
            "{method} {path}"
        );
    }
    // A reference that cannot be a tag names no manifest: only creating one
    // is a TAG_INVALID, reading or deleting it is a 404.
    for method in ["GET", "DELETE"] {
        let response = r.send(method, "/v2/a/manifests/.hidden", &[], Vec::new()).await;
        assert_eq!(
            error(response).await,
            (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN".to_string()),
            "{method}"
        );
    }
    let response = r.send("HEAD", "/v2/a/manifests/.hidden", &[], Vec::new()).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    // Paths an HTTP client would normalise, sent as they are.
    for path in [
        "/v2/a/%2e%2e/b/tags/list",
        "/v2/a/../b/tags/list",
        "/v2/a/..%2fb/manifests/x",
        "/v2/a/./b/manifests/x",
    ] {
        let (status, body) = raw_get(&r.url, path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains("NAME_INVALID"), "{path}: {body}");
    }
    // Nothing reached storage.
    assert_eq!(storage.paths_under("docker/registry/v2").await, Vec::<String>::new());
}

async fn chunked_upload_across_two_registries_sharing_storage(storage: TestStorage) {
    // Two registries, each with its own driver instance, on one storage: as
    // two replicas behind a load balancer.
    let a = serve(&storage, deletes_enabled()).await;
    let b = serve(&storage, deletes_enabled()).await;
    let chunks = [pattern(3 * 1024 * 1024 + 1, 1), pattern(5000, 2), pattern(17, 3)];
    let whole = chunks.concat();
    let digest = sha256(&whole);

    let started = a.send("POST", "/v2/shared/blobs/uploads/", &[], Vec::new()).await;
    let mut location = header(&started, "location");
    let mut offset = 0;
    for (i, chunk) in chunks.iter().enumerate() {
        let (to, from) = if i % 2 == 0 { (&b, &a) } else { (&a, &b) };
        let range = format!("{offset}-{}", offset + chunk.len() - 1);
        let response = to
            .send("PATCH", &location, &[("content-range", &range)], chunk.clone())
            .await;
        assert_eq!(response.status(), StatusCode::ACCEPTED, "chunk {i}");
        offset += chunk.len();
        assert_eq!(header(&response, "range"), format!("0-{}", offset - 1));
        location = header(&response, "location");
        // The other replica sees the same offset.
        let status = from.get(&location).await;
        assert_eq!(header(&status, "range"), format!("0-{}", offset - 1));
    }
    let response = a
        .send("PUT", &format!("{location}?digest={digest}"), &[], Vec::new())
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let pulled = b.get(&format!("/v2/shared/blobs/{digest}")).await;
    assert_eq!(pulled.bytes().await.unwrap().as_ref(), whole.as_slice());
    assert_eq!(storage.paths_under(&uploads_path("shared")).await, Vec::<String>::new());
    assert_eq!(storage.multipart_uploads().await, Vec::<String>::new());
}

async fn purge_removes_only_stale_uploads(storage: TestStorage) {
    let r = serve(&storage, deletes_enabled()).await;
    let mut ids = Vec::new();
    for name in ["p/one", "p/two"] {
        let started = r
            .send("POST", &format!("/v2/{name}/blobs/uploads/"), &[], Vec::new())
            .await;
        ids.push((name, header(&started, "docker-upload-uuid")));
    }
    assert_eq!(
        r.berth
            .registry
            .purge_uploads(Duration::from_secs(3600))
            .await
            .unwrap()
            .uploads,
        0
    );
    // Age the first upload as distribution would have written it.
    let (name, id) = &ids[0];
    let upload = format!("{}/{id}", uploads_path(name));
    let started_at = format!("{upload}/startedat");
    assert!(storage.read_text(&started_at).await.ends_with('Z'));
    let other_upload = format!("{}/{}", uploads_path(ids[1].0), ids[1].1);
    assert_ne!(storage.paths_under(&other_upload).await, Vec::<String>::new());
    storage.write(&started_at, b"2020-01-02T03:04:05+01:00").await;
    assert_eq!(
        r.berth
            .registry
            .purge_uploads(Duration::from_secs(3600))
            .await
            .unwrap()
            .uploads,
        1
    );
    assert_eq!(storage.paths_under(&upload).await, Vec::<String>::new());
    if let Some(root) = storage.root() {
        assert!(!root.join(&upload).exists(), "the directory of the purged upload");
    }
    assert_ne!(storage.paths_under(&other_upload).await, Vec::<String>::new());
    let (other, other_id) = &ids[1];
    let status = r.get(&format!("/v2/{other}/blobs/uploads/{other_id}")).await;
    assert_eq!(status.status(), StatusCode::NO_CONTENT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_and_pull_on_the_inmemory_driver() {
    bounded(async {
        let host = PluginHost::new(PluginHostOptions::default()).expect("plugin host");
        let driver = open_driver(&host, "inmemory", Vec::new())
            .await
            .expect("inmemory driver");
        let r = Served::new(Berth::serve_driver(host, driver, deletes_enabled()).await);
        let (first, last) = (pattern(5 * 1024 * 1024 + 9, 4), pattern(10, 5));
        let digest = sha256(&[first.clone(), last.clone()].concat());
        let started = r.send("POST", "/v2/mem/blobs/uploads/", &[], Vec::new()).await;
        let response = r.send("PATCH", &header(&started, "location"), &[], first).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let location = header(&response, "location");
        let response = r.send("PUT", &format!("{location}?digest={digest}"), &[], last).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let head = r
            .send("HEAD", &format!("/v2/mem/blobs/{digest}"), &[], Vec::new())
            .await;
        assert_eq!(header(&head, "content-length"), (5 * 1024 * 1024 + 19).to_string());

        let manifest = r.image("mem", "m").await;
        assert_eq!(
            r.push_manifest("mem", "latest", OCI_MANIFEST, &manifest).await.status(),
            StatusCode::CREATED
        );
        let pulled = r.get("/v2/mem/manifests/latest").await;
        assert_eq!(pulled.bytes().await.unwrap().as_ref(), manifest.as_slice());
        let catalog: Value = r.get("/v2/_catalog").await.json().await.unwrap();
        assert_eq!(catalog["repositories"], json!(["mem"]));
    })
    .await;
}

/// One instance per request, and a blob GET or HEAD or a manifest GET in
/// one call into the filesystem plugin once the digest's size and bytes are
/// cached: the link is read, the rest is known (the plugin's fixed answers
/// and the content cache).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_cost_at_most_one_instance() {
    bounded(async {
        let root = tempfile::tempdir().expect("temp dir");
        let host = PluginHost::new(PluginHostOptions::default()).expect("plugin host");
        let parameters = common::storage::filesystem_parameters(root.path());
        let driver = open_driver(&host, "filesystem", parameters.clone())
            .await
            .expect("filesystem driver");
        // The same storage read through the plugin's own calls.
        let plugin_host = PluginHost::new(PluginHostOptions::default()).expect("plugin host");
        let through_plugin = open_driver_reading(&plugin_host, "filesystem", parameters, ReadPath::PluginReader)
            .await
            .expect("filesystem driver");
        let usage = |driver: &std::sync::Arc<dyn berth::storage::StorageDriver>| {
            let driver = driver.clone();
            move || driver.plugin_usage().expect("a plugin")
        };
        let (usage, plugin_usage) = (usage(&driver), usage(&through_plugin));
        let r = Served::new(Berth::serve_driver(host, driver, RegistryOptions::default()).await);
        let cost =
            |before: PluginUsage, after: PluginUsage| (after.instances - before.instances, after.calls - before.calls);

        let content = pattern(300_000, 3);
        let digest = sha256(&content);
        let started = r.send("POST", "/v2/cost/blobs/uploads/", &[], Vec::new()).await;
        let before = usage();
        let patched = r
            .send("PATCH", &header(&started, "location"), &[], content.clone())
            .await;
        assert_eq!(patched.status(), StatusCode::ACCEPTED);
        // The host writes the upload into the driver's directory itself,
        // and reads `startedat` there: no plugin call at all.
        assert_eq!(cost(before, usage()), (0, 0), "a PATCH on the filesystem driver");
        let location = header(&patched, "location");
        let put = r
            .send("PUT", &format!("{location}?digest={digest}"), &[], Vec::new())
            .await;
        assert_eq!(put.status(), StatusCode::CREATED);
        let manifest = r.image("cost", "c").await;
        assert_eq!(
            r.push_manifest("cost", "v1", OCI_MANIFEST, &manifest).await.status(),
            StatusCode::CREATED
        );

        // Reads come from the driver's directory: no plugin call at all.
        // Through the plugin's calls, each request has one instance.
        let p = Served::new(Berth::serve_driver(plugin_host, through_plugin, RegistryOptions::default()).await);
        let blob = format!("/v2/cost/blobs/{digest}");
        let by_digest = format!("/v2/cost/manifests/{}", sha256(&manifest));
        for (method, path) in [("HEAD", &blob), ("GET", &blob), ("GET", &blob), ("GET", &by_digest)]
            .into_iter()
            .chain([("GET", &"/v2/cost/manifests/v1".to_string())])
        {
            for (served, usage, want) in [(&r, &usage, Some((0, 0))), (&p, &plugin_usage, None)] {
                let before = usage();
                let response = served.send(method, path, &[], Vec::new()).await;
                assert_eq!(response.status(), StatusCode::OK);
                if method == "GET" && path == &blob {
                    assert_eq!(response.bytes().await.unwrap().as_ref(), content.as_slice());
                }
                let (instances, calls) = cost(before, usage());
                match want {
                    Some(want) => assert_eq!((instances, calls), want, "{method} {path}"),
                    None => assert!(instances == 1 && calls >= 1, "{method} {path}: {instances} instances"),
                }
            }
        }

        // Through the plugin's own calls a PATCH instantiates once: `writer`,
        // `size`, one `write` (the body is under the 4 MiB piece size),
        // `close`, and `get-content` of `startedat`.
        let started = p.send("POST", "/v2/cost/blobs/uploads/", &[], Vec::new()).await;
        let before = plugin_usage();
        let patched = p
            .send("PATCH", &header(&started, "location"), &[], content.clone())
            .await;
        assert_eq!(patched.status(), StatusCode::ACCEPTED);
        assert_eq!(cost(before, plugin_usage()), (1, 5), "a PATCH through the plugin");

        // Background work has no request: every call its own instance.
        let before = usage();
        r.berth
            .registry
            .purge_uploads(Duration::from_secs(3600))
            .await
            .expect("purge");
        let (instances, calls) = cost(before, usage());
        assert_eq!(instances, calls, "outside a request, one instance per call");
    })
    .await;
}

/// `<algorithm>:<hex>` of `content` in sha512.
fn sha512(content: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha512:{}", hex::encode(sha2::Sha512::digest(content)))
}

/// Every value of the header `name`, split at commas (RFC 9110's lists).
fn header_list(response: &Response, name: &str) -> Vec<String> {
    response
        .headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_string())
        .collect()
}

/// `PUT /v2/<name>/manifests/<digest>?tag=...` (the spec's main branch).
async fn push_by_digest_with_tag_parameters(storage: TestStorage) {
    let r = serve(&storage, deletes_enabled()).await;
    let manifest = r.image("tp", "tagged").await;
    let digest = sha256(&manifest);
    let put = |query: String, bytes: Vec<u8>| {
        let r = &r;
        async move {
            let digest = sha256(&bytes);
            r.push_manifest("tp", &format!("{digest}?{query}"), OCI_MANIFEST, &bytes)
                .await
        }
    };
    let response = put("tag=1.2.3&tag=1.2&tag=latest&tag=1.2".into(), manifest.clone()).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(header(&response, "location"), format!("/v2/tp/manifests/{digest}"));
    assert_eq!(header(&response, "docker-content-digest"), digest);
    assert_eq!(header_list(&response, "oci-tag"), ["1.2.3", "1.2", "latest"]);
    for tag in ["1.2.3", "1.2", "latest"] {
        let pulled = r.get(&format!("/v2/tp/manifests/{tag}")).await;
        assert_eq!(header(&pulled, "docker-content-digest"), digest, "{tag}");
        assert_eq!(pulled.bytes().await.unwrap().as_ref(), manifest.as_slice());
    }
    let tags: Value = r.get("/v2/tp/tags/list").await.json().await.unwrap();
    assert_eq!(tags["tags"], json!(["1.2", "1.2.3", "latest"]));

    // One bad tag: nothing of the push is stored.
    let other = r.image("tp", "refused").await;
    let response = put("tag=fine&tag=-bad".into(), other.clone()).await;
    assert_eq!(
        error(response).await,
        (StatusCode::BAD_REQUEST, "TAG_INVALID".to_string())
    );
    assert_eq!(
        r.get(&format!("/v2/tp/manifests/{}", sha256(&other))).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(r.get("/v2/tp/manifests/fine").await.status(), StatusCode::NOT_FOUND);
    // A dependency missing: neither the manifest nor its tags.
    let missing = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(b"absent"), "size": 6},
        "layers": []})
    .to_string()
    .into_bytes();
    let response = put("tag=latest&tag=new".into(), missing).await;
    assert_eq!(
        error(response).await,
        (StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN".to_string())
    );
    let latest = r.get("/v2/tp/manifests/latest").await;
    assert_eq!(header(&latest, "docker-content-digest"), digest, "latest did not move");
    assert_eq!(r.get("/v2/tp/manifests/new").await.status(), StatusCode::NOT_FOUND);
    // Tag parameters go with a push by digest only; more than 100 is 414.
    let response = r.push_manifest("tp", "v1?tag=v2", OCI_MANIFEST, &manifest).await;
    assert_eq!(
        error(response).await,
        (StatusCode::BAD_REQUEST, "TAG_INVALID".to_string())
    );
    let many: Vec<String> = (0..101).map(|n| format!("tag=t{n}")).collect();
    let response = put(many.join("&"), manifest.clone()).await;
    assert_eq!(response.status(), StatusCode::URI_TOO_LONG);
    let repeated = vec!["tag=again"; 101].join("&");
    let response = put(repeated, manifest.clone()).await;
    assert_eq!(header_list(&response, "oci-tag"), ["again"]);
    let ten: Vec<String> = (0..10).map(|n| format!("tag=t{n}")).collect();
    let response = put(ten.join("&"), manifest.clone()).await;
    assert_eq!(header_list(&response, "oci-tag").len(), 10);
}

/// sha512 from upload to referrers: `?digest-algorithm=`, chunks, the
/// layout's `blobs/sha512`, HEAD and GET, mount, a manifest pushed by its
/// sha512 digest (tagged by parameter), a referrer of it, deletes.
async fn sha512_content_end_to_end(storage: TestStorage) {
    let r = serve(&storage, deletes_enabled()).await;
    let content = pattern(300_000, 5);
    let digest = sha512(&content);
    let started = r
        .send(
            "POST",
            "/v2/long/blobs/uploads/?digest-algorithm=sha512",
            &[],
            Vec::new(),
        )
        .await;
    assert_eq!(started.status(), StatusCode::ACCEPTED);
    let location = header(&started, "location");
    let (first, last) = content.split_at(100_000);
    let patched = r
        .send("PATCH", &location, &[("content-range", "0-99999")], first.to_vec())
        .await;
    assert_eq!(patched.status(), StatusCode::ACCEPTED);
    let location = header(&patched, "location");
    // A closing chunk that does not start where the upload is: 416.
    let wrong = r
        .send(
            "PUT",
            &format!("{location}?digest={digest}"),
            &[("content-range", "5-200004")],
            last.to_vec(),
        )
        .await;
    assert_eq!(
        error(wrong).await,
        (StatusCode::RANGE_NOT_SATISFIABLE, "RANGE_INVALID".to_string())
    );
    let put = r
        .send(
            "PUT",
            &format!("{location}?digest={digest}"),
            &[("content-range", "100000-299999")],
            last.to_vec(),
        )
        .await;
    assert_eq!(put.status(), StatusCode::CREATED, "{}", body_text(put).await);
    assert_eq!(
        storage.read(&blob_data_path(&digest)).await.as_deref(),
        Some(content.as_slice())
    );
    let head = r
        .send("HEAD", &format!("/v2/long/blobs/{digest}"), &[], Vec::new())
        .await;
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(header(&head, "content-length"), content.len().to_string());
    assert_eq!(header(&head, "docker-content-digest"), digest);
    let got = r.get(&format!("/v2/long/blobs/{digest}")).await;
    assert_eq!(got.bytes().await.unwrap().as_ref(), content.as_slice());

    // Monolithic, the algorithm named twice; refused algorithms.
    let config = b"{\"architecture\":\"amd64\",\"os\":\"linux\"}".to_vec();
    let config_digest = sha512(&config);
    let response = r
        .send(
            "POST",
            &format!("/v2/long/blobs/uploads/?digest-algorithm=sha512&digest={config_digest}"),
            &[],
            config.clone(),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(header(&response, "docker-content-digest"), config_digest);
    for query in [
        "digest-algorithm=md5".to_string(),
        format!("digest-algorithm=sha512&digest={}", sha256(&config)),
    ] {
        let response = r
            .send("POST", &format!("/v2/long/blobs/uploads/?{query}"), &[], config.clone())
            .await;
        assert_eq!(
            error(response).await,
            (StatusCode::BAD_REQUEST, "DIGEST_INVALID".to_string()),
            "{query}"
        );
    }
    let mounted = r
        .send(
            "POST",
            &format!("/v2/other/blobs/uploads/?mount={digest}&from=long"),
            &[],
            Vec::new(),
        )
        .await;
    assert_eq!(mounted.status(), StatusCode::CREATED);
    assert_eq!(header(&mounted, "location"), format!("/v2/other/blobs/{digest}"));

    let manifest = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": content.len()}]})
    .to_string()
    .into_bytes();
    let manifest_digest = sha512(&manifest);
    let response = r
        .push_manifest("long", &format!("{manifest_digest}?tag=v1"), OCI_MANIFEST, &manifest)
        .await;
    assert_eq!(response.status(), StatusCode::CREATED, "{}", body_text(response).await);
    let pulled = r.get("/v2/long/manifests/v1").await;
    assert_eq!(header(&pulled, "docker-content-digest"), manifest_digest);
    assert_eq!(pulled.bytes().await.unwrap().as_ref(), manifest.as_slice());
    assert!(storage.read(&blob_data_path(&manifest_digest)).await.is_some());

    let referrer = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.example.sig",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [],
        "subject": {"mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": manifest.len()}})
    .to_string()
    .into_bytes();
    let referrer_digest = sha512(&referrer);
    let response = r.push_manifest("long", &referrer_digest, OCI_MANIFEST, &referrer).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(header(&response, "oci-subject"), manifest_digest);
    let index: Value = r
        .get(&format!("/v2/long/referrers/{manifest_digest}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(index["manifests"][0]["digest"], referrer_digest.as_str());
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);

    let deleted = r
        .send(
            "DELETE",
            &format!("/v2/long/manifests/{referrer_digest}"),
            &[],
            Vec::new(),
        )
        .await;
    assert_eq!(deleted.status(), StatusCode::ACCEPTED);
    let deleted = r
        .send("DELETE", &format!("/v2/other/blobs/{digest}"), &[], Vec::new())
        .await;
    assert_eq!(deleted.status(), StatusCode::ACCEPTED);
    assert_eq!(
        r.get(&format!("/v2/other/blobs/{digest}")).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        r.get(&format!("/v2/long/blobs/{digest}")).await.status(),
        StatusCode::OK
    );
}

/// `validation.manifests.indexes`: an index whose absent manifests are of
/// platforms nobody requires is stored; one missing a required manifest is
/// MANIFEST_BLOB_UNKNOWN naming it.
async fn sparse_indexes_by_platform(storage: TestStorage) {
    use berth::config::{IndexPlatforms, IndexValidationConfig, PlatformConfig};
    let with = |platforms, platformlist| RegistryOptions {
        index_children: IndexValidationConfig {
            platforms,
            platformlist,
        },
        ..deletes_enabled()
    };
    let amd64 = PlatformConfig {
        architecture: "amd64".into(),
        os: "linux".into(),
    };
    let all = serve(&storage, deletes_enabled()).await;
    let list = serve(&storage, with(IndexPlatforms::List, vec![amd64])).await;
    let none = serve(&storage, with(IndexPlatforms::None, Vec::new())).await;

    let image = all.image("multi", "amd64").await;
    assert_eq!(
        all.push_manifest("multi", &sha256(&image), OCI_MANIFEST, &image)
            .await
            .status(),
        StatusCode::CREATED
    );
    let absent = sha256(b"the arm64 image, not mirrored");
    let child = |digest: &str, architecture: &str| {
        json!({"mediaType": OCI_MANIFEST, "digest": digest, "size": 100,
               "platform": {"architecture": architecture, "os": "linux"}})
    };
    let index = |children: Vec<Value>| {
        json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children})
            .to_string()
            .into_bytes()
    };
    let sparse = index(vec![child(&sha256(&image), "amd64"), child(&absent, "arm64")]);
    let refused = all.push_manifest("multi", "sparse", OCI_INDEX, &sparse).await;
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "MANIFEST_BLOB_UNKNOWN");
    assert_eq!(body["errors"][0]["detail"]["digest"], absent.as_str());
    let stored = list.push_manifest("multi", "sparse", OCI_INDEX, &sparse).await;
    assert_eq!(stored.status(), StatusCode::CREATED);
    assert_eq!(
        all.get("/v2/multi/manifests/sparse")
            .await
            .bytes()
            .await
            .unwrap()
            .as_ref(),
        sparse.as_slice()
    );
    // The required platform's manifest absent: refused even with a list.
    let amd64_absent = index(vec![child(&absent, "amd64")]);
    let refused = list.push_manifest("multi", "broken", OCI_INDEX, &amd64_absent).await;
    assert_eq!(
        error(refused).await,
        (StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN".to_string())
    );
    let stored = none.push_manifest("multi", "broken", OCI_INDEX, &amd64_absent).await;
    assert_eq!(stored.status(), StatusCode::CREATED);
}

/// What the main branch's reading of RFC 9110 and its own text asks of
/// responses beyond v1.1: `Allow` on a 405, no `Content-Length` on a 204,
/// a HEAD answered whole despite `Range`, tags of a repository without any,
/// and a referrer's empty `artifactType` replaced by its config's type.
async fn responses_follow_the_main_branch(storage: TestStorage) {
    let r = serve(&storage, deletes_enabled()).await;
    let refused = r.send("POST", "/v2/a/tags/list", &[], Vec::new()).await;
    assert_eq!(refused.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(header(&refused, "allow"), "GET, HEAD");
    let refused = r.send("PATCH", "/v2/a/manifests/v1", &[], Vec::new()).await;
    assert_eq!(header(&refused, "allow"), "GET, HEAD, PUT, DELETE");

    let started = r.send("POST", "/v2/semantics/blobs/uploads/", &[], Vec::new()).await;
    assert_eq!(started.status(), StatusCode::ACCEPTED);
    assert_eq!(header(&started, "content-length"), "0");
    let location = header(&started, "location");
    let status = r.get(&location).await;
    assert_eq!(status.status(), StatusCode::NO_CONTENT);
    assert!(
        status.headers().get("content-length").is_none(),
        "{:?}",
        status.headers()
    );
    let cancelled = r.send("DELETE", &location, &[], Vec::new()).await;
    assert_eq!(cancelled.status(), StatusCode::NO_CONTENT);
    assert!(
        cancelled.headers().get("content-length").is_none(),
        "{:?}",
        cancelled.headers()
    );

    // A chunk sent without Content-Length is measured against its
    // Content-Range: 5 bytes said to be 10 are refused.
    let started = r.send("POST", "/v2/semantics/blobs/uploads/", &[], Vec::new()).await;
    let location = header(&started, "location");
    let (status, body) = raw_request(
        &r.url,
        &format!("PATCH {location} HTTP/1.1\r\n"),
        "Content-Range: 0-9\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("SIZE_INVALID"), "{body}");
    let (status, body) = raw_request(
        &r.url,
        &format!("PATCH {location} HTTP/1.1\r\n"),
        "Content-Range: 5-9\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nworld\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(status, 202, "the first chunk's bytes are kept: {body}");

    let digest = r.push_blob("semantics", &pattern(1000, 3)).await;
    let head = r
        .send(
            "HEAD",
            &format!("/v2/semantics/blobs/{digest}"),
            &[("range", "bytes=0-9")],
            Vec::new(),
        )
        .await;
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(header(&head, "content-length"), "1000");
    // A repository with content and no tag has an empty list; none is 404.
    let tags: Value = r.get("/v2/semantics/tags/list").await.json().await.unwrap();
    assert_eq!(tags, json!({"name": "semantics", "tags": []}));
    assert_eq!(
        error(r.get("/v2/nothing/tags/list").await).await,
        (StatusCode::NOT_FOUND, "NAME_UNKNOWN".to_string())
    );

    let image = r.image("semantics", "subject").await;
    let subject = sha256(&image);
    assert_eq!(
        r.push_manifest("semantics", &subject, OCI_MANIFEST, &image)
            .await
            .status(),
        StatusCode::CREATED
    );
    let config = r.push_blob("semantics", b"{}").await;
    let artifact = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "",
        "config": {"mediaType": "application/vnd.example.config", "digest": config, "size": 2},
        "layers": [], "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": image.len()}})
    .to_string()
    .into_bytes();
    let pushed = r
        .push_manifest("semantics", &sha256(&artifact), OCI_MANIFEST, &artifact)
        .await;
    assert_eq!(pushed.status(), StatusCode::CREATED);
    let index: Value = r
        .get(&format!("/v2/semantics/referrers/{subject}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(index["manifests"][0]["artifactType"], "application/vnd.example.config");
}

// Every test body above on both storages. Only the inmemory test stays out:
// it is about that driver, not about a storage a test chooses.
on_every_storage!(
    base_endpoint_and_unknown_paths,
    monolithic_upload_then_pull_with_ranges,
    chunked_upload_in_order_and_out_of_order,
    small_chunks_each_in_a_patch,
    digest_mismatch_leaves_nothing_visible,
    cancelled_upload_is_gone,
    cross_repository_mount,
    manifests_by_tag_and_digest_keep_exact_bytes,
    manifest_errors,
    existing_docker_registry_root_is_served,
    tags_and_catalog_paginate_with_link,
    referrers_with_and_without_filter,
    deletes_of_tags_manifests_and_blobs,
    deletes_disabled_and_read_only_mode,
    invalid_names_tags_and_digests_are_400,
    chunked_upload_across_two_registries_sharing_storage,
    purge_removes_only_stale_uploads,
    push_by_digest_with_tag_parameters,
    sha512_content_end_to_end,
    sparse_indexes_by_platform,
    responses_follow_the_main_branch,
);

/// A tag write that fails during a push (a file stands where the tag's
/// history folder goes; only a filesystem can be made to fail so): the tag
/// already moved is moved back, the one made is gone, the new revision is
/// removed. The push leaves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_whose_tag_write_fails_leaves_nothing() {
    bounded(async {
        let storage = TestStorage::new(StorageKind::Filesystem).await;
        let r = serve(&storage, deletes_enabled()).await;
        let old = r.image("undo", "old").await;
        let old_digest = sha256(&old);
        assert_eq!(
            r.push_manifest("undo", "a", OCI_MANIFEST, &old).await.status(),
            StatusCode::CREATED
        );
        let new = r.image("undo", "new").await;
        let new_digest = sha256(&new);
        let in_the_way = format!("{}/_manifests/tags/c/index", repository_path("undo"));
        storage.write(&in_the_way, b"not a folder").await;

        let query = format!("{new_digest}?tag=a&tag=b&tag=c");
        let response = r.push_manifest("undo", &query, OCI_MANIFEST, &new).await;
        assert!(response.status().is_server_error(), "{}", response.status());
        let a = r.get("/v2/undo/manifests/a").await;
        assert_eq!(header(&a, "docker-content-digest"), old_digest, "a moved back");
        assert_eq!(r.get("/v2/undo/manifests/b").await.status(), StatusCode::NOT_FOUND);
        let by_digest = r.get(&format!("/v2/undo/manifests/{new_digest}")).await;
        assert_eq!(by_digest.status(), StatusCode::NOT_FOUND);
        let tags: Value = r.get("/v2/undo/tags/list").await.json().await.unwrap();
        assert_eq!(tags["tags"], json!(["a"]));
    })
    .await;
}
