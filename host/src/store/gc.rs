//! Garbage collection: mark every blob a kept manifest needs, then sweep the
//! blobs nobody marked and the repository links that would point at them,
//! on distribution's layout, as distribution's `registry garbage-collect`.
//!
//! What is kept, per repository:
//! - every manifest revision, or with `delete_untagged` only those a tag
//!   points at now, and then
//! - the children of a kept index (recursively), and every manifest whose
//!   `subject` is kept (referrers live and die with their subject).
//!
//! A kept manifest marks itself, its config and its layers. The untagged
//! manifests that are not kept lose their revision link and their entries
//! in the tags' history. The sweep then deletes, in this order, the
//! `_layers` links to unmarked blobs (so no request finds a link whose data
//! is going) and the unmarked blobs' data.
//!
//! Memory: the set of marked digests and, for the few repositories marked
//! at once, their manifests' references; blobs are swept page by page from
//! the driver's `walk`, never listed whole.
//!
//! Speed: repositories are marked and swept, and a page's blobs deleted,
//! several at once on the runtime's threads, each with plugin instances of
//! its own (one per repository, as a registry request has one, and one per
//! share of a page's blobs). On a driver whose directory is its storage
//! (the filesystem driver) the host walks, reads and deletes there itself.
//! On a driver that deletes in bulk (S3), an offline run deletes a walk
//! page's blobs, and a repository's links, with one call: a `delete` each
//! would cost a listing each.
//!
//! Safety: without `online`, this run assumes no push happens meanwhile (distribution's rule
//! for its garbage-collect: a read-only or stopped registry). A blob
//! uploaded during the run and not yet referenced would be swept.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;

use futures_util::stream::{self, Stream, StreamExt};
use serde_json::Value;

use crate::config::RetentionConfig;
use crate::plugin::one_instance_per_request;
use crate::storage::{FileInfo, StorageError};

use super::online::{Key, OnlineRun};
use super::{absent_is_none, base_name, layout, Digest, Result, Store};

/// What to collect.
#[derive(Debug, Clone, Default)]
pub struct GcOptions {
    /// Report what would be deleted, delete nothing.
    pub dry_run: bool,
    /// Delete manifests no tag points at (and no kept index or subject
    /// needs), instead of keeping every revision.
    pub delete_untagged: bool,
    /// Tags to delete first, per repository (`storage.retention`).
    pub retention: RetentionConfig,
    /// The run this collection is, when the registry serves meanwhile:
    /// deletions then follow `online`'s rules.
    pub online: Option<OnlineRun>,
}

/// Something the collection deletes (or, in a dry run, would delete).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deletion {
    /// A tag its repository's retention policy does not keep.
    Tag { name: String, tag: String },
    /// An untagged manifest's revision in a repository.
    Manifest { name: String, digest: Digest },
    /// A repository's link to a blob that is swept.
    Link { name: String, digest: Digest },
    /// A blob's data, `size` bytes.
    Blob { digest: Digest, size: u64 },
}

/// Where a collection is, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GcProgress {
    /// Repositories marked so far, of `of`.
    Marking { repositories: u64, of: u64 },
    /// Blobs looked at so far in the sweep.
    Sweeping { blobs: u64 },
}

/// What a collection did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    pub repositories: u64,
    /// Manifests kept, over all repositories.
    pub manifests_kept: u64,
    /// Distinct digests marked: kept manifests, configs and layers.
    pub blobs_marked: u64,
    /// Blobs the sweep looked at.
    pub blobs_seen: u64,
    pub tags_deleted: u64,
    pub manifests_deleted: u64,
    pub links_deleted: u64,
    pub blobs_deleted: u64,
    pub bytes_deleted: u64,
}

/// How many files one `walk` page asks for.
const WALK_PAGE: u32 = 1000;

/// How many repositories `berth gc` marks or sweeps at once, and how many
/// blobs it deletes at once: enough to overlap S3's round trips, while
/// memory stays that of a few repositories.
const OFFLINE_PARALLEL: usize = 16;

/// The same while the registry serves: the collection is not in a hurry,
/// and the requests it runs beside should not wait behind it. Measured on
/// 2 cores (bench/gc.sh, 90 s of pushes and pulls beside back-to-back
/// runs): with 2 at once pushes kept 0.74 and pulls 0.76 of their
/// throughput, with 1 0.81 and 0.86.
const ONLINE_PARALLEL: usize = 1;

/// The most blobs one task of the sweep deletes, on one plugin instance.
const MAX_BLOBS_PER_TASK: usize = 64;

