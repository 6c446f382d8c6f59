//! Berth's nftables table: masquerading out of each bridge network, DNAT for
//! published ports, and isolation between networks. The whole table is rewritten
//! in one nftables transaction (add, delete, add again, then the chains and rules),
//! so it is never seen half-built and rewriting is idempotent. Only this table is
//! ever touched: other daemons' rules (a dockerd's iptables chains) stay as they are.

use std::net::Ipv4Addr;

use ipnet::{Ipv4Net, Ipv6Net};
use serde_json::{json, Value};

use crate::{Error, Result};

/// A bridge network as the firewall sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeNet {
    pub bridge: String,
    pub subnet: Ipv4Net,
    /// No traffic in or out of the bridge (`--internal`).
    pub internal: bool,
    /// Masquerade traffic leaving the host (dockerd's `enable_ip_masquerade`).
    pub masquerade: bool,
    /// An IPv6 network's subnet: the same rules in the `ip6` table.
    pub subnet6: Option<Ipv6Net>,
}

/// A published port: traffic to `host_ip:host_port` goes to the container,
/// in either family (`A`: its addresses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRuleOf<A> {
    /// `tcp` or `udp`.
    pub proto: String,
    /// None: every local address.
    pub host_ip: Option<A>,
    pub host_port: u16,
    pub container_ip: A,
    pub container_port: u16,
    /// The container's bridge: its own traffic reaches the port through the proxy.
    pub bridge: String,
}

/// A published port, for the `ip` table.
pub type PortRule = PortRuleOf<Ipv4Addr>;

/// A published port of a container with an IPv6 address, for the `ip6` table.
pub type PortRule6 = PortRuleOf<std::net::Ipv6Addr>;

#[derive(Debug, Clone, Default)]
pub struct Ruleset {
    pub nets: Vec<BridgeNet>,
    pub ports: Vec<PortRule>,
    pub ports6: Vec<PortRule6>,
}

fn m(op: &str, left: Value, right: Value) -> Value {
    json!({ "match": { "op": op, "left": left, "right": right } })
}

fn meta(key: &str) -> Value {
    json!({ "meta": { "key": key } })
}

fn payload(proto: &str, field: &str) -> Value {
    json!({ "payload": { "protocol": proto, "field": field } })
}

fn prefix(n: &Ipv4Net) -> Value {
    json!({ "prefix": { "addr": n.network().to_string(), "len": n.prefix_len() } })
}

/// The nftables JSON commands that make `table` hold exactly `rules`: the
/// `ip` table, and the `ip6` table of the same name for IPv6 networks (none
/// when there is no IPv6 network).
pub fn commands(table: &str, rules: &Ruleset) -> Value {
    let mut cmds = family_commands("ip", table, rules);
    let t6 = json!({ "family": "ip6", "name": table });
    cmds.push(json!({ "add": { "table": t6 } }));
    cmds.push(json!({ "delete": { "table": t6 } }));
    if rules.nets.iter().any(|n| n.subnet6.is_some()) {
        // Isolation is by bridge, so every network's name is kept.
        let mut six = family_commands("ip6", table, rules);
        // The delete-and-recreate pair is already there.
        six.drain(..2);
        cmds.extend(six);
    }
    json!({ "nftables": cmds })
}

