//! `GET /v2/<name>/tags/list`.

use axum::response::Response;
use serde_json::json;

use super::error::Result;
use super::pagination::Page;
use super::{json_response, Query, Registry};

pub async fn list(registry: &Registry, name: &str, query: &Query, head: bool) -> Result<Response> {
    let tags = registry.store().tags(name).await?;
    let page = Page::of(tags, query, None)?;
    let body = json!({ "name": name, "tags": page.entries }).to_string();
    let mut response = json_response(body, head);
    page.link_next(&mut response, &format!("/v2/{name}/tags/list"));
    Ok(response)
}
