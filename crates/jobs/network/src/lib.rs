//! Networks: the store of bridge networks (`<data-root>/network/<id>.json`, written
//! atomically, with their address allocations), the sandboxes of running containers
//! (`<data-root>/network/sandboxes/<id>.json`: namespace, endpoints, published
//! ports, enough to find everything again after a restart), and the network jobs.
//!
//! The container jobs reach this through the daemon (they know nothing of this
//! crate): [`Networks::setup`] before a container starts, [`Networks::teardown`]
//! after it ends, [`Networks::connect`] and [`Networks::disconnect`] for running
//! containers.
//!
//! The types live here; `Networks`' methods are spread over the modules by
//! concern: `store` (records on disk, lookups), `sandbox` (namespaces of starting
//! and ended containers), `endpoint` (addresses, veths, connect and disconnect),
//! `ports`, `resolver` (the embedded DNS server), `rules` (the firewall),
//! `settings` (inspect's `NetworkSettings`), `predefined` (bridge, host, none) and
//! `jobs` (the API's network jobs).

mod endpoint;
mod jobs;
mod lan;
mod ports;
mod predefined;
mod resolver;
mod rules;
mod sandbox;
mod settings;
mod store;

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Mutex;

use berth_api::container::EndpointIpamConfig;
use berth_api::ApiError;
use berth_netdriver::subnet::Pool;
use berth_netdriver::{dns, proxy};
use ipnet::{Ipv4Net, Ipv6Net};
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
    /// `EnableIPv6`: the IPv6 subnet and gateway beside the IPv4 ones, and
    /// the IPv6 addresses handed out.
    #[serde(default)]
    pub subnet6: Option<Ipv6Net>,
    #[serde(default)]
    pub gateway6: Option<Ipv6Addr>,
    /// IPAM's `IPRange` of the IPv6 pool: where addresses are handed out from.
    #[serde(default)]
    pub ip_range6: Option<Ipv6Net>,
    #[serde(default)]
    pub allocated6: BTreeMap<Ipv6Addr, String>,
    /// macvlan and ipvlan: the parent Berth made for the network (a VLAN
    /// sub-interface or a dummy), removed with it.
    #[serde(default)]
    pub made_link: Option<String>,
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
            subnet6: None,
            gateway6: None,
            ip_range6: None,
            allocated6: BTreeMap::new(),
            made_link: None,
        }
    }

    /// An IPv6 network (`EnableIPv6`).
    pub(crate) fn ipv6(&self) -> bool {
        self.subnet6.is_some()
    }

    pub fn predefined(&self) -> bool {
        matches!(self.name.as_str(), "bridge" | "host" | "none")
    }

    fn is_default_bridge(&self) -> bool {
        self.name == "bridge"
    }

    fn option(&self, key: &str) -> Option<&str> {
        self.options
            .get(&format!("com.docker.network.{key}"))
            .map(String::as_str)
    }

    /// `com.docker.network.bridge.enable_icc`: containers on it reach each other.
    pub(crate) fn icc(&self) -> bool {
        self.option("bridge.enable_icc")
            .is_none_or(|v| v != "false")
    }

    /// `com.docker.network.bridge.enable_ip_masquerade`.
    pub(crate) fn masquerade(&self) -> bool {
        self.option("bridge.enable_ip_masquerade")
            .is_none_or(|v| v != "false")
    }

    /// `com.docker.network.driver.mtu`, else the daemon's `--mtu`.
    pub(crate) fn mtu(&self, daemon: Option<u32>) -> Option<u32> {
        self.option("driver.mtu")
            .and_then(|v| v.parse().ok())
            .filter(|m| *m > 0)
            .or(daemon)
    }

    /// `com.docker.network.bridge.host_binding_ipv4`: where ports published
    /// without an address are bound.
    pub(crate) fn host_binding(&self) -> Option<Ipv4Addr> {
        self.option("bridge.host_binding_ipv4")
            .and_then(|v| v.parse().ok())
            .filter(|a: &Ipv4Addr| !a.is_unspecified())
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
    /// On an IPv6 network: the address, its prefix length and the gateway.
    #[serde(default)]
    pub ip6: Option<Ipv6Addr>,
    #[serde(default)]
    pub prefix6: u8,
    #[serde(default)]
    pub gateway6: Option<Ipv6Addr>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PortMap {
    pub proto: String,
    pub container_port: u16,
    /// `0.0.0.0`, `::` or an address of the host.
    pub host_ip: std::net::IpAddr,
    pub host_port: u16,
    /// The IPv6 half of a binding given without an address (dockerd binds
    /// `0.0.0.0` and `::` both): the same host port as its IPv4 half, and left
    /// out on hosts without IPv6.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub twin: bool,
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
    /// `--ipv6` and `--fixed-cidr-v6`: the default bridge is dual-stack.
    pub ipv6: bool,
    pub fixed_cidr_v6: Option<Ipv6Net>,
    /// IPv6 `--default-address-pool`s: where IPv6 networks given no subnet
    /// get one (else a unique local /64).
    pub pools6: Vec<berth_netdriver::subnet::Pool6>,
    /// `--ip6tables`: the `ip6` table (NAT66, isolation) is written.
    pub ip6tables: bool,
    /// `--icc`: containers on the default bridge reach each other.
    pub icc: bool,
    /// `--ip-masq`: the default bridge's traffic out of the host is masqueraded.
    pub ip_masq: bool,
    /// `--iptables`: Berth writes firewall rules (NAT, published ports,
    /// isolation); off, it writes none (published ports then answer through the
    /// userland proxy only).
    pub iptables: bool,
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
