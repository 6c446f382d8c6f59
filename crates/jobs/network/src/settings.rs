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
        let v6 = |a: Option<std::net::Ipv6Addr>| a.map(|a| a.to_string()).unwrap_or_default();
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
                global_ipv6_address: v6(ep.ip6),
                global_ipv6_prefix_len: if ep.ip6.is_some() {
                    ep.prefix6.into()
                } else {
                    0
                },
                ipv6_gateway: v6(ep.gateway6),
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
        global_ipv6_address: default
            .and_then(|e| e.ip6)
            .map(|a| a.to_string())
            .unwrap_or_default(),
        global_ipv6_prefix_len: default
            .filter(|e| e.ip6.is_some())
            .map(|e| e.prefix6.into())
            .unwrap_or(0),
        ipv6_gateway: default
            .and_then(|e| e.gateway6)
            .map(|a| a.to_string())
            .unwrap_or_default(),
        networks,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn endpoint(net: &Net, ip: [u8; 4], aliases: &[&str], static_ip: bool) -> Endpoint {
        Endpoint {
            network: net.id.clone(),
            id: format!("ep-{}", ip[3]),
            ip: Ipv4Addr::from(ip),
            prefix: 24,
            gateway: Ipv4Addr::new(ip[0], ip[1], ip[2], 1),
            mac: "02:42:0a:00:00:02".into(),
            veth: "veth0".into(),
            ifname: "eth0".into(),
            aliases: aliases.iter().map(|s| s.to_string()).collect(),
            static_ip,
            ipam_config: None,
            driver_opts: None,
            links: Vec::new(),
            ip6: None,
            prefix6: 0,
            gateway6: None,
        }
    }

    #[test]
    fn settings_show_the_default_bridge_at_the_top_and_every_network_below() {
        let bridge = Net::empty("bridge", "bridge");
        let user = Net::empty("app", "bridge");
        let nets: BTreeMap<String, Net> = [bridge.clone(), user.clone()]
            .into_iter()
            .map(|n| (n.id.clone(), n))
            .collect();
        let eps = [
            endpoint(&bridge, [172, 18, 0, 2], &[], false),
            endpoint(&user, [10, 1, 0, 5], &["web", "abc123"], true),
        ];
        let ports = [PortMap {
            proto: "tcp".into(),
            container_port: 80,
            host_ip: Ipv4Addr::LOCALHOST.into(),
            host_port: 8080,
            twin: false,
        }];
        let s = settings_json(
            Some(Path::new("/run/berth/netns/abc")),
            &eps,
            &nets,
            &ports,
            &["443/tcp".into()],
        );
        // The default bridge's endpoint fills the legacy top-level fields.
        assert_eq!((s.ip_address.as_str(), s.ip_prefix_len), ("172.18.0.2", 24));
        assert_eq!(
            (s.sandbox_key.as_str(), s.sandbox_id.as_str()),
            ("/run/berth/netns/abc", "abc")
        );
        let app = &s.networks["app"];
        assert_eq!(app.ip_address, "10.1.0.5");
        assert_eq!(
            app.dns_names.as_deref(),
            Some(&["web".to_string(), "abc123".into()][..])
        );
        assert_eq!(
            app.ipam_config
                .as_ref()
                .and_then(|c| c.ipv4_address.as_deref()),
            Some("10.1.0.5"),
            "an address asked for is shown as asked"
        );
        assert_eq!(
            s.networks["bridge"].dns_names, None,
            "no DNS on the default bridge"
        );
        let bound = s.ports["80/tcp"].clone().unwrap_or_default();
        assert_eq!(
            (bound[0].host_ip.as_str(), bound[0].host_port.as_str()),
            ("127.0.0.1", "8080")
        );
        assert_eq!(s.ports["443/tcp"], None, "exposed only");
    }
}
