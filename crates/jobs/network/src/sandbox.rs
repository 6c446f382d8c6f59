//! Sandboxes: a starting container's network namespace with its endpoints,
//! published ports and DNS server, torn down when it ends, found again after a
//! daemon restart, and what containers left behind collected.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::Arc;

use berth_api::container::EndpointSettings;
use berth_api::{ApiError, Result};
use berth_netdriver::{dns, link, netns, proxy};

use crate::ports::{port_plan, rand_port_hint};
use crate::settings::settings_json;
use crate::{sys, Net, Networks, PortMap, Request, Sandbox, SandboxRec, Setup};

impl Networks {
    /// Sets up networking for a container about to start.
    pub async fn setup(self: &Arc<Self>, req: &Request) -> Result<Setup> {
        let t0 = std::time::Instant::now();
        let r = self
            .setup_inner(req)
            .await
            .map(|s| self.with_host_gateway(s));
        tracing::debug!(container = %req.id, elapsed = ?t0.elapsed(), "network setup");
        r
    }

    /// The default bridge's address, for `host-gateway` in `--add-host`.
    pub(crate) fn with_host_gateway(&self, mut s: Setup) -> Setup {
        s.host_gateway = self
            .lock()
            .nets
            .values()
            .find(|n| n.name == "bridge" && n.predefined())
            .and_then(|n| n.gateway);
        s
    }

    pub(crate) async fn setup_inner(self: &Arc<Self>, req: &Request) -> Result<Setup> {
        let _ops = self.ops.lock().await;
        // A sandbox left from a run that ended without us noticing goes first.
        self.teardown_locked(&req.id).await;
        let mode = req.mode.as_str();
        if mode == "host" {
            return Ok(Setup {
                host: true,
                settings: settings_json(None, &[], &BTreeMap::new(), &[], &[]),
                ..Default::default()
            });
        }
        if let Some(other) = mode.strip_prefix("container:") {
            let ns = self
                .lock()
                .sandboxes
                .get(other)
                .and_then(|s| s.rec.netns.clone());
            let Some(ns) = ns else {
                return Err(ApiError::conflict(format!(
                    "cannot join network of a non running container: {other}"
                )));
            };
            return Ok(Setup {
                netns: Some(ns),
                settings: settings_json(None, &[], &BTreeMap::new(), &[], &[]),
                ..Default::default()
            });
        }
        let ns_path = self.netns_dir.join(&req.id[..12.min(req.id.len())]);
        let p2 = ns_path.clone();
        let t0 = std::time::Instant::now();
        tokio::task::spawn_blocking(move || {
            let _ = netns::remove(&p2);
            netns::create(&p2)?;
            link::lo_up(&p2)
        })
        .await
        .map_err(sys)?
        .map_err(|e| ApiError::system(format!("creating the network namespace: {e}")))?;
        tracing::debug!(elapsed = ?t0.elapsed(), "netns created");
        let mut rec = SandboxRec {
            container: req.id.clone(),
            name: req.name.clone(),
            netns: Some(ns_path.clone()),
            endpoints: Vec::new(),
            ports: Vec::new(),
            exposed: Vec::new(),
            owns_netns: true,
            dns: req
                .dns
                .iter()
                .filter_map(|s| s.parse::<std::net::IpAddr>().ok())
                .map(|ip| SocketAddr::new(ip, 53))
                .collect(),
        };
        let result = self.attach_all(req, &mut rec).await;
        let (proxies, dns_server) = match result {
            Ok(x) => x,
            Err(e) => {
                self.release(&rec).await;
                return Err(e);
            }
        };
        let _ = self.save_sandbox(&rec);
        let setup = self.setup_of(&rec);
        let has_ports = !rec.ports.is_empty();
        self.lock().sandboxes.insert(
            req.id.clone(),
            Sandbox {
                rec,
                proxies,
                dns: dns_server,
            },
        );
        if has_ports {
            self.apply_rules().await;
        }
        Ok(setup)
    }

    pub(crate) fn setup_of(&self, rec: &SandboxRec) -> Setup {
        let st = self.lock();
        let names: BTreeMap<String, Net> = rec
            .endpoints
            .iter()
            .filter_map(|e| {
                st.nets
                    .get(&e.network)
                    .map(|n| (e.network.clone(), n.clone()))
            })
            .collect();
        let user_defined = names.values().any(|n| !n.predefined());
        Setup {
            netns: rec.netns.clone(),
            host: false,
            settings: settings_json(
                rec.netns.as_deref(),
                &rec.endpoints,
                &names,
                &rec.ports,
                &rec.exposed,
            ),
            ip: rec.endpoints.first().map(|e| e.ip),
            ip6: rec.endpoints.first().and_then(|e| e.ip6),
            nameservers: user_defined.then(|| vec![dns::ADDRESS.to_string()]),
            host_gateway: None,
        }
    }

