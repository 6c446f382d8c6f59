//! Running containers beyond start and stop: restart policies, pause, top, stats,
//! diff, limits and update, OOM, health checks, commit, prune.

use std::time::{Duration, Instant};

use futures_util::StreamExt;

use crate::images::busybox;
use crate::{daemon, status};

fn inspect(d: &berth_testkit::TestDaemon, name: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&d.cli_ok(&["inspect", name])).expect("json");
    v[0].clone()
}

/// Polls `f` (event-driven waiting is not observable from outside) until it holds.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn events(d: &berth_testkit::TestDaemon, name: &str) -> String {
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() + 0.5)
        .unwrap_or(0.0);
    d.cli_ok(&[
        "events",
        "--since",
        "0",
        "--until",
        &format!("{until:.3}"),
        "--filter",
        &format!("container={name}"),
        "--format",
        "{{.Action}}",
    ])
}

#[test]
fn restart_policies() {
    let mut d = daemon();
    let b = busybox(&d);
    // on-failure:2 restarts a failing container twice, then leaves it exited.
    d.cli_ok(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        &b,
        "sh",
        "-c",
        "exit 3",
    ]);
    eventually("two restarts", || {
        let v = inspect(&d, "flaky");
        v["RestartCount"] == 2 && v["State"]["Status"] == "exited"
    });
    assert_eq!(inspect(&d, "flaky")["State"]["ExitCode"], 3);
    // A clean exit is not a failure.
    d.cli_ok(&[
        "run",
        "-d",
        "--name",
        "fine",
        "--restart",
        "on-failure",
        &b,
        "true",
    ]);
    eventually("exit", || {
        inspect(&d, "fine")["State"]["Status"] == "exited"
    });
    assert_eq!(inspect(&d, "fine")["RestartCount"], 0);
    // always: back after it ends; a stop ends that.
    d.cli_ok(&[
        "run",
        "-d",
        "--name",
        "again",
        "--restart",
        "always",
        &b,
        "sh",
        "-c",
        "sleep 0.2",
    ]);
    eventually("a restart", || {
        inspect(&d, "again")["RestartCount"].as_u64().unwrap_or(0) >= 1
    });
    d.cli_ok(&["stop", "-t", "1", "again"]);
    let count = inspect(&d, "again")["RestartCount"].clone();
    std::thread::sleep(Duration::from_millis(800));
    let v = inspect(&d, "again");
    assert_eq!(v["RestartCount"], count, "stopped means stopped");
    assert_ne!(v["State"]["Status"], "running");
    // On daemon start: always (even stopped) and unless-stopped (not stopped) come back.
    d.cli_ok(&[
        "run",
        "-d",
        "--name",
        "us",
        "--restart",
        "unless-stopped",
        &b,
        "sleep",
        "1000",
    ]);
    d.cli_ok(&[
        "run",
        "-d",
        "--name",
        "us-stopped",
        "--restart",
        "unless-stopped",
        &b,
        "sleep",
        "1000",
    ]);
    d.cli_ok(&["stop", "-t", "0", "us-stopped"]);
    d.cli_ok(&["run", "-d", "--name", "plain", &b, "sleep", "1000"]);
    // The daemon dies, and one container with it while it is away.
    let pid = inspect(&d, "us")["State"]["Pid"].as_i64().unwrap_or(0);
    d.kill9();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    std::thread::sleep(Duration::from_millis(300));
    d.restart();
    eventually("unless-stopped back", || {
        inspect(&d, "us")["State"]["Running"] == true
    });
    eventually("always back", || {
        inspect(&d, "again")["State"]["Running"] == true
    });
    assert_eq!(inspect(&d, "us-stopped")["State"]["Running"], false);
    assert_eq!(
        inspect(&d, "plain")["State"]["Running"],
        true,
        "live restore kept it"
    );
    // Bad policies.
    let create = |body: String| {
        d.raw(format!("POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes())
    };
    let r = create(format!(
        r#"{{"Image":"{b}","HostConfig":{{"RestartPolicy":{{"Name":"sometimes"}}}}}}"#
    ));
    assert_eq!(status(&r), 400, "{r}");
    let r = create(format!(
        r#"{{"Image":"{b}","HostConfig":{{"RestartPolicy":{{"Name":"always","MaximumRetryCount":3}}}}}}"#
    ));
    assert_eq!(status(&r), 400, "{r}");
    let r = create(format!(
        r#"{{"Image":"{b}","HostConfig":{{"AutoRemove":true,"RestartPolicy":{{"Name":"always"}}}}}}"#
    ));
    assert_eq!(status(&r), 400, "{r}");
    d.cli_ok(&[
        "rm",
        "-f",
        "flaky",
        "fine",
        "again",
        "us",
        "us-stopped",
        "plain",
    ]);
}

#[test]
fn pause_top_diff_and_prune() {
    let d = daemon();
    let b = busybox(&d);
    d.cli_ok(&[
        "run",
        "-d",
        "--name",
        "pz",
        "--label",
        "keep=no",
        &b,
        "sh",
        "-c",
        "echo hi > /new; rm /etc/group; sleep 1000",
    ]);
    std::thread::sleep(Duration::from_millis(300));
    d.cli_ok(&["pause", "pz"]);
    let v = inspect(&d, "pz");
    assert_eq!(v["State"]["Status"], "paused");
    assert_eq!(v["State"]["Paused"], true);
    let ps = d.cli_ok(&["ps", "--format", "{{.Status}}"]);
    assert!(ps.contains("(Paused)"), "{ps}");
    let o = d.cli(&["exec", "pz", "true"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("is paused"),
        "{o:?}"
    );
    let o = d.cli(&["pause", "pz"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("already paused"),
        "{o:?}"
    );
    d.cli_ok(&["unpause", "pz"]);
    assert_eq!(inspect(&d, "pz")["State"]["Status"], "running");
    let ev = events(&d, "pz");
    assert!(ev.contains("pause\n") && ev.contains("unpause\n"), "{ev}");
    // top: the container's processes, through the host's ps.
    let top = d.cli_ok(&["top", "pz"]);
    assert!(top.contains("sleep 1000"), "{top}");
    assert!(top.lines().next().unwrap_or("").contains("PID"), "{top}");
    let top = d.cli_ok(&["top", "pz", "-o", "pid,comm"]);
    assert!(top.contains("sleep"), "{top}");
    // diff: added, deleted, changed; not the daemon's own files.
    let diff = d.cli_ok(&["diff", "pz"]);
    assert!(diff.contains("A /new"), "{diff}");
    assert!(diff.contains("D /etc/group"), "{diff}");
    assert!(diff.contains("C /etc"), "{diff}");
    assert!(!diff.contains("hostname"), "{diff}");
    // A paused container stops.
    d.cli_ok(&["pause", "pz"]);
    d.cli_ok(&["stop", "-t", "1", "pz"]);
    assert_eq!(inspect(&d, "pz")["State"]["Running"], false);
    // prune: stopped ones, by label.
    d.cli_ok(&["run", "--name", "other", "--label", "keep=yes", &b, "true"]);
    d.cli_ok(&["run", "-d", "--name", "alive", &b, "sleep", "1000"]);
    let pz = inspect_id(&d, "pz");
    let out = d.cli_ok(&["container", "prune", "-f", "--filter", "label=keep=no"]);
    assert!(out.contains(&pz), "{out}");
    assert!(d.cli(&["inspect", "pz"]).status.code() != Some(0), "pruned");
    assert_eq!(
        inspect(&d, "other")["State"]["Status"],
        "exited",
        "the label kept it"
    );
    d.cli_ok(&["container", "prune", "-f"]);
    assert!(
        d.cli(&["inspect", "other"]).status.code() != Some(0),
        "pruned"
    );
    assert_eq!(
        inspect(&d, "alive")["State"]["Running"],
        true,
        "running ones stay"
    );
    d.cli_ok(&["rm", "-f", "alive"]);
}

fn inspect_id(d: &berth_testkit::TestDaemon, name: &str) -> String {
    inspect(d, name)["Id"].as_str().unwrap_or("").to_string()
}

#[test]
fn limits_update_and_oom() {
    let d = daemon();
    let b = busybox(&d);
    d.cli_ok(&[
        "run",
        "-d",
        "--name",
        "lim",
        "-m",
        "64m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "30",
        "--ulimit",
        "nofile=512:1024",
        "--shm-size",
        "8m",
        "--sysctl",
        "net.ipv4.ip_unprivileged_port_start=99",
        &b,
        "sleep",
        "1000",
    ]);
    let hc = &inspect(&d, "lim")["HostConfig"];
    assert_eq!(hc["Memory"], 64 << 20);
    assert_eq!(hc["NanoCpus"], 500_000_000);
    assert_eq!(hc["PidsLimit"], 30);
    let cg = berth_runtime::cgroups::Cgroup::new(&crate::cgroup_of(&d, "lim"));
    let u = cg.usage();
    assert_eq!(u.memory_limit, Some(64 << 20));
    assert_eq!(u.pids_limit, Some(30));
    let out = d.cli_ok(&["exec", "lim", "sh", "-c", "ulimit -n; ulimit -Hn; df -k /dev/shm | tail -1; cat /proc/sys/net/ipv4/ip_unprivileged_port_start"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "512", "{out}");
    assert_eq!(lines[1], "1024", "{out}");
    assert!(lines[2].contains("8192"), "{out}");
    assert_eq!(lines[3], "99", "{out}");
    // update, live.
    d.cli_ok(&[
        "update",
        "--memory",
        "96m",
        "--memory-swap",
        "192m",
        "--pids-limit",
        "40",
        "lim",
    ]);
    let u = cg.usage();
    assert_eq!(u.memory_limit, Some(96 << 20));
    assert_eq!(u.pids_limit, Some(40));
    assert_eq!(inspect(&d, "lim")["HostConfig"]["Memory"], 96 << 20);
    // stats: usage and limit, CPU numbers the CLI turns into percentages.
    let stats = d.cli_ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.MemUsage}} {{.PIDs}}",
        "lim",
    ]);
    assert!(
        stats.starts_with("lim ") && stats.contains("96MiB"),
        "{stats}"
    );
    d.cli_ok(&["rm", "-f", "lim"]);
    assert!(!cg.exists(), "cgroup left behind");
    // OOM: recorded, 137, an oom event.
    let o = d.cli(&[
        "run",
        "--name",
        "oom",
        "-m",
        "8m",
        &b,
        "sh",
        "-c",
        "x=$(head -c 60000000 /dev/zero | tr '\\0' a); echo ${#x}",
    ]);
    assert_eq!(o.status.code(), Some(137), "{o:?}");
    assert_eq!(inspect(&d, "oom")["State"]["OOMKilled"], true);
    assert!(events(&d, "oom").contains("oom\n"));
    d.cli_ok(&["rm", "oom"]);
    // Bad values: dockerd's messages.
    let o = d.cli(&["run", "--rm", "-m", "1m", &b, "true"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Minimum memory limit allowed is 6MB"),
        "{o:?}"
    );
    let o = d.cli(&["run", "--rm", "--sysctl", "kernel.panic=1", &b, "true"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not allowed"),
        "{o:?}"
    );
    let o = d.cli(&["run", "--rm", "--cpus", "64", &b, "true"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Range of CPUs"),
        "{o:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_through_bollard() {
    let d = daemon();
    let b = busybox(&d);
    d.cli_ok(&[
        "run",
        "-d",
        "--name",
        "st",
        "-m",
        "32m",
        &b,
        "sh",
        "-c",
        "while true; do :; done",
    ]);
    let c = d.bollard().await;
    let mut s = c.stats(
        "st",
        Some(bollard::query_parameters::StatsOptions {
            stream: false,
            one_shot: false,
        }),
    );
    let one = s.next().await.expect("a sample").expect("stats");
    let cpu = one.cpu_stats.expect("cpu_stats");
    let pre = one.precpu_stats.expect("precpu_stats");
    let total = cpu
        .cpu_usage
        .as_ref()
        .and_then(|u| u.total_usage)
        .unwrap_or(0);
    let pre_total = pre
        .cpu_usage
        .as_ref()
        .and_then(|u| u.total_usage)
        .unwrap_or(0);
    assert!(
        total > pre_total,
        "a busy loop uses CPU between the samples"
    );
    assert!(cpu.system_cpu_usage.unwrap_or(0) > pre.system_cpu_usage.unwrap_or(0));
    assert!(cpu.online_cpus.unwrap_or(0) >= 1);
    let mem = one.memory_stats.expect("memory_stats");
    assert_eq!(mem.limit, Some(32 << 20));
    assert!(mem.usage.unwrap_or(0) > 0);
    assert!(one
        .networks
        .map(|n| n.contains_key("eth0"))
        .unwrap_or(false));
    // Streaming: samples keep coming.
    let mut s = c.stats(
        "st",
        Some(bollard::query_parameters::StatsOptions {
            stream: true,
            one_shot: false,
        }),
    );
    for _ in 0..2 {
        s.next().await.expect("a sample").expect("stats");
    }
    drop(s);
    d.cli_ok(&["rm", "-f", "st"]);
    let r = d.get("/containers/nope/stats?stream=false");
    assert_eq!(status(&r), 404);
}

#[test]
fn health_checks() {
    let d = daemon();
    let b = busybox(&d);
    d.cli_ok(&[
        "run",
        "-d",
        "--name",
        "hc",
        "--health-cmd",
        "test -f /ready",
        "--health-interval",
        "200ms",
        "--health-retries",
        "2",
        &b,
        "sleep",
        "1000",
    ]);
    assert_eq!(inspect(&d, "hc")["State"]["Health"]["Status"], "starting");
    eventually("unhealthy", || {
        inspect(&d, "hc")["State"]["Health"]["Status"] == "unhealthy"
    });
    let ps = d.cli_ok(&["ps", "--format", "{{.Status}}"]);
    assert!(ps.contains("(unhealthy)"), "{ps}");
    d.cli_ok(&["exec", "hc", "touch", "/ready"]);
    eventually("healthy", || {
        inspect(&d, "hc")["State"]["Health"]["Status"] == "healthy"
    });
    let h = &inspect(&d, "hc")["State"]["Health"];
    assert_eq!(h["FailingStreak"], 0);
    let log = h["Log"].as_array().cloned().unwrap_or_default();
    assert!(!log.is_empty() && log.len() <= 5);
    assert_eq!(
        log.last().map(|l| l["ExitCode"].clone()),
        Some(serde_json::json!(0))
    );
    let ev = events(&d, "hc");
    assert!(
        ev.contains("health_status: unhealthy") && ev.contains("health_status: healthy"),
        "{ev}"
    );
    // --no-healthcheck and a timeout.
    d.cli_ok(&[
        "run",
        "-d",
        "--name",
        "nohc",
        "--no-healthcheck",
        &b,
        "sleep",
        "1000",
    ]);
    assert!(inspect(&d, "nohc")["State"].get("Health").is_none());
    d.cli_ok(&[
        "run",
        "-d",
        "--name",
        "slow",
        "--health-cmd",
        "sleep 5",
        "--health-interval",
        "200ms",
        "--health-timeout",
        "300ms",
        "--health-retries",
        "1",
        &b,
        "sleep",
        "1000",
    ]);
    eventually("timeout → unhealthy", || {
        inspect(&d, "slow")["State"]["Health"]["Status"] == "unhealthy"
    });
    let out = inspect(&d, "slow")["State"]["Health"]["Log"][0]["Output"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(out.contains("exceeded timeout"), "{out}");
    d.cli_ok(&["rm", "-f", "hc", "nohc", "slow"]);
}

#[test]
fn commit_makes_an_image() {
    let d = daemon();
    let b = busybox(&d);
    d.cli_ok(&[
        "run",
        "-d",
        "--name",
        "cm",
        &b,
        "sh",
        "-c",
        "echo committed > /c.txt; rm /etc/group; sleep 1000",
    ]);
    std::thread::sleep(Duration::from_millis(300));
    let id = d.cli_ok(&[
        "commit",
        "-c",
        "CMD [\"cat\", \"/c.txt\"]",
        "-c",
        "ENV X=1",
        "-m",
        "a message",
        "-a",
        "me",
        "cm",
        "snap:1",
    ]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    // The container kept running (paused only during the commit).
    assert_eq!(inspect(&d, "cm")["State"]["Status"], "running");
    assert_eq!(d.cli_ok(&["run", "--rm", "snap:1"]), "committed\n");
    let o = d.cli(&[
        "run",
        "--rm",
        "snap:1",
        "sh",
        "-c",
        "echo $X; ls /etc/group",
    ]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "1\n");
    assert_ne!(o.status.code(), Some(0), "the deletion is in the layer");
    let v: serde_json::Value =
        serde_json::from_str(&d.cli_ok(&["image", "inspect", "snap:1"])).expect("json");
    assert_eq!(v[0]["Author"], "me");
    assert_eq!(v[0]["Comment"], "a message");
    let base: serde_json::Value =
        serde_json::from_str(&d.cli_ok(&["image", "inspect", &b])).expect("json");
    assert_eq!(
        v[0]["RootFS"]["Layers"].as_array().map(|a| a.len()),
        base[0]["RootFS"]["Layers"].as_array().map(|a| a.len() + 1)
    );
    assert!(events(&d, "cm").contains("commit\n"));
    // A committed image can be saved and loaded like any other.
    let saved = d.docker().args(["save", "snap:1"]).output().expect("save");
    assert!(saved.status.success() && !saved.stdout.is_empty());
    d.cli_ok(&["rm", "-f", "cm"]);
    d.cli_ok(&["rmi", "snap:1"]);
}
