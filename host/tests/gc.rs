//! `berth gc` against Debian's `docker-registry garbage-collect` (CNCF
//! distribution 2.8) on copies of one registry root pushed through `berth
//! serve`: both delete the same blobs, and what is left still pulls. And
//! `berth storage check`, which finds what is corrupt or dangling there.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::http::{request, sha256_hex};
use common::s3::Moto;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// `berth serve` on a filesystem root; killed when dropped.
struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(dir: &Path, root: &Path) -> PathBuf {
    let path = dir.join(format!("config-{}.yml", root.file_name().unwrap().to_string_lossy()));
    let yaml = format!(
        "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n",
        root.display()
    );
    std::fs::write(&path, yaml).expect("config");
    path
}

fn serve(dir: &Path, root: &Path) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["serve", "--config"])
        .arg(config(dir, root))
        .env("REGISTRY_HTTP_ADDR", &addr)
        .env("BERTH_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("berth serve");
    let server = Server { child, addr };
    let deadline = Instant::now() + Duration::from_secs(30);
    while request(&server.addr, "GET", "/v2/", &[], b"").map(|r| r.status) != Some(200) {
        assert!(Instant::now() < deadline, "berth serve did not answer within 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

/// Pushes `data` as a blob of `repository`; its digest.
fn blob(addr: &str, repository: &str, data: &[u8]) -> String {
    let digest = format!("sha256:{}", sha256_hex(data));
    let path = format!("/v2/{repository}/blobs/uploads/?digest={digest}");
    let reply = request(addr, "POST", &path, &[], data).expect("POST");
    assert_eq!(reply.status, 201, "{}", reply.head);
    digest
}

fn descriptor(media_type: &str, digest: &str, size: usize) -> String {
    format!(r#"{{"mediaType":"{media_type}","digest":"{digest}","size":{size}}}"#)
}

/// PUTs a manifest by `reference` (a tag, or its digest); its digest.
fn manifest(addr: &str, repository: &str, reference: Option<&str>, media_type: &str, body: &str) -> String {
    let digest = format!("sha256:{}", sha256_hex(body.as_bytes()));
    let path = format!("/v2/{repository}/manifests/{}", reference.unwrap_or(&digest));
    let reply = request(addr, "PUT", &path, &[("Content-Type", media_type)], body.as_bytes()).expect("PUT");
    assert_eq!(reply.status, 201, "{path}: {}", String::from_utf8_lossy(&reply.body));
    digest
}

/// An image of a fresh config and `layers`, its manifest pushed as `tag`
/// (by digest without one), with `extra` JSON members; (manifest digest,
/// config digest, manifest size).
fn image(addr: &str, repository: &str, tag: Option<&str>, layers: &[&[u8]], extra: &str) -> (String, String, usize) {
    // The config names the layers, so that two images share none.
    let named = sha256_hex(&layers.concat());
    let config_bytes = format!(r#"{{"architecture":"amd64","os":"linux","note":"{repository} {named}"}}"#);
    let config = blob(addr, repository, config_bytes.as_bytes());
    let layers: Vec<String> = layers
        .iter()
        .map(|data| {
            descriptor(
                "application/vnd.oci.image.layer.v1.tar",
                &blob(addr, repository, data),
                data.len(),
            )
        })
        .collect();
    let body = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{},"layers":[{}]{extra}}}"#,
        descriptor("application/vnd.oci.image.config.v1+json", &config, config_bytes.len()),
        layers.join(",")
    );
    (manifest(addr, repository, tag, OCI_MANIFEST, &body), config, body.len())
}

/// The digests whose data the root holds.
fn blobs_in(root: &Path) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let blobs = root.join("docker/registry/v2/blobs/sha256");
    for prefix in std::fs::read_dir(&blobs).into_iter().flatten().flatten() {
        for entry in std::fs::read_dir(prefix.path()).into_iter().flatten().flatten() {
            if entry.path().join("data").is_file() {
                found.insert(format!("sha256:{}", entry.file_name().to_string_lossy()));
            }
        }
    }
    found
}

fn copy(from: &Path, to: &Path) {
    let status = Command::new("cp").arg("-a").arg(from).arg(to).status().expect("cp");
    assert!(status.success());
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn berth_gc(config: &Path, flags: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("gc")
        .args(flags)
        .arg("--config")
        .arg(config)
        .output()
        .expect("berth gc");
    assert!(output.status.success(), "berth gc {flags:?}: {}", text(&output));
    text(&output)
}

/// distribution's garbage-collect; its s3 driver panics when
/// AWS_CA_BUNDLE is set, whatever the storage.
fn reference_gc(config: &Path, flags: &[&str]) {
    let output = Command::new("docker-registry")
        .arg("garbage-collect")
        .args(flags)
        .arg(config)
        .env_remove("AWS_CA_BUNDLE")
        .output()
        .expect("docker-registry (apt-get install docker-registry)");
    assert!(
        output.status.success(),
        "docker-registry garbage-collect {flags:?}: {}",
        text(&output)
    );
}

/// Runs both collectors with `flags` on copies of `root`; the blobs berth
/// kept (the same as distribution's) and berth's output.
fn both(dir: &Path, root: &Path, name: &str, flags: &[&str]) -> (BTreeSet<String>, String, PathBuf) {
    let (ours, theirs) = (dir.join(format!("{name}-berth")), dir.join(format!("{name}-reference")));
    copy(root, &ours);
    copy(root, &theirs);
    let output = berth_gc(&config(dir, &ours), flags);
    reference_gc(&config(dir, &theirs), flags);
    let kept = blobs_in(&ours);
    assert_eq!(
        kept,
        blobs_in(&theirs),
        "berth gc {flags:?} and distribution kept different blobs\n{output}"
    );
    (kept, output, ours)
}

/// The layer both images of [`kept_and_dropped`] have.
const SHARED_LAYER: &[u8] = b"a layer two images share";

/// Two images of `team/app` sharing a layer: `v1`, and `v2` whose manifest
/// is then deleted.
fn kept_and_dropped(addr: &str) -> ((String, String, usize), (String, String, usize)) {
    let kept = image(addr, "team/app", Some("v1"), &[SHARED_LAYER, b"v1's own layer"], "");
    let dropped = image(addr, "team/app", Some("v2"), &[SHARED_LAYER, b"v2's own layer"], "");
    let path = format!("/v2/team/app/manifests/{}", dropped.0);
    assert_eq!(request(addr, "DELETE", &path, &[], b"").map(|r| r.status), Some(202));
    (kept, dropped)
}

/// A manifest's layers and config: shared layers stay while one image uses
/// them; a deleted manifest's own blobs go; an image moved off its tag
/// stays unless `--delete-untagged`; an upload nobody references goes, and
/// its repository link with it; `--dry-run` deletes nothing.
#[test]
fn gc_deletes_what_distribution_deletes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    let (kept_image, dropped_image, old, new, orphan) = {
        let server = serve(dir.path(), &root);
        let addr = server.addr.as_str();
        let (kept_image, dropped_image) = kept_and_dropped(addr);
        let old = image(
            addr,
            "team/moving",
            Some("latest"),
            &[SHARED_LAYER, b"the old latest's layer"],
            "",
        );
        let new = image(addr, "team/moving", Some("latest"), &[b"the new latest's layer"], "");
        let orphan = blob(addr, "team/app", b"uploaded, never referenced");
        (kept_image, dropped_image, old, new, orphan)
    };
    let before = blobs_in(&root);
    let layer = |data: &[u8]| format!("sha256:{}", sha256_hex(data));

    let dry = berth_gc(&config(dir.path(), &root), &["--dry-run"]);
    assert_eq!(blobs_in(&root), before, "a dry run deleted something");
    assert!(dry.contains(&format!("would delete blob {orphan}")), "{dry}");
    assert!(
        dry.contains(&format!("would delete link team/app -> {orphan}")),
        "{dry}"
    );

    let (kept, output, collected) = both(dir.path(), &root, "keep", &[]);
    for gone in [&dropped_image.0, &dropped_image.1, &layer(b"v2's own layer"), &orphan] {
        assert!(!kept.contains(gone), "{gone} was kept\n{output}");
    }
    for stays in [
        &kept_image.0,
        &layer(SHARED_LAYER),
        &old.0,
        &layer(b"the old latest's layer"),
    ] {
        assert!(kept.contains(stays), "{stays} was deleted\n{output}");
    }
    assert!(
        output.contains("deleted 0 tags, 0 untagged manifests, 3 links, 4 blobs"),
        "{output}"
    );
    let server = serve(dir.path(), &collected);
    let addr = server.addr.as_str();
    let orphan_path = format!("/v2/team/app/blobs/{orphan}");
    assert_eq!(
        request(addr, "HEAD", &orphan_path, &[], b"").map(|r| r.status),
        Some(404)
    );
    for (repository, reference) in [
        ("team/app", "v1"),
        ("team/moving", "latest"),
        ("team/moving", old.0.as_str()),
    ] {
        assert_pulls(addr, repository, reference);
    }
    drop(server);

    let (kept, output, _) = both(dir.path(), &root, "untagged", &["--delete-untagged"]);
    for gone in [&old.0, &old.1, &layer(b"the old latest's layer")] {
        assert!(!kept.contains(gone), "{gone} was kept\n{output}");
    }
    assert!(kept.contains(&new.0) && kept.contains(&layer(SHARED_LAYER)), "{output}");
    assert!(
        output.contains(&format!("deleting manifest team/moving@{} (untagged)", old.0)),
        "{output}"
    );
}

/// The files below `dir`, at any depth.
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_below(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// A config of the s3 driver on `bucket` of `moto`, written into `dir`.
fn s3_config(dir: &Path, moto: &Moto, bucket: &str) -> PathBuf {
    let path = dir.join(format!("config-{bucket}.yml"));
    let mut yaml = "version: 0.1\nstorage:\n  delete:\n    enabled: true\n  s3:\n    secure: false\n".to_string();
    for (key, value) in moto.driver_parameters(bucket) {
        yaml.push_str(&format!("    {key}: {value}\n"));
    }
    std::fs::write(&path, yaml).expect("config");
    path
}

/// The digests whose data `bucket` holds.
async fn blobs_in_bucket(moto: &Moto, bucket: &str) -> BTreeSet<String> {
    let prefix = "docker/registry/v2/blobs/sha256/";
    let keys = moto.keys(bucket, prefix).await;
    keys.iter()
        .filter_map(|key| key.strip_prefix(prefix)?.strip_suffix("/data"))
        .filter_map(|rest| rest.split_once('/'))
        .map(|(_, hex)| format!("sha256:{hex}"))
        .collect()
}

/// On S3 (moto), where berth deletes what it sweeps with one DeleteObjects
/// per page of blobs and per repository (the driver's `bulk-delete`), both
/// collectors delete the same blobs from buckets holding the same objects,
/// and berth also the links to what it deleted.
#[test]
fn gc_on_s3_deletes_what_distribution_deletes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    let (kept_image, dropped_image, orphan) = {
        let server = serve(dir.path(), &root);
        let addr = server.addr.as_str();
        let (kept_image, dropped_image) = kept_and_dropped(addr);
        let orphan = blob(addr, "team/app", b"uploaded, never referenced");
        (kept_image, dropped_image, orphan)
    };
    let moto = Moto::start();
    let (ours, theirs) = common::block_on(async {
        let buckets = (moto.new_bucket().await, moto.new_bucket().await);
        let client = moto.client();
        for file in files_below(&root) {
            let key = file
                .strip_prefix(&root)
                .expect("below the root")
                .to_string_lossy()
                .into_owned();
            for bucket in [&buckets.0, &buckets.1] {
                let body = std::fs::read(&file).expect("read");
                client
                    .put_object()
                    .bucket(bucket)
                    .key(&key)
                    .body(body.into())
                    .send()
                    .await
                    .unwrap_or_else(|err| panic!("PutObject {key}: {err:?}"));
            }
        }
        buckets
    });
    let before = common::block_on(blobs_in_bucket(&moto, &ours));
    assert!(before.contains(&orphan), "the upload did not land: {before:?}");

    let output = berth_gc(&s3_config(dir.path(), &moto, &ours), &[]);
    reference_gc(&s3_config(dir.path(), &moto, &theirs), &[]);
    let kept = common::block_on(blobs_in_bucket(&moto, &ours));
    assert_eq!(
        kept,
        common::block_on(blobs_in_bucket(&moto, &theirs)),
        "berth gc and distribution kept different blobs\n{output}"
    );
    let layer = |data: &[u8]| format!("sha256:{}", sha256_hex(data));
    for gone in [&dropped_image.0, &dropped_image.1, &layer(b"v2's own layer"), &orphan] {
        assert!(!kept.contains(gone), "{gone} was kept\n{output}");
    }
    for stays in [&kept_image.0, &kept_image.1, &layer(SHARED_LAYER)] {
        assert!(kept.contains(stays), "{stays} was deleted\n{output}");
    }
    assert!(
        output.contains("deleted 0 tags, 0 untagged manifests, 3 links, 4 blobs"),
        "{output}"
    );
    let links = common::block_on(moto.keys(&ours, "docker/registry/v2/repositories/team/app/_layers/"));
    for gone in [&dropped_image.1, &layer(b"v2's own layer"), &orphan] {
        let link = format!(
            "docker/registry/v2/repositories/team/app/_layers/sha256/{}/link",
            &gone[7..]
        );
        assert!(!links.contains(&link), "{link} is left\n{output}");
    }
    assert_eq!(links.len(), 3, "the kept image's links: {links:?}");
}

/// Every blob of the manifest `reference` names comes back whole.
fn assert_pulls(addr: &str, repository: &str, reference: &str) {
    let path = format!("/v2/{repository}/manifests/{reference}");
    let reply = request(addr, "GET", &path, &[("Accept", OCI_MANIFEST)], b"").expect("GET");
    assert_eq!(reply.status, 200, "{path}");
    let manifest: serde_json::Value = serde_json::from_slice(&reply.body).expect("JSON");
    let config = manifest["config"].clone();
    for descriptor in manifest["layers"].as_array().expect("layers").iter().chain([&config]) {
        let digest = descriptor["digest"].as_str().expect("digest");
        let reply = request(addr, "GET", &format!("/v2/{repository}/blobs/{digest}"), &[], b"").expect("GET");
        assert_eq!(reply.status, 200, "{repository} {digest}");
        assert_eq!(format!("sha256:{}", sha256_hex(&reply.body)), digest);
    }
}

/// Image indexes keep their children and referrers their subject. Without
/// `--delete-untagged` both collectors keep everything referenced; with it,
/// berth keeps an index's untagged children and a kept image's untagged
/// referrers, where distribution 2.8 deletes both (it knows neither
/// rule), and drops only what nothing keeps.
#[test]
fn gc_keeps_index_children_and_referrers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    let (amd64, arm64, index, subject, referrer, loose) = {
        let server = serve(dir.path(), &root);
        let addr = server.addr.as_str();
        let amd64 = image(addr, "multi", None, &[b"amd64 layer"], "");
        let arm64 = image(addr, "multi", None, &[b"arm64 layer"], "");
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{},{}]}}"#,
            descriptor(OCI_MANIFEST, &amd64.0, amd64.2),
            descriptor(OCI_MANIFEST, &arm64.0, arm64.2)
        );
        let index = manifest(addr, "multi", Some("latest"), OCI_INDEX, &body);
        let subject = image(addr, "signed", Some("v1"), &[b"signed layer"], "");
        let extra = format!(r#","subject":{}"#, descriptor(OCI_MANIFEST, &subject.0, subject.2));
        let referrer = image(addr, "signed", None, &[b"a signature"], &extra);
        let loose = image(addr, "signed", None, &[b"pushed by digest, never tagged"], "");
        (amd64, arm64, index, subject, referrer, loose)
    };
    let before = blobs_in(&root);
    let (kept, output, _) = both(dir.path(), &root, "keep", &[]);
    assert_eq!(
        kept, before,
        "without --delete-untagged everything here is referenced\n{output}"
    );

    let collected = dir.path().join("untagged-berth");
    copy(&root, &collected);
    let output = berth_gc(&config(dir.path(), &collected), &["--delete-untagged"]);
    let kept = blobs_in(&collected);
    for stays in [
        &index,
        &amd64.0,
        &arm64.0,
        &amd64.1,
        &subject.0,
        &referrer.0,
        &referrer.1,
    ] {
        assert!(kept.contains(stays), "{stays} was deleted\n{output}");
    }
    for gone in [
        &loose.0,
        &loose.1,
        &format!("sha256:{}", sha256_hex(b"pushed by digest, never tagged")),
    ] {
        assert!(!kept.contains(gone), "{gone} was kept\n{output}");
    }
    let server = serve(dir.path(), &collected);
    let addr = server.addr.as_str();
    assert_pulls(addr, "multi", &amd64.0);
    assert_pulls(addr, "signed", &referrer.0);
    let referrers = request(addr, "GET", &format!("/v2/signed/referrers/{}", subject.0), &[], b"").expect("GET");
    assert!(
        String::from_utf8_lossy(&referrers.body).contains(&referrer.0),
        "the referrer is listed"
    );
}

