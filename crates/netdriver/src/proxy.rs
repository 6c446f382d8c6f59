//! The userland proxy (dockerd's `docker-proxy`, here tasks in the daemon): a
//! published port listens on the host address itself, so it answers on loopback
//! and from the host, where DNAT rules never apply.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, SocketAddrV4};
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

fn bind(proto: &str, addr: SocketAddr) -> std::io::Result<Bound> {
    use socket2::{Domain, Socket, Type};
    let udp = proto == "udp";
    let ty = if udp { Type::DGRAM } else { Type::STREAM };
    let s = Socket::new(Domain::for_address(addr), ty, None)?;
    // SO_REUSEADDR as Go's listeners have it: a port in TIME_WAIT stays usable.
    if !udp {
        s.set_reuse_address(true)?;
    }
    // `[::]` is IPv6 only: `0.0.0.0` of the same port is a binding of its own.
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    if udp {
        Ok(Bound::Udp(s.into()))
    } else {
        s.listen(1024)?;
        Ok(Bound::Tcp(s.into()))
    }
}

fn bind_error(proto: &str, addr: SocketAddr, e: std::io::Error) -> Error {
    let family = if addr.is_ipv6() { "6" } else { "4" };
    Error::Bind(format!(
        "Error starting userland proxy: listen {proto}{family} {addr}: bind: {}",
        match e.raw_os_error() {
            Some(libc::EADDRINUSE) => "address already in use".to_string(),
            _ => e.to_string(),
        }
    ))
}

/// Whether a failed IPv6 binding means the host has no IPv6 (then the IPv6
/// half of an unspecified binding is left out, as dockerd does).
pub fn no_ipv6(e: &Error) -> bool {
    // EAFNOSUPPORT (IPv6 off in the kernel), EADDRNOTAVAIL (`::1` missing).
    matches!(e, Error::Bind(m) if m.contains("(os error 97)") || m.contains("(os error 99)"))
}

/// Binds `host_ip:host_port` (a free port of the ephemeral range when `host_port`
/// is 0, trying from `hint` on) and proxies to `target`. Needs a tokio runtime.
pub fn start(
    proto: &str,
    host_ip: IpAddr,
    host_port: u16,
    hint: u16,
    target: SocketAddrV4,
) -> Result<Proxy> {
    let bound = if host_port != 0 {
        let a = SocketAddr::new(host_ip, host_port);
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
            if let Ok(b) = bind(proto, SocketAddr::new(host_ip, port)) {
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
            relay(&mut inbound, &mut out).await;
        });
    }
}

/// What each direction's pipe holds.
const PIPE: usize = 512 << 10;

/// Carries both directions until each is shut down. splice(2) moves the bytes
/// through a pipe in the kernel ([`PIPE`] a direction) without copying them to
/// and from user space; where no pipe can be had (out of descriptors), 64 KiB
/// buffers do it instead (tokio's default is 8 KiB: eight times the wake-ups).
async fn relay(a: &mut TcpStream, b: &mut TcpStream) {
    // A process-wide setting of the crate's: set once, before any pipe.
    static SIZE: std::sync::Once = std::sync::Once::new();
    SIZE.call_once(|| realm_io::set_pipe_size(PIPE));
    match (realm_io::Pipe::new(), realm_io::Pipe::new()) {
        (Ok(ab), Ok(ba)) => {
            let _ = realm_io::bidi_copy_buf(
                a,
                b,
                realm_io::CopyBuffer::new(ab),
                realm_io::CopyBuffer::new(ba),
            )
            .await;
        }
        _ => {
            let _ = tokio::io::copy_bidirectional_with_sizes(a, b, 64 << 10, 64 << 10).await;
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn data(n: usize) -> Vec<u8> {
        // Not a repeating pattern: a misordered or dropped chunk shows.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// A server that reads its whole request (to the client's half-close), then
    /// answers with the request reversed and closes.
    async fn reverser() -> SocketAddrV4 {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let SocketAddr::V4(addr) = l.local_addr().expect("addr") else {
            unreachable!("bound on IPv4")
        };
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut req = Vec::new();
                    s.read_to_end(&mut req).await.expect("request");
                    req.reverse();
                    s.write_all(&req).await.expect("answer");
                    s.shutdown().await.expect("shutdown");
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn carries_bulk_data_both_ways_and_half_closes() {
        let target = reverser().await;
        let p = start("tcp", IpAddr::from([127, 0, 0, 1]), 0, 0, target).expect("proxy");
        let sent = data(6 << 20);
        for _ in 0..3 {
            let mut c = TcpStream::connect(("127.0.0.1", p.port))
                .await
                .expect("dial");
            let (mut r, mut w) = c.split();
            let send = async {
                w.write_all(&sent).await.expect("send");
                // The server answers only once it sees the end of the request.
                w.shutdown().await.expect("half-close");
            };
            let mut got = Vec::new();
            let recv = r.read_to_end(&mut got);
            let ((), n) = tokio::join!(send, recv);
            assert_eq!(n.expect("receive"), sent.len());
            let mut want = sent.clone();
            want.reverse();
            assert!(got == want, "the bytes came back changed");
        }
    }

    #[tokio::test]
    async fn a_refused_target_closes_the_client() {
        // A port nothing listens on (bound, then closed).
        let gone = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let SocketAddr::V4(target) = gone.local_addr().expect("addr") else {
            unreachable!("bound on IPv4")
        };
        drop(gone);
        let p = start("tcp", IpAddr::from([127, 0, 0, 1]), 0, 0, target).expect("proxy");
        let mut c = TcpStream::connect(("127.0.0.1", p.port))
            .await
            .expect("dial");
        let mut buf = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(10), c.read_to_end(&mut buf))
            .await
            .expect("closed, not left hanging");
        assert_eq!(n.unwrap_or(0), 0);
    }
}
