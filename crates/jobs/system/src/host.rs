//! Facts about the host, read once at start-up.

use std::path::Path;

/// What `/version` and `/info` say about the machine.
#[derive(Debug, Clone, Default)]
pub struct HostFacts {
    pub hostname: String,
    pub kernel_version: String,
    /// `uname -m`, e.g. `x86_64`.
    pub machine: String,
    pub operating_system: String,
    pub os_version: String,
    pub ncpu: u64,
    pub mem_total: u64,
    /// "1" or "2".
    pub cgroup_version: String,
    /// Controllers the cgroup hierarchy offers (memory, cpu, pids, cpuset, …).
    pub cgroup_controllers: Vec<String>,
}

impl HostFacts {
    pub fn read() -> HostFacts {
        let uts = nix::sys::utsname::uname().ok();
        let field = |f: fn(&nix::sys::utsname::UtsName) -> &std::ffi::OsStr| {
            uts.as_ref()
                .map(|u| f(u).to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
        let (cgroup_version, cgroup_controllers) = cgroups();
        HostFacts {
            hostname: field(|u| u.nodename()),
            kernel_version: field(|u| u.release()),
            machine: field(|u| u.machine()),
            operating_system: os_release_field(&os_release, "PRETTY_NAME")
                .unwrap_or_else(|| "Linux".into()),
            os_version: os_release_field(&os_release, "VERSION_ID").unwrap_or_default(),
            ncpu: std::thread::available_parallelism()
                .map(|n| n.get() as u64)
                .unwrap_or(1),
            mem_total: mem_total(&std::fs::read_to_string("/proc/meminfo").unwrap_or_default()),
            cgroup_version,
            cgroup_controllers,
        }
    }

    /// Go's name for the architecture, as dockerd reports it (`amd64`, `arm64`).
    pub fn go_arch(&self) -> &str {
        match self.machine.as_str() {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "i686" | "i386" => "386",
            "armv7l" => "arm",
            other => other,
        }
    }

    pub fn has_controller(&self, name: &str) -> bool {
        self.cgroup_controllers.iter().any(|c| c == name)
    }
}

fn os_release_field(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let v = l.strip_prefix(key)?.strip_prefix('=')?;
        Some(v.trim_matches('"').to_string())
    })
}

fn mem_total(meminfo: &str) -> u64 {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .unwrap_or(0)
}

fn cgroups() -> (String, Vec<String>) {
    let root = Path::new("/sys/fs/cgroup");
    if let Ok(c) = std::fs::read_to_string(root.join("cgroup.controllers")) {
        return (
            "2".into(),
            c.split_whitespace().map(str::to_string).collect(),
        );
    }
    let mut v: Vec<String> = std::fs::read_dir(root)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| {
                    e.path().join("tasks").exists() || e.path().join("cgroup.procs").exists()
                })
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    ("1".into(), v)
}

/// Open file descriptors of this process (`NFd` in `/info`).
pub fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as u64)
        .unwrap_or(0)
}

/// Threads of this process (dockerd reports goroutines in `NGoroutines`).
pub fn threads() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:")?.trim().parse().ok())
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_os_release_and_meminfo() {
        let osr = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_ID=\"12\"\n";
        assert_eq!(
            os_release_field(osr, "PRETTY_NAME").as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert_eq!(os_release_field(osr, "VERSION_ID").as_deref(), Some("12"));
        assert_eq!(os_release_field(osr, "NOPE"), None);
        assert_eq!(
            mem_total("MemTotal:       24590000 kB\nMemFree: 1 kB\n"),
            24590000 * 1024
        );
        assert_eq!(mem_total("garbage"), 0);
    }

    #[test]
    fn reads_this_host() {
        let h = HostFacts::read();
        assert!(h.ncpu >= 1);
        assert!(h.mem_total > 0);
        assert!(!h.kernel_version.is_empty());
        assert!(h.cgroup_version == "1" || h.cgroup_version == "2");
        assert!(open_fds() > 0 && threads() > 0);
    }
}
