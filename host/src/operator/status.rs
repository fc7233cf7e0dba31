//! Pure: what a reconcile did, the storage conditions and the Deployment as
//! read back, to the Config's status conditions. `lastTransitionTime`
//! changes only when a condition's status does ([`merge`]).

use super::config::{Condition, Config};
use super::facts::Facts;
use crate::validate::{Finding, Severity};

pub const AVAILABLE: &str = "Available";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";
pub const REMOVED: &str = "Removed";
pub const STORAGE_EXISTS: &str = "StorageExists";

/// How a reconcile ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// `managementState: Unmanaged`: nothing was touched.
    Unmanaged,
    /// `managementState: Removed`: the owned objects are deleted.
    Removed,
    /// The Config has error findings; nothing was applied.
    Refused(Vec<Finding>),
    /// Ensuring the storage failed: the message names the bucket and the cause.
    StorageFailed(String),
    /// Applying an object failed.
    ApplyFailed(String),
    /// Every object was applied.
    Applied,
}

/// The registry Deployment as read back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeploymentState {
    pub generation: i64,
    pub observed_generation: i64,
    pub replicas: i32,
    pub updated_replicas: i32,
    pub ready_replicas: i32,
    pub available_replicas: i32,
}

impl DeploymentState {
    /// Every replica runs the latest template and is available.
    fn complete(&self) -> bool {
        self.observed_generation >= self.generation
            && self.updated_replicas >= self.replicas
            && self.available_replicas >= self.replicas
    }
}

/// The conditions for `outcome`, before [`merge`] with the previous ones.
/// `storage` are the provisioner's (or [`local_storage_conditions`]).
pub fn conditions(outcome: &Outcome, deployment: Option<&DeploymentState>, storage: &[Condition]) -> Vec<Condition> {
    let mut out = Vec::new();
    let removed = *outcome == Outcome::Removed;
    out.push(match (removed, deployment) {
        (true, _) => condition(
            AVAILABLE,
            "False",
            "Removed",
            "the registry is removed (spec.managementState: Removed)",
        ),
        (false, None) => condition(
            AVAILABLE,
            "False",
            "DeploymentNotFound",
            "the registry Deployment does not exist",
        ),
        (false, Some(d)) if d.available_replicas > 0 => condition(
            AVAILABLE,
            "True",
            "Ready",
            &format!(
                "the registry is ready: {} of {} replicas available",
                d.available_replicas, d.replicas
            ),
        ),
        (false, Some(d)) => condition(
            AVAILABLE,
            "False",
            "NoReplicasAvailable",
            &format!("none of the {} registry replicas is available yet", d.replicas),
        ),
    });
    out.push(match (outcome, deployment) {
        (Outcome::Unmanaged, _) => condition(
            PROGRESSING,
            "False",
            "Unmanaged",
            "spec.managementState is Unmanaged: the operator changes nothing",
        ),
        (Outcome::Removed, _) => condition(PROGRESSING, "False", "Removed", "the registry's objects are deleted"),
        (Outcome::Refused(_), _) => condition(
            PROGRESSING,
            "False",
            "ConfigRefused",
            "the Config is not applied (see Degraded); the registry runs as it was",
        ),
        (Outcome::StorageFailed(_) | Outcome::ApplyFailed(_), _) => condition(
            PROGRESSING,
            "True",
            "Retrying",
            "the operator retries with backoff (see Degraded)",
        ),
        (Outcome::Applied, Some(d)) if !d.complete() => condition(
            PROGRESSING,
            "True",
            "DeploymentNotCompleted",
            &format!(
                "the registry is rolling out: {} of {} replicas updated, {} available",
                d.updated_replicas, d.replicas, d.available_replicas
            ),
        ),
        (Outcome::Applied, _) => condition(PROGRESSING, "False", "Ready", "the registry is rolled out"),
    });
    out.push(match outcome {
        Outcome::Refused(findings) => refused(findings),
        Outcome::StorageFailed(message) => condition(DEGRADED, "True", "StorageError", message),
        Outcome::ApplyFailed(message) => condition(DEGRADED, "True", "ApplyFailed", message),
        _ => condition(DEGRADED, "False", "AsExpected", ""),
    });
    out.push(if removed {
        condition(REMOVED, "True", "Removed", "spec.managementState is Removed")
    } else {
        condition(REMOVED, "False", "AsExpected", "")
    });
    out.extend(storage.iter().cloned());
    out
}

/// Degraded for error findings: the first one's reason; every error's field
/// and message, so the fix is in the condition.
fn refused(findings: &[Finding]) -> Condition {
    let errors: Vec<&Finding> = findings.iter().filter(|f| f.severity == Severity::Error).collect();
    let reason = errors.first().map_or("InvalidConfig", |f| f.reason.as_str());
    let message = errors
        .iter()
        .map(|f| {
            if f.field_path.is_empty() {
                f.message.clone()
            } else {
                format!("{}: {}", f.field_path, f.message)
            }
        })
        .collect::<Vec<_>>()
        .join("; ");
    condition(DEGRADED, "True", reason, &message)
}

