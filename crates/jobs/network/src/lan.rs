//! The macvlan and ipvlan drivers: a network on a parent interface of the
//! host (made by Berth when it is a VLAN sub-interface like `eth0.10`, or a
//! dummy when no parent is given, which makes the network internal), whose
//! containers each get a child of it: no bridge, no NAT, no firewall rules;
//! they sit on the LAN with addresses from the network's pool.

use std::collections::BTreeMap;

use berth_api::{ApiError, Result};
use berth_netdriver::lanlink::{self, IpFlag, IpMode, Kind, MacMode};
use berth_netdriver::link::{self, Inside};

use crate::{Net, Networks};

pub(crate) fn is_lan(driver: &str) -> bool {
    matches!(driver, "macvlan" | "ipvlan")
}

fn mac_mode(v: Option<&str>) -> Result<MacMode> {
    Ok(match v.unwrap_or("bridge") {
        "" | "bridge" => MacMode::Bridge,
        "private" => MacMode::Private,
        "vepa" => MacMode::Vepa,
        "passthru" => MacMode::Passthru,
        m => {
            return Err(ApiError::invalid(format!(
                "requested macvlan mode '{m}' is not valid, 'bridge' mode is the macvlan driver default"
            )))
        }
    })
}

fn ip_mode(v: Option<&str>) -> Result<IpMode> {
    Ok(match v.unwrap_or("l2") {
        "" | "l2" => IpMode::L2,
        "l3" => IpMode::L3,
        "l3s" => IpMode::L3s,
        m => {
            return Err(ApiError::invalid(format!(
                "requested ipvlan mode '{m}' is not valid, 'l2' mode is the ipvlan driver default"
            )))
        }
    })
}

fn ip_flag(v: Option<&str>) -> Result<IpFlag> {
    Ok(match v.unwrap_or("bridge") {
        "" | "bridge" => IpFlag::Bridge,
        "private" => IpFlag::Private,
        "vepa" => IpFlag::Vepa,
        f => {
            return Err(ApiError::invalid(format!(
                "requested ipvlan flag '{f}' is not valid, 'bridge' is the ipvlan driver default"
            )))
        }
    })
}

/// The link kind and mode of a network's children, from its options.
pub(crate) fn kind(driver: &str, options: &BTreeMap<String, String>) -> Result<Kind> {
    let get = |k: &str| options.get(k).map(String::as_str);
    match driver {
        "macvlan" => Ok(Kind::Macvlan(mac_mode(get("macvlan_mode"))?)),
        _ => Ok(Kind::Ipvlan(
            ip_mode(get("ipvlan_mode"))?,
            ip_flag(get("ipvlan_flag"))?,
        )),
    }
}

/// ipvlan l3 (and l3s): routed, no gateway on the segment.
pub(crate) fn is_l3(net: &Net) -> bool {
    matches!(
        kind(&net.driver, &net.options),
        Ok(Kind::Ipvlan(IpMode::L3 | IpMode::L3s, _))
    )
}

/// The dummy parent of a network created without one (dockerd's name).
fn dummy_name(id: &str) -> String {
    format!("dm-{}", &id[..12.min(id.len())])
}

/// The interface the network's children hang off.
pub(crate) fn parent_of(net: &Net) -> String {
    net.made_link
        .clone()
        .or_else(|| net.options.get("parent").cloned())
        .unwrap_or_else(|| dummy_name(&net.id))
}

/// Refuses a second network of the same driver on one parent, as dockerd
/// 20.10 does (a second subnet there would share the children's segment).
/// Overlapping subnets are refused before this, by the address pools.
pub(crate) fn check_conflicts(nets: &Networks, n: &Net) -> Result<()> {
    let parent = n.options.get("parent").cloned().unwrap_or_default();
    if parent.is_empty() {
        return Ok(());
    }
    if let Some(other) = nets
        .nets()
        .iter()
        .find(|o| o.driver == n.driver && o.options.get("parent") == Some(&parent))
    {
        return Err(ApiError::forbidden(format!(
            "network {} is already using parent interface {parent}",
            dummy_name(&other.id)
        )));
    }
    Ok(())
}

/// Checks the parent of a new network and records in `n` what Berth will
/// make for it (a VLAN sub-interface that does not exist yet, or a dummy),
/// so that the record names it before it exists: a crash in between leaves
/// a link the next start makes again and `network rm` removes.
pub(crate) async fn plan(h: &link::Handle, n: &mut Net) -> Result<()> {
    kind(&n.driver, &n.options)?;
    let parent = n.options.get("parent").cloned().unwrap_or_default();
    let not_found = |p: &str| {
        if n.driver == "macvlan" {
            ApiError::invalid(format!(
                "invalid subinterface vlan name {p}, example formatting is eth0.10"
            ))
        } else {
            ApiError::invalid(format!(
                "-o parent interface does was not found on the host: {p}"
            ))
        }
    };
    let exists = |name: String| async move {
        link::index_of(h, &name)
            .await
            .map(|i| i.is_some())
            .map_err(|e| ApiError::system(e.to_string()))
    };
    if parent.is_empty() {
        n.made_link = Some(dummy_name(&n.id));
        return Ok(());
    }
    if exists(parent.clone()).await? {
        return Ok(());
    }
    match lanlink::vlan_of(&parent) {
        None => Err(not_found(&parent)),
        Some((base, _)) if !exists(base.to_string()).await? => Err(not_found(base)),
        Some(_) => {
            n.made_link = Some(parent);
            Ok(())
        }
    }
}

/// Makes what [`plan`] recorded, unless it exists (also at start-up, after a
/// reboot or a crash took it).
pub(crate) async fn make(h: &link::Handle, n: &Net) -> Result<()> {
    let Some(l) = &n.made_link else {
        return Ok(());
    };
    let made = if lanlink::vlan_of(l).is_some() && n.options.get("parent") == Some(l) {
        lanlink::ensure_vlan(h, l).await.map(drop)
    } else {
        lanlink::ensure_dummy(h, l).await
    };
    made.map_err(|e| ApiError::system(e.to_string()))
}

/// A container's child of the network's parent, inside its namespace.
pub(crate) async fn attach(
    h: &link::Handle,
    net: &Net,
    tmp: &str,
    ns: &std::path::Path,
    inside: Inside,
) -> Result<()> {
    let k = kind(&net.driver, &net.options)?;
    lanlink::attach(h, &parent_of(net), tmp, ns, k, inside)
        .await
        .map_err(|e| ApiError::system(e.to_string()))
}
