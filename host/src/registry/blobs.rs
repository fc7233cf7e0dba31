//! `GET`/`HEAD`/`DELETE /v2/<name>/blobs/<digest>`: a blob is served only
//! through a repository that links it.

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::store::Digest;

use super::error::{ErrorCode, RegistryError, Result};
use super::stream::reader_body;
use super::Registry;

pub async fn get(
    registry: &Registry,
    name: &str,
    digest: &Digest,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response> {
    let store = registry.store();
    let size = store.blob_size(name, digest).await?;
    if registry.options().redirect && !head {
        if let Some(url) = store.blob_redirect(digest).await? {
            let digest = digest.to_string();
            let headers = [(header::LOCATION, url), (docker_content_digest(), digest)];
            return Ok((StatusCode::TEMPORARY_REDIRECT, headers).into_response());
        }
    }
    // A range is a GET's only (RFC 9110): a HEAD is answered whole.
    let range = match headers
        .get(header::RANGE)
        .filter(|_| !head)
        .and_then(|v| v.to_str().ok())
    {
        Some(range) => parse_range(range, size).ok_or_else(|| {
            RegistryError::new(
                ErrorCode::RangeInvalid,
                format!("range {range} is outside the blob's {size} bytes"),
            )
            .with_header(header::CONTENT_RANGE, &format!("bytes */{size}"))
        })?,
        None => None,
    };
    let (status, start, length) = match range {
        Some((start, end)) => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        None => (StatusCode::OK, 0, size),
    };
    let body = if head || length == 0 {
        Body::empty()
    } else {
        reader_body(store.blob_reader(digest, start).await?, length)
    };
    let mut response = (
        status,
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, length.to_string()),
            (header::ACCEPT_RANGES, "bytes".to_string()),
            (header::ETAG, format!("\"{digest}\"")),
            (docker_content_digest(), digest.to_string()),
        ],
        body,
    )
        .into_response();
    if let Some((start, end)) = range {
        let value = format!("bytes {start}-{end}/{size}");
        if let Ok(value) = value.parse() {
            response.headers_mut().insert(header::CONTENT_RANGE, value);
        }
    }
    Ok(response)
}

/// Unlinks the blob from the repository (its data stays for garbage
/// collection).
pub async fn delete(registry: &Registry, name: &str, digest: &Digest) -> Result<Response> {
    registry.store().unlink_blob(name, digest).await?;
    Ok((StatusCode::ACCEPTED, [(header::CONTENT_LENGTH, "0")]).into_response())
}

pub fn docker_content_digest() -> header::HeaderName {
    header::HeaderName::from_static("docker-content-digest")
}

/// The inclusive byte range `Range: bytes=...` asks of `size` bytes:
/// `Some(None)` to serve it all (no single range we understand, which RFC
/// 9110 lets a server ignore), `None` when it cannot be satisfied.
fn parse_range(value: &str, size: u64) -> Option<Option<(u64, u64)>> {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Some(None);
    };
    if spec.contains(',') {
        return Some(None);
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Some(None);
    };
    let (first, last) = (first.trim(), last.trim());
    let range = match (first.parse::<u64>(), last.parse::<u64>()) {
        // `bytes=a-b` and `bytes=a-`
        (Ok(start), Ok(end)) if start <= end => (start, end.min(size.saturating_sub(1))),
        (Ok(start), Err(_)) if last.is_empty() => (start, size.saturating_sub(1)),
        // `bytes=-n`: the last n bytes
        (Err(_), Ok(n)) if first.is_empty() && n > 0 => (size.saturating_sub(n), size.saturating_sub(1)),
        (Ok(_), Ok(_)) | (Err(_), Ok(_)) => return None,
        _ => return Some(None),
    };
    if range.0 >= size {
        return None;
    }
    Some(Some(range))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some(Some((0, 9))));
        assert_eq!(parse_range("bytes=90-200", 100), Some(Some((90, 99))));
        assert_eq!(parse_range("bytes=10-", 100), Some(Some((10, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Some(Some((90, 99))));
        assert_eq!(parse_range("bytes=-200", 100), Some(Some((0, 99))));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=5-2", 100), None);
        assert_eq!(parse_range("bytes=0-0", 0), None);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Some(None));
        assert_eq!(parse_range("items=0-1", 100), Some(None));
        assert_eq!(parse_range("bytes=x-y", 100), Some(None));
    }
}
