//! The storage driver proper: distribution's s3 driver semantics on top of
//! the SDK client (metadata, listings, copies, multipart bookkeeping) and
//! the hand-signed data path in [`crate::raw`].

use std::cell::RefCell;
use std::sync::OnceLock;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectCannedAcl, ObjectIdentifier, ServerSideEncryption, StorageClass};
use aws_sdk_s3::Client;
use futures_util::{StreamExt, TryStreamExt};

use crate::berth::storage::types::InstanceModel;
use crate::berth::storage::types::NetworkAccess;
use crate::client::{block_on, client, failure, PRESIGN_EXPIRY};
use crate::exports::berth::storage::bulk_delete;
use crate::exports::berth::storage::driver::{
    DriverInfo, Error, FileInfo, FileReader, FileWriter, Guest, GuestFileReader, GuestFileWriter,
};
use crate::exports::berth::storage::signed_reads::{self, SignedRequest};
use crate::params::{copy_ranges, encode_key, Config, MAX_CHUNK, MIN_CHUNK};
use crate::raw::{self, encode_query, Failure};
use crate::xml;

/// What `init` set up; per-call instances build it once per call.
pub struct State {
    pub config: Config,
    pub client: Client,
    /// Signs redirect URLs for `redirectendpoint`, when set.
    presigner: Option<Client>,
}

static STATE: OnceLock<State> = OnceLock::new();

fn state() -> Result<&'static State, Error> {
    STATE
        .get()
        .ok_or_else(|| Error::Backend("the s3 driver was not initialised".into()))
}

/// The contract's error for a failure on `path`.
fn at(path: &str) -> impl Fn(Failure) -> Error + '_ {
    move |f| {
        if f.is_not_found() {
            Error::PathNotFound(path.to_string())
        } else {
            Error::Backend(f.message)
        }
    }
}

fn backend(f: Failure) -> Error {
    Error::Backend(f.message)
}

fn nanos(time: Option<&aws_sdk_s3::primitives::DateTime>) -> u64 {
    time.map_or(0, |t| u64::try_from(t.as_nanos()).unwrap_or(0))
}

/// The headers of a new object: distribution's content type, storage class,
/// encryption and (when set) ACL.
fn object_headers(config: &Config) -> Vec<(&'static str, String)> {
    let mut headers = vec![("content-type", "application/octet-stream".to_string())];
    if let Some(class) = &config.storage_class {
        headers.push(("x-amz-storage-class", class.clone()));
    }
    if config.encrypt {
        match &config.key_id {
            Some(key_id) => {
                headers.push(("x-amz-server-side-encryption", "aws:kms".into()));
                headers.push(("x-amz-server-side-encryption-aws-kms-key-id", key_id.clone()));
            }
            None => headers.push(("x-amz-server-side-encryption", "AES256".into())),
        }
    }
    if let Some(acl) = &config.object_acl {
        headers.push(("x-amz-acl", acl.clone()));
    }
    headers
}

/// Applies [`object_headers`]' settings to an SDK request builder.
macro_rules! object_options {
    ($builder:expr, $config:expr) => {{
        let config: &Config = $config;
        let mut builder = $builder.content_type("application/octet-stream");
        if let Some(class) = &config.storage_class {
            builder = builder.storage_class(StorageClass::from(class.as_str()));
        }
        if config.encrypt {
            builder = match &config.key_id {
                Some(key_id) => builder
                    .server_side_encryption(ServerSideEncryption::AwsKms)
                    .ssekms_key_id(key_id),
                None => builder.server_side_encryption(ServerSideEncryption::Aes256),
            };
        }
        if let Some(acl) = &config.object_acl {
            builder = builder.acl(ObjectCannedAcl::from(acl.as_str()));
        }
        builder
    }};
}

impl State {
    pub fn new(config: Config) -> State {
        let presigner = config.redirect_endpoint.as_ref().map(|url| client(&config, url));
        State {
            client: client(&config, &config.endpoint),
            config,
            presigner,
        }
    }

    pub fn bucket(&self) -> &str {
        &self.config.bucket
    }

    /// PutObject of a whole object.
    fn put_object(&self, key: &str, data: Vec<u8>) -> Result<(), Failure> {
        if cfg!(feature = "sdk-data-path") {
            let request = object_options!(self.client.put_object().bucket(self.bucket()).key(key), &self.config)
                .body(ByteStream::from(data));
            block_on(request.send()).map_err(|e| failure(self.bucket(), "PutObject", e))?;
            return Ok(());
        }
        let url = self.config.object_url(key);
        let response = raw::send(&self.config, "PUT", &url, &object_headers(&self.config), Some(&data))?;
        if response.status != 200 {
            return Err(response.into_failure(self.bucket(), "PutObject"));
        }
        Ok(())
    }

