//! start, wait, stop, kill and rm, and what happens when a container exits.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use berth_api::container::HostConfig;
use berth_api::network::{NetRequest, NetSetup};
use berth_api::{ApiError, ErrorKind, Result};
use berth_engine::{Engine, Job, Reply};
use berth_runtime::exit::{now, ExitRecord};
use berth_runtime::spec::{build, host_capabilities, MountSpec, Namespace, RunConfig, Shm};
use nix::sys::signal::Signal;
use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt;

use crate::model::Record;
use crate::{event, shim_command, Containers, Entry};

fn sys(e: impl std::fmt::Display) -> ApiError {
    ApiError::system(e.to_string())
}

/// Resolves `user` (`name`, `uid`, `name:group`, `uid:gid`) against the container's
/// `/etc/passwd` and `/etc/group`, as dockerd does.
pub(crate) fn resolve_user(rootfs: &Path, user: &str) -> Result<(u32, u32, Vec<u32>)> {
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap_or_default();
    let group = std::fs::read_to_string(rootfs.join("etc/group")).unwrap_or_default();
    let (u, g) = user
        .split_once(':')
        .map(|(u, g)| (u, Some(g)))
        .unwrap_or((user, None));
    let entries: Vec<Vec<&str>> = passwd
        .lines()
        .map(|l| l.split(':').collect())
        .filter(|f: &Vec<&str>| f.len() >= 4)
        .collect();
    let (uid, mut gid, uname) = if u.is_empty() {
        (0, 0, "root".to_string())
    } else if let Ok(n) = u.parse::<u32>() {
        let e = entries.iter().find(|f| f[2] == u);
        (
            n,
            e.and_then(|f| f[3].parse().ok()).unwrap_or(0),
            e.map(|f| f[0].to_string()).unwrap_or_default(),
        )
    } else {
        let e = entries.iter().find(|f| f[0] == u).ok_or_else(|| {
            ApiError::invalid(format!(
                "unable to find user {u}: no matching entries in passwd file"
            ))
        })?;
        (
            e[2].parse().unwrap_or(0),
            e[3].parse().unwrap_or(0),
            u.to_string(),
        )
    };
    let groups: Vec<Vec<&str>> = group
        .lines()
        .map(|l| l.split(':').collect())
        .filter(|f: &Vec<&str>| f.len() >= 3)
        .collect();
    if let Some(g) = g {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => groups
                .iter()
                .find(|f| f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| {
                    ApiError::invalid(format!(
                        "unable to find group {g}: no matching entries in group file"
                    ))
                })?,
        };
    }
    // The primary group is a supplementary group too, then, unless a group was
    // named, the groups that list the user: what `id` shows under dockerd.
    let mut extra = vec![gid];
    if g.is_none() {
        for m in groups
            .iter()
            .filter(|f| f.len() >= 4 && !uname.is_empty() && f[3].split(',').any(|m| m == uname))
            .filter_map(|f| f[2].parse::<u32>().ok())
        {
            if !extra.contains(&m) {
                extra.push(m);
            }
        }
    }
    Ok((uid, gid, extra))
}

/// `--group-add`: groups by name (from the container's /etc/group) or number, added
/// to the supplementary groups of the container's process and its execs.
pub(crate) fn group_add(rootfs: &Path, hc: &HostConfig, mut extra: Vec<u32>) -> Result<Vec<u32>> {
    let wanted = HostConfig::list(&hc.group_add);
    if wanted.is_empty() {
        return Ok(extra);
    }
    let group = std::fs::read_to_string(rootfs.join("etc/group")).unwrap_or_default();
    for g in wanted {
        let by_name = group.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 3 && f[0] == g)
                .then(|| f[2].parse::<u32>().ok())
                .flatten()
        });
        let gid = by_name
            .or_else(|| g.parse().ok())
            .ok_or_else(|| ApiError::invalid(format!("Unable to find group {g}")))?;
        if !extra.contains(&gid) {
            extra.push(gid);
        }
    }
    Ok(extra)
}

pub(crate) fn parse_signal(s: &str) -> Result<Signal> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| ApiError::invalid(format!("Invalid signal: {s}")));
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    name.parse::<Signal>()
        .map_err(|_| ApiError::invalid(format!("Invalid signal: {s}")))
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
    let hosts = crate::etc::hosts(hostname, &ip, hc, net.and_then(|n| n.host_gateway), links)?;
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