/// StorageExists for storage without a provisioner: an emptyDir (said to
/// lose images on a restart) or a claim.
pub fn local_storage_conditions(config: &Config, facts: &Facts) -> Vec<Condition> {
    let storage = &config.spec.storage;
    if storage.empty_dir.is_some() {
        return vec![condition(
            STORAGE_EXISTS,
            "True",
            "EmptyDir",
            "emptyDir storage: images are lost when a registry pod is deleted; \
             set spec.storage.s3 or spec.storage.pvc for storage that lasts",
        )];
    }
    if storage.pvc.is_some() {
        return vec![match facts.pvc_access_modes {
            Some(_) => condition(
                STORAGE_EXISTS,
                "True",
                "ClaimExists",
                "the persistent volume claim exists",
            ),
            None => condition(
                STORAGE_EXISTS,
                "False",
                "ClaimNotFound",
                "the persistent volume claim spec.storage.pvc.claim names does not exist: create it",
            ),
        }];
    }
    Vec::new()
}

/// `next`, keeping each condition's previous `lastTransitionTime` when its
/// status did not change; `now` otherwise.
pub fn merge(previous: &[Condition], next: Vec<Condition>, now: &str) -> Vec<Condition> {
    next.into_iter()
        .map(|mut c| {
            let before = previous.iter().find(|p| p.type_ == c.type_);
            c.last_transition_time = match before {
                Some(p) if p.status == c.status && p.last_transition_time.is_some() => p.last_transition_time.clone(),
                _ => Some(now.to_string()),
            };
            c
        })
        .collect()
}

pub fn condition(type_: &str, status: &str, reason: &str, message: &str) -> Condition {
    Condition {
        type_: type_.into(),
        status: status.into(),
        last_transition_time: None,
        reason: Some(reason.into()),
        message: Some(message.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find<'a>(conditions: &'a [Condition], type_: &str) -> &'a Condition {
        conditions.iter().find(|c| c.type_ == type_).expect(type_)
    }

    fn error(path: &str, reason: &str, message: &str) -> Finding {
        Finding {
            field_path: path.into(),
            severity: Severity::Error,
            reason: reason.into(),
            message: message.into(),
        }
    }

    #[test]
    fn a_refused_config_is_degraded_with_the_field_and_the_fix() {
        let findings = vec![
            Finding {
                severity: Severity::Warning,
                ..error("spec.requests", "NotApplied", "w")
            },
            error("spec.storage.s3.region", "MissingRegion", "no region: set `region`"),
        ];
        let running = DeploymentState {
            generation: 1,
            observed_generation: 1,
            replicas: 1,
            updated_replicas: 1,
            ready_replicas: 1,
            available_replicas: 1,
        };
        let out = conditions(&Outcome::Refused(findings), Some(&running), &[]);
        let degraded = find(&out, DEGRADED);
        assert_eq!(degraded.status, "True");
        assert_eq!(degraded.reason.as_deref(), Some("MissingRegion"));
        assert_eq!(
            degraded.message.as_deref(),
            Some("spec.storage.s3.region: no region: set `region`")
        );
        assert_eq!(find(&out, AVAILABLE).status, "True", "the last good registry serves on");
        assert_eq!(find(&out, PROGRESSING).reason.as_deref(), Some("ConfigRefused"));
    }

    #[test]
    fn rollout_progress_and_removal() {
        let rolling = DeploymentState {
            generation: 2,
            observed_generation: 2,
            replicas: 2,
            updated_replicas: 1,
            ready_replicas: 1,
            available_replicas: 1,
        };
        let out = conditions(&Outcome::Applied, Some(&rolling), &[]);
        assert_eq!(find(&out, PROGRESSING).status, "True");
        assert_eq!(find(&out, AVAILABLE).status, "True");
        assert_eq!(find(&out, DEGRADED).status, "False");
        let done = DeploymentState {
            updated_replicas: 2,
            available_replicas: 2,
            ..rolling
        };
        assert_eq!(
            find(&conditions(&Outcome::Applied, Some(&done), &[]), PROGRESSING).status,
            "False"
        );
        let removed = conditions(&Outcome::Removed, None, &[]);
        assert_eq!(find(&removed, REMOVED).status, "True");
        assert_eq!(find(&removed, AVAILABLE).reason.as_deref(), Some("Removed"));
        let unmanaged = conditions(&Outcome::Unmanaged, None, &[]);
        assert_eq!(find(&unmanaged, PROGRESSING).reason.as_deref(), Some("Unmanaged"));
    }

    #[test]
    fn transition_times_move_only_with_the_status() {
        let before = merge(
            &[],
            vec![
                condition(DEGRADED, "False", "AsExpected", ""),
                condition(AVAILABLE, "False", "X", ""),
            ],
            "t1",
        );
        let after = merge(
            &before,
            vec![
                condition(DEGRADED, "False", "Other", "m"),
                condition(AVAILABLE, "True", "Ready", ""),
            ],
            "t2",
        );
        assert_eq!(find(&after, DEGRADED).last_transition_time.as_deref(), Some("t1"));
        assert_eq!(find(&after, AVAILABLE).last_transition_time.as_deref(), Some("t2"));
    }
}
