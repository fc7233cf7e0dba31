//! The driver's parameters, as distribution's s3 driver (v2.8) names them,
//! parsed into a typed configuration. Pure: no wasm imports, so it is unit
//! tested natively.

/// The smallest part S3 accepts (except for the last part of an upload).
pub const MIN_CHUNK: u64 = 5 << 20;
/// The largest part S3 accepts, and the largest object a single CopyObject copies.
pub const MAX_CHUNK: u64 = 5 << 30;
/// Distribution's default part size.
pub const DEFAULT_CHUNK: u64 = 10 << 20;
/// Distribution's default part size of a multipart copy.
pub const DEFAULT_COPY_CHUNK: u64 = 32 << 20;
/// Distribution's default size above which a copy is a multipart copy.
pub const DEFAULT_COPY_THRESHOLD: u64 = 32 << 20;
/// Distribution's default number of parts copied at once.
pub const DEFAULT_COPY_CONCURRENCY: usize = 100;

/// The parameters this driver knows; anything else is a configuration mistake.
pub const KNOWN: &[&str] = &[
    "region",
    "regionendpoint",
    "bucket",
    "accesskey",
    "secretkey",
    "sessiontoken",
    "encrypt",
    "keyid",
    "secure",
    "skipverify",
    "v4auth",
    "chunksize",
    "multipartcopychunksize",
    "multipartcopymaxconcurrency",
    "multipartcopythresholdsize",
    "rootdirectory",
    "storageclass",
    "objectacl",
    "useragent",
    "usedualstack",
    "accelerate",
    "forcepathstyle",
    "virtualhostedstyle",
    "redirectendpoint",
    "cabundle",
    "maxthreads",
    "loglevel",
    "tags",
];

/// Storage classes S3 knows; `NONE` (distribution's) sends no header.
const STORAGE_CLASSES: &[&str] = &[
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "GLACIER_IR",
    "DEEP_ARCHIVE",
    "OUTPOSTS",
    "EXPRESS_ONEZONE",
    "NONE",
];

/// The configuration of one driver instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The signing region (`us-east-1` when only an endpoint was given).
    pub region: String,
    /// The endpoint URL, scheme included, without a trailing `/`.
    pub endpoint: String,
    /// Whether `regionendpoint` was given (rather than the AWS default).
    pub custom_endpoint: bool,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
    pub session_token: Option<String>,
    pub encrypt: bool,
    pub key_id: Option<String>,
    pub chunk_size: u64,
    pub copy_chunk_size: u64,
    /// Objects larger than this are copied part by part, in parallel; a
    /// single CopyObject of a large object on S3 can outlast a plugin call.
    pub copy_threshold: u64,
    pub copy_concurrency: usize,
    /// The key prefix, without leading or trailing `/`; empty for the bucket root.
    pub root: String,
    /// None for distribution's `NONE`: no storage-class header.
    pub storage_class: Option<String>,
    /// Sent only when set explicitly: buckets with ACLs disabled (the
    /// default for new buckets) refuse most ACL headers.
    pub object_acl: Option<String>,
    pub path_style: bool,
    /// The endpoint presigned URLs point at, if not `endpoint`.
    pub redirect_endpoint: Option<String>,
    /// `tags` for the provisioner, as (key, value).
    pub tags: Vec<(String, String)>,
}

fn parse_bool(name: &str, value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        _ => Err(format!("parameter {name:?} must be true or false, not {value:?}")),
    }
}

/// A whole number (of bytes, of parts) within `min..=max`.
fn parse_number(name: &str, value: &str, min: u64, max: u64) -> Result<u64, String> {
    let number: u64 = value
        .trim()
        .parse()
        .map_err(|_| format!("parameter {name:?} must be a whole number, not {value:?}"))?;
    if !(min..=max).contains(&number) {
        return Err(format!(
            "parameter {name:?} is {number}; it must be between {min} and {max}"
        ));
    }
    Ok(number)
}

