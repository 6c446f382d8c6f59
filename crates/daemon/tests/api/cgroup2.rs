//! The unified hierarchy: what `cargo xtask cgroup2` proves inside its v2
//! machine. Tests that read v2 files skip themselves on a hybrid host, unless
//! `BERTH_CGROUP2` says they are running where v2 must be; the device tests hold
//! on both (v1's devices controller, v2's eBPF program).

use crate::images::busybox;
use crate::{cgroup_driver, cgroup_of, daemon};

/// Whether this host runs cgroup v2 only; panics where it must and does not.
fn v2() -> bool {
    let v2 = berth_runtime::cgroups::is_v2();
    if !v2 && std::env::var_os("BERTH_CGROUP2").is_some() {
        panic!("BERTH_CGROUP2 is set but /sys/fs/cgroup is not the unified hierarchy");
    }
    if !v2 {
        eprintln!("skipped: not a cgroup v2 host (cargo xtask cgroup2 runs this)");
    }
    v2
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .trim()
        .to_string()
}

fn id_of(d: &berth_testkit::TestDaemon, name: &str) -> String {
    d.cli_ok(&["inspect", "-f", "{{.Id}}", name])
        .trim()
        .to_string()
}

/// The container's cgroup directory: `/berth/<id>` with the cgroupfs driver,
/// `/system.slice/berth-<id>.scope` with systemd's.
fn dir_of(d: &berth_testkit::TestDaemon, name: &str) -> String {
    let path = cgroup_of(d, name);
    let id = id_of(d, name);
    let want = match cgroup_driver(d).as_str() {
        "systemd" => format!("/system.slice/berth-{id}.scope"),
        _ => format!("/berth/{id}"),
    };
    assert_eq!(path, want);
    format!("/sys/fs/cgroup{path}")
}

/// dockerd's choice: the systemd driver on a v2 host booted with systemd.
#[test]
fn the_driver_follows_the_host_and_is_reported() {
    if !v2() {
        return;
    }
    let d = daemon();
    let info = d.cli_ok(&["info", "-f", "{{.CgroupDriver}} {{.CgroupVersion}}"]);
    let forced = std::env::var("BERTH_TEST_EXEC_OPT").unwrap_or_default();
    let want = match forced.strip_prefix("native.cgroupdriver=") {
        Some(d) => d.to_string(),
        None if std::path::Path::new("/run/systemd/system").is_dir() => "systemd".into(),
        None => "cgroupfs".into(),
    };
    assert_eq!(info.trim(), format!("{want} 2"));
    let b = busybox(&d);
    d.cli_ok(&["run", "-d", "--name", "placed", &b, "sleep", "300"]);
    dir_of(&d, "placed");
    if want == "systemd" {
        let id = id_of(&d, "placed");
        let unit = format!("berth-{id}.scope");
        let o = std::process::Command::new("systemctl")
            .args(["show", "-p", "ActiveState,Slice", &unit])
            .output()
            .expect("systemctl");
        let shown = String::from_utf8_lossy(&o.stdout);
        let mut lines: Vec<&str> = shown.lines().collect();
        lines.sort_unstable();
        assert_eq!(lines, ["ActiveState=active", "Slice=system.slice"]);
    }
    d.cli_ok(&["rm", "-f", "placed"]);
}

