//! `cargo xtask bench`: Berth side by side with another daemon, same machine, same run.
//!
//! Starts a release `berthd` on temp dirs (or uses `--berth`), a registry on loopback
//! with the bench images, and runs each workload on Berth and on `--against`,
//! alternating runs so that noise hits both. Prints a table of medians, spreads and
//! ratios; `--json FILE` writes the numbers too. Workloads (`--only NAME`):
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

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_testkit::registry::{push_blob, put_manifest, Registry};

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

/// A berthd started for the bench, stopped (by its PID) on drop.
struct Daemon {
    child: Child,
    _dir: tempfile::TempDir,
    host: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

fn start_berth() -> Result<Daemon> {
    crate::build_release()?;
    let dir = tempfile::Builder::new()
        .prefix("berth-bench-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let sock = dir.path().join("berth.sock");
    let config = dir.path().join("daemon.json");
    std::fs::write(&config, "{}").map_err(|e| e.to_string())?;
    let child = Command::new(root().join("target/release/berthd"))
        .arg("-H")
        .arg(format!("unix://{}", sock.display()))
        .arg("--data-root")
        .arg(dir.path().join("data"))
        .arg("--exec-root")
        .arg(dir.path().join("exec"))
        .arg("--pidfile")
        .arg(dir.path().join("pid"))
        .arg("--config-file")
        .arg(&config)
        .arg("--log-level")
        .arg("warn")
        // Its own bridge and nftables table: never a real berthd's berth0.
        .arg("--bridge")
        .arg("bbench0")
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting berthd: {e}"))?;
    let host = format!("unix://{}", sock.display());
    let mut d = Daemon {
        child,
        _dir: dir,
        host,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while docker(&d.host, &["version"]).is_err() {
        if let Ok(Some(s)) = d.child.try_wait() {
            return Err(format!("berthd exited: {s}"));
        }
        if Instant::now() > deadline {
            return Err("berthd did not come up".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(d)
}

fn docker(host: &str, args: &[&str]) -> Result<String> {
    docker_to(host, args, Stdio::piped())
}

/// `docker ARGS` with its stdout going to `stdout` (piped: returned as text).
fn docker_to(host: &str, args: &[&str], stdout: Stdio) -> Result<String> {
    let cfg = std::env::temp_dir().join("berth-bench-docker-config");
    let o = Command::new(berth_testkit::docker_cli())
        .env("DOCKER_HOST", host)
        .env("DOCKER_CONFIG", cfg)
        .args(args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|c| c.wait_with_output())
        .map_err(|e| format!("docker {args:?}: {e}"))?;
    if o.status.success() {
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    } else {
        Err(format!(
            "docker {args:?} on {host}: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ))
    }
}

/// xorshift64*: deterministic bytes, so the bench image has the same digest each build.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
}

const WORDS: &[&str] = &[
    "container",
    "layer",
    "image",
    "registry",
    "the",
    "of",
    "and",
    "daemon",
    "network",
    "volume",
    "kernel",
    "namespace",
    "cgroup",
    "overlay",
    "manifest",
    "digest",
    "config",
    "process",
    "file",
    "socket",
    "a",
    "to",
    "in",
    "is",
    "that",
    "for",
    "on",
    "with",
    "as",
    "by",
];

fn layer_tar(name: &str, data: &[u8]) -> Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    b.append_data(&mut h, name, data)
        .map_err(|e| e.to_string())?;
    b.into_inner().map_err(|e| e.to_string())
}

fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).map_err(|e| e.to_string())?;
    e.finish().map_err(|e| e.to_string())
}

/// Builds the pull image (4 layers) and pushes it as `bench/big:1`.
fn push_big_image(addr: &str) -> Result<(String, u64)> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut layers = Vec::new();
    let busybox = std::fs::read("/bin/busybox").map_err(|e| format!("/bin/busybox: {e}"))?;
    layers.push(layer_tar("bin/busybox", &busybox)?);
    let mut random = vec![0u8; 80 << 20];
    rng.fill(&mut random);
    layers.push(layer_tar("data/random-a", &random)?);
    let mut text = Vec::with_capacity(48 << 20);
    while text.len() < 48 << 20 {
        let w = WORDS[(rng.next() % WORDS.len() as u64) as usize];
        text.extend_from_slice(w.as_bytes());
        text.push(if rng.next().is_multiple_of(12) {
            b'\n'
        } else {
            b' '
        });
    }
    layers.push(layer_tar("data/text", &text)?);
    rng.fill(&mut random[..56 << 20]);
    layers.push(layer_tar("data/random-b", &random[..56 << 20])?);
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| berth_testkit::registry::digest(l))
        .collect();
    let mut descs = Vec::new();
    let mut total = 0u64;
    for l in &layers {
        let gz = gzip(l)?;
        total += gz.len() as u64;
        let d = push_blob(addr, "bench/big", &gz)?;
        descs.push(serde_json::json!({ "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": gz.len() }));
    }
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": { "Cmd": ["sh"] },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    }))
    .map_err(|e| e.to_string())?;
    let cd = push_blob(addr, "bench/big", &config)?;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len() },
        "layers": descs,
    }))
    .map_err(|e| e.to_string())?;
    put_manifest(
        addr,
        "bench/big",
        "1",
        "application/vnd.oci.image.manifest.v1+json",
        &manifest,
    )?;
    Ok((format!("{addr}/bench/big:1"), total))
}

