//! Log drivers as dockerd offers the ones Berth has: `json-file` (the default),
//! `local` and `none`, the daemon's default driver and options (`--log-driver`,
//! `--log-opt`, daemon.json `log-driver`/`log-opts`), merged into each container's
//! `HostConfig.LogConfig` at create as dockerd merges them, and checked with its
//! texts.
//!
//! Every driver keeps what the container prints in the shim's json-file log,
//! which attach follows; the drivers differ in what they keep and who may read
//! it. `local` keeps dockerd's local defaults (20 MB × 5 files) and is read by
//! `docker logs` as json-file is; its `compress` option is accepted, and rotated
//! files stay uncompressed. `none` keeps only a 1 MB window for attached clients
//! and refuses `docker logs` as dockerd does. json-file's `labels`, `labels-regex`,
//! `env`, `env-regex`, `tag` and `compress` are accepted and recorded; its lines
//! carry no `attrs`.

use std::collections::BTreeMap;

use berth_api::container::{HostConfig, LogConfig as ApiLogConfig};
use berth_api::{ApiError, Result};

/// A log driver Berth has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    JsonFile,
    Local,
    None,
}

impl Driver {
    pub fn parse(name: &str) -> Result<Driver> {
        match name {
            "json-file" => Ok(Driver::JsonFile),
            "local" => Ok(Driver::Local),
            "none" => Ok(Driver::None),
            other => Err(ApiError::invalid(format!(
                "logger: no log driver named '{other}' is registered"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Driver::JsonFile => "json-file",
            Driver::Local => "local",
            Driver::None => "none",
        }
    }

    /// The names `docker info` lists under Plugins.Log.
    pub const ALL: [&'static str; 3] = ["json-file", "local", "none"];

    fn options(self) -> &'static [&'static str] {
        match self {
            Driver::JsonFile => &[
                "max-size",
                "max-file",
                "labels",
                "labels-regex",
                "env",
                "env-regex",
                "tag",
                "compress",
            ],
            Driver::Local => &["max-size", "max-file", "compress"],
            Driver::None => &[],
        }
    }

    /// Whether `docker logs` can read what it kept.
    pub fn readable(self) -> bool {
        self != Driver::None
    }
}

/// A driver and its options, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    pub driver: Driver,
    pub opts: BTreeMap<String, String>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            driver: Driver::JsonFile,
            opts: BTreeMap::new(),
        }
    }
}

impl LogConfig {
    /// A driver and options, checked as dockerd checks them.
    pub fn new(driver: &str, opts: BTreeMap<String, String>) -> Result<LogConfig> {
        let driver = Driver::parse(if driver.is_empty() {
            "json-file"
        } else {
            driver
        })?;
        for (k, v) in &opts {
            if !driver.options().contains(&k.as_str()) {
                return Err(ApiError::invalid(format!(
                    "unknown log opt '{k}' for {} log driver",
                    driver.name()
                )));
            }
            let ok = match k.as_str() {
                "max-size" => berth_runtime::logfile::parse_size(v).is_some(),
                "max-file" => v.parse::<u32>().is_ok_and(|n| n >= 1),
                "compress" => v.parse::<bool>().is_ok(),
                _ => true,
            };
            if !ok {
                return Err(ApiError::invalid(format!(
                    "invalid value for log option {k}: {v}"
                )));
            }
        }
        Ok(LogConfig { driver, opts })
    }