/// `--pid`, `--ipc` and `--uts`: the host's namespaces, or another running
/// container's PID namespace.
fn namespace_modes(
    c: &Containers,
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
        // A container's /dev/shm is a tmpfs inside its own mount namespace, which
        // another cannot bind: sharing would need it kept on the host, as dockerd
        // keeps a shareable container's. Refused rather than half done.
        m if m.starts_with("container:") => {
            return Err(ApiError::invalid(crate::validate::IPC_JOIN_UNSUPPORTED))
        }
        _ => (Namespace::Own, Shm::Own),
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
fn prepare(c: &Containers, rec: &Record, net: Option<&NetSetup>) -> Result<PathBuf> {
    let dir = c.dir(&rec.id);
    let merged = dir.join("merged");
    let image =
        berth_graph::Digest::parse(&rec.image).map_err(|e| ApiError::system(e.to_string()))?;
    let lowers = c
        .graph
        .lowerdirs(&image)
        .map_err(|e| ApiError::system(e.to_string()))?;
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
        let mut mounts = write_etc(&dir, &hostname, net, &rec.host_config, &hosts)?;
        mounts.extend(user_mounts(c, rec, &merged)?);
        let hc = &rec.host_config;
        let security = HostConfig::list(&hc.security_opt);
        let privileged = hc.privileged;
        let (devices, device_rules) = crate::resources::devices(hc, privileged)?;
        let (pid_ns, ipc_ns, uts_ns, shm) = namespace_modes(c, hc)?;
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
            oom_score_adj: Some(hc.oom_score_adj)
                .filter(|a| *a != 0)
                .and_then(|a| i32::try_from(a).ok()),
            pid_ns,
            ipc_ns,
            uts_ns,
            shm,
        };
        if !cfg.cwd.is_empty() {
            let p = merged.join(cfg.cwd.trim_start_matches('/'));
            if !p.exists() {
                std::fs::create_dir_all(&p).map_err(sys)?;
            }
        }
        let spec = build(&cfg).map_err(ApiError::system)?;
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

/// The home directory of `uid` in the image's /etc/passwd, `/` when it has none:
/// what runc gives a process whose environment has no HOME.
pub(crate) fn home_of(rootfs: &Path, uid: u32) -> String {
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap_or_default();
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 6 && f[2].parse() == Ok(uid))
        .map(|f| f[5].to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "/".into())
}

/// `HOME=` for `uid` unless the environment sets it.
pub(crate) fn with_home(mut env: Vec<String>, rootfs: &Path, uid: u32) -> Vec<String> {
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", home_of(rootfs, uid)));
    }
    env
}

/// dockerd gives a container a PATH when its image and config have none.
pub(crate) fn with_default_path(mut env: Vec<String>) -> Vec<String> {
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    }
    env
}

/// Undoes `prepare` after the container ended. Blocking.
pub(crate) fn cleanup(c: &Containers, id: &str) {
    let _ = berth_graph::mount::unmount(&c.dir(id).join("merged"));
    let _ = std::fs::remove_dir_all(c.run_dir(id));
    let _ = std::fs::remove_dir_all(c.exec_root.join("state").join(id));
}

/// `--stdin FIFO` for containers created with `OpenStdin`, `--tty` and `--resize`
/// for those with a terminal.
fn stdin_args(c: &Containers, rec: &Record) -> Vec<std::ffi::OsString> {
    let mut out = Vec::new();
    // What the log keeps: the driver's rotation, checked at create.
    out.extend(crate::LogConfig::of_host_config(&rec.host_config).shim_args());
    let fifo = c.dir(&rec.id).join("stdin.fifo");
    if rec.config.open_stdin && fifo.exists() {
        out.extend(["--stdin".into(), fifo.into_os_string()]);
        // Without StdinOnce, dockerd keeps a container's stdin open whoever
        // attaches and leaves (`docker run -d -i IMAGE cat` keeps running).
        if !rec.config.stdin_once {
            out.extend(["--stdin-hold".into(), "1".into()]);
        }
    }
    if rec.tty() {
        out.extend([
            "--tty".into(),
            "1".into(),
            "--resize".into(),
            c.dir(&rec.id).join("resize.fifo").into_os_string(),
        ]);
        // The CLI gives the terminal's size at create (API 1.42+): apply it before
        // the process runs, so it never sees 0x0.
        let [h, w] = rec.host_config.console_size;
        if h > 0 && w > 0 {
            out.extend(["--size".into(), format!("{h}x{w}").into()]);
        }
    }
    out
}

/// `POST /containers/{id}/resize?h=&w=`: the new size goes to the shim.
pub(crate) async fn resize(job: Job, c: Arc<Containers>) -> Result<Reply> {
    let entry = c.find(job.args.required("name")?)?;
    let rec = entry.snapshot();
    let h = job.args.int("h")?.unwrap_or(0);
    let w = job.args.int("w")?.unwrap_or(0);
    if !(0..=u16::MAX as i64).contains(&h) || !(0..=u16::MAX as i64).contains(&w) {
        return Err(ApiError::invalid("invalid terminal size"));
    }
    if !rec.state.running {
        return Err(ApiError::conflict(format!(
            "Container {} is not running",
            rec.id
        )));
    }
    if !rec.tty() {
        return Ok(Reply::empty(200));
    }
    let fifo = c.dir(&rec.id).join("resize.fifo");
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        // Non-blocking: with no shim reading, fail instead of hanging.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)?;
        writeln!(f, "{h} {w}")
    })
    .await
    .map_err(sys)?
    .map_err(|e| ApiError::system(format!("resizing: {e}")))?;
    Ok(Reply::empty(200))
}

