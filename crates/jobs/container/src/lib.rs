//! The container job family and the daemon's record of containers.
//!
//! Each container lives in `<data-root>/containers/<id>/`: its record
//! (`config.v2.json`, written atomically), its json-file log, its overlay directories
//! and the files it gets bind-mounted (`hostname`, `hosts`, `resolv.conf`). While it
//! runs, `<exec-root>/<id>/` holds its OCI bundle and exit record, and a `berth-shim`
//! process holds the container.

mod archive;
mod attach;
mod bundle;
mod cgroupconf;
mod commit;
mod create;
mod detach;
mod etc;
mod exec;
mod exec_start;
mod health;
mod launcher;
#[cfg(test)]
mod lifecycle_tests;
mod links;
mod live;
mod logconfig;
mod logs;
mod model;
mod mounts;
mod names;
mod netjobs;
mod ops;
mod policy;
mod reap;
mod remove;
mod resources;
mod restore;
mod rro;
mod run;
mod signal;
mod stop;
mod user;
mod validate;
mod views;

use berth_engine::names as jobname;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use berth_api::container::EndpointSettings;
use berth_api::network::{NetRequest, NetSetup};
use berth_api::{ApiError, Result};
use berth_engine::{Engine, Job};
use berth_graph::Graph;
use tokio::sync::watch;

pub use cgroupconf::CgroupSettings;
pub use model::{Record, State};
pub use mounts::{MountPoint, VolumeService};

/// What waiters see change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub status: String,
    pub exit_code: i32,
    /// Bumped each time the container exits, for `next-exit` waits.
    pub exits: u64,
    pub removed: bool,
}

/// A pending restart (restart policies) and the back-off before the next one.
#[derive(Default)]
pub(crate) struct RestartState {
    pub delay: std::time::Duration,
    pub cancel: Option<tokio_util::sync::CancellationToken>,
}

/// One container in memory.
pub struct Entry {
    pub record: Mutex<Record>,
    pub watch: watch::Sender<Snapshot>,
    pub(crate) restart: Mutex<RestartState>,
    /// Serializes what changes whether the container exists or runs (start,
    /// restart, remove), so a restart never races a removal.
    pub(crate) op: tokio::sync::Mutex<()>,
    /// This container's object in `GET /containers/json`, until its record is
    /// saved again.
    pub(crate) list_json: Mutex<Option<bytes::Bytes>>,
    /// Clients attached before a start, waiting for its output.
    pub(crate) live: live::Waiters,
}

impl Entry {
    pub fn snapshot(&self) -> Record {
        self.record
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// The network subsystem as containers see it (the daemon plugs it in).
pub trait NetworkService: Send + Sync {
    fn setup(&self, req: NetRequest) -> BoxFuture<'_, Result<NetSetup>>;
    fn teardown(&self, id: String) -> BoxFuture<'_, ()>;
    /// After a daemon restart, for a container that kept running.
    fn restore(&self, id: String) -> BoxFuture<'_, Option<NetSetup>>;
    /// Releases what containers that are not running left behind.
    fn gc(&self, running: Vec<String>) -> BoxFuture<'_, ()>;
    fn connect(
        &self,
        id: String,
        network: String,
        cfg: EndpointSettings,
    ) -> BoxFuture<'_, Result<NetSetup>>;
    fn disconnect(&self, id: String, network: String) -> BoxFuture<'_, Result<NetSetup>>;
    /// A network's (ID, name), or Docker's 404.
    fn resolve(&self, network: &str) -> Result<(String, String)>;
    /// Publishes a network `connect`/`disconnect` event.
    fn event(&self, network: &str, container: &str, action: &str);
}

/// The name of the runtime built into the shim (youki's libcontainer): `runc`,
/// the name dockerd gives its default runtime, which clients and tests compare
/// `HostConfig.Runtime` against. It is runc-compatible in what it does.
pub const BUILTIN_RUNTIME: &str = "runc";
/// Berth's earlier name for it, still accepted (and recorded as `runc`).
pub const BUILTIN_ALIAS: &str = "berth";
/// The runc binary, when it is on `PATH`, under a name of its own.
pub const RUNC_BINARY: &str = "runc-binary";

pub use logconfig::{Driver as LogDriver, LogConfig};

/// Bytes of file content under `p` (what `SizeRw` and prune count).
pub(crate) fn dir_size(p: &std::path::Path) -> u64 {
    let Ok(md) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    if md.is_dir() {
        std::fs::read_dir(p)
            .map(|d| d.flatten().map(|e| dir_size(&e.path())).sum())
            .unwrap_or(0)
    } else {
        md.len()
    }
}

/// Tells a shim the new size of its terminal (`rows cols` into its resize FIFO).
pub(crate) async fn resize_tty(
    fifo: PathBuf,
    h: impl std::fmt::Display + Send + 'static,
    w: impl std::fmt::Display + Send + 'static,
) -> Result<()> {
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        // Non-blocking: with no shim reading, fail instead of hanging.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)?;
        writeln!(f, "{h} {w}")
    })
    .await
    .map_err(sys)?
    .map_err(|e| ApiError::system(format!("resizing: {e}")))
}

