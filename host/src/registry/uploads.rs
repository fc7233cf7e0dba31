//! Blob uploads: `POST /v2/<name>/blobs/uploads/` (start, monolithic, mount),
//! `PATCH`/`PUT`/`GET`/`DELETE /v2/<name>/blobs/uploads/<id>`.
//!
//! All state is in storage: `_uploads/<id>/startedat` says the upload exists,
//! `_uploads/<id>/data` holds what was received, continued by a writer in
//! append mode and closed after each chunk; its size is the offset. So any
//! process sharing the storage takes the next chunk, and an upload survives a
//! restart. No hash state is kept between requests: unless one request carried
//! all the data (hashed on its way in), the closing `PUT` reads it back to
//! verify the digest, then moves it into place, so a blob becomes visible
//! whole and verified or not at all.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::storage::layout::{self, Algorithm, Digest};
use crate::storage::{FileWriter, StorageError};

use super::blobs::{docker_content_digest, exists_globally};
use super::catalog::repository_names;
use super::error::{ErrorCode, RegistryError, Result};
use super::routes::check_name;
use super::stream::{body_to_writer, digest_of_stored, Hasher};
use super::{Query, Registry};

/// `POST`: mounts a blob from elsewhere, takes a whole blob at once
/// (`?digest=`), or starts an upload for chunks.
pub async fn start(registry: &Registry, name: &str, query: &Query, body: Body) -> Result<Response> {
    if let Some(mount) = query.get("mount") {
        let digest = Digest::parse(mount)?;
        // Mounting from a repository the client names, or from none: the
        // blob store is shared, so its data existing is what counts.
        let from_valid = query.get("from").is_none_or(|from| check_name(from).is_ok());
        if from_valid && exists_globally(registry, &digest).await? {
            link_layer(registry, name, &digest).await?;
            return Ok(created(name, &digest));
        }
        // Otherwise the spec has the client upload as if it had not asked.
    }
    let id = new_id();
    let driver = registry.driver();
    driver
        .put_content(
            &layout::upload_started_at(name, &id),
            rfc3339(SystemTime::now()).as_bytes(),
        )
        .await?;
    let data = layout::upload_data(name, &id);
    match query.get("digest") {
        Some(digest) => {
            let digest = match Digest::parse(digest) {
                Ok(digest) => digest,
                Err(err) => {
                    discard(registry, name, &id).await;
                    return Err(err.into());
                }
            };
            let mut writer = driver.writer(&data, false).await?;
            let hasher = Hasher::new(digest.algorithm());
            let written = body_to_writer(body, writer.as_mut(), Some(hasher)).await;
            let streamed = written.as_ref().ok().cloned().flatten();
            // A monolithic upload has no later chunk: on failure it is gone.
            if let Err(err) = finish_writer(writer, written.map(|_| ())).await {
                discard(registry, name, &id).await;
                return Err(err);
            }
            complete(registry, name, &id, &digest, streamed).await
        }
        None => {
            // The data file exists from the start, so every chunk appends.
            driver.put_content(&data, b"").await?;
            Ok(accepted(StatusCode::ACCEPTED, name, &id, 0))
        }
    }
}

/// `PATCH`: appends one chunk, which must start at the upload's offset.
pub async fn patch(registry: &Registry, name: &str, id: &str, headers: &HeaderMap, body: Body) -> Result<Response> {
    let _turn = registry.upload_locks.lock(id).await;
    ensure_exists(registry, name, id).await?;
    let mut writer = registry.driver().writer(&layout::upload_data(name, id), true).await?;
    let size = match append_chunk(name, id, headers, body, writer.as_mut(), None).await {
        Ok(_) => writer.size().await.map_err(RegistryError::from),
        Err(err) => Err(err),
    };
    let size = finish_writer_closing(writer, size).await?;
    Ok(accepted(StatusCode::ACCEPTED, name, id, size))
}

