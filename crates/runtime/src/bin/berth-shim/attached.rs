//! Who gets the container's output besides the log: the client attached before
//! the start (the shim's stdout, see `berth_runtime::shim::StartArgs::attach`)
//! and those that connected to the attach socket while it runs
//! (`berth_runtime::attachsock`). Each gets every chunk from when it came; one
//! that goes away gets nothing more. Writes block, as dockerd's attach streams
//! do: a client that stops reading holds the container's output back.

use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::{UnixListener, UnixStream};

pub(crate) struct Attached {
    /// The stream of the client attached before the start.
    first: Option<std::fs::File>,
    /// The attach socket, polled with the output.
    listener: Option<UnixListener>,
    conns: Vec<UnixStream>,
}

impl Attached {
    pub(crate) fn new(first: Option<std::fs::File>, listener: Option<UnixListener>) -> Attached {
        Attached {
            first,
            listener,
            conns: Vec::new(),
        }
    }

    /// What to poll for new clients.
    pub(crate) fn listen_fd(&self) -> Option<BorrowedFd<'_>> {
        self.listener.as_ref().map(|l| l.as_fd())
    }

    /// Takes the clients waiting on the socket (it does not block).
    pub(crate) fn accept(&mut self) {
        let Some(l) = &self.listener else { return };
        while let Ok((s, _)) = l.accept() {
            // Accepted sockets block (Linux does not pass O_NONBLOCK on): the
            // writes below are whole.
            self.conns.push(s);
        }
    }

    /// Whether anyone is there to be written to.
    pub(crate) fn any(&self) -> bool {
        self.first.is_some() || !self.conns.is_empty()
    }

    /// `bytes` to every client still there.
    pub(crate) fn send(&mut self, bytes: &[u8]) {
        if self
            .first
            .as_mut()
            .is_some_and(|a| a.write_all(bytes).is_err())
        {
            self.first = None;
        }
        self.conns.retain_mut(|c| c.write_all(bytes).is_ok());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn each_client_gets_what_came_after_it_and_one_gone_is_dropped() {
        let dir = std::env::temp_dir().join(format!("berth-attached-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join(berth_runtime::attachsock::NAME);
        let l = berth_runtime::attachsock::listen(&path).expect("listen");
        let mut a = Attached::new(None, Some(l));
        a.send(b"before anyone ");
        let mut one = berth_runtime::attachsock::connect(&path).expect("connect");
        a.accept();
        a.send(b"one ");
        let gone = berth_runtime::attachsock::connect(&path).expect("connect");
        a.accept();
        drop(gone);
        a.send(b"two");
        a.send(b"");
        assert_eq!(a.conns.len(), 1, "the client that left is dropped");
        drop(a);
        let mut got = String::new();
        one.read_to_string(&mut got).expect("read");
        assert_eq!(got, "one two");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
