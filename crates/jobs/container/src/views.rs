//! `GET /containers/json` and `GET /containers/{id}/json`.

use std::sync::Arc;

use berth_api::filters::{label_matches, Filters};
use berth_api::{ApiVersion, Result};
use berth_engine::{Job, Reply};

use berth_api::container::{
    ContainerInspect, ContainerState, ContainerSummary, EndpointSettings, GraphDriver,
    NetworkSettings, PortSummary, SummaryHostConfig, SummaryNetworkSettings,
};

use crate::model::Record;
use crate::Containers;

fn created_unix(rec: &Record) -> i64 {
    time::OffsetDateTime::parse(&rec.created, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .unwrap_or(0)
}

fn created_nanos(rec: &Record) -> i128 {
    time::OffsetDateTime::parse(&rec.created, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp_nanos())
        .unwrap_or(0)
}

/// `Up 5 seconds`, `Exited (0) 3 minutes ago`, `Created`, as `docker ps` shows.
fn status_text(rec: &Record) -> String {
    let ago = |t: &str| -> String {
        let secs = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
            .map(|t| (time::OffsetDateTime::now_utc() - t).whole_seconds())
            .unwrap_or(0)
            .max(0);
        match secs {
            0 => "Less than a second".into(),
            1 => "1 second".into(),
            s if s < 60 => format!("{s} seconds"),
            s if s < 120 => "About a minute".into(),
            s if s < 3600 => format!("{} minutes", s / 60),
            s if s < 7200 => "About an hour".into(),
            s => format!("{} hours", s / 3600),
        }
    };
    match rec.state.status.as_str() {
        "running" | "paused" => {
            let health = match rec.state.health.as_ref().map(|h| h.status.as_str()) {
                Some("starting") => " (health: starting)",
                Some("healthy") => " (healthy)",
                Some("unhealthy") => " (unhealthy)",
                _ => "",
            };
            let paused = if rec.state.paused { " (Paused)" } else { "" };
            format!("Up {}{health}{paused}", ago(&rec.state.started_at))
        }
        "restarting" => format!(
            "Restarting ({}) {} ago",
            rec.state.exit_code,
            ago(&rec.state.finished_at)
        ),
        "exited" => format!(
            "Exited ({}) {} ago",
            rec.state.exit_code,
            ago(&rec.state.finished_at)
        ),
        "created" => "Created".into(),
        s => s.to_string(),
    }
}

pub(crate) async fn list(job: Job, c: Arc<Containers>) -> Result<Reply> {
    let filters = Filters::parse(job.args.str("filters").unwrap_or(""))?;
    filters.validate(&[
        "id", "name", "label", "status", "ancestor", "exited", "before", "since", "network",
        "volume", "health", "is-task", "expose", "publish",
    ])?;
    let all = job.args.bool("all") || filters.contains("status") || filters.contains("exited");
    let limit = job.args.int("limit")?.filter(|l| *l > 0);
    // before/since name a container; compare creation times, as dockerd does.
    let created_of = |n: &String| c.find(n).map(|e| created_nanos(&e.snapshot()));
    let before = filters.get("before").first().map(created_of).transpose()?;
    let since = filters.get("since").first().map(created_of).transpose()?;
    // Filters look at each record under its lock (no copies); each container's
    // JSON is cached until its record changes, all but the time-dependent Status.
    let mut rows: Vec<(i128, bytes::Bytes, String)> = Vec::new();
    let want_size = job.args.bool("size");
    let mut sized: Vec<(i128, ContainerSummary, String, u64)> = Vec::new();
    for entry in c.all() {
        let rec = entry.record.lock().unwrap_or_else(|p| p.into_inner());
        let rec: &Record = &rec;
        let name = rec.name.trim_start_matches('/');
        let keep = (all || rec.state.running)
            && filters.any_or_absent("id", |v| rec.id.starts_with(v))
            && filters.any_or_absent("name", |v| name.contains(v.trim_start_matches('/')))
            && (!filters.contains("label") || {
                let labels = rec.labels();
                filters
                    .get("label")
                    .iter()
                    .all(|l| label_matches(l, labels))
            })
            && filters.any_or_absent("status", |v| v == rec.state.status)
            && filters.any_or_absent("exited", |v| {
                rec.state.status == "exited" && v.parse() == Ok(rec.state.exit_code)
            })
            && filters.any_or_absent("ancestor", |v| {
                v == rec.image_name
                    || rec.image.contains(v)
                    || c.graph
                        .resolve(v)
                        .map(|d| d.to_string() == rec.image)
                        .unwrap_or(false)
            })
            && filters.any_or_absent("network", |v| {
                let (id, name) = c
                    .net()
                    .and_then(|n| n.resolve(v).ok())
                    .unwrap_or_else(|| (v.to_string(), v.to_string()));
                rec.endpoints_config.contains_key(&name)
                    || rec.network_mode() == name
                    || rec.network_mode() == id
            })
            && filters.any_or_absent("volume", |v| {
                rec.mounts.iter().any(|m| {
                    m.name == v || m.destination == v || (m.kind == "bind" && m.source == v)
                })
            })
            && before.is_none_or(|b| created_nanos(rec) < b)
            && since.is_none_or(|b| created_nanos(rec) > b);
        if !keep {
            continue;
        }
        if want_size {
            // Sizes change with every write: these rows are not cached.
            let image = image_size(&c, rec);
            sized.push((
                created_nanos(rec),
                list_row(&c, rec),
                status_text(rec),
                image,
            ));
            continue;
        }
        let cached = entry
            .list_json
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let body = match cached {
            Some(b) => b,
            None => {
                let b =
                    bytes::Bytes::from(serde_json::to_vec(&list_row(&c, rec)).unwrap_or_default());
                *entry.list_json.lock().unwrap_or_else(|p| p.into_inner()) = Some(b.clone());
                b
            }
        };
        rows.push((created_nanos(rec), body, status_text(rec)));
    }
    if want_size {
        let uppers: Vec<std::path::PathBuf> =
            sized.iter().map(|r| c.dir(&r.1.id).join("upper")).collect();
        let sizes = tokio::task::spawn_blocking(move || {
            uppers
                .iter()
                .map(|u| crate::dir_size(u))
                .collect::<Vec<u64>>()
        })
        .await
        .map_err(crate::sys)?;
        for ((created, mut row, status, image), rw) in sized.into_iter().zip(sizes) {
            row.size_rw = Some(rw as i64);
            row.size_root_fs = Some((rw + image) as i64);
            let body = bytes::Bytes::from(serde_json::to_vec(&row).unwrap_or_default());
            rows.push((created, body, status));
        }
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    if let Some(l) = limit {
        rows.truncate(l as usize);
    }
    let mut out = Vec::with_capacity(rows.iter().map(|r| r.1.len() + 64).sum::<usize>() + 2);
    out.push(b'[');
    for (i, (_, body, status)) in rows.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // The cached object without its closing brace, then Status.
        out.extend_from_slice(&body[..body.len().saturating_sub(1)]);
        out.extend_from_slice(b",\"Status\":");
        out.extend_from_slice(&serde_json::to_vec(status).unwrap_or_default());
        out.push(b'}');
    }
    out.push(b']');
    Ok(Reply::bytes(200, "application/json", out))
}

/// A container in `GET /containers/json`, without `Status` (it changes with time).
fn list_row(c: &Containers, rec: &Record) -> ContainerSummary {
    let command = std::iter::once(rec.path.clone())
        .chain(rec.args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    ContainerSummary {
        id: rec.id.clone(),
        names: vec![rec.name.clone()],
        image: rec.image_name.clone(),
        image_id: rec.image.clone(),
        command,
        created: created_unix(rec),
        ports: ps_ports(rec.network_settings.as_ref()),
        size_rw: None,
        size_root_fs: None,
        labels: rec.labels().clone(),
        state: rec.state.status.clone(),
        host_config: SummaryHostConfig {
            network_mode: rec.host_config.network_mode.clone(),
        },
        network_settings: SummaryNetworkSettings {
            networks: network_settings(c, rec).networks,
        },
        mounts: crate::mounts::view(c, &rec.mounts),
    }
}

pub(crate) fn inspect_view(c: &Containers, rec: &Record) -> ContainerInspect {
    let dir = c.dir(&rec.id);
    let image = berth_graph::Digest::parse(&rec.image).ok();
    let lowers = image
        .and_then(|i| c.graph.lowerdirs(&i).ok())
        .unwrap_or_default();
    let lower = lowers
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let path = |f: &str| dir.join(f).display().to_string();
    // A container on another's network shows (and uses) the other's files.
    let etc_dir = crate::bundle::network_donor(c, rec)
        .map(|d| c.dir(&d))
        .unwrap_or_else(|| dir.clone());
    let etc = |f: &str| etc_dir.join(f).display().to_string();
    let st = &rec.state;
    ContainerInspect {
        id: rec.id.clone(),
        created: rec.created.clone(),
        path: rec.path.clone(),
        args: rec.args.clone(),
        state: ContainerState {
            status: st.status.clone(),
            running: st.running,
            paused: st.paused,
            restarting: st.restarting,
            oom_killed: st.oom_killed,
            dead: false,
            pid: st.pid,
            exit_code: st.exit_code,
            error: st.error.clone(),
            started_at: st.started_at.clone(),
            finished_at: st.finished_at.clone(),
            health: st.health.clone(),
        },
        image: rec.image.clone(),
        resolv_conf_path: etc("resolv.conf"),
        hostname_path: etc("hostname"),
        hosts_path: etc("hosts"),
        log_path: rec.log_path.clone(),
        name: rec.name.clone(),
        restart_count: rec.restart_count,
        driver: "overlay2".into(),
        platform: "linux".into(),
        mount_label: String::new(),
        process_label: String::new(),
        app_armor_profile: String::new(),
        exec_ids: Some(c.execs.running_of(&rec.id)).filter(|ids| !ids.is_empty()),
        host_config: rec.host_config.clone(),
        size_rw: None,
        size_root_fs: None,
        graph_driver: GraphDriver {
            name: "overlay2".into(),
            data: [
                ("LowerDir", lower),
                ("MergedDir", path("merged")),
                ("UpperDir", path("upper")),
                ("WorkDir", path("work")),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        },
        mounts: crate::mounts::view(c, &rec.mounts),
        config: rec.config.clone(),
        network_settings: network_settings(c, rec),
    }
}

/// The inspect document as API version `v` shows it: since 1.44 without the
/// `NetworkSettings` fields Docker deprecated.
fn inspect_reply(view: &ContainerInspect, v: ApiVersion) -> Result<Reply> {
    if v < ApiVersion::new(1, 44) {
        return Ok(Reply::json(view));
    }
    let mut out = serde_json::to_value(view).map_err(crate::sys)?;
    if let Some(o) = out["NetworkSettings"].as_object_mut() {
        for k in [
            "HairpinMode",
            "LinkLocalIPv6Address",
            "LinkLocalIPv6PrefixLen",
            "SecondaryIPAddresses",
            "SecondaryIPv6Addresses",
        ] {
            o.remove(k);
        }
    }
    Ok(Reply::json(&out))
}

pub(crate) async fn inspect(job: Job, c: Arc<Containers>) -> Result<Reply> {
    let entry = c.find(job.args.required("name")?)?;
    let rec = entry.snapshot();
    let mut view = inspect_view(&c, &rec);
    if job.args.bool("size") {
        let upper = c.dir(&rec.id).join("upper");
        let rw = tokio::task::spawn_blocking(move || crate::dir_size(&upper))
            .await
            .map_err(crate::sys)?;
        view.size_rw = Some(rw as i64);
        view.size_root_fs = Some((rw + image_size(&c, &rec)) as i64);
    }
    inspect_reply(&view, job.args.version)
}

/// The bytes of the container's image's layers.
fn image_size(c: &Containers, rec: &Record) -> u64 {
    berth_graph::Digest::parse(&rec.image)
        .ok()
        .and_then(|d| c.graph.image(&d))
        .map(|i| c.graph.image_size(&i))
        .unwrap_or(0)
}

/// `NetworkSettings`: the live one while the container runs, else the networks it
/// is configured for with no addresses, as dockerd shows a stopped container.
fn network_settings(c: &Containers, rec: &Record) -> NetworkSettings {
    if let Some(s) = &rec.network_settings {
        return s.clone();
    }
    let networks = rec
        .endpoints_config
        .iter()
        .map(|(name, cfg)| {
            let network_id = c
                .net()
                .and_then(|n| n.resolve(name).ok())
                .map(|(id, _)| id)
                .unwrap_or_default();
            let ep = EndpointSettings {
                network_id,
                ..cfg.requested()
            };
            (name.clone(), ep)
        })
        .collect();
    NetworkSettings {
        networks,
        ..Default::default()
    }
}

/// `Ports` of `GET /containers/json`: one entry per binding, and the exposed ones.
fn ps_ports(settings: Option<&NetworkSettings>) -> Vec<PortSummary> {
    let mut out = Vec::new();
    for (k, binds) in settings.iter().flat_map(|s| s.ports.iter()) {
        let (port, proto) = k.split_once('/').unwrap_or((k, "tcp"));
        let private_port = port.parse().unwrap_or(0);
        let kind = proto.to_string();
        match binds {
            Some(list) if !list.is_empty() => {
                for b in list {
                    out.push(PortSummary {
                        ip: Some(b.host_ip.clone()),
                        private_port,
                        public_port: Some(b.host_port.parse().unwrap_or(0)),
                        kind: kind.clone(),
                    });
                }
            }
            _ => out.push(PortSummary {
                private_port,
                kind,
                ..Default::default()
            }),
        }
    }
    out
}
