//! A container as the daemon keeps it (`containers/<id>/config.v2.json`).

use std::collections::BTreeMap;

use berth_api::container::{
    ContainerConfig, EndpointSettings, Health, HostConfig, NetworkSettings,
};
use serde::{Deserialize, Serialize};

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
    pub health: Option<Health>,
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
    pub config: ContainerConfig,
    pub host_config: HostConfig,
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
    // Records written before this field was typed hold `null` where a map is now.
    #[serde(default, deserialize_with = "berth_api::container::nullable")]
    pub endpoints_config: BTreeMap<String, EndpointSettings>,
    /// `NetworkSettings` while it runs (addresses, ports, sandbox).
    #[serde(default)]
    pub network_settings: Option<NetworkSettings>,
    #[serde(default)]
    pub mounts: Vec<crate::mounts::MountPoint>,
    /// The runtime's `cgroupsPath` at the last start: where its cgroup is, by
    /// the driver of that start.
    #[serde(default)]
    pub cgroups_path: String,
}

impl Record {
    pub fn tty(&self) -> bool {
        self.config.tty
    }

    pub fn auto_remove(&self) -> bool {
        self.host_config.auto_remove
    }

    pub fn network_mode(&self) -> &str {
        self.host_config.network_mode()
    }

    pub fn short_id(&self) -> &str {
        &self.id[..12.min(self.id.len())]
    }

    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.config.labels
    }
}

/// Why a stored record was not loaded.
#[derive(Debug)]
pub enum LoadError {
    /// Missing, or not a JSON record at all: a create that never finished.
    Unreadable(String),
    /// A record whose shape this daemon does not know.
    Unknown(String),
}

impl Record {
    /// Reads `config.v2.json`. A field whose stored value no longer fits its type
    /// (a record from before the types, holding what a client sent) is dropped
    /// with a warning rather than losing the container.
    pub fn load(bytes: &[u8]) -> Result<Record, LoadError> {
        let first = match serde_json::from_slice::<Record>(bytes) {
            Ok(r) => return Ok(r),
            Err(e) => e,
        };
        let mut v: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| LoadError::Unreadable(e.to_string()))?;
        if !v.is_object() || v.get("Id").is_none() {
            return Err(LoadError::Unreadable(first.to_string()));
        }
        let id = v["Id"].as_str().unwrap_or("").to_string();
        let mut dropped = prune::<ContainerConfig>(&mut v["Config"], "Config");
        dropped.extend(prune::<HostConfig>(&mut v["HostConfig"], "HostConfig"));
        if let Some(eps) = v.get_mut("EndpointsConfig").and_then(|e| e.as_object_mut()) {
            for (name, ep) in eps.iter_mut() {
                dropped.extend(prune::<EndpointSettings>(ep, name));
            }
        }
        // Rebuilt at the next start or restore.
        for (k, at) in [("NetworkSettings", None), ("Health", Some("State"))] {
            let slot = match at {
                Some(p) => v.get_mut(p).and_then(|s| s.get_mut(k)),
                None => v.get_mut(k),
            };
            if let Some(slot) = slot {
                let ok = match k {
                    "Health" => serde_json::from_value::<Option<Health>>(slot.clone()).is_ok(),
                    _ => serde_json::from_value::<Option<NetworkSettings>>(slot.clone()).is_ok(),
                };
                if !ok {
                    *slot = serde_json::Value::Null;
                    dropped.push(k.to_string());
                }
            }
        }
        let rec: Record =
            serde_json::from_value(v).map_err(|_| LoadError::Unknown(first.to_string()))?;
        tracing::warn!(container = %id, fields = ?dropped, "dropped stored fields that no longer fit their types");
        Ok(rec)
    }
}

/// Removes the fields of the object `v` that do not read as a `T`'s; their names.
fn prune<T: serde::de::DeserializeOwned>(v: &mut serde_json::Value, at: &str) -> Vec<String> {
    let Some(obj) = v.as_object_mut() else {
        return Vec::new();
    };
    let bad: Vec<String> = obj
        .iter()
        .filter(|(k, val)| {
            let one =
                serde_json::Value::Object([((*k).clone(), (*val).clone())].into_iter().collect());
            serde_json::from_value::<T>(one).is_err()
        })
        .map(|(k, _)| k.clone())
        .collect();
    for k in &bad {
        obj.remove(k);
    }
    bad.into_iter().map(|k| format!("{at}.{k}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stored(config: serde_json::Value, host_config: serde_json::Value) -> Vec<u8> {
        json!({
            "Id": "abc", "Name": "/n", "Created": ZERO_TIME, "ImageName": "busybox",
            "Image": "sha256:1", "Path": "sh", "Args": [], "Config": config,
            "HostConfig": host_config, "State": State::default(), "LogPath": "",
            "EndpointsConfig": null, "NetworkSettings": null,
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn records_from_before_the_types_load() {
        let rec = Record::load(&stored(
            json!({"Cmd": ["sh"], "Tty": true, "Labels": {"a": "b"}}),
            json!({"NetworkMode": "default", "Memory": 0, "Binds": null}),
        ))
        .expect("loads");
        assert!(rec.tty() && rec.endpoints_config.is_empty() && rec.network_settings.is_none());
        assert_eq!(rec.network_mode(), "bridge");
    }

    #[test]
    fn a_stored_value_of_the_wrong_type_loses_that_field_not_the_container() {
        let rec = Record::load(&stored(
            json!({"Cmd": ["sh"], "Tty": "yes"}),
            json!({"Memory": "64m", "CpuShares": 512, "Future": {"x": 1}}),
        ))
        .expect("loads");
        assert!(!rec.config.tty);
        assert_eq!(
            (rec.host_config.memory, rec.host_config.cpu_shares),
            (0, 512)
        );
        assert_eq!(rec.host_config.extra["Future"], json!({"x": 1}));
        assert!(matches!(
            Record::load(b"{\"half"),
            Err(LoadError::Unreadable(_))
        ));
    }
}
