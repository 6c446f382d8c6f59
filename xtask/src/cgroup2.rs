//! `cargo xtask cgroup2 [TEST FILTERS]`: the pure cgroup v2 machine.
//!
//! This kind of host runs the hybrid hierarchy and its kernel cannot be changed,
//! so the v2 code paths are proven in a machine of their own: Debian's kernel
//! (`linux-image-amd64`, downloaded and unpacked, never installed on the host)
//! booted by `qemu-system-x86_64` under software emulation (KVM hangs in this
//! nested setup). Its root is this host's own root, shared read-only over 9p
//! under a tmpfs overlay, so every binary the host built (berthd, the shim, the
//! test binary, this xtask, the docker CLI) runs inside unchanged; one more 9p
//! share, writable, carries the job in and the results out. There is no network
//! card: everything inside talks over the machine's own loopback.
//!
//! Stage 1 (`xtask/cgroup2/init`, in a small initramfs with busybox) mounts the
//! root; stage 2 (`xtask/cgroup2/stage2`) makes the mounts of a booted Debian
//! with cgroup2 only and runs `xtask cgroup2-guest` (see `cgroup2guest.rs`),
//! which starts a registry, pushes the fixtures, runs the tests and powers off.
//! `--sh SCRIPT` runs a script there instead, `--bench [ARGS]` the benchmarks.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{cargo, root, status, Result};

/// What the machine needs on the host.
pub const PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "busybox-static",
    "cpio",
    "kmod",
    // PID 1 inside, and the system bus libcontainer reaches it through.
    "systemd",
    "dbus",
];

/// Tests that run inside when none are named: every test that reads or writes a
/// cgroup, and the v2-only module.
pub const DEFAULT_TESTS: &[&str] = &[
    "cgroup2::",
    "ops::limits_update_and_oom",
    "ops::stats_through_bollard",
    "ops::pause_top_diff_and_prune",
    "ops::restart_policies",
    "containers::cgroup_parent_places_the_container_and_its_limits",
    "containers::running_containers_survive_a_daemon_restart",
    "runtimes::devices_reach_the_container_with_their_permissions",
    "exec::",
    // ipvlan, 802.1q and dummy links: modules this host's kernel lacks.
    "lan::",
];

/// The modules stage 1 loads, in order, to reach the root (virtio's PCI transport,
/// 9p and overlayfs are modules in Debian's kernel).
const STAGE1_MODULES: &[&str] = &["virtio_pci", "9pnet_virtio", "9p", "overlay"];

/// The whole run inside the machine, boot to power-off; software emulation makes
/// everything there some ten times slower than here.
const TIMEOUT: Duration = Duration::from_secs(40 * 60);

/// Starts Debian's dockerd in the machine on its own socket and data root
/// (its defaults otherwise: the cgroupfs driver, docker0, iptables).
const DOCKERD_IN_GUEST: &str = "mkdir -p /tmp/dockerd && \
dockerd -H unix:///tmp/dockerd/d.sock --data-root /tmp/dockerd/data \
  --exec-root /tmp/dockerd/exec --pidfile /tmp/dockerd/pid >/tmp/dockerd/log 2>&1 &
for i in $(seq 120); do [ -S /tmp/dockerd/d.sock ] && break; sleep 1; done
";

pub fn run(args: &[String]) -> Result {
    crate::packages::ensure(PACKAGES)?;
    crate::packages::ensure(crate::packages::TEST)?;
    let dir = root().join("target/cgroup2");
    let kernel = kernel(&dir)?;
    let test_bin = api_test_binary()?;
    let xtask = std::env::current_exe().map_err(|e| format!("this xtask's path: {e}"))?;
    let out = dir.join("out");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).map_err(|e| format!("creating {}: {e}", out.display()))?;
    // `--sh SCRIPT`: a shell script instead of the tests, for looking around
    // inside (the registry and `$BERTHD` ready, its output on the console).
    // `--bench [ARGS]`: `cargo xtask bench ARGS` inside, on the release build
    // made here first (its numbers are the emulated CPU's: compare within a run).
    let (tests, script) = match args {
        [flag, script] if flag == "--sh" => (Vec::new(), script.clone()),
        [flag, rest @ ..] if flag == "--bench" => {
            crate::build_release()?;
            // The guest runs the release binaries built here, without cargo,
            // against Debian's dockerd started inside (unless told otherwise).
            let against = if rest.iter().any(|a| a == "--against") {
                String::new()
            } else {
                DOCKERD_IN_GUEST.to_string()
            };
            let script = format!(
                "{against}cd '{}' && BERTH_PREBUILT=1 '{}' bench {}{}",
                root().display(),
                xtask.display(),
                rest.join(" "),
                if against.is_empty() {
                    ""
                } else {
                    " --against unix:///tmp/dockerd/d.sock"
                }
            );
            (Vec::new(), script)
        }
        [] => (
            DEFAULT_TESTS.iter().map(|s| s.to_string()).collect(),
            String::new(),
        ),
        _ => (args.to_vec(), String::new()),
    };
    std::fs::write(out.join("script.sh"), script).map_err(|e| format!("writing the job: {e}"))?;
    let job = format!(
        "REPO='{}'\nKERNEL_MODULES='{}'\nXTASK='{}'\nTEST_BIN='{}'\nTESTS='{}'\n",
        root().display(),
        kernel.root.join("lib/modules").display(),
        xtask.display(),
        test_bin.display(),
        tests.join(" "),
    );
    std::fs::write(out.join("job.env"), job).map_err(|e| format!("writing the job: {e}"))?;
    let initrd = initramfs(&dir, &kernel)?;
    boot(&kernel, &initrd, &out)?;
    let rc = std::fs::read_to_string(out.join("rc")).map_err(|_| {
        format!(
            "the cgroup v2 machine stopped without a result (console log: {})",
            out.join("console.log").display()
        )
    })?;
    match rc.trim() {
        "0" => Ok(()),
        other => Err(format!(
            "tests in the cgroup v2 machine failed (exit {other})"
        )),
    }
}

