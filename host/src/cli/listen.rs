//! The registry's accept loop, plain or TLS, with the bounds that keep slow,
//! idle or too many clients from taking it down: a deadline for request
//! headers, an inactivity timeout (no byte moving either way), a cap on
//! connections served at once, and a bounded drain on shutdown.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

/// A client that has not finished its TLS handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// File descriptors kept for what is not a client connection: storage
/// files, plugin pre-opens, connections to S3, the listener.
pub const RESERVED_FDS: u64 = 256;

/// The bounds of serving.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The longest a client may take to send a request's headers.
    pub header_timeout: Duration,
    /// A connection on which no byte moves either way for this long is
    /// closed: idle keep-alive connections, stalled bodies and stalled
    /// downloads. A slow transfer that moves keeps its connection.
    pub idle_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// How long requests in flight may finish after shutdown begins.
    pub drain: Duration,
}

/// Accepts connections until `stop` resolves (then sets `draining`, stops
/// accepting and lets requests in flight finish, for at most
/// `limits.drain`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    tls: Option<TlsAcceptor>,
    limits: Limits,
    draining: Arc<AtomicBool>,
    stop: impl Future<Output = ()>,
) {
    let connections = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut at_limit = false;
    tokio::pin!(stop);
    loop {
        if slots.available_permits() == 0 && !at_limit {
            tracing::warn!(
                max_connections = limits.max_connections,
                "connection limit reached (http.maxconnections): new connections wait until one closes"
            );
        }
        at_limit = slots.available_permits() == 0;
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut stop => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("accepting a connection failed: {err}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let (tls, app, watcher, limits) = (tls.clone(), app.clone(), connections.watcher(), limits.clone());
        // The handshake runs in the connection's task, so a slow client
        // never holds up the accept loop.
        tokio::spawn(async move {
            let _slot = slot;
            let (tcp, activity) = Watched::new(tcp);
            let http = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .to_owned();
            // Handlers learn the client's address (auth logs it).
            let app = tower::util::MapRequest::new(app, move |mut request: hyper::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            });
            let service = TowerToHyperService::new(app);
            let served = async {
                match tls {
                    Some(acceptor) => {
                        let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                            Ok(Ok(stream)) => stream,
                            Ok(Err(err)) => return tracing::debug!(%peer, "TLS handshake failed: {err}"),
                            Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
                        };
                        let connection = http.serve_connection(TokioIo::new(stream), service);
                        if let Err(err) = watcher.watch(connection).await {
                            tracing::debug!(%peer, "connection ended: {err}");
                        }
                    }
                    None => {
                        let connection = http.serve_connection(TokioIo::new(tcp), service);
                        if let Err(err) = watcher.watch(connection).await {
                            tracing::debug!(%peer, "connection ended: {err}");
                        }
                    }
                }
            };
            tokio::select! {
                () = served => {}
                () = activity.idle_for(limits.idle_timeout) => {
                    tracing::debug!(%peer, "closed a connection on which nothing moved for {:?}", limits.idle_timeout);
                }
            }
        });
    }
    draining.store(true, Ordering::Relaxed);
    drop(listener);
    if tokio::time::timeout(limits.drain, connections.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after {:?}: stopping anyway", limits.drain);
    }
}

/// Raises the soft limit on open files to the hard limit (the default 1024
/// is about a thousand clients); the soft limit in force after.
pub fn raise_open_files_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    limit.rlim_cur
}

/// When a connection last moved a byte, shared with its watchdog.
struct Activity {
    started: Instant,
    /// Milliseconds after `started`.
    last: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        self.last
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Resolves once nothing has moved for `limit`.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
            let quiet = self.started.elapsed().saturating_sub(last);
            if quiet >= limit {
                return;
            }
            tokio::time::sleep(limit - quiet).await;
        }
    }
}

/// A TCP stream that records every read or write that moves bytes.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl Watched {
    fn new(inner: TcpStream) -> (Watched, Arc<Activity>) {
        let activity = Arc::new(Activity {
            started: Instant::now(),
            last: AtomicU64::new(0),
        });
        (
            Watched {
                inner,
                activity: activity.clone(),
            },
            activity,
        )
    }
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