    /// UploadPart; the part's ETag.
    fn upload_part(&self, key: &str, upload_id: &str, number: i32, data: Vec<u8>) -> Result<String, Failure> {
        if cfg!(feature = "sdk-data-path") {
            let request = self
                .client
                .upload_part()
                .bucket(self.bucket())
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .body(ByteStream::from(data));
            let output = block_on(request.send()).map_err(|e| failure(self.bucket(), "UploadPart", e))?;
            return Ok(output.e_tag().unwrap_or_default().to_string());
        }
        let url = format!(
            "{}?partNumber={number}&uploadId={}",
            self.config.object_url(key),
            encode_query(upload_id)
        );
        let response = raw::send(&self.config, "PUT", &url, &[], Some(&data))?;
        if response.status != 200 {
            return Err(response.into_failure(self.bucket(), "UploadPart"));
        }
        response.header("etag").ok_or_else(|| Failure {
            status: Some(200),
            code: None,
            message: format!("s3 bucket {:?}: UploadPart: the answer has no ETag", self.bucket()),
        })
    }

    fn head(&self, key: &str) -> Result<aws_sdk_s3::operation::head_object::HeadObjectOutput, Failure> {
        block_on(self.client.head_object().bucket(self.bucket()).key(key).send())
            .map_err(|e| failure(self.bucket(), "HeadObject", e))
    }

    /// Whether anything has a key below `prefix`.
    fn any_below(&self, prefix: &str) -> Result<bool, Failure> {
        let request = self
            .client
            .list_objects_v2()
            .bucket(self.bucket())
            .prefix(prefix)
            .max_keys(1);
        let output = block_on(request.send()).map_err(|e| failure(self.bucket(), "ListObjectsV2", e))?;
        Ok(!output.contents().is_empty() || !output.common_prefixes().is_empty())
    }

