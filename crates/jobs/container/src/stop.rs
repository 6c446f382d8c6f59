//! `docker stop`, `restart`, `kill` and `wait`, and stopping everything at a
//! shutdown without live restore.

use std::sync::Arc;
use std::time::Duration;

use berth_api::{ApiError, Result};
use berth_engine::{Engine, Job, Reply};
use nix::sys::signal::Signal;
use serde_json::json;

use crate::policy::{cancel_restart, drop_pending_restart};
use crate::run::start_entry;
use crate::signal::{parse_signal, send_signal, wait_exit};
use crate::{event, Containers, Entry};

/// Stops every running container (a clean shutdown without live restore, as
/// dockerd does): each gets its stop signal, then SIGKILL after its timeout.
/// They are not marked as stopped by the user, so restart policies bring them
/// back with the daemon.
pub(crate) async fn stop_all(c: &Arc<Containers>) {
    let mut waits = Vec::new();
    for entry in c.all() {
        drop_pending_restart(c, &entry);
        waits.push(async move {
            // A restart already past its back-off holds the lock while it starts
            // the container: wait for it, then stop what it started.
            let _guard = entry.op.lock().await;
            let rec = entry.snapshot();
            if !rec.state.running {
                return;
            }
            let sig = rec
                .config
                .stop_signal()
                .and_then(|s| parse_signal(s).ok())
                .unwrap_or(Signal::SIGTERM);
            let timeout = rec.config.stop_timeout.unwrap_or(10).max(0) as u64;
            let exits = entry.watch.borrow().exits;
            let _ = send_signal(&rec, sig);
            if rec.state.paused {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(rec.state.pid),
                    Signal::SIGKILL,
                );
            }
            if !wait_exit(&entry, exits, Some(Duration::from_secs(timeout))).await {
                let _ = send_signal(&rec, Signal::SIGKILL);
                wait_exit(&entry, exits, Some(Duration::from_secs(10))).await;
            }
        });
    }
    futures_util::future::join_all(waits).await;
}

/// dockerd's shutdown wait: `--shutdown-timeout`, but at least each running
/// container's stop timeout and 5 s of grace; `None`: no limit (a negative one).
pub(crate) fn shutdown_wait(c: &Containers, shutdown_timeout: i64) -> Option<Duration> {
    let mut secs = u64::try_from(shutdown_timeout).ok()?;
    for entry in c.all() {
        let rec = entry.snapshot();
        if !rec.state.running {
            continue;
        }
        let t = u64::try_from(rec.config.stop_timeout.unwrap_or(10)).ok()?;
        secs = secs.max(t + 5);
    }
    Some(Duration::from_secs(secs))
}

pub(crate) async fn stop(job: Job, c: Arc<Containers>) -> Result<Reply> {
    let entry = c.find(job.args.required("name")?)?;
    if cancel_restart(&c, &entry) {
        // A restart already past its back-off holds the lock while it starts
        // the container, and the cancel came too late for it: wait for it,
        // then stop what it started.
        drop(entry.op.lock().await);
        if !entry.snapshot().state.running {
            event(&job, &entry.snapshot(), "stop", &[]);
            return Ok(Reply::empty(204));
        }
    }
    if !entry.snapshot().state.running {
        return Ok(Reply::empty(304));
    }
    stop_entry(job.engine(), &c, &entry, &StopArgs::of(&job)?).await?;
    event(&job, &entry.snapshot(), "stop", &[]);
    Ok(Reply::empty(204))
}

/// What a stop takes from its job: `signal` and `t`.
pub(crate) struct StopArgs {
    pub(crate) signal: Option<Signal>,
    pub(crate) timeout: Option<i64>,
}

impl StopArgs {
    fn of(job: &Job) -> Result<StopArgs> {
        Ok(StopArgs {
            signal: match job.args.str("signal").filter(|s| !s.is_empty()) {
                Some(s) => Some(parse_signal(s)?),
                None => None,
            },
            timeout: job.args.int("t")?,
        })
    }
}

