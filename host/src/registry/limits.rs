//! Requests served at once (`requests.read` and `requests.write`): beyond
//! the running limit a request waits in a bounded queue for a bounded time,
//! and beyond either it is answered 429 `TOOMANYREQUESTS` with
//! `Retry-After`. A request holds its place until its response's last byte
//! is sent, so a limit on reads bounds the pulls in flight.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, Method};
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::{ErrorCode, RegistryError};
use crate::metrics::metrics;

/// One kind's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// At least 1.
    pub max_running: usize,
    pub max_in_queue: usize,
    pub max_wait: Duration,
}

/// The limits of reads (GET, HEAD) and of writes (the rest); `None`: not
/// limited.
#[derive(Debug, Clone, Default)]
pub struct RequestLimits {
    read: Option<Gate>,
    write: Option<Gate>,
}

#[derive(Debug, Clone)]
struct Gate {
    kind: &'static str,
    limit: Limit,
    running: Arc<Semaphore>,
    waiting: Arc<Semaphore>,
    /// The metrics of the two.
    running_now: Gauge,
    waiting_now: Gauge,
}

/// A request's place among those running, given back when dropped.
#[derive(Debug)]
pub struct Place {
    _permit: OwnedSemaphorePermit,
    running_now: Gauge,
}

impl Drop for Place {
    fn drop(&mut self) {
        self.running_now.dec();
    }
}

impl Gate {
    fn place(&self, permit: OwnedSemaphorePermit) -> Place {
        self.running_now.inc();
        Place {
            _permit: permit,
            running_now: self.running_now.clone(),
        }
    }
}

/// Suggested to a refused client, in seconds.
const RETRY_AFTER: &str = "1";

impl RequestLimits {
    pub fn new(read: Option<Limit>, write: Option<Limit>) -> RequestLimits {
        let gate = |kind, limit: Limit| {
            let (running_now, waiting_now) = metrics().limited(kind);
            Gate {
                kind,
                limit,
                running: Arc::new(Semaphore::new(limit.max_running.max(1))),
                waiting: Arc::new(Semaphore::new(limit.max_in_queue)),
                running_now,
                waiting_now,
            }
        };
        RequestLimits {
            read: read.map(|limit| gate("read", limit)),
            write: write.map(|limit| gate("write", limit)),
        }
    }

    /// A place for a request of `method` (none to hold when it is not
    /// limited), or the 429 to answer.
    pub async fn admit(&self, method: &Method) -> Result<Option<Place>, RegistryError> {
        let gate = if method == Method::GET || method == Method::HEAD {
            &self.read
        } else {
            &self.write
        };
        let Some(gate) = gate else { return Ok(None) };
        if let Ok(permit) = gate.running.clone().try_acquire_owned() {
            return Ok(Some(gate.place(permit)));
        }
        let refused = |why: String| {
            RegistryError::new(ErrorCode::TooManyRequests, why).with_header(header::RETRY_AFTER, RETRY_AFTER)
        };
        let Ok(_waiting) = gate.waiting.try_acquire() else {
            let Limit {
                max_running,
                max_in_queue,
                ..
            } = gate.limit;
            return Err(refused(format!(
                "too many {} requests: {max_running} running and {max_in_queue} waiting (requests.{}); retry shortly",
                gate.kind, gate.kind
            )));
        };
        gate.waiting_now.inc();
        let waited = tokio::time::timeout(gate.limit.max_wait, gate.running.clone().acquire_owned()).await;
        gate.waiting_now.dec();
        match waited {
            Ok(Ok(permit)) => Ok(Some(gate.place(permit))),
            _ => Err(refused(format!(
                "too many {} requests: waited {:?} for one of the {} running to end (requests.{}.maxwaitinqueue); retry shortly",
                gate.kind, gate.limit.max_wait, gate.limit.max_running, gate.kind
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn beyond_the_running_limit_requests_wait_then_are_refused() {
        let limit = Limit {
            max_running: 1,
            max_in_queue: 1,
            max_wait: Duration::from_secs(30),
        };
        let limits = RequestLimits::new(None, Some(limit));
        assert!(
            limits.admit(&Method::GET).await.unwrap().is_none(),
            "reads are not limited"
        );
        let first = limits.admit(&Method::PUT).await.unwrap().expect("a place");
        let waiting = tokio::spawn({
            let limits = limits.clone();
            async move { limits.admit(&Method::PATCH).await.map(|place| place.is_some()) }
        });
        let gate = limits.write.as_ref().expect("writes are limited");
        while gate.waiting.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        let third = limits.admit(&Method::POST).await.unwrap_err();
        assert_eq!(third.code(), ErrorCode::TooManyRequests);
        assert!(
            third.message().contains("1 running and 1 waiting"),
            "{}",
            third.message()
        );
        drop(first);
        assert!(
            waiting.await.unwrap().unwrap(),
            "the waiting request runs once the first ends"
        );

        let impatient = RequestLimits::new(
            Some(Limit {
                max_running: 1,
                max_in_queue: 5,
                max_wait: Duration::from_millis(10),
            }),
            None,
        );
        let _held = impatient.admit(&Method::GET).await.unwrap();
        let err = impatient.admit(&Method::HEAD).await.unwrap_err();
        assert!(err.message().contains("maxwaitinqueue"), "{}", err.message());
    }
}
