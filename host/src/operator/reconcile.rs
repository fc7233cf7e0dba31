//! Pure: one reconcile's decisions. Given the Config, the facts and what the
//! cluster has now, what to apply, what to delete, the status to write and
//! the events to record. `controller.rs` does the reading before and the
//! writing after; nothing here talks to the API server.

use serde_json::Value;

use super::config::{Condition, Config, ImageRegistryStatus};
use super::resources::{self, ObjectRef};
use super::status::{self, DeploymentState, Outcome};

/// What the cluster has now.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The registry Deployment's state, when it exists.
    pub deployment: Option<DeploymentState>,
    /// Its pod template's [`resources::CHECKSUM_ANNOTATION`].
    pub deployment_checksum: Option<String>,
    /// Every object with the operator's label, as found.
    pub owned: Vec<ObjectRef>,
}

/// A Kubernetes Event about the Config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Normal or Warning.
    pub warning: bool,
    /// CamelCase, like a condition reason.
    pub reason: String,
    pub note: String,
}

/// The writes of one reconcile.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Objects to server-side apply, in order.
    pub apply: Vec<Value>,
    /// Owned objects no longer wanted.
    pub delete: Vec<ObjectRef>,
    pub events: Vec<Event>,
}

/// Apply everything `desired` holds; delete owned objects it does not (a
/// route removed from the spec, say). An event says when the pods roll
/// because a secret they read changed.
pub fn apply(desired: Vec<Value>, observed: &Observed) -> Plan {
    let wanted: Vec<ObjectRef> = desired.iter().map(ObjectRef::of).collect();
    let delete = observed.owned.iter().filter(|o| !wanted.contains(o)).cloned().collect();
    let mut events = Vec::new();
    let checksum = desired
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .and_then(|d| d["spec"]["template"]["metadata"]["annotations"][resources::CHECKSUM_ANNOTATION].as_str());
    if let (Some(new), Some(old)) = (checksum, &observed.deployment_checksum) {
        if new != old {
            events.push(Event {
                warning: false,
                reason: "SecretChanged".into(),
                note: format!(
                    "the storage credentials changed: rolling the registry pods (secret {})",
                    super::mapping::CREDENTIALS_SECRET
                ),
            });
        }
    }
    Plan {
        apply: desired,
        delete,
        events,
    }
}

/// Delete every owned object (`managementState: Removed`, or the Config is
/// being deleted).
pub fn remove(observed: &Observed) -> Plan {
    Plan {
        delete: observed.owned.clone(),
        ..Plan::default()
    }
}

/// The status after a reconcile that ended in `outcome`: conditions merged
/// with the previous ones, the generation seen, the ready replicas and the
/// storage applied (kept as it was when nothing was applied).
pub fn status(
    config: &Config,
    outcome: &Outcome,
    deployment: Option<&DeploymentState>,
    storage: &[Condition],
    now: &str,
) -> ImageRegistryStatus {
    let previous = &config.status;
    let conditions = status::merge(
        &previous.conditions,
        status::conditions(outcome, deployment, storage),
        now,
    );
    let applied = match outcome {
        Outcome::Applied => config.spec.storage.clone(),
        Outcome::Removed => Default::default(),
        _ => previous.storage.clone(),
    };
    ImageRegistryStatus {
        observed_generation: config.metadata.generation,
        conditions,
        ready_replicas: Some(deployment.map_or(0, |d| d.ready_replicas)),
        storage_managed: config.spec.storage.management_state.as_deref() == Some("Managed"),
        storage: applied,
        ..previous.clone()
    }
}

/// A warning event for an outcome that degrades the Config, when that is
/// news: its Degraded message is not already the Config's. So a Config
/// that stays wrong, or storage that stays unreachable through the retries,
/// is told once, not on every reconcile.
pub fn degraded_event(config: &Config, outcome: &Outcome) -> Option<Event> {
    let (reason, what) = match outcome {
        Outcome::Refused(_) => ("ConfigRefused", "not applied, the registry runs as it was"),
        Outcome::StorageFailed(_) => ("StorageFailed", "the storage is not ready, nothing is applied"),
        Outcome::ApplyFailed(_) => ("ApplyFailed", "applying the registry's objects failed"),
        _ => return None,
    };
    let next = status::conditions(outcome, None, &[]);
    let degraded = next.iter().find(|c| c.type_ == status::DEGRADED)?;
    let before = config.status.conditions.iter().find(|c| c.type_ == status::DEGRADED);
    let same = before.is_some_and(|b| b.status == "True" && b.message == degraded.message);
    (!same).then(|| Event {
        warning: true,
        reason: reason.into(),
        note: format!("{what}: {}", degraded.message.as_deref().unwrap_or_default()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(api_version: &str, kind: &str, name: &str) -> Value {
        json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": "ns"}})
    }

    #[test]
    fn owned_objects_not_wanted_are_deleted() {
        let observed = Observed {
            owned: vec![
                ObjectRef::of(&object("v1", "Service", "image-registry")),
                ObjectRef::of(&object("networking.k8s.io/v1", "Ingress", "old-route")),
            ],
            ..Observed::default()
        };
        let plan = apply(vec![object("v1", "Service", "image-registry")], &observed);
        assert_eq!(plan.apply.len(), 1);
        assert_eq!(
            plan.delete,
            [ObjectRef::of(&object("networking.k8s.io/v1", "Ingress", "old-route"))]
        );
        assert_eq!(remove(&observed).delete.len(), 2);
    }

    #[test]
    fn a_changed_checksum_is_an_event() {
        let mut deployment = object("apps/v1", "Deployment", "image-registry");
        deployment["spec"] =
            json!({"template": {"metadata": {"annotations": {resources::CHECKSUM_ANNOTATION: "new"}}}});
        let observed = |old: &str| Observed {
            deployment_checksum: Some(old.into()),
            ..Observed::default()
        };
        assert_eq!(
            apply(vec![deployment.clone()], &observed("old")).events[0].reason,
            "SecretChanged"
        );
        assert!(apply(vec![deployment], &observed("new")).events.is_empty());
    }

    #[test]
    fn a_degradation_is_told_once() {
        let outcome = Outcome::StorageFailed("bucket \"b\": connection refused".into());
        let mut config = Config::default();
        let event = degraded_event(&config, &outcome).unwrap();
        assert_eq!(event.reason, "StorageFailed");
        assert!(event.note.contains("connection refused"), "{}", event.note);
        config.status = status(&config, &outcome, None, &[], "t");
        assert_eq!(degraded_event(&config, &outcome), None);
        let other = Outcome::StorageFailed("bucket \"b\": access denied".into());
        assert!(degraded_event(&config, &other).is_some());
        assert_eq!(degraded_event(&config, &Outcome::Applied), None);
    }
}
