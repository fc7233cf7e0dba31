//! The memory all plugin instances may use together. Each instance reserves
//! its whole memory limit for as long as it lives (its Store), so the limits
//! of the instances alive at once never add up to more than the budget,
//! whatever the guests allocate. Beyond it a new instance waits, a bounded
//! time, for one to end; then the call fails as busy (the registry answers
//! 503 TOOMANYREQUESTS).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::PluginError;

/// Tokio's semaphore counts at most this many permits.
const MAX_MIB: u64 = (u32::MAX >> 3) as u64;

#[derive(Debug)]
pub struct MemoryBudget {
    permits: Arc<Semaphore>,
    total_mib: u64,
    wait: Duration,
}

/// The memory reserved for one instance, given back when it is dropped.
pub(crate) type Reservation = OwnedSemaphorePermit;

impl MemoryBudget {
    /// A budget of `total_mib`; a reservation waits at most `wait`.
    pub fn new(total_mib: u64, wait: Duration) -> Arc<MemoryBudget> {
        let total_mib = total_mib.clamp(1, MAX_MIB);
        Arc::new(MemoryBudget {
            permits: Arc::new(Semaphore::new(total_mib as usize)),
            total_mib,
            wait,
        })
    }

    pub fn total_mib(&self) -> u64 {
        self.total_mib
    }

    /// MiB reserved by the instances alive now.
    pub fn in_use_mib(&self) -> u64 {
        self.total_mib - self.permits.available_permits() as u64
    }

    /// Reserves `memory_limit` bytes (rounded up to MiB) for an instance of
    /// `plugin`.
    pub(crate) async fn reserve(&self, plugin: &str, memory_limit: u64) -> Result<Reservation, PluginError> {
        let mib = memory_limit.div_ceil(1 << 20).clamp(1, self.total_mib);
        match tokio::time::timeout(self.wait, self.permits.clone().acquire_many_owned(mib as u32)).await {
            Ok(Ok(reservation)) => Ok(reservation),
            Ok(Err(_)) | Err(_) => Err(PluginError::busy(
                plugin,
                format!(
                    "the plugin memory budget (plugins.totalmemorymib: {} MiB) is in use by other requests; \
                     waited {:?} for {mib} MiB",
                    self.total_mib, self.wait
                ),
            )),
        }
    }
}

/// The default budget: a quarter of the memory this process may have (the
/// machine's, or its cgroup's limit when lower), at least one instance's
/// worth.
pub fn default_total_mib(memory_limit: u64) -> u64 {
    let one = memory_limit.div_ceil(1 << 20).max(1);
    (available_memory() >> 20).saturating_div(4).max(one)
}

fn available_memory() -> u64 {
    // SAFETY: sysconf only reads system constants.
    let physical = unsafe {
        let pages = libc::sysconf(libc::_SC_PHYS_PAGES);
        let size = libc::sysconf(libc::_SC_PAGESIZE);
        if pages > 0 && size > 0 {
            pages as u64 * size as u64
        } else {
            u64::MAX
        }
    };
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .unwrap_or(u64::MAX);
    physical.min(cgroup)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_wait_then_fail_as_busy() {
        let budget = MemoryBudget::new(100, Duration::from_millis(100));
        let first = budget.reserve("p", 60 << 20).await.unwrap();
        assert_eq!(budget.in_use_mib(), 60);
        let err = budget.reserve("p", 60 << 20).await.unwrap_err();
        assert!(err.busy, "{err}");
        assert!(err.to_string().contains("plugins.totalmemorymib: 100 MiB"), "{err}");
        drop(first);
        let again = budget.reserve("p", 60 << 20).await.unwrap();
        assert_eq!(budget.in_use_mib(), 60);
        drop(again);
        // More than the whole budget reserves the whole budget, not forever.
        let all = budget.reserve("p", 4 << 30).await.unwrap();
        assert_eq!(budget.in_use_mib(), 100);
        drop(all);
    }

    #[test]
    fn the_default_is_a_quarter_of_memory_and_holds_one_instance() {
        let total = default_total_mib(256 << 20);
        assert!(total >= 256);
        assert!(total <= (available_memory() >> 20) / 4 + 256);
    }
}
