//! Networks: the store of bridge networks (`<data-root>/network/<id>.json`, written
//! atomically, with their address allocations), the sandboxes of running containers
//! (`<data-root>/network/sandboxes/<id>.json`: namespace, endpoints, published
//! ports, enough to find everything again after a restart), and the network jobs.
//!
//! The container jobs reach this through the daemon (they know nothing of this
//! crate): [`Networks::setup`] before a container starts, [`Networks::teardown`]
//! after it ends, [`Networks::connect`] and [`Networks::disconnect`] for running
//! containers.

mod jobs;
mod predefined;
mod rules;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use berth_api::container::{EndpointIpamConfig, EndpointSettings, NetworkSettings, PortBinding};
use berth_api::{ApiError, Result};
use berth_netdriver::subnet::{self, Pool};
use berth_netdriver::{dns, link, netns, proxy};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use jobs::{publish_endpoint, register};

/// A network as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Net {
    pub id: String,
    pub name: String,
    /// `bridge`, `host` or `null`.
    pub driver: String,
    pub created: String,
    #[serde(default)]
    pub subnet: Option<Ipv4Net>,
    #[serde(default)]
    pub gateway: Option<Ipv4Addr>,
    #[serde(default)]
    pub ip_range: Option<Ipv4Net>,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub attachable: bool,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// The Linux bridge (bridge driver only).
    #[serde(default)]
    pub bridge: String,
    /// Addresses handed out, and to which container.
    #[serde(default)]
    pub allocated: BTreeMap<Ipv4Addr, String>,
    /// IPAM `AuxiliaryAddresses`: names for addresses never handed out.
    #[serde(default)]
    pub aux: BTreeMap<String, Ipv4Addr>,
}

impl Net {
    /// A new network with a fresh ID and nothing configured yet.
    fn empty(name: &str, driver: &str) -> Net {
        Net {
            id: random_id(),
            name: name.into(),
            driver: driver.into(),
            created: now(),
            subnet: None,
            gateway: None,
            ip_range: None,
            internal: false,
            attachable: false,
            labels: BTreeMap::new(),
            options: BTreeMap::new(),
            bridge: String::new(),
            allocated: BTreeMap::new(),
            aux: BTreeMap::new(),
        }
    }

    pub fn predefined(&self) -> bool {
        matches!(self.name.as_str(), "bridge" | "host" | "none")
    }

    fn is_default_bridge(&self) -> bool {
        self.name == "bridge"
    }
}

/// One container's attachment to one network.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Endpoint {
    pub network: String,
    pub id: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    pub mac: String,
    pub veth: String,
    pub ifname: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// The address was asked for (`--ip`), so it is the container's for good.
    #[serde(default)]
    pub static_ip: bool,
    /// The endpoint's `IPAMConfig` and `DriverOpts` as given, shown by inspect.
    #[serde(default, deserialize_with = "lenient")]
    pub ipam_config: Option<EndpointIpamConfig>,
    #[serde(default, deserialize_with = "lenient")]
    pub driver_opts: Option<BTreeMap<String, String>>,
    /// Links on a user-defined network (`name:alias`): `alias` resolves, for
    /// this container only, to `name` on the network.
    #[serde(default)]
    pub links: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PortMap {
    pub proto: String,
    pub container_port: u16,
    pub host_ip: Ipv4Addr,
    pub host_port: u16,
}

/// A running container's network namespace and what hangs off it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxRec {
    pub container: String,
    pub name: String,
    /// None: the container shares another's namespace or the host's.
    pub netns: Option<PathBuf>,
    pub endpoints: Vec<Endpoint>,
    #[serde(default)]
    pub ports: Vec<PortMap>,
    /// Exposed ports that are not published (`null` in `Ports`).
    #[serde(default)]
    pub exposed: Vec<String>,
    #[serde(default)]
    pub owns_netns: bool,
    /// Servers its embedded DNS forwards to (`--dns`); empty: the host's.
    #[serde(default)]
    pub dns: Vec<SocketAddr>,
}

struct Sandbox {
    rec: SandboxRec,
    proxies: Vec<proxy::Proxy>,
    dns: Option<dns::Server>,
}

