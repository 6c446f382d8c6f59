//! `docker start`: the shim spawned on a prepared bundle, its first report read,
//! the container's exit recorded when the shim ends, and the restarts its policy
//! asks for (after a back-off, on boot, and for containers found running at
//! start-up).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use berth_api::container::HostConfig;
use berth_api::network::NetRequest;
use berth_api::{ApiError, ErrorKind, Result};
use berth_engine::{Engine, Job, Reply};
use berth_runtime::exit::{now, ExitRecord};
use berth_runtime::shim::{Report, StartArgs};

use crate::bundle::unmount_volumes;
use crate::launcher::Spawned;
use crate::model::Record;
use crate::policy::should_restart;
use crate::remove::remove;
use crate::sys;
use crate::{Containers, Entry};

/// The shim's arguments for a container about to start from `bundle`.
fn shim_args(c: &Containers, rec: &Record, bundle: &Path, runc: Option<PathBuf>) -> StartArgs {
    // What the log keeps: the driver's rotation, checked at create.
    let (log_max_size, log_max_file) =
        crate::LogConfig::of_host_config(&rec.host_config).rotation();
    let fifo = c.dir(&rec.id).join("stdin.fifo");
    let stdin = (rec.config.open_stdin && fifo.exists()).then_some(fifo);
    let [h, w] = rec.host_config.console_size;
    StartArgs {
        id: rec.id.clone(),
        bundle: bundle.to_path_buf(),
        state_root: c.exec_root.join("state"),
        log: PathBuf::from(&rec.log_path),
        exit: bundle.join("exit.json"),
        // Without StdinOnce, dockerd keeps a container's stdin open whoever
        // attaches and leaves (`docker run -d -i IMAGE cat` keeps running).
        stdin_hold: stdin.is_some() && !rec.config.stdin_once,
        stdin,
        tty: rec.tty(),
        resize: rec.tty().then(|| c.dir(&rec.id).join("resize.fifo")),
        // The CLI gives the terminal's size at create (API 1.42+): applied before
        // the process runs, so it never sees 0x0.
        size: (rec.tty() && h > 0 && w > 0).then_some((h, w)),
        log_max_size,
        log_max_file,
        runc,
        // Set by the start when clients wait for its output.
        attach: false,
        attach_socket: Some(bundle.join(berth_runtime::attachsock::NAME)),
    }
}

/// `POST /containers/{id}/resize?h=&w=`: the new size goes to the shim.
pub(crate) async fn resize(job: Job, c: Arc<Containers>) -> Result<Reply> {
    let entry = c.find(job.args.required("name")?)?;
    let rec = entry.snapshot();
    let h = job.args.int("h")?.unwrap_or(0);
    let w = job.args.int("w")?.unwrap_or(0);
    if !(0..=u16::MAX as i64).contains(&h) || !(0..=u16::MAX as i64).contains(&w) {
        return Err(ApiError::invalid("invalid terminal size"));
    }
    if !rec.state.running {
        return Err(ApiError::conflict(format!(
            "Container {} is not running",
            rec.id
        )));
    }
    if !rec.tty() {
        return Ok(Reply::empty(200));
    }
    let fifo = c.dir(&rec.id).join("resize.fifo");
    crate::resize_tty(fifo, h, w).await?;
    Ok(Reply::empty(200))
}

/// What the network subsystem needs to know of a container about to start.
fn net_request(c: &Containers, rec: &Record) -> Result<NetRequest> {
    let hc = &rec.host_config;
    let mut mode = rec.network_mode().to_string();
    if let Some(other) = mode.strip_prefix("container:") {
        let o = c.find(other)?.snapshot();
        if !o.state.running {
            return Err(ApiError::conflict(format!(
                "cannot join network of a non running container: {}",
                o.id
            )));
        }
        mode = format!("container:{}", o.id);
    }
    Ok(NetRequest {
        id: rec.id.clone(),
        name: rec.name.trim_start_matches('/').to_string(),
        mode,
        endpoints: rec.endpoints_config.clone(),
        port_bindings: hc.port_bindings.clone().unwrap_or_default(),
        exposed: rec.config.exposed(),
        publish_all: hc.publish_all_ports,
        dns: HostConfig::list(&hc.dns).to_vec(),
    })
}

