//! macvlan and ipvlan: containers on a LAN of network-namespace hosts behind a
//! veth the test makes (the "LAN" end in a namespace of its own, the other
//! end the parent interface).

use std::process::Command;

use crate::daemon;
use crate::images::busybox;
use crate::network::inspect;

/// A veth pair: `parent` on the host, its peer in namespace `ns` with
/// `addr`/24. Removed on drop.
struct Lan {
    ns: String,
    parent: String,
    prefix: String,
}

fn ip(args: &[&str]) -> std::process::Output {
    Command::new("ip").args(args).output().expect("ip")
}

fn ip_ok(args: &[&str]) {
    let o = ip(args);
    assert!(
        o.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

impl Lan {
    fn new() -> Lan {
        let mut b = [0u8; 3];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
            .expect("random");
        let tag = hex::encode(b);
        let lan = Lan {
            ns: format!("berth-lan-{tag}"),
            parent: format!("bl{tag}"),
            // 10.250-253.x: no test daemon's pools (10.100-249) reach there.
            prefix: format!("10.{}.{}", 250 + b[0] % 4, b[1]),
        };
        ip_ok(&["netns", "add", &lan.ns]);
        let peer = format!("{}p", lan.parent);
        ip_ok(&[
            "link",
            "add",
            &lan.parent,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
        ]);
        ip_ok(&["link", "set", &peer, "netns", &lan.ns]);
        ip_ok(&["link", "set", &lan.parent, "up"]);
        let inside = |a: &[&str]| {
            let mut v = vec!["netns", "exec", &lan.ns, "ip"];
            v.extend_from_slice(a);
            ip_ok(&v);
        };
        inside(&[
            "addr",
            "add",
            &format!("{}.200/24", lan.prefix),
            "dev",
            &peer,
        ]);
        inside(&["link", "set", &peer, "up"]);
        inside(&["link", "set", "lo", "up"]);
        lan
    }

    fn subnet(&self) -> String {
        format!("{}.0/24", self.prefix)
    }

    /// Whether the LAN host gets an answer from `addr`.
    fn pings(&self, addr: &str) -> bool {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns,
                "/bin/busybox",
                "ping",
                "-c",
                "1",
                "-W",
                "3",
                addr,
            ])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.parent]);
        let _ = ip(&["netns", "del", &self.ns]);
    }
}

#[test]
fn macvlan_containers_sit_on_the_lan_and_reach_each_other() {
    let d = daemon();
    let b = busybox(&d);
    let lan = Lan::new();
    let parent = format!("parent={}", lan.parent);
    let gw = format!("{}.200", lan.prefix);
    d.cli_ok(&[
        "network",
        "create",
        "-d",
        "macvlan",
        "-o",
        &parent,
        "--subnet",
        &lan.subnet(),
        "--gateway",
        &gw,
        "mvlan",
    ]);
    let fixed = format!("{}.10", lan.prefix);
    d.cli_ok(&[
        "run",
        "-d",
        "--name",
        "m1",
        "--network",
        "mvlan",
        "--ip",
        &fixed,
        &b,
        "sleep",
        "300",
    ]);
    // A host of the LAN reaches it, and it reaches the LAN (its gateway).
    assert!(
        lan.pings(&fixed),
        "the LAN host cannot reach the macvlan container"
    );
    d.cli_ok(&["exec", "m1", "ping", "-c", "1", "-W", "3", &gw]);
    // Siblings on the parent (bridge mode), by name.
    d.cli_ok(&[
        "run",
        "--rm",
        "--network",
        "mvlan",
        &b,
        "ping",
        "-c",
        "1",
        "-W",
        "3",
        "m1",
    ]);
    let v = inspect(&d, "m1");
    let ep = &v["NetworkSettings"]["Networks"]["mvlan"];
    assert_eq!(ep["IPAddress"], fixed.as_str());
    assert_eq!(ep["Gateway"], gw.as_str());
    let net: serde_json::Value =
        serde_json::from_str(&d.cli_ok(&["network", "inspect", "mvlan"])).expect("json");
    assert_eq!(net[0]["Driver"], "macvlan");
    assert_eq!(net[0]["Options"]["parent"], lan.parent.as_str());
    // No bridge, no veth on the host for it.
    let links = String::from_utf8_lossy(&ip(&["-o", "link"]).stdout).into_owned();
    assert!(
        !links.contains("bbr-"),
        "a bridge for a macvlan network: {links}"
    );

    // What dockerd refuses.
    let o = d.cli(&[
        "network",
        "create",
        "-d",
        "macvlan",
        "-o",
        &parent,
        "--subnet",
        "10.254.252.0/24",
        "again",
    ]);
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains(&format!("is already using parent interface {}", lan.parent)),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = d.cli(&[
        "network",
        "create",
        "-d",
        "macvlan",
        "-o",
        "parent=other0",
        "--subnet",
        &lan.subnet(),
        "same",
    ]);
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains("Pool overlaps with other one on this address space"));
    let o = d.cli(&[
        "network",
        "create",
        "-d",
        "macvlan",
        "-o",
        &parent,
        "-o",
        "macvlan_mode=bogus",
        "bad",
    ]);
    assert!(String::from_utf8_lossy(&o.stderr).contains(
        "requested macvlan mode 'bogus' is not valid, 'bridge' mode is the macvlan driver default"
    ));
    let o = d.cli(&[
        "network",
        "create",
        "-d",
        "macvlan",
        "-o",
        "parent=nosuch0",
        "bad2",
    ]);
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains("invalid subinterface vlan name nosuch0, example formatting is eth0.10"));

    d.cli_ok(&["rm", "-f", "m1"]);
    d.cli_ok(&["network", "rm", "mvlan"]);
    // The parent was the host's: it stays.
    assert!(ip(&["link", "show", &lan.parent]).status.success());
}

