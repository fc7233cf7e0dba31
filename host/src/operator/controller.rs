//! The operator's loop and its thin layer of Kubernetes API calls: leader
//! election, watches that wake the loop, and for each reconcile of the
//! singleton Config the reads before ([`Facts`], [`Observed`]) and the writes
//! after (server-side apply, deletes, status, events). The decisions are
//! made by the pure modules: `check`, `defaults`, `resources`, `reconcile`,
//! `status`.
//!
//! One reconcile, in order: bootstrap a missing Config; finalizer; Unmanaged
//! or Removed; fill in `httpSecret` and a bucket name; check with the
//! validators (errors: Degraded, nothing applied); ensure the storage through
//! the driver's provisioner; apply the owned objects and delete those no
//! longer wanted; read the Deployment back; write the status if it changed.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    Event as CoreEvent, EventSource, ObjectReference, PersistentVolumeClaim, Secret, Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::PartialObjectMeta;
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use serde_json::{json, Value};
use tokio::sync::{oneshot, Notify};

use super::config::{Condition, Config, API_VERSION, KIND};
use super::crd::{GROUP, PLURAL};
use super::facts::{Facts, Infrastructure};
use super::lease::{LeaderLease, LEASE_DURATION, RENEW_EVERY, RETRY_EVERY};
use super::mapping::{self, EnvValue, CREDENTIALS_SECRET};
use super::reconcile::{self, Event, Observed, Plan};
use super::resources::{self, Inputs, ObjectRef};
use super::status::{self, DeploymentState, Outcome};
use super::{check, defaults};
use crate::plugin::{PluginHost, Provision};
use crate::validate::{self, ValidateError};

/// The field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "berth-operator";
/// The finalizer that makes deleting the Config clean up first.
pub const FINALIZER: &str = "imageregistry.operator.openshift.io/finalizer";
/// Where Events about the (cluster-scoped) Config are recorded.
pub const EVENT_NAMESPACE: &str = "default";
/// The Lease the operator replicas elect a leader on.
pub const LEASE_NAME: &str = "berth-operator-lock";
/// The longest wait between two failed reconciles.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Events arriving together (an apply touches several objects) make one
/// reconcile.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// How the operator runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the registry's objects live (and the Lease).
    pub namespace: String,
    /// The Config reconciled: `cluster` (older clusters: `instance`).
    pub config_name: String,
    /// The image the registry Deployment runs.
    pub registry_image: String,
    /// This replica's name in the Lease and in Events.
    pub identity: String,
    /// How often the Config is reconciled with no change seen.
    pub resync: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Validate(#[from] ValidateError),
    #[error("the Config cannot be read: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("lost the leader lease to {0}: another replica writes now")]
    LostLease(String),
    /// A reconcile step failed; the status says so, the loop retries.
    #[error("{0}")]
    Step(String),
}

/// Runs the operator until `shutdown` completes: waits to lead, then
/// reconciles on every change seen and every `resync`. `ready` turns true
/// once the API server has answered. Returns an error when leadership is
/// lost (the process should exit, to be restarted as a standby).
pub async fn run(
    client: Client,
    host: PluginHost,
    options: Options,
    ready: Arc<AtomicBool>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), OperatorError> {
    let mut shutdown = std::pin::pin!(shutdown);
    let mut lease = LeaderLease::new(
        Api::namespaced(client.clone(), &options.namespace),
        LEASE_NAME,
        &options.identity,
    );
    let mut told = None;
    loop {
        match lease.try_acquire().await {
            Ok(None) => break,
            Ok(Some(holder)) => {
                ready.store(true, Ordering::Relaxed);
                if told.as_ref() != Some(&holder) {
                    tracing::info!(%holder, "standing by: another replica holds the lease {LEASE_NAME}");
                    told = Some(holder);
                }
            }
            Err(err) => tracing::warn!("cannot read the lease {LEASE_NAME}: {err}"),
        }
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            _ = tokio::time::sleep(RETRY_EVERY) => {}
        }
    }
    ready.store(true, Ordering::Relaxed);
    tracing::info!(
        identity = lease.identity(),
        "leading: reconciling Config {}",
        options.config_name
    );

    let (lost_tx, mut lost) = oneshot::channel();
    let (stop, stopped) = oneshot::channel();
    let renewer = tokio::spawn(renew(lease, lost_tx, stopped));
    let kick = Arc::new(Notify::new());
    let watches = spawn_watches(&client, &options, &kick);
    let operator = Operator::new(client, host, options);

    let mut failures = 0u32;
    let result = loop {
        let outcome = tokio::select! {
            outcome = operator.reconcile() => outcome,
            holder = &mut lost => break Err(OperatorError::LostLease(holder.unwrap_or_default())),
            _ = &mut shutdown => break Ok(()),
        };
        let wait = match outcome {
            Ok(wait) => {
                failures = 0;
                wait
            }
            Err(err) => {
                failures += 1;
                let wait = backoff(failures);
                tracing::warn!("reconcile failed (retrying in {wait:?}): {err}");
                wait
            }
        };
        tokio::select! {
            _ = kick.notified() => tokio::time::sleep(DEBOUNCE).await,
            _ = tokio::time::sleep(wait) => {}
            holder = &mut lost => break Err(OperatorError::LostLease(holder.unwrap_or_default())),
            _ = &mut shutdown => break Ok(()),
        }
    };
    for watch in watches {
        watch.abort();
    }
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), renewer).await;
    result
}