    /// Every key below `prefix` (no delimiter).
    pub fn keys_below(&self, prefix: &str) -> Result<Vec<String>, Failure> {
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let request = self
                .client
                .list_objects_v2()
                .bucket(self.bucket())
                .prefix(prefix)
                .set_continuation_token(token.take());
            let output = block_on(request.send()).map_err(|e| failure(self.bucket(), "ListObjectsV2", e))?;
            keys.extend(output.contents().iter().filter_map(|o| o.key().map(str::to_string)));
            match output.next_continuation_token() {
                Some(next) if output.is_truncated() == Some(true) => token = Some(next.to_string()),
                _ => return Ok(keys),
            }
        }
    }

    /// DeleteObjects in batches of 1000 (S3's most per call).
    pub fn delete_keys(&self, keys: Vec<String>) -> Result<(), Failure> {
        for batch in keys.chunks(1000) {
            let objects = batch
                .iter()
                .map(|key| ObjectIdentifier::builder().key(key).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Failure {
                    status: None,
                    code: None,
                    message: format!("s3 bucket {:?}: DeleteObjects: {e}", self.bucket()),
                })?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| Failure {
                    status: None,
                    code: None,
                    message: format!("s3 bucket {:?}: DeleteObjects: {e}", self.bucket()),
                })?;
            let request = self.client.delete_objects().bucket(self.bucket()).delete(delete);
            let output = block_on(request.send()).map_err(|e| failure(self.bucket(), "DeleteObjects", e))?;
            if let Some(err) = output.errors().first() {
                return Err(Failure {
                    status: None,
                    code: err.code().map(str::to_string),
                    message: format!(
                        "s3 bucket {:?}: DeleteObjects: {}: {} ({})",
                        self.bucket(),
                        err.code().unwrap_or("error"),
                        err.message().unwrap_or(""),
                        err.key().unwrap_or("")
                    ),
                });
            }
        }
        Ok(())
    }

    /// The multipart uploads in progress whose key passes `keep`, as (key,
    /// upload id, initiated), in S3's order (by key, then initiation).
    pub fn uploads(&self, prefix: &str, keep: impl Fn(&str) -> bool) -> Result<Vec<(String, String, i128)>, Failure> {
        let mut found = Vec::new();
        let (mut key_marker, mut id_marker) = (None, None);
        loop {
            let request = self
                .client
                .list_multipart_uploads()
                .bucket(self.bucket())
                .prefix(prefix)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take());
            let output = block_on(request.send()).map_err(|e| failure(self.bucket(), "ListMultipartUploads", e))?;
            for upload in output.uploads() {
                if let (Some(key), Some(id)) = (upload.key(), upload.upload_id()) {
                    if keep(key) {
                        let initiated = upload.initiated().map_or(0, |t| t.as_nanos());
                        found.push((key.to_string(), id.to_string(), initiated));
                    }
                }
            }
            if output.is_truncated() != Some(true) {
                return Ok(found);
            }
            key_marker = output.next_key_marker().map(str::to_string);
            id_marker = output.next_upload_id_marker().map(str::to_string);
            if key_marker.is_none() {
                return Ok(found);
            }
        }
    }

    /// [`State::uploads`] where cleaning up is the only reason to ask: a
    /// service without ListMultipartUploads (s3s-fs, some gateways) has
    /// none to clean up that this driver could find anyway.
    pub fn uploads_if_listed(
        &self,
        prefix: &str,
        keep: impl Fn(&str) -> bool,
    ) -> Result<Vec<(String, String, i128)>, Failure> {
        match self.uploads(prefix, keep) {
            Err(f) if f.code.as_deref() == Some("NotImplemented") => Ok(Vec::new()),
            other => other,
        }
    }

    pub fn abort(&self, key: &str, upload_id: &str) -> Result<(), Failure> {
        let request = self
            .client
            .abort_multipart_upload()
            .bucket(self.bucket())
            .key(key)
            .upload_id(upload_id);
        match block_on(request.send()).map_err(|e| failure(self.bucket(), "AbortMultipartUpload", e)) {
            // Already gone (completed or aborted elsewhere): nothing to abort.
            Err(f) if f.code.as_deref() == Some("NoSuchUpload") => Ok(()),
            other => other.map(|_| ()),
        }
    }

    fn create_upload(&self, key: &str) -> Result<String, Failure> {
        let request = object_options!(
            self.client.create_multipart_upload().bucket(self.bucket()).key(key),
            &self.config
        );
        let output = block_on(request.send()).map_err(|e| failure(self.bucket(), "CreateMultipartUpload", e))?;
        output.upload_id().map(str::to_string).ok_or_else(|| Failure {
            status: None,
            code: None,
            message: format!("s3 bucket {:?}: CreateMultipartUpload: no upload id", self.bucket()),
        })
    }

    /// CompleteMultipartUpload, by hand: moto 5.2 answers it (and
    /// ListParts) with a document root the SDK refuses, and S3 may answer
    /// 200 with an error document, which this checks for.
    fn complete(&self, key: &str, upload_id: &str, parts: &[Part]) -> Result<(), Failure> {
        let url = format!("{}?uploadId={}", self.config.object_url(key), encode_query(upload_id));
        let body = xml::complete_body(parts.iter().map(|p| (p.number, p.etag.as_str())));
        let headers = [("content-type", "application/xml".to_string())];
        let mut response = raw::send(&self.config, "POST", &url, &headers, Some(body.as_bytes()))?;
        if response.status != 200 {
            return Err(response.into_failure(self.bucket(), "CompleteMultipartUpload"));
        }
        let answer = response.read_to_end();
        let answer = String::from_utf8_lossy(&answer);
        if let Some(code) = xml::blocks(&answer, "Error").first().and_then(|e| xml::text(e, "Code")) {
            let detail = xml::text(&answer, "Message").unwrap_or_default();
            return Err(Failure {
                status: Some(200),
                message: format!(
                    "s3 bucket {:?}: CompleteMultipartUpload: {code}: {detail}",
                    self.bucket()
                ),
                code: Some(code),
            });
        }
        Ok(())
    }

    /// The parts uploaded so far to an upload in progress (ListParts by
    /// hand, see [`State::complete`]).
    fn parts(&self, key: &str, upload_id: &str) -> Result<Vec<Part>, Failure> {
        let mut parts = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let mut url = format!("{}?uploadId={}", self.config.object_url(key), encode_query(upload_id));
            if let Some(marker) = marker.take() {
                url.push_str(&format!("&part-number-marker={}", encode_query(&marker)));
            }
            let mut response = raw::send(&self.config, "GET", &url, &[], None)?;
            if response.status != 200 {
                return Err(response.into_failure(self.bucket(), "ListParts"));
            }
            let answer = response.read_to_end();
            let (page, next) = xml::list_parts_page(&String::from_utf8_lossy(&answer)).map_err(|e| Failure {
                status: Some(200),
                code: None,
                message: format!("s3 bucket {:?}: ListParts: {e}", self.bucket()),
            })?;
            parts.extend(page.into_iter().map(|(number, etag, size)| Part { number, etag, size }));
            match next {
                Some(next) => marker = Some(next),
                None => break,
            }
        }
        parts.sort_by_key(|p| p.number);
        Ok(parts)
    }

    /// Copies `source` (of `size` bytes) to `destination`: one CopyObject up
    /// to `multipartcopythresholdsize`, above it a multipart copy of
    /// `multipartcopychunksize` parts, `multipartcopymaxconcurrency` at a
    /// time, so that even a large blob moves within one plugin call.
    fn copy(&self, source: &str, destination: &str, size: u64) -> Result<(), Failure> {
        let copy_source = format!("{}/{}", self.bucket(), encode_key(source));
        if size <= self.config.copy_threshold.min(MAX_CHUNK) {
            let request = object_options!(
                self.client
                    .copy_object()
                    .bucket(self.bucket())
                    .key(destination)
                    .copy_source(&copy_source),
                &self.config
            );
            block_on(request.send()).map_err(|e| failure(self.bucket(), "CopyObject", e))?;
            return Ok(());
        }
        let upload_id = self.create_upload(destination)?;
        let ranges = copy_ranges(size, self.config.copy_chunk_size);
        let copies = futures_util::stream::iter(ranges.into_iter().enumerate())
            .map(|(i, (start, end))| {
                let number = i as i32 + 1;
                self.copy_part(&copy_source, destination, &upload_id, number, start, end)
            })
            .buffered(self.config.copy_concurrency);
        let copied = block_on(copies.try_collect::<Vec<Part>>())
            .and_then(|parts| self.complete(destination, &upload_id, &parts));
        if copied.is_err() {
            let _ = self.abort(destination, &upload_id);
        }
        copied
    }

    /// UploadPartCopy of the bytes `start..end` of `copy_source`.
    async fn copy_part(
        &self,
        copy_source: &str,
        key: &str,
        upload_id: &str,
        number: i32,
        start: u64,
        end: u64,
    ) -> Result<Part, Failure> {
        let request = self
            .client
            .upload_part_copy()
            .bucket(self.bucket())
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .copy_source(copy_source)
            .copy_source_range(format!("bytes={start}-{}", end - 1));
        let output = request
            .send()
            .await
            .map_err(|e| failure(self.bucket(), "UploadPartCopy", e))?;
        let etag = output.copy_part_result().and_then(|r| r.e_tag()).unwrap_or_default();
        Ok(Part {
            number,
            etag: etag.to_string(),
            size: end - start,
        })
    }

    fn get_object(&self, key: &str) -> Result<Vec<u8>, Failure> {
        let output = block_on(self.client.get_object().bucket(self.bucket()).key(key).send())
            .map_err(|e| failure(self.bucket(), "GetObject", e))?;
        let data = block_on(output.body.collect()).map_err(|e| Failure {
            status: None,
            code: None,
            message: format!("s3 bucket {:?}: GetObject: reading the body: {e}", self.bucket()),
        })?;
        Ok(data.into_bytes().to_vec())
    }
}