/// What the network subsystem needs to know of a container about to start.
fn net_request(c: &Containers, rec: &Record) -> Result<NetRequest> {
    let hc = &rec.host_config;
    let mut mode = rec.network_mode().to_string();
    if let Some(other) = mode.strip_prefix("container:") {
        let o = c.find(other)?.snapshot();
        if !o.state.running {
            return Err(ApiError::conflict(format!(
                "cannot join network of a non running container: {}",
                o.id
            )));
        }
        mode = format!("container:{}", o.id);
    }
    Ok(NetRequest {
        id: rec.id.clone(),
        name: rec.name.trim_start_matches('/').to_string(),
        mode,
        endpoints: rec.endpoints_config.clone(),
        port_bindings: hc.port_bindings.clone().unwrap_or_default(),
        exposed: rec.config.exposed(),
        publish_all: hc.publish_all_ports,
        dns: HostConfig::list(&hc.dns).to_vec(),
    })
}

fn docker_start_error(rec: &Record, code: i32, msg: &str) -> ApiError {
    let text = match code {
        127 => format!("failed to create task for container: exec: \"{}\": executable file not found in $PATH: unknown", rec.path),
        126 => format!("failed to create task for container: exec: \"{}\": permission denied: unknown", rec.path),
        _ => format!("failed to create task for container: {msg}"),
    };
    ApiError::new(
        if code == 125 {
            ErrorKind::System
        } else {
            ErrorKind::InvalidParameter
        },
        text,
    )
}

pub(crate) async fn start(job: Job, c: Arc<Containers>) -> Result<Reply> {
    let entry = c.find(job.args.required("name")?)?;
    start_entry(job.engine(), &c, &entry).await
}

async fn start_entry(engine: &Engine, c: &Arc<Containers>, entry: &Arc<Entry>) -> Result<Reply> {
    let rec = entry.snapshot();
    if rec.state.running {
        return Ok(Reply::empty(304));
    }
    // A start by the user lifts an earlier stop (restart policies see it again).
    entry
        .record
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .manually_stopped = false;
    let guard = entry.op.lock().await;
    if entry.watch.borrow().removed {
        return Err(ApiError::not_found(format!(
            "No such container: {}",
            rec.id
        )));
    }
    let result = start_inner(engine, c, entry, rec.clone()).await;
    drop(guard);
    // A --rm container that could not start goes away, as with dockerd; its
    // waiters (the CLI waits for "removed") are released.
    if result.is_err() && rec.auto_remove() {
        if let Err(e) = remove(engine, c, entry).await {
            tracing::warn!(container = %rec.id, error = %e.message, "removing a container that failed to start");
        }
    }
    result
}

async fn start_inner(
    engine: &Engine,
    c: &Arc<Containers>,
    entry: &Arc<Entry>,
    rec: Record,
) -> Result<Reply> {
    // A runtime removed from the daemon's configuration since the create.
    let runtime = c.runtime_args(entry)?;
    let net = match c.net() {
        Some(n) => Some(n.setup(net_request(c, &rec)?).await?),
        None => None,
    };
    let c2 = c.clone();
    let r2 = rec.clone();
    let n2 = net.clone();
    let prepared = tokio::task::spawn_blocking(move || prepare(&c2, &r2, n2.as_ref()))
        .await
        .map_err(sys)
        .and_then(|r| r);
    let bundle = match prepared {
        Ok(b) => b,
        Err(e) => {
            if let Some(n) = c.net() {
                n.teardown(rec.id.clone()).await;
            }
            return Err(e);
        }
    };
    let state_root = c.exec_root.join("state");
    let mut child = shim_command(&c.shim)
        .arg("--id")
        .arg(&rec.id)
        .arg("--bundle")
        .arg(&bundle)
        .arg("--state-root")
        .arg(&state_root)
        .arg("--log")
        .arg(&rec.log_path)
        .arg("--exit")
        .arg(bundle.join("exit.json"))
        .args(stdin_args(c, &rec))
        .args(runtime)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(false)
        .spawn()
        .map_err(|e| ApiError::system(format!("starting the shim: {e}")))?;
    let mut first = String::new();
    if let Some(out) = child.stdout.take() {
        let mut r = tokio::io::BufReader::new(out);
        let _ = tokio::time::timeout(Duration::from_secs(60), r.read_line(&mut first)).await;
    }
    let started: Value = serde_json::from_str(first.trim()).unwrap_or(Value::Null);
    let Some(pid) = started["pid"].as_i64() else {
        let msg = started["error"]
            .as_str()
            .unwrap_or("the shim did not start the container")
            .to_string();
        let code = started["exit_code"].as_i64().unwrap_or(125) as i32;
        let _ = child.wait().await;
        let c3 = c.clone();
        let id = rec.id.clone();
        let _ = tokio::task::spawn_blocking(move || cleanup(&c3, &id)).await;
        if let Some(n) = c.net() {
            n.teardown(rec.id.clone()).await;
        }
        unmount_volumes(c, &rec);
        let err = docker_start_error(&rec, code, &msg);
        let rec = {
            let mut r = entry.record.lock().unwrap_or_else(|p| p.into_inner());
            r.state.exit_code = code;
            r.state.error = err.message.clone();
            r.state.status = if r.state.started_at == crate::model::ZERO_TIME {
                "created".into()
            } else {
                "exited".into()
            };
            r.clone()
        };
        let _ = c.save(&rec);
        return Err(err);
    };
    let rec = {
        let mut r = entry.record.lock().unwrap_or_else(|p| p.into_inner());
        r.state.status = "running".into();
        r.state.running = true;
        r.state.pid = pid as i32;
        r.state.exit_code = 0;
        r.state.error.clear();
        r.state.restarting = false;
        r.state.paused = false;
        r.state.oom_killed = false;
        r.state.started_at = now();
        r.state.finished_at = crate::model::ZERO_TIME.into();
        r.shim_pid = child.id().map(|p| p as i32).unwrap_or(0);
        if let Some(n) = &net {
            r.network_settings = Some(n.settings.clone());
        }
        r.clone()
    };
    c.save(&rec)?;
    entry.watch.send_modify(|s| s.status = "running".into());
    volume_events(engine, &rec, "mount");
    crate::publish(engine.events(), &rec, "start", &[]);
    crate::health::start(engine, c, entry, true);
    let engine = engine.clone();
    let (c4, e4) = (c.clone(), entry.clone());
    tokio::spawn(async move {
        let _ = child.wait().await;
        exited(&engine, &c4, &e4).await;
    });
    Ok(Reply::empty(204))
}

