//! `daemon.json`: dockerd's keys for the settings Berth has, read with
//! dockerd's errors. Unknown keys are found with `serde_ignored`, so the list
//! of keys is the struct itself.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;

/// `daemon.json`: dockerd's keys for the settings Berth has.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) struct FileConfig {
    pub(super) hosts: Option<Vec<String>>,
    pub(super) metrics_addr: Option<String>,
    pub(super) tls: Option<bool>,
    pub(super) tlsverify: Option<bool>,
    pub(super) tlscacert: Option<PathBuf>,
    pub(super) tlscert: Option<PathBuf>,
    pub(super) tlskey: Option<PathBuf>,
    pub(super) exec_opts: Option<Vec<String>>,
    pub(super) cgroup_parent: Option<String>,
    pub(super) default_cgroupns_mode: Option<String>,
    pub(super) data_root: Option<PathBuf>,
    pub(super) exec_root: Option<PathBuf>,
    pub(super) pidfile: Option<PathBuf>,
    pub(super) log_level: Option<String>,
    pub(super) log_format: Option<String>,
    pub(super) debug: Option<bool>,
    pub(super) group: Option<String>,
    pub(super) labels: Option<Vec<String>>,
    pub(super) live_restore: Option<bool>,
    pub(super) restrict_oom_score_adj: Option<bool>,
    pub(super) insecure_registries: Option<Vec<String>>,
    pub(super) max_concurrent_downloads: Option<usize>,
    pub(super) max_concurrent_uploads: Option<usize>,
    pub(super) bridge: Option<String>,
    pub(super) bip: Option<String>,
    pub(super) fixed_cidr: Option<String>,
    pub(super) mtu: Option<u32>,
    pub(super) ipv6: Option<bool>,
    pub(super) fixed_cidr_v6: Option<String>,
    pub(super) icc: Option<bool>,
    pub(super) ip_masq: Option<bool>,
    pub(super) iptables: Option<bool>,
    pub(super) ip6tables: Option<bool>,
    pub(super) default_address_pools: Option<Vec<PoolEntry>>,
    pub(super) runtimes: Option<BTreeMap<String, RuntimeEntry>>,
    pub(super) default_runtime: Option<String>,
    pub(super) seccomp_profile: Option<String>,
    pub(super) log_driver: Option<String>,
    pub(super) log_opts: Option<BTreeMap<String, String>>,
    pub(super) registry_mirrors: Option<Vec<String>>,
    pub(super) max_download_attempts: Option<u32>,
    pub(super) default_shm_size: Option<SizeValue>,
    pub(super) shutdown_timeout: Option<i64>,
}

/// A size as dockerd's `MemBytes` takes it from JSON: `"64M"` or a number.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(super) enum SizeValue {
    Text(String),
    Bytes(i64),
}

/// One `runtimes` entry of daemon.json.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RuntimeEntry {
    pub(super) path: PathBuf,
}

/// One `default-address-pools` entry of daemon.json.
#[derive(Debug, Deserialize)]
pub(super) struct PoolEntry {
    pub(super) base: String,
    pub(super) size: u8,
}

/// Reads the file: dockerd's error naming every key it does not know, else
/// the first value of the wrong type. A missing file is an empty one unless
/// it was named on the command line.
pub(super) fn read_file(path: &Path, must_exist: bool) -> Result<FileConfig, ConfigError> {
    let err = |reason: String| ConfigError::File {
        path: path.display().to_string(),
        reason,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => {
            return Ok(FileConfig::default())
        }
        Err(e) => return Err(err(e.to_string())),
    };
    if text.trim().is_empty() {
        return Ok(FileConfig::default());
    }
    let raw: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&text).map_err(|e| err(e.to_string()))?;
    // Each key alone, so that one of the wrong type does not hide an unknown one.
    let unknown: Vec<&str> = raw
        .iter()
        .filter(|(k, v)| {
            let one =
                serde_json::Value::Object([((*k).clone(), (*v).clone())].into_iter().collect());
            let mut ignored = false;
            let _ = serde_ignored::deserialize(one, |_| ignored = true).map(|_: FileConfig| ());
            ignored
        })
        .map(|(k, _)| k.as_str())
        .collect();
    if !unknown.is_empty() {
        return Err(ConfigError::UnknownKeys(unknown.join(", ")));
    }
    serde_json::from_value(serde_json::Value::Object(raw)).map_err(|e| err(e.to_string()))
}

/// dockerd's `RAMInBytes`: `64m`, `1.5G`, `512k`, `100` (binary units, an
/// optional `b`).
pub(super) fn ram_in_bytes(s: &str) -> Option<i64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, shift) = match t.chars().last()? {
        'k' => (&t[..t.len() - 1], 10),
        'm' => (&t[..t.len() - 1], 20),
        'g' => (&t[..t.len() - 1], 30),
        't' => (&t[..t.len() - 1], 40),
        'p' => (&t[..t.len() - 1], 50),
        _ => (t, 0),
    };
    let n: f64 = num.trim().parse().ok().filter(|n: &f64| *n >= 0.0)?;
    Some((n * (1u64 << shift) as f64) as i64)
}
