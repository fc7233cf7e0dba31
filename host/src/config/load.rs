//! From text and environment to a checked [`Config`]: parse the YAML tree,
//! apply the environment, check what the types cannot (version, one driver),
//! type it, then compare what was written with what was understood to find
//! the keys that mean nothing.

use serde_norway::{Mapping, Value};

use super::de::NON_DRIVER_KEYS;
use super::env::{self, Origin};
use super::{
    default_data_dir, Config, ConfigError, IndexPlatforms, ListenAddr, Loaded, Net, MIN_PLUGIN_WATCH_INTERVAL,
};

/// Distribution settings Berth does not implement whose absence would make
/// the registry less safe than its configuration says (anonymous writes
/// where `auth` was asked, plain HTTP where Let's Encrypt was, ...): a
/// configuration with any of them does not load. (path, what to do.)
const REFUSED: &[(&str, &str)] = &[
    (
        "auth.silly",
        "Berth does not implement distribution's `silly` auth, which is for development only; \
         use `auth.htpasswd` or `auth.token`",
    ),
    (
        "middleware",
        "Berth does not implement distribution's registry, repository or storage middleware \
         (CloudFront, redirects, ...); remove `middleware`",
    ),
    (
        "policy",
        "Berth does not implement repository class policies; remove `policy`",
    ),
    (
        "http.tls.letsencrypt",
        "Berth gets no certificates from Let's Encrypt and would not serve the TLS asked for; \
         set `http.tls.certificate` and `http.tls.key` instead",
    ),
    (
        "http.tls.ciphersuites",
        "Berth does not restrict TLS cipher suites (rustls offers only AEAD suites); \
         remove `http.tls.ciphersuites` and set `http.tls.minimumtls` to choose the versions",
    ),
    (
        "validation.manifests.urls",
        "Berth does not check foreign layer URLs against allow and deny lists; \
         remove `validation.manifests.urls`",
    ),
];

/// Distribution settings Berth does not implement and whose absence is
/// harmless: named as such rather than as unknown, and warned about.
const UNSUPPORTED: &[&str] = &[
    "reporting",
    "notifications",
    "redis",
    "catalog",
    "proxy",
    "compatibility",
    "validation.enabled",
    "validation.disabled",
    "policy",
    "log.hooks",
    "http.relativeurls",
    "http.http2",
    "health.file",
    "health.http",
    "health.tcp",
];

/// Deprecated spellings distribution still reads: (old, new).
const RENAMED: &[(&[&str], &[&str])] = &[
    (&["loglevel"], &["log", "level"]),
    (
        &["storage", "cache", "layerinfo"],
        &["storage", "cache", "blobdescriptor"],
    ),
    // OpenShift's registry keeps its request limits there.
    (&["openshift", "requests"], &["requests"]),
];

const EXAMPLE_DRIVER: &str = "e.g. `storage: {filesystem: {rootdirectory: /var/lib/registry}}`";

pub(super) fn from_text(text: &str, origin: &str, env: &[(String, String)]) -> Result<Loaded, ConfigError> {
    let syntax = |message: String| ConfigError::Syntax {
        origin: origin.to_owned(),
        message,
    };
    let mut value: Value = serde_norway::from_str(text).map_err(|e| syntax(e.to_string()))?;
    value.apply_merge().map_err(|e| syntax(e.to_string()))?;
    match value {
        Value::Mapping(tree) => build(tree, env),
        // An empty file: the missing version will say what is wrong.
        Value::Null => build(Mapping::new(), env),
        _ => Err(syntax(
            "the top level must be a map of settings, starting with `version: 0.1`".into(),
        )),
    }
}

/// No file: the filesystem driver under the data directory, on loopback.
pub(super) fn local_default(env: &[(String, String)]) -> Result<Loaded, ConfigError> {
    let mut filesystem = Mapping::new();
    if let Some(dir) = default_data_dir(env) {
        filesystem.insert("rootdirectory".into(), dir.to_string_lossy().into_owned().into());
    }
    let mut tree = Mapping::new();
    tree.insert("version".into(), "0.1".into());
    tree.insert("storage".into(), single("filesystem", filesystem.into()));
    tree.insert("http".into(), single("addr", "127.0.0.1:5000".into()));
    let loaded = build(tree, env)?;
    let (driver, params) = loaded.config.storage_driver();
    if driver == "filesystem" && !params.iter().any(|(k, _)| k == "rootdirectory") {
        return Err(ConfigError::Invalid {
            key: "storage.filesystem.rootdirectory".into(),
            message: "no configuration file and no data directory (neither XDG_DATA_HOME nor HOME is set); \
                      give a configuration file or set REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY"
                .into(),
        });
    }
    Ok(loaded)
}

