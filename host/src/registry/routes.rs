//! Which endpoint a request is for. Repository names span any number of path
//! segments (`/v2/a/b/c/manifests/x`), which a router's patterns cannot
//! express, so the path is taken apart here from its end.

use std::collections::HashMap;

use axum::http::Method;

use crate::store::{Digest, Reference};

use super::error::{ErrorCode, RegistryError, Result};

/// The longest repository name the spec lets a client rely on.
const MAX_NAME_LEN: usize = 255;

/// An endpoint of the API, with its path parameters validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/v2/`
    Base,
    /// `/v2/_catalog`
    Catalog,
    /// `/v2/<name>/tags/list`
    Tags { name: String },
    /// `/v2/<name>/manifests/<reference>`
    Manifest { name: String, reference: Reference },
    /// `/v2/<name>/blobs/<digest>`
    Blob { name: String, digest: Digest },
    /// `/v2/<name>/blobs/uploads/`
    UploadStart { name: String },
    /// `/v2/<name>/blobs/uploads/<id>`
    Upload { name: String, id: String },
    /// `/v2/<name>/referrers/<digest>`
    Referrers { name: String, digest: Digest },
}

impl Route {
    /// The route's name, for metrics: few values, unlike paths.
    pub fn name(&self) -> &'static str {
        match self {
            Route::Base => "base",
            Route::Catalog => "catalog",
            Route::Tags { .. } => "tags",
            Route::Manifest { .. } => "manifest",
            Route::Blob { .. } => "blob",
            Route::UploadStart { .. } => "upload_start",
            Route::Upload { .. } => "upload",
            Route::Referrers { .. } => "referrers",
        }
    }

    /// The methods the route serves, for a 405's `Allow`.
    pub fn methods(&self) -> &'static [Method] {
        const READ: &[Method] = &[Method::GET, Method::HEAD];
        match self {
            Route::Base | Route::Catalog | Route::Tags { .. } | Route::Referrers { .. } => READ,
            Route::Manifest { .. } => &[Method::GET, Method::HEAD, Method::PUT, Method::DELETE],
            Route::Blob { .. } => &[Method::GET, Method::HEAD, Method::DELETE],
            Route::UploadStart { .. } => &[Method::POST],
            Route::Upload { .. } => &[Method::GET, Method::PATCH, Method::PUT, Method::DELETE],
        }
    }

    /// The repository the route is about, if any.
    pub fn repository(&self) -> Option<&str> {
        match self {
            Route::Base | Route::Catalog => None,
            Route::Tags { name }
            | Route::Manifest { name, .. }
            | Route::Blob { name, .. }
            | Route::UploadStart { name }
            | Route::Upload { name, .. }
            | Route::Referrers { name, .. } => Some(name),
        }
    }
}

/// The route of `path` (the raw, still percent-encoded path), `None` when it
/// names no endpoint at all.
pub fn parse(path: &str) -> Result<Option<Route>> {
    let Some(rest) = path
        .strip_prefix("/v2/")
        .or(if path == "/v2" { Some("") } else { None })
    else {
        return Ok(None);
    };
    match rest {
        "" => return Ok(Some(Route::Base)),
        "_catalog" => return Ok(Some(Route::Catalog)),
        _ => {}
    }
    let segments: Vec<&str> = rest.split('/').collect();
    let n = segments.len();
    let tail = |k: usize| if n > k { Some(segments[n - k..].to_vec()) } else { None };
    let name_before = |k: usize| check_name(&segments[..n - k].join("/"));

    // Longest suffixes first: `<name>/blobs/uploads` must not read as the
    // blob `uploads` of `<name>`.
    if let Some(t) = tail(3) {
        if t[0] == "blobs" && t[1] == "uploads" {
            let name = name_before(3)?;
            if t[2].is_empty() {
                return Ok(Some(Route::UploadStart { name }));
            }
            let id = t[2];
            if !is_upload_id(id) {
                return Err(RegistryError::new(
                    ErrorCode::BlobUploadUnknown,
                    format!("no upload {id}"),
                ));
            }
            return Ok(Some(Route::Upload {
                name,
                id: id.to_string(),
            }));
        }
    }
    let Some(t) = tail(2) else { return Ok(None) };
    let route = match (t[0], t[1]) {
        ("blobs", "uploads") => Route::UploadStart { name: name_before(2)? },
        ("blobs", digest) => Route::Blob {
            name: name_before(2)?,
            digest: Digest::parse(digest)?,
        },
        ("manifests", reference) => Route::Manifest {
            name: name_before(2)?,
            reference: parse_reference(reference)?,
        },
        ("tags", "list") => Route::Tags { name: name_before(2)? },
        ("referrers", digest) => Route::Referrers {
            name: name_before(2)?,
            digest: Digest::parse(digest)?,
        },
        _ => return Ok(None),
    };
    Ok(Some(route))
}