/// A part of a multipart upload.
#[derive(Debug, Clone)]
struct Part {
    number: i32,
    etag: String,
    size: u64,
}

pub struct S3;

/// The `range` header of a read from `offset`: none from 0, since an empty
/// object has no byte 0.
fn range_from(offset: u64) -> Vec<(&'static str, String)> {
    match offset {
        0 => Vec::new(),
        _ => vec![("range", format!("bytes={offset}-"))],
    }
}

impl signed_reads::Guest for S3 {
    fn read_request(path: String, offset: u64) -> Result<Option<SignedRequest>, Error> {
        let state = state()?;
        let url = state.config.object_url(&state.config.key(&path));
        let headers = raw::signed_headers(&state.config, "GET", &url, &range_from(offset), None).map_err(backend)?;
        Ok(Some(SignedRequest { url, headers }))
    }
}

impl bulk_delete::Guest for S3 {
    /// DeleteObjects of the paths' keys, without the listing `delete` makes
    /// to find what lies below a path.
    fn delete_files(paths: Vec<String>) -> Result<(), Error> {
        let state = state()?;
        let keys = paths.iter().map(|path| state.config.key(path)).collect();
        state.delete_keys(keys).map_err(backend)
    }
}

impl Guest for S3 {
    type FileReader = Reader;
    type FileWriter = Writer;

    fn describe() -> DriverInfo {
        DriverInfo {
            instance_model: InstanceModel::PerCall,
            directory_parameter: None,
            network: Some(NetworkAccess {
                endpoint_parameter: "regionendpoint".into(),
                default_endpoint: Some("https://s3.{region}.amazonaws.com".into()),
                skip_verify_parameter: Some("skipverify".into()),
                ca_bundle_parameter: Some("cabundle".into()),
            }),
        }
    }

