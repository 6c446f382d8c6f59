//! Docker Engine API wire types for Berth.
//!
//! This crate owns the *shapes* of the API: JSON types with Docker's exact field names,
//! error kinds with their single mapping to HTTP status codes, API version numbers, and
//! the 8-byte-header stream framing that attach, exec and logs use. It does no I/O.

pub mod changes;
pub mod container;
pub mod error;
pub mod events;
pub mod filters;
pub mod ids;
pub mod jobs;
pub mod network;
pub mod stdcopy;
pub mod system;
pub mod version;

pub use error::{ApiError, ErrorKind, Result};
pub use version::ApiVersion;
