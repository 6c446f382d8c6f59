//! Resource limits from `HostConfig` (`-m`, `--cpus`, `--pids-limit`, `--ulimit`,
//! `--shm-size`, `--sysctl`, …): checked with dockerd's messages at create and
//! update, turned into the runtime's limits at start.

use berth_api::container::HostConfig;
use berth_api::{ApiError, Result};
use berth_runtime::cgroups::Limits;
use berth_runtime::Resources;

/// Docker's "0 means unset".
fn set(n: i64) -> Option<i64> {
    Some(n).filter(|n| *n != 0)
}

/// The cgroup limits a `HostConfig` asks for.
pub(crate) fn of(hc: &HostConfig) -> Resources {
    let (mut quota, mut period) = (
        set(hc.cpu_quota),
        u64::try_from(hc.cpu_period).ok().filter(|n| *n > 0),
    );
    if let Some(n) = set(hc.nano_cpus) {
        let p = 100_000u64;
        period = Some(p);
        quota = Some(n * p as i64 / 1_000_000_000);
    }
    let string = |s: &str| Some(s.to_string()).filter(|s| !s.is_empty());
    Resources {
        memory: set(hc.memory),
        memory_swap: set(hc.memory_swap),
        memory_reservation: set(hc.memory_reservation),
        oom_kill_disable: hc.oom_kill_disable.unwrap_or(false),
        cpu_shares: u64::try_from(hc.cpu_shares).ok().filter(|n| *n > 0),
        cpu_quota: quota,
        cpu_period: period,
        cpuset_cpus: string(&hc.cpuset_cpus),
        cpuset_mems: string(&hc.cpuset_mems),
        pids_limit: hc.pids_limit.and_then(set),
        blkio_weight: Some(hc.blkio_weight).filter(|n| *n > 0),
    }
}

pub(crate) fn limits(r: &Resources) -> Limits {
    Limits {
        memory: r.memory,
        memory_swap: r.memory_swap,
        memory_reservation: r.memory_reservation,
        cpu_shares: r.cpu_shares,
        cpu_quota: r.cpu_quota,
        cpu_period: r.cpu_period,
        cpuset_cpus: r.cpuset_cpus.clone(),
        cpuset_mems: r.cpuset_mems.clone(),
        pids_limit: r.pids_limit,
        blkio_weight: r.blkio_weight,
    }
}

/// `--ulimit`: (name, soft, hard).
pub(crate) fn ulimits(hc: &HostConfig) -> Vec<(String, u64, u64)> {
    hc.ulimits
        .iter()
        .flatten()
        .map(|u| (u.name.clone(), u.soft.max(0) as u64, u.hard.max(0) as u64))
        .collect()
}

pub(crate) fn sysctls(hc: &HostConfig) -> Vec<(String, String)> {
    hc.sysctls
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

const ULIMITS: &[&str] = &[
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
    "as",
];

/// A cpuset list (`0-3,5`), as Go's `ParseUintList` reads it.
fn cpu_list(s: &str) -> Option<std::collections::BTreeSet<u32>> {
    let mut out = std::collections::BTreeSet::new();
    for part in s.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                if a > b {
                    return None;
                }
                out.extend(a..=b);
            }
            None => {
                out.insert(part.parse().ok()?);
            }
        }
    }
    Some(out)
}

