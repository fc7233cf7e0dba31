//! The access log: one line per request, written when its response has
//! been sent (or given up), with the bytes that really went out and the
//! time until then. A response whose body was dropped before its end (the
//! client went away) is marked `aborted`. The request metrics are counted
//! at the same moment, and request body bytes as they arrive.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, Method};
use axum::response::Response;
use hyper::body::{Body as HttpBody, Frame, SizeHint};

use super::limits::Place;
use super::routes::Route;
use super::API_VERSION;
use crate::metrics::metrics;

/// `body`, counting its bytes into the request metrics of `route` as they
/// arrive.
pub fn count_received(body: Body, method: &Method, route: &'static str) -> Body {
    use http_body_util::BodyExt;
    let counter = metrics().received(method.as_str(), route);
    Body::new(body.map_frame(move |frame| {
        if let Some(data) = frame.data_ref() {
            counter.inc_by(data.len() as u64);
        }
        frame
    }))
}

/// What the line says besides the bytes and the time.
struct Line {
    /// Whether the line is written (the metrics count it either way).
    log: bool,
    method: Method,
    route: &'static str,
    path: String,
    status: u16,
    repository: Option<String>,
    digest: Option<String>,
    started: Instant,
}

/// `response` with its body wrapped so that the line is logged (when `log`)
/// and the request counted at its end, when the request's `place` among
/// those served at once is given back.
/// `route` is what `path` parsed as.
pub fn wrap(
    method: Method,
    path: String,
    route: Option<&Route>,
    started: Instant,
    mut response: Response,
    place: Option<Place>,
    log: bool,
) -> Response {
    response
        .headers_mut()
        .insert(API_VERSION.0, HeaderValue::from_static(API_VERSION.1));
    let line = Line {
        log,
        route: route.map_or("other", Route::name),
        status: response.status().as_u16(),
        repository: route.and_then(Route::repository).map(str::to_string),
        digest: response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        method,
        path,
        started,
    };
    // A streamed body's length is in its header; hyper stops polling once
    // that many bytes went out.
    let expected = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .or_else(|| response.body().size_hint().exact());
    let (parts, body) = response.into_parts();
    Response::from_parts(
        parts,
        Body::new(Logged {
            inner: body,
            line: Some(line),
            sent: 0,
            expected,
            place,
        }),
    )
}

/// What an upload request's answer says of the upload: `started` (202 to
/// a POST), `completed` (201: a blob committed, or mounted), `failed` (an
/// error to a POST, PATCH or PUT); nothing for the rest.
fn upload_outcome(method: &Method, route: &str, status: u16) -> Option<&'static str> {
    let writes = *method == Method::POST || *method == Method::PATCH || *method == Method::PUT;
    if !writes || !matches!(route, "upload_start" | "upload") {
        return None;
    }
    match status {
        202 if *method == Method::POST => Some("started"),
        201 => Some("completed"),
        400.. => Some("failed"),
        _ => None,
    }
}

struct Logged {
    inner: Body,
    /// Taken when the line is written.
    line: Option<Line>,
    sent: u64,
    /// The body's length, when known.
    expected: Option<u64>,
    /// Held until the body ends (see `limits`).
    place: Option<Place>,
}

impl Logged {
    fn finish(&mut self, aborted: bool) {
        let Some(line) = self.line.take() else { return };
        self.place = None;
        let took = line.started.elapsed();
        metrics().request(line.method.as_str(), line.route, line.status, took, self.sent);
        if let Some(outcome) = upload_outcome(&line.method, line.route, line.status) {
            metrics().upload(outcome);
        }
        if !line.log {
            return;
        }
        tracing::info!(
            method = %line.method,
            path = line.path,
            status = line.status,
            bytes = self.sent,
            duration_ms = took.as_secs_f64() * 1e3,
            repository = line.repository,
            digest = line.digest,
            aborted,
            "request"
        );
    }
}

impl HttpBody for Logged {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.sent += data.len() as u64;
                }
                if self.inner.is_end_stream() {
                    self.finish(false);
                }
            }
            Poll::Ready(Some(Err(_))) => self.finish(true),
            Poll::Ready(None) => self.finish(false),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        // An empty body (a HEAD, a 201) is never polled, and hyper stops at
        // the announced length: both ended whole.
        let ended = self.inner.is_end_stream() || self.expected == Some(self.sent);
        self.finish(!ended);
    }
}
