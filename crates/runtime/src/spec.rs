//! The OCI runtime spec of a container, with Docker's defaults (moby's `oci`
//! package): the namespaces, mounts, capabilities and masked paths a `docker run`
//! container gets.

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde_json::{json, Value};

/// Capabilities a Docker container has by default.
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Docker's default `MaskedPaths` (`HostConfig.MaskedPaths` replaces them).
pub const MASKED: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Docker's default `ReadonlyPaths` (`HostConfig.ReadonlyPaths` replaces them).
pub const READONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// A mount beyond the defaults: a bind mount or a tmpfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    pub source: String,
    pub destination: String,
    /// `bind` or `tmpfs`.
    pub typ: String,
    pub options: Vec<String>,
}

/// `--security-opt seccomp=…`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Seccomp {
    /// Berth's default profile (Docker's behaviour).
    #[default]
    Default,
    /// `seccomp=unconfined`.
    Unconfined,
    /// A profile in Docker's JSON format.
    Profile(String),
}

/// What the runtime needs to know to run a container.
#[derive(Debug, Clone, Default)]
pub struct RunConfig {
    pub rootfs: PathBuf,
    pub readonly_rootfs: bool,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub hostname: String,
    pub tty: bool,
    pub privileged: bool,
    /// `NET_ADMIN` or `CAP_NET_ADMIN`, or `ALL`.
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub no_new_privileges: bool,
    /// The seccomp profile (none at all for `--privileged`, as with Docker).
    pub seccomp: Seccomp,
    pub mounts: Vec<MountSpec>,
    /// cgroup path relative to the hierarchy roots (`/berth/<id>`).
    pub cgroups_path: Option<String>,
    /// Join this network namespace instead of making one; `host_network` shares the host's.
    pub netns: Option<PathBuf>,
    pub host_network: bool,
    /// The capabilities of the host's bounding set (what `--privileged` grants).
    pub host_caps: Vec<String>,
    /// Soft and hard `RLIMIT_NOFILE` for the process.
    pub nofile: (u64, u64),
    pub resources: Resources,
    /// `--ulimit`: (`nofile`, soft, hard); they replace the defaults of that name.
    pub ulimits: Vec<(String, u64, u64)>,
    /// `--shm-size` in bytes.
    pub shm_size: Option<u64>,
    /// `--sysctl`, namespaced ones only (checked by the caller).
    pub sysctls: Vec<(String, String)>,
    /// Device nodes made in the container's /dev (`--device`, and every host
    /// device for `--privileged`), each allowed in the device cgroup.
    pub devices: Vec<Device>,
    /// `HostConfig.MaskedPaths` and `ReadonlyPaths` when set (else Docker's
    /// defaults); neither for a privileged container.
    pub masked_paths: Option<Vec<String>>,
    pub readonly_paths: Option<Vec<String>>,
    /// `--device-cgroup-rule`s, already parsed.
    pub device_rules: Vec<DeviceRule>,
    /// `--oom-score-adj`: the process's (and its execs') OOM score adjustment.
    pub oom_score_adj: Option<i32>,
    /// `--pid`, `--ipc` and `--uts`: a namespace of its own (the default), the
    /// host's, or another container's.
    pub pid_ns: Namespace,
    pub ipc_ns: Namespace,
    pub uts_ns: Namespace,
    /// What `/dev/shm` is (`--ipc`).
    pub shm: Shm,
    /// `--cgroupns private`: a cgroup namespace of its own, rooted at its cgroup.
    pub cgroup_ns: bool,
}

/// Whose namespace a container gets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Namespace {
    #[default]
    Own,
    Host,
    /// Another container's, by its `/proc/PID/ns/…` path.
    Join(PathBuf),
}

/// The container's `/dev/shm`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Shm {
    /// A tmpfs of its own (`--shm-size`).
    #[default]
    Own,
    /// None at all (`--ipc none`).
    None,
    /// Bound from this path (the host's or another container's, with their IPC).
    Bind(PathBuf),
}

/// A device node for the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Where it appears in the container.
    pub path: String,
    /// `c` or `b`.
    pub kind: char,
    pub major: i64,
    pub minor: i64,
    pub file_mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Device cgroup access: some of `rwm`.
    pub access: String,
}

/// One device cgroup allow rule (`c 1:3 rwm`, `a *:* m`); `None` is `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRule {
    pub kind: char,
    pub major: Option<i64>,
    pub minor: Option<i64>,
    pub access: String,
}

