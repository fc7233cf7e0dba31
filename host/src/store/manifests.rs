//! Manifests and tags: a manifest is a blob (its bytes exactly as pushed)
//! linked from the repository's `_manifests/revisions`; a tag is a link to
//! one of them, with the history of what it pointed at. Tag resolution
//! always reads storage: another process may have moved the tag.

use super::online::Key;
use super::{absent_is_none, base_name, layout, Digest, Result, Store, StoreError};

/// A manifest reference: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Tag(String),
    Digest(Digest),
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reference::Tag(tag) => f.write_str(tag),
            Reference::Digest(digest) => digest.fmt(f),
        }
    }
}

/// What a manifest needs the repository to hold before it may be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dependency {
    /// A config or layer blob.
    Blob(Digest),
    /// A manifest an index lists.
    Manifest(Digest),
}

impl Store {
    /// The digest `reference` names in the repository.
    pub async fn resolve(&self, name: &str, reference: &Reference) -> Result<Digest> {
        let found = match reference {
            Reference::Tag(tag) => self.read_link(&layout::tag_current_link(name, tag)).await?,
            Reference::Digest(digest) => self.has_manifest(name, digest).await?.then(|| digest.clone()),
        };
        found.ok_or_else(|| manifest_unknown(name, reference))
    }

    /// The digest and bytes of the manifest `reference` names.
    pub async fn manifest(&self, name: &str, reference: &Reference) -> Result<(Digest, Vec<u8>)> {
        let digest = self.resolve(name, reference).await?;
        if let Some(bytes) = self.cache.manifest(&digest) {
            return Ok((digest, bytes.to_vec()));
        }
        match absent_is_none(self.driver().get_content(&layout::blob_data(&digest)).await)? {
            Some(bytes) => {
                self.cache.keep_manifest(&digest, &bytes);
                Ok((digest, bytes))
            }
            None => Err(manifest_unknown(name, reference)),
        }
    }

    /// Whether the repository has the manifest `digest`.
    pub async fn has_manifest(&self, name: &str, digest: &Digest) -> Result<bool> {
        let link = self.read_link(&layout::manifest_revision_link(name, digest)).await?;
        Ok(link.as_ref() == Some(digest))
    }

    /// Stores the manifest `bytes` (whose digest is `digest`) in `name`, and
    /// points each of `tags` at it, once every dependency is in the
    /// repository. All of it is stored or none: when a write fails, the tags
    /// already moved are moved back and a revision this call made is removed.
    pub async fn put_manifest(
        &self,
        name: &str,
        digest: &Digest,
        bytes: &[u8],
        tags: &[String],
        dependencies: &[Dependency],
    ) -> Result<()> {
        // Recorded before anything is looked for: see `online`'s rules.
        self.record_link(Key::Digest(digest)).await?;
        for tag in tags {
            self.record_link(Key::Tag { name, tag }).await?;
        }
        for dependency in dependencies {
            let (Dependency::Blob(needed) | Dependency::Manifest(needed)) = dependency;
            self.record_link(Key::Digest(needed)).await?;
        }
        for dependency in dependencies {
            let (needed, present) = match dependency {
                Dependency::Blob(needed) => match self.blob_size(name, needed).await {
                    Ok(_) => (needed, true),
                    Err(StoreError::BlobUnknown { .. }) => (needed, false),
                    Err(err) => return Err(err),
                },
                Dependency::Manifest(needed) => (needed, self.has_manifest(name, needed).await?),
            };
            if !present {
                return Err(StoreError::DependencyUnknown {
                    name: name.to_string(),
                    digest: needed.clone(),
                });
            }
        }
        // What an undo needs; without tags, nothing after the revision can fail.
        let had_revision = tags.is_empty() || self.has_manifest(name, digest).await?;
        let mut before = Vec::with_capacity(tags.len());
        for tag in tags {
            before.push(self.read_link(&layout::tag_current_link(name, tag)).await?);
        }
        let driver = self.driver();
        if !self.blob_exists(digest).await? {
            driver.put_content(&layout::blob_data(digest), bytes).await?;
        }
        self.cache.keep_size(digest, bytes.len() as u64);
        self.cache.keep_manifest(digest, bytes);
        let link = layout::link_content(digest);
        driver
            .put_content(&layout::manifest_revision_link(name, digest), link.as_bytes())
            .await?;
        let mut tagged = 0;
        let mut outcome = Ok(());
        for tag in tags {
            // A tag is touched, and may need putting back, from its first write.
            tagged += 1;
            outcome = driver
                .put_content(&layout::tag_index_link(name, tag, digest), link.as_bytes())
                .await;
            if outcome.is_ok() {
                outcome = driver
                    .put_content(&layout::tag_current_link(name, tag), link.as_bytes())
                    .await;
            }
            if outcome.is_err() {
                break;
            }
        }
        if let Err(err) = outcome {
            let touched = tags.iter().zip(&before).take(tagged);
            self.undo_put(name, digest, had_revision, touched).await;
            return Err(err.into());
        }
        Ok(())
    }

