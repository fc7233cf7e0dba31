//! Plugins as OCI artifacts, in the CNCF Wasm layout (a config of
//! `application/vnd.wasm.config.v0+json`, one `application/wasm` layer):
//! pushed to and pulled from any registry, digests verified, and pulls
//! pinned by digest kept in a cache so that later starts need no network.

mod client;
mod reference;

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http::{header, Method, StatusCode};
use serde_json::json;

use client::SMALL_REPLY;
pub use client::{Client, Credentials};
pub use reference::{check_digest, Reference};

pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";
/// The largest manifest read.
const MAX_MANIFEST_BYTES: usize = 4 << 20;
/// The largest plugin pulled: a component with a whole language runtime in
/// it (CPython) is tens of MiB.
pub const MAX_PLUGIN_BYTES: usize = 256 << 20;

/// What a component exports and imports, written into the artifact's config.
pub struct ComponentFacts {
    pub exports: Vec<String>,
    pub imports: Vec<String>,
}

/// Pushes `wasm` to `reference` (its tag, or `latest`) and returns the
/// manifest's digest, which pins it.
pub async fn push(
    client: &Client,
    reference: &Reference,
    wasm: &[u8],
    facts: &ComponentFacts,
) -> Result<String, String> {
    let layer_digest = sha256_digest(wasm);
    let file_name = reference.repository.rsplit('/').next().unwrap_or("plugin");
    let config = serde_json::to_vec(&json!({
        "architecture": "wasm",
        "os": "wasip2",
        "layerDigests": [layer_digest],
        "component": {"exports": facts.exports, "imports": facts.imports},
    }))
    .map_err(|err| err.to_string())?;
    push_blob(client, reference, &config).await?;
    push_blob(client, reference, wasm).await?;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": descriptor(WASM_CONFIG_MEDIA_TYPE, &config),
        "layers": [descriptor(WASM_LAYER_MEDIA_TYPE, wasm)],
        "annotations": {"org.opencontainers.image.title": format!("{file_name}.wasm")},
    }))
    .map_err(|err| err.to_string())?;
    let digest = sha256_digest(&manifest);
    let tag = reference.tag.as_deref().unwrap_or("latest");
    let path = format!("/v2/{}/manifests/{tag}", reference.repository);
    let reply = client
        .send(
            Method::PUT,
            &path,
            &[(header::CONTENT_TYPE, MANIFEST_MEDIA_TYPE)],
            manifest.into(),
            MAX_MANIFEST_BYTES,
        )
        .await?;
    if reply.status != StatusCode::CREATED {
        return Err(reply.error(&format!("pushing the manifest of {reference}")));
    }
    Ok(digest)
}

fn descriptor(media_type: &str, content: &[u8]) -> serde_json::Value {
    json!({"mediaType": media_type, "digest": sha256_digest(content), "size": content.len()})
}

/// Uploads `content` unless the repository has it already: one POST, one
/// PUT with the digest.
async fn push_blob(client: &Client, reference: &Reference, content: &[u8]) -> Result<(), String> {
    let digest = sha256_digest(content);
    let repository = &reference.repository;
    let head = client
        .send(
            Method::HEAD,
            &format!("/v2/{repository}/blobs/{digest}"),
            &[],
            Bytes::new(),
            SMALL_REPLY,
        )
        .await?;
    if head.status == StatusCode::OK {
        return Ok(());
    }
    let start = client
        .send(
            Method::POST,
            &format!("/v2/{repository}/blobs/uploads/"),
            &[],
            Bytes::new(),
            SMALL_REPLY,
        )
        .await?;
    if start.status != StatusCode::ACCEPTED {
        return Err(start.error(&format!("starting an upload to {}/{repository}", reference.registry)));
    }
    let location = start
        .header(header::LOCATION)
        .ok_or_else(|| format!("{}: an upload started without a Location", reference.registry))?;
    let separator = if location.contains('?') { '&' } else { '?' };
    let url = format!("{location}{separator}digest={digest}");
    let put = client
        .send(
            Method::PUT,
            &url,
            &[(header::CONTENT_TYPE, "application/octet-stream")],
            Bytes::copy_from_slice(content),
            SMALL_REPLY,
        )
        .await?;
    if put.status != StatusCode::CREATED {
        return Err(put.error(&format!("uploading {digest} to {}/{repository}", reference.registry)));
    }
    Ok(())
}

