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

use std::ffi::CStr;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use berth_runtime::bpf::Bpf;
use caps::CapSet;
use nix::unistd::Pid;
use serde_json::Value;

use super::oci::Io;
use crate::plan::Plan;

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
    let into = cgroup_dir(&plan);
    let (forked, born_inside) = fork_into(into.as_ref());
    match forked {
        Ok(nix::unistd::ForkResult::Child) => {
            // An ignored signal stays ignored across execve: the program starts
            // with none (Rust ignores SIGPIPE in the shim).
            super::default_signals();
            drop(report_r);
            let msg = child(&plan, io, born_inside);
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

/// On cgroup v2, the container's cgroup directory, for the child to be born in
/// it: writing a PID to v2's `cgroup.procs` takes the kernel's global
/// threadgroup lock for writing, as v1's `cgroup.procs` does (see above), and
/// v2 has no `tasks` file to move a thread by; clone3's `CLONE_INTO_CGROUP`
/// takes it only for reading.
fn cgroup_dir(plan: &Plan) -> Option<OwnedFd> {
    let [procs] = plan.cgroups.as_slice() else {
        return None;
    };
    let dir = procs.to_str().ok()?.strip_suffix("/cgroup.procs")?;
    let dir = std::ffi::CString::new(dir).ok()?;
    // Safety: open with a valid C string; the descriptor is ours.
    let fd = unsafe {
        libc::open(
            dir.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    // Safety: a fresh descriptor only we own.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `struct clone_args` of clone3(2), up to `cgroup` (kernel 5.7).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Forks, into the cgroup at `cgroup` when there is one and the kernel can
/// (clone3 with CLONE_INTO_CGROUP, like fork otherwise: no new stack, SIGCHLD
/// at exit); returns whether the child was born in it.
fn fork_into(cgroup: Option<&OwnedFd>) -> (nix::Result<nix::unistd::ForkResult>, bool) {
    if let Some(fd) = cgroup {
        let args = CloneArgs {
            flags: CLONE_INTO_CGROUP,
            exit_signal: libc::SIGCHLD as u64,
            cgroup: fd.as_raw_fd() as u64,
            ..Default::default()
        };
        // Safety: this process is single-threaded, so the child is a fork of
        // it; it makes system calls and leaves with _exit or execve.
        let r = unsafe {
            libc::syscall(
                libc::SYS_clone3,
                &args as *const CloneArgs,
                std::mem::size_of::<CloneArgs>(),
            )
        };
        match r {
            0 => return (Ok(nix::unistd::ForkResult::Child), true),
            pid if pid > 0 => {
                let child = Pid::from_raw(pid as libc::pid_t);
                return (Ok(nix::unistd::ForkResult::Parent { child }), true);
            }
            // An older kernel or a seccomp filter that refuses clone3: fork, and
            // the child writes cgroup.procs.
            _ => {}
        }
    }
    // Safety: as above.
    (unsafe { nix::unistd::fork() }, false)
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
fn child(plan: &Plan, io: Io, born_inside: bool) -> String {
    match prepare(plan, io, born_inside) {
        Ok(()) => run(plan),
        Err(e) => e,
    }
}

fn prepare(plan: &Plan, io: Io, born_inside: bool) -> Result<(), String> {
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
    for f in plan.cgroups.iter().filter(|_| !born_inside) {
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

    #[test]
    fn errors_read_as_runc_words_them() {
        let e = std::io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(text(&e), "no such file or directory");
    }
}