    fn init(parameters: Vec<(String, String)>) -> Result<(), Error> {
        let config = Config::parse(&parameters).map_err(Error::Backend)?;
        STATE
            .set(State::new(config))
            .map_err(|_| Error::Backend("the s3 driver was initialised twice".into()))
    }

    fn get_content(path: String) -> Result<Vec<u8>, Error> {
        let state = state()?;
        state.get_object(&state.config.key(&path)).map_err(at(&path))
    }

    fn put_content(path: String, content: Vec<u8>) -> Result<(), Error> {
        let state = state()?;
        state.put_object(&state.config.key(&path), content).map_err(backend)
    }

    fn reader(path: String, offset: u64) -> Result<FileReader, Error> {
        let state = state()?;
        let key = state.config.key(&path);
        let url = state.config.object_url(&key);
        let response = raw::send(&state.config, "GET", &url, &range_from(offset), None).map_err(backend)?;
        let body = match response.status {
            200 | 206 => Some(response),
            // At or past the end: an empty reader, if the object exists.
            416 => {
                drop(response);
                state.head(&key).map_err(at(&path))?;
                None
            }
            _ => return Err(at(&path)(response.into_failure(state.bucket(), "GetObject"))),
        };
        Ok(FileReader::new(Reader {
            path,
            body: RefCell::new(body),
        }))
    }

    fn writer(path: String, append: bool) -> Result<FileWriter, Error> {
        let state = state()?;
        let key = state.config.key(&path);
        let same_key = |k: &str| k == key;
        let mut uploads = if append {
            state.uploads(&key, same_key).map_err(backend)?
        } else {
            state.uploads_if_listed(&key, same_key).map_err(backend)?
        };
        let mut inner = Inner::default();
        if append {
            // Continue the newest upload in progress, else the object.
            uploads.sort_by_key(|(_, _, initiated)| *initiated);
            if let Some((_, upload_id, _)) = uploads.pop() {
                let parts = state.parts(&key, &upload_id).map_err(backend)?;
                inner.small_tail = parts.last().is_some_and(|p| p.size < MIN_CHUNK);
                inner.parts = parts;
                inner.upload_id = Some(upload_id);
            } else {
                match state.head(&key) {
                    Ok(head) => {
                        inner.base = Some(head.content_length().and_then(|l| u64::try_from(l).ok()).unwrap_or(0))
                    }
                    Err(f) if f.is_not_found() => {}
                    Err(f) => return Err(backend(f)),
                }
            }
        } else {
            // A new content replaces whatever an earlier writer left in
            // progress, so a later append cannot pick that up.
            for (_, upload_id, _) in uploads {
                state.abort(&key, &upload_id).map_err(backend)?;
            }
        }
        Ok(FileWriter::new(Writer {
            path,
            key,
            inner: RefCell::new(inner),
        }))
    }

    fn stat(path: String) -> Result<FileInfo, Error> {
        let state = state()?;
        if path == "/" {
            // The root always exists, but asking proves the bucket answers
            // these credentials: it is what `/healthz` relies on.
            state.any_below(&state.config.dir_prefix(&path)).map_err(backend)?;
            return Ok(dir_info(path));
        }
        let key = state.config.key(&path);
        match state.head(&key) {
            Ok(head) => Ok(FileInfo {
                size: head.content_length().and_then(|l| u64::try_from(l).ok()).unwrap_or(0),
                modified_ns: nanos(head.last_modified()),
                is_dir: false,
                path,
            }),
            Err(f) if f.is_not_found() => {
                if state.any_below(&format!("{key}/")).map_err(backend)? {
                    Ok(dir_info(path))
                } else {
                    Err(Error::PathNotFound(path))
                }
            }
            Err(f) if f.code.is_none() => {
                // A HEAD answer has no body, so no S3 error code (a wrong
                // secret is a bare 403): a listing of the key says why.
                state.any_below(&key).map_err(backend)?;
                Err(backend(f))
            }
            Err(f) => Err(backend(f)),
        }
    }

