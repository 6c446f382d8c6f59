//! Health checks (`HEALTHCHECK` and `--health-*`): a probe run in the container
//! every interval, `State.Health` with the last five results, `health_status`
//! events and the `(healthy)` in `docker ps`, with dockerd's rules for the start
//! period, timeouts and retries.

use std::sync::Arc;
use std::time::Duration;

use berth_api::container::{Health, HealthConfig, HealthLog};
use berth_api::Result;
use berth_runtime::shim::Report as ShimReport;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use crate::exec::{exec_dir, Exec, ExecState};
use crate::exec_start::{dev_null, next_report, pipe, spawn_exec_shim, write_process};
use crate::sys;
use crate::{Containers, Entry};

const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_RETRIES: u64 = 3;
const MAX_OUTPUT: usize = 4096;
const MAX_LOG: usize = 5;

/// The probe command of a health check, or None when there is none (or `NONE`).
fn probe(hc: Option<&HealthConfig>) -> Option<Vec<String>> {
    let test = hc?.test.as_ref()?;
    match test.first().map(String::as_str) {
        Some("CMD") if test.len() > 1 => Some(test[1..].to_vec()),
        Some("CMD-SHELL") if test.len() > 1 => {
            Some(vec!["/bin/sh".into(), "-c".into(), test[1..].join(" ")])
        }
        _ => None,
    }
}

fn dur(v: Option<i64>, default: Duration) -> Duration {
    v.and_then(|n| u64::try_from(n).ok())
        .filter(|n| *n > 0)
        .map(Duration::from_nanos)
        .unwrap_or(default)
}

fn starting() -> Health {
    Health {
        status: "starting".into(),
        ..Default::default()
    }
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Starts monitoring a container that just started, if it has a health check.
/// `fresh`: the container just started (its health begins at `starting`); else
/// the daemon reconnected to it and its health carries on.
pub(crate) fn start(
    engine: &berth_engine::Engine,
    c: &Arc<Containers>,
    entry: &Arc<Entry>,
    fresh: bool,
) {
    let rec = entry.snapshot();
    let hc = rec.config.healthcheck.clone().unwrap_or_default();
    let Some(cmd) = probe(Some(&hc)) else {
        return;
    };
    let interval = dur(hc.interval, DEFAULT_INTERVAL);
    let timeout = dur(hc.timeout, DEFAULT_TIMEOUT);
    let start_period = dur(hc.start_period, Duration::ZERO);
    let retries = hc
        .retries
        .and_then(|n| u64::try_from(n).ok())
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_RETRIES);
    let rec = {
        let mut r = entry.record.lock().unwrap_or_else(|p| p.into_inner());
        if fresh || r.state.health.is_none() {
            r.state.health = Some(starting());
        }
        r.clone()
    };
    let _ = c.save(&rec);
    let (engine, c, entry) = (engine.clone(), c.clone(), entry.clone());
    let started = std::time::Instant::now();
    let exits = entry.watch.borrow().exits;
    tokio::spawn(async move {
        let mut rx = entry.watch.subscribe();
        loop {
            let ended = async {
                let _ = rx.wait_for(|s| s.exits > exits || s.removed).await;
            };
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = ended => return,
            }
            if entry.snapshot().state.paused {
                continue;
            }
            let begin = now();
            let res = run_captured(&c, &entry, cmd.clone(), timeout, MAX_OUTPUT).await;
            let (code, output) = match res {
                Ok(Some((code, out))) => (code, out),
                Ok(None) => (
                    -1,
                    format!("Health check exceeded timeout ({}s)", timeout.as_secs()),
                ),
                Err(e) => (-1, e.message),
            };
            if entry.watch.borrow().exits > exits {
                return;
            }
            c.health_counts
                .0
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if code != 0 {
                c.health_counts
                    .1
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            let in_start_period = started.elapsed() < start_period;
            let (rec, changed) = {
                let mut r = entry.record.lock().unwrap_or_else(|p| p.into_inner());
                let h = r.state.health.get_or_insert_with(starting);
                let before = h.status.clone();
                h.log.push(HealthLog {
                    start: begin,
                    end: now(),
                    exit_code: code.into(),
                    output,
                });
                if h.log.len() > MAX_LOG {
                    let extra = h.log.len() - MAX_LOG;
                    h.log.drain(..extra);
                }
                if code == 0 {
                    h.failing_streak = 0;
                    h.status = "healthy".into();
                } else if !in_start_period || before != "starting" {
                    h.failing_streak += 1;
                    if h.failing_streak as u64 >= retries {
                        h.status = "unhealthy".into();
                    }
                }
                let after = h.status.clone();
                (r.clone(), (before != after).then_some(after))
            };
            let _ = c.save(&rec);
            if let Some(status) = changed {
                crate::publish(
                    engine.events(),
                    &rec,
                    &format!("health_status: {status}"),
                    &[],
                );
            }
        }
    });
}

