//! `berth-shim`: one per container. Starts the container with its runtime, copies its
//! stdout and stderr into the json-file log, reaps it and records how it ended.
//!
//! It is single-threaded on purpose: libcontainer clones its caller and keeps running
//! Rust in the child, which is only sound in a process without other threads. It runs
//! in its own session so the daemon can stop, crash or restart without taking the
//! container with it, and it makes itself the subreaper so that the container's init
//! is its child once libcontainer's intermediate process has exited.
//!
//! Usage: `berth-shim --id ID --bundle DIR --state-root DIR --log FILE --exit FILE
//! [--runc PATH] …` (the runtime: libcontainer, or a runc-compatible binary; see
//! [`oci`]); the arguments and the one report line it prints on stdout (then closes
//! stdout, unless `--attach` asks for the output there too: see [`copy`]) are the
//! protocol of `berth_runtime::shim`. The exit record lands in `--exit` when the
//! container ends.
//!
//! `berth-shim exec …` runs one more process in a running container (see [`exec`]).

use std::fs::OpenOptions;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};

use berth_runtime::exit::{now, ExitRecord};
use berth_runtime::logfile::{parse_size, Limits};
use berth_runtime::shim::{Report, StartArgs};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

mod attached;
mod copy;
mod enter;
mod exec;
mod monitor;
mod oci;
mod plan;
mod scope;

/// The shim's arguments (the protocol's [`StartArgs`]) and its log's limits.
struct Args {
    start: StartArgs,
    limits: Limits,
}

fn parse_args() -> Result<Args, String> {
    let start = StartArgs::parse(std::env::args().skip(1)).map_err(|e| e.to_string())?;
    let limits = Limits {
        max_size: start.log_max_size.as_deref().and_then(parse_size),
        max_file: start.log_max_file.unwrap_or(1),
    };
    Ok(Args { start, limits })
}

/// Docker's exit codes for a start that failed: 127 not found, 126 not executable.
fn start_failure_code(msg: &str) -> i32 {
    let m = msg.to_ascii_lowercase();
    if m.contains("not found") || m.contains("no such file") {
        127
    } else if m.contains("permission denied")
        || m.contains("not executable")
        || m.contains("exec format")
        // libcontainer's words for a file without execute permission.
        || m.contains("does not have correct permissions")
    {
        126
    } else {
        125
    }
}

fn report(r: Report) {
    let mut out = std::io::stdout();
    let _ = out.write_all(r.to_line().as_bytes());
    let _ = out.flush();
}

fn failed(error: String, exit_code: i32) -> Report {
    Report::Failed { error, exit_code }
}

fn main() {
    // Before anything else: never run from a binary a container could overwrite
    // (CVE-2019-5736). This re-executes from a sealed in-memory copy.
    if let Err(e) = pentacle::ensure_sealed() {
        report(failed(format!("sealing the shim: {e}"), 125));
        std::process::exit(1);
    }
    if std::env::args().nth(1).as_deref() == Some("monitor") {
        // The second half of a shim whose container already runs (see [`monitor`]).
        // Executed through /proc/self/exe, it would be called "exe" in `ps -e`.
        // Safety: prctl with a NUL-terminated name.
        unsafe { libc::prctl(libc::PR_SET_NAME, c"berth-shim".as_ptr(), 0, 0, 0) };
        std::process::exit(match monitor::Monitor::from_args() {
            Ok(m) => m.run(),
            Err(e) => {
                eprintln!("berth-shim monitor: {e}");
                2
            }
        });
    }
    if std::env::args().nth(1).as_deref() == Some("exec") {
        let _ = nix::unistd::setsid();
        // Safety: prctl with integer arguments only.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        std::process::exit(exec::main());
    }
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            report(failed(e, 125));
            std::process::exit(2);
        }
    };
    let _ = nix::unistd::setsid();
    // Safety: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    std::process::exit(run(args));
}

/// The container's stdin: the FIFO when given (opened without waiting for a writer;
/// the daemon opens its end at attach, before the start), else /dev/null.
fn open_stdin(fifo: Option<&std::path::Path>) -> Result<OwnedFd, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let Some(path) = fifo else {
        return std::fs::File::open("/dev/null")
            .map(OwnedFd::from)
            .map_err(|e| format!("/dev/null: {e}"));
    };
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    // Blocking again for the container: it should wait for input, not spin.
    let flags = nix::fcntl::fcntl(f.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFL)
        .map_err(|e| e.to_string())?;
    let flags = nix::fcntl::OFlag::from_bits_truncate(flags) & !nix::fcntl::OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(f.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(flags))
        .map_err(|e| e.to_string())?;
    Ok(OwnedFd::from(f))
}

/// A writer of the stdin FIFO that nothing writes through: while it is open,
/// readers of the FIFO never see end of file. Opened read-write, which needs no
/// reader to be there yet (with a terminal, the monitor opens the reading end
/// later); nothing reads through it either.
fn hold_open(fifo: &std::path::Path) -> Result<OwnedFd, String> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(fifo)
        .map(OwnedFd::from)
        .map_err(|e| format!("{}: {e}", fifo.display()))
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))
}