/// `k=v,k2=v2` into pairs.
pub fn parse_tags(value: &str) -> Result<Vec<(String, String)>, String> {
    let mut tags = Vec::new();
    for item in value.split(',').map(str::trim).filter(|item| !item.is_empty()) {
        let (key, val) = item
            .split_once('=')
            .ok_or_else(|| format!("parameter \"tags\": {item:?} is not of the form key=value"))?;
        let key = key.trim();
        if key.is_empty() {
            return Err(format!("parameter \"tags\": {item:?} has an empty key"));
        }
        tags.push((key.to_string(), val.trim().to_string()));
    }
    Ok(tags)
}

/// A URL with a scheme: as given, else `https://` (or `http://` when
/// `secure` is false), as distribution does for a bare host.
fn with_scheme(url: &str, secure: bool) -> String {
    let url = url.trim().trim_end_matches('/');
    if url.contains("://") {
        url.to_string()
    } else if secure {
        format!("https://{url}")
    } else {
        format!("http://{url}")
    }
}

impl Config {
    /// Parses the `storage.s3` parameters; the error names the parameter.
    pub fn parse(parameters: &[(String, String)]) -> Result<Config, String> {
        let mut get = std::collections::HashMap::new();
        for (key, value) in parameters {
            if !KNOWN.contains(&key.as_str()) {
                return Err(format!(
                    "unknown parameter {key:?} for the s3 driver (known: {})",
                    KNOWN.join(", ")
                ));
            }
            get.insert(key.as_str(), value.as_str());
        }
        let text = |name: &str| get.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
        let flag = |name: &str, default: bool| text(name).map_or(Ok(default), |v| parse_bool(name, v));

        let bucket = text("bucket")
            .ok_or("the s3 driver needs the parameter \"bucket\": the name of the bucket to store into")?
            .to_string();
        let secure = flag("secure", true)?;
        let (region, endpoint, custom_endpoint) = match (text("region"), text("regionendpoint")) {
            (None, None) => {
                return Err("the s3 driver needs the parameter \"region\" (e.g. us-east-1) or \
                            \"regionendpoint\" (the URL of an S3-compatible service); neither is set"
                    .into())
            }
            (region, Some(endpoint)) => (
                region.unwrap_or("us-east-1").to_string(),
                with_scheme(endpoint, secure),
                true,
            ),
            (Some(region), None) => {
                if !secure {
                    return Err("parameter \"secure\" is false but AWS S3 is only reached over https; \
                                set \"regionendpoint\" to an http:// URL for a plain-http service"
                        .into());
                }
                (region.to_string(), format!("https://s3.{region}.amazonaws.com"), false)
            }
        };
        let (access_key, secret_key) = match (text("accesskey"), text("secretkey")) {
            (Some(access), Some(secret)) => (access.to_string(), secret.to_string()),
            (None, None) => {
                return Err("the s3 driver needs credentials: set \"accesskey\" and \"secretkey\" \
                            (or REGISTRY_STORAGE_S3_ACCESSKEY and REGISTRY_STORAGE_S3_SECRETKEY); \
                            the plugin has no environment or instance metadata to find them in"
                    .into())
            }
            (Some(_), None) => return Err("parameter \"accesskey\" is set but \"secretkey\" is not".into()),
            (None, Some(_)) => return Err("parameter \"secretkey\" is set but \"accesskey\" is not".into()),
        };
        if !flag("v4auth", true)? {
            return Err("parameter \"v4auth\" is false: signature version 2 is not supported \
                        (S3 has deprecated it); remove the parameter"
                .into());
        }
        if flag("accelerate", false)? {
            return Err("parameter \"accelerate\" (S3 Transfer Acceleration) is not supported".into());
        }
        if flag("usedualstack", false)? {
            return Err(
                "parameter \"usedualstack\" is not supported; set \"regionendpoint\" to the \
                        dual-stack endpoint instead"
                    .into(),
            );
        }
        let chunk_size = text("chunksize").map_or(Ok(DEFAULT_CHUNK), |v| {
            parse_number("chunksize", v, MIN_CHUNK, MAX_CHUNK)
        })?;
        let copy_chunk_size = text("multipartcopychunksize").map_or(Ok(DEFAULT_COPY_CHUNK), |v| {
            parse_number("multipartcopychunksize", v, MIN_CHUNK, MAX_CHUNK)
        })?;
        let copy_threshold = text("multipartcopythresholdsize").map_or(Ok(DEFAULT_COPY_THRESHOLD), |v| {
            parse_number("multipartcopythresholdsize", v, 0, MAX_CHUNK)
        })?;
        let copy_concurrency = text("multipartcopymaxconcurrency").map_or(Ok(DEFAULT_COPY_CONCURRENCY), |v| {
            parse_number("multipartcopymaxconcurrency", v, 1, 10_000).map(|n| n as usize)
        })?;
        // Accepted for compatibility: the host's connection pool bounds
        // what runs at once.
        if let Some(value) = text("maxthreads") {
            value
                .parse::<u64>()
                .map_err(|_| format!("parameter \"maxthreads\" must be a number, not {value:?}"))?;
        }
        let encrypt = flag("encrypt", false)?;
        let key_id = text("keyid").map(str::to_string);
        if key_id.is_some() && !encrypt {
            return Err(
                "parameter \"keyid\" is set but \"encrypt\" is not true; set encrypt: true \
                        to encrypt with that KMS key"
                    .into(),
            );
        }
        let storage_class = match text("storageclass").map(str::to_ascii_uppercase) {
            None => Some("STANDARD".to_string()),
            Some(class) if class == "NONE" => None,
            Some(class) if STORAGE_CLASSES.contains(&class.as_str()) => Some(class),
            Some(class) => {
                return Err(format!(
                    "parameter \"storageclass\" is {class:?}; it must be one of {}",
                    STORAGE_CLASSES.join(", ")
                ))
            }
        };
        let root = text("rootdirectory").unwrap_or("").trim_matches('/').to_string();
        let force_path_style = flag("forcepathstyle", false)?;
        let virtual_hosted = flag("virtualhostedstyle", false)?;
        let path_style = force_path_style || (custom_endpoint && !virtual_hosted);
        let redirect_endpoint = text("redirectendpoint").map(|url| with_scheme(url, secure));
        let tags = text("tags").map_or(Ok(Vec::new()), parse_tags)?;
        // `skipverify` and `cabundle` are the host's (it does TLS); checked
        // here only so a typo is caught.
        flag("skipverify", false)?;
        Ok(Config {
            region,
            endpoint,
            custom_endpoint,
            bucket,
            access_key,
            secret_key,
            session_token: text("sessiontoken").map(str::to_string),
            encrypt,
            key_id,
            chunk_size,
            copy_chunk_size,
            copy_threshold,
            copy_concurrency,
            root,
            storage_class,
            object_acl: text("objectacl").map(str::to_string),
            path_style,
            redirect_endpoint,
            tags,
        })
    }

