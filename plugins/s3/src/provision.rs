//! The provisioner: creates and configures the bucket the way OpenShift's
//! image-registry operator does, one condition per step. A failed step is
//! reported False and the others still run; only a bucket that could not be
//! created (or reached) makes every later step Unknown.
//!
//! Encryption: the bucket's default encryption is always set, with the
//! `keyid` KMS key when `encrypt` is true and a key is given, else AES256
//! (SSE-S3). S3 encrypts every new object with SSE-S3 anyway since 2023, so
//! "not encrypted" is no longer a state a bucket can be in; `encrypt`
//! controls the per-object headers the driver sends.

use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketLocationConstraint, CreateBucketConfiguration,
    ExpirationStatus, LifecycleRule, LifecycleRuleFilter, PublicAccessBlockConfiguration, ServerSideEncryption,
    ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule, Tag, Tagging,
};

use crate::client::{block_on, failure};
use crate::driver::State;
use crate::exports::berth::storage::provisioner::{Condition, Error, Guest};
use crate::params::Config;
use crate::raw::Failure;

/// The id of the lifecycle rule this provisioner owns.
const LIFECYCLE_RULE_ID: &str = "berth-abort-incomplete-multipart-uploads";

const EXISTS: &str = "StorageExists";
const PUBLIC_ACCESS: &str = "StoragePublicAccessBlocked";
const ENCRYPTED: &str = "StorageEncrypted";
const CLEANUP: &str = "StorageIncompleteUploadCleanupEnabled";
const TAGGED: &str = "StorageTagged";

fn condition(kind: &str, status: &str, reason: &str, message: impl Into<String>) -> Condition {
    Condition {
        type_: kind.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
    }
}

/// A step's condition: True with `reason`, or False with `failed`.
fn step(kind: &str, result: Result<String, Failure>, reason: &str, failed: &str) -> Condition {
    match result {
        Ok(message) => condition(kind, "True", reason, message),
        Err(f) => condition(kind, "False", failed, f.message),
    }
}

fn other(bucket: &str, op: &str, message: String) -> Failure {
    Failure {
        status: None,
        code: None,
        message: format!("s3 bucket {bucket:?}: {op}: {message}"),
    }
}

/// Whether the bucket exists: Ok(true/false), or a failure that says
/// neither (no permission, no answer).
fn bucket_exists(state: &State) -> Result<bool, Failure> {
    match block_on(state.client.head_bucket().bucket(state.bucket()).send()) {
        Ok(_) => Ok(true),
        Err(e) => {
            let f = failure(state.bucket(), "HeadBucket", e);
            if f.status == Some(404) || matches!(f.code.as_deref(), Some("NotFound" | "NoSuchBucket")) {
                Ok(false)
            } else {
                Err(f)
            }
        }
    }
}

fn create_bucket(state: &State) -> Result<String, Failure> {
    let region = &state.config.region;
    let mut request = state.client.create_bucket().bucket(state.bucket());
    // us-east-1 is the one region S3 refuses as a location constraint.
    if region != "us-east-1" {
        let location = CreateBucketConfiguration::builder()
            .location_constraint(BucketLocationConstraint::from(region.as_str()))
            .build();
        request = request.create_bucket_configuration(location);
    }
    match block_on(request.send()) {
        Ok(_) => Ok(format!("bucket {:?} was created in {region}", state.bucket())),
        Err(e) => {
            let f = failure(state.bucket(), "CreateBucket", e);
            if f.code.as_deref() == Some("BucketAlreadyOwnedByYou") {
                Ok(format!("bucket {:?} exists", state.bucket()))
            } else {
                Err(f)
            }
        }
    }
}

fn block_public_access(state: &State) -> Result<String, Failure> {
    let block = PublicAccessBlockConfiguration::builder()
        .block_public_acls(true)
        .ignore_public_acls(true)
        .block_public_policy(true)
        .restrict_public_buckets(true)
        .build();
    let request = state
        .client
        .put_public_access_block()
        .bucket(state.bucket())
        .public_access_block_configuration(block);
    block_on(request.send()).map_err(|e| failure(state.bucket(), "PutPublicAccessBlock", e))?;
    Ok("public access to the bucket is blocked".into())
}

