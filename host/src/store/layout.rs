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
//! the storage driver checks every path again before a plugin sees it.

use std::fmt;

const ROOT: &str = "/docker/registry/v2";

/// A content digest `<algorithm>:<hex>` of an algorithm the registry can
/// compute, with the hex of the algorithm's exact length in lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

/// The digest algorithms the registry verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

/// Why a string is not a [`Digest`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("digest `{0}` is not of the form <algorithm>:<hex>")]
    Malformed(String),
    #[error("digest algorithm `{0}` is not supported (sha256, sha512 are)")]
    UnsupportedAlgorithm(String),
    #[error("digest `{0}` does not have the length and lower-case hex its algorithm needs")]
    BadHex(String),
}

impl Digest {
    pub fn parse(text: &str) -> Result<Digest, DigestError> {
        let (algorithm, hex) = text
            .split_once(':')
            .ok_or_else(|| DigestError::Malformed(text.to_string()))?;
        let algorithm = match algorithm {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            "" => return Err(DigestError::Malformed(text.to_string())),
            other => return Err(DigestError::UnsupportedAlgorithm(other.to_string())),
        };
        let lower_hex = hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if hex.len() != algorithm.hex_len() || !lower_hex {
            return Err(DigestError::BadHex(text.to_string()));
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_string(),
        })
    }

    /// The digest a hasher of `algorithm` produced as `hash`.
    pub fn from_hash(algorithm: Algorithm, hash: &[u8]) -> Digest {
        Digest {
            algorithm,
            hex: hex::encode(hash),
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

/// `<alg>/<hex>`, the digest's directory below a links folder.
fn digest_dir(digest: &Digest) -> String {
    format!("{}/{}", digest.algorithm.name(), digest.hex)
}

/// The content of a blob (manifests are blobs too).
pub fn blob_data(digest: &Digest) -> String {
    let alg = digest.algorithm.name();
    format!("{ROOT}/blobs/{alg}/{}/{}/data", &digest.hex[..2], digest.hex)
}

/// The directory holding every repository (names may span several levels).
pub fn repositories() -> String {
    format!("{ROOT}/repositories")
}

pub fn repository(name: &str) -> String {
    format!("{ROOT}/repositories/{name}")
}

/// The link that makes a blob part of a repository.
pub fn layer_link(name: &str, digest: &Digest) -> String {
    format!("{ROOT}/repositories/{name}/_layers/{}/link", digest_dir(digest))
}

/// The link that makes a manifest (stored as a blob) part of a repository.
pub fn manifest_revision_link(name: &str, digest: &Digest) -> String {
    format!(
        "{ROOT}/repositories/{name}/_manifests/revisions/{}/link",
        digest_dir(digest)
    )
}

/// Below it: `<alg>/<hex>/link` for every manifest of the repository.
pub fn manifest_revisions(name: &str) -> String {
    format!("{ROOT}/repositories/{name}/_manifests/revisions")
}

/// Below it: one directory per tag.
pub fn tags(name: &str) -> String {
    format!("{ROOT}/repositories/{name}/_manifests/tags")
}

pub fn tag(name: &str, tag: &str) -> String {
    format!("{ROOT}/repositories/{name}/_manifests/tags/{tag}")
}

/// The manifest a tag points at now.
pub fn tag_current_link(name: &str, tag: &str) -> String {
    format!("{ROOT}/repositories/{name}/_manifests/tags/{tag}/current/link")
}

/// Every manifest a tag has pointed at (distribution keeps the history).
pub fn tag_index_link(name: &str, tag: &str, digest: &Digest) -> String {
    format!(
        "{ROOT}/repositories/{name}/_manifests/tags/{tag}/index/{}/link",
        digest_dir(digest)
    )
}

/// Below it: one directory per upload in progress.
pub fn uploads(name: &str) -> String {
    format!("{ROOT}/repositories/{name}/_uploads")
}

pub fn upload(name: &str, id: &str) -> String {
    format!("{ROOT}/repositories/{name}/_uploads/{id}")
}

/// The bytes received so far.
pub fn upload_data(name: &str, id: &str) -> String {
    format!("{ROOT}/repositories/{name}/_uploads/{id}/data")
}

/// When the upload began, RFC 3339 in UTC, as distribution writes it.
pub fn upload_started_at(name: &str, id: &str) -> String {
    format!("{ROOT}/repositories/{name}/_uploads/{id}/startedat")
}

/// The content of a link file pointing at `digest`.
pub fn link_content(digest: &Digest) -> String {
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
    }

    #[test]
    fn digests_are_checked() {
        assert!(Digest::parse(&format!("sha256:{HEX}")).is_ok());
        assert!(Digest::parse(&format!("sha512:{HEX}{HEX}")).is_ok());
        for (text, want) in [
            (format!("sha256{HEX}"), "Malformed"),
            (format!(":{HEX}"), "Malformed"),
            (format!("md5:{HEX}"), "UnsupportedAlgorithm"),
            (format!("sha256:{}", &HEX[1..]), "BadHex"),
            (format!("sha256:{}", HEX.to_uppercase()), "BadHex"),
            (format!("sha256:{}g", &HEX[1..]), "BadHex"),
            (format!("sha512:{HEX}"), "BadHex"),
        ] {
            let err = Digest::parse(&text).unwrap_err();
            assert!(format!("{err:?}").starts_with(want), "{text}: {err:?}");
        }
    }
}
