//! A container's endpoints (`NetworkingConfig.EndpointsConfig`, `docker network
//! connect`) and its `NetworkSettings` in inspect.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::config::nullable;
use super::Extra;

/// One published port: `HostPort` is a string in Docker's API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PortBinding {
    #[serde(default, deserialize_with = "nullable")]
    pub host_ip: String,
    #[serde(default, deserialize_with = "nullable")]
    pub host_port: String,
}

/// `80/tcp` → its bindings (`null` for a port only exposed).
pub type PortMap = BTreeMap<String, Option<Vec<PortBinding>>>;

/// `EndpointSettings.IPAMConfig`: the addresses asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointIpamConfig {
    #[serde(
        rename = "IPv4Address",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv4_address: Option<String>,
    #[serde(
        rename = "IPv6Address",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv6_address: Option<String>,
    #[serde(
        rename = "LinkLocalIPs",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub link_local_ips: Option<Vec<String>>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl EndpointIpamConfig {
    pub fn is_empty(&self) -> bool {
        *self == EndpointIpamConfig::default()
    }
}

/// A container's endpoint on one network: what was asked for (the first five
/// fields) and, while it runs, what it got.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointSettings {
    #[serde(rename = "IPAMConfig", default)]
    pub ipam_config: Option<EndpointIpamConfig>,
    #[serde(rename = "Links", default)]
    pub links: Option<Vec<String>>,
    #[serde(rename = "Aliases", default)]
    pub aliases: Option<Vec<String>>,
    #[serde(rename = "MacAddress", default, deserialize_with = "nullable")]
    pub mac_address: String,
    #[serde(rename = "DriverOpts", default)]
    pub driver_opts: Option<BTreeMap<String, String>>,
    /// Go's `omitempty`: shown only when not 0.
    #[serde(
        rename = "GwPriority",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_zero"
    )]
    pub gw_priority: i64,
    #[serde(rename = "NetworkID", default, deserialize_with = "nullable")]
    pub network_id: String,
    #[serde(rename = "EndpointID", default, deserialize_with = "nullable")]
    pub endpoint_id: String,
    #[serde(rename = "Gateway", default, deserialize_with = "nullable")]
    pub gateway: String,
    #[serde(rename = "IPAddress", default, deserialize_with = "nullable")]
    pub ip_address: String,
    #[serde(rename = "IPPrefixLen", default, deserialize_with = "nullable")]
    pub ip_prefix_len: i64,
    #[serde(rename = "IPv6Gateway", default, deserialize_with = "nullable")]
    pub ipv6_gateway: String,
    #[serde(rename = "GlobalIPv6Address", default, deserialize_with = "nullable")]
    pub global_ipv6_address: String,
    #[serde(rename = "GlobalIPv6PrefixLen", default, deserialize_with = "nullable")]
    pub global_ipv6_prefix_len: i64,
    #[serde(rename = "DNSNames", default)]
    pub dns_names: Option<Vec<String>>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl EndpointSettings {
    /// Only what a client asks for (inspect of a container that is not running).
    pub fn requested(&self) -> EndpointSettings {
        EndpointSettings {
            ipam_config: self.ipam_config.clone(),
            links: self.links.clone(),
            aliases: self.aliases.clone(),
            mac_address: self.mac_address.clone(),
            driver_opts: self.driver_opts.clone(),
            gw_priority: self.gw_priority,
            ..Default::default()
        }
    }

    pub fn aliases(&self) -> &[String] {
        self.aliases.as_deref().unwrap_or(&[])
    }
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// `SecondaryIPAddresses` entries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Address {
    pub addr: String,
    pub prefix_len: i64,
}

/// A container's `NetworkSettings`; the top-level address fields are the default
/// bridge's endpoint (Docker's legacy shape).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkSettings {
    #[serde(rename = "Bridge", deserialize_with = "nullable")]
    pub bridge: String,
    #[serde(rename = "SandboxID", deserialize_with = "nullable")]
    pub sandbox_id: String,
    #[serde(rename = "HairpinMode", deserialize_with = "nullable")]
    pub hairpin_mode: bool,
    #[serde(rename = "LinkLocalIPv6Address", deserialize_with = "nullable")]
    pub link_local_ipv6_address: String,
    #[serde(rename = "LinkLocalIPv6PrefixLen", deserialize_with = "nullable")]
    pub link_local_ipv6_prefix_len: i64,
    #[serde(rename = "Ports", deserialize_with = "nullable")]
    pub ports: PortMap,
    #[serde(rename = "SandboxKey", deserialize_with = "nullable")]
    pub sandbox_key: String,
    #[serde(rename = "SecondaryIPAddresses")]
    pub secondary_ip_addresses: Option<Vec<Address>>,
    #[serde(rename = "SecondaryIPv6Addresses")]
    pub secondary_ipv6_addresses: Option<Vec<Address>>,
    #[serde(rename = "EndpointID", deserialize_with = "nullable")]
    pub endpoint_id: String,
    #[serde(rename = "Gateway", deserialize_with = "nullable")]
    pub gateway: String,
    #[serde(rename = "GlobalIPv6Address", deserialize_with = "nullable")]
    pub global_ipv6_address: String,
    #[serde(rename = "GlobalIPv6PrefixLen", deserialize_with = "nullable")]
    pub global_ipv6_prefix_len: i64,
    #[serde(rename = "IPAddress", deserialize_with = "nullable")]
    pub ip_address: String,
    #[serde(rename = "IPPrefixLen", deserialize_with = "nullable")]
    pub ip_prefix_len: i64,
    #[serde(rename = "IPv6Gateway", deserialize_with = "nullable")]
    pub ipv6_gateway: String,
    #[serde(rename = "MacAddress", deserialize_with = "nullable")]
    pub mac_address: String,
    #[serde(rename = "Networks", deserialize_with = "nullable")]
    pub networks: BTreeMap<String, EndpointSettings>,
}