/// A pipe for the container's output: bigger than the default 64 KiB, so a
/// chatty process and the shim each run longer between wake-ups (pages are
/// only taken as data waits in it).
fn output_pipe() -> Result<(OwnedFd, OwnedFd), String> {
    let (r, w) = pipe()?;
    // Safety: F_SETPIPE_SZ on a descriptor we own; refused, the default stays.
    unsafe { libc::fcntl(r.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20) };
    Ok((r, w))
}

fn run(
    Args {
        start: args,
        limits,
    }: Args,
) -> i32 {
    let fail = |msg: String| -> i32 {
        let code = start_failure_code(&msg);
        let rec = ExitRecord {
            exit_code: code,
            finished_at: now(),
            error: Some(msg.clone()),
            pid: 0,
            oom_killed: false,
        };
        let _ = rec.write(&args.exit);
        report(failed(msg, code));
        1
    };
    // With a terminal, libcontainer hands the pty's master over a unix socket; the
    // connection waits in the listener's backlog until build() returns.
    let console = if args.tty {
        let path = args.bundle.join("console.sock");
        let _ = std::fs::remove_file(&path);
        // Bound by a relative name from inside the bundle: the absolute path can
        // be longer than a socket address allows (libcontainer connects the same way).
        if let Err(e) = std::env::set_current_dir(&args.bundle) {
            return fail(format!("console socket: {e}"));
        }
        match std::os::unix::net::UnixListener::bind("console.sock") {
            Ok(l) => Some((l, path)),
            Err(e) => return fail(format!("console socket: {e}")),
        }
    } else {
        None
    };
    let (out_r, out_w) = match output_pipe() {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let (err_r, err_w) = match output_pipe() {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let stdin_fifo = if args.tty {
        None
    } else {
        args.stdin.as_deref()
    };
    let stdin = match open_stdin(stdin_fifo) {
        Ok(f) => f,
        Err(e) => return fail(e),
    };
    let stdin_hold = match (&args.stdin, args.stdin_hold) {
        (Some(fifo), true) => match hold_open(fifo) {
            Ok(f) => Some(f),
            Err(e) => return fail(e),
        },
        _ => None,
    };
    let mut runtime = oci::select(args.runc.clone(), &args.id, &args.state_root);
    let io = match &console {
        Some((_, path)) => oci::Io::Console(path.clone()),
        None => oci::Io::Pipes {
            stdin,
            stdout: out_w,
            stderr: err_w,
        },
    };
    if let Err(e) = runtime.create(&args.bundle, io) {
        runtime.delete();
        return fail(e);
    }
    let master = match &console {
        Some((l, _)) => match receive_master(l) {
            Ok(m) => {
                if let Some((h, w)) = args.size {
                    set_size(&m, &format!("{h} {w}"));
                }
                Some(m)
            }
            Err(e) => {
                runtime.delete();
                return fail(format!("receiving the terminal: {e}"));
            }
        },
        None => None,
    };
    // Open before the daemon hears of the start: its first resize follows at once.
    let sizes = args.resize.as_deref().and_then(open_fifo);
    // Listening before the daemon hears of the start: an attach right after it
    // finds the socket. Without it, attaching clients follow the log.
    let listener = args.attach_socket.as_deref().and_then(|p| {
        berth_runtime::attachsock::listen(p)
            .map_err(|e| eprintln!("berth-shim: attach socket {}: {e}", p.display()))
            .ok()
    });
    let pid = match runtime.start() {
        Ok(p) => p,
        Err(e) => {
            runtime.delete();
            return fail(e);
        }
    };
    report(Report::Started { pid: pid.as_raw() });
    // The daemon reads one line; after it only the attach stream uses stdout.
    let attach = if args.attach {
        // Safety: fd 1 is our stdout, owned by nothing else in this process.
        let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(1) };
        // Room for several chunks, so the container rarely waits on the daemon's
        // wake-ups (the kernel keeps its default where it refuses).
        // Safety: F_SETPIPE_SZ on a descriptor we own.
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20) };
        Some(std::fs::File::from(fd))
    } else {
        let _ = nix::unistd::close(1);
        None
    };
    drop(runtime);
    let output = match master {
        Some(master) => {
            drop((out_r, err_r));
            monitor::Output::Tty {
                master,
                sizes,
                stdin: args.stdin.clone(),
            }
        }
        None => monitor::Output::Pipes {
            out: out_r,
            err: err_r,
        },
    };
    let m = monitor::Monitor {
        id: args.id,
        bundle: args.bundle,
        state_root: args.state_root,
        log: args.log,
        exit: args.exit,
        limits,
        runc: args.runc,
        pid,
        output,
        stdin_hold,
        attach,
        listener,
    };
    // From here on the shim only copies output and waits, for as long as the
    // container lives: a fresh image of itself does that with a fraction of the
    // memory set-up took.
    let m = m.exec_fresh();
    // Safety: malloc_trim only releases free heap memory.
    unsafe { libc::malloc_trim(0) };
    m.run()
}