fn docker_start_error(rec: &Record, code: i32, msg: &str) -> ApiError {
    let text = match code {
        127 => format!("failed to create task for container: exec: \"{}\": executable file not found in $PATH: unknown", rec.path),
        126 => format!("failed to create task for container: exec: \"{}\": permission denied: unknown", rec.path),
        _ => format!("failed to create task for container: {msg}"),
    };
    ApiError::new(
        if code == 125 {
            ErrorKind::System
        } else {
            ErrorKind::InvalidParameter
        },
        text,
    )
}

pub(crate) async fn start(job: Job, c: Arc<Containers>) -> Result<Reply> {
    let entry = c.find(job.args.required("name")?)?;
    start_entry(job.engine(), &c, &entry).await
}

pub(crate) async fn start_entry(
    engine: &Engine,
    c: &Arc<Containers>,
    entry: &Arc<Entry>,
) -> Result<Reply> {
    let rec = entry.snapshot();
    if rec.state.running {
        return Ok(Reply::empty(304));
    }
    // A start by the user lifts an earlier stop (restart policies see it again).
    entry
        .record
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .manually_stopped = false;
    let guard = entry.op.lock().await;
    if entry.watch.borrow().removed {
        return Err(ApiError::not_found(format!(
            "No such container: {}",
            rec.id
        )));
    }
    let result = start_inner(engine, c, entry, rec.clone()).await;
    drop(guard);
    // A --rm container that could not start goes away, as with dockerd; its
    // waiters (the CLI waits for "removed") are released.
    if result.is_err() && rec.auto_remove() {
        if let Err(e) = remove(engine, c, entry).await {
            tracing::warn!(container = %rec.id, error = %e.message, "removing a container that failed to start");
        }
    }
    result
}

async fn start_inner(
    engine: &Engine,
    c: &Arc<Containers>,
    entry: &Arc<Entry>,
    rec: Record,
) -> Result<Reply> {
    // A runtime removed from the daemon's configuration since the create.
    let runc = c.runtime_binary(entry)?;
    // Joining another's network is joining its names too, as with dockerd.
    let donor = match crate::bundle::network_donor(c, &rec) {
        Some(donor) => Some(c.find(&donor)?.snapshot().config),
        None => None,
    };
    // Placed by the daemon's driver of now; kept for the life of this start.
    let cgroups_path = c.cgroups_path(&rec).map_err(ApiError::invalid)?;
    let rec = {
        let mut r = entry.record.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(config) = donor {
            r.config.hostname = config.hostname;
            r.config.domainname = config.domainname;
        }
        r.cgroups_path = cgroups_path;
        r.clone()
    };
    let net = match c.net() {
        Some(n) => Some(n.setup(net_request(c, &rec)?).await?),
        None => None,
    };
    let c2 = c.clone();
    let r2 = rec.clone();
    let n2 = net.clone();
    let prepared = tokio::task::spawn_blocking(move || c2.launcher.prepare(&c2, &r2, n2.as_ref()))
        .await
        .map_err(sys)
        .and_then(|r| r);
    let bundle = match prepared {
        Ok(b) => b,
        Err(e) => {
            if let Some(n) = c.net() {
                n.teardown(rec.id.clone()).await;
            }
            return Err(e);
        }
    };
    let mut args = shim_args(c, &rec, &bundle, runc);
    // Clients attached before this start get its output straight from the shim.
    let waiters = entry.live.take();
    args.attach = !waiters.is_empty();
    let spawned = match c.launcher.spawn(&c.shim, args).await {
        Ok(s) => s,
        Err(e) => Spawned {
            report: Report::Failed {
                error: e.message,
                exit_code: 125,
            },
            shim_pid: 0,
            ended: Box::pin(async {}),
            live: None,
        },
    };
    let Spawned {
        report,
        shim_pid,
        ended,
        live,
    } = spawned;
    let failure = match report {
        Report::Started { pid } => Ok(pid),
        Report::Failed { error, exit_code } => Err((error, exit_code)),
        Report::Exited { .. } => Err(("the shim did not start the container".to_string(), 125)),
    };
    let pid = match failure {
        Ok(pid) => pid,
        Err((msg, code)) => {
            ended.await;
            let c3 = c.clone();
            let id = rec.id.clone();
            let _ = tokio::task::spawn_blocking(move || c3.launcher.cleanup(&c3, &id)).await;
            if let Some(n) = c.net() {
                n.teardown(rec.id.clone()).await;
            }
            unmount_volumes(c, &rec);
            let err = docker_start_error(&rec, code, &msg);
            let rec = {
                let mut r = entry.record.lock().unwrap_or_else(|p| p.into_inner());
                r.state.exit_code = code;
                r.state.error = err.message.clone();
                r.state.status = if r.state.started_at == crate::model::ZERO_TIME {
                    "created".into()
                } else {
                    "exited".into()
                };
                r.clone()
            };
            let _ = c.save(&rec);
            return Err(err);
        }
    };
    let rec = {
        let mut r = entry.record.lock().unwrap_or_else(|p| p.into_inner());
        r.state.status = "running".into();
        r.state.running = true;
        r.state.pid = pid;
        r.state.exit_code = 0;
        r.state.error.clear();
        r.state.restarting = false;
        r.state.paused = false;
        r.state.oom_killed = false;
        r.state.started_at = now();
        r.state.finished_at = crate::model::ZERO_TIME.into();
        r.shim_pid = shim_pid;
        if let Some(n) = &net {
            r.network_settings = Some(n.settings.clone());
        }
        r.clone()
    };
    // Before the container shows as running: a waiter that sees it running with
    // nothing handed over knows to follow the log instead.
    if let Some(live) = live {
        crate::live::hand_over(waiters, live);
    }
    c.save(&rec)?;
    entry.watch.send_modify(|s| s.status = "running".into());
    volume_events(engine, &rec, "mount");
    crate::publish(engine.events(), &rec, "start", &[]);
    crate::health::start(engine, c, entry, true);
    let engine = engine.clone();
    let (c4, e4) = (c.clone(), entry.clone());
    tokio::spawn(async move {
        ended.await;
        exited(&engine, &c4, &e4).await;
    });
    Ok(Reply::empty(204))
}

