//! `berthd`: flags, start-up and shutdown.
//!
//! [`main_daemon`] follows the classic daemon's `mainDaemon()`: read the configuration,
//! create the Engine, trap signals, register the job families, create the subsystems,
//! restore saved state, then serve the API until SIGTERM or SIGINT.

pub mod config;
mod identity;
pub mod jobscli;
mod listen;
mod lock;
mod reload;
mod report;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use berth_engine::Engine;
use berth_jobs_system::{System, SystemConfig};
use berth_server::{routes, Router, Server};
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// How long running jobs get to finish once shutdown starts.
const JOB_GRACE: Duration = Duration::from_secs(10);

/// The daemon's entry point; returns the process exit code.
pub fn main_daemon() -> ExitCode {
    // Taken (and cleared from the environment) while the process has one thread.
    let activated = listen::Activated::from_env();
    let cfg = match Config::load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("berthd: {e}");
            return ExitCode::FAILURE;
        }
    };
    init_tracing(&cfg);
    tune_malloc();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cfg, activated)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("berthd: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The profile `--seccomp-profile` names, read and checked at start-up as dockerd
/// does.
fn default_seccomp(setting: Option<&str>) -> Result<berth_runtime::spec::Seccomp, String> {
    use berth_runtime::spec::Seccomp;
    match setting {
        None | Some("") | Some("builtin") | Some("default") => Ok(Seccomp::Default),
        Some("unconfined") => Ok(Seccomp::Unconfined),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("opening seccomp profile ({path}) failed: {e}"))?;
            berth_runtime::seccomp::parse(&text)
                .map_err(|e| format!("loading seccomp profile ({path}): {e}"))?;
            Ok(Seccomp::Profile(text))
        }
    }
}

/// glibc's allocator, set for a long-lived daemon that moves megabytes at a
/// time (log chunks, layers) between bursts of idleness: buffers of 256 KiB and
/// more are mapped and unmapped by themselves (glibc otherwise raises that bound
/// as they are freed, so later ones stay in the heap), and two arenas serve all
/// threads (one per thread leaves freed memory scattered where trimming cannot
/// give it back). Both before any thread exists.
fn tune_malloc() {
    // Safety: mallopt with integer parameters, before other threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

fn init_tracing(cfg: &Config) {
    use std::io::IsTerminal;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let filter = tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(cfg.tracing_level()));
    // Reloadable: SIGHUP may switch `debug`.
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let _ = reload::LOG_FILTER.set(handle);
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    // `--log-format json`: one JSON object a line, each with its job's span
    // (name and id), for log shippers.
    let fmt = if cfg.log_format == "json" {
        fmt.json()
            .with_current_span(true)
            .with_span_list(false)
            .boxed()
    } else {
        fmt.with_ansi(std::io::stderr().is_terminal()).boxed()
    };
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .try_init();
}

fn create_dir(path: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .map_err(|e| format!("creating {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {}: {e}", path.display()))
}