/// The shim is gone: record the exit, clean up, publish `die`, maybe remove.
async fn exited(engine: &Engine, c: &Arc<Containers>, entry: &Arc<Entry>) {
    let id = entry.snapshot().id;
    let exit_path = c.run_dir(&id).join("exit.json");
    let rec_exit = ExitRecord::read(&exit_path).unwrap_or(ExitRecord {
        exit_code: 255,
        finished_at: now(),
        error: Some("the shim died".into()),
        pid: 0,
        oom_killed: false,
    });
    let c2 = c.clone();
    let id2 = id.clone();
    let _ = tokio::task::spawn_blocking(move || cleanup(&c2, &id2)).await;
    if let Some(n) = c.net() {
        n.teardown(id.clone()).await;
    }
    unmount_volumes(c, &entry.snapshot());
    let restart = !c.shutting_down() && should_restart(&entry.snapshot(), rec_exit.exit_code);
    let rec = {
        let mut r = entry.record.lock().unwrap_or_else(|p| p.into_inner());
        r.network_settings = None;
        r.state.status = if restart { "restarting" } else { "exited" }.into();
        r.state.restarting = restart;
        r.state.running = false;
        r.state.paused = false;
        r.state.pid = 0;
        r.state.exit_code = rec_exit.exit_code;
        r.state.oom_killed = rec_exit.oom_killed;
        r.state.finished_at = rec_exit.finished_at.clone();
        if let Some(h) = r.state.health.as_mut() {
            h.status = "unhealthy".into();
        }
        r.clone()
    };
    if let Err(e) = c.save(&rec) {
        tracing::error!(container = %id, error = %e.message, "saving exit state");
    }
    volume_events(engine, &rec, "unmount");
    if rec.state.oom_killed {
        crate::publish(engine.events(), &rec, "oom", &[]);
    }
    crate::publish(
        engine.events(),
        &rec,
        "die",
        &[("exitCode", rec.state.exit_code.to_string())],
    );
    entry.watch.send_modify(|s| {
        s.status = rec.state.status.clone();
        s.exit_code = rec.state.exit_code;
        s.exits += 1;
    });
    if restart {
        schedule_restart(engine, c, entry, &rec);
        return;
    }
    if rec.auto_remove() {
        if let Err(e) = remove(engine, c, entry).await {
            tracing::warn!(container = %id, error = %e.message, "auto-remove failed");
        }
    }
}

/// dockerd's `mount`/`unmount` volume events for a container's volumes.
fn volume_events(engine: &Engine, rec: &Record, action: &str) {
    for m in rec.mounts.iter().filter(|m| m.kind == "volume") {
        let mut attrs = std::collections::BTreeMap::new();
        attrs.insert("container".to_string(), rec.id.clone());
        attrs.insert("driver".to_string(), "local".to_string());
        if action == "mount" {
            attrs.insert("destination".to_string(), m.destination.clone());
            attrs.insert("propagation".to_string(), String::new());
            attrs.insert("read/write".to_string(), m.rw.to_string());
        }
        engine.events().publish("volume", action, &m.name, attrs);
    }
}

/// Stops every running container (a clean shutdown without live restore, as
/// dockerd does): each gets its stop signal, then SIGKILL after its timeout.
/// They are not marked as stopped by the user, so restart policies bring them
/// back with the daemon.
pub(crate) async fn stop_all(c: &Arc<Containers>) {
    let mut waits = Vec::new();
    for entry in c.all() {
        drop_pending_restart(c, &entry);
        waits.push(async move {
            // A restart already past its back-off holds the lock while it starts
            // the container: wait for it, then stop what it started.
            let _guard = entry.op.lock().await;
            let rec = entry.snapshot();
            if !rec.state.running {
                return;
            }
            let sig = rec
                .config
                .stop_signal()
                .and_then(|s| parse_signal(s).ok())
                .unwrap_or(Signal::SIGTERM);
            let timeout = rec.config.stop_timeout.unwrap_or(10).max(0) as u64;
            let exits = entry.watch.borrow().exits;
            let _ = send_signal(&rec, sig);
            if rec.state.paused {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(rec.state.pid),
                    Signal::SIGKILL,
                );
            }
            if !wait_exit(&entry, exits, Some(Duration::from_secs(timeout))).await {
                let _ = send_signal(&rec, Signal::SIGKILL);
                wait_exit(&entry, exits, Some(Duration::from_secs(10))).await;
            }
        });
    }
    futures_util::future::join_all(waits).await;
}

