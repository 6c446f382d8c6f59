//! Noticing that a client closed its connection while its answer is still
//! being made. hyper reads nothing while it writes a response, so a build whose
//! RUN prints nothing would never learn that its client left; Go's server (and
//! so dockerd) watches the connection and cancels the request. Here a duplicate
//! of the socket is watched: when peeking finds the end of the stream, the
//! token is cancelled.

use std::os::fd::{AsRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio_util::sync::CancellationToken;

/// A token cancelled when the peer of `fd` has closed (or on an error).
pub fn watch(fd: Option<OwnedFd>) -> CancellationToken {
    let token = CancellationToken::new();
    let Some(fd) = fd else { return token };
    // Safety: the AsyncFd owns the descriptor, open until it is dropped.
    let Ok(afd) = (unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }) else {
        return token;
    };
    let t = token.clone();
    tokio::spawn(async move {
        loop {
            let mut guard = tokio::select! {
                _ = t.cancelled() => return,
                g = afd.readable() => match g {
                    Ok(g) => g,
                    Err(_) => return,
                },
            };
            let mut b = [0u8; 1];
            // Safety: a valid socket and a one-byte buffer.
            let n = unsafe {
                libc::recv(
                    afd.get_ref().as_raw_fd(),
                    b.as_mut_ptr().cast(),
                    1,
                    libc::MSG_PEEK | libc::MSG_DONTWAIT,
                )
            };
            match n {
                0 => {
                    t.cancel();
                    return;
                }
                // The peer's end of the stream with bytes still unread before it
                // (over TLS, its close_notify, which nothing reads once the
                // response is out): gone too. The closed state never clears,
                // so waiting on would spin.
                n if n > 0 && guard.ready().is_read_closed() => {
                    t.cancel();
                    return;
                }
                // Data waits for hyper (a next request), or nothing yet: wait
                // for the next change.
                n if n > 0 => guard.clear_ready(),
                _ => {
                    let e = std::io::Error::last_os_error();
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::Interrupted
                    {
                        guard.clear_ready();
                    } else {
                        t.cancel();
                        return;
                    }
                }
            }
        }
    });
    token
}
