//! Flags and `daemon.json`, with dockerd's names and its rule that a setting given
//! both as a flag and in the file is an error.

use std::collections::BTreeMap;
use std::path::PathBuf;

use berth_jobs_container::{BUILTIN_ALIAS, BUILTIN_RUNTIME, RUNC_BINARY};
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser};

mod file;
mod validate;
use file::{ram_in_bytes, read_file, SizeValue};

pub const DEFAULT_HOST: &str = "unix:///run/berth.sock";
pub const DEFAULT_CONFIG_FILE: &str = "/etc/berth/daemon.json";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("unable to configure the Berth daemon with file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("the following directives don't match any configuration option: {0}")]
    UnknownKeys(String),
    #[error(
        "the following directives are specified both as a flag and in the configuration file: {0}"
    )]
    Conflict(String),
    #[error("invalid value for {name}: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Command-line flags.
#[derive(Debug, Parser)]
#[command(
    name = "berthd",
    version,
    about = "Berth: a Docker-compatible container engine daemon"
)]
pub struct Flags {
    /// Daemon socket(s) to connect to (unix:///path or tcp://127.0.0.1:PORT)
    #[arg(short = 'H', long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,
    /// Root directory of persistent state
    #[arg(long, default_value = "/var/lib/berth")]
    pub data_root: PathBuf,
    /// Root directory for execution state files
    #[arg(long, default_value = "/run/berth")]
    pub exec_root: PathBuf,
    /// Path to use for the daemon PID file
    #[arg(short = 'p', long, default_value = "/var/run/berth.pid")]
    pub pidfile: PathBuf,
    /// Set the logging level ("debug"|"info"|"warn"|"error"|"fatal")
    #[arg(short = 'l', long, default_value = "info")]
    pub log_level: String,
    /// Set the logging format ("text"|"json")
    #[arg(long, default_value = "text")]
    pub log_format: String,
    /// Enable debug mode
    #[arg(short = 'D', long)]
    pub debug: bool,
    /// Daemon configuration file
    #[arg(long, default_value = DEFAULT_CONFIG_FILE)]
    pub config_file: PathBuf,
    /// Group for the unix socket
    #[arg(short = 'G', long, default_value = "docker")]
    pub group: String,
    /// Set key=value labels to the daemon
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Keep containers running while the daemon is down
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub live_restore: bool,
    /// Never give a container an OOM score below the daemon's own (containerd's
    /// restrict_oom_score_adj): for hosts that deny CAP_SYS_RESOURCE, such as
    /// daemons in containers or VMs that run Kubernetes pods
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub restrict_oom_score_adj: bool,
    /// Enable insecure registry communication (host[:port] or CIDR)
    #[arg(long = "insecure-registry")]
    pub insecure_registries: Vec<String>,
    /// Maximum concurrent layer downloads per pull
    #[arg(long, default_value_t = 3)]
    pub max_concurrent_downloads: usize,
    /// Maximum concurrent layer uploads per push
    #[arg(long, default_value_t = 5)]
    pub max_concurrent_uploads: usize,
    /// Maximum download attempts for each pull
    #[arg(long, default_value_t = 5)]
    pub max_download_attempts: u32,
    /// Preferred Docker registry mirror (http:// or https:// URL; repeatable)
    #[arg(long = "registry-mirror")]
    pub registry_mirrors: Vec<String>,
    /// Default shm size for containers (e.g. 64M)
    #[arg(long)]
    pub default_shm_size: Option<String>,
    /// Seconds to wait for containers to stop when the daemon shuts down
    /// (live restore off)
    #[arg(long, default_value_t = 15)]
    pub shutdown_timeout: i64,
    /// Allow -H tcp:// on addresses other than loopback (the API is unauthenticated)
    #[arg(long)]
    pub allow_remote_tcp: bool,
    /// Attach containers to a network bridge ("none" disables the default bridge)
    #[arg(short = 'b', long, default_value = "berth0")]
    pub bridge: String,
    /// Specify network bridge IP (address/prefix, e.g. 10.20.0.1/16)
    #[arg(long)]
    pub bip: Option<String>,
    /// IPv4 subnet for fixed IPs on the default bridge
    #[arg(long)]
    pub fixed_cidr: Option<String>,
    /// Set the containers network MTU
    #[arg(long)]
    pub mtu: Option<u32>,
    /// Enable IPv6 on the default bridge (with --fixed-cidr-v6, or a unique local /64)
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub ipv6: bool,
    /// IPv6 subnet of the default bridge
    #[arg(long)]
    pub fixed_cidr_v6: Option<String>,
    /// Enable inter-container communication on the default bridge
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub icc: bool,
    /// Enable IP masquerading of the default bridge's traffic
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub ip_masq: bool,
    /// Enable the IPv6 rules (NAT66, isolation) of IPv6 networks
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub ip6tables: bool,
    /// Enable addition of firewall rules (NAT, published ports, isolation)
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub iptables: bool,
    /// Default address pools for node specific local networks (base=CIDR,size=N)
    #[arg(long = "default-address-pool")]
    pub default_address_pools: Vec<String>,
    /// Register an additional OCI runtime (name=path of a runc-compatible binary)
    #[arg(long = "add-runtime", value_name = "NAME=PATH")]
    pub add_runtimes: Vec<String>,
    /// Default OCI runtime for containers ("runc" is the built-in one)
    #[arg(long, default_value = "runc")]
    pub default_runtime: String,
    /// Seccomp profile (Docker's JSON format) for containers that set none;
    /// "unconfined" or "builtin"
    #[arg(long)]
    pub seccomp_profile: Option<String>,
    /// Default log driver of containers: json-file, local or none
    #[arg(long, default_value = "json-file")]
    pub log_driver: String,
    /// Default log driver option, KEY=VALUE (repeatable)
    #[arg(long = "log-opt", value_name = "KEY=VALUE")]
    pub log_opts: Vec<String>,
    /// Runtime execution options (native.cgroupdriver=cgroupfs|systemd)
    #[arg(long = "exec-opt", value_name = "KEY=VALUE")]
    pub exec_opts: Vec<String>,
    /// Parent cgroup of containers that name none (a slice with the systemd driver)
    #[arg(long)]
    pub cgroup_parent: Option<String>,
    /// Containers' cgroup namespace when they ask for none: "private" or "host"
    /// (private on cgroup v2 hosts, host on v1)
    #[arg(long)]
    pub default_cgroupns_mode: Option<String>,
    /// Address (IP:PORT) to serve Prometheus metrics on, at /metrics
    #[arg(long)]
    pub metrics_addr: Option<String>,
    /// Use TLS on TCP listeners; implied by --tlsverify
    #[arg(long, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", default_value_t = false)]
    pub tls: bool,
    /// Use TLS and verify the remote (clients must present a certificate the CA signed)
    #[arg(long, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", default_value_t = false)]
    pub tlsverify: bool,
    /// Trust certs signed only by this CA (default $DOCKER_CERT_PATH/ca.pem, or ~/.docker/ca.pem)
    #[arg(long)]
    pub tlscacert: Option<PathBuf>,
    /// Path to TLS certificate file (default …/cert.pem)
    #[arg(long)]
    pub tlscert: Option<PathBuf>,
    /// Path to TLS key file (default …/key.pem)
    #[arg(long)]
    pub tlskey: Option<PathBuf>,
}

