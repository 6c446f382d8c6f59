//! What an exec in the built-in runtime will do, read from the container's spec
//! and the exec's process before anything changes (see `enter` for why it is done
//! here): the namespaces to join through a pidfd of the container's init, the
//! cgroups to move into, limits, capabilities and the seccomp program.

use std::ffi::CString;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use berth_runtime::bpf::Bpf;
use caps::{Capability, CapsHashSet};
use nix::unistd::Pid;
use serde_json::Value;

/// Everything the child needs, worked out before the fork so that the child only
/// makes system calls.
pub(crate) struct Plan {
    pub(crate) pidfd: OwnedFd,
    /// Namespaces the child joins itself.
    pub(crate) join: libc::c_int,
    /// Namespaces that only take effect for children (pid, time): joined by the
    /// shim before it forks.
    pub(crate) for_children: libc::c_int,
    /// `tasks` (v1) or `cgroup.procs` (v2) files of the init's cgroups this
    /// process is not in yet.
    pub(crate) cgroups: Vec<CString>,
    pub(crate) oom_score_adj: Option<i32>,
    pub(crate) rlimits: Vec<(libc::__rlimit_resource_t, u64, u64)>,
    pub(crate) no_new_privileges: bool,
    pub(crate) umask: libc::mode_t,
    pub(crate) cwd: CString,
    pub(crate) uid: libc::uid_t,
    pub(crate) gid: libc::gid_t,
    pub(crate) groups: Vec<libc::gid_t>,
    pub(crate) caps: Option<Caps>,
    pub(crate) bpf: Option<Bpf>,
    pub(crate) arg0: String,
    pub(crate) argv: Vec<CString>,
    pub(crate) envp: Vec<CString>,
    /// Where `arg0` is looked for, in order (the process's PATH).
    pub(crate) candidates: Vec<CString>,
}

pub(crate) struct Caps {
    pub(crate) bounding: CapsHashSet,
    pub(crate) effective: CapsHashSet,
    pub(crate) permitted: CapsHashSet,
    pub(crate) inheritable: CapsHashSet,
    pub(crate) ambient: CapsHashSet,
}

/// The namespaces of the OCI spec, by type.
pub(crate) const NAMESPACES: &[(&str, libc::c_int)] = &[
    ("mount", libc::CLONE_NEWNS),
    ("uts", libc::CLONE_NEWUTS),
    ("ipc", libc::CLONE_NEWIPC),
    ("network", libc::CLONE_NEWNET),
    ("cgroup", libc::CLONE_NEWCGROUP),
    ("user", libc::CLONE_NEWUSER),
    ("pid", libc::CLONE_NEWPID),
    ("time", libc::CLONE_NEWTIME),
];

pub(crate) const DEFAULT_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub(crate) fn cstring(s: &str, what: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("{what} contains a NUL byte"))
}

pub(crate) fn rlimit_resource(name: &str) -> Option<libc::__rlimit_resource_t> {
    Some(match name {
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_RSS" => libc::RLIMIT_RSS,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        _ => return None,
    })
}

pub(crate) fn cap_set(process: &Value, name: &str) -> Result<CapsHashSet, String> {
    process["capabilities"][name]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let s = c.as_str().unwrap_or_default();
            s.parse::<Capability>()
                .map_err(|_| format!("unknown capability {s:?}"))
        })
        .collect()
}

/// One line of `/proc/PID/cgroup`: hierarchy ID, controllers, path.
pub(crate) fn cgroup_lines(text: &str) -> Vec<(&str, &str, &str)> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            Some((it.next()?, it.next()?, it.next()?))
        })
        .collect()
}

/// Where each cgroup hierarchy is mounted, from a mountinfo: (controllers or
/// `name=…` options for v1, empty for v2; mount root; mount point).
pub(crate) fn cgroup_mounts(mountinfo: &str) -> Vec<(Vec<String>, String, String)> {
    let mut out = Vec::new();
    for l in mountinfo.lines() {
        let Some((left, right)) = l.split_once(" - ") else {
            continue;
        };
        let f: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        let (Some(root), Some(point), Some(fstype)) = (f.get(3), f.get(4), r.first()) else {
            continue;
        };
        let point = unescape(point);
        match *fstype {
            "cgroup2" => out.push((Vec::new(), root.to_string(), point)),
            "cgroup" => {
                let opts = r.get(2).copied().unwrap_or("");
                let ctrls = opts
                    .split(',')
                    .filter(|o| !matches!(*o, "rw" | "ro"))
                    .map(str::to_string)
                    .collect();
                out.push((ctrls, root.to_string(), point));
            }
            _ => {}
        }
    }
    out
}

