//! A container as the daemon keeps it (`containers/<id>/config.v2.json`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct State {
    /// created, running, exited, removing, dead.
    pub status: String,
    pub running: bool,
    pub pid: i32,
    pub exit_code: i32,
    pub error: String,
    pub started_at: String,
    pub finished_at: String,
    #[serde(default)]
    pub paused: bool,
    #[serde(default)]
    pub restarting: bool,
    #[serde(default, rename = "OOMKilled")]
    pub oom_killed: bool,
    /// `State.Health` while a health check is configured.
    #[serde(default)]
    pub health: Option<serde_json::Value>,
}

impl Default for State {
    fn default() -> Self {
        State {
            status: "created".into(),
            running: false,
            pid: 0,
            exit_code: 0,
            error: String::new(),
            started_at: ZERO_TIME.into(),
            finished_at: ZERO_TIME.into(),
            paused: false,
            restarting: false,
            oom_killed: false,
            health: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Record {
    pub id: String,
    /// With the leading slash, as dockerd stores it.
    pub name: String,
    pub created: String,
    /// The image as the user named it.
    pub image_name: String,
    /// The image ID (`sha256:…`).
    pub image: String,
    pub path: String,
    pub args: Vec<String>,
    pub config: Value,
    pub host_config: Value,
    pub state: State,
    pub log_path: String,
    #[serde(default)]
    pub restart_count: u64,
    /// Set when the user stopped it (for restart policies).
    #[serde(default)]
    pub manually_stopped: bool,
    /// The PID of the container's shim while it runs (found again after a restart).
    #[serde(default)]
    pub shim_pid: i32,
    /// `NetworkingConfig.EndpointsConfig`: the networks it joins when it starts.
    #[serde(default)]
    pub endpoints_config: Value,
    /// `NetworkSettings` while it runs (addresses, ports, sandbox).
    #[serde(default)]
    pub network_settings: Value,
    #[serde(default)]
    pub mounts: Vec<crate::mounts::MountPoint>,
}

impl Record {
    pub fn tty(&self) -> bool {
        self.config["Tty"].as_bool().unwrap_or(false)
    }

    pub fn auto_remove(&self) -> bool {
        self.host_config["AutoRemove"].as_bool().unwrap_or(false)
    }

    pub fn network_mode(&self) -> &str {
        match self.host_config["NetworkMode"].as_str().unwrap_or("") {
            "" | "default" => "bridge",
            m => m,
        }
    }

    pub fn short_id(&self) -> &str {
        &self.id[..12.min(self.id.len())]
    }

    pub fn labels(&self) -> std::collections::BTreeMap<String, String> {
        serde_json::from_value(self.config["Labels"].clone()).unwrap_or_default()
    }
}