/// The runtime inside the shim (libcontainer) and its old name, and the runc
/// binary, which is found on PATH.
const RESERVED_RUNTIMES: &[&str] = &[BUILTIN_RUNTIME, BUILTIN_ALIAS, RUNC_BINARY];

/// The daemon's settings after flags and file are merged.
#[derive(Debug, Clone)]
pub struct Config {
    pub hosts: Vec<String>,
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub pidfile: PathBuf,
    pub log_level: String,
    pub log_format: String,
    pub debug: bool,
    pub group: String,
    pub group_explicit: bool,
    pub labels: Vec<String>,
    pub live_restore: bool,
    pub restrict_oom_score_adj: bool,
    pub insecure_registries: Vec<String>,
    pub max_concurrent_downloads: usize,
    pub max_concurrent_uploads: usize,
    pub max_download_attempts: u32,
    /// `--registry-mirror`, as given (`docker info` shows them normalised).
    pub registry_mirrors: Vec<String>,
    /// `--default-shm-size` in bytes.
    pub default_shm_size: i64,
    /// `--shutdown-timeout` in seconds; negative: no limit.
    pub shutdown_timeout: i64,
    pub allow_remote_tcp: bool,
    pub config_file: PathBuf,
    pub bridge: String,
    pub bip: Option<String>,
    pub fixed_cidr: Option<String>,
    pub mtu: Option<u32>,
    pub ipv6: bool,
    pub fixed_cidr_v6: Option<String>,
    pub icc: bool,
    pub ip_masq: bool,
    pub iptables: bool,
    pub ip6tables: bool,
    /// `base=CIDR,size=N` entries.
    pub default_address_pools: Vec<String>,
    /// Runc-compatible runtimes by name (`--add-runtime`, and `runc` when found).
    pub runtimes: BTreeMap<String, PathBuf>,
    pub default_runtime: String,
    /// `--seccomp-profile`: a path, `unconfined` or `builtin`.
    pub seccomp_profile: Option<String>,
    /// `--log-driver` and `--log-opt`: containers' default log driver.
    pub log_driver: String,
    pub log_opts: BTreeMap<String, String>,
    /// `--tls`/`--tlsverify` and their files, for TCP listeners.
    pub tls: Option<berth_server::TlsFiles>,
    /// `--metrics-addr`.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// `--exec-opt`: `native.cgroupdriver` is the one Berth reads.
    pub exec_opts: Vec<String>,
    pub cgroup_parent: Option<String>,
    pub default_cgroupns_mode: Option<String>,
}

