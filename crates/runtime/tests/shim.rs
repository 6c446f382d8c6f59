//! The shim against the real kernel: namespaces, capabilities, logs, exit codes and
//! clean-up. Needs root, as the daemon does.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use berth_runtime::exit::ExitRecord;
use berth_runtime::spec::{build, host_capabilities, RunConfig};

struct Ran {
    _dir: tempfile::TempDir,
    started: serde_json::Value,
    exit: ExitRecord,
    stdout: String,
    stderr: String,
    state_root: PathBuf,
    id: String,
}

fn rootfs(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    for d in ["bin", "etc", "proc", "sys", "dev", "tmp", "root"] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox"))
        .expect("busybox (apt-get install busybox-static)");
    for applet in ["sh", "echo", "cat", "ip", "id", "hostname", "ls", "sleep"] {
        std::fs::hard_link(root.join("bin/busybox"), root.join("bin").join(applet)).expect("link");
    }
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").expect("passwd");
    root
}

/// The runtimes every test runs on: libcontainer (`None`) and runc.
fn runtimes() -> [Option<PathBuf>; 2] {
    let runc = ["/usr/sbin/runc", "/usr/bin/runc"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("runc (apt-get install runc)");
    [None, Some(runc)]
}

fn run(rt: &Option<PathBuf>, args: &[&str], tweak: impl FnOnce(&mut RunConfig)) -> Ran {
    run_then(rt, args, tweak, |_| {})
}

/// Runs a container; `after_start` gets its init PID while it runs.
fn run_then(
    rt: &Option<PathBuf>,
    args: &[&str],
    tweak: impl FnOnce(&mut RunConfig),
    after_start: impl FnOnce(i32),
) -> Ran {
    let dir = tempfile::Builder::new()
        .prefix("berth-shim-")
        .tempdir()
        .expect("tmp");
    let id = format!(
        "t{}",
        dir.path()
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("x")
            .replace(['.', '-'], "")
            .to_lowercase()
    );
    let bundle = dir.path().join("bundle");
    std::fs::create_dir_all(&bundle).expect("bundle");
    let mut cfg = RunConfig {
        rootfs: rootfs(&bundle),
        args: args.iter().map(|s| s.to_string()).collect(),
        env: vec!["PATH=/bin".into()],
        hostname: "shimtest".into(),
        host_caps: host_capabilities(),
        nofile: (1024, 1024),
        cgroups_path: Some(format!("/berth-test/{id}")),
        ..Default::default()
    };
    tweak(&mut cfg);
    let spec = build(&cfg).expect("spec");
    std::fs::write(
        bundle.join("config.json"),
        serde_json::to_vec(&spec).expect("json"),
    )
    .expect("config");
    let state_root = dir.path().join("state");
    let log = dir.path().join("log.json");
    let exit = dir.path().join("exit.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth-shim"))
        .args(["--id", &id, "--bundle"])
        .arg(&bundle)
        .arg("--state-root")
        .arg(&state_root)
        .arg("--log")
        .arg(&log)
        .arg("--exit")
        .arg(&exit)
        .args(rt.iter().flat_map(|p| [PathBuf::from("--runc"), p.clone()]))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn shim");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("first line");
    let started: serde_json::Value =
        serde_json::from_str(&first).unwrap_or(serde_json::Value::Null);
    if let Some(pid) = started["pid"].as_i64() {
        after_start(pid as i32);
    }
    child.wait().expect("shim exits");
    let exit = ExitRecord::read(&exit).expect("exit record");
    let (mut stdout, mut stderr) = (String::new(), String::new());
    for line in std::fs::read_to_string(&log).unwrap_or_default().lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("log line");
        let text = v["log"].as_str().unwrap_or("");
        if v["stream"] == "stdout" {
            stdout.push_str(text)
        } else {
            stderr.push_str(text)
        }
        assert!(v["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    }
    Ran {
        _dir: dir,
        started,
        exit,
        stdout,
        stderr,
        state_root,
        id,
    }
}

fn cgroup_gone(id: &str) {
    for ctrl in ["memory", "pids", "cpu", "unified"] {
        let p = Path::new("/sys/fs/cgroup")
            .join(ctrl)
            .join("berth-test")
            .join(id);
        assert!(!p.exists(), "cgroup {} left behind", p.display());
    }
}

impl Drop for Ran {
    fn drop(&mut self) {
        // The parent cgroup libcontainer made; removable once no test uses it.
        for ctrl in [
            "memory",
            "pids",
            "cpu",
            "cpuset",
            "blkio",
            "devices",
            "freezer",
            "net_cls",
            "perf_event",
            "hugetlb",
            "unified",
            "systemd",
            "cpuacct",
            "net_prio",
            "rdma",
            "misc",
        ] {
            let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup").join(ctrl).join("berth-test"));
        }
    }
}

#[test]
fn runs_a_command_and_logs_its_output() {
    for rt in &runtimes() {
        let r = run(rt, &["echo", "hi"], |_| {});
        assert!(r.started["pid"].as_i64().unwrap_or(0) > 0, "{}", r.started);
        assert_eq!(r.exit.exit_code, 0);
        assert_eq!(r.stdout, "hi\n");
        assert!(
            !r.state_root.join(&r.id).exists(),
            "container state left behind"
        );
        cgroup_gone(&r.id);
    }
}

#[test]
fn exit_codes_stderr_pid1_and_hostname() {
    for rt in &runtimes() {
        let r = run(
            rt,
            &["sh", "-c", "echo err >&2; echo $$; hostname; exit 3"],
            |_| {},
        );
        assert_eq!(r.exit.exit_code, 3);
        assert_eq!(r.stderr, "err\n");
        assert_eq!(r.stdout, "1\nshimtest\n");
        // Killed from outside by a signal: 128 + the signal, as Docker reports it.
        let r = run_then(
            rt,
            &["sleep", "30"],
            |_| {},
            |pid| {
                nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                )
                .expect("kill");
            },
        );
        assert_eq!(r.exit.exit_code, 137);
        cgroup_gone(&r.id);
    }
}

#[test]
fn default_capabilities_and_proc_protection() {
    for rt in &runtimes() {
        let r = run(rt, &["ip", "link", "set", "lo", "mtu", "1280"], |_| {});
        assert_ne!(
            r.exit.exit_code, 0,
            "NET_ADMIN must not be granted by default"
        );
        let r = run(rt, &["ip", "link", "set", "lo", "mtu", "1280"], |c| {
            c.cap_add = vec!["NET_ADMIN".into()]
        });
        assert_eq!(r.exit.exit_code, 0, "{}", r.stderr);
        let r = run(rt, &["ip", "link", "set", "lo", "mtu", "1280"], |c| {
            c.privileged = true
        });
        assert_eq!(r.exit.exit_code, 0, "{}", r.stderr);
        let r = run(rt, &["sh", "-c", "echo 0 > /proc/sys/kernel/panic"], |_| {});
        assert_ne!(r.exit.exit_code, 0, "/proc/sys must be read-only");
    }
}

#[test]
fn cgroup_hierarchies_are_read_only() {
    for rt in &runtimes() {
        // Root in a container must not raise its own limits.
        let r = run(
            rt,
            &["sh", "-c", "for f in /sys/fs/cgroup/*/cgroup.procs; do echo 1 >> $f && echo wrote $f; done; exit 0"],
            |_| {},
        );
        assert_eq!(r.exit.exit_code, 0, "{}", r.stderr);
        assert!(!r.stdout.contains("wrote"), "{rt:?}: {}", r.stdout);
        assert!(
            r.stderr.contains("Read-only file system"),
            "{rt:?}: {}",
            r.stderr
        );
        cgroup_gone(&r.id);
    }
}

#[test]
fn missing_command_is_127() {
    for rt in &runtimes() {
        let r = run(rt, &["/bin/nonexistent"], |_| {});
        assert_eq!(r.exit.exit_code, 127, "{:?} {}", r.exit, r.started);
        assert!(r.started["error"].as_str().is_some(), "{}", r.started);
        cgroup_gone(&r.id);
    }
}
