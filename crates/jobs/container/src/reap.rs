//! Ending whatever a container left running that the daemon no longer tracks: a
//! shim whose start the daemon never heard the end of (it was killed between
//! spawning the shim and recording the container as running), processes left in
//! the container's cgroup, the cgroup itself, the rootfs mount and run state.
//!
//! At start-up every container that is not recorded as running must have none of
//! these; `rm` makes sure of the same, so that whatever it removes is ended.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::model::Record;
use crate::Containers;

/// The value after `--id` in a shim's NUL-separated command line, when that
/// command line names `state_root` (the shims of this daemon, no other's).
fn shim_container(cmdline: &[u8], state_root: &[u8]) -> Option<String> {
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let is_shim = args.first().is_some_and(|a| a.ends_with(b"berth-shim"));
    if !is_shim || !args.windows(2).any(|w| w == [b"--state-root", state_root]) {
        return None;
    }
    let id = args.windows(2).find(|w| w[0] == b"--id")?[1];
    Some(String::from_utf8_lossy(id).into_owned())
}

/// Every live shim of this daemon (container and exec shims), by container ID.
pub(crate) fn shims(c: &Containers) -> BTreeMap<String, Vec<i32>> {
    let state_root = c.exec_root.join("state");
    let state_root = state_root.as_os_str().as_encoded_bytes();
    let mut out: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        if let Some(id) = shim_container(&cmdline, state_root) {
            out.entry(id).or_default().push(pid);
        }
    }
    out
}

/// Kills `shims`, then everything in the container's cgroup, and removes the
/// cgroup, the rootfs mount and the run state. Blocking.
pub(crate) fn end(c: &Containers, rec: &Record, shims: &[i32]) {
    for &pid in shims {
        tracing::warn!(container = %rec.id, pid, "killing a shim the daemon does not track");
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let cg = crate::ops::cgroup(rec);
    if cg.exists() {
        if !cg.kill_all() {
            tracing::warn!(container = %rec.id, "processes left in the cgroup would not die");
        }
        cg.remove();
    }
    crate::bundle::cleanup(c, &rec.id);
}

/// Whether a container that is not running has anything left to end.
pub(crate) fn has_leftovers(c: &Containers, rec: &Record) -> bool {
    crate::ops::cgroup(rec).exists() || Path::new(&c.run_dir(&rec.id)).exists()
}

/// At start-up: ends what the containers not recorded as running left behind, and
/// shims of containers that have no record at all.
pub(crate) fn at_start(c: &Containers, records: &[Record]) {
    let mut shims = shims(c);
    let running: HashSet<&str> = records
        .iter()
        .filter(|r| r.state.running)
        .map(|r| r.id.as_str())
        .collect();
    for rec in records.iter().filter(|r| !r.state.running) {
        let orphans = shims.remove(&rec.id).unwrap_or_default();
        if !orphans.is_empty() || has_leftovers(c, rec) {
            tracing::info!(container = %rec.id, "ending what a container that is not running left behind");
            end(c, rec, &orphans);
        }
    }
    for (id, pids) in shims {
        if !running.contains(id.as_str()) {
            for pid in pids {
                tracing::warn!(container = %id, pid, "killing the shim of a container with no record");
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shims_are_told_apart_by_their_state_root() {
        let line = b"berth-shim\0--id\0abc\0--bundle\0/b\0--state-root\0/run/x/state\0";
        assert_eq!(
            shim_container(line, b"/run/x/state").as_deref(),
            Some("abc")
        );
        // Another daemon's shim.
        assert_eq!(shim_container(line, b"/run/y/state"), None);
        // An exec shim names its container too.
        let exec = b"/usr/bin/berth-shim\0exec\0--id\0c1\0--state-root\0/s\0--process\0p\0";
        assert_eq!(shim_container(exec, b"/s").as_deref(), Some("c1"));
        // Not a shim, even with the same words.
        let other = b"sleep\0--id\0abc\0--state-root\0/s\0";
        assert_eq!(shim_container(other, b"/s"), None);
        assert_eq!(shim_container(b"", b"/s"), None);
    }
}