/// `--cpuset-cpus` and `--cpuset-mems`: well formed, and only what the host has.
fn cpusets(hc: &HostConfig) -> Result<()> {
    for (field, what, nodes, online) in [
        (
            "CpusetCpus",
            "cpus",
            "CPUs",
            "/sys/devices/system/cpu/online",
        ),
        (
            "CpusetMems",
            "mems",
            "memory nodes",
            "/sys/devices/system/node/online",
        ),
    ] {
        let s = if field == "CpusetCpus" {
            &hc.cpuset_cpus
        } else {
            &hc.cpuset_mems
        };
        if s.is_empty() {
            continue;
        }
        let Some(want) = cpu_list(s) else {
            return Err(ApiError::invalid(format!(
                "Invalid value {s} for cpuset {what}: invalid format: {s}"
            )));
        };
        let avail = std::fs::read_to_string(online).unwrap_or_default();
        let avail = avail.trim();
        if let Some(have) = cpu_list(avail) {
            if !want.is_subset(&have) {
                return Err(ApiError::invalid(format!(
                    "Requested {nodes} are not available - requested {s}, available: {avail}"
                )));
            }
        }
    }
    Ok(())
}

/// dockerd's checks of limits at create and update.
pub(crate) fn validate(hc: &HostConfig) -> Result<()> {
    let r = of(hc);
    if let Some(m) = r.memory {
        if m < 6 * 1024 * 1024 {
            return Err(ApiError::invalid("Minimum memory limit allowed is 6MB"));
        }
    }
    if let (Some(s), m) = (r.memory_swap, r.memory) {
        if s > 0 && m.is_none() {
            return Err(ApiError::invalid(
                "You should always set the Memory limit when using Memoryswap limit, see usage",
            ));
        }
        if s > 0 && m.is_some_and(|m| s < m) {
            return Err(ApiError::invalid(
                "Minimum memoryswap limit should be larger than memory limit, see usage",
            ));
        }
    }
    if let (Some(res), Some(m)) = (r.memory_reservation, r.memory) {
        if res > m {
            return Err(ApiError::invalid(
                "Minimum memory limit can not be less than memory reservation limit, see usage",
            ));
        }
    }
    if hc.nano_cpus != 0 && (hc.cpu_quota != 0 || hc.cpu_period != 0) {
        return Err(ApiError::invalid(
            "Conflicting options: Nano CPUs and CPU Period cannot both be set",
        ));
    }
    if let Some(n) = set(hc.nano_cpus) {
        let cpus = berth_runtime::cgroups::online_cpus() as i64;
        if n < 0 || n > cpus * 1_000_000_000 {
            return Err(ApiError::invalid(format!(
                "Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available"
            )));
        }
    }
    if hc.cpu_quota > 0 && hc.cpu_quota < 1000 {
        return Err(ApiError::invalid(
            "CPU cfs quota can not be less than 1ms (i.e. 1000)",
        ));
    }
    if let Some(k) = hc.kernel_memory.and_then(set) {
        if k < 6 * 1024 * 1024 {
            return Err(ApiError::invalid(
                "Minimum kernel memory limit allowed is 6MB",
            ));
        }
    }
    if let Some(sw) = hc.memory_swappiness {
        if sw != -1 && !(0..=100).contains(&sw) {
            return Err(ApiError::invalid(format!(
                "Invalid value: {sw}, valid memory swappiness range is 0-100"
            )));
        }
    }
    cpusets(hc)?;
    if let Some(p) = r.cpu_period {
        if !(1000..=1_000_000).contains(&p) {
            return Err(ApiError::invalid("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"));
        }
    }
    if let Some(w) = r.blkio_weight {
        if !(10..=1000).contains(&w) {
            return Err(ApiError::invalid(
                "Range of blkio weight is from 10 to 1000",
            ));
        }
    }
    for (name, soft, hard) in ulimits(hc) {
        if !ULIMITS.contains(&name.as_str()) {
            return Err(ApiError::invalid(format!("invalid ulimit type: {name}")));
        }
        if soft > hard {
            return Err(ApiError::invalid(format!(
                "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
            )));
        }
    }
    let host_net = hc.network_mode == "host";
    for (k, _) in sysctls(hc) {
        let namespaced = k.starts_with("kernel.msg")
            || k == "kernel.sem"
            || k.starts_with("kernel.shm")
            || k.starts_with("fs.mqueue.")
            || (k.starts_with("net.") && !host_net);
        if !namespaced {
            return Err(ApiError::invalid(format!(
                "sysctl '{k}' is not allowed{}",
                if k.starts_with("net.") {
                    " in host network mode"
                } else {
                    ""
                }
            )));
        }
    }
    if hc.shm_size < 0 {
        return Err(ApiError::invalid("SHM size can not be less than 0"));
    }
    Ok(())
}