/// How many tasks of a run go at once.
fn parallelism(options: &GcOptions) -> usize {
    if options.online.is_some() {
        ONLINE_PARALLEL
    } else {
        OFFLINE_PARALLEL
    }
}

/// What marking one repository found.
struct RepositoryMark {
    name: String,
    /// Tags deleted by retention.
    retired: Vec<String>,
    /// How many manifests it keeps.
    kept: u64,
    /// The kept manifests and what they reference.
    marked: Vec<Digest>,
    /// Revisions it does not keep.
    untagged: Vec<Digest>,
}

/// What a stored manifest refers to.
#[derive(Debug, Default)]
struct References {
    /// Config and layers (and the blobs of a schema 1 manifest).
    blobs: Vec<Digest>,
    /// The manifests of an index or manifest list.
    children: Vec<Digest>,
    subject: Option<Digest>,
}

impl Store {
    /// Collects garbage; `deleted` hears of every deletion made (in a dry
    /// run, that would be made), `progress` of the walk. A storage error
    /// stops the run where it is: what was deleted until then was garbage.
    pub async fn collect_garbage(
        &self,
        options: GcOptions,
        deleted: &mut (dyn FnMut(&Deletion) + Send),
        progress: &mut (dyn FnMut(GcProgress) + Send),
    ) -> Result<GcReport> {
        let options = Arc::new(options);
        let mut report = GcReport::default();
        let mut repositories = self.repositories().await?;
        repositories.sort();
        report.repositories = repositories.len() as u64;
        let mut marked = HashSet::new();
        let mut untagged = Vec::new();
        let now_ns = super::time::now_ns();
        let mut marks = self.in_parallel(&options, repositories, move |store, options, name| async move {
            store.mark_repository(name, &options, now_ns).await
        });
        while let Some(mark) = marks.next().await {
            let mark = mark?;
            for tag in mark.retired {
                deleted(&Deletion::Tag {
                    name: mark.name.clone(),
                    tag,
                });
                report.tags_deleted += 1;
            }
            report.manifests_kept += mark.kept;
            marked.extend(mark.marked);
            untagged.push((mark.name, mark.untagged));
            progress(GcProgress::Marking {
                repositories: untagged.len() as u64,
                of: report.repositories,
            });
        }
        report.blobs_marked = marked.len() as u64;

        let marked = Arc::new(marked);
        let for_sweeps = marked.clone();
        let mut sweeps = self.in_parallel(&options, untagged, move |store, options, (name, untagged)| {
            let marked = for_sweeps.clone();
            async move { store.sweep_repository(name, untagged, &marked, &options).await }
        });
        while let Some(deletions) = sweeps.next().await {
            for deletion in deletions? {
                match deletion {
                    Deletion::Manifest { .. } => report.manifests_deleted += 1,
                    _ => report.links_deleted += 1,
                }
                deleted(&deletion);
            }
        }
        self.sweep_blobs(&options, &marked, &mut report, deleted, progress)
            .await?;
        Ok(report)
    }

