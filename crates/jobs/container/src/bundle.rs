//! Everything a container needs before its shim runs, and its undoing: the
//! overlay root, `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf`, mounts,
//! namespaces and the OCI bundle (`config.json`).

use std::path::{Path, PathBuf};

use berth_api::container::HostConfig;
use berth_api::network::NetSetup;
use berth_api::{ApiError, Result};
use berth_runtime::spec::{build, host_capabilities, MountSpec, Namespace, RunConfig, Shm};

use crate::model::Record;
use crate::sys;
use crate::user::{group_add, resolve_user, with_default_path, with_home};
use crate::Containers;

/// The score below which lowering needs CAP_SYS_RESOURCE: the daemon's own.
fn own_oom_score_adj() -> i64 {
    std::fs::read_to_string("/proc/self/oom_score_adj")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// `linux/capability.h`.
const CAP_SYS_RESOURCE: u32 = 24;

/// Whether this process may lower OOM scores (CAP_SYS_RESOURCE, effective).
fn has_sys_resource() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let hex = s
                .lines()
                .find_map(|l| l.strip_prefix("CapEff:"))?
                .trim()
                .to_string();
            u64::from_str_radix(&hex, 16).ok()
        })
        .is_some_and(|caps| caps & (1 << CAP_SYS_RESOURCE) != 0)
}

/// `--oom-score-adj` as the container will get it. A score below the daemon's
/// needs CAP_SYS_RESOURCE: without it (daemons in containers and many VMs) no
/// runtime can set one, so the start fails here in words that say why, or,
/// with `--restrict-oom-score-adj`, gets the daemon's own score as containerd's
/// CRI gives it.
fn oom_score_adj(c: &Containers, asked: i64) -> Result<Option<i32>> {
    let own = own_oom_score_adj();
    let adj = if asked < own && !has_sys_resource() {
        if !c.restricts_oom() {
            return Err(ApiError::system(format!(
                "oom_score_adj {asked} is below the daemon's own ({own}), which needs CAP_SYS_RESOURCE, and this host does not give it to berthd: start berthd with --restrict-oom-score-adj to give such containers the daemon's score instead"
            )));
        }
        own
    } else {
        asked
    };
    Ok(Some(adj)
        .filter(|a| *a != 0)
        .and_then(|a| i32::try_from(a).ok()))
}

/// The container whose network namespace `rec` joins (`--network container:ID`).
pub(crate) fn network_donor(c: &Containers, rec: &Record) -> Option<String> {
    let donor = rec.host_config.network_mode.strip_prefix("container:")?;
    c.find(donor).ok().map(|e| e.snapshot().id)
}

/// The donor's /etc/hostname, /etc/hosts and /etc/resolv.conf, bound as they
/// are (dockerd shares them with the containers that join its network).
fn shared_etc(donor_dir: &Path) -> Vec<MountSpec> {
    [
        ("hostname", "/etc/hostname"),
        ("hosts", "/etc/hosts"),
        ("resolv.conf", "/etc/resolv.conf"),
    ]
    .into_iter()
    .map(|(name, dest)| MountSpec {
        source: donor_dir.join(name).display().to_string(),
        destination: dest.into(),
        typ: "bind".into(),
        options: vec!["rbind".into(), "rprivate".into()],
    })
    .collect()
}

/// Files the container sees at /etc/hostname, /etc/hosts and /etc/resolv.conf.
fn write_etc(
    dir: &Path,
    hostname: &str,
    net: Option<&NetSetup>,
    hc: &HostConfig,
    links: &[(String, String)],
) -> Result<Vec<MountSpec>> {
    let ip = net
        .and_then(|n| n.ip)
        .map(|i| i.to_string())
        .unwrap_or_else(|| "127.0.1.1".into());
    let mut hosts = crate::etc::hosts(hostname, &ip, hc, net.and_then(|n| n.host_gateway), links)?;
    if let Some(v6) = net.and_then(|n| n.ip6) {
        hosts.push_str(&format!("{v6}\t{hostname}\n"));
    }
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let resolv = crate::etc::resolv_conf(
        &host_resolv,
        net.and_then(|n| n.nameservers.as_deref()),
        net.is_some_and(|n| n.host),
        hc,
    );
    let mut mounts = Vec::new();
    for (name, content, dest) in [
        ("hostname", format!("{hostname}\n"), "/etc/hostname"),
        ("hosts", hosts, "/etc/hosts"),
        ("resolv.conf", resolv, "/etc/resolv.conf"),
    ] {
        let p = dir.join(name);
        berth_atomicfile::write_mode(&p, content.as_bytes(), 0o644).map_err(sys)?;
        mounts.push(MountSpec {
            source: p.display().to_string(),
            destination: dest.into(),
            typ: "bind".into(),
            options: vec!["rbind".into(), "rprivate".into()],
        });
    }
    Ok(mounts)
}

