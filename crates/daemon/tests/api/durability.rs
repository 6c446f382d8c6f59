//! The daemon killed in the middle of things loses nothing and leaks nothing;
//! thousands of lifecycles leave nothing behind.

use std::time::{Duration, Instant};

use berth_testkit::registry::{digest, push_blob, put_manifest, Registry};
use berth_testkit::TestDaemon;

use crate::daemon;
use crate::images::busybox;

pub(crate) fn layer(name: &str, data: &[u8], mode: u32) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(mode);
    h.set_mtime(0);
    b.append_data(&mut h, name, data).expect("tar");
    b.into_inner().expect("tar")
}

pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

/// An image of busybox and four layers of random data (~40 MB), so a pull takes a
/// while; pushed to a registry of the test's own.
pub(crate) fn big_image(parent: &std::path::Path) -> (Registry, String) {
    let reg = Registry::start(parent).expect("registry");
    let mut layers = vec![layer(
        "bin/busybox",
        &std::fs::read("/bin/busybox").expect("busybox"),
        0o755,
    )];
    let mut seed = 0x1234_5678_9abc_def0u64;
    for i in 0..4 {
        let mut data = vec![0u8; 10 << 20];
        for c in data.chunks_mut(8) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            c.copy_from_slice(&seed.to_le_bytes()[..c.len()]);
        }
        layers.push(layer(&format!("data/{i}"), &data, 0o644));
    }
    let diff_ids: Vec<String> = layers.iter().map(|l| digest(l)).collect();
    let mut descs = Vec::new();
    for l in &layers {
        let gz = gzip(l);
        let d = push_blob(&reg.addr, "big", &gz).expect("blob");
        descs.push(serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": gz.len()}));
    }
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/busybox", "true"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .expect("config");
    let cd = push_blob(&reg.addr, "big", &config).expect("config blob");
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": descs,
    }))
    .expect("manifest");
    put_manifest(
        &reg.addr,
        "big",
        "1",
        "application/vnd.oci.image.manifest.v1+json",
        &manifest,
    )
    .expect("manifest");
    let r = format!("{}/big:1", reg.addr);
    (reg, r)
}

/// What the daemon's namespaces, shims and mounts amount to right now.
fn leftovers(d: &TestDaemon) -> (usize, usize, Vec<String>) {
    let veths = std::process::Command::new("ip")
        .args(["-o", "link", "show", "master", &d.bridge])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().count())
        .unwrap_or(0);
    let marker = d
        .data_root
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let shims = std::fs::read_dir("/proc")
        .map(|r| {
            r.flatten()
                .filter(|e| {
                    std::fs::read(e.path().join("cmdline"))
                        .map(|c| {
                            let c = String::from_utf8_lossy(&c);
                            c.contains("berth-shim") && c.contains(&marker)
                        })
                        .unwrap_or(false)
                })
                .count()
        })
        .unwrap_or(0);
    (veths, shims, d.leaked_mounts())
}

fn assert_clean(d: &TestDaemon) {
    // The kernel destroys a gone container's namespace (and its veths) in the
    // background: give it a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    while leftovers(d).0 > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let (veths, shims, mounts) = leftovers(d);
    assert_eq!(veths, 0, "veths left");
    assert_eq!(shims, 0, "shims left");
    assert!(mounts.is_empty(), "mounts left: {mounts:?}");
    let cgroups: Vec<_> = std::fs::read_dir("/sys/fs/cgroup/pids/berth")
        .or_else(|_| std::fs::read_dir("/sys/fs/cgroup/berth"))
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    let ours: Vec<String> = std::fs::read_dir(d.data_root.join("containers"))
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    assert!(!cgroups.iter().any(|c| ours.contains(c)), "cgroups left");
}