impl std::str::FromStr for DeviceRule {
    type Err = String;

    /// Docker's `--device-cgroup-rule` syntax: `TYPE MAJOR:MINOR ACCESS`.
    fn from_str(rule: &str) -> Result<Self, String> {
        let bad = || format!("invalid device cgroup rule format: '{rule}'");
        let parts: Vec<&str> = rule.split(' ').collect();
        let [kind, nums, access] = parts[..] else {
            return Err(bad());
        };
        let kind = match kind {
            "a" | "b" | "c" => kind.chars().next().ok_or_else(bad)?,
            _ => return Err(bad()),
        };
        let (major, minor) = nums.split_once(':').ok_or_else(bad)?;
        let num = |n: &str| -> Result<Option<i64>, String> {
            if n == "*" {
                Ok(None)
            } else if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) {
                n.parse().map(Some).map_err(|_| bad())
            } else {
                Err(bad())
            }
        };
        let valid_access = !access.is_empty()
            && access.len() <= 3
            && access.chars().all(|c| matches!(c, 'r' | 'w' | 'm'));
        if !valid_access {
            return Err(bad());
        }
        Ok(DeviceRule {
            kind,
            major: num(major)?,
            minor: num(minor)?,
            access: access.to_string(),
        })
    }
}

/// The device nodes at or under `host` (a node, or a directory walked as Docker
/// walks /dev for `--privileged`: pts, shm, fd, mqueue and the console left out),
/// placed under `in_container`.
pub fn devices_at(host: &Path, in_container: &str, access: &str) -> std::io::Result<Vec<Device>> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut out = Vec::new();
    let meta = std::fs::metadata(host)?;
    let one = |dest: String, m: &std::fs::Metadata| -> Option<Device> {
        let ft = m.file_type();
        let kind = if ft.is_char_device() {
            'c'
        } else if ft.is_block_device() {
            'b'
        } else {
            return None;
        };
        let rdev = m.rdev();
        Some(Device {
            path: dest,
            kind,
            major: nix::sys::stat::major(rdev) as i64,
            minor: nix::sys::stat::minor(rdev) as i64,
            file_mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            access: access.to_string(),
        })
    };
    if !meta.is_dir() {
        return match one(in_container.to_string(), &meta) {
            Some(d) => Ok(vec![d]),
            None => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a device node",
            )),
        };
    }
    let mut stack = vec![(
        host.to_path_buf(),
        in_container.trim_end_matches('/').to_string(),
    )];
    while let Some((dir, dest)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(ft) = e.file_type() else { continue };
            let path = e.path();
            let d = format!("{dest}/{name}");
            if ft.is_dir() {
                if !matches!(
                    name.as_str(),
                    "pts" | "shm" | "fd" | "mqueue" | ".lxc" | ".lxd-mounts" | ".udev"
                ) {
                    stack.push((path, d));
                }
            } else if name != "console" {
                if let Ok(m) = std::fs::symlink_metadata(&path) {
                    out.extend(one(d, &m));
                }
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Cgroup limits (`-m`, `--cpus`, `--pids-limit`, …); None or 0 means unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    pub memory: Option<i64>,
    pub memory_swap: Option<i64>,
    pub memory_reservation: Option<i64>,
    pub oom_kill_disable: bool,
    pub cpu_shares: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub pids_limit: Option<i64>,
    pub blkio_weight: Option<u16>,
}

fn cap_name(c: &str) -> String {
    let up = c.to_ascii_uppercase();
    if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    }
}

/// The capability set after Docker's `--cap-add`/`--cap-drop` rules.
pub fn capabilities(cfg: &RunConfig) -> Vec<String> {
    if cfg.privileged {
        return cfg.host_caps.clone();
    }
    let mut caps: Vec<String> = DEFAULT_CAPS.iter().map(|s| s.to_string()).collect();
    if cfg.cap_drop.iter().any(|c| c.eq_ignore_ascii_case("ALL")) {
        caps.clear();
    }
    for d in &cfg.cap_drop {
        let d = cap_name(d);
        caps.retain(|c| *c != d);
    }
    for a in &cfg.cap_add {
        if a.eq_ignore_ascii_case("ALL") {
            caps = cfg.host_caps.clone();
            continue;
        }
        let a = cap_name(a);
        if !caps.contains(&a) {
            caps.push(a);
        }
    }
    caps
}

