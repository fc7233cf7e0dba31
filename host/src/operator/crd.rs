//! The CustomResourceDefinition of `configs.imageregistry.operator.openshift.io`,
//! generated from the Rust types of [`super::config`]: their JSON schema
//! (schemars, OpenAPI 3 flavour, inlined) made structural, as the API server
//! requires: no `$ref`, no defaults it would have to validate, and every
//! free-form value (`resources`, `affinity`, `tolerations`, ...) marked
//! `x-kubernetes-preserve-unknown-fields`.

use schemars::generate::SchemaSettings;
use schemars::JsonSchema;
use serde_json::{json, Map, Value};

use super::config::{ImageRegistrySpec, ImageRegistryStatus};

/// The API group of the Config resource.
pub const GROUP: &str = "imageregistry.operator.openshift.io";
/// Its plural, as in `kubectl get configs`.
pub const PLURAL: &str = "configs";

/// The CRD as a JSON value (print it as YAML with `berth operator crd`).
pub fn custom_resource_definition() -> Value {
    let schema = json!({
        "type": "object",
        "description": "The image registry operator's configuration: a cluster-scoped singleton named `cluster`.",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": schema_of::<ImageRegistrySpec>(),
            "status": schema_of::<ImageRegistryStatus>(),
        },
    });
    let condition = |type_: &str| format!(r#".status.conditions[?(@.type=="{type_}")].status"#);
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{PLURAL}.{GROUP}")},
        "spec": {
            "group": GROUP,
            "scope": "Cluster",
            "names": {"kind": "Config", "listKind": "ConfigList", "plural": PLURAL, "singular": "config"},
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": schema},
                "additionalPrinterColumns": [
                    {"name": "Management", "type": "string", "jsonPath": ".spec.managementState"},
                    {"name": "Storage", "type": "string", "jsonPath": ".status.storage",
                     "description": "The storage the registry runs on, as applied"},
                    {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
                    {"name": "Available", "type": "string", "jsonPath": condition("Available")},
                    {"name": "Degraded", "type": "string", "jsonPath": condition("Degraded")},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
            }],
        },
    })
}

/// The structural schema of `T`.
fn schema_of<T: JsonSchema>() -> Value {
    let mut settings = SchemaSettings::openapi3();
    settings.inline_subschemas = true;
    let schema = settings.into_generator().into_root_schema_for::<T>();
    let mut value = schema.to_value();
    structural(&mut value);
    value
}

/// Rewrites a schema node in place (and its children) into what a CRD
/// accepts.
fn structural(node: &mut Value) {
    match node {
        // `true`, or `{}`: anything goes, which a CRD spells this way.
        Value::Bool(_) => *node = free_form(),
        Value::Object(map) => {
            for key in ["$schema", "title", "default", "definitions", "$defs", "examples"] {
                map.remove(key);
            }
            if map.is_empty() || map.keys().all(|k| k == "description" || k == "nullable") {
                map.insert("x-kubernetes-preserve-unknown-fields".into(), Value::Bool(true));
                return;
            }
            if let Some(Value::Object(properties)) = map.get_mut("properties") {
                properties.values_mut().for_each(structural);
            }
            if let Some(items) = map.get_mut("items") {
                structural(items);
            }
            if let Some(additional) = map.get_mut("additionalProperties") {
                if additional.is_boolean() {
                    map.remove("additionalProperties");
                } else {
                    structural(additional);
                }
            }
        }
        _ => {}
    }
}

fn free_form() -> Value {
    Value::Object(Map::from_iter([(
        "x-kubernetes-preserve-unknown-fields".to_string(),
        Value::Bool(true),
    )]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every node of a structural schema has a type, or says it preserves
    /// unknown fields; none refers elsewhere or defaults.
    fn assert_structural(node: &Value, at: &str) {
        let map = node
            .as_object()
            .unwrap_or_else(|| panic!("{at}: not an object: {node}"));
        assert!(
            map.contains_key("type") || map.contains_key("x-kubernetes-preserve-unknown-fields"),
            "{at}: no type: {node}"
        );
        for key in ["$ref", "default", "anyOf", "oneOf", "allOf"] {
            assert!(!map.contains_key(key), "{at}: has {key}");
        }
        if let Some(properties) = map.get("properties").and_then(Value::as_object) {
            for (name, child) in properties {
                assert_structural(child, &format!("{at}.{name}"));
            }
        }
        if let Some(items) = map.get("items") {
            assert_structural(items, &format!("{at}[]"));
        }
    }

    #[test]
    fn the_schema_is_structural_and_has_the_spec_fields() {
        let crd = custom_resource_definition();
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        assert_structural(schema, "");
        let spec = &schema["properties"]["spec"]["properties"];
        for field in [
            "managementState",
            "replicas",
            "storage",
            "nodeSelector",
            "tolerations",
            "routes",
        ] {
            assert!(spec.get(field).is_some(), "spec.{field}");
        }
        assert_eq!(spec["replicas"]["type"], "integer");
        assert_eq!(
            spec["storage"]["properties"]["s3"]["properties"]["chunkSizeMiB"]["type"],
            "integer"
        );
        assert_eq!(
            spec["resources"]["x-kubernetes-preserve-unknown-fields"], true,
            "a free-form field keeps what is written"
        );
        assert_eq!(spec["nodeSelector"]["additionalProperties"]["type"], "string");
        let status = &schema["properties"]["status"]["properties"];
        assert_eq!(status["conditions"]["items"]["properties"]["type"]["type"], "string");
        assert_eq!(crd["spec"]["versions"][0]["subresources"]["status"], json!({}));
    }
}
