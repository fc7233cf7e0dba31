//! The registry configuration: CNCF distribution 2.8's `config.yml` and its
//! `REGISTRY_*` environment overrides, read into typed structs.
//!
//! # The file
//!
//! `version: 0.1` is required. Berth reads these sections of distribution's
//! format, with distribution's defaults:
//!
//! - `log`: `level` (error, warn, info, debug; default info), `formatter`
//!   (text or json; default text), `fields`, `accesslog.disabled`. The
//!   deprecated top-level `loglevel` still sets `log.level` when that is unset.
//! - `storage`: exactly one driver section `NAME: {params}`, where NAME is any
//!   plugin (bundled or dropped in), beside `delete.enabled`,
//!   `redirect.disable`, `maintenance.uploadpurging` (`enabled`, `age`,
//!   `interval`, `dryrun`), `maintenance.readonly.enabled` and
//!   `cache.blobdescriptor`. `storage: inmemory` is short for `inmemory: {}`.
//!   Driver parameters must be scalars; the plugin receives them as text, in
//!   the order written. A parameter with no value is left out.
//! - `http`: `addr` (default `:5000`), `net` (tcp or unix), `prefix`, `host`,
//!   `secret`, `headers` (name to a list of values), `tls` (`certificate`,
//!   `key`, `clientcas`, `minimumtls`), `debug.addr`, `draintimeout`
//!   (default 25s), and Berth's own `readheadertimeout` (default 30s),
//!   `idletimeout` (default 120s), `maxconnections` (default 10000,
//!   or what the open-files limit allows) and `requesttimeout` (default 60s).
//! - `health.storagedriver`: `enabled`, `interval` (default 10s), `threshold`.
//!
//! Durations are Go durations (`300ms`, `10s`, `1h30m`, `168h`); a bare
//! integer is nanoseconds, as in Go. As in Go's YAML 1.1 parser, a boolean may
//! be written `yes`/`no`/`on`/`off`, and a string field takes a number.
//!
//! Berth adds one section of its own, which distribution does not have:
//! `plugins: {directory, calltimeout, memorylimitmib, totalmemorymib}` — where
//! drop-in `.wasm` drivers live, the longest one plugin call may take
//! (default 30s), the most memory one plugin instance may use (default 256
//! MiB), and the most all instances may reserve together (default a quarter
//! of the machine's or the cgroup's memory).
//!
//! # The environment
//!
//! As in distribution, `REGISTRY_A_B_C=value` sets `a.b.c` to `value` read as
//! YAML (so `true` is a boolean and `[nosniff]` a list); variables apply in
//! the order of their names, so `REGISTRY_STORAGE` comes before
//! `REGISTRY_STORAGE_S3_REGION`. A segment matches an existing key ignoring
//! case; a new key is lower-cased (so a driver parameter whose name has an
//! `_` cannot be set this way). `REGISTRY_STORAGE=NAME` selects the driver
//! NAME and drops the file's driver section with its parameters (Berth keeps
//! the file's `delete`, `redirect`, `maintenance` and `cache`, which
//! distribution would drop too). Setting a parameter of another driver than
//! the file's without `REGISTRY_STORAGE` makes two drivers: an error, as in
//! distribution.
//!
//! # Mistakes
//!
//! Keys and `REGISTRY_*` variables that mean nothing to Berth come back as
//! warnings naming them (with the nearest known key when one is close);
//! malformed YAML, a wrong type, a bad duration or address, a missing or
//! unsupported `version`, and zero or two storage drivers are errors naming
//! the key and, when it came from there, the variable.

mod addr;
mod de;
mod env;
mod load;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use addr::ListenAddr;
/// The operator's Config names its unknown fields' nearest known ones too.
pub(crate) use load::closest;

/// Reads the configuration file at `path` (or, with `None`, the local default:
/// the filesystem driver under the data directory, see [`default_data_dir`],
/// listening on `127.0.0.1:5000`) and applies the `REGISTRY_*` variables of
/// `env`, which is the process environment in production.
pub fn load(path: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Loaded, ConfigError> {
    let env: Vec<(String, String)> = env.into_iter().collect();
    match path {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            load::from_text(&text, &path.display().to_string(), &env)
        }
        None => load::local_default(&env),
    }
}

