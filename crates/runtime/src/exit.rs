//! The exit record a shim leaves when its container ends (`exit.json`).

use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    /// Docker's exit code: the status, or 128 + signal number.
    pub exit_code: i32,
    /// RFC 3339 time the container's init ended.
    pub finished_at: String,
    /// Set when the container never ran (the start failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The container's init PID while it ran.
    pub pid: i32,
    /// The kernel's OOM killer killed a process of the container.
    #[serde(default)]
    pub oom_killed: bool,
}

impl ExitRecord {
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let b = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        berth_atomicfile::write(path, &b)
    }

    pub fn read(path: &Path) -> std::io::Result<ExitRecord> {
        let b = std::fs::read(path)?;
        serde_json::from_slice(&b).map_err(std::io::Error::other)
    }
}

/// The current time in RFC 3339 with nanoseconds, as Docker writes times.
pub fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
