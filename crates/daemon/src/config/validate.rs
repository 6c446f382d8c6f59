//! The checks a merged configuration passes before the daemon uses it, with
//! dockerd's texts.

use super::{Config, ConfigError, BUILTIN_RUNTIME};

impl Config {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        for m in &self.registry_mirrors {
            berth_registry::validate_mirror(m).map_err(|reason| ConfigError::Invalid {
                name: "registry-mirrors",
                reason,
            })?;
        }
        if self.max_download_attempts == 0 {
            return Err(ConfigError::Invalid {
                name: "max-download-attempts",
                reason: "invalid max download attempts: 0".into(),
            });
        }
        if self.default_shm_size < 0 {
            return Err(ConfigError::Invalid {
                name: "default-shm-size",
                reason: "SHM size can not be less than 0".into(),
            });
        }
        if !matches!(
            self.log_level.as_str(),
            "debug" | "info" | "warn" | "error" | "fatal" | "trace"
        ) {
            return Err(ConfigError::Invalid {
                name: "log-level",
                reason: format!("unable to parse logging level: {}", self.log_level),
            });
        }
        self.cgroup_driver()?;
        if let Some(m) = self
            .default_cgroupns_mode
            .as_ref()
            .filter(|m| !matches!(m.as_str(), "private" | "host"))
        {
            return Err(ConfigError::Invalid {
                name: "default-cgroupns-mode",
                reason: format!("default cgroup namespace mode ({m}) is invalid"),
            });
        }
        if !matches!(self.log_format.as_str(), "text" | "json") {
            return Err(ConfigError::Invalid {
                name: "log-format",
                reason: format!("unsupported log format: {} (text or json)", self.log_format),
            });
        }
        for l in &self.labels {
            if !l.contains('=') {
                return Err(ConfigError::Invalid {
                    name: "label",
                    reason: format!("bad attribute format: {l}"),
                });
            }
        }
        if self.default_runtime != BUILTIN_RUNTIME
            && !self.runtimes.contains_key(&self.default_runtime)
        {
            return Err(ConfigError::Invalid {
                name: "default-runtime",
                reason: format!(
                    "specified default runtime '{}' does not exist",
                    self.default_runtime
                ),
            });
        }
        for (name, p) in [
            ("data-root", &self.data_root),
            ("exec-root", &self.exec_root),
        ] {
            if !p.is_absolute() {
                return Err(ConfigError::Invalid {
                    name,
                    reason: format!("{} is not an absolute path", p.display()),
                });
            }
        }
        Ok(())
    }
}