/// A plugin pulled and verified.
pub struct Pulled {
    /// The manifest's digest.
    pub digest: String,
    pub manifest: Vec<u8>,
    pub wasm: Vec<u8>,
}

/// Pulls the plugin at `reference`: the manifest must match the reference's
/// digest when it has one, be the Wasm artifact layout, and its layer match
/// its digest and size.
pub async fn pull(client: &Client, reference: &Reference) -> Result<Pulled, String> {
    let path = format!("/v2/{}/manifests/{}", reference.repository, reference.manifest_name());
    let reply = client
        .send(
            Method::GET,
            &path,
            &[(header::ACCEPT, MANIFEST_MEDIA_TYPE)],
            Bytes::new(),
            MAX_MANIFEST_BYTES,
        )
        .await?;
    if reply.status != StatusCode::OK {
        return Err(reply.error(&format!("pulling the manifest of {reference}")));
    }
    let manifest = reply.body.to_vec();
    let digest = content_digest(&manifest, reference.digest.as_deref().unwrap_or("sha256:"));
    if let Some(pinned) = &reference.digest {
        if *pinned != digest {
            return Err(format!(
                "{reference}: the registry answered a manifest whose digest is {digest}: refused, \
                 it is not the content that was pinned"
            ));
        }
    }
    let layer = wasm_layer(&manifest).map_err(|why| format!("{reference} is not a Wasm plugin artifact: {why}"))?;
    let wasm = pull_blob(client, reference, &layer).await?;
    Ok(Pulled { digest, manifest, wasm })
}

/// The digest and size of the one Wasm layer of an artifact manifest.
fn wasm_layer(manifest: &[u8]) -> Result<(String, usize), String> {
    let json: serde_json::Value = serde_json::from_slice(manifest).map_err(|err| format!("its manifest: {err}"))?;
    let config_type = json.pointer("/config/mediaType").and_then(|v| v.as_str()).unwrap_or("");
    if config_type != WASM_CONFIG_MEDIA_TYPE {
        return Err(format!("its config is `{config_type}`, not `{WASM_CONFIG_MEDIA_TYPE}`"));
    }
    let layers = json
        .get("layers")
        .and_then(|v| v.as_array())
        .map(Vec::as_slice)
        .unwrap_or_default();
    let [layer] = layers else {
        return Err(format!("it has {} layers, not one", layers.len()));
    };
    let media_type = layer.get("mediaType").and_then(|v| v.as_str()).unwrap_or("");
    if media_type != WASM_LAYER_MEDIA_TYPE {
        return Err(format!("its layer is `{media_type}`, not `{WASM_LAYER_MEDIA_TYPE}`"));
    }
    let digest = layer.get("digest").and_then(|v| v.as_str()).unwrap_or("");
    check_digest(digest).map_err(|why| format!("its layer's digest: {why}"))?;
    let size = layer.get("size").and_then(|v| v.as_u64()).unwrap_or(u64::MAX);
    if size > MAX_PLUGIN_BYTES as u64 {
        return Err(format!(
            "its layer's size {size} is over the {MAX_PLUGIN_BYTES} bytes a plugin may have"
        ));
    }
    Ok((digest.to_string(), size as usize))
}

async fn pull_blob(
    client: &Client,
    reference: &Reference,
    (digest, size): &(String, usize),
) -> Result<Vec<u8>, String> {
    let path = format!("/v2/{}/blobs/{digest}", reference.repository);
    let reply = client.send(Method::GET, &path, &[], Bytes::new(), *size).await?;
    if reply.status != StatusCode::OK {
        return Err(reply.error(&format!("pulling {digest} of {reference}")));
    }
    check_content(&reply.body, digest, *size).map_err(|why| format!("{reference}: {why}"))?;
    Ok(reply.body.to_vec())
}

/// Refuses content whose digest or size is not what its descriptor says.
fn check_content(content: &[u8], digest: &str, size: usize) -> Result<(), String> {
    let actual = content_digest(content, digest);
    if actual != digest || content.len() != size {
        return Err(format!(
            "the layer should be {digest} of {size} bytes and is {actual} of {} bytes: refused",
            content.len()
        ));
    }
    Ok(())
}

