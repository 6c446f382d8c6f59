//! The subsystems' errors as API errors, decided once: a job family that meets a
//! graph, registry or volume error answers with the same status as every other
//! family meeting it (before, the container family answered 500 for the image
//! store's conflicts and bad references that the image family answered 409 and
//! 400 for).
//!
//! The subsystem crates know nothing of the API; this crate is the seam, and
//! depends on nothing but their error types and `berth-api`.

use berth_api::{ApiError, ErrorKind};

/// An image store error.
pub fn graph(e: berth_graph::Error) -> ApiError {
    use berth_graph::Error as G;
    let kind = match &e {
        G::InvalidReference(_) | G::InvalidDigest(_) | G::Config(_) => ErrorKind::InvalidParameter,
        G::NoSuchImage(_) => ErrorKind::NotFound,
        G::Conflict(_) => ErrorKind::Conflict,
        G::Layer(_) => ErrorKind::InvalidParameter,
        G::Io { .. } => ErrorKind::System,
    };
    ApiError::new(kind, e.to_string())
}

/// A registry client error.
pub fn registry(e: berth_registry::Error) -> ApiError {
    use berth_registry::Error as R;
    let kind = match &e {
        R::NotFound(_) => ErrorKind::NotFound,
        // Not 401: the CLI answers a 401 on pull or push by prompting for a login,
        // and dockerd reports registry auth failures as 500.
        R::Unauthorized(_) => ErrorKind::System,
        R::Manifest(_) | R::Verify(_) => ErrorKind::InvalidParameter,
        R::Transport(_) => ErrorKind::System,
    };
    ApiError::new(kind, e.to_string())
}

/// A container runtime error (its spec, seccomp profile or shim): the start
/// fails as a system error, as dockerd's does.
pub fn runtime(e: berth_runtime::Error) -> ApiError {
    ApiError::new(ErrorKind::System, e.to_string())
}

/// A volume store error.
pub fn volume(e: berth_volume::Error) -> ApiError {
    use berth_volume::Error as V;
    let kind = match &e {
        V::NotFound(_) => ErrorKind::NotFound,
        V::Invalid(_) => ErrorKind::InvalidParameter,
        V::Io(_) => ErrorKind::System,
    };
    ApiError::new(kind, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_subsystem_error_has_one_status() {
        let conflict = berth_graph::Error::Conflict("x".into());
        assert_eq!(graph(conflict).status_code(), 409);
        assert_eq!(
            graph(berth_graph::Error::NoSuchImage("x".into())).status_code(),
            404
        );
        assert_eq!(
            registry(berth_registry::Error::Unauthorized("x".into())).status_code(),
            500,
            "a 401 would make the CLI prompt for a login"
        );
        assert_eq!(
            volume(berth_volume::Error::Invalid("x".into())).status_code(),
            400
        );
    }
}
