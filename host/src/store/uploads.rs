//! Blob uploads. All state is in storage: `_uploads/<id>/startedat` says the
//! upload exists, `_uploads/<id>/data` holds what was received, continued by
//! a writer in append mode and closed after each chunk; its size is the
//! offset. So any process sharing the storage takes the next chunk, and an
//! upload survives a restart. No hash state is kept between requests: unless
//! one request carried all the data (hashed on its way in), completing reads
//! it back to verify the digest, then moves it into place, so a blob becomes
//! visible whole and verified or not at all.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::OwnedMutexGuard;

use crate::storage::{FileWriter, StorageError};

use super::online::Key;
use super::time::{parse_rfc3339, rfc3339};
use super::{absent_is_none, layout, Algorithm, Digest, Hasher, Result, Store, StoreError};

/// How long a driver's temporary file must stay untouched before purging
/// takes it for one an interrupted write left: a live write touches its file
/// every few milliseconds.
pub const STALE_TEMPORARY: Duration = Duration::from_secs(3600);

/// Bytes asked of a reader at a time when hashing stored content.
const READ_PIECE: u32 = 1 << 20;

/// What one purge removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Purged {
    pub uploads: usize,
    pub temporary_files: u64,
}

/// An upload open for writing: what it holds so far, and a writer that
/// appends to it. Holds the upload's turn in this process until it is
/// closed, kept, discarded or completed.
pub struct Upload {
    name: String,
    id: String,
    writer: Counted,
    offset: u64,
    _turn: Option<OwnedMutexGuard<()>>,
}

impl Upload {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The bytes the upload held when it was opened: where the next chunk
    /// must start.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Where the request's bytes go.
    pub fn writer(&mut self) -> &mut dyn FileWriter {
        &mut self.writer
    }

    /// The bytes this request has written so far.
    pub fn written(&self) -> u64 {
        self.writer.written
    }

    /// Ends this request's part; returns the bytes the upload now holds.
    pub async fn close(self) -> Result<u64> {
        let size = self.offset + self.writer.written;
        self.writer.inner.close().await?;
        Ok(size)
    }

    /// Keeps what was written for a retry after a failed chunk (a chunk cut
    /// short leaves the offset where the client can see it).
    pub async fn keep(self) {
        if let Err(err) = self.writer.inner.close().await {
            tracing::warn!(upload = self.id, "closing an upload after a failed chunk: {err}");
        }
    }
}

/// A writer that counts what it took, so that closing an upload needs no
/// second `size` call.
struct Counted {
    inner: Box<dyn FileWriter>,
    written: u64,
}

impl Counted {
    fn new(inner: Box<dyn FileWriter>) -> Counted {
        Counted { inner, written: 0 }
    }
}

#[async_trait::async_trait]
impl FileWriter for Counted {
    async fn write(&mut self, data: &[u8]) -> crate::storage::Result<()> {
        self.inner.write(data).await?;
        self.written += data.len() as u64;
        Ok(())
    }

    async fn size(&mut self) -> crate::storage::Result<u64> {
        self.inner.size().await
    }

    async fn close(self: Box<Self>) -> crate::storage::Result<()> {
        self.inner.close().await
    }

    async fn cancel(self: Box<Self>) -> crate::storage::Result<()> {
        self.inner.cancel().await
    }

    async fn commit(self: Box<Self>) -> crate::storage::Result<()> {
        self.inner.commit().await
    }
}

/// Upload ids whose request is running in this process. A chunk is
/// checked against the upload's offset and then appended; two requests
/// interleaving those steps could both be acknowledged while one chunk is
/// lost. Taking turns, the second sees the offset the first left.
/// (Processes sharing the storage do not see each other's turns.)
#[derive(Default)]
pub(super) struct Turns(std::sync::Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>);

impl Turns {
    /// Waits for the turn of upload `id`; it lasts as long as the guard.
    async fn take(&self, id: &str) -> OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.0.lock().unwrap_or_else(|e| e.into_inner());
            // Uploads nobody is working on: forgotten.
            locks.retain(|_, lock| lock.strong_count() > 0);
            match locks.get(id).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(tokio::sync::Mutex::new(()));
                    locks.insert(id.to_string(), Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }
}

impl Store {
    /// Starts an upload that chunks will continue; returns its id.
    pub async fn start_upload(&self, name: &str) -> Result<String> {
        let id = self.create_upload(name).await?;
        // The data file exists from the start, so every chunk appends.
        self.driver().put_content(&layout::upload_data(name, &id), b"").await?;
        Ok(id)
    }

    /// Starts an upload whose whole content this request writes.
    pub async fn start_monolithic_upload(&self, name: &str) -> Result<Upload> {
        let id = self.create_upload(name).await?;
        let writer = self.driver().writer(&layout::upload_data(name, &id), false).await?;
        Ok(Upload {
            name: name.to_string(),
            id,
            writer: Counted::new(writer),
            offset: 0,
            _turn: None,
        })
    }

    /// Opens the upload `id` of `name` to append a chunk, waiting for its
    /// turn in this process.
    pub async fn open_upload(&self, name: &str, id: &str) -> Result<Upload> {
        let turn = self.upload_turns.take(id).await;
        self.ensure_upload(name, id).await?;
        let mut writer = self.driver().writer(&layout::upload_data(name, id), true).await?;
        let offset = match writer.size().await {
            Ok(offset) => offset,
            Err(err) => {
                let _ = writer.close().await;
                return Err(err.into());
            }
        };
        Ok(Upload {
            name: name.to_string(),
            id: id.to_string(),
            writer: Counted::new(writer),
            offset,
            _turn: Some(turn),
        })
    }

