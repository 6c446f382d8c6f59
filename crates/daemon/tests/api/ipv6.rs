//! IPv6 dual stack: networks with an IPv6 subnet (and the default bridge with
//! `--ipv6`), containers reaching each other by name over IPv6, static
//! addresses, inspect's IPv6 fields, and the rules going with the network.

use serde_json::Value;

use crate::images::busybox;
use crate::network::inspect;
use crate::{builder, daemon};

/// A unique local /64 no other test uses.
fn ula() -> String {
    let mut b = [0u8; 4];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .expect("random");
    // Groups written as Rust (and dockerd) print them: no leading zeros, no
    // zero group that `::` could swallow.
    let g1 = 0xfd00 | u16::from(b[0]);
    let g2 = 0x1000 | u16::from_be_bytes([b[1], b[2]]);
    let g3 = (u16::from(b[3]) << 8) | 1;
    format!("{g1:x}:{g2:x}:{g3:x}::")
}

fn ping6(d: &berth_testkit::TestDaemon, net: Option<&str>, target: &str) -> bool {
    let b = busybox(d);
    let mut args = vec!["run", "--rm"];
    if let Some(n) = net {
        args.extend(["--network", n]);
    }
    args.extend([b.as_str(), "ping", "-6", "-c", "1", "-W", "3", target]);
    d.cli(&args).status.success()
}

#[test]
fn containers_on_an_ipv6_network_reach_each_other_by_name() {
    let d = daemon();
    let b = busybox(&d);
    let prefix = ula();
    let subnet = format!("{prefix}/64");
    d.cli_ok(&["network", "create", "--ipv6", "--subnet", &subnet, "dual"]);
    let net: Value =
        serde_json::from_str(&d.cli_ok(&["network", "inspect", "dual"])).expect("json");
    assert_eq!(net[0]["EnableIPv6"], true);
    let configs = net[0]["IPAM"]["Config"].as_array().expect("configs");
    assert!(
        configs.iter().any(|c| c["Subnet"] == subnet.as_str()),
        "{configs:?}"
    );
    let gw6 = format!("{prefix}1");
    assert!(
        configs.iter().any(|c| c["Gateway"] == gw6.as_str()),
        "{configs:?}"
    );

    d.cli_ok(&[
        "run",
        "-d",
        "--name",
        "v6a",
        "--network",
        "dual",
        &b,
        "sleep",
        "300",
    ]);
    let static6 = format!("{prefix}f00d");
    d.cli_ok(&[
        "run",
        "-d",
        "--name",
        "v6b",
        "--network",
        "dual",
        "--ip6",
        &static6,
        &b,
        "sleep",
        "300",
    ]);
    let a = inspect(&d, "v6a");
    let ep = &a["NetworkSettings"]["Networks"]["dual"];
    let addr = ep["GlobalIPv6Address"]
        .as_str()
        .expect("v6 address")
        .to_string();
    assert!(addr.starts_with(&prefix), "{ep}");
    assert_eq!(ep["GlobalIPv6PrefixLen"], 64);
    assert_eq!(ep["IPv6Gateway"], gw6.as_str());
    assert!(
        !ep["IPAddress"].as_str().unwrap_or("").is_empty(),
        "dual stack: {ep}"
    );
    let bb = inspect(&d, "v6b");
    let ep = &bb["NetworkSettings"]["Networks"]["dual"];
    assert_eq!(ep["GlobalIPv6Address"], static6.as_str());
    assert_eq!(ep["IPAMConfig"]["IPv6Address"], static6.as_str());

    // By name (the embedded DNS answers AAAA), by address, and the gateway.
    assert!(ping6(&d, Some("dual"), "v6a"));
    assert!(ping6(&d, Some("dual"), &static6));
    assert!(ping6(&d, Some("dual"), &gw6));
    let hosts = d.cli_ok(&["exec", "v6a", "cat", "/etc/hosts"]);
    assert!(hosts.contains(&addr), "{hosts}");
    let net: Value =
        serde_json::from_str(&d.cli_ok(&["network", "inspect", "dual"])).expect("json");
    let listed: Vec<&str> = net[0]["Containers"]
        .as_object()
        .expect("containers")
        .values()
        .filter_map(|c| c["IPv6Address"].as_str())
        .collect();
    assert!(
        listed.contains(&format!("{static6}/64").as_str()),
        "{listed:?}"
    );

    // Taken, outside the subnet, malformed: refused as dockerd does.
    let o = d.cli(&[
        "run",
        "--rm",
        "--network",
        "dual",
        "--ip6",
        &static6,
        &b,
        "true",
    ]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("Address already in use"));
    let o = d.cli(&[
        "run",
        "--rm",
        "--network",
        "dual",
        "--ip6",
        "fd99::1",
        &b,
        "true",
    ]);
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains("does not belong to any of this network's subnets"));
    // A reconnect with an address of its own.
    d.cli_ok(&["network", "disconnect", "dual", "v6b"]);
    let again = format!("{prefix}beef");
    d.cli_ok(&["network", "connect", "--ip6", &again, "dual", "v6b"]);
    assert!(ping6(&d, Some("dual"), &again));

    d.cli_ok(&["rm", "-f", "v6a", "v6b"]);
    d.cli_ok(&["network", "rm", "dual"]);
    let table = format!("berth-{}", d.bridge);
    let o = std::process::Command::new("nft")
        .args(["list", "table", "ip6", &table])
        .output()
        .expect("nft");
    assert!(
        !o.status.success(),
        "the IPv6 rules outlived the last IPv6 network"
    );
}

