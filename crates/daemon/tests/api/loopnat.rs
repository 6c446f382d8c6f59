//! Published ports on the host's loopback by kernel NAT (dockerd's
//! `--userland-proxy=false` path, taken whenever the firewall is Berth's): the
//! host's connections go straight to the container, and the `route_localnet`
//! this needs on the bridge does not let containers reach the host's own
//! loopback services (CVE-2020-8558).

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use crate::images::busybox;
use crate::network::{inspect, web_args};

fn body_from(mut s: std::net::TcpStream) -> String {
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// Host sockets connected to `peer` (`ss`'s view: the proxy's connections
/// to the container would be there).
fn sockets_to(peer: &str) -> String {
    let o = std::process::Command::new("ss")
        .args(["-Htn", "dst", peer])
        .output()
        .expect("ss");
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn loopback_ports_go_by_kernel_nat() {
    let d = crate::daemon();
    let b = busybox(&d);
    let mut args = vec!["run", "-d", "--name", "web", "-p", "127.0.0.1::80"]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    args.extend(web_args(&b, "by-nat"));
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    d.cli_ok(&a);
    let addr = d.cli_ok(&["port", "web", "80"]).trim().to_string();
    let ip = inspect(&d, "web")["NetworkSettings"]["IPAddress"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut body = String::new();
    while !body.contains("by-nat") && Instant::now() < deadline {
        body = std::net::TcpStream::connect(&addr)
            .map(body_from)
            .unwrap_or_default();
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(body.contains("by-nat"), "{body}");
    let bridge_conf = format!("/proc/sys/net/ipv4/conf/{}/route_localnet", d.bridge);
    assert_eq!(
        std::fs::read_to_string(&bridge_conf)
            .expect("sysctl")
            .trim(),
        "1"
    );
    // An open connection: with a proxy in the way, the daemon would hold a
    // second one, from the host to the container; by NAT there is none.
    let held = std::net::TcpStream::connect(&addr).expect("connect");
    std::thread::sleep(Duration::from_millis(300));
    let theirs = sockets_to(&format!("{ip}:80"));
    assert!(
        theirs.is_empty(),
        "a host socket to the container: {theirs}"
    );
    // And that connection is the container's.
    assert!(body_from(held).contains("by-nat"));
    d.cli_ok(&["rm", "-f", "web"]);
}

/// What a container sends to 127.0.0.1:`port` through the host, where its own
/// loopback route is replaced by one via the gateway.
fn poke_host_loopback(d: &berth_testkit::TestDaemon, port: u16) {
    let gw = inspect(d, "prober")["NetworkSettings"]["Gateway"]
        .as_str()
        .unwrap_or("")
        .to_string();
    // nslookup sends one UDP datagram to the "server" given.
    let script = format!(
        "ip route del local 127.0.0.0/8 dev lo table local; \
         ip route del local 127.0.0.1 dev lo table local; \
         ip route replace 127.0.0.1/32 via {gw} dev eth0; \
         timeout 2 nslookup poke 127.0.0.1:{port} >/dev/null 2>&1; true"
    );
    d.cli_ok(&["exec", "prober", "sh", "-c", &script]);
}

#[test]
fn containers_stay_off_the_hosts_loopback() {
    let d = crate::daemon();
    let b = busybox(&d);
    // A port published, so the bridge routes loopback addresses.
    d.cli_ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        "127.0.0.1::80",
        &b,
        "sleep",
        "1000",
    ]);
    // A container that can route 127.0.0.1 out of its eth0, as an attacker
    // with NET_ADMIN in its own namespace could.
    d.cli_ok(&[
        "run",
        "-d",
        "--name",
        "prober",
        "--cap-add",
        "NET_ADMIN",
        "--sysctl",
        "net.ipv4.conf.eth0.route_localnet=1",
        &b,
        "sleep",
        "1000",
    ]);
    let service = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    service
        .set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let port = service.local_addr().expect("addr").port();
    poke_host_loopback(&d, port);
    let mut buf = [0u8; 512];
    let got = service.recv_from(&mut buf);
    assert!(got.is_err(), "a container reached 127.0.0.1: {got:?}");
    // The same with the guard taken out of this daemon's table: the datagram
    // arrives, so the check above can tell.
    let table = format!("berth-{}", d.bridge);
    let listed = std::process::Command::new("nft")
        .args(["-a", "list", "chain", "ip", &table, "input"])
        .output()
        .expect("nft");
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    let handle = listed
        .lines()
        .find(|l| l.contains("127.0.0.0/8") && l.contains("drop"))
        .and_then(|l| l.rsplit("handle ").next())
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|| panic!("no loopback guard in {listed}"));
    let st = std::process::Command::new("nft")
        .args(["delete", "rule", "ip", &table, "input", "handle", &handle])
        .status()
        .expect("nft");
    assert!(st.success());
    poke_host_loopback(&d, port);
    let got = service.recv_from(&mut buf);
    assert!(got.is_ok(), "without the guard the datagram should arrive");
    d.cli_ok(&["rm", "-f", "web", "prober"]);
}