fn build(mut tree: Mapping, env: &[(String, String)]) -> Result<Loaded, ConfigError> {
    let mut warnings = Vec::new();
    // `storage: inmemory` is distribution's short form; expanded, the
    // environment can add parameters to it.
    if let Some(Value::String(name)) = tree.get("storage") {
        let expanded = single(&name.clone(), Value::Mapping(Mapping::new()));
        tree.insert("storage".into(), expanded);
    }
    let file = tree.clone();
    let mut origins = env::apply(&mut tree, env, &mut warnings)?;

    for (old, new) in RENAMED {
        let Some(value) = remove(&mut tree, old) else { continue };
        let (old, new_dotted) = (old.join("."), new.join("."));
        if get(&tree, new).is_some() {
            warnings.push(format!(
                "`{old}` is deprecated and `{new_dotted}` is set too; `{old}` is ignored"
            ));
        } else {
            warnings.push(format!("`{old}` is deprecated; write `{new_dotted}`"));
            insert(&mut tree, new, value);
        }
    }

    check_version(&mut tree, &|path| origin_note(&origins, path))?;
    check_storage(&tree, &origins)?;
    check_refused(&tree, &origins)?;

    let mut config: Config = loop {
        let mut typed = tree.clone();
        prune_nulls(&mut typed, Level::Top);
        let err = match serde_path_to_error::deserialize(Value::Mapping(typed)) {
            Ok(config) => break config,
            Err(err) => err,
        };
        let (key, path) = error_path(err.path());
        let misplaced = drop_misplaced_section(&mut tree, &file, &mut origins, &path);
        if misplaced.is_empty() {
            return Err(ConfigError::Invalid {
                message: format!("{}{}", err.inner(), origin_note(&origins, &path)),
                key,
            });
        }
        for var in misplaced {
            warnings.push(format!(
                "environment variable `{var}`: `{key}` is a value, not a section; ignored"
            ));
        }
    };
    normalise(&mut config);
    check_values(&config, &|path| origin_note(&origins, path))?;

    // Every key the types know, with its value: what was written beyond
    // it was not understood.
    let known = serde_norway::to_value(&config).map_err(|e| ConfigError::Invalid {
        key: "(all)".into(),
        message: e.to_string(),
    })?;
    let mut unknown = Vec::new();
    if let Value::Mapping(known) = &known {
        unknown_keys(&tree, known, &mut Vec::new(), &mut unknown);
        for path in unknown {
            warnings.extend(describe_unknown(&path, &file, known, &origins));
        }
    }
    Ok(Loaded { config, warnings })
}

/// The first of the [`REFUSED`] settings that is set (not null, not empty),
/// as an error naming it and where it came from.
fn check_refused(tree: &Mapping, origins: &[Origin]) -> Result<(), ConfigError> {
    for (dotted, why) in REFUSED {
        let path: Vec<String> = dotted.split('.').map(str::to_owned).collect();
        let set = match get(tree, &path) {
            None | Some(Value::Null) => false,
            Some(Value::Mapping(map)) => !map.is_empty(),
            Some(_) => true,
        };
        if set {
            return Err(ConfigError::Invalid {
                key: (*dotted).into(),
                message: format!("{why}{}", origin_note(origins, &path)),
            });
        }
    }
    Ok(())
}

fn single(key: &str, value: Value) -> Value {
    let mut map = Mapping::new();
    map.insert(key.into(), value);
    Value::Mapping(map)
}

fn check_version(tree: &mut Mapping, from: &dyn Fn(&[String]) -> String) -> Result<(), ConfigError> {
    let invalid = |message: String| ConfigError::Invalid {
        key: "version".into(),
        message,
    };
    let text = match tree.shift_remove("version") {
        None | Some(Value::Null) => {
            return Err(invalid("missing; a configuration starts with `version: 0.1`".into()));
        }
        Some(Value::String(text)) => text,
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => format!("{other:?}"),
    };
    if text != "0.1" {
        return Err(invalid(format!(
            "unsupported version `{text}`; Berth reads distribution's version 0.1{}",
            from(&["version".into()])
        )));
    }
    Ok(())
}