/// A failure of the host (I/O, a task that died): a 500 with its text.
pub(crate) fn sys(e: impl std::fmt::Display) -> ApiError {
    ApiError::system(e.to_string())
}

/// An image's `config` as a container's: the defaults create merges in.
pub(crate) fn image_config(
    v: Option<&serde_json::Value>,
) -> Result<berth_api::container::ContainerConfig> {
    match v {
        None => Ok(Default::default()),
        Some(v) => serde::Deserialize::deserialize(v)
            .map_err(|e| ApiError::system(format!("the image's config cannot be read: {e}"))),
    }
}

/// dockerd's default `/dev/shm` size: 64 MiB.
pub const DEFAULT_SHM_SIZE: i64 = 64 << 20;

/// The OCI runtimes containers can be run with (`HostConfig.Runtime`): the shim's
/// own, and runc-compatible binaries by name (`--add-runtime`, and `runc-binary`
/// when runc is installed).
#[derive(Debug, Clone)]
pub struct Runtimes {
    pub default: String,
    pub binaries: std::collections::BTreeMap<String, PathBuf>,
}

impl Default for Runtimes {
    fn default() -> Self {
        Runtimes {
            default: BUILTIN_RUNTIME.into(),
            binaries: Default::default(),
        }
    }
}

impl Runtimes {
    /// The runc-compatible binary the runtime `name` stands for (None: the
    /// shim's built-in one); dockerd's error for a name it does not know.
    pub(crate) fn binary(&self, name: &str) -> Result<Option<PathBuf>> {
        if name.is_empty() || name == BUILTIN_RUNTIME || name == BUILTIN_ALIAS {
            return Ok(None);
        }
        match self.binaries.get(name) {
            Some(p) => Ok(Some(p.clone())),
            None => Err(ApiError::invalid(format!(
                "Unknown runtime specified {name}"
            ))),
        }
    }
}

