//! `cargo xtask bench`'s setup: the daemons it compares (a release `berthd` on
//! temp dirs), the docker CLI pointed at each, and the images it pushes to the
//! loopback registry.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_testkit::registry::{push_blob, put_manifest};

use crate::{root, Result};

/// A berthd started for the bench, stopped (by its PID) on drop.
pub(crate) struct Daemon {
    child: Child,
    _dir: tempfile::TempDir,
    pub(crate) host: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
        // Its bridge and rules would outlive it, as a real berthd's do.
        berth_testkit::remove_bridges_and_rules(&[BRIDGE.to_string()], BRIDGE);
    }
}

/// The bench berthd's own bridge and nftables table: never a real berthd's berth0.
const BRIDGE: &str = "bbench0";

pub(crate) fn start_berth() -> Result<Daemon> {
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
        .arg("--bridge")
        .arg(BRIDGE)
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

pub(crate) fn docker(host: &str, args: &[&str]) -> Result<String> {
    docker_to(host, args, Stdio::piped())
}

/// `docker ARGS` with its stdout going to `stdout` (piped: returned as text).
pub(crate) fn docker_to(host: &str, args: &[&str], stdout: Stdio) -> Result<String> {
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
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub(crate) fn fill(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
}

pub(crate) const WORDS: &[&str] = &[
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

pub(crate) fn layer_tar(name: &str, data: &[u8]) -> Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    b.append_data(&mut h, name, data)
        .map_err(|e| e.to_string())?;
    b.into_inner().map_err(|e| e.to_string())
}

pub(crate) fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).map_err(|e| e.to_string())?;
    e.finish().map_err(|e| e.to_string())
}

/// Builds the pull image (4 layers) and pushes it as `bench/big:1`.
pub(crate) fn push_big_image(addr: &str) -> Result<(String, u64)> {
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
    let repo = "bench/big";
    let total = push_image(
        addr,
        repo,
        "1",
        layers.len(),
        |i| gzip(&layers[i]),
        &diff_ids,
        serde_json::json!({ "Cmd": ["sh"] }),
    )?;
    Ok((format!("{addr}/{repo}:1"), total))
}

/// Pushes an image of `count` gzipped layers (`gz(i)` makes the i-th, one at a
/// time) with the given diff IDs and container config as `repo:tag`; returns
/// the layers' compressed size.
pub(crate) fn push_image(
    addr: &str,
    repo: &str,
    tag: &str,
    count: usize,
    mut gz: impl FnMut(usize) -> Result<Vec<u8>>,
    diff_ids: &[String],
    container_config: serde_json::Value,
) -> Result<u64> {
    let mut descs = Vec::new();
    let mut total = 0u64;
    for i in 0..count {
        let gz = gz(i)?;
        total += gz.len() as u64;
        let d = push_blob(addr, repo, &gz)?;
        descs.push(serde_json::json!({ "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": gz.len() }));
    }
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": container_config,
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    }))
    .map_err(|e| e.to_string())?;
    let cd = push_blob(addr, repo, &config)?;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len() },
        "layers": descs,
    }))
    .map_err(|e| e.to_string())?;
    put_manifest(
        addr,
        repo,
        tag,
        "application/vnd.oci.image.manifest.v1+json",
        &manifest,
    )?;
    Ok(total)
}

/// The fixture busybox, pushed to the bench registry and pulled by `host`.
pub(crate) fn prepare_busybox(addr: &str, hosts: &[&str]) -> Result<String> {
    let out = root().join("target/fixtures");
    let built = crate::fixtures::build_all(&out)?;
    crate::fixtures::push_all(&built, addr)?;
    let image = format!("{addr}/busybox:latest");
    for h in hosts {
        docker(h, &["pull", "-q", &image])?;
    }
    Ok(image)
}
