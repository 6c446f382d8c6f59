//! The runtime crate's one error type.

/// What can go wrong building a container's spec or talking to its shim.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A seccomp profile that cannot be read, converted or compiled (the
    /// user's, from `--security-opt seccomp=`).
    #[error("{0}")]
    Seccomp(String),
    /// The container's configuration cannot become an OCI spec.
    #[error("{0}")]
    Spec(String),
    /// The daemon and a shim did not understand each other.
    #[error("shim: {0}")]
    Shim(String),
}
