//! `POST /containers/create`: the request's config merged with the image's, as
//! dockerd merges them, then recorded.

use std::sync::Arc;

use berth_api::{ApiError, Result};
use berth_engine::{Job, Reply};
use serde_json::{json, Map, Value};

use crate::model::{Record, State};
use crate::{event, names, Containers};

/// A string list given as a JSON array of strings.
pub(crate) fn string_list(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A command or list as dockerd accepts it: an array, or a single string.
fn strings(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::Array(_) => Some(string_list(v)),
        Value::String(s) => Some(vec![s.clone()]),
        _ => None,
    }
}

/// Image env first, then the request's, a later `KEY=` replacing an earlier one.
fn merge_env(image: &[String], request: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for e in image.iter().chain(request) {
        let key = e.split('=').next().unwrap_or(e);
        out.retain(|x| x.split('=').next().unwrap_or(x) != key);
        out.push(e.clone());
    }
    out
}

/// Merges `req` (the API's container config) with the image's config (`img`).
pub(crate) fn merge(req: &Value, img: &Value) -> Map<String, Value> {
    let mut c = Map::new();
    let img_env = strings(&img["Env"]).unwrap_or_default();
    let req_env = strings(&req["Env"]).unwrap_or_default();
    let req_entry = strings(&req["Entrypoint"]).filter(|v| !v.is_empty());
    let req_cmd = strings(&req["Cmd"]).filter(|v| !v.is_empty());
    // A new entrypoint drops the image's Cmd, as dockerd does; `[""]`
    // (`--entrypoint ""`, the builder's RUN) clears the image's entrypoint.
    let (entry, cmd) = match (req_entry, req_cmd) {
        (Some(e), c) if e.len() == 1 && e[0].is_empty() => (None, c),
        (Some(e), c) => (Some(e), c),
        (None, Some(c)) => (
            strings(&img["Entrypoint"]).filter(|v| !v.is_empty()),
            Some(c),
        ),
        (None, None) => (
            strings(&img["Entrypoint"]).filter(|v| !v.is_empty()),
            strings(&img["Cmd"]).filter(|v| !v.is_empty()),
        ),
    };
    let pick = |k: &str| -> Value {
        match &req[k] {
            Value::String(s) if !s.is_empty() => json!(s),
            _ => match &img[k] {
                Value::String(s) => json!(s),
                _ => json!(""),
            },
        }
    };
    let mut labels: Map<String, Value> = img["Labels"].as_object().cloned().unwrap_or_default();
    if let Some(l) = req["Labels"].as_object() {
        labels.extend(l.clone());
    }
    let b = |k: &str| json!(req[k].as_bool().unwrap_or(false));
    c.insert("Hostname".into(), req["Hostname"].clone());
    c.insert(
        "Domainname".into(),
        json!(req["Domainname"].as_str().unwrap_or("")),
    );
    c.insert("User".into(), pick("User"));
    for k in [
        "AttachStdin",
        "AttachStdout",
        "AttachStderr",
        "Tty",
        "OpenStdin",
        "StdinOnce",
    ] {
        c.insert(k.into(), b(k));
    }
    c.insert("Env".into(), json!(merge_env(&img_env, &req_env)));
    c.insert("Cmd".into(), cmd.map(|v| json!(v)).unwrap_or(Value::Null));
    c.insert("Image".into(), req["Image"].clone());
    let mut vols = img["Volumes"].as_object().cloned().unwrap_or_default();
    if let Some(v) = req["Volumes"].as_object() {
        vols.extend(v.clone());
    }
    c.insert(
        "Volumes".into(),
        if vols.is_empty() {
            Value::Null
        } else {
            Value::Object(vols)
        },
    );
    c.insert("WorkingDir".into(), pick("WorkingDir"));
    c.insert(
        "Entrypoint".into(),
        entry.map(|v| json!(v)).unwrap_or(Value::Null),
    );
    c.insert("OnBuild".into(), Value::Null);
    c.insert("Labels".into(), Value::Object(labels));
    let stop = pick("StopSignal");
    if stop != json!("") {
        c.insert("StopSignal".into(), stop);
    }
    let mut ports = img["ExposedPorts"].as_object().cloned().unwrap_or_default();
    if let Some(p) = req["ExposedPorts"].as_object() {
        ports.extend(p.clone());
    }
    if !ports.is_empty() {
        c.insert("ExposedPorts".into(), Value::Object(ports));
    }
    let health = merge_health(&req["Healthcheck"], &img["Healthcheck"]);
    if !health.is_null() {
        c.insert("Healthcheck".into(), health);
    }
    if let Some(t) = req["StopTimeout"].as_i64() {
        c.insert("StopTimeout".into(), json!(t));
    }
    c
}