/// 1 s, 2 s, 4 s, ... up to [`MAX_BACKOFF`].
fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.saturating_sub(1).min(6)).min(MAX_BACKOFF)
}

/// Renews the lease until told to stop (then releases it) or until it is
/// lost: held by another replica, or not renewed for nearly its duration.
async fn renew(mut lease: LeaderLease, lost: oneshot::Sender<String>, mut stop: oneshot::Receiver<()>) {
    let mut renewed = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = &mut stop => {
                if let Err(err) = lease.release().await {
                    tracing::warn!("cannot release the lease {LEASE_NAME}: {err}");
                }
                return;
            }
            _ = tokio::time::sleep(RENEW_EVERY) => {}
        }
        match lease.try_acquire().await {
            Ok(None) => renewed = tokio::time::Instant::now(),
            Ok(Some(holder)) => {
                let _ = lost.send(holder);
                return;
            }
            Err(err) => {
                tracing::warn!("cannot renew the lease {LEASE_NAME}: {err}");
                if renewed.elapsed() + RENEW_EVERY >= LEASE_DURATION {
                    let _ = lost.send("nobody (it could not be renewed in time)".into());
                    return;
                }
            }
        }
    }
}

/// Watches that wake the loop: the Config, and in the namespace the
/// Deployment, Services and Secrets (the credentials secret has no label of
/// ours). Metadata only: the loop reads what it needs itself.
fn spawn_watches(client: &Client, options: &Options, kick: &Arc<Notify>) -> Vec<tokio::task::JoinHandle<()>> {
    let ns = &options.namespace;
    let by_name = watcher::Config::default().fields(&format!("metadata.name={}", options.config_name));
    vec![
        watch(
            Api::<PartialObjectMeta<DynamicObject>>::all_with(client.clone(), &config_resource()),
            by_name,
            kick,
        ),
        watch(
            Api::<PartialObjectMeta<Deployment>>::namespaced(client.clone(), ns),
            watcher::Config::default(),
            kick,
        ),
        watch(
            Api::<PartialObjectMeta<Service>>::namespaced(client.clone(), ns),
            watcher::Config::default(),
            kick,
        ),
        watch(
            Api::<PartialObjectMeta<Secret>>::namespaced(client.clone(), ns),
            watcher::Config::default(),
            kick,
        ),
    ]
}

fn watch<K>(api: Api<K>, config: watcher::Config, kick: &Arc<Notify>) -> tokio::task::JoinHandle<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let kick = kick.clone();
    tokio::spawn(async move {
        let mut events = std::pin::pin!(watcher(api, config).default_backoff());
        while let Some(event) = events.next().await {
            match event {
                Ok(_) => kick.notify_one(),
                Err(err) => tracing::debug!("watch: {err}"),
            }
        }
    })
}

/// `configs.imageregistry.operator.openshift.io/v1`.
pub fn config_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, "v1", KIND), PLURAL)
}

/// The API resource of an `apiVersion` and `kind`.
fn api_resource(api_version: &str, kind: &str) -> ApiResource {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind))
}