fn storage_check(dir: &Path, root: &Path, repair: bool) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
    command.args(["storage", "check", "--config"]).arg(config(dir, root));
    if repair {
        command.arg("--repair");
    }
    let output = command.output().expect("berth storage check");
    assert!(matches!(output.status.code(), Some(0 | 1)), "{}", text(&output));
    (output.status.success(), text(&output))
}

/// Flipped bytes in a blob, a layer link to a blob that is not there and a
/// tag naming a manifest the repository lacks: the check, run beside the
/// serving registry, names each and fails; `--repair` quarantines them, so
/// the registry answers 404 instead of wrong bytes, and a second check is
/// clean.
#[test]
fn storage_check_finds_corrupt_blobs_and_dangling_links() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    let server = serve(dir.path(), &root);
    let addr = server.addr.as_str();
    let (manifest_digest, _, _) = image(
        addr,
        "team/app",
        Some("v1"),
        &[b"a layer to flip", b"a layer left alone"],
        "",
    );
    let (clean, output) = storage_check(dir.path(), &root, false);
    assert!(clean && output.contains(": 0 problems"), "{output}");

    let flipped = format!("sha256:{}", sha256_hex(b"a layer to flip"));
    let v2 = root.join("docker/registry/v2");
    let data = v2.join(format!("blobs/sha256/{}/{}/data", &flipped[7..9], &flipped[7..]));
    let mut bytes = std::fs::read(&data).expect("blob data");
    bytes[0] ^= 0xff;
    std::fs::write(&data, bytes).expect("flip");
    let missing = format!("sha256:{}", sha256_hex(b"never pushed"));
    let link = v2.join(format!("repositories/team/app/_layers/sha256/{}/link", &missing[7..]));
    std::fs::create_dir_all(link.parent().unwrap()).expect("link dir");
    std::fs::write(&link, &missing).expect("link");
    let tag = v2.join("repositories/team/app/_manifests/tags/broken/current/link");
    std::fs::create_dir_all(tag.parent().unwrap()).expect("tag dir");
    std::fs::write(&tag, &missing).expect("tag");

    let (clean, output) = storage_check(dir.path(), &root, false);
    assert!(!clean, "{output}");
    for finding in [
        format!("found: blob {flipped} is corrupt"),
        format!("found: team/app links blob {missing}, whose data is missing"),
        format!("found: team/app:broken points at manifest {missing}"),
    ] {
        assert!(output.contains(&finding), "{finding}\n{output}");
    }
    assert!(output.contains(": 3 problems"), "{output}");
    assert!(
        data.exists() && link.exists(),
        "a check without --repair moved something"
    );

    // The corrupt blob's link dangles once its data is quarantined: the
    // repair moves it too.
    let (_, output) = storage_check(dir.path(), &root, true);
    assert!(output.contains("4 quarantined below /berth/quarantine"), "{output}");
    assert!(
        output.contains(&format!(
            "quarantined: team/app links blob {flipped}, whose data is missing"
        )),
        "{output}"
    );
    assert!(!data.exists() && !link.exists() && !tag.exists(), "{output}");
    let quarantined = root.join("berth/quarantine").join(data.strip_prefix(&root).unwrap());
    assert!(quarantined.exists(), "the corrupt data is kept for a look");
    let (clean, output) = storage_check(dir.path(), &root, false);
    assert!(clean && output.contains(": 0 problems"), "{output}");

    let path = format!("/v2/team/app/blobs/{flipped}");
    assert_eq!(request(addr, "GET", &path, &[], b"").map(|r| r.status), Some(404));
    let path = format!("/v2/team/app/manifests/{manifest_digest}");
    let reply = request(addr, "GET", &path, &[("Accept", OCI_MANIFEST)], b"").expect("GET");
    assert_eq!(reply.status, 200, "the manifest itself was fine");
}

