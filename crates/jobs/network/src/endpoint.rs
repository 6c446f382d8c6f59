//! Endpoints: a container's interface on one network (its address from the
//! network's pool, its veth into the bridge), and `docker network connect` and
//! `disconnect` of running containers.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::Arc;

use berth_api::container::EndpointSettings;
use berth_api::{ApiError, Result};
use berth_netdriver::link;
use berth_netdriver::subnet::{self};
use ipnet::{Ipv4Net, Ipv6Net};

use crate::{random_id, sys, Endpoint, Net, Networks, Setup};

impl Networks {
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn attach_one(
        &self,
        container: &str,
        name: &str,
        ns: &Path,
        net: &Net,
        cfg: &EndpointSettings,
        index: usize,
        primary: bool,
    ) -> Result<Endpoint> {
        let (Some(subnet), Some(gateway)) = (net.subnet, net.gateway) else {
            return Err(ApiError::system(format!(
                "network {} has no subnet",
                net.name
            )));
        };
        let asked = cfg
            .ipam_config
            .as_ref()
            .and_then(|i| i.ipv4_address.as_deref())
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<Ipv4Addr>()
                    .map_err(|_| ApiError::invalid(format!("invalid IPv4 address: {s}")))
            })
            .transpose()?;
        if asked.is_some() && net.is_default_bridge() {
            return Err(ApiError::invalid(
                "user specified IP address is supported on user defined networks only",
            ));
        }
        let asked6 = cfg
            .ipam_config
            .as_ref()
            .and_then(|i| i.ipv6_address.as_deref())
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<Ipv6Addr>()
                    .map_err(|_| ApiError::invalid(format!("invalid IPv6 address: {s}")))
            })
            .transpose()?;
        let (ip, ip6) = {
            let mut st = self.lock();
            let n = st
                .nets
                .get_mut(&net.id)
                .ok_or_else(|| ApiError::not_found(format!("network {} not found", net.name)))?;
            let mut taken: BTreeSet<Ipv4Addr> = n.allocated.keys().copied().collect();
            taken.insert(gateway);
            taken.extend(n.aux.values().copied());
            let ip = match asked {
                Some(ip) => {
                    if !subnet.contains(&ip) {
                        return Err(ApiError::invalid(format!(
                            "Invalid address {ip}: It does not belong to any of this network's subnets"
                        )));
                    }
                    if taken.contains(&ip) {
                        return Err(ApiError::conflict(format!("Address already in use: {ip}")));
                    }
                    ip
                }
                None => {
                    subnet::allocate(&subnet, n.ip_range.as_ref(), &taken).ok_or_else(|| {
                        ApiError::system(format!(
                            "no available IPv4 addresses on this network's address pools: {} ({})",
                            n.name, n.id
                        ))
                    })?
                }
            };
            let ip6 = match (n.subnet6, asked6) {
                (Some(net6), Some(a)) => {
                    if !net6.contains(&a) {
                        return Err(ApiError::invalid(format!(
                            "Invalid address {a}: It does not belong to any of this network's subnets"
                        )));
                    }
                    if n.allocated6.contains_key(&a) || Some(a) == n.gateway6 {
                        return Err(ApiError::conflict(format!("Address already in use: {a}")));
                    }
                    Some(a)
                }
                (Some(net6), None) => {
                    let mut taken6: BTreeSet<Ipv6Addr> = n.allocated6.keys().copied().collect();
                    taken6.extend(n.gateway6);
                    let pool = n.ip_range6.unwrap_or(net6);
                    Some(subnet::allocate6(&pool, &taken6).ok_or_else(|| {
                        ApiError::system(format!(
                            "no available IPv6 addresses on this network's address pools: {} ({})",
                            n.name, n.id
                        ))
                    })?)
                }
                (None, Some(_)) => {
                    return Err(ApiError::invalid(format!(
                        "invalid endpoint settings:\nuser specified IP address is supported only when connecting to networks with user configured subnets: IPv6 on {}",
                        n.name
                    )))
                }
                (None, None) => None,
            };
            n.allocated.insert(ip, container.to_string());
            if let Some(a) = ip6 {
                n.allocated6.insert(a, container.to_string());
            }
            let snapshot = n.clone();
            drop(st);
            self.save_net(&snapshot)?;
            (ip, ip6)
        };
        let mac = match Some(cfg.mac_address.as_str()).filter(|m| !m.is_empty()) {
            Some(m) => subnet::parse_mac(m)
                .ok_or_else(|| ApiError::invalid(format!("invalid MAC address: {m}")))?,
            None => subnet::mac_for(ip),
        };
        let veth = link::veth_name();
        let peer = format!("{veth}p");
        let mut aliases: Vec<String> = cfg.aliases().to_vec();
        if !net.predefined()
            && !aliases
                .iter()
                .any(|a| a == &container[..12.min(container.len())])
        {
            aliases.push(container[..12.min(container.len())].to_string());
        }
        let ep = Endpoint {
            network: net.id.clone(),
            id: random_id(),
            ip,
            prefix: subnet.prefix_len(),
            gateway,
            mac: subnet::mac_string(&mac),
            veth: veth.clone(),
            ifname: format!("eth{index}"),
            aliases,
            static_ip: asked.is_some() || asked6.is_some(),
            ipam_config: cfg.ipam_config.clone().filter(|i| !i.is_empty()),
            driver_opts: cfg.driver_opts.clone().filter(|d| !d.is_empty()),
            links: cfg.links.clone().unwrap_or_default(),
            ip6,
            prefix6: net.subnet6.map(|n| n.prefix_len()).unwrap_or(0),
            gateway6: ip6.and(net.gateway6),
        };
        let h = link::connect().map_err(sys)?;
        let inside = link::Inside {
            ifname: ep.ifname.clone(),
            addr: Ipv4Net::new(ip, subnet.prefix_len()).map_err(sys)?,
            mac,
            gateway: (primary && !net.internal).then_some(gateway),
            mtu: net.mtu(self.cfg.mtu),
            addr6: match (ip6, net.subnet6) {
                (Some(a), Some(n6)) => Some(Ipv6Net::new(a, n6.prefix_len()).map_err(sys)?),
                _ => None,
            },
            gateway6: net
                .gateway6
                .filter(|_| primary && !net.internal && ip6.is_some()),
            keep_mac: net.driver == "ipvlan",
            link_route: primary && !net.internal && crate::lan::is_l3(net),
        };
        // `enable_icc=false`: the bridge forwards nothing between its
        // containers' ports (the kernel's port isolation); the host, published
        // ports and the world stay reachable.
        let isolated = !net.icc();
        let attached = if crate::lan::is_lan(&net.driver) {
            crate::lan::attach(&h, net, &peer, ns, inside).await
        } else {
            link::attach(&h, &veth, &peer, &net.bridge, ns, inside, isolated)
                .await
                .map_err(|e| ApiError::system(e.to_string()))
        };
        if let Err(e) = attached {
            self.release_ip(&net.id, ip, ip6);
            let _ = name;
            return Err(ApiError::system(format!(
                "attaching to network {}: {}",
                net.name, e.message
            )));
        }
        Ok(ep)
    }

    pub(crate) fn release_ip(&self, net: &str, ip: Ipv4Addr, ip6: Option<Ipv6Addr>) {
        let snapshot = {
            let mut st = self.lock();
            let Some(n) = st.nets.get_mut(net) else {
                return;
            };
            n.allocated.remove(&ip);
            if let Some(a) = ip6 {
                n.allocated6.remove(&a);
            }
            n.clone()
        };
        let _ = self.save_net(&snapshot);
    }

    /// Connects a running container to one more network.
    pub async fn connect(
        self: &Arc<Self>,
        id: &str,
        network: &str,
        cfg: &EndpointSettings,
    ) -> Result<Setup> {
        let _ops = self.ops.lock().await;
        let net = self.find(network)?;
        if net.driver != "bridge" && !crate::lan::is_lan(&net.driver) {
            return Err(ApiError::forbidden(
                "container cannot be disconnected from host network or connected to host network",
            ));
        }
        let (rec, ns) = {
            let st = self.lock();
            let sb = st
                .sandboxes
                .get(id)
                .ok_or_else(|| ApiError::system("container has no network sandbox"))?;
            if sb.rec.endpoints.iter().any(|e| e.network == net.id) {
                return Err(ApiError::forbidden(format!(
                    "endpoint with name {} already exists in network {}",
                    sb.rec.name, net.name
                )));
            }
            let ns = sb
                .rec
                .netns
                .clone()
                .filter(|_| sb.rec.owns_netns)
                .ok_or_else(|| ApiError::invalid("container sharing network namespace with another container or host cannot be connected to any other network"))?;
            (sb.rec.clone(), ns)
        };
        let index = (0..)
            .find(|i| !rec.endpoints.iter().any(|e| e.ifname == format!("eth{i}")))
            .unwrap_or(rec.endpoints.len());
        let ep = self
            .attach_one(
                id,
                &rec.name,
                &ns,
                &net,
                cfg,
                index,
                rec.endpoints.is_empty(),
            )
            .await?;
        let needs_dns = !net.predefined();
        let snapshot = {
            let mut st = self.lock();
            let Some(sb) = st.sandboxes.get_mut(id) else {
                return Err(ApiError::system("container went away"));
            };
            sb.rec.endpoints.push(ep);
            sb.rec.clone()
        };
        if needs_dns {
            let has = self
                .lock()
                .sandboxes
                .get(id)
                .is_some_and(|s| s.dns.is_some());
            if !has {
                let server = self.serve_dns(id, &ns, &snapshot.dns)?;
                if let Some(sb) = self.lock().sandboxes.get_mut(id) {
                    sb.dns = Some(server);
                }
            }
        }
        let _ = self.save_sandbox(&snapshot);
        Ok(self.setup_of(&snapshot))
    }

    /// Disconnects a running container from a network.
    pub async fn disconnect(&self, id: &str, network: &str) -> Result<Setup> {
        let _ops = self.ops.lock().await;
        let net = self.find(network)?;
        let (ep, ns, snapshot) = {
            let mut st = self.lock();
            let sb = st
                .sandboxes
                .get_mut(id)
                .ok_or_else(|| ApiError::system("container has no network sandbox"))?;
            let pos = sb
                .rec
                .endpoints
                .iter()
                .position(|e| e.network == net.id)
                .ok_or_else(|| {
                    ApiError::forbidden(format!(
                        "container {id} is not connected to network {}",
                        net.name
                    ))
                })?;
            let ep = sb.rec.endpoints.remove(pos);
            (ep, sb.rec.netns.clone(), sb.rec.clone())
        };
        if let Ok(h) = link::connect() {
            let _ = link::delete(&h, &ep.veth).await;
        }
        if let Some(ns) = ns {
            let ifname = ep.ifname.clone();
            let _ = tokio::task::spawn_blocking(move || link::delete_inside(&ns, &ifname)).await;
        }
        self.release_ip(&ep.network, ep.ip, ep.ip6);
        let _ = self.save_sandbox(&snapshot);
        Ok(self.setup_of(&snapshot))
    }
}
