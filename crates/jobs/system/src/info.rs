//! `/version` and `/info` from the host facts and the daemon's settings.

use std::collections::BTreeMap;

use berth_api::system::{
    CommitInfo, ComponentVersion, IndexInfo, Info, Platform, PluginsInfo, RegistryServiceConfig,
    RuntimeInfo, SwarmInfo, Version,
};
use berth_api::ApiVersion;

use crate::host::{open_fds, threads, HostFacts};
use crate::{SystemConfig, VERSION};

const GIT_COMMIT: &str = match option_env!("BERTH_GIT_COMMIT") {
    Some(c) => c,
    None => "unknown",
};

fn rust_version() -> String {
    option_env!("BERTH_RUSTC_VERSION")
        .unwrap_or("rust")
        .to_string()
}

pub fn version(host: &HostFacts) -> Version {
    let mut details = BTreeMap::new();
    details.insert("ApiVersion".to_string(), ApiVersion::MAX.to_string());
    details.insert("Arch".to_string(), host.go_arch().to_string());
    details.insert("BuildTime".to_string(), String::new());
    details.insert("Experimental".to_string(), "false".to_string());
    details.insert("GitCommit".to_string(), GIT_COMMIT.to_string());
    details.insert("GoVersion".to_string(), rust_version());
    details.insert("KernelVersion".to_string(), host.kernel_version.clone());
    details.insert("MinAPIVersion".to_string(), ApiVersion::MIN.to_string());
    details.insert("Os".to_string(), "linux".to_string());
    Version {
        platform: Platform {
            name: "Berth Engine".to_string(),
        },
        components: vec![ComponentVersion {
            name: "Engine".to_string(),
            version: VERSION.to_string(),
            details,
        }],
        version: VERSION.to_string(),
        api_version: ApiVersion::MAX.to_string(),
        min_api_version: ApiVersion::MIN.to_string(),
        git_commit: GIT_COMMIT.to_string(),
        go_version: rust_version(),
        os: "linux".to_string(),
        arch: host.go_arch().to_string(),
        kernel_version: host.kernel_version.clone(),
        build_time: String::new(),
    }
}

fn system_time() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub fn info(host: &HostFacts, cfg: &SystemConfig) -> Info {
    let mut index_configs = BTreeMap::new();
    index_configs.insert(
        "docker.io".to_string(),
        IndexInfo {
            name: "docker.io".into(),
            mirrors: cfg.registry_mirrors.clone(),
            secure: true,
            official: true,
        },
    );
    let mut cidrs = vec!["127.0.0.0/8".to_string(), "::1/128".to_string()];
    for r in &cfg.insecure_registries {
        if r.contains('/') {
            cidrs.push(r.clone());
        } else {
            index_configs.insert(
                r.clone(),
                IndexInfo {
                    name: r.clone(),
                    mirrors: vec![],
                    secure: false,
                    official: false,
                },
            );
        }
    }
    let runtimes: BTreeMap<String, RuntimeInfo> = cfg
        .runtimes
        .iter()
        .map(|(n, p)| {
            let status = cfg.runtime_features.get(n).map(|f| {
                BTreeMap::from([(
                    "org.opencontainers.runtime-spec.features".to_string(),
                    f.clone(),
                )])
            });
            (
                n.clone(),
                RuntimeInfo {
                    path: p.clone(),
                    status,
                },
            )
        })
        .collect();
    let v1 = host.cgroup_version == "1";
    Info {
        id: cfg.id.clone(),
        driver: "overlay2".into(),
        driver_status: vec![
            ["Backing Filesystem".into(), "extfs".into()],
            ["Supports d_type".into(), "true".into()],
            ["Using metacopy".into(), "false".into()],
            ["Native Overlay Diff".into(), "true".into()],
            ["userxattr".into(), "false".into()],
        ],
        docker_root_dir: cfg.data_root.clone(),
        plugins: PluginsInfo {
            volume: vec!["local".into()],
            network: vec!["bridge".into(), "host".into(), "null".into()],
            authorization: None,
            log: cfg.log_drivers.clone(),
        },
        memory_limit: host.has_controller("memory"),
        swap_limit: host.has_controller("memory"),
        cpu_cfs_period: host.has_controller("cpu"),
        cpu_cfs_quota: host.has_controller("cpu"),
        cpu_shares: host.has_controller("cpu"),
        cpu_set: host.has_controller("cpuset"),
        pids_limit: host.has_controller("pids"),
        oom_kill_disable: v1 && host.has_controller("memory"),
        ipv4_forwarding: std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
            .map(|s| s.trim() == "1")
            .unwrap_or(false),
        debug: cfg.debug,
        nfd: open_fds(),
        n_goroutines: threads(),
        system_time: system_time(),
        logging_driver: cfg.logging_driver.clone(),
        cgroup_driver: cfg.cgroup_driver.clone(),
        cgroup_version: host.cgroup_version.clone(),
        kernel_version: host.kernel_version.clone(),
        operating_system: host.operating_system.clone(),
        os_version: host.os_version.clone(),
        os_type: "linux".into(),
        architecture: host.machine.clone(),
        ncpu: host.ncpu,
        mem_total: host.mem_total,
        index_server_address: "https://index.docker.io/v1/".into(),
        registry_config: RegistryServiceConfig {
            insecure_registry_cidrs: cidrs,
            index_configs,
            mirrors: cfg.registry_mirrors.clone(),
        },
        name: host.hostname.clone(),
        labels: cfg.labels.clone(),
        server_version: VERSION.into(),
        runtimes,
        default_runtime: cfg.default_runtime.clone(),
        swarm: SwarmInfo {
            local_node_state: "inactive".into(),
            ..Default::default()
        },
        live_restore_enabled: cfg.live_restore,
        isolation: String::new(),
        init_binary: String::new(),
        containerd_commit: CommitInfo::default(),
        runc_commit: CommitInfo::default(),
        init_commit: CommitInfo::default(),
        security_options: vec![format!("name=seccomp,profile={}", cfg.seccomp_profile)],
        ..Info::default()
    }
}
