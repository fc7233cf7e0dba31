//! Berth: an OCI image registry whose storage drivers are WebAssembly
//! components. See `DESIGN.md` in the shared folder for the map.

pub mod auth;
pub mod cli;
pub mod config;
pub mod glob;
pub mod metrics;
pub mod oci;
pub mod operator;
pub mod plugin;
pub mod registry;
pub mod storage;
pub mod store;
pub mod validate;
