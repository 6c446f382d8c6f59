//! The firewall as the networks and sandboxes need it: Berth's nftables table
//! (masquerade, published-port DNAT, isolation) and its accept chain in the host's
//! iptables FORWARD (so another daemon's DROP policy does not cut its bridges
//! off) and in a native nftables firewall that drops by default, all rewritten
//! whole from the current state: the table after every change, the accepts in
//! other programs' chains when the bridges change.

use berth_netdriver::nft::{BridgeNet, PortRule, PortRule6, Ruleset};
use berth_netdriver::{hostfw, iptables, nft};

use crate::Networks;

impl Networks {
    /// The iptables chain of this daemon's table: one per default bridge, as the
    /// table, so daemons side by side never touch each other's.
    fn chain(&self) -> String {
        self.table.to_uppercase()
    }

    fn ruleset(&self) -> Ruleset {
        let st = self.lock();
        let nets: Vec<BridgeNet> = st
            .nets
            .values()
            .filter(|n| n.driver == "bridge")
            .filter_map(|n| {
                Some(BridgeNet {
                    bridge: n.bridge.clone(),
                    subnet: n.subnet?,
                    internal: n.internal,
                    masquerade: n.masquerade(),
                    subnet6: n.subnet6.filter(|_| self.cfg.ip6tables),
                })
            })
            .collect();
        let mut ports = Vec::new();
        let mut ports6 = Vec::new();
        for sb in st.sandboxes.values() {
            let Some(ep) = sb.rec.endpoints.first() else {
                continue;
            };
            let Some(net) = st.nets.get(&ep.network) else {
                continue;
            };
            // IPv6 bindings: DNAT to the container's IPv6 address where it
            // has one (else the proxy alone serves them).
            for p in sb.rec.ports.iter() {
                if let (std::net::IpAddr::V6(h), Some(c6), true) =
                    (p.host_ip, ep.ip6, self.cfg.ip6tables)
                {
                    ports6.push(PortRule6 {
                        proto: p.proto.clone(),
                        host_ip: (!h.is_unspecified()).then_some(h),
                        host_port: p.host_port,
                        container_ip: c6,
                        container_port: p.container_port,
                        bridge: net.bridge.clone(),
                    });
                }
            }
            for p in sb.rec.ports.iter().filter(|p| p.host_ip.is_ipv4()) {
                let std::net::IpAddr::V4(host_ip) = p.host_ip else {
                    continue;
                };
                ports.push(PortRule {
                    proto: p.proto.clone(),
                    host_ip: (!host_ip.is_unspecified()).then_some(host_ip),
                    host_port: p.host_port,
                    container_ip: ep.ip,
                    container_port: p.container_port,
                    bridge: net.bridge.clone(),
                });
            }
        }
        Ruleset {
            nets,
            ports,
            ports6,
        }
    }

    /// Makes the kernel's rules match the networks and sandboxes. Errors are
    /// logged: a container keeps running when its rules could not be written.
    pub(crate) async fn apply_rules(&self) {
        if !self.cfg.iptables {
            return;
        }
        let rules = self.ruleset();
        let bridges: Vec<String> = rules.nets.iter().map(|n| n.bridge.clone()).collect();
        // The host firewall's accepts follow the bridges only.
        let host_fw = {
            let mut last = self.fw_bridges.lock().unwrap_or_else(|p| p.into_inner());
            let changed = last.as_ref() != Some(&bridges);
            *last = Some(bridges.clone());
            changed
        };
        let (table, chain) = (self.table.clone(), self.chain());
        let res = tokio::task::spawn_blocking(move || {
            // No bridge at all (`--bridge none` and no user networks): nothing
            // is needed, and what an earlier state needed goes.
            if rules.nets.is_empty() && rules.ports.is_empty() {
                return remove(&table, &chain);
            }
            nft::apply(&table, &rules)?;
            for b in &bridges {
                // Published ports on 127.0.0.1 by DNAT; a bridge without it
                // still has the proxy.
                if let Err(e) = nft::route_localnet(b) {
                    tracing::warn!(bridge = %b, error = %e, "loopback routing on the bridge");
                }
            }
            if host_fw {
                iptables::apply(&chain, &bridges)?;
                hostfw::apply(&table, &bridges)?;
            }
            Ok(())
        })
        .await;
        match res {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                // Written again at the next change.
                *self.fw_bridges.lock().unwrap_or_else(|p| p.into_inner()) = None;
                tracing::error!(error = %e, "writing the firewall rules")
            }
            Err(e) => tracing::error!(error = %e, "writing the firewall rules"),
        }
    }

    /// At daemon shutdown: with no container left running, the rules go with the
    /// daemon (the next start writes them again); containers kept running by
    /// live restore keep theirs.
    pub async fn shutdown(&self) {
        if !self.lock().sandboxes.is_empty() {
            return;
        }
        let (table, chain) = (self.table.clone(), self.chain());
        match tokio::task::spawn_blocking(move || remove(&table, &chain)).await {
            Ok(Ok(())) => tracing::info!("firewall rules removed"),
            Ok(Err(e)) => tracing::warn!(error = %e, "removing the firewall rules"),
            Err(e) => tracing::warn!(error = %e, "removing the firewall rules"),
        }
    }
}

fn remove(table: &str, chain: &str) -> berth_netdriver::Result<()> {
    nft::remove(table)?;
    iptables::remove(chain)?;
    hostfw::remove(table)
}

/// IPv4 forwarding, and IPv6's too for an IPv6 network (as dockerd; a host
/// that took router advertisements on forwarding interfaces keeps its
/// addresses until they expire, so it is turned on only when asked for).
pub(crate) fn enable_forwarding(ipv6: bool) {
    if ipv6 {
        let p = "/proc/sys/net/ipv6/conf/all/forwarding";
        if std::fs::read_to_string(p).is_ok_and(|s| s.trim() != "1") {
            match std::fs::write(p, "1") {
                Ok(()) => tracing::info!("enabled IPv6 forwarding"),
                Err(e) => tracing::warn!(error = %e, "enabling IPv6 forwarding"),
            }
        }
    }
    let p = "/proc/sys/net/ipv4/ip_forward";
    if std::fs::read_to_string(p)
        .map(|s| s.trim() != "1")
        .unwrap_or(false)
    {
        if let Err(e) = std::fs::write(p, "1") {
            tracing::warn!(error = %e, "enabling IPv4 forwarding");
        } else {
            tracing::info!("enabled IPv4 forwarding");
        }
    }
}
