//! Running containers.
//!
//! [`spec`] builds the OCI runtime spec of a container with Docker's defaults.
//! The `berth-shim` binary (one per container, single-threaded, never inside the
//! tokio daemon: libcontainer clones its caller) creates and starts the container,
//! copies its output into a json-file log, reaps it and writes its exit status
//! ([`exit`]). [`shim`] is the protocol between the daemon and its shims (their
//! arguments and reports), defined once for both sides and versioned.

pub mod attachsock;
pub mod bpf;
pub mod cgpath;
pub mod cgroups;
mod error;
pub mod exec;
pub mod exit;
pub mod features;
pub mod logfile;
pub mod placement;
pub mod seccomp;
pub mod seccomp_default;
pub mod shim;
pub mod spec;
pub mod unitprops;

pub use error::Error;
pub use spec::{MountSpec, Resources, RunConfig};