/// Exactly one driver, said before typing so the message can name where
/// each came from.
fn check_storage(tree: &Mapping, origins: &[Origin]) -> Result<(), ConfigError> {
    let invalid = |message: String| ConfigError::Invalid {
        key: "storage".into(),
        message,
    };
    let storage = match tree.get("storage") {
        None | Some(Value::Null) => return Err(invalid(format!("missing; name a storage driver, {EXAMPLE_DRIVER}"))),
        Some(Value::Mapping(storage)) => storage,
        // Not a map: the typed step names the type.
        Some(_) => return Ok(()),
    };
    let drivers: Vec<&str> = storage
        .keys()
        .filter_map(Value::as_str)
        .filter(|k| !NON_DRIVER_KEYS.contains(k))
        .collect();
    let from_env = |driver: &str| {
        origins
            .iter()
            .find(|o| o.path.len() >= 2 && o.path[0] == "storage" && o.path[1] == driver)
            .map(|o| o.var.as_str())
    };
    match drivers.as_slice() {
        [] => Err(invalid(format!(
            "no storage driver is named{}; {EXAMPLE_DRIVER}",
            origin_note(origins, &["storage".into()])
        ))),
        [_] => Ok(()),
        _ => {
            let named: Vec<String> = drivers
                .iter()
                .map(|d| match from_env(d) {
                    Some(var) => format!("`{d}` (from {var})"),
                    None => format!("`{d}`"),
                })
                .collect();
            let fix = match drivers.iter().find_map(|d| from_env(d).map(|_| d)) {
                Some(d) => format!("set REGISTRY_STORAGE={d} to replace the file's driver"),
                None => "keep one".into(),
            };
            Err(invalid(format!(
                "exactly one storage driver may be configured, found {}; {fix}",
                named.join(" and ")
            )))
        }
    }
}

/// A variable that reaches below a value (`REGISTRY_LOG_LEVEL_X` where
/// `log.level` was unset) makes a section where the types want a value. Go
/// skips such a variable; so does Berth, with a warning. Returns the
/// variables dropped: none when the error at `path` is a real one.
fn drop_misplaced_section(
    tree: &mut Mapping,
    file: &Mapping,
    origins: &mut Vec<Origin>,
    path: &[String],
) -> Vec<String> {
    let made_by_env =
        matches!(get(tree, path), Some(Value::Mapping(_))) && !matches!(get(file, path), Some(Value::Mapping(_)));
    if path.is_empty() || !made_by_env {
        return Vec::new();
    }
    let vars: Vec<String> = origins
        .iter()
        .filter(|o| o.path.len() > path.len() && o.path.starts_with(path))
        .map(|o| o.var.clone())
        .collect();
    if !vars.is_empty() {
        origins.retain(|o| !vars.contains(&o.var));
        remove(tree, path);
    }
    vars
}

#[derive(Clone, Copy, PartialEq)]
enum Level {
    Top,
    Storage,
    Other,
}

/// A key without a value is an absent key, as in distribution, where it
/// leaves Go's zero value: removed so that defaults apply. Under `storage`
/// it is kept for a driver without parameters (`inmemory:`).
fn prune_nulls(map: &mut Mapping, level: Level) {
    map.retain(|k, v| !v.is_null() || (level == Level::Storage && is_driver_key(k)));
    for (k, v) in map.iter_mut() {
        if let Value::Mapping(inner) = v {
            let next = if level == Level::Top && k.as_str() == Some("storage") {
                Level::Storage
            } else {
                Level::Other
            };
            prune_nulls(inner, next);
        }
    }
}

fn is_driver_key(key: &Value) -> bool {
    key.as_str().is_some_and(|k| !NON_DRIVER_KEYS.contains(&k))
}

/// Distribution's zero values that mean a default.
fn normalise(config: &mut Config) {
    let health = &mut config.health.storagedriver;
    if health.interval.is_zero() {
        health.interval = std::time::Duration::from_secs(10);
    }
    health.threshold = health.threshold.max(1);
}

