//! `cargo xtask bench`'s workloads that go beyond one CLI command: the API
//! lifecycle without the CLI, keep-alive request throughput, and daemon memory.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::Result;

pub(crate) fn socket_of(host: &str) -> Result<PathBuf> {
    host.strip_prefix("unix://")
        .map(PathBuf::from)
        .ok_or_else(|| format!("{host}: only unix:// daemons can be benchmarked"))
}

/// A minimal HTTP/1.1 client on a unix socket, with keep-alive, for measuring the
/// API without a client library's own costs.
pub(crate) struct Http {
    r: std::io::BufReader<std::os::unix::net::UnixStream>,
    w: std::os::unix::net::UnixStream,
}

impl Http {
    pub(crate) fn connect(sock: &Path) -> Result<Http> {
        let s = std::os::unix::net::UnixStream::connect(sock)
            .map_err(|e| format!("{}: {e}", sock.display()))?;
        let w = s.try_clone().map_err(|e| e.to_string())?;
        Ok(Http {
            r: std::io::BufReader::new(s),
            w,
        })
    }

    pub(crate) fn call(&mut self, method: &str, path: &str, body: &str) -> Result<(u16, Vec<u8>)> {
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
pub(crate) fn api_lifecycle(sock: &Path, image: &str) -> Result<f64> {
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
pub(crate) fn throughput(sock: &Path, path: &str, conns: usize, secs: f64) -> Result<(f64, f64)> {
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
pub(crate) fn daemon_rss(host: &str, berth: bool) -> f64 {
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

/// Fetches `path` (a file of `mib` MiB) from an HTTP/1.0 server at `addr` `n`
/// times, a new connection each (busybox httpd closes after each answer);
/// returns MiB/s of bodies and headers read.
pub(crate) fn fetch_rate(
    addr: std::net::SocketAddr,
    path: &str,
    n: usize,
    mib: usize,
) -> Result<f64> {
    use std::io::{Read, Write};
    let mut buf = vec![0u8; 256 << 10];
    let mut total = 0usize;
    let t = Instant::now();
    for _ in 0..n {
        let mut s = std::net::TcpStream::connect(addr).map_err(|e| format!("{addr}: {e}"))?;
        s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
            .map_err(|e| e.to_string())?;
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => total += k,
                Err(e) => return Err(format!("{addr}: {e}")),
            }
        }
    }
    let secs = t.elapsed().as_secs_f64();
    if total < n * (mib << 20) {
        return Err(format!(
            "{addr}: read {total} bytes for {n} fetches of {mib} MiB"
        ));
    }
    Ok(total as f64 / (1 << 20) as f64 / secs)
}