/// The container's health check: the request's test (or the image's), with the
/// image's timings where the request leaves them unset, as dockerd merges them.
fn merge_health(req: &Value, img: &Value) -> Value {
    if !req.is_object() {
        return img.clone();
    }
    let mut out = if img.is_object() {
        img.clone()
    } else {
        json!({})
    };
    for (k, v) in req.as_object().into_iter().flatten() {
        let set = match v {
            Value::Array(a) => !a.is_empty(),
            Value::Number(n) => n.as_i64() != Some(0),
            Value::Null => false,
            _ => true,
        };
        if set {
            out[k] = v.clone();
        }
    }
    out
}

pub(crate) use berth_api::ids::random_id;

fn now() -> String {
    berth_runtime::exit::now()
}

pub(crate) async fn create(job: Job, c: Arc<Containers>) -> Result<Reply> {
    let req: Value = job.args.json()?;
    if !req.is_object() {
        return Err(ApiError::invalid(
            "config cannot be empty in order to create a container",
        ));
    }
    let image_name = req["Image"].as_str().unwrap_or("").to_string();
    if image_name.is_empty() {
        return Err(ApiError::invalid("No command specified"));
    }
    let image_id = c
        .graph
        .resolve(&image_name)
        .map_err(|_| ApiError::not_found(format!("No such image: {image_name}")))?;
    let image = c
        .graph
        .image(&image_id)
        .ok_or_else(|| ApiError::not_found(format!("No such image: {image_name}")))?;
    let img_cfg = image.config.config.clone().unwrap_or(Value::Null);
    let mut config = merge(&req, &img_cfg);
    let entry: Vec<String> = strings(&config["Entrypoint"]).unwrap_or_default();
    let cmd: Vec<String> = strings(&config["Cmd"]).unwrap_or_default();
    let argv: Vec<String> = entry.iter().chain(cmd.iter()).cloned().collect();
    if argv.is_empty() {
        return Err(ApiError::invalid("No command specified"));
    }
    let mut host_config = req["HostConfig"].clone();
    if !host_config.is_object() {
        host_config = json!({});
    }
    if host_config["NetworkMode"].as_str().unwrap_or("").is_empty() {
        host_config["NetworkMode"] = json!("bridge");
    }
    // Always recorded, with the daemon's defaults merged in, as dockerd does.
    host_config["LogConfig"] = c
        .log_defaults
        .for_container(&host_config["LogConfig"])?
        .to_json();
    match host_config["Runtime"].as_str().unwrap_or("") {
        "" => host_config["Runtime"] = json!(c.runtimes.default),
        crate::BUILTIN_ALIAS => host_config["Runtime"] = json!(crate::BUILTIN_RUNTIME),
        // Refused now, as dockerd does, not at the start.
        r => drop(c.runtimes.shim_args(r)?),
    }
    crate::resources::validate(&host_config)?;
    check_restart_policy(&host_config)?;
    crate::etc::check(&host_config)?;
    check_namespace_modes(&host_config, &config)?;
    if let Some(p) = host_config["CgroupParent"].as_str() {
        // A parent is a path under the hierarchy's root, never above it.
        if p.split('/').any(|c| c == "." || c == "..") {
            return Err(ApiError::invalid(format!("invalid cgroup parent: {p}")));
        }
    }
    if let Some(adj) = host_config["OomScoreAdj"].as_i64() {
        if !(-1000..=1000).contains(&adj) {
            return Err(ApiError::invalid(format!(
                "Invalid value {adj}, range for oom score adj is [-1000, 1000]"
            )));
        }
    }
    let endpoints_config = networks_of(&c, &req, &host_config)?;
    let id = random_id();
    if host_config["UTSMode"] == "host" {
        // The host's UTS namespace: the host's name, as dockerd shows it.
        let name = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default();
        config.insert("Hostname".into(), json!(name));
    } else if config["Hostname"].as_str().unwrap_or("").is_empty() {
        config.insert("Hostname".into(), json!(id[..12].to_string()));
    }
    // Names are allocated under one lock so two creates cannot take the same one.
    let name = {
        let mut names = c.names.lock().unwrap_or_else(|p| p.into_inner());
        let name = match job.args.str("name").filter(|n| !n.is_empty()) {
            Some(n) => {
                if !names::valid(n) {
                    return Err(ApiError::invalid(format!(
                        "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                    )));
                }
                let full = if n.starts_with('/') {
                    n.to_string()
                } else {
                    format!("/{n}")
                };
                if let Some(other) = names.get(&full) {
                    return Err(ApiError::conflict(format!(
                        "Conflict. The container name \"{full}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name."
                    )));
                }
                full
            }
            None => {
                let mut retry = 0;
                loop {
                    let n = format!("/{}", names::generate(retry));
                    if !names.contains_key(&n) {
                        break n;
                    }
                    retry += 1;
                }
            }
        };
        names.insert(name.clone(), id.clone());
        name
    };
    // Links are checked and volumes created now, as dockerd does; a failure
    // releases the name.
    let release = |e: ApiError| {
        c.names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&name);
        e
    };
    host_config["Links"] = crate::links::normalize(&c, &name, &host_config).map_err(release)?;
    let mounts = crate::mounts::resolve(
        &c,
        &Value::Object(config.clone()),
        &host_config,
        &img_cfg["Volumes"],
    )
    .map_err(release)?;
    let dir = c.dir(&id);
    let rec = Record {
        id: id.clone(),
        name: name.clone(),
        created: now(),
        image_name,
        image: image_id.to_string(),
        path: argv[0].clone(),
        args: argv[1..].to_vec(),
        config: Value::Object(config),
        host_config,
        state: State::default(),
        log_path: dir.join(format!("{id}-json.log")).display().to_string(),
        restart_count: 0,
        manually_stopped: false,
        shim_pid: 0,
        endpoints_config,
        network_settings: Value::Null,
        mounts,
    };
    let saved = std::fs::create_dir_all(&dir)
        .map_err(|e| ApiError::system(format!("{}: {e}", dir.display())))
        .and_then(|_| c.save(&rec));
    if let Err(e) = saved {
        c.names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&name);
        let _ = std::fs::remove_dir_all(&dir);
        return Err(e);
    }
    let fifos: Vec<&str> = [
        (
            "stdin.fifo",
            rec.config["OpenStdin"].as_bool().unwrap_or(false),
        ),
        ("resize.fifo", rec.tty()),
    ]
    .iter()
    .filter(|(_, want)| *want)
    .map(|(n, _)| *n)
    .collect();
    for f in fifos {
        if let Err(e) = nix::unistd::mkfifo(
            &dir.join(f),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        ) {
            c.names
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&name);
            let _ = std::fs::remove_dir_all(&dir);
            return Err(ApiError::system(format!("creating {f}: {e}")));
        }
    }
    c.insert(rec.clone());
    event(&job, &rec, "create", &[]);
    Ok(Reply::json_status(
        201,
        &json!({ "Id": id, "Warnings": [] }),
    ))
}