/// Docker's restart policies: `always`, `unless-stopped` and `on-failure[:max]`
/// restart a container that ended by itself (never one the user stopped).
fn should_restart(rec: &Record, exit_code: i32) -> bool {
    if rec.manually_stopped {
        return false;
    }
    let p = &rec.host_config.restart_policy;
    match p.name.as_str() {
        "always" | "unless-stopped" => true,
        "on-failure" => {
            let max = u64::try_from(p.maximum_retry_count).unwrap_or(0);
            exit_code != 0 && (max == 0 || rec.restart_count < max)
        }
        _ => false,
    }
}

/// Restarts after dockerd's back-off: 100 ms doubling on each restart, back to
/// 100 ms once a run lasted 10 s, at most a minute. A stop or removal meanwhile
/// cancels it.
fn schedule_restart(engine: &Engine, c: &Arc<Containers>, entry: &Arc<Entry>, rec: &Record) {
    let ran = time::OffsetDateTime::parse(
        &rec.state.finished_at,
        &time::format_description::well_known::Rfc3339,
    )
    .ok()
    .zip(
        time::OffsetDateTime::parse(
            &rec.state.started_at,
            &time::format_description::well_known::Rfc3339,
        )
        .ok(),
    )
    .map(|(f, s)| (f - s).whole_seconds())
    .unwrap_or(0);
    let cancel = tokio_util::sync::CancellationToken::new();
    let delay = {
        let mut r = entry.restart.lock().unwrap_or_else(|p| p.into_inner());
        r.delay = if ran >= 10 || r.delay.is_zero() {
            Duration::from_millis(100)
        } else {
            (r.delay * 2).min(Duration::from_secs(60))
        };
        r.cancel = Some(cancel.clone());
        r.delay
    };
    let (engine, c, entry) = (engine.clone(), c.clone(), entry.clone());
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = cancel.cancelled() => return,
        }
        let _guard = entry.op.lock().await;
        if entry.watch.borrow().removed || c.shutting_down() {
            return;
        }
        let rec = {
            let mut r = entry.record.lock().unwrap_or_else(|p| p.into_inner());
            if !r.state.restarting || r.manually_stopped {
                return;
            }
            r.restart_count += 1;
            r.clone()
        };
        if let Err(e) = start_inner(&engine, &c, &entry, rec).await {
            tracing::warn!(container = %entry.snapshot().id, error = %e.message, "restarting");
            let rec = {
                let mut r = entry.record.lock().unwrap_or_else(|p| p.into_inner());
                r.state.restarting = false;
                r.state.status = "exited".into();
                r.state.error = e.message.clone();
                r.clone()
            };
            let _ = c.save(&rec);
            entry.watch.send_modify(|s| s.status = "exited".into());
        }
    });
}

/// A shutdown's end of a pending restart: the container is left exited but not
/// stopped by the user, so its policy starts it when the daemon comes back.
fn drop_pending_restart(c: &Containers, entry: &Entry) {
    end_pending_restart(c, entry, false);
}

/// Cancels a pending restart; true if there was one.
pub(crate) fn cancel_restart(c: &Containers, entry: &Entry) -> bool {
    end_pending_restart(c, entry, true)
}

/// Ends a pending restart, the container left exited (`by_user`: as a stop by
/// the user, which restart policies then respect).
fn end_pending_restart(c: &Containers, entry: &Entry, by_user: bool) -> bool {
    let pending = entry
        .restart
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .cancel
        .take();
    let Some(t) = pending else { return false };
    t.cancel();
    let rec = {
        let mut r = entry.record.lock().unwrap_or_else(|p| p.into_inner());
        if !r.state.restarting {
            return false;
        }
        r.state.restarting = false;
        r.state.status = "exited".into();
        if by_user {
            r.manually_stopped = true;
        }
        r.clone()
    };
    let _ = c.save(&rec);
    entry.watch.send_modify(|s| s.status = "exited".into());
    true
}

/// Starts a container at daemon start-up (restart policies on boot).
pub(crate) async fn boot_start(engine: &Engine, c: &Arc<Containers>, entry: &Arc<Entry>) {
    let _guard = entry.op.lock().await;
    let rec = {
        let mut r = entry.record.lock().unwrap_or_else(|p| p.into_inner());
        r.manually_stopped = false;
        r.state.restarting = false;
        r.clone()
    };
    if let Err(e) = start_inner(engine, c, entry, rec).await {
        tracing::warn!(container = %entry.snapshot().id, error = %e.message, "starting on boot");
    }
}

/// Whether the shim of a container recorded as running is still there.
pub(crate) fn shim_alive(rec: &Record) -> bool {
    rec.shim_pid > 0
        && std::fs::read(format!("/proc/{}/cmdline", rec.shim_pid))
            .map(|c| String::from_utf8_lossy(&c).contains(&rec.id))
            .unwrap_or(false)
}

