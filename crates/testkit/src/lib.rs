//! A real `berthd` for tests.
//!
//! Every [`TestDaemon`] has its own temp directory holding its socket, data root, exec
//! root, pidfile and log, so tests run in parallel without meeting. Dropping it stops
//! the daemon with SIGTERM and checks that it exited cleanly and left no mounts.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

pub mod dockerd;
pub mod registry;
pub mod slowproxy;
pub mod tokenregistry;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The docker CLI the scenario tests drive.
pub fn docker_cli() -> PathBuf {
    std::env::var_os("BERTH_DOCKER_CLI")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/local/bin/docker"))
}

/// The test registry (`127.0.0.1:PORT`) started by `cargo xtask test`, if any.
/// The docker compose v2 binary `cargo xtask test` fetched (`BERTH_COMPOSE`).
pub fn compose() -> Option<PathBuf> {
    std::env::var_os("BERTH_COMPOSE")
        .map(PathBuf::from)
        .filter(|p| p.exists())
}

/// An example program of the workspace, as `cargo test` builds them beside the
/// test binaries (`target/debug/examples/NAME`).
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let debug = exe
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    debug.join("examples").join(name)
}

/// Runs an example to its end; its stdout, or a panic with what it printed.
pub fn run_example(name: &str, args: &[&str]) -> String {
    let bin = example(name);
    let out = Command::new(&bin)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "example {name} {args:?} failed ({}):\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

pub fn registry() -> Option<String> {
    std::env::var("BERTH_TEST_REGISTRY")
        .ok()
        .filter(|s| !s.is_empty())
}

/// Options for starting a daemon.
pub struct Builder {
    bin: PathBuf,
    args: Vec<String>,
    dir: Option<tempfile::TempDir>,
    netns: Option<PathBuf>,
    activated: bool,
    envs: Vec<(String, String)>,
}

impl Builder {
    /// An environment variable for `berthd` (kept across restarts).
    pub fn env(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.envs.push((k.into(), v.into()));
        self
    }

    /// Starts the daemon through `systemd-socket-activate`, which binds its
    /// socket and passes it (`-H fd://`), with `NOTIFY_SOCKET` set to
    /// [`TestDaemon::notify_socket`].
    pub fn socket_activated(mut self) -> Self {
        self.activated = true;
        self
    }

    /// Extra flags for `berthd`.
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    /// Runs the daemon in the network namespace at `path` (through `nsenter`,
    /// which enters nothing else: mounts and cgroups stay the host's).
    pub fn netns(mut self, path: impl Into<PathBuf>) -> Self {
        self.netns = Some(path.into());
        self
    }

    /// Reuses the directory (data root etc.) of a daemon stopped before, to test restarts.
    pub fn dir(mut self, dir: tempfile::TempDir) -> Self {
        self.dir = Some(dir);
        self
    }

    pub fn start(self) -> TestDaemon {
        let dir = self.dir.unwrap_or_else(|| {
            tempfile::Builder::new()
                .prefix("berth-test-")
                .tempdir()
                .expect("temp dir")
        });
        let (bridge, net_args) = test_network();
        let mut args = self.args;
        if !args.iter().any(|a| a == "--bridge" || a == "-b") {
            args.extend(net_args);
        }
        // A whole run's setting, e.g. the cgroup driver (`cargo xtask cgroup2`
        // runs its tests under each), unless the test sets its own.
        if let Ok(extra) = std::env::var("BERTH_TEST_EXEC_OPT") {
            if !args.iter().any(|a| a == "--exec-opt") && !extra.is_empty() {
                args.extend(["--exec-opt".to_string(), extra]);
            }
        }
        let mut d = TestDaemon {
            bridge,
            sock: dir.path().join("berth.sock"),
            data_root: dir.path().join("data"),
            exec_root: dir.path().join("exec"),
            pidfile: dir.path().join("berthd.pid"),
            log: dir.path().join("berthd.log"),
            config_file: dir.path().join("daemon.json"),
            child: None,
            bin: self.bin,
            netns: self.netns,
            activated: self.activated,
            envs: self.envs,
            args,
            dir: Some(dir),
            exit: None,
        };
        d.spawn();
        d
    }
}

/// A bridge name, an address for it and a pool for user networks that no other
/// test daemon of this process uses: `10.N.0.0/16`, N counting up from 100.
fn test_network() -> (String, Vec<String>) {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let x = 100 + n % 150;
    let bridge = format!("bt{:x}n{n}", std::process::id() & 0xffff);
    (
        bridge.clone(),
        vec![
            "--bridge".into(),
            bridge,
            "--bip".into(),
            format!("10.{x}.0.1/24"),
            "--default-address-pool".into(),
            format!("base=10.{x}.0.0/16,size=24"),
        ],
    )
}

pub struct TestDaemon {
    /// The default bridge of this daemon.
    pub bridge: String,
    pub sock: PathBuf,
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub pidfile: PathBuf,
    pub log: PathBuf,
    pub config_file: PathBuf,
    child: Option<Child>,
    bin: PathBuf,
    netns: Option<PathBuf>,
    activated: bool,
    envs: Vec<(String, String)>,
    args: Vec<String>,
    dir: Option<tempfile::TempDir>,
    exit: Option<ExitStatus>,
}

impl TestDaemon {
    pub fn builder(bin: impl AsRef<Path>) -> Builder {
        Builder {
            bin: bin.as_ref().to_path_buf(),
            args: Vec::new(),
            dir: None,
            netns: None,
            activated: false,
            envs: Vec::new(),
        }
    }

    /// Where a socket-activated daemon's `sd_notify` messages go (a datagram
    /// socket the test binds).
    pub fn notify_socket(&self) -> PathBuf {
        self.dir.as_ref().expect("dir").path().join("notify.sock")
    }

    /// Starts `bin` (the `berthd` under test) with default test settings.
    pub fn start(bin: impl AsRef<Path>) -> TestDaemon {
        Self::builder(bin).start()
    }

    /// The command line this daemon is started with.
    pub fn command(&self) -> Command {
        let mut c = match &self.netns {
            // nsenter execs the daemon: the child's PID is berthd's.
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={}", ns.display()))
                    .arg("--")
                    .arg(&self.bin);
                c
            }
            None if self.activated => {
                let mut c = Command::new("systemd-socket-activate");
                c.arg("-l")
                    .arg(&self.sock)
                    .arg("-E")
                    .arg(format!("NOTIFY_SOCKET={}", self.notify_socket().display()))
                    .arg(&self.bin);
                c
            }
            None => Command::new(&self.bin),
        };
        let host = if self.activated {
            "fd://".to_string()
        } else {
            format!("unix://{}", self.sock.display())
        };
        c.arg("-H")
            .arg(host)
            .arg("--data-root")
            .arg(&self.data_root)
            .arg("--exec-root")
            .arg(&self.exec_root)
            .arg("--pidfile")
            .arg(&self.pidfile)
            .arg("--config-file")
            .arg(&self.config_file)
            .args(&self.args)
            .env(
                "BERTH_LOG",
                std::env::var("BERTH_LOG").unwrap_or_else(|_| "debug".into()),
            )
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        c
    }

    fn spawn(&mut self) {
        if !self.config_file.exists() {
            std::fs::write(&self.config_file, "{}").expect("write daemon.json");
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open log");
        let log2 = log.try_clone().expect("dup log");
        let child = self
            .command()
            .stdout(log)
            .stderr(log2)
            .spawn()
            .expect("spawn berthd");
        self.child = Some(child);
        self.exit = None;
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    self.child = None;
                    panic!("berthd exited during start-up ({status}):\n{}", self.logs());
                }
            }
            if self.sock.exists()
                && self
                    .raw(b"GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
                    .ends_with("OK")
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "berthd not ready in 30s:\n{}",
                self.logs()
            );
            // Start-up of a child process is not observable otherwise; tests only.
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.sock.display())
    }

    /// The daemon's log so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A bollard client with the API version negotiated.
    pub async fn bollard(&self) -> bollard::Docker {
        let d = bollard::Docker::connect_with_unix(
            self.sock.to_str().expect("utf8 socket path"),
            120,
            bollard::API_DEFAULT_VERSION,
        )
        .expect("bollard client");
        d.negotiate_version().await.expect("negotiate version")
    }

    /// A `docker` CLI command with `DOCKER_HOST` set and a private config dir.
    pub fn docker(&self) -> Command {
        self.docker_env(Command::new(docker_cli()))
    }

    /// Any command with the environment the docker CLI needs for this daemon.
    pub fn docker_env(&self, mut c: Command) -> Command {
        let cfg = self.dir.as_ref().expect("dir").path().join("docker-config");
        // docker compose, when `cargo xtask test` provides it, as a CLI plugin.
        if let Some(bin) = compose() {
            let plugins = cfg.join("cli-plugins");
            let link = plugins.join("docker-compose");
            if !link.exists() {
                let _ = std::fs::create_dir_all(&plugins);
                let _ = std::os::unix::fs::symlink(bin, &link);
            }
        }
        c.env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", cfg)
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_API_VERSION")
            .stdin(Stdio::null());
        c
    }

    /// Runs the docker CLI with `args` and returns its output.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.docker().args(args).output().expect("run docker CLI")
    }

    /// Runs the docker CLI and panics unless it succeeds; returns stdout.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let o = self.cli(args);
        assert!(
            o.status.success(),
            "docker {args:?} failed ({}):\nstdout: {}\nstderr: {}\ndaemon log:\n{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
            tail(&self.logs(), 60)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Sends raw bytes on a new connection and returns everything the daemon answers
    /// until it closes the connection (send `Connection: close`).
    pub fn raw(&self, request: &[u8]) -> String {
        let Ok(mut s) = UnixStream::connect(&self.sock) else {
            return String::new();
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
        let _ = s.write_all(request);
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// A GET with `Connection: close`; returns the whole response.
    pub fn get(&self, path: &str) -> String {
        self.raw(format!("GET {path} HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n").as_bytes())
    }

    /// Sends `sig` to the daemon.
    pub fn signal(&self, sig: Signal) {
        if let Some(pid) = self.pid() {
            kill(Pid::from_raw(pid as i32), sig).expect("signal berthd");
        }
    }

    /// Stops the daemon with SIGTERM and returns its exit status.
    pub fn stop(&mut self) -> ExitStatus {
        if let Some(s) = self.exit {
            return s;
        }
        self.signal(Signal::SIGTERM);
        let status = self.wait_exit(Duration::from_secs(30));
        self.exit = Some(status);
        status
    }

    /// Kills the daemon with SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        self.signal(Signal::SIGKILL);
        let status = self.wait_exit(Duration::from_secs(30));
        self.exit = Some(status);
    }

    fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("daemon running");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = child.try_wait().expect("wait berthd") {
                return s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "berthd did not exit in {timeout:?}:\n{}",
                    tail(&self.logs(), 60)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the daemon again on the same directories (after `stop` or `kill9`).
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        self.spawn();
    }

    /// Stops the daemon and hands back its directory, for a new daemon on the same state.
    pub fn into_dir(mut self) -> tempfile::TempDir {
        if self.child.is_some() {
            self.stop();
        }
        self.dir.take().expect("dir")
    }

    /// Mount points under this daemon's directory (there should be none once stopped).
    pub fn leaked_mounts(&self) -> Vec<String> {
        let Some(dir) = self.dir.as_ref() else {
            return vec![];
        };
        let prefix = dir.path().to_string_lossy().into_owned();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&prefix))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.signal(Signal::SIGTERM);
            if let Some(mut c) = self.child.take() {
                let deadline = Instant::now() + Duration::from_secs(30);
                while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        let leaks = self.leaked_mounts();
        self.kill_leftover_containers();
        self.remove_network_state();
        if !leaks.is_empty() && !std::thread::panicking() {
            panic!("berthd left mounts behind: {leaks:?}");
        }
    }
}

