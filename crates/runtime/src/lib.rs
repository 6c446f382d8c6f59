//! Running containers.
//!
//! [`spec`] builds the OCI runtime spec of a container with Docker's defaults.
//! The `berth-shim` binary (one per container, single-threaded, never inside the
//! tokio daemon: libcontainer clones its caller) creates and starts the container,
//! copies its output into a json-file log, reaps it and writes its exit status
//! ([`exit`]). The daemon side that drives shims arrives with the container jobs.

pub mod bpf;
pub mod cgroups;
pub mod exec;
pub mod exit;
pub mod logfile;
pub mod seccomp;
pub mod seccomp_default;
pub mod spec;

pub use spec::{MountSpec, Resources, RunConfig};
