//! Recursively read-only binds (`rro`, API 1.44): from then on a read-only
//! bind is read-only in its submounts too where the kernel (5.12, for
//! `mount_setattr`) and the runtime can make it so, unless the mount asks for
//! `ReadOnlyNonRecursive`; `ReadOnlyForceRecursive` makes it an error when
//! they cannot. Older clients keep non-recursive read-only binds, as dockerd.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use berth_api::container::HostConfig;
use berth_api::{ApiError, ApiVersion, Result};

use crate::mounts::MountPoint;

/// Recursive if possible.
pub(crate) const AUTO: &str = "auto";
/// Recursive, or the start fails.
pub(crate) const FORCE: &str = "force";

fn mount_error(msg: &str) -> ApiError {
    ApiError::invalid(format!("invalid mount config for type \"bind\": {msg}"))
}

/// Sets each read-only bind's mode from the request (at create).
pub(crate) fn at_create(
    mounts: &mut [MountPoint],
    hc: &HostConfig,
    version: ApiVersion,
) -> Result<()> {
    for m in hc.mounts.iter().flatten() {
        let Some(b) = &m.bind_options else { continue };
        let (non, force) = (
            b.read_only_non_recursive.unwrap_or(false),
            b.read_only_force_recursive.unwrap_or(false),
        );
        let ro = m.read_only.unwrap_or(false);
        if non && !ro {
            return Err(mount_error("option ReadOnlyNonRecursive requires ReadOnly"));
        }
        if force && !ro {
            return Err(mount_error(
                "option ReadOnlyForceRecursive requires ReadOnly",
            ));
        }
        if non && force {
            return Err(mount_error(
                "option ReadOnlyNonRecursive and ReadOnlyForceRecursive are mutually exclusive",
            ));
        }
    }
    if version < ApiVersion::new(1, 44) {
        return Ok(());
    }
    for mp in mounts.iter_mut().filter(|m| m.kind == "bind" && !m.rw) {
        let asked = hc
            .mounts
            .iter()
            .flatten()
            .find(|m| crate::mounts::clean(&m.target) == mp.destination)
            .and_then(|m| m.bind_options.as_ref());
        mp.recursive_ro = match asked {
            Some(b) if b.read_only_non_recursive == Some(true) => String::new(),
            Some(b) if b.read_only_force_recursive == Some(true) => FORCE.into(),
            _ => AUTO.into(),
        };
    }
    Ok(())
}

/// The extra option a read-only bind gets at start: `rro` where it can be.
pub(crate) fn option(m: &MountPoint, runtime: Option<&Path>) -> Result<Option<&'static str>> {
    if m.rw || m.recursive_ro.is_empty() {
        return Ok(None);
    }
    if supported(runtime) {
        return Ok(Some("rro"));
    }
    if m.recursive_ro == FORCE {
        return Err(ApiError::invalid(format!(
            "{}: recursive read-only mounts are not supported by the kernel or the runtime",
            m.destination
        )));
    }
    Ok(None)
}

/// Whether the kernel has `mount_setattr` and the runtime knows `rro`.
pub(crate) fn supported(runtime: Option<&Path>) -> bool {
    kernel_supports() && runtime.is_none_or(runtime_supports)
}

fn kernel_supports() -> bool {
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (major, minor) >= (5, 12)
}

/// A runc-compatible binary's `features` lists `rro` (asked once per binary).
fn runtime_supports(binary: &Path) -> bool {
    static SEEN: Mutex<Option<HashMap<PathBuf, bool>>> = Mutex::new(None);
    let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    let map = seen.get_or_insert_with(HashMap::new);
    if let Some(v) = map.get(binary) {
        return *v;
    }
    let yes = berth_runtime::features::of_binary(binary)
        .as_ref()
        .is_some_and(berth_runtime::features::has_rro);
    map.insert(binary.to_path_buf(), yes);
    yes
}
