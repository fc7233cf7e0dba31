//! The integrity check (`berth storage check`): every blob's data hashed
//! against the digest it is stored under, every repository link and tag
//! followed to what it names. It only reads, so it runs beside a serving
//! registry; a problem is looked at a second time before it is reported,
//! because a delete or a collection may have moved things meanwhile.
//!
//! Repairing quarantines: the corrupt or dangling file is moved below
//! [`QUARANTINE`], at its own path, where nothing serves it and an operator
//! can look at it. A client then gets 404 where it got wrong bytes or a
//! 500, and pushing the content again heals it.

use crate::storage::StorageError;

use super::{absent_is_none, base_name, layout, Digest, Result, Store};

/// Where `repair` moves what it quarantines (outside distribution's layout).
pub const QUARANTINE: &str = "/berth/quarantine";

/// How many files one `walk` page asks for.
const WALK_PAGE: u32 = 1000;

/// Something wrong in storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A blob whose data hashes to another digest than its path's.
    CorruptBlob { digest: Digest, actual: Digest },
    /// A repository's layer link to a blob whose data is not there.
    DanglingLink { name: String, digest: Digest },
    /// A manifest revision whose data is not there.
    DanglingRevision { name: String, digest: Digest },
    /// A tag pointing at a manifest the repository does not have.
    DanglingTag { name: String, tag: String, digest: Digest },
    /// A link file that does not hold the digest its place says.
    BadLink { path: String },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::CorruptBlob { digest, actual } => {
                write!(f, "blob {digest} is corrupt: its data hashes to {actual}")
            }
            Problem::DanglingLink { name, digest } => write!(f, "{name} links blob {digest}, whose data is missing"),
            Problem::DanglingRevision { name, digest } => {
                write!(f, "{name} has manifest {digest}, whose data is missing")
            }
            Problem::DanglingTag { name, tag, digest } => {
                write!(
                    f,
                    "{name}:{tag} points at manifest {digest}, which {name} does not have"
                )
            }
            Problem::BadLink { path } => write!(f, "{path} does not hold the digest its place names"),
        }
    }
}

/// Where a check is, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckProgress {
    /// Blobs hashed so far, and their bytes.
    Blobs { blobs: u64, bytes: u64 },
    /// Repositories whose links were followed, of `of`.
    Repositories { repositories: u64, of: u64 },
}

/// What a check looked at and found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    pub blobs: u64,
    pub bytes: u64,
    pub repositories: u64,
    /// Layer links, revisions and tags followed.
    pub links: u64,
    pub problems: u64,
    pub quarantined: u64,
}

/// The report so far, and what to do with a problem found.
struct Findings<'a> {
    report: CheckReport,
    found: &'a mut dyn FnMut(&Problem),
    repair: bool,
}

impl Findings<'_> {
    /// Reports `problem`, and with `repair` quarantines `path`.
    async fn add(&mut self, store: &Store, problem: Problem, path: &str) -> Result<()> {
        (self.found)(&problem);
        self.report.problems += 1;
        if self.repair {
            store.quarantine(path).await?;
            self.report.quarantined += 1;
        }
        Ok(())
    }
}

impl Store {
    /// Checks the whole storage; `found` hears of each problem (before it
    /// is quarantined, with `repair`), `progress` of the walk.
    pub async fn check(
        &self,
        repair: bool,
        found: &mut dyn FnMut(&Problem),
        progress: &mut dyn FnMut(CheckProgress),
    ) -> Result<CheckReport> {
        let mut findings = Findings {
            report: CheckReport::default(),
            found,
            repair,
        };
        self.check_blobs(&mut findings, progress).await?;
        let mut repositories = self.repositories().await?;
        repositories.sort();
        findings.report.repositories = repositories.len() as u64;
        for (done, name) in repositories.iter().enumerate() {
            self.check_repository(name, &mut findings).await?;
            progress(CheckProgress::Repositories {
                repositories: done as u64 + 1,
                of: findings.report.repositories,
            });
        }
        Ok(findings.report)
    }

