//! Published ports: which bindings a container asks for, and which host ports
//! are taken.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use berth_api::container::PortBinding;
use berth_api::{ApiError, Result};

use crate::{Networks, PortMap, Request};

impl Networks {
    /// Whether a container holds `ip:port`: the same address, or either
    /// unspecified, within one address family (`::` is IPv6 only).
    pub(crate) fn port_taken(&self, proto: &str, ip: IpAddr, port: u16) -> bool {
        self.lock().sandboxes.values().any(|s| {
            s.rec.ports.iter().any(|p| {
                p.proto == proto
                    && p.host_port == port
                    && p.host_ip.is_ipv4() == ip.is_ipv4()
                    && (p.host_ip == ip || p.host_ip.is_unspecified() || ip.is_unspecified())
            })
        })
    }
}

pub(crate) fn rand_port_hint() -> u16 {
    let mut b = [0u8; 2];
    let _ = getrandom::getrandom(&mut b);
    u16::from_le_bytes(b)
}

/// Parses `80`, `80/tcp`, `53/udp`.
pub(crate) fn port_key(k: &str) -> Result<(u16, String)> {
    let (p, proto) = k.split_once('/').unwrap_or((k, "tcp"));
    let port = p
        .parse::<u16>()
        .map_err(|_| ApiError::invalid(format!("invalid port specification: \"{k}\"")))?;
    let proto = proto.to_ascii_lowercase();
    if proto != "tcp" && proto != "udp" {
        return Err(ApiError::invalid(format!("invalid proto: {proto}")));
    }
    Ok((port, proto))
}

/// The ports to publish (host port 0: pick one) and the exposed-only ones.
pub(crate) fn port_plan(req: &Request) -> Result<(Vec<PortMap>, Vec<String>)> {
    let mut maps = Vec::new();
    let mut published = BTreeSet::new();
    {
        for (k, list) in &req.port_bindings {
            let (cport, proto) = port_key(k)?;
            published.insert(format!("{cport}/{proto}"));
            let entries = list.clone().unwrap_or_default();
            let entries = if entries.is_empty() {
                vec![PortBinding::default()]
            } else {
                entries
            };
            for e in entries {
                let ip: IpAddr = match e.host_ip.as_str() {
                    "" => Ipv4Addr::UNSPECIFIED.into(),
                    s => s
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .parse::<IpAddr>()
                        .map_err(|_| ApiError::invalid(format!("invalid IP address: {s}")))?,
                };
                let dual = e.host_ip.is_empty();
                let hp = e.host_port.as_str();
                // A range takes its first port here; conflicts move along it.
                let host_port = match hp.split_once('-') {
                    Some((a, _)) => a.parse::<u16>(),
                    None if hp.is_empty() => Ok(0),
                    None => hp.parse::<u16>(),
                }
                .map_err(|_| ApiError::invalid(format!("invalid port specification: \"{hp}\"")))?;
                maps.push(PortMap {
                    proto: proto.clone(),
                    container_port: cport,
                    host_ip: ip,
                    host_port,
                    twin: false,
                });
                if dual {
                    maps.push(PortMap {
                        proto: proto.clone(),
                        container_port: cport,
                        host_ip: Ipv6Addr::UNSPECIFIED.into(),
                        host_port,
                        twin: true,
                    });
                }
            }
        }
    }
    let mut exposed = Vec::new();
    let mut keys: Vec<String> = req.exposed.clone();
    keys.sort();
    for k in keys {
        let (cport, proto) = port_key(&k)?;
        let key = format!("{cport}/{proto}");
        if published.contains(&key) {
            continue;
        }
        if req.publish_all {
            published.insert(key);
            maps.push(PortMap {
                proto: proto.clone(),
                container_port: cport,
                host_ip: Ipv4Addr::UNSPECIFIED.into(),
                host_port: 0,
                twin: false,
            });
            maps.push(PortMap {
                proto,
                container_port: cport,
                host_ip: Ipv6Addr::UNSPECIFIED.into(),
                host_port: 0,
                twin: true,
            });
        } else {
            exposed.push(key);
        }
    }
    Ok((maps, exposed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn port_plans_follow_bindings_and_publish_all() {
        let req = Request {
            port_bindings: serde_json::from_value(json!({
                "80/tcp": [{"HostIp": "", "HostPort": "8080"}],
                "53/udp": [{"HostIp": "127.0.0.1", "HostPort": ""}],
            }))
            .unwrap_or_default(),
            exposed: vec!["80/tcp".into(), "443/tcp".into()],
            ..Default::default()
        };
        let (maps, exposed) = port_plan(&req).expect("plan");
        // No address: 0.0.0.0 and its IPv6 twin, as dockerd binds both.
        assert_eq!(maps.len(), 3);
        assert!(maps.contains(&PortMap {
            proto: "tcp".into(),
            container_port: 80,
            host_ip: Ipv4Addr::UNSPECIFIED.into(),
            host_port: 8080,
            twin: false,
        }));
        assert!(maps.contains(&PortMap {
            proto: "tcp".into(),
            container_port: 80,
            host_ip: Ipv6Addr::UNSPECIFIED.into(),
            host_port: 8080,
            twin: true,
        }));
        assert!(maps.contains(&PortMap {
            proto: "udp".into(),
            container_port: 53,
            host_ip: Ipv4Addr::LOCALHOST.into(),
            host_port: 0,
            twin: false,
        }));
        assert_eq!(exposed, vec!["443/tcp".to_string()]);
        let all = Request {
            publish_all: true,
            ..req
        };
        let (maps, exposed) = port_plan(&all).expect("plan");
        assert_eq!(maps.len(), 5);
        assert!(exposed.is_empty());
        let bad = Request {
            port_bindings: serde_json::from_value(json!({"x/tcp": []})).unwrap_or_default(),
            ..Default::default()
        };
        assert!(port_plan(&bad).is_err());
        let v6 = Request {
            port_bindings: serde_json::from_value(
                json!({"80/tcp": [{"HostIp": "::1", "HostPort": "9090"}]}),
            )
            .unwrap_or_default(),
            ..Default::default()
        };
        let (maps, _) = port_plan(&v6).expect("plan");
        assert_eq!(maps.len(), 1);
        assert_eq!(maps[0].host_ip, IpAddr::from(Ipv6Addr::LOCALHOST));
    }
}