fn check_values(config: &Config, from: &dyn Fn(&[String]) -> String) -> Result<(), ConfigError> {
    let invalid = |key: &str, message: String| {
        let path: Vec<String> = key.split('.').map(str::to_owned).collect();
        ConfigError::Invalid {
            message: format!("{message}{}", from(&path)),
            key: key.into(),
        }
    };
    if config.http.net == Net::Tcp {
        ListenAddr::parse(&config.http.addr).map_err(|m| invalid("http.addr", m))?;
    }
    if let Some(addr) = &config.http.debug.addr {
        ListenAddr::parse(addr).map_err(|m| invalid("http.debug.addr", m))?;
    }
    if let Some(prefix) = config
        .http
        .prefix
        .as_deref()
        .filter(|p| !p.trim_matches('/').is_empty())
    {
        let why = format!(
            "Berth serves the API at /v2/ only, so clients would not find it under `{prefix}`; \
             remove http.prefix, or strip the prefix in the proxy in front"
        );
        return Err(invalid("http.prefix", why));
    }
    let indexes = &config.validation.manifests.indexes;
    if indexes.platforms == IndexPlatforms::List {
        let unnamed = indexes
            .platformlist
            .iter()
            .any(|p| p.architecture.is_empty() || p.os.is_empty());
        if indexes.platformlist.is_empty() || unnamed {
            let why = "`platforms: list` needs a platformlist of {architecture, os}, each named".to_string();
            return Err(invalid("validation.manifests.indexes.platformlist", why));
        }
    }
    if let Some(token) = &config.auth.token {
        if config.auth.htpasswd.is_some() {
            let why = "a registry takes one auth scheme: keep auth.htpasswd or auth.token".to_string();
            return Err(invalid("auth", why));
        }
        for (key, value, what) in [
            (
                "realm",
                &token.realm,
                "the token server's URL (`https://auth.example.com/token`)",
            ),
            (
                "service",
                &token.service,
                "this registry's name, which tokens carry in `aud`",
            ),
            (
                "issuer",
                &token.issuer,
                "the token server's name, which tokens carry in `iss`",
            ),
        ] {
            if value.trim().is_empty() && !(key == "realm" && token.autoredirect) {
                return Err(invalid(&format!("auth.token.{key}"), format!("set it to {what}")));
            }
        }
        if token.rootcertbundle.is_none() && token.jwks.is_none() {
            let why = "tokens could not be verified: set rootcertbundle (PEM certificates) or jwks (a JWKS file)";
            return Err(invalid("auth.token.rootcertbundle", why.into()));
        }
    }
    if let Some(access) = &config.auth.access {
        if config.auth.htpasswd.is_none() {
            let why = match config.auth.token {
                Some(_) => "with auth.token the token's `access` claim decides: remove auth.access",
                None => "the rules name htpasswd users: set auth.htpasswd too",
            };
            return Err(invalid("auth.access", why.to_string()));
        }
        access.check().map_err(|(key, why)| invalid(&key, why))?;
    }
    let gc = &config.storage.gc;
    if gc.enabled && gc.interval.is_zero() {
        return Err(invalid("storage.gc.interval", "must be longer than 0".into()));
    }
    config
        .storage
        .retention
        .check()
        .map_err(|(key, why)| invalid(&key, why))?;
    for (kind, limit) in [("read", &config.requests.read), ("write", &config.requests.write)] {
        if limit.maxrunning == 0 && (limit.maxinqueue > 0 || !limit.maxwaitinqueue.is_zero()) {
            let key = format!("requests.{kind}.maxrunning");
            let why = format!("requests.{kind}: a queue needs a running limit; set maxrunning (at least 1)");
            return Err(invalid(&key, why));
        }
    }
    let prometheus = &config.http.debug.prometheus;
    if prometheus.enabled && config.http.debug.addr.is_none() {
        let why = "the metrics are served on the debug server: set http.debug.addr (e.g. `:5001`)";
        return Err(invalid("http.debug.prometheus.enabled", why.into()));
    }
    if !prometheus.path.starts_with('/') || prometheus.path.len() < 2 {
        let why = format!("`{}` is not a path like `/metrics`", prometheus.path);
        return Err(invalid("http.debug.prometheus.path", why));
    }
    for (key, value) in [
        ("http.readheadertimeout", config.http.readheadertimeout),
        ("http.idletimeout", config.http.idletimeout),
        ("http.requesttimeout", config.http.requesttimeout),
    ] {
        if value.is_zero() {
            return Err(invalid(key, "must be longer than 0".into()));
        }
    }
    if config.http.maxconnections == Some(0) {
        return Err(invalid("http.maxconnections", "must be at least 1".into()));
    }
    if config.plugins.calltimeout.is_zero() {
        return Err(invalid("plugins.calltimeout", "must be longer than 0".into()));
    }
    let watch = config.plugins.watchinterval;
    if !watch.is_zero() && watch < MIN_PLUGIN_WATCH_INTERVAL {
        return Err(invalid(
            "plugins.watchinterval",
            format!("must be 0s (off) or at least {MIN_PLUGIN_WATCH_INTERVAL:?}: each look reads the directory"),
        ));
    }
    if config.plugins.memorylimitmib == 0 {
        return Err(invalid("plugins.memorylimitmib", "must be at least 1".into()));
    }
    if let Some(total) = config.plugins.totalmemorymib {
        if total < config.plugins.memorylimitmib {
            return Err(invalid(
                "plugins.totalmemorymib",
                format!(
                    "{total} MiB cannot hold one plugin instance of plugins.memorylimitmib ({} MiB); \
                     raise it or lower the per-instance limit",
                    config.plugins.memorylimitmib
                ),
            ));
        }
    }
    for (i, entry) in config.plugins.oci.iter().enumerate() {
        let key = format!("plugins.oci[{i}]");
        crate::plugin::check_plugin_name(&entry.name).map_err(|why| invalid(&format!("{key}.name"), why))?;
        if config.plugins.oci[..i].iter().any(|earlier| earlier.name == entry.name) {
            return Err(invalid(
                &format!("{key}.name"),
                format!(
                    "`{}` is named by an earlier entry too: one reference per plugin",
                    entry.name
                ),
            ));
        }
        let reference =
            crate::oci::Reference::parse(&entry.reference).map_err(|why| invalid(&format!("{key}.reference"), why))?;
        if reference.digest.is_none() {
            return Err(invalid(
                &format!("{key}.reference"),
                format!(
                    "`{}` has no digest: pin it as `{}@sha256:...` (`berth plugin push` prints the digest), \
                     so what runs is what was reviewed",
                    entry.reference, entry.reference
                ),
            ));
        }
    }
    let max_memory = crate::plugin::MAX_MEMORY_LIMIT_MIB;
    if config.plugins.memorylimitmib > max_memory {
        return Err(invalid(
            "plugins.memorylimitmib",
            format!("must be at most {max_memory}: a plugin is 32-bit WebAssembly and cannot address more"),
        ));
    }
    let cache = &config.storage.cache;
    match cache.blobdescriptor.as_deref() {
        None | Some("inmemory" | "none") => {}
        Some(other) => {
            return Err(invalid(
                "storage.cache.blobdescriptor",
                format!(
                    "`{other}` is not supported: write `inmemory` (the default) or `none`; \
                     the cache holds only what never changes for a digest, so replicas need no shared one"
                ),
            ))
        }
    }
    let most = crate::store::MAX_CACHE_ENTRIES;
    match cache.blobdescriptorsize {
        Some(0) => {
            return Err(invalid(
                "storage.cache.blobdescriptorsize",
                "must be at least 1; write `blobdescriptor: none` for no cache".into(),
            ))
        }
        Some(entries) if entries > most => {
            return Err(invalid(
                "storage.cache.blobdescriptorsize",
                format!("must be at most {most}: the cache lives in the registry's memory"),
            ))
        }
        _ => {}
    }
    Ok(())
}