    /// The container's `HostConfig.LogConfig` with the daemon's defaults merged
    /// in: its driver when none is named, its options where the container names
    /// the same driver and leaves them out (dockerd's `mergeAndVerifyLogConfig`).
    pub fn for_container(&self, lc: &ApiLogConfig) -> Result<LogConfig> {
        let named = Some(lc.r#type.as_str()).filter(|t| !t.is_empty());
        let mut opts = lc.config.clone();
        let driver = named.unwrap_or(self.driver.name());
        if driver == self.driver.name() {
            for (k, v) in &self.opts {
                opts.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        LogConfig::new(driver, opts)
    }

    /// A stored container's, as create recorded it (records from before log
    /// drivers: json-file with their options).
    pub fn of_host_config(hc: &HostConfig) -> LogConfig {
        LogConfig::default()
            .for_container(&hc.log_config)
            .unwrap_or_else(|_| LogConfig::default())
    }

    /// As `HostConfig.LogConfig` shows it.
    pub fn to_config(&self) -> ApiLogConfig {
        ApiLogConfig {
            r#type: self.driver.name().to_string(),
            config: self.opts.clone(),
        }
    }

    /// What the shim's json-file log keeps for this driver: its `max-size`
    /// and how many files.
    pub fn rotation(&self) -> (Option<String>, Option<u32>) {
        let (size, files) = match self.driver {
            Driver::JsonFile => (
                self.opts.get("max-size").cloned(),
                self.opts.get("max-file").cloned(),
            ),
            Driver::Local => (
                Some(self.opts.get("max-size").cloned().unwrap_or("20m".into())),
                Some(self.opts.get("max-file").cloned().unwrap_or("5".into())),
            ),
            // A window for attached clients, nothing kept beyond it.
            Driver::None => (Some("1m".into()), Some("1".into())),
        };
        // Checked at create: a max-file that is not a number is never stored.
        (size, files.and_then(|f| f.parse().ok()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn opts(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn drivers_and_options_are_checked_with_dockerds_texts() {
        assert_eq!(
            LogConfig::new("syslog", BTreeMap::new()).map_err(|e| e.message),
            Err("logger: no log driver named 'syslog' is registered".into())
        );
        assert_eq!(
            LogConfig::new("none", opts(&[("max-size", "1m")])).map_err(|e| e.message),
            Err("unknown log opt 'max-size' for none log driver".into())
        );
        assert_eq!(
            LogConfig::new("json-file", opts(&[("max-size", "lots")])).map_err(|e| e.message),
            Err("invalid value for log option max-size: lots".into())
        );
        for ok in ["labels", "env", "env-regex", "tag", "labels-regex"] {
            assert!(
                LogConfig::new("json-file", opts(&[(ok, "x")])).is_ok(),
                "{ok}"
            );
        }
        assert!(LogConfig::new("json-file", opts(&[("compress", "true")])).is_ok());
        assert!(LogConfig::new("local", opts(&[("compress", "false")])).is_ok());
        assert!(LogConfig::new("local", opts(&[("tag", "x")])).is_err());
    }

    #[test]
    fn the_daemons_defaults_fill_in_what_a_container_leaves_out() {
        let daemon = LogConfig::new("json-file", opts(&[("max-size", "10m"), ("max-file", "3")]))
            .expect("defaults");
        let lc = |v: serde_json::Value| -> ApiLogConfig {
            serde_json::from_value(v).unwrap_or_default()
        };
        let c = daemon.for_container(&lc(json!(null))).expect("merged");
        assert_eq!(c.driver, Driver::JsonFile);
        assert_eq!(c.opts, opts(&[("max-size", "10m"), ("max-file", "3")]));
        let c = daemon
            .for_container(&lc(
                json!({"Type": "json-file", "Config": {"max-size": "1m"}}),
            ))
            .expect("merged");
        assert_eq!(c.opts, opts(&[("max-size", "1m"), ("max-file", "3")]));
        // Another driver takes none of the defaults' options.
        let c = daemon
            .for_container(&lc(json!({"Type": "none"})))
            .expect("none");
        assert_eq!(
            serde_json::to_value(c.to_config()).ok(),
            Some(json!({"Type": "none", "Config": {}}))
        );
        assert_eq!(c.rotation(), (Some("1m".into()), Some(1)));
        let local = LogConfig::new("local", BTreeMap::new()).expect("local");
        assert_eq!(local.rotation(), (Some("20m".into()), Some(5)));
    }
}
