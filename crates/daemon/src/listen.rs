//! Turning `-H` addresses into listening sockets, and removing them at exit.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use berth_server::Listener;
use nix::unistd::{chown, Group};

/// A bound address and what must be removed when the daemon stops.
pub struct Bound {
    pub listener: Listener,
    pub socket_path: Option<PathBuf>,
}

/// dockerd's ports for `tcp://HOST` without one.
const PLAIN_PORT: u16 = 2375;
const TLS_PORT: u16 = 2376;

/// A `tcp://` address as dockerd reads it: the port defaults to 2375, or 2376
/// with TLS; an empty host is localhost.
fn tcp_addr(addr: &str, tls: bool) -> Result<std::net::SocketAddr, String> {
    let default_port = if tls { TLS_PORT } else { PLAIN_PORT };
    let addr = addr.trim_end_matches('/');
    let with_port = match addr.rsplit_once(':') {
        // "[::1]" alone, or an address with its port.
        Some((_, p)) if !addr.ends_with(']') && p.chars().all(|c| c.is_ascii_digit()) => {
            if p.is_empty() {
                format!("{addr}{default_port}")
            } else {
                addr.to_string()
            }
        }
        _ => format!("{addr}:{default_port}"),
    };
    let with_host = match with_port.strip_prefix(':') {
        Some(port) => format!("127.0.0.1:{port}"),
        None => with_port,
    };
    with_host.parse().map_err(|e| format!("{e}"))
}

pub async fn bind(
    host: &str,
    group: &str,
    group_explicit: bool,
    allow_remote_tcp: bool,
    tls: Option<&(berth_server::TlsAcceptor, bool)>,
) -> Result<Bound, String> {
    if let Some(path) = host.strip_prefix("unix://") {
        let path = PathBuf::from(if path.is_empty() {
            "/run/berth.sock"
        } else {
            path
        });
        return bind_unix(path, group, group_explicit).await;
    }
    if let Some(addr) = host.strip_prefix("tcp://") {
        let sa = tcp_addr(addr, tls.is_some())
            .map_err(|e| format!("invalid -H address {host:?}: {e}"))?;
        // Client certificates are the only authentication the API can have.
        let verified = tls.is_some_and(|(_, verify)| *verify);
        if !sa.ip().is_loopback() && !allow_remote_tcp && !verified {
            return Err(format!(
                "refusing to listen on {host}: without --tlsverify the API has no authentication; use --tlsverify with client certificates, a loopback address, or --allow-remote-tcp"
            ));
        }
        let l = tokio::net::TcpListener::bind(sa)
            .await
            .map_err(|e| format!("listening on {host}: {e}"))?;
        return Ok(Bound {
            listener: match tls {
                Some((a, _)) => Listener::Tls(l, a.clone()),
                None => Listener::Tcp(l),
            },
            socket_path: None,
        });
    }
    Err(format!(
        "invalid -H address {host:?}: use unix:///path or tcp://IP:PORT"
    ))
}