/// Paths and subsystems of the container family.
pub struct Containers {
    pub graph: Arc<Graph>,
    pub root: PathBuf,
    pub exec_root: PathBuf,
    pub shim: PathBuf,
    /// Replaced by a configuration reload.
    runtimes: std::sync::RwLock<Runtimes>,
    /// `--default-shm-size`: the `ShmSize` recorded for containers that give none.
    default_shm_size: std::sync::atomic::AtomicI64,
    /// The profile of containers that ask for none (`--seccomp-profile`).
    pub default_seccomp: berth_runtime::spec::Seccomp,
    /// The log driver and options of containers that name none (`--log-driver`).
    pub log_defaults: LogConfig,
    entries: Mutex<HashMap<String, Arc<Entry>>>,
    /// Serializes name allocation and removal.
    names: Mutex<HashMap<String, String>>,
    execs: exec::Execs,
    net: std::sync::OnceLock<Arc<dyn NetworkService>>,
    vols: std::sync::OnceLock<Arc<dyn VolumeService>>,
    /// Set when a shutdown without live restore begins: from then on no restart
    /// policy starts a container again (it would outlive the daemon).
    shutting_down: std::sync::atomic::AtomicBool,
    /// Prepares bundles and runs shims (a fake in the lifecycle's tests).
    launcher: Arc<dyn launcher::Launcher>,
    /// `--restrict-oom-score-adj`: no container's OOM score below the daemon's.
    restrict_oom: std::sync::atomic::AtomicBool,
    cgroups: std::sync::RwLock<CgroupSettings>,
    /// Health checks run, and of them failed, since the daemon started.
    health_counts: (std::sync::atomic::AtomicU64, std::sync::atomic::AtomicU64),
}

impl Containers {
    /// Opens the container store under `data_root/containers`, loading saved records.
    /// Containers that were running when the daemon went away are recorded as
    /// exited (with the shim's exit record when there is one).
    pub fn open(
        graph: Arc<Graph>,
        data_root: &Path,
        exec_root: &Path,
        shim: PathBuf,
        runtimes: Runtimes,
        default_seccomp: berth_runtime::spec::Seccomp,
        log_defaults: LogConfig,
    ) -> Result<Arc<Containers>> {
        let paths = (data_root, exec_root, shim);
        Containers::open_with(
            graph,
            paths,
            runtimes,
            default_seccomp,
            log_defaults,
            Arc::new(launcher::Shim),
        )
    }

    pub(crate) fn open_with(
        graph: Arc<Graph>,
        (data_root, exec_root, shim): (&Path, &Path, PathBuf),
        runtimes: Runtimes,
        default_seccomp: berth_runtime::spec::Seccomp,
        log_defaults: LogConfig,
        launcher: Arc<dyn launcher::Launcher>,
    ) -> Result<Arc<Containers>> {
        let root = data_root.join("containers");
        std::fs::create_dir_all(&root)
            .map_err(|e| ApiError::system(format!("{}: {e}", root.display())))?;
        let c = Arc::new(Containers {
            graph,
            root,
            exec_root: exec_root.join("containers"),
            shim,
            runtimes: std::sync::RwLock::new(runtimes),
            default_shm_size: std::sync::atomic::AtomicI64::new(DEFAULT_SHM_SIZE),
            default_seccomp,
            log_defaults,
            entries: Mutex::new(HashMap::new()),
            names: Mutex::new(HashMap::new()),
            execs: exec::Execs::default(),
            net: std::sync::OnceLock::new(),
            vols: std::sync::OnceLock::new(),
            shutting_down: std::sync::atomic::AtomicBool::new(false),
            launcher,
            restrict_oom: std::sync::atomic::AtomicBool::new(false),
            cgroups: std::sync::RwLock::new(CgroupSettings::default()),
            health_counts: Default::default(),
        });
        c.load();
        Ok(c)
    }

