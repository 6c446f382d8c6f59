//! What libcontainer 0.7's systemd cgroup driver leaves out or gets wrong,
//! applied by the shim itself to the container's scope.
//!
//! With the systemd driver libcontainer asks systemd (over its private bus) for
//! a transient `berth-<id>.scope` and sets the limits as unit properties. Three
//! of them do not arrive: the device rules (it sets no `DevicePolicy` and loads
//! no eBPF program, so every device node a container can make would open), the
//! CPU and memory-node sets (it sends `AllowedCPUs` as an array of u64 where
//! systemd takes bytes, and systemd refuses the whole call), and the I/O weight
//! (it drops `unified` keys it has no property for). runc's systemd driver, too,
//! writes the cgroup files after setting the unit's properties; the shim does
//! both here for these (the properties with `systemctl set-property --runtime`,
//! so that systemd re-applying the unit's properties, as every daemon-reload
//! does, keeps them), after the container is created and before it starts.

use std::path::Path;

use serde_json::Value;

/// The parts of `linux.resources` the shim applies itself.
pub struct Deferred {
    devices: Vec<oci_spec::runtime::LinuxDeviceCgroup>,
    files: Vec<(&'static str, String)>,
}

/// Takes the deferred resources out of `spec` (the copy libcontainer gets).
pub fn take(spec: &mut Value) -> Result<Deferred, String> {
    let Some(res) = spec
        .pointer_mut("/linux/resources")
        .and_then(Value::as_object_mut)
    else {
        return Ok(Deferred {
            devices: Vec::new(),
            files: Vec::new(),
        });
    };
    let devices = match res.remove("devices") {
        Some(d) => {
            serde_json::from_value(d).map_err(|e| format!("the spec's device rules: {e}"))?
        }
        None => Vec::new(),
    };
    let mut files = Vec::new();
    if let Some(cpu) = res.get_mut("cpu").and_then(Value::as_object_mut) {
        for (key, file) in [("cpus", "cpuset.cpus"), ("mems", "cpuset.mems")] {
            if let Some(v) = cpu.remove(key).and_then(|v| v.as_str().map(str::to_string)) {
                files.push((file, v));
            }
        }
    }
    if let Some(unified) = res.remove("unified").and_then(|u| u.as_object().cloned()) {
        for (k, v) in unified {
            if let (Some(file), Some(v)) = (["io.weight"].into_iter().find(|f| *f == k), v.as_str())
            {
                files.push((file, v.to_string()));
            }
        }
    }
    Ok(Deferred { devices, files })
}

/// systemd's name for what a deferred cgroup file holds.
fn property(file: &str) -> Option<&'static str> {
    match file {
        "cpuset.cpus" => Some("AllowedCPUs"),
        "cpuset.mems" => Some("AllowedMemoryNodes"),
        "io.weight" => Some("IOWeight"),
        _ => None,
    }
}

impl Deferred {
    /// Applies them to the scope `unit` (as its properties, so that systemd
    /// keeps them when it re-applies the unit's) and its cgroup at `dir`.
    pub fn apply(&self, unit: &str, dir: &Path) -> Result<(), String> {
        let props: Vec<String> = self
            .files
            .iter()
            .filter_map(|(f, v)| property(f).map(|p| format!("{p}={v}")))
            .collect();
        berth_runtime::unitprops::set_properties(unit, &props).map_err(|e| e.to_string())?;
        for (file, value) in &self.files {
            let p = dir.join(file);
            std::fs::write(&p, value).map_err(|e| format!("{}: {e}", p.display()))?;
        }
        libcgroups::v2::devices::Devices::apply_devices(dir, &Some(self.devices.clone()))
            .map_err(|e| format!("loading the device rules: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_what_the_driver_loses_and_leaves_the_rest() {
        let mut spec = serde_json::json!({"linux": {"resources": {
            "devices": [{"allow": false, "access": "rwm"},
                        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}],
            "cpu": {"shares": 512, "cpus": "0-1", "mems": "0"},
            "memory": {"limit": 33554432},
            "unified": {"io.weight": "2929"}
        }}});
        let d = take(&mut spec).expect("take");
        assert_eq!(d.devices.len(), 2);
        assert_eq!(
            d.files,
            vec![
                ("cpuset.cpus", "0-1".to_string()),
                ("cpuset.mems", "0".to_string()),
                ("io.weight", "2929".to_string())
            ]
        );
        let res = &spec["linux"]["resources"];
        assert_eq!(res["cpu"], serde_json::json!({"shares": 512}));
        assert_eq!(res["memory"]["limit"], 33554432);
        assert!(res.get("devices").is_none() && res.get("unified").is_none());
    }
}
