//! `cargo xtask bench`: Berth side by side with another daemon, same machine, same run.
//!
//! Starts a release `berthd` on temp dirs (or uses `--berth`), a registry on loopback
//! with the bench images, and runs each workload on Berth and on `--against`,
//! alternating runs so that noise hits both. Prints a table of medians, spreads and
//! ratios; `--json FILE` writes the numbers too. Workloads so far:
//! - `pull`: cold `docker pull` of a 4-layer image of ~150 MB compressed (random and
//!   text-like data), image and layers removed before each run.

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
    let cfg = std::env::temp_dir().join("berth-bench-docker-config");
    let o = Command::new(berth_testkit::docker_cli())
        .env("DOCKER_HOST", host)
        .env("DOCKER_CONFIG", cfg)
        .args(args)
        .stdin(Stdio::null())
        .output()
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

#[derive(Default)]
struct Sample {
    secs: Vec<f64>,
}

impl Sample {
    fn median(&self) -> f64 {
        let mut v = self.secs.clone();
        v.sort_by(|a, b| a.total_cmp(b));
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }
    fn spread(&self) -> (f64, f64) {
        let min = self.secs.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self.secs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (min, max)
    }
}

fn time_pull(host: &str, image: &str) -> Result<f64> {
    // Cold: no image, no layers.
    let _ = docker(host, &["rmi", "-f", image]);
    let t = Instant::now();
    docker(host, &["pull", "-q", image])?;
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
    let reg = Registry::start(&root().join("target"))?;
    let mut rows: Vec<(String, String, Sample, Option<Sample>)> = Vec::new();
    let wanted = |name: &str| o.only.as_deref().is_none_or(|w| w == name);
    if wanted("pull") {
        let (image, size) = push_big_image(&reg.addr)?;
        let (mut b, mut a) = (
            Sample::default(),
            o.against.as_ref().map(|_| Sample::default()),
        );
        for _ in 0..o.runs {
            b.secs.push(time_pull(&berth, &image)?);
            if let (Some(other), Some(s)) = (&o.against, a.as_mut()) {
                s.secs.push(time_pull(other, &image)?);
            }
        }
        let _ = docker(&berth, &["rmi", "-f", &image]);
        if let Some(other) = &o.against {
            let _ = docker(other, &["rmi", "-f", &image]);
        }
        rows.push((
            "pull".into(),
            format!(
                "cold pull, 4 layers, {:.0} MB compressed",
                size as f64 / 1e6
            ),
            b,
            a,
        ));
    }
    print_table(&rows);
    if let Some(path) = &o.json {
        write_json(path, &rows)?;
    }
    drop(reg);
    Ok(())
}

fn print_table(rows: &[(String, String, Sample, Option<Sample>)]) {
    println!(
        "{:<8} {:<40} {:>22} {:>22} {:>8}",
        "workload", "what", "berth median (min-max)", "other median (min-max)", "ratio"
    );
    for (name, what, b, a) in rows {
        let (bmin, bmax) = b.spread();
        let bs = format!("{:.3}s ({:.3}-{:.3})", b.median(), bmin, bmax);
        let (os, ratio) = match a {
            Some(a) => {
                let (amin, amax) = a.spread();
                (
                    format!("{:.3}s ({:.3}-{:.3})", a.median(), amin, amax),
                    format!("{:.2}", b.median() / a.median()),
                )
            }
            None => ("-".into(), "-".into()),
        };
        println!("{name:<8} {what:<40} {bs:>22} {os:>22} {ratio:>8}");
    }
}

fn write_json(path: &Path, rows: &[(String, String, Sample, Option<Sample>)]) -> Result {
    let v: Vec<serde_json::Value> = rows
        .iter()
        .map(|(name, what, b, a)| {
            serde_json::json!({
                "workload": name, "what": what,
                "berth": { "median": b.median(), "runs": b.secs },
                "other": a.as_ref().map(|a| serde_json::json!({ "median": a.median(), "runs": a.secs })),
            })
        })
        .collect();
    std::fs::write(
        path,
        serde_json::to_vec_pretty(&v).map_err(|e| e.to_string())?,
    )
    .map_err(|e| format!("{}: {e}", path.display()))
}
