//! `POST /exec/{id}/start`: the exec's process started through its own
//! `berth-shim exec` (which joins the container through libcontainer's tenant
//! builder), attached over the hijacked connection or detached. Without a terminal
//! the process's stdio are pipes from the daemon handed through the shim
//! untouched; with one, the shim copies between those pipes and the pty.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use berth_api::container::{decode_optional, ExecStart};
use berth_api::stdcopy::{frame, StdStream};
use berth_api::{ApiError, ApiVersion, Result};
use berth_engine::{Job, Reply};
use berth_runtime::exec::{exec_process, ExecConfig};
use berth_runtime::shim::{ExecArgs, Report as ShimReport};
use berth_runtime::spec::host_capabilities;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use crate::exec::{exec_dir, exec_event, finish, not_running, Exec, ExecState};
use crate::sys;
use crate::{shim_command, Containers, Entry};

pub(crate) fn dev_null() -> Result<OwnedFd> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map(OwnedFd::from)
        .map_err(sys)
}

pub(crate) fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| sys(format!("pipe: {e}")))
}

/// Docker's text for an exec that could not start (and its exit code, 126).
pub(crate) fn start_error(cmd0: &str, msg: &str) -> String {
    let m = msg.to_ascii_lowercase();
    // Already in runc's words (both runtimes word them so): from there on.
    let runc_words = ["exec: \"", "chdir to cwd"]
        .iter()
        .find_map(|w| msg.find(w));
    let why = if let Some(i) = runc_words {
        msg[i..].to_string()
    } else if m.contains("not found") || m.contains("no such file") {
        format!("exec: \"{cmd0}\": executable file not found in $PATH")
    } else if m.contains("permission denied")
        || m.contains("does not have correct permissions")
        || m.contains("exec format")
    {
        format!("exec: \"{cmd0}\": permission denied")
    } else {
        msg.to_string()
    };
    format!(
        "OCI runtime exec failed: exec failed: unable to start container process: {why}: unknown"
    )
}

/// The exec's process spec: the container's, with the exec's command, user,
/// environment and directory. Blocking (reads the bundle and the image's passwd).
pub(crate) fn write_process(
    c: &Containers,
    entry: &Entry,
    e: &Exec,
    dir: &std::path::Path,
) -> Result<()> {
    let rec = entry.snapshot();
    let bundle = c.run_dir(&rec.id).join("config.json");
    let spec: Value = std::fs::read(&bundle)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| not_running(&rec.id))?;
    let user = if e.user.is_empty() {
        rec.config.user.clone()
    } else {
        e.user.clone()
    };
    let merged = c.dir(&rec.id).join("merged");
    let (uid, gid, extra) = crate::user::resolve_user(&merged, &user)?;
    let extra = crate::user::group_add(&merged, &rec.host_config, extra)?;
    // The exec's own user's home, unless the container or the exec sets HOME.
    let container_home = rec.config.env.iter().any(|v| v.starts_with("HOME="));
    let env = if container_home {
        e.env.clone()
    } else {
        crate::user::with_home(e.env.clone(), &merged, uid)
    };
    let cfg = ExecConfig {
        args: e.cmd.clone(),
        env,
        cwd: e.workdir.clone(),
        uid,
        gid,
        additional_gids: extra,
        tty: e.tty,
        privileged: e.privileged,
        host_caps: if e.privileged {
            host_capabilities()
        } else {
            Vec::new()
        },
    };
    let process = exec_process(&spec["process"], &cfg);
    std::fs::create_dir_all(dir).map_err(sys)?;
    let b = serde_json::to_vec(&process).map_err(sys)?;
    berth_atomicfile::write(&dir.join("process.json"), &b).map_err(sys)?;
    if e.tty {
        let fifo = dir.join("resize.fifo");
        let _ = std::fs::remove_file(&fifo);
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .map_err(|e| sys(format!("resize fifo: {e}")))?;
    }
    Ok(())
}

/// The descriptors the exec shim hands on, and the daemon's ends of them.
pub(crate) struct Pipes {
    child: [OwnedFd; 3],
    stdin: Option<OwnedFd>,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
}