fn encrypt(state: &State) -> Result<String, Failure> {
    let config = &state.config;
    let (algorithm, key_id, what) = match (&config.key_id, config.encrypt) {
        (Some(key_id), true) => (
            ServerSideEncryption::AwsKms,
            Some(key_id.clone()),
            format!("aws:kms with key {key_id}"),
        ),
        _ => (ServerSideEncryption::Aes256, None, "AES256 (SSE-S3)".to_string()),
    };
    let by_default = ServerSideEncryptionByDefault::builder()
        .sse_algorithm(algorithm)
        .set_kms_master_key_id(key_id)
        .build()
        .map_err(|e| other(state.bucket(), "PutBucketEncryption", e.to_string()))?;
    let rule = ServerSideEncryptionRule::builder()
        .apply_server_side_encryption_by_default(by_default)
        .build();
    let encryption = ServerSideEncryptionConfiguration::builder()
        .rules(rule)
        .build()
        .map_err(|e| other(state.bucket(), "PutBucketEncryption", e.to_string()))?;
    let request = state
        .client
        .put_bucket_encryption()
        .bucket(state.bucket())
        .server_side_encryption_configuration(encryption);
    block_on(request.send()).map_err(|e| failure(state.bucket(), "PutBucketEncryption", e))?;
    Ok(format!("objects are encrypted by default with {what}"))
}

/// Adds (or repairs) the rule that aborts multipart uploads after a day,
/// keeping every other rule of the bucket.
fn abort_stale_uploads(state: &State) -> Result<String, Failure> {
    let existing = match block_on(
        state
            .client
            .get_bucket_lifecycle_configuration()
            .bucket(state.bucket())
            .send(),
    ) {
        Ok(output) => output.rules().to_vec(),
        Err(e) => {
            let f = failure(state.bucket(), "GetBucketLifecycleConfiguration", e);
            if f.code.as_deref() == Some("NoSuchLifecycleConfiguration") {
                Vec::new()
            } else {
                return Err(f);
            }
        }
    };
    let ours = LifecycleRule::builder()
        .id(LIFECYCLE_RULE_ID)
        .filter(LifecycleRuleFilter::builder().prefix("").build())
        .status(ExpirationStatus::Enabled)
        .abort_incomplete_multipart_upload(
            AbortIncompleteMultipartUpload::builder()
                .days_after_initiation(1)
                .build(),
        )
        .build()
        .map_err(|e| other(state.bucket(), "PutBucketLifecycleConfiguration", e.to_string()))?;
    let mut rules: Vec<LifecycleRule> = existing
        .into_iter()
        .filter(|rule| rule.id() != Some(LIFECYCLE_RULE_ID))
        .collect();
    rules.push(ours);
    let lifecycle = BucketLifecycleConfiguration::builder()
        .set_rules(Some(rules))
        .build()
        .map_err(|e| other(state.bucket(), "PutBucketLifecycleConfiguration", e.to_string()))?;
    let request = state
        .client
        .put_bucket_lifecycle_configuration()
        .bucket(state.bucket())
        .lifecycle_configuration(lifecycle);
    block_on(request.send()).map_err(|e| failure(state.bucket(), "PutBucketLifecycleConfiguration", e))?;
    Ok("incomplete multipart uploads are aborted after 1 day".into())
}

/// Sets the requested tags, keeping the bucket's others.
fn tag(state: &State) -> Result<String, Failure> {
    let wanted = &state.config.tags;
    let existing = match block_on(state.client.get_bucket_tagging().bucket(state.bucket()).send()) {
        Ok(output) => output
            .tag_set()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect(),
        Err(e) => {
            let f = failure(state.bucket(), "GetBucketTagging", e);
            if f.code.as_deref() == Some("NoSuchTagSet") {
                Vec::new()
            } else {
                return Err(f);
            }
        }
    };
    if wanted.iter().all(|w| existing.contains(w)) {
        return Ok(format!("the bucket has the {} requested tags", wanted.len()));
    }
    let mut tags: Vec<(String, String)> = existing
        .into_iter()
        .filter(|(key, _)| !wanted.iter().any(|(k, _)| k == key))
        .collect();
    tags.extend(wanted.iter().cloned());
    let tag_set = tags
        .iter()
        .map(|(key, value)| Tag::builder().key(key).value(value).build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| other(state.bucket(), "PutBucketTagging", e.to_string()))?;
    let tagging = Tagging::builder()
        .set_tag_set(Some(tag_set))
        .build()
        .map_err(|e| other(state.bucket(), "PutBucketTagging", e.to_string()))?;
    let request = state
        .client
        .put_bucket_tagging()
        .bucket(state.bucket())
        .tagging(tagging);
    block_on(request.send()).map_err(|e| failure(state.bucket(), "PutBucketTagging", e))?;
    Ok(format!("the bucket has the {} requested tags", wanted.len()))
}