    /// Runs `work` on each of `items` on the runtime's threads, as many at
    /// once as `options` allow, each with plugin instances of its own (as a
    /// registry request has); the results come in the items' order. Storage
    /// round trips overlap, which on S3 are network round trips.
    fn in_parallel<I, F, W, T>(
        &self,
        options: &Arc<GcOptions>,
        items: I,
        mut work: F,
    ) -> impl Stream<Item = Result<T>> + Unpin
    where
        I: IntoIterator,
        F: FnMut(Store, Arc<GcOptions>, I::Item) -> W,
        W: Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        let parallel = parallelism(options);
        let store = self.clone();
        let options = options.clone();
        stream::iter(items)
            .map(move |item| {
                let task = tokio::spawn(one_instance_per_request(work(store.clone(), options.clone(), item)));
                async move { joined(task.await) }
            })
            .buffered(parallel)
    }

    /// Deletes the tags of `name` its retention policy does not keep, then
    /// marks what the repository keeps.
    async fn mark_repository(&self, name: String, options: &GcOptions, now_ns: u64) -> Result<RepositoryMark> {
        let candidates = match options.retention.policy_for(&name) {
            Some(policy) => self.tags_not_kept(&name, policy, now_ns).await?,
            None => Vec::new(),
        };
        let mut retired = Vec::new();
        for tag in candidates {
            let link = layout::tag_current_link(&name, &tag);
            let key = Key::Tag { name: &name, tag: &tag };
            if !self
                .delete_garbage(options, &link, &layout::tag(&name, &tag), key, None)
                .await?
            {
                continue;
            }
            if options.online.is_some() {
                // Its history, now that the current link is gone.
                self.delete_tag(&name, &tag).await?;
            }
            retired.push(tag);
        }
        let (kept, marked, untagged) = self.mark_manifests(&name, options, &retired).await?;
        Ok(RepositoryMark {
            name,
            retired,
            kept,
            marked,
            untagged,
        })
    }

    /// What `name` keeps, the `retired` tags counting as gone: how many
    /// manifests, the digests they mark, and the revisions it does not keep.
    async fn mark_manifests(
        &self,
        name: &str,
        options: &GcOptions,
        retired: &[String],
    ) -> Result<(u64, Vec<Digest>, Vec<Digest>)> {
        let revisions = self.linked_digests(&layout::manifest_revisions(name)).await?;
        let mut references = HashMap::with_capacity(revisions.len());
        for digest in &revisions {
            match absent_is_none(self.driver().get_content(&layout::blob_data(digest)).await)? {
                Some(bytes) => {
                    references.insert(digest.clone(), references_of(&bytes));
                }
                // Nothing to mark through; `berth storage check` reports it.
                None => tracing::warn!(repository = name, %digest, "a manifest revision has no data"),
            }
        }
        let mut kept: HashSet<Digest> = if options.delete_untagged {
            self.tagged(name, retired)
                .await?
                .into_iter()
                .filter(|d| references.contains_key(d))
                .collect()
        } else {
            references.keys().cloned().collect()
        };
        // Index children and referrers of what is kept, until nothing new.
        let mut pending: Vec<Digest> = kept.iter().cloned().collect();
        loop {
            while let Some(digest) = pending.pop() {
                for child in references
                    .get(&digest)
                    .map(|r| r.children.as_slice())
                    .unwrap_or_default()
                {
                    if references.contains_key(child) && kept.insert(child.clone()) {
                        pending.push(child.clone());
                    }
                }
            }
            for (digest, refs) in &references {
                if refs.subject.as_ref().is_some_and(|s| kept.contains(s)) && kept.insert(digest.clone()) {
                    pending.push(digest.clone());
                }
            }
            if pending.is_empty() {
                break;
            }
        }
        let mut marked = Vec::new();
        for digest in &kept {
            marked.push(digest.clone());
            if let Some(refs) = references.get(digest) {
                marked.extend(refs.blobs.iter().cloned());
                marked.extend(refs.children.iter().cloned());
            }
        }
        let untagged = revisions.into_iter().filter(|d| !kept.contains(d)).collect();
        Ok((kept.len() as u64, marked, untagged))
    }

    /// Deletes the `untagged` revisions of `name` and its layer links to
    /// blobs nobody `marked`; what it deleted, in that order.
    async fn sweep_repository(
        &self,
        name: String,
        untagged: Vec<Digest>,
        marked: &HashSet<Digest>,
        options: &GcOptions,
    ) -> Result<Vec<Deletion>> {
        let mut deletions = Vec::new();
        for digest in untagged {
            let link = layout::manifest_revision_link(&name, &digest);
            let dir = link.trim_end_matches("/link");
            if !self
                .delete_garbage(options, &link, dir, Key::Digest(&digest), None)
                .await?
            {
                continue;
            }
            if !options.dry_run {
                self.delete_history(&name, &digest).await?;
            }
            deletions.push(Deletion::Manifest {
                name: name.clone(),
                digest,
            });
        }
        let unmarked = self
            .linked_digests(&layout::layers(&name))
            .await?
            .into_iter()
            .filter(|digest| !marked.contains(digest));
        if self.deletes_in_bulk(options) {
            let unmarked: Vec<Digest> = unmarked.collect();
            let links: Vec<String> = unmarked.iter().map(|d| layout::layer_link(&name, d)).collect();
            self.driver().delete_files(&links).await?;
            deletions.extend(unmarked.into_iter().map(|digest| Deletion::Link {
                name: name.clone(),
                digest,
            }));
            return Ok(deletions);
        }
        for digest in unmarked {
            let link = layout::layer_link(&name, &digest);
            let dir = link.trim_end_matches("/link");
            if !self
                .delete_garbage(options, &link, dir, Key::Digest(&digest), None)
                .await?
            {
                continue;
            }
            deletions.push(Deletion::Link {
                name: name.clone(),
                digest,
            });
        }
        Ok(deletions)
    }

    /// The digests the repository's tags but `retired` point at now.
    async fn tagged(&self, name: &str, retired: &[String]) -> Result<HashSet<Digest>> {
        let mut tagged = HashSet::new();
        let tags = absent_is_none(self.driver().list(&layout::tags(name)).await)?.unwrap_or_default();
        for tag_dir in tags {
            let tag = base_name(&tag_dir);
            if retired.iter().any(|r| r == tag) {
                continue;
            }
            if let Some(digest) = self.read_link(&layout::tag_current_link(name, tag)).await? {
                tagged.insert(digest);
            }
        }
        Ok(tagged)
    }

    /// Deletes garbage: in a dry run nothing; offline `dir`, its folder,
    /// whole; while serving `file` by `online`'s rules, which may keep it.
    /// Whether it is (or would be) gone.
    async fn delete_garbage(
        &self,
        options: &GcOptions,
        file: &str,
        dir: &str,
        key: Key<'_>,
        modified_ns: Option<u64>,
    ) -> Result<bool> {
        if options.dry_run {
            return Ok(true);
        }
        match &options.online {
            None => {
                self.driver().delete(dir).await?;
                Ok(true)
            }
            Some(run) => self.remove_while_serving(run, file, key, modified_ns).await,
        }
    }

    /// Whether this run deletes the files its walks found many at once: an
    /// offline run on a driver that deletes in bulk (S3, where a `delete`
    /// of each costs a listing). While serving, each deletion follows
    /// `online`'s rules one at a time.
    fn deletes_in_bulk(&self, options: &GcOptions) -> bool {
        !options.dry_run && options.online.is_none() && self.driver().deletes_files_in_bulk()
    }

    /// Removes every tag's history entry for a deleted manifest.
    async fn delete_history(&self, name: &str, digest: &Digest) -> Result<()> {
        let driver = self.driver();
        let tags = absent_is_none(driver.list(&layout::tags(name)).await)?.unwrap_or_default();
        for tag_dir in tags {
            let entry = layout::tag_index_link(name, base_name(&tag_dir), digest);
            if absent_is_none(driver.stat(&entry).await)?.is_some() {
                driver.delete(entry.trim_end_matches("/link")).await?;
            }
        }
        Ok(())
    }

    /// The digests linked below `dir` (a repository's `_layers` or
    /// `_manifests/revisions`), from one walk rather than a listing per
    /// level and a look at each link: on S3 a request per thousand links.
    /// A folder whose link is gone, as a deletion while serving leaves it
    /// on a filesystem, is not among them.
    async fn linked_digests(&self, dir: &str) -> Result<Vec<Digest>> {
        let mut digests = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = absent_is_none(self.driver().walk(dir, after.as_deref(), WALK_PAGE).await)?.unwrap_or_default();
            digests.extend(page.iter().filter_map(|file| layout::linked_digest(dir, &file.path)));
            if page.len() < WALK_PAGE as usize {
                return Ok(digests);
            }
            after = page.last().map(|file| file.path.clone());
        }
    }

    /// Deletes the data of every blob not in `marked`, walking the blob
    /// store a page at a time; a page's deletions run in parallel, and
    /// beside them the walk of the next page (it starts after the last path
    /// of this one, so it never meets this page's deletions).
    async fn sweep_blobs(
        &self,
        options: &Arc<GcOptions>,
        marked: &HashSet<Digest>,
        report: &mut GcReport,
        deleted: &mut (dyn FnMut(&Deletion) + Send),
        progress: &mut (dyn FnMut(GcProgress) + Send),
    ) -> Result<()> {
        let mut next = Some(self.walk_blobs_after(None));
        while let Some(walking) = next.take() {
            let page = joined(walking.await)?;
            if page.len() == WALK_PAGE as usize {
                next = page.last().map(|file| self.walk_blobs_after(Some(file.path.clone())));
            }
            let mut unmarked = Vec::new();
            for file in &page {
                let Some(digest) = layout::blob_of_data_path(&file.path) else {
                    continue;
                };
                report.blobs_seen += 1;
                if !marked.contains(&digest) {
                    unmarked.push((digest, file.clone()));
                }
            }
            if self.deletes_in_bulk(options) {
                let gone = self.delete_blob_files(unmarked).await?;
                record_swept_blobs(report, deleted, gone);
            } else {
                // A task deletes a share of the page with one plugin
                // instance: an instance per blob cost more than the deletion.
                let per_task = unmarked
                    .len()
                    .div_ceil(parallelism(options))
                    .clamp(1, MAX_BLOBS_PER_TASK);
                let shares: Vec<Vec<(Digest, FileInfo)>> = unmarked.chunks(per_task).map(<[_]>::to_vec).collect();
                let mut deletions = self.in_parallel(options, shares, |store, options, share| async move {
                    let mut gone = Vec::new();
                    for (digest, file) in share {
                        let dir = file.path.trim_end_matches("/data");
                        let key = Key::Digest(&digest);
                        if store
                            .delete_garbage(&options, &file.path, dir, key, Some(file.modified_ns))
                            .await?
                        {
                            // At once: a later failure in the share must not
                            // leave a deleted blob's size in the cache.
                            store.cache.forget(&digest);
                            gone.push((digest, file.size));
                        }
                    }
                    Ok(gone)
                });
                while let Some(share) = deletions.next().await {
                    record_swept_blobs(report, deleted, share?);
                }
            }
            progress(GcProgress::Sweeping {
                blobs: report.blobs_seen,
            });
        }
        Ok(())
    }

    /// Deletes the data files of `unmarked` blobs in bulk; their digests and
    /// sizes.
    async fn delete_blob_files(&self, unmarked: Vec<(Digest, FileInfo)>) -> Result<Vec<(Digest, u64)>> {
        let files: Vec<String> = unmarked.iter().map(|(_, file)| file.path.clone()).collect();
        let outcome = self.driver().delete_files(&files).await;
        // However much of it went, no deleted blob's size stays cached.
        for (digest, _) in &unmarked {
            self.cache.forget(digest);
        }
        outcome?;
        Ok(unmarked.into_iter().map(|(digest, file)| (digest, file.size)).collect())
    }

    /// The page of the blob store's walk after `after`, read by a task of
    /// its own; empty when the store has no blobs yet.
    fn walk_blobs_after(&self, after: Option<String>) -> tokio::task::JoinHandle<Result<Vec<FileInfo>>> {
        let store = self.clone();
        tokio::spawn(one_instance_per_request(async move {
            let page = store.driver().walk(&layout::blobs(), after.as_deref(), WALK_PAGE).await;
            Ok(absent_is_none(page)?.unwrap_or_default())
        }))
    }
}

