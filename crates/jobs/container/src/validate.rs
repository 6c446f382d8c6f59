//! The one check of a new container's `HostConfig`, with dockerd's texts: limits
//! (`resources`), restart policy, namespaces, `/etc` settings, cgroup parent and
//! OOM score. Values of the wrong Go type never get here: `CreateRequest::parse`
//! refuses them.

use berth_api::container::{ContainerConfig, HostConfig};
use berth_api::{ApiError, Result};

pub(crate) fn host_config(hc: &HostConfig, config: &ContainerConfig) -> Result<()> {
    crate::resources::validate(hc)?;
    restart_policy(hc)?;
    crate::etc::check(hc)?;
    namespace_modes(hc, config)?;
    // A parent is a path under the hierarchy's root, never above it.
    if hc.cgroup_parent.split('/').any(|c| c == "." || c == "..") {
        return Err(ApiError::invalid(format!(
            "invalid cgroup parent: {}",
            hc.cgroup_parent
        )));
    }
    if !(-1000..=1000).contains(&hc.oom_score_adj) {
        return Err(ApiError::invalid(format!(
            "Invalid value {}, range for oom score adj is [-1000, 1000]",
            hc.oom_score_adj
        )));
    }
    Ok(())
}

/// `--pid`, `--ipc` and `--uts` as dockerd checks them.
fn namespace_modes(hc: &HostConfig, config: &ContainerConfig) -> Result<()> {
    let joins = |m: &str| m.strip_prefix("container:").is_some_and(|c| !c.is_empty());
    let pid = hc.pid_mode.as_str();
    if !(pid.is_empty() || pid == "host" || joins(pid)) {
        return Err(ApiError::invalid(format!("invalid PID mode: {pid}")));
    }
    let ipc = hc.ipc_mode.as_str();
    if !(matches!(ipc, "" | "private" | "shareable" | "host" | "none") || joins(ipc)) {
        return Err(ApiError::invalid(format!("invalid IPC mode: {ipc}")));
    }
    let uts = hc.uts_mode.as_str();
    if !(uts.is_empty() || uts == "host") {
        return Err(ApiError::invalid(format!("invalid UTS mode: {uts}")));
    }
    if uts == "host" && !config.hostname.is_empty() {
        return Err(ApiError::invalid(
            "conflicting options: hostname and the UTS mode",
        ));
    }
    Ok(())
}

/// `--restart` as dockerd checks it.
pub(crate) fn restart_policy(hc: &HostConfig) -> Result<()> {
    let p = &hc.restart_policy;
    let (name, max) = (p.name.as_str(), p.maximum_retry_count);
    match name {
        "" | "no" | "always" | "unless-stopped" => {
            if max != 0 {
                return Err(ApiError::invalid(
                    "invalid restart policy: maximum retry count can only be used with 'on-failure'",
                ));
            }
        }
        "on-failure" => {
            if max < 0 {
                return Err(ApiError::invalid(
                    "invalid restart policy: maximum retry count cannot be negative",
                ));
            }
        }
        other => {
            return Err(ApiError::invalid(format!(
                "invalid restart policy: unknown policy '{other}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
            )))
        }
    }
    if !matches!(name, "" | "no") && hc.auto_remove {
        return Err(ApiError::invalid(
            "conflicting options: cannot specify both --restart and --rm",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(hc: serde_json::Value, config: serde_json::Value) -> String {
        let hc: HostConfig = serde_json::from_value(hc).unwrap_or_default();
        let config: ContainerConfig = serde_json::from_value(config).unwrap_or_default();
        match host_config(&hc, &config) {
            Err(e) => e.message,
            Ok(()) => "accepted".into(),
        }
    }

    #[test]
    fn host_configs_are_checked_with_dockerds_texts() {
        assert_eq!(err(json!({}), json!({})), "accepted");
        assert_eq!(
            err(json!({"PidMode": "bogus"}), json!({})),
            "invalid PID mode: bogus"
        );
        assert_eq!(
            err(json!({"IpcMode": "container:"}), json!({})),
            "invalid IPC mode: container:"
        );
        assert_eq!(
            err(json!({"IpcMode": "container:x"}), json!({})),
            "accepted"
        );
        assert_eq!(
            err(json!({"UTSMode": "host"}), json!({"Hostname": "h"})),
            "conflicting options: hostname and the UTS mode"
        );
        assert_eq!(
            err(
                json!({"RestartPolicy": {"Name": "always"}, "AutoRemove": true}),
                json!({})
            ),
            "conflicting options: cannot specify both --restart and --rm"
        );
        assert_eq!(
            err(
                json!({"RestartPolicy": {"Name": "no", "MaximumRetryCount": 2}}),
                json!({})
            ),
            "invalid restart policy: maximum retry count can only be used with 'on-failure'"
        );
        assert_eq!(
            err(json!({"OomScoreAdj": 1001}), json!({})),
            "Invalid value 1001, range for oom score adj is [-1000, 1000]"
        );
        assert_eq!(
            err(json!({"CgroupParent": "../x"}), json!({})),
            "invalid cgroup parent: ../x"
        );
        assert_eq!(
            err(json!({"BlkioWeight": 5}), json!({})),
            "Range of blkio weight is from 10 to 1000"
        );
    }
}