/// Why `--ipc container:X` is refused (see `lifecycle::namespace_modes`).
pub(crate) const IPC_JOIN_UNSUPPORTED: &str =
    "joining another container's IPC namespace (--ipc container:…) is not supported";

/// `--pid`, `--ipc` and `--uts` as dockerd checks them.
fn check_namespace_modes(hc: &Value, config: &serde_json::Map<String, Value>) -> Result<()> {
    let mode = |k: &str| hc[k].as_str().unwrap_or("").to_string();
    let joins = |m: &str| m.strip_prefix("container:").is_some_and(|c| !c.is_empty());
    let pid = mode("PidMode");
    if !(pid.is_empty() || pid == "host" || joins(&pid)) {
        return Err(ApiError::invalid(format!("invalid PID mode: {pid}")));
    }
    let ipc = mode("IpcMode");
    if !(matches!(ipc.as_str(), "" | "private" | "shareable" | "host" | "none") || joins(&ipc)) {
        return Err(ApiError::invalid(format!("invalid IPC mode: {ipc}")));
    }
    if joins(&ipc) {
        // See `lifecycle::namespace_modes`: refused at create, not left to fail at start.
        return Err(ApiError::invalid(IPC_JOIN_UNSUPPORTED));
    }
    let uts = mode("UTSMode");
    if !(uts.is_empty() || uts == "host") {
        return Err(ApiError::invalid(format!("invalid UTS mode: {uts}")));
    }
    if uts == "host"
        && !config
            .get("Hostname")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
    {
        return Err(ApiError::invalid(
            "conflicting options: hostname and the UTS mode",
        ));
    }
    Ok(())
}

