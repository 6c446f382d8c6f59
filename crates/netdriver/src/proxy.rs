//! The userland proxy (dockerd's `docker-proxy`, here tasks in the daemon): a
//! published port listens on the host address itself, so it answers on loopback
//! and from the host, where DNAT rules never apply.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, UdpSocket};

use crate::{Error, Result};

/// A UDP flow with no traffic for this long is forgotten.
const UDP_IDLE: Duration = Duration::from_secs(90);

/// A bound host port; the proxy runs until this is dropped.
#[derive(Debug)]
pub struct Proxy {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The kernel's ephemeral range, where dockerd takes random host ports.
pub fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().filter_map(|x| x.parse().ok());
            Some((it.next()?, it.next()?))
        })
        .unwrap_or((32768, 60999))
}

enum Bound {
    Tcp(std::net::TcpListener),
    Udp(std::net::UdpSocket),
}

fn bind(proto: &str, addr: SocketAddrV4) -> std::io::Result<Bound> {
    // SO_REUSEADDR as Go's listeners have it: a port in TIME_WAIT stays usable.
    let domain = libc::AF_INET;
    let (ty, udp) = match proto {
        "udp" => (libc::SOCK_DGRAM, true),
        _ => (libc::SOCK_STREAM, false),
    };
    // Safety: plain socket syscalls on a descriptor we own until it is wrapped.
    unsafe {
        let fd = libc::socket(domain, ty | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let owned = <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd);
        if !udp {
            let one: libc::c_int = 1;
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_REUSEADDR,
                &one as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as u32,
            );
        }
        let sa = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: addr.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*addr.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        if libc::bind(
            fd,
            &sa as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        ) < 0
        {
            return Err(std::io::Error::last_os_error());
        }
        if udp {
            Ok(Bound::Udp(std::net::UdpSocket::from(owned)))
        } else {
            if libc::listen(fd, 1024) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(Bound::Tcp(std::net::TcpListener::from(owned)))
        }
    }
}

fn bind_error(proto: &str, addr: SocketAddrV4, e: std::io::Error) -> Error {
    Error::Bind(format!(
        "Error starting userland proxy: listen {proto}4 {addr}: bind: {}",
        match e.raw_os_error() {
            Some(libc::EADDRINUSE) => "address already in use".to_string(),
            _ => e.to_string(),
        }
    ))
}

/// Binds `host_ip:host_port` (a free port of the ephemeral range when `host_port`
/// is 0, trying from `hint` on) and proxies to `target`. Needs a tokio runtime.
pub fn start(
    proto: &str,
    host_ip: Ipv4Addr,
    host_port: u16,
    hint: u16,
    target: SocketAddrV4,
) -> Result<Proxy> {
    let bound = if host_port != 0 {
        let a = SocketAddrV4::new(host_ip, host_port);
        (
            bind(proto, a).map_err(|e| bind_error(proto, a, e))?,
            host_port,
        )
    } else {
        let (lo, hi) = ephemeral_range();
        let span = u32::from(hi.saturating_sub(lo)) + 1;
        let start = u32::from(hint.clamp(lo, hi) - lo);
        let mut found = None;
        for i in 0..span {
            let port = lo + ((start + i) % span) as u16;
            if let Ok(b) = bind(proto, SocketAddrV4::new(host_ip, port)) {
                found = Some((b, port));
                break;
            }
        }
        found.ok_or_else(|| Error::Bind("no free host port in the ephemeral range".into()))?
    };
    let (b, port) = bound;
    let task = match b {
        Bound::Tcp(l) => {
            let l = TcpListener::from_std(l)?;
            tokio::spawn(tcp(l, target))
        }
        Bound::Udp(s) => {
            let s = UdpSocket::from_std(s)?;
            tokio::spawn(udp(Arc::new(s), target))
        }
    };
    Ok(Proxy { port, task })
}

async fn tcp(l: TcpListener, target: SocketAddrV4) {
    loop {
        let Ok((mut inbound, _)) = l.accept().await else {
            // Out of descriptors and the like: back off rather than spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        tokio::spawn(async move {
            let Ok(mut out) = TcpStream::connect(SocketAddr::V4(target)).await else {
                return;
            };
            let _ = inbound.set_nodelay(true);
            let _ = out.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
        });
    }
}

async fn udp(sock: Arc<UdpSocket>, target: SocketAddrV4) {
    let flows: Arc<tokio::sync::Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>> = Arc::default();
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, from)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        let existing = flows.lock().await.get(&from).cloned();
        let flow = match existing {
            Some(f) => f,
            None => {
                let Ok(f) = UdpSocket::bind("0.0.0.0:0").await else {
                    continue;
                };
                if f.connect(SocketAddr::V4(target)).await.is_err() {
                    continue;
                }
                let f = Arc::new(f);
                flows.lock().await.insert(from, f.clone());
                let (back, f2, flows2) = (sock.clone(), f.clone(), flows.clone());
                tokio::spawn(async move {
                    let mut b = vec![0u8; 65536];
                    while let Ok(Ok(n)) = tokio::time::timeout(UDP_IDLE, f2.recv(&mut b)).await {
                        let _ = back.send_to(&b[..n], from).await;
                    }
                    flows2.lock().await.remove(&from);
                });
                f
            }
        };
        let _ = flow.send(&buf[..n]).await;
    }
}