/// The test binary of `berth-daemon`'s `api` tests, built (with berthd and the
/// shim it runs) as `cargo xtask test` builds it: for the whole workspace, whose
/// features are unified, so that after a test run nothing is built again.
fn api_test_binary() -> Result<PathBuf> {
    let mut c = cargo();
    c.args(["test", "--workspace", "--no-run", "--message-format=json"])
        .stdout(Stdio::piped());
    let out = c.output().map_err(|e| format!("running {c:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!("building the api tests failed: {}", out.status));
    }
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let berthd = msg["package_id"]
            .as_str()
            .is_some_and(|p| p.contains("berth-daemon"));
        if berthd && msg["target"]["name"] == "api" && msg["profile"]["test"] == true {
            if let Some(exe) = msg["executable"].as_str() {
                return Ok(PathBuf::from(exe));
            }
        }
    }
    Err("cargo did not name the api test binary".into())
}

/// An unpacked Debian kernel package.
pub struct Kernel {
    pub version: String,
    pub root: PathBuf,
}

impl Kernel {
    fn vmlinuz(&self) -> PathBuf {
        self.root.join(format!("boot/vmlinuz-{}", self.version))
    }

    fn modules(&self) -> PathBuf {
        self.root.join("lib/modules").join(&self.version)
    }
}

/// The kernel `linux-image-amd64` points at, downloaded and unpacked once into
/// `dir`, with the module index `modprobe` needs (Debian makes it at install).
fn kernel(dir: &Path) -> Result<Kernel> {
    let deps = Command::new("apt-cache")
        .args(["depends", "linux-image-amd64"])
        .output()
        .map_err(|e| format!("apt-cache: {e}"))?;
    let text = String::from_utf8_lossy(&deps.stdout);
    let pkg = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Depends: "))
        .filter(|p| p.starts_with("linux-image-"))
        .ok_or_else(|| format!("apt-cache depends linux-image-amd64 named no kernel: {text}"))?
        .to_string();
    let version = pkg.trim_start_matches("linux-image-").to_string();
    let root = dir.join(&pkg);
    let k = Kernel { version, root };
    if k.modules().join("modules.dep").exists() && k.vmlinuz().exists() {
        return Ok(k);
    }
    let dl = dir.join("download");
    let _ = std::fs::remove_dir_all(&dl);
    std::fs::create_dir_all(&dl).map_err(|e| format!("creating {}: {e}", dl.display()))?;
    let mut get = Command::new("apt-get");
    get.args(["download", &pkg]).current_dir(&dl);
    status(get)?;
    let deb = std::fs::read_dir(&dl)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or("apt-get download left no .deb")?;
    let tmp = dir.join(format!("{pkg}.partial"));
    let _ = std::fs::remove_dir_all(&tmp);
    let mut x = Command::new("dpkg-deb");
    x.arg("-x").arg(&deb).arg(&tmp);
    status(x)?;
    let mut depmod = Command::new("depmod");
    depmod.arg("-b").arg(&tmp).arg(&k.version);
    status(depmod)?;
    let _ = std::fs::remove_dir_all(&k.root);
    std::fs::rename(&tmp, &k.root).map_err(|e| format!("placing the kernel: {e}"))?;
    let _ = std::fs::remove_dir_all(&dl);
    Ok(k)
}