/// The container's binds, volumes and tmpfs mounts as OCI mounts. Volumes are
/// readied (mounted when they have driver options, filled from the image when
/// new and empty). Blocking.
fn user_mounts(c: &Containers, rec: &Record, rootfs: &Path) -> Result<Vec<MountSpec>> {
    let mut out = Vec::new();
    let runtime = c.runtimes().binary(&rec.host_config.runtime)?;
    for m in &rec.mounts {
        let mut o = Vec::new();
        let source = match m.kind.as_str() {
            "bind" => {
                if !Path::new(&m.source).exists() {
                    std::fs::create_dir_all(&m.source).map_err(sys)?;
                }
                o.extend([
                    "rbind".to_string(),
                    if m.propagation.is_empty() {
                        "rprivate".to_string()
                    } else {
                        m.propagation.clone()
                    },
                ]);
                m.source.clone()
            }
            "volume" => {
                let vols = c
                    .vols()
                    .ok_or_else(|| ApiError::not_implemented("volumes are not enabled"))?;
                let path = vols.mount(&m.name)?;
                if !m.nocopy {
                    let from = rootfs.join(m.destination.trim_start_matches('/'));
                    if let Err(e) = crate::mounts::copy_up(&from, &path) {
                        tracing::warn!(volume = %m.name, error = %e, "copying image content into the volume");
                    }
                }
                o.extend(["rbind".to_string(), "rprivate".to_string()]);
                path.display().to_string()
            }
            _ => {
                o.extend(["nosuid", "nodev", "noexec"].map(String::from));
                o.extend(
                    m.tmpfs
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(String::from),
                );
                out.push(MountSpec {
                    source: "tmpfs".into(),
                    destination: m.destination.clone(),
                    typ: "tmpfs".into(),
                    options: if m.rw {
                        o
                    } else {
                        [o, vec!["ro".into()]].concat()
                    },
                });
                continue;
            }
        };
        if !m.rw {
            o.push("ro".into());
            if let Some(r) = crate::rro::option(m, runtime.as_deref())? {
                o.push(r.into());
            }
        }
        out.push(MountSpec {
            source,
            destination: m.destination.clone(),
            typ: "bind".into(),
            options: o,
        });
    }
    if let Some(t) = &rec.host_config.tmpfs {
        for (dst, opts) in t {
            let mut o = vec![
                "nosuid".to_string(),
                "nodev".to_string(),
                "noexec".to_string(),
            ];
            o.extend(
                opts.split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
            );
            out.push(MountSpec {
                source: "tmpfs".into(),
                destination: dst.clone(),
                typ: "tmpfs".into(),
                options: o,
            });
        }
    }
    Ok(out)
}

/// The init `--init` runs: dockerd's `docker-init`, or Debian's static tini (the
/// container may have no C library for a dynamic one).
fn init_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    ["docker-init", "tini-static"].iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// Where a container with `--ipc shareable` keeps its /dev/shm on the host, as
/// dockerd keeps it (`containers/<id>/mounts/shm`).
pub(crate) fn shm_dir(c: &Containers, id: &str) -> PathBuf {
    c.dir(id).join("mounts").join("shm")
}

/// The tmpfs of a shareable container's /dev/shm, mounted on the host at its
/// first start (`--shm-size`, else dockerd's 64 MiB). Blocking.
fn shared_shm(c: &Containers, rec: &Record, hc: &HostConfig) -> Result<PathBuf> {
    use nix::mount::{mount, MsFlags};
    let dir = shm_dir(c, &rec.id);
    std::fs::create_dir_all(&dir).map_err(sys)?;
    if !is_mountpoint(&dir) {
        let size = if hc.shm_size > 0 {
            hc.shm_size
        } else {
            64 << 20
        };
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        mount(
            Some("shm"),
            &dir,
            Some("tmpfs"),
            flags,
            Some(format!("mode=1777,size={size}").as_str()),
        )
        .map_err(|e| {
            ApiError::system(format!("mounting the shm tmpfs at {}: {e}", dir.display()))
        })?;
    }
    Ok(dir)
}

fn is_mountpoint(p: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(p), std::fs::metadata(p.join(".."))) {
        (Ok(a), Ok(b)) => a.dev() != b.dev(),
        _ => false,
    }
}

