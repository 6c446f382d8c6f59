//! Containers the daemon finds at start-up: is a recorded shim still there, and
//! the exit of one that is gone.

use berth_runtime::exit::{now, ExitRecord};

use crate::model::Record;
use crate::Containers;

/// Whether the shim of a container recorded as running is still there.
pub(crate) fn shim_alive(rec: &Record) -> bool {
    rec.shim_pid > 0
        && std::fs::read(format!("/proc/{}/cmdline", rec.shim_pid))
            .map(|c| String::from_utf8_lossy(&c).contains(&rec.id))
            .unwrap_or(false)
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