/// A tag, or a digest when it has the digest's `:`.
pub fn parse_reference(reference: &str) -> Result<Reference> {
    if reference.contains(':') {
        return Ok(Reference::Digest(Digest::parse(reference)?));
    }
    if is_tag(reference) {
        Ok(Reference::Tag(reference.to_string()))
    } else {
        Err(RegistryError::new(
            ErrorCode::TagInvalid,
            format!("`{reference}` is not a valid tag"),
        ))
    }
}

/// `name` if it is a valid repository name, else `NAME_INVALID`.
pub fn check_name(name: &str) -> Result<String> {
    let valid = !name.is_empty() && name.len() <= MAX_NAME_LEN && name.split('/').all(is_name_component);
    if valid {
        Ok(name.to_string())
    } else {
        Err(RegistryError::new(
            ErrorCode::NameInvalid,
            format!("`{name}` is not a valid repository name"),
        ))
    }
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn is_name_component(component: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    // Alternating runs: alphanumeric, separator, alphanumeric, ...; the
    // component must start and end with an alphanumeric run.
    let mut rest = component;
    loop {
        let run = rest.find(|c: char| !alnum(c)).unwrap_or(rest.len());
        if run == 0 {
            return false;
        }
        rest = &rest[run..];
        if rest.is_empty() {
            return true;
        }
        let sep = rest.find(alnum).unwrap_or(rest.len());
        let separator = &rest[..sep];
        let valid_separator =
            matches!(separator, "." | "_" | "__") || (!separator.is_empty() && separator.bytes().all(|b| b == b'-'));
        if !valid_separator {
            return false;
        }
        rest = &rest[sep..];
    }
}

/// `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`
pub fn is_tag(tag: &str) -> bool {
    let mut bytes = tag.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
    first_ok && tag.len() <= 128 && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Upload ids are ours (see `uploads::new_id`) or distribution's (UUIDs);
/// anything else cannot name an upload and must not reach a storage path.
fn is_upload_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The query parameters of a request; the first of a repeated name wins,
/// and a malformed escape is kept as it is (it then fails validation as a
/// digest, name or number would, with the right error code).
pub fn parse_query(raw: Option<&str>) -> HashMap<String, String> {
    let mut query = HashMap::new();
    for (key, value) in query_pairs(raw) {
        query.entry(key).or_insert(value);
    }
    query
}

/// Every value of the query parameter `name`, in order (`?tag=a&tag=b`).
pub fn query_values(raw: Option<&str>, name: &str) -> Vec<String> {
    query_pairs(raw)
        .filter(|(key, _)| key == name)
        .map(|(_, value)| value)
        .collect()
}

/// The decoded `key=value` pairs of a query, in order.
fn query_pairs(raw: Option<&str>) -> impl Iterator<Item = (String, String)> + '_ {
    raw.unwrap_or("").split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(key), percent_decode(value))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| std::str::from_utf8(&bytes[i + 1..i + 3]).ok())
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (bytes[i], escaped) {
            (_, Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (byte, None) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn route(path: &str) -> Route {
        parse(path).unwrap().unwrap()
    }

    fn code(path: &str) -> ErrorCode {
        parse(path).unwrap_err().code()
    }

    #[test]
    fn multi_segment_names() {
        assert_eq!(route("/v2/"), Route::Base);
        assert_eq!(route("/v2/_catalog"), Route::Catalog);
        assert_eq!(
            route("/v2/a/b/c/manifests/x"),
            Route::Manifest {
                name: "a/b/c".into(),
                reference: Reference::Tag("x".into())
            }
        );
        assert_eq!(
            route("/v2/a/blobs/blobs/uploads/"),
            Route::UploadStart { name: "a/blobs".into() }
        );
        assert_eq!(
            route("/v2/a/b/blobs/uploads"),
            Route::UploadStart { name: "a/b".into() }
        );
        assert_eq!(
            route("/v2/a/blobs/uploads/abc-1"),
            Route::Upload {
                name: "a".into(),
                id: "abc-1".into()
            }
        );
        assert!(matches!(route(&format!("/v2/x/y/blobs/{D}")), Route::Blob { name, .. } if name == "x/y"));
        assert!(matches!(
            route(&format!("/v2/x/referrers/{D}")),
            Route::Referrers { .. }
        ));
        assert_eq!(route("/v2/a/tags/list"), Route::Tags { name: "a".into() });
        assert_eq!(parse("/v3/a/tags/list").unwrap(), None);
        assert_eq!(parse("/v2/a/whatever").unwrap(), None);
    }

    #[test]
    fn bad_parameters_are_client_errors() {
        assert_eq!(code("/v2/A/tags/list"), ErrorCode::NameInvalid);
        assert_eq!(code("/v2/a/../b/tags/list"), ErrorCode::NameInvalid);
        assert_eq!(code("/v2/%2e%2e/tags/list"), ErrorCode::NameInvalid);
        assert_eq!(code("/v2//a/tags/list"), ErrorCode::NameInvalid);
        assert_eq!(code("/v2/a/manifests/-bad"), ErrorCode::TagInvalid);
        assert_eq!(code("/v2/a/manifests/sha256:abc"), ErrorCode::DigestInvalid);
        assert_eq!(code("/v2/a/blobs/md5:abc"), ErrorCode::DigestInvalid);
        assert_eq!(code("/v2/a/blobs/uploads/a.b"), ErrorCode::BlobUploadUnknown);
        let long = "a".repeat(256);
        assert_eq!(code(&format!("/v2/{long}/tags/list")), ErrorCode::NameInvalid);
    }

    #[test]
    fn name_components() {
        for ok in ["a", "a0", "a.b", "a_b", "a__b", "a---b", "a-b.c_d"] {
            assert!(is_name_component(ok), "{ok}");
        }
        for bad in ["", "A", ".a", "a.", "a..b", "a___b", "a_.b", "-a", "a-", "a b", "a%2e"] {
            assert!(!is_name_component(bad), "{bad}");
        }
        assert!(is_tag("_x.Y-1") && is_tag(&"t".repeat(128)));
        assert!(!is_tag("") && !is_tag(".x") && !is_tag(&"t".repeat(129)) && !is_tag("a/b"));
    }

    #[test]
    fn query_parameters() {
        let q = parse_query(Some("n=2&last=a%2Fb&x=%zz&n=3&flag&sp=a+b&end=%4"));
        assert_eq!(q["n"], "2");
        assert_eq!(q["last"], "a/b");
        assert_eq!(q["x"], "%zz");
        assert_eq!(q["flag"], "");
        assert_eq!(q["sp"], "a b");
        assert_eq!(q["end"], "%4");
        assert!(parse_query(None).is_empty());
    }
}