/// The container's device nodes and extra device cgroup rules: every host device
/// for `--privileged`, and `--device`/`--device-cgroup-rule`, read at start as
/// dockerd does (a device that went away fails the start, not the create).
pub(crate) fn devices(
    hc: &HostConfig,
    privileged: bool,
) -> Result<(
    Vec<berth_runtime::spec::Device>,
    Vec<berth_runtime::spec::DeviceRule>,
)> {
    use berth_runtime::spec::devices_at;
    let mut devices = Vec::new();
    if privileged {
        devices = devices_at(std::path::Path::new("/dev"), "/dev", "rwm")
            .map_err(|e| ApiError::system(format!("error gathering the host's devices: {e}")))?;
    }
    for d in hc.devices.iter().flatten() {
        let host = d.path_on_host.as_str();
        let inside = Some(d.path_in_container.as_str())
            .filter(|p| !p.is_empty())
            .unwrap_or(host);
        let access = Some(d.cgroup_permissions.as_str())
            .filter(|p| !p.is_empty())
            .unwrap_or("rwm");
        let found = devices_at(std::path::Path::new(host), inside, access).map_err(|e| {
            // Go's words for the errors, as dockerd prints them.
            let why = match e.kind() {
                std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
                _ => e.to_string(),
            };
            ApiError::system(format!(
                "error gathering device information while adding custom device \"{host}\": {why}"
            ))
        })?;
        for f in found {
            devices.retain(|d: &berth_runtime::spec::Device| d.path != f.path);
            devices.push(f);
        }
    }
    let rules = HostConfig::list(&hc.device_cgroup_rules)
        .iter()
        .map(|r| r.parse().map_err(ApiError::invalid))
        .collect::<Result<Vec<_>>>()?;
    Ok((devices, rules))
}

