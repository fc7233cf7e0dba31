//! What the registry reads in a manifest: its media type, the blobs and
//! manifests it references, its subject. Validation follows the media type;
//! the bytes themselves are stored and served exactly as received.

use serde_json::{Map, Value};

use crate::config::{IndexValidationConfig, PlatformConfig};
use crate::store::{Dependency, Digest};

use super::error::{ErrorCode, RegistryError, Result};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// A manifest accepted for storing.
#[derive(Debug)]
pub struct Manifest {
    pub media_type: String,
    pub dependencies: Vec<Dependency>,
    pub subject: Option<Digest>,
}

fn invalid(message: impl Into<String>) -> RegistryError {
    RegistryError::new(ErrorCode::ManifestInvalid, message)
}

/// Checks `bytes` as a manifest of the media type it names, or of
/// `content_type` (the request's) when it names none. Of an index's
/// manifests, those `indexes` requires are dependencies.
pub fn parse(bytes: &[u8], content_type: Option<&str>, indexes: &IndexValidationConfig) -> Result<Manifest> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|err| invalid(format!("the manifest is not JSON: {err}")))?;
    let object = value
        .as_object()
        .ok_or_else(|| invalid("the manifest is not a JSON object"))?;
    // A Content-Type header may carry parameters (`; charset=utf-8`).
    let content_type = content_type
        .map(|ct| ct.split(';').next().unwrap_or(ct).trim())
        .filter(|ct| !ct.is_empty());
    let declared = match object.get("mediaType") {
        None => None,
        Some(Value::String(media_type)) => Some(media_type.as_str()),
        Some(_) => return Err(invalid("mediaType is not a string")),
    };
    let media_type = match (declared, content_type) {
        (Some(declared), Some(ct)) if declared != ct => {
            return Err(invalid(format!(
                "the manifest's mediaType {declared} is not its Content-Type {ct}"
            )))
        }
        (Some(media_type), _) | (None, Some(media_type)) => media_type.to_string(),
        (None, None) => return Err(invalid("the manifest has no mediaType and no Content-Type")),
    };
    if object.get("schemaVersion").and_then(Value::as_u64) != Some(2) {
        return Err(invalid("schemaVersion must be 2"));
    }
    let dependencies = match media_type.as_str() {
        OCI_MANIFEST | DOCKER_MANIFEST => {
            let config = descriptor(object.get("config"), "config")?;
            let mut needs = vec![Dependency::Blob(config)];
            for (i, layer) in array(object, "layers")?.iter().enumerate() {
                let digest = descriptor(Some(layer), &format!("layers[{i}]"))?;
                // A foreign layer (with `urls`) lives elsewhere by design.
                if layer.get("urls").is_none() {
                    needs.push(Dependency::Blob(digest));
                }
            }
            needs
        }
        OCI_INDEX | DOCKER_LIST => {
            let mut needs = Vec::new();
            for (i, child) in array(object, "manifests")?.iter().enumerate() {
                let digest = descriptor(Some(child), &format!("manifests[{i}]"))?;
                if indexes.requires(platform(child).as_ref()) {
                    needs.push(Dependency::Manifest(digest));
                }
            }
            needs
        }
        DOCKER_SCHEMA1 | DOCKER_SCHEMA1_SIGNED => {
            return Err(invalid("Docker schema 1 manifests are not accepted"));
        }
        other => return Err(invalid(format!("unsupported manifest media type {other}"))),
    };
    let subject = match object.get("subject") {
        None | Some(Value::Null) => None,
        subject => Some(descriptor(subject, "subject")?),
    };
    Ok(Manifest {
        media_type,
        dependencies,
        subject,
    })
}

fn array<'a>(object: &'a Map<String, Value>, field: &str) -> Result<&'a Vec<Value>> {
    match object.get(field) {
        Some(Value::Array(items)) => Ok(items),
        _ => Err(invalid(format!("{field} must be an array"))),
    }
}

/// The digest of a descriptor `{mediaType, digest, size}`, checked whole.
fn descriptor(value: Option<&Value>, field: &str) -> Result<Digest> {
    let object = value
        .and_then(Value::as_object)
        .ok_or_else(|| invalid(format!("{field} must be a descriptor object")))?;
    if !object.get("mediaType").is_some_and(Value::is_string) {
        return Err(invalid(format!("{field}.mediaType must be a string")));
    }
    if object.get("size").and_then(Value::as_u64).is_none() {
        return Err(invalid(format!("{field}.size must be a non-negative integer")));
    }
    let digest = object
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("{field}.digest must be a string")))?;
    Digest::parse(digest).map_err(|err| invalid(format!("{field}.digest: {err}")))
}

/// The `platform` of an index's descriptor, when it names one.
fn platform(descriptor: &Value) -> Option<PlatformConfig> {
    let platform = descriptor.get("platform")?;
    Some(PlatformConfig {
        architecture: platform.get("architecture")?.as_str()?.to_string(),
        os: platform.get("os")?.as_str()?.to_string(),
    })
}

/// The media type to serve stored manifest bytes with: their `mediaType`,
/// else what their shape says, as distribution decides.
pub fn served_media_type(bytes: &[u8]) -> String {
    let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(bytes) else {
        return "application/octet-stream".to_string();
    };
    if let Some(Value::String(media_type)) = object.get("mediaType") {
        if !media_type.is_empty() {
            return media_type.clone();
        }
    }
    match object.get("schemaVersion").and_then(Value::as_u64) {
        Some(1) if object.contains_key("signatures") => DOCKER_SCHEMA1_SIGNED.to_string(),
        Some(1) => DOCKER_SCHEMA1.to_string(),
        _ if object.contains_key("manifests") => OCI_INDEX.to_string(),
        _ => OCI_MANIFEST.to_string(),
    }
}

