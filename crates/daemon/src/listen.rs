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

pub async fn bind(
    host: &str,
    group: &str,
    group_explicit: bool,
    allow_remote_tcp: bool,
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
        let sa: std::net::SocketAddr = addr
            .parse()
            .map_err(|e| format!("invalid -H address {host:?}: {e}"))?;
        if !sa.ip().is_loopback() && !allow_remote_tcp {
            return Err(format!(
                "refusing to listen on {host}: the API has no authentication; use a loopback address or pass --allow-remote-tcp"
            ));
        }
        let l = tokio::net::TcpListener::bind(sa)
            .await
            .map_err(|e| format!("listening on {host}: {e}"))?;
        return Ok(Bound {
            listener: Listener::Tcp(l),
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