#[test]
fn the_default_bridge_is_dual_stack_with_ipv6_and_fixed_cidr_v6() {
    let prefix = ula();
    let d = builder()
        .arg("--ipv6")
        .arg("--fixed-cidr-v6")
        .arg(format!("{prefix}/64"))
        .start();
    let b = busybox(&d);
    d.cli_ok(&["run", "-d", "--name", "dflt", &b, "sleep", "300"]);
    let v = inspect(&d, "dflt");
    let addr = v["NetworkSettings"]["GlobalIPv6Address"]
        .as_str()
        .expect("top-level v6")
        .to_string();
    assert!(addr.starts_with(&prefix), "{}", v["NetworkSettings"]);
    assert!(ping6(&d, None, &addr));
    assert!(ping6(&d, None, &format!("{prefix}1")));
    d.cli_ok(&["rm", "-f", "dflt"]);
}

#[test]
fn published_ports_answer_on_ipv6_loopback_too() {
    use crate::network::{http_get, web_args};
    let d = daemon();
    let b = busybox(&d);
    let (port, port6) = (crate::free_port(), crate::free_port());
    let mut args: Vec<String> = ["run", "-d", "--name", "web6", "-p"]
        .map(String::from)
        .to_vec();
    args.push(format!("{port}:80"));
    args.push("-p".into());
    args.push(format!("[::1]:{port6}:80"));
    // Two host ports for one container port: each IPv6 twin takes its own.
    let port2 = crate::free_port();
    args.push("-p".into());
    args.push(format!("{port2}:80"));
    args.extend(web_args(&b, "hello-six"));
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    d.cli_ok(&a);
    let mut body = String::new();
    for _ in 0..50 {
        body = http_get(&format!("[::1]:{port}"));
        if body.contains("hello-six") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // No address: 0.0.0.0 and [::] both, as dockerd binds them.
    assert!(body.contains("hello-six"), "{body}");
    assert!(http_get(&format!("127.0.0.1:{port}")).contains("hello-six"));
    assert!(http_get(&format!("[::1]:{port2}")).contains("hello-six"));
    // [::1] only: IPv4 loopback is not bound.
    assert!(http_get(&format!("[::1]:{port6}")).contains("hello-six"));
    assert!(http_get(&format!("127.0.0.1:{port6}")).starts_with("error"));
    let ports = d.cli_ok(&["port", "web6"]);
    assert!(ports.contains(&format!("0.0.0.0:{port}")), "{ports}");
    assert!(ports.contains(&format!("[::]:{port}")), "{ports}");
    assert!(ports.contains(&format!("[::1]:{port6}")), "{ports}");
    // The same host port again, on either family: refused.
    let o = d.cli(&["run", "--rm", "-p", &format!("[::]:{port}:80"), &b, "true"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("port is already allocated"));
    d.cli_ok(&["rm", "-f", "web6"]);
}

#[test]
fn ipv6_networks_take_subnets_from_ipv6_pools_and_ip6tables_false_writes_no_rules() {
    let prefix = ula();
    // The /48 around this test's own /64: `fdXX:XXXX::/48`.
    let groups: Vec<&str> = prefix.split(':').take(2).collect();
    let base = format!("{}::/48", groups.join(":"));
    let d = builder()
        .arg("--default-address-pool")
        .arg(format!("base={base},size=64"))
        .arg("--ip6tables=false")
        .start();
    d.cli_ok(&["network", "create", "--ipv6", "pooled"]);
    let net: Value =
        serde_json::from_str(&d.cli_ok(&["network", "inspect", "pooled"])).expect("json");
    let base_net: ipnet::Ipv6Net = base.parse().expect("base");
    let v6 = net[0]["IPAM"]["Config"]
        .as_array()
        .expect("configs")
        .iter()
        .filter_map(|c| c["Subnet"].as_str())
        .find(|s| s.contains(':'))
        .expect("an IPv6 subnet")
        .parse::<ipnet::Ipv6Net>()
        .expect("subnet");
    assert_eq!(v6.prefix_len(), 64);
    assert!(base_net.contains(&v6.network()), "{v6} not from {base_net}");
    let table = format!("berth-{}", d.bridge);
    let o = std::process::Command::new("nft")
        .args(["list", "table", "ip6", &table])
        .output()
        .expect("nft");
    assert!(!o.status.success(), "ip6 rules with --ip6tables=false");
    d.cli_ok(&["network", "rm", "pooled"]);
}

#[test]
fn an_outside_ipv6_host_reaches_a_published_port_by_dnat() {
    use std::process::Command;
    let ip_ok = |args: &[&str]| {
        let o = Command::new("ip").args(args).output().expect("ip");
        assert!(
            o.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let d = daemon();
    let b = busybox(&d);
    // The outside host: a namespace behind a veth, on a /64 of its own.
    let out6 = ula();
    let tag = &out6[2..8].replace(':', "");
    let (ns, hostif) = (format!("berth-out6-{tag}"), format!("bo{tag}"));
    struct Gone(String, String);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["link", "del", &self.1]).output();
            let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
        }
    }
    let _gone = Gone(ns.clone(), hostif.clone());
    ip_ok(&["netns", "add", &ns]);
    let peer = format!("{hostif}p");
    ip_ok(&[
        "link", "add", &hostif, "type", "veth", "peer", "name", &peer,
    ]);
    ip_ok(&["link", "set", &peer, "netns", &ns]);
    ip_ok(&[
        "addr",
        "add",
        &format!("{out6}1/64"),
        "dev",
        &hostif,
        "nodad",
    ]);
    ip_ok(&["link", "set", &hostif, "up"]);
    let inside = |a: &[&str]| {
        let mut v = vec!["netns", "exec", &ns, "ip"];
        v.extend_from_slice(a);
        ip_ok(&v);
    };
    inside(&["addr", "add", &format!("{out6}2/64"), "dev", &peer, "nodad"]);
    inside(&["link", "set", &peer, "up"]);
    inside(&["-6", "route", "add", "default", "via", &format!("{out6}1")]);

    let subnet = format!("{}/64", ula());
    d.cli_ok(&["network", "create", "--ipv6", "--subnet", &subnet, "pub6"]);
    let port = crate::free_port();
    // A CGI script answers with the client's address as the container sees it.
    let script = "mkdir -p /www/cgi-bin; printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho \"$REMOTE_ADDR\"\\n' > /www/cgi-bin/ip; chmod +x /www/cgi-bin/ip; exec httpd -f -p 80 -h /www";
    d.cli_ok(&[
        "run",
        "-d",
        "--name",
        "dnat6",
        "--network",
        "pub6",
        "-p",
        &format!("{port}:80"),
        &b,
        "sh",
        "-c",
        script,
    ]);
    let url = format!("http://[{out6}1]:{port}/cgi-bin/ip");
    let mut seen = String::new();
    for _ in 0..50 {
        let o = Command::new("ip")
            // Debian's busybox wget crashes on -T: timeout(1) bounds it.
            .args([
                "netns",
                "exec",
                &ns,
                "timeout",
                "5",
                "/bin/busybox",
                "wget",
                "-qO-",
                &url,
            ])
            .output()
            .expect("wget");
        seen = String::from_utf8_lossy(&o.stdout).trim().to_string();
        if !seen.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // The container sees the outside host itself: DNAT, not the proxy.
    assert_eq!(seen, format!("[{out6}2]"));
    // The host's own connection to one of its IPv6 addresses: DNAT too, so
    // the container sees that address (the proxy would come from pub6's
    // gateway), as dockerd's OUTPUT rule does.
    let o = Command::new("timeout")
        .args(["5", "/bin/busybox", "wget", "-qO-", &url])
        .output()
        .expect("wget");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        format!("[{out6}1]"),
        "{o:?}"
    );
    d.cli_ok(&["rm", "-f", "dnat6"]);
    d.cli_ok(&["network", "rm", "pub6"]);
}
