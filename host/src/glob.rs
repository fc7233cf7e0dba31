//! Globs over slash-separated names, as access rules and retention policies
//! name repositories: `*` within one segment, a `**` segment any number of
//! segments. One segment alone (a tag) takes `*` only.

/// Whether `name` matches `pattern`, segment by segment: `*` matches within
/// a segment, a `**` segment any number of segments (none included).
pub fn matches(pattern: &str, name: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('/').collect();
    let name: Vec<&str> = name.split('/').collect();
    segments_match(&pattern, &name)
}

fn segments_match(pattern: &[&str], name: &[&str]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((&"**", rest)) => (0..=name.len()).any(|skip| segments_match(rest, &name[skip..])),
        Some((first, rest)) => name
            .split_first()
            .is_some_and(|(segment, names)| segment_matches(first, segment) && segments_match(rest, names)),
    }
}

/// `*` in `pattern` matches any run of characters of `segment` (a tag, say).
pub fn segment_matches(pattern: &str, segment: &str) -> bool {
    let Some((head, tail)) = pattern.split_once('*') else {
        return pattern == segment;
    };
    let Some(rest) = segment.strip_prefix(head) else {
        return false;
    };
    (0..=rest.len()).any(|at| rest.is_char_boundary(at) && segment_matches(tail, &rest[at..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_by_segment() {
        for (pattern, name, expected) in [
            ("**", "a", true),
            ("**", "a/b/c", true),
            ("library/**", "library/alpine", true),
            ("library/**", "library", true),
            ("library/**", "libraryx/alpine", false),
            ("library/*", "library/a/b", false),
            ("team-*/app", "team-red/app", true),
            ("team-*/app", "team-red/other", false),
            ("a/**/z", "a/b/c/z", true),
            ("a/**/z", "a/z", true),
            ("*", "a/b", false),
            ("exact", "exact", true),
        ] {
            assert_eq!(matches(pattern, name), expected, "{pattern} ~ {name}");
        }
    }
}
