//! `berth-shim exec`: one process of a `docker exec`, joined to a running container
//! by the container's runtime (libcontainer's tenant builder, or `runc exec`).
//!
//! Usage: `berth-shim exec --id ID --state-root DIR --process FILE --dir DIR
//! [--tty 1 --resize FIFO --size RxC] [--runc PATH]`. The process's stdin, stdout and stderr are
//! this shim's own descriptors 0, 1 and 2, handed straight to it (so without a
//! terminal no byte passes through the shim); with a terminal the shim copies
//! between them and the pty. Descriptor 3 is the report channel: a
//! `berth_runtime::shim::Report` line when the process started (or failed to),
//! then one when it ended.

use berth_runtime::shim::{ExecArgs, Report};
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::oci;

fn parse() -> Result<ExecArgs, String> {
    ExecArgs::parse(std::env::args().skip(2)).map_err(|e| e.to_string())
}

/// The report channel (the protocol's [`Report`] lines).
struct Channel(std::fs::File);

impl Channel {
    fn send(&mut self, r: Report) {
        // One write: the daemon reads whole lines.
        let _ = self.0.write_all(r.to_line().as_bytes());
    }
}

fn failed(error: String) -> Report {
    Report::Failed {
        error,
        exit_code: 126,
    }
}

fn dup(fd: i32) -> Result<OwnedFd, String> {
    // Safety: F_DUPFD_CLOEXEC returns a new descriptor or -1.
    let n = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if n < 0 {
        return Err(format!("dup {fd}: {}", std::io::Error::last_os_error()));
    }
    // Safety: a fresh descriptor only we own.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

/// Points descriptors 0, 1 and 2 at /dev/null so that only the process holds the
/// daemon's pipes and their ends mean its end.
fn release_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..3 {
            // Safety: dup2 onto the standard descriptors.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
}

pub fn main() -> i32 {
    // Safety: descriptor 3 is the report pipe the daemon set up for us.
    let report = unsafe { std::fs::File::from_raw_fd(3) };
    // Nothing we start may inherit it: only our own exit ends it.
    // Safety: F_SETFD on a descriptor we own.
    unsafe { libc::fcntl(3, libc::F_SETFD, libc::FD_CLOEXEC) };
    let mut report = Channel(report);
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            report.send(failed(e));
            return 2;
        }
    };
    let fail = |report: &mut Channel, msg: String| -> i32 {
        report.send(failed(msg));
        reap_all();
        1
    };
    let console = if args.tty {
        let path = args.dir.join("console.sock");
        let _ = std::fs::remove_file(&path);
        // A relative name: the absolute path may not fit a socket address.
        if let Err(e) = std::env::set_current_dir(&args.dir) {
            return fail(&mut report, format!("console socket: {e}"));
        }
        match std::os::unix::net::UnixListener::bind("console.sock") {
            Ok(l) => Some((l, path)),
            Err(e) => return fail(&mut report, format!("console socket: {e}")),
        }
    } else {
        None
    };
    let io = match &console {
        Some((_, path)) => Ok(oci::Io::Console(path.clone())),
        None => (|| {
            Ok(oci::Io::Pipes {
                stdin: dup(0)?,
                stdout: dup(1)?,
                stderr: dup(2)?,
            })
        })(),
    };
    let mut runtime = oci::select(args.runc.clone(), &args.id, &args.state_root);
    let pid = match io.and_then(|io| runtime.exec(&args.process, &args.dir, io)) {
        Ok(p) => p,
        Err(e) => return fail(&mut report, e),
    };
    let master = match &console {
        Some((l, _)) => match super::receive_master(l) {
            Ok(m) => {
                if let Some((h, w)) = args.size {
                    super::set_size(&m, &format!("{h} {w}"));
                }
                Some(m)
            }
            Err(e) => {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                return fail(&mut report, format!("receiving the terminal: {e}"));
            }
        },
        None => None,
    };
    let sizes = args.resize.as_deref().and_then(super::open_fifo);
    report.send(Report::Started { pid: pid.as_raw() });
    if let Some(m) = master {
        let input = dup(0).ok().map(std::fs::File::from);
        let out = dup(1).ok().map(std::fs::File::from);
        release_stdio();
        let mut to = super::attached::Attached::new(out, None);
        super::copy::copy_tty(m, input, sizes, true, &mut to, |_| {});
    } else {
        release_stdio();
    }
    let code = super::wait_for(pid);
    report.send(Report::Exited { exit_code: code });
    0
}

/// Reaps every child left: a process that failed to start is ours (we are its
/// subreaper) and must not linger as a zombie in the container.
fn reap_all() {
    loop {
        match nix::sys::wait::waitpid(None, None) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return,
            Ok(_) => {}
        }
    }
}