/// Stops a running container as `docker stop` does: the job's signal (else its
/// StopSignal, else SIGTERM), then SIGKILL after the timeout (`t`, else its
/// StopTimeout, else 10 s); returns once it has exited. Each signal is a `kill`
/// event, as dockerd publishes them.
pub(crate) async fn stop_entry(
    engine: &Engine,
    c: &Arc<Containers>,
    entry: &Arc<Entry>,
    args: &StopArgs,
) -> Result<()> {
    let rec = entry.snapshot();
    entry
        .record
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .manually_stopped = true;
    let sig = match (args.signal, rec.config.stop_signal()) {
        (Some(s), _) => s,
        (None, Some(s)) => parse_signal(s)?,
        (None, None) => Signal::SIGTERM,
    };
    let timeout = args.timeout.or(rec.config.stop_timeout).unwrap_or(10);
    let exits = entry.watch.borrow().exits;
    let kill = |sig: Signal| {
        let _ = send_signal(&rec, sig);
        crate::publish(
            engine.events(),
            &rec,
            "kill",
            &[("signal", (sig as i32).to_string())],
        );
    };
    kill(sig);
    // A frozen process handles no signal: thaw it, as dockerd does.
    if rec.state.paused {
        let _ = crate::ops::thaw(c, entry).await;
    }
    let graceful =
        timeout >= 0 && wait_exit(entry, exits, Some(Duration::from_secs(timeout as u64))).await;
    if !graceful {
        kill(Signal::SIGKILL);
        wait_exit(entry, exits, None).await;
    }
    Ok(())
}

/// `POST /containers/{id}/restart`: stopped as `docker stop` stops it (when it
/// runs), then started; one `restart` event, as dockerd publishes.
pub(crate) async fn restart(job: Job, c: Arc<Containers>) -> Result<Reply> {
    let entry = c.find(job.args.required("name")?)?;
    let args = StopArgs::of(&job)?;
    // A pending restart of its policy is replaced by this one.
    cancel_restart(&c, &entry);
    if entry.snapshot().state.running {
        stop_entry(job.engine(), &c, &entry, &args).await?;
    }
    let reply = start_entry(job.engine(), &c, &entry).await?;
    event(&job, &entry.snapshot(), "restart", &[]);
    Ok(if reply.status == 304 {
        Reply::empty(204)
    } else {
        reply
    })
}

pub(crate) async fn kill(job: Job, c: Arc<Containers>) -> Result<Reply> {
    let entry = c.find(job.args.required("name")?)?;
    let rec = entry.snapshot();
    let sig = parse_signal(
        job.args
            .str("signal")
            .filter(|s| !s.is_empty())
            .unwrap_or("SIGKILL"),
    )?;
    if !rec.state.running {
        return Err(ApiError::conflict(format!(
            "Container {} is not running",
            rec.id
        )));
    }
    let exits = entry.watch.borrow().exits;
    send_signal(&rec, sig)?;
    if rec.state.paused && sig == Signal::SIGKILL {
        let _ = crate::ops::thaw(&c, &entry).await;
    }
    event(&job, &rec, "kill", &[("signal", (sig as i32).to_string())]);
    // As dockerd: a SIGKILL is answered once the container is dead (its state
    // then says exited, 137); other signals are only delivered.
    if sig == Signal::SIGKILL && !wait_exit(&entry, exits, Some(Duration::from_secs(10))).await {
        tracing::warn!(container = %rec.id, "still running 10 s after SIGKILL");
    }
    Ok(Reply::empty(204))
}

pub(crate) async fn wait(mut job: Job, c: Arc<Containers>) -> Result<Reply> {
    let entry = c.find(job.args.required("name")?)?;
    let condition = job
        .args
        .str("condition")
        .filter(|s| !s.is_empty())
        .unwrap_or("not-running")
        .to_string();
    if !matches!(condition.as_str(), "not-running" | "next-exit" | "removed") {
        return Err(ApiError::invalid(format!(
            "invalid condition: \"{condition}\""
        )));
    }
    let mut rx = entry.watch.subscribe();
    // The headers go out now: the CLI waits for them before it starts the container.
    let out = job.stream("application/json", berth_engine::StreamKind::Raw)?;
    let start = rx.borrow().clone();
    let start_code = start.exit_code;
    let cond = condition.clone();
    let waiting = async move {
        match cond.as_str() {
            "not-running" => rx
                .wait_for(|s| s.status != "running" || s.removed)
                .await
                .map(|s| s.clone()),
            "next-exit" => rx
                .wait_for(|s| s.exits > start.exits || s.removed)
                .await
                .map(|s| s.clone()),
            _ => rx.wait_for(|s| s.removed).await.map(|s| s.clone()),
        }
    };
    // The client may go away (or the daemon stop) before the container does.
    let done = tokio::select! {
        d = waiting => d,
        _ = job.cancelled() => return Err(ApiError::cancelled()),
        _ = out.closed() => return Err(ApiError::cancelled()),
    };
    // A closed channel means the container went away: its last code stands.
    let code = done.map(|s| s.exit_code).unwrap_or(start_code);
    out.send_json(&json!({ "StatusCode": code, "Error": null }))
        .await?;
    Ok(Reply::empty(200))
}