/// Runs `f` (which forks the container's processes) with SIGPIPE at its default.
/// Rust ignores SIGPIPE at start-up and an ignored signal stays ignored across
/// exec: without this, `yes | head` in a container would never end. The shim
/// itself keeps ignoring it, so a vanished daemon cannot kill it.
pub(crate) fn with_default_sigpipe<T>(f: impl FnOnce() -> T) -> T {
    // Every ignored signal goes back to its default for the fork, then is restored.
    let ignored = default_signals();
    let out = f();
    for sig in ignored {
        kernel_sigaction(sig, Some(SIG_IGN));
    }
    out
}

/// Gives user `uid` the pipes or terminal behind a process's standard streams (the
/// links `DIR/0`, `DIR/1` and `DIR/2`, DIR a `/proc/PID/fd`), as runc does: a process
/// that is not root could not reopen them otherwise, and `echo > /dev/stdout` or a
/// log file linked to it would fail. `/dev/null` and what the user owns already are
/// left alone; a failure is ignored, as runc ignores it.
pub(crate) fn give_stdio(dir: &str, uid: u32) {
    if uid == 0 {
        return;
    }
    let Ok(null) = nix::sys::stat::stat("/dev/null") else {
        return;
    };
    for fd in 0..3 {
        let p = format!("{dir}/{fd}");
        let Ok(st) = nix::sys::stat::stat(p.as_str()) else {
            continue;
        };
        let is_null = st.st_rdev == null.st_rdev && st.st_mode & libc::S_IFMT == libc::S_IFCHR;
        if st.st_uid == uid || is_null {
            continue;
        }
        let _ = nix::unistd::chown(p.as_str(), Some(nix::unistd::Uid::from_raw(uid)), None);
    }
}

/// Sets every ignored signal (SIGPIPE from Rust's runtime, and whatever else this
/// process inherited, glibc's reserved 32 and 33 included, hence the raw syscall)
/// back to its default; returns which they were.
pub(crate) fn default_signals() -> Vec<i32> {
    let mut ignored = Vec::new();
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        if kernel_sigaction(sig, None) == Some(SIG_IGN) {
            kernel_sigaction(sig, Some(SIG_DFL));
            ignored.push(sig);
        }
    }
    ignored
}

const SIG_DFL: usize = 0;
const SIG_IGN: usize = 1;

/// The kernel's `struct sigaction` (x86_64 and aarch64 layout).
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

/// Reads a signal's handler, or sets it to `SIG_DFL`/`SIG_IGN` (no restorer is
/// needed for those). Returns the previous handler.
fn kernel_sigaction(sig: i32, set: Option<usize>) -> Option<usize> {
    let new = set.map(|h| KernelSigaction {
        handler: h,
        flags: 0,
        restorer: 0,
        mask: 0,
    });
    let mut old = KernelSigaction {
        handler: 0,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    let newp = new
        .as_ref()
        .map_or(std::ptr::null(), |n| n as *const KernelSigaction);
    // Safety: rt_sigaction with valid pointers to kernel-layout structs and the
    // kernel's sigset size.
    let r = unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            sig,
            newp,
            &mut old as *mut KernelSigaction,
            8usize,
        )
    };
    (r == 0).then_some(old.handler)
}

/// The container's cgroup path, from its spec.
fn cgroup_of(bundle: &std::path::Path) -> Option<String> {
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).ok()?).ok()?;
    spec["linux"]["cgroupsPath"].as_str().map(str::to_string)
}

/// Opens a FIFO read-write and non-blocking: the open never waits for a peer and
/// reads never see end of file.
fn open_fifo(p: &std::path::Path) -> Option<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(p)
        .ok()
}

/// Accepts libcontainer's connection on the console socket and takes the pty master.
fn receive_master(l: &std::os::unix::net::UnixListener) -> Result<OwnedFd, String> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let (conn, _) = l.accept().map_err(|e| e.to_string())?;
    let mut buf = [0u8; 4096];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| e.to_string())?;
    for c in msg.cmsgs().map_err(|e| e.to_string())? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(fd) = fds.first() {
                // Safety: SCM_RIGHTS gave us a new descriptor that nothing else owns.
                return Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(*fd) });
            }
        }
    }
    Err("no descriptor received".into())
}

fn set_size(master: &impl AsRawFd, line: &str) {
    let mut it = line
        .split_whitespace()
        .filter_map(|n| n.parse::<u16>().ok());
    if let (Some(rows), Some(cols)) = (it.next(), it.next()) {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // Safety: TIOCSWINSZ with a valid winsize on the pty master.
        unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    }
}

/// Reaps children until the container's init is among them; returns Docker's code.
fn wait_for(pid: Pid) -> i32 {
    loop {
        match waitpid(None, None) {
            Ok(WaitStatus::Exited(p, code)) if p == pid => return code,
            Ok(WaitStatus::Signaled(p, sig, _)) if p == pid => return 128 + sig as i32,
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                eprintln!("berth-shim: waitpid: {e}");
                return 255;
            }
        }
    }
}
