//! Image references as docker and the OCI tools write them:
//! `[host[:port]/]repository[:tag][@algorithm:hex]`.

use std::fmt;

use super::client::DOCKER_HUB;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `host[:port]`, as requests are sent to it.
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:<64 hex>` or `sha512:<128 hex>`.
    pub digest: Option<String>,
}

impl Reference {
    pub fn parse(text: &str) -> Result<Reference, String> {
        let bad = |why: &str| format!("`{text}` is not an image reference: {why}");
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => {
                check_digest(digest).map_err(|why| bad(&why))?;
                (rest, Some(digest.to_string()))
            }
            None => (text, None),
        };
        // A tag follows the last `:` that comes after the last `/`; a `:`
        // before it belongs to the host's port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag {
            let valid = !tag.is_empty()
                && tag.len() <= 128
                && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
                && tag
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
            if !valid {
                return Err(bad(&format!("`{tag}` is not a tag")));
            }
        }
        let (registry, repository) = match name.split_once('/') {
            Some(("docker.io" | "index.docker.io", rest)) if rest.contains('/') => {
                (DOCKER_HUB.to_string(), rest.to_string())
            }
            Some(("docker.io" | "index.docker.io", rest)) => (DOCKER_HUB.to_string(), format!("library/{rest}")),
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
                (first.to_string(), rest.to_string())
            }
            _ if name.contains('/') => (DOCKER_HUB.to_string(), name.to_string()),
            _ => (DOCKER_HUB.to_string(), format!("library/{name}")),
        };
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
                && c.starts_with(|c: char| c.is_ascii_alphanumeric())
                && c.ends_with(|c: char| c.is_ascii_alphanumeric())
        };
        if !repository.split('/').all(component_ok) {
            return Err(bad(&format!(
                "`{repository}` is not a repository name (lowercase letters, digits, `.`, `_`, `-`, separated by `/`)"
            )));
        }
        Ok(Reference {
            registry,
            repository,
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// What a manifest request names: the digest when there is one, else
    /// the tag, else `latest`.
    pub fn manifest_name(&self) -> &str {
        self.digest.as_deref().or(self.tag.as_deref()).unwrap_or("latest")
    }

    /// The same repository, pinned to `digest`.
    pub fn pinned(&self, digest: &str) -> Reference {
        Reference {
            digest: Some(digest.to_string()),
            ..self.clone()
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// `sha256:` and 64 lowercase hex digits, or `sha512:` and 128.
pub fn check_digest(digest: &str) -> Result<(), String> {
    let (algorithm, hex) = digest.split_once(':').unwrap_or(("", digest));
    let length = match algorithm {
        "sha256" => 64,
        "sha512" => 128,
        _ => return Err(format!("`{digest}` is not a sha256 or sha512 digest")),
    };
    if hex.len() != length || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(format!(
            "`{digest}` needs {length} lowercase hex digits after `{algorithm}:`"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn references_read_as_docker_reads_them() {
        let r = Reference::parse(&format!("127.0.0.1:5000/plugins/policy:v1@{DIGEST}")).unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "plugins/policy");
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert_eq!(r.manifest_name(), DIGEST);
        assert_eq!(r.to_string(), format!("127.0.0.1:5000/plugins/policy:v1@{DIGEST}"));

        let r = Reference::parse("localhost/policy").unwrap();
        assert_eq!((r.registry.as_str(), r.repository.as_str()), ("localhost", "policy"));
        assert_eq!(r.manifest_name(), "latest");

        let r = Reference::parse("acme/policy:2").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            (DOCKER_HUB, "acme/policy")
        );
        assert_eq!(Reference::parse("policy").unwrap().repository, "library/policy");
        let r = Reference::parse("docker.io/policy").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            (DOCKER_HUB, "library/policy")
        );
    }

    #[test]
    fn bad_references_say_why() {
        for (text, why) in [
            ("reg.io/Policy:1", "not a repository name"),
            ("reg.io/policy:-x", "not a tag"),
            ("reg.io/policy@sha256:abc", "64 lowercase hex digits"),
            ("reg.io/policy@md5:abc", "not a sha256 or sha512 digest"),
            ("reg.io/", "not a repository name"),
        ] {
            let err = Reference::parse(text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
    }
}