    fn list(path: String) -> Result<Vec<String>, Error> {
        let state = state()?;
        let prefix = state.config.dir_prefix(&path);
        let mut children = Vec::new();
        let mut token = None;
        loop {
            let request = state
                .client
                .list_objects_v2()
                .bucket(state.bucket())
                .prefix(&prefix)
                .delimiter("/")
                .set_continuation_token(token.take());
            let output = block_on(request.send()).map_err(|e| backend(failure(state.bucket(), "ListObjectsV2", e)))?;
            let files = output.contents().iter().filter_map(|o| o.key());
            let dirs = output.common_prefixes().iter().filter_map(|p| p.prefix());
            // A "directory marker" object named like the prefix is the
            // directory itself, not a child.
            let below = files.chain(dirs).filter(|key| *key != prefix);
            children.extend(below.filter_map(|key| state.config.path_of(key)));
            match output.next_continuation_token() {
                Some(next) if output.is_truncated() == Some(true) => token = Some(next.to_string()),
                _ => break,
            }
        }
        if children.is_empty() && path != "/" {
            return Err(Error::PathNotFound(path));
        }
        children.sort_unstable();
        children.dedup();
        Ok(children)
    }

    fn move_path(source: String, destination: String) -> Result<(), Error> {
        let state = state()?;
        let (from, to) = (state.config.key(&source), state.config.key(&destination));
        let head = state.head(&from).map_err(at(&source))?;
        let size = head.content_length().and_then(|l| u64::try_from(l).ok()).unwrap_or(0);
        state.copy(&from, &to, size).map_err(at(&source))?;
        let request = state.client.delete_object().bucket(state.bucket()).key(&from);
        block_on(request.send()).map_err(|e| backend(failure(state.bucket(), "DeleteObject", e)))?;
        Ok(())
    }

    fn delete(path: String) -> Result<(), Error> {
        let state = state()?;
        let prefix = state.config.dir_prefix(&path);
        let mut keys = state.keys_below(&prefix).map_err(backend)?;
        let key = state.config.key(&path);
        if path != "/" {
            match state.head(&key) {
                Ok(_) => keys.push(key.clone()),
                Err(f) if f.is_not_found() => {}
                Err(f) => return Err(backend(f)),
            }
        }
        // Uploads in progress below the path (an upload's data being
        // written): abort them too, or they linger until the lifecycle rule.
        let below = |k: &str| path == "/" || k == key || k.starts_with(&prefix);
        let uploads = state.uploads_if_listed(&key, below).map_err(backend)?;
        if keys.is_empty() && uploads.is_empty() {
            return Err(Error::PathNotFound(path));
        }
        for (upload_key, upload_id, _) in &uploads {
            state.abort(upload_key, upload_id).map_err(backend)?;
        }
        state.delete_keys(keys).map_err(backend)
    }

    fn redirect_url(method: String, path: String) -> Result<Option<String>, Error> {
        if method != "GET" && method != "HEAD" {
            return Ok(None);
        }
        let state = state()?;
        let key = state.config.key(&path);
        let client = state.presigner.as_ref().unwrap_or(&state.client);
        let presigning = PresigningConfig::expires_in(PRESIGN_EXPIRY)
            .map_err(|e| Error::Backend(format!("presigning {path}: {e}")))?;
        let presigned = if method == "GET" {
            block_on(
                client
                    .get_object()
                    .bucket(state.bucket())
                    .key(&key)
                    .presigned(presigning),
            )
            .map_err(|e| backend(failure(state.bucket(), "GetObject (presign)", e)))?
        } else {
            block_on(
                client
                    .head_object()
                    .bucket(state.bucket())
                    .key(&key)
                    .presigned(presigning),
            )
            .map_err(|e| backend(failure(state.bucket(), "HeadObject (presign)", e)))?
        };
        Ok(Some(presigned.uri().to_string()))
    }

    fn walk(path: String, start_after: Option<String>, limit: u32) -> Result<Vec<FileInfo>, Error> {
        let state = state()?;
        let prefix = state.config.dir_prefix(&path);
        // A start-after ending in `/` (the host resuming after a
        // directory) keeps it: "d/" sorts after "d-e", "d" before.
        let mut after = start_after.as_deref().map(|p| {
            let key = state.config.key(p);
            if p.ends_with('/') {
                format!("{key}/")
            } else {
                key
            }
        });
        let mut page = Vec::new();
        let limit = limit.max(1) as usize;
        while page.len() < limit {
            let want = (limit - page.len()).min(1000) as i32;
            let request = state
                .client
                .list_objects_v2()
                .bucket(state.bucket())
                .prefix(&prefix)
                .max_keys(want)
                .set_start_after(after.take());
            let output = block_on(request.send()).map_err(|e| backend(failure(state.bucket(), "ListObjectsV2", e)))?;
            let objects = output.contents();
            for object in objects {
                let Some(key) = object.key() else { continue };
                after = Some(key.to_string());
                // A "directory marker" key ending in `/` is no file.
                if key.ends_with('/') {
                    continue;
                }
                if let Some(file) = state.config.path_of(key) {
                    page.push(FileInfo {
                        path: file,
                        size: object.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
                        modified_ns: nanos(object.last_modified()),
                        is_dir: false,
                    });
                }
            }
            if objects.is_empty() || output.is_truncated() != Some(true) {
                break;
            }
        }
        if page.is_empty() && start_after.is_none() && path != "/" {
            return Err(Error::PathNotFound(path));
        }
        Ok(page)
    }
}

