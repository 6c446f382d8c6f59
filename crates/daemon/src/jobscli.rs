//! `berthd jobs`: a small client for `/berth/jobs`, so the daemon's running
//! jobs can be seen and cancelled without curl.
//!
//! ```text
//! berthd jobs [-H HOST]              table of running jobs
//! berthd jobs [-H HOST] inspect ID   one job as JSON
//! berthd jobs [-H HOST] cancel ID    cancel it (as if its client had gone)
//! ```
//!
//! HOST is `unix:///path` or `tcp://ADDR:PORT` (plain HTTP), by default
//! `$DOCKER_HOST`, else berthd's own socket. One HTTP/1.0 request per run: no
//! HTTP client crate is worth its weight for that.

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::SystemTime;

use berth_api::jobs::JobSummary;

use crate::config::DEFAULT_HOST;

/// Runs the `jobs` subcommand with the arguments after it.
pub fn main(args: &[String]) -> ExitCode {
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berthd jobs: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let mut host = std::env::var("DOCKER_HOST").unwrap_or_else(|_| DEFAULT_HOST.to_string());
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-H" | "--host" => host = it.next().ok_or("-H needs a value")?.clone(),
            "-h" | "--help" => {
                println!("usage: berthd jobs [-H HOST] [inspect ID | cancel ID]");
                return Ok(());
            }
            _ => rest.push(a.as_str()),
        }
    }
    match rest.as_slice() {
        [] | ["ls"] => {
            let (status, body) = request(&host, "GET", "/berth/jobs")?;
            let jobs: Vec<JobSummary> = decode(status, &body)?;
            print!("{}", table(&jobs, SystemTime::now()));
            Ok(())
        }
        ["inspect", id] => {
            let (status, body) = request(&host, "GET", &format!("/berth/jobs/{id}"))?;
            let job: JobSummary = decode(status, &body)?;
            let text = serde_json::to_string_pretty(&job).map_err(|e| e.to_string())?;
            println!("{text}");
            Ok(())
        }
        ["cancel", id] => {
            let (status, body) = request(&host, "DELETE", &format!("/berth/jobs/{id}"))?;
            match status {
                204 => println!("{id}: cancelled"),
                202 => println!("{id}: cancelling (still ending)"),
                _ => return Err(error_text(status, &body)),
            }
            Ok(())
        }
        other => Err(format!(
            "unknown arguments {other:?}; usage: berthd jobs [-H HOST] [inspect ID | cancel ID]"
        )),
    }
}

fn decode<T: serde::de::DeserializeOwned>(status: u16, body: &[u8]) -> Result<T, String> {
    if status != 200 {
        return Err(error_text(status, body));
    }
    serde_json::from_slice(body).map_err(|e| format!("unexpected answer: {e}"))
}

fn error_text(status: u16, body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Msg {
        message: String,
    }
    match serde_json::from_slice::<Msg>(body) {
        Ok(m) => m.message,
        Err(_) => format!("status {status}: {}", String::from_utf8_lossy(body).trim()),
    }
}

/// One request, `Connection: close`; returns the status and the body.
fn request(host: &str, method: &str, path: &str) -> Result<(u16, Vec<u8>), String> {
    let req = format!("{method} {path} HTTP/1.0\r\nHost: berth\r\nContent-Length: 0\r\n\r\n");
    let raw = if let Some(p) = host.strip_prefix("unix://") {
        let mut s = std::os::unix::net::UnixStream::connect(p)
            .map_err(|e| format!("cannot connect to {host}: {e}"))?;
        exchange(&mut s, &req)?
    } else if let Some(a) = host.strip_prefix("tcp://") {
        let mut s = std::net::TcpStream::connect(a)
            .map_err(|e| format!("cannot connect to {host}: {e}"))?;
        exchange(&mut s, &req)?
    } else {
        return Err(format!("unsupported host {host:?} (unix:// or tcp://)"));
    };
    parse_response(&raw)
}

fn exchange<S: Read + Write>(s: &mut S, req: &str) -> Result<Vec<u8>, String> {
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    Ok(raw)
}

fn parse_response(raw: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("incomplete HTTP response")?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line: {:?}", head.lines().next()))?;
    Ok((status, raw[end + 4..].to_vec()))
}

/// `ID  NAME  STATUS  STARTED  PROGRESS  ARGS`, like `docker ps`.
fn table(jobs: &[JobSummary], now: SystemTime) -> String {
    let mut rows = vec![[
        "ID".to_string(),
        "NAME".into(),
        "STATUS".into(),
        "STARTED".into(),
        "PROGRESS".into(),
        "ARGS".into(),
    ]];
    for j in jobs {
        let progress = j
            .progress
            .as_ref()
            .map(|p| match (p.current, p.total) {
                (Some(c), Some(t)) if t > 0 => format!("{}% {}", c * 100 / t, p.message),
                _ => p.message.clone(),
            })
            .unwrap_or_default();
        let args = j
            .args
            .iter()
            .map(|(k, v)| format!("{k}={}", v.join(",")))
            .collect::<Vec<_>>()
            .join(" ");
        rows.push([
            j.id.to_string(),
            j.name.clone(),
            j.status.clone(),
            ago(&j.started, now),
            progress,
            args,
        ]);
    }
    let mut widths = [0usize; 6];
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("   ").trim_end());
        out.push('\n');
    }
    out
}

fn ago(started: &str, now: SystemTime) -> String {
    let Ok(t) =
        time::OffsetDateTime::parse(started, &time::format_description::well_known::Rfc3339)
    else {
        return started.to_string();
    };
    let secs = (time::OffsetDateTime::from(now) - t).whole_seconds().max(0);
    match secs {
        0..=59 => format!("{secs} seconds ago"),
        60..=3599 => format!("{} minutes ago", secs / 60),
        _ => format!("{} hours ago", secs / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_and_body() {
        let raw = b"HTTP/1.0 404 Not Found\r\nContent-Type: application/json\r\n\r\n{\"message\":\"no such job: 9\"}";
        let (s, b) = parse_response(raw).expect("parse");
        assert_eq!(s, 404);
        assert_eq!(error_text(s, &b), "no such job: 9");
        assert!(parse_response(b"HTTP/1.0 200").is_err());
    }

    #[test]
    fn table_shows_progress_and_args() {
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(100);
        let j = JobSummary {
            id: 7,
            name: "image.create".into(),
            args: [("fromImage".to_string(), vec!["busybox".to_string()])].into(),
            started: "1970-01-01T00:01:00Z".into(),
            status: "running".into(),
            progress: Some(berth_api::jobs::JobProgress {
                message: "abc: Downloading".into(),
                current: Some(5),
                total: Some(20),
            }),
        };
        let t = table(&[j], now);
        let line = t.lines().nth(1).expect("row");
        assert!(line.starts_with("7 "), "{t}");
        assert!(line.contains("40 seconds ago"), "{t}");
        assert!(line.contains("25% abc: Downloading"), "{t}");
        assert!(line.ends_with("fromImage=busybox"), "{t}");
    }
}
