//! The long part of a shim's life: copying the container's output into its log,
//! waiting for it, recording how it ended and deleting its runtime state.
//!
//! Starting a container touches most of libcontainer; watching it needs a few
//! pages. So once the container runs, the shim executes itself again (the same
//! sealed binary) as `berth-shim monitor`, handing over the descriptors by number:
//! the fresh image maps only what the copy loop uses, and the heap set-up left
//! behind goes with the old image. The PID stays (the container is still our
//! child, the subreaper setting survives execve), so nothing outside notices.
//! Should the exec fail, the same loop runs in the original image.

use std::ffi::{CString, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use berth_runtime::exit::{now, ExitRecord};
use berth_runtime::logfile::{parse_size, Limits};
use nix::unistd::Pid;

use super::oci;

/// OOM kills in the container's cgroup, followed while it runs (v2). With the
/// systemd driver the scope's cgroup goes as soon as its last process exits,
/// often before the monitor could read the count after `waitpid`; the kernel
/// notifies inotify watchers of `memory.events` when it changes (containerd
/// follows it the same way). A thread with a small stack blocks on the watch,
/// niced up: under load it must read the file between the kill and systemd's
/// removal of the cgroup, which nothing else orders.
struct OomWatch {
    count: Arc<AtomicU64>,
    /// Closed by the thread when it stops (the cgroup's removal ends the watch).
    done: std::sync::mpsc::Receiver<()>,
}

impl OomWatch {
    fn start(cgroups_path: &str) -> Option<OomWatch> {
        use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
        let cg = berth_runtime::cgroups::Cgroup::new(cgroups_path);
        if !berth_runtime::cgroups::is_v2() {
            return None;
        }
        let ino = Inotify::init(InitFlags::IN_CLOEXEC).ok()?;
        ino.add_watch(&cg.oom_events_file(), AddWatchFlags::IN_MODIFY)
            .ok()?;
        let count = Arc::new(AtomicU64::new(cg.oom_kills().unwrap_or(0)));
        let c = count.clone();
        let (tx, done) = std::sync::mpsc::channel::<()>();
        std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(move || {
                let _tx = tx;
                // SAFETY: setpriority on this thread's own id; a failure
                // (no CAP_SYS_NICE) only leaves the default priority.
                unsafe {
                    libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, -15);
                }
                loop {
                    match ino.read_events() {
                        Ok(events) => {
                            if let Some(n) = cg.oom_kills() {
                                c.fetch_max(n, Ordering::SeqCst);
                            }
                            if events
                                .iter()
                                .any(|e| e.mask.contains(AddWatchFlags::IN_IGNORED))
                            {
                                return;
                            }
                        }
                        Err(nix::errno::Errno::EINTR) => {}
                        Err(_) => return,
                    }
                }
            })
            .ok()?;
        Some(OomWatch { count, done })
    }

    /// Whether the container was OOM-killed, asked once it has exited. A
    /// cgroup still there answers itself; a removed one ends the watch, so
    /// the thread has then read whatever it was woken for.
    fn killed(self, cg: Option<&berth_runtime::cgroups::Cgroup>) -> bool {
        if let Some(n) = cg.and_then(|cg| cg.oom_kills()) {
            return n > 0 || self.count.load(Ordering::SeqCst) > 0;
        }
        let _ = self.done.recv_timeout(std::time::Duration::from_secs(2));
        self.count.load(Ordering::SeqCst) > 0
    }
}

/// What the container's output arrives on.
pub enum Output {
    Pipes {
        out: OwnedFd,
        err: OwnedFd,
    },
    Tty {
        master: OwnedFd,
        /// The resize FIFO, already open (the daemon's first resize may be in it).
        sizes: Option<std::fs::File>,
        /// The stdin FIFO, opened by the monitor.
        stdin: Option<PathBuf>,
    },
}