struct Operator {
    client: Client,
    host: PluginHost,
    options: Options,
    configs: Api<DynamicObject>,
}

impl Operator {
    fn new(client: Client, host: PluginHost, options: Options) -> Self {
        Operator {
            configs: Api::all_with(client.clone(), &config_resource()),
            client,
            host,
            options,
        }
    }

    /// One reconcile; `Ok(wait)` is how long until the next one when
    /// nothing changes.
    async fn reconcile(&self) -> Result<Duration, OperatorError> {
        let name = &self.options.config_name;
        let Some(object) = self.configs.get_opt(name).await? else {
            self.bootstrap().await?;
            return Ok(Duration::ZERO);
        };
        let config: Config = serde_json::from_value(serde_json::to_value(&object)?)?;
        let finalizers = object.metadata.finalizers.clone().unwrap_or_default();
        if object.metadata.deletion_timestamp.is_some() {
            return self.finalize(&config, finalizers).await;
        }
        if !finalizers.iter().any(|f| f == FINALIZER) {
            let mut finalizers = finalizers;
            finalizers.push(FINALIZER.into());
            self.patch_config(json!({"metadata": {"finalizers": finalizers}}))
                .await?;
            return Ok(Duration::ZERO);
        }

        let facts = self.facts(&config).await?;
        let observed = self.observed(&facts).await?;
        match config.spec.management_state.as_deref() {
            Some("Unmanaged") => {
                self.write_status(&config, &Outcome::Unmanaged, observed.deployment.as_ref(), &[])
                    .await?;
                return Ok(self.options.resync);
            }
            Some("Removed") => return self.remove(&config, &facts, &observed).await,
            _ => {}
        }
        let fresh = defaults::Fresh {
            http_secret: random_hex(128)?,
            bucket_suffix: random_hex(12)?,
        };
        if let Some(patch) = defaults::missing_spec_fields(&config, &facts, &fresh) {
            tracing::info!("filling in spec fields the operator defaults (httpSecret, bucket)");
            self.patch_config(patch).await?;
            return Ok(Duration::ZERO);
        }

        let findings = check::check_config(&self.host, &config, None, &facts.cluster_facts()).await?;
        for warning in findings.iter().filter(|f| f.severity == validate::Severity::Warning) {
            tracing::warn!("{}", validate::format_text(warning));
        }
        if validate::has_errors(&findings) {
            self.degraded(&config, Outcome::Refused(findings), &observed, &[])
                .await?;
            return Ok(self.options.resync);
        }

        let storage = match self.ensure_storage(&config, &facts).await {
            Ok(Some(storage)) => storage,
            Ok(None) => return Ok(Duration::ZERO),
            Err((message, conditions)) => {
                self.degraded(&config, Outcome::StorageFailed(message.clone()), &observed, &conditions)
                    .await?;
                return Err(OperatorError::Step(message));
            }
        };

        let env = mapping::registry_env(&config.spec, &facts.cluster_facts().secret_keys)
            .map_err(|err| OperatorError::Step(err.to_string()))?;
        let desired = resources::build(&Inputs {
            config: &config,
            env: &env,
            facts: &facts,
            image: &self.options.registry_image,
            namespace: &self.options.namespace,
        });
        let plan = reconcile::apply(desired, &observed);
        if let Err(message) = self.execute(&plan).await {
            self.degraded(&config, Outcome::ApplyFailed(message.clone()), &observed, &storage)
                .await?;
            return Err(OperatorError::Step(message));
        }
        for event in &plan.events {
            self.publish(&config, event).await;
        }
        let deployment = self.deployment().await?.map(|(state, _)| state);
        self.write_status(&config, &Outcome::Applied, deployment.as_ref(), &storage)
            .await?;
        Ok(self.options.resync)
    }

    /// A reconcile that stops degraded: an event when that is news, and the
    /// status, with the Deployment as it runs.
    async fn degraded(
        &self,
        config: &Config,
        outcome: Outcome,
        observed: &Observed,
        storage: &[Condition],
    ) -> Result<(), OperatorError> {
        if let Some(event) = reconcile::degraded_event(config, &outcome) {
            self.publish(config, &event).await;
        }
        self.write_status(config, &outcome, observed.deployment.as_ref(), storage)
            .await
    }