fn family_commands(family: &str, table: &str, rules: &Ruleset) -> Vec<Value> {
    let t = json!({ "family": family, "name": table });
    let mut cmds = vec![
        json!({ "add": { "table": t } }),
        json!({ "delete": { "table": t } }),
        json!({ "add": { "table": t } }),
    ];
    let mut chains = vec![
        ("postrouting", "nat", "postrouting", 100),
        ("prerouting", "nat", "prerouting", -100),
        ("forward", "filter", "forward", 0),
        ("output", "nat", "output", -100),
    ];
    if family == "ip" {
        chains.push(("input", "filter", "input", 0));
    }
    for (name, typ, hook, prio) in chains {
        cmds.push(json!({ "add": { "chain": {
            "family": family, "table": table, "name": name,
            "type": typ, "hook": hook, "prio": prio, "policy": "accept",
        } } }));
    }
    let rule = |chain: &str, expr: Vec<Value>| json!({ "add": { "rule": { "family": family, "table": table, "chain": chain, "expr": expr } } });
    for n in &rules.nets {
        let source = match (family, n.subnet6) {
            ("ip6", Some(s6)) => Some(m("==", payload("ip6", "saddr"), prefix6(&s6))),
            ("ip6", None) => None,
            _ => Some(m("==", payload("ip", "saddr"), prefix(&n.subnet))),
        };
        if let (true, false, Some(source)) = (n.masquerade, n.internal, source) {
            cmds.push(rule(
                "postrouting",
                vec![
                    source,
                    m("!=", meta("oifname"), json!(n.bridge)),
                    json!({ "masquerade": null }),
                ],
            ));
        }
        if family == "ip" {
            cmds.extend(loopback_rules(&rule, n));
        }
        if n.internal {
            cmds.push(rule(
                "forward",
                vec![
                    m("==", meta("iifname"), json!(n.bridge)),
                    m("!=", meta("oifname"), json!(n.bridge)),
                    json!({ "drop": null }),
                ],
            ));
            cmds.push(rule(
                "forward",
                vec![
                    m("==", meta("oifname"), json!(n.bridge)),
                    m("!=", meta("iifname"), json!(n.bridge)),
                    json!({ "drop": null }),
                ],
            ));
        }
        // Networks do not reach each other.
        for other in rules.nets.iter().filter(|o| o.bridge != n.bridge) {
            cmds.push(rule(
                "forward",
                vec![
                    m("==", meta("iifname"), json!(n.bridge)),
                    m("==", meta("oifname"), json!(other.bridge)),
                    json!({ "drop": null }),
                ],
            ));
        }
    }
    // Each family its own ports (the IPv6 twins in `ports6`).
    if family == "ip" {
        port_rules("ip", &rules.ports, &rule, &mut cmds);
    } else {
        port_rules("ip6", &rules.ports6, &rule, &mut cmds);
    }
    cmds
}

/// Published ports' DNAT, in `ip`'s or `ip6`'s terms.
fn port_rules<A: std::fmt::Display>(
    ip: &str,
    ports: &[PortRuleOf<A>],
    rule: &impl Fn(&str, Vec<Value>) -> Value,
    cmds: &mut Vec<Value>,
) {
    for p in ports {
        let mut expr = vec![m(
            "==",
            json!({ "fib": { "result": "type", "flags": ["daddr"] } }),
            json!("local"),
        )];
        if let Some(addr) = &p.host_ip {
            expr.push(m("==", payload(ip, "daddr"), json!(addr.to_string())));
        }
        expr.push(m("==", payload(&p.proto, "dport"), json!(p.host_port)));
        expr.push(json!({ "dnat": {
            "family": ip, "addr": p.container_ip.to_string(), "port": p.container_port,
        } }));
        // From outside, but not from the container's own bridge (the proxy
        // serves it there).
        let mut from_outside = vec![m("!=", meta("iifname"), json!(p.bridge))];
        from_outside.extend(expr.iter().cloned());
        cmds.push(rule("prerouting", from_outside));
        // The host's own connections: the kernel carries them, not the proxy.
        // IPv4 loopback's among them (see loopback_rules); not IPv6's, which
        // the kernel never routes out of an interface (dockerd's OUTPUT rule
        // leaves `::1` to its proxy the same way).
        if ip == "ip6" {
            expr.insert(0, m("!=", payload(ip, "daddr"), json!("::1")));
        }
        cmds.push(rule("output", expr));
    }
}

/// What published ports reached on the host's loopback by DNAT need, per
/// bridge (dockerd's `--userland-proxy=false` rules): the loopback source
/// masqueraded out of the bridge, as nothing could answer 127.0.0.1 from a
/// container, and the kernel told to route loopback addresses on the bridge
/// (`route_localnet`, see [`route_localnet`]). That setting would also let a
/// container send to the host's loopback services (CVE-2020-8558), so new
/// connections (and invalid packets) to 127.0.0.0/8 arriving on the bridge
/// are dropped: only the answers of connections the host made get through.
fn loopback_rules(rule: &impl Fn(&str, Vec<Value>) -> Value, n: &BridgeNet) -> Vec<Value> {
    let lo = json!({ "prefix": { "addr": "127.0.0.0", "len": 8 } });
    let mut out = vec![rule(
        "input",
        vec![
            m("==", meta("iifname"), json!(n.bridge)),
            m("==", payload("ip", "daddr"), lo.clone()),
            m(
                "in",
                json!({ "ct": { "key": "state" } }),
                json!(["invalid", "new"]),
            ),
            json!({ "drop": null }),
        ],
    )];
    if !n.internal {
        out.push(rule(
            "postrouting",
            vec![
                m("==", meta("oifname"), json!(n.bridge)),
                m("==", payload("ip", "saddr"), lo),
                json!({ "masquerade": null }),
            ],
        ));
    }
    out
}

