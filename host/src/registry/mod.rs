//! The OCI Distribution Spec v1.1 HTTP API over a [`StorageDriver`], in
//! distribution's storage layout (`storage::layout`).
//!
//! Everything a request needs is in storage, uploads in progress included, so
//! any number of processes sharing one storage serve the same registry.
//!
//! ```no_run
//! # async fn run(driver: std::sync::Arc<dyn berth::storage::StorageDriver>) -> std::io::Result<()> {
//! use berth::registry::{Registry, RegistryOptions};
//! let registry = Registry::new(driver, RegistryOptions::default());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:5000").await?;
//! axum::serve(listener, registry.router()).await
//! # }
//! ```

mod access_log;
mod blobs;
mod catalog;
mod document;
mod error;
mod limits;
mod manifests;
mod pagination;
mod referrers;
mod routes;
mod stream;
mod tags;
mod uploads;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, request::Parts, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;

use crate::auth::{Action, Auth, Identity, Refusal, Scope};
use crate::plugin::one_instance_per_request;
use crate::storage::one_driver_per_request;
use crate::storage::StorageDriver;
use crate::store::{self, Purged, Store, StoreError};

use error::Result;
pub use error::{ErrorCode, RegistryError};
pub use limits::{Limit, Place, RequestLimits};
use routes::Route;

/// How the registry behaves; the defaults are distribution's, except for
/// the content cache, which is on.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Whether blobs and manifests may be deleted (`storage.delete.enabled`).
    pub delete_enabled: bool,
    /// Refuse every write (`storage.maintenance.readonly.enabled`).
    pub read_only: bool,
    /// Send blob GETs to the driver's `redirect_url` when it has one.
    pub redirect: bool,
    /// How old an unfinished upload must be for the caller's purge task to
    /// remove it with [`Store::purge`]; `None`: never purge.
    pub upload_purge_age: Option<Duration>,
    /// The longest a request may take, every plugin call it makes included;
    /// the request is then stopped and answered 503. Blob uploads, whose
    /// time is the client's to spend, are bounded by the connection's idle
    /// timeout instead. `None`: no bound.
    pub request_timeout: Option<Duration>,
    /// How many digests' sizes and manifest bytes are kept in memory
    /// (`storage.cache.blobdescriptorsize`); 0: none.
    pub content_cache_entries: usize,
    /// Who may use the API (`auth`); `None`: anyone.
    pub auth: Option<Arc<Auth>>,
    /// Requests served at once (`requests`).
    pub limits: RequestLimits,
    /// Whether each request is logged (`log.accesslog.disabled` turns it
    /// off); the metrics count it either way.
    pub access_log: bool,
    /// Which manifests of a pushed image index must be in the repository
    /// (`validation.manifests.indexes`); by default all.
    pub index_children: crate::config::IndexValidationConfig,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            delete_enabled: false,
            read_only: false,
            redirect: false,
            upload_purge_age: None,
            request_timeout: None,
            content_cache_entries: store::DEFAULT_CACHE_ENTRIES,
            auth: None,
            limits: RequestLimits::default(),
            access_log: true,
            index_children: Default::default(),
        }
    }
}

/// The registry API over one storage.
#[derive(Clone)]
pub struct Registry {
    store: Store,
    options: Arc<RegistryOptions>,
}

/// Sent with every answer, as clients probe for it.
const API_VERSION: (&str, &str) = ("docker-distribution-api-version", "registry/2.0");

impl Registry {
    pub fn new(driver: Arc<dyn StorageDriver>, options: RegistryOptions) -> Registry {
        Registry {
            store: Store::new(driver, options.content_cache_entries),
            options: Arc::new(options),
        }
    }

    pub fn options(&self) -> &RegistryOptions {
        &self.options
    }

    /// The HTTP API: `/v2/...`, anything else is 404.
    pub fn router(&self) -> Router {
        // One handler for everything: the routes are parsed from the path's
        // end (see `routes`), which the router's patterns cannot do.
        Router::new().fallback(dispatch).with_state(self.clone())
    }

