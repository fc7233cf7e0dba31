//! The image registry operator's side of Berth. For now: the `Config`
//! custom resource (`configs.imageregistry.operator.openshift.io/v1`) as
//! serde types and the one mapping from its spec to the registry pod's
//! `REGISTRY_*` environment. The reconcile loop (kube) comes later and
//! reuses these.

pub mod config;
pub mod mapping;

pub use config::Config;
pub use mapping::{registry_env, RegistryEnv};
