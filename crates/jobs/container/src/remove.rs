//! `docker rm` (and `--rm`), with the container's anonymous volumes, and
//! `docker container prune`.

use std::sync::Arc;
use std::time::Duration;

use berth_api::filters::{label_matches, Filters};
use berth_api::{ApiError, Result};
use berth_engine::{Engine, Job, Reply};
use nix::sys::signal::Signal;
use serde_json::json;

use crate::policy::cancel_restart;
use crate::restore::shim_alive;
use crate::signal::{send_signal, wait_exit};
use crate::sys;
use crate::{Containers, Entry};

pub(crate) async fn remove(engine: &Engine, c: &Arc<Containers>, entry: &Arc<Entry>) -> Result<()> {
    let v = entry.snapshot().auto_remove();
    remove_entry(engine, c, entry, v).await
}

/// Removes a container; with `volumes`, its anonymous volumes too (those no other
/// container uses), as `docker rm -v` and `--rm`.
pub(crate) async fn remove_entry(
    engine: &Engine,
    c: &Arc<Containers>,
    entry: &Arc<Entry>,
    volumes: bool,
) -> Result<()> {
    let _guard = entry.op.lock().await;
    if entry.watch.borrow().removed {
        return Ok(());
    }
    let rec = entry.snapshot();
    if rec.state.running {
        return Err(ApiError::conflict(format!(
            "You cannot remove a running container {}. Stop the container before attempting removal or force remove",
            rec.id
        )));
    }
    let c2 = c.clone();
    let r2 = rec.clone();
    tokio::task::spawn_blocking(move || {
        // Whatever it removes is ended: a shim or processes the daemon lost
        // track of would otherwise outlive the record.
        if crate::reap::has_leftovers(&c2, &r2) {
            let shims: Vec<i32> = shim_alive(&r2).then_some(r2.shim_pid).into_iter().collect();
            crate::reap::end(&c2, &r2, &shims);
        } else {
            c2.launcher.cleanup(&c2, &r2.id);
        }
        std::fs::remove_dir_all(c2.dir(&r2.id)).map_err(sys)
    })
    .await
    .map_err(sys)??;
    c.forget(&rec.id, &rec.name);
    if volumes {
        if let Some(vs) = c.vols() {
            for m in rec
                .mounts
                .iter()
                .filter(|m| m.kind == "volume" && m.anonymous)
            {
                if c.volume_users(&m.name).is_empty() {
                    if let Err(e) = vs.remove(&m.name) {
                        tracing::warn!(volume = %m.name, error = %e.message, "removing an anonymous volume");
                    }
                }
            }
        }
    }
    crate::publish(engine.events(), &rec, "destroy", &[]);
    entry.watch.send_modify(|s| s.removed = true);
    Ok(())
}

pub(crate) async fn delete(job: Job, c: Arc<Containers>) -> Result<Reply> {
    if job.args.bool("link") {
        let name = job.args.required("name")?.to_string();
        let c2 = c.clone();
        tokio::task::spawn_blocking(move || crate::links::remove(&c2, &name))
            .await
            .map_err(sys)??;
        return Ok(Reply::empty(204));
    }
    let entry = c.find(job.args.required("name")?)?;
    let force = job.args.bool("force");
    {
        // Under the container's lock no restart of its policy is under way, and
        // once it is marked as stopped by the user none begins: the SIGKILL
        // below cannot miss a container that restarts meanwhile.
        let _guard = entry.op.lock().await;
        let rec = entry.snapshot();
        if !force && (rec.state.restarting || rec.state.running) {
            let what = if rec.state.restarting {
                "restarting"
            } else {
                "running"
            };
            return Err(ApiError::conflict(format!(
                "You cannot remove a {what} container {}. Stop the container before attempting removal or force remove",
                rec.id
            )));
        }
        if rec.state.restarting || rec.state.running {
            entry
                .record
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .manually_stopped = true;
        }
        cancel_restart(&c, &entry);
        let exits = entry.watch.borrow().exits;
        let rec = entry.snapshot();
        if rec.state.running {
            let _ = send_signal(&rec, Signal::SIGKILL);
            if rec.state.paused {
                let _ = crate::ops::thaw(&c, &entry).await;
            }
            wait_exit(&entry, exits, Some(Duration::from_secs(30))).await;
        }
    }
    if entry.watch.borrow().removed {
        return Ok(Reply::empty(204));
    }
    remove_entry(job.engine(), &c, &entry, job.args.bool("v")).await?;
    Ok(Reply::empty(204))
}

/// `POST /containers/prune`: every stopped container (filters `until`, `label`).
pub(crate) async fn prune(job: Job, c: Arc<Containers>) -> Result<Reply> {
    let filters = Filters::parse(job.args.str("filters").unwrap_or(""))?;
    filters.validate(&["until", "label", "label!"])?;
    let until = filters.until()?;
    let mut deleted = Vec::new();
    let mut reclaimed = 0u64;
    let engine = job.engine().clone();
    for e in c.all() {
        let rec = e.snapshot();
        if rec.state.running || rec.state.restarting || rec.state.paused {
            continue;
        }
        let labels = rec.labels();
        if !filters
            .get("label")
            .iter()
            .all(|l| label_matches(l, labels))
            || filters
                .get("label!")
                .iter()
                .any(|l| label_matches(l, labels))
        {
            continue;
        }
        if let Some(t) = until {
            let created = time::OffsetDateTime::parse(
                &rec.created,
                &time::format_description::well_known::Rfc3339,
            )
            .map(|c| c.unix_timestamp())
            .unwrap_or(0);
            if created >= t {
                continue;
            }
        }
        let size = crate::dir_size(&c.dir(&rec.id).join("upper"));
        if remove_entry(&engine, &c, &e, false).await.is_ok() {
            reclaimed += size;
            deleted.push(rec.id.clone());
        }
    }
    Ok(Reply::json(
        &json!({ "ContainersDeleted": deleted, "SpaceReclaimed": reclaimed }),
    ))
}