#[derive(Default, Clone)]
struct Sample {
    values: Vec<f64>,
}

impl Sample {
    fn median(&self) -> f64 {
        let mut v = self.values.clone();
        v.sort_by(|a, b| a.total_cmp(b));
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }
    fn spread(&self) -> (f64, f64) {
        let min = self.values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self
            .values
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        (min, max)
    }
}

/// One line of the table: a measure on Berth and maybe on the other daemon.
struct Row {
    name: String,
    what: String,
    /// `s`, `req/s`, `MB`…
    unit: &'static str,
    berth: Sample,
    other: Option<Sample>,
}

fn time_pull(host: &str, image: &str) -> Result<f64> {
    // Cold: no image, no layers.
    let _ = docker(host, &["rmi", "-f", image]);
    let t = Instant::now();
    docker(host, &["pull", "-q", image])?;
    Ok(t.elapsed().as_secs_f64())
}

fn socket_of(host: &str) -> Result<PathBuf> {
    host.strip_prefix("unix://")
        .map(PathBuf::from)
        .ok_or_else(|| format!("{host}: only unix:// daemons can be benchmarked"))
}

/// A minimal HTTP/1.1 client on a unix socket, with keep-alive, for measuring the
/// API without a client library's own costs.
struct Http {
    r: std::io::BufReader<std::os::unix::net::UnixStream>,
    w: std::os::unix::net::UnixStream,
}

impl Http {
    fn connect(sock: &Path) -> Result<Http> {
        let s = std::os::unix::net::UnixStream::connect(sock)
            .map_err(|e| format!("{}: {e}", sock.display()))?;
        let w = s.try_clone().map_err(|e| e.to_string())?;
        Ok(Http {
            r: std::io::BufReader::new(s),
            w,
        })
    }

    fn call(&mut self, method: &str, path: &str, body: &str) -> Result<(u16, Vec<u8>)> {
        use std::io::{BufRead, Read, Write};
        let req = if body.is_empty() {
            format!("{method} {path} HTTP/1.1\r\nHost: bench\r\n\r\n")
        } else {
            format!(
                "{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
        };
        self.w
            .write_all(req.as_bytes())
            .map_err(|e| e.to_string())?;
        let mut line = String::new();
        self.r.read_line(&mut line).map_err(|e| e.to_string())?;
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or("bad status line")?;
        let (mut len, mut chunked) = (None, false);
        loop {
            line.clear();
            self.r.read_line(&mut line).map_err(|e| e.to_string())?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let lower = l.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                len = v.trim().parse::<usize>().ok();
            }
            if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                chunked = true;
            }
        }
        let mut out = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.r.read_line(&mut line).map_err(|e| e.to_string())?;
                let n = usize::from_str_radix(line.trim(), 16).map_err(|_| "bad chunk")?;
                let mut buf = vec![0u8; n + 2];
                self.r.read_exact(&mut buf).map_err(|e| e.to_string())?;
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
            }
        } else if let Some(n) = len {
            out.resize(n, 0);
            self.r.read_exact(&mut out).map_err(|e| e.to_string())?;
        }
        Ok((status, out))
    }
}

