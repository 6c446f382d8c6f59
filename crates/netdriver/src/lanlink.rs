//! Links of the LAN drivers (macvlan, ipvlan): a child of a host interface
//! made straight inside a container's namespace, and the parents Berth makes
//! for them: 802.1q sub-interfaces (`eth0.10`) and dummies for networks
//! without a parent.

use std::os::fd::AsRawFd;
use std::path::Path;

use rtnetlink::packet_route::link::{IpVlanFlags, IpVlanMode, MacVlanMode};
use rtnetlink::{Handle, LinkDummy, LinkIpVlan, LinkMacVlan, LinkVlan};

use crate::link::{configure_inside, index_of, Inside};
use crate::{Error, Result};

/// What kind of child, in which mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Macvlan(MacMode),
    Ipvlan(IpMode, IpFlag),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacMode {
    Bridge,
    Private,
    Vepa,
    Passthru,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpMode {
    L2,
    L3,
    L3s,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpFlag {
    Bridge,
    Private,
    Vepa,
}

/// Makes a `kind` child of `parent` inside the namespace at `netns` (as
/// `tmp`, renamed there by `inside`) and configures it.
pub async fn attach(
    h: &Handle,
    parent: &str,
    tmp: &str,
    netns: &Path,
    kind: Kind,
    inside: Inside,
) -> Result<()> {
    let pidx = index_of(h, parent)
        .await?
        .ok_or_else(|| Error::Netlink(format!("parent interface {parent} does not exist")))?;
    let ns = std::fs::File::open(netns)?;
    let mut msg = match kind {
        Kind::Macvlan(m) => LinkMacVlan::new(
            tmp,
            pidx,
            match m {
                MacMode::Bridge => MacVlanMode::Bridge,
                MacMode::Private => MacVlanMode::Private,
                MacMode::Vepa => MacVlanMode::Vepa,
                MacMode::Passthru => MacVlanMode::Passthrough,
            },
        )
        .setns_by_fd(ns.as_raw_fd())
        .build(),
        Kind::Ipvlan(m, f) => LinkIpVlan::new(
            tmp,
            pidx,
            match m {
                IpMode::L2 => IpVlanMode::L2,
                IpMode::L3 => IpVlanMode::L3,
                IpMode::L3s => IpVlanMode::L3S,
            },
        )
        .flag(match f {
            IpFlag::Bridge => IpVlanFlags::empty(),
            IpFlag::Private => IpVlanFlags::Private,
            IpFlag::Vepa => IpVlanFlags::Vepa,
        })
        .setns_by_fd(ns.as_raw_fd())
        .build(),
    };
    if let Some(m) = inside.mtu {
        msg.attributes
            .push(rtnetlink::packet_route::link::LinkAttribute::Mtu(m));
    }
    h.link()
        .add(msg)
        .execute()
        .await
        .map_err(|e| Error::Netlink(format!("creating a child of {parent}: {e}")))?;
    drop(ns);
    let (netns, tmp) = (netns.to_path_buf(), tmp.to_string());
    let r = tokio::task::spawn_blocking(move || configure_inside(&netns, &tmp, inside))
        .await
        .map_err(|e| Error::Netlink(e.to_string()))?;
    // On failure the child is in the namespace, which goes with the sandbox.
    r
}

/// `eth0.10`: the parent `eth0` and VLAN 10, if the name is one.
pub fn vlan_of(name: &str) -> Option<(&str, u16)> {
    let (parent, id) = name.rsplit_once('.')?;
    let id: u16 = id.parse().ok()?;
    (!parent.is_empty() && (1..=4094).contains(&id)).then_some((parent, id))
}

/// Makes the 802.1q sub-interface `name` (`parent.id`) unless it exists; true
/// when it was made here.
pub async fn ensure_vlan(h: &Handle, name: &str) -> Result<bool> {
    if index_of(h, name).await?.is_some() {
        return Ok(false);
    }
    let (parent, id) = vlan_of(name).ok_or_else(|| {
        Error::Netlink(format!(
            "invalid subinterface vlan name {name}, example formatting is eth0.10"
        ))
    })?;
    let pidx = index_of(h, parent)
        .await?
        .ok_or_else(|| Error::Netlink(format!("parent interface {parent} does not exist")))?;
    h.link()
        .add(LinkVlan::new(name, pidx, id).up().build())
        .execute()
        .await
        .map_err(|e| Error::Netlink(format!("creating {name}: {e}")))?;
    Ok(true)
}

/// Makes the dummy interface `name` (the parent of a network given none)
/// unless it exists.
pub async fn ensure_dummy(h: &Handle, name: &str) -> Result<()> {
    if index_of(h, name).await?.is_some() {
        return Ok(());
    }
    h.link()
        .add(LinkDummy::new(name).up().build())
        .execute()
        .await
        .map_err(|e| Error::Netlink(format!("creating {name}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vlan_names_split_as_dockerd_reads_them() {
        assert_eq!(vlan_of("eth0.10"), Some(("eth0", 10)));
        assert_eq!(vlan_of("bond0.4094"), Some(("bond0", 4094)));
        assert_eq!(vlan_of("eth0"), None);
        assert_eq!(vlan_of("eth0.0"), None);
        assert_eq!(vlan_of("eth0.5000"), None);
        assert_eq!(vlan_of(".10"), None);
    }
}
