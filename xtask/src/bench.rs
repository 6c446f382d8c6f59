//! `cargo xtask bench`: Berth side by side with another daemon, same machine, same run.
//!
//! Starts a release `berthd` on temp dirs (or uses `--berth`), a registry on loopback
//! with the bench images, and runs each workload on Berth and on `--against`,
//! alternating runs so that noise hits both. Prints a table of medians, spreads and
//! ratios; `--json FILE` writes the numbers too. Workloads (`--only NAME[,NAME…]`):
//! - `run`: `docker run --rm busybox true` through the CLI, sequential; `cli`: the
//!   CLI's own floor, `docker version`.
//! - `api`: create, start, wait, delete over the API without the CLI.
//! - `burst`: 20 `docker run --rm busybox true` at once, wall time.
//! - `list`, `ping`: `GET /containers/json?all=1` with 100 containers, and
//!   `GET /_ping`, from 8 keep-alive connections: requests per second and p99.
//! - `pull`: cold `docker pull` of a 4-layer image of ~150 MB compressed (random and
//!   text-like data), image and layers removed before each run.
//! - `memory`: proportional resident memory (PSS) of the daemon and its helpers (shims; for dockerd
//!   also containerd and its shims), idle and with 50 running containers.
//! - `logs`: a container writing 50 MB to stdout, attached (`docker run`) and read
//!   back with `docker logs`, the CLI's output to /dev/null (and, for comparison,
//!   read through a pipe).
//! - `exec`: `docker exec C true` latency.
//! - `distro`: cold `docker pull` of a Debian bookworm made with debootstrap
//!   (three layers, thousands of files; see `benchdistro`), after `rmi` and `sync`.
//! - `port`: a busybox httpd container's 1 MiB file fetched 200 times through a
//!   published port on 127.0.0.1, and on `[::1]`: MiB/s.
//! - `port-direct`: the same fetches from the container's own address: what a
//!   port's path that cost nothing would give.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use berth_testkit::registry::Registry;

use crate::benchreport::{print_header, print_row, write_json, Row, Sample};
use crate::benchsetup::{docker, docker_to, prepare_busybox, push_big_image, start_berth};
use crate::benchwork::{api_lifecycle, daemon_rss, fetch_rate, socket_of, throughput};
use crate::{root, Result};

struct Opts {
    against: Option<String>,
    berth: Option<String>,
    only: Option<String>,
    json: Option<PathBuf>,
    runs: usize,
}