/// mountinfo escapes space, tab, newline and backslash as octal.
pub(crate) fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        if let (b'\\', Some(d)) = (b[i], octal) {
            let n = d.iter().fold(0u32, |n, c| n * 8 + u32::from(c - b'0'));
            if let Ok(n) = u8::try_from(n) {
                out.push(n);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The files to write `0` to so that a process lands in every cgroup `init` is
/// in and it is not: the v1 `tasks` file (a thread moving itself does not take the
/// global lock) or, for v2, `cgroup.procs`.
pub(crate) fn cgroup_moves(init: &str, own: &str, mountinfo: &str) -> Result<Vec<String>, String> {
    let mounts = cgroup_mounts(mountinfo);
    let own = cgroup_lines(own);
    let mut files = Vec::new();
    for (id, ctrls, path) in cgroup_lines(init) {
        if own
            .iter()
            .any(|(i, c, p)| *i == id && *c == ctrls && *p == path)
        {
            continue;
        }
        let wanted: Vec<&str> = ctrls.split(',').filter(|c| !c.is_empty()).collect();
        let v2 = wanted.is_empty();
        let mount = mounts.iter().find(|(opts, _, _)| {
            if v2 {
                opts.is_empty()
            } else {
                !opts.is_empty() && wanted.iter().all(|w| opts.iter().any(|o| o == w))
            }
        });
        let Some((_, root, point)) = mount else {
            return Err(format!(
                "the container's cgroup hierarchy {ctrls:?} is not mounted"
            ));
        };
        // A hierarchy mounted from below its root (inside a cgroup namespace).
        let rel = path
            .strip_prefix(root.as_str())
            .unwrap_or(path)
            .trim_start_matches('/');
        if rel.split('/').any(|c| c == "..") {
            return Err(format!("bad cgroup path {path:?}"));
        }
        let dir = Path::new(point).join(rel);
        files.push(
            dir.join(if v2 { "cgroup.procs" } else { "tasks" })
                .to_string_lossy()
                .into_owned(),
        );
    }
    Ok(files)
}

/// The program's paths to try, as execvp looks it up: a name with a slash as it
/// is, otherwise each directory of PATH.
pub(crate) fn candidates(arg0: &str, env: &[String]) -> Vec<String> {
    if arg0.contains('/') {
        return vec![arg0.to_string()];
    }
    let path = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    path.split(':')
        .map(|d| {
            if d.is_empty() {
                arg0.to_string()
            } else {
                format!("{}/{arg0}", d.trim_end_matches('/'))
            }
        })
        .collect()
}

pub(crate) fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

impl Plan {
    pub(crate) fn new(
        init: Pid,
        spec: &Value,
        process: &Value,
        bpf: Option<Bpf>,
    ) -> Result<Plan, String> {
        // Safety: pidfd_open with a PID and no flags returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, init.as_raw(), 0) };
        if fd < 0 {
            return Err(format!(
                "the container's process {init} is gone: {}",
                std::io::Error::last_os_error()
            ));
        }
        // Safety: a fresh descriptor only we own.
        let pidfd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };

        let read = |p: &str| std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}"));
        let init_cgroups = read(&format!("/proc/{init}/cgroup"))?;
        // The PID is the container's only while it is in the container's cgroup;
        // from here on the pidfd holds on to that process.
        if let Some(want) = spec["linux"]["cgroupsPath"].as_str() {
            let want = berth_runtime::cgpath::dir_of(want);
            let want = want.trim_matches('/');
            if !cgroup_lines(&init_cgroups)
                .iter()
                .any(|(_, _, p)| p.trim_matches('/') == want)
            {
                return Err(format!("the container's process {init} is gone"));
            }
        }
        let cgroups = cgroup_moves(
            &init_cgroups,
            &read("/proc/self/cgroup")?,
            &read("/proc/self/mountinfo")?,
        )?
        .iter()
        .map(|f| cstring(f, "a cgroup path"))
        .collect::<Result<_, _>>()?;

        let (mut join, mut for_children) = (0, 0);
        for ns in spec["linux"]["namespaces"].as_array().into_iter().flatten() {
            let t = ns["type"].as_str().unwrap_or_default();
            let flag = NAMESPACES
                .iter()
                .find(|(n, _)| *n == t)
                .map(|(_, f)| *f)
                .ok_or_else(|| format!("unknown namespace type {t:?}"))?;
            if flag == libc::CLONE_NEWPID || flag == libc::CLONE_NEWTIME {
                for_children |= flag;
            } else {
                join |= flag;
            }
        }

        let rlimits = process["rlimits"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                let t = r["type"].as_str().unwrap_or_default();
                let res = rlimit_resource(t).ok_or_else(|| format!("unknown rlimit {t:?}"))?;
                Ok((
                    res,
                    r["soft"].as_u64().unwrap_or(0),
                    r["hard"].as_u64().unwrap_or(0),
                ))
            })
            .collect::<Result<_, String>>()?;
        let caps = match process.get("capabilities") {
            Some(c) if c.is_object() => Some(Caps {
                bounding: cap_set(process, "bounding")?,
                effective: cap_set(process, "effective")?,
                permitted: cap_set(process, "permitted")?,
                inheritable: cap_set(process, "inheritable")?,
                ambient: cap_set(process, "ambient")?,
            }),
            _ => None,
        };
        for (field, what) in [
            ("apparmorProfile", "AppArmor profiles"),
            ("selinuxLabel", "SELinux labels"),
        ] {
            if process[field].as_str().is_some_and(|s| !s.is_empty()) {
                return Err(format!("{what} are not supported by this runtime"));
            }
        }

        let args = strings(&process["args"]);
        let arg0 = args
            .first()
            .cloned()
            .ok_or("the process has no arguments")?;
        let env = strings(&process["env"]);
        let user = &process["user"];
        let id = |v: &Value| u32::try_from(v.as_u64().unwrap_or(0)).map_err(|_| "bad user ID");
        Ok(Plan {
            pidfd,
            join,
            for_children,
            cgroups,
            oom_score_adj: process["oomScoreAdj"].as_i64().map(|v| v as i32),
            rlimits,
            no_new_privileges: process["noNewPrivileges"] == true,
            umask: user["umask"].as_u64().map_or(0o022, |m| m as libc::mode_t),
            cwd: cstring(
                process["cwd"].as_str().unwrap_or("/"),
                "the working directory",
            )?,
            uid: id(&user["uid"])?,
            gid: id(&user["gid"])?,
            groups: user["additionalGids"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|g| g.as_u64().and_then(|g| u32::try_from(g).ok()))
                .collect(),
            caps,
            bpf,
            argv: args
                .iter()
                .map(|a| cstring(a, "an argument"))
                .collect::<Result<_, _>>()?,
            envp: env
                .iter()
                .map(|e| cstring(e, "an environment variable"))
                .collect::<Result<_, _>>()?,
            candidates: candidates(&arg0, &env)
                .iter()
                .map(|c| cstring(c, "the program's path"))
                .collect::<Result<_, _>>()?,
            arg0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
24 1 0:22 / / rw,relatime - ext4 /dev/vda rw
30 24 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
32 30 0:28 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
33 30 0:29 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
34 30 0:30 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
35 30 0:31 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
36 30 0:32 /sub /sys/fs/cgroup/net\\040x rw,relatime - cgroup cgroup rw,net_cls,net_prio
";

    #[test]
    fn moves_only_into_the_cgroups_the_process_is_not_in() {
        let init = "\
9:net_cls,net_prio:/sub/berth/c1
4:memory:/berth/c1
3:cpuacct:/berth/c1
2:cpu:/berth/c1
1:name=systemd:/shim
0::/daemon
";
        let own = "\
9:net_cls,net_prio:/sub
4:memory:/
3:cpuacct:/
2:cpu:/berth/c1
1:name=systemd:/shim
0::/daemon
";
        let files = cgroup_moves(init, own, MOUNTINFO).expect("moves");
        assert_eq!(
            files,
            [
                "/sys/fs/cgroup/net x/berth/c1/tasks",
                "/sys/fs/cgroup/memory/berth/c1/tasks",
                "/sys/fs/cgroup/cpuacct/berth/c1/tasks",
            ]
        );
        // v2: the process file, the only one v2 has.
        let files = cgroup_moves("0::/berth/c1\n", "0::/daemon\n", MOUNTINFO).expect("v2");
        assert_eq!(files, ["/sys/fs/cgroup/unified/berth/c1/cgroup.procs"]);
        // A hierarchy that is not mounted, or a path that climbs out, is refused.
        assert!(cgroup_moves("5:pids:/berth/c1\n", "", MOUNTINFO).is_err());
        assert!(cgroup_moves("4:memory:/../../etc\n", "", MOUNTINFO).is_err());
    }

    #[test]
    fn the_program_is_looked_up_as_execvp_does() {
        let env = vec!["A=1".to_string(), "PATH=/usr/bin::/bin/".to_string()];
        assert_eq!(candidates("ls", &env), ["/usr/bin/ls", "ls", "/bin/ls"]);
        assert_eq!(candidates("./x", &env), ["./x"]);
        assert_eq!(candidates("/bin/sh", &[]), ["/bin/sh"]);
        assert_eq!(candidates("sh", &[]).len(), DEFAULT_PATH.split(':').count());
    }

    #[test]
    fn mountinfo_escapes_are_read() {
        assert_eq!(unescape("/a\\040b\\134c"), "/a b\\c");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("/end\\04"), "/end\\04");
    }
}