pub(crate) fn pipes(e: &Exec, detached: bool) -> Result<Pipes> {
    let (stdin, c0) = if e.stdin && !detached {
        let (r, w) = pipe()?;
        (Some(w), r)
    } else {
        (None, dev_null()?)
    };
    let (stdout, c1) = if detached {
        (None, dev_null()?)
    } else {
        let (r, w) = pipe()?;
        (Some(r), w)
    };
    // With a terminal everything comes out of the pty, through stdout.
    let (stderr, c2) = if detached || e.tty {
        (None, dev_null()?)
    } else {
        let (r, w) = pipe()?;
        (Some(r), w)
    };
    Ok(Pipes {
        child: [c0, c1, c2],
        stdin,
        stdout,
        stderr,
    })
}

/// The report channel of a running exec shim (descriptor 3 on its side).
type Report = tokio::io::Lines<tokio::io::BufReader<tokio::net::unix::pipe::Receiver>>;

/// The next line of an exec shim's report channel (None: it closed, or wrote
/// something unreadable).
pub(crate) async fn next_report(lines: &mut Report) -> Option<ShimReport> {
    let line = lines.next_line().await.ok().flatten()?;
    ShimReport::parse(&line).ok()
}

/// Starts `berth-shim exec` for `e` with `stdio` as its descriptors 0-2 and waits
/// for its first report: the process's PID, or the error that kept it from
/// starting (`Err` with the shim's text, the shim already reaped).
pub(crate) async fn spawn_exec_shim(
    c: &Containers,
    e: &Exec,
    dir: &std::path::Path,
    size: Option<(u64, u64)>,
    stdio: [OwnedFd; 3],
) -> Result<std::result::Result<(tokio::process::Child, i64, Report), String>> {
    let args = ExecArgs {
        id: e.container.clone(),
        state_root: c.exec_root.join("state"),
        process: dir.join("process.json"),
        dir: dir.to_path_buf(),
        tty: e.tty,
        resize: e.tty.then(|| dir.join("resize.fifo")),
        size: size.filter(|_| e.tty),
        runc: c.runtime_binary(&*c.find(&e.container)?)?,
    };
    let (report_r, report_w) = pipe()?;
    let mut cmd = shim_command(&c.shim);
    cmd.arg("exec").args(args.to_args());
    let [c0, c1, c2] = stdio;
    let report_fd = report_w.as_raw_fd();
    cmd.stdin(std::process::Stdio::from(c0))
        .stdout(std::process::Stdio::from(c1))
        .stderr(std::process::Stdio::from(c2))
        .kill_on_drop(false);
    // Safety: between fork and exec only dup2, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(report_fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn();
    drop(cmd);
    drop(report_w);
    let mut child = match child {
        Ok(ch) => ch,
        Err(err) => return Ok(Err(format!("starting the exec shim: {err}"))),
    };
    let report = tokio::net::unix::pipe::Receiver::from_owned_fd(report_r).map_err(sys)?;
    let mut lines = tokio::io::BufReader::new(report).lines();
    match next_report(&mut lines).await {
        Some(ShimReport::Started { pid }) => Ok(Ok((child, pid.into(), lines))),
        other => {
            let _ = child.wait().await;
            let raw = match &other {
                Some(ShimReport::Failed { error, .. }) => error.as_str(),
                _ => "the exec shim failed",
            };
            Ok(Err(start_error(
                e.cmd.first().map(String::as_str).unwrap_or(""),
                raw,
            )))
        }
    }
}

