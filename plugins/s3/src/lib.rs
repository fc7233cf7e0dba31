//! The `s3` storage driver: distribution's s3 driver (v2.8) as a component,
//! storing into an S3 bucket or an S3-compatible service, and provisioning
//! that bucket for the operator.
//!
//! - The client is aws-sdk-s3 over wasi:http (`aws-smithy-wasm`), futures
//!   run by wstd's `block_on`; the host does TLS and pools connections, and
//!   lets requests reach only the configured endpoint.
//! - The data path (ranged GET readers, PutObject, UploadPart) is signed by
//!   hand with `aws-sigv4` and written to / read from wasi streams directly
//!   (see [`raw`]): a reader keeps its response body across calls, which
//!   wstd's per-`block_on` reactor cannot, and PUT bodies go unsigned
//!   (`UNSIGNED-PAYLOAD`), so no SHA-256 or CRC runs over the data in wasm.
//! - Writers buffer `chunksize` bytes in guest memory per part, so
//!   `chunksize` must fit the plugin memory limit (twice over, to be safe).
//!
//! Parameters, key mapping and part planning are in [`params`], pure and
//! unit tested natively.

pub mod params;
pub mod xml;

#[cfg(target_arch = "wasm32")]
wit_bindgen::generate!({
    path: "../../wit/storage",
    world: "berth:storage/provisioning-storage-driver@0.1.0",
});

#[cfg(target_arch = "wasm32")]
mod client;
#[cfg(target_arch = "wasm32")]
mod driver;
#[cfg(target_arch = "wasm32")]
mod provision;
#[cfg(target_arch = "wasm32")]
mod raw;

// `driver::S3` implements both exported interfaces (the provisioner's in
// `provision`).
#[cfg(target_arch = "wasm32")]
use driver::S3;
#[cfg(target_arch = "wasm32")]
export!(S3);