/// Stage 1's initramfs: busybox, the modules that reach the root (with their
/// dependencies, in load order), and `xtask/cgroup2/init`.
fn initramfs(dir: &Path, k: &Kernel) -> Result<PathBuf> {
    let tree = dir.join("initramfs");
    let _ = std::fs::remove_dir_all(&tree);
    for d in [
        "bin", "dev", "proc", "sys", "mods", "lower", "upper", "newroot",
    ] {
        std::fs::create_dir_all(tree.join(d)).map_err(|e| e.to_string())?;
    }
    let copy = |from: &Path, to: &Path| {
        std::fs::copy(from, to)
            .map(|_| ())
            .map_err(|e| format!("copying {}: {e}", from.display()))
    };
    copy(Path::new("/bin/busybox"), &tree.join("bin/busybox"))?;
    copy(&root().join("xtask/cgroup2/init"), &tree.join("init"))?;
    let mut order: Vec<String> = Vec::new();
    for m in STAGE1_MODULES {
        let o = Command::new("modprobe")
            .arg("-d")
            .arg(&k.root)
            .args(["-S", &k.version, "--show-depends", m])
            .output()
            .map_err(|e| format!("modprobe: {e}"))?;
        if !o.status.success() {
            return Err(format!(
                "modprobe --show-depends {m}: {}",
                String::from_utf8_lossy(&o.stderr)
            ));
        }
        for line in String::from_utf8_lossy(&o.stdout).lines() {
            let Some(path) = line.strip_prefix("insmod ").map(str::trim) else {
                continue; // built in
            };
            let path = Path::new(path);
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().trim_end_matches(".ko").to_string())
                .unwrap_or_default();
            if !order.contains(&name) {
                copy(path, &tree.join("mods").join(format!("{name}.ko")))?;
                order.push(name);
            }
        }
    }
    std::fs::write(tree.join("modules"), order.join("\n")).map_err(|e| e.to_string())?;
    let img = dir.join("initrd.cpio");
    let file =
        std::fs::File::create(&img).map_err(|e| format!("creating {}: {e}", img.display()))?;
    let mut find = Command::new("find")
        .arg(".")
        .current_dir(&tree)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("find: {e}"))?;
    let list = find.stdout.take().ok_or("find's output")?;
    let mut cpio = Command::new("cpio");
    cpio.args(["-o", "-H", "newc", "--quiet"])
        .current_dir(&tree)
        .stdin(list)
        .stdout(file);
    status(cpio)?;
    let _ = find.wait();
    Ok(img)
}

/// Boots the machine and waits for it to power off, echoing its console (and
/// keeping it in `out/console.log`).
fn boot(k: &Kernel, initrd: &Path, out: &Path) -> Result {
    let stage2 = root().join("xtask/cgroup2/stage2");
    let append = format!(
        "console=ttyS0 panic=-1 quiet systemd.show_status=0 berth.out={} berth.stage2={}",
        out.display(),
        stage2.display()
    );
    let mut c = Command::new("qemu-system-x86_64");
    c.args([
        "-machine",
        "q35",
        "-accel",
        "tcg,thread=multi",
        "-cpu",
        "max",
    ])
    .args([
        "-smp",
        "2",
        "-m",
        "6144",
        "-nographic",
        "-no-reboot",
        "-nic",
        "none",
    ])
    .arg("-kernel")
    .arg(k.vmlinuz())
    .arg("-initrd")
    .arg(initrd)
    .args(["-append", &append])
    .args([
        "-virtfs",
        "local,path=/,mount_tag=hostroot,security_model=passthrough,readonly=on,multidevs=remap",
    ])
    .arg("-virtfs")
    .arg(format!(
        "local,path={},mount_tag=out,security_model=passthrough",
        out.display()
    ))
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    eprintln!("booting the cgroup v2 machine ({})", k.version);
    let mut child = c.spawn().map_err(|e| format!("starting qemu: {e}"))?;
    let pid = child.id();
    // The watchdog: a machine that hangs is stopped (by its PID) at the deadline.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watch = {
        let done = done.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            while start.elapsed() < TIMEOUT {
                if done.load(std::sync::atomic::Ordering::Relaxed) {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            true
        })
    };
    let mut log = std::fs::File::create(out.join("console.log")).map_err(|e| e.to_string())?;
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).split(b'\n').map_while(|l| l.ok()) {
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches('\r');
            println!("[cgroup2] {text}");
            let _ = writeln!(log, "{text}");
        }
    }
    let s = child.wait().map_err(|e| format!("waiting for qemu: {e}"))?;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    if watch.join().unwrap_or(false) {
        return Err(format!(
            "the cgroup v2 machine did not finish in {TIMEOUT:?}"
        ));
    }
    if s.success() {
        Ok(())
    } else {
        Err(format!("qemu exited with {s}"))
    }
}
