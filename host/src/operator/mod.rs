//! The image registry operator: reconciles the `Config` custom resource
//! (`configs.imageregistry.operator.openshift.io/v1`, the singleton
//! `cluster`) into a registry: its storage (through the storage plugin's
//! provisioner), a Deployment running `berth serve`, its Service, Secret,
//! ServiceAccount, RBAC, PodDisruptionBudget and routes, and the Config's
//! status conditions.
//!
//! | file | job |
//! |---|---|
//! | `config.rs` | the Config's types (serde, JSON schema) |
//! | `crd.rs` | the CustomResourceDefinition, generated from them |
//! | `mapping.rs` | spec -> the registry pod's `REGISTRY_*` environment |
//! | `check.rs` | the validators on a Config |
//! | `facts.rs` | what is read from the cluster, as data |
//! | `defaults.rs` | the bootstrap Config and the fields the operator fills in |
//! | `resources.rs` | pure builders of the owned objects |
//! | `status.rs` | pure: outcome + storage + Deployment -> conditions |
//! | `reconcile.rs` | pure: what to apply, delete and record; the status |
//! | `lease.rs` | leader election on a Lease |
//! | `controller.rs` | the loop and the API calls |

pub mod check;
pub mod config;
pub mod controller;
pub mod crd;
pub mod defaults;
pub mod facts;
pub mod lease;
pub mod mapping;
pub mod reconcile;
pub mod resources;
pub mod status;

pub use check::{check_config, check_resource, read_resource, ClusterFacts};
pub use config::Config;
pub use mapping::{registry_env, RegistryEnv};