async fn run(mut cfg: Config, mut activated: listen::Activated) -> Result<(), String> {
    // Configuration: directories, the one-daemon-per-data-root lock, the daemon's ID.
    create_dir(&cfg.data_root, 0o711)?;
    create_dir(&cfg.exec_root, 0o700)?;
    let _lock = lock::DataRootLock::acquire(&cfg.data_root)?;
    let id = identity::load_or_create(&cfg.data_root)?;
    tracing::info!(data_root = %cfg.data_root.display(), exec_root = %cfg.exec_root.display(), %id, "starting berthd");

    // The API's sockets, before anything that would need undoing: a daemon that
    // cannot listen (a socket in use, no activated sockets) stops here.
    let mut listeners = Vec::new();
    let mut sockets = Vec::new();
    let tls = match &cfg.tls {
        Some(files) => Some((
            berth_server::TlsAcceptor::new(files)?,
            files.verify_with.is_some(),
        )),
        None => None,
    };
    for h in &cfg.hosts {
        if h.starts_with("fd://") {
            listeners.extend(activated.take(h)?.into_iter().map(|b| b.listener));
            continue;
        }
        let b = listen::bind(
            h,
            &cfg.group,
            cfg.group_explicit,
            cfg.allow_remote_tcp,
            tls.as_ref(),
        )
        .await?;
        sockets.extend(b.socket_path);
        listeners.push(b.listener);
    }

    // Metrics, before the engine runs anything: `--metrics-addr` fails here
    // when it cannot listen.
    let metrics_listener = match cfg.metrics_addr {
        Some(a) => Some(
            tokio::net::TcpListener::bind(a)
                .await
                .map_err(|e| format!("listening for metrics on {a}: {e}"))?,
        ),
        None => None,
    };

    // The Engine.
    let engine = Engine::new();
    let metrics = metrics_listener.as_ref().map(|_| {
        let m = Arc::new(berth_metrics::Metrics::new());
        let observer = m.clone();
        engine.observe_jobs(Arc::new(move |job, took, failed| {
            observer.observe_job(job, took.as_secs_f64(), failed)
        }));
        m
    });

    // Signal traps, before anything that needs cleaning up on exit exists.
    let mut sigterm =
        signal(SignalKind::terminate()).map_err(|e| format!("trapping SIGTERM: {e}"))?;
    let mut sigint =
        signal(SignalKind::interrupt()).map_err(|e| format!("trapping SIGINT: {e}"))?;
    let mut sighup = signal(SignalKind::hangup()).map_err(|e| format!("trapping SIGHUP: {e}"))?;

    // Job registration, with the subsystems each family needs.
    let cgroup_driver = cfg.cgroup_driver().map_err(|e| e.to_string())?;
    if cgroup_driver == berth_runtime::placement::Driver::Systemd
        && std::env::var_os("DBUS_SYSTEM_BUS_ADDRESS").is_none()
        && !std::path::Path::new("/run/dbus/system_bus_socket").exists()
    {
        // libcontainer then talks to systemd on its private socket, where its
        // bus client loses replies among other units' signals and waits out a
        // 10 s timeout: starts slow down whenever units change.
        tracing::warn!(
            "the systemd cgroup driver without a system bus: install and start dbus, or containers that start while other units change will each take seconds longer"
        );
    }
    let system = System::new(SystemConfig {
        cgroup_driver: cgroup_driver.name().to_string(),
        logging_driver: cfg.log_driver.clone(),
        log_drivers: berth_jobs_container::LogDriver::ALL
            .iter()
            .map(|d| d.to_string())
            .collect(),
        id,
        data_root: cfg.data_root.display().to_string(),
        debug: cfg.debug,
        labels: cfg.labels.clone(),
        live_restore: cfg.live_restore,
        insecure_registries: cfg.insecure_registries.clone(),
        registry_mirrors: reload::normalised_mirrors(&cfg),
        runtimes: reload::info_runtimes(&cfg),
        runtime_features: tokio::task::block_in_place(|| reload::runtime_features(&cfg)),
        default_runtime: cfg.default_runtime.clone(),
        seccomp_profile: match cfg.seccomp_profile.as_deref() {
            None | Some("") | Some("default") => "builtin".into(),
            Some(p) => p.to_string(),
        },
    });
    berth_jobs_system::register(&engine, system.clone());
    if let Some(m) = metrics {
        system.set_metrics(m);
    }

    // Subsystems: the image graph (its start-up also restores it: loading state and
    // removing what a crash left half-done) and the registry client.
    let graph_root = cfg.data_root.join("graph");
    let graph = tokio::task::spawn_blocking(move || berth_graph::Graph::open(&graph_root))
        .await
        .map_err(|e| format!("opening the image graph: {e}"))?
        .map_err(|e| format!("opening the image graph: {e}"))?;
    let registry = berth_registry::Client::new(reload::registry_config(&cfg));
    let graph = Arc::new(graph);
    let images = berth_jobs_image::Images::new(graph.clone(), Arc::new(registry));
    images.set_limits(
        cfg.max_concurrent_downloads,
        cfg.max_concurrent_uploads,
        cfg.max_download_attempts,
    );
    berth_jobs_image::register(&engine, images.clone());
    system.add_reporter(Arc::new(report::ImageReport(images.clone())));

    // Containers: restoring them records those that ended while the daemon was away.
    // One sealed in-memory copy of the shim for every container: each shim then
    // runs from it (pentacle finds itself sealed and does not copy itself again),
    // so shims share their pages and a container cannot overwrite the binary.
    let sealed = seal(&shim_path()?)?;
    let shim = std::path::PathBuf::from(sealed.get_program());
    let (g, d, e) = (graph.clone(), cfg.data_root.clone(), cfg.exec_root.clone());
    let seccomp = default_seccomp(cfg.seccomp_profile.as_deref())?;
    let runtimes = reload::runtimes(&cfg);
    let logs = berth_jobs_container::LogConfig::new(&cfg.log_driver, cfg.log_opts.clone())
        .map_err(|e| format!("failed to initialize logging driver: {}", e.message))?;
    let containers = tokio::task::spawn_blocking(move || {
        berth_jobs_container::Containers::open(g, &d, &e, shim, runtimes, seccomp, logs)
    })
    .await
    .map_err(|e| format!("opening containers: {e}"))?
    .map_err(|e| format!("opening containers: {}", e.message))?;
    containers.restrict_oom_score_adj(cfg.restrict_oom_score_adj);
    containers.set_default_shm_size(cfg.default_shm_size);
    let mut cgroups = berth_jobs_container::CgroupSettings {
        driver: cgroup_driver,
        parent: cfg.cgroup_parent.clone().unwrap_or_default(),
        ..Default::default()
    };
    if let Some(m) = &cfg.default_cgroupns_mode {
        cgroups.default_ns_mode = m.clone();
    }
    containers.set_cgroup_settings(cgroups);
    berth_jobs_container::register(&engine, containers.clone());

    // Builds: what a killed daemon's builds left mounted or unpacked goes first.
    let (g, d) = (graph.clone(), cfg.data_root.clone());
    let builder = tokio::task::spawn_blocking(move || berth_jobs_build::Builder::open(g, &d))
        .await
        .map_err(|e| format!("opening the builder: {e}"))?
        .map_err(|e| format!("opening the builder: {e}"))?;
    berth_jobs_build::register(&engine, builder);

    // Volumes.
    let vol_root = cfg.data_root.join("volumes");
    let volumes = tokio::task::spawn_blocking(move || berth_volume::Volumes::open(&vol_root))
        .await
        .map_err(|e| format!("opening volumes: {e}"))?
        .map_err(|e| format!("opening volumes: {e}"))?;
    let volume_jobs = berth_jobs_volume::VolumeJobs::new(Arc::new(volumes));
    berth_jobs_volume::register(&engine, volume_jobs.clone());
    volume_jobs.set_usage(Arc::new(report::VolumeUsers(containers.clone())));
    containers.set_volumes(Arc::new(report::VolumeAdapter {
        vols: volume_jobs.volumes.clone(),
        engine: engine.clone(),
    }));

    // Networks: the default bridge, user networks, and the sandboxes of running
    // containers (restored with them, the others' released).
    let networks = berth_jobs_network::Networks::open(network_config(&cfg)?)
        .await
        .map_err(|e| format!("setting up networks: {}", e.message))?;
    berth_jobs_network::register(&engine, networks.clone());
    containers.set_network(Arc::new(report::NetworkAdapter {
        nets: networks.clone(),
        engine: engine.clone(),
    }));
    containers.restore(&engine).await;
    images.set_usage(Arc::new(report::ContainerUsage(containers.clone())));
    system.add_reporter(Arc::new(report::ContainerReport(containers.clone())));
    system.add_reporter(Arc::new(report::VolumeReport {
        vols: volume_jobs.volumes.clone(),
        users: containers.clone(),
    }));

    // glibc keeps freed memory for reuse; a pull or a large log read can leave
    // tens of megabytes of it. Handing it back every few seconds keeps an idle
    // daemon small.
    tokio::spawn(async {
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        loop {
            tick.tick().await;
            // Safety: malloc_trim only releases free heap memory.
            let _ = tokio::task::spawn_blocking(|| unsafe { libc::malloc_trim(0) }).await;
        }
    });

    // Serve, once every route has a handler: a route whose job nobody
    // registered would answer "not implemented" for good.
    let table = routes::all();
    if let Some(r) = table.iter().find(|r| !engine.has_job(r.job)) {
        return Err(format!(
            "{} {} names job {}, which no job family registered",
            r.method(),
            r.path(),
            r.job
        ));
    }
    write_pidfile(&cfg.pidfile)?;
    let stop = CancellationToken::new();
    let server = Server::new(engine.clone(), Router::new(table));
    let serve = server
        .spawn_dedicated(listeners, stop.clone())
        .map_err(|e| format!("starting the API server: {e}"))?;
    tracing::info!(hosts = ?cfg.hosts, "API listening");
    let metrics_serve = match metrics_listener {
        Some(l) => {
            let route = berth_server::Route::new(
                http::Method::GET,
                "/metrics",
                berth_engine::names::system::METRICS,
                berth_server::BodyMode::None,
            );
            let s = Server::new(engine.clone(), Router::new(vec![route]));
            tracing::info!(addr = ?cfg.metrics_addr, "metrics listening");
            Some(
                s.spawn_dedicated(vec![berth_server::Listener::Tcp(l)], stop.clone())
                    .map_err(|e| format!("starting the metrics server: {e}"))?,
            )
        }
        None => None,
    };
    // Type=notify: the service is up once the API answers.
    listen::notify(&format!("READY=1\nMAINPID={}", std::process::id()));
    let reloadable = reload::Targets {
        engine: engine.clone(),
        system: system.clone(),
        images: images.clone(),
        containers: containers.clone(),
    };

    loop {
        tokio::select! {
            _ = sigterm.recv() => { tracing::info!("SIGTERM: shutting down"); break; }
            _ = sigint.recv() => { tracing::info!("SIGINT: shutting down"); break; }
            _ = sighup.recv() => {
                listen::notify("RELOADING=1");
                reload::reload(&mut cfg, &reloadable);
                listen::notify("READY=1");
            }
        }
    }

    listen::notify("STOPPING=1");
    stop.cancel();
    if !cfg.live_restore {
        tracing::info!("stopping containers (live restore is off)");
        // `--shutdown-timeout`: how long they get, as dockerd; what still runs
        // then is left to its shim.
        match containers.shutdown_wait(cfg.shutdown_timeout) {
            Some(wait) => {
                if tokio::time::timeout(wait, containers.stop_all())
                    .await
                    .is_err()
                {
                    tracing::warn!(?wait, "containers did not stop within the shutdown timeout");
                }
            }
            None => containers.stop_all().await,
        }
    }
    engine.shutdown(JOB_GRACE).await;
    networks.shutdown().await;
    let _ = serve.await;
    if let Some(m) = metrics_serve {
        let _ = m.await;
    }
    for s in &sockets {
        let _ = std::fs::remove_file(s);
    }
    let _ = std::fs::remove_file(&cfg.pidfile);
    drop(sealed);
    tracing::info!("berthd stopped");
    Ok(())
}