    /// The object key of the storage path `path` (`/a/b`), no leading `/`.
    pub fn key(&self, path: &str) -> String {
        let rel = path.trim_matches('/');
        match (self.root.is_empty(), rel.is_empty()) {
            (true, _) => rel.to_string(),
            (false, true) => self.root.clone(),
            (false, false) => format!("{}/{rel}", self.root),
        }
    }

    /// The key prefix of everything below the directory `path`: the key
    /// followed by `/`, or empty for `/` without a root directory.
    pub fn dir_prefix(&self, path: &str) -> String {
        let key = self.key(path);
        if key.is_empty() {
            key
        } else {
            format!("{key}/")
        }
    }

    /// The storage path of the key `key`, or None when it is not below the
    /// root directory (or is the root itself).
    pub fn path_of(&self, key: &str) -> Option<String> {
        let rel = if self.root.is_empty() {
            key
        } else {
            key.strip_prefix(self.root.as_str())?.strip_prefix('/')?
        };
        let rel = rel.trim_end_matches('/');
        (!rel.is_empty()).then(|| format!("/{rel}"))
    }

    /// The URL of the object `key`, path-style or virtual-hosted.
    pub fn object_url(&self, key: &str) -> String {
        let (scheme, host) = self.endpoint.split_once("://").unwrap_or(("https", &self.endpoint));
        let encoded = encode_key(key);
        if self.path_style {
            format!("{scheme}://{host}/{}/{encoded}", self.bucket)
        } else {
            format!("{scheme}://{}.{host}/{encoded}", self.bucket)
        }
    }
}

