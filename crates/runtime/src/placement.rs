//! Where a container's cgroup goes, by cgroup driver, as dockerd places them.
//!
//! With the `cgroupfs` driver the runtime is given a path (`/berth/<id>`, or
//! `/<parent>/<id>` with `--cgroup-parent`) and makes the directories itself.
//! With the `systemd` driver it is given `slice:prefix:name` (runc's and
//! libcontainer's form): systemd makes a transient `berth-<id>.scope` unit under
//! the slice (`system.slice` unless the parent names another), and the cgroup is
//! that unit's directory, `/system.slice/berth-<id>.scope`. Kubernetes nodes use
//! the systemd driver, and dockerd uses it by default on cgroup v2 hosts booted
//! with systemd.

use std::path::Path;

use crate::cgpath::{dir_of, is_systemd_path};

/// The prefix of every scope unit (`berth-<id>.scope`) and cgroupfs directory.
const PREFIX: &str = "berth";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Driver {
    #[default]
    Cgroupfs,
    Systemd,
}

impl Driver {
    /// `native.cgroupdriver=…`, with dockerd's refusals.
    pub fn parse(name: &str) -> Result<Driver, String> {
        match name {
            "cgroupfs" => Ok(Driver::Cgroupfs),
            "systemd" => Ok(Driver::Systemd),
            "none" => Err(format!(
                "native.cgroupdriver option {name} is internally used and cannot be specified manually"
            )),
            other => Err(format!("native.cgroupdriver option {other} not supported")),
        }
    }

    /// The driver when none is asked for: systemd on a cgroup v2 host booted with
    /// systemd, cgroupfs otherwise (dockerd's choice since 20.10).
    pub fn default_for_host() -> Driver {
        if crate::cgroups::is_v2() && Path::new("/run/systemd/system").is_dir() {
            Driver::Systemd
        } else {
            Driver::Cgroupfs
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Driver::Cgroupfs => "cgroupfs",
            Driver::Systemd => "systemd",
        }
    }

    /// The runtime's `cgroupsPath` for container `id` under `parent` (the
    /// container's `--cgroup-parent`, or the daemon's, or empty).
    pub fn cgroups_path(self, parent: &str, id: &str) -> Result<String, String> {
        match self {
            Driver::Cgroupfs => Ok(match parent.trim_matches('/') {
                "" => format!("/{PREFIX}/{id}"),
                p => format!("/{p}/{id}"),
            }),
            Driver::Systemd => {
                let slice = match parent {
                    "" => "system.slice",
                    p if valid_slice(p) => p,
                    _ => {
                        return Err(
                            "cgroup-parent for systemd cgroup should be a valid slice named as \"xxx.slice\""
                                .into(),
                        )
                    }
                };
                Ok(format!("{slice}:{PREFIX}:{id}"))
            }
        }
    }
}

/// A slice unit's name: `name.slice`, with no slashes (dockerd's check).
fn valid_slice(p: &str) -> bool {
    p.len() > ".slice".len() && p.ends_with(".slice") && !p.contains('/')
}

/// Makes the parent directories of a cgroupfs placement on cgroup v2, before
/// the runtime makes the container's own. libcontainer 0.7 checks for each
/// level and then creates it, so two containers starting at once under a parent
/// that does not exist yet race, and one fails with EEXIST; `create_dir_all`
/// takes an existing directory as success. (systemd makes a scope's slices.)
pub fn prepare_parent(cgroups_path: &str) -> std::io::Result<()> {
    if is_systemd_path(cgroups_path) || !crate::cgroups::is_v2() {
        return Ok(());
    }
    let dir = Path::new("/sys/fs/cgroup").join(dir_of(cgroups_path));
    match dir.parent() {
        Some(parent) => std::fs::create_dir_all(parent),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroupfs_paths_sit_under_berth_or_the_parent() {
        let d = Driver::Cgroupfs;
        assert_eq!(d.cgroups_path("", "abc").as_deref(), Ok("/berth/abc"));
        assert_eq!(
            d.cgroups_path("/kube/pod1/", "abc").as_deref(),
            Ok("/kube/pod1/abc")
        );
    }

    #[test]
    fn systemd_paths_are_scopes_in_slices() {
        let d = Driver::Systemd;
        assert_eq!(
            d.cgroups_path("", "abc").as_deref(),
            Ok("system.slice:berth:abc")
        );
        let p = d.cgroups_path("kubepods-burstable-pod1.slice", "abc");
        assert_eq!(p.as_deref(), Ok("kubepods-burstable-pod1.slice:berth:abc"));
        for bad in ["kubepods", "/system.slice", ".slice", "a/b.slice"] {
            assert!(
                d.cgroups_path(bad, "abc")
                    .expect_err("refused")
                    .contains("valid slice"),
                "{bad}"
            );
        }
    }

    #[test]
    fn driver_names_as_dockerd_takes_them() {
        assert_eq!(Driver::parse("systemd"), Ok(Driver::Systemd));
        assert_eq!(Driver::parse("cgroupfs"), Ok(Driver::Cgroupfs));
        assert_eq!(
            Driver::parse("foo").expect_err("refused"),
            "native.cgroupdriver option foo not supported"
        );
        assert!(Driver::parse("none")
            .expect_err("refused")
            .contains("internally used"));
    }
}