/// Runs `cmd` in a running container without an API exec session (health
/// checks): its exit code and up to `limit` bytes of its stdout and stderr. When
/// `timeout` passes first the process is killed and `None` is returned.
pub(crate) async fn run_captured(
    c: &Arc<Containers>,
    entry: &Arc<Entry>,
    cmd: Vec<String>,
    timeout: Duration,
    limit: usize,
) -> Result<Option<(i32, String)>> {
    let rec = entry.snapshot();
    let e = Arc::new(Exec {
        id: crate::create::random_id(),
        container: rec.id.clone(),
        cmd,
        env: Vec::new(),
        user: String::new(),
        workdir: String::new(),
        privileged: false,
        tty: false,
        stdin: false,
        stdout: true,
        stderr: true,
        detach_keys: String::new(),
        console_size: None,
        state: watch::channel(ExecState::default()).0,
    });
    let dir = exec_dir(c, &e);
    {
        let (c2, en2, e2, d2) = (c.clone(), entry.clone(), e.clone(), dir.clone());
        tokio::task::spawn_blocking(move || write_process(&c2, &en2, &e2, &d2))
            .await
            .map_err(sys)??;
    }
    let result = async {
        let (out_r, out_w) = pipe()?;
        let out_w2 = out_w.try_clone().map_err(sys)?;
        let stdio = [dev_null()?, out_w, out_w2];
        let (mut child, pid, mut lines) = match spawn_exec_shim(c, &e, &dir, None, stdio).await? {
            Ok(x) => x,
            Err(msg) => return Ok(Some((126, msg))),
        };
        let mut out = tokio::net::unix::pipe::Receiver::from_owned_fd(out_r).map_err(sys)?;
        let collect = async {
            let mut text = Vec::new();
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = out.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                if text.len() < limit {
                    let take = n.min(limit - text.len());
                    text.extend_from_slice(&buf[..take]);
                }
            }
            let code = match next_report(&mut lines).await {
                Some(ShimReport::Exited { exit_code }) => exit_code,
                _ => 126,
            };
            (code, String::from_utf8_lossy(&text).into_owned())
        };
        let res = tokio::time::timeout(timeout, collect).await;
        if res.is_err() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = child.wait().await;
        Ok(res.ok())
    }
    .await;
    let _ = tokio::fs::remove_dir_all(&dir).await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn probe_of(v: serde_json::Value) -> Option<Vec<String>> {
        probe(serde_json::from_value::<HealthConfig>(v).ok().as_ref())
    }

    #[test]
    fn probes_follow_docker_forms() {
        assert_eq!(
            probe_of(json!({"Test": ["CMD", "true"]})),
            Some(vec!["true".to_string()])
        );
        assert_eq!(
            probe_of(json!({"Test": ["CMD-SHELL", "exit 1"]})),
            Some(vec!["/bin/sh".to_string(), "-c".into(), "exit 1".into()])
        );
        assert_eq!(probe_of(json!({"Test": ["NONE"]})), None);
        assert_eq!(probe(None), None);
        assert_eq!(
            dur(Some(2_000_000_000), DEFAULT_INTERVAL),
            Duration::from_secs(2)
        );
        assert_eq!(dur(Some(0), DEFAULT_INTERVAL), DEFAULT_INTERVAL);
    }
}