    /// Hashes every blob's data, walking the blob store a page at a time.
    async fn check_blobs(&self, findings: &mut Findings<'_>, progress: &mut dyn FnMut(CheckProgress)) -> Result<()> {
        let root = layout::blobs();
        let mut after: Option<String> = None;
        loop {
            let page =
                absent_is_none(self.driver().walk(&root, after.as_deref(), WALK_PAGE).await)?.unwrap_or_default();
            for file in &page {
                let Some(digest) = layout::blob_of_data_path(&file.path) else {
                    continue;
                };
                let actual = match self.digest_of_stored(&file.path, digest.algorithm()).await {
                    Ok(actual) => actual,
                    // Deleted since the walk listed it.
                    Err(StorageError::PathNotFound(_)) => continue,
                    Err(err) => return Err(err.into()),
                };
                findings.report.blobs += 1;
                findings.report.bytes += file.size;
                if actual != digest {
                    findings
                        .add(self, Problem::CorruptBlob { digest, actual }, &file.path)
                        .await?;
                }
                progress(CheckProgress::Blobs {
                    blobs: findings.report.blobs,
                    bytes: findings.report.bytes,
                });
            }
            if page.len() < WALK_PAGE as usize {
                return Ok(());
            }
            after = page.last().map(|file| file.path.clone());
        }
    }

    /// Follows the repository's layer links, revisions and tags.
    async fn check_repository(&self, name: &str, findings: &mut Findings<'_>) -> Result<()> {
        for (path, digest, revision) in self.links_of(name).await? {
            findings.report.links += 1;
            if let Some(problem) = self.link_problem(name, &path, &digest, revision).await? {
                // Looked at again: a delete may have removed it meanwhile.
                if self.link_problem(name, &path, &digest, revision).await?.is_some() {
                    findings.add(self, problem, &path).await?;
                }
            }
        }
        for tag in self.tags(name).await.unwrap_or_default() {
            findings.report.links += 1;
            let path = layout::tag_current_link(name, &tag);
            if let Some(problem) = self.tag_problem(name, &tag, &path).await? {
                if self.tag_problem(name, &tag, &path).await?.is_some() {
                    findings.add(self, problem, &path).await?;
                }
            }
        }
        Ok(())
    }

    /// What is wrong with a tag's current link, if anything.
    async fn tag_problem(&self, name: &str, tag: &str, path: &str) -> Result<Option<Problem>> {
        let Some(digest) = self.read_link(path).await? else {
            let there = absent_is_none(self.driver().stat(path).await)?.is_some();
            return Ok(there.then(|| Problem::BadLink { path: path.to_string() }));
        };
        if self.has_manifest(name, &digest).await? {
            return Ok(None);
        }
        Ok(Some(Problem::DanglingTag {
            name: name.to_string(),
            tag: tag.to_string(),
            digest,
        }))
    }

    /// The repository's layer links and manifest revisions: (link path,
    /// the digest its place names, whether it is a revision).
    async fn links_of(&self, name: &str) -> Result<Vec<(String, Digest, bool)>> {
        let mut links = Vec::new();
        for (dir, revision) in [(layout::layers(name), false), (layout::manifest_revisions(name), true)] {
            for algorithm_dir in absent_is_none(self.driver().list(&dir).await)?.unwrap_or_default() {
                let algorithm = base_name(&algorithm_dir);
                for hex_dir in absent_is_none(self.driver().list(&algorithm_dir).await)?.unwrap_or_default() {
                    if let Ok(digest) = Digest::parse(&format!("{algorithm}:{}", base_name(&hex_dir))) {
                        links.push((format!("{hex_dir}/link"), digest, revision));
                    }
                }
            }
        }
        Ok(links)
    }

    /// What is wrong with one layer link or revision, if anything.
    async fn link_problem(&self, name: &str, path: &str, digest: &Digest, revision: bool) -> Result<Option<Problem>> {
        if self.read_link(path).await?.as_ref() != Some(digest) {
            let there = absent_is_none(self.driver().stat(path).await)?.is_some();
            return Ok(there.then(|| Problem::BadLink { path: path.to_string() }));
        }
        if self.blob_exists(digest).await? {
            return Ok(None);
        }
        let (name, digest) = (name.to_string(), digest.clone());
        Ok(Some(if revision {
            Problem::DanglingRevision { name, digest }
        } else {
            Problem::DanglingLink { name, digest }
        }))
    }

    /// Moves `path` below [`QUARANTINE`]; already gone is fine.
    async fn quarantine(&self, path: &str) -> Result<()> {
        let destination = format!("{QUARANTINE}{path}");
        match self.driver().move_to(path, &destination).await {
            Err(StorageError::PathNotFound(_)) => Ok(()),
            other => Ok(other?),
        }
    }
}