    /// Which networks a request names, the primary first.
    pub(crate) fn wanted(&self, req: &Request) -> Result<Vec<(Net, EndpointSettings)>> {
        let mode = match req.mode.as_str() {
            "" | "default" => "bridge",
            m => m,
        };
        if mode == "none" {
            return Ok(Vec::new());
        }
        let primary = self.find(mode)?;
        let mut out = vec![(
            primary.clone(),
            req.endpoints
                .get(&primary.name)
                .or_else(|| req.endpoints.get(mode))
                .cloned()
                .unwrap_or_default(),
        )];
        for (k, v) in &req.endpoints {
            let n = self.find(k)?;
            if n.id != primary.id && !out.iter().any(|(x, _)| x.id == n.id) {
                out.push((n, v.clone()));
            }
        }
        for (n, _) in &out {
            match n.driver.as_str() {
                "bridge" | "macvlan" | "ipvlan" => {}
                "null" => return Err(ApiError::invalid("container cannot be connected to multiple networks with one of the networks in private (none) mode")),
                _ => return Err(ApiError::invalid("container cannot be disconnected from host network or connected to host network")),
            }
        }
        Ok(out)
    }

    pub(crate) async fn attach_all(
        self: &Arc<Self>,
        req: &Request,
        rec: &mut SandboxRec,
    ) -> Result<(Vec<proxy::Proxy>, Option<dns::Server>)> {
        let wanted = self.wanted(req)?;
        let Some(ns) = rec.netns.clone() else {
            return Ok((Vec::new(), None));
        };
        for (i, (net, cfg)) in wanted.iter().enumerate() {
            let ep = self
                .attach_one(&req.id, &req.name, &ns, net, cfg, i, i == 0)
                .await?;
            rec.endpoints.push(ep);
        }
        let mut proxies = Vec::new();
        if let Some(ep) = rec.endpoints.first().cloned() {
            let (maps, exposed) = port_plan(req)?;
            rec.exposed = exposed;
            let binding = wanted.first().and_then(|(n, _)| n.host_binding());
            // The host port the IPv4 binding just before got: its IPv6 twin
            // (which `port_plan` puts right after it) takes the same.
            let mut picked: Option<u16> = None;
            for mut m in maps {
                if m.twin {
                    if binding.is_some() {
                        continue; // bound where the network says, IPv4 only
                    }
                    match picked.take() {
                        Some(port) => m.host_port = port,
                        None => continue,
                    }
                } else {
                    picked = None;
                }
                // Published without an address: the network's
                // `host_binding_ipv4`, as dockerd.
                if let (false, true, Some(b)) = (m.twin, m.host_ip.is_unspecified(), binding) {
                    m.host_ip = b.into();
                }
                let taken = self.port_taken(&m.proto, m.host_ip, m.host_port);
                if m.host_port != 0 && taken {
                    return Err(ApiError::system(format!(
                        "driver failed programming external connectivity on endpoint {} ({}): Bind for {}:{} failed: port is already allocated",
                        req.name, ep.id, bracket(m.host_ip), m.host_port
                    )));
                }
                let hint = rand_port_hint();
                let p = match proxy::start(
                    &m.proto,
                    m.host_ip,
                    m.host_port,
                    hint,
                    SocketAddrV4::new(ep.ip, m.container_port),
                ) {
                    Ok(p) => p,
                    // A host without IPv6 gets the IPv4 half only.
                    Err(e) if m.twin && proxy::no_ipv6(&e) => continue,
                    Err(e) => {
                        return Err(ApiError::system(format!(
                        "driver failed programming external connectivity on endpoint {} ({}): {e}",
                        req.name, ep.id
                    )))
                    }
                };
                if !m.twin && m.host_ip.is_unspecified() {
                    picked = Some(p.port);
                }
                rec.ports.push(PortMap {
                    host_port: p.port,
                    ..m
                });
                proxies.push(p);
            }
        }
        let user_defined = wanted.iter().any(|(n, _)| !n.predefined());
        let dns_server = if user_defined {
            Some(self.serve_dns(&req.id, &ns, &rec.dns)?)
        } else {
            None
        };
        Ok((proxies, dns_server))
    }

    /// Undoes everything of a sandbox: links, namespace, addresses, its file.
    pub(crate) async fn release(&self, rec: &SandboxRec) {
        // A namespace of our own goes, and its veths with it: the kernel destroys
        // the pairs when the namespace's last user is gone, in the background.
        // Deleting them one by one instead waits for an RCU grace period each,
        // on the path of every container's exit.
        let mut ns_gone = false;
        if rec.owns_netns {
            if let Some(ns) = rec.netns.clone() {
                ns_gone = tokio::task::spawn_blocking(move || netns::remove(&ns).is_ok())
                    .await
                    .unwrap_or(false);
            }
        }
        if !ns_gone {
            if let Ok(h) = link::connect() {
                for ep in &rec.endpoints {
                    let _ = link::delete(&h, &ep.veth).await;
                }
            }
        }
        for ep in &rec.endpoints {
            self.release_ip(&ep.network, ep.ip, ep.ip6);
        }
        let _ = std::fs::remove_file(self.sandbox_path(&rec.container));
    }

