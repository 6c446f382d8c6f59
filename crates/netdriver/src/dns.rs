//! The embedded DNS server at 127.0.0.11 inside containers on user-defined
//! networks, as dockerd's: names of containers on the asking container's networks
//! (and their aliases) are answered here; every other question goes, unchanged,
//! to the host's resolvers.
//!
//! The socket is created inside the container's namespace (a socket stays in the
//! namespace it was made in) and served from the daemon's runtime, so no process
//! or firewall rule is needed in the container.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket as StdUdp};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::net::UdpSocket;

use crate::Result;

/// Where containers find the embedded server.
pub const ADDRESS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);

/// Answers a name for one container: its networks' containers and aliases,
/// IPv4 and IPv6 addresses alike.
pub type Lookup = Arc<dyn Fn(&str) -> Option<Vec<std::net::IpAddr>> + Send + Sync>;

/// A running server; it stops when dropped.
pub struct Server {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds 127.0.0.11:53 inside the namespace at `netns` (blocking) and serves it
/// on the current runtime.
pub fn serve(netns: &Path, lookup: Lookup, upstream: Vec<SocketAddr>) -> Result<Server> {
    let sock = crate::netns::run_in(netns, || {
        let s = StdUdp::bind(SocketAddr::from((ADDRESS, 53)))?;
        s.set_nonblocking(true)?;
        Ok(s)
    })?;
    let sock = Arc::new(UdpSocket::from_std(sock)?);
    let upstream = Arc::new(upstream);
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                continue;
            };
            let q = buf[..n].to_vec();
            let (s, l, u) = (sock.clone(), lookup.clone(), upstream.clone());
            tokio::spawn(async move {
                if let Some(reply) = answer(&q, &l, &u).await {
                    let _ = s.send_to(&reply, from).await;
                }
            });
        }
    });
    Ok(Server { task })
}

/// The reply to one query packet, or None to stay silent (garbage in).
pub async fn answer(q: &[u8], lookup: &Lookup, upstream: &[SocketAddr]) -> Option<Vec<u8>> {
    let msg = Message::from_vec(q).ok()?;
    if msg.metadata.message_type != MessageType::Query {
        return None;
    }
    let local = match msg.queries.first() {
        Some(query) if msg.metadata.op_code == OpCode::Query => {
            let name = query.name().to_ascii();
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            lookup(&name).map(|ips| (query.clone(), ips))
        }
        _ => None,
    };
    if let Some((query, ips)) = local {
        let mut r = Message::response(msg.metadata.id, msg.metadata.op_code);
        r.metadata.recursion_desired = msg.metadata.recursion_desired;
        r.metadata.recursion_available = true;
        r.add_query(query.clone());
        // A name we own: A records for its IPv4 addresses, AAAA for IPv6,
        // an empty answer for anything else.
        for ip in ips {
            let data = match (query.query_type(), ip) {
                (RecordType::A, std::net::IpAddr::V4(a)) => RData::A(A(a)),
                (RecordType::AAAA, std::net::IpAddr::V6(a)) => {
                    RData::AAAA(hickory_proto::rr::rdata::AAAA(a))
                }
                _ => continue,
            };
            r.add_answer(Record::from_rdata(query.name().clone(), 600, data));
        }
        return r.to_vec().ok();
    }
    for up in upstream {
        if let Some(reply) = forward(q, *up).await {
            return Some(reply);
        }
    }
    let mut r = Message::error_msg(
        msg.metadata.id,
        msg.metadata.op_code,
        ResponseCode::ServFail,
    );
    for query in &msg.queries {
        r.add_query(query.clone());
    }
    r.to_vec().ok()
}