impl Config {
    /// `native.cgroupdriver` from `--exec-opt`, or the host's default (systemd
    /// on a cgroup v2 host booted with systemd, as dockerd chooses).
    pub fn cgroup_driver(&self) -> Result<berth_runtime::placement::Driver, ConfigError> {
        let mut driver = None;
        for o in &self.exec_opts {
            let (k, v) = o.split_once('=').ok_or_else(|| ConfigError::Invalid {
                name: "exec-opt",
                reason: format!("Unable to parse key/value option: {o}"),
            })?;
            if k.trim().eq_ignore_ascii_case("native.cgroupdriver") {
                driver = Some(berth_runtime::placement::Driver::parse(v.trim()).map_err(
                    |reason| ConfigError::Invalid {
                        name: "exec-opt",
                        reason,
                    },
                )?);
            }
        }
        Ok(driver.unwrap_or_else(berth_runtime::placement::Driver::default_for_host))
    }

    /// Parses the process's arguments and the configuration file.
    pub fn load() -> Result<Config, ConfigError> {
        let m = Flags::command().get_matches();
        let flags = Flags::from_arg_matches(&m).unwrap_or_else(|e| e.exit());
        Self::merge(flags, &m)
    }

    pub fn merge(flags: Flags, m: &ArgMatches) -> Result<Config, ConfigError> {
        let explicit = |id: &str| m.value_source(id) == Some(ValueSource::CommandLine);
        let file = read_file(&flags.config_file, explicit("config_file"))?;
        let mut conflicts = Vec::new();
        macro_rules! pick {
            ($key:literal, $id:literal, $flag:expr, $file:expr) => {{
                match $file {
                    Some(v) if explicit($id) => {
                        conflicts.push(format!(
                            "{}: (from flag: {:?}, from file: {:?})",
                            $key, $flag, v
                        ));
                        $flag
                    }
                    Some(v) => v,
                    None => $flag,
                }
            }};
        }
        let hosts_flag = flags.hosts.clone();
        let hosts = match file.hosts {
            Some(v) if !hosts_flag.is_empty() => {
                conflicts.push(format!(
                    "hosts: (from flag: {hosts_flag:?}, from file: {v:?})"
                ));
                hosts_flag
            }
            Some(v) => v,
            None => hosts_flag,
        };
        let mut runtimes = BTreeMap::new();
        if let Some(p) = find_on_path("runc") {
            runtimes.insert(RUNC_BINARY.to_string(), p);
        }
        let added: Vec<(String, PathBuf)> = match file.runtimes {
            Some(v) if !flags.add_runtimes.is_empty() => {
                conflicts.push(format!(
                    "runtimes: (from flag: {:?}, from file: {:?})",
                    flags.add_runtimes, v
                ));
                Vec::new()
            }
            Some(v) => v.into_iter().map(|(k, e)| (k, e.path)).collect(),
            None => flags
                .add_runtimes
                .iter()
                .map(|r| match r.split_once('=') {
                    Some((n, p)) if !n.is_empty() && !p.is_empty() => {
                        Ok((n.to_string(), PathBuf::from(p)))
                    }
                    _ => Err(ConfigError::Invalid {
                        name: "add-runtime",
                        reason: format!("{r} is not of the form name=path"),
                    }),
                })
                .collect::<Result<_, _>>()?,
        };
        for (name, path) in added {
            if RESERVED_RUNTIMES.contains(&name.as_str()) {
                return Err(ConfigError::Invalid {
                    name: "add-runtime",
                    reason: format!("runtime name '{name}' is reserved"),
                });
            }
            runtimes.insert(name, path);
        }
        let flag_log_opts = flags
            .log_opts
            .iter()
            .map(|o| match o.split_once('=') {
                Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
                _ => Err(ConfigError::Invalid {
                    name: "log-opt",
                    reason: format!("{o} is not of the form key=value"),
                }),
            })
            .collect::<Result<BTreeMap<_, _>, _>>()?;
        let log_opts = match file.log_opts {
            Some(v) if !flag_log_opts.is_empty() => {
                conflicts.push(format!(
                    "log-opts: (from flag: {flag_log_opts:?}, from file: {v:?})"
                ));
                flag_log_opts
            }
            Some(v) => v,
            None => flag_log_opts,
        };
        let tlsverify = pick!("tlsverify", "tlsverify", flags.tlsverify, file.tlsverify);
        let tls_on = pick!("tls", "tls", flags.tls, file.tls) || tlsverify;
        let cert_dir = std::env::var_os("DOCKER_CERT_PATH")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
            .unwrap_or_else(|| PathBuf::from("/root/.docker"));
        let tlscacert = pick!(
            "tlscacert",
            "tlscacert",
            flags.tlscacert,
            file.tlscacert.map(Some)
        )
        .unwrap_or_else(|| cert_dir.join("ca.pem"));
        let tlscert = pick!("tlscert", "tlscert", flags.tlscert, file.tlscert.map(Some))
            .unwrap_or_else(|| cert_dir.join("cert.pem"));
        let tlskey = pick!("tlskey", "tlskey", flags.tlskey, file.tlskey.map(Some))
            .unwrap_or_else(|| cert_dir.join("key.pem"));
        let metrics_addr = pick!(
            "metrics-addr",
            "metrics_addr",
            flags.metrics_addr,
            file.metrics_addr.map(Some)
        )
        .filter(|a| !a.is_empty())
        .map(|a| {
            a.parse().map_err(|e| ConfigError::Invalid {
                name: "metrics-addr",
                reason: format!("{a}: {e}"),
            })
        })
        .transpose()?;
        let shm_flag = flags.default_shm_size.clone().map(SizeValue::Text);
        let cfg = Config {
            metrics_addr,
            tls: tls_on.then(|| berth_server::TlsFiles {
                cert: tlscert,
                key: tlskey,
                verify_with: tlsverify.then_some(tlscacert),
            }),
            log_driver: pick!(
                "log-driver",
                "log_driver",
                flags.log_driver,
                file.log_driver
            ),
            log_opts,
            exec_opts: pick!("exec-opts", "exec_opts", flags.exec_opts, file.exec_opts),
            cgroup_parent: pick!(
                "cgroup-parent",
                "cgroup_parent",
                flags.cgroup_parent,
                file.cgroup_parent.map(Some)
            ),
            default_cgroupns_mode: pick!(
                "default-cgroupns-mode",
                "default_cgroupns_mode",
                flags.default_cgroupns_mode,
                file.default_cgroupns_mode.map(Some)
            ),
            seccomp_profile: pick!(
                "seccomp-profile",
                "seccomp_profile",
                flags.seccomp_profile,
                file.seccomp_profile.map(Some)
            ),
            runtimes,
            default_runtime: match pick!(
                "default-runtime",
                "default_runtime",
                flags.default_runtime,
                file.default_runtime
            ) {
                r if r == BUILTIN_ALIAS => BUILTIN_RUNTIME.to_string(),
                r => r,
            },
            hosts: if hosts.is_empty() {
                vec![DEFAULT_HOST.to_string()]
            } else {
                hosts
            },
            data_root: pick!("data-root", "data_root", flags.data_root, file.data_root),
            exec_root: pick!("exec-root", "exec_root", flags.exec_root, file.exec_root),
            pidfile: pick!("pidfile", "pidfile", flags.pidfile, file.pidfile),
            log_level: pick!("log-level", "log_level", flags.log_level, file.log_level),
            log_format: pick!(
                "log-format",
                "log_format",
                flags.log_format,
                file.log_format
            ),
            debug: pick!("debug", "debug", flags.debug, file.debug),
            group_explicit: explicit("group") || file.group.is_some(),
            group: pick!("group", "group", flags.group, file.group),
            labels: pick!("labels", "labels", flags.labels, file.labels),
            live_restore: pick!(
                "live-restore",
                "live_restore",
                flags.live_restore,
                file.live_restore
            ),
            restrict_oom_score_adj: pick!(
                "restrict-oom-score-adj",
                "restrict_oom_score_adj",
                flags.restrict_oom_score_adj,
                file.restrict_oom_score_adj
            ),
            insecure_registries: pick!(
                "insecure-registries",
                "insecure_registries",
                flags.insecure_registries,
                file.insecure_registries
            ),
            max_concurrent_downloads: pick!(
                "max-concurrent-downloads",
                "max_concurrent_downloads",
                flags.max_concurrent_downloads,
                file.max_concurrent_downloads
            ),
            max_concurrent_uploads: pick!(
                "max-concurrent-uploads",
                "max_concurrent_uploads",
                flags.max_concurrent_uploads,
                file.max_concurrent_uploads
            ),
            max_download_attempts: pick!(
                "max-download-attempts",
                "max_download_attempts",
                flags.max_download_attempts,
                file.max_download_attempts
            ),
            registry_mirrors: pick!(
                "registry-mirrors",
                "registry_mirrors",
                flags.registry_mirrors,
                file.registry_mirrors
            ),
            default_shm_size: match pick!(
                "default-shm-size",
                "default_shm_size",
                shm_flag,
                file.default_shm_size.map(Some)
            ) {
                None => berth_jobs_container::DEFAULT_SHM_SIZE,
                Some(SizeValue::Bytes(n)) => n,
                Some(SizeValue::Text(t)) => {
                    ram_in_bytes(&t).ok_or_else(|| ConfigError::Invalid {
                        name: "default-shm-size",
                        reason: format!("invalid size: '{t}'"),
                    })?
                }
            },
            shutdown_timeout: pick!(
                "shutdown-timeout",
                "shutdown_timeout",
                flags.shutdown_timeout,
                file.shutdown_timeout
            ),
            allow_remote_tcp: flags.allow_remote_tcp,
            config_file: flags.config_file,
            bridge: pick!("bridge", "bridge", flags.bridge, file.bridge),
            bip: pick!("bip", "bip", flags.bip, file.bip.map(Some)),
            fixed_cidr: pick!(
                "fixed-cidr",
                "fixed_cidr",
                flags.fixed_cidr,
                file.fixed_cidr.map(Some)
            ),
            mtu: pick!("mtu", "mtu", flags.mtu, file.mtu.map(Some)),
            ipv6: pick!("ipv6", "ipv6", flags.ipv6, file.ipv6),
            fixed_cidr_v6: pick!(
                "fixed-cidr-v6",
                "fixed_cidr_v6",
                flags.fixed_cidr_v6,
                file.fixed_cidr_v6.map(Some)
            ),
            icc: pick!("icc", "icc", flags.icc, file.icc),
            ip_masq: pick!("ip-masq", "ip_masq", flags.ip_masq, file.ip_masq),
            iptables: pick!("iptables", "iptables", flags.iptables, file.iptables),
            ip6tables: pick!("ip6tables", "ip6tables", flags.ip6tables, file.ip6tables),
            default_address_pools: pick!(
                "default-address-pools",
                "default_address_pools",
                flags.default_address_pools,
                file.default_address_pools.map(|v| v
                    .into_iter()
                    .map(|p| format!("base={},size={}", p.base, p.size))
                    .collect())
            ),
        };
        if !conflicts.is_empty() {
            return Err(ConfigError::Conflict(conflicts.join(", ")));
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// The tracing filter for the configured level (`fatal` is `error` here).
    pub fn tracing_level(&self) -> &str {
        if self.debug {
            return "debug";
        }
        match self.log_level.as_str() {
            "fatal" => "error",
            l => l,
        }
    }

    /// The configuration a reload (SIGHUP) would give: the same command line
    /// with the file as it is now, checked as at start-up. The caller applies
    /// the settings dockerd reloads and leaves the others as they are.
    pub fn reread(&self) -> Result<Config, ConfigError> {
        let m = Flags::command()
            .try_get_matches_from(std::env::args_os())
            .map_err(|e| ConfigError::Invalid {
                name: "command line",
                reason: e.to_string(),
            })?;
        let flags = Flags::from_arg_matches(&m).map_err(|e| ConfigError::Invalid {
            name: "command line",
            reason: e.to_string(),
        })?;
        Self::merge(flags, &m)
    }
}

/// The first executable `name` in the directories of PATH.
fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[cfg(test)]
mod tests;
