//! What a container asks of the network subsystem when it starts, and what it
//! gets back: the shapes the container and network job families share.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use std::collections::BTreeMap;

use crate::container::{EndpointSettings, NetworkSettings, PortMap};

/// A container about to start.
#[derive(Debug, Clone, Default)]
pub struct NetRequest {
    pub id: String,
    /// Without the leading slash.
    pub name: String,
    /// `HostConfig.NetworkMode`; `container:<id>` with the full ID.
    pub mode: String,
    /// `NetworkingConfig.EndpointsConfig`: network name → what was asked for.
    pub endpoints: BTreeMap<String, EndpointSettings>,
    /// `HostConfig.PortBindings`.
    pub port_bindings: PortMap,
    /// `Config.ExposedPorts` keys (`80/tcp`).
    pub exposed: Vec<String>,
    pub publish_all: bool,
    /// `HostConfig.Dns`: the servers the embedded DNS server forwards to for it.
    pub dns: Vec<String>,
}

/// The network side of a started container.
#[derive(Debug, Clone, Default)]
pub struct NetSetup {
    /// The namespace to join; None with `host` set means the host's.
    pub netns: Option<PathBuf>,
    pub host: bool,
    /// `NetworkSettings` for inspect.
    pub settings: NetworkSettings,
    /// The address `/etc/hosts` gives the container's hostname.
    pub ip: Option<Ipv4Addr>,
    /// Its IPv6 address on an IPv6 network, in `/etc/hosts` too.
    pub ip6: Option<std::net::Ipv6Addr>,
    /// `nameserver` entries for its resolv.conf; None: the host's.
    pub nameservers: Option<Vec<String>>,
    /// What `host-gateway` in `--add-host` stands for: the default bridge's
    /// address, as dockerd's default `--host-gateway-ip`.
    pub host_gateway: Option<Ipv4Addr>,
}
