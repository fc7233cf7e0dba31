//! Walking a tree with `list` and `stat`, for drivers without a `walk` of
//! their own.

use super::{FileInfo, Result, StorageDriver};

/// The page `walk` would return: files below `root` in lexical order of path,
/// strictly after `start_after`, at most `limit`.
pub(crate) async fn walk_by_listing(
    driver: &dyn StorageDriver,
    root: &str,
    start_after: Option<&str>,
    limit: u32,
) -> Result<Vec<FileInfo>> {
    let mut page = Vec::new();
    visit(driver, root.to_string(), start_after, limit as usize, &mut page).await?;
    Ok(page)
}

fn visit<'a>(
    driver: &'a dyn StorageDriver,
    dir: String,
    start_after: Option<&'a str>,
    limit: usize,
    page: &'a mut Vec<FileInfo>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + 'a>> {
    Box::pin(async move {
        let mut entries = Vec::new();
        for child in driver.list(&dir).await? {
            entries.push(driver.stat(&child).await?);
        }
        // A directory's files all sort as `<dir>/...`, so that is its place
        // among its siblings: `/a-b` comes before everything in `/a/`.
        entries.sort_by_cached_key(|e| {
            if e.is_dir {
                format!("{}/", e.path)
            } else {
                e.path.clone()
            }
        });
        for entry in entries {
            if page.len() >= limit {
                break;
            }
            if entry.is_dir {
                if !subtree_is_before(&entry.path, start_after) {
                    visit(driver, entry.path, start_after, limit, page).await?;
                }
            } else if start_after.is_none_or(|after| entry.path.as_str() > after) {
                page.push(entry);
            }
        }
        Ok(())
    })
}

/// Whether every path below `dir` sorts at or before `start_after`.
fn subtree_is_before(dir: &str, start_after: Option<&str>) -> bool {
    let prefix = format!("{dir}/");
    start_after.is_some_and(|after| after > prefix.as_str() && !after.starts_with(&prefix))
}

#[cfg(test)]
mod tests {
    use super::subtree_is_before;

    #[test]
    fn skips_only_subtrees_entirely_before_the_cursor() {
        assert!(!subtree_is_before("/a", None));
        assert!(!subtree_is_before("/a", Some("/a-b")));
        assert!(!subtree_is_before("/a", Some("/a/x")));
        assert!(subtree_is_before("/a", Some("/b")));
        assert!(subtree_is_before("/a", Some("/a0")));
    }
}
