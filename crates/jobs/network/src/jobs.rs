//! The network API: create, list, inspect, remove, prune.

use berth_engine::names;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use berth_api::filters::{label_matches, Filters};
use berth_api::{ApiError, Result};
use berth_engine::{Engine, Job, Reply};
use berth_netdriver::link;
use berth_netdriver::subnet::{self, Ipv4Net, Ipv6Net};
use serde_json::{json, Value};

use crate::{now, random_id, sys, Net, Networks};

fn event(engine: &Engine, n: &Net, action: &str, extra: &[(&str, String)]) {
    let mut attrs = BTreeMap::new();
    attrs.insert("name".to_string(), n.name.clone());
    attrs.insert("type".to_string(), n.driver.clone());
    for (k, v) in extra {
        attrs.insert(k.to_string(), v.clone());
    }
    engine.events().publish("network", action, &n.id, attrs);
}

/// Publishes `connect`/`disconnect` for a container (the container jobs call this
/// through the daemon).
pub fn publish_endpoint(
    engine: &Engine,
    nets: &Networks,
    network: &str,
    container: &str,
    action: &str,
) {
    if let Ok(n) = nets.find(network) {
        let mut attrs = BTreeMap::new();
        attrs.insert("container".to_string(), container.to_string());
        attrs.insert("name".to_string(), n.name.clone());
        attrs.insert("type".to_string(), n.driver.clone());
        engine.events().publish("network", action, &n.id, attrs);
    }
}

fn view(nets: &Networks, n: &Net, with_containers: bool) -> Value {
    let config: Vec<Value> = match (n.subnet, n.gateway) {
        (Some(s), Some(g)) => {
            let mut c = json!({ "Subnet": s.to_string(), "Gateway": g.to_string() });
            if let Some(r) = n.ip_range {
                c["IPRange"] = json!(r.to_string());
            }
            if !n.aux.is_empty() {
                c["AuxiliaryAddresses"] = json!(n
                    .aux
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_string()))
                    .collect::<BTreeMap<_, _>>());
            }
            vec![c]
        }
        _ => Vec::new(),
    };
    let mut config = config;
    if let (Some(s), Some(g)) = (n.subnet6, n.gateway6) {
        let mut c = json!({ "Subnet": s.to_string(), "Gateway": g.to_string() });
        if let Some(r) = n.ip_range6 {
            c["IPRange"] = json!(r.to_string());
        }
        config.push(c);
    }
    let mut containers = serde_json::Map::new();
    if with_containers {
        for (cid, name, ep) in nets.endpoints_of(&n.id) {
            containers.insert(
                cid,
                json!({
                    "Name": name,
                    "EndpointID": ep.id,
                    "MacAddress": ep.mac,
                    "IPv4Address": format!("{}/{}", ep.ip, ep.prefix),
                    "IPv6Address": ep.ip6.map(|a| format!("{a}/{}", ep.prefix6)).unwrap_or_default(),
                }),
            );
        }
    }
    json!({
        "Name": n.name,
        "Id": n.id,
        "Created": n.created,
        "Scope": "local",
        "Driver": n.driver,
        "EnableIPv4": true,
        "EnableIPv6": n.ipv6(),
        "IPAM": { "Driver": "default", "Options": null, "Config": config },
        "Internal": n.internal,
        "Attachable": n.attachable,
        "Ingress": false,
        "ConfigFrom": { "Network": "" },
        "ConfigOnly": false,
        "Containers": containers,
        "Options": n.options,
        "Labels": n.labels,
    })
}

fn parse_net(v: &Value, what: &str) -> Result<Option<Ipv4Net>> {
    match v.as_str().filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s
            .parse::<Ipv4Net>()
            .map(Some)
            .map_err(|_| ApiError::invalid(format!("invalid {what}: {s}"))),
    }
}

/// An IPv6 network's subnet and gateway: as configured, or a fresh unique
/// local /64 when none is given.
type V6 = (Option<Ipv6Net>, Option<Ipv6Addr>, Option<Ipv6Net>);

