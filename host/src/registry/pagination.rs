//! `?n=&last=` pagination of the tag list and the catalog, with the `Link`
//! header that points at the next page.

use axum::http::{header, HeaderValue};
use axum::response::Response;

use super::error::{ErrorCode, RegistryError, Result};
use super::Query;

/// The page of lexically sorted, distinct `entries` after `last`, at most `n`
/// long, and whether more follow.
pub struct Page {
    pub entries: Vec<String>,
    pub more: bool,
    n: Option<usize>,
}

impl Page {
    /// The page `query` asks for; without `n`, at most `default` entries
    /// (`None`: all of them).
    pub fn of(mut entries: Vec<String>, query: &Query, default: Option<usize>) -> Result<Page> {
        let n = match query.get("n") {
            None => default,
            Some(n) => Some(n.parse::<usize>().map_err(|_| {
                RegistryError::new(ErrorCode::PaginationNumberInvalid, format!("n={n} is not a count"))
            })?),
        };
        entries.sort();
        entries.dedup();
        if let Some(last) = query.get("last") {
            entries.retain(|entry| entry.as_str() > last.as_str());
        }
        let more = n.is_some_and(|n| entries.len() > n);
        if let Some(n) = n {
            entries.truncate(n);
        }
        Ok(Page { entries, more, n })
    }

    /// Adds `Link: <path?n=..&last=..>; rel="next"` when more follow.
    pub fn link_next(&self, response: &mut Response, path: &str) {
        let (true, Some(n), Some(last)) = (self.more, self.n, self.entries.last()) else {
            return;
        };
        // Names and tags hold only URL-safe characters, except the `/` of a
        // name, which a query value may carry as it is.
        let link = format!("<{path}?n={n}&last={last}>; rel=\"next\"");
        if let Ok(value) = HeaderValue::from_str(&link) {
            response.headers_mut().insert(header::LINK, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(entries: &[&str], query: &[(&str, &str)]) -> Result<Page> {
        let query = query.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Page::of(entries.iter().map(|e| e.to_string()).collect(), &query, None)
    }

    #[test]
    fn pages_are_lexical() {
        let p = page(&["c", "a", "b", "a"], &[("n", "2")]).unwrap();
        assert_eq!(
            (p.entries.clone(), p.more),
            (vec!["a".to_string(), "b".to_string()], true)
        );
        let p = page(&["c", "a", "b"], &[("n", "2"), ("last", "b")]).unwrap();
        assert_eq!((p.entries, p.more), (vec!["c".to_string()], false));
        let p = page(&["c", "a"], &[("n", "0")]).unwrap();
        assert!(p.entries.is_empty());
        let p = page(&["c", "a"], &[]).unwrap();
        assert_eq!(p.entries.len(), 2);
        assert!(!p.more);
        assert!(page(&["a"], &[("n", "-1")]).is_err());
        let query = [].into_iter().collect();
        let p = Page::of(vec!["b".into(), "a".into(), "c".into()], &query, Some(2)).unwrap();
        assert_eq!(
            (p.entries, p.more, p.n),
            (vec!["a".to_string(), "b".to_string()], true, Some(2))
        );
    }
}
