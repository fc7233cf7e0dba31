//! `GET /v2/<name>/tags/list`: the directories below `_manifests/tags`.

use axum::response::Response;
use serde_json::json;

use crate::storage::{layout, StorageError};

use super::error::{ErrorCode, RegistryError, Result};
use super::pagination::Page;
use super::{base_name, json_response, Query, Registry};

pub async fn list(registry: &Registry, name: &str, query: &Query, head: bool) -> Result<Response> {
    let tags = match registry.driver().list(&layout::tags(name)).await {
        Ok(children) => children.iter().map(|child| base_name(child).to_string()).collect(),
        // As distribution: a repository without tags is not known.
        Err(StorageError::PathNotFound(_)) => {
            return Err(RegistryError::new(
                ErrorCode::NameUnknown,
                format!("repository {name} is not known"),
            ))
        }
        Err(err) => return Err(err.into()),
    };
    let page = Page::of(tags, query, None)?;
    let body = json!({ "name": name, "tags": page.entries }).to_string();
    let mut response = json_response(body, head);
    page.link_next(&mut response, &format!("/v2/{name}/tags/list"));
    Ok(response)
}
