//! Runs one more process in a running container for the built-in runtime: what
//! `runc exec` does, written here rather than taken from libcontainer's tenant
//! builder, for one measured reason. The tenant builder moves its process into
//! the container's cgroups by writing its PID to each hierarchy's `cgroup.procs`;
//! on cgroup v1 that takes the kernel's global threadgroup lock for writing, which
//! waits for an RCU grace period: 5–16 ms on this kernel, most of a `docker exec`.
//! A single-threaded process that moves itself (`0` written to a v1 hierarchy's
//! `tasks`) does not take that lock (0.1 ms). The builder also forks twice and
//! parses mountinfo two dozen times on the way.
//!
//! The order of the steps is runc's and libcontainer's: cgroups, namespaces,
//! limits, session and terminal, no-new-privileges, user, seccomp (before the
//! capabilities are dropped when it needs CAP_SYS_ADMIN, last otherwise),
//! capabilities, working directory, execve. The namespaces are joined through a
//! pidfd of the container's init, all at once, so a recycled PID can never be
//! joined. The process is made dumpable-off until its execve, so nothing in the
//! container can look into it while it still holds the shim's descriptors.
//!
//! The differential test (`tests/api/runtimes.rs`) runs the same execs under runc
//! and requires the same credentials, capabilities, seccomp mode, limits, umask,
//! cgroups and descriptors.

use std::ffi::{CStr, CString};
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use berth_runtime::bpf::Bpf;
use caps::{CapSet, Capability, CapsHashSet};
use nix::unistd::Pid;
use serde_json::Value;

use super::oci::Io;

/// Everything the child needs, worked out before the fork so that the child only
/// makes system calls.
struct Plan {
    pidfd: OwnedFd,
    /// Namespaces the child joins itself.
    join: libc::c_int,
    /// Namespaces that only take effect for children (pid, time): joined by the
    /// shim before it forks.
    for_children: libc::c_int,
    /// `tasks` (v1) or `cgroup.procs` (v2) files of the init's cgroups this
    /// process is not in yet.
    cgroups: Vec<CString>,
    oom_score_adj: Option<i32>,
    rlimits: Vec<(libc::__rlimit_resource_t, u64, u64)>,
    no_new_privileges: bool,
    umask: libc::mode_t,
    cwd: CString,
    uid: libc::uid_t,
    gid: libc::gid_t,
    groups: Vec<libc::gid_t>,
    caps: Option<Caps>,
    bpf: Option<Bpf>,
    arg0: String,
    argv: Vec<CString>,
    envp: Vec<CString>,
    /// Where `arg0` is looked for, in order (the process's PATH).
    candidates: Vec<CString>,
}

struct Caps {
    bounding: CapsHashSet,
    effective: CapsHashSet,
    permitted: CapsHashSet,
    inheritable: CapsHashSet,
    ambient: CapsHashSet,
}

/// The namespaces of the OCI spec, by type.
const NAMESPACES: &[(&str, libc::c_int)] = &[
    ("mount", libc::CLONE_NEWNS),
    ("uts", libc::CLONE_NEWUTS),
    ("ipc", libc::CLONE_NEWIPC),
    ("network", libc::CLONE_NEWNET),
    ("cgroup", libc::CLONE_NEWCGROUP),
    ("user", libc::CLONE_NEWUSER),
    ("pid", libc::CLONE_NEWPID),
    ("time", libc::CLONE_NEWTIME),
];

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn cstring(s: &str, what: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("{what} contains a NUL byte"))
}

fn rlimit_resource(name: &str) -> Option<libc::__rlimit_resource_t> {
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

fn cap_set(process: &Value, name: &str) -> Result<CapsHashSet, String> {
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
fn cgroup_lines(text: &str) -> Vec<(&str, &str, &str)> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            Some((it.next()?, it.next()?, it.next()?))
        })
        .collect()
}

