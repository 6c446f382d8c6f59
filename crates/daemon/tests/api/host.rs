//! Berth on hosts as users have them: beside a running dockerd with its defaults
//! (iptables FORWARD policy DROP, `br_netfilter`), beside bridges that other
//! programs or earlier data roots left, with addresses and routes it must not take.
//!
//! (Debian's static busybox crashes in `wget -T`: timeouts come from `timeout`.)

use std::net::Ipv4Addr;
use std::process::{Child, Command, Output, Stdio};

use crate::images::busybox;
use crate::network::{free_port, http_get, inspect, web_args};
use crate::{berthd_refuses, builder, daemon};

fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"))
}

fn ok(cmd: &str, args: &[&str]) -> String {
    let o = run(cmd, args);
    assert!(
        o.status.success(),
        "{cmd} {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn tag() -> String {
    format!("{:x}", std::process::id() & 0xffff)
}

/// Links a test made, deleted when it ends however it ends.
struct Links(Vec<String>);

impl Drop for Links {
    fn drop(&mut self) {
        for l in &self.0 {
            let _ = Command::new("ip")
                .args(["link", "delete", l])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A host outside every container network: a network namespace behind a veth
/// from the host, serving `outside` on port 8080.
struct Outside {
    ns: String,
    veth: String,
    /// The host's end of the veth: an address of the host.
    host_ip: String,
    ip: String,
    server: Child,
    _dir: tempfile::TempDir,
}

impl Outside {
    fn new() -> Outside {
        let t = tag();
        let x = std::process::id() % 250;
        let (ns, veth, peer) = (format!("bto{t}"), format!("bto{t}h"), format!("bto{t}p"));
        let (host_ip, ip) = (format!("10.253.{x}.1"), format!("10.253.{x}.2"));
        let _ = run("ip", &["netns", "delete", &ns]);
        let _ = run("ip", &["link", "delete", &veth]);
        ok("ip", &["netns", "add", &ns]);
        ok(
            "ip",
            &[
                "link", "add", &veth, "type", "veth", "peer", "name", &peer, "netns", &ns,
            ],
        );
        ok(
            "ip",
            &["addr", "add", &format!("{host_ip}/30"), "dev", &veth],
        );
        ok("ip", &["link", "set", &veth, "up"]);
        let inside = |args: &[&str]| {
            let mut a = vec!["netns", "exec", &ns, "ip"];
            a.extend(args);
            ok("ip", &a);
        };
        inside(&["addr", "add", &format!("{ip}/30"), "dev", &peer]);
        inside(&["link", "set", &peer, "up"]);
        inside(&["link", "set", "lo", "up"]);
        inside(&["route", "add", "default", "via", &host_ip]);
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("index.html"), "outside\n").expect("page");
        let server = Command::new("ip")
            .args(["netns", "exec", &ns, "/bin/busybox", "httpd", "-f", "-p"])
            .arg(format!("{ip}:8080"))
            .arg("-h")
            .arg(dir.path())
            .stdin(Stdio::null())
            .spawn()
            .expect("httpd in the outside host");
        let o = Outside {
            ns,
            veth,
            host_ip,
            ip,
            server,
            _dir: dir,
        };
        // Up when it answers from the host.
        let url = format!("{}:8080", o.ip);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !http_get(&url).contains("outside") {
            assert!(std::time::Instant::now() < deadline, "outside host down");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        o
    }

    /// `wget` from the outside host.
    fn wget(&self, url: &str) -> String {
        let o = run(
            "ip",
            &[
                "netns",
                "exec",
                &self.ns,
                "timeout",
                "10",
                "/bin/busybox",
                "wget",
                "-qO-",
                url,
            ],
        );
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = run("ip", &["netns", "delete", &self.ns]);
        let _ = run("ip", &["link", "delete", &self.veth]);
    }
}

/// `docker …` against the dockerd `cargo xtask test` runs beside the tests.
fn dockerd(args: &[&str]) -> String {
    let host = berth_testkit::dockerd::host()
        .expect("BERTH_TEST_DOCKERD is unset: run the tests through `cargo xtask test`");
    let o = berth_testkit::dockerd::docker_at(&host, args);
    assert!(
        o.status.success(),
        "dockerd: docker {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn beside_a_default_dockerd_containers_reach_each_other_ports_and_the_outside() {
    // dockerd's defaults are in force: what this test is about.
    dockerd(&["version"]);
    let forward = ok("iptables", &["-S", "FORWARD"]);
    assert!(
        forward.starts_with("-P FORWARD DROP"),
        "dockerd's policy: {forward}"
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/bridge/bridge-nf-call-iptables")
            .unwrap_or_default()
            .trim(),
        "1",
        "br_netfilter"
    );
    let out = Outside::new();
    let mut d = daemon();
    let b = busybox(&d);
    let table = format!("berth-{}", d.bridge);
    let chain = table.to_uppercase();
    d.cli_ok(&["network", "create", "front"]);
    let port = free_port();
    let mut args: Vec<String> = [
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "front",
        "--network-alias",
        "webalias",
        "-p",
    ]
    .map(String::from)
    .to_vec();
    args.push(format!("{port}:80"));
    args.extend(web_args(&b, "berth-web"));
    d.cli_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let web_ip = inspect(&d, "web")["NetworkSettings"]["Networks"]["front"]["IPAddress"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(!web_ip.is_empty());
    // By name, alias and address on a user network (ping and TCP).
    let got = d.cli_ok(&[
        "run",
        "--rm",
        "--network",
        "front",
        &b,
        "sh",
        "-c",
        &format!(
            "ping -c1 -W3 web && ping -c1 -W3 webalias && ping -c1 -W3 {web_ip} \
             && timeout 5 wget -qO- http://webalias/ && timeout 5 wget -qO- http://{web_ip}/"
        ),
    ]);
    assert_eq!(got.matches("berth-web").count(), 2, "{got}");
    // Out of the network, from a user network and from the default bridge.
    let outside = format!("http://{}:8080/", out.ip);
    for net in ["front", "bridge"] {
        let got = d.cli_ok(&[
            "run",
            "--rm",
            "--network",
            net,
            &b,
            "timeout",
            "5",
            "wget",
            "-qO-",
            &outside,
        ]);
        assert_eq!(got.trim(), "outside", "from {net}");
    }
    // The published port: on loopback, on an address of the host, and from the
    // outside host through the host's address (DNAT, then forwarded).
    assert!(http_get(&format!("127.0.0.1:{port}")).contains("berth-web"));
    assert!(http_get(&format!("{}:{port}", out.host_ip)).contains("berth-web"));
    let got = out.wget(&format!("http://{}:{port}/", out.host_ip));
    assert!(got.contains("berth-web"), "from outside: {got}");
    // Berth's accepts are in its own chain, jumped to from FORWARD.
    let rules = ok("iptables", &["-S", &chain]);
    assert!(
        rules.contains(&format!("-A {chain} -i {} -j ACCEPT", d.bridge)),
        "{rules}"
    );
    assert_eq!(rules.matches("-j ACCEPT").count(), 4, "{rules}");
    assert!(ok("iptables", &["-S", "FORWARD"]).contains(&format!("-j {chain}")));

    // dockerd's own containers work as before, beside Berth's.
    let name = format!("dweb{}", tag());
    let mut dargs: Vec<String> = ["run", "-d", "--name", &name].map(String::from).to_vec();
    dargs.extend(web_args("busybox:latest", "docker-web"));
    dockerd(&dargs.iter().map(String::as_str).collect::<Vec<_>>());
    let dip = dockerd(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", &name]);
    let dgot = dockerd(&[
        "run",
        "--rm",
        "busybox:latest",
        "sh",
        "-c",
        &format!(
            "timeout 5 wget -qO- http://{}/ && timeout 5 wget -qO- {outside}",
            dip.trim()
        ),
    ]);
    dockerd(&["rm", "-f", &name]);
    assert!(
        dgot.contains("docker-web") && dgot.contains("outside"),
        "{dgot}"
    );

    // Once nothing runs, a stopped daemon leaves no rule of its own behind.
    d.cli_ok(&["rm", "-f", "web"]);
    d.cli_ok(&["network", "rm", "front"]);
    assert!(d.stop().success());
    assert!(
        !run("iptables", &["-S", &chain]).status.success(),
        "chain left"
    );
    assert!(!ok("iptables", &["-S", "FORWARD"]).contains(&chain));
    assert!(
        !run("nft", &["list", "table", "ip", &table])
            .status
            .success(),
        "table left"
    );
    assert!(ok("iptables", &["-S", "FORWARD"]).starts_with("-P FORWARD DROP"));
}

/// The IPv4 addresses (with prefixes) of a link.
fn ipv4_of(link: &str) -> Vec<String> {
    ok("ip", &["-o", "-4", "addr", "show", "dev", link])
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            w.find(|x| *x == "inet")?;
            w.next().map(str::to_string)
        })
        .collect()
}

/// (network, prefix length) of `a.b.c.d/n`.
fn net_of(s: &str) -> (u32, u32) {
    let (ip, len) = s.split_once('/').unwrap_or((s, "32"));
    let ip: Ipv4Addr = ip.parse().expect("address");
    let len: u32 = len.parse().expect("prefix");
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    (u32::from(ip) & mask, len)
}

fn overlap(a: &str, b: &str) -> bool {
    let ((na, la), (nb, lb)) = (net_of(a), net_of(b));
    let l = la.min(lb);
    let mask = if l == 0 { 0 } else { u32::MAX << (32 - l) };
    na & mask == nb & mask
}

/// Every address and route of the host that is not `link`'s.
fn host_nets_except(link: &str) -> Vec<String> {
    let mut out = Vec::new();
    for l in ok("ip", &["-o", "-4", "addr", "show"]).lines() {
        let w: Vec<&str> = l.split_whitespace().collect();
        if w.get(1) != Some(&link) && w.get(1) != Some(&"lo") {
            if let Some(i) = w.iter().position(|x| *x == "inet") {
                out.extend(w.get(i + 1).map(|s| s.to_string()));
            }
        }
    }
    for l in ok("ip", &["-4", "route", "show"]).lines() {
        let w: Vec<&str> = l.split_whitespace().collect();
        let dev = w
            .iter()
            .position(|x| *x == "dev")
            .and_then(|i| w.get(i + 1));
        if w.first() != Some(&"default") && dev != Some(&link) {
            out.extend(w.first().map(|s| s.to_string()));
        }
    }
    out
}

/// Stops `d` and forgets its networks, so that the next daemon's data root is new
/// to the bridge that stays on the host.
fn stop_keeping_the_bridge(mut d: berth_testkit::TestDaemon) {
    assert!(d.stop().success());
    std::fs::remove_dir_all(d.data_root.join("network")).expect("forget networks");
}

#[test]
fn fresh_data_roots_give_the_default_bridge_one_free_subnet() {
    // The default pools, as a fresh install has them; in CI dockerd's docker0
    // holds 172.17.0.0/16.
    let bridge = format!("bts{}", tag());
    let _links = Links(vec![bridge.clone()]);
    let mut seen = Vec::new();
    for _ in 0..3 {
        let d = builder().arg("--bridge").arg(&bridge).start();
        let addrs = ipv4_of(&bridge);
        assert_eq!(addrs.len(), 1, "{bridge}: {addrs:?}");
        let others = host_nets_except(&bridge);
        assert!(
            !others.iter().any(|o| overlap(o, &addrs[0])),
            "{} overlaps one of {others:?}",
            addrs[0]
        );
        seen.push(addrs[0].clone());
        stop_keeping_the_bridge(d);
    }
    // Adopted as it was by the second and third daemons.
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:?}");
}

#[test]
fn leftover_bridges_are_reset_and_other_programs_bridges_left_alone() {
    let t = tag();
    // (`dummy`: a bridge, up, that only carries a route: the dummy driver is not
    // on every kernel.)
    let (foreign, dummy, bridge) = (format!("btf{t}"), format!("btd{t}"), format!("btl{t}"));
    let _links = Links(vec![bridge.clone(), foreign.clone(), dummy.clone()]);
    let pool = "base=10.252.0.0/16,size=24";
    let start = |extra: &[&str]| {
        let mut b = builder()
            .arg("--bridge")
            .arg(&bridge)
            .arg("--default-address-pool")
            .arg(pool);
        for a in extra {
            b = b.arg(*a);
        }
        b.start()
    };
    // Another program's bridge, link down (as docker0 without containers), and a
    // route that no address of the host covers.
    ok("ip", &["link", "add", &foreign, "type", "bridge"]);
    ok("ip", &["addr", "add", "10.252.0.1/24", "dev", &foreign]);
    ok("ip", &["link", "add", &dummy, "type", "bridge"]);
    ok("ip", &["link", "set", &dummy, "up"]);
    ok("ip", &["route", "add", "10.252.1.0/24", "dev", &dummy]);

    let d = start(&[]);
    assert_eq!(ipv4_of(&bridge), ["10.252.2.1/24"]);
    let alias =
        std::fs::read_to_string(format!("/sys/class/net/{bridge}/ifalias")).unwrap_or_default();
    assert_eq!(alias.trim(), format!("berth:{}", d.data_root.display()));
    stop_keeping_the_bridge(d);

    // The host: the leftover was also given the subnet the other bridge has.
    ok("ip", &["addr", "add", "10.252.0.1/24", "dev", &bridge]);
    let d = start(&[]);
    assert_eq!(
        ipv4_of(&bridge),
        ["10.252.2.1/24"],
        "reset to one free subnet"
    );
    d.cli_ok(&["run", "--rm", &busybox(&d), "true"]);
    stop_keeping_the_bridge(d);

    // --bip on an existing bridge replaces its address.
    let d = start(&["--bip", "10.252.9.1/24"]);
    assert_eq!(ipv4_of(&bridge), ["10.252.9.1/24"]);
    stop_keeping_the_bridge(d);

    // Another program's bridge in conflict: refused, and left as it was.
    ok("ip", &["addr", "add", "10.252.1.1/24", "dev", &foreign]);
    let err = berthd_refuses(&["--bridge", &foreign, "--default-address-pool", pool]);
    assert!(
        err.contains(&format!("bridge {foreign} exists with")),
        "{err}"
    );
    assert!(err.contains("was not made by Berth"), "{err}");
    assert_eq!(ipv4_of(&foreign), ["10.252.0.1/24", "10.252.1.1/24"]);
    let state =
        std::fs::read_to_string(format!("/sys/class/net/{foreign}/operstate")).unwrap_or_default();
    assert_eq!(state.trim(), "down");
}

/// A network namespace a test made, deleted when it ends.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "delete", &self.0]);
    }
}

#[test]
fn a_native_nftables_firewall_that_drops_forwarding_gets_berths_accepts() {
    // A host firewall written for nft, dropping what it does not allow. In a
    // network namespace of its own: its policy meets this test's daemon only.
    let ns = Netns(format!("btn{}", tag()));
    let _ = run("ip", &["netns", "delete", &ns.0]);
    ok("ip", &["netns", "add", &ns.0]);
    let inside = |args: &[&str]| {
        let mut a = vec!["netns", "exec", &ns.0];
        a.extend(args);
        run("ip", &a)
    };
    assert!(inside(&["ip", "link", "set", "lo", "up"]).status.success());
    assert!(inside(&["nft", "add", "table", "inet", "hostfw"])
        .status
        .success());
    let chain_spec = "{ type filter hook forward priority 0; policy drop; }";
    assert!(inside(&[
        "nft",
        "add",
        "chain",
        "inet",
        "hostfw",
        "hostforward",
        chain_spec
    ])
    .status
    .success());
    let mut d = builder().netns(format!("/run/netns/{}", ns.0)).start();
    // The test registry is on the host's loopback, not this namespace's.
    let fixtures =
        std::env::var("BERTH_FIXTURES").expect("BERTH_FIXTURES: run through cargo xtask test");
    d.cli_ok(&["load", "-q", "-i", &format!("{fixtures}/busybox.tar")]);
    let b = "busybox:latest";
    d.cli_ok(&["network", "create", "front"]);
    let mut args: Vec<String> = ["run", "-d", "--name", "web", "--network", "front"]
        .map(String::from)
        .to_vec();
    args.extend(web_args(b, "behind-nft"));
    d.cli_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let got = d.cli_ok(&[
        "run",
        "--rm",
        "--network",
        "front",
        b,
        "sh",
        "-c",
        "ping -c1 -W3 web && timeout 5 wget -qO- http://web/",
    ]);
    assert!(got.contains("behind-nft"), "{got}");
    let marker = format!("berth:berth-{}", d.bridge);
    let chain = || {
        let o = inside(&["nft", "list", "chain", "inet", "hostfw", "hostforward"]);
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    // Three accepts for each of the two bridges, all marked as Berth's.
    assert_eq!(chain().matches(&marker).count(), 6, "{}", chain());
    d.cli_ok(&["rm", "-f", "web"]);
    d.cli_ok(&["network", "rm", "front"]);
    // One bridge left, three accepts.
    assert_eq!(chain().matches(&marker).count(), 3, "{}", chain());
    assert!(d.stop().success());
    // Gone with the daemon; the host's own chain is as it was.
    let after = chain();
    assert!(!after.contains("berth"), "{after}");
    assert!(after.contains("policy drop"), "{after}");
}
