//! Berth's own endpoint, `/berth/jobs`: the daemon's running jobs. Not part of
//! Docker's API; the field names follow its style.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One running job, as `GET /berth/jobs` lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobSummary {
    #[serde(rename = "ID")]
    pub id: u64,
    /// The job's name (`image.create` for a pull, `build`, `container.export`, …).
    pub name: String,
    /// Its path and query parameters, secrets redacted.
    pub args: BTreeMap<String, Vec<String>>,
    /// When it started (RFC 3339 with nanoseconds).
    pub started: String,
    /// `running` or `cancelling`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<JobProgress>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobProgress {
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}