/// Reads a configuration given as text, then applies `env` as [`load`] does.
pub fn parse(text: &str, env: impl IntoIterator<Item = (String, String)>) -> Result<Loaded, ConfigError> {
    let env: Vec<(String, String)> = env.into_iter().collect();
    load::from_text(text, "the configuration", &env)
}

/// Where the registry keeps its data when no configuration file says:
/// `$XDG_DATA_HOME/berth/registry`, else `$HOME/.local/share/berth/registry`,
/// both looked up in `env`.
pub fn default_data_dir(env: &[(String, String)]) -> Option<PathBuf> {
    let var = |name: &str| {
        env.iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| PathBuf::from(v))
    };
    let base = var("XDG_DATA_HOME").or_else(|| var("HOME").map(|home| home.join(".local").join("share")))?;
    Some(base.join("berth").join("registry"))
}

/// A configuration and what was odd about it.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// Unknown or unsupported keys and variables, deprecated spellings: each
    /// names the key or the variable. Worth logging; none stops the registry.
    pub warnings: Vec<String>,
}

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `origin` is the file or the environment variable.
    #[error("{origin} is not valid YAML: {message}")]
    Syntax { origin: String, message: String },
    /// `key` is the path in the configuration, like `http.tls.clientcas[1]`.
    #[error("configuration key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

/// The registry configuration (see the module documentation for the format).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Config {
    #[serde(default)]
    pub log: LogConfig,
    pub storage: StorageConfig,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub health: HealthConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    /// OpenShift's registry section (`openshift.requests` there).
    #[serde(default)]
    pub requests: RequestsConfig,
    /// Berth's own section; distribution has no `plugins`.
    #[serde(default)]
    pub plugins: PluginsConfig,
    /// Of distribution's checks, those of image indexes.
    #[serde(default)]
    pub validation: ValidationConfig,
}

impl Config {
    /// The storage driver's name and its parameters, as the plugin's `init`
    /// takes them.
    pub fn storage_driver(&self) -> (&str, Vec<(String, String)>) {
        (&self.storage.driver, self.storage.parameters.clone())
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct LogConfig {
    pub level: LogLevel,
    pub formatter: LogFormatter,
    /// Static fields added to every log line.
    #[serde(deserialize_with = "de::text_map")]
    pub fields: BTreeMap<String, String>,
    pub accesslog: AccessLogConfig,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: LogLevel::Info,
            formatter: LogFormatter::Text,
            fields: BTreeMap::new(),
            accesslog: AccessLogConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
        }
    }
}

/// Distribution lower-cases the level before checking it, so `DEBUG` works.
impl<'de> Deserialize<'de> for LogLevel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        match text.to_lowercase().as_str() {
            "error" => Ok(LogLevel::Error),
            "warn" => Ok(LogLevel::Warn),
            "info" => Ok(LogLevel::Info),
            "debug" => Ok(LogLevel::Debug),
            _ => Err(serde::de::Error::custom(format!(
                "unknown log level `{text}`, expected error, warn, info or debug"
            ))),
        }
    }
}

/// Distribution's `logstash` formatter is not offered: use `json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormatter {
    Text,
    Json,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct AccessLogConfig {
    #[serde(deserialize_with = "de::flag")]
    pub disabled: bool,
}