fn dir_info(path: String) -> FileInfo {
    FileInfo {
        path,
        size: 0,
        modified_ns: 0,
        is_dir: true,
    }
}

/// A ranged GET whose body is read as the host asks.
pub struct Reader {
    path: String,
    /// None once at the end (or for a reader that started past it).
    body: RefCell<Option<raw::Response>>,
}

impl GuestFileReader for Reader {
    fn read(&self, max_bytes: u32) -> Result<Vec<u8>, Error> {
        let mut body = self.body.borrow_mut();
        let Some(response) = body.as_mut() else {
            return Ok(Vec::new());
        };
        let data = response
            .read(max_bytes.into())
            .map_err(|e| Error::Backend(format!("{}: {e}", self.path)))?;
        if data.is_empty() {
            *body = None;
        }
        Ok(data)
    }
}

/// What a writer holds: the upload it continues, the parts sent, and the
/// bytes not yet sent.
#[derive(Default)]
struct Inner {
    upload_id: Option<String>,
    parts: Vec<Part>,
    buffer: Vec<u8>,
    /// The last part of the resumed upload is under 5 MiB, so no part may
    /// follow it: the upload must be completed and restarted first.
    small_tail: bool,
    /// An object (of this size) at the key that the content continues; not
    /// yet part of any upload.
    base: Option<u64>,
    /// Closed, committed or cancelled.
    done: bool,
}

impl Inner {
    fn size(&self) -> u64 {
        self.parts.iter().map(|p| p.size).sum::<u64>() + self.base.unwrap_or(0) + self.buffer.len() as u64
    }
}

pub struct Writer {
    path: String,
    key: String,
    inner: RefCell<Inner>,
}

impl Writer {
    fn ensure_upload(&self, state: &State, inner: &mut Inner) -> Result<String, Failure> {
        if let Some(id) = &inner.upload_id {
            return Ok(id.clone());
        }
        let id = state.create_upload(&self.key)?;
        inner.upload_id = Some(id.clone());
        Ok(id)
    }

    /// Makes the content so far a sequence of parts that more parts may
    /// follow (every part at least 5 MiB) plus the buffer, as distribution
    /// does: a small last part is completed into an object, and an object
    /// becomes the first part(s) of a new upload (copied in S3) or, when
    /// small, the start of the buffer.
    fn prepare(&self, state: &State, inner: &mut Inner) -> Result<(), Failure> {
        if inner.small_tail {
            let upload_id = inner.upload_id.take().unwrap_or_default();
            state.complete(&self.key, &upload_id, &inner.parts)?;
            inner.base = Some(inner.parts.iter().map(|p| p.size).sum());
            inner.parts.clear();
            inner.small_tail = false;
        }
        match inner.base {
            None | Some(0) => {}
            Some(size) if size < MIN_CHUNK => {
                let mut data = state.get_object(&self.key)?;
                if data.len() as u64 != size {
                    return Err(Failure {
                        status: None,
                        code: None,
                        message: format!(
                            "s3 bucket {:?}: {}: changed while being appended to ({} bytes, expected {size})",
                            state.bucket(),
                            self.key,
                            data.len()
                        ),
                    });
                }
                data.extend_from_slice(&inner.buffer);
                inner.buffer = data;
            }
            Some(size) => {
                let upload_id = self.ensure_upload(state, inner)?;
                let source = format!("{}/{}", state.bucket(), encode_key(&self.key));
                for (start, end) in copy_ranges(size, MAX_CHUNK) {
                    let number = inner.parts.last().map_or(1, |p| p.number + 1);
                    let part = block_on(state.copy_part(&source, &self.key, &upload_id, number, start, end))?;
                    inner.parts.push(part);
                }
            }
        }
        inner.base = None;
        Ok(())
    }

    /// Sends the first `len` buffered bytes as the next part.
    fn send_part(&self, state: &State, inner: &mut Inner, len: usize) -> Result<(), Failure> {
        self.prepare(state, inner)?;
        let upload_id = self.ensure_upload(state, inner)?;
        let rest = inner.buffer.split_off(len.min(inner.buffer.len()));
        let data = std::mem::replace(&mut inner.buffer, rest);
        let size = data.len() as u64;
        let number = inner.parts.last().map_or(1, |p| p.number + 1);
        let etag = state.upload_part(&self.key, &upload_id, number, data)?;
        inner.parts.push(Part { number, etag, size });
        Ok(())
    }

