//! The system job family: `/_ping`, `/version`, `/info`, `/events`, `/system/df`,
//! `/metrics` and Berth's own `/berth/jobs`.
//!
//! What the daemon knows about itself (its ID, name, data root, labels) is in
//! [`SystemConfig`]; host facts are read from the kernel when asked; counts of
//! containers, images and volumes come from the subsystems through [`Reporter`]s that
//! the daemon wires in, so this crate depends on no subsystem.

mod events;
mod host;
mod info;
mod jobs;
mod metrics;

use berth_engine::names;
use std::sync::{Arc, RwLock};

use berth_api::system::{DiskUsage, Info};
use berth_api::ApiError;
use berth_engine::{Engine, Job, Reply};

pub use host::HostFacts;

/// The daemon's version, as `/version` and `/info` report it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What a subsystem adds to `/info`, `/system/df` and `/metrics`.
pub trait Reporter: Send + Sync {
    fn info(&self, _info: &mut Info) {}
    fn disk_usage(&self, _df: &mut DiskUsage) {}
    fn metrics(&self, _m: &mut berth_metrics::Snapshot) {}
}

/// The daemon's own settings that the system jobs report.
#[derive(Debug, Clone, Default)]
pub struct SystemConfig {
    /// Persisted daemon ID (`ID` in `/info`).
    pub id: String,
    pub data_root: String,
    pub debug: bool,
    pub labels: Vec<String>,
    pub live_restore: bool,
    pub insecure_registries: Vec<String>,
    /// `--registry-mirror`s, normalised (`http://host:port/`).
    pub registry_mirrors: Vec<String>,
    /// OCI runtimes by name, with their binaries (`Runtimes` in `/info`).
    pub runtimes: std::collections::BTreeMap<String, String>,
    /// Each runtime's OCI features document (JSON), where it has one.
    pub runtime_features: std::collections::BTreeMap<String, String>,
    pub default_runtime: String,
    /// `builtin`, `unconfined` or the path of the daemon's default profile.
    pub seccomp_profile: String,
    /// Containers' default log driver (`LoggingDriver`), and every driver there is.
    pub logging_driver: String,
    pub log_drivers: Vec<String>,
    /// `cgroupfs` or `systemd` (`CgroupDriver`).
    pub cgroup_driver: String,
}

/// Shared state of the system jobs.
pub struct System {
    config: RwLock<SystemConfig>,
    reporters: RwLock<Vec<Arc<dyn Reporter>>>,
    host: HostFacts,
    metrics: RwLock<Option<Arc<berth_metrics::Metrics>>>,
}

impl System {
    pub fn new(config: SystemConfig) -> Arc<System> {
        Arc::new(System {
            config: RwLock::new(config),
            reporters: RwLock::new(Vec::new()),
            host: HostFacts::read(),
            metrics: RwLock::new(None),
        })
    }

    /// The metrics `/metrics` renders (`--metrics-addr`).
    pub fn set_metrics(&self, m: Arc<berth_metrics::Metrics>) {
        *self.metrics.write().unwrap_or_else(|p| p.into_inner()) = Some(m);
    }

    fn metrics(&self) -> Option<Arc<berth_metrics::Metrics>> {
        self.metrics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn add_reporter(&self, r: Arc<dyn Reporter>) {
        self.reporters
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(r);
    }

    pub fn config(&self) -> SystemConfig {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Applies a configuration reload to what `/info` reports and publishes
    /// dockerd's `daemon reload` event with `attributes` (its `name` added here).
    pub fn reload(
        &self,
        engine: &Engine,
        update: impl FnOnce(&mut SystemConfig),
        mut attributes: std::collections::BTreeMap<String, String>,
    ) {
        let id = {
            let mut c = self.config.write().unwrap_or_else(|p| p.into_inner());
            update(&mut c);
            c.id.clone()
        };
        attributes.insert("name".to_string(), self.host.hostname.clone());
        engine.events().publish("daemon", "reload", &id, attributes);
    }

    fn reporters(&self) -> Vec<Arc<dyn Reporter>> {
        self.reporters
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Registers the system jobs on `engine`.
pub fn register(engine: &Engine, system: Arc<System>) {
    engine.register_quick(names::system::PING, |_job: Job| async move { Ok(ping()) });
    let s = system.clone();
    engine.register_quick(names::system::VERSION, move |_job: Job| {
        let s = s.clone();
        async move { Ok(Reply::json(&info::version(&s.host))) }
    });
    let s = system.clone();
    engine.register(names::system::INFO, move |job: Job| {
        let s = s.clone();
        async move {
            let mut info = info::info(&s.host, &s.config());
            info.n_events_listener = job.events().listeners() as u64;
            for r in s.reporters() {
                r.info(&mut info);
            }
            Ok(Reply::json(&info))
        }
    });
    let s = system.clone();
    engine.register(names::system::DF, move |_job: Job| {
        let s = s.clone();
        async move {
            let mut df = DiskUsage::default();
            for r in s.reporters() {
                r.disk_usage(&mut df);
            }
            Ok(Reply::json(&df))
        }
    });
    engine.register(names::system::EVENTS, events::events);
    let s = system.clone();
    engine.register(names::system::METRICS, move |job: Job| {
        metrics::metrics(job, s.clone())
    });
    jobs::register(engine);
    engine.register(names::system::SWARM_LEAVE, |_job: Job| async move {
        Err::<Reply, _>(ApiError::unavailable("This node is not part of a swarm"))
    });
}

/// `/_ping`: HEAD gets the same headers; hyper leaves out the body.
fn ping() -> Reply {
    // API-Version, OSType and Docker-Experimental come with every response.
    Reply::bytes(200, "text/plain; charset=utf-8", "OK")
        .with_header("Builder-Version", "1")
        .with_header("Swarm", "inactive")
        .with_header("Cache-Control", "no-cache, no-store, must-revalidate")
        .with_header("Pragma", "no-cache")
}
