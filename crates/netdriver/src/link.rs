//! Links, addresses and routes over rtnetlink: bridges on the host, veth pairs
//! between a bridge and a container's namespace, and the container's side of them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::path::Path;

use futures_util::TryStreamExt;
use ipnet::{Ipv4Net, Ipv6Net};
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::link::LinkAttribute;
use netlink_packet_route::route::{RouteAddress, RouteAttribute};
pub use rtnetlink::Handle;
use rtnetlink::{LinkBridge, LinkUnspec, LinkVeth, RouteMessageBuilder};

use crate::{Error, Result};

fn nl(e: impl std::fmt::Display) -> Error {
    Error::Netlink(e.to_string())
}

fn is_errno(e: &rtnetlink::Error, errno: i32) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(m) if m.code.map(|c| c.get()) == Some(-errno))
}

/// A netlink connection in the calling thread's network namespace, driven by a
/// task on the current runtime.
pub fn connect() -> Result<Handle> {
    let (conn, handle, _) = rtnetlink::new_connection().map_err(nl)?;
    tokio::spawn(conn);
    Ok(handle)
}

pub async fn index_of(h: &Handle, name: &str) -> Result<Option<u32>> {
    let mut links = h.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(l)) => Ok(Some(l.header.index)),
        Ok(None) => Ok(None),
        Err(e) if is_errno(&e, libc::ENODEV) => Ok(None),
        Err(e) => Err(nl(e)),
    }
}

/// Creates the bridge if it is missing (its alias set to `owner`, so that a later
/// daemon can tell who made it), makes `gateway` (address and prefix) its one
/// IPv4 address, and brings it up. A bridge found with other addresses loses
/// them: two subnets on one bridge would route one of them to the wrong place.
pub async fn ensure_bridge(
    h: &Handle,
    name: &str,
    gateway: Ipv4Net,
    mtu: Option<u32>,
    owner: &str,
) -> Result<()> {
    let (idx, created) = match index_of(h, name).await? {
        Some(i) => (i, false),
        None => {
            let mut b = LinkBridge::new(name);
            if let Some(m) = mtu {
                b = b.mtu(m);
            }
            match h.link().add(b.build()).execute().await {
                Ok(()) => {}
                Err(e) if is_errno(&e, libc::EEXIST) => {}
                Err(e) => return Err(Error::Netlink(format!("creating bridge {name}: {e}"))),
            }
            let idx = index_of(h, name)
                .await?
                .ok_or_else(|| Error::Netlink(format!("bridge {name} vanished")))?;
            (idx, true)
        }
    };
    let have = addresses(h, idx).await?;
    for old in have.iter().filter(|a| **a != gateway) {
        tracing::info!(bridge = name, address = %old, "removing an address the bridge should not have");
        let mut s = h.address().get().set_link_index_filter(idx).execute();
        while let Some(m) = s.try_next().await.map_err(nl)? {
            let is_old = m.header.prefix_len == old.prefix_len()
                && m.attributes.iter().any(
                    |a| matches!(a, AddressAttribute::Address(IpAddr::V4(ip)) if *ip == old.addr()),
                );
            if is_old {
                h.address()
                    .del(m)
                    .execute()
                    .await
                    .map_err(|e| Error::Netlink(format!("readdressing bridge {name}: {e}")))?;
                break;
            }
        }
    }
    if !have.contains(&gateway) {
        match h
            .address()
            .add(idx, IpAddr::V4(gateway.addr()), gateway.prefix_len())
            .execute()
            .await
        {
            Ok(()) => {}
            Err(e) if is_errno(&e, libc::EEXIST) => {}
            Err(e) => return Err(Error::Netlink(format!("addressing bridge {name}: {e}"))),
        }
    }
    let mut up = LinkUnspec::new_with_index(idx).up();
    if created {
        up = up.append_extra_attribute(LinkAttribute::IfAlias(owner.to_string()));
    }
    h.link().set(up.build()).execute().await.map_err(nl)
}

/// What is on the host under a bridge's name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Existing {
    /// Its IPv4 addresses, with their prefixes.
    pub addrs: Vec<Ipv4Net>,
    /// Its alias: the owner Berth gave it when it made it (empty when unset).
    pub alias: String,
}

