//! Output handed from the shim straight to a client attached before a start
//! (`docker run`, `docker start -a`, compose's `up`). The shim writes each chunk
//! of the container's output, already framed as the client wants it, to a pipe
//! the daemon reads and passes on: attached output then costs no log-file read,
//! inotify wake-up or JSON parse, which were most of the daemon's work on a
//! chatty `docker run`. The log is written all the same. A client attaching to a
//! running container reads the shim's attach socket instead (the same stream,
//! from then on; see `berth_runtime::attachsock`). One that comes while a start
//! is under way, or after another client took the stream, follows the log.

use std::pin::Pin;
use std::sync::Mutex;

use berth_api::{ApiError, Result};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::Entry;

/// The shim's attach stream: frames without a terminal, raw bytes with one.
pub type LiveOutput = Pin<Box<dyn AsyncRead + Send>>;

/// Clients waiting for the next start's stream.
#[derive(Default)]
pub(crate) struct Waiters(Mutex<Vec<oneshot::Sender<LiveOutput>>>);

impl Waiters {
    pub(crate) fn register(&self) -> oneshot::Receiver<LiveOutput> {
        let (tx, rx) = oneshot::channel();
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(tx);
        rx
    }

    /// At a start: the clients still waiting (the shim is asked for a stream
    /// only when there are some).
    pub(crate) fn take(&self) -> Vec<oneshot::Sender<LiveOutput>> {
        let mut l = self.0.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut *l)
            .into_iter()
            .filter(|tx| !tx.is_closed())
            .collect()
    }
}

/// The first waiter still there gets the stream; the others, when their
/// sender drops, follow the log. Called before the container is marked running.
pub(crate) fn hand_over(waiters: Vec<oneshot::Sender<LiveOutput>>, mut out: LiveOutput) {
    for tx in waiters {
        match tx.send(out) {
            Ok(()) => return,
            Err(back) => out = back,
        }
    }
}

/// The stream of the start that took `rx`; `None` when that start gave it to
/// another client, could not start, or came before `rx` was registered (the
/// container then shows as running with `rx` still empty).
pub(crate) async fn next_start(
    mut rx: oneshot::Receiver<LiveOutput>,
    entry: &Entry,
) -> Option<LiveOutput> {
    let mut w = entry.watch.subscribe();
    tokio::select! {
        r = &mut rx => return r.ok(),
        _ = w.wait_for(|s| s.status == "running" || s.removed) => {}
    }
    rx.try_recv().ok()
}

/// Which output the client wants, and whether it is a terminal's.
#[derive(Clone, Copy)]
pub(crate) struct Want {
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// Passes the stream to `wr` until the shim closes it (the container's output
/// ended). A detach (`cancel`) or a client gone is `Cancelled`; dropping the
/// stream then tells the shim to stop copying to it.
pub(crate) async fn relay<W: AsyncWrite + Unpin>(
    mut live: LiveOutput,
    want: Want,
    cancel: CancellationToken,
    wr: &mut W,
) -> Result<()> {
    let mut buf = vec![0u8; 256 * 1024];
    // Frames pass as they are unless one stream is left out.
    let as_is = want.tty || (want.stdout && want.stderr);
    let mut demux = (!as_is).then(|| Demux::new(want.stdout, want.stderr));
    let mut picked = Vec::new();
    loop {
        let n = tokio::select! {
            r = live.read(&mut buf) => match r {
                Ok(0) | Err(_) => return Ok(()),
                Ok(n) => n,
            },
            _ = cancel.cancelled() => return Err(ApiError::cancelled()),
        };
        let data = match demux.as_mut() {
            _ if want.tty && !want.stdout => continue,
            Some(d) => {
                picked.clear();
                d.feed(&buf[..n], &mut picked);
                &picked[..]
            }
            None => &buf[..n],
        };
        if data.is_empty() {
            continue;
        }
        tokio::select! {
            r = wr.write_all(data) => r.map_err(|_| ApiError::cancelled())?,
            _ = cancel.cancelled() => return Err(ApiError::cancelled()),
        }
    }
}

/// Keeps the frames of the wanted streams from a stream of frames that may be
/// cut anywhere.
pub(crate) struct Demux {
    /// Indexed by stream number (0 stdin, 1 stdout, 2 stderr).
    want: [bool; 3],
    head: [u8; 8],
    have: usize,
    /// Bytes left of the current frame's data.
    left: usize,
    keep: bool,
}

impl Demux {
    pub(crate) fn new(stdout: bool, stderr: bool) -> Demux {
        Demux {
            want: [false, stdout, stderr],
            head: [0; 8],
            have: 0,
            left: 0,
            keep: false,
        }
    }

