//! The registry's one error type and its mapping, in this one place, to the
//! OCI error body `{"errors":[{"code","message","detail"}]}` and a status.

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::storage::StorageError;
use crate::store::{DigestError, StoreError};

/// The error codes of the OCI distribution spec, plus distribution's
/// `TAG_INVALID`, `PAGINATION_NUMBER_INVALID`, `RANGE_INVALID` and `UNKNOWN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    TagInvalid,
    PaginationNumberInvalid,
    /// A byte range that does not fit: a chunk not at the upload's offset,
    /// a blob range past its end.
    RangeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
    /// The registry (its storage, mostly) failed; never the client's fault.
    Unknown,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BlobUnknown => "BLOB_UNKNOWN",
            ErrorCode::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            ErrorCode::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            ErrorCode::DigestInvalid => "DIGEST_INVALID",
            ErrorCode::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            ErrorCode::ManifestInvalid => "MANIFEST_INVALID",
            ErrorCode::ManifestUnknown => "MANIFEST_UNKNOWN",
            ErrorCode::NameInvalid => "NAME_INVALID",
            ErrorCode::NameUnknown => "NAME_UNKNOWN",
            ErrorCode::SizeInvalid => "SIZE_INVALID",
            ErrorCode::TagInvalid => "TAG_INVALID",
            ErrorCode::PaginationNumberInvalid => "PAGINATION_NUMBER_INVALID",
            ErrorCode::RangeInvalid => "RANGE_INVALID",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Denied => "DENIED",
            ErrorCode::Unsupported => "UNSUPPORTED",
            ErrorCode::TooManyRequests => "TOOMANYREQUESTS",
            ErrorCode::Unknown => "UNKNOWN",
        }
    }

    /// The status a code is answered with unless the endpoint says
    /// otherwise (a manifest too large is `SIZE_INVALID` with 413).
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::BlobUnknown
            | ErrorCode::BlobUploadUnknown
            | ErrorCode::ManifestUnknown
            | ErrorCode::NameUnknown => StatusCode::NOT_FOUND,
            ErrorCode::BlobUploadInvalid
            | ErrorCode::DigestInvalid
            | ErrorCode::ManifestBlobUnknown
            | ErrorCode::ManifestInvalid
            | ErrorCode::NameInvalid
            | ErrorCode::SizeInvalid
            | ErrorCode::TagInvalid
            | ErrorCode::PaginationNumberInvalid => StatusCode::BAD_REQUEST,
            ErrorCode::RangeInvalid => StatusCode::RANGE_NOT_SATISFIABLE,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Denied => StatusCode::FORBIDDEN,
            ErrorCode::Unsupported => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A failed request: what the client is told.
#[derive(Debug)]
pub struct RegistryError {
    code: ErrorCode,
    status: StatusCode,
    message: String,
    detail: Option<Value>,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// What the log says and the client is not told: a storage failure's
    /// own words (driver messages, backend URLs, paths).
    cause: Option<String>,
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

impl RegistryError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> RegistryError {
        RegistryError {
            code,
            status: code.status(),
            message: message.into(),
            detail: None,
            headers: Vec::new(),
            cause: None,
        }
    }

    /// Answers with `status` instead of the code's usual one.
    pub fn with_status(mut self, status: StatusCode) -> RegistryError {
        self.status = status;
        self
    }

    pub fn with_detail(mut self, detail: Value) -> RegistryError {
        self.detail = Some(detail);
        self
    }

