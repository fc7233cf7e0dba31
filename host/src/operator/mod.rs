//! The image registry operator's side of Berth. For now: the `Config`
//! custom resource (`configs.imageregistry.operator.openshift.io/v1`) as
//! serde types. The reconcile loop (kube) comes later and reuses them.

pub mod config;

pub use config::Config;
