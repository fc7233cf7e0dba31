//! `GET`/`HEAD`/`PUT`/`DELETE /v2/<name>/manifests/<reference>`.
//!
//! A manifest is a blob (its bytes, exactly as pushed) linked from the
//! repository's `_manifests/revisions`; a tag is a link to one of them.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::storage::layout::{self, Algorithm, Digest};
use crate::storage::StorageError;

use super::blobs::{docker_content_digest, exists_globally, linked_size};
use super::document::{self, Dependency};
use super::error::{ErrorCode, RegistryError, Result};
use super::routes::Reference;
use super::stream::{body_up_to, digest_of};
use super::Registry;

/// The largest manifest accepted (distribution's limit too).
const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// A body too large by at most this much is read to its end before the 413,
/// so that a client still sending sees the answer rather than a reset
/// connection; a larger one is refused at once.
const DRAIN_LIMIT: usize = 4 * MAX_MANIFEST_BYTES;

/// `GET`/`HEAD`. A manifest of a type the request's `Accept` header leaves
/// out is, as distribution has it, not found for that client.
pub async fn get(
    registry: &Registry,
    name: &str,
    reference: &Reference,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response> {
    let digest = resolve(registry, name, reference).await?;
    let bytes = match registry.driver().get_content(&layout::blob_data(&digest)).await {
        Ok(bytes) => bytes,
        Err(StorageError::PathNotFound(_)) => return Err(manifest_unknown(name, &reference_text(reference))),
        Err(err) => return Err(err.into()),
    };
    let (length, media_type) = (bytes.len(), document::served_media_type(&bytes));
    if !accepts(headers, &media_type) {
        return Err(RegistryError::new(
            ErrorCode::ManifestUnknown,
            format!(
                "manifest {} in {name} is a {media_type}, which the request's Accept header does not list",
                reference_text(reference)
            ),
        ));
    }
    let body = if head { Body::empty() } else { Body::from(bytes) };
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, media_type),
            (header::CONTENT_LENGTH, length.to_string()),
            (header::ETAG, format!("\"{digest}\"")),
            (docker_content_digest(), digest.to_string()),
        ],
        body,
    )
        .into_response())
}