/// Percent-encodes a key for a URL path (and `x-amz-copy-source`): every
/// byte but the unreserved ones and `/`, as SigV4 canonicalises it.
pub fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for byte in key.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The byte ranges (start, end exclusive) that copy an object of `size`
/// bytes as parts of an upload: at most `max` bytes each, and all but the
/// last at least 5 MiB, since more parts follow them. Equal-sized, so a
/// remainder never makes a small middle part.
pub fn copy_ranges(size: u64, max: u64) -> Vec<(u64, u64)> {
    if size == 0 {
        return Vec::new();
    }
    let count = size.div_ceil(max.max(MIN_CHUNK));
    // Not under the minimum when `max` is near it (12 MiB by 5: 5, 5, 2).
    let each = size.div_ceil(count).max(MIN_CHUNK);
    (0..count)
        .map(|i| (i * each, ((i + 1) * each).min(size)))
        .filter(|(start, end)| start < end)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            ("bucket", "b"),
            ("region", "eu-west-1"),
            ("accesskey", "a"),
            ("secretkey", "s"),
        ]
    }

    fn parse(extra: &[(&'static str, &'static str)]) -> Result<Config, String> {
        let mut all = base();
        all.extend_from_slice(extra);
        Config::parse(&params(&all))
    }

    #[test]
    fn defaults_are_distributions() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.endpoint, "https://s3.eu-west-1.amazonaws.com");
        assert_eq!(config.chunk_size, 10 << 20);
        assert!(!config.path_style);
        assert_eq!(config.storage_class.as_deref(), Some("STANDARD"));
        assert_eq!(config.object_url("a/b"), "https://b.s3.eu-west-1.amazonaws.com/a/b");
    }

    #[test]
    fn missing_region_and_endpoint_names_both() {
        let err = Config::parse(&params(&[("bucket", "b"), ("accesskey", "a"), ("secretkey", "s")])).unwrap_err();
        assert!(
            err.contains("\"region\"") && err.contains("\"regionendpoint\""),
            "{err}"
        );
    }

    #[test]
    fn credentials_are_required_in_pairs() {
        let err = Config::parse(&params(&[("bucket", "b"), ("region", "r")])).unwrap_err();
        assert!(err.contains("accesskey") && err.contains("secretkey"), "{err}");
        let err = Config::parse(&params(&[("bucket", "b"), ("region", "r"), ("accesskey", "a")])).unwrap_err();
        assert!(err.contains("\"secretkey\" is not"), "{err}");
    }

    #[test]
    fn chunksize_is_bounded() {
        assert_eq!(parse(&[("chunksize", "5242880")]).unwrap().chunk_size, 5 << 20);
        let err = parse(&[("chunksize", "5242879")]).unwrap_err();
        assert!(err.contains("\"chunksize\""), "{err}");
        let err = parse(&[("chunksize", "5368709121")]).unwrap_err();
        assert!(err.contains("\"chunksize\""), "{err}");
        assert!(parse(&[("chunksize", "ten")]).unwrap_err().contains("\"chunksize\""));
    }

    #[test]
    fn endpoint_means_path_style_unless_virtual_hosted() {
        let config = parse(&[("regionendpoint", "http://127.0.0.1:9000/")]).unwrap();
        assert!(config.path_style);
        assert_eq!(config.endpoint, "http://127.0.0.1:9000");
        assert_eq!(config.object_url("k"), "http://127.0.0.1:9000/b/k");
        let config = parse(&[("regionendpoint", "minio.local"), ("virtualhostedstyle", "true")]).unwrap();
        assert!(!config.path_style);
        assert_eq!(config.object_url("k"), "https://b.minio.local/k");
        assert!(parse(&[("forcepathstyle", "true")]).unwrap().path_style);
        // Only an endpoint: signed for us-east-1.
        let config = Config::parse(&params(&[
            ("bucket", "b"),
            ("regionendpoint", "http://h"),
            ("accesskey", "a"),
            ("secretkey", "s"),
        ]))
        .unwrap();
        assert_eq!(config.region, "us-east-1");
    }

    #[test]
    fn unknown_and_unsupported_parameters_are_named() {
        assert!(parse(&[("regoin", "x")]).unwrap_err().contains("\"regoin\""));
        assert!(parse(&[("v4auth", "false")]).unwrap_err().contains("v4auth"));
        assert!(parse(&[("keyid", "k")]).unwrap_err().contains("encrypt"));
        assert!(parse(&[("storageclass", "cheap")])
            .unwrap_err()
            .contains("storageclass"));
        assert_eq!(parse(&[("storageclass", "none")]).unwrap().storage_class, None);
        assert!(parse(&[("encrypt", "maybe")]).unwrap_err().contains("\"encrypt\""));
    }

    #[test]
    fn keys_and_paths_map_both_ways() {
        let plain = parse(&[]).unwrap();
        assert_eq!(plain.key("/docker/registry/v2"), "docker/registry/v2");
        assert_eq!(plain.dir_prefix("/"), "");
        assert_eq!(plain.dir_prefix("/a"), "a/");
        assert_eq!(plain.path_of("a/b").as_deref(), Some("/a/b"));
        let rooted = parse(&[("rootdirectory", "/registry/")]).unwrap();
        assert_eq!(rooted.key("/a/b"), "registry/a/b");
        assert_eq!(rooted.key("/"), "registry");
        assert_eq!(rooted.dir_prefix("/"), "registry/");
        assert_eq!(rooted.path_of("registry/a/b").as_deref(), Some("/a/b"));
        assert_eq!(rooted.path_of("registry2/a"), None);
        assert_eq!(rooted.path_of("registry/"), None);
    }

    #[test]
    fn tags_parse() {
        assert_eq!(
            parse_tags("a=1, b = two ,").unwrap(),
            vec![("a".into(), "1".into()), ("b".into(), "two".into())]
        );
        assert!(parse_tags("novalue").is_err());
    }

    #[test]
    fn keys_are_percent_encoded() {
        assert_eq!(encode_key("a b/c+d~"), "a%20b/c%2Bd~");
    }

    #[test]
    fn copy_ranges_never_leave_a_small_middle_part() {
        assert!(copy_ranges(0, MAX_CHUNK).is_empty());
        assert_eq!(copy_ranges(6 << 20, MAX_CHUNK), vec![(0, 6 << 20)]);
        let size = MAX_CHUNK + 1;
        let ranges = copy_ranges(size, MAX_CHUNK);
        assert_eq!(ranges.len(), 2);
        assert_eq!(ranges.last().unwrap().1, size);
        for window in ranges.windows(2) {
            assert_eq!(window[0].1, window[1].0);
        }
        assert!(ranges.iter().all(|(s, e)| e - s >= MIN_CHUNK && e - s <= MAX_CHUNK));
        let ranges = copy_ranges(100 << 20, 32 << 20);
        assert_eq!(ranges.len(), 4);
        assert!(ranges.iter().all(|(s, e)| e - s <= 32 << 20));
        assert_eq!(
            copy_ranges(12 << 20, MIN_CHUNK),
            vec![(0, 5 << 20), (5 << 20, 10 << 20), (10 << 20, 12 << 20)]
        );
    }

    #[test]
    fn multipart_copy_parameters() {
        let config = parse(&[]).unwrap();
        assert_eq!(
            (config.copy_threshold, config.copy_concurrency),
            (DEFAULT_COPY_THRESHOLD, DEFAULT_COPY_CONCURRENCY)
        );
        let config = parse(&[
            ("multipartcopythresholdsize", "0"),
            ("multipartcopymaxconcurrency", "4"),
        ])
        .unwrap();
        assert_eq!((config.copy_threshold, config.copy_concurrency), (0, 4));
        for (name, value) in [
            ("multipartcopymaxconcurrency", "0"),
            ("multipartcopythresholdsize", "6000000000"),
            ("multipartcopythresholdsize", "big"),
        ] {
            let err = parse(&[(name, value)]).unwrap_err();
            assert!(err.contains(name), "{err}");
        }
    }
}
