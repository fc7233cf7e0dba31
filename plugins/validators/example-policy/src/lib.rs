//! An example drop-in validator (not bundled): a site policy that S3 bucket
//! names start with `acme-`. Build it, copy `example_policy.wasm` into the
//! plugin directory, and `berth serve` / `berth config validate` run it beside
//! the bundled `registry-rules`.

wit_bindgen::generate!({
    path: "../../../wit/validate",
    world: "berth:validate/config-validator@0.1.0",
});

use exports::berth::validate::validator::{Finding, Guest, Severity};

struct ExamplePolicy;

export!(ExamplePolicy);

impl Guest for ExamplePolicy {
    fn validate(config_json: String) -> Vec<Finding> {
        let Ok(input) = serde_json::from_str::<serde_json::Value>(&config_json) else {
            return Vec::new();
        };
        let Some(bucket) = input["config"]["storage"]["s3"]["bucket"].as_str() else {
            return Vec::new();
        };
        if bucket.starts_with("acme-") {
            return Vec::new();
        }
        vec![Finding {
            field_path: "storage.s3.bucket".into(),
            severity: Severity::Error,
            reason: "BucketNamePolicy".into(),
            message: format!(
                "bucket `{bucket}` breaks the ACME policy: bucket names must start with acme-, e.g. acme-{bucket}"
            ),
        }]
    }
}
