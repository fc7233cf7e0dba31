//! `GET /v2/_catalog`: the repositories, found by listing the repositories
//! directory level by level (a walk would visit every link file). A
//! directory is a repository when it holds `_manifests` or `_layers` (an
//! upload in progress alone does not make one); names nest (`a/b` below
//! `a`), so every other child is looked into too, as distribution does.

use axum::response::Response;
use serde_json::json;

use crate::storage::{layout, StorageDriver, StorageError};

use super::error::Result;
use super::pagination::Page;
use super::{base_name, json_response, Query, Registry};

/// Repositories in a page without `n`, as distribution answers: more come
/// through the `Link` header.
const DEFAULT_PAGE: usize = 100;

pub async fn list(registry: &Registry, query: &Query, head: bool) -> Result<Response> {
    let names = repository_names(registry.driver(), &["_manifests", "_layers"]).await?;
    let page = Page::of(names, query, Some(DEFAULT_PAGE))?;
    let body = json!({ "repositories": page.entries }).to_string();
    let mut response = json_response(body, head);
    page.link_next(&mut response, "/v2/_catalog");
    Ok(response)
}

/// The names of the repositories holding one of `markers` (`_layers`,
/// `_manifests`, `_uploads`), unsorted.
pub async fn repository_names(driver: &dyn StorageDriver, markers: &[&str]) -> Result<Vec<String>, StorageError> {
    let root = layout::repositories();
    let mut names = Vec::new();
    let mut pending = vec![root.clone()];
    while let Some(dir) = pending.pop() {
        let children = match driver.list(&dir).await {
            Ok(children) => children,
            // Gone meanwhile, a file where a directory was expected, or no
            // repository at all yet.
            Err(StorageError::PathNotFound(_)) => continue,
            // One entry that cannot be listed (a symbolic link loop, no
            // permission) must not hide every other repository.
            Err(err @ (StorageError::Backend(_) | StorageError::InvalidPath(_))) if dir != root => {
                tracing::warn!(path = %dir, "skipped in the repository list: {err}");
                continue;
            }
            Err(err) => return Err(err),
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
