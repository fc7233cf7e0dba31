//! Where the registry keeps things in storage: CNCF distribution's layout
//! (`registry/storage/paths.go`), exactly, so that an existing docker-registry
//! data directory or bucket is served as it is and the other way round.
//!
//! ```text
//! /docker/registry/v2/blobs/<alg>/<first two hex>/<hex>/data
//! /docker/registry/v2/repositories/<name>/_layers/<alg>/<hex>/link
//! /docker/registry/v2/repositories/<name>/_manifests/revisions/<alg>/<hex>/link
//! /docker/registry/v2/repositories/<name>/_manifests/tags/<tag>/current/link
//! /docker/registry/v2/repositories/<name>/_manifests/tags/<tag>/index/<alg>/<hex>/link
//! /docker/registry/v2/repositories/<name>/_uploads/<id>/data
//! /docker/registry/v2/repositories/<name>/_uploads/<id>/startedat
//! ```
//!
//! A `link` file holds the digest it points at (`sha256:<hex>`). Callers pass
//! repository names, tags and upload ids already validated by the registry;
//! the storage driver checks every path again before a plugin sees it. Only
//! the store builds these paths.

use super::digest::Digest;

const ROOT: &str = "/docker/registry/v2";

/// `<alg>/<hex>`, the digest's directory below a links folder.
fn digest_dir(digest: &Digest) -> String {
    format!("{}/{}", digest.algorithm().name(), digest.hex())
}

/// The content of a blob (manifests are blobs too).
pub(super) fn blob_data(digest: &Digest) -> String {
    let alg = digest.algorithm().name();
    format!("{ROOT}/blobs/{alg}/{}/{}/data", &digest.hex()[..2], digest.hex())
}

/// The directory holding every blob's data.
pub(super) fn blobs() -> String {
    format!("{ROOT}/blobs")
}

/// The digest whose data `path` is (`.../blobs/<alg>/<xx>/<hex>/data`), if
/// it is one.
pub(super) fn blob_of_data_path(path: &str) -> Option<Digest> {
    let rest = path
        .strip_prefix(ROOT)?
        .strip_prefix("/blobs/")?
        .strip_suffix("/data")?;
    let mut parts = rest.split('/');
    let (algorithm, prefix, hex) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !hex.starts_with(prefix) || prefix.len() != 2 {
        return None;
    }
    Digest::parse(&format!("{algorithm}:{hex}")).ok()
}

/// The digest whose link `path` is below `dir` (`<dir>/<alg>/<hex>/link`,
/// as in `_layers` and `_manifests/revisions`), if it is one.
pub(super) fn linked_digest(dir: &str, path: &str) -> Option<Digest> {
    let rest = path.strip_prefix(dir)?.strip_prefix('/')?.strip_suffix("/link")?;
    let (algorithm, hex) = rest.split_once('/')?;
    Digest::parse(&format!("{algorithm}:{hex}")).ok()
}

/// The directory holding every repository (names may span several levels).
pub(super) fn repositories() -> String {
    format!("{ROOT}/repositories")
}

/// The link that makes a blob part of a repository.
pub(super) fn layer_link(name: &str, digest: &Digest) -> String {
    format!("{ROOT}/repositories/{name}/_layers/{}/link", digest_dir(digest))
}

/// Below it: `<alg>/<hex>/link` for every blob the repository links.
pub(super) fn layers(name: &str) -> String {
    format!("{ROOT}/repositories/{name}/_layers")
}

/// The link that makes a manifest (stored as a blob) part of a repository.
pub(super) fn manifest_revision_link(name: &str, digest: &Digest) -> String {
    format!(
        "{ROOT}/repositories/{name}/_manifests/revisions/{}/link",
        digest_dir(digest)
    )
}

/// Below it: `<alg>/<hex>/link` for every manifest of the repository.
pub(super) fn manifest_revisions(name: &str) -> String {
    format!("{ROOT}/repositories/{name}/_manifests/revisions")
}

/// Below it: one directory per tag.
pub(super) fn tags(name: &str) -> String {
    format!("{ROOT}/repositories/{name}/_manifests/tags")
}