pub async fn put(
    registry: &Registry,
    name: &str,
    reference: &Reference,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response> {
    let too_large = || {
        RegistryError::new(
            ErrorCode::SizeInvalid,
            format!("a manifest may be at most {MAX_MANIFEST_BYTES} bytes"),
        )
        .with_status(StatusCode::PAYLOAD_TOO_LARGE)
    };
    let declared_length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared_length.is_some_and(|length| length > DRAIN_LIMIT as u64) {
        return Err(too_large());
    }
    let Some(bytes) = body_up_to(body, MAX_MANIFEST_BYTES, DRAIN_LIMIT).await? else {
        return Err(too_large());
    };
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let manifest = document::parse(&bytes, content_type)?;

    let algorithm = match reference {
        Reference::Digest(digest) => digest.algorithm(),
        Reference::Tag(_) => Algorithm::Sha256,
    };
    let digest = digest_of(algorithm, &bytes);
    if let Reference::Digest(expected) = reference {
        if *expected != digest {
            return Err(RegistryError::new(
                ErrorCode::DigestInvalid,
                format!("the manifest's digest is {digest}, not {expected}"),
            ));
        }
    }
    for dependency in &manifest.dependencies {
        check_dependency(registry, name, dependency).await?;
    }

    let driver = registry.driver();
    if !exists_globally(registry, &digest).await? {
        driver.put_content(&layout::blob_data(&digest), &bytes).await?;
    }
    let link = layout::link_content(&digest);
    driver
        .put_content(&layout::manifest_revision_link(name, &digest), link.as_bytes())
        .await?;
    if let Reference::Tag(tag) = reference {
        driver
            .put_content(&layout::tag_index_link(name, tag, &digest), link.as_bytes())
            .await?;
        driver
            .put_content(&layout::tag_current_link(name, tag), link.as_bytes())
            .await?;
    }
    tracing::info!(repository = name, digest = %digest, media_type = manifest.media_type, "manifest stored");
    let mut response = (
        StatusCode::CREATED,
        [
            (header::LOCATION, format!("/v2/{name}/manifests/{digest}")),
            (docker_content_digest(), digest.to_string()),
            (header::CONTENT_LENGTH, "0".to_string()),
        ],
    )
        .into_response();
    if let Some(subject) = manifest.subject {
        if let Ok(value) = subject.to_string().parse() {
            response
                .headers_mut()
                .insert(HeaderName::from_static("oci-subject"), value);
        }
    }
    Ok(response)
}

/// By digest: removes the manifest from the repository, and every tag
/// pointing at it. By tag: removes the tag only (spec v1.1).
pub async fn delete(registry: &Registry, name: &str, reference: &Reference) -> Result<Response> {
    let driver = registry.driver();
    match reference {
        Reference::Tag(tag) => {
            resolve(registry, name, reference).await?;
            driver.delete(&layout::tag(name, tag)).await?;
        }
        Reference::Digest(digest) => {
            resolve(registry, name, reference).await?;
            let link = layout::manifest_revision_link(name, digest);
            driver.delete(link.trim_end_matches("/link")).await?;
            let tags = match driver.list(&layout::tags(name)).await {
                Ok(tags) => tags,
                Err(StorageError::PathNotFound(_)) => Vec::new(),
                Err(err) => return Err(err.into()),
            };
            for tag_dir in tags {
                let tag = tag_dir.rsplit('/').next().unwrap_or_default();
                if read_link(registry, &layout::tag_current_link(name, tag)).await? == Some(digest.clone()) {
                    driver.delete(&tag_dir).await?;
                }
            }
        }
    }
    Ok((StatusCode::ACCEPTED, [(header::CONTENT_LENGTH, "0")]).into_response())
}

/// The digest `reference` names in the repository, or `MANIFEST_UNKNOWN`.
pub async fn resolve(registry: &Registry, name: &str, reference: &Reference) -> Result<Digest> {
    let found = match reference {
        Reference::Tag(tag) => read_link(registry, &layout::tag_current_link(name, tag)).await?,
        Reference::Digest(digest) => {
            let link = read_link(registry, &layout::manifest_revision_link(name, digest)).await?;
            link.filter(|linked| linked == digest)
        }
    };
    found.ok_or_else(|| manifest_unknown(name, &reference_text(reference)))
}

/// Whether the repository has the manifest `digest`.
pub async fn has_revision(registry: &Registry, name: &str, digest: &Digest) -> Result<bool> {
    let link = read_link(registry, &layout::manifest_revision_link(name, digest)).await?;
    Ok(link.as_ref() == Some(digest))
}

/// The digest a link file holds; `None` if there is none or it is garbage.
async fn read_link(registry: &Registry, path: &str) -> Result<Option<Digest>> {
    match registry.driver().get_content(path).await {
        Ok(content) => Ok(std::str::from_utf8(&content)
            .ok()
            .and_then(|text| Digest::parse(text.trim()).ok())),
        Err(StorageError::PathNotFound(_)) => Ok(None),
        Err(err) => Err(err.into()),
    }
}

async fn check_dependency(registry: &Registry, name: &str, dependency: &Dependency) -> Result<()> {
    let (digest, present) = match dependency {
        Dependency::Blob(digest) => match linked_size(registry, name, digest).await {
            Ok(_) => (digest, true),
            Err(err) if err.code() == ErrorCode::BlobUnknown => (digest, false),
            Err(err) => return Err(err),
        },
        Dependency::Manifest(digest) => (digest, has_revision(registry, name, digest).await?),
    };
    if present {
        Ok(())
    } else {
        Err(RegistryError::new(
            ErrorCode::ManifestBlobUnknown,
            format!("{digest}, which the manifest references, is not in {name}"),
        )
        .with_detail(json!({ "digest": digest.to_string() })))
    }
}

/// Whether the `Accept` headers admit `media_type`: no header (or an empty
/// one) admits everything, as do `*/*` and `<type>/*`; parameters such as
/// `q` are ignored, so `q=0` still admits.
fn accepts(headers: &HeaderMap, media_type: &str) -> bool {
    let mut ranges = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|range| range.split(';').next().unwrap_or_default().trim())
        .filter(|range| !range.is_empty())
        .peekable();
    if ranges.peek().is_none() {
        return true;
    }
    let top_level = media_type.split('/').next().unwrap_or_default();
    ranges.any(|range| {
        range == "*/*"
            || range.eq_ignore_ascii_case(media_type)
            || range
                .strip_suffix("/*")
                .is_some_and(|range_type| range_type.eq_ignore_ascii_case(top_level))
    })
}

fn reference_text(reference: &Reference) -> String {
    match reference {
        Reference::Tag(tag) => tag.clone(),
        Reference::Digest(digest) => digest.to_string(),
    }
}

fn manifest_unknown(name: &str, reference: &str) -> RegistryError {
    RegistryError::new(
        ErrorCode::ManifestUnknown,
        format!("manifest {reference} is not in {name}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_accept(values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(header::ACCEPT, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn accept_ranges() {
        const OCI: &str = "application/vnd.oci.image.manifest.v1+json";
        for admits in [
            &[][..],
            &[""],
            &["*/*"],
            &["application/*;q=0.1"],
            &["text/plain", "application/vnd.oci.image.manifest.v1+json"],
            &["application/json, application/vnd.oci.image.manifest.v1+json ; q=0.9"],
            &["APPLICATION/VND.OCI.IMAGE.MANIFEST.V1+JSON"],
        ] {
            assert!(accepts(&with_accept(admits), OCI), "{admits:?}");
        }
        for refuses in [
            &["application/vnd.docker.distribution.manifest.v2+json"][..],
            &["text/*", "application/json"],
            &["application/vnd.oci.image.index.v1+json"],
        ] {
            assert!(!accepts(&with_accept(refuses), OCI), "{refuses:?}");
        }
    }
}
