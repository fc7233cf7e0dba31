//! What a Store carries for one plugin instance: its WASI context, its
//! memory limit, its deadline, and where its log lines and stderr go.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::budget::Reservation;
use super::http::{HttpHooks, Network};

/// The data of every plugin Store.
pub(crate) struct HostState {
    pub plugin: Arc<str>,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    /// Where outgoing HTTP goes: the driver's pool, or nowhere.
    http_hooks: HttpHooks,
    table: ResourceTable,
    pub limits: MemoryLimit,
    /// When the call in progress must end; checked at every epoch tick.
    pub deadline: Instant,
    pub stderr: GuestStderr,
    /// This instance's share of the memory budget, given back with the Store.
    _reservation: Reservation,
}

impl HostState {
    pub fn new(
        plugin: Arc<str>,
        wasi: WasiCtx,
        network: Option<Arc<Network>>,
        memory_limit: u64,
        stderr: GuestStderr,
        reservation: Reservation,
    ) -> Self {
        HostState {
            http_hooks: HttpHooks {
                plugin: plugin.clone(),
                network,
            },
            plugin,
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            limits: MemoryLimit { limit: memory_limit },
            deadline: Instant::now(),
            stderr,
            _reservation: reservation,
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_hooks,
        }
    }
}

/// Raised (as a trap) when a guest asks for more memory than it may have.
#[derive(Debug, thiserror::Error)]
#[error("exceeded its memory limit of {} MiB", .limit / (1024 * 1024))]
pub(crate) struct MemoryLimitExceeded {
    pub limit: u64,
}

/// Raised (as a trap) when a call runs past its deadline.
#[derive(Debug, thiserror::Error)]
#[error("ran past its deadline of {seconds:.1} s")]
pub(crate) struct DeadlineExceeded {
    pub seconds: f64,
}

/// Fails a growth past the limit with a trap that says so, rather than
/// letting the guest's allocator abort with an anonymous `unreachable`.
pub(crate) struct MemoryLimit {
    limit: u64,
}

impl ResourceLimiter for MemoryLimit {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired as u64 > self.limit {
            return Err(MemoryLimitExceeded { limit: self.limit }.into());
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        // Tables hold function references; a million is far past any driver.
        Ok(desired <= 1 << 20)
    }
}

/// A guest's stderr: each line goes to the log under the plugin's name, and
/// the last few hundred bytes are kept to explain a trap (a Rust guest prints
/// its panic message there just before it traps).
#[derive(Clone)]
pub(crate) struct GuestStderr {
    plugin: Arc<str>,
    tail: Arc<Mutex<Vec<u8>>>,
}

const STDERR_TAIL: usize = 1024;

impl GuestStderr {
    pub fn new(plugin: Arc<str>) -> Self {
        GuestStderr {
            plugin,
            tail: Arc::default(),
        }
    }

    /// The last line the guest wrote, if any.
    pub fn last_line(&self) -> Option<String> {
        let tail = self.tail.lock().ok()?;
        let text = String::from_utf8_lossy(&tail);
        let line = text
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("note:"))?;
        Some(line.to_string())
    }

    fn append(&self, bytes: &[u8]) {
        for line in String::from_utf8_lossy(bytes).lines().filter(|l| !l.trim().is_empty()) {
            tracing::warn!(plugin = %self.plugin, "stderr: {line}");
        }
        if let Ok(mut tail) = self.tail.lock() {
            tail.extend_from_slice(bytes);
            let excess = tail.len().saturating_sub(STDERR_TAIL);
            tail.drain(..excess);
        }
    }
}

impl IsTerminal for GuestStderr {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestStderr {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for GuestStderr {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