impl TestDaemon {
    /// Containers a failed test left running (the daemon keeps them across its
    /// stop): their shims' children are killed, then whatever is still mounted
    /// under the test's directory is unmounted.
    fn kill_leftover_containers(&self) {
        let Some(dir) = self.dir.as_ref() else { return };
        let marker = dir.path().to_string_lossy().into_owned();
        let shims: Vec<i32> = std::fs::read_dir("/proc")
            .map(|r| {
                r.flatten()
                    .filter_map(|e| e.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        let shims: Vec<i32> = shims
            .into_iter()
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .map(|c| {
                        let c = String::from_utf8_lossy(&c);
                        c.contains("berth-shim") && c.contains(&marker)
                    })
                    .unwrap_or(false)
            })
            .collect();
        for shim in &shims {
            let _ = Command::new("pkill")
                .args(["-KILL", "-P", &shim.to_string()])
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while shims
            .iter()
            .any(|p| std::path::Path::new(&format!("/proc/{p}")).exists())
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut mounts = self.leaked_mounts();
        // Deepest first.
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
    }

    /// Bridges and the nftables table are meant to outlive a daemon (as docker0
    /// does); a test's must not outlive the test.
    fn remove_network_state(&self) {
        let mut bridges = vec![self.bridge.clone()];
        if let Ok(dir) = std::fs::read_dir(self.data_root.join("network")) {
            for e in dir.flatten() {
                let v: serde_json::Value = std::fs::read(e.path())
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
                    .unwrap_or_default();
                if let Some(b) = v["bridge"].as_str().filter(|b| !b.is_empty()) {
                    if !bridges.iter().any(|x| x == b) {
                        bridges.push(b.to_string());
                    }
                }
            }
        }
        remove_bridges_and_rules(&bridges, &self.bridge);
    }
}

/// A daemon's network state, which outlives it as docker0 does: the bridges
/// named, the nftables tables of the daemon whose default bridge is `bridge`,
/// and its accept chain in iptables' FORWARD (named after the table).
pub fn remove_bridges_and_rules(bridges: &[String], bridge: &str) {
    for b in bridges {
        let _ = Command::new("ip")
            .args(["link", "delete", b, "type", "bridge"])
            .stderr(Stdio::null())
            .status();
    }
    let table = format!("berth-{bridge}");
    for family in ["ip", "ip6"] {
        let _ = Command::new("nft")
            .args(["delete", "table", family, &table])
            .stderr(Stdio::null())
            .status();
    }
    let chain = table.to_uppercase();
    for args in [
        vec!["-D", "FORWARD", "-j", &chain],
        vec!["-F", &chain],
        vec!["-X", &chain],
    ] {
        let _ = Command::new("iptables")
            .arg("-w")
            .args(&args)
            .stderr(Stdio::null())
            .status();
    }
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
