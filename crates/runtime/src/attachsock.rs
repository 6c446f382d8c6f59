//! The shim's attach socket: a unix socket in the container's bundle where a
//! client attaching to a container that already runs (`docker attach`) gets its
//! output from that moment on, straight from the shim's copy loop, in the same
//! form as the attach stream of a start (`shim::frame_header` frames without
//! a terminal, raw bytes with one). It ends when the container's output does.
//!
//! A socket address holds 108 bytes and a bundle's path under a long exec root
//! may not fit, so both sides name the socket through a descriptor of its
//! directory (`/proc/self/fd/N/attach.sock`), which always does.

use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

/// The socket's name in the bundle.
pub const NAME: &str = "attach.sock";

/// Runs `f` with a short path naming `path`, through its directory's descriptor.
fn short<T>(path: &Path, f: impl FnOnce(&Path) -> std::io::Result<T>) -> std::io::Result<T> {
    use std::os::unix::fs::OpenOptionsExt;
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{}: not a socket path", path.display()),
        ));
    };
    let d = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)?;
    let p = Path::new("/proc/self/fd")
        .join(d.as_raw_fd().to_string())
        .join(name);
    f(&p)
}

/// The shim's side: listens at `path` (replacing a socket a dead shim left),
/// without blocking, so the copy loop polls it with the output.
pub fn listen(path: &Path) -> std::io::Result<UnixListener> {
    short(path, |p| {
        match std::fs::remove_file(p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let l = UnixListener::bind(p)?;
        l.set_nonblocking(true)?;
        Ok(l)
    })
}

/// The daemon's side: the container's output from now on. Fails when no shim
/// listens there (a shim of a daemon before this socket, or one that ended).
pub fn connect(path: &Path) -> std::io::Result<UnixStream> {
    short(path, |p| UnixStream::connect(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn a_long_directory_still_names_the_socket() {
        let base = std::env::temp_dir().join(format!("berth-attachsock-{}", std::process::id()));
        let dir = base.join("a".repeat(100)).join("b".repeat(64));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join(NAME);
        assert!(connect(&path).is_err(), "nothing listens yet");
        // A socket file left behind is replaced.
        drop(listen(&path).expect("first listen"));
        let l = listen(&path).expect("listen over a stale socket");
        let mut c = connect(&path).expect("connect");
        let (mut s, _) = loop {
            match l.accept() {
                Ok(a) => break a,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("accept: {e}"),
            }
        };
        s.write_all(b"out").expect("write");
        drop(s);
        let mut got = String::new();
        c.read_to_string(&mut got).expect("read");
        assert_eq!(got, "out");
        drop(l);
        let _ = std::fs::remove_dir_all(&base);
    }
}