    /// Adds a response header (`Range` of an upload, `Content-Range` of a
    /// blob); a value that is not a valid header is left out.
    pub fn with_header(mut self, name: HeaderName, value: &str) -> RegistryError {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.push((name, value));
        }
        self
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for RegistryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl From<DigestError> for RegistryError {
    fn from(err: DigestError) -> RegistryError {
        RegistryError::new(ErrorCode::DigestInvalid, err.to_string())
    }
}

/// A store outcome, in the spec's codes.
impl From<StoreError> for RegistryError {
    fn from(err: StoreError) -> RegistryError {
        let message = err.to_string();
        match err {
            StoreError::BlobUnknown { .. } => RegistryError::new(ErrorCode::BlobUnknown, message),
            StoreError::ManifestUnknown { .. } => RegistryError::new(ErrorCode::ManifestUnknown, message),
            StoreError::DependencyUnknown { digest, .. } => RegistryError::new(ErrorCode::ManifestBlobUnknown, message)
                .with_detail(json!({ "digest": digest.to_string() })),
            StoreError::NameUnknown(_) => RegistryError::new(ErrorCode::NameUnknown, message),
            StoreError::UploadUnknown { .. } => RegistryError::new(ErrorCode::BlobUploadUnknown, message),
            StoreError::DigestMismatch { .. } => RegistryError::new(ErrorCode::DigestInvalid, message),
            StoreError::Unavailable(_) => RegistryError::new(ErrorCode::Unknown, message)
                .with_status(StatusCode::SERVICE_UNAVAILABLE)
                .with_header(axum::http::header::RETRY_AFTER, "2"),
            StoreError::Storage(err) => err.into(),
        }
    }
}

/// A storage failure the handler did not expect (a missing path it did
/// expect is turned into `*_UNKNOWN` where it happens).
impl From<StorageError> for RegistryError {
    fn from(err: StorageError) -> RegistryError {
        let cause = Some(err.to_string());
        let error = match &err {
            // Too many requests hold plugin instances: retry shortly.
            StorageError::Plugin(plugin) if plugin.busy => RegistryError::new(
                ErrorCode::TooManyRequests,
                "the registry is busy: too many requests hold its storage plugin; retry shortly",
            )
            .with_status(StatusCode::SERVICE_UNAVAILABLE)
            .with_header(axum::http::header::RETRY_AFTER, "1"),
            _ if err.is_storage_full() => RegistryError::new(ErrorCode::Unknown, "the registry's storage is full")
                .with_status(StatusCode::INSUFFICIENT_STORAGE),
            _ => RegistryError::new(
                ErrorCode::Unknown,
                "the registry's storage failed; the registry's log has the cause",
            ),
        };
        RegistryError { cause, ..error }
    }
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            let cause = self.cause.as_deref().unwrap_or_default();
            tracing::error!(code = self.code.as_str(), cause, "{}", self.message);
        } else {
            tracing::debug!(
                code = self.code.as_str(),
                status = self.status.as_u16(),
                "{}",
                self.message
            );
        }
        let body = json!({
            "errors": [{
                "code": self.code.as_str(),
                "message": self.message,
                "detail": self.detail.unwrap_or(Value::Null),
            }]
        });
        let mut response = (
            self.status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_the_spec_statuses() {
        assert_eq!(ErrorCode::BlobUnknown.status(), StatusCode::NOT_FOUND);
        assert_eq!(ErrorCode::ManifestBlobUnknown.status(), StatusCode::BAD_REQUEST);
        assert_eq!(ErrorCode::Unsupported.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(ErrorCode::TooManyRequests.as_str(), "TOOMANYREQUESTS");
        let response = RegistryError::new(ErrorCode::NameInvalid, "bad")
            .with_status(StatusCode::RANGE_NOT_SATISFIABLE)
            .into_response();
        assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    }

    #[test]
    fn a_busy_plugin_is_503_too_many_requests_with_retry_after() {
        let busy = crate::plugin::PluginError::busy("s3", "the plugin memory budget is in use".into());
        let error = RegistryError::from(StorageError::Plugin(busy));
        assert_eq!(error.code.as_str(), "TOOMANYREQUESTS");
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()["retry-after"], "1");
        let other = RegistryError::from(StorageError::Backend("disk".into())).into_response();
        assert_eq!(other.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn a_storage_failure_tells_the_client_words_and_the_log_the_cause() {
        let backend = StorageError::Backend(
            "s3 bucket \"b\": GET https://s3.internal:9000/b/docker/registry/v2/blobs: dispatch failure".into(),
        );
        let error = RegistryError::from(backend);
        assert_eq!(
            error.message(),
            "the registry's storage failed; the registry's log has the cause"
        );
        assert!(error.cause.as_deref().is_some_and(|c| c.contains("s3.internal")));
        let full = RegistryError::from(StorageError::Backend(
            "/docker/registry/v2/repositories/a/_uploads/x/data: No space left on device (os error 28)".into(),
        ));
        assert_eq!(full.status(), StatusCode::INSUFFICIENT_STORAGE);
        assert_eq!(full.message(), "the registry's storage is full");
        // The same, in the words of wasi:filesystem's error code.
        let full = RegistryError::from(StorageError::Backend("/a/data: insufficient-space (error 23)".into()));
        assert_eq!(full.status(), StatusCode::INSUFFICIENT_STORAGE);
    }
}