    pub(crate) fn feed(&mut self, mut data: &[u8], out: &mut Vec<u8>) {
        while !data.is_empty() {
            if self.left == 0 {
                let take = (8 - self.have).min(data.len());
                self.head[self.have..self.have + take].copy_from_slice(&data[..take]);
                self.have += take;
                data = &data[take..];
                if self.have < 8 {
                    return;
                }
                self.have = 0;
                let [_, _, _, _, a, b, c, d] = self.head;
                self.left = u32::from_be_bytes([a, b, c, d]) as usize;
                self.keep = self
                    .want
                    .get(usize::from(self.head[0]))
                    .copied()
                    .unwrap_or(false);
                if self.keep {
                    out.extend_from_slice(&self.head);
                }
                continue;
            }
            let take = self.left.min(data.len());
            if self.keep {
                out.extend_from_slice(&data[..take]);
            }
            self.left -= take;
            data = &data[take..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_runtime::shim::frame_header;

    fn frames(parts: &[(u8, &str)]) -> Vec<u8> {
        let mut v = Vec::new();
        for (s, t) in parts {
            v.extend_from_slice(&frame_header(*s, t.len() as u32));
            v.extend_from_slice(t.as_bytes());
        }
        v
    }

    #[test]
    fn demux_keeps_wanted_frames_whatever_the_cuts() {
        let all = frames(&[(1, "out one\n"), (2, "err\n"), (1, "out two\n"), (2, "")]);
        let want = frames(&[(1, "out one\n"), (1, "out two\n")]);
        for cut in 1..all.len() {
            let mut d = Demux::new(true, false);
            let mut out = Vec::new();
            for piece in all.chunks(cut) {
                d.feed(piece, &mut out);
            }
            assert_eq!(out, want, "cut every {cut} bytes");
        }
        let mut d = Demux::new(false, true);
        let mut out = Vec::new();
        d.feed(&all, &mut out);
        assert_eq!(out, frames(&[(2, "err\n"), (2, "")]));
    }

    #[tokio::test]
    async fn relay_filters_and_ends_with_the_stream() {
        let data = frames(&[(1, "a"), (2, "b"), (1, "c")]);
        let mut out = Vec::new();
        let want = Want {
            stdout: false,
            stderr: true,
            tty: false,
        };
        let live: LiveOutput = Box::pin(std::io::Cursor::new(data.clone()));
        relay(live, want, CancellationToken::new(), &mut out)
            .await
            .expect("relay");
        assert_eq!(out, frames(&[(2, "b")]));
        // Everything wanted: the frames pass as they are.
        let mut out = Vec::new();
        let live: LiveOutput = Box::pin(std::io::Cursor::new(data.clone()));
        let both = Want {
            stdout: true,
            ..want
        };
        relay(live, both, CancellationToken::new(), &mut out)
            .await
            .expect("relay");
        assert_eq!(out, data);
    }

    #[tokio::test]
    async fn a_detach_ends_the_relay_and_the_first_waiter_gets_the_stream() {
        let (mut w, r) = tokio::io::duplex(64);
        let cancel = CancellationToken::new();
        let c2 = cancel.clone();
        let want = Want {
            stdout: true,
            stderr: true,
            tty: true,
        };
        let task = tokio::spawn(async move {
            let mut out = Vec::new();
            relay(Box::pin(r), want, c2, &mut out).await.map(|()| out)
        });
        w.write_all(b"x").await.expect("write");
        cancel.cancel();
        let r = task.await.expect("join");
        assert!(r.is_err_and(|e| e.kind == berth_api::ErrorKind::Cancelled));

        let waiters = Waiters::default();
        let gone = waiters.register();
        let first = waiters.register();
        let second = waiters.register();
        drop(gone);
        let taken = waiters.take();
        assert_eq!(taken.len(), 2);
        assert!(waiters.take().is_empty());
        hand_over(taken, Box::pin(std::io::Cursor::new(Vec::new())));
        assert!(first.await.is_ok());
        assert!(second.await.is_err(), "the second follows the log");
    }
}