/// `storage`; (de)serialised by hand in `de.rs`, as the driver's key is
/// its name.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageConfig {
    /// The plugin name: `filesystem`, `inmemory`, `s3`, or a dropped-in one.
    pub driver: String,
    /// In the order written; numbers and booleans rendered as text.
    pub parameters: Vec<(String, String)>,
    pub delete: DeleteConfig,
    pub redirect: RedirectConfig,
    pub maintenance: MaintenanceConfig,
    pub cache: CacheConfig,
    pub gc: GcConfig,
    pub retention: RetentionConfig,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct DeleteConfig {
    /// Off by default, as in distribution.
    #[serde(deserialize_with = "de::flag")]
    pub enabled: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct RedirectConfig {
    #[serde(deserialize_with = "de::flag")]
    pub disable: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct MaintenanceConfig {
    pub uploadpurging: UploadPurgingConfig,
    pub readonly: ReadOnlyConfig,
}

/// Removing abandoned uploads. Each field has distribution's default on its
/// own (distribution wants all four once the section is written).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct UploadPurgingConfig {
    #[serde(deserialize_with = "de::flag")]
    pub enabled: bool,
    /// Uploads older than this are removed (default 168h).
    #[serde(deserialize_with = "de::duration", serialize_with = "de::ser_duration")]
    pub age: Duration,
    /// Time between purges (default 24h).
    #[serde(deserialize_with = "de::duration", serialize_with = "de::ser_duration")]
    pub interval: Duration,
    #[serde(deserialize_with = "de::flag")]
    pub dryrun: bool,
}

impl Default for UploadPurgingConfig {
    fn default() -> Self {
        UploadPurgingConfig {
            enabled: true,
            age: Duration::from_secs(168 * 3600),
            interval: Duration::from_secs(24 * 3600),
            dryrun: false,
        }
    }
}

/// Limits on requests served at once, reads (GET, HEAD) and writes apart,
/// as OpenShift's registry has them.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct RequestsConfig {
    pub read: RequestLimitConfig,
    pub write: RequestLimitConfig,
}

/// One kind's limit: beyond `maxrunning` requests wait, at most
/// `maxinqueue` of them and each at most `maxwaitinqueue`; the rest are
/// answered 429.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct RequestLimitConfig {
    /// Requests served at once; 0 (the default): no limit.
    pub maxrunning: u32,
    /// Requests that may wait for one of those; 0: none wait.
    pub maxinqueue: u32,
    /// The longest one waits; 0 (the default): `http.requesttimeout`.
    #[serde(deserialize_with = "de::duration", serialize_with = "de::ser_duration")]
    pub maxwaitinqueue: Duration,
}

/// distribution's `auth`: who may use the registry. Schemes Berth does not
/// implement are refused (see `load.rs`), any other key is an error.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub htpasswd: Option<HtpasswdConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<TokenConfig>,
    /// Berth's own: per-repository permissions of htpasswd users.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access: Option<crate::auth::AccessConfig>,
}

/// `auth.htpasswd`: HTTP Basic against a file of bcrypt entries.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HtpasswdConfig {
    /// Sent in the `WWW-Authenticate` challenge.
    pub realm: String,
    /// The htpasswd file; read again when it changes.
    pub path: PathBuf,
}

/// `auth.token`: bearer tokens from a token server (the Docker registry
/// token specification), verified here.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenConfig {
    /// The token server's URL, sent in the challenge.
    pub realm: String,
    /// This registry's name: tokens must have it in `aud`.
    pub service: String,
    /// Tokens must have it in `iss`.
    pub issuer: String,
    /// PEM root certificates: a token's `x5c` chain must end at one, or
    /// its `kid` name one's key (libtrust key ID).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rootcertbundle: Option<PathBuf>,
    /// A JWKS file: a token's `kid` may name one of its keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks: Option<PathBuf>,
    /// Send clients to `https://<the Host they asked><autoredirectpath>`
    /// instead of `realm`.
    #[serde(deserialize_with = "de::flag")]
    pub autoredirect: bool,
    /// The token path on the registry's own host; default `/auth/token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoredirectpath: Option<String>,
}

