//! `registry-rules`: the bundled checks of a registry configuration, run by
//! `berth serve` before it starts the storage driver and by
//! `berth config validate`.
//!
//! The input is the host's JSON (see `host/src/validate/mod.rs`):
//! `{"config": {...}, "context": {"storage-drivers": [...], "environment": {...}}}`,
//! where `config` is distribution's `config.yml` as Berth read it (storage
//! driver parameters are strings) and `environment` maps the names of the
//! `REGISTRY_*` variables that are set to `"<set>"`.
//!
//! When the configuration was mapped from an operator `Config` resource,
//! `context.operator` carries the spec, the table from registry paths to
//! spec fields, the credentials secret's keys and the claim's access modes:
//! the registry rules then name the spec's fields in their messages, the
//! credentials rule names the secret, and the rules about the spec itself
//! (storage types, replicas, rollout, log level) run too. `config` is `null`
//! when the spec could not be mapped.

wit_bindgen::generate!({
    path: "../../../wit/validate",
    world: "berth:validate/config-validator@0.1.0",
});

use exports::berth::validate::validator::{Finding, Guest, Severity};
use serde_json::Value;

struct RegistryRules;

export!(RegistryRules);

/// The keys of `storage` that are not a driver.
const STORAGE_SECTIONS: &[&str] = &["delete", "redirect", "maintenance", "cache", "gc", "retention"];

const MIN_CHUNK: i128 = 5 << 20;
const MAX_CHUNK: i128 = 5 << 30;
const DEFAULT_CHUNK: i128 = 10 << 20;
/// Plugin memory an S3 writer needs beyond its `chunksize` part buffer: one
/// incoming write of up to 4 MiB and the driver's own. Measured: chunksize
/// 10, 16, 32 and 100 MiB uploads worked with 12 MiB more, not with 8.
const S3_WRITER_OVERHEAD: i128 = 16 << 20;
/// The most memory a plugin (a 32-bit WebAssembly component) can address.
const WASM32_MEMORY_MIB: i128 = 4096;

impl Guest for RegistryRules {
    fn validate(config_json: String) -> Vec<Finding> {
        let mut out = Findings::default();
        let input: Value = match serde_json::from_str(&config_json) {
            Ok(value) => value,
            Err(err) => {
                out.error(
                    "",
                    "InvalidInput",
                    format!("the host sent JSON this validator cannot read: {err}"),
                );
                return out.0;
            }
        };
        let config = &input["config"];
        let context = &input["context"];
        let names = Names::new(context);
        if config.is_object() {
            storage(config, context, &names, &mut out);
            log(config, &mut out);
            http(config, &mut out);
        }
        if let Some(operator) = context.get("operator").filter(|o| o.is_object()) {
            operator_rules(operator, &mut out);
        }
        out.0
    }
}

#[derive(Default)]
struct Findings(Vec<Finding>);

impl Findings {
    fn push(&mut self, severity: Severity, path: &str, reason: &str, message: String) {
        self.0.push(Finding {
            field_path: path.to_string(),
            severity,
            reason: reason.to_string(),
            message,
        });
    }
    fn error(&mut self, path: &str, reason: &str, message: String) {
        self.push(Severity::Error, path, reason, message);
    }
    fn warning(&mut self, path: &str, reason: &str, message: String) {
        self.push(Severity::Warning, path, reason, message);
    }
}

/// How messages name a field: the registry configuration's key, or, for a
/// configuration mapped from an operator Config, the spec's field
/// (`regionEndpoint` rather than `regionendpoint`).
struct Names<'a> {
    fields: Option<&'a serde_json::Map<String, Value>>,
}

impl<'a> Names<'a> {
    fn new(context: &'a Value) -> Self {
        Names {
            fields: context["operator"]["fields"].as_object(),
        }
    }

    fn operator(&self) -> bool {
        self.fields.is_some()
    }

    /// The last segment of the field `registry_path` came from.
    fn name(&self, registry_path: &str) -> String {
        let mapped = self
            .fields
            .and_then(|fields| fields.get(registry_path))
            .and_then(Value::as_str)
            .unwrap_or(registry_path);
        mapped.rsplit('.').next().unwrap_or(mapped).to_string()
    }
}

