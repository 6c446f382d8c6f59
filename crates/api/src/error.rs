//! Error kinds, after moby's `errdefs`, and the one place they map to HTTP status.

use serde::Serialize;

/// What kind of failure an error is; decides the HTTP status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The client asked for something that does not exist (404).
    NotFound,
    /// The request conflicts with the current state (409).
    Conflict,
    /// The request is malformed or has invalid values (400).
    InvalidParameter,
    /// Authentication is missing or wrong (401).
    Unauthorized,
    /// The request is understood but refused (403).
    Forbidden,
    /// Nothing changed, e.g. starting a started container (304).
    NotModified,
    /// The method is not allowed on this path (405).
    MethodNotAllowed,
    /// The daemon cannot serve this now, e.g. while shutting down (503).
    Unavailable,
    /// The request or one of its parts is larger than the daemon accepts (413).
    TooLarge,
    /// The feature is not implemented by this daemon (501).
    NotImplemented,
    /// The client went away or the request was cancelled (499 in logs; 500 on the wire).
    Cancelled,
    /// Anything else: a daemon-side failure (500).
    System,
}

impl ErrorKind {
    /// The HTTP status code for this kind. This is the only place that decides it.
    pub fn status_code(self) -> u16 {
        match self {
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict => 409,
            ErrorKind::InvalidParameter => 400,
            ErrorKind::Unauthorized => 401,
            ErrorKind::Forbidden => 403,
            ErrorKind::NotModified => 304,
            ErrorKind::MethodNotAllowed => 405,
            ErrorKind::Unavailable => 503,
            ErrorKind::NotImplemented => 501,
            ErrorKind::TooLarge => 413,
            ErrorKind::Cancelled | ErrorKind::System => 500,
        }
    }
}

/// An error as the API reports it: a kind and Docker's message text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
}

/// The JSON body of every error response: `{"message": "..."}`.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    pub message: &'a str,
}

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
        }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidParameter, message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }
    pub fn not_implemented(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotImplemented, message)
    }
    pub fn system(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::System, message)
    }
    pub fn cancelled() -> Self {
        Self::new(ErrorKind::Cancelled, "request cancelled")
    }
    pub fn status_code(&self) -> u16 {
        self.kind.status_code()
    }
    /// The response body, `{"message": "..."}`, as bytes.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&ErrorBody {
            message: &self.message,
        })
        .unwrap_or_else(|_| b"{\"message\":\"internal error\"}".to_vec())
    }
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> Self {
        let kind = match e.kind() {
            std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            std::io::ErrorKind::PermissionDenied => ErrorKind::Forbidden,
            std::io::ErrorKind::AlreadyExists => ErrorKind::Conflict,
            std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData => {
                ErrorKind::InvalidParameter
            }
            _ => ErrorKind::System,
        };
        ApiError::new(kind, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_docker_status_codes() {
        assert_eq!(ErrorKind::NotFound.status_code(), 404);
        assert_eq!(ErrorKind::Conflict.status_code(), 409);
        assert_eq!(ErrorKind::InvalidParameter.status_code(), 400);
        assert_eq!(ErrorKind::NotModified.status_code(), 304);
        assert_eq!(ErrorKind::System.status_code(), 500);
    }

    #[test]
    fn body_is_docker_message_json() {
        let e = ApiError::not_found("No such container: x\"y");
        let v: serde_json::Value = serde_json::from_slice(&e.to_json()).expect("json");
        assert_eq!(v["message"], "No such container: x\"y");
    }
}