async fn bind_unix(path: PathBuf, group: &str, group_explicit: bool) -> Result<Bound, String> {
    if path.exists() {
        // A live socket belongs to another daemon: never steal it.
        if tokio::net::UnixStream::connect(&path).await.is_ok() {
            return Err(format!(
                "socket {} is in use by another daemon",
                path.display()
            ));
        }
        std::fs::remove_file(&path)
            .map_err(|e| format!("removing stale socket {}: {e}", path.display()))?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    let l = tokio::net::UnixListener::bind(&path)
        .map_err(|e| format!("listening on {}: {e}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| format!("chmod {}: {e}", path.display()))?;
    match Group::from_name(group) {
        Ok(Some(g)) => chown(&path, None, Some(g.gid))
            .map_err(|e| format!("chgrp {} {}: {e}", group, path.display()))?,
        _ if group_explicit => {
            return Err(format!(
                "group {group:?} not found for socket {}",
                path.display()
            ))
        }
        // dockerd's default group "docker" need not exist; the socket stays root's.
        _ => tracing::debug!(group, "socket group not found; socket stays owned by root"),
    }
    Ok(Bound {
        listener: Listener::Unix(l),
        socket_path: Some(path),
    })
}

/// The sockets systemd passed (`LISTEN_FDS`, from fd 3), taken once: `fd://`
/// takes every one, `fd://N` the one numbered N, as dockerd's listeners do.
pub struct Activated {
    fds: Vec<std::os::fd::RawFd>,
    taken: Vec<std::os::fd::RawFd>,
}

impl Activated {
    /// Reads and clears the activation environment (only for this process:
    /// `LISTEN_PID` must be ours).
    pub fn from_env() -> Activated {
        let pid_ok = std::env::var("LISTEN_PID")
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
            .is_some_and(|p| p == std::process::id());
        let n = std::env::var("LISTEN_FDS")
            .ok()
            .and_then(|n| n.parse::<i32>().ok())
            .unwrap_or(0);
        // Children (shims) must not see them.
        for v in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
            std::env::remove_var(v);
        }
        let fds: Vec<i32> = if pid_ok {
            (3..3 + n.max(0)).collect()
        } else {
            Vec::new()
        };
        for fd in &fds {
            // Safety: fds systemd passed us; only their close-on-exec flag changes.
            unsafe {
                libc::fcntl(*fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
        }
        Activated {
            fds,
            taken: Vec::new(),
        }
    }

    /// The listeners `host` (`fd://` or `fd://N`) names.
    pub fn take(&mut self, host: &str) -> Result<Vec<Bound>, String> {
        let rest = host.strip_prefix("fd://").unwrap_or("");
        if self.fds.is_empty() {
            return Err("no sockets found via socket activation: make sure the service was started by systemd".into());
        }
        let wanted: Vec<i32> = if rest.is_empty() {
            self.fds
                .iter()
                .copied()
                .filter(|f| !self.taken.contains(f))
                .collect()
        } else {
            let n: i32 = rest.parse().map_err(|_| {
                format!("failed to parse systemd fd address: should be a number: {rest}")
            })?;
            if !self.fds.contains(&n) {
                return Err(format!(
                    "too few socket activated files passed in by systemd: fd {n} is not one of them"
                ));
            }
            vec![n]
        };
        let mut out = Vec::new();
        for fd in wanted {
            if self.taken.contains(&fd) {
                continue;
            }
            self.taken.push(fd);
            out.push(listener_of(fd)?);
        }
        Ok(out)
    }
}

/// A listening socket systemd made, as a unix or TCP listener by its family.
fn listener_of(fd: std::os::fd::RawFd) -> Result<Bound, String> {
    use std::os::fd::FromRawFd;
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // Safety: a buffer of the size given.
    let r = unsafe {
        libc::getsockname(
            fd,
            (&mut addr as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(format!(
            "fd {fd} passed by systemd is not a socket: {}",
            std::io::Error::last_os_error()
        ));
    }
    let err = |e: std::io::Error| format!("socket-activated fd {fd}: {e}");
    match i32::from(addr.ss_family) {
        libc::AF_UNIX => {
            // Safety: systemd handed this listening socket to us alone.
            let l = unsafe { std::os::unix::net::UnixListener::from_raw_fd(fd) };
            l.set_nonblocking(true).map_err(err)?;
            Ok(Bound {
                listener: Listener::Unix(tokio::net::UnixListener::from_std(l).map_err(err)?),
                socket_path: None,
            })
        }
        libc::AF_INET | libc::AF_INET6 => {
            // Safety: as above.
            let l = unsafe { std::net::TcpListener::from_raw_fd(fd) };
            l.set_nonblocking(true).map_err(err)?;
            Ok(Bound {
                listener: Listener::Tcp(tokio::net::TcpListener::from_std(l).map_err(err)?),
                socket_path: None,
            })
        }
        f => Err(format!(
            "socket-activated fd {fd} has an unsupported address family {f}"
        )),
    }
}

/// `sd_notify`: a state line to the service manager, if it asked for them.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    let r = if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|a| sock.send_to_addr(state.as_bytes(), &a))
    } else {
        sock.send_to(state.as_bytes(), &path)
    };
    if let Err(e) = r {
        tracing::warn!(error = %e, "sd_notify");
    }
}

#[cfg(test)]
mod tests {
    use super::tcp_addr;

    #[test]
    fn tcp_addresses_take_dockerds_default_ports() {
        let a = |s: &str, tls: bool| tcp_addr(s, tls).map(|a| a.to_string());
        assert_eq!(a("127.0.0.1", false).as_deref(), Ok("127.0.0.1:2375"));
        assert_eq!(a("127.0.0.1", true).as_deref(), Ok("127.0.0.1:2376"));
        assert_eq!(a("127.0.0.1:", true).as_deref(), Ok("127.0.0.1:2376"));
        assert_eq!(a("0.0.0.0:4243", true).as_deref(), Ok("0.0.0.0:4243"));
        assert_eq!(a(":2376", true).as_deref(), Ok("127.0.0.1:2376"));
        assert_eq!(a("[::1]", true).as_deref(), Ok("[::1]:2376"));
        assert_eq!(a("[::1]:99", false).as_deref(), Ok("[::1]:99"));
        assert!(a("nope", false).is_err());
    }
}