/// Waits (through a pidfd: the shim is not our child any more) for a restored
/// container's shim to exit, then records the exit as for any container.
pub(crate) fn watch_restored(engine: Engine, c: Arc<Containers>, entry: Arc<Entry>, shim_pid: i32) {
    tokio::spawn(async move {
        // Safety: pidfd_open takes a pid and flags and returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, shim_pid, 0) };
        if fd >= 0 {
            // Safety: a fresh fd from pidfd_open that nothing else owns.
            let owned =
                unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) };
            if let Ok(afd) = {
                // Safety: the fd is ours alone and lives inside the AsyncFd until
                // it is deregistered and closed with it.
                unsafe {
                    tokio::io::unix::AsyncFd::register_with_interest(
                        owned,
                        tokio::io::Interest::READABLE,
                    )
                }
            } {
                // A pidfd becomes readable when the process exits.
                let _ = afd.readable().await;
            }
        }
        exited(&engine, &c, &entry).await;
    });
}

/// A container recorded as running whose shim is gone: take its exit record if it
/// left one.
pub(crate) fn recover_exit(c: &Containers, rec: &mut Record) {
    let exit = ExitRecord::read(&c.run_dir(&rec.id).join("exit.json")).unwrap_or(ExitRecord {
        exit_code: 255,
        finished_at: now(),
        error: Some("the daemon lost the container".into()),
        pid: 0,
        oom_killed: false,
    });
    // Its processes may outlive the shim (they are in its cgroup).
    crate::reap::end(c, rec, &[]);
    rec.state.status = "exited".into();
    rec.state.running = false;
    rec.state.pid = 0;
    rec.state.exit_code = exit.exit_code;
    rec.state.finished_at = exit.finished_at;
    let _ = c.save(rec);
}

fn send_signal(rec: &Record, sig: Signal) -> Result<()> {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(rec.state.pid), sig)
        .map_err(|e| ApiError::system(format!("signalling {}: {e}", rec.short_id())))
}

/// Waits until the container has exited at least `exits` times.
async fn wait_exit(entry: &Entry, after: u64, timeout: Option<Duration>) -> bool {
    let mut rx = entry.watch.subscribe();
    let fut = rx.wait_for(|s| s.exits > after || s.removed);
    match timeout {
        Some(t) => tokio::time::timeout(t, fut).await.is_ok(),
        None => fut.await.is_ok(),
    }
}

pub(crate) async fn stop(job: Job, c: Arc<Containers>) -> Result<Reply> {
    let entry = c.find(job.args.required("name")?)?;
    if cancel_restart(&c, &entry) {
        event(&job, &entry.snapshot(), "stop", &[]);
        return Ok(Reply::empty(204));
    }
    if !entry.snapshot().state.running {
        return Ok(Reply::empty(304));
    }
    stop_entry(job.engine(), &c, &entry, &StopArgs::of(&job)?).await?;
    event(&job, &entry.snapshot(), "stop", &[]);
    Ok(Reply::empty(204))
}

/// What a stop takes from its job: `signal` and `t`.
struct StopArgs {
    signal: Option<Signal>,
    timeout: Option<i64>,
}

impl StopArgs {
    fn of(job: &Job) -> Result<StopArgs> {
        Ok(StopArgs {
            signal: match job.args.str("signal").filter(|s| !s.is_empty()) {
                Some(s) => Some(parse_signal(s)?),
                None => None,
            },
            timeout: job.args.int("t")?,
        })
    }
}

/// Stops a running container as `docker stop` does: the job's signal (else its
/// StopSignal, else SIGTERM), then SIGKILL after the timeout (`t`, else its
/// StopTimeout, else 10 s); returns once it has exited. Each signal is a `kill`
/// event, as dockerd publishes them.
async fn stop_entry(
    engine: &Engine,
    c: &Arc<Containers>,
    entry: &Arc<Entry>,
    args: &StopArgs,
) -> Result<()> {
    let rec = entry.snapshot();
    entry
        .record
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .manually_stopped = true;
    let sig = match (args.signal, rec.config.stop_signal()) {
        (Some(s), _) => s,
        (None, Some(s)) => parse_signal(s)?,
        (None, None) => Signal::SIGTERM,
    };
    let timeout = args.timeout.or(rec.config.stop_timeout).unwrap_or(10);
    let exits = entry.watch.borrow().exits;
    let kill = |sig: Signal| {
        let _ = send_signal(&rec, sig);
        crate::publish(
            engine.events(),
            &rec,
            "kill",
            &[("signal", (sig as i32).to_string())],
        );
    };
    kill(sig);
    // A frozen process handles no signal: thaw it, as dockerd does.
    if rec.state.paused {
        let _ = crate::ops::thaw(c, entry).await;
    }
    let graceful =
        timeout >= 0 && wait_exit(entry, exits, Some(Duration::from_secs(timeout as u64))).await;
    if !graceful {
        kill(Signal::SIGKILL);
        wait_exit(entry, exits, None).await;
    }
    Ok(())
}

