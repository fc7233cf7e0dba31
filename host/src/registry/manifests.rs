//! `GET`/`HEAD`/`PUT`/`DELETE /v2/<name>/manifests/<reference>`: the body
//! is read and checked here, stored and found by the store.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::store::{Algorithm, Digest, Reference};

use super::blobs::docker_content_digest;
use super::document;
use super::error::{ErrorCode, RegistryError, Result};
use super::routes::is_tag;
use super::stream::body_up_to;
use super::Registry;

/// The largest manifest accepted (distribution's limit too).
const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// The most tags one push by digest may apply with `?tag=` (the spec asks
/// for at least 10); more is 414.
const MAX_TAGS_PER_PUSH: usize = 100;

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
    let (digest, bytes) = registry.store().manifest(name, reference).await?;
    let (length, media_type) = (bytes.len(), document::served_media_type(&bytes));
    if !accepts(headers, &media_type) {
        return Err(RegistryError::new(
            ErrorCode::ManifestUnknown,
            format!(
                "manifest {reference} in {name} is a {media_type}, which the request's Accept header does not list"
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

/// `PUT`: stores the manifest; by tag, points the tag at it; by digest,
/// points the `tag_params` (`?tag=`, as the spec's main branch has it) at it.
pub async fn put(
    registry: &Registry,
    name: &str,
    reference: &Reference,
    tag_params: Vec<String>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response> {
    let tags = tags_to_apply(reference, tag_params)?;
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
    let manifest = document::parse(&bytes, content_type, registry.index_children())?;

    let algorithm = match reference {
        Reference::Digest(digest) => digest.algorithm(),
        Reference::Tag(_) => Algorithm::Sha256,
    };
    let digest = Digest::of(algorithm, &bytes);
    if let Reference::Digest(expected) = reference {
        if *expected != digest {
            return Err(RegistryError::new(
                ErrorCode::DigestInvalid,
                format!("the manifest's digest is {digest}, not {expected}"),
            ));
        }
    }
    registry
        .store()
        .put_manifest(name, &digest, &bytes, &tags, &manifest.dependencies)
        .await?;
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
    for tag in &tags {
        if let Ok(value) = tag.parse() {
            response.headers_mut().append(oci_tag(), value);
        }
    }
    if let Some(subject) = manifest.subject {
        if let Ok(value) = subject.to_string().parse() {
            response
                .headers_mut()
                .insert(HeaderName::from_static("oci-subject"), value);
        }
    }
    Ok(response)
}

/// The tags a push applies: the path's, or the distinct `?tag=` values of
/// a push by digest, each valid as a tag in a path would be.
fn tags_to_apply(reference: &Reference, tag_params: Vec<String>) -> Result<Vec<String>> {
    let invalid = |message: String| RegistryError::new(ErrorCode::TagInvalid, message);
    match reference {
        Reference::Tag(tag) if tag_params.is_empty() => Ok(vec![tag.clone()]),
        Reference::Tag(tag) => Err(invalid(format!(
            "`tag` parameters go with a push by digest; this one is by the tag `{tag}`"
        ))),
        Reference::Digest(_) => {
            let mut tags: Vec<String> = Vec::new();
            for tag in tag_params {
                if !is_tag(&tag) {
                    return Err(invalid(format!("`{tag}` is not a valid tag")));
                }
                if !tags.contains(&tag) {
                    tags.push(tag);
                }
                if tags.len() > MAX_TAGS_PER_PUSH {
                    let why = format!("a push may apply at most {MAX_TAGS_PER_PUSH} tags");
                    return Err(invalid(why).with_status(StatusCode::URI_TOO_LONG));
                }
            }
            Ok(tags)
        }
    }
}

fn oci_tag() -> HeaderName {
    HeaderName::from_static("oci-tag")
}

/// By digest: removes the manifest and every tag pointing at it. By tag:
/// removes the tag only (spec v1.1).
pub async fn delete(registry: &Registry, name: &str, reference: &Reference) -> Result<Response> {
    registry.store().delete_manifest(name, reference).await?;
    Ok((StatusCode::ACCEPTED, [(header::CONTENT_LENGTH, "0")]).into_response())
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