/// `--ipc container:ID`: the donor's IPC namespace and /dev/shm, with dockerd's
/// refusals of a donor that does not run or does not share.
fn ipc_of(c: &Containers, donor: &str) -> Result<(Namespace, Shm)> {
    let d = c.find(donor)?.snapshot();
    let refuse =
        |why: String| ApiError::system(format!("can't join IPC of container {}: {why}", d.id));
    if !d.state.running || d.state.pid <= 0 {
        return Err(refuse(format!("container {} is not running", d.id)));
    }
    match d.host_config.ipc_mode.as_str() {
        "host" => Ok((Namespace::Host, Shm::Bind("/dev/shm".into()))),
        "shareable" => Ok((
            Namespace::Join(format!("/proc/{}/ns/ipc", d.state.pid).into()),
            Shm::Bind(shm_dir(c, &d.id)),
        )),
        _ => Err(refuse(
            "non-shareable IPC (hint: use IpcMode:shareable for the donor container)".into(),
        )),
    }
}

/// `--pid`, `--ipc` and `--uts`: the host's namespaces, or another running
/// container's PID namespace.
fn namespace_modes(
    c: &Containers,
    rec: &Record,
    hc: &HostConfig,
) -> Result<(Namespace, Namespace, Namespace, Shm)> {
    let running_pid = |other: &str, what: &str| -> Result<i32> {
        let o = c.find(other)?.snapshot();
        if !o.state.running || o.state.pid <= 0 {
            return Err(ApiError::conflict(format!(
                "cannot join {what} of a non running container: {}",
                o.id
            )));
        }
        Ok(o.state.pid)
    };
    let pid_ns = match hc.pid_mode.as_str() {
        "host" => Namespace::Host,
        m => match m.strip_prefix("container:") {
            Some(o) => Namespace::Join(format!("/proc/{}/ns/pid", running_pid(o, "PID")?).into()),
            None => Namespace::Own,
        },
    };
    let (ipc_ns, shm) = match hc.ipc_mode.as_str() {
        "host" => (Namespace::Host, Shm::Bind("/dev/shm".into())),
        "none" => (Namespace::Own, Shm::None),
        // Its /dev/shm on the host, where joiners can bind it too.
        "shareable" => (Namespace::Own, Shm::Bind(shared_shm(c, rec, hc)?)),
        m => match m.strip_prefix("container:") {
            Some(donor) => ipc_of(c, donor)?,
            None => (Namespace::Own, Shm::Own),
        },
    };
    let uts_ns = if hc.uts_mode == "host" {
        Namespace::Host
    } else {
        Namespace::Own
    };
    Ok((pid_ns, ipc_ns, uts_ns, shm))
}

/// Releases the volumes of a container that ended (or failed to start).
pub(crate) fn unmount_volumes(c: &Containers, rec: &Record) {
    if let Some(v) = c.vols() {
        for m in rec.mounts.iter().filter(|m| m.kind == "volume") {
            v.unmount(&m.name);
        }
    }
}