/// `POST /containers/{id}/restart`: stopped as `docker stop` stops it (when it
/// runs), then started; one `restart` event, as dockerd publishes.
pub(crate) async fn restart(job: Job, c: Arc<Containers>) -> Result<Reply> {
    let entry = c.find(job.args.required("name")?)?;
    let args = StopArgs::of(&job)?;
    // A pending restart of its policy is replaced by this one.
    cancel_restart(&c, &entry);
    if entry.snapshot().state.running {
        stop_entry(job.engine(), &c, &entry, &args).await?;
    }
    let reply = start_entry(job.engine(), &c, &entry).await?;
    event(&job, &entry.snapshot(), "restart", &[]);
    Ok(if reply.status == 304 {
        Reply::empty(204)
    } else {
        reply
    })
}

pub(crate) async fn kill(job: Job, c: Arc<Containers>) -> Result<Reply> {
    let entry = c.find(job.args.required("name")?)?;
    let rec = entry.snapshot();
    let sig = parse_signal(
        job.args
            .str("signal")
            .filter(|s| !s.is_empty())
            .unwrap_or("SIGKILL"),
    )?;
    if !rec.state.running {
        return Err(ApiError::conflict(format!(
            "Container {} is not running",
            rec.id
        )));
    }
    let exits = entry.watch.borrow().exits;
    send_signal(&rec, sig)?;
    if rec.state.paused && sig == Signal::SIGKILL {
        let _ = crate::ops::thaw(&c, &entry).await;
    }
    event(&job, &rec, "kill", &[("signal", (sig as i32).to_string())]);
    // As dockerd: a SIGKILL is answered once the container is dead (its state
    // then says exited, 137); other signals are only delivered.
    if sig == Signal::SIGKILL && !wait_exit(&entry, exits, Some(Duration::from_secs(10))).await {
        tracing::warn!(container = %rec.id, "still running 10 s after SIGKILL");
    }
    Ok(Reply::empty(204))
}

pub(crate) async fn wait(mut job: Job, c: Arc<Containers>) -> Result<Reply> {
    let entry = c.find(job.args.required("name")?)?;
    let condition = job
        .args
        .str("condition")
        .filter(|s| !s.is_empty())
        .unwrap_or("not-running")
        .to_string();
    if !matches!(condition.as_str(), "not-running" | "next-exit" | "removed") {
        return Err(ApiError::invalid(format!(
            "invalid condition: \"{condition}\""
        )));
    }
    let mut rx = entry.watch.subscribe();
    // The headers go out now: the CLI waits for them before it starts the container.
    let out = job.stream("application/json", berth_engine::StreamKind::Raw)?;
    let start = rx.borrow().clone();
    let start_code = start.exit_code;
    let cond = condition.clone();
    let waiting = async move {
        match cond.as_str() {
            "not-running" => rx
                .wait_for(|s| s.status != "running" || s.removed)
                .await
                .map(|s| s.clone()),
            "next-exit" => rx
                .wait_for(|s| s.exits > start.exits || s.removed)
                .await
                .map(|s| s.clone()),
            _ => rx.wait_for(|s| s.removed).await.map(|s| s.clone()),
        }
    };
    // The client may go away (or the daemon stop) before the container does.
    let done = tokio::select! {
        d = waiting => d,
        _ = job.cancelled() => return Err(ApiError::cancelled()),
        _ = out.closed() => return Err(ApiError::cancelled()),
    };
    // A closed channel means the container went away: its last code stands.
    let code = done.map(|s| s.exit_code).unwrap_or(start_code);
    out.send_json(&json!({ "StatusCode": code, "Error": null }))
        .await?;
    Ok(Reply::empty(200))
}

async fn remove(engine: &Engine, c: &Arc<Containers>, entry: &Arc<Entry>) -> Result<()> {
    let v = entry.snapshot().auto_remove();
    remove_entry(engine, c, entry, v).await
}

/// Removes a container; with `volumes`, its anonymous volumes too (those no other
/// container uses), as `docker rm -v` and `--rm`.
pub(crate) async fn remove_entry(
    engine: &Engine,
    c: &Arc<Containers>,
    entry: &Arc<Entry>,
    volumes: bool,
) -> Result<()> {
    let _guard = entry.op.lock().await;
    if entry.watch.borrow().removed {
        return Ok(());
    }
    let rec = entry.snapshot();
    if rec.state.running {
        return Err(ApiError::conflict(format!(
            "You cannot remove a running container {}. Stop the container before attempting removal or force remove",
            rec.id
        )));
    }
    let c2 = c.clone();
    let r2 = rec.clone();
    tokio::task::spawn_blocking(move || {
        // Whatever it removes is ended: a shim or processes the daemon lost
        // track of would otherwise outlive the record.
        if crate::reap::has_leftovers(&c2, &r2) {
            let shims: Vec<i32> = shim_alive(&r2).then_some(r2.shim_pid).into_iter().collect();
            crate::reap::end(&c2, &r2, &shims);
        } else {
            cleanup(&c2, &r2.id);
        }
        std::fs::remove_dir_all(c2.dir(&r2.id)).map_err(sys)
    })
    .await
    .map_err(sys)??;
    c.forget(&rec.id, &rec.name);
    if volumes {
        if let Some(vs) = c.vols() {
            for m in rec
                .mounts
                .iter()
                .filter(|m| m.kind == "volume" && m.anonymous)
            {
                if c.volume_users(&m.name).is_empty() {
                    if let Err(e) = vs.remove(&m.name) {
                        tracing::warn!(volume = %m.name, error = %e.message, "removing an anonymous volume");
                    }
                }
            }
        }
    }
    crate::publish(engine.events(), &rec, "destroy", &[]);
    entry.watch.send_modify(|s| s.removed = true);
    Ok(())
}

