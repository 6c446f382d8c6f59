//! `docker update` on a container the systemd driver placed: the new limits as
//! the scope unit's properties too (`systemctl set-property --runtime`), as
//! runc's systemd driver sets them. Written only to the cgroup files, they would
//! last until systemd next applies the unit's own properties (every `systemctl
//! daemon-reload`, which every package install runs) and then fall back to the
//! values of the container's start.

use std::process::Command;

use crate::cgroups::{cpu_weight, io_weight, Limits};

/// The unit properties for `l`, in systemd's names and units.
pub fn properties(l: &Limits) -> Vec<String> {
    let bytes = |v: i64| {
        if v <= 0 {
            "infinity".to_string()
        } else {
            v.to_string()
        }
    };
    let mut p = Vec::new();
    if let Some(v) = l.memory {
        p.push(format!("MemoryMax={}", bytes(v)));
    }
    if let Some(v) = l.memory_reservation {
        p.push(format!("MemoryLow={}", v.max(0)));
    }
    if let Some(s) = l.memory_swap {
        let swap = if s < 0 {
            "infinity".to_string()
        } else {
            (s - l.memory.unwrap_or(0)).max(0).to_string()
        };
        p.push(format!("MemorySwapMax={swap}"));
    }
    if let Some(v) = l.cpu_shares {
        p.push(format!("CPUWeight={}", cpu_weight(v)));
    }
    if l.cpu_quota.is_some() || l.cpu_period.is_some() {
        let period = l.cpu_period.unwrap_or(100_000).max(1);
        p.push(format!("CPUQuotaPeriodSec={period}us"));
        match l.cpu_quota.filter(|q| *q > 0) {
            // systemd takes the quota as a share of one CPU per period.
            Some(q) => p.push(format!("CPUQuota={}%", (q as u64 * 100).div_ceil(period))),
            None => p.push("CPUQuota=".into()),
        }
    }
    if let Some(v) = &l.cpuset_cpus {
        p.push(format!("AllowedCPUs={v}"));
    }
    if let Some(v) = &l.cpuset_mems {
        p.push(format!("AllowedMemoryNodes={v}"));
    }
    if let Some(v) = l.pids_limit {
        p.push(format!("TasksMax={}", bytes(v)));
    }
    if let Some(v) = l.blkio_weight {
        p.push(format!("IOWeight={}", io_weight(v)));
    }
    p
}

/// Sets them on `unit` for its life (`--runtime`: gone with the transient unit).
/// Blocking.
pub fn set(unit: &str, l: &Limits) -> std::io::Result<()> {
    set_properties(unit, &properties(l))
}

/// `systemctl set-property --runtime UNIT PROPS…` (nothing when there are none).
/// Blocking.
pub fn set_properties(unit: &str, props: &[String]) -> std::io::Result<()> {
    if props.is_empty() {
        return Ok(());
    }
    let out = Command::new("systemctl")
        .args(["set-property", "--runtime", unit])
        .args(props)
        .output()?;
    if out.status.success() {
        return Ok(());
    }
    Err(std::io::Error::other(format!(
        "systemctl set-property {unit}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_become_systemds_properties() {
        let l = Limits {
            memory: Some(48 << 20),
            memory_swap: Some(96 << 20),
            cpu_shares: Some(1024),
            cpu_quota: Some(25_000),
            cpu_period: Some(100_000),
            pids_limit: Some(-1),
            blkio_weight: Some(500),
            cpuset_cpus: Some("0-1".into()),
            ..Default::default()
        };
        assert_eq!(
            properties(&l),
            [
                "MemoryMax=50331648",
                "MemorySwapMax=50331648",
                "CPUWeight=100",
                "CPUQuotaPeriodSec=100000us",
                "CPUQuota=25%",
                "AllowedCPUs=0-1",
                "TasksMax=infinity",
                "IOWeight=4950"
            ]
        );
        assert!(properties(&Limits::default()).is_empty());
    }
}