/// A parameter as text; numbers and booleans (from another producer of the
/// JSON) as they would be written. Empty means unset.
fn param(params: &Value, key: &str) -> Option<String> {
    match params.get(key)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn env_set(context: &Value, name: &str) -> bool {
    context["environment"].get(name).is_some_and(|v| !v.is_null())
}

fn storage(config: &Value, context: &Value, names: &Names, out: &mut Findings) {
    let Some(storage) = config["storage"].as_object() else {
        out.error(
            "storage",
            "MissingStorage",
            "`storage` must name one driver, e.g. `storage: {filesystem: {rootdirectory: /var/lib/registry}}`".into(),
        );
        return;
    };
    let known: Vec<&str> = context["storage-drivers"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for (name, params) in storage.iter().filter(|(k, _)| !STORAGE_SECTIONS.contains(&k.as_str())) {
        if !known.contains(&name.as_str()) {
            out.error(
                &format!("storage.{name}"),
                "UnknownStorageDriver",
                format!(
                    "no storage driver `{name}` is installed (known: {}); choose one of them, or drop `{name}.wasm` into the plugin directory (`plugins.directory`)",
                    if known.is_empty() { "none".to_string() } else { known.join(", ") }
                ),
            );
        }
        match name.as_str() {
            "s3" => s3(params, &config["plugins"]["memorylimitmib"], context, names, out),
            "filesystem" => filesystem(params, out),
            _ => {}
        }
    }
}

/// An S3 writer holds a whole part in plugin memory: a `chunksize` the
/// memory limit cannot hold fails every push, so it is refused up front.
fn chunk_fits_memory(chunk: i128, memory_limit_mib: &Value, names: &Names, out: &mut Findings) {
    let Some(limit_mib) = memory_limit_mib.as_u64() else {
        return;
    };
    let needed_mib = (chunk + S3_WRITER_OVERHEAD + (1 << 20) - 1) >> 20;
    if needed_mib > WASM32_MEMORY_MIB {
        out.error(
            "storage.s3.chunksize",
            "ChunkSizeOverMemoryLimit",
            format!(
                "`{name}` {} MiB needs about {needed_mib} MiB of plugin memory, more than a 32-bit WebAssembly plugin can have ({WASM32_MEMORY_MIB} MiB); set `{name}` to at most {} MiB",
                chunk >> 20,
                WASM32_MEMORY_MIB - (S3_WRITER_OVERHEAD >> 20),
                name = names.name("storage.s3.chunksize"),
            ),
        );
    } else if needed_mib > i128::from(limit_mib) {
        out.error(
            "storage.s3.chunksize",
            "ChunkSizeOverMemoryLimit",
            format!(
                "`{name}` {} MiB needs about {needed_mib} MiB of plugin memory, more than `plugins.memorylimitmib` {limit_mib}; lower `{name}` or raise `plugins.memorylimitmib` to at least {needed_mib}",
                chunk >> 20,
                name = names.name("storage.s3.chunksize"),
            ),
        );
    }
}

fn filesystem(params: &Value, out: &mut Findings) {
    match param(params, "rootdirectory") {
        None => out.error(
            "storage.filesystem.rootdirectory",
            "MissingRootDirectory",
            "set `rootdirectory` to the absolute directory the registry stores into, e.g. /var/lib/registry".into(),
        ),
        Some(dir) if !dir.starts_with('/') => out.error(
            "storage.filesystem.rootdirectory",
            "RelativeRootDirectory",
            format!("`rootdirectory` must be an absolute path, not `{dir}`; write it from `/`, e.g. /var/lib/registry"),
        ),
        Some(_) => {}
    }
}

fn s3(params: &Value, memory_limit_mib: &Value, context: &Value, names: &Names, out: &mut Findings) {
    let region = param(params, "region");
    let endpoint = param(params, "regionendpoint");
    if region.is_none() && endpoint.is_none() {
        out.error(
            "storage.s3.region",
            "MissingRegion",
            format!(
                "no region: set `{}` (e.g. us-east-1) or `{}` (the URL of an S3-compatible service, e.g. https://minio.example.com:9000)",
                names.name("storage.s3.region"),
                names.name("storage.s3.regionendpoint")
            ),
        );
    }
    if let Some(endpoint) = &endpoint {
        let scheme_ok = endpoint.split_once("://").is_some_and(|(scheme, rest)| {
            !scheme.is_empty()
                && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                && !rest.is_empty()
        });
        if !scheme_ok {
            out.error(
                "storage.s3.regionendpoint",
                "InvalidRegionEndpoint",
                format!(
                    "`{}` must be a URL with a scheme, e.g. https://{endpoint}, not `{endpoint}`",
                    names.name("storage.s3.regionendpoint")
                ),
            );
        }
    }

    match param(params, "bucket") {
        None => out.error(
            "storage.s3.bucket",
            "MissingBucket",
            format!(
                "set `{}` to the name of the S3 bucket the registry stores into",
                names.name("storage.s3.bucket")
            ),
        ),
        Some(bucket) => {
            if let Some(why) = bucket_problem(&bucket) {
                out.error(
                    "storage.s3.bucket",
                    "InvalidBucketName",
                    format!("bucket name `{bucket}` {why}; use 3 to 63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit"),
                );
            }
        }
    }

    if let Some(chunk) = param(params, "chunksize") {
        let name = names.name("storage.s3.chunksize");
        match chunk.parse::<i128>() {
            Err(_) => out.error(
                "storage.s3.chunksize",
                "InvalidChunkSize",
                format!("`{name}` must be a number of bytes, not `{chunk}`; e.g. 10485760 (10 MiB)"),
            ),
            // A Config gives MiB: say it in MiB.
            Ok(n) if names.operator() && !(MIN_CHUNK..=MAX_CHUNK).contains(&n) => out.error(
                "storage.s3.chunksize",
                "ChunkSizeOutOfRange",
                format!(
                    "`{name}` {} is outside what S3 multipart uploads take; set it between 5 and 5120 (MiB)",
                    n >> 20
                ),
            ),
            Ok(n) if !(MIN_CHUNK..=MAX_CHUNK).contains(&n) => out.error(
                "storage.s3.chunksize",
                "ChunkSizeOutOfRange",
                format!("`{name}` {n} is outside what S3 multipart uploads take; set it between 5242880 (5 MiB) and 5368709120 (5 GiB)"),
            ),
            Ok(n) => chunk_fits_memory(n, memory_limit_mib, names, out),
        }
    } else {
        chunk_fits_memory(DEFAULT_CHUNK, memory_limit_mib, names, out);
    }

    let encrypt = param(params, "encrypt")
        .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "yes" | "on" | "1"));
    if param(params, "keyid").is_some() && !encrypt {
        out.error(
            "storage.s3.keyid",
            "KeyIdWithoutEncryption",
            format!(
                "`{keyid}` (a KMS key) only applies with `{encrypt}: true`; set `{encrypt}: true` or remove `{keyid}`",
                keyid = names.name("storage.s3.keyid"),
                encrypt = names.name("storage.s3.encrypt")
            ),
        );
    }

    let access = param(params, "accesskey").is_some() || env_set(context, "REGISTRY_STORAGE_S3_ACCESSKEY");
    let secret = param(params, "secretkey").is_some() || env_set(context, "REGISTRY_STORAGE_S3_SECRETKEY");
    if let Some(secret_ref) = context["operator"].get("credentials-secret") {
        operator_credentials(access, secret, secret_ref, out);
        return;
    }
    match (access, secret) {
        (true, false) => out.error(
            "storage.s3.secretkey",
            "IncompleteCredentials",
            "`accesskey` is set but `secretkey` is not; set both (or REGISTRY_STORAGE_S3_SECRETKEY) or neither".into(),
        ),
        (false, true) => out.error(
            "storage.s3.accesskey",
            "IncompleteCredentials",
            "`secretkey` is set but `accesskey` is not; set both (or REGISTRY_STORAGE_S3_ACCESSKEY) or neither".into(),
        ),
        (false, false) => out.error(
            "storage.s3.accesskey",
            "MissingCredentials",
            "no S3 credentials: set `accesskey` and `secretkey`, or the environment variables REGISTRY_STORAGE_S3_ACCESSKEY and REGISTRY_STORAGE_S3_SECRETKEY".into(),
        ),
        (true, true) => {}
    }
}

