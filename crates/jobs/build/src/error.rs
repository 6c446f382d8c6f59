//! The build family's one error type, and its mapping to the API's kinds.

use berth_api::{ApiError, ErrorKind};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A bad request or Dockerfile: a 400 before the stream starts.
    #[error("{0}")]
    Invalid(String),
    /// The context could not be read or unpacked.
    #[error("{0}")]
    Context(String),
    /// A RUN ended with a non-zero status (`errorDetail.code`).
    #[error("{message}")]
    Run { code: i64, message: String },
    /// Something another job answered (pull, create, commit…).
    #[error("{0}")]
    Api(ApiError),
    #[error("{0}")]
    System(String),
    #[error("build cancelled")]
    Cancelled,
}

impl BuildError {
    /// The `errorDetail.code` of the stream's last message (the CLI's exit code).
    pub fn code(&self) -> i64 {
        match self {
            BuildError::Run { code, .. } => *code,
            _ => 1,
        }
    }
}

impl From<ApiError> for BuildError {
    fn from(e: ApiError) -> BuildError {
        if e.kind == ErrorKind::Cancelled {
            return BuildError::Cancelled;
        }
        BuildError::Api(e)
    }
}

impl From<std::io::Error> for BuildError {
    fn from(e: std::io::Error) -> BuildError {
        BuildError::System(e.to_string())
    }
}

impl From<berth_graph::Error> for BuildError {
    fn from(e: berth_graph::Error) -> BuildError {
        BuildError::Api(berth_apierr::graph(e))
    }
}

impl From<crate::lex::LexError> for BuildError {
    fn from(e: crate::lex::LexError) -> BuildError {
        BuildError::Invalid(e.0)
    }
}

impl From<BuildError> for ApiError {
    fn from(e: BuildError) -> ApiError {
        match e {
            BuildError::Invalid(m) | BuildError::Context(m) => ApiError::invalid(m),
            BuildError::Run { message, .. } => ApiError::system(message),
            BuildError::Api(e) => e,
            BuildError::System(m) => ApiError::system(m),
            BuildError::Cancelled => ApiError::cancelled(),
        }
    }
}

pub type Result<T, E = BuildError> = std::result::Result<T, E>;