/// The shim in a sealed memfd. Sealing against writes fails with EBUSY while the
/// kernel still holds extra references to the memfd's fresh pages (per-CPU LRU
/// batches); seen once under the test suite's load, so it is tried again. The
/// binary is copied from its file each try, never held in the heap: a copy kept
/// for the retries was 5 MB of the idle daemon's 7 MB of anonymous memory.
fn seal(program: &std::path::Path) -> Result<pentacle::SealedCommand, String> {
    let mut attempt = 0;
    loop {
        let mut file =
            std::fs::File::open(program).map_err(|e| format!("{}: {e}", program.display()))?;
        match pentacle::SealedCommand::new(&mut file) {
            Ok(s) => return Ok(s),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < 5 => {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(20 * attempt));
            }
            Err(e) => return Err(format!("sealing the shim: {e}")),
        }
    }
}

/// The shim binary: `BERTH_SHIM`, else `berth-shim` beside `berthd`.
fn network_config(cfg: &Config) -> Result<berth_jobs_network::Config, String> {
    use berth_netdriver::subnet::{default_pools, parse_pool, Ipv4Net};
    let net = |name: &str, v: &Option<String>| -> Result<Option<Ipv4Net>, String> {
        v.as_deref()
            .map(|s| {
                s.parse::<Ipv4Net>()
                    .map_err(|_| format!("invalid {name}: {s}"))
            })
            .transpose()
    };
    use berth_netdriver::subnet::{is_pool6, parse_pool6};
    let (v6, v4): (Vec<&String>, Vec<&String>) =
        cfg.default_address_pools.iter().partition(|p| is_pool6(p));
    let pools = if v4.is_empty() {
        default_pools()
    } else {
        v4.iter()
            .map(|p| parse_pool(p).map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?
    };
    let pools6 = v6
        .iter()
        .map(|p| parse_pool6(p).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    if cfg.bridge.len() > 15 {
        return Err(format!("invalid bridge name {}: too long", cfg.bridge));
    }
    Ok(berth_jobs_network::Config {
        data_root: cfg.data_root.clone(),
        exec_root: cfg.exec_root.clone(),
        bridge: cfg.bridge.clone(),
        bip: net("bip", &cfg.bip)?,
        fixed_cidr: net("fixed-cidr", &cfg.fixed_cidr)?,
        mtu: cfg.mtu,
        pools,
        ipv6: cfg.ipv6,
        fixed_cidr_v6: cfg
            .fixed_cidr_v6
            .as_deref()
            .map(|s| {
                s.parse::<berth_netdriver::subnet::Ipv6Net>()
                    .map(|n| n.trunc())
                    .map_err(|_| format!("invalid fixed-cidr-v6: {s}"))
            })
            .transpose()?,
        pools6,
        ip6tables: cfg.ip6tables,
        icc: cfg.icc,
        ip_masq: cfg.ip_masq,
        iptables: cfg.iptables,
    })
}

fn shim_path() -> Result<std::path::PathBuf, String> {
    if let Some(p) = std::env::var_os("BERTH_SHIM") {
        return Ok(p.into());
    }
    let exe = std::env::current_exe().map_err(|e| format!("locating berthd: {e}"))?;
    let shim = exe.with_file_name("berth-shim");
    if !shim.exists() {
        return Err(format!(
            "{} not found: build it with `cargo build -p berth-runtime`",
            shim.display()
        ));
    }
    Ok(shim)
}

fn write_pidfile(path: &Path) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    berth_atomicfile::write_mode(path, format!("{}", std::process::id()).as_bytes(), 0o644)
        .map_err(|e| format!("writing pidfile {}: {e}", path.display()))
}
