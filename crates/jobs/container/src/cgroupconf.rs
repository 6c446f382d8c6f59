//! The daemon's cgroup settings for its containers: the driver
//! (`native.cgroupdriver`), the daemon-wide `--cgroup-parent`, and
//! `--default-cgroupns-mode`; and what create checks and records with them.

use berth_api::container::HostConfig;
use berth_api::{ApiError, Result};
use berth_runtime::placement::Driver;

use crate::model::Record;
use crate::Containers;

#[derive(Debug, Clone)]
pub struct CgroupSettings {
    pub driver: Driver,
    /// The parent of containers that name none themselves (empty: the driver's).
    pub parent: String,
    /// `private` or `host`: a container's cgroup namespace when it asks for none
    /// (dockerd: private on cgroup v2, host on v1).
    pub default_ns_mode: String,
}

impl Default for CgroupSettings {
    fn default() -> Self {
        CgroupSettings {
            driver: Driver::Cgroupfs,
            parent: String::new(),
            default_ns_mode: if berth_runtime::cgroups::is_v2() {
                "private".into()
            } else {
                "host".into()
            },
        }
    }
}

impl CgroupSettings {
    fn parent_of<'a>(&'a self, hc: &'a HostConfig) -> &'a str {
        if hc.cgroup_parent.is_empty() {
            &self.parent
        } else {
            &hc.cgroup_parent
        }
    }
}

impl Containers {
    /// Set once at start-up, before any container starts.
    pub fn set_cgroup_settings(&self, s: CgroupSettings) {
        *self.cgroups.write().unwrap_or_else(|p| p.into_inner()) = s;
    }

    pub(crate) fn cgroup_settings(&self) -> CgroupSettings {
        self.cgroups
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Where a start of `rec` places its cgroup (the runtime's `cgroupsPath`).
    pub(crate) fn cgroups_path(&self, rec: &Record) -> std::result::Result<String, String> {
        let s = self.cgroup_settings();
        s.driver
            .cgroups_path(s.parent_of(&rec.host_config), &rec.id)
    }
}

/// At create: the cgroup namespace mode checked and recorded with the daemon's
/// default, as dockerd records it, and the parent checked against the driver.
pub(crate) fn at_create(s: &CgroupSettings, hc: &mut HostConfig) -> Result<()> {
    match hc.cgroupns_mode.as_str() {
        "" => hc.cgroupns_mode = s.default_ns_mode.clone(),
        "private" | "host" => {}
        other => {
            return Err(ApiError::invalid(format!(
                "invalid cgroup namespace mode: {other}"
            )))
        }
    }
    s.driver
        .cgroups_path(s.parent_of(hc), "x")
        .map(drop)
        .map_err(ApiError::invalid)
}