/// Collects the paths in `given` that `known` does not have, not looking
/// inside the maps whose keys are free (headers, log fields, the driver's
/// parameters).
fn unknown_keys(given: &Mapping, known: &Mapping, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    for (key, value) in given {
        path.push(key.as_str().map_or_else(|| scalar_text(key), str::to_owned));
        if !is_free(path) {
            match key.as_str().and_then(|k| known.get(k)) {
                None => out.push(path.clone()),
                Some(Value::Mapping(known)) => {
                    if let Value::Mapping(given) = value {
                        unknown_keys(given, known, path, out);
                    }
                }
                Some(_) => {}
            }
        }
        path.pop();
    }
}

fn is_free(path: &[String]) -> bool {
    match path {
        [a, b] if a == "http" && b == "headers" => true,
        [a, b] if a == "log" && b == "fields" => true,
        [a, b] if a == "storage" => !NON_DRIVER_KEYS.contains(&b.as_str()),
        _ => false,
    }
}

fn describe_unknown(path: &[String], file: &Mapping, known: &Mapping, origins: &[Origin]) -> Vec<String> {
    let dotted = path.join(".");
    let unsupported = UNSUPPORTED.contains(&dotted.as_str());
    let (parent, last) = path.split_at(path.len() - 1);
    let siblings = match parent {
        [] => Some(known),
        _ => get(known, parent).and_then(Value::as_mapping),
    };
    let suggestion = match siblings {
        Some(siblings) if !unsupported => closest(&last[0], siblings.keys().filter_map(Value::as_str)),
        _ => None,
    };
    let mut out = Vec::new();
    let vars: Vec<&Origin> = origins.iter().filter(|o| o.path.starts_with(path)).collect();
    for origin in &vars {
        out.push(if unsupported {
            format!(
                "environment variable `{}` sets `{dotted}`, a distribution setting Berth does not support; ignored",
                origin.var
            )
        } else {
            let hint = suggestion.map_or_else(String::new, |s| {
                let mut segments: Vec<String> = origin.var.split('_').map(str::to_owned).collect();
                match segments.get_mut(path.len()) {
                    Some(segment) => {
                        *segment = s.to_uppercase();
                        format!(" (did you mean `{}`?)", segments.join("_"))
                    }
                    None => String::new(),
                }
            });
            format!("unknown environment variable `{}`{hint}; ignored", origin.var)
        });
    }
    if vars.is_empty() || get(file, path).is_some() {
        out.push(if unsupported {
            format!("`{dotted}` is a distribution setting Berth does not support; ignored")
        } else {
            let hint = suggestion.map_or_else(String::new, |s| {
                let mut near = parent.to_vec();
                near.push(s.to_owned());
                format!(" (did you mean `{}`?)", near.join("."))
            });
            format!("unknown configuration key `{dotted}`{hint}; ignored")
        });
    }
    out
}