/// `POST /exec/{id}/start`.
pub(crate) async fn start(mut job: Job, c: Arc<Containers>) -> Result<Reply> {
    let e = c.execs.get(job.args.required("id")?)?;
    let req: ExecStart = decode_optional(job.args.body_bytes(), "ExecStartConfig")?;
    let detached = req.detach;
    {
        let mut bad = None;
        e.state.send_if_modified(|s| {
            if s.exit_code.is_some() {
                bad = Some(format!("Error: Exec command {} has already run", e.id));
                false
            } else if s.started {
                bad = Some(format!("Error: Exec command {} is already running", e.id));
                false
            } else {
                s.started = true;
                false
            }
        });
        if let Some(m) = bad {
            return Err(ApiError::conflict(m));
        }
    }
    let entry = match c.find(&e.container) {
        Ok(x) => x,
        Err(err) => {
            finish(&e, 126);
            return Err(err);
        }
    };
    if !entry.snapshot().state.running {
        finish(&e, 126);
        return Err(not_running(&e.container));
    }
    let dir = exec_dir(&c, &e);
    let prepared = {
        let (c2, en2, e2, d2) = (c.clone(), entry.clone(), e.clone(), dir.clone());
        tokio::task::spawn_blocking(move || write_process(&c2, &en2, &e2, &d2))
            .await
            .map_err(sys)?
    };
    if let Err(err) = prepared {
        finish(&e, 126);
        let _ = std::fs::remove_dir_all(&dir);
        return Err(err);
    }
    let size = req
        .console_size
        .map(|[h, w]| (h, w))
        .or(e.console_size)
        .filter(|(h, w)| *h > 0 && *w > 0);
    // Attached: the connection is taken over before the process starts, so an
    // error from here on goes into the stream, as with dockerd.
    // The start request's Tty, not the exec's, decides the framing, as dockerd
    // does: an exec with a terminal started without one (docker-py's default)
    // gets its terminal's output as stdout frames.
    let raw = req.tty;
    let io = if detached {
        None
    } else {
        let ct = if raw || job.args.version < ApiVersion::new(1, 42) {
            "application/vnd.docker.raw-stream"
        } else {
            "application/vnd.docker.multiplexed-stream"
        };
        Some(job.hijack(ct).await?)
    };
    let p = pipes(&e, detached)?;
    let started = spawn_exec_shim(&c, &e, &dir, size, p.child).await?;
    let (mut child, pid, mut lines) = match started {
        Ok(x) => x,
        Err(msg) => {
            let _ = tokio::fs::remove_dir_all(&dir).await;
            finish(&e, 126);
            return match io {
                Some(io) => {
                    write_error(io, raw, &msg).await;
                    Ok(Reply::empty(200))
                }
                None => Err(ApiError::system(msg)),
            };
        }
    };
    e.state.send_modify(|s| {
        s.running = true;
        s.pid = pid as i32;
    });
    let engine = job.engine().clone();
    exec_event(
        &engine,
        &c,
        &e,
        &format!("exec_start: {}", e.cmd.join(" ")),
        &[],
    );
    // The exit is recorded whatever becomes of the client's connection.
    let (e2, c2) = (e.clone(), c.clone());
    let reaper = tokio::spawn(async move {
        let code = match next_report(&mut lines).await {
            Some(ShimReport::Exited { exit_code }) => exit_code,
            _ => 126,
        };
        let _ = child.wait().await;
        finish(&e2, code);
        exec_event(
            &engine,
            &c2,
            &e2,
            "exec_die",
            &[("exitCode", code.to_string())],
        );
        let _ = tokio::fs::remove_dir_all(exec_dir(&c2, &e2)).await;
    });
    let Some(io) = io else {
        return Ok(Reply::empty(200));
    };
    // The CLI asks for the exit code as soon as the stream ends: record it first.
    // The detach keys end the client's session, not the process (input only).
    let keys = match p.stdin.is_some() {
        true => Some(crate::detach::parse(if e.detach_keys.is_empty() {
            crate::detach::DEFAULT
        } else {
            &e.detach_keys
        })?),
        false => None,
    };
    let done = e.state.subscribe();
    pump(io, raw, keys, done, p.stdin, p.stdout, p.stderr, reaper).await;
    Ok(Reply::empty(200))
}

pub(crate) async fn write_error(io: berth_engine::BoxedIo, tty: bool, msg: &str) {
    let (_, mut wr) = tokio::io::split(io);
    let text = format!("{msg}\r\n");
    let b = if tty {
        bytes::Bytes::from(text)
    } else {
        frame(StdStream::Stdout, text.as_bytes())
    };
    let _ = wr.write_all(&b).await;
    let _ = wr.shutdown().await;
}