fn v6_config(nets: &Networks, c: Option<&Value>) -> Result<V6> {
    let used: Vec<Ipv6Net> = nets.nets().iter().filter_map(|n| n.subnet6).collect();
    let subnet = match c.and_then(|c| c["Subnet"].as_str()) {
        Some(s) => {
            let net = s
                .parse::<Ipv6Net>()
                .map_err(|_| ApiError::invalid(format!("invalid subnet: {s}")))?
                .trunc();
            if used.iter().any(|u| subnet::overlaps6(u, &net)) {
                return Err(ApiError::forbidden(
                    "Pool overlaps with other one on this address space",
                ));
            }
            net
        }
        None if !nets.cfg.pools6.is_empty() => subnet::pick6(&nets.cfg.pools6, &used)
            .ok_or_else(|| {
                ApiError::system("could not find an available, non-overlapping IPv6 address pool among the defaults to assign to the network")
            })?,
        None => loop {
            let u = subnet::ula_subnet();
            if !used.iter().any(|x| subnet::overlaps6(x, &u)) {
                break u;
            }
        },
    };
    let gateway = match c
        .and_then(|c| c["Gateway"].as_str())
        .filter(|g| !g.is_empty())
    {
        Some(g) => {
            let a = g
                .parse::<Ipv6Addr>()
                .map_err(|_| ApiError::invalid(format!("invalid gateway address: {g}")))?;
            if !subnet.contains(&a) {
                return Err(ApiError::invalid(format!(
                    "no matching subnet for gateway {a}"
                )));
            }
            a
        }
        None => subnet::first_host6(&subnet),
    };
    let range = match c
        .and_then(|c| c["IPRange"].as_str())
        .filter(|r| !r.is_empty())
    {
        Some(r) => {
            let r = r
                .parse::<Ipv6Net>()
                .map_err(|_| ApiError::invalid(format!("invalid IP range: {r}")))?;
            if !subnet.contains(&r.network()) {
                return Err(ApiError::invalid(format!(
                    "IP range {r} is not inside the subnet {subnet}"
                )));
            }
            Some(r)
        }
        None => None,
    };
    Ok((Some(subnet), Some(gateway), range))
}

