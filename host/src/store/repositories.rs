//! Which repositories there are, found by listing the repositories
//! directory level by level (a walk would visit every link file). Names
//! nest (`a/b` below `a`), so every child that is not a marker is looked
//! into too, as distribution does.

use crate::storage::StorageError;

use super::{absent_is_none, base_name, layout, Result, Store};

/// What makes a directory a repository in the catalog: content. An upload
/// in progress alone does not make one.
const CONTENT: &[&str] = &["_manifests", "_layers"];

impl Store {
    /// The names of the repositories holding content, unsorted.
    pub async fn repositories(&self) -> Result<Vec<String>> {
        self.repositories_with(CONTENT).await
    }

    /// The names of the repositories holding one of `markers` (`_layers`,
    /// `_manifests`, `_uploads`), unsorted.
    pub(super) async fn repositories_with(&self, markers: &[&str]) -> Result<Vec<String>> {
        let root = layout::repositories();
        let mut names = Vec::new();
        let mut pending = vec![root.clone()];
        while let Some(dir) = pending.pop() {
            let children = match absent_is_none(self.driver().list(&dir).await) {
                Ok(Some(children)) => children,
                // Gone meanwhile, a file where a directory was expected, or
                // no repository at all yet.
                Ok(None) => continue,
                // One entry that cannot be listed (a symbolic link loop, no
                // permission) must not hide every other repository.
                Err(err @ (StorageError::Backend(_) | StorageError::InvalidPath(_))) if dir != root => {
                    tracing::warn!(path = %dir, "skipped in the repository list: {err}");
                    continue;
                }
                Err(err) => return Err(err.into()),
            };
            let mut is_repository = false;
            for child in children {
                let base = base_name(&child);
                if base.starts_with('_') {
                    is_repository |= markers.contains(&base);
                } else {
                    pending.push(child);
                }
            }
            if is_repository {
                if let Some(name) = dir.strip_prefix(&root).and_then(|rest| rest.strip_prefix('/')) {
                    names.push(name.to_string());
                }
            }
        }
        Ok(names)
    }
}