/// `--gpus` and `DeviceRequests`: no device driver is registered in Berth (as in
/// a dockerd without the NVIDIA runtime), so a start that asks for one fails in
/// dockerd's words.
pub(crate) fn device_requests(hc: &HostConfig) -> Result<()> {
    let Some(r) = hc.device_requests.iter().flatten().next() else {
        return Ok(());
    };
    let caps: Vec<String> = r
        .capabilities
        .iter()
        .flatten()
        .map(|set| format!("[{}]", set.join(" ")))
        .collect();
    Err(ApiError::system(format!(
        "could not select device driver \"{}\" with capabilities: [{}]",
        r.driver,
        caps.join(" ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::container::CreateRequest;
    use serde_json::json;

    fn hc(v: serde_json::Value) -> HostConfig {
        serde_json::from_value(v).unwrap_or_default()
    }

    fn validate(v: serde_json::Value) -> Result<()> {
        super::validate(&hc(v))
    }

    fn of(v: serde_json::Value) -> Resources {
        super::of(&hc(v))
    }

    #[test]
    fn limits_follow_dockerd() {
        let r = of(json!({"Memory": 64 << 20, "NanoCpus": 1_500_000_000i64, "PidsLimit": 50}));
        assert_eq!(r.memory, Some(64 << 20));
        assert_eq!((r.cpu_quota, r.cpu_period), (Some(150_000), Some(100_000)));
        assert_eq!(r.pids_limit, Some(50));
        assert!(validate(json!({"Memory": 1024})).is_err());
        assert!(validate(json!({"Memory": 64 << 20, "MemorySwap": 32 << 20})).is_err());
        assert!(validate(json!({"NanoCpus": 1, "CpuQuota": 5})).is_err());
        assert!(validate(json!({"Ulimits": [{"Name": "nofile", "Soft": 10, "Hard": 5}]})).is_err());
        assert!(validate(json!({"Ulimits": [{"Name": "bogus", "Soft": 1, "Hard": 5}]})).is_err());
        assert!(validate(json!({"Sysctls": {"kernel.panic": "1"}})).is_err());
        assert!(validate(json!({"Sysctls": {"net.ipv4.ip_forward": "1"}})).is_ok());
        assert!(
            validate(json!({"Sysctls": {"net.ipv4.ip_forward": "1"}, "NetworkMode": "host"}))
                .is_err()
        );
        assert!(validate(json!({"Memory": 64 << 20, "MemorySwap": -1, "CpuShares": 512})).is_ok());
    }

    fn err(hc: serde_json::Value) -> String {
        let body = json!({"Image": "x", "HostConfig": hc}).to_string();
        if let Err(e) = CreateRequest::parse(body.as_bytes()) {
            return e.message;
        }
        match validate(hc.clone()) {
            Err(e) => e.message,
            Ok(()) => panic!("{hc} accepted"),
        }
    }

    #[test]
    fn values_out_of_their_go_type_or_range_get_dockerds_texts() {
        // 65546 would wrap to 10 in a u16 and pass the range check.
        assert_eq!(
            err(json!({"BlkioWeight": 65546})),
            "json: cannot unmarshal number 65546 into Go struct field HostConfig.HostConfig.BlkioWeight of type uint16"
        );
        assert!(err(json!({"BlkioWeight": -1}))
            .contains("number -1 into Go struct field HostConfig.HostConfig.BlkioWeight"));
        assert_eq!(
            err(json!({"BlkioWeight": 5000})),
            "Range of blkio weight is from 10 to 1000"
        );
        assert!(validate(json!({"BlkioWeight": 500})).is_ok());
        assert!(err(json!({"IOMaximumIOps": -1})).ends_with("IOMaximumIOps of type uint64"));
        assert_eq!(
            err(json!({"MemorySwappiness": 200})),
            "Invalid value: 200, valid memory swappiness range is 0-100"
        );
        assert!(validate(json!({"MemorySwappiness": -1})).is_ok());
        assert_eq!(
            err(json!({"CpuQuota": 500})),
            "CPU cfs quota can not be less than 1ms (i.e. 1000)"
        );
        assert_eq!(
            err(json!({"KernelMemory": 100})),
            "Minimum kernel memory limit allowed is 6MB"
        );
        assert_eq!(
            err(json!({"CpusetCpus": "0-"})),
            "Invalid value 0- for cpuset cpus: invalid format: 0-"
        );
        assert_eq!(
            err(json!({"CpusetMems": "x"})),
            "Invalid value x for cpuset mems: invalid format: x"
        );
        assert!(err(json!({"CpusetCpus": "4096"}))
            .starts_with("Requested CPUs are not available - requested 4096, available: "));
        assert!(validate(json!({"CpusetCpus": "0"})).is_ok());
    }

    #[test]
    fn device_requests_are_refused_in_dockerds_words() {
        let e = device_requests(&hc(
            json!({"DeviceRequests": [{"Driver": "", "Count": -1, "Capabilities": [["gpu"]]}]}),
        ));
        assert_eq!(
            e.err().map(|e| e.message).as_deref(),
            Some("could not select device driver \"\" with capabilities: [[gpu]]")
        );
        assert!(device_requests(&hc(json!({"DeviceRequests": []}))).is_ok());
    }

    #[test]
    fn cpu_lists_parse_as_go_does() {
        assert_eq!(
            cpu_list("0-2,5").map(|s| s.into_iter().collect::<Vec<_>>()),
            Some(vec![0, 1, 2, 5])
        );
        for bad in ["", "0-", "-1", "3-1", "a", "1,,2"] {
            assert_eq!(cpu_list(bad), None, "{bad}");
        }
    }
}
