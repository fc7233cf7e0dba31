//! Retention (`storage.retention`): which tags a policy keeps. A tag's push
//! time is when its current link was last written, as the driver's `stat`
//! reports it; the collection deletes the tags a policy does not keep, then
//! frees what only they referenced (with `delete_untagged`).

use crate::config::RetentionPolicy;

use super::{absent_is_none, base_name, layout, Result, Store};

impl Store {
    /// The tags of `name` that `policy` does not keep, at `now_ns`
    /// (nanoseconds since the Unix epoch).
    pub(super) async fn tags_not_kept(&self, name: &str, policy: &RetentionPolicy, now_ns: u64) -> Result<Vec<String>> {
        let driver = self.driver();
        let mut tags = Vec::new();
        for tag_dir in absent_is_none(driver.list(&layout::tags(name)).await)?.unwrap_or_default() {
            let tag = base_name(&tag_dir).to_string();
            // A tag without a current link points at nothing; it is not
            // retention's to judge.
            if let Some(info) = absent_is_none(driver.stat(&layout::tag_current_link(name, &tag)).await)? {
                tags.push((tag, info.modified_ns));
            }
        }
        Ok(not_kept(policy, tags, now_ns))
    }

    /// Deletes the tag (its history too); the manifest stays.
    pub(super) async fn delete_tag(&self, name: &str, tag: &str) -> Result<()> {
        Ok(self.driver().delete(&layout::tag(name, tag)).await?)
    }
}

/// The tags `policy` does not keep, of (tag, pushed at) pairs: kept are the
/// `newest` most recently pushed, those pushed within `pushedwithin` of
/// `now_ns`, and those matching a pattern. Sorted by name.
fn not_kept(policy: &RetentionPolicy, mut tags: Vec<(String, u64)>, now_ns: u64) -> Vec<String> {
    let keep = &policy.keep;
    // Newest first; a tie goes to the name, so the answer is stable.
    tags.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let recent_since = keep
        .pushedwithin
        .map(|age| now_ns.saturating_sub(age.as_nanos().min(u128::from(u64::MAX)) as u64));
    let mut dropped: Vec<String> = tags
        .into_iter()
        .enumerate()
        .filter(|(rank, (tag, pushed))| {
            let newest = keep.newest.is_some_and(|n| *rank < n);
            let recent = recent_since.is_some_and(|since| *pushed >= since);
            let matched = keep.patterns.iter().any(|p| crate::glob::segment_matches(p, tag));
            !(newest || recent || matched)
        })
        .map(|(_, (tag, _))| tag)
        .collect();
    dropped.sort();
    dropped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KeepTags;
    use std::time::Duration;

    const HOUR: u64 = 3_600_000_000_000;

    fn policy(keep: KeepTags) -> RetentionPolicy {
        RetentionPolicy {
            repositories: vec!["**".into()],
            keep,
        }
    }

    fn tags() -> Vec<(String, u64)> {
        // v1 oldest .. v5 newest, an hour apart; `latest` is the oldest of all.
        let mut tags: Vec<(String, u64)> = (1..=5).map(|n| (format!("v{n}"), n * HOUR)).collect();
        tags.push(("latest".into(), 0));
        tags
    }

    #[test]
    fn keeps_the_newest_the_recent_and_the_matching() {
        let now = 6 * HOUR;
        let newest = policy(KeepTags {
            newest: Some(2),
            ..Default::default()
        });
        assert_eq!(not_kept(&newest, tags(), now), ["latest", "v1", "v2", "v3"]);
        let recent = policy(KeepTags {
            pushedwithin: Some(Duration::from_secs(3 * 3600)),
            ..Default::default()
        });
        assert_eq!(not_kept(&recent, tags(), now), ["latest", "v1", "v2"]);
        let any = policy(KeepTags {
            newest: Some(1),
            pushedwithin: Some(Duration::from_secs(2 * 3600)),
            patterns: vec!["latest".into(), "v1*".into()],
        });
        assert_eq!(not_kept(&any, tags(), now), ["v2", "v3"]);
    }

    #[test]
    fn more_to_keep_than_there_are_keeps_all() {
        let many = policy(KeepTags {
            newest: Some(100),
            ..Default::default()
        });
        assert!(not_kept(&many, tags(), 0).is_empty());
    }
}
