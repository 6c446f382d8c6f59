//! The container's output on its way out: into the json-file log (as dockerd's
//! json-file driver writes it) and to the clients attached ([`Attached`]): the
//! one attached before the start and those on the attach socket.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};

use berth_runtime::exit::now;
use berth_runtime::logfile::{Limits, LineSplitter, LogWriter};
use berth_runtime::shim::frame_header;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::attached::Attached;
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
    mut attached: Attached,
) {
    let Some(mut file) = open_log(log, limits) else {
        return;
    };
    let mut splitter = LineSplitter::default();
    let input = stdin.and_then(open_fifo);
    copy_tty(master, input, sizes, false, &mut attached, |chunk| {
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

/// Moves a terminal's bytes: the master's output, as it is, to the clients
/// `attached` (new ones taken as they come) and to `sink`; `input` to the
/// master; `rows cols` lines from `sizes` to the master's window size. Returns
/// when the master reports that every slave descriptor is closed.
pub(crate) fn copy_tty(
    master: OwnedFd,
    mut input: Option<std::fs::File>,
    mut sizes: Option<std::fs::File>,
    input_ends: bool,
    attached: &mut Attached,
    mut sink: impl FnMut(&[u8]),
) {
    let mut out = std::fs::File::from(master);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let (m_ready, i_ready, r_ready, l_ready) = {
            let mut fds = vec![PollFd::new(out.as_fd(), PollFlags::POLLIN)];
            if let Some(i) = &input {
                fds.push(PollFd::new(i.as_fd(), PollFlags::POLLIN));
            }
            if let Some(r) = &sizes {
                fds.push(PollFd::new(r.as_fd(), PollFlags::POLLIN));
            }
            let l_idx = fds.len();
            if let Some(l) = attached.listen_fd() {
                fds.push(PollFd::new(l, PollFlags::POLLIN));
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
                ready(l_idx),
            )
        };
        if l_ready {
            // Before the output: a client that came first sees it.
            attached.accept();
        }
        if m_ready {
            match out.read(&mut buf) {
                // EIO: every slave descriptor closed, the container is gone.
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    attached.send(&buf[..n]);
                    sink(&buf[..n]);
                }
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
/// each chunk as a frame to the clients `attached`.
pub(crate) fn copy_output(
    log: &std::path::Path,
    limits: Limits,
    out: OwnedFd,
    err: OwnedFd,
    mut attached: Attached,
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
        let (ready, l_ready): (Vec<bool>, bool) = {
            let mut fds: Vec<PollFd> = attached
                .listen_fd()
                .map(|l| PollFd::new(l, PollFlags::POLLIN))
                .into_iter()
                .collect();
            let listening = !fds.is_empty();
            fds.extend(
                streams
                    .iter()
                    .filter(|s| s.3)
                    .map(|s| PollFd::new(s.0.as_fd(), PollFlags::POLLIN)),
            );
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
            let l_ready = listening && r.next().unwrap_or(false);
            let ready = streams
                .iter()
                .map(|s| s.3 && r.next().unwrap_or(false))
                .collect();
            (ready, l_ready)
        };
        if l_ready {
            // Before the output: a client that came first sees it.
            attached.accept();
        }
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
                    if attached.any() {
                        let fd = if s.1 == "stdout" { 1 } else { 2 };
                        buf[..HDR].copy_from_slice(&frame_header(fd, n as u32));
                        attached.send(&buf[..HDR + n]);
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