/// How the daemon was told to set up networks.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    /// The default bridge's name; `none` turns the default bridge off.
    pub bridge: String,
    /// `--bip`: the bridge's address and prefix.
    pub bip: Option<Ipv4Net>,
    pub fixed_cidr: Option<Ipv4Net>,
    pub mtu: Option<u32>,
    pub pools: Vec<Pool>,
}

pub use berth_api::network::{NetRequest as Request, NetSetup as Setup};

struct State {
    nets: BTreeMap<String, Net>,
    sandboxes: HashMap<String, Sandbox>,
}

pub struct Networks {
    cfg: Config,
    root: PathBuf,
    netns_dir: PathBuf,
    table: String,
    state: Mutex<State>,
    /// Serializes changes to networks and sandboxes (address allocation, rules).
    ops: tokio::sync::Mutex<()>,
    upstream: Vec<SocketAddr>,
    /// The bridges the host firewall's accepts were last written for: they change
    /// with networks, not with every container's ports.
    fw_bridges: Mutex<Option<Vec<String>>>,
}

fn sys(e: impl std::fmt::Display) -> ApiError {
    ApiError::system(e.to_string())
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub(crate) use berth_api::ids::random_id;

impl Networks {
    /// Opens the store, creates the predefined networks and the default bridge,
    /// loads sandboxes left by a previous run and writes the firewall table.
    pub async fn open(cfg: Config) -> Result<Arc<Networks>> {
        let root = cfg.data_root.join("network");
        let netns_dir = cfg.exec_root.join("netns");
        for d in [root.join("sandboxes"), netns_dir.clone()] {
            std::fs::create_dir_all(&d).map_err(|e| sys(format!("{}: {e}", d.display())))?;
        }
        // One table per default bridge: daemons side by side never touch each
        // other's rules.
        let table = if cfg.bridge == "berth0" || cfg.bridge == "none" {
            "berth".to_string()
        } else {
            format!("berth-{}", cfg.bridge)
        };
        let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let n = Arc::new(Networks {
            cfg,
            root,
            netns_dir,
            table,
            state: Mutex::new(State {
                nets: BTreeMap::new(),
                sandboxes: HashMap::new(),
            }),
            ops: tokio::sync::Mutex::new(()),
            upstream: dns::upstream_from(&resolv),
            fw_bridges: Mutex::new(None),
        });
        n.load()?;
        n.ensure_predefined().await?;
        let bridges: Vec<Net> = n
            .nets()
            .into_iter()
            .filter(|x| x.driver == "bridge")
            .collect();
        let h = link::connect().map_err(sys)?;
        for net in &bridges {
            if let (Some(s), Some(g)) = (net.subnet, net.gateway) {
                let gw = Ipv4Net::new(g, s.prefix_len()).map_err(sys)?;
                if let Err(e) =
                    link::ensure_bridge(&h, &net.bridge, gw, n.cfg.mtu, &n.owner()).await
                {
                    tracing::error!(network = %net.name, error = %e, "setting up the bridge");
                }
            }
        }
        if bridges.iter().any(|b| !b.internal) {
            enable_forwarding();
        }
        n.apply_rules().await;
        Ok(n)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn load(&self) -> Result<()> {
        let mut st = self.lock();
        for e in std::fs::read_dir(&self.root).map_err(sys)?.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "json") {
                match std::fs::read(&p)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Net>(&b).ok())
                {
                    Some(n) => {
                        st.nets.insert(n.id.clone(), n);
                    }
                    None => {
                        tracing::warn!(file = %p.display(), "ignoring an unreadable network record")
                    }
                }
            }
        }
        for e in std::fs::read_dir(self.root.join("sandboxes"))
            .map_err(sys)?
            .flatten()
        {
            if let Some(rec) = std::fs::read(e.path())
                .ok()
                .and_then(|b| serde_json::from_slice::<SandboxRec>(&b).ok())
            {
                st.sandboxes.insert(
                    rec.container.clone(),
                    Sandbox {
                        rec,
                        proxies: Vec::new(),
                        dns: None,
                    },
                );
            }
        }
        Ok(())
    }

    fn save_net(&self, n: &Net) -> Result<()> {
        let b = serde_json::to_vec_pretty(n).map_err(sys)?;
        berth_atomicfile::write(&self.root.join(format!("{}.json", n.id)), &b).map_err(sys)
    }

    fn save_sandbox(&self, s: &SandboxRec) -> Result<()> {
        let b = serde_json::to_vec(s).map_err(sys)?;
        berth_atomicfile::write(&self.sandbox_path(&s.container), &b).map_err(sys)
    }

    fn sandbox_path(&self, id: &str) -> PathBuf {
        self.root.join("sandboxes").join(format!("{id}.json"))
    }

    pub fn nets(&self) -> Vec<Net> {
        self.lock().nets.values().cloned().collect()
    }

    /// Subnets a new network must not overlap: those of every network here, and
    /// every address and route on the host.
    async fn used_subnets(&self) -> Vec<Ipv4Net> {
        let mut used: Vec<Ipv4Net> = self.nets().iter().filter_map(|n| n.subnet).collect();
        if let Ok(h) = link::connect() {
            if let Ok(host) = link::host_networks(&h, None).await {
                used.extend(host);
            }
        }
        used
    }

    /// The alias Berth gives the bridges it makes: which data root made them, so
    /// a later daemon tells a Berth's leftovers from another program's bridges.
    pub(crate) fn owner(&self) -> String {
        format!(
            "{}{}",
            predefined::OWNER_PREFIX,
            self.cfg.data_root.display()
        )
    }

    /// Finds a network by full ID, exact name or unique ID prefix, as dockerd.
    pub fn find(&self, key: &str) -> Result<Net> {
        let st = self.lock();
        if let Some(n) = st.nets.get(key) {
            return Ok(n.clone());
        }
        if let Some(n) = st.nets.values().find(|n| n.name == key) {
            return Ok(n.clone());
        }
        let hits: Vec<&Net> = st
            .nets
            .values()
            .filter(|n| !key.is_empty() && n.id.starts_with(key))
            .collect();
        match hits.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(ApiError::not_found(format!("network {key} not found"))),
            _ => Err(ApiError::invalid(format!(
                "network {key} is ambiguous ({} matches found based on ID prefix)",
                hits.len()
            ))),
        }
    }

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
    fn with_host_gateway(&self, mut s: Setup) -> Setup {
        s.host_gateway = self
            .lock()
            .nets
            .values()
            .find(|n| n.name == "bridge" && n.predefined())
            .and_then(|n| n.gateway);
        s
    }

    async fn setup_inner(self: &Arc<Self>, req: &Request) -> Result<Setup> {
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

    fn setup_of(&self, rec: &SandboxRec) -> Setup {
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
            nameservers: user_defined.then(|| vec![dns::ADDRESS.to_string()]),
            host_gateway: None,
        }
    }

    /// Which networks a request names, the primary first.
    fn wanted(&self, req: &Request) -> Result<Vec<(Net, EndpointSettings)>> {
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
                "bridge" => {}
                "null" => return Err(ApiError::invalid("container cannot be connected to multiple networks with one of the networks in private (none) mode")),
                _ => return Err(ApiError::invalid("container cannot be disconnected from host network or connected to host network")),
            }
        }
        Ok(out)
    }

    async fn attach_all(
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
            for m in maps {
                let taken = self.port_taken(&m.proto, m.host_ip, m.host_port);
                if m.host_port != 0 && taken {
                    return Err(ApiError::system(format!(
                        "driver failed programming external connectivity on endpoint {} ({}): Bind for {}:{} failed: port is already allocated",
                        req.name, ep.id, m.host_ip, m.host_port
                    )));
                }
                let hint = rand_port_hint();
                let p = proxy::start(
                    &m.proto,
                    m.host_ip,
                    m.host_port,
                    hint,
                    SocketAddrV4::new(ep.ip, m.container_port),
                )
                .map_err(|e| {
                    ApiError::system(format!(
                        "driver failed programming external connectivity on endpoint {} ({}): {e}",
                        req.name, ep.id
                    ))
                })?;
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

    fn port_taken(&self, proto: &str, ip: Ipv4Addr, port: u16) -> bool {
        self.lock().sandboxes.values().any(|s| {
            s.rec.ports.iter().any(|p| {
                p.proto == proto
                    && p.host_port == port
                    && (p.host_ip == ip || p.host_ip.is_unspecified() || ip.is_unspecified())
            })
        })
    }

    fn serve_dns(
        self: &Arc<Self>,
        id: &str,
        ns: &Path,
        upstream: &[SocketAddr],
    ) -> Result<dns::Server> {
        let me = Arc::downgrade(self);
        let id = id.to_string();
        let lookup: dns::Lookup = Arc::new(move |name: &str| me.upgrade()?.lookup(&id, name));
        let upstream = if upstream.is_empty() {
            self.upstream.clone()
        } else {
            upstream.to_vec()
        };
        dns::serve(ns, lookup, upstream).map_err(|e| ApiError::system(format!("embedded DNS: {e}")))
    }

    /// Addresses for `name` as seen from container `from`: containers (by name,
    /// alias or short ID, optionally `.network`) on its user-defined networks.
    fn lookup(&self, from: &str, name: &str) -> Option<Vec<Ipv4Addr>> {
        let st = self.lock();
        let mine: Vec<&Endpoint> = st.sandboxes.get(from)?.rec.endpoints.iter().collect();
        let mut out = Vec::new();
        for my in mine {
            let Some(net) = st.nets.get(&my.network) else {
                continue;
            };
            if net.predefined() {
                continue;
            }
            let bare = name
                .strip_suffix(&format!(".{}", net.name.to_ascii_lowercase()))
                .unwrap_or(name);
            // A link's alias stands for its target, for this container only.
            let linked = my.links.iter().find_map(|l| {
                let (target, alias) = l.split_once(':').unwrap_or((l, l));
                alias
                    .eq_ignore_ascii_case(bare)
                    .then(|| target.trim_start_matches('/'))
            });
            let bare = linked.unwrap_or(bare);
            for sb in st.sandboxes.values() {
                for ep in sb.rec.endpoints.iter().filter(|e| e.network == net.id) {
                    let hit = sb.rec.name.eq_ignore_ascii_case(bare)
                        || sb.rec.container.get(..12).is_some_and(|s| s == bare)
                        || ep.aliases.iter().any(|a| a.eq_ignore_ascii_case(bare));
                    if hit && !out.contains(&ep.ip) {
                        out.push(ep.ip);
                    }
                }
            }
        }
        (!out.is_empty()).then_some(out)
    }

    #[allow(clippy::too_many_arguments)]
    async fn attach_one(
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
        let ip = {
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
            n.allocated.insert(ip, container.to_string());
            let snapshot = n.clone();
            drop(st);
            self.save_net(&snapshot)?;
            ip
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
            static_ip: asked.is_some(),
            ipam_config: cfg.ipam_config.clone().filter(|i| !i.is_empty()),
            driver_opts: cfg.driver_opts.clone().filter(|d| !d.is_empty()),
            links: cfg.links.clone().unwrap_or_default(),
        };
        let h = link::connect().map_err(sys)?;
        let inside = link::Inside {
            ifname: ep.ifname.clone(),
            addr: Ipv4Net::new(ip, subnet.prefix_len()).map_err(sys)?,
            mac,
            gateway: (primary && !net.internal).then_some(gateway),
            mtu: self.cfg.mtu,
        };
        if let Err(e) = link::attach(&h, &veth, &peer, &net.bridge, ns, inside).await {
            self.release_ip(&net.id, ip);
            let _ = name;
            return Err(ApiError::system(format!(
                "attaching to network {}: {e}",
                net.name
            )));
        }
        Ok(ep)
    }

    fn release_ip(&self, net: &str, ip: Ipv4Addr) {
        let snapshot = {
            let mut st = self.lock();
            let Some(n) = st.nets.get_mut(net) else {
                return;
            };
            n.allocated.remove(&ip);
            n.clone()
        };
        let _ = self.save_net(&snapshot);
    }

    /// Undoes everything of a sandbox: links, namespace, addresses, its file.
    async fn release(&self, rec: &SandboxRec) {
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
            self.release_ip(&ep.network, ep.ip);
        }
        let _ = std::fs::remove_file(self.sandbox_path(&rec.container));
    }

    async fn teardown_locked(&self, id: &str) {
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
                self.release_ip(&n.id, ip);
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

    /// Connects a running container to one more network.
    pub async fn connect(
        self: &Arc<Self>,
        id: &str,
        network: &str,
        cfg: &EndpointSettings,
    ) -> Result<Setup> {
        let _ops = self.ops.lock().await;
        let net = self.find(network)?;
        if net.driver != "bridge" {
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
        self.release_ip(&ep.network, ep.ip);
        let _ = self.save_sandbox(&snapshot);
        Ok(self.setup_of(&snapshot))
    }

    /// The `Containers` part of a network's inspect: its running endpoints.
    pub fn endpoints_of(&self, net: &str) -> Vec<(String, String, Endpoint)> {
        let st = self.lock();
        st.sandboxes
            .values()
            .flat_map(|s| {
                s.rec
                    .endpoints
                    .iter()
                    .filter(|e| e.network == net)
                    .map(|e| (s.rec.container.clone(), s.rec.name.clone(), e.clone()))
            })
            .collect()
    }

    /// Networks' names by ID, for `docker ps --filter network=` and the like.
    pub fn name_of(&self, id: &str) -> Option<String> {
        self.lock().nets.get(id).map(|n| n.name.clone())
    }
}

fn rand_port_hint() -> u16 {
    let mut b = [0u8; 2];
    let _ = getrandom::getrandom(&mut b);
    u16::from_le_bytes(b)
}

fn enable_forwarding() {
    let p = "/proc/sys/net/ipv4/ip_forward";
    if std::fs::read_to_string(p)
        .map(|s| s.trim() != "1")
        .unwrap_or(false)
    {
        if let Err(e) = std::fs::write(p, "1") {
            tracing::warn!(error = %e, "enabling IPv4 forwarding");
        } else {
            tracing::info!("enabled IPv4 forwarding");
        }
    }
}

/// Parses `80`, `80/tcp`, `53/udp`.
fn port_key(k: &str) -> Result<(u16, String)> {
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
fn port_plan(req: &Request) -> Result<(Vec<PortMap>, Vec<String>)> {
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
                let ip = match e.host_ip.as_str() {
                    "" => Ipv4Addr::UNSPECIFIED,
                    s => s
                        .parse::<Ipv4Addr>()
                        .map_err(|_| ApiError::invalid(format!("invalid IP address: {s}")))?,
                };
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
                });
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
                proto,
                container_port: cport,
                host_ip: Ipv4Addr::UNSPECIFIED,
                host_port: 0,
            });
        } else {
            exposed.push(key);
        }
    }
    Ok((maps, exposed))
}

/// Reads a stored value leniently: one that no longer fits its type is dropped
/// (a display-only field must not cost the sandbox record).
fn lenient<'de, D, T>(d: D) -> std::result::Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let v = Value::deserialize(d)?;
    Ok(serde_json::from_value(v).ok())
}

/// Docker's `NetworkSettings`.
fn settings_json(
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
        assert_eq!(maps.len(), 2);
        assert!(maps.contains(&PortMap {
            proto: "tcp".into(),
            container_port: 80,
            host_ip: Ipv4Addr::UNSPECIFIED,
            host_port: 8080
        }));
        assert!(maps.contains(&PortMap {
            proto: "udp".into(),
            container_port: 53,
            host_ip: Ipv4Addr::LOCALHOST,
            host_port: 0
        }));
        assert_eq!(exposed, vec!["443/tcp".to_string()]);
        let all = Request {
            publish_all: true,
            ..req
        };
        let (maps, exposed) = port_plan(&all).expect("plan");
        assert_eq!(maps.len(), 3);
        assert!(exposed.is_empty());
        let bad = Request {
            port_bindings: serde_json::from_value(json!({"x/tcp": []})).unwrap_or_default(),
            ..Default::default()
        };
        assert!(port_plan(&bad).is_err());
    }
}
