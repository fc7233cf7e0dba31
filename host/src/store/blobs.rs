//! Blobs: content stored once by digest, and served through a repository
//! only when the repository links it (as a layer, or as a manifest, which is
//! a blob too).

use crate::storage::FileReader;

use super::online::Key;
use super::{absent_is_none, layout, Digest, Result, Store, StoreError};

impl Store {
    /// The size of the blob `digest` if `name` links it and its data exists.
    pub async fn blob_size(&self, name: &str, digest: &Digest) -> Result<u64> {
        let unknown = || StoreError::BlobUnknown {
            name: name.to_string(),
            digest: digest.clone(),
        };
        let mut linked = false;
        for link in [
            layout::layer_link(name, digest),
            layout::manifest_revision_link(name, digest),
        ] {
            if self.read_link(&link).await?.as_ref() == Some(digest) {
                linked = true;
                break;
            }
        }
        if !linked {
            return Err(unknown());
        }
        if let Some(size) = self.cache.size(digest) {
            return Ok(size);
        }
        let info = absent_is_none(self.driver().stat(&layout::blob_data(digest)).await)?;
        let size = info.map(|info| info.size).ok_or_else(unknown)?;
        self.cache.keep_size(digest, size);
        Ok(size)
    }

    /// Streams the data of `digest` from `offset`; the caller has checked
    /// that the repository links it ([`Store::blob_size`]).
    pub async fn blob_reader(&self, digest: &Digest, offset: u64) -> Result<Box<dyn FileReader>> {
        Ok(self.driver().reader(&layout::blob_data(digest), offset).await?)
    }

    /// Where a client may fetch the data of `digest` itself, if the driver
    /// has such a place (a presigned URL).
    pub async fn blob_redirect(&self, digest: &Digest) -> Result<Option<String>> {
        Ok(self.driver().redirect_url("GET", &layout::blob_data(digest)).await?)
    }

    /// Links the blob `digest` into `name` if its data is anywhere in the
    /// storage (the blob store is shared); whether it did.
    pub async fn mount_blob(&self, name: &str, digest: &Digest) -> Result<bool> {
        self.record_link(Key::Digest(digest)).await?;
        if !self.blob_exists(digest).await? {
            return Ok(false);
        }
        self.link_layer(name, digest).await?;
        Ok(true)
    }

    /// Unlinks the blob from the repository. Its data stays for garbage
    /// collection, since other repositories may link it too.
    pub async fn unlink_blob(&self, name: &str, digest: &Digest) -> Result<()> {
        let link = layout::layer_link(name, digest);
        if absent_is_none(self.driver().stat(&link).await)?.is_none() {
            return Err(StoreError::BlobUnknown {
                name: name.to_string(),
                digest: digest.clone(),
            });
        }
        // The link's directory, so that no empty `<alg>/<hex>` is left behind.
        self.driver().delete(link.trim_end_matches("/link")).await?;
        Ok(())
    }

    /// Whether the blob's data exists anywhere in storage. Always asked of
    /// storage, never of the cache: garbage collection in another process
    /// may have deleted it, and an upload or manifest that took it for
    /// present would link data that is gone.
    pub(super) async fn blob_exists(&self, digest: &Digest) -> Result<bool> {
        let info = absent_is_none(self.driver().stat(&layout::blob_data(digest)).await)?;
        Ok(info.is_some_and(|info| !info.is_dir))
    }

    pub(super) async fn link_layer(&self, name: &str, digest: &Digest) -> Result<()> {
        let link = layout::link_content(digest);
        let path = layout::layer_link(name, digest);
        Ok(self.driver().put_content(&path, link.as_bytes()).await?)
    }

    /// The digest a link file holds; `None` if there is none or it is
    /// garbage (a corrupt link counts as absent).
    pub(super) async fn read_link(&self, path: &str) -> Result<Option<Digest>> {
        let content = absent_is_none(self.driver().get_content(path).await)?;
        Ok(content.and_then(|content| {
            let text = std::str::from_utf8(&content).ok()?;
            Digest::parse(text.trim()).ok()
        }))
    }
}
