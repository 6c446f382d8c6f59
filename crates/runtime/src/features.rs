//! The OCI runtime features document (runtime-spec `features.md`): of the
//! shim's built-in runtime (libcontainer), and of runc-compatible binaries as
//! `BINARY features` prints it. `/info` lists it per runtime, and whether
//! `rro` is among the mount options decides recursive read-only binds.

use std::path::Path;
use std::process::{Command, Stdio};

pub use oci_spec::runtime::Features;

/// What libcontainer 0.7, as the shim builds it, supports: its mount
/// options, hooks and namespaces, cgroup v1, v2 and the systemd driver,
/// seccomp through libseccomp; no AppArmor or SELinux.
pub fn builtin() -> Features {
    let caps: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
    let doc = serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.2.0",
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer",
                  "poststart", "poststop"],
        "mountOptions": [
            "defaults", "ro", "rw", "suid", "nosuid", "dev", "nodev", "exec", "noexec",
            "sync", "async", "dirsync", "remount", "mand", "nomand", "atime", "noatime",
            "diratime", "nodiratime", "bind", "rbind", "unbindable", "runbindable",
            "private", "rprivate", "shared", "rshared", "slave", "rslave", "relatime",
            "norelatime", "strictatime", "nostrictatime", "rro", "rrw", "rnosuid", "rsuid",
            "rnodev", "rdev", "rnoexec", "rexec", "rnodiratime", "rdiratime", "rrelatime",
            "rnorelatime", "rnoatime", "ratime", "rstrictatime", "rnostrictatime",
            "rnosymfollow", "rsymfollow"
        ],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts", "time"],
            "capabilities": caps,
            "cgroup": { "v1": true, "v2": true, "systemd": true, "systemdUser": false, "rdma": false },
            "seccomp": {
                "enabled": true,
                "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL",
                            "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG",
                            "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"],
                "operators": ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE",
                              "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"]
            },
            "apparmor": { "enabled": false },
            "selinux": { "enabled": false }
        }
    });
    serde_json::from_value(doc).unwrap_or_default()
}

/// `BINARY features`, for runc-compatible runtimes that have the command
/// (runc 1.1 and later); `None` for those that do not.
pub fn of_binary(binary: &Path) -> Option<Features> {
    let out = Command::new(binary)
        .arg("features")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// `/info`'s `Runtimes[name].status["org.opencontainers.runtime-spec.features"]`.
pub fn to_json(f: &Features) -> String {
    serde_json::to_string(f).unwrap_or_default()
}

/// Whether `f` lists the mount option `rro`.
pub fn has_rro(f: &Features) -> bool {
    f.mount_options()
        .as_ref()
        .is_some_and(|o| o.iter().any(|o| o == "rro"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_document_is_whole() {
        let f = builtin();
        assert_eq!(f.oci_version_min(), "1.0.0");
        assert!(has_rro(&f));
        let linux = f.linux().as_ref().expect("linux");
        assert!(linux.namespaces().as_ref().is_some_and(|n| n.len() == 8));
        assert!(linux
            .capabilities()
            .as_ref()
            .is_some_and(|c| c.iter().any(|c| c == "CAP_SYS_ADMIN")));
        let json = to_json(&f);
        assert!(json.contains("\"mountOptions\""), "{json}");
    }
}
