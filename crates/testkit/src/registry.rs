//! Debian's `docker-registry` (distribution) on a free loopback port, and a
//! minimal push client to fill it (blobs and manifests, by the v2 API).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub type Result<T = ()> = std::result::Result<T, String>;

pub struct Registry {
    pub addr: String,
    child: Child,
    dir: PathBuf,
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| format!("finding a free port: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

impl Registry {
    /// Starts a registry with its storage in a fresh directory under `parent`.
    pub fn start(parent: &Path) -> Result<Registry> {
        Self::start_with(parent, None)
    }

    /// Starts a registry that requires HTTP basic auth with `user`/`password`.
    pub fn start_with_auth(parent: &Path, user: &str, password: &str) -> Result<Registry> {
        let hash = bcrypt::hash(password, 4).map_err(|e| e.to_string())?;
        Self::start_with(parent, Some(format!("{user}:{hash}\n")))
    }

    fn start_with(parent: &Path, htpasswd: Option<String>) -> Result<Registry> {
        let port = free_port()?;
        let addr = format!("127.0.0.1:{port}");
        let dir = parent.join(format!("test-registry-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("storage"))
            .map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            dir.join("storage").display()
        );
        if let Some(h) = htpasswd {
            let path = dir.join("htpasswd");
            std::fs::write(&path, h).map_err(|e| e.to_string())?;
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                path.display()
            ));
        }
        let cfg = dir.join("config.yml");
        std::fs::write(&cfg, config).map_err(|e| format!("writing {}: {e}", cfg.display()))?;
        let log = std::fs::File::create(dir.join("registry.log")).map_err(|e| e.to_string())?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting docker-registry: {e}"))?;
        let mut reg = Registry { addr, child, dir };
        reg.wait_ready()?;
        Ok(reg)
    }

    /// Where the registry keeps blob `digest` on disk (to corrupt it in tests).
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    fn wait_ready(&mut self) -> Result {
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = format!("http://{}/v2/", self.addr);
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                let log =
                    std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default();
                return Err(format!("docker-registry exited ({s}):\n{log}"));
            }
            // 200, or 401 when auth is on: either way it is serving.
            if agent()
                .get(&url)
                .call()
                .is_ok_and(|r| r.status() == 200 || r.status() == 401)
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err("docker-registry not ready in 30s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // Only the process we started, by its PID.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// The sha256 digest of `data`.
pub fn digest(data: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

/// Uploads a blob to `repo` unless the registry has it; returns its digest.
pub fn push_blob(addr: &str, repo: &str, data: &[u8]) -> Result<String> {
    let d = digest(data);
    let base = format!("http://{addr}/v2/{repo}");
    let a = agent();
    let head = a
        .head(&format!("{base}/blobs/{d}"))
        .call()
        .map_err(|e| format!("HEAD blob: {e}"))?;
    if head.status() == 200 {
        return Ok(d);
    }
    let start = a
        .post(&format!("{base}/blobs/uploads/"))
        .send_empty()
        .map_err(|e| format!("start upload: {e}"))?;
    if start.status() != 202 {
        return Err(format!("start upload: status {}", start.status()));
    }
    let loc = start
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .ok_or("upload has no Location")?
        .to_string();
    let loc = if loc.starts_with('/') {
        format!("http://{addr}{loc}")
    } else {
        loc
    };
    let sep = if loc.contains('?') { '&' } else { '?' };
    let put = a
        .put(&format!("{loc}{sep}digest={d}"))
        .header("Content-Type", "application/octet-stream")
        .send(data)
        .map_err(|e| format!("upload {d}: {e}"))?;
    if put.status() != 201 {
        return Err(format!("upload {d}: status {}", put.status()));
    }
    Ok(d)
}

/// Puts a manifest (or index) under `reference` (a tag or digest); returns its digest.
pub fn put_manifest(
    addr: &str,
    repo: &str,
    reference: &str,
    media_type: &str,
    data: &[u8],
) -> Result<String> {
    let put = agent()
        .put(&format!("http://{addr}/v2/{repo}/manifests/{reference}"))
        .header("Content-Type", media_type)
        .send(data)
        .map_err(|e| format!("put manifest: {e}"))?;
    if put.status() != 201 {
        return Err(format!("put manifest: status {}", put.status()));
    }
    Ok(digest(data))
}
