//! Debian packages the daemon and the tests need, installed with apt when missing.

use std::process::{Command, Stdio};

use crate::Result;

/// Needed to build and run `berthd` (libcontainer links libseccomp, and builds
/// libbpf, which needs libelf and zlib, for cgroup v2's device programs).
/// (tini: the static init `docker run --init` runs as PID 1).
pub const RUN: &[&str] = &[
    "libseccomp-dev",
    "libelf-dev",
    "zlib1g-dev",
    "pkg-config",
    "nftables",
    "iproute2",
    "tini",
];
/// Needed to build the fixture images.
pub const FIXTURES: &[&str] = &["busybox-static"];
/// Needed by the tests: fixtures, the registry, and the tools tests drive.
pub const TEST: &[&str] = &[
    "busybox-static",
    "docker-registry",
    "curl",
    "util-linux",
    "libseccomp-dev",
    "libelf-dev",
    "zlib1g-dev",
    "pkg-config",
    "python3",
    // The docker-py conformance stage's virtualenv.
    "python3-venv",
    "nftables",
    "iproute2",
    // The second runtime (`--runtime runc`), for the differential tests.
    "runc",
    // `docker run --init`.
    "tini",
    // A real dockerd beside the test daemons (its iptables rules in force), and
    // iptables itself, where Berth's accept chain goes.
    "docker.io",
    "iptables",
    // CNI's bridge plugin, run on a pause container's SandboxKey as Nomad and
    // Kubernetes' network plugins run it.
    "containernetworking-plugins",
];

fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

/// Installs whichever of `pkgs` are missing (needs root).
pub fn ensure(pkgs: &[&str]) -> Result {
    let missing: Vec<&str> = pkgs.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !nix::unistd::geteuid().is_root() {
        return Err(format!(
            "missing packages {missing:?}: run as root or `apt-get install {}`",
            missing.join(" ")
        ));
    }
    eprintln!("installing {missing:?}");
    // Packages with services (docker.io, docker-registry) must not start them:
    // the tests start their own, on their own sockets. Debian's way to say so.
    let policy = std::path::Path::new("/usr/sbin/policy-rc.d");
    let made_policy = !policy.exists() && std::fs::write(policy, "#!/bin/sh\nexit 101\n").is_ok();
    if made_policy {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(policy, std::fs::Permissions::from_mode(0o755));
    }
    let result = install(&missing);
    if made_policy {
        let _ = std::fs::remove_file(policy);
    }
    result
}

fn install(missing: &[&str]) -> Result {
    let update = Command::new("apt-get")
        .args(["update", "-qq"])
        .status()
        .map_err(|e| format!("apt-get update: {e}"))?;
    if !update.success() {
        return Err("apt-get update failed".into());
    }
    let s = Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(missing)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .map_err(|e| format!("apt-get install: {e}"))?;
    if s.success() {
        Ok(())
    } else {
        Err(format!("apt-get install {missing:?} failed"))
    }
}
