//! Restart policies: whether an exit restarts a container, and the pending
//! restart a stop, a removal or a shutdown ends.

use crate::model::Record;
use crate::{Containers, Entry};

/// Docker's restart policies: `always`, `unless-stopped` and `on-failure[:max]`
/// restart a container that ended by itself (never one the user stopped).
pub(crate) fn should_restart(rec: &Record, exit_code: i32) -> bool {
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

/// A shutdown's end of a pending restart: the container is left exited but not
/// stopped by the user, so its policy starts it when the daemon comes back.
pub(crate) fn drop_pending_restart(c: &Containers, entry: &Entry) {
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