/// Everything before the shim: root filesystem, files, spec. Blocking.
pub(crate) fn prepare(c: &Containers, rec: &Record, net: Option<&NetSetup>) -> Result<PathBuf> {
    let dir = c.dir(&rec.id);
    let merged = dir.join("merged");
    let image = berth_graph::Digest::parse(&rec.image).map_err(sys)?;
    let lowers = c.graph.lowerdirs(&image).map_err(berth_apierr::graph)?;
    berth_graph::mount::mount_overlay(&lowers, &dir.join("upper"), &dir.join("work"), &merged)
        .map_err(sys)?;
    let result = (|| {
        let hostname = Some(rec.config.hostname.as_str())
            .filter(|h| !h.is_empty())
            .unwrap_or(rec.short_id())
            .to_string();
        let (uid, gid, extra) = resolve_user(&merged, &rec.config.user)?;
        let extra = group_add(&merged, &rec.host_config, extra)?;
        let links = crate::links::resolve(c, rec)?;
        let hosts: Vec<(String, String)> = links.iter().map(|l| l.host.clone()).collect();
        let mut mounts = match network_donor(c, rec) {
            // The donor's own files: its namespace, its names.
            Some(donor) => shared_etc(&c.dir(&donor)),
            None => write_etc(&dir, &hostname, net, &rec.host_config, &hosts)?,
        };
        mounts.extend(user_mounts(c, rec, &merged)?);
        let hc = &rec.host_config;
        let security = HostConfig::list(&hc.security_opt);
        let privileged = hc.privileged;
        let (devices, device_rules) = crate::resources::devices(hc, privileged)?;
        crate::resources::device_requests(hc)?;
        let (pid_ns, ipc_ns, uts_ns, shm) = namespace_modes(c, rec, hc)?;
        // `--init`: a small init as PID 1 that reaps and forwards signals, bound in
        // read-only where dockerd puts it.
        let mut init_args = Vec::new();
        if hc.init.unwrap_or(false) {
            let init = init_binary().ok_or_else(|| {
                ApiError::system("exec: \"docker-init\": executable file not found in $PATH")
            })?;
            mounts.push(MountSpec {
                source: init.display().to_string(),
                destination: "/sbin/docker-init".into(),
                typ: "bind".into(),
                options: vec!["bind".into(), "ro".into()],
            });
            init_args = vec!["/sbin/docker-init".to_string(), "--".to_string()];
        }
        let nofile = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .unwrap_or((1024, 1024));
        let cfg = RunConfig {
            rootfs: merged.clone(),
            readonly_rootfs: hc.readonly_rootfs,
            args: init_args
                .into_iter()
                .chain(std::iter::once(rec.path.clone()))
                .chain(rec.args.iter().cloned())
                .collect(),
            // Links' variables first: the container's own Env overrides them.
            env: with_home(
                with_default_path(
                    links
                        .iter()
                        .flat_map(|l| l.env.iter().cloned())
                        .chain(rec.config.env.iter().cloned())
                        .collect(),
                ),
                &merged,
                uid,
            ),
            cwd: rec.config.working_dir.clone(),
            uid,
            gid,
            additional_gids: extra,
            hostname,
            tty: rec.tty(),
            privileged,
            cap_add: HostConfig::list(&hc.cap_add).to_vec(),
            cap_drop: HostConfig::list(&hc.cap_drop).to_vec(),
            seccomp: seccomp_choice(security, &c.default_seccomp),
            no_new_privileges: security.iter().any(|s| {
                s == "no-new-privileges"
                    || s == "no-new-privileges:true"
                    || s == "no-new-privileges=true"
            }),
            mounts,
            cgroups_path: Some(crate::ops::cgroup_path(rec)),
            netns: net.and_then(|n| n.netns.clone()),
            host_network: net.map(|n| n.host).unwrap_or(hc.network_mode == "host"),
            host_caps: host_capabilities(),
            nofile: (nofile.0, nofile.1),
            resources: crate::resources::of(hc),
            ulimits: crate::resources::ulimits(hc),
            shm_size: u64::try_from(hc.shm_size).ok().filter(|s| *s > 0),
            sysctls: crate::resources::sysctls(hc),
            devices,
            device_rules,
            masked_paths: hc.masked_paths.clone(),
            readonly_paths: hc.readonly_paths.clone(),
            oom_score_adj: oom_score_adj(c, hc.oom_score_adj)?,
            pid_ns,
            ipc_ns,
            uts_ns,
            shm,
            // Records from before the mode was recorded at create had the
            // default of their host.
            cgroup_ns: match hc.cgroupns_mode.as_str() {
                "private" => true,
                "host" => false,
                _ => berth_runtime::cgroups::is_v2(),
            },
        };
        if !cfg.cwd.is_empty() {
            let p = merged.join(cfg.cwd.trim_start_matches('/'));
            if !p.exists() {
                std::fs::create_dir_all(&p).map_err(sys)?;
            }
        }
        if let Some(p) = &cfg.cgroups_path {
            if let Err(e) = berth_runtime::placement::prepare_parent(p) {
                tracing::warn!(cgroup = %p, error = %e, "making the cgroup's parent");
            }
        }
        let spec = build(&cfg).map_err(berth_apierr::runtime)?;
        let bundle = c.run_dir(&rec.id);
        std::fs::create_dir_all(&bundle).map_err(sys)?;
        let _ = std::fs::remove_file(bundle.join("exit.json"));
        let b = serde_json::to_vec(&spec).map_err(sys)?;
        berth_atomicfile::write(&bundle.join("config.json"), &b).map_err(sys)?;
        Ok(bundle)
    })();
    if result.is_err() {
        unmount_volumes(c, rec);
        let _ = berth_graph::mount::unmount(&merged);
    }
    result
}

/// The profile `--security-opt seccomp=…` asks for (the CLI sends a profile
/// file's content; `seccomp:` is the old separator).
fn seccomp_choice(
    security: &[String],
    default: &berth_runtime::spec::Seccomp,
) -> berth_runtime::spec::Seccomp {
    use berth_runtime::spec::Seccomp;
    let value = security.iter().rev().find_map(|s| {
        s.strip_prefix("seccomp=")
            .or_else(|| s.strip_prefix("seccomp:"))
    });
    match value {
        None => default.clone(),
        Some("builtin") => Seccomp::Default,
        Some("unconfined") => Seccomp::Unconfined,
        Some(profile) => Seccomp::Profile(profile.to_string()),
    }
}

/// Undoes `prepare` after the container ended. Blocking.
pub(crate) fn cleanup(c: &Containers, id: &str) {
    let _ = berth_graph::mount::unmount(&c.dir(id).join("merged"));
    let shm = shm_dir(c, id);
    if shm.exists() {
        // Joiners that still run keep their own binds of it.
        let _ = nix::mount::umount2(&shm, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir_all(c.dir(id).join("mounts"));
    }
    let _ = std::fs::remove_dir_all(c.run_dir(id));
    let _ = std::fs::remove_dir_all(c.exec_root.join("state").join(id));
}