async fn forward(q: &[u8], to: SocketAddr) -> Option<Vec<u8>> {
    let s = UdpSocket::bind(if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" })
        .await
        .ok()?;
    s.connect(to).await.ok()?;
    s.send(q).await.ok()?;
    let mut buf = vec![0u8; 65536];
    let n = tokio::time::timeout(Duration::from_secs(5), s.recv(&mut buf))
        .await
        .ok()?
        .ok()?;
    buf.truncate(n);
    Some(buf)
}

/// The host's resolvers from a resolv.conf text, as `ip:53` addresses.
pub fn upstream_from(resolv: &str) -> Vec<SocketAddr> {
    resolv
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::Name;

    fn query(name: &str, t: RecordType) -> Vec<u8> {
        let mut m = Message::query();
        m.metadata.id = 77;
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).expect("name"), t));
        m.to_vec().expect("encode")
    }

    fn lookup() -> Lookup {
        Arc::new(|n: &str| {
            (n == "web" || n == "web.net1").then(|| vec![Ipv4Addr::new(10, 5, 0, 2).into()])
        })
    }

    #[tokio::test]
    async fn container_names_are_answered_locally() {
        let r = answer(&query("web.", RecordType::A), &lookup(), &[])
            .await
            .expect("reply");
        let m = Message::from_vec(&r).expect("decode");
        assert_eq!(m.metadata.id, 77);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(m.answers.len(), 1);
        assert_eq!(m.answers[0].data, RData::A(A(Ipv4Addr::new(10, 5, 0, 2))));
        // Known name, other type: an empty answer, not a forward.
        let r = answer(&query("WEB.net1.", RecordType::AAAA), &lookup(), &[])
            .await
            .expect("reply");
        let m = Message::from_vec(&r).expect("decode");
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.answers.is_empty());
        // A dual-stack name: AAAA answers its IPv6 address only.
        let both: Lookup = Arc::new(|n: &str| {
            (n == "db").then(|| {
                vec![
                    Ipv4Addr::new(10, 5, 0, 3).into(),
                    "fd00::3".parse::<std::net::Ipv6Addr>().expect("v6").into(),
                ]
            })
        });
        let r = answer(&query("db.", RecordType::AAAA), &both, &[])
            .await
            .expect("reply");
        let m = Message::from_vec(&r).expect("decode");
        assert_eq!(m.answers.len(), 1);
        assert_eq!(
            m.answers[0].data,
            RData::AAAA(hickory_proto::rr::rdata::AAAA(
                "fd00::3".parse().expect("v6")
            ))
        );
    }

    #[tokio::test]
    async fn other_names_go_upstream() {
        // A fake upstream on loopback.
        let up = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = up.local_addr().expect("addr");
        tokio::spawn(async move {
            let mut b = vec![0u8; 512];
            if let Ok((n, from)) = up.recv_from(&mut b).await {
                let q = Message::from_vec(&b[..n]).expect("query");
                let mut r = Message::response(q.metadata.id, OpCode::Query);
                r.add_query(q.queries[0].clone());
                r.add_answer(Record::from_rdata(
                    q.queries[0].name().clone(),
                    5,
                    RData::A(A(Ipv4Addr::new(1, 2, 3, 4))),
                ));
                let _ = up.send_to(&r.to_vec().expect("enc"), from).await;
            }
        });
        let r = answer(
            &query("elsewhere.example.", RecordType::A),
            &lookup(),
            &[addr],
        )
        .await
        .expect("reply");
        let m = Message::from_vec(&r).expect("decode");
        assert_eq!(m.answers[0].data, RData::A(A(Ipv4Addr::new(1, 2, 3, 4))));
        // No upstream at all: SERVFAIL, not silence.
        let r = answer(&query("elsewhere.example.", RecordType::A), &lookup(), &[])
            .await
            .expect("reply");
        assert_eq!(
            Message::from_vec(&r)
                .expect("decode")
                .metadata
                .response_code,
            ResponseCode::ServFail
        );
        assert!(answer(b"garbage", &lookup(), &[]).await.is_none());
        assert_eq!(
            upstream_from("nameserver 10.0.0.1\nsearch x\nnameserver ::1\n").len(),
            2
        );
    }
}