/// The shim is gone: record the exit, clean up, publish `die`, maybe remove.
async fn exited(engine: &Engine, c: &Arc<Containers>, entry: &Arc<Entry>) {
    let id = entry.snapshot().id;
    let exit_path = c.run_dir(&id).join("exit.json");
    let rec_exit = ExitRecord::read(&exit_path).unwrap_or(ExitRecord {
        exit_code: 255,
        finished_at: now(),
        error: Some("the shim died".into()),
        pid: 0,
        oom_killed: false,
    });
    let c2 = c.clone();
    let id2 = id.clone();
    let _ = tokio::task::spawn_blocking(move || c2.launcher.cleanup(&c2, &id2)).await;
    if let Some(n) = c.net() {
        n.teardown(id.clone()).await;
    }
    unmount_volumes(c, &entry.snapshot());
    let restart = !c.shutting_down() && should_restart(&entry.snapshot(), rec_exit.exit_code);
    let rec = {
        let mut r = entry.record.lock().unwrap_or_else(|p| p.into_inner());
        r.network_settings = None;
        r.state.status = if restart { "restarting" } else { "exited" }.into();
        r.state.restarting = restart;
        r.state.running = false;
        r.state.paused = false;
        r.state.pid = 0;
        r.state.exit_code = rec_exit.exit_code;
        r.state.oom_killed = rec_exit.oom_killed;
        r.state.finished_at = rec_exit.finished_at.clone();
        if let Some(h) = r.state.health.as_mut() {
            h.status = "unhealthy".into();
        }
        r.clone()
    };
    if let Err(e) = c.save(&rec) {
        tracing::error!(container = %id, error = %e.message, "saving exit state");
    }
    volume_events(engine, &rec, "unmount");
    if rec.state.oom_killed {
        crate::publish(engine.events(), &rec, "oom", &[]);
    }
    crate::publish(
        engine.events(),
        &rec,
        "die",
        &[("exitCode", rec.state.exit_code.to_string())],
    );
    entry.watch.send_modify(|s| {
        s.status = rec.state.status.clone();
        s.exit_code = rec.state.exit_code;
        s.exits += 1;
    });
    if restart {
        schedule_restart(engine, c, entry, &rec);
        return;
    }
    if rec.auto_remove() {
        if let Err(e) = remove(engine, c, entry).await {
            tracing::warn!(container = %id, error = %e.message, "auto-remove failed");
        }
    }
}