/// create + start + wait + delete of `busybox true`, over the API.
fn api_lifecycle(sock: &Path, image: &str) -> Result<f64> {
    let t = Instant::now();
    let mut h = Http::connect(sock)?;
    let (st, body) = h.call(
        "POST",
        "/v1.41/containers/create",
        &format!(r#"{{"Image":"{image}","Cmd":["true"]}}"#),
    )?;
    if st != 201 {
        return Err(format!("create: {st} {}", String::from_utf8_lossy(&body)));
    }
    let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    let id = v["Id"].as_str().unwrap_or("").to_string();
    // wait before start, as the CLI does, so the exit is never missed.
    let mut w = Http::connect(sock)?;
    let waiter = {
        let id = id.clone();
        std::thread::spawn(move || {
            w.call(
                "POST",
                &format!("/v1.41/containers/{id}/wait?condition=next-exit"),
                "",
            )
        })
    };
    std::thread::sleep(Duration::from_millis(1));
    let (st, body) = h.call("POST", &format!("/v1.41/containers/{id}/start"), "")?;
    if st != 204 {
        return Err(format!("start: {st} {}", String::from_utf8_lossy(&body)));
    }
    waiter.join().map_err(|_| "wait thread")??;
    let (st, _) = h.call("DELETE", &format!("/v1.41/containers/{id}"), "")?;
    if st != 204 {
        return Err(format!("delete: {st}"));
    }
    Ok(t.elapsed().as_secs_f64())
}

/// Requests per second and p99 latency (ms) of `path` from `conns` keep-alive
/// connections over `secs`.
fn throughput(sock: &Path, path: &str, conns: usize, secs: f64) -> Result<(f64, f64)> {
    let stop = Instant::now() + Duration::from_secs_f64(secs);
    let mut handles = Vec::new();
    for _ in 0..conns {
        let sock = sock.to_path_buf();
        let path = path.to_string();
        handles.push(std::thread::spawn(move || -> Result<Vec<f64>> {
            let mut h = Http::connect(&sock)?;
            let mut lat = Vec::new();
            while Instant::now() < stop {
                let t = Instant::now();
                let (st, _) = h.call("GET", &path, "")?;
                if st != 200 {
                    return Err(format!("{path}: {st}"));
                }
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            Ok(lat)
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.join().map_err(|_| "load thread")??);
    }
    all.sort_by(|a, b| a.total_cmp(b));
    let p99 = all.get(all.len() * 99 / 100).copied().unwrap_or(f64::NAN);
    Ok((all.len() as f64 / secs, p99))
}

/// Proportional resident memory (MB) of the processes that make up a daemon: for Berth,
/// berthd and its shims (found by the socket's directory in their command
/// lines); for dockerd, dockerd, containerd and containerd's shims.
fn daemon_rss(host: &str, berth: bool) -> f64 {
    let marker = socket_of(host)
        .ok()
        .and_then(|p| p.parent().map(|d| d.display().to_string()))
        .unwrap_or_default();
    let mut kb = 0u64;
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        let exe = cmd
            .split(' ')
            .next()
            .unwrap_or("")
            .rsplit('/')
            .next()
            .unwrap_or("")
            .to_string();
        let ours = if berth {
            (exe == "berthd" || exe == "berth-shim") && cmd.contains(&marker)
        } else {
            exe == "dockerd"
                || exe == "containerd"
                || exe.starts_with("containerd-shim")
                || exe == "docker-proxy"
        };
        if !ours {
            continue;
        }
        // PSS: shared pages (a binary's text, shared by every shim) count once
        // across the processes that share them, for both daemons alike.
        let rollup =
            std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
        kb += rollup
            .lines()
            .find(|l| l.starts_with("Pss:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .unwrap_or(0);
    }
    kb as f64 / 1024.0
}

/// The fixture busybox, pushed to the bench registry and pulled by `host`.
fn prepare_busybox(addr: &str, hosts: &[&str]) -> Result<String> {
    let out = root().join("target/fixtures");
    let built = crate::fixtures::build_all(&out)?;
    crate::fixtures::push_all(&built, addr)?;
    let image = format!("{addr}/busybox:latest");
    for h in hosts {
        docker(h, &["pull", "-q", &image])?;
    }
    Ok(image)
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
    let wanted = |name: &str| o.only.as_deref().is_none_or(|w| w == name);
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
        let r = both(&berth, other, runs, |h, _| time_pull(h, &image))?;
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

fn fmt(v: f64, unit: &str) -> String {
    match unit {
        "s" => format!("{v:.3}s"),
        "req/s" => format!("{v:.0}/s"),
        _ => format!("{v:.1}{unit}"),
    }
}

fn print_header() {
    println!(
        "{:<10} {:<46} {:>26} {:>26} {:>7}",
        "workload", "what", "berth median (min-max)", "other median (min-max)", "ratio"
    );
}

fn print_row(r: &Row) {
    let (bmin, bmax) = r.berth.spread();
    let bs = format!(
        "{} ({}-{})",
        fmt(r.berth.median(), r.unit),
        fmt(bmin, r.unit),
        fmt(bmax, r.unit)
    );
    let (os, ratio) = match &r.other {
        Some(a) => {
            let (amin, amax) = a.spread();
            (
                format!(
                    "{} ({}-{})",
                    fmt(a.median(), r.unit),
                    fmt(amin, r.unit),
                    fmt(amax, r.unit)
                ),
                format!("{:.2}", r.berth.median() / a.median()),
            )
        }
        None => ("-".into(), "-".into()),
    };
    println!("{:<10} {:<46} {bs:>26} {os:>26} {ratio:>7}", r.name, r.what);
}

fn write_json(path: &Path, rows: &[Row]) -> Result {
    let v: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "workload": r.name, "what": r.what, "unit": r.unit,
                "berth": { "median": r.berth.median(), "runs": r.berth.values },
                "other": r.other.as_ref().map(|a| serde_json::json!({ "median": a.median(), "runs": a.values })),
            })
        })
        .collect();
    std::fs::write(
        path,
        serde_json::to_vec_pretty(&v).map_err(|e| e.to_string())?,
    )
    .map_err(|e| format!("{}: {e}", path.display()))
}