/// Lets the kernel route loopback addresses on `bridge`, one of Berth's own
/// (the DNAT of published ports reached on 127.0.0.1 needs it; the input
/// rules keep containers off the host's loopback). Blocking.
pub fn route_localnet(bridge: &str) -> Result<()> {
    let p = format!("/proc/sys/net/ipv4/conf/{bridge}/route_localnet");
    match std::fs::read_to_string(&p) {
        Ok(v) if v.trim() == "1" => Ok(()),
        _ => std::fs::write(&p, "1").map_err(|e| Error::Nft(format!("{p}: {e}"))),
    }
}

fn prefix6(n: &Ipv6Net) -> Value {
    json!({ "prefix": { "addr": n.network().to_string(), "len": n.prefix_len() } })
}

/// Makes the kernel's `table` hold exactly `rules`, in one transaction. Blocking.
pub fn apply(table: &str, rules: &Ruleset) -> Result<()> {
    let payload = commands(table, rules).to_string();
    nftables::helper::apply_ruleset_raw(&payload, None::<&str>, std::iter::empty::<&str>())
        .map(drop)
        .map_err(|e| Error::Nft(e.to_string()))
}

/// Removes `table` (both families) if it exists. Blocking.
pub fn remove(table: &str) -> Result<()> {
    let t = json!({ "family": "ip", "name": table });
    let t6 = json!({ "family": "ip6", "name": table });
    let payload = json!({ "nftables": [
        { "add": { "table": t } },
        { "delete": { "table": t } },
        { "add": { "table": t6 } },
        { "delete": { "table": t6 } },
    ] })
    .to_string();
    nftables::helper::apply_ruleset_raw(&payload, None::<&str>, std::iter::empty::<&str>())
        .map(drop)
        .map_err(|e| Error::Nft(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_cover_masquerade_isolation_and_ports() {
        let rules = Ruleset {
            nets: vec![
                BridgeNet {
                    bridge: "b0".into(),
                    subnet: "10.1.0.0/16".parse().expect("net"),
                    internal: false,
                    masquerade: true,
                    subnet6: Some("fd00:1::/64".parse().expect("net6")),
                },
                BridgeNet {
                    bridge: "b1".into(),
                    subnet: "10.2.0.0/24".parse().expect("net"),
                    internal: true,
                    masquerade: true,
                    subnet6: None,
                },
            ],
            ports: vec![PortRule {
                proto: "tcp".into(),
                host_ip: None,
                host_port: 8080,
                container_ip: "10.1.0.2".parse().expect("ip"),
                container_port: 80,
                bridge: "b0".into(),
            }],
            ports6: vec![PortRule6 {
                proto: "tcp".into(),
                host_ip: None,
                host_port: 8080,
                container_ip: "fd00:1::2".parse().expect("ip6"),
                container_port: 80,
                bridge: "b0".into(),
            }],
        };
        let v = commands("berth-test", &rules);
        let cmds = v["nftables"].as_array().expect("array");
        let text = v.to_string();
        // Delete-and-recreate first, so the result is exactly this ruleset.
        assert!(cmds[1]["delete"]["table"]["name"] == "berth-test");
        // One masquerade per family of the external network (the internal
        // one has none), and one of loopback sources out of it.
        assert_eq!(text.matches("masquerade").count(), 3);
        assert!(text.contains(r#""addr":"fd00:1::","len":64"#));
        assert!(text.contains(r#""addr":"10.1.0.0","len":16"#));
        // Internal: two drops; isolation: one each way between b0 and b1;
        // both in each family's table; new connections to loopback from
        // each bridge.
        assert_eq!(text.matches(r#""drop":null"#).count(), 10);
        // The port by DNAT from outside and from the host itself.
        let dnat4 = r#""dnat":{"addr":"10.1.0.2","family":"ip","port":80}"#;
        let dnat6 = r#""dnat":{"addr":"fd00:1::2","family":"ip6","port":80}"#;
        let rules_with = |chain: &str, dnat: &str| {
            cmds.iter()
                .filter(|c| c["add"]["rule"]["chain"] == chain && c.to_string().contains(dnat))
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(rules_with("prerouting", dnat4).len(), 1);
        assert_eq!(rules_with("output", dnat4).len(), 1);
        assert_eq!(rules_with("prerouting", dnat6).len(), 1);
        // The host's own IPv6 addresses by DNAT too, `::1` left to the proxy.
        let out6 = rules_with("output", dnat6);
        assert_eq!(out6.len(), 1);
        assert!(out6[0].contains(r#""op":"!=""#) && out6[0].contains(r#""right":"::1""#));
        assert!(text.contains(r#""right":8080"#));
    }
}
