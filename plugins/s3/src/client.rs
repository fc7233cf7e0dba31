//! The aws-sdk-s3 client inside the component: wasi:http through
//! `aws-smithy-wasm`, futures driven by wstd's `block_on` (wasi:http calls
//! block anyway), checksums only where S3 requires them, and errors turned
//! into the contract's, naming the bucket, the operation and S3's code.

use std::future::Future;
use std::time::Duration;

use aws_credential_types::Credentials;
use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Region, RequestChecksumCalculation, ResponseChecksumValidation, StalledStreamProtectionConfig,
};
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::BoxError;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::Client;
use aws_smithy_wasm::wasi::{WasiHttpClientBuilder, WasiSleep};

use crate::params::Config;
use crate::raw::Failure;

/// Runs one S3 future to completion.
pub fn block_on<F: Future>(future: F) -> F::Output {
    wstd::runtime::block_on(future)
}

/// An SDK client for `config`, talking to `endpoint`.
pub fn client(config: &Config, endpoint: &str) -> Client {
    let credentials = Credentials::new(
        &config.access_key,
        &config.secret_key,
        config.session_token.clone(),
        None,
        "berth-parameters",
    );
    let s3 = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(config.region.clone()))
        .endpoint_url(endpoint)
        .force_path_style(config.path_style)
        .credentials_provider(credentials)
        .http_client(WasiHttpClientBuilder::new().build())
        // Retries sleep through wasi clocks, in the host's deadline.
        .sleep_impl(WasiSleep)
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        // No CRC over every payload in wasm unless S3 demands one
        // (DeleteObjects, bucket configuration).
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        // The host has its own timeouts and per-call deadline.
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
        .interceptor(EmptyBodyLength)
        .build();
    Client::from_conf(s3)
}

/// Sends `content-length: 0` with an empty body. wasi:http has no notion
/// of a known-empty body, so without it the host's client sends none (or a
/// chunked one), and S3 and S3-compatible services answer a PUT/POST such as
/// CopyObject, UploadPartCopy or CreateMultipartUpload with
/// MissingContentLength (seen with s3s-fs).
#[derive(Debug)]
struct EmptyBodyLength;

impl Intercept for EmptyBodyLength {
    fn name(&self) -> &'static str {
        "EmptyBodyLength"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _config: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request_mut();
        let bodyless = matches!(request.method(), "GET" | "HEAD");
        let empty = request.body().bytes().is_some_and(<[u8]>::is_empty);
        if !bodyless && empty && request.headers().get("content-length").is_none() {
            request.headers_mut().insert("content-length", "0");
        }
        Ok(())
    }
}

/// An SDK failure as a [`Failure`].
pub fn failure<E>(bucket: &str, op: &str, err: SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = err.code().map(str::to_string);
    let detail = match (err.message(), status) {
        (Some(message), _) => message.to_string(),
        (None, Some(status)) => format!("the answer was HTTP {status}, without an S3 error document"),
        (None, None) => DisplayErrorContext(&err).to_string(),
    };
    let message = format!(
        "s3 bucket {bucket:?}: {op}: {}: {detail}",
        code.as_deref().unwrap_or(if status.is_some() {
            "HTTP error"
        } else {
            "request failed"
        })
    );
    Failure { status, code, message }
}

impl Failure {
    /// Whether the object (not the bucket, not an upload) is missing.
    pub fn is_not_found(&self) -> bool {
        match self.code.as_deref() {
            Some("NoSuchKey" | "NotFound") => true,
            Some(_) => false,
            None => self.status == Some(404),
        }
    }
}

/// How long presigned URLs stay valid: distribution's 20 minutes.
pub const PRESIGN_EXPIRY: Duration = Duration::from_secs(20 * 60);
