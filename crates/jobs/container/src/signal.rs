//! Signals to a container's process (`docker kill`, `docker stop`) and waiting
//! for its exit.

use std::time::Duration;

use berth_api::{ApiError, Result};
use nix::sys::signal::Signal;

use crate::model::Record;
use crate::Entry;

pub(crate) fn parse_signal(s: &str) -> Result<Signal> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| ApiError::invalid(format!("Invalid signal: {s}")));
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    name.parse::<Signal>()
        .map_err(|_| ApiError::invalid(format!("Invalid signal: {s}")))
}

pub(crate) fn send_signal(rec: &Record, sig: Signal) -> Result<()> {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(rec.state.pid), sig)
        .map_err(|e| ApiError::system(format!("signalling {}: {e}", rec.short_id())))
}

/// Waits until the container has exited at least `exits` times.
pub(crate) async fn wait_exit(entry: &Entry, after: u64, timeout: Option<Duration>) -> bool {
    let mut rx = entry.watch.subscribe();
    let fut = rx.wait_for(|s| s.exits > after || s.removed);
    match timeout {
        Some(t) => tokio::time::timeout(t, fut).await.is_ok(),
        None => fut.await.is_ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_like_docker() {
        assert_eq!(parse_signal("SIGTERM").expect("name"), Signal::SIGTERM);
        assert_eq!(parse_signal("kill").expect("short"), Signal::SIGKILL);
        assert_eq!(parse_signal("9").expect("number"), Signal::SIGKILL);
        assert!(parse_signal("NOPE").is_err());
    }
}
