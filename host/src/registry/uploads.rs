//! Blob uploads: `POST /v2/<name>/blobs/uploads/` (start, monolithic, mount),
//! `PATCH`/`PUT`/`GET`/`DELETE /v2/<name>/blobs/uploads/<id>`. The store
//! keeps every upload's state in storage (see `crate::store`); this module
//! checks `Content-Range` and moves the request body into the upload.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::store::{Algorithm, Digest, Hasher, Upload};

use super::blobs::docker_content_digest;
use super::error::{ErrorCode, RegistryError, Result};
use super::routes::check_name;
use super::stream::{body_to_writer, body_up_to};
use super::{Identity, Query, Registry};

/// The most of a refused chunk read before the answer (see [`drain`]).
const DRAIN_LIMIT: usize = 16 << 20;

/// `POST`: mounts a blob from elsewhere, takes a whole blob at once
/// (`?digest=`), or starts an upload for chunks. `?digest-algorithm=`
/// (the spec's main branch) is checked: an algorithm the registry cannot
/// verify is refused before any byte is sent. The closing digest decides
/// how the blob is verified and stored, as it always does.
pub async fn start(registry: &Registry, caller: &Identity, name: &str, query: &Query, body: Body) -> Result<Response> {
    let store = registry.store();
    if let Some(algorithm) = query.get("digest-algorithm") {
        let algorithm = Algorithm::parse(algorithm)?;
        if let Some(digest) = query.get("digest").and_then(|d| Digest::parse(d).ok()) {
            if digest.algorithm() != algorithm {
                return Err(RegistryError::new(
                    ErrorCode::DigestInvalid,
                    format!("digest {digest} is not of the digest-algorithm {}", algorithm.name()),
                ));
            }
        }
    }
    if let Some(mount) = query.get("mount") {
        let digest = Digest::parse(mount)?;
        let from = query.get("from").filter(|from| check_name(from).is_ok());
        let mounted = if registry.restricts_repositories() {
            // Permissions differ by repository: only a blob the caller may
            // pull from `from`, which links it, so that a digest alone
            // never reaches another tenant's layer.
            match from {
                Some(from) if registry.may_pull(caller, from) && store.blob_size(from, &digest).await.is_ok() => {
                    store.mount_blob(name, &digest).await?
                }
                _ => false,
            }
        } else {
            // The blob store is shared: its data existing is what counts,
            // whichever repository the client names, if any.
            query.get("from").is_none_or(|from| check_name(from).is_ok()) && store.mount_blob(name, &digest).await?
        };
        if mounted {
            return Ok(created(name, &digest));
        }
        // Otherwise the spec has the client upload as if it had not asked.
    }
    let Some(digest) = query.get("digest") else {
        let id = store.start_upload(name).await?;
        return Ok(accepted(StatusCode::ACCEPTED, name, &id, 0));
    };
    let digest = Digest::parse(digest)?;
    let mut upload = store.start_monolithic_upload(name).await?;
    let hasher = Hasher::new(digest.algorithm());
    match body_to_writer(body, upload.writer(), Some(hasher)).await {
        Ok(streamed) => store.complete_upload(upload, &digest, streamed).await?,
        // A monolithic upload has no later chunk: on failure it is gone.
        Err(err) => {
            store.discard_upload(upload).await;
            return Err(err);
        }
    }
    Ok(created(name, &digest))
}

/// `PATCH`: appends one chunk, which must start at the upload's offset.
pub async fn patch(registry: &Registry, name: &str, id: &str, headers: &HeaderMap, body: Body) -> Result<Response> {
    let mut upload = registry.store().open_upload(name, id).await?;
    match append_chunk(name, headers, body, &mut upload, None).await {
        Ok(_) => {
            let size = upload.close().await?;
            Ok(accepted(StatusCode::ACCEPTED, name, id, size))
        }
        Err(err) => {
            upload.keep().await;
            Err(err)
        }
    }
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
    let store = registry.store();
    let mut upload = store.open_upload(name, id).await?;
    match append_chunk(name, headers, body, &mut upload, Some(digest.algorithm())).await {
        Ok(streamed) => store.complete_upload(upload, &digest, streamed).await?,
        Err(err) => {
            upload.keep().await;
            return Err(err);
        }
    }
    Ok(created(name, &digest))
}

/// `GET`: where the upload stands.
pub async fn status(registry: &Registry, name: &str, id: &str) -> Result<Response> {
    let size = registry.store().upload_offset(name, id).await?;
    Ok(accepted(StatusCode::NO_CONTENT, name, id, size))
}

/// `DELETE`: abandons the upload.
pub async fn cancel(registry: &Registry, name: &str, id: &str) -> Result<Response> {
    registry.store().cancel_upload(name, id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Writes the request body after checking `Content-Range`, when the client
/// sent one, against the offset. With `algorithm`, and the upload empty so
/// far, the body is hashed on its way: its digest is the whole upload's.
async fn append_chunk(
    name: &str,
    headers: &HeaderMap,
    body: Body,
    upload: &mut Upload,
    algorithm: Option<Algorithm>,
) -> Result<Option<Digest>> {
    let offset = upload.offset();
    let mut range = None;
    if let Some(value) = headers.get(header::CONTENT_RANGE) {
        let (start, end) =
            value.to_str().ok().and_then(parse_content_range).ok_or_else(|| {
                RegistryError::new(ErrorCode::BlobUploadInvalid, "Content-Range is not <start>-<end>")
            })?;
        if start != offset {
            drain(body).await;
            let id = upload.id();
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
            drain(body).await;
            return Err(RegistryError::new(
                ErrorCode::SizeInvalid,
                "Content-Length does not match Content-Range",
            ));
        }
        range = Some((start, end));
    }
    let hasher = algorithm.filter(|_| offset == 0).map(Hasher::new);
    let streamed = body_to_writer(body, upload.writer(), hasher).await?;
    // A body without Content-Length (chunked) is measured as it is written:
    // the range the registry answers with must be the one the client sent.
    if let Some((start, end)) = range {
        let written = upload.written();
        if written != end - start + 1 {
            return Err(RegistryError::new(
                ErrorCode::SizeInvalid,
                format!(
                    "the chunk has {written} bytes, Content-Range {start}-{end} says {}",
                    end - start + 1
                ),
            ));
        }
    }
    Ok(streamed)
}

/// Reads a refused chunk to its end, up to [`DRAIN_LIMIT`], so that a
/// client still sending it reads the refusal rather than a reset
/// connection; past the limit the connection is closed on it.
async fn drain(body: Body) {
    let _ = body_up_to(body, 0, DRAIN_LIMIT).await;
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

/// A 202, or the 204 of a status request, which has no `Content-Length`
/// (RFC 9110); hyper gives the 202 its `Content-Length: 0`.
fn accepted(status: StatusCode, name: &str, id: &str, size: u64) -> Response {
    (
        status,
        [
            (header::LOCATION, upload_location(name, id)),
            (header::RANGE, range_value(size)),
            (upload_uuid(), id.to_string()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges() {
        assert_eq!(parse_content_range("0-99"), Some((0, 99)));
        assert_eq!(parse_content_range("bytes 100-199/*"), Some((100, 199)));
        assert_eq!(parse_content_range("9-3"), None);
        assert_eq!(parse_content_range("x"), None);
    }
}
