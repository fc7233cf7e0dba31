//! `{{name}}`: a Berth configuration validator. `berth serve` and
//! `berth config validate` run it, beside the bundled `registry-rules`, on
//! every configuration they load; an `Error` finding stops `berth serve`
//! before it binds, a `Warning` is logged.
//!
//! The example policy: filesystem storage must live below /var/lib/registry.
//! Replace it with your own rules (see "Your rules go here" below).
//!
//! What `validate` receives is JSON: `config` is the registry configuration
//! in distribution's shape (`config.storage.filesystem.rootdirectory`,
//! `config.http.addr`, `config.auth`, ...; driver parameters are strings,
//! absent optional values `null`), and `context` holds `storage-drivers` (the
//! installed drivers) and `environment` (the names of the REGISTRY_*
//! variables that are set, never their values). Validators are pure: no
//! filesystem, no network, no environment of their own.

wit_bindgen::generate!({
    path: "wit",
    world: "berth:validate/config-validator@0.1.0",
});

use exports::berth::validate::validator::{Finding, Guest, Severity};
use serde_json::Value;

/// Where this site keeps registry storage.
const APPROVED_ROOT: &str = "/var/lib/registry";

struct Validator;

export!(Validator);

impl Guest for Validator {
    fn validate(config_json: String) -> Vec<Finding> {
        let Ok(input) = serde_json::from_str::<Value>(&config_json) else {
            return Vec::new();
        };
        let config = &input["config"];
        let mut findings = Vec::new();

        // Your rules go here: read `config`, push one finding per problem.
        // `field-path` is the dotted configuration key, `reason` a CamelCase
        // word, `message` a sentence that names the fix.
        if let Some(root) = config["storage"]["filesystem"]["rootdirectory"].as_str() {
            let approved = root == APPROVED_ROOT || root.starts_with(&format!("{APPROVED_ROOT}/"));
            if !approved {
                findings.push(Finding {
                    field_path: "storage.filesystem.rootdirectory".into(),
                    severity: Severity::Error,
                    reason: "RootDirectoryNotApproved".into(),
                    message: format!(
                        "{root} is not where this site keeps registry storage: \
                         use {APPROVED_ROOT} or a directory below it"
                    ),
                });
            }
        }

        findings
    }
}