pub(crate) async fn create(job: Job, nets: Arc<Networks>) -> Result<Reply> {
    let req: Value = job.args.json()?;
    let name = req["Name"].as_str().unwrap_or("").to_string();
    if name.is_empty() {
        return Err(ApiError::invalid("network name must not be empty"));
    }
    let driver = req["Driver"]
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or("bridge");
    let lan = crate::lan::is_lan(driver);
    if driver != "bridge" && !lan {
        if matches!(driver, "host" | "null") {
            return Err(ApiError::forbidden(format!(
                "only one instance of \"{driver}\" network is allowed"
            )));
        }
        return Err(ApiError::not_found(format!(
            "plugin \"{driver}\" not found"
        )));
    }
    let enable_ipv6 = req["EnableIPv6"].as_bool().unwrap_or(false);
    let _ops = nets.ops.lock().await;
    if nets.nets().iter().any(|n| n.name == name) {
        return Err(ApiError::conflict(format!(
            "network with name {name} already exists"
        )));
    }
    let ipam = req["IPAM"]["Config"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    // IPv6 entries are told apart by their subnet; the first other one is IPv4's.
    let is_v6 = |c: &Value| c["Subnet"].as_str().is_some_and(|s| s.contains(':'));
    let first = ipam
        .iter()
        .find(|c| !is_v6(c))
        .cloned()
        .unwrap_or(Value::Null);
    let v6 = ipam.iter().find(|c| is_v6(c)).cloned();
    // An IPv6 pool is one's own request for IPv6, `EnableIPv6` or not (docker-py's
    // suite gives pools alone and expects their addresses).
    let (subnet6, gateway6, range6) = if enable_ipv6 || v6.is_some() {
        v6_config(&nets, v6.as_ref())?
    } else {
        (None, None, None)
    };
    let asked = parse_net(&first["Subnet"], "subnet")?;
    let ip_range = parse_net(&first["IPRange"], "IP range")?;
    let gateway = match first["Gateway"].as_str().filter(|s| !s.is_empty()) {
        Some(g) => Some(
            g.parse::<Ipv4Addr>()
                .map_err(|_| ApiError::invalid(format!("invalid gateway address: {g}")))?,
        ),
        None => None,
    };
    let used = nets.used_subnets().await;
    let subnet = match asked {
        Some(s) => {
            let s = s.trunc();
            if nets.nets().iter().filter_map(|n| n.subnet).any(|u| subnet::overlaps(&u, &s)) {
                return Err(ApiError::forbidden("Pool overlaps with other one on this address space"));
            }
            s
        }
        None => subnet::pick(&nets.cfg.pools, &used).ok_or_else(|| {
            ApiError::system("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network")
        })?,
    };
    if let Some(r) = ip_range {
        if !subnet.contains(&r.network()) {
            return Err(ApiError::invalid(format!(
                "IP range {r} is not inside the subnet {subnet}"
            )));
        }
    }
    let gateway = gateway.unwrap_or_else(|| subnet::first_host(&subnet));
    let mut aux = BTreeMap::new();
    if let Some(m) = first["AuxiliaryAddresses"].as_object() {
        for (k, v) in m {
            let a = v
                .as_str()
                .and_then(|a| a.parse::<Ipv4Addr>().ok())
                .ok_or_else(|| ApiError::invalid(format!("invalid auxiliary address {k}: {v}")))?;
            if !subnet.contains(&a) {
                return Err(ApiError::invalid(format!(
                    "auxiliary address: ({k}:{a}) must belong to the master pool: {subnet}"
                )));
            }
            aux.insert(k.clone(), a);
        }
    }
    if !subnet.contains(&gateway) {
        return Err(ApiError::invalid(format!(
            "no matching subnet for gateway {gateway}"
        )));
    }
    let id = random_id();
    let options: BTreeMap<String, String> =
        serde_json::from_value(req["Options"].clone()).unwrap_or_default();
    let labels: BTreeMap<String, String> =
        serde_json::from_value(req["Labels"].clone()).unwrap_or_default();
    let bridge = if lan {
        String::new()
    } else {
        options
            .get("com.docker.network.bridge.name")
            .cloned()
            .unwrap_or_else(|| format!("bbr-{}", &id[..11]))
    };
    if !lan && (bridge.len() > 15 || bridge.is_empty()) {
        return Err(ApiError::invalid(format!("invalid bridge name: {bridge}")));
    }
    if !lan && nets.nets().iter().any(|n| n.bridge == bridge) {
        return Err(ApiError::forbidden(format!(
            "bridge name {bridge} is already in use"
        )));
    }
    // A macvlan or ipvlan network without a parent reaches nothing outside.
    let no_parent = lan && options.get("parent").is_none_or(|p| p.is_empty());
    let mut n = Net {
        id: id.clone(),
        name,
        driver: driver.into(),
        created: now(),
        subnet: Some(subnet),
        gateway: Some(gateway),
        ip_range,
        internal: req["Internal"].as_bool().unwrap_or(false) || no_parent,
        attachable: req["Attachable"].as_bool().unwrap_or(false),
        labels,
        options,
        aux,
        bridge: bridge.clone(),
        allocated: BTreeMap::new(),
        subnet6,
        gateway6,
        ip_range6: range6,
        allocated6: BTreeMap::new(),
        made_link: None,
    };
    let h = link::connect().map_err(sys)?;
    if lan {
        crate::lan::kind(driver, &n.options)?;
        crate::lan::check_conflicts(&nets, &n)?;
        crate::lan::plan(&h, &mut n).await?;
    }
    // The record first: a crash after it leaves a network the next start finishes
    // (its bridge or parent is made then); a link without a record would be lost.
    nets.save_net(&n)?;
    if lan {
        if let Err(e) = crate::lan::make(&h, &n).await {
            let _ = std::fs::remove_file(nets.root.join(format!("{}.json", n.id)));
            return Err(e);
        }
        nets.lock().nets.insert(n.id.clone(), n.clone());
        event(job.engine(), &n, "create", &[]);
        return Ok(Reply::json_status(201, &json!({ "Id": id, "Warning": "" })));
    }
    let gw = Ipv4Net::new(gateway, subnet.prefix_len()).map_err(sys)?;
    if let Err(e) = link::ensure_bridge(&h, &bridge, gw, n.mtu(nets.cfg.mtu), &nets.owner()).await {
        let _ = link::delete(&h, &bridge).await;
        let _ = std::fs::remove_file(nets.root.join(format!("{}.json", n.id)));
        return Err(ApiError::system(format!("creating bridge {bridge}: {e}")));
    }
    if let Err(e) = crate::store::bridge_v6(&h, &n).await {
        let _ = link::delete(&h, &bridge).await;
        let _ = std::fs::remove_file(nets.root.join(format!("{}.json", n.id)));
        return Err(e);
    }
    nets.lock().nets.insert(n.id.clone(), n.clone());
    if !n.internal {
        crate::rules::enable_forwarding(n.ipv6());
    }
    nets.apply_rules().await;
    event(job.engine(), &n, "create", &[]);
    Ok(Reply::json_status(201, &json!({ "Id": id, "Warning": "" })))
}

pub(crate) async fn list(job: Job, nets: Arc<Networks>) -> Result<Reply> {
    let filters = Filters::parse(job.args.str("filters").unwrap_or(""))?;
    filters.validate(&["driver", "id", "label", "name", "scope", "type", "dangling"])?;
    let mut out = Vec::new();
    for n in nets.nets() {
        let used = !nets.endpoints_of(&n.id).is_empty();
        let keep = filters.any_or_absent("driver", |d| d == n.driver)
            && filters.any_or_absent("id", |i| n.id.starts_with(i))
            && filters.any_or_absent("name", |x| n.name.contains(x))
            && filters.any_or_absent("scope", |s| s == "local")
            && filters.any_or_absent("type", |t| match t {
                "custom" => !n.predefined(),
                "builtin" => n.predefined(),
                _ => false,
            })
            && filters.any_or_absent("dangling", |d| {
                (d == "true" || d == "1") == (!used && !n.predefined())
            })
            && filters
                .get("label")
                .iter()
                .all(|l| label_matches(l, &n.labels));
        if keep {
            out.push(view(&nets, &n, false));
        }
    }
    Ok(Reply::json(&out))
}

pub(crate) async fn inspect(job: Job, nets: Arc<Networks>) -> Result<Reply> {
    let n = nets.find(job.args.required("id")?)?;
    Ok(Reply::json(&view(&nets, &n, true)))
}

async fn remove(engine: &Engine, nets: &Arc<Networks>, n: &Net) -> Result<()> {
    if n.predefined() {
        return Err(ApiError::forbidden(format!(
            "{} is a pre-defined network and cannot be removed",
            n.name
        )));
    }
    let _ops = nets.ops.lock().await;
    if !nets.endpoints_of(&n.id).is_empty() {
        return Err(ApiError::forbidden(format!(
            "error while removing network: network {} id {} has active endpoints",
            n.name, n.id
        )));
    }
    let h = link::connect().map_err(sys)?;
    // A bridge, or the parent a LAN network had made for it.
    let own = if crate::lan::is_lan(&n.driver) {
        n.made_link.clone()
    } else {
        Some(n.bridge.clone())
    };
    if let Some(l) = own {
        link::delete(&h, &l)
            .await
            .map_err(|e| ApiError::system(format!("removing {l}: {e}")))?;
    }
    nets.lock().nets.remove(&n.id);
    let _ = std::fs::remove_file(nets.root.join(format!("{}.json", n.id)));
    nets.apply_rules().await;
    event(engine, n, "destroy", &[]);
    Ok(())
}

pub(crate) async fn delete(job: Job, nets: Arc<Networks>) -> Result<Reply> {
    let n = nets.find(job.args.required("id")?)?;
    let engine = job.engine().clone();
    remove(&engine, &nets, &n).await?;
    Ok(Reply::empty(204))
}

pub(crate) async fn prune(job: Job, nets: Arc<Networks>) -> Result<Reply> {
    let filters = Filters::parse(job.args.str("filters").unwrap_or(""))?;
    filters.validate(&["until", "label", "label!"])?;
    let until = filters.until()?;
    let mut deleted = Vec::new();
    let engine = job.engine().clone();
    for n in nets.nets() {
        if n.predefined() || !nets.endpoints_of(&n.id).is_empty() {
            continue;
        }
        if !filters
            .get("label")
            .iter()
            .all(|l| label_matches(l, &n.labels))
        {
            continue;
        }
        if filters
            .get("label!")
            .iter()
            .any(|l| label_matches(l, &n.labels))
        {
            continue;
        }
        if let Some(t) = until {
            let created = time::OffsetDateTime::parse(
                &n.created,
                &time::format_description::well_known::Rfc3339,
            )
            .map(|c| c.unix_timestamp())
            .unwrap_or(0);
            if created >= t {
                continue;
            }
        }
        if remove(&engine, &nets, &n).await.is_ok() {
            deleted.push(n.name.clone());
        }
    }
    Ok(Reply::json(&json!({ "NetworksDeleted": deleted })))
}

/// Registers the network jobs.
pub fn register(engine: &Engine, nets: Arc<Networks>) {
    macro_rules! job {
        (quick $name:expr, $f:path) => {{
            let n = nets.clone();
            engine.register_quick($name, move |job: Job| $f(job, n.clone()));
        }};
        ($name:expr, $f:path) => {{
            let n = nets.clone();
            engine.register($name, move |job: Job| $f(job, n.clone()));
        }};
    }
    job!(names::network::CREATE, create);
    job!(quick names::network::LIST, list);
    job!(quick names::network::INSPECT, inspect);
    job!(names::network::DELETE, delete);
    job!(names::network::PRUNE, prune);
}
