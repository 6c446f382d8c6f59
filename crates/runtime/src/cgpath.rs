//! The two forms of a runtime's `cgroupsPath` and the cgroup directory each
//! names: cgroupfs's path (`/berth/<id>`) and systemd's `slice:prefix:name`
//! (`system.slice:berth:<id>`, the unit `berth-<id>.scope` in that slice).

/// Whether a `cgroupsPath` is systemd's `slice:prefix:name` form.
pub fn is_systemd_path(cgroups_path: &str) -> bool {
    !cgroups_path.starts_with('/') && cgroups_path.split(':').count() == 3
}

/// The directory, relative to the hierarchy's root, that a `cgroupsPath` names.
pub fn dir_of(cgroups_path: &str) -> String {
    if !is_systemd_path(cgroups_path) {
        return cgroups_path.trim_start_matches('/').to_string();
    }
    let mut parts = cgroups_path.splitn(3, ':');
    let (slice, prefix, name) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let mut dir = expand_slice(slice);
    if !dir.is_empty() {
        dir.push('/');
    }
    dir.push_str(&format!("{prefix}-{name}.scope"));
    dir
}

/// The scope unit a systemd-form `cgroupsPath` names (`berth-<id>.scope`).
pub fn unit_of(cgroups_path: &str) -> Option<String> {
    if !is_systemd_path(cgroups_path) {
        return None;
    }
    let mut parts = cgroups_path.splitn(3, ':').skip(1);
    Some(format!(
        "{}-{}.scope",
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default()
    ))
}

/// systemd's slice hierarchy: `a-b-c.slice` lives in `a.slice/a-b.slice/`, and
/// `-.slice` is the root.
fn expand_slice(slice: &str) -> String {
    let base = slice.strip_suffix(".slice").unwrap_or(slice);
    if base.is_empty() || base == "-" {
        return String::new();
    }
    let mut out = Vec::new();
    let mut acc = String::new();
    for part in base.split('-') {
        if !acc.is_empty() {
            acc.push('-');
        }
        acc.push_str(part);
        out.push(format!("{acc}.slice"));
    }
    out.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_name_their_directories() {
        assert_eq!(dir_of("/berth/abc"), "berth/abc");
        assert_eq!(
            dir_of("system.slice:berth:abc"),
            "system.slice/berth-abc.scope"
        );
        assert_eq!(
            dir_of("kubepods-burstable-pod1.slice:berth:abc"),
            "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/berth-abc.scope"
        );
        assert_eq!(dir_of("-.slice:berth:abc"), "berth-abc.scope");
        assert_eq!(
            unit_of("system.slice:berth:abc").as_deref(),
            Some("berth-abc.scope")
        );
        assert_eq!(unit_of("/berth/abc"), None);
    }
}