#[test]
fn limits_are_written_to_the_unified_files() {
    if !v2() {
        return;
    }
    let d = daemon();
    let b = busybox(&d);
    d.cli_ok(&[
        "run",
        "-d",
        "--name",
        "lim2",
        "-m",
        "32m",
        "--memory-reservation",
        "16m",
        "--memory-swap",
        "64m",
        "--cpus",
        "0.5",
        "--cpu-shares",
        "512",
        "--pids-limit",
        "20",
        "--blkio-weight",
        "300",
        "--cpuset-cpus",
        "0",
        &b,
        "sleep",
        "300",
    ]);
    let dir = dir_of(&d, "lim2");
    assert_eq!(read(&format!("{dir}/memory.max")), "33554432");
    assert_eq!(read(&format!("{dir}/memory.low")), "16777216");
    // v1's memory+swap total becomes v2's swap alone.
    assert_eq!(read(&format!("{dir}/memory.swap.max")), "33554432");
    assert_eq!(read(&format!("{dir}/cpu.max")), "50000 100000");
    assert_eq!(
        read(&format!("{dir}/cpu.weight")),
        berth_runtime::cgroups::cpu_weight(512).to_string()
    );
    assert_eq!(read(&format!("{dir}/pids.max")), "20");
    assert_eq!(read(&format!("{dir}/cpuset.cpus")), "0");
    let io = read(&format!("{dir}/io.weight"));
    assert_eq!(
        io,
        format!("default {}", berth_runtime::cgroups::io_weight(300)),
        "{io}"
    );
    // What the container sees of itself: its own cgroup as the root (a private
    // cgroup namespace, dockerd's default on v2), with its limit.
    assert_eq!(
        d.cli_ok(&[
            "exec",
            "lim2",
            "cat",
            "/proc/self/cgroup",
            "/sys/fs/cgroup/memory.max"
        ]),
        "0::/\n33554432\n"
    );
    // docker update rewrites the same files, converting as at create.
    d.cli_ok(&[
        "update",
        "-m",
        "48m",
        "--memory-swap",
        "96m",
        "--cpu-shares",
        "2048",
        "--blkio-weight",
        "500",
        "--pids-limit",
        "25",
        "--cpus",
        "0.25",
        "lim2",
    ]);
    assert_eq!(read(&format!("{dir}/memory.max")), "50331648");
    assert_eq!(read(&format!("{dir}/memory.swap.max")), "50331648");
    assert_eq!(
        read(&format!("{dir}/cpu.weight")),
        berth_runtime::cgroups::cpu_weight(2048).to_string()
    );
    assert_eq!(
        read(&format!("{dir}/io.weight")),
        format!("default {}", berth_runtime::cgroups::io_weight(500))
    );
    assert_eq!(read(&format!("{dir}/pids.max")), "25");
    assert_eq!(read(&format!("{dir}/cpu.max")), "25000 100000");
    if cgroup_driver(&d) == "systemd" {
        // The scope's own properties changed too: systemd re-applying them (as
        // every daemon-reload does) keeps the update.
        let o = std::process::Command::new("systemctl")
            .arg("daemon-reload")
            .status()
            .expect("systemctl");
        assert!(o.success());
        assert_eq!(read(&format!("{dir}/memory.max")), "50331648");
        assert_eq!(read(&format!("{dir}/pids.max")), "25");
        assert_eq!(read(&format!("{dir}/cpu.max")), "25000 100000");
        assert_eq!(read(&format!("{dir}/cpuset.cpus")), "0");
    }
    d.cli_ok(&["rm", "-f", "lim2"]);
    assert!(!std::path::Path::new(&dir).exists(), "cgroup left behind");
}

#[test]
fn cgroupns_is_private_by_default_and_host_on_request() {
    if !v2() {
        return;
    }
    let d = daemon();
    let b = busybox(&d);
    d.cli_ok(&[
        "run",
        "-d",
        "--name",
        "nsh",
        "--cgroupns",
        "host",
        &b,
        "sleep",
        "300",
    ]);
    let path = cgroup_of(&d, "nsh");
    // exec joins the container's cgroup, seen from the host's namespace.
    assert_eq!(
        d.cli_ok(&["exec", "nsh", "cat", "/proc/self/cgroup"]),
        format!("0::{path}\n")
    );
    assert_eq!(
        d.cli_ok(&["inspect", "-f", "{{.HostConfig.CgroupnsMode}}", "nsh"])
            .trim(),
        "host"
    );
    let out = d.cli_ok(&["run", "--rm", &b, "cat", "/proc/self/cgroup"]);
    assert_eq!(out, "0::/\n");
    d.cli_ok(&["rm", "-f", "nsh"]);
}

