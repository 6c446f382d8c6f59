//! The container's output on its way out: into the json-file log (as dockerd's
//! json-file driver writes it) and, while a client attached before the start
//! reads it, to the daemon as the attach stream (see `berth_runtime::shim`).

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};

use berth_runtime::exit::now;
use berth_runtime::logfile::{Limits, LineSplitter, LogWriter};
use berth_runtime::shim::frame_header;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::{open_fifo, set_size};

/// The json-file log, or why not on stderr (the shim's own log): without it
/// there is nowhere to copy to.
fn open_log(log: &std::path::Path, limits: Limits) -> Option<LogWriter> {
    LogWriter::open(log, limits)
        .map_err(|e| eprintln!("berth-shim: opening {}: {e}", log.display()))
        .ok()
}

/// Terminal mode: the master's output goes to the log as stdout; input from the
/// stdin FIFO and sizes from the resize FIFO go to the master.
pub(crate) fn copy_tty_to_log(
    log: &std::path::Path,
    limits: Limits,
    master: OwnedFd,
    stdin: Option<&std::path::Path>,
    sizes: Option<std::fs::File>,
    mut attach: Option<std::fs::File>,
) {
    let Some(mut file) = open_log(log, limits) else {
        return;
    };
    let mut splitter = LineSplitter::default();
    copy_tty(master, stdin.and_then(open_fifo), sizes, false, |chunk| {
        // The attached client gets the terminal's bytes as they are; one
        // that went away gets nothing more.
        if attach.as_mut().is_some_and(|a| a.write_all(chunk).is_err()) {
            attach = None;
        }
        let t = now();
        splitter.each(chunk, |line| {
            let _ = file.write("stdout", line, &t);
        });
        // A prompt without a newline must show up too.
        if let Some(rest) = splitter.finish() {
            let _ = file.write("stdout", &rest, &t);
        }
        let _ = file.flush();
    });
    file.sync();
}

/// Moves a terminal's bytes: the master's output to `sink`, `input` to the master,
/// `rows cols` lines from `sizes` to the master's window size. Returns when the
/// master reports that every slave descriptor is closed.
pub(crate) fn copy_tty(
    master: OwnedFd,
    mut input: Option<std::fs::File>,
    mut sizes: Option<std::fs::File>,
    input_ends: bool,
    mut sink: impl FnMut(&[u8]),
) {
    let mut out = std::fs::File::from(master);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let (m_ready, i_ready, r_ready) = {
            let mut fds = vec![PollFd::new(out.as_fd(), PollFlags::POLLIN)];
            if let Some(i) = &input {
                fds.push(PollFd::new(i.as_fd(), PollFlags::POLLIN));
            }
            if let Some(r) = &sizes {
                fds.push(PollFd::new(r.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    eprintln!("berth-shim: poll: {e}");
                    return;
                }
                Ok(_) => {}
            }
            let ready = |i: usize| {
                fds.get(i)
                    .is_some_and(|f| f.revents().is_some_and(|e| !e.is_empty()))
            };
            let i_idx = 1;
            let r_idx = if input.is_some() { 2 } else { 1 };
            (
                ready(0),
                input.is_some() && ready(i_idx),
                sizes.is_some() && ready(r_idx),
            )
        };
        if m_ready {
            match out.read(&mut buf) {
                // EIO: every slave descriptor closed, the container is gone.
                Ok(0) | Err(_) => break,
                Ok(n) => sink(&buf[..n]),
            }
        }
        if i_ready {
            if let Some(i) = input.as_mut() {
                match i.read(&mut buf) {
                    Ok(n) if n > 0 => {
                        let _ = out.write_all(&buf[..n]);
                    }
                    // End of input from a pipe is final; a FIFO opened read-write never ends.
                    Ok(_) if input_ends => input = None,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => input = None,
                }
            }
        }
        if r_ready {
            if let Some(r) = sizes.as_mut() {
                let mut b = [0u8; 256];
                if let Ok(n) = r.read(&mut b) {
                    for line in String::from_utf8_lossy(&b[..n]).lines() {
                        set_size(&out, line);
                    }
                } else {
                    sizes = None;
                }
            }
        }
    }
}

/// Copies both pipes into the json-file log until both reach end of file, and
/// each chunk as a frame to `attach` while its reader is there.
pub(crate) fn copy_output(
    log: &std::path::Path,
    limits: Limits,
    out: OwnedFd,
    err: OwnedFd,
    mut attach: Option<std::fs::File>,
) {
    let Some(mut file) = open_log(log, limits) else {
        return;
    };
    let mut streams: Vec<(std::fs::File, &str, LineSplitter, bool)> = vec![
        (
            std::fs::File::from(out),
            "stdout",
            LineSplitter::default(),
            true,
        ),
        (
            std::fs::File::from(err),
            "stderr",
            LineSplitter::default(),
            true,
        ),
    ];
    // The data goes after room for a frame header: header and chunk then
    // leave in one write.
    const HDR: usize = 8;
    let mut buf = vec![0u8; HDR + 256 * 1024];
    while streams.iter().any(|s| s.3) {
        let ready: Vec<bool> = {
            let mut fds: Vec<PollFd> = streams
                .iter()
                .filter(|s| s.3)
                .map(|s| PollFd::new(s.0.as_fd(), PollFlags::POLLIN))
                .collect();
            if let Err(e) = poll(&mut fds, PollTimeout::NONE) {
                if e == nix::errno::Errno::EINTR {
                    continue;
                }
                eprintln!("berth-shim: poll: {e}");
                return;
            }
            let mut r = fds
                .iter()
                .map(|f| f.revents().is_some_and(|e| !e.is_empty()));
            streams
                .iter()
                .map(|s| s.3 && r.next().unwrap_or(false))
                .collect()
        };
        for (s, go) in streams.iter_mut().zip(ready) {
            if !go {
                continue;
            }
            match s.0.read(&mut buf[HDR..]) {
                Ok(0) | Err(_) => {
                    s.3 = false;
                    if let Some(rest) = s.2.finish() {
                        let _ = file.write(s.1, &rest, &now());
                        let _ = file.flush();
                    }
                }
                Ok(n) => {
                    if let Some(a) = attach.as_mut() {
                        let fd = if s.1 == "stdout" { 1 } else { 2 };
                        buf[..HDR].copy_from_slice(&frame_header(fd, n as u32));
                        if a.write_all(&buf[..HDR + n]).is_err() {
                            attach = None;
                        }
                    }
                    let t = now();
                    let (stream, splitter) = (s.1, &mut s.2);
                    splitter.each(&buf[HDR..HDR + n], |line| {
                        let _ = file.write(stream, line, &t);
                    });
                    let _ = file.flush();
                }
            }
        }
    }
    file.sync();
}