#[test]
fn kill_9_during_a_pull_leaves_no_broken_image() {
    let mut d = daemon();
    let parent = d.data_root.parent().expect("dir").join("reg");
    let (_reg, image) = big_image(&parent);
    for delay in [60u64, 250] {
        let mut pull = d
            .docker()
            .args(["pull", "-q", &image])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("pull");
        std::thread::sleep(Duration::from_millis(delay));
        d.kill9();
        let _ = pull.wait();
        d.restart();
        // Either the whole image or none of it.
        let listed = d.cli_ok(&["images", "-q", &image]);
        if !listed.trim().is_empty() {
            d.cli_ok(&["run", "--rm", &image]);
            d.cli_ok(&["rmi", &image]);
        }
        let tmp = d.data_root.join("graph/tmp");
        assert_eq!(
            std::fs::read_dir(&tmp).map(|r| r.count()).unwrap_or(0),
            0,
            "staging left behind"
        );
    }
    d.cli_ok(&["pull", "-q", &image]);
    d.cli_ok(&["run", "--rm", &image]);
    d.cli_ok(&["rmi", &image]);
}

#[test]
fn kill_9_during_creates_and_network_creates() {
    let mut d = daemon();
    let b = busybox(&d);
    let workers: Vec<_> = (0..8)
        .map(|i| {
            let mut c = d.docker();
            c.args(["create", "--name", &format!("burst{i}"), &b, "true"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            c.spawn().expect("create")
        })
        .collect();
    let mut nets: Vec<_> = (0..3)
        .map(|i| {
            let mut c = d.docker();
            c.args(["network", "create", &format!("crashnet{i}")])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            c.spawn().expect("network create")
        })
        .collect();
    std::thread::sleep(Duration::from_millis(40));
    d.kill9();
    for mut w in workers.into_iter().chain(nets.drain(..)) {
        let _ = w.wait();
    }
    d.restart();
    // Every listed container is whole: inspectable, startable, removable.
    let ids = d.cli_ok(&["ps", "-aq"]);
    for id in ids.split_whitespace() {
        d.cli_ok(&["inspect", id]);
        d.cli_ok(&["start", "-a", id]);
        d.cli_ok(&["rm", id]);
    }
    let dirs = std::fs::read_dir(d.data_root.join("containers"))
        .map(|r| r.count())
        .unwrap_or(0);
    assert_eq!(dirs, 0, "container directories without containers");
    // Every listed network works and goes away.
    let nets = d.cli_ok(&[
        "network",
        "ls",
        "--filter",
        "type=custom",
        "--format",
        "{{.Name}}",
    ]);
    for n in nets.split_whitespace() {
        d.cli_ok(&["run", "--rm", "--network", n, &b, "true"]);
        d.cli_ok(&["network", "rm", n]);
    }
    // And the names are free again.
    d.cli_ok(&["create", "--name", "burst0", &b, "true"]);
    d.cli_ok(&["network", "create", "crashnet0"]);
    d.cli_ok(&["rm", "burst0"]);
    d.cli_ok(&["network", "rm", "crashnet0"]);
    assert_clean(&d);
}

fn fds_and_threads(pid: u32) -> (usize, usize) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|r| r.count())
        .unwrap_or(0);
    let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|r| r.count())
        .unwrap_or(0);
    (fds, threads)
}

