//! What never changes for a digest, kept in memory within bounds: a blob's
//! size and a manifest's bytes (distribution's `blobdescriptor` cache). It
//! is safe with replicas sharing the storage, since content is addressed by
//! its digest; whether a repository links a digest, where a tag points,
//! and whether a blob exists at all (garbage collection, in this process or
//! another, removes blobs) are read from storage every time.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use super::Digest;

/// Distribution's default for `storage.cache.blobdescriptorsize`.
pub const DEFAULT_ENTRIES: usize = 10_000;

/// The most `storage.cache.blobdescriptorsize` may be: each entry holds a
/// digest twice (map and order), a few hundred bytes, so a few hundred MiB.
pub const MAX_ENTRIES: usize = 1_000_000;

/// The most manifest bytes kept, whatever the number of entries.
pub const MANIFEST_BYTES: usize = 16 << 20;

/// The cache of one store; disabled, it keeps nothing.
pub(super) struct ContentCache {
    sizes: Mutex<Fifo<u64>>,
    manifests: Mutex<Fifo<Arc<[u8]>>>,
}

impl ContentCache {
    /// Keeps at most `entries` sizes and `entries` manifests (0: nothing).
    pub fn new(entries: usize) -> ContentCache {
        ContentCache {
            sizes: Mutex::new(Fifo::new(entries, usize::MAX)),
            manifests: Mutex::new(Fifo::new(entries, MANIFEST_BYTES)),
        }
    }

    pub fn size(&self, digest: &Digest) -> Option<u64> {
        lock(&self.sizes).get(digest).copied()
    }

    pub fn keep_size(&self, digest: &Digest, size: u64) {
        lock(&self.sizes).insert(digest, size, 0);
    }

    pub fn manifest(&self, digest: &Digest) -> Option<Arc<[u8]>> {
        lock(&self.manifests).get(digest).cloned()
    }

    pub fn keep_manifest(&self, digest: &Digest, bytes: &[u8]) {
        lock(&self.manifests).insert(digest, bytes.into(), bytes.len());
    }

    /// Forgets a blob that garbage collection deleted.
    pub fn forget(&self, digest: &Digest) {
        lock(&self.sizes).remove(digest);
        lock(&self.manifests).remove(digest);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// A map that forgets its oldest entries first once it holds `entries`
/// values or `bytes` of them.
struct Fifo<V> {
    values: HashMap<Digest, (V, usize)>,
    order: VecDeque<Digest>,
    entries: usize,
    bytes: usize,
    held: usize,
}

impl<V> Fifo<V> {
    fn new(entries: usize, bytes: usize) -> Self {
        Fifo {
            values: HashMap::new(),
            order: VecDeque::new(),
            entries,
            bytes,
            held: 0,
        }
    }

    fn get(&self, digest: &Digest) -> Option<&V> {
        self.values.get(digest).map(|(value, _)| value)
    }

    /// Keeps `value`, which weighs `weight` bytes, unless it alone is over
    /// the bounds.
    fn insert(&mut self, digest: &Digest, value: V, weight: usize) {
        if self.entries == 0 || weight > self.bytes || self.values.contains_key(digest) {
            return;
        }
        while self.values.len() >= self.entries
            || self.held + weight > self.bytes
            || self.order.len() >= 2 * self.entries
        {
            let Some(oldest) = self.order.pop_front() else { break };
            if let Some((_, weight)) = self.values.remove(&oldest) {
                self.held -= weight;
            }
        }
        self.values.insert(digest.clone(), (value, weight));
        self.order.push_back(digest.clone());
        self.held += weight;
    }

    /// Leaves the digest in `order` (finding it there would cost a scan);
    /// `insert` drops such stale entries as it goes.
    fn remove(&mut self, digest: &Digest) {
        if let Some((_, weight)) = self.values.remove(digest) {
            self.held -= weight;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(n: u8) -> Digest {
        Digest::of(crate::store::Algorithm::Sha256, &[n])
    }

    #[test]
    fn the_oldest_entries_go_first_when_full() {
        let cache = ContentCache::new(2);
        for n in 0..3 {
            cache.keep_size(&digest(n), u64::from(n) + 10);
        }
        assert_eq!(cache.size(&digest(0)), None);
        assert_eq!(cache.size(&digest(1)), Some(11));
        assert_eq!(cache.size(&digest(2)), Some(12));
    }

    #[test]
    fn manifest_bytes_stay_within_their_bound() {
        let cache = ContentCache::new(100);
        let half = vec![7u8; MANIFEST_BYTES / 2];
        for n in 0..3 {
            cache.keep_manifest(&digest(n), &half);
        }
        assert!(cache.manifest(&digest(0)).is_none());
        assert_eq!(cache.manifest(&digest(2)).as_deref(), Some(&half[..]));
        cache.keep_manifest(&digest(9), &vec![0u8; MANIFEST_BYTES + 1]);
        assert!(
            cache.manifest(&digest(9)).is_none(),
            "one over the bound alone is not kept"
        );
    }

    #[test]
    fn a_forgotten_digest_is_gone_and_frees_its_room() {
        let cache = ContentCache::new(2);
        cache.keep_size(&digest(1), 5);
        cache.keep_manifest(&digest(1), b"{}");
        cache.forget(&digest(1));
        assert_eq!(cache.size(&digest(1)), None);
        assert!(cache.manifest(&digest(1)).is_none());
        cache.keep_size(&digest(2), 6);
        cache.keep_size(&digest(3), 7);
        assert_eq!(cache.size(&digest(2)), Some(6), "the forgotten entry left room");
    }

    #[test]
    fn a_disabled_cache_keeps_nothing() {
        let cache = ContentCache::new(0);
        cache.keep_size(&digest(1), 5);
        cache.keep_manifest(&digest(1), b"{}");
        assert_eq!(cache.size(&digest(1)), None);
        assert!(cache.manifest(&digest(1)).is_none());
    }
}