impl TokenConfig {
    /// What the challenge sends clients to.
    pub fn realm(&self) -> crate::auth::Realm {
        if self.autoredirect {
            let path = self.autoredirectpath.as_deref().unwrap_or("/auth/token");
            return crate::auth::Realm::SameHost(path.to_string());
        }
        crate::auth::Realm::Fixed(self.realm.clone())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct ReadOnlyConfig {
    #[serde(deserialize_with = "de::flag")]
    pub enabled: bool,
}

/// Berth's own `storage.gc`: garbage collection in the serving process,
/// while it serves (see `store::gc` for the safety rules).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct GcConfig {
    /// Off by default.
    #[serde(deserialize_with = "de::flag")]
    pub enabled: bool,
    /// Time between runs (default 24h); the first comes one interval
    /// after start.
    #[serde(deserialize_with = "de::duration", serialize_with = "de::ser_duration")]
    pub interval: Duration,
    /// A blob or link younger than this is never deleted (default 1h): a
    /// push in progress has uploaded its layers and not yet its manifest.
    #[serde(deserialize_with = "de::duration", serialize_with = "de::ser_duration")]
    pub delay: Duration,
    /// Delete untagged manifests too, as `berth gc --delete-untagged`.
    #[serde(deserialize_with = "de::flag")]
    pub deleteuntagged: bool,
}

impl Default for GcConfig {
    fn default() -> Self {
        GcConfig {
            enabled: false,
            interval: Duration::from_secs(24 * 3600),
            delay: Duration::from_secs(3600),
            deleteuntagged: false,
        }
    }
}

/// Berth's own `storage.retention`: which tags to keep, per repository
/// glob; the first policy whose glob matches decides, and a repository no
/// policy matches keeps every tag. Tags not kept are deleted by `berth gc`
/// and online collection, which then free what they referenced.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct RetentionConfig {
    pub policies: Vec<RetentionPolicy>,
}

/// One retention policy: a tag is kept when any of `keep` says so.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionPolicy {
    /// Repository globs (`*` within a segment, `**` across).
    pub repositories: Vec<String>,
    pub keep: KeepTags,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeepTags {
    /// The N most recently pushed tags.
    pub newest: Option<usize>,
    /// Tags pushed within this long.
    #[serde(deserialize_with = "de::opt_duration", serialize_with = "de::ser_opt_duration")]
    pub pushedwithin: Option<Duration>,
    /// Tags matching one of these globs (`*` matches any run of characters).
    pub patterns: Vec<String>,
}

impl RetentionConfig {
    /// What is wrong with the policies, naming the field.
    pub fn check(&self) -> Result<(), (String, String)> {
        for (index, policy) in self.policies.iter().enumerate() {
            let field = format!("storage.retention.policies[{index}]");
            if policy.repositories.is_empty() {
                return Err((
                    format!("{field}.repositories"),
                    "name the repositories the policy is for, e.g. [\"team/**\"]".into(),
                ));
            }
            if let Some(glob) = policy
                .repositories
                .iter()
                .find(|g| g.is_empty() || g.split('/').any(str::is_empty))
            {
                return Err((
                    format!("{field}.repositories"),
                    format!("`{glob}` is not a repository glob like `team/**`"),
                ));
            }
            let keep = &policy.keep;
            if keep.newest.is_none() && keep.pushedwithin.is_none() && keep.patterns.is_empty() {
                return Err((
                    format!("{field}.keep"),
                    "a policy that keeps nothing would delete every tag; set newest, pushedwithin or patterns".into(),
                ));
            }
        }
        Ok(())
    }