/// dockerd's `mount`/`unmount` volume events for a container's volumes.
fn volume_events(engine: &Engine, rec: &Record, action: &str) {
    for m in rec.mounts.iter().filter(|m| m.kind == "volume") {
        let mut attrs = std::collections::BTreeMap::new();
        attrs.insert("container".to_string(), rec.id.clone());
        attrs.insert("driver".to_string(), "local".to_string());
        if action == "mount" {
            attrs.insert("destination".to_string(), m.destination.clone());
            attrs.insert("propagation".to_string(), String::new());
            attrs.insert("read/write".to_string(), m.rw.to_string());
        }
        engine.events().publish("volume", action, &m.name, attrs);
    }
}

/// Restarts after dockerd's back-off: 100 ms doubling on each restart, back to
/// 100 ms once a run lasted 10 s, at most a minute. A stop or removal meanwhile
/// cancels it.
fn schedule_restart(engine: &Engine, c: &Arc<Containers>, entry: &Arc<Entry>, rec: &Record) {
    let ran = time::OffsetDateTime::parse(
        &rec.state.finished_at,
        &time::format_description::well_known::Rfc3339,
    )
    .ok()
    .zip(
        time::OffsetDateTime::parse(
            &rec.state.started_at,
            &time::format_description::well_known::Rfc3339,
        )
        .ok(),
    )
    .map(|(f, s)| (f - s).whole_seconds())
    .unwrap_or(0);
    let cancel = tokio_util::sync::CancellationToken::new();
    let delay = {
        let mut r = entry.restart.lock().unwrap_or_else(|p| p.into_inner());
        r.delay = if ran >= 10 || r.delay.is_zero() {
            Duration::from_millis(100)
        } else {
            (r.delay * 2).min(Duration::from_secs(60))
        };
        r.cancel = Some(cancel.clone());
        r.delay
    };
    let (engine, c, entry) = (engine.clone(), c.clone(), entry.clone());
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = cancel.cancelled() => return,
        }
        let _guard = entry.op.lock().await;
        if entry.watch.borrow().removed || c.shutting_down() {
            return;
        }
        let rec = {
            let mut r = entry.record.lock().unwrap_or_else(|p| p.into_inner());
            if !r.state.restarting || r.manually_stopped {
                return;
            }
            r.restart_count += 1;
            r.clone()
        };
        if let Err(e) = start_inner(&engine, &c, &entry, rec).await {
            tracing::warn!(container = %entry.snapshot().id, error = %e.message, "restarting");
            let rec = {
                let mut r = entry.record.lock().unwrap_or_else(|p| p.into_inner());
                r.state.restarting = false;
                r.state.status = "exited".into();
                r.state.error = e.message.clone();
                r.clone()
            };
            let _ = c.save(&rec);
            entry.watch.send_modify(|s| s.status = "exited".into());
        }
    });
}

/// Starts a container at daemon start-up (restart policies on boot).
pub(crate) async fn boot_start(engine: &Engine, c: &Arc<Containers>, entry: &Arc<Entry>) {
    let _guard = entry.op.lock().await;
    let rec = {
        let mut r = entry.record.lock().unwrap_or_else(|p| p.into_inner());
        r.manually_stopped = false;
        r.state.restarting = false;
        r.clone()
    };
    if let Err(e) = start_inner(engine, c, entry, rec).await {
        tracing::warn!(container = %entry.snapshot().id, error = %e.message, "starting on boot");
    }
}

/// Waits (through a pidfd: the shim is not our child any more) for a restored
/// container's shim to exit, then records the exit as for any container.
pub(crate) fn watch_restored(engine: Engine, c: Arc<Containers>, entry: Arc<Entry>, shim_pid: i32) {
    tokio::spawn(async move {
        // Safety: pidfd_open takes a pid and flags and returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, shim_pid, 0) };
        if fd >= 0 {
            // Safety: a fresh fd from pidfd_open that nothing else owns.
            let owned =
                unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) };
            if let Ok(afd) = {
                // Safety: the fd is ours alone and lives inside the AsyncFd until
                // it is deregistered and closed with it.
                unsafe {
                    tokio::io::unix::AsyncFd::register_with_interest(
                        owned,
                        tokio::io::Interest::READABLE,
                    )
                }
            } {
                // A pidfd becomes readable when the process exits.
                let _ = afd.readable().await;
            }
        }
        exited(&engine, &c, &entry).await;
    });
}
