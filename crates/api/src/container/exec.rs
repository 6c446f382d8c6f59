//! The bodies of `POST /containers/{id}/exec` and `POST /exec/{id}/start`.

use serde::{Deserialize, Serialize};

use super::config::nullable;

/// `POST /containers/{id}/exec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExecCreate {
    #[serde(default, deserialize_with = "nullable")]
    pub attach_stdin: bool,
    #[serde(default, deserialize_with = "nullable")]
    pub attach_stdout: bool,
    #[serde(default, deserialize_with = "nullable")]
    pub attach_stderr: bool,
    /// `[height, width]`.
    #[serde(default)]
    pub console_size: Option<[u64; 2]>,
    /// Go matches field names without regard to case: docker-py sends `detachKeys`.
    #[serde(default, deserialize_with = "nullable", alias = "detachKeys")]
    pub detach_keys: String,
    #[serde(default, deserialize_with = "nullable")]
    pub tty: bool,
    #[serde(default, deserialize_with = "nullable")]
    pub env: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub cmd: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub privileged: bool,
    #[serde(default, deserialize_with = "nullable")]
    pub user: String,
    #[serde(default, deserialize_with = "nullable")]
    pub working_dir: String,
}

/// `POST /exec/{id}/start`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExecStart {
    #[serde(default, deserialize_with = "nullable")]
    pub detach: bool,
    #[serde(default, deserialize_with = "nullable")]
    pub tty: bool,
    #[serde(default)]
    pub console_size: Option<[u64; 2]>,
}