/// Moves bytes between the client and the process until its output ends (or
/// the client types the detach keys); with `tty` the output goes raw, otherwise
/// in stdout/stderr frames.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn pump(
    io: berth_engine::BoxedIo,
    tty: bool,
    keys: Option<Vec<u8>>,
    mut done: watch::Receiver<ExecState>,
    stdin: Option<OwnedFd>,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    exited: tokio::task::JoinHandle<()>,
) {
    let (mut rd, wr) = tokio::io::split(io);
    let wr = Arc::new(tokio::sync::Mutex::new(wr));
    let detached = tokio_util::sync::CancellationToken::new();
    let detach = detached.clone();
    let input = tokio::spawn(async move {
        let mut sink = stdin.and_then(|fd| tokio::net::unix::pipe::Sender::from_owned_fd(fd).ok());
        let mut watcher = keys.map(crate::detach::Watcher::new);
        let mut buf = vec![0u8; 32 * 1024];
        let mut pass = Vec::with_capacity(buf.len());
        while let Ok(n) = rd.read(&mut buf).await {
            if n == 0 {
                break;
            }
            pass.clear();
            let ended = match watcher.as_mut() {
                Some(w) => w.feed(&buf[..n], &mut pass),
                None => {
                    pass.extend_from_slice(&buf[..n]);
                    false
                }
            };
            if let Some(f) = sink.as_mut() {
                if f.write_all(&pass).await.is_err() {
                    sink = None;
                }
            }
            if ended {
                detach.cancel();
                drop(rd);
                // A detach is not the end of the process's input: held until it ends.
                let _ = done.wait_for(|s| s.exit_code.is_some()).await;
                return;
            }
        }
        // Closing our end is the end of input the process sees.
        drop(sink);
    });
    let copy = |fd: Option<OwnedFd>, stream: StdStream| {
        let wr = wr.clone();
        async move {
            let Some(Ok(mut f)) = fd.map(tokio::net::unix::pipe::Receiver::from_owned_fd) else {
                return;
            };
            let mut buf = vec![0u8; 32 * 1024];
            let mut client_gone = false;
            // Read to the end even after the client left, so the process never
            // blocks on a full pipe.
            while let Ok(n) = f.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                if client_gone {
                    continue;
                }
                let b = if tty {
                    bytes::Bytes::copy_from_slice(&buf[..n])
                } else {
                    frame(stream, &buf[..n])
                };
                if wr.lock().await.write_all(&b).await.is_err() {
                    client_gone = true;
                }
            }
        }
    };
    let (out, err) = (
        copy(stdout, StdStream::Stdout),
        copy(stderr, StdStream::Stderr),
    );
    // The copies go on draining the process's output after a detach.
    let copies = tokio::spawn(async move {
        tokio::join!(out, err);
    });
    tokio::select! {
        _ = copies => {
            let _ = exited.await;
            let _ = wr.lock().await.shutdown().await;
            input.abort();
        }
        _ = detached.cancelled() => {
            // A copy blocked on a client that reads nothing holds the writer.
            if let Ok(mut w) = tokio::time::timeout(Duration::from_secs(2), wr.lock()).await {
                let _ = w.shutdown().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::start_error;

    #[test]
    fn start_errors_read_as_dockerds() {
        let pre = "OCI runtime exec failed: exec failed: unable to start container process: ";
        // In runc's words already (runc's own log line, or the shim's): kept from there.
        assert_eq!(
            start_error("x", "exec failed: unable to start container process: exec: \"x\": executable file not found in $PATH"),
            format!("{pre}exec: \"x\": executable file not found in $PATH: unknown")
        );
        assert_eq!(
            start_error("true", "chdir to cwd (\"/nope\") set in config.json failed: no such file or directory"),
            format!("{pre}chdir to cwd (\"/nope\") set in config.json failed: no such file or directory: unknown")
        );
        // Otherwise by what it says.
        assert_eq!(
            start_error("sh", "error 'EACCES: Permission denied' executing"),
            format!("{pre}exec: \"sh\": permission denied: unknown")
        );
    }
}
