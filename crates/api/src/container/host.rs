//! `HostConfig`: what the host gives a container (limits, mounts, namespaces,
//! ports, restart policy, logging).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::config::nullable;
use super::{Extra, PortMap};

/// A container's `HostConfig`, with Go's types: what dockerd decodes it into,
/// and the shape it shows (scalars at their zero value, unset lists as null,
/// Go's `omitempty` fields left out when unset).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostConfig {
    #[serde(rename = "Binds", default)]
    pub binds: Option<Vec<String>>,
    #[serde(rename = "ContainerIDFile", default, deserialize_with = "nullable")]
    pub container_id_file: String,
    #[serde(rename = "LogConfig", default, deserialize_with = "nullable")]
    pub log_config: LogConfig,
    #[serde(rename = "NetworkMode", default, deserialize_with = "nullable")]
    pub network_mode: String,
    #[serde(rename = "PortBindings", default)]
    pub port_bindings: Option<PortMap>,
    #[serde(rename = "RestartPolicy", default, deserialize_with = "nullable")]
    pub restart_policy: RestartPolicy,
    #[serde(rename = "AutoRemove", default, deserialize_with = "nullable")]
    pub auto_remove: bool,
    #[serde(rename = "VolumeDriver", default, deserialize_with = "nullable")]
    pub volume_driver: String,
    #[serde(rename = "VolumesFrom", default)]
    pub volumes_from: Option<Vec<String>>,
    /// `[height, width]`.
    #[serde(rename = "ConsoleSize", default, deserialize_with = "nullable")]
    pub console_size: [u64; 2],
    #[serde(
        rename = "Annotations",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(rename = "CapAdd", default)]
    pub cap_add: Option<Vec<String>>,
    #[serde(rename = "CapDrop", default)]
    pub cap_drop: Option<Vec<String>>,
    #[serde(rename = "CgroupnsMode", default, deserialize_with = "nullable")]
    pub cgroupns_mode: String,
    #[serde(rename = "Dns", default)]
    pub dns: Option<Vec<String>>,
    #[serde(rename = "DnsOptions", default)]
    pub dns_options: Option<Vec<String>>,
    #[serde(rename = "DnsSearch", default)]
    pub dns_search: Option<Vec<String>>,
    #[serde(rename = "ExtraHosts", default)]
    pub extra_hosts: Option<Vec<String>>,
    #[serde(rename = "GroupAdd", default)]
    pub group_add: Option<Vec<String>>,
    #[serde(rename = "IpcMode", default, deserialize_with = "nullable")]
    pub ipc_mode: String,
    #[serde(rename = "Cgroup", default, deserialize_with = "nullable")]
    pub cgroup: String,
    /// `name:alias`; stored as `/name:/container/alias`.
    #[serde(rename = "Links", default)]
    pub links: Option<Vec<String>>,
    #[serde(rename = "OomScoreAdj", default, deserialize_with = "nullable")]
    pub oom_score_adj: i64,
    #[serde(rename = "PidMode", default, deserialize_with = "nullable")]
    pub pid_mode: String,
    #[serde(rename = "Privileged", default, deserialize_with = "nullable")]
    pub privileged: bool,
    #[serde(rename = "PublishAllPorts", default, deserialize_with = "nullable")]
    pub publish_all_ports: bool,
    #[serde(rename = "ReadonlyRootfs", default, deserialize_with = "nullable")]
    pub readonly_rootfs: bool,
    #[serde(rename = "SecurityOpt", default)]
    pub security_opt: Option<Vec<String>>,
    #[serde(
        rename = "StorageOpt",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub storage_opt: Option<BTreeMap<String, String>>,
    #[serde(rename = "Tmpfs", default, skip_serializing_if = "Option::is_none")]
    pub tmpfs: Option<BTreeMap<String, String>>,
    #[serde(rename = "UTSMode", default, deserialize_with = "nullable")]
    pub uts_mode: String,
    #[serde(rename = "UsernsMode", default, deserialize_with = "nullable")]
    pub userns_mode: String,
    #[serde(rename = "ShmSize", default, deserialize_with = "nullable")]
    pub shm_size: i64,
    #[serde(rename = "Sysctls", default, skip_serializing_if = "Option::is_none")]
    pub sysctls: Option<BTreeMap<String, String>>,
    #[serde(rename = "Runtime", default, deserialize_with = "nullable")]
    pub runtime: String,
    #[serde(rename = "Isolation", default, deserialize_with = "nullable")]
    pub isolation: String,
    #[serde(rename = "CpuShares", default, deserialize_with = "nullable")]
    pub cpu_shares: i64,
    #[serde(rename = "Memory", default, deserialize_with = "nullable")]
    pub memory: i64,
    #[serde(rename = "NanoCpus", default, deserialize_with = "nullable")]
    pub nano_cpus: i64,
    #[serde(rename = "CgroupParent", default, deserialize_with = "nullable")]
    pub cgroup_parent: String,
    #[serde(rename = "BlkioWeight", default, deserialize_with = "nullable")]
    pub blkio_weight: u16,
    #[serde(rename = "BlkioWeightDevice", default)]
    pub blkio_weight_device: Option<Vec<WeightDevice>>,
    #[serde(rename = "BlkioDeviceReadBps", default)]
    pub blkio_device_read_bps: Option<Vec<ThrottleDevice>>,
    #[serde(rename = "BlkioDeviceWriteBps", default)]
    pub blkio_device_write_bps: Option<Vec<ThrottleDevice>>,
    #[serde(rename = "BlkioDeviceReadIOps", default)]
    pub blkio_device_read_iops: Option<Vec<ThrottleDevice>>,
    #[serde(rename = "BlkioDeviceWriteIOps", default)]
    pub blkio_device_write_iops: Option<Vec<ThrottleDevice>>,
    #[serde(rename = "CpuPeriod", default, deserialize_with = "nullable")]
    pub cpu_period: i64,
    #[serde(rename = "CpuQuota", default, deserialize_with = "nullable")]
    pub cpu_quota: i64,
    #[serde(rename = "CpuRealtimePeriod", default, deserialize_with = "nullable")]
    pub cpu_realtime_period: i64,
    #[serde(rename = "CpuRealtimeRuntime", default, deserialize_with = "nullable")]
    pub cpu_realtime_runtime: i64,
    #[serde(rename = "CpusetCpus", default, deserialize_with = "nullable")]
    pub cpuset_cpus: String,
    #[serde(rename = "CpusetMems", default, deserialize_with = "nullable")]
    pub cpuset_mems: String,
    #[serde(rename = "Devices", default)]
    pub devices: Option<Vec<DeviceMapping>>,
    #[serde(rename = "DeviceCgroupRules", default)]
    pub device_cgroup_rules: Option<Vec<String>>,
    #[serde(rename = "DeviceRequests", default)]
    pub device_requests: Option<Vec<DeviceRequest>>,
    /// Removed in API 1.42; older clients still send it.
    #[serde(
        rename = "KernelMemory",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub kernel_memory: Option<i64>,
    #[serde(
        rename = "KernelMemoryTCP",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub kernel_memory_tcp: Option<i64>,
    #[serde(rename = "MemoryReservation", default, deserialize_with = "nullable")]
    pub memory_reservation: i64,
    #[serde(rename = "MemorySwap", default, deserialize_with = "nullable")]
    pub memory_swap: i64,
    #[serde(rename = "MemorySwappiness", default)]
    pub memory_swappiness: Option<i64>,
    #[serde(rename = "OomKillDisable", default)]
    pub oom_kill_disable: Option<bool>,
    #[serde(rename = "PidsLimit", default)]
    pub pids_limit: Option<i64>,
    #[serde(rename = "Ulimits", default)]
    pub ulimits: Option<Vec<Ulimit>>,
    #[serde(rename = "CpuCount", default, deserialize_with = "nullable")]
    pub cpu_count: i64,
    #[serde(rename = "CpuPercent", default, deserialize_with = "nullable")]
    pub cpu_percent: i64,
    #[serde(rename = "IOMaximumIOps", default, deserialize_with = "nullable")]
    pub io_maximum_iops: u64,
    #[serde(rename = "IOMaximumBandwidth", default, deserialize_with = "nullable")]
    pub io_maximum_bandwidth: u64,
    #[serde(rename = "Mounts", default, skip_serializing_if = "Option::is_none")]
    pub mounts: Option<Vec<Mount>>,
    #[serde(rename = "MaskedPaths", default)]
    pub masked_paths: Option<Vec<String>>,
    #[serde(rename = "ReadonlyPaths", default)]
    pub readonly_paths: Option<Vec<String>>,
    #[serde(rename = "Init", default, skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl HostConfig {
    /// `NetworkMode`, with the default network's name for `""` and `default`.
    pub fn network_mode(&self) -> &str {
        match self.network_mode.as_str() {
            "" | "default" => "bridge",
            m => m,
        }
    }

    /// A list option, empty when unset.
    pub fn list(v: &Option<Vec<String>>) -> &[String] {
        v.as_deref().unwrap_or(&[])
    }
}