/// `PUT ?digest=`: appends the last chunk, if any, and completes the upload.
pub async fn put(
    registry: &Registry,
    name: &str,
    id: &str,
    query: &Query,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response> {
    let digest = query
        .get("digest")
        .ok_or_else(|| RegistryError::new(ErrorCode::DigestInvalid, "the digest parameter is missing"))?;
    let digest = Digest::parse(digest)?;
    let _turn = registry.upload_locks.lock(id).await;
    ensure_exists(registry, name, id).await?;
    let mut writer = registry.driver().writer(&layout::upload_data(name, id), true).await?;
    let appended = append_chunk(name, id, headers, body, writer.as_mut(), Some(digest.algorithm())).await;
    // Committed, not closed: the content must be durable and visible before
    // it is moved (and read back, unless this request carried all of it).
    let streamed = appended.as_ref().ok().cloned().flatten();
    finish_writer(writer, appended.map(|_| ())).await?;
    complete(registry, name, id, &digest, streamed).await
}

/// Upload ids whose request is running in this process. A chunk is
/// checked against the upload's offset and then appended; two requests
/// interleaving those steps could both be acknowledged while one chunk is
/// lost. Taking turns, the second sees the offset the first left and gets
/// 416. (Processes sharing the storage do not see each other's turns.)
#[derive(Default)]
pub struct UploadLocks(std::sync::Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>);

impl UploadLocks {
    /// Waits for the turn of upload `id`; it lasts as long as the guard.
    pub async fn lock(&self, id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.0.lock().unwrap_or_else(|e| e.into_inner());
            // Uploads nobody is working on: forgotten.
            locks.retain(|_, lock| lock.strong_count() > 0);
            match locks.get(id).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(tokio::sync::Mutex::new(()));
                    locks.insert(id.to_string(), Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }
}

/// `GET`: where the upload stands.
pub async fn status(registry: &Registry, name: &str, id: &str) -> Result<Response> {
    ensure_exists(registry, name, id).await?;
    let size = offset(registry, name, id).await?;
    Ok(accepted(StatusCode::NO_CONTENT, name, id, size))
}

/// `DELETE`: abandons the upload.
pub async fn cancel(registry: &Registry, name: &str, id: &str) -> Result<Response> {
    ensure_exists(registry, name, id).await?;
    registry.driver().delete(&layout::upload(name, id)).await?;
    Ok((StatusCode::NO_CONTENT, [(header::CONTENT_LENGTH, "0")]).into_response())
}

/// Removes every upload started more than `older_than` ago.
pub async fn purge(registry: &Registry, older_than: Duration) -> Result<usize, StorageError> {
    let driver = registry.driver();
    let now = SystemTime::now();
    let mut purged = 0;
    for name in repository_names(driver, &["_uploads"]).await? {
        let uploads = match driver.list(&layout::uploads(&name)).await {
            Ok(uploads) => uploads,
            Err(StorageError::PathNotFound(_)) => continue,
            Err(err) => return Err(err),
        };
        for upload in uploads {
            let Some(id) = upload.rsplit('/').next() else { continue };
            let started = match driver.get_content(&layout::upload_started_at(&name, id)).await {
                Ok(text) => std::str::from_utf8(&text).ok().and_then(parse_rfc3339),
                Err(StorageError::PathNotFound(_)) => None,
                Err(err) => return Err(err),
            };
            // Without a readable start time, the directory's own age.
            let started = match started {
                Some(started) => started,
                None => match driver.stat(&upload).await {
                    Ok(info) => UNIX_EPOCH + Duration::from_nanos(info.modified_ns),
                    Err(StorageError::PathNotFound(_)) => continue,
                    Err(err) => return Err(err),
                },
            };
            if now.duration_since(started).is_ok_and(|age| age > older_than) {
                match driver.delete(&upload).await {
                    Ok(()) | Err(StorageError::PathNotFound(_)) => purged += 1,
                    Err(err) => return Err(err),
                }
            }
        }
    }
    Ok(purged)
}

/// Writes the request body after checking `Content-Range`, when the client
/// sent one, against the offset. With `algorithm`, and the upload empty so
/// far, the body is hashed on its way: its digest is the whole upload's.
async fn append_chunk(
    name: &str,
    id: &str,
    headers: &HeaderMap,
    body: Body,
    writer: &mut dyn FileWriter,
    algorithm: Option<Algorithm>,
) -> Result<Option<Digest>> {
    let offset = writer.size().await?;
    if let Some(range) = headers.get(header::CONTENT_RANGE) {
        let (start, end) =
            range.to_str().ok().and_then(parse_content_range).ok_or_else(|| {
                RegistryError::new(ErrorCode::BlobUploadInvalid, "Content-Range is not <start>-<end>")
            })?;
        if start != offset {
            return Err(RegistryError::new(
                ErrorCode::RangeInvalid,
                format!("the chunk starts at {start}, the upload is at {offset}"),
            )
            .with_header(header::LOCATION, &upload_location(name, id))
            .with_header(header::RANGE, &range_value(offset))
            .with_header(upload_uuid(), id));
        }
        let length = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if length.is_some_and(|length| length.checked_sub(1) != Some(end - start)) {
            return Err(RegistryError::new(
                ErrorCode::SizeInvalid,
                "Content-Length does not match Content-Range",
            ));
        }
    }
    let hasher = algorithm.filter(|_| offset == 0).map(Hasher::new);
    body_to_writer(body, writer, hasher).await
}

/// Commits `writer` if `outcome` is good, else keeps what it holds for a
/// retry (a chunk cut short leaves the offset where the client can see it).
async fn finish_writer(writer: Box<dyn FileWriter>, outcome: Result<()>) -> Result<()> {
    match outcome {
        Ok(()) => Ok(writer.commit().await?),
        Err(err) => {
            if let Err(close) = writer.close().await {
                tracing::warn!("closing an upload after a failed chunk: {close}");
            }
            Err(err)
        }
    }
}

/// Closes `writer` for the next chunk, whatever `outcome` was.
async fn finish_writer_closing<T>(writer: Box<dyn FileWriter>, outcome: Result<T>) -> Result<T> {
    let closed = writer.close().await;
    let value = outcome?;
    closed?;
    Ok(value)
}

/// Verifies the upload's data against `digest` and makes it the blob.
/// `streamed` is the digest of the data as this request wrote all of it;
/// otherwise (chunks from earlier requests) the stored data is read back.
async fn complete(
    registry: &Registry,
    name: &str,
    id: &str,
    digest: &Digest,
    streamed: Option<Digest>,
) -> Result<Response> {
    let driver = registry.driver();
    let data = layout::upload_data(name, id);
    let actual = match streamed {
        Some(actual) => actual,
        None => digest_of_stored(driver, &data, digest.algorithm()).await?,
    };
    if actual != *digest {
        // As distribution does: a failed upload is gone, the client starts over.
        discard(registry, name, id).await;
        return Err(RegistryError::new(
            ErrorCode::DigestInvalid,
            format!("the upload's content has digest {actual}, not {digest}"),
        ));
    }
    if !exists_globally(registry, digest).await? {
        driver.move_to(&data, &layout::blob_data(digest)).await?;
    }
    link_layer(registry, name, digest).await?;
    discard(registry, name, id).await;
    Ok(created(name, digest))
}

async fn link_layer(registry: &Registry, name: &str, digest: &Digest) -> Result<()> {
    let link = layout::layer_link(name, digest);
    let content = layout::link_content(digest);
    Ok(registry.driver().put_content(&link, content.as_bytes()).await?)
}

/// Removes the upload's directory; a failure leaves it to the purge.
async fn discard(registry: &Registry, name: &str, id: &str) {
    match registry.driver().delete(&layout::upload(name, id)).await {
        Ok(()) | Err(StorageError::PathNotFound(_)) => {}
        Err(err) => tracing::warn!(repository = name, upload = id, "removing a finished upload: {err}"),
    }
}

async fn ensure_exists(registry: &Registry, name: &str, id: &str) -> Result<()> {
    match registry.driver().stat(&layout::upload_started_at(name, id)).await {
        Ok(_) => Ok(()),
        Err(StorageError::PathNotFound(_)) => Err(RegistryError::new(
            ErrorCode::BlobUploadUnknown,
            format!("no upload {id} in {name}"),
        )),
        Err(err) => Err(err.into()),
    }
}

/// The bytes received so far, asked of an append writer (not `stat`): the
/// contract promises a closed upload's size to the next writer only.
async fn offset(registry: &Registry, name: &str, id: &str) -> Result<u64> {
    let mut writer = registry.driver().writer(&layout::upload_data(name, id), true).await?;
    let size = writer.size().await;
    writer.close().await?;
    Ok(size?)
}

fn upload_location(name: &str, id: &str) -> String {
    format!("/v2/{name}/blobs/uploads/{id}")
}

fn upload_uuid() -> HeaderName {
    HeaderName::from_static("docker-upload-uuid")
}

/// `Range: 0-<last byte>`; `0-0` for nothing yet, as clients expect.
fn range_value(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

fn accepted(status: StatusCode, name: &str, id: &str, size: u64) -> Response {
    (
        status,
        [
            (header::LOCATION, upload_location(name, id)),
            (header::RANGE, range_value(size)),
            (upload_uuid(), id.to_string()),
            (header::CONTENT_LENGTH, "0".to_string()),
        ],
    )
        .into_response()
}

fn created(name: &str, digest: &Digest) -> Response {
    (
        StatusCode::CREATED,
        [
            (header::LOCATION, format!("/v2/{name}/blobs/{digest}")),
            (docker_content_digest(), digest.to_string()),
            (header::CONTENT_LENGTH, "0".to_string()),
        ],
    )
        .into_response()
}

/// `<start>-<end>`, inclusive; `bytes ` / `bytes=` and `/<total>` tolerated.
fn parse_content_range(value: &str) -> Option<(u64, u64)> {
    let value = value.trim();
    let value = value
        .strip_prefix("bytes ")
        .or_else(|| value.strip_prefix("bytes="))
        .unwrap_or(value);
    let value = value.split('/').next()?;
    let (start, end) = value.split_once('-')?;
    let (start, end) = (start.trim().parse().ok()?, end.trim().parse().ok()?);
    (start <= end).then_some((start, end))
}

/// A fresh upload id, UUID-shaped: unique across processes sharing storage
/// (per-process random keys, the clock, the pid and a counter, hashed).
fn new_id() -> String {
    use std::hash::{BuildHasher, Hasher as _};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut seed = std::collections::hash_map::RandomState::new().build_hasher();
    seed.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let digest = super::stream::digest_of(
        layout::Algorithm::Sha256,
        format!(
            "{}:{}:{nanos}:{}",
            seed.finish(),
            std::process::id(),
            COUNTER.load(Ordering::Relaxed)
        )
        .as_bytes(),
    );
    let h = digest.hex();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// `time` as RFC 3339 in UTC (`2006-01-02T15:04:05Z`), as distribution
/// writes `startedat`.
fn rfc3339(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The instant of an RFC 3339 time (`Z` or `±hh:mm`, fraction ignored).
fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let text = text.trim();
    let num = |range: std::ops::Range<usize>| text.get(range)?.parse::<i64>().ok();
    let bytes = text.as_bytes();
    if bytes.len() < 20 || bytes[4] != b'-' || bytes[7] != b'-' || !matches!(bytes[10], b'T' | b't' | b' ') {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = text.get(19..)?;
    if let Some(fraction) = rest.strip_prefix('.') {
        rest = fraction.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (oh, om) = rest.get(1..)?.split_once(':')?;
            sign * (oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60)
        }
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s - offset;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        let t = UNIX_EPOCH + Duration::from_secs(1_709_251_199); // 2024-02-29T23:59:59Z
        assert_eq!(rfc3339(t), "2024-02-29T23:59:59Z");
        assert_eq!(parse_rfc3339("2024-02-29T23:59:59Z"), Some(t));
        assert_eq!(parse_rfc3339("2024-03-01T00:59:59.123+01:00"), Some(t));
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(parse_rfc3339("2024-02-29T23:59:59"), None);
    }

    #[test]
    fn content_ranges() {
        assert_eq!(parse_content_range("0-99"), Some((0, 99)));
        assert_eq!(parse_content_range("bytes 100-199/*"), Some((100, 199)));
        assert_eq!(parse_content_range("9-3"), None);
        assert_eq!(parse_content_range("x"), None);
    }

    #[test]
    fn ids_are_unique_and_path_safe() {
        let (a, b) = (new_id(), new_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit() || c == b'-'));
    }
}