#[test]
fn pause_freezes_the_cgroup() {
    if !v2() {
        return;
    }
    let d = daemon();
    let b = busybox(&d);
    d.cli_ok(&["run", "-d", "--name", "frz", &b, "sleep", "300"]);
    let dir = dir_of(&d, "frz");
    d.cli_ok(&["pause", "frz"]);
    assert_eq!(read(&format!("{dir}/cgroup.freeze")), "1");
    assert!(read(&format!("{dir}/cgroup.events")).contains("frozen 1"));
    assert_eq!(
        d.cli_ok(&["inspect", "-f", "{{.State.Status}}", "frz"])
            .trim(),
        "paused"
    );
    d.cli_ok(&["unpause", "frz"]);
    assert!(read(&format!("{dir}/cgroup.events")).contains("frozen 0"));
    assert_eq!(d.cli_ok(&["exec", "frz", "echo", "thawed"]), "thawed\n");
    d.cli_ok(&["rm", "-f", "frz"]);
}

#[test]
fn stats_come_from_the_unified_files() {
    if !v2() {
        return;
    }
    let d = daemon();
    let b = busybox(&d);
    d.cli_ok(&[
        "run",
        "-d",
        "--name",
        "busy2",
        "-m",
        "64m",
        &b,
        "sh",
        "-c",
        "x=$(head -c 4000000 /dev/zero | tr '\\0' a); while true; do :; done",
    ]);
    std::thread::sleep(std::time::Duration::from_secs(2));
    let out = d.cli_ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.CPUPerc}} {{.MemUsage}} {{.PIDs}}",
        "busy2",
    ]);
    let mut f = out.split_whitespace();
    let cpu: f64 = f
        .next()
        .and_then(|c| c.trim_end_matches('%').parse().ok())
        .unwrap_or(0.0);
    assert!(cpu > 1.0, "a busy loop shows CPU: {out}");
    let mem = f.next().unwrap_or("");
    assert!(!mem.starts_with("0B"), "memory in use: {out}");
    assert!(out.contains("/ 64MiB"), "{out}");
    d.cli_ok(&["rm", "-f", "busy2"]);
}

/// Docker's default device rules, enforced: mknod is allowed (CAP_MKNOD and the
/// `m` rules) but a node outside the allow list cannot be opened. A block node
/// with no driver behind it opens to ENXIO where the rules allow it and EPERM
/// where they do not, so no real disk is touched.
#[test]
fn device_rules_hold_for_nodes_the_container_makes() {
    let d = daemon();
    let b = busybox(&d);
    let probe = "mknod /tmp/sdz b 8 240 && mknod /tmp/nul c 1 3 && \
                 (echo x > /tmp/nul && echo null-ok); \
                 cat /tmp/sdz 2>&1 >/dev/null | sed 's/.*: //'; true";
    let out = d.cli_ok(&["run", "--rm", &b, "sh", "-c", probe]);
    assert_eq!(out, "null-ok\nOperation not permitted\n", "default rules");
    let out = d.cli_ok(&[
        "run",
        "--rm",
        "--device-cgroup-rule",
        "b 8:240 r",
        &b,
        "sh",
        "-c",
        probe,
    ]);
    assert_eq!(out, "null-ok\nNo such device or address\n", "a rule for it");
    let out = d.cli_ok(&["run", "--rm", "--privileged", &b, "sh", "-c", probe]);
    assert_eq!(out, "null-ok\nNo such device or address\n", "--privileged");
    // The rule grants what it names and nothing more.
    let out = d.cli_ok(&[
        "run",
        "--rm",
        "--device-cgroup-rule",
        "b 8:241 r",
        &b,
        "sh",
        "-c",
        probe,
    ]);
    assert_eq!(out, "null-ok\nOperation not permitted\n");
}