/// The digest of `content` by the algorithm `like` names (`sha512:...`),
/// sha256 otherwise.
fn content_digest(content: &[u8], like: &str) -> String {
    if like.starts_with("sha512:") {
        use sha2::Digest;
        format!("sha512:{}", hex::encode(sha2::Sha512::digest(content)))
    } else {
        sha256_digest(content)
    }
}

fn sha256_digest(content: &[u8]) -> String {
    format!("sha256:{}", crate::plugin::sha256_hex(content))
}

/// The component `reference` (pinned by digest) names, from the cache in
/// `cache_dir`, if it holds it: the manifest and the component are both
/// checked against the digest again. No network.
pub fn cached(reference: &Reference, cache_dir: Option<&Path>) -> Option<Vec<u8>> {
    let pinned = reference.digest.as_deref()?;
    let (manifest_path, wasm_path) = cache_paths(cache_dir?, pinned);
    let (manifest, wasm) = (std::fs::read(&manifest_path).ok()?, std::fs::read(&wasm_path).ok()?);
    let layer = (content_digest(&manifest, pinned) == pinned)
        .then(|| wasm_layer(&manifest).ok())
        .flatten();
    match layer {
        Some((digest, size)) if check_content(&wasm, &digest, size).is_ok() => Some(wasm),
        _ => {
            tracing::warn!(cache = %wasm_path.display(), "the cached copy of {reference} does not match its digest; pulling it again");
            None
        }
    }
}

/// Pulls the component `reference` (pinned by digest) names, verified, and
/// keeps it in the cache in `cache_dir` for [`cached`]; a cache that cannot
/// be written only costs the next start a pull.
pub async fn pull_pinned(client: &Client, reference: &Reference, cache_dir: Option<&Path>) -> Result<Vec<u8>, String> {
    let pinned = reference
        .digest
        .as_deref()
        .ok_or_else(|| format!("{reference} is not pinned by digest"))?;
    let pulled = pull(client, reference).await?;
    if let Some(cache_dir) = cache_dir {
        let (manifest_path, wasm_path) = cache_paths(cache_dir, pinned);
        // The manifest last: it is what says the component is complete.
        let written = crate::plugin::write_atomically(&wasm_path, &pulled.wasm)
            .and_then(|()| crate::plugin::write_atomically(&manifest_path, &pulled.manifest));
        if let Err(err) = written {
            tracing::warn!(cache = %cache_dir.display(), "cannot cache {reference}: {err}; the next start pulls it again");
        }
    }
    Ok(pulled.wasm)
}

/// Where the cache keeps the manifest and the component of `digest`.
fn cache_paths(cache_dir: &Path, digest: &str) -> (PathBuf, PathBuf) {
    let stem = digest.replace(':', "-");
    let dir = cache_dir.join("oci");
    (dir.join(format!("{stem}.json")), dir.join(format!("{stem}.wasm")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_wasm_layout_is_a_plugin() {
        let layer = descriptor(WASM_LAYER_MEDIA_TYPE, b"\0asm");
        let manifest = |config: &str, layers: serde_json::Value| {
            serde_json::to_vec(&json!({"schemaVersion": 2, "config": {"mediaType": config}, "layers": layers})).unwrap()
        };
        let good = manifest(WASM_CONFIG_MEDIA_TYPE, json!([layer]));
        assert_eq!(wasm_layer(&good).unwrap(), (sha256_digest(b"\0asm"), 4));
        let image = manifest("application/vnd.oci.image.config.v1+json", json!([layer]));
        assert!(wasm_layer(&image).unwrap_err().contains("its config is"));
        let two = manifest(WASM_CONFIG_MEDIA_TYPE, json!([layer, layer]));
        assert!(wasm_layer(&two).unwrap_err().contains("2 layers"));
        assert!(check_content(b"\0asm", &sha256_digest(b"\0asm"), 4).is_ok());
        assert!(check_content(b"\0asn", &sha256_digest(b"\0asm"), 4).is_err());
    }
}