pub(crate) async fn delete(job: Job, c: Arc<Containers>) -> Result<Reply> {
    if job.args.bool("link") {
        let name = job.args.required("name")?.to_string();
        let c2 = c.clone();
        tokio::task::spawn_blocking(move || crate::links::remove(&c2, &name))
            .await
            .map_err(sys)??;
        return Ok(Reply::empty(204));
    }
    let entry = c.find(job.args.required("name")?)?;
    if entry.snapshot().state.restarting {
        if !job.args.bool("force") {
            return Err(ApiError::conflict(format!(
                "You cannot remove a restarting container {}. Stop the container before attempting removal or force remove",
                entry.snapshot().id
            )));
        }
        cancel_restart(&c, &entry);
    }
    let rec = entry.snapshot();
    if rec.state.running {
        if !job.args.bool("force") {
            return Err(ApiError::conflict(format!(
                "You cannot remove a running container {}. Stop the container before attempting removal or force remove",
                rec.id
            )));
        }
        entry
            .record
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .manually_stopped = true;
        let exits = entry.watch.borrow().exits;
        let _ = send_signal(&rec, Signal::SIGKILL);
        if rec.state.paused {
            let _ = crate::ops::thaw(&c, &entry).await;
        }
        wait_exit(&entry, exits, Some(Duration::from_secs(30))).await;
    }
    if entry.watch.borrow().removed {
        return Ok(Reply::empty(204));
    }
    remove_entry(job.engine(), &c, &entry, job.args.bool("v")).await?;
    Ok(Reply::empty(204))
}

/// `POST /containers/{id}/rename?name=`.
pub(crate) async fn rename(job: Job, c: Arc<Containers>) -> Result<Reply> {
    // The path names the container as `id`: `name` is the query's new name.
    let entry = c.find(job.args.required("id")?)?;
    let new = job.args.str("name").unwrap_or("").to_string();
    if new.is_empty() {
        return Err(ApiError::invalid("Neither old nor new names may be empty"));
    }
    if !crate::names::valid(&new) {
        return Err(ApiError::invalid(format!(
            "Invalid container name ({new}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )));
    }
    let full = if new.starts_with('/') {
        new.clone()
    } else {
        format!("/{new}")
    };
    let old = entry.snapshot().name;
    if old == full {
        return Err(ApiError::invalid(
            "Renaming a container with the same name as its current name",
        ));
    }
    {
        let mut names = c.names.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(other) = names.get(&full) {
            return Err(ApiError::conflict(format!(
                "Conflict. The container name \"{full}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name."
            )));
        }
        let id = entry.snapshot().id;
        names.remove(&old);
        names.insert(full.clone(), id);
    }
    let rec = {
        let mut r = entry.record.lock().unwrap_or_else(|p| p.into_inner());
        r.name = full.clone();
        r.clone()
    };
    c.save(&rec)?;
    event(&job, &rec, "rename", &[("oldName", old)]);
    Ok(Reply::empty(204))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_resolve_from_passwd_and_group() {
        let d = tempfile_dir();
        std::fs::create_dir_all(d.join("etc")).expect("etc");
        std::fs::write(
            d.join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nwww:x:33:33::/var/www:/bin/false\n",
        )
        .expect("passwd");
        std::fs::write(
            d.join("etc/group"),
            "root:x:0:\nwww:x:33:\nstaff:x:50:www\n",
        )
        .expect("group");
        assert_eq!(resolve_user(&d, "").expect("root"), (0, 0, vec![0]));
        assert_eq!(
            resolve_user(&d, "www").expect("www"),
            (33, 33, vec![33, 50])
        );
        assert_eq!(
            resolve_user(&d, "1000:1000").expect("numeric"),
            (1000, 1000, vec![1000])
        );
        assert_eq!(
            resolve_user(&d, "www:staff").expect("group"),
            (33, 50, vec![50])
        );
        let e = resolve_user(&d, "nobody").expect_err("missing");
        assert_eq!(
            e.message,
            "unable to find user nobody: no matching entries in passwd file"
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    fn tempfile_dir() -> PathBuf {
        let mut b = [0u8; 8];
        let _ = getrandom::getrandom(&mut b);
        std::env::temp_dir().join(format!("berth-user-{}", hex::encode(b)))
    }

    #[test]
    fn signals_parse_like_docker() {
        assert_eq!(parse_signal("SIGTERM").expect("name"), Signal::SIGTERM);
        assert_eq!(parse_signal("kill").expect("short"), Signal::SIGKILL);
        assert_eq!(parse_signal("9").expect("number"), Signal::SIGKILL);
        assert!(parse_signal("NOPE").is_err());
    }
}