/// Where each cgroup hierarchy is mounted, from a mountinfo: (controllers or
/// `name=…` options for v1, empty for v2; mount root; mount point).
fn cgroup_mounts(mountinfo: &str) -> Vec<(Vec<String>, String, String)> {
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
fn unescape(s: &str) -> String {
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
fn cgroup_moves(init: &str, own: &str, mountinfo: &str) -> Result<Vec<String>, String> {
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
fn candidates(arg0: &str, env: &[String]) -> Vec<String> {
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

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

impl Plan {
    fn new(init: Pid, spec: &Value, process: &Value, bpf: Option<Bpf>) -> Result<Plan, String> {
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

/// Runs `process` (an OCI process object) in the container whose init is `init`
/// and whose spec is `spec`; returns its PID once it has executed its program, or
/// why it could not. The process is this shim's child.
pub fn exec(
    init: Pid,
    spec: &Value,
    process: &Value,
    bpf: Option<Bpf>,
    io: Io,
) -> Result<Pid, String> {
    let plan = Plan::new(init, spec, process, bpf)?;
    let (report_r, report_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    if plan.for_children != 0 {
        // Only this process's future children are affected: the shim itself stays
        // where it is.
        setns(&plan.pidfd, plan.for_children)
            .map_err(|e| format!("joining the container's PID namespace: {}", text(&e)))?;
    }
    // Safety: this process is single-threaded; the child makes system calls and
    // leaves with _exit or execve.
    let forked = unsafe { nix::unistd::fork() };
    match forked {
        Ok(nix::unistd::ForkResult::Child) => {
            // An ignored signal stays ignored across execve: the program starts
            // with none (Rust ignores SIGPIPE in the shim).
            super::default_signals();
            drop(report_r);
            let msg = child(&plan, io);
            let _ = nix::unistd::write(&report_w, msg.as_bytes());
            // Safety: leaving the child without running the parent's destructors.
            unsafe { libc::_exit(127) }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            drop(report_w);
            drop(io);
            let mut msg = String::new();
            let _ = std::fs::File::from(report_r).read_to_string(&mut msg);
            if msg.is_empty() {
                return Ok(child);
            }
            while let Err(nix::errno::Errno::EINTR) = nix::sys::wait::waitpid(child, None) {}
            Err(msg)
        }
        Err(e) => Err(format!("fork: {e}")),
    }
}

fn setns(fd: &OwnedFd, flags: libc::c_int) -> std::io::Result<()> {
    // Safety: setns on a pidfd we own.
    if unsafe { libc::setns(fd.as_raw_fd(), flags) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn os_err(what: &str) -> String {
    format!("{what}: {}", text(&std::io::Error::last_os_error()))
}

/// An error as runc words it ("no such file or directory"), without Rust's
/// "(os error N)".
fn text(e: &std::io::Error) -> String {
    let s = e.to_string();
    let s = s.split(" (os error").next().unwrap_or(&s);
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_lowercase().chain(c).collect())
        .unwrap_or_default()
}

/// Writes `data` to the file at `path` (a C path), as one write.
fn write_file(path: &CStr, data: &[u8]) -> Result<(), String> {
    // Safety: open with a valid C string.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(os_err(&path.to_string_lossy()));
    }
    // Safety: writing from a valid buffer to the descriptor just opened.
    let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
    let err = (n < 0).then(|| os_err(&path.to_string_lossy()));
    // Safety: closing the descriptor we opened.
    unsafe { libc::close(fd) };
    err.map_or(Ok(()), Err)
}

/// The child's side: every step up to the execve. Returns only with what failed.
fn child(plan: &Plan, io: Io) -> String {
    match prepare(plan, io) {
        Ok(()) => run(plan),
        Err(e) => e,
    }
}

fn prepare(plan: &Plan, io: Io) -> Result<(), String> {
    // Safety: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    let console = match io {
        Io::Pipes {
            stdin,
            stdout,
            stderr,
        } => {
            for (fd, to) in [(stdin, 0), (stdout, 1), (stderr, 2)] {
                // Safety: dup2 onto a standard descriptor.
                if unsafe { libc::dup2(fd.as_raw_fd(), to) } < 0 {
                    return Err(os_err("setting up stdio"));
                }
            }
            None
        }
        Io::Console(path) => Some(connect_console(&path)?),
    };
    // Nothing but 0, 1 and 2 crosses the execve.
    // Safety: close_range with CLOSE_RANGE_CLOEXEC only sets flags.
    if unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    } != 0
    {
        return Err(os_err("marking descriptors close-on-exec"));
    }
    if let Some(adj) = plan.oom_score_adj {
        write_file(c"/proc/self/oom_score_adj", adj.to_string().as_bytes())?;
    }
    for f in &plan.cgroups {
        write_file(f, b"0").map_err(|e| format!("joining the container's cgroup: {e}"))?;
    }
    if plan.join != 0 {
        setns(&plan.pidfd, plan.join)
            .map_err(|e| format!("joining the container's namespaces: {}", text(&e)))?;
    }
    for &(res, soft, hard) in &plan.rlimits {
        let l = libc::rlimit {
            rlim_cur: soft,
            rlim_max: hard,
        };
        // Safety: setrlimit with a valid struct.
        if unsafe { libc::setrlimit(res, &l) } != 0 {
            return Err(os_err("setting a resource limit"));
        }
    }
    // Safety: setsid has no arguments.
    if unsafe { libc::setsid() } < 0 {
        return Err(os_err("setsid"));
    }
    if let Some(sock) = console {
        terminal(sock)?;
    }
    if plan.no_new_privileges {
        // Safety: prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(os_err("setting no-new-privileges"));
        }
    }
    // Safety: umask cannot fail.
    unsafe { libc::umask(plan.umask) };
    Ok(())
}

/// The user, seccomp, capabilities, working directory and the program.
fn run(plan: &Plan) -> String {
    match credentials(plan) {
        Ok(()) => execute(plan),
        Err(e) => e,
    }
}

fn chdir(cwd: &CStr) -> std::io::Result<()> {
    // Safety: chdir with a valid C string.
    if unsafe { libc::chdir(cwd.as_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn credentials(plan: &Plan) -> Result<(), String> {
    let chdir_err = |e: std::io::Error| {
        format!(
            "chdir to cwd ({:?}) set in config.json failed: {}",
            plan.cwd.to_string_lossy(),
            text(&e)
        )
    };
    // First as root: a directory the user cannot reach but root can still works;
    // on a permission error again as the user (a volume owned by the user that
    // root may not enter, on some filesystems).
    let chdir_later = match chdir(&plan.cwd) {
        Ok(()) => false,
        Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES)) => true,
        Err(e) => return Err(chdir_err(e)),
    };
    super::give_stdio("/proc/self/fd", plan.uid);
    // Safety: raw set*id system calls, in a single-threaded process (glibc's
    // wrappers would signal other threads).
    unsafe {
        if !plan.groups.is_empty()
            && libc::syscall(libc::SYS_setgroups, plan.groups.len(), plan.groups.as_ptr()) != 0
        {
            return Err(os_err("setting supplementary groups"));
        }
        if libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0 {
            return Err(os_err("keeping capabilities"));
        }
        if libc::syscall(libc::SYS_setresgid, plan.gid, plan.gid, plan.gid) != 0 {
            return Err(os_err("setting the group ID"));
        }
        if libc::syscall(libc::SYS_setresuid, plan.uid, plan.uid, plan.uid) != 0 {
            return Err(os_err("setting the user ID"));
        }
    }
    if plan.uid != 0 {
        // Changing to a non-root user cleared the effective set; what follows
        // (loading seccomp, dropping capabilities) needs it.
        let permitted = caps::read(None, CapSet::Permitted).map_err(|e| e.to_string())?;
        caps::set(None, CapSet::Effective, &permitted)
            .map_err(|e| format!("restoring effective capabilities: {e}"))?;
    }
    // Safety: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) };
    if !plan.no_new_privileges {
        // Without no-new-privileges loading a filter needs CAP_SYS_ADMIN: before
        // the capabilities go.
        if let Some(bpf) = &plan.bpf {
            berth_runtime::bpf::load(bpf).map_err(|e| format!("loading seccomp: {e}"))?;
        }
    }
    if let Some(c) = &plan.caps {
        let err = |what: &str, e: caps::errors::CapsError| format!("{what}: {e}");
        for cap in caps::all() {
            if !c.bounding.contains(&cap)
                && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false)
            {
                caps::drop(None, CapSet::Bounding, cap)
                    .map_err(|e| err("dropping from the bounding set", e))?;
            }
        }
        caps::set(None, CapSet::Effective, &c.effective)
            .map_err(|e| err("setting effective capabilities", e))?;
        caps::set(None, CapSet::Permitted, &c.permitted)
            .map_err(|e| err("setting permitted capabilities", e))?;
        caps::set(None, CapSet::Inheritable, &c.inheritable)
            .map_err(|e| err("setting inheritable capabilities", e))?;
        caps::set(None, CapSet::Ambient, &c.ambient)
            .map_err(|e| err("setting ambient capabilities", e))?;
    }
    if chdir_later {
        chdir(&plan.cwd).map_err(chdir_err)?;
    }
    if plan.no_new_privileges {
        // As close to the execve as it can be: the filter applies to all that follows.
        if let Some(bpf) = &plan.bpf {
            berth_runtime::bpf::load(bpf).map_err(|e| format!("loading seccomp: {e}"))?;
        }
    }
    Ok(())
}

/// Executes the program, trying each place PATH names, as execvp does.
fn execute(plan: &Plan) -> String {
    let mut argv: Vec<*const libc::c_char> = plan.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = plan.envp.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    let mut denied = false;
    for path in &plan.candidates {
        // Safety: execve with NUL-terminated arrays of valid C strings.
        unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::ENOENT | libc::ENOTDIR) => {}
            Some(libc::EACCES) => denied = true,
            _ => return format!("exec: {:?}: {}", plan.arg0, std::io::Error::last_os_error()),
        }
    }
    if denied {
        format!("exec: {:?}: permission denied", plan.arg0)
    } else if plan.arg0.contains('/') {
        format!("exec: {:?}: no such file or directory", plan.arg0)
    } else {
        format!("exec: {:?}: executable file not found in $PATH", plan.arg0)
    }
}

/// Connects to the shim's console socket, by name from its directory (the
/// absolute path may be longer than a socket address allows).
fn connect_console(path: &Path) -> Result<OwnedFd, String> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(format!("bad console socket {}", path.display()));
    };
    std::env::set_current_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let s = std::os::unix::net::UnixStream::connect(name)
        .map_err(|e| format!("connecting to the console socket: {e}"))?;
    Ok(OwnedFd::from(s))
}