/// The host's capability bounding set, from `/proc/self/status`.
pub fn host_capabilities() -> Vec<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    ALL_CAPS
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1u64 << i) != 0)
        .map(|(_, n)| n.to_string())
        .collect()
}

/// Capability names by number (linux/capability.h).
const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Value {
    json!({ "destination": dest, "type": typ, "source": source, "options": options })
}

/// Builds the spec as JSON (the spec's own vocabulary) and checks it by parsing it
/// into oci-spec's typed `Spec`.
pub fn build(cfg: &RunConfig) -> Result<Spec, crate::Error> {
    let cgroup_v2 = crate::cgroups::is_v2();
    let mut mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &[
                "nosuid",
                "noexec",
                "nodev",
                if cfg.privileged { "rw" } else { "ro" },
            ],
        ),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &[
                "nosuid",
                "noexec",
                "nodev",
                "relatime",
                if cfg.privileged { "rw" } else { "ro" },
            ],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
    ];
    for m in &cfg.mounts {
        // A user mount over a default one replaces it, as in dockerd.
        mounts.retain(|d| d["destination"] != json!(m.destination));
        mounts.push(json!({ "destination": m.destination, "type": m.typ, "source": m.source, "options": m.options }));
    }
    let mut namespaces = Vec::new();
    for (kind, ns) in [
        ("pid", &cfg.pid_ns),
        ("ipc", &cfg.ipc_ns),
        ("uts", &cfg.uts_ns),
    ] {
        match ns {
            Namespace::Own => namespaces.push(json!({ "type": kind })),
            Namespace::Host => {}
            Namespace::Join(p) => namespaces.push(json!({ "type": kind, "path": p })),
        }
    }
    namespaces.push(json!({"type": "mount"}));
    match &cfg.shm {
        Shm::Own => {}
        Shm::None => mounts.retain(|m| m["destination"] != "/dev/shm"),
        Shm::Bind(p) => {
            for m in mounts.iter_mut().filter(|m| m["destination"] == "/dev/shm") {
                *m = json!({ "destination": "/dev/shm", "type": "bind", "source": p, "options": ["rbind", "rprivate"] });
            }
        }
    }
    if !cfg.host_network {
        match &cfg.netns {
            Some(p) => namespaces.push(json!({"type": "network", "path": p})),
            None => namespaces.push(json!({"type": "network"})),
        }
    }
    if cfg.cgroup_ns {
        namespaces.push(json!({"type": "cgroup"}));
    }
    let caps = capabilities(cfg);
    let mut devices = if cfg.privileged {
        json!([{ "allow": true, "access": "rwm" }])
    } else {
        json!([
            { "allow": false, "access": "rwm" },
            { "allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm" },
            { "allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm" },
            { "allow": true, "type": "c", "major": 1, "minor": 9, "access": "rwm" },
            { "allow": true, "type": "c", "major": 1, "minor": 8, "access": "rwm" },
            { "allow": true, "type": "c", "major": 5, "minor": 0, "access": "rwm" },
            { "allow": true, "type": "c", "major": 5, "minor": 1, "access": "rwm" },
            { "allow": true, "type": "c", "major": 1, "minor": 7, "access": "rwm" },
            { "allow": true, "type": "c", "major": 136, "access": "rwm" },
            { "allow": true, "type": "c", "major": 5, "minor": 2, "access": "rwm" },
            { "allow": true, "type": "c", "major": 10, "minor": 200, "access": "rwm" },
        ])
    };
    if let Some(rules) = devices.as_array_mut().filter(|_| !cfg.privileged) {
        for d in &cfg.devices {
            rules.push(json!({
                "allow": true, "type": d.kind.to_string(), "major": d.major,
                "minor": d.minor, "access": d.access,
            }));
        }
        for r in &cfg.device_rules {
            let mut rule = json!({ "allow": true, "type": r.kind.to_string(), "access": r.access });
            if let Some(m) = r.major {
                rule["major"] = json!(m);
            }
            if let Some(m) = r.minor {
                rule["minor"] = json!(m);
            }
            rules.push(rule);
        }
    }
    let r = &cfg.resources;
    let mut resources = json!({ "devices": devices });
    let mut memory = serde_json::Map::new();
    if let Some(v) = r.memory.filter(|v| *v > 0) {
        memory.insert("limit".into(), json!(v));
    }
    if let Some(v) = r.memory_swap.filter(|v| *v != 0) {
        memory.insert("swap".into(), json!(v));
    }
    if let Some(v) = r.memory_reservation.filter(|v| *v > 0) {
        memory.insert("reservation".into(), json!(v));
    }
    if r.oom_kill_disable {
        memory.insert("disableOOMKiller".into(), json!(true));
    }
    if !memory.is_empty() {
        resources["memory"] = Value::Object(memory);
    }
    let mut cpu = serde_json::Map::new();
    if let Some(v) = r.cpu_shares.filter(|v| *v > 0) {
        cpu.insert("shares".into(), json!(v));
    }
    if let Some(v) = r.cpu_quota.filter(|v| *v > 0) {
        cpu.insert("quota".into(), json!(v));
    }
    if let Some(v) = r.cpu_period.filter(|v| *v > 0) {
        cpu.insert("period".into(), json!(v));
    }
    if let Some(v) = r.cpuset_cpus.as_ref().filter(|v| !v.is_empty()) {
        cpu.insert("cpus".into(), json!(v));
    }
    if let Some(v) = r.cpuset_mems.as_ref().filter(|v| !v.is_empty()) {
        cpu.insert("mems".into(), json!(v));
    }
    if !cpu.is_empty() {
        resources["cpu"] = Value::Object(cpu);
    }
    if let Some(v) = r.pids_limit.filter(|v| *v != 0) {
        resources["pids"] = json!({ "limit": v });
    }
    if let Some(v) = r.blkio_weight.filter(|v| *v > 0) {
        if cgroup_v2 {
            // Converted here, not by the runtime: libcontainer 0.7 converts in
            // 16 bits, which overflows for any weight above 75.
            resources["unified"] = json!({ "io.weight": crate::cgroups::io_weight(v).to_string() });
        } else {
            resources["blockIO"] = json!({ "weight": v });
        }
    }
    let mut linux = json!({
        "namespaces": namespaces,
        "resources": resources,
    });
    if !cfg.devices.is_empty() {
        linux["devices"] = json!(cfg
            .devices
            .iter()
            .map(|d| json!({
                "path": d.path, "type": d.kind.to_string(), "major": d.major,
                "minor": d.minor, "fileMode": d.file_mode, "uid": d.uid, "gid": d.gid,
            }))
            .collect::<Vec<_>>());
    }
    if !cfg.sysctls.is_empty() {
        linux["sysctl"] = json!(cfg
            .sysctls
            .iter()
            .cloned()
            .collect::<std::collections::BTreeMap<String, String>>());
    }
    if !cfg.privileged {
        let or_default = |v: &Option<Vec<String>>, d: &[&str]| -> Vec<String> {
            v.clone()
                .unwrap_or_else(|| d.iter().map(|s| s.to_string()).collect())
        };
        linux["maskedPaths"] = json!(or_default(&cfg.masked_paths, MASKED));
        linux["readonlyPaths"] = json!(or_default(&cfg.readonly_paths, READONLY));
        match &cfg.seccomp {
            Seccomp::Default => {
                linux["seccomp"] =
                    crate::seccomp::to_oci(&crate::seccomp_default::default_profile(), &caps)?
            }
            Seccomp::Profile(text) => {
                linux["seccomp"] = crate::seccomp::to_oci(&crate::seccomp::parse(text)?, &caps)?
            }
            Seccomp::Unconfined => {}
        }
    }
    if let Some(p) = &cfg.cgroups_path {
        linux["cgroupsPath"] = json!(p);
    }
    let mut rlimits =
        vec![json!({ "type": "RLIMIT_NOFILE", "hard": cfg.nofile.1, "soft": cfg.nofile.0 })];
    for (name, soft, hard) in &cfg.ulimits {
        let t = format!("RLIMIT_{}", name.to_ascii_uppercase());
        rlimits.retain(|r| r["type"] != json!(t));
        rlimits.push(json!({ "type": t, "hard": hard, "soft": soft }));
    }
    if let Some(sz) = cfg.shm_size.filter(|s| *s > 0) {
        for m in mounts.iter_mut() {
            if m["destination"] == "/dev/shm" && m["type"] == "tmpfs" {
                m["options"] = json!([
                    "nosuid",
                    "noexec",
                    "nodev",
                    "mode=1777",
                    format!("size={sz}")
                ]);
            }
        }
    }
    let mut spec = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": cfg.tty,
            "user": { "uid": cfg.uid, "gid": cfg.gid, "additionalGids": cfg.additional_gids },
            "args": cfg.args,
            "env": cfg.env,
            "cwd": if cfg.cwd.is_empty() { "/" } else { cfg.cwd.as_str() },
            "capabilities": { "bounding": caps, "effective": caps, "permitted": caps },
            "rlimits": rlimits,
        },
        "root": { "path": cfg.rootfs, "readonly": cfg.readonly_rootfs },
        "mounts": mounts,
        "linux": linux,
    });
    // Only when set: libcontainer loads seccomp after dropping capabilities
    // whenever the field is present, which without no-new-privileges fails.
    if cfg.no_new_privileges {
        spec["process"]["noNewPrivileges"] = json!(true);
    }
    if let Some(adj) = cfg.oom_score_adj {
        spec["process"]["oomScoreAdj"] = json!(adj);
    }
    // Only with a UTS namespace of its own: the runtime would set the host's name.
    if cfg.uts_ns == Namespace::Own {
        spec["hostname"] = json!(cfg.hostname);
    }
    serde_json::from_value(spec)
        .map_err(|e| crate::Error::Spec(format!("building the OCI spec: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_cgroup_rules_parse_as_docker_reads_them() {
        let r: DeviceRule = "c 1:3 mr".parse().expect("rule");
        assert_eq!(
            (r.kind, r.major, r.minor, r.access.as_str()),
            ('c', Some(1), Some(3), "mr")
        );
        let r: DeviceRule = "a *:* rwm".parse().expect("rule");
        assert_eq!((r.major, r.minor), (None, None));
        for bad in [
            "c 1:3",
            "x 1:3 r",
            "c 1-3 r",
            "c a:3 r",
            "c 1:3 rwmx",
            "c 1:3 q",
            "c 1:3  r",
        ] {
            let e = bad.parse::<DeviceRule>().expect_err(bad);
            assert_eq!(e, format!("invalid device cgroup rule format: '{bad}'"));
        }
    }

    #[test]
    fn devices_are_found_and_allowed() {
        let null = devices_at(Path::new("/dev/null"), "/dev/mynull", "rw").expect("null");
        assert_eq!(null.len(), 1);
        assert_eq!((null[0].kind, null[0].major, null[0].minor), ('c', 1, 3));
        assert_eq!(null[0].path, "/dev/mynull");
        assert!(devices_at(Path::new("/etc/passwd"), "/dev/x", "rwm").is_err());
        let all = devices_at(Path::new("/dev"), "/dev", "rwm").expect("/dev");
        assert!(all.iter().any(|d| d.path == "/dev/zero"));
        assert!(!all
            .iter()
            .any(|d| d.path.starts_with("/dev/pts/") || d.path == "/dev/console"));
        let mut c = cfg();
        c.devices = null;
        c.device_rules = vec!["b 8:* r".parse().expect("rule")];
        let spec = serde_json::to_value(build(&c).expect("spec")).expect("json");
        assert_eq!(spec["linux"]["devices"][0]["path"], "/dev/mynull");
        let rules = spec["linux"]["resources"]["devices"]
            .as_array()
            .expect("rules");
        assert!(rules
            .iter()
            .any(|r| r["major"] == 1 && r["minor"] == 3 && r["access"] == "rw"));
        assert!(rules
            .iter()
            .any(|r| r["type"] == "b" && r["major"] == 8 && r.get("minor").is_none()));
    }

    fn cfg() -> RunConfig {
        RunConfig {
            rootfs: "/x/rootfs".into(),
            args: vec!["sh".into()],
            env: vec!["PATH=/bin".into()],
            hostname: "abc".into(),
            host_caps: ALL_CAPS.iter().map(|s| s.to_string()).collect(),
            nofile: (1024, 4096),
            ..Default::default()
        }
    }

    #[test]
    fn docker_defaults() {
        let s = serde_json::to_value(build(&cfg()).expect("spec")).expect("json");
        let caps = s["process"]["capabilities"]["bounding"]
            .as_array()
            .expect("caps");
        assert_eq!(caps.len(), DEFAULT_CAPS.len());
        assert!(!caps.contains(&json!("CAP_NET_ADMIN")));
        assert!(s["linux"]["maskedPaths"]
            .as_array()
            .expect("masked")
            .contains(&json!("/proc/kcore")));
        assert!(s["linux"]["readonlyPaths"]
            .as_array()
            .expect("ro")
            .contains(&json!("/proc/sys")));
        let ns: Vec<&str> = s["linux"]["namespaces"]
            .as_array()
            .expect("ns")
            .iter()
            .filter_map(|n| n["type"].as_str())
            .collect();
        for n in ["pid", "ipc", "uts", "mount", "network"] {
            assert!(ns.contains(&n), "{n}");
        }
        assert_eq!(s["process"]["cwd"], "/");
        assert_eq!(s["hostname"], "abc");
    }

    #[test]
    fn cap_add_drop_and_privileged() {
        let mut c = cfg();
        c.cap_add = vec!["net_admin".into()];
        c.cap_drop = vec!["CAP_CHOWN".into()];
        let caps = capabilities(&c);
        assert!(caps.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!caps.contains(&"CAP_CHOWN".to_string()));
        c.cap_drop = vec!["ALL".into()];
        c.cap_add = vec![];
        assert!(capabilities(&c).is_empty());
        c.privileged = true;
        let s = serde_json::to_value(build(&c).expect("spec")).expect("json");
        assert!(s["linux"].get("maskedPaths").is_none());
        assert_eq!(
            s["process"]["capabilities"]["bounding"]
                .as_array()
                .map(Vec::len),
            Some(ALL_CAPS.len())
        );
    }

    #[test]
    fn host_and_joined_namespaces_and_shm() {
        let ns_of = |s: &Value| -> Vec<String> {
            s["linux"]["namespaces"]
                .as_array()
                .expect("ns")
                .iter()
                .map(|n| {
                    format!(
                        "{}={}",
                        n["type"].as_str().unwrap_or(""),
                        n["path"].as_str().unwrap_or("")
                    )
                })
                .collect()
        };
        let shm_of = |s: &Value| -> Vec<Value> {
            s["mounts"]
                .as_array()
                .expect("mounts")
                .iter()
                .filter(|m| m["destination"] == "/dev/shm")
                .cloned()
                .collect()
        };
        let mut c = cfg();
        c.pid_ns = Namespace::Host;
        c.ipc_ns = Namespace::Join("/proc/7/ns/ipc".into());
        c.uts_ns = Namespace::Host;
        c.shm = Shm::Bind("/proc/7/root/dev/shm".into());
        let s = serde_json::to_value(build(&c).expect("spec")).expect("json");
        let ns = ns_of(&s);
        assert!(
            !ns.iter()
                .any(|n| n.starts_with("pid=") || n.starts_with("uts=")),
            "{ns:?}"
        );
        assert!(ns.contains(&"ipc=/proc/7/ns/ipc".to_string()), "{ns:?}");
        // No hostname without a UTS namespace of its own: it would be the host's.
        assert!(s.get("hostname").is_none_or(Value::is_null), "{s}");
        assert_eq!(shm_of(&s)[0]["source"], "/proc/7/root/dev/shm");
        assert_eq!(shm_of(&s)[0]["type"], "bind");
        c.shm = Shm::None;
        let s = serde_json::to_value(build(&c).expect("spec")).expect("json");
        assert!(shm_of(&s).is_empty());
        // The defaults: namespaces of its own, a hostname, a tmpfs.
        let s = serde_json::to_value(build(&cfg()).expect("spec")).expect("json");
        let ns = ns_of(&s);
        for kind in ["pid=", "ipc=", "uts=", "mount="] {
            assert!(ns.contains(&kind.to_string()), "{ns:?}");
        }
        assert_eq!(s["hostname"], "abc");
        assert_eq!(shm_of(&s)[0]["type"], "tmpfs");
    }

    #[test]
    fn user_mounts_replace_defaults_and_host_network_has_no_netns() {
        let mut c = cfg();
        c.host_network = true;
        c.mounts = vec![MountSpec {
            source: "tmpfs".into(),
            destination: "/dev/shm".into(),
            typ: "tmpfs".into(),
            options: vec!["size=1m".into()],
        }];
        let s = serde_json::to_value(build(&c).expect("spec")).expect("json");
        let shm: Vec<&Value> = s["mounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .filter(|m| m["destination"] == "/dev/shm")
            .collect();
        assert_eq!(shm.len(), 1);
        assert_eq!(shm[0]["options"], json!(["size=1m"]));
        assert!(!s["linux"]["namespaces"]
            .as_array()
            .expect("ns")
            .iter()
            .any(|n| n["type"] == "network"));
    }
}