/// `HostConfig.RestartPolicy`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RestartPolicy {
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub maximum_retry_count: i64,
}

/// `HostConfig.LogConfig`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LogConfig {
    #[serde(default, deserialize_with = "nullable")]
    pub r#type: String,
    #[serde(default, deserialize_with = "nullable")]
    pub config: BTreeMap<String, String>,
}

/// `--device`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeviceMapping {
    #[serde(default, deserialize_with = "nullable")]
    pub path_on_host: String,
    #[serde(default, deserialize_with = "nullable")]
    pub path_in_container: String,
    #[serde(default, deserialize_with = "nullable")]
    pub cgroup_permissions: String,
}

/// `--gpus` and other device-driver requests.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeviceRequest {
    #[serde(default, deserialize_with = "nullable")]
    pub driver: String,
    #[serde(default, deserialize_with = "nullable")]
    pub count: i64,
    #[serde(rename = "DeviceIDs", default)]
    pub device_ids: Option<Vec<String>>,
    #[serde(default)]
    pub capabilities: Option<Vec<Vec<String>>>,
    #[serde(default)]
    pub options: Option<BTreeMap<String, String>>,
}

/// `--ulimit`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ulimit {
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub soft: i64,
    #[serde(default, deserialize_with = "nullable")]
    pub hard: i64,
}

/// `--device-read-bps` and its kin.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ThrottleDevice {
    #[serde(default, deserialize_with = "nullable")]
    pub path: String,
    #[serde(default, deserialize_with = "nullable")]
    pub rate: u64,
}

/// `--blkio-weight-device`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WeightDevice {
    #[serde(default, deserialize_with = "nullable")]
    pub path: String,
    #[serde(default, deserialize_with = "nullable")]
    pub weight: u16,
}

/// One of `HostConfig.Mounts` (`--mount`); every field is Go's `omitempty`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Mount {
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub r#type: String,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub source: String,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind_options: Option<BindOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_options: Option<VolumeOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmpfs_options: Option<TmpfsOptions>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BindOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub non_recursive: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_mountpoint: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_non_recursive: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_force_recursive: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_copy: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_config: Option<DriverConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subpath: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DriverConfig {
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TmpfsOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Vec<Vec<String>>>,
    #[serde(flatten)]
    pub extra: Extra,
}