/// Counts and reports the blobs `gone`.
fn record_swept_blobs(report: &mut GcReport, deleted: &mut (dyn FnMut(&Deletion) + Send), gone: Vec<(Digest, u64)>) {
    for (digest, size) in gone {
        deleted(&Deletion::Blob { digest, size });
        report.blobs_deleted += 1;
        report.bytes_deleted += size;
    }
}

/// The outcome of a task of the run, which fails on its own only when the
/// runtime is shutting down.
fn joined<T>(outcome: std::result::Result<Result<T>, tokio::task::JoinError>) -> Result<T> {
    outcome.map_err(|err| StorageError::Backend(format!("a garbage collection task failed: {err}")))?
}

/// The references of stored manifest bytes, read leniently: whatever
/// digests it names as config, layers, child manifests or subject (and a
/// schema 1 manifest's `fsLayers`). Bytes that are not a JSON object
/// reference nothing.
fn references_of(bytes: &[u8]) -> References {
    let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(bytes) else {
        return References::default();
    };
    let digest_of = |value: &Value, key: &str| value.get(key)?.as_str().and_then(|d| Digest::parse(d).ok());
    let list = |key: &str, field: &str| -> Vec<Digest> {
        object
            .get(key)
            .and_then(Value::as_array)
            .map(|items| items.iter().filter_map(|item| digest_of(item, field)).collect())
            .unwrap_or_default()
    };
    let mut blobs: Vec<Digest> = object
        .get("config")
        .and_then(|c| digest_of(c, "digest"))
        .into_iter()
        .collect();
    blobs.extend(list("layers", "digest"));
    blobs.extend(list("fsLayers", "blobSum"));
    References {
        blobs,
        children: list("manifests", "digest"),
        subject: object.get("subject").and_then(|s| digest_of(s, "digest")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const C: &str = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";

    fn d(text: &str) -> Digest {
        Digest::parse(text).unwrap()
    }

    #[test]
    fn references_of_every_manifest_kind() {
        let image = format!(
            r#"{{"config":{{"digest":"{A}"}},"layers":[{{"digest":"{B}"}},{{"digest":"bad"}}],"subject":{{"digest":"{C}"}}}}"#
        );
        let refs = references_of(image.as_bytes());
        assert_eq!(refs.blobs, vec![d(A), d(B)]);
        assert!(refs.children.is_empty());
        assert_eq!(refs.subject, Some(d(C)));
        let index = format!(r#"{{"manifests":[{{"digest":"{A}"}},{{"digest":"{B}"}}]}}"#);
        assert_eq!(references_of(index.as_bytes()).children, vec![d(A), d(B)]);
        let schema1 = format!(r#"{{"schemaVersion":1,"fsLayers":[{{"blobSum":"{C}"}}]}}"#);
        assert_eq!(references_of(schema1.as_bytes()).blobs, vec![d(C)]);
        assert!(references_of(b"not json").blobs.is_empty());
    }
}