/// `--restart` as dockerd checks it.
fn check_restart_policy(hc: &Value) -> Result<()> {
    let p = &hc["RestartPolicy"];
    let name = p["Name"].as_str().unwrap_or("");
    let max = p["MaximumRetryCount"].as_i64().unwrap_or(0);
    match name {
        "" | "no" | "always" | "unless-stopped" => {
            if max != 0 {
                return Err(ApiError::invalid(
                    "invalid restart policy: maximum retry count can only be used with 'on-failure'",
                ));
            }
        }
        "on-failure" => {
            if max < 0 {
                return Err(ApiError::invalid(
                    "invalid restart policy: maximum retry count cannot be negative",
                ));
            }
        }
        other => {
            return Err(ApiError::invalid(format!(
                "invalid restart policy: unknown policy '{other}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
            )))
        }
    }
    if !matches!(name, "" | "no") && hc["AutoRemove"].as_bool().unwrap_or(false) {
        return Err(ApiError::invalid(
            "conflicting options: cannot specify both --restart and --rm",
        ));
    }
    Ok(())
}

/// A MAC address as Go's `net.ParseMAC` takes one for Ethernet (six pairs).
fn check_mac(m: &str) -> Result<()> {
    if m.is_empty() {
        return Ok(());
    }
    let parts: Vec<&str> = m.split([':', '-']).collect();
    let ok = parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(format!("invalid MAC address: {m}")))
    }
}

/// The networks a new container joins, checked against the network store:
/// `NetworkingConfig.EndpointsConfig` plus the one its `NetworkMode` names.
fn networks_of(c: &Containers, req: &Value, hc: &Value) -> Result<Value> {
    let mut eps = req["NetworkingConfig"]["EndpointsConfig"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mode = match hc["NetworkMode"].as_str().unwrap_or("") {
        "" | "default" => "bridge",
        m => m,
    };
    if mode.starts_with("container:") || mode == "host" || mode == "none" {
        if !eps.is_empty() && mode.starts_with("container:") {
            return Err(ApiError::invalid(
                "conflicting options: container type network can't be used with other networks",
            ));
        }
        return Ok(Value::Object(eps));
    }
    // The CLI names the default network `default` in its endpoint settings too.
    if let Some(v) = eps.remove("default") {
        eps.entry("bridge").or_insert(v);
    }
    let Some(net) = c.net() else {
        return Ok(Value::Object(eps));
    };
    let (_, name) = net.resolve(mode)?;
    if !eps.contains_key(&name) {
        let v = eps.remove(mode).unwrap_or(json!({}));
        eps.insert(name.clone(), v);
    }
    for (_, ep) in eps.iter() {
        check_mac(ep["MacAddress"].as_str().unwrap_or(""))?;
    }
    check_mac(req["MacAddress"].as_str().unwrap_or(""))?;
    // The container-wide `MacAddress` (API < 1.44, and the CLI's --mac-address
    // before) is the primary network's endpoint's.
    if let Some(mac) = req["MacAddress"].as_str().filter(|m| !m.is_empty()) {
        if let Some(Value::Object(ep)) = eps.get_mut(&name) {
            let unset = ep
                .get("MacAddress")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty);
            if unset {
                ep.insert("MacAddress".into(), json!(mac));
            }
        }
    }
    for k in eps.keys() {
        net.resolve(k)?;
    }
    Ok(Value::Object(eps))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_like_dockerd() {
        let img = json!({"Env": ["PATH=/bin", "A=1"], "Cmd": ["sh"], "WorkingDir": "/srv", "Labels": {"a": "1"}});
        let c = merge(&json!({"Image": "x", "Env": ["A=2", "B=3"]}), &img);
        assert_eq!(c["Env"], json!(["PATH=/bin", "A=2", "B=3"]));
        assert_eq!(c["Cmd"], json!(["sh"]));
        assert_eq!(c["WorkingDir"], json!("/srv"));
        let c = merge(&json!({"Image": "x", "Entrypoint": ["/init"]}), &img);
        assert_eq!(
            c["Cmd"],
            Value::Null,
            "a new entrypoint drops the image's cmd"
        );
        assert_eq!(c["Entrypoint"], json!(["/init"]));
        let img2 = json!({"Entrypoint": ["/init"], "Cmd": ["x"]});
        let c = merge(
            &json!({"Image": "x", "Entrypoint": [""], "Cmd": ["sh"]}),
            &img2,
        );
        assert_eq!(
            c["Entrypoint"],
            Value::Null,
            "[\"\"] clears the image's entrypoint"
        );
        assert_eq!(c["Cmd"], json!(["sh"]));
        let c = merge(
            &json!({"Image": "x", "Cmd": ["echo", "hi"], "Labels": {"b": "2"}, "WorkingDir": "/w"}),
            &img,
        );
        assert_eq!(c["Cmd"], json!(["echo", "hi"]));
        assert_eq!(c["WorkingDir"], json!("/w"));
        assert_eq!(c["Labels"], json!({"a": "1", "b": "2"}));
    }
}