fn configure(parameters: &[(String, String)]) -> Result<State, Error> {
    Config::parse(parameters).map(State::new).map_err(Error::Backend)
}

impl Guest for crate::driver::S3 {
    fn ensure(parameters: Vec<(String, String)>) -> Result<Vec<Condition>, Error> {
        let state = configure(&parameters)?;
        let created = match bucket_exists(&state) {
            Ok(true) => Ok((format!("bucket {:?} exists", state.bucket()), "BucketExists")),
            Ok(false) => create_bucket(&state).map(|message| (message, "BucketCreated")),
            Err(f) => Err(f),
        };
        let mut conditions = Vec::new();
        match created {
            Ok((message, reason)) => conditions.push(condition(EXISTS, "True", reason, message)),
            Err(f) => {
                let reason = match f.code.as_deref() {
                    Some("BucketAlreadyExists") => "BucketNameTaken",
                    Some("AccessDenied") | Some("Forbidden") => "AccessDenied",
                    _ if f.status == Some(403) => "AccessDenied",
                    _ => "CreateFailed",
                };
                conditions.push(condition(EXISTS, "False", reason, f.message));
                let why = format!("bucket {:?} is not available", state.bucket());
                for kind in [PUBLIC_ACCESS, ENCRYPTED, CLEANUP, TAGGED] {
                    conditions.push(condition(kind, "Unknown", "StorageNotAvailable", why.clone()));
                }
                return Ok(conditions);
            }
        }
        conditions.push(step(
            PUBLIC_ACCESS,
            block_public_access(&state),
            "PublicAccessBlocked",
            "PublicAccessBlockFailed",
        ));
        conditions.push(step(
            ENCRYPTED,
            encrypt(&state),
            "EncryptionEnabled",
            "EncryptionFailed",
        ));
        conditions.push(step(
            CLEANUP,
            abort_stale_uploads(&state),
            "LifecycleRuleSet",
            "LifecycleRuleFailed",
        ));
        if state.config.tags.is_empty() {
            conditions.push(condition(TAGGED, "True", "NoTagsRequested", "no tags were requested"));
        } else {
            conditions.push(step(TAGGED, tag(&state), "Tagged", "TaggingFailed"));
        }
        Ok(conditions)
    }

    fn exists(parameters: Vec<(String, String)>) -> Result<Vec<Condition>, Error> {
        let state = configure(&parameters)?;
        let found = match bucket_exists(&state) {
            Ok(true) => condition(
                EXISTS,
                "True",
                "BucketExists",
                format!("bucket {:?} exists", state.bucket()),
            ),
            Ok(false) => condition(
                EXISTS,
                "False",
                "BucketNotFound",
                format!("bucket {:?} does not exist", state.bucket()),
            ),
            Err(f) => condition(EXISTS, "Unknown", "BucketNotReachable", f.message),
        };
        Ok(vec![found])
    }

    fn remove(parameters: Vec<(String, String)>) -> Result<Vec<Condition>, Error> {
        let state = configure(&parameters)?;
        match bucket_exists(&state) {
            Ok(false) => {
                return Ok(vec![condition(
                    EXISTS,
                    "False",
                    "BucketNotFound",
                    format!("bucket {:?} does not exist", state.bucket()),
                )])
            }
            Err(f) => return Ok(vec![condition(EXISTS, "Unknown", "BucketNotReachable", f.message)]),
            Ok(true) => {}
        }
        let removed = (|| {
            for (key, upload_id, _) in state.uploads_if_listed("", |_| true)? {
                state.abort(&key, &upload_id)?;
            }
            state.delete_keys(state.keys_below("")?)?;
            block_on(state.client.delete_bucket().bucket(state.bucket()).send())
                .map_err(|e| failure(state.bucket(), "DeleteBucket", e))
        })();
        Ok(vec![match removed {
            Ok(_) => condition(
                EXISTS,
                "False",
                "BucketDeleted",
                format!("bucket {:?} and its content were deleted", state.bucket()),
            ),
            Err(f) => condition(EXISTS, "True", "DeleteFailed", f.message),
        }])
    }
}
