//! Isolation options: `--icc=false` and `enable_icc`, `host_binding_ipv4`,
//! `driver.mtu`, `--iptables=false`.

use std::time::Duration;

use crate::images::busybox;
use crate::network::{http_get, inspect, web_args};
use crate::{builder, daemon, free_port};

/// Starts a web server `name` on `net` (None: the default bridge) answering
/// `name`, publishing it on 127.0.0.1:`port`; returns its address.
fn web(d: &berth_testkit::TestDaemon, name: &str, net: Option<&str>, port: u16) -> String {
    let b = busybox(d);
    let mut args: Vec<String> = vec!["run".into(), "-d".into(), "--name".into(), name.into()];
    if let Some(n) = net {
        args.extend(["--network".into(), n.into()]);
    }
    args.extend(["-p".into(), format!("127.0.0.1:{port}:80")]);
    args.extend(web_args(&b, name));
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    d.cli_ok(&a);
    for _ in 0..50 {
        if http_get(&format!("127.0.0.1:{port}")).contains(name) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let v = inspect(d, name);
    let nets = &v["NetworkSettings"]["Networks"];
    let key = net.unwrap_or("bridge");
    nets[key]["IPAddress"]
        .as_str()
        .expect("address")
        .to_string()
}

/// Whether a fresh container on `net` gets an answer from `target` (ping:
/// port isolation drops every frame between the ports, ARP included).
fn reaches(d: &berth_testkit::TestDaemon, net: Option<&str>, target: &str) -> bool {
    let b = busybox(d);
    let mut args = vec!["run", "--rm"];
    if let Some(n) = net {
        args.extend(["--network", n]);
    }
    args.extend([b.as_str(), "ping", "-c", "1", "-W", "3", target]);
    d.cli(&args).status.success()
}

#[test]
fn icc_false_keeps_containers_apart_and_published_ports_working() {
    let d = builder().arg("--icc=false").start();
    let port = free_port();
    let ip = web(&d, "iccweb", None, port);
    assert!(
        !reaches(&d, None, &ip),
        "a container reached another with --icc=false"
    );
    // The host and the published port are still there.
    assert!(http_get(&format!("127.0.0.1:{port}")).contains("iccweb"));
    let v: serde_json::Value =
        serde_json::from_str(&d.cli_ok(&["network", "inspect", "bridge"])).expect("json");
    assert_eq!(
        v[0]["Options"]["com.docker.network.bridge.enable_icc"],
        "false"
    );
    let gw = v[0]["IPAM"]["Config"][0]["Gateway"]
        .as_str()
        .expect("gw")
        .to_string();
    let b = busybox(&d);
    d.cli_ok(&["run", "--rm", &b, "ping", "-c", "1", "-W", "3", &gw]);
    // A user network keeps its own setting (on by default).
    d.cli_ok(&["network", "create", "open"]);
    let port2 = free_port();
    web(&d, "openweb", Some("open"), port2);
    assert!(reaches(&d, Some("open"), "openweb"));
    d.cli_ok(&["rm", "-f", "iccweb", "openweb"]);
    d.cli_ok(&["network", "rm", "open"]);
}

#[test]
fn network_options_isolate_bind_published_ports_and_set_the_mtu() {
    let d = daemon();
    d.cli_ok(&[
        "network",
        "create",
        "-o",
        "com.docker.network.bridge.enable_icc=false",
        "-o",
        "com.docker.network.bridge.host_binding_ipv4=127.0.0.1",
        "-o",
        "com.docker.network.driver.mtu=1400",
        "closed",
    ]);
    let port = free_port();
    let b = busybox(&d);
    let mut args: Vec<String> = [
        "run",
        "-d",
        "--name",
        "closedweb",
        "--network",
        "closed",
        "-p",
    ]
    .map(String::from)
    .to_vec();
    args.push(format!("{port}:80"));
    args.extend(web_args(&b, "closedweb"));
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    d.cli_ok(&a);
    // Published without an address: bound where the network says.
    let ports = d.cli_ok(&["port", "closedweb"]);
    assert!(
        ports.contains(&format!("80/tcp -> 127.0.0.1:{port}")),
        "{ports}"
    );
    let mut body = String::new();
    for _ in 0..50 {
        body = http_get(&format!("127.0.0.1:{port}"));
        if body.contains("closedweb") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(body.contains("closedweb"), "{body}");
    assert!(!reaches(&d, Some("closed"), "closedweb"));
    let mtu = d.cli_ok(&[
        "run",
        "--rm",
        "--network",
        "closed",
        &b,
        "cat",
        "/sys/class/net/eth0/mtu",
    ]);
    assert_eq!(mtu.trim(), "1400");
    d.cli_ok(&["rm", "-f", "closedweb"]);
    d.cli_ok(&["network", "rm", "closed"]);
}

#[test]
fn iptables_false_writes_no_rules_and_ports_still_answer_on_loopback() {
    let d = builder().arg("--iptables=false").start();
    let port = free_port();
    web(&d, "norules", None, port);
    assert!(http_get(&format!("127.0.0.1:{port}")).contains("norules"));
    let table = format!("berth-{}", d.bridge);
    let o = std::process::Command::new("nft")
        .args(["list", "table", "ip", &table])
        .output()
        .expect("nft");
    assert!(
        !o.status.success(),
        "table {table} written with --iptables=false"
    );
    d.cli_ok(&["rm", "-f", "norules"]);
}
