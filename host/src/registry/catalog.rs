//! `GET /v2/_catalog`: the repositories holding content, a page at a time.

use axum::response::Response;
use serde_json::json;

use super::error::Result;
use super::pagination::Page;
use super::{json_response, Identity, Query, Registry};

/// Repositories in a page without `n`, as distribution answers: more come
/// through the `Link` header.
const DEFAULT_PAGE: usize = 100;

/// Only the repositories `caller` may pull from.
pub async fn list(registry: &Registry, caller: &Identity, query: &Query, head: bool) -> Result<Response> {
    let mut names = registry.store().repositories().await?;
    names.retain(|name| registry.lists(caller, name));
    let page = Page::of(names, query, Some(DEFAULT_PAGE))?;
    let body = json!({ "repositories": page.entries }).to_string();
    let mut response = json_response(body, head);
    page.link_next(&mut response, "/v2/_catalog");
    Ok(response)
}