    /// Health checks run and failed so far (for the daemon's metrics).
    pub fn health_checks(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.health_counts.0.load(Relaxed),
            self.health_counts.1.load(Relaxed),
        )
    }

    /// The runtimes by name and the default one (at start-up and on reload).
    pub fn set_runtimes(&self, r: Runtimes) {
        *self.runtimes.write().unwrap_or_else(|p| p.into_inner()) = r;
    }

    pub(crate) fn runtimes(&self) -> Runtimes {
        self.runtimes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// `--default-shm-size` in bytes (at start-up and on reload).
    pub fn set_default_shm_size(&self, bytes: i64) {
        self.default_shm_size
            .store(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn default_shm_size(&self) -> i64 {
        self.default_shm_size
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// `--restrict-oom-score-adj`.
    pub fn restrict_oom_score_adj(&self, on: bool) {
        self.restrict_oom
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn restricts_oom(&self) -> bool {
        self.restrict_oom.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The binary of the runtime the container was created with (None: built in).
    pub(crate) fn runtime_binary(&self, entry: &Entry) -> Result<Option<PathBuf>> {
        let rec = entry.record.lock().unwrap_or_else(|p| p.into_inner());
        self.runtimes().binary(&rec.host_config.runtime)
    }

    fn load(&self) {
        let Ok(dir) = std::fs::read_dir(&self.root) else {
            return;
        };
        let mut records = Vec::new();
        for e in dir.flatten() {
            let path = e.path().join("config.v2.json");
            let rec = match std::fs::read(&path) {
                Ok(b) => Record::load(&b),
                Err(e) => Err(model::LoadError::Unreadable(e.to_string())),
            };
            let mut rec = match rec {
                Ok(r) => r,
                // What a create that died before its first save leaves.
                Err(model::LoadError::Unreadable(why)) => {
                    tracing::warn!(dir = %e.path().display(), %why, "removing container directory without a valid record");
                    let _ = std::fs::remove_dir_all(e.path());
                    continue;
                }
                // A record this version cannot read is kept for a version that can.
                Err(model::LoadError::Unknown(why)) => {
                    tracing::error!(dir = %e.path().display(), %why, "skipping a container record this daemon cannot read");
                    continue;
                }
            };
            if rec.state.running && !restore::shim_alive(&rec) {
                restore::recover_exit(self, &mut rec);
            }
            records.push(rec);
        }
        reap::at_start(self, &records);
        for rec in records {
            self.insert(rec);
        }
    }

    /// Reconnects to containers whose shims outlived the daemon (live restore): they
    /// stay running and their exit is noticed through a pidfd on the shim.
    pub async fn restore(self: &Arc<Self>, engine: &Engine) {
        let mut running = Vec::new();
        for entry in self.all() {
            let rec = entry.snapshot();
            if rec.state.running {
                tracing::info!(container = %rec.id, pid = rec.state.pid, "reconnected to running container");
                running.push(rec.id.clone());
                // Volumes mounted for it are its again (mount counts live in memory).
                if let Some(v) = self.vols() {
                    for m in rec.mounts.iter().filter(|m| m.kind == "volume") {
                        let _ = v.mount(&m.name);
                    }
                }
                if let Some(n) = self.net() {
                    if let Some(setup) = n.restore(rec.id.clone()).await {
                        let r = {
                            let mut r = entry.record.lock().unwrap_or_else(|p| p.into_inner());
                            r.network_settings = Some(setup.settings);
                            r.clone()
                        };
                        let _ = self.save(&r);
                    }
                }
                health::start(engine, self, &entry, false);
                run::watch_restored(engine.clone(), self.clone(), entry, rec.shim_pid);
            }
        }
        if let Some(n) = self.net() {
            n.gc(running).await;
        }
        // Restart policies on boot: `always`, and `unless-stopped` unless the user
        // stopped it; `on-failure` if it failed while the daemon was away.
        for entry in self.all() {
            let rec = entry.snapshot();
            if rec.state.running {
                continue;
            }
            let policy = rec.host_config.restart_policy.name.as_str();
            let died_away = rec.state.restarting
                || (rec.state.exit_code != 0
                    && rec.state.status == "exited"
                    && !rec.manually_stopped);
            let go = match policy {
                "always" => true,
                "unless-stopped" => !rec.manually_stopped,
                "on-failure" => died_away && rec.state.exit_code != 0,
                _ => false,
            };
            if go {
                tracing::info!(container = %rec.id, policy, "starting on boot (restart policy)");
                run::boot_start(engine, self, &entry).await;
            }
        }
    }

    /// Plugs in the network subsystem (once, at start-up).
    pub fn set_network(&self, n: Arc<dyn NetworkService>) {
        let _ = self.net.set(n);
    }

    pub(crate) fn net(&self) -> Option<&Arc<dyn NetworkService>> {
        self.net.get()
    }

    /// Plugs in the volume subsystem (once, at start-up).
    pub fn set_volumes(&self, v: Arc<dyn VolumeService>) {
        let _ = self.vols.set(v);
    }

    pub(crate) fn vols(&self) -> Option<&Arc<dyn VolumeService>> {
        self.vols.get()
    }

    /// Containers (IDs) whose mounts use a volume, running or not.
    pub fn volume_users(&self, volume: &str) -> Vec<String> {
        self.all()
            .iter()
            .map(|e| e.snapshot())
            .filter(|r| {
                r.mounts
                    .iter()
                    .any(|m| m.kind == "volume" && m.name == volume)
            })
            .map(|r| r.id)
            .collect()
    }

    /// Stops running containers for a daemon shutdown without live restore.
    pub async fn stop_all(self: &Arc<Self>) {
        self.shutting_down
            .store(true, std::sync::atomic::Ordering::SeqCst);
        stop::stop_all(self).await
    }

    /// How long a shutdown waits for [`Containers::stop_all`] (`None`: no limit).
    pub fn shutdown_wait(&self, shutdown_timeout: i64) -> Option<std::time::Duration> {
        stop::shutdown_wait(self, shutdown_timeout)
    }

    pub(crate) fn shutting_down(&self) -> bool {
        self.shutting_down.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub(crate) fn insert(&self, rec: Record) -> Arc<Entry> {
        let snap = Snapshot {
            status: rec.state.status.clone(),
            exit_code: rec.state.exit_code,
            exits: 0,
            removed: false,
        };
        let (tx, _) = watch::channel(snap);
        self.names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(rec.name.clone(), rec.id.clone());
        let id = rec.id.clone();
        let entry = Arc::new(Entry {
            record: Mutex::new(rec),
            watch: tx,
            restart: Mutex::new(RestartState::default()),
            op: tokio::sync::Mutex::new(()),
            list_json: Mutex::new(None),
            live: live::Waiters::default(),
        });
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, entry.clone());
        entry
    }

    pub(crate) fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    pub(crate) fn run_dir(&self, id: &str) -> PathBuf {
        self.exec_root.join(id)
    }

    /// Writes a container's record atomically.
    pub(crate) fn save(&self, rec: &Record) -> Result<()> {
        let path = self.dir(&rec.id).join("config.v2.json");
        let b = serde_json::to_vec(rec).map_err(|e| ApiError::system(e.to_string()))?;
        if let Some(e) = self
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&rec.id)
        {
            *e.list_json.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
        berth_atomicfile::write(&path, &b)
            .map_err(|e| ApiError::system(format!("{}: {e}", path.display())))
    }

    /// Finds a container by full ID, name, or unique ID prefix, as dockerd.
    pub fn find(&self, name: &str) -> Result<Arc<Entry>> {
        let missing = || ApiError::not_found(format!("No such container: {name}"));
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = entries.get(name) {
            return Ok(e.clone());
        }
        let key = if name.starts_with('/') {
            name.to_string()
        } else {
            format!("/{name}")
        };
        if let Some(id) = self
            .names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            if let Some(e) = entries.get(id) {
                return Ok(e.clone());
            }
        }
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(missing());
        }
        let mut hits = entries.iter().filter(|(id, _)| id.starts_with(name));
        match (hits.next(), hits.next()) {
            (Some((_, e)), None) => Ok(e.clone()),
            (Some(_), Some(_)) => Err(ApiError::invalid(format!(
                "Multiple IDs found with provided prefix: {name}"
            ))),
            _ => Err(missing()),
        }
    }

    pub fn all(&self) -> Vec<Arc<Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub(crate) fn forget(&self, id: &str, name: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        self.names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        self.execs.forget_container(id);
    }

    /// Containers using an image, `(id, running)`, for image deletion rules.
    pub fn users_of(&self, image_id: &str) -> Vec<(String, bool)> {
        self.all()
            .iter()
            .map(|e| e.snapshot())
            .filter(|r| r.image == image_id)
            .map(|r| (r.id.clone(), r.state.running))
            .collect()
    }

    /// Counts for `/info`: (all, running, paused, stopped).
    pub fn counts(&self) -> (u64, u64, u64, u64) {
        let recs: Vec<Record> = self.all().iter().map(|e| e.snapshot()).collect();
        let running = recs.iter().filter(|r| r.state.running).count() as u64;
        (recs.len() as u64, running, 0, recs.len() as u64 - running)
    }
}

pub(crate) fn event(job: &Job, rec: &Record, action: &str, extra: &[(&str, String)]) {
    publish(job.events(), rec, action, extra)
}

/// Publishes a container event with dockerd's attributes (labels, name, image).
pub(crate) fn publish(
    bus: &berth_engine::EventBus,
    rec: &Record,
    action: &str,
    extra: &[(&str, String)],
) {
    let mut attrs: std::collections::BTreeMap<String, String> = rec.labels().clone();
    attrs.insert("name".into(), rec.name.trim_start_matches('/').to_string());
    attrs.insert("image".into(), rec.image_name.clone());
    for (k, v) in extra {
        attrs.insert(k.to_string(), v.clone());
    }
    bus.publish("container", action, &rec.id, attrs);
}

/// Registers the container jobs.
pub fn register(engine: &Engine, containers: Arc<Containers>) {
    macro_rules! job {
        (quick $name:expr, $f:path) => {{
            let c = containers.clone();
            engine.register_quick($name, move |job: Job| $f(job, c.clone()));
        }};
        ($name:expr, $f:path) => {{
            let c = containers.clone();
            engine.register($name, move |job: Job| $f(job, c.clone()));
        }};
    }
    job!(jobname::container::CREATE, create::create);
    job!(jobname::container::START, run::start);
    job!(jobname::container::WAIT, stop::wait);
    job!(jobname::container::STOP, stop::stop);
    job!(jobname::container::KILL, stop::kill);
    job!(jobname::container::RESTART, stop::restart);
    job!(jobname::container::DELETE, remove::delete);
    job!(jobname::container::UNLINK, links::unlink);
    job!(jobname::container::RENAME, names::rename);
    job!(jobname::container::RESIZE, run::resize);
    job!(jobname::container::ATTACH, attach::attach);
    job!(jobname::container::LOGS, logs::logs);
    job!(quick jobname::container::LIST, views::list);
    job!(quick jobname::container::INSPECT, views::inspect);
    job!(jobname::container::EXEC, exec::create);
    job!(jobname::exec::START, exec_start::start);
    job!(jobname::exec::RESIZE, exec::resize);
    job!(quick jobname::exec::INSPECT, exec::inspect);
    job!(jobname::container::ARCHIVE_HEAD, archive::head);
    job!(jobname::container::ARCHIVE_GET, archive::get);
    job!(jobname::container::ARCHIVE_PUT, archive::put);
    job!(jobname::container::EXPORT, archive::export);
    job!(jobname::container::COMMIT, commit::commit);
    job!(jobname::container::COMMIT_BUILD, commit::commit_build);
    job!(jobname::container::PAUSE, ops::pause);
    job!(jobname::container::UNPAUSE, ops::unpause);
    job!(jobname::container::TOP, ops::top);
    job!(jobname::container::STATS, ops::stats);
    job!(jobname::container::CHANGES, ops::changes);
    job!(jobname::container::UPDATE, ops::update);
    job!(jobname::container::PRUNE, remove::prune);
    job!(jobname::network::CONNECT, netjobs::connect);
    job!(jobname::network::DISCONNECT, netjobs::disconnect);
}

/// A command for the shim (possibly a sealed `/proc/self/fd/N` copy), named
/// `berth-shim` in process listings.
pub(crate) fn shim_command(shim: &Path) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(shim);
    c.arg0("berth-shim");
    c
}