fn parse(args: &[String]) -> Result<Opts> {
    let mut o = Opts {
        against: None,
        berth: None,
        only: None,
        json: None,
        runs: 5,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{a} needs a value"))
        };
        match a.as_str() {
            "--against" => o.against = Some(val()?),
            "--berth" => o.berth = Some(val()?),
            "--only" => o.only = Some(val()?),
            "--json" => o.json = Some(PathBuf::from(val()?)),
            "--runs" => o.runs = val()?.parse().map_err(|_| "--runs needs a number")?,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(o)
}

/// A cold pull: no image, no layers; with `sync`, the deletion (and the other
/// daemon's writes) on disk first, not in flight.
fn time_pull(host: &str, image: &str, sync: bool) -> Result<f64> {
    let _ = docker(host, &["rmi", "-f", image]);
    if sync {
        nix::unistd::sync();
    }
    let t = Instant::now();
    docker(host, &["pull", "-q", image])?;
    Ok(t.elapsed().as_secs_f64())
}

/// Runs `f` on Berth and on the other daemon, alternating, `runs` times each.
fn both(
    berth: &str,
    other: Option<&str>,
    runs: usize,
    mut f: impl FnMut(&str, bool) -> Result<f64>,
) -> Result<(Sample, Option<Sample>)> {
    let mut b = Sample::default();
    let mut a = other.map(|_| Sample::default());
    for _ in 0..runs {
        b.values.push(f(berth, true)?);
        if let (Some(o), Some(s)) = (other, a.as_mut()) {
            s.values.push(f(o, false)?);
        }
    }
    Ok((b, a))
}

/// Where a measured command's output goes: a pipe this process reads, or /dev/null.
fn sink(pipe: bool) -> Stdio {
    if pipe {
        Stdio::piped()
    } else {
        Stdio::null()
    }
}

fn timed(f: impl FnOnce() -> Result<()>) -> Result<f64> {
    let t = Instant::now();
    f()?;
    Ok(t.elapsed().as_secs_f64())
}

pub fn bench(args: &[String]) -> Result {
    let o = parse(args)?;
    crate::packages::ensure(crate::packages::TEST)?;
    let owned;
    let berth = match &o.berth {
        Some(h) => h.clone(),
        None => {
            owned = start_berth()?;
            owned.host.clone()
        }
    };
    let other = o.against.as_deref();
    let reg = Registry::start(&root().join("target"))?;
    let mut rows: Vec<Row> = Vec::new();
    let wanted = |name: &str| {
        o.only
            .as_deref()
            .is_none_or(|w| w.split(',').any(|w| w == name))
    };
    let runs = o.runs;
    let mut hosts = vec![berth.as_str()];
    hosts.extend(other);
    let bb = prepare_busybox(&reg.addr, &hosts)?;
    let bb = bb.as_str();
    print_header();
    // Each row is printed as soon as it is measured: a long run shows progress.
    let row = |rows: &mut Vec<Row>,
               name: &str,
               what: String,
               unit: &'static str,
               (b, a): (Sample, Option<Sample>)| {
        let r = Row {
            name: name.into(),
            what,
            unit,
            berth: b,
            other: a,
        };
        print_row(&r);
        rows.push(r);
    };

    if wanted("cli") {
        let r = both(&berth, other, runs * 2, |h, _| {
            timed(|| docker(h, &["version"]).map(drop))
        })?;
        row(
            &mut rows,
            "cli",
            "docker version (the CLI's floor)".into(),
            "s",
            r,
        );
    }
    if wanted("run") {
        let r = both(&berth, other, runs * 2, |h, _| {
            timed(|| docker(h, &["run", "--rm", bb, "true"]).map(drop))
        })?;
        row(
            &mut rows,
            "run",
            "docker run --rm busybox true".into(),
            "s",
            r,
        );
    }
    if wanted("api") {
        let r = both(&berth, other, runs * 2, |h, _| {
            api_lifecycle(&socket_of(h)?, bb)
        })?;
        row(
            &mut rows,
            "api",
            "create+start+wait+delete over the API".into(),
            "s",
            r,
        );
    }
    if wanted("burst") {
        let r = both(&berth, other, runs, |h, _| {
            timed(|| {
                let hs: Vec<_> = (0..20)
                    .map(|_| {
                        let (h, bb) = (h.to_string(), bb.to_string());
                        std::thread::spawn(move || {
                            docker(&h, &["run", "--rm", &bb, "true"]).map(drop)
                        })
                    })
                    .collect();
                for t in hs {
                    t.join().map_err(|_| "run thread")??;
                }
                Ok(())
            })
        })?;
        row(
            &mut rows,
            "burst",
            "20 x docker run --rm in parallel, wall".into(),
            "s",
            r,
        );
    }
    if wanted("list") || wanted("ping") {
        for h in &hosts {
            for i in 0..100 {
                docker(
                    h,
                    &["create", "--name", &format!("bench-list-{i}"), bb, "true"],
                )?;
            }
        }
        let mut p99s: Vec<(Sample, Option<Sample>)> = Vec::new();
        for (name, path, what) in [
            (
                "list",
                "/v1.41/containers/json?all=1",
                "GET /containers/json?all=1, 100 containers, 8 conns",
            ),
            ("ping", "/_ping", "GET /_ping, 8 connections"),
        ] {
            if !wanted(name) {
                continue;
            }
            let mut lat = (Sample::default(), other.map(|_| Sample::default()));
            let r = both(&berth, other, runs.min(3), |h, is_berth| {
                let (rps, p99) = throughput(&socket_of(h)?, path, 8, 2.0)?;
                if is_berth {
                    lat.0.values.push(p99);
                } else if let Some(s) = lat.1.as_mut() {
                    s.values.push(p99);
                }
                Ok(rps)
            })?;
            row(&mut rows, name, what.into(), "req/s", r);
            p99s.push(lat.clone());
            row(
                &mut rows,
                &format!("{name}-p99"),
                format!("{name}: p99 latency"),
                "ms",
                lat,
            );
        }
        for h in &hosts {
            let ids = docker(h, &["ps", "-aq", "--filter", "name=bench-list-"])?;
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let mut a = vec!["rm"];
                a.extend(ids);
                docker(h, &a)?;
            }
        }
    }
    if wanted("pull") {
        let (image, size) = push_big_image(&reg.addr)?;
        let r = both(&berth, other, runs, |h, _| time_pull(h, &image, false))?;
        for h in &hosts {
            let _ = docker(h, &["rmi", "-f", &image]);
        }
        row(
            &mut rows,
            "pull",
            format!(
                "cold pull, 4 layers, {:.0} MB compressed",
                size as f64 / 1e6
            ),
            "s",
            r,
        );
    }
    if wanted("distro") {
        let (image, size, files) = crate::benchdistro::push_distro_image(&reg.addr)?;
        let r = both(&berth, other, runs.min(3), |h, _| {
            time_pull(h, &image, true)
        })?;
        for h in &hosts {
            let _ = docker(h, &["rmi", "-f", &image]);
        }
        row(
            &mut rows,
            "distro",
            format!(
                "cold pull, Debian bookworm (debootstrap), 3 layers, {:.0} MB, {files} entries",
                size as f64 / 1e6
            ),
            "s",
            r,
        );
    }
    if wanted("port") {
        // Two workloads through the same port: many short fetches, where busybox
        // httpd forking a child per connection is most of the cost whatever the
        // path, and a few long ones, where the path is.
        for (name, bind, what) in [
            ("port", "127.0.0.1", "published port on 127.0.0.1"),
            ("port6", "[::1]", "the same on [::1]"),
        ] {
            let mut ports = Vec::new();
            for h in &hosts {
                let _ = docker(h, &["rm", "-f", "bench-port"]);
                docker(
                    h,
                    &[
                        "run", "-d", "--name", "bench-port", "-p", &format!("{bind}::80"), bb, "sh",
                        "-c",
                        "mkdir /w && head -c 1048576 /dev/urandom > /w/f && head -c 268435456 /dev/zero > /w/big && exec httpd -f -p 80 -h /w",
                    ],
                )?;
                let out = docker(h, &["port", "bench-port", "80/tcp"])?;
                let addr: std::net::SocketAddr = out
                    .lines()
                    .next()
                    .and_then(|l| l.trim().parse().ok())
                    .ok_or_else(|| format!("docker port: {out:?}"))?;
                ports.push(addr);
            }
            // httpd starts once both files are written: wait until it answers.
            for a in &ports {
                let deadline = Instant::now() + Duration::from_secs(20);
                while fetch_rate(*a, "/f", 1, 1).is_err() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            let r = both(&berth, other, runs.min(3), |_, is_berth| {
                fetch_rate(ports[usize::from(!is_berth)], "/f", 200, 1)
            })?;
            row(&mut rows, name, format!("{what}, 200 x 1 MiB"), "MiB/s", r);
            if name == "port" {
                // The ceiling: the same fetches from the container's own address,
                // with neither NAT nor proxy between.
                let mut direct = Vec::new();
                for h in &hosts {
                    let ip = docker(
                        h,
                        &[
                            "inspect",
                            "-f",
                            "{{.NetworkSettings.IPAddress}}",
                            "bench-port",
                        ],
                    )?;
                    let ip: std::net::IpAddr = ip
                        .trim()
                        .parse()
                        .map_err(|_| format!("container address {ip:?}"))?;
                    direct.push(std::net::SocketAddr::new(ip, 80));
                }
                let r = both(&berth, other, runs.min(3), |_, is_berth| {
                    fetch_rate(direct[usize::from(!is_berth)], "/f", 200, 1)
                })?;
                row(
                    &mut rows,
                    "port-direct",
                    "the same from the container's own address".into(),
                    "MiB/s",
                    r,
                );
            }
            let r = both(&berth, other, runs.min(3), |_, is_berth| {
                fetch_rate(ports[usize::from(!is_berth)], "/big", 4, 256)
            })?;
            let stream = format!("{name}-stream");
            row(
                &mut rows,
                &stream,
                format!("{what}, 4 x 256 MiB"),
                "MiB/s",
                r,
            );
            for h in &hosts {
                let _ = docker(h, &["rm", "-f", "bench-port"]);
            }
        }
    }
    if wanted("exec") {
        for h in &hosts {
            docker(
                h,
                &["run", "-d", "--name", "bench-exec", bb, "sleep", "100000"],
            )?;
        }
        let r = both(&berth, other, runs * 2, |h, _| {
            timed(|| docker(h, &["exec", "bench-exec", "true"]).map(drop))
        })?;
        for h in &hosts {
            let _ = docker(h, &["rm", "-f", "bench-exec"]);
        }
        row(&mut rows, "exec", "docker exec C true".into(), "s", r);
    }
    if wanted("logs") {
        // 50 MB of 100-byte lines. The CLI's output goes to /dev/null, as for any
        // throughput measurement: through a pipe the reader's wake-ups on each of the
        // CLI's writes (one per line, from both daemons) are most of what is
        // measured; those rows are kept for comparison.
        let script = "yes 0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789 | head -c 52428800";
        for (name, what, out) in [
            ("logs-run", "50 MB to stdout, attached (docker run)", false),
            ("logs-run-pipe", "the same, read through a pipe", true),
        ] {
            let r = both(&berth, other, runs.min(3), |h, _| {
                let args = ["run", "--rm", bb, "sh", "-c", script];
                timed(|| docker_to(h, &args, sink(out)).map(drop))
            })?;
            row(&mut rows, name, what.into(), "s", r);
        }
        for h in &hosts {
            let _ = docker(h, &["rm", "-f", "bench-logs"]);
            docker(h, &["run", "--name", "bench-logs", bb, "sh", "-c", script])?;
        }
        for (name, what, out) in [
            ("logs", "docker logs of 50 MB", false),
            ("logs-pipe", "the same, read through a pipe", true),
        ] {
            let r = both(&berth, other, runs.min(3), |h, _| {
                timed(|| docker_to(h, &["logs", "bench-logs"], sink(out)).map(drop))
            })?;
            row(&mut rows, name, what.into(), "s", r);
        }
        for h in &hosts {
            let _ = docker(h, &["rm", "-f", "bench-logs"]);
        }
    }
    if wanted("build") {
        for (name, what, samples) in crate::benchbuild::rows(&hosts, bb, runs)? {
            let mut it = samples.into_iter();
            let b = Sample {
                values: it.next().unwrap_or_default(),
            };
            let a = it.next().map(|values| Sample { values });
            row(&mut rows, name, what.into(), "s", (b, a));
        }
        for h in &hosts {
            let _ = docker(h, &["rmi", "bench-build:1"]);
        }
    }
    if wanted("memory") {
        // Idle: after a few quiet seconds, not right after the last workload.
        std::thread::sleep(Duration::from_secs(12));
        let idle = both(&berth, other, 1, |h, b| Ok(daemon_rss(h, b)))?;
        row(
            &mut rows,
            "mem-idle",
            "PSS of daemon + helpers, idle".into(),
            "MB",
            idle,
        );
        for h in &hosts {
            for i in 0..50 {
                docker(
                    h,
                    &[
                        "run",
                        "-d",
                        "--name",
                        &format!("bench-mem-{i}"),
                        bb,
                        "sleep",
                        "100000",
                    ],
                )?;
            }
        }
        std::thread::sleep(Duration::from_secs(12));
        let busy = both(&berth, other, 1, |h, b| Ok(daemon_rss(h, b)))?;
        row(
            &mut rows,
            "mem-50",
            "PSS of daemon + helpers, 50 containers".into(),
            "MB",
            busy,
        );
        for h in &hosts {
            let ids = docker(h, &["ps", "-aq", "--filter", "name=bench-mem-"])?;
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let mut a = vec!["rm", "-f"];
                a.extend(ids);
                docker(h, &a)?;
            }
        }
    }
    if let Some(path) = &o.json {
        write_json(path, &rows)?;
    }
    drop(reg);
    Ok(())
}
