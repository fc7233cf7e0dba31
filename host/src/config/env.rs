//! `REGISTRY_*` overrides, applied to the YAML tree before it is typed, so
//! that a value from the environment is checked exactly as one from the file.

use serde_norway::{Mapping, Value};

use super::de::NON_DRIVER_KEYS;
use super::ConfigError;

const PREFIX: &str = "REGISTRY_";

/// Which configuration path a variable set: errors and warnings about the
/// path name the variable.
#[derive(Debug, Clone)]
pub(super) struct Origin {
    pub path: Vec<String>,
    pub var: String,
}

/// Applies the `REGISTRY_*` variables of `env` to `tree`, in the order of
/// their names as distribution does (so `REGISTRY_STORAGE` comes before
/// `REGISTRY_STORAGE_S3_REGION`).
pub(super) fn apply(
    tree: &mut Mapping,
    env: &[(String, String)],
    warnings: &mut Vec<String>,
) -> Result<Vec<Origin>, ConfigError> {
    let mut vars: Vec<&(String, String)> = env.iter().filter(|(name, _)| name.starts_with(PREFIX)).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let mut origins = Vec::new();
    for (name, payload) in vars {
        let segments: Vec<&str> = name[PREFIX.len()..].split('_').collect();
        if segments.iter().any(|s| s.is_empty()) {
            warnings.push(format!(
                "environment variable `{name}` names no configuration key; ignored"
            ));
            continue;
        }
        let value: Value = serde_norway::from_str(payload).map_err(|e| ConfigError::Syntax {
            origin: format!("environment variable {name}"),
            message: e.to_string(),
        })?;
        let path = if segments.len() == 1 && segments[0].eq_ignore_ascii_case("storage") {
            select_driver(tree, value, name)?
        } else {
            match set(tree, &segments, value) {
                Ok(path) => path,
                Err(scalar) => {
                    warnings.push(format!(
                        "environment variable `{name}`: `{}` is a value, not a section; ignored",
                        scalar.join(".")
                    ));
                    continue;
                }
            }
        };
        origins.push(Origin {
            path,
            var: name.clone(),
        });
    }
    Ok(origins)
}

/// Sets the value at `segments`, creating sections on the way. An existing
/// key is matched ignoring case (a header `X-Content-Type-Options` from the
/// file is the one `..._X-CONTENT-TYPE-OPTIONS` sets); a new one is
/// lower-cased. Returns the path set, or the path of a value that stood
/// where a section was needed.
fn set(map: &mut Mapping, segments: &[&str], value: Value) -> Result<Vec<String>, Vec<String>> {
    let key = existing_key(map, segments[0]).unwrap_or_else(|| segments[0].to_lowercase());
    if segments.len() == 1 {
        map.insert(Value::String(key.clone()), value);
        return Ok(vec![key]);
    }
    let entry = map
        .entry(Value::String(key.clone()))
        .or_insert_with(|| Value::Mapping(Mapping::new()));
    if entry.is_null() {
        *entry = Value::Mapping(Mapping::new());
    }
    let prepend = |mut path: Vec<String>| {
        path.insert(0, key.clone());
        path
    };
    match entry {
        Value::Mapping(inner) => set(inner, &segments[1..], value).map(prepend).map_err(prepend),
        _ => Err(vec![key.clone()]),
    }
}

/// The key of `map` that `segment` names: the lower-cased segment itself
/// (how every structured key is spelt), else one equal ignoring case.
fn existing_key(map: &Mapping, segment: &str) -> Option<String> {
    let lower = segment.to_lowercase();
    if map.contains_key(lower.as_str()) {
        return Some(lower);
    }
    map.keys()
        .filter_map(Value::as_str)
        .find(|k| k.eq_ignore_ascii_case(segment))
        .map(str::to_owned)
}

