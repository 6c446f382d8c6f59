//! Makes a bridge, a network namespace and a veth between them with
//! `berth-netdriver` alone, proves the namespace reaches the bridge, and removes
//! everything again (needs root):
//!
//! ```text
//! cargo run -p berth-netdriver --example bridge_netns -- bex0 10.253.7.1/24 /tmp/ns
//! ```
//!
//! The namespace gets the next address after the bridge's. A TCP connection from
//! inside it to a listener on the bridge's address shows the path works; prints
//! the two ends.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;

use berth_netdriver::{link, netns, subnet};
use ipnet::Ipv4Net;

type Error = Box<dyn std::error::Error>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let (Some(bridge), Some(cidr), Some(dir)) = (args.next(), args.next(), args.next()) else {
        return Err("usage: bridge_netns BRIDGE ADDR/PREFIX DIR".into());
    };
    let gw: Ipv4Net = cidr.parse()?;
    let inside_ip = Ipv4Addr::from(u32::from(gw.addr()) + 1);
    let ns = PathBuf::from(dir).join("example-ns");
    let h = link::connect()?;
    link::ensure_bridge(&h, &bridge, gw, None, "berth-netdriver example").await?;
    let veth = link::veth_name();
    let result = async {
        netns::create(&ns)?;
        let inside = link::Inside {
            ifname: "eth0".into(),
            addr: Ipv4Net::new(inside_ip, gw.prefix_len())?,
            mac: subnet::mac_for(inside_ip),
            gateway: Some(gw.addr()),
            mtu: None,
            addr6: None,
            gateway6: None,
            keep_mac: false,
            link_route: false,
        };
        link::attach(&h, &veth, &format!("{veth}p"), &bridge, &ns, inside, false).await?;
        link::lo_up(&ns)?;
        let listener = TcpListener::bind((gw.addr(), 0))?;
        let port = listener.local_addr()?.port();
        let server = std::thread::spawn(move || -> std::io::Result<String> {
            let (mut s, peer) = listener.accept()?;
            s.write_all(b"hello from the host\n")?;
            Ok(peer.to_string())
        });
        let got = netns::run_in(&ns, move || {
            let mut s = TcpStream::connect((gw.addr(), port))?;
            let mut line = String::new();
            s.read_to_string(&mut line)?;
            Ok(line)
        })?;
        let peer = server.join().map_err(|_| "listener thread panicked")??;
        println!("{peer} -> {}:{port}: {}", gw.addr(), got.trim());
        Ok::<(), Error>(())
    }
    .await;
    // The veth goes with the namespace; the bridge is ours to remove.
    let _ = netns::remove(&ns);
    let _ = link::delete(&h, &veth).await;
    link::delete(&h, &bridge).await?;
    result
}
