//! `GET /v2/<name>/referrers/<digest>?artifactType=`: the manifests of the
//! repository whose `subject` is `digest`, as an OCI image index. The store
//! reads every manifest of the repository (see [`crate::store::Store::manifests`]);
//! the cost is one read per manifest per request.

use axum::http::{header, HeaderName, HeaderValue};
use axum::response::Response;
use serde_json::{json, Map, Value};

use crate::store::Digest;

use super::document::{self, OCI_INDEX};
use super::error::Result;
use super::{json_response, Query, Registry};

pub async fn list(registry: &Registry, name: &str, digest: &Digest, query: &Query, head: bool) -> Result<Response> {
    let filter = query.get("artifactType").filter(|t| !t.is_empty());
    let mut descriptors = Vec::new();
    for (candidate, bytes) in registry.store().manifests(name).await? {
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
