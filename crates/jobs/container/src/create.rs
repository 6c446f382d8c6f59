//! `POST /containers/create`: the request's config merged with the image's, as
//! dockerd merges them, then recorded.

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_api::container::{
    ContainerConfig, CreateRequest, EndpointSettings, HealthConfig, HostConfig, StrSlice,
};
use berth_api::{ApiError, Result};
use berth_engine::{Job, Reply};
use serde_json::json;

use crate::model::{Record, State};
use crate::{event, names, Containers};

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
pub(crate) fn merge(req: &ContainerConfig, img: &ContainerConfig) -> ContainerConfig {
    let non_empty = |v: &Option<StrSlice>| StrSlice::non_empty(v).map(|s| StrSlice(s.to_vec()));
    // A new entrypoint drops the image's Cmd, as dockerd does; `[""]`
    // (`--entrypoint ""`, the builder's RUN) clears the image's entrypoint.
    let (entrypoint, cmd) = match (non_empty(&req.entrypoint), non_empty(&req.cmd)) {
        (Some(e), c) if e.0.len() == 1 && e.0[0].is_empty() => (None, c),
        (Some(e), c) => (Some(e), c),
        (None, Some(c)) => (non_empty(&img.entrypoint), Some(c)),
        (None, None) => (non_empty(&img.entrypoint), non_empty(&img.cmd)),
    };
    let pick = |r: &str, i: &str| if r.is_empty() { i } else { r }.to_string();
    let mut labels = img.labels.clone();
    labels.extend(req.labels.clone());
    let mut volumes = img.volumes.clone().unwrap_or_default();
    volumes.extend(req.volumes.clone().unwrap_or_default());
    let mut ports = img.exposed_ports.clone().unwrap_or_default();
    ports.extend(req.exposed_ports.clone().unwrap_or_default());
    let stop_signal = pick(
        req.stop_signal.as_deref().unwrap_or(""),
        img.stop_signal.as_deref().unwrap_or(""),
    );
    ContainerConfig {
        hostname: req.hostname.clone(),
        domainname: req.domainname.clone(),
        user: pick(&req.user, &img.user),
        attach_stdin: req.attach_stdin,
        attach_stdout: req.attach_stdout,
        attach_stderr: req.attach_stderr,
        exposed_ports: Some(ports).filter(|p| !p.is_empty()),
        tty: req.tty,
        open_stdin: req.open_stdin,
        stdin_once: req.stdin_once,
        env: merge_env(&img.env, &req.env),
        cmd,
        healthcheck: merge_health(req.healthcheck.as_ref(), img.healthcheck.as_ref()),
        args_escaped: None,
        image: req.image.clone(),
        volumes: Some(volumes).filter(|v| !v.is_empty()),
        working_dir: pick(&req.working_dir, &img.working_dir),
        entrypoint,
        network_disabled: req.network_disabled,
        mac_address: None,
        on_build: None,
        labels,
        stop_signal: Some(stop_signal).filter(|s| !s.is_empty()),
        stop_timeout: req.stop_timeout,
        shell: None,
        extra: req.extra.clone(),
    }
}

/// The container's health check: the request's test (or the image's), with the
/// image's timings where the request leaves them unset, as dockerd merges them.
fn merge_health(req: Option<&HealthConfig>, img: Option<&HealthConfig>) -> Option<HealthConfig> {
    let Some(req) = req else {
        return img.cloned();
    };
    let mut out = img.cloned().unwrap_or_default();
    let set = |n: &Option<i64>| n.filter(|n| *n != 0);
    if req.test.as_ref().is_some_and(|t| !t.is_empty()) {
        out.test = req.test.clone();
    }
    out.interval = set(&req.interval).or(out.interval);
    out.timeout = set(&req.timeout).or(out.timeout);
    out.start_period = set(&req.start_period).or(out.start_period);
    out.start_interval = set(&req.start_interval).or(out.start_interval);
    out.retries = set(&req.retries).or(out.retries);
    out.extra.extend(req.extra.clone());
    Some(out)
}

pub(crate) use berth_api::ids::random_id;

fn now() -> String {
    berth_runtime::exit::now()
}

