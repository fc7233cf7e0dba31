//! `GET /v2/<name>/referrers/<digest>?artifactType=`: the manifests of the
//! repository whose `subject` is `digest`, as an OCI image index.
//!
//! Found by reading every manifest the repository links
//! (`_manifests/revisions`), not from an index of our own: simplest, always
//! in step with the revisions (deletes included), and it works on a storage
//! written by distribution. The cost is one read per manifest per request.

use axum::http::{header, HeaderName, HeaderValue};
use axum::response::Response;
use serde_json::{json, Map, Value};

use crate::storage::layout::{self, Digest};
use crate::storage::{StorageDriver, StorageError};

use super::document::{self, OCI_INDEX};
use super::error::Result;
use super::manifests::has_revision;
use super::{json_response, Query, Registry};

pub async fn list(registry: &Registry, name: &str, digest: &Digest, query: &Query, head: bool) -> Result<Response> {
    let driver = registry.driver();
    let filter = query.get("artifactType").filter(|t| !t.is_empty());
    let mut descriptors = Vec::new();
    for candidate in revisions(driver, name).await? {
        // A revision whose link is gone was deleted meanwhile.
        if !has_revision(registry, name, &candidate).await? {
            continue;
        }
        let bytes = match driver.get_content(&layout::blob_data(&candidate)).await {
            Ok(bytes) => bytes,
            Err(StorageError::PathNotFound(_)) => continue,
            Err(err) => return Err(err.into()),
        };
        let Some(referrer) = document::referrer(&bytes) else {
            continue;
        };
        if referrer.subject != *digest {
            continue;
        }
        if filter.is_some_and(|wanted| referrer.artifact_type.as_deref() != Some(wanted.as_str())) {
            continue;
        }
        let mut descriptor = Map::new();
        descriptor.insert("mediaType".into(), referrer.media_type.into());
        descriptor.insert("digest".into(), candidate.to_string().into());
        descriptor.insert("size".into(), bytes.len().into());
        if let Some(artifact_type) = referrer.artifact_type {
            descriptor.insert("artifactType".into(), artifact_type.into());
        }
        if let Some(annotations) = referrer.annotations {
            descriptor.insert("annotations".into(), annotations);
        }
        descriptors.push(Value::Object(descriptor));
    }
    let index = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors });
    let mut response = json_response(index.to_string(), head);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(OCI_INDEX));
    if filter.is_some() {
        response.headers_mut().insert(
            HeaderName::from_static("oci-filters-applied"),
            HeaderValue::from_static("artifactType"),
        );
    }
    Ok(response)
}

/// The digests below `_manifests/revisions/<alg>/<hex>`, in lexical order.
async fn revisions(driver: &dyn StorageDriver, name: &str) -> Result<Vec<Digest>, StorageError> {
    let root = layout::manifest_revisions(name);
    let algorithms = match driver.list(&root).await {
        Ok(algorithms) => algorithms,
        Err(StorageError::PathNotFound(_)) => return Ok(Vec::new()),
        Err(err) => return Err(err),
    };
    let mut digests = Vec::new();
    for algorithm_dir in algorithms {
        let algorithm = algorithm_dir.rsplit('/').next().unwrap_or_default().to_string();
        let hexes = match driver.list(&algorithm_dir).await {
            Ok(hexes) => hexes,
            Err(StorageError::PathNotFound(_)) => continue,
            Err(err) => return Err(err),
        };
        for hex_dir in hexes {
            let hex = hex_dir.rsplit('/').next().unwrap_or_default();
            if let Ok(digest) = Digest::parse(&format!("{algorithm}:{hex}")) {
                digests.push(digest);
            }
        }
    }
    digests.sort();
    Ok(digests)
}
