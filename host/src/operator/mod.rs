//! The image registry operator's side of Berth. For now: the `Config`
//! custom resource (`configs.imageregistry.operator.openshift.io/v1`) as
//! serde types, the one mapping from its spec to the registry pod's
//! `REGISTRY_*` environment, and checking a Config with the same validators
//! as a registry configuration. The reconcile loop (kube) comes later and
//! reuses these.

pub mod check;
pub mod config;
pub mod mapping;

pub use check::{check_config, check_resource, read_resource, ClusterFacts};
pub use config::Config;
pub use mapping::{registry_env, RegistryEnv};