    /// Removes stale uploads and temporary files: see [`Store::purge`].
    pub async fn purge_uploads(&self, older_than: Duration) -> Result<Purged, StoreError> {
        self.store.purge(older_than).await
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Who is asking, once they may do what `scope` needs (always
    /// without `auth`): 401 with the challenge to missing, bad or
    /// insufficient credentials, 403 `DENIED` to a user who may not.
    async fn check(&self, parts: &Parts, scope: Scope<'_>) -> Result<Identity> {
        let Some(auth) = &self.options.auth else {
            return Ok(Identity::default());
        };
        let client = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0);
        auth.check(&parts.headers, client, scope)
            .await
            .map_err(|refusal| match refusal {
                Refusal::Unauthorized {
                    www_authenticate,
                    message,
                } => RegistryError::new(ErrorCode::Unauthorized, message)
                    .with_header(header::WWW_AUTHENTICATE, &www_authenticate),
                Refusal::Denied(message) => RegistryError::new(ErrorCode::Denied, message),
            })
    }

    /// The methods `route` serves with this configuration: only reads in
    /// read-only mode, no deletion of manifests or blobs with deletes off.
    fn allowed_methods(&self, route: &Route) -> Vec<Method> {
        let deletes = self.options.delete_enabled || !matches!(route, Route::Blob { .. } | Route::Manifest { .. });
        route
            .methods()
            .iter()
            .filter(|method| match **method {
                Method::GET | Method::HEAD => true,
                Method::DELETE => deletes && !self.options.read_only,
                _ => !self.options.read_only,
            })
            .cloned()
            .collect()
    }

    /// Which manifests of a pushed image index must be in the repository.
    fn index_children(&self) -> &crate::config::IndexValidationConfig {
        &self.options.index_children
    }

    /// Whether permissions differ by repository (`auth.access`, tokens).
    fn restricts_repositories(&self) -> bool {
        self.options
            .auth
            .as_ref()
            .is_some_and(|auth| auth.restricts_repositories())
    }

    /// Whether `caller` may pull from `repository` (always, without auth).
    fn may_pull(&self, caller: &Identity, repository: &str) -> bool {
        self.options
            .auth
            .as_ref()
            .is_none_or(|auth| auth.may(caller, Scope::Repository(repository, Action::Pull)))
    }

    /// Whether the catalog shows `repository` to `caller`.
    fn lists(&self, caller: &Identity, repository: &str) -> bool {
        self.options
            .auth
            .as_ref()
            .is_none_or(|auth| auth.lists(caller, repository))
    }

    async fn handle(&self, parts: Parts, body: Body) -> Result<Response> {
        let route = match routes::parse(parts.uri.path()) {
            Ok(Some(route)) => route,
            Ok(None) => return Ok(StatusCode::NOT_FOUND.into_response()),
            // Who asks comes first: a caller who may not use the API at
            // all learns nothing about the names it tries.
            Err(err) => {
                self.check(&parts, Scope::Login).await?;
                return Err(err_of_route(err, &parts.method));
            }
        };
        let method = parts.method.clone();
        let caller = self.check(&parts, scope_of(&route, &method)).await?;
        let query = routes::parse_query(parts.uri.query());
        let allowed = self.allowed_methods(&route);
        if route.methods().contains(&method) && !allowed.contains(&method) {
            let why = if self.options.read_only {
                "the registry is in read-only mode"
            } else {
                "deletes are disabled"
            };
            return Err(RegistryError::new(ErrorCode::Unsupported, why).with_header(header::ALLOW, &allow(&allowed)));
        }
        let head = method == Method::HEAD;
        let get_or_head = method == Method::GET || head;
        let method_not_allowed = || not_allowed(&method, &allow(&allowed));
        match route {
            Route::Base if get_or_head => Ok(base()),
            Route::Catalog if get_or_head => catalog::list(self, &caller, &query, head).await,
            Route::Tags { name } if get_or_head => tags::list(self, &name, &query, head).await,
            Route::Referrers { name, digest } if get_or_head => {
                referrers::list(self, &name, &digest, &query, head).await
            }
            Route::Blob { name, digest } => match method {
                _ if get_or_head => blobs::get(self, &name, &digest, &parts.headers, head).await,
                Method::DELETE => blobs::delete(self, &name, &digest).await,
                _ => Err(method_not_allowed()),
            },
            Route::UploadStart { name } if method == Method::POST => {
                uploads::start(self, &caller, &name, &query, body).await
            }
            Route::Upload { name, id } => match method {
                Method::GET => uploads::status(self, &name, &id).await,
                Method::PATCH => uploads::patch(self, &name, &id, &parts.headers, body).await,
                Method::PUT => uploads::put(self, &name, &id, &query, &parts.headers, body).await,
                Method::DELETE => uploads::cancel(self, &name, &id).await,
                _ => Err(method_not_allowed()),
            },
            Route::Manifest { name, reference } => match method {
                _ if get_or_head => manifests::get(self, &name, &reference, &parts.headers, head).await,
                Method::PUT => {
                    let tags = routes::query_values(parts.uri.query(), "tag");
                    manifests::put(self, &name, &reference, tags, &parts.headers, body).await
                }
                Method::DELETE => manifests::delete(self, &name, &reference).await,
                _ => Err(method_not_allowed()),
            },
            _ => Err(method_not_allowed()),
        }
    }
}

async fn dispatch(State(registry): State<Registry>, request: Request) -> Response {
    let started = std::time::Instant::now();
    let (parts, body) = request.into_parts();
    let (method, path) = (parts.method.clone(), parts.uri.path().to_string());
    let route = routes::parse(&path).ok().flatten();
    let uploading = matches!(route, Some(Route::Upload { .. } | Route::UploadStart { .. }))
        && matches!(method, Method::PATCH | Method::PUT | Method::POST);
    let body = access_log::count_received(body, &method, route.as_ref().map_or("other", Route::name));
    let place = match registry.options.limits.admit(&method).await {
        Ok(place) => place,
        Err(refused) => {
            let response = refused.into_response();
            let log = registry.options.access_log;
            return access_log::wrap(method, path, route.as_ref(), started, response, None, log);
        }
    };
    // The calls of one request share a plugin instance.
    let handled = one_driver_per_request(one_instance_per_request(registry.handle(parts, body)));
    let outcome = match registry.options.request_timeout.filter(|_| !uploading) {
        // Dropping the handler at the deadline drops the plugin calls it
        // has in progress.
        Some(limit) => tokio::time::timeout(limit, handled).await.unwrap_or_else(|_| {
            Err(RegistryError::new(
                ErrorCode::Unknown,
                format!("the request took longer than http.requesttimeout ({limit:?}) and was stopped"),
            )
            .with_status(StatusCode::SERVICE_UNAVAILABLE))
        }),
        None => handled.await,
    };
    let response = outcome.unwrap_or_else(IntoResponse::into_response);
    let log = registry.options.access_log;
    access_log::wrap(method, path, route.as_ref(), started, response, place, log)
}

/// What `method` on `route` needs of the caller.
fn scope_of<'a>(route: &'a Route, method: &Method) -> Scope<'a> {
    let Some(repository) = route.repository() else {
        return match route {
            Route::Catalog => Scope::Catalog,
            _ => Scope::Login,
        };
    };
    let action = match (route, method) {
        (_, &Method::GET | &Method::HEAD) => Action::Pull,
        (Route::Blob { .. } | Route::Manifest { .. }, &Method::DELETE) => Action::Delete,
        _ => Action::Push,
    };
    Scope::Repository(repository, action)
}

