//! SIGHUP: the configuration file read again and the settings dockerd reloads
//! applied to the running daemon (`debug`, `labels`, `live-restore`, the pull
//! and push limits, `insecure-registries`, `registry-mirrors`, `runtimes`,
//! `default-runtime`, `default-shm-size`, `shutdown-timeout`), with dockerd's
//! `daemon reload` event. A file that does not check out changes nothing.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use berth_engine::Engine;
use berth_jobs_system::System;
use tracing_subscriber::{reload, EnvFilter, Registry};

use crate::config::Config;

/// The log filter, so that `debug` can be switched while running.
pub(crate) static LOG_FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// What a reload changes.
pub(crate) struct Targets {
    pub engine: Engine,
    pub system: Arc<System>,
    pub images: Arc<berth_jobs_image::Images>,
    pub containers: Arc<berth_jobs_container::Containers>,
}

/// The registry client's settings in `cfg`.
pub(crate) fn registry_config(cfg: &Config) -> berth_registry::Config {
    berth_registry::Config {
        insecure: cfg.insecure_registries.clone(),
        max_concurrent_downloads: cfg.max_concurrent_downloads,
        max_concurrent_uploads: cfg.max_concurrent_uploads,
        mirrors: cfg.registry_mirrors.clone(),
    }
}

/// The runtimes of `cfg` as the container family takes them.
pub(crate) fn runtimes(cfg: &Config) -> berth_jobs_container::Runtimes {
    berth_jobs_container::Runtimes {
        default: cfg.default_runtime.clone(),
        binaries: cfg.runtimes.clone(),
    }
}

/// The runtimes as `/info` lists them: the built-in one and every binary.
pub(crate) fn info_runtimes(cfg: &Config) -> BTreeMap<String, String> {
    std::iter::once((
        berth_jobs_container::BUILTIN_RUNTIME.to_string(),
        "berth-shim".to_string(),
    ))
    .chain(
        cfg.runtimes
            .iter()
            .map(|(n, p)| (n.clone(), p.display().to_string())),
    )
    .collect()
}

/// Each runtime's features document for `/info`: the built-in one's, and
/// what each runc-compatible binary says (`BINARY features`).
pub(crate) fn runtime_features(cfg: &Config) -> BTreeMap<String, String> {
    use berth_runtime::features;
    let mut out = BTreeMap::new();
    out.insert(
        berth_jobs_container::BUILTIN_RUNTIME.to_string(),
        features::to_json(&features::builtin()),
    );
    for (name, path) in &cfg.runtimes {
        if let Some(f) = features::of_binary(path) {
            out.insert(name.clone(), features::to_json(&f));
        }
    }
    out
}

pub(crate) fn normalised_mirrors(cfg: &Config) -> Vec<String> {
    cfg.registry_mirrors
        .iter()
        .filter_map(|m| berth_registry::validate_mirror(m).ok())
        .collect()
}

/// Reads the file again and applies what it may; `cfg` becomes the running
/// configuration's reloadable part.
pub(crate) fn reload(cfg: &mut Config, t: &Targets) {
    let new = match cfg.reread() {
        Ok(n) => n,
        Err(e) => {
            tracing::error!(error = %e, "configuration reload failed; the running settings are unchanged");
            return;
        }
    };
    cfg.debug = new.debug;
    cfg.labels = new.labels.clone();
    cfg.live_restore = new.live_restore;
    cfg.max_concurrent_downloads = new.max_concurrent_downloads;
    cfg.max_concurrent_uploads = new.max_concurrent_uploads;
    cfg.max_download_attempts = new.max_download_attempts;
    cfg.insecure_registries = new.insecure_registries.clone();
    cfg.registry_mirrors = new.registry_mirrors.clone();
    cfg.runtimes = new.runtimes.clone();
    cfg.default_runtime = new.default_runtime.clone();
    cfg.default_shm_size = new.default_shm_size;
    cfg.shutdown_timeout = new.shutdown_timeout;

    if std::env::var_os("BERTH_LOG").is_none() {
        if let Some(h) = LOG_FILTER.get() {
            let _ = h.reload(EnvFilter::new(cfg.tracing_level()));
        }
    }
    t.images.set_limits(
        cfg.max_concurrent_downloads,
        cfg.max_concurrent_uploads,
        cfg.max_download_attempts,
    );
    t.images.registry.set_config(registry_config(cfg));
    t.containers.set_runtimes(runtimes(cfg));
    t.containers.set_default_shm_size(cfg.default_shm_size);
    let c = cfg.clone();
    t.system.reload(
        &t.engine,
        |s| {
            s.debug = c.debug;
            s.labels = c.labels.clone();
            s.live_restore = c.live_restore;
            s.insecure_registries = c.insecure_registries.clone();
            s.registry_mirrors = normalised_mirrors(&c);
            s.runtimes = info_runtimes(&c);
            // Runs each binary's `features`: off the async workers.
            s.runtime_features = tokio::task::block_in_place(|| runtime_features(&c));
            s.default_runtime = c.default_runtime.clone();
        },
        event_attributes(cfg),
    );
    tracing::info!(
        debug = cfg.debug,
        labels = ?cfg.labels,
        max_concurrent_downloads = cfg.max_concurrent_downloads,
        max_concurrent_uploads = cfg.max_concurrent_uploads,
        registry_mirrors = ?cfg.registry_mirrors,
        "configuration reloaded"
    );
}

/// dockerd's attributes of the `daemon reload` event, in its spelling.
fn event_attributes(cfg: &Config) -> BTreeMap<String, String> {
    let json = |v: &Vec<String>| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
    let runtimes = info_runtimes(cfg)
        .iter()
        .map(|(n, p)| format!("{n}:{p}"))
        .collect::<Vec<_>>()
        .join(" ");
    [
        ("debug", cfg.debug.to_string()),
        ("labels", json(&cfg.labels)),
        ("live-restore", cfg.live_restore.to_string()),
        (
            "max-concurrent-downloads",
            cfg.max_concurrent_downloads.to_string(),
        ),
        (
            "max-concurrent-uploads",
            cfg.max_concurrent_uploads.to_string(),
        ),
        (
            "max-download-attempts",
            cfg.max_download_attempts.to_string(),
        ),
        ("insecure-registries", json(&cfg.insecure_registries)),
        ("registry-mirrors", json(&cfg.registry_mirrors)),
        ("allow-nondistributable-artifacts", "[]".to_string()),
        ("runtimes", runtimes),
        ("default-runtime", cfg.default_runtime.clone()),
        ("default-shm-size", cfg.default_shm_size.to_string()),
        ("shutdown-timeout", cfg.shutdown_timeout.to_string()),
        (
            "default-cgroupns-mode",
            cfg.default_cgroupns_mode.clone().unwrap_or_else(|| {
                if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
                    "private".into()
                } else {
                    "host".into()
                }
            }),
        ),
        ("default-ipc-mode", "private".to_string()),
        ("features", "map[]".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}