    /// Undoes a failed [`Store::put_manifest`]: each touched tag points
    /// where it pointed `before` (or is gone, if it was not there), and the
    /// revision is removed unless it was there already. Its history keeps
    /// the entry of the digest, as after any tag move. What cannot be
    /// undone is logged; the caller reports the first failure.
    async fn undo_put(
        &self,
        name: &str,
        digest: &Digest,
        had_revision: bool,
        touched: impl Iterator<Item = (&String, &Option<Digest>)>,
    ) {
        let driver = self.driver();
        for (tag, before) in touched {
            let undone = match before {
                Some(old) => {
                    let link = layout::link_content(old);
                    driver
                        .put_content(&layout::tag_current_link(name, tag), link.as_bytes())
                        .await
                }
                None => absent_is_none(driver.delete(&layout::tag(name, tag)).await).map(drop),
            };
            if let Err(err) = undone {
                tracing::error!(repository = name, tag, %err, "a failed push could not put its tag back");
            }
        }
        if !had_revision {
            let link = layout::manifest_revision_link(name, digest);
            if let Err(err) = absent_is_none(driver.delete(link.trim_end_matches("/link")).await) {
                tracing::error!(repository = name, %digest, %err, "a failed push could not remove its revision");
            }
        }
    }

    /// By digest: removes the manifest from the repository, and every tag
    /// pointing at it. By tag: removes the tag only (spec v1.1).
    pub async fn delete_manifest(&self, name: &str, reference: &Reference) -> Result<()> {
        let digest = self.resolve(name, reference).await?;
        let driver = self.driver();
        if let Reference::Tag(tag) = reference {
            driver.delete(&layout::tag(name, tag)).await?;
            return Ok(());
        }
        // Its tags first: a deletion that fails half-way leaves the manifest
        // by digest, never a tag that names a manifest gone.
        let tags = absent_is_none(driver.list(&layout::tags(name)).await)?.unwrap_or_default();
        for tag_dir in tags {
            let current = layout::tag_current_link(name, base_name(&tag_dir));
            if self.read_link(&current).await?.as_ref() == Some(&digest) {
                driver.delete(&tag_dir).await?;
            }
        }
        let link = layout::manifest_revision_link(name, &digest);
        driver.delete(link.trim_end_matches("/link")).await?;
        Ok(())
    }

    /// The repository's tags, unsorted. A repository with manifests or
    /// blobs but no tag has none (the spec's main branch; distribution 2.8
    /// answered NAME_UNKNOWN); one with neither is not known.
    pub async fn tags(&self, name: &str) -> Result<Vec<String>> {
        let driver = self.driver();
        if let Some(children) = absent_is_none(driver.list(&layout::tags(name)).await)? {
            return Ok(children.iter().map(|child| base_name(child).to_string()).collect());
        }
        for held in [layout::manifest_revisions(name), layout::layers(name)] {
            if absent_is_none(driver.list(&held).await)?.is_some_and(|entries| !entries.is_empty()) {
                return Ok(Vec::new());
            }
        }
        Err(StoreError::NameUnknown(name.to_string()))
    }

    /// Every manifest of the repository, digest and bytes, in order of
    /// digest. Found by reading what `_manifests/revisions` links, not from
    /// an index of our own: always in step with the revisions (deletes
    /// included), and it works on a storage written by distribution.
    pub async fn manifests(&self, name: &str) -> Result<Vec<(Digest, Vec<u8>)>> {
        let driver = self.driver();
        let mut manifests = Vec::new();
        for digest in self.revisions(name).await? {
            // A revision whose link is gone was deleted meanwhile.
            if !self.has_manifest(name, &digest).await? {
                continue;
            }
            if let Some(bytes) = absent_is_none(driver.get_content(&layout::blob_data(&digest)).await)? {
                manifests.push((digest, bytes));
            }
        }
        Ok(manifests)
    }

    /// The digests below `_manifests/revisions/<alg>/<hex>`, in lexical order.
    pub(super) async fn revisions(&self, name: &str) -> Result<Vec<Digest>> {
        let driver = self.driver();
        let root = layout::manifest_revisions(name);
        let Some(algorithms) = absent_is_none(driver.list(&root).await)? else {
            return Ok(Vec::new());
        };
        let mut digests = Vec::new();
        for algorithm_dir in algorithms {
            let algorithm = base_name(&algorithm_dir);
            let Some(hexes) = absent_is_none(driver.list(&algorithm_dir).await)? else {
                continue;
            };
            for hex_dir in hexes {
                if let Ok(digest) = Digest::parse(&format!("{algorithm}:{}", base_name(&hex_dir))) {
                    digests.push(digest);
                }
            }
        }
        digests.sort();
        Ok(digests)
    }
}

fn manifest_unknown(name: &str, reference: &Reference) -> StoreError {
    StoreError::ManifestUnknown {
        name: name.to_string(),
        reference: reference.to_string(),
    }
}
