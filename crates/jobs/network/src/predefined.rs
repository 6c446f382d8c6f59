//! The predefined networks (`host`, `none`) and the default bridge, with the
//! subnet the default bridge gets: `--bip`, else what this data root recorded,
//! else what a bridge of that name already on the host has (adopted when nothing
//! else uses it, reset when a Berth made it, refused otherwise), else the first
//! free subnet of the pools, every address and route on the host counted as taken.

use std::collections::BTreeSet;

use berth_api::{ApiError, Result};
use berth_netdriver::link::{self, Existing};
use berth_netdriver::subnet::{self, overlaps};
use ipnet::Ipv4Net;

use crate::{Net, Networks};

/// The start of the alias of every bridge a Berth made; the data root follows.
pub(crate) const OWNER_PREFIX: &str = "berth:";

/// What to do with a bridge found on the host for a data root that has no
/// record of it.
#[derive(Debug, PartialEq, Eq)]
enum Found {
    /// Use its address as it is.
    Adopt(Ipv4Net),
    /// Give it a fresh subnet, replacing what it has.
    Reset,
    /// Leave it alone and refuse to start: it is another program's.
    Refuse(String),
}

/// `others`: every address and route on the host but the bridge's own.
fn judge(name: &str, e: &Existing, others: &[Ipv4Net]) -> Found {
    let free = |a: &Ipv4Net| !others.iter().any(|o| overlaps(&a.trunc(), o));
    match e.addrs.as_slice() {
        [one] if free(one) => Found::Adopt(*one),
        _ if e.alias.starts_with(OWNER_PREFIX) || e.addrs.is_empty() => Found::Reset,
        addrs => Found::Refuse(format!(
            "bridge {name} exists with {} and was not made by Berth; another interface or \
             route uses that subnet. Remove the bridge, or give --bip or another --bridge",
            addrs
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

impl Networks {
    pub(crate) async fn ensure_predefined(&self) -> Result<()> {
        let have: BTreeSet<String> = self.nets().into_iter().map(|n| n.name).collect();
        for (name, driver) in [("host", "host"), ("none", "null")] {
            if !have.contains(name) {
                let n = Net::empty(name, driver);
                self.save_net(&n)?;
                self.lock().nets.insert(n.id.clone(), n);
            }
        }
        if self.cfg.bridge == "none" {
            return Ok(());
        }
        let existing = self.nets().into_iter().find(|n| n.name == "bridge");
        let (subnet, gateway) = match (self.cfg.bip, &existing) {
            (Some(bip), _) => (bip.trunc(), bip.addr()),
            (
                None,
                Some(Net {
                    subnet: Some(s),
                    gateway: Some(g),
                    ..
                }),
            ) => (*s, *g),
            _ => self.fresh_default_subnet().await?,
        };
        let mut n = existing.unwrap_or_else(|| Net::empty("bridge", "bridge"));
        n.subnet = Some(subnet);
        n.gateway = Some(gateway);
        n.ip_range = self.cfg.fixed_cidr;
        n.bridge = self.cfg.bridge.clone();
        if self.cfg.ipv6 {
            // `--fixed-cidr-v6`, else the subnet it had, else a fresh ULA /64.
            let s6 = self
                .cfg
                .fixed_cidr_v6
                .or(n.subnet6)
                .or_else(|| berth_netdriver::subnet::pick6(&self.cfg.pools6, &[]))
                .unwrap_or_else(berth_netdriver::subnet::ula_subnet);
            if n.subnet6 != Some(s6) {
                n.allocated6.clear();
            }
            n.subnet6 = Some(s6);
            n.gateway6 = Some(berth_netdriver::subnet::first_host6(&s6));
        } else {
            n.subnet6 = None;
            n.gateway6 = None;
            n.allocated6.clear();
        }
        n.options = [
            ("com.docker.network.bridge.default_bridge", "true"),
            (
                "com.docker.network.bridge.enable_icc",
                if self.cfg.icc { "true" } else { "false" },
            ),
            (
                "com.docker.network.bridge.enable_ip_masquerade",
                if self.cfg.ip_masq { "true" } else { "false" },
            ),
            ("com.docker.network.bridge.host_binding_ipv4", "0.0.0.0"),
            ("com.docker.network.bridge.name", self.cfg.bridge.as_str()),
            (
                "com.docker.network.driver.mtu",
                &self.cfg.mtu.unwrap_or(1500).to_string(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        self.save_net(&n)?;
        self.lock().nets.insert(n.id.clone(), n);
        Ok(())
    }

    /// The default bridge's subnet for a data root that recorded none.
    async fn fresh_default_subnet(&self) -> Result<(Ipv4Net, std::net::Ipv4Addr)> {
        let sys = |e: berth_netdriver::Error| ApiError::system(e.to_string());
        let h = link::connect().map_err(sys)?;
        let name = self.cfg.bridge.as_str();
        let mut used: Vec<Ipv4Net> = self.nets().iter().filter_map(|n| n.subnet).collect();
        used.extend(link::host_networks(&h, Some(name)).await.map_err(sys)?);
        if let Some(e) = link::existing(&h, name).await.map_err(sys)? {
            match judge(name, &e, &used) {
                Found::Adopt(a) => {
                    tracing::info!(bridge = name, address = %a, "adopting the address of the existing bridge");
                    return Ok((a.trunc(), a.addr()));
                }
                Found::Reset => {
                    tracing::info!(bridge = name, addresses = ?e.addrs, owner = %e.alias, "giving a leftover bridge a free subnet");
                }
                Found::Refuse(msg) => return Err(ApiError::system(msg)),
            }
        }
        let s = subnet::pick(&self.cfg.pools, &used).ok_or_else(|| {
            ApiError::system("no free subnet in the default address pools for the default bridge")
        })?;
        Ok((s, subnet::first_host(&s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().expect("net")
    }

    fn found(addrs: &[&str], alias: &str) -> Existing {
        Existing {
            addrs: addrs.iter().map(|a| net(a)).collect(),
            alias: alias.into(),
        }
    }

    #[test]
    fn a_lone_free_address_is_adopted_whoever_made_the_bridge() {
        let others = [net("172.17.0.0/16"), net("10.0.2.0/24")];
        for alias in ["", "berth:/var/lib/berth-old"] {
            assert_eq!(
                judge("b0", &found(&["172.18.0.1/16"], alias), &others),
                Found::Adopt(net("172.18.0.1/16"))
            );
        }
    }

    #[test]
    fn a_berth_bridge_in_conflict_or_with_two_subnets_is_reset() {
        let others = [net("172.17.0.0/16")];
        let berth = "berth:/old";
        // The case: docker0 holds 172.17/16, a leftover holds it too.
        assert_eq!(
            judge("b0", &found(&["172.17.0.1/16"], berth), &others),
            Found::Reset
        );
        assert_eq!(
            judge(
                "b0",
                &found(&["172.18.0.1/16", "172.17.0.1/16"], berth),
                &others
            ),
            Found::Reset
        );
        // A route (no address) inside the bridge's subnet is a conflict too.
        assert_eq!(
            judge("b0", &found(&["10.9.0.1/16"], berth), &[net("10.9.4.0/24")]),
            Found::Reset
        );
        assert_eq!(judge("b0", &found(&[], ""), &others), Found::Reset);
    }

    #[test]
    fn another_programs_bridge_in_conflict_is_left_alone() {
        let others = [net("172.17.0.0/16")];
        match judge("b0", &found(&["172.17.0.1/16"], "libvirt"), &others) {
            Found::Refuse(m) => {
                assert!(m.contains("bridge b0 exists with 172.17.0.1/16"), "{m}");
                assert!(m.contains("--bip"), "{m}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            judge("b0", &found(&["10.1.0.1/24", "10.2.0.1/24"], ""), &[]),
            Found::Refuse(_)
        ));
    }
}
