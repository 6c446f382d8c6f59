//! What users do with running containers besides start and stop: pause and
//! unpause, top, stats, changes, update, and prune.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use berth_api::container::{decode, HostConfig};
use berth_api::{ApiError, Result};
use berth_engine::{Job, Reply, StreamKind};
use berth_runtime::cgroups::{self, Cgroup};
use serde_json::{json, Value};

use crate::model::Record;
use crate::sys;
use crate::{event, Containers};

pub(crate) fn cgroup(rec: &Record) -> Cgroup {
    Cgroup::new(&cgroup_path(rec))
}

/// The container's cgroup, as the runtime was given it at its last start
/// (either driver's form); records from before that was kept were all placed
/// by the cgroupfs driver.
pub(crate) fn cgroup_path(rec: &Record) -> String {
    if !rec.cgroups_path.is_empty() {
        return rec.cgroups_path.clone();
    }
    berth_runtime::placement::Driver::Cgroupfs
        .cgroups_path(&rec.host_config.cgroup_parent, &rec.id)
        .unwrap_or_default()
}

fn not_running(rec: &Record) -> ApiError {
    ApiError::conflict(format!("Container {} is not running", rec.id))
}

pub(crate) async fn pause(job: Job, c: Arc<Containers>) -> Result<Reply> {
    let entry = c.find(job.args.required("name")?)?;
    let rec = entry.snapshot();
    if !rec.state.running {
        return Err(not_running(&rec));
    }
    if rec.state.paused {
        return Err(ApiError::conflict(format!(
            "Container {} is already paused",
            rec.id
        )));
    }
    let cg = cgroup(&rec);
    tokio::task::spawn_blocking(move || cg.freeze(true))
        .await
        .map_err(sys)?
        .map_err(|e| ApiError::system(format!("Cannot pause container {}: {e}", rec.id)))?;
    let rec = {
        let mut r = entry.record.lock().unwrap_or_else(|p| p.into_inner());
        r.state.paused = true;
        r.state.status = "paused".into();
        r.clone()
    };
    c.save(&rec)?;
    entry.watch.send_modify(|s| s.status = "paused".into());
    event(&job, &rec, "pause", &[]);
    Ok(Reply::empty(204))
}

pub(crate) async fn unpause(job: Job, c: Arc<Containers>) -> Result<Reply> {
    let entry = c.find(job.args.required("name")?)?;
    let rec = entry.snapshot();
    if !rec.state.paused {
        return Err(ApiError::conflict(format!(
            "Container {} is not paused",
            rec.id
        )));
    }
    thaw(&c, &entry).await?;
    event(&job, &entry.snapshot(), "unpause", &[]);
    Ok(Reply::empty(204))
}

/// Thaws a paused container and records it (also before stop and kill).
pub(crate) async fn thaw(c: &Containers, entry: &crate::Entry) -> Result<()> {
    let rec = entry.snapshot();
    let cg = cgroup(&rec);
    tokio::task::spawn_blocking(move || cg.freeze(false))
        .await
        .map_err(sys)?
        .map_err(|e| ApiError::system(format!("Cannot unpause container {}: {e}", rec.id)))?;
    let rec = {
        let mut r = entry.record.lock().unwrap_or_else(|p| p.into_inner());
        r.state.paused = false;
        if r.state.running {
            r.state.status = "running".into();
        }
        r.clone()
    };
    c.save(&rec)?;
    entry.watch.send_modify(|s| {
        if s.status == "paused" {
            s.status = "running".into()
        }
    });
    Ok(())
}

