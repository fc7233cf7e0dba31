//! The data path, signed by hand with `aws-sigv4` and sent through
//! wasi:http directly: ranged GETs whose body is read as the host asks
//! (`file-reader.read`), and PUTs of parts and whole objects. The SDK does
//! everything else.
//!
//! Why not the SDK here: a reader outlives the call that opened it, and the
//! SDK's body is driven by wstd's reactor, which lives only inside one
//! `block_on`; a plain blocking wasi stream has no such tie. For PUTs the
//! payload is sent `UNSIGNED-PAYLOAD` (no SHA-256 over the data in wasm) and
//! written straight from the buffer into the host's stream.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    FutureIncomingResponse, Headers, IncomingBody, IncomingResponse, InputStream, Method, OutgoingBody,
    OutgoingRequest, Scheme,
};
use wasip2::io::streams::StreamError;

use crate::params::Config;
use crate::xml;

/// A failed request: the HTTP status when there was an answer, S3's error
/// code from the body, and a readable message.
#[derive(Debug)]
pub struct Failure {
    pub status: Option<u16>,
    pub code: Option<String>,
    pub message: String,
}

impl Failure {
    fn transport(message: String) -> Failure {
        Failure {
            status: None,
            code: None,
            message,
        }
    }
}

/// An answer whose body is still to be read. Fields drop in declaration
/// order: the stream before the body it belongs to, the body before the
/// response, which wasi:http requires ("resource has children" otherwise).
pub struct Response {
    stream: Option<InputStream>,
    body: Option<IncomingBody>,
    response: IncomingResponse,
    _future: FutureIncomingResponse,
    pub status: u16,
}

impl Response {
    /// The first value of the header `name`, as text.
    pub fn header(&self, name: &str) -> Option<String> {
        let headers: Headers = self.response.headers();
        let values = headers.get(name);
        values.first().map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Up to `max` bytes of the body, at least one, as much as has arrived;
    /// empty at the end.
    pub fn read(&mut self, max: u64) -> Result<Vec<u8>, String> {
        let Some(stream) = self.stream.as_ref() else {
            return Ok(Vec::new());
        };
        // One chunk as the host has it (a few hundred KiB from S3), not
        // stitched to `max`: stitching cost a copy of every byte.
        loop {
            match stream.blocking_read(max) {
                Ok(chunk) if chunk.is_empty() => continue, // nothing yet
                Ok(chunk) => return Ok(chunk),
                Err(StreamError::Closed) => {
                    self.stream = None;
                    return Ok(Vec::new());
                }
                Err(StreamError::LastOperationFailed(err)) => {
                    return Err(format!("reading the response body: {}", err.to_debug_string()))
                }
            }
        }
    }

    /// The whole (small) body, for error documents.
    pub fn read_to_end(&mut self) -> Vec<u8> {
        let mut all = Vec::new();
        while let Ok(chunk) = self.read(64 << 10) {
            if chunk.is_empty() {
                break;
            }
            all.extend_from_slice(&chunk);
            if all.len() > 1 << 20 {
                break; // an error document is never this long
            }
        }
        all
    }

    /// This answer as a failure of `op`, with S3's code and message.
    pub fn into_failure(mut self, bucket: &str, op: &str) -> Failure {
        let body = self.read_to_end();
        let text = String::from_utf8_lossy(&body);
        let code = xml::text(&text, "Code");
        let detail = xml::text(&text, "Message").unwrap_or_else(|| format!("HTTP status {}", self.status));
        Failure {
            status: Some(self.status),
            message: format!(
                "s3 bucket {bucket:?}: {op}: {}: {detail}",
                code.as_deref().unwrap_or("HTTP error")
            ),
            code,
        }
    }
}

impl Drop for Response {
    fn drop(&mut self) {
        // Explicitly, in the order wasi:http needs, whatever field order says.
        self.stream.take();
        self.body.take();
    }
}

/// Encodes a query value as SigV4 canonicalises it.
pub fn encode_query(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The scheme, authority and path with query of `url`.
fn split_url(url: &str) -> Result<(&str, &str, &str), Failure> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| Failure::transport(format!("not a URL: {url}")))?;
    Ok(match rest.find('/') {
        Some(i) => (scheme, &rest[..i], &rest[i..]),
        None => (scheme, rest, "/"),
    })
}

/// Every header of `method` on `url` but `host`, SigV4's included: the
/// `extra_headers`, `content-length` for a body of `body_length` bytes, and
/// the signature's. The payload is unsigned.
pub fn signed_headers(
    config: &Config,
    method: &str,
    url: &str,
    extra_headers: &[(&str, String)],
    body_length: Option<usize>,
) -> Result<Vec<(String, String)>, Failure> {
    let (_, authority, _) = split_url(url)?;
    let mut headers: Vec<(&str, String)> = vec![("host", authority.to_string())];
    if let Some(length) = body_length {
        headers.push(("content-length", length.to_string()));
    }
    headers.extend(extra_headers.iter().cloned());

    let identity = Credentials::new(
        &config.access_key,
        &config.secret_key,
        config.session_token.clone(),
        None,
        "berth-parameters",
    )
    .into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&config.region)
        .name("s3")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .map_err(|e| Failure::transport(format!("signing {method} {url}: {e}")))?
        .into();
    let signable = SignableRequest::new(
        method,
        url,
        headers.iter().map(|(k, v)| (*k, v.as_str())),
        SignableBody::UnsignedPayload,
    )
    .map_err(|e| Failure::transport(format!("signing {method} {url}: {e}")))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| Failure::transport(format!("signing {method} {url}: {e}")))?
        .into_parts();
    let unsigned = headers.into_iter().filter(|(k, _)| *k != "host");
    let signature = instructions.headers().map(|(k, v)| (k, v.to_string()));
    Ok(unsigned.chain(signature).map(|(k, v)| (k.to_string(), v)).collect())
}