pub(super) fn tag(name: &str, tag: &str) -> String {
    format!("{ROOT}/repositories/{name}/_manifests/tags/{tag}")
}

/// The manifest a tag points at now.
pub(super) fn tag_current_link(name: &str, tag: &str) -> String {
    format!("{ROOT}/repositories/{name}/_manifests/tags/{tag}/current/link")
}

/// Every manifest a tag has pointed at (distribution keeps the history).
pub(super) fn tag_index_link(name: &str, tag: &str, digest: &Digest) -> String {
    format!(
        "{ROOT}/repositories/{name}/_manifests/tags/{tag}/index/{}/link",
        digest_dir(digest)
    )
}

/// Below it: one directory per upload in progress.
pub(super) fn uploads(name: &str) -> String {
    format!("{ROOT}/repositories/{name}/_uploads")
}

pub(super) fn upload(name: &str, id: &str) -> String {
    format!("{ROOT}/repositories/{name}/_uploads/{id}")
}

/// The bytes received so far.
pub(super) fn upload_data(name: &str, id: &str) -> String {
    format!("{ROOT}/repositories/{name}/_uploads/{id}/data")
}

/// When the upload began, RFC 3339 in UTC, as distribution writes it.
pub(super) fn upload_started_at(name: &str, id: &str) -> String {
    format!("{ROOT}/repositories/{name}/_uploads/{id}/startedat")
}

/// The content of a link file pointing at `digest`.
pub(super) fn link_content(digest: &Digest) -> String {
    digest.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::check_file_path;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn paths_are_distributions() {
        let d = Digest::parse(&format!("sha256:{HEX}")).unwrap();
        assert_eq!(blob_data(&d), format!("/docker/registry/v2/blobs/sha256/e3/{HEX}/data"));
        assert_eq!(
            layer_link("a/b", &d),
            format!("/docker/registry/v2/repositories/a/b/_layers/sha256/{HEX}/link")
        );
        assert_eq!(
            manifest_revision_link("a", &d),
            format!("/docker/registry/v2/repositories/a/_manifests/revisions/sha256/{HEX}/link")
        );
        assert_eq!(
            tag_current_link("a", "v1.0"),
            "/docker/registry/v2/repositories/a/_manifests/tags/v1.0/current/link"
        );
        assert_eq!(
            tag_index_link("a", "latest", &d),
            format!("/docker/registry/v2/repositories/a/_manifests/tags/latest/index/sha256/{HEX}/link")
        );
        assert_eq!(
            upload_data("a", "id-1"),
            "/docker/registry/v2/repositories/a/_uploads/id-1/data"
        );
        assert_eq!(
            upload_started_at("a", "id-1"),
            "/docker/registry/v2/repositories/a/_uploads/id-1/startedat"
        );
        for path in [blob_data(&d), layer_link("a/b-c", &d), tag_current_link("x", "_t")] {
            assert!(check_file_path(&path).is_ok(), "{path}");
        }
        assert_eq!(link_content(&d), format!("sha256:{HEX}"));
        assert_eq!(blob_of_data_path(&blob_data(&d)), Some(d.clone()));
        let layers = layers("a/b");
        assert_eq!(linked_digest(&layers, &layer_link("a/b", &d)), Some(d.clone()));
        assert_eq!(linked_digest(&layers, &format!("{layers}/sha256/{HEX}/x/link")), None);
        assert_eq!(linked_digest(&layers, &format!("{layers}/sha256/{HEX}/data")), None);
        for other in [
            format!("/docker/registry/v2/blobs/sha256/e3/{HEX}/data.tmp"),
            format!("/docker/registry/v2/blobs/sha256/ff/{HEX}/data"),
            format!("/docker/registry/v2/blobs/sha256/e3/x/{HEX}/data"),
            "/docker/registry/v2/blobs/sha256/e3/e3/data".to_string(),
        ] {
            assert_eq!(blob_of_data_path(&other), None, "{other}");
        }
    }
}
