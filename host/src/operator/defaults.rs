//! Pure: OpenShift's defaults. The Config the operator creates when there
//! is none, and the spec fields it fills in on every Config (written back
//! to the spec, as OpenShift's operator does, so every replica and every
//! later reconcile sees the same values).

use serde_json::{json, Value};

use super::config::{Config, API_VERSION, KIND};
use super::facts::Facts;

/// S3 bucket names are at most 63 characters.
const MAX_BUCKET_NAME: usize = 63;

/// The Config to create when none named `name` exists: Managed, one
/// replica, S3 in the cluster's region with a generated bucket where the
/// Infrastructure names an AWS region, else emptyDir (whose StorageExists
/// condition says that images do not survive a pod).
pub fn initial_config(name: &str, facts: &Facts, suffix: &str) -> Value {
    let storage = match facts.infrastructure.as_ref().and_then(|i| i.aws_region.as_deref()) {
        Some(region) => json!({"s3": {"region": region, "bucket": bucket_name(facts, region, suffix)}}),
        None => json!({"emptyDir": {}}),
    };
    json!({
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name},
        "spec": {
            "managementState": "Managed",
            "replicas": 1,
            "logLevel": "Normal",
            "rolloutStrategy": "RollingUpdate",
            "storage": storage,
        },
    })
}

/// Random values for the fields the operator fills in.
pub struct Fresh {
    /// 128 hex digits: `httpSecret`.
    pub http_secret: String,
    /// 12 hex digits: the end of a generated bucket name.
    pub bucket_suffix: String,
}

/// A merge patch setting the spec fields the operator fills in, or `None`
/// when all are set: `httpSecret` (so replicas share upload state), and an
/// S3 bucket name when S3 has none.
pub fn missing_spec_fields(config: &Config, facts: &Facts, fresh: &Fresh) -> Option<Value> {
    let spec = &config.spec;
    let mut patch = json!({});
    if spec.http_secret.as_deref().is_none_or(str::is_empty) {
        patch["httpSecret"] = fresh.http_secret.as_str().into();
    }
    if let Some(s3) = &spec.storage.s3 {
        if s3.bucket.as_deref().is_none_or(str::is_empty) {
            let region = s3.region.as_deref().unwrap_or("us-east-1");
            patch["storage"] = json!({"s3": {"bucket": bucket_name(facts, region, &fresh.bucket_suffix)}});
        }
    }
    (patch != json!({})).then(|| json!({"spec": patch}))
}

/// `<infrastructure>-image-registry-<region>-<suffix>`, lower case, at most
/// 63 characters (the prefix is cut, never the suffix).
fn bucket_name(facts: &Facts, region: &str, suffix: &str) -> String {
    let infra = facts.infrastructure.as_ref().map_or("berth", |i| i.name.as_str());
    let tail = format!("-image-registry-{region}-{suffix}").to_lowercase();
    let room = MAX_BUCKET_NAME.saturating_sub(tail.len());
    let head: String = infra
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(room)
        .collect();
    format!("{}{tail}", head.trim_end_matches('-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::facts::Infrastructure;

    fn aws(name: &str, region: &str) -> Facts {
        Facts {
            infrastructure: Some(Infrastructure {
                name: name.into(),
                aws_region: Some(region.into()),
            }),
            ..Facts::default()
        }
    }

    #[test]
    fn bootstrap_is_s3_on_aws_and_empty_dir_elsewhere() {
        let s3 = initial_config("cluster", &aws("mycluster-x7k2p", "eu-west-1"), "abc123");
        assert_eq!(s3["spec"]["storage"]["s3"]["region"], "eu-west-1");
        assert_eq!(
            s3["spec"]["storage"]["s3"]["bucket"],
            "mycluster-x7k2p-image-registry-eu-west-1-abc123"
        );
        assert_eq!(s3["spec"]["managementState"], "Managed");
        assert_eq!(s3["spec"]["replicas"], 1);
        let other = initial_config("instance", &Facts::default(), "abc123");
        assert_eq!(other["spec"]["storage"], json!({"emptyDir": {}}));
        assert_eq!(other["metadata"]["name"], "instance");
    }

    #[test]
    fn bucket_names_fit_s3() {
        let name = bucket_name(
            &aws(&"Long_Name".repeat(10), "ap-southeast-1"),
            "ap-southeast-1",
            "0123456789ab",
        );
        assert!(name.len() <= MAX_BUCKET_NAME, "{name}");
        assert!(name.ends_with("-image-registry-ap-southeast-1-0123456789ab"), "{name}");
        assert!(name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
    }

    #[test]
    fn the_http_secret_and_a_bucket_are_filled_in_once() {
        let fresh = Fresh {
            http_secret: "f".repeat(128),
            bucket_suffix: "f".repeat(12),
        };
        let config: Config =
            serde_json::from_value(json!({"spec": {"storage": {"s3": {"region": "us-east-2"}}}})).unwrap();
        let patch = missing_spec_fields(&config, &Facts::default(), &fresh).unwrap();
        assert_eq!(patch["spec"]["httpSecret"].as_str().unwrap().len(), 128);
        assert_eq!(
            patch["spec"]["storage"]["s3"]["bucket"],
            "berth-image-registry-us-east-2-ffffffffffff"
        );
        let filled: Config = serde_json::from_value(json!({"spec": {
            "httpSecret": "s", "storage": {"s3": {"region": "us-east-2", "bucket": "b"}}
        }}))
        .unwrap();
        assert_eq!(missing_spec_fields(&filled, &Facts::default(), &fresh), None);
    }
}