pub(crate) async fn create(job: Job, c: Arc<Containers>) -> Result<Reply> {
    let body = job.args.body_bytes();
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::invalid(
            "config cannot be empty in order to create a container",
        ));
    }
    let req = CreateRequest::parse(body)?;
    let image_name = req.config.image.clone();
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
    let img_cfg = crate::image_config(image.config.config.as_ref())?;
    let mut config = merge(&req.config, &img_cfg);
    let argv: Vec<String> = config
        .entrypoint
        .iter()
        .chain(config.cmd.iter())
        .flat_map(|s| s.0.iter().cloned())
        .collect();
    if argv.is_empty() {
        return Err(ApiError::invalid("No command specified"));
    }
    let mut host_config = req.host_config.clone().unwrap_or_default();
    if host_config.network_mode.is_empty() {
        host_config.network_mode = "bridge".into();
    }
    // Always recorded, with the daemon's defaults merged in, as dockerd does.
    host_config.log_config = c
        .log_defaults
        .for_container(&host_config.log_config)?
        .to_config();
    let runtimes = c.runtimes();
    match host_config.runtime.as_str() {
        "" => host_config.runtime = runtimes.default.clone(),
        crate::BUILTIN_ALIAS => host_config.runtime = crate::BUILTIN_RUNTIME.into(),
        // Refused now, as dockerd does, not at the start.
        r => drop(runtimes.binary(r)?),
    }
    // Recorded, as dockerd records it: a later `--default-shm-size` leaves
    // existing containers as they were made.
    if host_config.shm_size == 0 {
        host_config.shm_size = c.default_shm_size();
    }
    crate::validate::host_config(&host_config, &config)?;
    crate::cgroupconf::at_create(&c.cgroup_settings(), &mut host_config)?;
    // Recorded with Docker's defaults, as dockerd records them.
    if !host_config.privileged {
        let list = |d: &[&str]| Some(d.iter().map(|s| s.to_string()).collect());
        if host_config.masked_paths.is_none() {
            host_config.masked_paths = list(berth_runtime::spec::MASKED);
        }
        if host_config.readonly_paths.is_none() {
            host_config.readonly_paths = list(berth_runtime::spec::READONLY);
        }
    }
    // The donors of `--ipc container:NAME` and `--network container:NAME` must
    // exist now, and are recorded by their full IDs, as dockerd records them
    // (it answers 400 for a donor it cannot find).
    let full_id = |donor: &str| -> Result<String> {
        c.find(donor)
            .map(|e| e.snapshot().id)
            .map_err(|e| ApiError::invalid(e.message))
    };
    if let Some(donor) = host_config.ipc_mode.strip_prefix("container:") {
        host_config.ipc_mode = format!("container:{}", full_id(donor)?);
    }
    if let Some(donor) = host_config.network_mode.strip_prefix("container:") {
        // It takes the donor's hostname and /etc files at its start.
        if !req.config.hostname.is_empty() {
            return Err(ApiError::invalid(
                "conflicting options: hostname and the network mode",
            ));
        }
        host_config.network_mode = format!("container:{}", full_id(donor)?);
    }
    let endpoints_config = networks_of(&c, &req, &host_config)?;
    let id = random_id();
    if host_config.uts_mode == "host" {
        // The host's UTS namespace: the host's name, as dockerd shows it.
        config.hostname = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default();
    } else if config.hostname.is_empty() {
        config.hostname = id[..12].to_string();
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
    host_config.links = crate::links::normalize(&c, &name, &host_config).map_err(release)?;
    let mut mounts = crate::mounts::resolve(&c, &config, &host_config, img_cfg.volumes.as_ref())
        .map_err(release)?;
    crate::rro::at_create(&mut mounts, &host_config, job.args.version).map_err(release)?;
    let dir = c.dir(&id);
    let rec = Record {
        id: id.clone(),
        name: name.clone(),
        created: now(),
        image_name,
        image: image_id.to_string(),
        path: argv[0].clone(),
        args: argv[1..].to_vec(),
        config,
        host_config,
        state: State::default(),
        log_path: dir.join(format!("{id}-json.log")).display().to_string(),
        restart_count: 0,
        manually_stopped: false,
        shim_pid: 0,
        endpoints_config,
        network_settings: None,
        mounts,
        cgroups_path: String::new(),
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
        ("stdin.fifo", rec.config.open_stdin),
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
fn networks_of(
    c: &Containers,
    req: &CreateRequest,
    hc: &HostConfig,
) -> Result<BTreeMap<String, EndpointSettings>> {
    let mut eps = req
        .networking_config
        .as_ref()
        .map(|n| n.endpoints_config.clone())
        .unwrap_or_default();
    let mode = hc.network_mode();
    if mode.starts_with("container:") || mode == "host" || mode == "none" {
        if !eps.is_empty() && mode.starts_with("container:") {
            return Err(ApiError::invalid(
                "conflicting options: container type network can't be used with other networks",
            ));
        }
        return Ok(eps);
    }
    // The CLI names the default network `default` in its endpoint settings too.
    if let Some(v) = eps.remove("default") {
        eps.entry("bridge".into()).or_insert(v);
    }
    let Some(net) = c.net() else {
        return Ok(eps);
    };
    let (_, name) = net.resolve(mode)?;
    if !eps.contains_key(&name) {
        let v = eps.remove(mode).unwrap_or_default();
        eps.insert(name.clone(), v);
    }
    for ep in eps.values() {
        check_mac(&ep.mac_address)?;
    }
    let mac = req.config.mac_address.as_deref().unwrap_or("");
    check_mac(mac)?;
    // The container-wide `MacAddress` (API < 1.44, and the CLI's --mac-address
    // before) is the primary network's endpoint's.
    if !mac.is_empty() {
        if let Some(ep) = eps.get_mut(&name) {
            if ep.mac_address.is_empty() {
                ep.mac_address = mac.to_string();
            }
        }
    }
    for k in eps.keys() {
        net.resolve(k)?;
    }
    Ok(eps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(v: serde_json::Value) -> ContainerConfig {
        serde_json::from_value(v).unwrap_or_default()
    }

    fn strs(v: &[&str]) -> Option<StrSlice> {
        Some(StrSlice(v.iter().map(|s| s.to_string()).collect()))
    }

    #[test]
    fn merges_like_dockerd() {
        let img = cfg(
            json!({"Env": ["PATH=/bin", "A=1"], "Cmd": ["sh"], "WorkingDir": "/srv", "Labels": {"a": "1"}}),
        );
        let c = merge(&cfg(json!({"Image": "x", "Env": ["A=2", "B=3"]})), &img);
        assert_eq!(c.env, vec!["PATH=/bin", "A=2", "B=3"]);
        assert_eq!(c.cmd, strs(&["sh"]));
        assert_eq!(c.working_dir, "/srv");
        let c = merge(&cfg(json!({"Image": "x", "Entrypoint": ["/init"]})), &img);
        assert_eq!(c.cmd, None, "a new entrypoint drops the image's cmd");
        assert_eq!(c.entrypoint, strs(&["/init"]));
        let img2 = cfg(json!({"Entrypoint": ["/init"], "Cmd": ["x"]}));
        let c = merge(
            &cfg(json!({"Image": "x", "Entrypoint": [""], "Cmd": ["sh"]})),
            &img2,
        );
        assert_eq!(c.entrypoint, None, "[\"\"] clears the image's entrypoint");
        assert_eq!(c.cmd, strs(&["sh"]));
        let c = merge(
            &cfg(json!({"Image": "x", "Cmd": "echo hi", "Labels": {"b": "2"}, "WorkingDir": "/w"})),
            &img,
        );
        assert_eq!(
            c.cmd,
            strs(&["echo hi"]),
            "a string command is one argument"
        );
        assert_eq!(c.working_dir, "/w");
        assert_eq!(
            serde_json::to_value(&c.labels).ok(),
            Some(json!({"a": "1", "b": "2"}))
        );
        let out = serde_json::to_value(&c).unwrap_or_default();
        for k in ["Cmd", "Entrypoint", "Volumes", "OnBuild"] {
            assert!(out.get(k).is_some(), "{k} is always shown");
        }
        for k in ["ExposedPorts", "Healthcheck", "StopSignal", "StopTimeout"] {
            assert!(out.get(k).is_none(), "{k} is shown only when set");
        }
    }

    #[test]
    fn health_checks_merge_timings_from_the_image() {
        let img = cfg(json!({"Healthcheck": {"Test": ["CMD", "a"], "Interval": 5, "Retries": 2}}));
        let c = merge(
            &cfg(json!({"Healthcheck": {"Test": ["CMD", "b"], "Interval": 0, "Timeout": 7}})),
            &img,
        );
        let h = c.healthcheck.unwrap_or_default();
        assert_eq!(h.test, Some(vec!["CMD".into(), "b".into()]));
        assert_eq!(
            (h.interval, h.timeout, h.retries),
            (Some(5), Some(7), Some(2))
        );
    }
}