/// The operator takes S3 credentials from a secret: name it, and the keys
/// it lacks.
fn operator_credentials(access: bool, secret: bool, secret_ref: &Value, out: &mut Findings) {
    let name = secret_ref["name"]
        .as_str()
        .unwrap_or("image-registry-private-configuration-user");
    let namespace = secret_ref["namespace"].as_str().unwrap_or("openshift-image-registry");
    const ACCESS: &str = "REGISTRY_STORAGE_S3_ACCESSKEY";
    const SECRET: &str = "REGISTRY_STORAGE_S3_SECRETKEY";
    let (path, reason, missing, fix) = match (access, secret) {
        (true, true) => return,
        (false, false) => (
            "storage.s3.accesskey",
            "MissingCredentials",
            format!("the keys {ACCESS} and {SECRET}"),
            format!("oc create secret generic {name} -n {namespace} --from-literal={ACCESS}=... --from-literal={SECRET}=..."),
        ),
        (true, false) => (
            "storage.s3.secretkey",
            "IncompleteCredentials",
            format!("the key {SECRET}"),
            format!("oc set data secret/{name} -n {namespace} {SECRET}=..."),
        ),
        (false, true) => (
            "storage.s3.accesskey",
            "IncompleteCredentials",
            format!("the key {ACCESS}"),
            format!("oc set data secret/{name} -n {namespace} {ACCESS}=..."),
        ),
    };
    out.error(
        path,
        reason,
        format!("no S3 credentials for the registry: add {missing} to the secret {name} in the namespace {namespace}, e.g. `{fix}`"),
    );
}