/// Makes a terminal in the container's devpts, sends its master to the shim and
/// makes its other end this process's controlling terminal and stdio.
fn terminal(sock: OwnedFd) -> Result<(), String> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    // Safety: open with a valid C string.
    let m = unsafe {
        libc::open(
            c"/dev/ptmx".as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if m < 0 {
        return Err(os_err("opening /dev/ptmx"));
    }
    // Safety: a fresh descriptor only we own.
    let master = unsafe { OwnedFd::from_raw_fd(m) };
    // What the container put at /dev/ptmx must be a real pty multiplexer, or the
    // shim would be handed something else to copy to and from.
    let mut sfs: libc::statfs = unsafe { std::mem::zeroed() };
    // Safety: fstatfs into a zeroed struct.
    if unsafe { libc::fstatfs(master.as_raw_fd(), &mut sfs) } != 0
        || sfs.f_type != libc::DEVPTS_SUPER_MAGIC
    {
        return Err("/dev/ptmx in the container is not a pty multiplexer".into());
    }
    let unlock: libc::c_int = 0;
    // Safety: TIOCSPTLCK with a pointer to an int; TIOCGPTPEER opens the peer of
    // this very master (never a path the container could swap).
    let s = unsafe {
        libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock);
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY,
        )
    };
    if s < 0 {
        return Err(os_err("opening the terminal"));
    }
    // Safety: a fresh descriptor only we own.
    let slave = unsafe { OwnedFd::from_raw_fd(s) };
    let fds = [master.as_raw_fd()];
    let iov = [std::io::IoSlice::new(b"/dev/ptmx")];
    sendmsg::<()>(
        sock.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(|e| format!("sending the terminal: {e}"))?;
    drop(master);
    drop(sock);
    // Safety: TIOCSCTTY and dup2 on the descriptor we own.
    unsafe {
        if libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) != 0 {
            return Err(os_err("setting the controlling terminal"));
        }
        for to in 0..3 {
            if libc::dup2(slave.as_raw_fd(), to) < 0 {
                return Err(os_err("setting up stdio"));
            }
        }
    }
    Ok(())
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
    fn errors_read_as_runc_words_them() {
        let e = std::io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(text(&e), "no such file or directory");
    }

    #[test]
    fn mountinfo_escapes_are_read() {
        assert_eq!(unescape("/a\\040b\\134c"), "/a b\\c");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("/end\\04"), "/end\\04");
    }
}