    /// The bytes the upload holds, asked of an append writer (not `stat`):
    /// the contract promises a closed upload's size to the next writer only.
    pub async fn upload_offset(&self, name: &str, id: &str) -> Result<u64> {
        self.ensure_upload(name, id).await?;
        let mut writer = self.driver().writer(&layout::upload_data(name, id), true).await?;
        let size = writer.size().await;
        writer.close().await?;
        Ok(size?)
    }

    /// Abandons the upload.
    pub async fn cancel_upload(&self, name: &str, id: &str) -> Result<()> {
        self.ensure_upload(name, id).await?;
        Ok(self.driver().delete(&layout::upload(name, id)).await?)
    }

    /// Commits what `upload` received, verifies it against `digest` and
    /// makes it the blob, linked into the repository. `streamed` is the
    /// digest of the data when this request wrote all of it; otherwise (chunks
    /// from earlier requests) the stored data is read back. A mismatch
    /// discards the upload, as distribution does: the client starts over.
    pub async fn complete_upload(&self, upload: Upload, digest: &Digest, streamed: Option<Digest>) -> Result<()> {
        let size = upload.offset + upload.writer.written;
        let Upload { name, id, writer, .. } = upload;
        // Durable and visible before it is moved (and read back).
        writer.inner.commit().await?;
        let data = layout::upload_data(&name, &id);
        let actual = match streamed {
            Some(actual) => actual,
            None => self.digest_of_stored(&data, digest.algorithm()).await?,
        };
        if actual != *digest {
            self.discard(&name, &id).await;
            return Err(StoreError::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        self.record_link(Key::Digest(digest)).await?;
        if !self.blob_exists(digest).await? {
            self.driver().move_to(&data, &layout::blob_data(digest)).await?;
        }
        self.link_layer(&name, digest).await?;
        self.cache.keep_size(digest, size);
        self.discard(&name, &id).await;
        Ok(())
    }

    /// Removes an upload that failed for good (a monolithic upload has no
    /// later chunk).
    pub async fn discard_upload(&self, upload: Upload) {
        let Upload { name, id, writer, .. } = upload;
        let _ = writer.inner.cancel().await;
        self.discard(&name, &id).await;
    }

    /// Removes uploads started longer than `older_than` ago, in every
    /// repository, and what interrupted writes left behind (temporary files
    /// untouched for [`STALE_TEMPORARY`]). Meant for a periodic task.
    pub async fn purge(&self, older_than: Duration) -> Result<Purged> {
        Ok(Purged {
            uploads: self.purge_uploads(older_than).await?,
            temporary_files: self.driver().purge_temporary(STALE_TEMPORARY).await?,
        })
    }

    async fn purge_uploads(&self, older_than: Duration) -> Result<usize> {
        let driver = self.driver();
        let now = SystemTime::now();
        let mut purged = 0;
        for name in self.repositories_with(&["_uploads"]).await? {
            let Some(uploads) = absent_is_none(driver.list(&layout::uploads(&name)).await)? else {
                continue;
            };
            for upload in uploads {
                let id = super::base_name(&upload);
                let started = absent_is_none(driver.get_content(&layout::upload_started_at(&name, id)).await)?
                    .and_then(|text| parse_rfc3339(std::str::from_utf8(&text).ok()?));
                // Without a readable start time, the directory's own age.
                let started = match started {
                    Some(started) => started,
                    None => match absent_is_none(driver.stat(&upload).await)? {
                        Some(info) => UNIX_EPOCH + Duration::from_nanos(info.modified_ns),
                        None => continue,
                    },
                };
                if now.duration_since(started).is_ok_and(|age| age > older_than) {
                    absent_is_none(driver.delete(&upload).await)?;
                    purged += 1;
                }
            }
        }
        Ok(purged)
    }

    async fn create_upload(&self, name: &str) -> Result<String> {
        let id = new_id();
        let started = rfc3339(SystemTime::now());
        self.driver()
            .put_content(&layout::upload_started_at(name, &id), started.as_bytes())
            .await?;
        Ok(id)
    }

    async fn ensure_upload(&self, name: &str, id: &str) -> Result<()> {
        match absent_is_none(self.driver().stat(&layout::upload_started_at(name, id)).await)? {
            Some(_) => Ok(()),
            None => Err(StoreError::UploadUnknown {
                name: name.to_string(),
                id: id.to_string(),
            }),
        }
    }

    /// Removes the upload's directory; a failure leaves it to the purge.
    async fn discard(&self, name: &str, id: &str) {
        if let Err(err) = absent_is_none(self.driver().delete(&layout::upload(name, id)).await) {
            tracing::warn!(repository = name, upload = id, "removing a finished upload: {err}");
        }
    }

    /// The digest of the stored content at `path`, read back in pieces.
    pub(super) async fn digest_of_stored(&self, path: &str, algorithm: Algorithm) -> Result<Digest, StorageError> {
        let mut reader = self.driver().reader(path, 0).await?;
        let mut hasher = Hasher::new(algorithm);
        loop {
            let data = reader.read(READ_PIECE).await?;
            if data.is_empty() {
                return Ok(hasher.finish());
            }
            hasher.update(&data);
        }
    }
}

/// A fresh upload id, UUID-shaped: unique across processes sharing storage
/// (per-process random keys, the clock, the pid and a counter, hashed).
fn new_id() -> String {
    use std::hash::{BuildHasher, Hasher as _};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut seed = std::collections::hash_map::RandomState::new().build_hasher();
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    seed.write_u64(count);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let seed = format!("{}:{}:{nanos}:{count}", seed.finish(), std::process::id());
    let digest = Digest::of(Algorithm::Sha256, seed.as_bytes());
    let h = digest.hex();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_unique_and_path_safe() {
        let (a, b) = (super::new_id(), super::new_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit() || c == b'-'));
    }
}