/// The candidate nearest to `word` by edit distance, when near enough to be
/// a slip of the keyboard.
pub(crate) fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let word = word.to_lowercase();
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .map(|c| (edit_distance(&word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Edits (insert, delete, substitute, swap two neighbours) from `a` to `b`.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // d[i][j]: distance between the first i of a and the first j of b.
    let mut d = vec![vec![0; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

/// ` (from REGISTRY_...)` when a variable set `path`, something above it,
/// or something below it.
fn origin_note(origins: &[Origin], path: &[String]) -> String {
    origins
        .iter()
        .filter(|o| path.starts_with(&o.path) || o.path.starts_with(path))
        .max_by_key(|o| o.path.len())
        .map_or_else(String::new, |o| format!(" (from {})", o.var))
}

/// `http.tls.clientcas[1]`, and the map keys alone for finding origins.
fn error_path(path: &serde_path_to_error::Path) -> (String, Vec<String>) {
    use serde_path_to_error::Segment;
    let (mut dotted, mut keys) = (String::new(), Vec::new());
    for segment in path.iter() {
        match segment {
            Segment::Map { key } => {
                if !dotted.is_empty() {
                    dotted.push('.');
                }
                dotted.push_str(key);
                keys.push(key.clone());
            }
            Segment::Seq { index } => dotted.push_str(&format!("[{index}]")),
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    if dotted.is_empty() {
        dotted = "(top level)".into();
    }
    (dotted, keys)
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => format!("{other:?}"),
    }
}

fn get<'a, S: AsRef<str>>(map: &'a Mapping, path: &[S]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let value = map.get(first.as_ref())?;
    match (rest.is_empty(), value) {
        (true, value) => Some(value),
        (false, Value::Mapping(inner)) => get(inner, rest),
        _ => None,
    }
}

fn remove<S: AsRef<str>>(map: &mut Mapping, path: &[S]) -> Option<Value> {
    match path {
        [] => None,
        [last] => map.shift_remove(last.as_ref()),
        [first, rest @ ..] => match map.get_mut(first.as_ref())? {
            Value::Mapping(inner) => remove(inner, rest),
            _ => None,
        },
    }
}

/// Sets `path`, making sections on the way; a value in the way is left for
/// the typed step to report.
fn insert(map: &mut Mapping, path: &[&str], value: Value) {
    match path {
        [] => {}
        [last] => {
            map.insert((*last).into(), value);
        }
        [first, rest @ ..] => {
            let entry = map
                .entry((*first).into())
                .or_insert_with(|| Value::Mapping(Mapping::new()));
            if entry.is_null() {
                *entry = Value::Mapping(Mapping::new());
            }
            if let Value::Mapping(inner) = entry {
                insert(inner, rest, value);
            }
        }
    }
}