pub struct Monitor {
    pub id: String,
    pub bundle: PathBuf,
    pub state_root: PathBuf,
    pub log: PathBuf,
    pub exit: PathBuf,
    pub limits: Limits,
    pub runc: Option<PathBuf>,
    pub pid: Pid,
    pub output: Output,
    /// A writer of the stdin FIFO held for the container's life (`OpenStdin`
    /// without `StdinOnce`): its stdin then never ends, attached or not.
    pub stdin_hold: Option<OwnedFd>,
    /// The stream to the client attached before the start (the shim's stdout).
    pub attach: Option<std::fs::File>,
    /// The attach socket, for clients that come while the container runs.
    pub listener: Option<std::os::unix::net::UnixListener>,
}

impl Monitor {
    /// Copies, waits, records, deletes. Returns the shim's exit code.
    pub fn run(self) -> i32 {
        let _hold = self.stdin_hold;
        let ooms = super::cgroup_of(&self.bundle).and_then(|cg| OomWatch::start(&cg));
        let attached = super::attached::Attached::new(self.attach, self.listener);
        match self.output {
            Output::Tty {
                master,
                sizes,
                stdin,
            } => super::copy::copy_tty_to_log(
                &self.log,
                self.limits,
                master,
                stdin.as_deref(),
                sizes,
                attached,
            ),
            Output::Pipes { out, err } => {
                super::copy::copy_output(&self.log, self.limits, out, err, attached)
            }
        }
        let code = super::wait_for(self.pid);
        // Read before the runtime removes the cgroup with the container's state.
        let cg = super::cgroup_of(&self.bundle).map(|cg| berth_runtime::cgroups::Cgroup::new(&cg));
        let oom_killed = match ooms {
            Some(w) => w.killed(cg.as_ref()),
            None => cg.and_then(|cg| cg.oom_kills()).is_some_and(|n| n > 0),
        };
        let rec = ExitRecord {
            exit_code: code,
            finished_at: now(),
            error: None,
            pid: self.pid.as_raw(),
            oom_killed,
        };
        if let Err(e) = rec.write(&self.exit) {
            eprintln!("berth-shim: writing {}: {e}", self.exit.display());
        }
        if let Some(cg) = super::cgroup_of(&self.bundle) {
            // With a PID namespace of its own the kernel has killed the rest
            // already; sharing the host's (`--pid host`), exec'd processes would
            // outlive the container and keep its cgroup from being removed, so
            // they get runc's `kill --all`.
            berth_runtime::cgroups::Cgroup::new(&cg).kill_all();
        }
        oci::select(self.runc, &self.id, &self.state_root).delete();
        0
    }

    /// Executes this binary again as `berth-shim monitor`; returns only when
    /// that failed, with the monitor to run here instead.
    pub fn exec_fresh(self) -> Monitor {
        let mut argv: Vec<OsString> = vec!["berth-shim".into(), "monitor".into()];
        let mut arg = |k: &str, v: OsString| {
            argv.push(k.into());
            argv.push(v);
        };
        arg("--id", self.id.clone().into());
        arg("--bundle", self.bundle.clone().into());
        arg("--state-root", self.state_root.clone().into());
        arg("--log", self.log.clone().into());
        arg("--exit", self.exit.clone().into());
        arg("--pid", self.pid.as_raw().to_string().into());
        if let Some(n) = self.limits.max_size {
            arg("--log-max-size", n.to_string().into());
        }
        arg("--log-max-file", self.limits.max_file.to_string().into());
        if let Some(r) = &self.runc {
            arg("--runc", r.clone().into());
        }
        let mut keep: Vec<i32> = Vec::new();
        if let Some(h) = &self.stdin_hold {
            arg("--stdin-hold-fd", h.as_raw_fd().to_string().into());
            keep.push(h.as_raw_fd());
        }
        if let Some(a) = &self.attach {
            arg("--attach-fd", a.as_raw_fd().to_string().into());
            keep.push(a.as_raw_fd());
        }
        if let Some(l) = &self.listener {
            arg("--listen-fd", l.as_raw_fd().to_string().into());
            keep.push(l.as_raw_fd());
        }
        match &self.output {
            Output::Pipes { out, err } => {
                arg("--out-fd", out.as_raw_fd().to_string().into());
                arg("--err-fd", err.as_raw_fd().to_string().into());
                keep.extend([out.as_raw_fd(), err.as_raw_fd()]);
            }
            Output::Tty {
                master,
                sizes,
                stdin,
            } => {
                arg("--tty-fd", master.as_raw_fd().to_string().into());
                keep.push(master.as_raw_fd());
                if let Some(s) = sizes {
                    arg("--resize-fd", s.as_raw_fd().to_string().into());
                    keep.push(s.as_raw_fd());
                }
                if let Some(p) = stdin {
                    arg("--stdin", p.clone().into());
                }
            }
        }
        let c_argv: Vec<CString> = argv
            .iter()
            .filter_map(|a| CString::new(a.as_bytes()).ok())
            .collect();
        if c_argv.len() == argv.len() {
            // Nothing else crosses: libcontainer 0.7 leaves its connection to
            // systemd's private socket open, and without close-on-exec. Held by a
            // monitor that never reads it, it would take every job signal systemd
            // sends for the container's life, slowing systemd for every client.
            // Safety: close_range with CLOSE_RANGE_CLOEXEC only sets flags.
            unsafe {
                libc::syscall(
                    libc::SYS_close_range,
                    3u32,
                    u32::MAX,
                    libc::CLOSE_RANGE_CLOEXEC,
                )
            };
            for fd in &keep {
                // Safety: F_SETFD on descriptors this process owns.
                unsafe { libc::fcntl(*fd, libc::F_SETFD, 0) };
            }
            // Only returns on failure.
            let _ = nix::unistd::execv(c"/proc/self/exe", &c_argv);
            for fd in &keep {
                // Safety: as above.
                unsafe { libc::fcntl(*fd, libc::F_SETFD, libc::FD_CLOEXEC) };
            }
        }
        self
    }

