//! Named network namespaces: a file bind-mounted from a namespace, as `ip netns`
//! does, so a namespace outlives the thread that made it and the daemon itself.
//!
//! The daemon is multi-threaded, so namespaces are entered only by short-lived
//! threads of our own: `unshare` and `setns` act on the calling thread alone.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

use crate::{Error, Result};

fn err(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::Netns {
        path: path.display().to_string(),
        msg: msg.to_string(),
    }
}

/// Creates a new network namespace pinned at `path` (whose directory must exist).
pub fn create(path: &Path) -> Result<()> {
    std::fs::File::create(path).map_err(|e| err(path, e))?;
    let p: PathBuf = path.to_path_buf();
    let res = std::thread::spawn(move || -> Result<()> {
        unshare(CloneFlags::CLONE_NEWNET).map_err(|e| err(&p, format!("unshare: {e}")))?;
        mount(
            Some("/proc/thread-self/ns/net"),
            &p,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| err(&p, format!("bind mount: {e}")))
    })
    .join()
    .map_err(|_| err(path, "namespace thread panicked"))?;
    if res.is_err() {
        let _ = std::fs::remove_file(path);
    }
    res
}

/// Unpins and removes a namespace file; the namespace goes when its last process
/// does, taking its interfaces (and so the peers of its veths) with it.
pub fn remove(path: &Path) -> Result<()> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(err(path, format!("unmount: {e}"))),
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(err(path, e)),
    }
}

/// Whether `path` pins a namespace (it is a mount point of an nsfs).
pub fn exists(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .map(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
        .unwrap_or(false)
}

/// Runs `f` on a fresh thread inside the namespace at `path`.
pub fn run_in<R: Send + 'static>(
    path: &Path,
    f: impl FnOnce() -> Result<R> + Send + 'static,
) -> Result<R> {
    let ns = std::fs::File::open(path).map_err(|e| err(path, e))?;
    let p = path.to_path_buf();
    std::thread::spawn(move || -> Result<R> {
        setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| err(&p, format!("setns: {e}")))?;
        f()
    })
    .join()
    .map_err(|_| err(path, "namespace thread panicked"))?
}