/// `REGISTRY_STORAGE`: a name selects that driver, replacing the file's
/// driver and its parameters; a whole map replaces `storage`, as in
/// distribution.
fn select_driver(tree: &mut Mapping, value: Value, var: &str) -> Result<Vec<String>, ConfigError> {
    let storage = tree
        .entry(Value::String("storage".into()))
        .or_insert_with(|| Value::Mapping(Mapping::new()));
    let name = match value {
        Value::Mapping(_) | Value::Null => {
            *storage = value;
            return Ok(vec!["storage".into()]);
        }
        Value::String(name) => name,
        Value::Number(n) => n.to_string(),
        _ => {
            return Err(ConfigError::Invalid {
                key: "storage".into(),
                message: format!("{var} must name a storage driver, e.g. {var}=s3"),
            })
        }
    };
    if !storage.is_mapping() {
        *storage = Value::Mapping(Mapping::new());
    }
    if let Value::Mapping(storage) = storage {
        storage.retain(|k, _| k.as_str().is_some_and(|k| NON_DRIVER_KEYS.contains(&k)));
        storage.insert(Value::String(name.clone()), Value::Mapping(Mapping::new()));
    }
    Ok(vec!["storage".into(), name])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(yaml: &str) -> Mapping {
        serde_norway::from_str(yaml).unwrap()
    }

    fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
        vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn applied(yaml: &str, vars: &[(&str, &str)]) -> (Mapping, Vec<String>) {
        let mut t = tree(yaml);
        let mut warnings = Vec::new();
        apply(&mut t, &env(vars), &mut warnings).unwrap();
        (t, warnings)
    }

    #[test]
    fn values_are_yaml_and_new_keys_lower_case() {
        let (t, w) = applied(
            "http: {addr: ':1'}\n",
            &[
                ("REGISTRY_HTTP_ADDR", ":5000"),
                ("REGISTRY_STORAGE_DELETE_ENABLED", "true"),
                ("REGISTRY_HTTP_HEADERS_X-FRAME-OPTIONS", "[DENY]"),
                ("HOME", "/root"),
            ],
        );
        assert!(w.is_empty(), "{w:?}");
        let want =
            tree("http: {addr: ':5000', headers: {x-frame-options: [DENY]}}\nstorage: {delete: {enabled: true}}\n");
        assert_eq!(t, want);
    }

    #[test]
    fn an_existing_key_is_matched_ignoring_case() {
        let (t, _) = applied(
            "http: {headers: {X-Content-Type-Options: [sniff]}}\n",
            &[("REGISTRY_HTTP_HEADERS_X-CONTENT-TYPE-OPTIONS", "[nosniff]")],
        );
        assert_eq!(t, tree("http: {headers: {X-Content-Type-Options: [nosniff]}}\n"));
    }

    #[test]
    fn storage_name_replaces_the_driver_after_sorting() {
        // Given out of order: the driver must be selected before its parameters.
        let (t, _) = applied(
            "storage: {filesystem: {rootdirectory: /x}, delete: {enabled: true}}\n",
            &[("REGISTRY_STORAGE_S3_REGION", "eu-west-1"), ("REGISTRY_STORAGE", "s3")],
        );
        assert_eq!(t, tree("storage: {delete: {enabled: true}, s3: {region: eu-west-1}}\n"));
    }

    #[test]
    fn a_value_in_the_way_is_a_warning() {
        let (t, w) = applied(
            "log: {level: info}\n",
            &[("REGISTRY_LOG_LEVEL_X", "1"), ("REGISTRY_", "1")],
        );
        assert_eq!(t, tree("log: {level: info}\n"));
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w.iter()
                .any(|w| w.contains("`REGISTRY_LOG_LEVEL_X`") && w.contains("`log.level`")),
            "{w:?}"
        );
    }

    #[test]
    fn a_null_section_is_filled() {
        let (t, _) = applied("storage: {inmemory: }\n", &[("REGISTRY_STORAGE_INMEMORY_X", "1")]);
        assert_eq!(t, tree("storage: {inmemory: {x: 1}}\n"));
    }

    #[test]
    fn bad_yaml_in_a_variable_names_it() {
        let mut t = Mapping::new();
        let err = apply(&mut t, &env(&[("REGISTRY_HTTP_SECRET", "[oops")]), &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("REGISTRY_HTTP_SECRET"), "{err}");
    }
}