/// Whether this kernel makes `kind` links (ipvlan, vlan and dummy are modules
/// the host kernel of CI may lack; the cgroup v2 machine's Debian kernel has
/// them).
fn kernel_has(kind: &str, parent: &str) -> bool {
    let name = "bprobe0";
    let mut args = vec!["link", "add"];
    if kind == "vlan" {
        args.extend(["link", parent, "name", name, "type", "vlan", "id", "4001"]);
    } else if kind == "ipvlan" {
        args.extend(["link", parent, "name", name, "type", "ipvlan", "mode", "l3"]);
    } else {
        args.extend([name, "type", kind]);
    }
    let ok = ip(&args).status.success();
    let _ = ip(&["link", "del", name]);
    ok
}

#[test]
fn ipvlan_l3_vlan_subinterfaces_and_parentless_networks() {
    let mut d = daemon();
    let b = busybox(&d);
    let lan = Lan::new();
    if !["ipvlan", "vlan", "dummy"]
        .iter()
        .all(|k| kernel_has(k, &lan.parent))
    {
        eprintln!("this kernel has no ipvlan, 802.1q or dummy links: run in `cargo xtask cgroup2`");
        return;
    }
    // ipvlan l3: routed; the LAN host reaches the container through a route.
    let parent = format!("parent={}", lan.parent);
    let routed = format!(
        "10.254.{}.0/24",
        lan.prefix.rsplit('.').next().unwrap_or("1")
    );
    d.cli_ok(&[
        "network",
        "create",
        "-d",
        "ipvlan",
        "-o",
        &parent,
        "-o",
        "ipvlan_mode=l3",
        "--subnet",
        &routed,
        "iv3",
    ]);
    let addr = routed.replace(".0/24", ".5");
    d.cli_ok(&[
        "run",
        "-d",
        "--name",
        "i1",
        "--network",
        "iv3",
        "--ip",
        &addr,
        &b,
        "sleep",
        "300",
    ]);
    // l3 children answer no ARP: the LAN routes their subnet through the
    // parent's own address, and the parent's stack delivers to them.
    let via = format!("{}.1", lan.prefix);
    ip_ok(&["addr", "add", &format!("{via}/24"), "dev", &lan.parent]);
    ip_ok(&[
        "netns", "exec", &lan.ns, "ip", "route", "add", &routed, "via", &via,
    ]);
    assert!(lan.pings(&addr), "no route to the ipvlan l3 container");
    d.cli_ok(&["rm", "-f", "i1"]);
    d.cli_ok(&["network", "rm", "iv3"]);

    // A VLAN sub-interface made for the network, and removed with it.
    let sub = format!("{}.42", lan.parent);
    d.cli_ok(&[
        "network",
        "create",
        "-d",
        "macvlan",
        "-o",
        &format!("parent={sub}"),
        "--subnet",
        "10.254.250.0/24",
        "tagged",
    ]);
    assert!(ip(&["link", "show", &sub]).status.success(), "no {sub}");
    d.cli_ok(&["network", "rm", "tagged"]);
    assert!(
        !ip(&["link", "show", &sub]).status.success(),
        "{sub} outlived its network"
    );

    // No parent: a dummy of its own; the network is internal.
    let out = d.cli_ok(&[
        "network",
        "create",
        "-d",
        "macvlan",
        "--subnet",
        "10.254.251.0/24",
        "alone",
    ]);
    let id = out.trim().to_string();
    let dummy = format!("dm-{}", &id[..12]);
    assert!(ip(&["link", "show", &dummy]).status.success(), "no {dummy}");
    let net: serde_json::Value =
        serde_json::from_str(&d.cli_ok(&["network", "inspect", "alone"])).expect("json");
    assert_eq!(net[0]["Internal"], true);
    // A crash, and a reboot that took the dummy: the next start makes it again.
    d.kill9();
    ip_ok(&["link", "del", &dummy]);
    d.restart();
    assert!(
        ip(&["link", "show", &dummy]).status.success(),
        "{dummy} not made again"
    );
    d.cli_ok(&["network", "rm", "alone"]);
    assert!(!ip(&["link", "show", &dummy]).status.success());
}