/// What the referrers list says of a stored manifest that has a subject.
pub struct Referrer {
    pub subject: Digest,
    pub media_type: String,
    /// `artifactType`, else the config's media type (OCI image spec v1.1).
    pub artifact_type: Option<String>,
    pub annotations: Option<Value>,
}

/// The referrer facts of stored manifest bytes, `None` without a subject.
pub fn referrer(bytes: &[u8]) -> Option<Referrer> {
    let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(bytes) else {
        return None;
    };
    let subject = object.get("subject")?.get("digest")?.as_str()?;
    let subject = Digest::parse(subject).ok()?;
    fn non_empty(value: Option<&Value>) -> Option<&str> {
        value.and_then(Value::as_str).filter(|text| !text.is_empty())
    }
    let artifact_type = non_empty(object.get("artifactType"))
        .or_else(|| non_empty(object.get("config")?.get("mediaType")))
        .map(str::to_string);
    Some(Referrer {
        subject,
        media_type: served_media_type(bytes),
        artifact_type,
        annotations: object.get("annotations").filter(|a| a.is_object()).cloned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    static ALL: IndexValidationConfig = IndexValidationConfig {
        platforms: crate::config::IndexPlatforms::All,
        platformlist: Vec::new(),
    };

    fn desc(digest: &str) -> Value {
        json!({"mediaType": "application/octet-stream", "digest": digest, "size": 1})
    }

    #[test]
    fn image_manifest_needs_config_and_layers() {
        let m = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": desc(A), "layers": [desc(B)],
                       "subject": desc(B)});
        let parsed = parse(m.to_string().as_bytes(), None, &ALL).unwrap();
        assert_eq!(parsed.media_type, OCI_MANIFEST);
        assert_eq!(
            parsed.dependencies,
            vec![
                Dependency::Blob(Digest::parse(A).unwrap()),
                Dependency::Blob(Digest::parse(B).unwrap())
            ]
        );
        assert_eq!(parsed.subject, Some(Digest::parse(B).unwrap()));
    }

    #[test]
    fn index_needs_its_manifests_and_media_type_comes_from_the_header() {
        let m = json!({"schemaVersion": 2, "manifests": [desc(A)]});
        let parsed = parse(
            m.to_string().as_bytes(),
            Some("application/vnd.oci.image.index.v1+json"),
            &ALL,
        )
        .unwrap();
        assert_eq!(
            parsed.dependencies,
            vec![Dependency::Manifest(Digest::parse(A).unwrap())]
        );
    }

    #[test]
    fn a_sparse_index_needs_the_manifests_of_the_required_platforms_only() {
        let child = |digest: &str, arch: &str| {
            let mut child = desc(digest);
            child["platform"] = json!({"architecture": arch, "os": "linux", "variant": "v8"});
            child
        };
        let m = json!({"schemaVersion": 2, "mediaType": OCI_INDEX,
                       "manifests": [child(A, "amd64"), child(B, "arm64"), desc(B)]});
        let needs =
            |indexes: &IndexValidationConfig| parse(m.to_string().as_bytes(), None, indexes).unwrap().dependencies;
        assert_eq!(needs(&ALL).len(), 3);
        let none = IndexValidationConfig {
            platforms: crate::config::IndexPlatforms::None,
            platformlist: Vec::new(),
        };
        assert_eq!(needs(&none), []);
        let amd64 = IndexValidationConfig {
            platforms: crate::config::IndexPlatforms::List,
            platformlist: vec![PlatformConfig {
                architecture: "amd64".into(),
                os: "linux".into(),
            }],
        };
        assert_eq!(needs(&amd64), [Dependency::Manifest(Digest::parse(A).unwrap())]);
    }

    #[test]
    fn bad_manifests_are_refused() {
        let cases = [
            json!([]),
            json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []}),
            json!({"schemaVersion": 1, "mediaType": OCI_MANIFEST, "config": desc(A), "layers": []}),
            json!({"schemaVersion": 2, "mediaType": "text/plain", "config": desc(A), "layers": []}),
            json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": desc("sha256:x"), "layers": []}),
            json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"digest": A, "size": 1}, "layers": []}),
            json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": desc(A), "layers": [], "subject": 1}),
            json!({"schemaVersion": 2, "config": desc(A), "layers": []}),
        ];
        for case in cases {
            let err = parse(case.to_string().as_bytes(), None, &ALL).unwrap_err();
            assert_eq!(err.code(), ErrorCode::ManifestInvalid, "{case}");
        }
        let m = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": desc(A), "layers": []});
        assert!(parse(m.to_string().as_bytes(), Some(DOCKER_MANIFEST), &ALL).is_err());
        assert!(parse(b"{not json", None, &ALL).is_err());
    }

    #[test]
    fn served_types_follow_distribution() {
        assert_eq!(served_media_type(br#"{"mediaType":"x/y"}"#), "x/y");
        assert_eq!(served_media_type(br#"{"schemaVersion":2,"manifests":[]}"#), OCI_INDEX);
        assert_eq!(served_media_type(br#"{"schemaVersion":2,"config":{}}"#), OCI_MANIFEST);
        assert_eq!(
            served_media_type(br#"{"schemaVersion":1,"signatures":[]}"#),
            DOCKER_SCHEMA1_SIGNED
        );
    }
}