    /// The monitor as `berth-shim monitor …` describes it.
    pub fn from_args() -> Result<Monitor, String> {
        let mut v = std::collections::HashMap::new();
        let mut it = std::env::args_os().skip(2);
        while let Some(k) = it.next() {
            let val = it
                .next()
                .ok_or_else(|| format!("{} needs a value", k.to_string_lossy()))?;
            v.insert(k.to_string_lossy().into_owned(), val);
        }
        let path = |k: &str| -> Result<PathBuf, String> {
            v.get(k)
                .map(PathBuf::from)
                .ok_or_else(|| format!("{k} is required"))
        };
        let text = |k: &str| v.get(k).map(|s| s.to_string_lossy().into_owned());
        // Safety (for the closures below): the numbers name descriptors the
        // shim handed over across its exec; nothing else in this image owns them.
        let fd = |k: &str| -> Option<OwnedFd> {
            let n: i32 = text(k)?.parse().ok()?;
            // Nothing this image starts may inherit them.
            // Safety: F_SETFD on a descriptor we own.
            unsafe { libc::fcntl(n, libc::F_SETFD, libc::FD_CLOEXEC) };
            // Safety: see above.
            Some(unsafe { OwnedFd::from_raw_fd(n) })
        };
        let output = match (fd("--tty-fd"), fd("--out-fd"), fd("--err-fd")) {
            (Some(master), _, _) => Output::Tty {
                master,
                sizes: fd("--resize-fd").map(std::fs::File::from),
                stdin: v.get("--stdin").map(PathBuf::from),
            },
            (None, Some(out), Some(err)) => Output::Pipes { out, err },
            _ => return Err("no output descriptors".into()),
        };
        Ok(Monitor {
            id: text("--id").ok_or("--id is required")?,
            bundle: path("--bundle")?,
            state_root: path("--state-root")?,
            log: path("--log")?,
            exit: path("--exit")?,
            limits: Limits {
                max_size: text("--log-max-size").and_then(|s| parse_size(&s)),
                max_file: text("--log-max-file")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(1),
            },
            runc: v.get("--runc").map(PathBuf::from),
            stdin_hold: fd("--stdin-hold-fd"),
            attach: fd("--attach-fd").map(std::fs::File::from),
            listener: fd("--listen-fd").map(std::os::unix::net::UnixListener::from),
            pid: Pid::from_raw(
                text("--pid")
                    .and_then(|p| p.parse().ok())
                    .ok_or("--pid is required")?,
            ),
            output,
        })
    }
}