/// Statuses S3 asks clients to retry (`InternalError`, `SlowDown`,
/// `ServiceUnavailable`, a gateway's), as the SDK's standard retry mode does.
const RETRIED_STATUSES: [u16; 4] = [500, 502, 503, 504];
/// Attempts of one request, the first included (the SDK's calls have 3).
const ATTEMPTS: u32 = 3;
/// The pause before the second attempt; each later one waits four times
/// longer.
const FIRST_BACKOFF_MS: u64 = 100;

/// Signs and sends one request, again (signed afresh) when S3 answers a
/// status it asks to retry; `body` is sent with its exact length. Every
/// request sent this way can be repeated: a whole object, a part and a
/// ranged read are idempotent, and S3 answers a repeated
/// CompleteMultipartUpload as it did the first.
pub fn send(
    config: &Config,
    method: &str,
    url: &str,
    extra_headers: &[(&str, String)],
    body: Option<&[u8]>,
) -> Result<Response, Failure> {
    let mut backoff_ms = FIRST_BACKOFF_MS;
    for _ in 1..ATTEMPTS {
        let response = send_once(config, method, url, extra_headers, body)?;
        if !RETRIED_STATUSES.contains(&response.status) {
            return Ok(response);
        }
        drop(response);
        wasip2::clocks::monotonic_clock::subscribe_duration(backoff_ms * 1_000_000).block();
        backoff_ms *= 4;
    }
    send_once(config, method, url, extra_headers, body)
}

fn send_once(
    config: &Config,
    method: &str,
    url: &str,
    extra_headers: &[(&str, String)],
    body: Option<&[u8]>,
) -> Result<Response, Failure> {
    let (scheme, authority, path_query) = split_url(url)?;
    let fields = wasip2::http::types::Fields::new();
    for (name, value) in signed_headers(config, method, url, extra_headers, body.map(<[u8]>::len))? {
        fields
            .append(&name, value.as_bytes())
            .map_err(|e| Failure::transport(format!("header {name}: {e:?}")))?;
    }
    let request = OutgoingRequest::new(fields);
    let method_value = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "PUT" => Method::Put,
        "POST" => Method::Post,
        "DELETE" => Method::Delete,
        other => Method::Other(other.to_string()),
    };
    let scheme_value = match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => Scheme::Other(other.to_string()),
    };
    let bad = |what: &str| Failure::transport(format!("{method} {url}: the request's {what} was refused"));
    request.set_method(&method_value).map_err(|()| bad("method"))?;
    request.set_scheme(Some(&scheme_value)).map_err(|()| bad("scheme"))?;
    request.set_authority(Some(authority)).map_err(|()| bad("authority"))?;
    request
        .set_path_with_query(Some(path_query))
        .map_err(|()| bad("path"))?;
    let outgoing = request.body().map_err(|()| bad("body"))?;

    // Send first, then write the body: the host streams it to the
    // connection, so writing a large body before `handle` could block on a
    // full pipe.
    let future =
        outgoing_handler::handle(request, None).map_err(|e| Failure::transport(format!("{method} {url}: {e:?}")))?;
    // A body the host stopped taking is reported after the answer, which
    // usually says why (S3 may answer before reading everything).
    let written = match body {
        Some(data) => write_body(&outgoing, data),
        None => Ok(()),
    };
    let finished = match written {
        Ok(()) => OutgoingBody::finish(outgoing, None).map_err(|e| format!("{e:?}")),
        Err(e) => {
            drop(outgoing);
            Err(e)
        }
    };

    let response = loop {
        match future.get() {
            Some(Ok(Ok(response))) => break response,
            Some(Ok(Err(e))) => return Err(Failure::transport(format!("{method} {url}: {e:?}"))),
            Some(Err(())) => return Err(Failure::transport(format!("{method} {url}: no response"))),
            None => future.subscribe().block(),
        }
    };
    let status = response.status();
    if let Err(e) = finished {
        if status < 300 {
            return Err(Failure::transport(format!("{method} {url}: sending the body: {e}")));
        }
    }
    let body = response.consume().map_err(|()| bad("response body"))?;
    let stream = body.stream().map_err(|()| bad("response stream"))?;
    Ok(Response {
        stream: Some(stream),
        body: Some(body),
        response,
        _future: future,
        status,
    })
}

/// Writes all of `data` into the request body, as fast as the host takes it.
fn write_body(body: &OutgoingBody, data: &[u8]) -> Result<(), String> {
    let stream = body.write().map_err(|()| "no body stream".to_string())?;
    let mut rest = data;
    let result = (|| {
        while !rest.is_empty() {
            let permitted = stream
                .check_write()
                .map_err(|e| format!("{e:?} after {} of {} bytes", data.len() - rest.len(), data.len()))?;
            if permitted == 0 {
                stream.subscribe().block();
                continue;
            }
            let n = rest.len().min(usize::try_from(permitted).unwrap_or(usize::MAX));
            stream.write(&rest[..n]).map_err(|e| format!("{e:?}"))?;
            rest = &rest[n..];
        }
        // Closed here means the host has sent everything and let go of the
        // body (a known Content-Length): not an error.
        match stream.blocking_flush() {
            Ok(()) | Err(StreamError::Closed) => Ok(()),
            Err(e) => Err(format!("{e:?}")),
        }
    })();
    drop(stream);
    result
}