    fn finish(&self, inner: &mut Inner) -> Result<(), Error> {
        if std::mem::replace(&mut inner.done, true) {
            return Err(Error::Backend(format!(
                "{}: the writer was already closed, committed or cancelled",
                self.path
            )));
        }
        Ok(())
    }
}

impl GuestFileWriter for Writer {
    fn write(&self, data: Vec<u8>) -> Result<u64, Error> {
        let state = state()?;
        let mut inner = self.inner.borrow_mut();
        if inner.done {
            return Err(Error::Backend(format!(
                "{}: write after close, commit or cancel",
                self.path
            )));
        }
        let len = data.len() as u64;
        let chunk = usize::try_from(state.config.chunk_size).unwrap_or(usize::MAX);
        // The buffer holds one part and is sized for it once (grown by
        // doubling it could need twice that), so a writer needs `chunksize`
        // plus one write of memory.
        let mut rest = &data[..];
        while !rest.is_empty() {
            if inner.buffer.capacity() < chunk {
                let len = inner.buffer.len();
                inner.buffer.try_reserve_exact(chunk - len).map_err(|_| {
                    Error::Backend(format!(
                        "{}: no memory for a part of chunksize {chunk} bytes; lower chunksize or raise plugins.memorylimitmib",
                        self.path
                    ))
                })?;
            }
            let room = chunk.saturating_sub(inner.buffer.len());
            let (now, later) = rest.split_at(room.min(rest.len()));
            inner.buffer.extend_from_slice(now);
            rest = later;
            if inner.buffer.len() >= chunk {
                self.send_part(state, &mut inner, chunk).map_err(backend)?;
            }
        }
        Ok(len)
    }

    fn size(&self) -> u64 {
        self.inner.borrow().size()
    }

    fn close(&self) -> Result<(), Error> {
        let state = state()?;
        let mut inner = self.inner.borrow_mut();
        self.finish(&mut inner)?;
        if !inner.buffer.is_empty() {
            // Merging a resumed small tail first may grow the buffer: the
            // part is all of it after that.
            self.prepare(state, &mut inner).map_err(backend)?;
            let len = inner.buffer.len();
            self.send_part(state, &mut inner, len).map_err(backend)?;
        } else if inner.upload_id.is_none() && inner.base.is_none() {
            // An empty content: an empty upload in progress records it, so a
            // later append starts from nothing, not from an older object.
            self.ensure_upload(state, &mut inner).map_err(backend)?;
        }
        Ok(())
    }

    fn cancel(&self) -> Result<(), Error> {
        let state = state()?;
        let mut inner = self.inner.borrow_mut();
        self.finish(&mut inner)?;
        if let Some(upload_id) = inner.upload_id.take() {
            state.abort(&self.key, &upload_id).map_err(backend)?;
        }
        let request = state.client.delete_object().bucket(state.bucket()).key(&self.key);
        block_on(request.send()).map_err(|e| backend(failure(state.bucket(), "DeleteObject", e)))?;
        Ok(())
    }

    fn commit(&self) -> Result<(), Error> {
        let state = state()?;
        let mut inner = self.inner.borrow_mut();
        self.finish(&mut inner)?;
        let inner = &mut *inner;
        if inner.buffer.is_empty() && inner.upload_id.is_none() && inner.base.is_some() {
            return Ok(()); // appended nothing to an object: it is the content
        }
        if inner.buffer.is_empty() && inner.small_tail {
            // Nothing new after a small last part: it may end the upload.
            let upload_id = inner.upload_id.take().unwrap_or_default();
            return state.complete(&self.key, &upload_id, &inner.parts).map_err(backend);
        }
        self.prepare(state, inner).map_err(backend)?;
        if inner.parts.is_empty() {
            // Everything is in the buffer: one PutObject, and no upload.
            if let Some(upload_id) = inner.upload_id.take() {
                state.abort(&self.key, &upload_id).map_err(backend)?;
            }
            let data = std::mem::take(&mut inner.buffer);
            return state.put_object(&self.key, data).map_err(backend);
        }
        if !inner.buffer.is_empty() {
            let len = inner.buffer.len();
            self.send_part(state, inner, len).map_err(backend)?;
        }
        let upload_id = inner.upload_id.take().unwrap_or_default();
        state.complete(&self.key, &upload_id, &inner.parts).map_err(backend)
    }
}