/// `storage.retention`: in `team/**` keep the three newest tags, those pushed
/// within a day and those matching `release-*`; everything else is deleted
/// by `berth gc --delete-untagged`, which then frees what only those tags
/// referenced. Repositories no policy names keep every tag. Push times are
/// the tags' link times, set here with touch(1).
#[test]
fn retention_keeps_what_its_policy_says() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    let days_old = |repository: &str, tag: &str, days: u32| {
        let link = root.join(format!(
            "docker/registry/v2/repositories/{repository}/_manifests/tags/{tag}/current/link"
        ));
        let status = Command::new("touch")
            .arg("-d")
            .arg(format!("{days} days ago"))
            .arg(&link)
            .status()
            .expect("touch");
        assert!(status.success());
    };
    let mut images = std::collections::BTreeMap::new();
    {
        let server = serve(dir.path(), &root);
        let addr = server.addr.as_str();
        for (tag, days) in [
            ("v1", 50),
            ("v2", 40),
            ("v3", 30),
            ("v4", 20),
            ("v5", 10),
            ("release-1", 60),
            ("fresh", 0),
        ] {
            let layer = format!("the layer of {tag}");
            images.insert(tag, image(addr, "team/app", Some(tag), &[layer.as_bytes()], ""));
            if days > 0 {
                days_old("team/app", tag, days);
            }
        }
        image(addr, "other/app", Some("ancient"), &[b"no policy names it"], "");
        days_old("other/app", "ancient", 400);
    }
    let policies = "  retention:\n    policies:\n      - repositories: [\"team/**\"]\n        keep: {newest: 3, pushedwithin: 24h, patterns: [\"release-*\"]}\n";
    let config_with_policy = |root: &Path| {
        let path = config(dir.path(), root);
        let yaml = std::fs::read_to_string(&path).expect("config");
        std::fs::write(&path, format!("{yaml}{policies}")).expect("config");
        path
    };
    let run = |flags: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_berth"))
            .arg("gc")
            .args(flags)
            .arg("--config")
            .arg(config_with_policy(&root))
            .output()
            .expect("berth gc");
        assert!(output.status.success(), "{}", text(&output));
        text(&output)
    };
    let tags = || {
        let dir = root.join("docker/registry/v2/repositories/team/app/_manifests/tags");
        let mut tags: Vec<String> = std::fs::read_dir(dir)
            .expect("tags")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        tags.sort();
        tags
    };
    let before = blobs_in(&root);
    let output = run(&["--delete-untagged", "--dry-run"]);
    for tag in ["v1", "v2", "v3"] {
        assert!(
            output.contains(&format!("would delete tag team/app:{tag} (retention)")),
            "{output}"
        );
    }
    assert!(output.contains("would delete 3 tags, 3 untagged manifests"), "{output}");
    assert_eq!(blobs_in(&root), before, "a dry run deleted something");

    let output = run(&["--delete-untagged"]);
    assert_eq!(tags(), ["fresh", "release-1", "v4", "v5"], "{output}");
    let kept = blobs_in(&root);
    for tag in ["v1", "v2", "v3"] {
        let (manifest, config, _) = &images[tag];
        assert!(
            !kept.contains(manifest) && !kept.contains(config),
            "{tag}'s image was kept\n{output}"
        );
    }
    for tag in ["v4", "v5", "release-1", "fresh"] {
        assert!(kept.contains(&images[tag].0), "{tag}'s image was deleted\n{output}");
    }
    let other = root.join("docker/registry/v2/repositories/other/app/_manifests/tags/ancient");
    assert!(other.exists(), "a repository no policy names lost a tag");
}