/// The interface called `name`, if there is one.
pub async fn existing(h: &Handle, name: &str) -> Result<Option<Existing>> {
    let mut links = h.link().get().match_name(name.to_string()).execute();
    let link = match links.try_next().await {
        Ok(Some(l)) => l,
        Ok(None) => return Ok(None),
        Err(e) if is_errno(&e, libc::ENODEV) => return Ok(None),
        Err(e) => return Err(nl(e)),
    };
    let alias = link
        .attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::IfAlias(s) => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_default();
    Ok(Some(Existing {
        addrs: addresses(h, link.header.index).await?,
        alias,
    }))
}

async fn addresses(h: &Handle, idx: u32) -> Result<Vec<Ipv4Net>> {
    let mut out = Vec::new();
    let mut s = h.address().get().set_link_index_filter(idx).execute();
    while let Some(m) = s.try_next().await.map_err(nl)? {
        for a in &m.attributes {
            if let AddressAttribute::Address(IpAddr::V4(ip)) = a {
                if let Ok(n) = Ipv4Net::new(*ip, m.header.prefix_len) {
                    out.push(n);
                }
            }
        }
    }
    Ok(out)
}

/// Deletes a link by name; a missing one is not an error.
pub async fn delete(h: &Handle, name: &str) -> Result<()> {
    let Some(idx) = index_of(h, name).await? else {
        return Ok(());
    };
    match h.link().del(idx).execute().await {
        Ok(()) => Ok(()),
        Err(e) if is_errno(&e, libc::ENODEV) => Ok(()),
        Err(e) => Err(nl(e)),
    }
}

/// Names of the interfaces attached to a bridge (its ports).
pub async fn ports_of(h: &Handle, bridge: &str) -> Result<Vec<String>> {
    let Some(br) = index_of(h, bridge).await? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let mut s = h.link().get().execute();
    while let Some(l) = s.try_next().await.map_err(nl)? {
        let on_bridge = l
            .attributes
            .iter()
            .any(|a| matches!(a, LinkAttribute::Controller(i) if *i == br));
        if on_bridge {
            if let Some(name) = l.attributes.iter().find_map(|a| match a {
                LinkAttribute::IfName(n) => Some(n.clone()),
                _ => None,
            }) {
                out.push(name);
            }
        }
    }
    Ok(out)
}

/// Every IPv4 network the host routes or has an address in (not the default
/// route), whatever the state of its link: subnets a new bridge must not overlap.
/// What belongs to the interface `except` is left out (the bridge being chosen
/// an address for).
pub async fn host_networks(h: &Handle, except: Option<&str>) -> Result<Vec<Ipv4Net>> {
    let skip = match except {
        Some(name) => index_of(h, name).await?,
        None => None,
    };
    let mut out = Vec::new();
    let mut s = h
        .route()
        .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
        .execute();
    while let Some(r) = s.try_next().await.map_err(nl)? {
        let len = r.header.destination_prefix_length;
        if len == 0 {
            continue;
        }
        if skip.is_some()
            && r.attributes
                .iter()
                .any(|a| matches!(a, RouteAttribute::Oif(i) if Some(*i) == skip))
        {
            continue;
        }
        for a in &r.attributes {
            if let RouteAttribute::Destination(RouteAddress::Inet(ip)) = a {
                if let Ok(n) = Ipv4Net::new(*ip, len) {
                    if !ip.is_loopback() {
                        out.push(n.trunc());
                    }
                }
            }
        }
    }
    let mut s = h.address().get().execute();
    while let Some(m) = s.try_next().await.map_err(nl)? {
        if Some(m.header.index) == skip {
            continue;
        }
        for a in &m.attributes {
            if let AddressAttribute::Address(IpAddr::V4(ip)) = a {
                if !ip.is_loopback() {
                    if let Ok(n) = Ipv4Net::new(*ip, m.header.prefix_len) {
                        out.push(n.trunc());
                    }
                }
            }
        }
    }
    Ok(out)
}

/// What the container's side of a veth gets inside its namespace.
#[derive(Debug, Clone)]
pub struct Inside {
    /// The name it gets (`eth0`, `eth1`, …).
    pub ifname: String,
    pub addr: Ipv4Net,
    pub mac: [u8; 6],
    /// Becomes the default route when set.
    pub gateway: Option<Ipv4Addr>,
    pub mtu: Option<u32>,
    /// On an IPv6 network: its address, and the default IPv6 route.
    pub addr6: Option<Ipv6Net>,
    pub gateway6: Option<Ipv6Addr>,
    /// The link keeps its own MAC address (ipvlan shares its parent's).
    pub keep_mac: bool,
    /// The default route goes out of the link itself, with no gateway
    /// (ipvlan l3: the parent's host routes for it).
    pub link_route: bool,
}