/// Why `name` is not an S3 bucket name, if it is not.
fn bucket_problem(name: &str) -> Option<&'static str> {
    let bytes = name.as_bytes();
    if bytes.len() < 3 {
        return Some("is shorter than 3 characters");
    }
    if bytes.len() > 63 {
        return Some("is longer than 63 characters");
    }
    if !bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'.' || *b == b'-')
    {
        return Some("has a character other than a lowercase letter, digit, dot or hyphen");
    }
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !alnum(&bytes[0]) || !alnum(&bytes[bytes.len() - 1]) {
        return Some("does not start and end with a letter or digit");
    }
    None
}

fn log(config: &Value, out: &mut Findings) {
    if let Some(level) = config["log"].get("level").and_then(Value::as_str) {
        if !matches!(level.to_ascii_lowercase().as_str(), "error" | "warn" | "info" | "debug") {
            out.error(
                "log.level",
                "InvalidLogLevel",
                format!("unknown log level `{level}`; set `log.level` to error, warn, info or debug"),
            );
        }
    }
}

fn http(config: &Value, out: &mut Findings) {
    let http = &config["http"];
    let tls = &http["tls"];
    let has = |key: &str| tls.get(key).and_then(Value::as_str).is_some_and(|s| !s.is_empty());
    match (has("certificate"), has("key")) {
        (true, false) => out.error(
            "http.tls.key",
            "IncompleteTls",
            "`http.tls.certificate` is set but `http.tls.key` is not; set both (the PEM certificate chain and its private key) or neither".into(),
        ),
        (false, true) => out.error(
            "http.tls.certificate",
            "IncompleteTls",
            "`http.tls.key` is set but `http.tls.certificate` is not; set both (the PEM certificate chain and its private key) or neither".into(),
        ),
        _ => {}
    }
    let tcp = http.get("net").and_then(Value::as_str).is_none_or(|n| n == "tcp");
    if let (true, Some(addr)) = (tcp, http.get("addr").and_then(Value::as_str)) {
        if let Some(why) = addr_problem(addr) {
            out.error(
                "http.addr",
                "InvalidListenAddress",
                format!("`http.addr` `{addr}` {why}; write host:port, :port or [v6]:port, e.g. :5000"),
            );
        }
    }
}

/// Why `addr` is not Go's `host:port`, if it is not.
fn addr_problem(addr: &str) -> Option<&'static str> {
    let port = if let Some(rest) = addr.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        if host
            .split('%')
            .next()
            .unwrap_or("")
            .parse::<std::net::Ipv6Addr>()
            .is_err()
        {
            return Some("has no IPv6 address between the brackets");
        }
        match after.strip_prefix(':') {
            Some(port) => port,
            None => return Some("has no `:port` after `]`"),
        }
    } else {
        let Some((host, port)) = addr.rsplit_once(':') else {
            return Some("has no port");
        };
        if host.contains(':') {
            return Some("has too many colons (an IPv6 address goes in brackets)");
        }
        if host.chars().any(|c| c.is_whitespace() || c == '/') {
            return Some("has a host that is not a name or address");
        }
        port
    };
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) || port.parse::<u16>().is_err() {
        return Some("has a port that is not a number from 0 to 65535");
    }
    None
}

/// The storage types of a Config spec, by field name.
const STORAGE_TYPES: &[&str] = &["emptyDir", "s3", "gcs", "swift", "pvc", "azure", "ibmcos", "oss"];