    /// The policy deciding for `repository`, if any.
    pub fn policy_for(&self, repository: &str) -> Option<&RetentionPolicy> {
        self.policies.iter().find(|policy| {
            policy
                .repositories
                .iter()
                .any(|glob| crate::glob::matches(glob, repository))
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct CacheConfig {
    /// `inmemory` (also when unset) or `none`; distribution's `redis` is
    /// refused (see [`CacheConfig::entries`]).
    pub blobdescriptor: Option<String>,
    /// How many digests the in-memory cache keeps (default 10000).
    pub blobdescriptorsize: Option<usize>,
}

impl CacheConfig {
    /// How many digests' sizes and manifest bytes are kept in memory; 0 with
    /// `blobdescriptor: none`.
    pub fn entries(&self) -> usize {
        match self.blobdescriptor.as_deref() {
            Some("none") => 0,
            _ => self.blobdescriptorsize.unwrap_or(crate::store::DEFAULT_CACHE_ENTRIES),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct HttpConfig {
    /// `host:port`, `[v6]:port` or `:port` with `net: tcp` (see
    /// [`HttpConfig::listen_addr`]); a socket path with `net: unix`.
    pub addr: String,
    pub net: Net,
    /// The path before `/v2/`, as `/path/`.
    pub prefix: Option<String>,
    /// The externally reachable URL, for generated links.
    pub host: Option<String>,
    /// Signs state kept by clients; replicas must share it.
    #[serde(deserialize_with = "de::opt_text")]
    pub secret: Option<String>,
    /// Response headers: name to values.
    #[serde(deserialize_with = "de::header_map")]
    pub headers: BTreeMap<String, Vec<String>>,
    pub tls: TlsConfig,
    pub debug: DebugConfig,
    /// How long requests in flight may finish after SIGTERM; `None`: 25s.
    #[serde(deserialize_with = "de::opt_duration", serialize_with = "de::ser_opt_duration")]
    pub draintimeout: Option<Duration>,
    /// Berth's own: the longest a client may take to send a request's
    /// headers (default 30s).
    #[serde(deserialize_with = "de::duration", serialize_with = "de::ser_duration")]
    pub readheadertimeout: Duration,
    /// Berth's own: a connection on which no byte moves either way for this
    /// long is closed (default 120s): idle keep-alive connections, stalled
    /// uploads and downloads; a slow transfer that moves is not.
    #[serde(deserialize_with = "de::duration", serialize_with = "de::ser_duration")]
    pub idletimeout: Duration,
    /// Berth's own: connections served at once; more wait in the listen
    /// backlog. `None`: 10000, or what the open-files limit allows.
    pub maxconnections: Option<u32>,
    /// Berth's own: the longest a request may take, its plugin calls
    /// included (default 60s); blob uploads are bounded by `idletimeout`.
    #[serde(deserialize_with = "de::duration", serialize_with = "de::ser_duration")]
    pub requesttimeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            addr: ":5000".into(),
            net: Net::Tcp,
            prefix: None,
            host: None,
            secret: None,
            headers: BTreeMap::new(),
            tls: TlsConfig::default(),
            debug: DebugConfig::default(),
            draintimeout: None,
            readheadertimeout: Duration::from_secs(30),
            idletimeout: Duration::from_secs(120),
            maxconnections: None,
            requesttimeout: Duration::from_secs(60),
        }
    }
}

impl HttpConfig {
    /// `addr` as a TCP listen address; the error names `http.addr`.
    pub fn listen_addr(&self) -> Result<ListenAddr, ConfigError> {
        ListenAddr::parse(&self.addr).map_err(|message| ConfigError::Invalid {
            key: "http.addr".into(),
            message,
        })
    }

    /// `debug.addr`, when set; the error names `http.debug.addr`.
    pub fn debug_listen_addr(&self) -> Result<Option<ListenAddr>, ConfigError> {
        let Some(addr) = &self.debug.addr else { return Ok(None) };
        ListenAddr::parse(addr)
            .map(Some)
            .map_err(|message| ConfigError::Invalid {
                key: "http.debug.addr".into(),
                message,
            })
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Net {
    #[default]
    Tcp,
    Unix,
}

/// TLS is on when `certificate` is set.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct TlsConfig {
    pub certificate: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// CA files for client certificates.
    pub clientcas: Vec<PathBuf>,
    pub minimumtls: TlsVersion,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
pub enum TlsVersion {
    #[serde(rename = "tls1.0")]
    Tls10,
    #[serde(rename = "tls1.1")]
    Tls11,
    #[default]
    #[serde(rename = "tls1.2")]
    Tls12,
    #[serde(rename = "tls1.3")]
    Tls13,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct DebugConfig {
    /// Where the debug server listens; `None`: no debug server.
    pub addr: Option<String>,
    pub prometheus: PrometheusConfig,
}

/// `http.debug.prometheus`: the metrics, on the debug server.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct PrometheusConfig {
    #[serde(deserialize_with = "de::flag")]
    pub enabled: bool,
    /// distribution's default, `/metrics`.
    pub path: String,
}

impl Default for PrometheusConfig {
    fn default() -> Self {
        PrometheusConfig {
            enabled: false,
            path: "/metrics".into(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct ValidationConfig {
    pub manifests: ManifestValidationConfig,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct ManifestValidationConfig {
    pub indexes: IndexValidationConfig,
}

/// `validation.manifests.indexes`: which manifests an image index lists
/// must be in the repository before the index is stored. A mirror of one
/// platform of a multi-arch image pushes a sparse index.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct IndexValidationConfig {
    pub platforms: IndexPlatforms,
    /// With `platforms: list`, the platforms whose manifests must be there.
    pub platformlist: Vec<PlatformConfig>,
}

impl IndexValidationConfig {
    /// Whether an index's manifest for `platform` (its descriptor's
    /// `platform`, if any) must be in the repository.
    pub fn requires(&self, platform: Option<&PlatformConfig>) -> bool {
        match self.platforms {
            IndexPlatforms::All => true,
            IndexPlatforms::None => false,
            IndexPlatforms::List => platform.is_some_and(|p| self.platformlist.contains(p)),
        }
    }
}

/// Distribution's values for `validation.manifests.indexes.platforms`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IndexPlatforms {
    /// Every manifest an index lists.
    #[default]
    All,
    /// None of them.
    None,
    /// Those of the platforms in `platformlist`.
    List,
}

/// A platform as an index's descriptor names it (its other fields, such as
/// `variant`, do not count, as in distribution).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct PlatformConfig {
    pub architecture: String,
    pub os: String,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct HealthConfig {
    pub storagedriver: StorageDriverHealth,
}

/// A periodic check of the storage driver.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct StorageDriverHealth {
    #[serde(deserialize_with = "de::flag")]
    pub enabled: bool,
    /// Between checks (default 10s; 0 means the default, as in distribution).
    #[serde(deserialize_with = "de::duration", serialize_with = "de::ser_duration")]
    pub interval: Duration,
    /// Failures in a row before unhealthy (default 1; 0 means 1, as in
    /// distribution).
    pub threshold: u32,
}

impl Default for StorageDriverHealth {
    fn default() -> Self {
        StorageDriverHealth {
            enabled: false,
            interval: Duration::from_secs(10),
            threshold: 1,
        }
    }
}

/// Berth's own section: the WebAssembly plugins.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct PluginsConfig {
    /// Drop-in `NAME.wasm` drivers, adding to or replacing the bundled ones.
    pub directory: Option<PathBuf>,
    /// The longest one plugin call may take (default 30s).
    #[serde(deserialize_with = "de::duration", serialize_with = "de::ser_duration")]
    pub calltimeout: Duration,
    /// The most memory one plugin instance may use, in MiB (default 256).
    pub memorylimitmib: u64,
    /// The most memory all plugin instances may reserve together, in MiB;
    /// each reserves its `memorylimitmib` while it lives. `None`: a quarter
    /// of the machine's (or the cgroup's) memory.
    pub totalmemorymib: Option<u64>,
    /// How often `berth serve` looks for changed `.wasm` files in
    /// `directory` and loads them without a restart (default 2s); `0s`
    /// turns the watch off (SIGHUP still reloads).
    #[serde(deserialize_with = "de::duration", serialize_with = "de::ser_duration")]
    pub watchinterval: Duration,
    /// Plugins pulled from a registry at start, pinned by digest, and kept
    /// in the cache beside the compiled components so later starts need no
    /// network. They win over bundled and dropped-in plugins of their name.
    pub oci: Vec<OciPlugin>,
}

/// One entry of `plugins.oci`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OciPlugin {
    /// The plugin's name, as `storage: {NAME: ...}` or a validator's.
    pub name: String,
    /// `host[:port]/repository[:tag]@sha256:...`: a digest is required, so
    /// what runs is what was reviewed.
    pub reference: String,
    /// Talk plain HTTP to the registry instead of HTTPS.
    #[serde(default)]
    pub plainhttp: bool,
}

/// `plugins.watchinterval` when not set.
pub const DEFAULT_PLUGIN_WATCH_INTERVAL: Duration = Duration::from_secs(2);
/// The shortest `plugins.watchinterval` other than 0 (off).
pub const MIN_PLUGIN_WATCH_INTERVAL: Duration = Duration::from_millis(100);

impl Default for PluginsConfig {
    fn default() -> Self {
        PluginsConfig {
            directory: None,
            calltimeout: crate::plugin::DEFAULT_CALL_TIMEOUT,
            memorylimitmib: crate::plugin::DEFAULT_MEMORY_LIMIT_MIB,
            totalmemorymib: None,
            watchinterval: DEFAULT_PLUGIN_WATCH_INTERVAL,
            oci: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests;
