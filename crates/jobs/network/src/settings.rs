//! `NetworkSettings` as inspect shows a container's endpoints and ports.

use std::collections::BTreeMap;
use std::path::Path;

use berth_api::container::{EndpointIpamConfig, EndpointSettings, NetworkSettings, PortBinding};

use crate::{Endpoint, Net, PortMap};

/// Docker's `NetworkSettings`.
pub(crate) fn settings_json(
    netns: Option<&Path>,
    endpoints: &[Endpoint],
    nets: &BTreeMap<String, Net>,
    ports: &[PortMap],
    exposed: &[String],
) -> NetworkSettings {
    let mut networks = BTreeMap::new();
    for ep in endpoints {
        let Some(n) = nets.get(&ep.network) else {
            continue;
        };
        let ipam_config = match (&ep.ipam_config, ep.static_ip) {
            (Some(c), _) => Some(c.clone()),
            (None, true) => Some(EndpointIpamConfig {
                ipv4_address: Some(ep.ip.to_string()),
                ..Default::default()
            }),
            _ => None,
        };
        let list = |v: &Vec<String>| Some(v.clone()).filter(|v| !v.is_empty());
        networks.insert(
            n.name.clone(),
            EndpointSettings {
                ipam_config,
                links: list(&ep.links),
                aliases: list(&ep.aliases),
                mac_address: ep.mac.clone(),
                driver_opts: ep.driver_opts.clone(),
                network_id: n.id.clone(),
                endpoint_id: ep.id.clone(),
                gateway: ep.gateway.to_string(),
                ip_address: ep.ip.to_string(),
                ip_prefix_len: ep.prefix.into(),
                dns_names: if n.predefined() {
                    None
                } else {
                    Some(ep.aliases.clone())
                },
                ..Default::default()
            },
        );
    }
    let mut port_map: berth_api::container::PortMap = BTreeMap::new();
    for p in ports {
        let key = format!("{}/{}", p.container_port, p.proto);
        port_map
            .entry(key)
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: p.host_ip.to_string(),
                host_port: p.host_port.to_string(),
            });
    }
    for k in exposed {
        port_map.entry(k.clone()).or_insert(None);
    }
    // The default bridge's endpoint also fills the top-level fields (legacy shape).
    let default = endpoints
        .iter()
        .find(|e| nets.get(&e.network).is_some_and(|n| n.is_default_bridge()));
    NetworkSettings {
        sandbox_id: netns
            .and_then(|p| p.file_name())
            .map(|f| f.to_string_lossy().to_string())
            .unwrap_or_default(),
        ports: port_map,
        sandbox_key: netns.map(|p| p.display().to_string()).unwrap_or_default(),
        endpoint_id: default.map(|e| e.id.clone()).unwrap_or_default(),
        gateway: default.map(|e| e.gateway.to_string()).unwrap_or_default(),
        ip_address: default.map(|e| e.ip.to_string()).unwrap_or_default(),
        ip_prefix_len: default.map(|e| e.prefix.into()).unwrap_or(0),
        mac_address: default.map(|e| e.mac.clone()).unwrap_or_default(),
        networks,
        ..Default::default()
    }
}