/// The answer to a path that is no route: a reference that cannot be a
/// tag names no manifest, so reading or deleting one is MANIFEST_UNKNOWN,
/// as the spec has for any manifest not found; only a PUT, which would
/// create it, is refused as TAG_INVALID.
fn err_of_route(err: RegistryError, method: &Method) -> RegistryError {
    if err.code() == ErrorCode::TagInvalid && method != Method::PUT {
        return RegistryError::new(ErrorCode::ManifestUnknown, err.message());
    }
    err
}

/// `GET /v2/`: the API is here (and the caller may use it).
fn base() -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], "{}").into_response()
}

/// An `Allow` header's value.
fn allow(methods: &[Method]) -> String {
    methods.iter().map(Method::as_str).collect::<Vec<_>>().join(", ")
}

fn not_allowed(method: &Method, allowed: &str) -> RegistryError {
    RegistryError::new(
        ErrorCode::Unsupported,
        format!("{method} is not supported on this endpoint"),
    )
    .with_header(header::ALLOW, allowed)
}

/// A 200 with a JSON body (none for HEAD, but its length).
fn json_response(body: String, head: bool) -> Response {
    let length = body.len();
    let body = if head { String::new() } else { body };
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (header::CONTENT_LENGTH, length.to_string()),
        ],
        body,
    )
        .into_response()
}

/// Query parameters, as handlers receive them.
type Query = HashMap<String, String>;