    /// Creates the Config with OpenShift's defaults.
    async fn bootstrap(&self) -> Result<(), OperatorError> {
        let facts = Facts {
            infrastructure: self.infrastructure().await?,
            ..Facts::default()
        };
        let value = defaults::initial_config(&self.options.config_name, &facts, &random_hex(12)?);
        let object: DynamicObject = serde_json::from_value(value)?;
        match self.configs.create(&PostParams::default(), &object).await {
            Ok(created) => {
                let config: Config = serde_json::from_value(serde_json::to_value(&created)?)?;
                let storage = config.spec.storage.types().join(", ");
                tracing::info!(storage = %storage, "created the Config {}", self.options.config_name);
                self.publish(
                    &config,
                    &Event {
                        warning: false,
                        reason: "ConfigCreated".into(),
                        note: format!("no Config existed: created one with {storage} storage"),
                    },
                )
                .await;
                Ok(())
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    /// Deleting the Config: remove what it owns, then let it go.
    async fn finalize(&self, config: &Config, finalizers: Vec<String>) -> Result<Duration, OperatorError> {
        if finalizers.iter().any(|f| f == FINALIZER) {
            let facts = self.facts(config).await?;
            let observed = self.observed(&facts).await?;
            self.execute(&reconcile::remove(&observed))
                .await
                .map_err(OperatorError::Step)?;
            self.remove_storage(config, &facts).await;
            let rest: Vec<String> = finalizers.into_iter().filter(|f| f != FINALIZER).collect();
            self.patch_config(json!({"metadata": {"finalizers": rest}})).await?;
            tracing::info!("the Config is being deleted: removed the registry");
        }
        Ok(self.options.resync)
    }

    /// `managementState: Removed`: the owned objects go, and a Managed
    /// bucket that holds nothing; back to Managed recreates them.
    async fn remove(&self, config: &Config, facts: &Facts, observed: &Observed) -> Result<Duration, OperatorError> {
        let already = config
            .status
            .conditions
            .iter()
            .any(|c| c.type_ == status::REMOVED && c.status == "True");
        if !observed.owned.is_empty() || !already {
            self.execute(&reconcile::remove(observed))
                .await
                .map_err(OperatorError::Step)?;
            self.remove_storage(config, facts).await;
            self.publish(
                config,
                &Event {
                    warning: false,
                    reason: "Removed".into(),
                    note: format!("deleted the registry's {} objects", observed.owned.len()),
                },
            )
            .await;
        }
        self.write_status(config, &Outcome::Removed, None, &[]).await?;
        Ok(self.options.resync)
    }

    /// Ensures the storage: S3 (any driver with a provisioner) through the
    /// plugin when `storage.managementState` is Managed, only checks it when
    /// Unmanaged, and decides it when unset (Managed if the operator creates
    /// the bucket, Unmanaged if it existed), writing that to the spec
    /// (`Ok(None)`: the spec changed, reconcile again). Storage without a
    /// provisioner gets [`status::local_storage_conditions`].
    async fn ensure_storage(
        &self,
        config: &Config,
        facts: &Facts,
    ) -> Result<Option<Vec<Condition>>, (String, Vec<Condition>)> {
        if config.spec.storage.s3.is_none() {
            return Ok(Some(status::local_storage_conditions(config, facts)));
        }
        let (driver, parameters) = self.driver_parameters(config, facts).map_err(|m| (m, Vec::new()))?;
        let state = config.spec.storage.management_state.as_deref();
        let action = if state == Some("Managed") {
            Provision::Ensure
        } else {
            Provision::Exists
        };
        let mut conditions = self.provision(&driver, action, &parameters).await?;
        let exists = conditions
            .iter()
            .find(|c| c.type_ == status::STORAGE_EXISTS)
            .map(|c| c.status.clone());
        // Unset: decided by whether the bucket was there (an unreachable
        // endpoint decides nothing and fails below).
        let mut decided = None;
        if state.is_none() {
            match exists.as_deref() {
                Some("True") => decided = Some("Unmanaged"),
                Some("False") => {
                    conditions = self.provision(&driver, Provision::Ensure, &parameters).await?;
                    decided = Some("Managed");
                }
                _ => {}
            }
        }
        let failed: Vec<String> = conditions
            .iter()
            .filter(|c| c.status != "True")
            .map(|c| format!("{}: {}", c.type_, c.message.as_deref().unwrap_or_default()))
            .collect();
        if !failed.is_empty() {
            return Err((format!("storage.s3: {}", failed.join("; ")), conditions));
        }
        self.tell_created(config, &conditions).await;
        if let Some(decided) = decided {
            self.patch_config(json!({"spec": {"storage": {"managementState": decided}}}))
                .await
                .map_err(|err| (err.to_string(), conditions.clone()))?;
            tracing::info!("spec.storage.managementState is now {decided}");
            return Ok(None);
        }
        Ok(Some(conditions))
    }

    /// An event when the provisioner created the bucket.
    async fn tell_created(&self, config: &Config, conditions: &[Condition]) {
        if let Some(created) = conditions.iter().find(|c| c.reason.as_deref() == Some("BucketCreated")) {
            let note = created.message.clone().unwrap_or_default();
            self.publish(
                config,
                &Event {
                    warning: false,
                    reason: "StorageCreated".into(),
                    note,
                },
            )
            .await;
        }
    }

    /// Deletes the bucket when the operator manages it and it holds nothing;
    /// a bucket with data is kept, and an event says so.
    async fn remove_storage(&self, config: &Config, facts: &Facts) {
        if config.spec.storage.s3.is_none() || config.spec.storage.management_state.as_deref() != Some("Managed") {
            return;
        }
        let Ok((driver, parameters)) = self.driver_parameters(config, facts) else {
            return;
        };
        let empty = match crate::storage::open_driver(&self.host, &driver, parameters.clone()).await {
            Ok(storage) => match storage.list("/").await {
                Ok(children) => children.is_empty(),
                Err(crate::storage::StorageError::PathNotFound(_)) => true,
                Err(err) => {
                    tracing::warn!("cannot tell whether the bucket is empty, keeping it: {err}");
                    false
                }
            },
            Err(err) => {
                tracing::warn!("cannot open the storage to remove it: {err}");
                return;
            }
        };
        let event = if empty {
            match self.provision(&driver, Provision::Remove, &parameters).await {
                Ok(conditions) | Err((_, conditions)) => Event {
                    warning: false,
                    reason: "StorageRemoved".into(),
                    note: conditions
                        .iter()
                        .filter_map(|c| c.message.clone())
                        .collect::<Vec<_>>()
                        .join("; "),
                },
            }
        } else {
            Event {
                warning: false,
                reason: "StorageKept".into(),
                note: "the bucket holds images: kept; delete it by hand if it is no longer wanted".into(),
            }
        };
        self.publish(config, &event).await;
    }

    /// The storage driver and its parameters as the registry pods get them,
    /// the credentials' values included.
    fn driver_parameters(&self, config: &Config, facts: &Facts) -> Result<(String, Vec<(String, String)>), String> {
        let keys = facts.cluster_facts().secret_keys;
        let env = mapping::registry_env(&config.spec, &keys).map_err(|err| err.to_string())?;
        let vars = env.vars.iter().filter_map(|var| match &var.value {
            EnvValue::Literal(value) => Some((var.name.clone(), value.clone())),
            EnvValue::Secret { key, .. } => facts.credential(key).map(|value| (var.name.clone(), value)),
        });
        let loaded = crate::config::parse("version: 0.1\n", vars).map_err(|err| err.to_string())?;
        let (driver, parameters) = loaded.config.storage_driver();
        Ok((driver.to_string(), parameters))
    }

    async fn provision(
        &self,
        driver: &str,
        action: Provision,
        parameters: &[(String, String)],
    ) -> Result<Vec<Condition>, (String, Vec<Condition>)> {
        match self.host.provision(driver, action, parameters).await {
            Ok(Ok(conditions)) => Ok(conditions
                .into_iter()
                .map(|c| status::condition(&c.type_, &c.status, &c.reason, &c.message))
                .collect()),
            Ok(Err(err)) => Err((
                format!("storage.{driver}: {}", crate::plugin::wit_error_text(&err)),
                Vec::new(),
            )),
            Err(err) => Err((format!("storage.{driver}: {err}"), Vec::new())),
        }
    }

    /// Applies and deletes what `plan` says; the first failure, in words.
    async fn execute(&self, plan: &Plan) -> Result<(), String> {
        let params = PatchParams::apply(FIELD_MANAGER).force();
        for object in &plan.apply {
            let target = ObjectRef::of(object);
            let api = self.api(&target);
            api.patch(&target.name, &params, &Patch::Apply(object))
                .await
                .map_err(|err| format!("applying {target}: {err}"))?;
        }
        for target in &plan.delete {
            match self.api(target).delete(&target.name, &DeleteParams::background()).await {
                Ok(_) => tracing::info!("deleted {target}, which the Config no longer asks for"),
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(err) => return Err(format!("deleting {target}: {err}")),
            }
        }
        Ok(())
    }

    fn api(&self, target: &ObjectRef) -> Api<DynamicObject> {
        let resource = api_resource(&target.api_version, &target.kind);
        match &target.namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &resource),
            None => Api::all_with(self.client.clone(), &resource),
        }
    }

    /// Writes the status for `outcome` when it differs from the Config's.
    async fn write_status(
        &self,
        config: &Config,
        outcome: &Outcome,
        deployment: Option<&DeploymentState>,
        storage: &[Condition],
    ) -> Result<(), OperatorError> {
        let now = Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        let next = reconcile::status(config, outcome, deployment, storage, &now);
        if next == config.status {
            return Ok(());
        }
        self.configs
            .patch_status(
                &self.options.config_name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": next})),
            )
            .await?;
        Ok(())
    }

    async fn patch_config(&self, patch: Value) -> Result<(), OperatorError> {
        self.configs
            .patch(
                &self.options.config_name,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        Ok(())
    }

    /// Records an event on the Config (core/v1: Kubernetes 1.20's
    /// events.k8s.io/v1 refuses events about cluster-scoped objects); a
    /// failure to record is only logged.
    async fn publish(&self, config: &Config, event: &Event) {
        tracing::info!(reason = %event.reason, "{}", event.note);
        let now = Timestamp::now();
        let name = config.metadata.name.clone().unwrap_or_default();
        let mut note = event.note.clone();
        if note.len() > 1000 {
            let mut end = 1000;
            while !note.is_char_boundary(end) {
                end -= 1;
            }
            note.truncate(end);
        }
        let record = CoreEvent {
            metadata: ObjectMeta {
                name: Some(format!("{name}.{:x}", now.as_nanosecond())),
                namespace: Some(EVENT_NAMESPACE.into()),
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                api_version: Some(API_VERSION.into()),
                kind: Some(KIND.into()),
                name: Some(name),
                uid: config.metadata.uid.clone(),
                resource_version: config.metadata.resource_version.clone(),
                ..ObjectReference::default()
            },
            type_: Some(if event.warning { "Warning" } else { "Normal" }.into()),
            reason: Some(event.reason.clone()),
            message: Some(note),
            action: Some("Reconcile".into()),
            count: Some(1),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            source: Some(EventSource {
                component: Some(FIELD_MANAGER.into()),
                host: None,
            }),
            reporting_component: Some(FIELD_MANAGER.into()),
            reporting_instance: Some(self.options.identity.clone()),
            ..CoreEvent::default()
        };
        let events: Api<CoreEvent> = Api::namespaced(self.client.clone(), EVENT_NAMESPACE);
        if let Err(err) = events.create(&PostParams::default(), &record).await {
            tracing::warn!("cannot record the event {}: {err}", event.reason);
        }
    }

    /// What the operator reads of the cluster for `config`.
    async fn facts(&self, config: &Config) -> Result<Facts, OperatorError> {
        let ns = &self.options.namespace;
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), ns);
        let data = |secret: Secret| -> BTreeMap<String, Vec<u8>> {
            secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect()
        };
        let credentials = secrets.get_opt(CREDENTIALS_SECRET).await?.map(data);
        let pvc_access_modes = match &config.spec.storage.pvc {
            Some(pvc) => {
                let claim = pvc
                    .claim
                    .as_deref()
                    .filter(|c| !c.is_empty())
                    .unwrap_or(resources::DEFAULT_CLAIM);
                let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), ns);
                claims
                    .get_opt(claim)
                    .await?
                    .map(|c| c.spec.and_then(|s| s.access_modes).unwrap_or_default())
            }
            None => None,
        };
        let mut route_certificates = BTreeMap::new();
        for name in config.spec.routes.iter().filter_map(|r| r.secret_name.as_deref()) {
            if let Some(secret) = secrets.get_opt(name).await? {
                let data = data(secret);
                let text = |key: &str| String::from_utf8_lossy(data.get(key).map_or(&[][..], |v| v)).into_owned();
                route_certificates.insert(name.to_string(), (text("tls.crt"), text("tls.key")));
            }
        }
        let groups = self.client.list_api_groups().await?;
        let served = |group: &str, version: &str| {
            groups
                .groups
                .iter()
                .any(|g| g.name == group && g.versions.iter().any(|v| v.version == version))
        };
        Ok(Facts {
            credentials,
            pvc_access_modes,
            routes_served: served("route.openshift.io", "v1"),
            pdb_v1_served: served("policy", "v1"),
            route_certificates,
            infrastructure: if served("config.openshift.io", "v1") {
                self.infrastructure().await?
            } else {
                None
            },
        })
    }

    /// OpenShift's Infrastructure `cluster`, where it is served.
    async fn infrastructure(&self) -> Result<Option<Infrastructure>, OperatorError> {
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("config.openshift.io", "v1", "Infrastructure"));
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &resource);
        let found = match api.get_opt("cluster").await {
            Ok(found) => found,
            // Not served: not OpenShift.
            Err(kube::Error::Api(status)) if status.code == 404 => None,
            Err(err) => return Err(err.into()),
        };
        Ok(found.map(|infra| {
            let status = &infra.data["status"];
            Infrastructure {
                name: status["infrastructureName"].as_str().unwrap_or("berth").to_string(),
                aws_region: status["platformStatus"]["aws"]["region"].as_str().map(str::to_string),
            }
        }))
    }

    /// The owned objects that exist, and the Deployment's state.
    async fn observed(&self, facts: &Facts) -> Result<Observed, OperatorError> {
        let selector = ListParams::default().labels(&resources::owned_selector(&self.options.namespace));
        let mut owned = Vec::new();
        for (api_version, kind, namespaced) in resources::owned_kinds(facts) {
            let target = ObjectRef {
                api_version: api_version.into(),
                kind: kind.into(),
                namespace: namespaced.then(|| self.options.namespace.clone()),
                name: String::new(),
            };
            for item in self.api(&target).list_metadata(&selector).await?.items {
                owned.push(ObjectRef {
                    name: item.metadata.name.unwrap_or_default(),
                    ..target.clone()
                });
            }
        }
        let (deployment, deployment_checksum) = match self.deployment().await? {
            Some((state, checksum)) => (Some(state), checksum),
            None => (None, None),
        };
        Ok(Observed {
            deployment,
            deployment_checksum,
            owned,
        })
    }

    /// The registry Deployment's state and its template's checksum.
    async fn deployment(&self) -> Result<Option<(DeploymentState, Option<String>)>, OperatorError> {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), &self.options.namespace);
        let Some(deployment) = api.get_opt(resources::REGISTRY).await? else {
            return Ok(None);
        };
        let status = deployment.status.unwrap_or_default();
        let spec = deployment.spec.unwrap_or_default();
        let checksum = spec
            .template
            .metadata
            .and_then(|m| m.annotations)
            .and_then(|a| a.get(resources::CHECKSUM_ANNOTATION).cloned());
        Ok(Some((
            DeploymentState {
                generation: deployment.metadata.generation.unwrap_or(0),
                observed_generation: status.observed_generation.unwrap_or(0),
                replicas: spec.replicas.unwrap_or(1),
                updated_replicas: status.updated_replicas.unwrap_or(0),
                ready_replicas: status.ready_replicas.unwrap_or(0),
                available_replicas: status.available_replicas.unwrap_or(0),
            },
            checksum,
        )))
    }
}

/// `len` hex digits from the system's random source.
fn random_hex(len: usize) -> Result<String, OperatorError> {
    use std::io::Read;
    let mut bytes = vec![0u8; len.div_ceil(2)];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|err| OperatorError::Step(format!("cannot read /dev/urandom for a generated secret: {err}")))?;
    let mut text = hex::encode(bytes);
    text.truncate(len);
    Ok(text)
}