/// Creates a veth pair `host`/`peer`, puts `host` on `bridge` and up, moves `peer`
/// into the namespace at `netns` and configures it there. An `isolated` port
/// exchanges no frames with the bridge's other isolated ports.
pub async fn attach(
    h: &Handle,
    host: &str,
    peer: &str,
    bridge: &str,
    netns: &Path,
    inside: Inside,
    isolated: bool,
) -> Result<()> {
    let br = index_of(h, bridge)
        .await?
        .ok_or_else(|| Error::Netlink(format!("bridge {bridge} does not exist")))?;
    // The peer is created inside the namespace: moving a device between
    // namespaces afterwards waits for an RCU grace period.
    let ns = std::fs::File::open(netns)?;
    let mut peer_msg = rtnetlink::LinkMessageBuilder::<LinkUnspec>::new()
        .name(peer.to_string())
        .setns_by_fd(ns.as_raw_fd());
    // Each end of a veth has its own MTU: the container's too.
    if let Some(m) = inside.mtu {
        peer_msg = peer_msg.mtu(m);
    }
    let peer_msg = peer_msg.build();
    let mut v = rtnetlink::LinkMessageBuilder::<LinkVeth>::new_with_info_kind(
        rtnetlink::packet_route::link::InfoKind::Veth,
    )
    .name(host.to_string())
    .set_info_data(rtnetlink::packet_route::link::InfoData::Veth(
        rtnetlink::packet_route::link::InfoVeth::Peer(peer_msg),
    ));
    if let Some(m) = inside.mtu {
        v = v.mtu(m);
    }
    h.link()
        .add(v.build())
        .execute()
        .await
        .map_err(|e| Error::Netlink(format!("creating veth {host}: {e}")))?;
    drop(ns);
    let result = async {
        let hidx = index_of(h, host)
            .await?
            .ok_or_else(|| Error::Netlink(format!("veth {host} vanished")))?;
        h.link()
            .set(LinkUnspec::new_with_index(hidx).controller(br).up().build())
            .execute()
            .await
            .map_err(|e| Error::Netlink(format!("attaching {host} to {bridge}: {e}")))?;
        if isolated {
            use netlink_packet_route::link::{InfoBridgePort, InfoPortData, InfoPortKind};
            // RTM_NEWLINK on the existing link (what `ip link set … type
            // bridge_slave` sends): RTM_SETLINK ignores a port's settings.
            use rtnetlink::packet_core::{NLM_F_ACK, NLM_F_REQUEST};
            h.link()
                .add(
                    LinkUnspec::new_with_index(hidx)
                        .set_port_kind(InfoPortKind::Bridge)
                        .set_port_data(InfoPortData::BridgePort(vec![InfoBridgePort::Isolated(
                            true,
                        )]))
                        .build(),
                )
                .set_flags(NLM_F_REQUEST | NLM_F_ACK)
                .execute()
                .await
                .map_err(|e| Error::Netlink(format!("isolating {host} on {bridge}: {e}")))?;
        }
        let peer = peer.to_string();
        let netns = netns.to_path_buf();
        tokio::task::spawn_blocking(move || configure_inside(&netns, &peer, inside))
            .await
            .map_err(|e| Error::Netlink(e.to_string()))?
    }
    .await;
    if result.is_err() {
        let _ = delete(h, host).await;
    }
    result
}

/// Runs netlink requests inside a namespace, on a thread of its own.
fn in_netns<R: Send + 'static, F>(
    netns: &Path,
    f: impl FnOnce(Handle) -> F + Send + 'static,
) -> Result<R>
where
    F: std::future::Future<Output = Result<R>>,
{
    crate::netns::run_in(netns, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let h = connect()?;
            f(h).await
        })
    })
}