    pub(crate) async fn teardown_locked(&self, id: &str) {
        let sb = self.lock().sandboxes.remove(id);
        if let Some(sb) = sb {
            let had_ports = !sb.rec.ports.is_empty();
            drop(sb.proxies);
            drop(sb.dns);
            self.release(&sb.rec).await;
            if had_ports {
                self.apply_rules().await;
            }
        }
    }

    /// Releases a container's networking after it ended.
    pub async fn teardown(&self, id: &str) {
        let t0 = std::time::Instant::now();
        let _ops = self.ops.lock().await;
        self.teardown_locked(id).await;
        tracing::debug!(container = %id, elapsed = ?t0.elapsed(), "network teardown");
    }

    /// After a daemon restart: serves the published ports and DNS of a container
    /// that kept running. Returns its settings, or None if it has no sandbox.
    pub async fn restore(self: &Arc<Self>, id: &str) -> Option<Setup> {
        let _ops = self.ops.lock().await;
        let rec = self.lock().sandboxes.get(id).map(|s| s.rec.clone())?;
        let mut proxies = Vec::new();
        if let Some(ep) = rec.endpoints.first() {
            for m in &rec.ports {
                match proxy::start(
                    &m.proto,
                    m.host_ip,
                    m.host_port,
                    0,
                    SocketAddrV4::new(ep.ip, m.container_port),
                ) {
                    Ok(p) => proxies.push(p),
                    Err(e) => {
                        tracing::warn!(container = %id, error = %e, "restoring a published port")
                    }
                }
            }
        }
        let user_defined = {
            let st = self.lock();
            rec.endpoints
                .iter()
                .any(|e| st.nets.get(&e.network).is_some_and(|n| !n.predefined()))
        };
        let dns_server = match (&rec.netns, user_defined) {
            (Some(ns), true) => self.serve_dns(id, ns, &rec.dns).ok(),
            _ => None,
        };
        if let Some(sb) = self.lock().sandboxes.get_mut(id) {
            sb.proxies = proxies;
            sb.dns = dns_server;
        }
        Some(self.with_host_gateway(self.setup_of(&rec)))
    }

    /// Releases sandboxes of containers that are not running any more (found at
    /// start-up), and addresses held by containers that are gone.
    pub async fn gc(&self, running: &[String]) {
        let stale: Vec<String> = self
            .lock()
            .sandboxes
            .keys()
            .filter(|k| !running.contains(k))
            .cloned()
            .collect();
        for id in stale {
            tracing::info!(container = %id, "releasing the network of a container that is not running");
            self.teardown(&id).await;
        }
        let live: BTreeSet<String> = self.lock().sandboxes.keys().cloned().collect();
        for n in self.nets() {
            let leaked: Vec<Ipv4Addr> = n
                .allocated
                .iter()
                .filter(|(_, c)| !live.contains(*c))
                .map(|(ip, _)| *ip)
                .collect();
            for ip in leaked {
                tracing::info!(network = %n.name, %ip, "releasing a leaked address");
                self.release_ip(&n.id, ip, None);
            }
            let leaked6: Vec<Ipv6Addr> = n
                .allocated6
                .iter()
                .filter(|(_, c)| !live.contains(*c))
                .map(|(ip, _)| *ip)
                .collect();
            if !leaked6.is_empty() {
                let snapshot = {
                    let mut st = self.lock();
                    st.nets.get_mut(&n.id).map(|net| {
                        for ip in &leaked6 {
                            net.allocated6.remove(ip);
                        }
                        net.clone()
                    })
                };
                if let Some(s) = snapshot {
                    let _ = self.save_net(&s);
                }
            }
        }
        // Veths left on our bridges by a crash between creating them and
        // recording the endpoint: only ours can be on our bridges.
        if let Ok(h) = link::connect() {
            let known: BTreeSet<String> = self
                .lock()
                .sandboxes
                .values()
                .flat_map(|s| s.rec.endpoints.iter().map(|e| e.veth.clone()))
                .collect();
            for n in self.nets().into_iter().filter(|n| n.driver == "bridge") {
                for port in link::ports_of(&h, &n.bridge).await.unwrap_or_default() {
                    if !known.contains(&port) {
                        tracing::info!(bridge = %n.bridge, veth = %port, "removing a leftover veth");
                        let _ = link::delete(&h, &port).await;
                    }
                }
            }
        }
        // Namespace files nobody owns.
        if let Ok(dir) = std::fs::read_dir(&self.netns_dir) {
            let owned: BTreeSet<PathBuf> = self
                .lock()
                .sandboxes
                .values()
                .filter_map(|s| s.rec.netns.clone())
                .collect();
            for e in dir.flatten() {
                if !owned.contains(&e.path()) {
                    tracing::info!(path = %e.path().display(), "removing a leftover network namespace");
                    let _ = netns::remove(&e.path());
                }
            }
        }
    }
}

/// An address as Go writes it in `host:port`: IPv6 in brackets.
fn bracket(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V6(a) => format!("[{a}]"),
        std::net::IpAddr::V4(a) => a.to_string(),
    }
}
