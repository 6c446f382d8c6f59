//! Legacy links (`--link name:alias`, `HostConfig.Links`) on the default
//! bridge, as dockerd keeps them: stored as `/target:/parent/alias`, and at the
//! start the target's address, ports, name and environment in the container's
//! environment (`ALIAS_PORT_80_TCP=tcp://…`, `ALIAS_NAME`, `ALIAS_ENV_X`) and a
//! line for it in `/etc/hosts`. `DELETE /containers/{parent}/{alias}?link=1`
//! removes one. On user-defined networks links are DNS aliases instead (the
//! network family resolves them).

use berth_api::container::HostConfig;
use berth_api::{ApiError, Result};

use crate::Containers;

/// `name[:alias]` → (`name`, `alias`), names without their `/`.
fn split(link: &str) -> (String, String) {
    let (n, a) = link.split_once(':').unwrap_or((link, link));
    let n = n.trim_start_matches('/').to_string();
    let a = a.rsplit('/').next().unwrap_or(a).to_string();
    (n, a)
}

/// At create: `HostConfig.Links` as dockerd stores them, each target checked.
/// On a user-defined network the target need not exist yet (a DNS alias).
pub(crate) fn normalize(
    c: &Containers,
    parent: &str,
    hc: &HostConfig,
) -> Result<Option<Vec<String>>> {
    let links = HostConfig::list(&hc.links);
    if links.is_empty() {
        return Ok(hc.links.clone());
    }
    let mode = hc.network_mode.as_str();
    let user_defined = !matches!(mode, "" | "default" | "bridge" | "host" | "none")
        && !mode.starts_with("container:");
    if mode == "host" {
        return Err(ApiError::invalid(
            "conflicting options: host type networking can't be used with links. This would result in undefined behavior",
        ));
    }
    let mut out = Vec::new();
    for l in links {
        let (name, alias) = split(l);
        match c.find(&name) {
            Ok(e) => {
                let target = e.snapshot();
                if target.host_config.network_mode == "host" {
                    return Err(ApiError::invalid(
                        "conflicting options: host type networking can't be used with links. This would result in undefined behavior",
                    ));
                }
                out.push(format!("{}:{parent}/{alias}", target.name));
            }
            Err(_) if user_defined => out.push(format!("/{name}:{parent}/{alias}")),
            Err(_) => {
                return Err(ApiError::invalid(format!(
                    "could not get container for {name}"
                )))
            }
        }
    }
    Ok(Some(out))
}

/// A link resolved at the start.
pub(crate) struct Resolved {
    pub env: Vec<String>,
    /// `(address, names)` for `/etc/hosts`.
    pub host: (String, String),
}

/// The links of `rec` to running containers on the default bridge; a target
/// that is not running fails the start, as with dockerd.
pub(crate) fn resolve(c: &Containers, rec: &crate::model::Record) -> Result<Vec<Resolved>> {
    if rec.network_mode() != "bridge" {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for l in HostConfig::list(&rec.host_config.links) {
        let Some((target, path)) = l.split_once(':') else {
            continue;
        };
        let alias = path.rsplit('/').next().unwrap_or(path);
        let t = c
            .find(target)
            .map_err(|_| ApiError::invalid(format!("could not get container for {target}")))?
            .snapshot();
        if !t.state.running {
            return Err(ApiError::invalid(format!(
                "Cannot link to a non running container: {target} AS {path}"
            )));
        }
        let ip = t
            .network_settings
            .as_ref()
            .map(|n| match n.networks.get("bridge") {
                Some(ep) => ep.ip_address.clone(),
                None => n.ip_address.clone(),
            })
            .unwrap_or_default();
        if ip.is_empty() {
            continue;
        }
        let prefix = alias.to_ascii_uppercase().replace('-', "_");
        let mut ports: Vec<(u16, String)> = t
            .config
            .exposed()
            .iter()
            .filter_map(|k| {
                let (p, proto) = k.split_once('/').unwrap_or((k, "tcp"));
                p.parse().ok().map(|p| (p, proto.to_string()))
            })
            .collect();
        ports.sort();
        let mut env = Vec::new();
        if let Some((p, proto)) = ports.first() {
            env.push(format!("{prefix}_PORT={proto}://{ip}:{p}"));
        }
        for (p, proto) in &ports {
            let up = proto.to_ascii_uppercase();
            env.push(format!("{prefix}_PORT_{p}_{up}={proto}://{ip}:{p}"));
            env.push(format!("{prefix}_PORT_{p}_{up}_ADDR={ip}"));
            env.push(format!("{prefix}_PORT_{p}_{up}_PORT={p}"));
            env.push(format!("{prefix}_PORT_{p}_{up}_PROTO={proto}"));
        }
        env.push(format!("{prefix}_NAME={path}"));
        for kv in &t.config.env {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            if k == "HOME" || k == "PATH" {
                continue;
            }
            env.push(format!("{prefix}_ENV_{k}={v}"));
        }
        let tname = t.name.trim_start_matches('/');
        let host = Some(t.config.hostname.as_str()).filter(|h| !h.is_empty());
        let mut names = format!("{alias} {}", host.unwrap_or(t.short_id()));
        if alias != tname {
            names.push(' ');
            names.push_str(tname);
        }
        out.push(Resolved {
            env,
            host: (ip, names),
        });
    }
    Ok(out)
}

/// `DELETE /containers/{parent}/{alias}?link=1`.
pub(crate) fn remove(c: &Containers, name: &str) -> Result<()> {
    let full = format!("/{}", name.trim_start_matches('/'));
    let Some((parent, alias)) = full.rsplit_once('/').filter(|(p, _)| !p.is_empty()) else {
        return Err(ApiError::conflict(
            "Conflict, cannot remove the default link name of the container",
        ));
    };
    let entry = c.find(parent).map_err(|_| {
        ApiError::not_found(format!("Cannot get parent {parent} for link name {full}"))
    })?;
    let rec = {
        let mut r = entry.record.lock().unwrap_or_else(|p| p.into_inner());
        let links = HostConfig::list(&r.host_config.links);
        let kept: Vec<String> = links
            .iter()
            .filter(|l| l.split_once(':').map(|(_, p)| p) != Some(full.as_str()))
            .cloned()
            .collect();
        if kept.len() == links.len() {
            return Err(ApiError::not_found(format!(
                "Could not find link {full} (alias {alias})"
            )));
        }
        r.host_config.links = Some(kept).filter(|k| !k.is_empty());
        r.clone()
    };
    c.save(&rec)
}

/// `DELETE /containers/{parent}/{alias}`: with `link=1` the link goes; without
/// it the name is no container's, as with dockerd.
pub(crate) async fn unlink(
    job: berth_engine::Job,
    c: std::sync::Arc<Containers>,
) -> Result<berth_engine::Reply> {
    let name = format!(
        "{}/{}",
        job.args.required("parent")?,
        job.args.required("alias")?
    );
    if !job.args.bool("link") {
        return Err(ApiError::not_found(format!("No such container: {name}")));
    }
    tokio::task::spawn_blocking(move || remove(&c, &name))
        .await
        .map_err(|e| ApiError::system(e.to_string()))??;
    Ok(berth_engine::Reply::empty(204))
}

#[cfg(test)]
mod tests {
    #[test]
    fn link_specs_split() {
        assert_eq!(super::split("db:alias"), ("db".into(), "alias".into()));
        assert_eq!(super::split("/db"), ("db".into(), "db".into()));
        assert_eq!(
            super::split("/db:/web/alias"),
            ("db".into(), "alias".into())
        );
    }
}