pub(crate) fn configure_inside(netns: &Path, peer: &str, inside: Inside) -> Result<()> {
    let peer = peer.to_string();
    in_netns(netns, move |h| async move {
        let idx = index_of(&h, &peer)
            .await?
            .ok_or_else(|| Error::Netlink(format!("{peer} is not in the namespace")))?;
        let mut rename = LinkUnspec::new_with_index(idx).name(inside.ifname.clone());
        if !inside.keep_mac {
            rename = rename.address(inside.mac.to_vec());
        }
        h.link().set(rename.build()).execute().await.map_err(nl)?;
        h.address()
            .add(
                idx,
                IpAddr::V4(inside.addr.addr()),
                inside.addr.prefix_len(),
            )
            .execute()
            .await
            .map_err(nl)?;
        h.link()
            .set(LinkUnspec::new_with_index(idx).up().build())
            .execute()
            .await
            .map_err(nl)?;
        lo_up_with(&h).await?;
        if let Some(a) = inside.addr6 {
            add_v6(&h, idx, &inside.ifname, a).await?;
        }
        if let Some(gw) = inside.gateway6 {
            let r = RouteMessageBuilder::<Ipv6Addr>::new()
                .gateway(gw)
                .output_interface(idx)
                .build();
            match h.route().add(r).execute().await {
                Ok(()) => {}
                Err(e) if is_errno(&e, libc::EEXIST) => {}
                Err(e) => return Err(Error::Netlink(format!("default IPv6 route: {e}"))),
            }
        }
        if inside.link_route {
            let r = RouteMessageBuilder::<Ipv4Addr>::new()
                .output_interface(idx)
                .build();
            match h.route().add(r).execute().await {
                Ok(()) => {}
                Err(e) if is_errno(&e, libc::EEXIST) => {}
                Err(e) => return Err(Error::Netlink(format!("default route: {e}"))),
            }
        } else if let Some(gw) = inside.gateway {
            let r = RouteMessageBuilder::<Ipv4Addr>::new()
                .gateway(gw)
                .output_interface(idx)
                .build();
            match h.route().add(r).execute().await {
                Ok(()) => {}
                Err(e) if is_errno(&e, libc::EEXIST) => {}
                Err(e) => return Err(Error::Netlink(format!("default route: {e}"))),
            }
        }
        Ok(())
    })
}

/// Turns IPv6 on for `ifname` (the calling thread's namespace: sysctls are
/// per namespace) and adds `addr` without duplicate address detection, so it
/// is usable at once, as dockerd configures its bridges and containers.
async fn add_v6(h: &Handle, idx: u32, ifname: &str, addr: Ipv6Net) -> Result<()> {
    use rtnetlink::packet_route::address::AddressFlags;
    let sysctl = format!("/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6");
    std::fs::write(&sysctl, "0").map_err(|e| Error::Netlink(format!("{sysctl}: {e}")))?;
    let mut req = h
        .address()
        .add(idx, IpAddr::V6(addr.addr()), addr.prefix_len());
    req.message_mut()
        .attributes
        .push(AddressAttribute::Flags(AddressFlags::Nodad));
    match req.execute().await {
        Ok(()) => Ok(()),
        Err(e) if is_errno(&e, libc::EEXIST) => Ok(()),
        Err(e) => Err(Error::Netlink(format!("adding {addr} to {ifname}: {e}"))),
    }
}

/// Gives the bridge `name` its IPv6 gateway address (an IPv6 network's).
pub async fn ensure_bridge_v6(h: &Handle, name: &str, gateway: Ipv6Net) -> Result<()> {
    let idx = index_of(h, name)
        .await?
        .ok_or_else(|| Error::Netlink(format!("bridge {name} does not exist")))?;
    add_v6(h, idx, name, gateway).await
}

async fn lo_up_with(h: &Handle) -> Result<()> {
    if let Some(lo) = index_of(h, "lo").await? {
        h.link()
            .set(LinkUnspec::new_with_index(lo).up().build())
            .execute()
            .await
            .map_err(nl)?;
    }
    Ok(())
}

/// Brings up `lo` inside a namespace (every container has it, `--network none` too).
pub fn lo_up(netns: &Path) -> Result<()> {
    in_netns(netns, |h| async move { lo_up_with(&h).await })
}

/// Removes an interface from inside a namespace (`network disconnect`).
pub fn delete_inside(netns: &Path, ifname: &str) -> Result<()> {
    let ifname = ifname.to_string();
    in_netns(netns, move |h| async move { delete(&h, &ifname).await })
}

/// A fresh host-side interface name with Berth's prefix.
pub fn veth_name() -> String {
    let mut b = [0u8; 4];
    let _ = getrandom::getrandom(&mut b);
    format!(
        "bveth{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    )
}