/// Rules about an operator Config's spec that the registry configuration
/// does not show: storage types, replicas, rollout, log levels, states.
fn operator_rules(operator: &Value, out: &mut Findings) {
    let spec = &operator["spec"];
    let storage = &spec["storage"];
    let types: Vec<&str> = STORAGE_TYPES
        .iter()
        .copied()
        .filter(|t| !storage[*t].is_null())
        .collect();
    match types.as_slice() {
        [] => out.error(
            "spec.storage",
            "MissingStorage",
            format!(
                "no storage type is set; set exactly one of {}, e.g. `storage: {{s3: {{bucket: my-registry, region: us-east-1}}}}`, or `storage: {{emptyDir: {{}}}}` for a throw-away single replica",
                STORAGE_TYPES.join(", ")
            ),
        ),
        [_] => {}
        several => out.error(
            "spec.storage",
            "MultipleStorageTypes",
            format!(
                "{} storage types are set ({}); keep exactly one",
                several.len(),
                several.join(", ")
            ),
        ),
    }

    one_of(
        spec,
        "managementState",
        &["Managed", "Unmanaged", "Removed", "Force"],
        "InvalidManagementState",
        out,
    );
    one_of(spec, "logLevel", LOG_LEVELS, "InvalidLogLevel", out);
    one_of(spec, "operatorLogLevel", LOG_LEVELS, "InvalidLogLevel", out);
    one_of(
        spec,
        "rolloutStrategy",
        &["RollingUpdate", "Recreate"],
        "InvalidRolloutStrategy",
        out,
    );
    one_of_at(
        &storage["managementState"],
        "spec.storage.managementState",
        &["Managed", "Unmanaged"],
        "InvalidManagementState",
        out,
    );
    if let Some(n) = spec["logging"].as_i64() {
        let level = match n {
            0 => "error",
            1 => "warn",
            2 | 3 => "info",
            _ => "debug",
        };
        out.warning(
            "spec.logging",
            "DeprecatedField",
            format!(
                "`logging` is deprecated (here: the registry logs at {level}); set `logLevel` to one of {} instead",
                LOG_LEVELS.join(", ")
            ),
        );
    }
    replicas(operator, spec, &types, out);
}

const LOG_LEVELS: &[&str] = &["Normal", "Debug", "Trace", "TraceAll"];

fn one_of(spec: &Value, field: &str, allowed: &[&str], reason: &str, out: &mut Findings) {
    one_of_at(&spec[field], &format!("spec.{field}"), allowed, reason, out);
}

/// An absent or empty value is the API's default; anything else must be
/// one of `allowed`, exactly (the API is case-sensitive).
fn one_of_at(value: &Value, path: &str, allowed: &[&str], reason: &str, out: &mut Findings) {
    let text = match value {
        Value::Null => return,
        Value::String(s) if s.is_empty() || allowed.contains(&s.as_str()) => return,
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let field = path.rsplit('.').next().unwrap_or(path);
    out.error(
        path,
        reason,
        format!("`{field}` is `{text}`; set it to one of {}", allowed.join(", ")),
    );
}

/// More than one replica needs storage they all share and one http secret.
fn replicas(operator: &Value, spec: &Value, types: &[&str], out: &mut Findings) {
    let Some(n) = spec["replicas"].as_i64() else { return };
    if n < 0 {
        out.error(
            "spec.replicas",
            "InvalidReplicas",
            format!("`replicas` is {n}; set it to 1 or more (0 stops the registry)"),
        );
        return;
    }
    if n <= 1 {
        return;
    }
    if types == ["emptyDir"] {
        out.error(
            "spec.replicas",
            "ReplicasNeedSharedStorage",
            format!("{n} replicas cannot share emptyDir storage: each pod would see its own images and lose them on restart; set `replicas: 1`, or use storage they share (s3, or a ReadWriteMany pvc)"),
        );
    }
    if types == ["pvc"] {
        let modes: Option<Vec<&str>> = operator["pvc-access-modes"]
            .as_array()
            .map(|m| m.iter().filter_map(Value::as_str).collect());
        if let Some(modes) = modes {
            if !modes.contains(&"ReadWriteMany") {
                let claim = spec["storage"]["pvc"]["claim"]
                    .as_str()
                    .unwrap_or("image-registry-storage");
                out.error(
                    "spec.replicas",
                    "ReplicasNeedSharedStorage",
                    format!(
                        "{n} replicas cannot share the claim {claim}, whose access modes are {}; set `replicas: 1`, or use a ReadWriteMany claim or s3",
                        if modes.is_empty() { "unknown".to_string() } else { modes.join(", ") }
                    ),
                );
            }
        }
    }
    let secret = spec["httpSecret"].as_str().is_some_and(|s| !s.is_empty());
    if !secret {
        out.error(
            "spec.httpSecret",
            "MissingHttpSecret",
            format!("{n} replicas need one shared `httpSecret` (it signs upload state, so an upload can continue on another replica); set it to a long random string, e.g. the output of `openssl rand -hex 64`"),
        );
    }
}