#[test]
fn churn_leaves_nothing_behind() {
    let d = daemon();
    let b = busybox(&d);
    let pid = d.pid().expect("pid");
    // Warm up once so lazily created things (runtimes, caches) count as baseline.
    d.cli_ok(&["run", "--rm", &b, "true"]);
    std::thread::sleep(Duration::from_secs(11));
    let (fds0, threads0) = fds_and_threads(pid);
    for i in 0..200 {
        let o = d.cli(&["run", "--rm", &b, "true"]);
        assert!(o.status.success(), "run {i}: {o:?}");
    }
    // Four workers create/start/wait/rm while listings run, for 30 s.
    let sock = d.sock.clone();
    let stop = Instant::now() + Duration::from_secs(30);
    let errors = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut handles = Vec::new();
    for w in 0..4 {
        let (host, b, errors) = (d.host(), b.clone(), errors.clone());
        handles.push(std::thread::spawn(move || {
            let mut n = 0;
            while Instant::now() < stop {
                let name = format!("churn-{w}-{n}");
                n += 1;
                let run = |args: &[&str]| {
                    std::process::Command::new(berth_testkit::docker_cli())
                        .env("DOCKER_HOST", &host)
                        .args(args)
                        .output()
                        .map(|o| o.status.success())
                        .unwrap_or(false)
                };
                let ok = run(&["create", "--name", &name, &b, "true"])
                    && run(&["start", &name])
                    && run(&["wait", &name])
                    && run(&["rm", &name]);
                if !ok {
                    errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }));
    }
    let lister = {
        let errors = errors.clone();
        std::thread::spawn(move || {
            let mut n = 0u64;
            while Instant::now() < stop {
                let ok = std::os::unix::net::UnixStream::connect(&sock)
                    .and_then(|mut s| {
                        use std::io::{Read, Write};
                        s.write_all(b"GET /containers/json?all=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
                        let mut out = String::new();
                        s.read_to_string(&mut out)?;
                        Ok(out.starts_with("HTTP/1.1 200"))
                    })
                    .unwrap_or(false);
                if !ok {
                    errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                n += 1;
            }
            n
        })
    };
    for h in handles {
        h.join().expect("worker");
    }
    let listings = lister.join().expect("lister");
    assert_eq!(
        errors.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "API errors under churn"
    );
    assert!(listings > 10);
    assert_eq!(d.cli_ok(&["ps", "-aq"]).trim(), "");
    // Back to the baseline: descriptors (a few may be in flight), mounts, veths, shims.
    std::thread::sleep(Duration::from_millis(300));
    let (fds1, _) = fds_and_threads(pid);
    assert!(fds1 <= fds0 + 4, "descriptors grew from {fds0} to {fds1}");
    // Idle blocking threads of the runtime end after 10 s.
    let deadline = Instant::now() + Duration::from_secs(20);
    while fds_and_threads(pid).1 > threads0 + 1 {
        assert!(
            Instant::now() < deadline,
            "threads grew from {threads0} to {}",
            fds_and_threads(pid).1
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_clean(&d);
}

#[test]
fn a_clean_restart_keeps_everything() {
    let mut d = daemon();
    let b = busybox(&d);
    d.cli_ok(&["tag", &b, "kept:tag"]);
    d.cli_ok(&[
        "run",
        "--rm",
        "-v",
        "keepvol:/v",
        &b,
        "sh",
        "-c",
        "echo inside > /v/f",
    ]);
    d.cli_ok(&["network", "create", "--subnet", "10.253.9.0/24", "keepnet"]);
    d.cli_ok(&[
        "run",
        "--name",
        "stopped",
        "--network",
        "keepnet",
        &b,
        "echo",
        "logged",
    ]);
    d.cli_ok(&[
        "run",
        "-d",
        "--name",
        "policy",
        "--restart",
        "always",
        &b,
        "sleep",
        "1000",
    ]);
    assert!(d.stop().success());
    d.restart();
    d.cli_ok(&["image", "inspect", "kept:tag"]);
    assert_eq!(
        d.cli_ok(&["run", "--rm", "-v", "keepvol:/v", &b, "cat", "/v/f"]),
        "inside\n"
    );
    let v: serde_json::Value =
        serde_json::from_str(&d.cli_ok(&["network", "inspect", "keepnet"])).expect("json");
    assert_eq!(v[0]["IPAM"]["Config"][0]["Subnet"], "10.253.9.0/24");
    assert_eq!(d.cli_ok(&["logs", "stopped"]), "logged\n");
    d.cli_ok(&["start", "-a", "stopped"]);
    let running = d.cli_ok(&["inspect", "-f", "{{.State.Running}}", "policy"]);
    assert_eq!(running.trim(), "true");
    d.cli_ok(&["rm", "-f", "stopped", "policy"]);
    d.cli_ok(&["network", "rm", "keepnet"]);
    d.cli_ok(&["volume", "rm", "keepvol"]);
    d.cli_ok(&["rmi", "kept:tag"]);
    assert_clean(&d);
}

#[test]
fn without_live_restore_a_shutdown_stops_containers() {
    let mut d = crate::builder().arg("--live-restore=false").start();
    let b = busybox(&d);
    d.cli_ok(&["run", "-d", "--name", "plain", &b, "sleep", "1000"]);
    d.cli_ok(&[
        "run",
        "-d",
        "--name",
        "always",
        "--restart",
        "always",
        &b,
        "sleep",
        "1000",
    ]);
    // One that keeps restarting: at shutdown it is between runs or starting,
    // and no restart may begin once the daemon is going away.
    d.cli_ok(&[
        "run",
        "-d",
        "--name",
        "flapping",
        "--restart",
        "always",
        &b,
        "sleep",
        "0.1",
    ]);
    std::thread::sleep(std::time::Duration::from_millis(700));
    let pid = d
        .cli_ok(&["inspect", "-f", "{{.State.Pid}}", "plain"])
        .trim()
        .parse::<i32>()
        .expect("pid");
    assert!(d.stop().success());
    assert!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err(),
        "the container outlived the daemon"
    );
    assert_eq!(leftovers(&d).1, 0, "shims outlived the daemon");
    d.restart();
    let state = |n: &str| d.cli_ok(&["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", n]);
    assert!(state("plain").starts_with("exited"));
    assert!(
        state("always").starts_with("running"),
        "restart policy on boot"
    );
    let flapping = state("flapping");
    assert!(
        flapping.starts_with("running") || flapping.starts_with("restarting"),
        "a restarting container restarts on boot: {flapping}"
    );
    d.cli_ok(&["rm", "-f", "plain", "always", "flapping"]);
}

/// A pseudo-random number below `n`, different in every call.
fn below(n: u64) -> u64 {
    let mut b = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .expect("random");
    u64::from_le_bytes(b) % n
}

#[test]
fn sigkill_during_parallel_starts_leaves_nothing_after_rm_f() {
    let mut d = daemon();
    let b = busybox(&d);
    let host = d.host();
    for round in 0..5 {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let workers: Vec<_> = (0..10)
            .map(|_| {
                let (stop, host, b) = (stop.clone(), host.clone(), b.clone());
                std::thread::spawn(move || {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let ok = std::process::Command::new(berth_testkit::docker_cli())
                            .env("DOCKER_HOST", &host)
                            .args(["run", "-d", &b, "sleep", "600"])
                            .stdout(std::process::Stdio::null())
                            .stderr(std::process::Stdio::null())
                            .status()
                            .is_ok_and(|s| s.success());
                        if !ok {
                            break;
                        }
                    }
                })
            })
            .collect();
        // Anywhere from the first creates to a few dozen starts in.
        std::thread::sleep(Duration::from_millis(150 + below(1500)));
        d.kill9();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for w in workers {
            let _ = w.join();
        }
        d.restart();
        let ids = d.cli_ok(&["ps", "-aq", "--no-trunc"]);
        let ids: Vec<&str> = ids.split_whitespace().collect();
        // Every container is running and tracked, or not running at all.
        for id in &ids {
            let v: serde_json::Value =
                serde_json::from_str(&d.cli_ok(&["inspect", id])).expect("inspect");
            let (running, pid) = (
                v[0]["State"]["Running"].as_bool().unwrap_or(false),
                v[0]["State"]["Pid"].as_i64().unwrap_or(0),
            );
            let cgroup = std::path::Path::new("/sys/fs/cgroup/pids/berth").join(id);
            if running {
                assert!(pid > 0, "round {round}: {id} running without a pid");
            } else {
                assert!(
                    !cgroup.exists(),
                    "round {round}: {id} is {} but its cgroup is there",
                    v[0]["State"]["Status"]
                );
            }
        }
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(&ids);
            d.cli_ok(&args);
        }
        assert_clean(&d);
        for id in &ids {
            for root in ["/sys/fs/cgroup/pids/berth", "/sys/fs/cgroup/berth"] {
                let cg = std::path::Path::new(root).join(id);
                assert!(!cg.exists(), "round {round}: cgroup {} left", cg.display());
            }
        }
    }
}