/// `GET /containers/{id}/top?ps_args=`: the host's `ps`, rows of the container's
/// processes only, as dockerd does.
pub(crate) async fn top(job: Job, c: Arc<Containers>) -> Result<Reply> {
    let rec = c.find(job.args.required("name")?)?.snapshot();
    if !rec.state.running {
        return Err(not_running(&rec));
    }
    let args: Vec<String> = job
        .args
        .str("ps_args")
        .filter(|s| !s.is_empty())
        .unwrap_or("-ef")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let cg = cgroup(&rec);
    let pids = tokio::task::spawn_blocking(move || cg.pids())
        .await
        .map_err(sys)?;
    let out = tokio::process::Command::new("ps")
        .args(&args)
        .output()
        .await
        .map_err(|e| ApiError::system(format!("running ps: {e}")))?;
    if !out.status.success() {
        return Err(ApiError::system(format!(
            "ps: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    let titles: Vec<&str> = header.split_whitespace().collect();
    let pid_col = titles
        .iter()
        .position(|t| *t == "PID")
        .ok_or_else(|| ApiError::system("Couldn't find PID field in ps output"))?;
    let mut procs = Vec::new();
    for l in lines {
        let fields: Vec<&str> = l.split_whitespace().collect();
        let Some(pid) = fields.get(pid_col).and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        if !pids.contains(&pid) {
            continue;
        }
        // The last column (the command) keeps its spaces.
        let n = titles.len();
        let mut row: Vec<String> = fields
            .iter()
            .take(n.saturating_sub(1))
            .map(|s| s.to_string())
            .collect();
        row.push(
            fields
                .iter()
                .skip(n.saturating_sub(1))
                .cloned()
                .collect::<Vec<_>>()
                .join(" "),
        );
        procs.push(row);
    }
    Ok(Reply::json(
        &json!({ "Titles": titles, "Processes": procs }),
    ))
}

fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Interface counters of the container's network namespace.
fn networks(pid: i32) -> Value {
    let mut out = serde_json::Map::new();
    let dev = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap_or_default();
    for l in dev.lines().skip(2) {
        let Some((name, rest)) = l.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name == "lo" {
            continue;
        }
        let v: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if v.len() < 16 {
            continue;
        }
        out.insert(
            name.to_string(),
            json!({
                "rx_bytes": v[0], "rx_packets": v[1], "rx_errors": v[2], "rx_dropped": v[3],
                "tx_bytes": v[8], "tx_packets": v[9], "tx_errors": v[10], "tx_dropped": v[11],
            }),
        );
    }
    Value::Object(out)
}

fn cpu_json(u: &cgroups::Usage, system: u64) -> Value {
    json!({
        "cpu_usage": {
            "total_usage": u.cpu_total,
            "percpu_usage": if u.cpu_percpu.is_empty() { Value::Null } else { json!(u.cpu_percpu) },
            "usage_in_kernelmode": u.cpu_system,
            "usage_in_usermode": u.cpu_user,
        },
        "system_cpu_usage": system,
        "online_cpus": cgroups::online_cpus(),
        "throttling_data": {
            "periods": u.throttling.0,
            "throttled_periods": u.throttling.1,
            "throttled_time": u.throttling.2,
        },
    })
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

const ZERO: &str = "0001-01-01T00:00:00Z";

/// One stats sample: (usage, host CPU time, when).
fn sample(rec: &Record) -> (cgroups::Usage, u64, String) {
    if !rec.state.running {
        return (cgroups::Usage::default(), 0, ZERO.into());
    }
    (cgroup(rec).usage(), cgroups::system_cpu_usage(), now())
}

fn stats_json(
    rec: &Record,
    cur: &(cgroups::Usage, u64, String),
    pre: Option<&(cgroups::Usage, u64, String)>,
) -> Value {
    let (u, sys_cpu, read) = cur;
    let stats: BTreeMap<String, u64> = u.memory_stat.iter().cloned().collect();
    let limit = u.memory_limit.unwrap_or_else(host_memory);
    let empty = (cgroups::Usage::default(), 0u64, ZERO.to_string());
    let pre = pre.unwrap_or(&empty);
    json!({
        "read": read,
        "preread": pre.2,
        "pids_stats": { "current": u.pids_current, "limit": u.pids_limit },
        "blkio_stats": {
            "io_service_bytes_recursive": u.io.iter().map(|(ma, mi, op, v)| json!({"major": ma, "minor": mi, "op": op, "value": v})).collect::<Vec<_>>(),
            "io_serviced_recursive": null, "io_queue_recursive": null, "io_service_time_recursive": null,
            "io_wait_time_recursive": null, "io_merged_recursive": null, "io_time_recursive": null,
            "sectors_recursive": null,
        },
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu_json(u, *sys_cpu),
        "precpu_stats": cpu_json(&pre.0, pre.1),
        "memory_stats": if rec.state.running {
            json!({ "usage": u.memory_usage, "max_usage": u.memory_max_usage, "stats": stats, "limit": limit })
        } else {
            json!({})
        },
        "name": rec.name,
        "id": rec.id,
        "networks": if rec.state.running { networks(rec.state.pid) } else { json!({}) },
    })
}

/// `GET /containers/{id}/stats?stream=&one-shot=`.
pub(crate) async fn stats(mut job: Job, c: Arc<Containers>) -> Result<Reply> {
    let entry = c.find(job.args.required("name")?)?;
    let stream = job
        .args
        .str("stream")
        .map(|s| s == "1" || s == "true")
        .unwrap_or(true);
    let one_shot = job.args.bool("one-shot");
    let out = job.stream("application/json", StreamKind::Raw)?;
    let take = |e: &crate::Entry| {
        let rec = e.snapshot();
        async move {
            let r2 = rec.clone();
            let s = tokio::task::spawn_blocking(move || sample(&r2))
                .await
                .unwrap_or_else(|_| (cgroups::Usage::default(), 0, ZERO.into()));
            (rec, s)
        }
    };
    let (_, mut pre) = take(&entry).await;
    if !stream {
        // Without one-shot, a second sample a cycle later fills precpu_stats
        // (the CLI computes CPU % from the two), as dockerd does.
        let rec = entry.snapshot();
        if !one_shot && rec.state.running {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let (rec, cur) = take(&entry).await;
            out.send_json(&stats_json(&rec, &cur, Some(&pre))).await?;
        } else {
            out.send_json(&stats_json(&rec, &pre, None)).await?;
        }
        return Ok(Reply::empty(200));
    }
    let rec = entry.snapshot();
    out.send_json(&stats_json(&rec, &pre, None)).await?;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = out.closed() => return Ok(Reply::empty(200)),
            _ = job.cancelled() => return Ok(Reply::empty(200)),
        }
        let (rec, cur) = take(&entry).await;
        if out
            .send_json(&stats_json(&rec, &cur, Some(&pre)))
            .await
            .is_err()
        {
            return Ok(Reply::empty(200));
        }
        pre = cur;
    }
}

/// `GET /containers/{id}/changes`: the upper layer's adds, changes and deletes.
pub(crate) async fn changes(job: Job, c: Arc<Containers>) -> Result<Reply> {
    let rec = c.find(job.args.required("name")?)?.snapshot();
    let upper = c.dir(&rec.id).join("upper");
    let lowers = berth_graph::Digest::parse(&rec.image)
        .ok()
        .and_then(|i| c.graph.lowerdirs(&i).ok())
        .unwrap_or_default();
    let list = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        walk_changes(&upper, std::path::Path::new("/"), &lowers, &mut out);
        out
    })
    .await
    .map_err(sys)?;
    Ok(Reply::json(&list))
}

/// Files the daemon itself puts in every container (dockerd keeps them in an init
/// layer, so they never show as changes).
const INIT_PATHS: &[&str] = &[
    "/etc/hostname",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/mtab",
    "/dev",
    "/proc",
    "/sys",
    "/.dockerenv",
];

/// Appends the changes under `dir`; returns whether it appended any.
fn walk_changes(
    dir: &std::path::Path,
    cpath: &std::path::Path,
    lowers: &[std::path::PathBuf],
    out: &mut Vec<Value>,
) -> bool {
    use std::os::unix::fs::FileTypeExt;
    use std::os::unix::fs::MetadataExt;
    let Ok(rd) = std::fs::read_dir(dir) else {
        return false;
    };
    let mut entries: Vec<_> = rd.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    let mut any = false;
    for e in entries {
        let p = cpath.join(e.file_name());
        if INIT_PATHS.iter().any(|i| std::path::Path::new(i) == p) {
            continue;
        }
        let Ok(md) = e.metadata() else { continue };
        let in_lower = lowers
            .iter()
            .any(|l| std::fs::symlink_metadata(l.join(p.strip_prefix("/").unwrap_or(&p))).is_ok());
        // An overlay whiteout: a 0/0 character device.
        if md.file_type().is_char_device() && md.rdev() == 0 {
            out.push(json!({ "Path": p, "Kind": 2 }));
            any = true;
            continue;
        }
        if md.is_dir() && in_lower {
            // A directory copied up only because something below changed.
            let at = out.len();
            out.push(json!({ "Path": p, "Kind": 0 }));
            if walk_changes(&e.path(), &p, lowers, out) {
                any = true;
            } else {
                out.remove(at);
            }
            continue;
        }
        out.push(json!({ "Path": p, "Kind": if in_lower { 0 } else { 1 } }));
        any = true;
        if md.is_dir() {
            walk_changes(&e.path(), &p, lowers, out);
        }
    }
    any
}

/// `POST /containers/{id}/update`: new limits (applied at once to a running
/// container) and restart policy.
pub(crate) async fn update(job: Job, c: Arc<Containers>) -> Result<Reply> {
    let entry = c.find(job.args.required("name")?)?;
    let body = job.args.body_bytes();
    // `UpdateConfig` is `Resources` and `RestartPolicy`: HostConfig's fields.
    let only_changed: HostConfig = decode(body, "UpdateConfig")?;
    let Ok(Value::Object(changes)) = serde_json::from_slice::<Value>(body) else {
        return Err(ApiError::invalid("update config cannot be empty"));
    };
    let mut merged = serde_json::to_value(entry.snapshot().host_config).map_err(sys)?;
    for (k, v) in changes {
        // Zero values leave a setting as it is, as dockerd treats them.
        if v.is_null() || v.as_i64() == Some(0) || v.as_str() == Some("") {
            continue;
        }
        merged[k] = v;
    }
    let hc: HostConfig = serde_json::from_value(merged).map_err(sys)?;
    crate::resources::validate(&hc)?;
    crate::validate::restart_policy(&hc)?;
    let rec = entry.snapshot();
    if rec.state.running {
        let only_changed = crate::resources::of(&only_changed);
        let limits = crate::resources::limits(&only_changed);
        let cg = cgroup(&rec);
        let unit = berth_runtime::cgpath::unit_of(&cgroup_path(&rec));
        tokio::task::spawn_blocking(move || {
            // The unit's properties first: systemd writes the files too, and the
            // files then get the exact values.
            if let Some(u) = &unit {
                berth_runtime::unitprops::set(u, &limits)?;
            }
            cg.update(&limits)
        })
        .await
        .map_err(sys)?
        .map_err(|e| ApiError::system(format!("Cannot update container {}: {e}", rec.id)))?;
    }
    let rec = {
        let mut r = entry.record.lock().unwrap_or_else(|p| p.into_inner());
        r.host_config = hc;
        r.clone()
    };
    c.save(&rec)?;
    event(&job, &rec, "update", &[]);
    Ok(Reply::json(&json!({ "Warnings": [] })))
}
