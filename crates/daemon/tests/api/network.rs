//! Networking through the docker CLI and bollard: the default bridge, published
//! ports, user-defined networks with DNS, connect/disconnect, network modes.

use std::io::{Read, Write};

use crate::images::busybox;
use crate::{body_json, daemon, status};

/// A host port nothing listens on right now.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// `GET /` over TCP; the body, or the error as text.
pub(crate) fn http_get(addr: &str) -> String {
    let go = || -> std::io::Result<String> {
        let mut s = std::net::TcpStream::connect(addr)?;
        s.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
        s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n")?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    };
    go().unwrap_or_else(|e| format!("error: {e}"))
}

/// A busybox web server answering `text` on port 80.
pub(crate) fn web_args<'a>(b: &'a str, text: &'a str) -> Vec<String> {
    vec![
        b.to_string(),
        "sh".into(),
        "-c".into(),
        format!("mkdir /www; echo {text} > /www/index.html; exec httpd -f -p 80 -h /www"),
    ]
}

pub(crate) fn inspect(d: &berth_testkit::TestDaemon, name: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&d.cli_ok(&["inspect", name])).expect("json");
    v[0].clone()
}

/// Host-side interfaces still on one of the daemon's bridges, once the kernel has
/// finished destroying the namespaces of containers that are gone (it does that in
/// the background): waits up to 5 s for the list to settle at nothing.
fn veths_on(bridge: &str) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let now = veths_now(bridge);
        if now.is_empty() || std::time::Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn veths_now(bridge: &str) -> Vec<String> {
    let o = std::process::Command::new("ip")
        .args(["-o", "link", "show", "master", bridge])
        .output()
        .expect("ip link");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn default_bridge_gives_an_address_route_and_hosts_entry() {
    let d = daemon();
    let b = busybox(&d);
    d.cli_ok(&["run", "-d", "--name", "c1", &b, "sleep", "1000"]);
    let v = inspect(&d, "c1");
    let ns = &v["NetworkSettings"];
    let ip = ns["IPAddress"].as_str().unwrap_or("").to_string();
    let gw = ns["Gateway"].as_str().unwrap_or("").to_string();
    assert!(ip.starts_with("10.") && ip.ends_with(".2"), "{ns}");
    assert_eq!(ns["Networks"]["bridge"]["IPAddress"], ip.as_str());
    assert_eq!(ns["IPPrefixLen"], 24);
    assert!(ns["MacAddress"]
        .as_str()
        .unwrap_or("")
        .starts_with("02:42:"));
    assert!(ns["SandboxKey"].as_str().unwrap_or("").contains("netns"));
    let out = d.cli_ok(&[
        "exec",
        "c1",
        "sh",
        "-c",
        "ip -4 -o addr show eth0; ip route; tail -1 /etc/hosts",
    ]);
    assert!(out.contains(&format!("inet {ip}/24")), "{out}");
    assert!(out.contains(&format!("default via {gw} dev eth0")), "{out}");
    assert!(out.contains(&format!("{ip}\t")), "{out}");
    d.cli_ok(&["exec", "c1", "ping", "-c1", "-W2", &gw]);
    // A second container gets the next address and reaches the first.
    d.cli_ok(&["run", "-d", "--name", "c2", &b, "sleep", "1000"]);
    let ip2 = inspect(&d, "c2")["NetworkSettings"]["IPAddress"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert_ne!(ip, ip2);
    d.cli_ok(&["exec", "c2", "ping", "-c1", "-W2", &ip]);
    assert_eq!(veths_now(&d.bridge).len(), 2);
    d.cli_ok(&["rm", "-f", "c1", "c2"]);
    assert!(veths_on(&d.bridge).is_empty(), "veths left behind");
    let left: Vec<_> = std::fs::read_dir(d.exec_root.join("netns"))
        .map(|r| r.flatten().collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
    // The address is free again.
    d.cli_ok(&["run", "-d", "--name", "c3", &b, "sleep", "1000"]);
    assert_eq!(
        inspect(&d, "c3")["NetworkSettings"]["IPAddress"],
        ip.as_str()
    );
    d.cli_ok(&["rm", "-f", "c3"]);
}

#[test]
fn published_ports_answer_on_loopback_and_from_containers() {
    let d = daemon();
    let b = busybox(&d);
    let port = free_port();
    let mut args = vec![
        "run".to_string(),
        "-d".into(),
        "--name".into(),
        "web".into(),
        "-p".into(),
        format!("{port}:80"),
        "--expose".into(),
        "90".into(),
        "-P".into(),
    ];
    args.extend(web_args(&b, "hello-port"));
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    d.cli_ok(&a);
    // httpd needs a moment to listen; the proxy is there at once.
    let mut body = String::new();
    for _ in 0..50 {
        body = http_get(&format!("127.0.0.1:{port}"));
        if body.contains("hello-port") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(body.contains("hello-port"), "{body}");
    let ports = d.cli_ok(&["port", "web"]);
    assert!(
        ports.contains(&format!("80/tcp -> 0.0.0.0:{port}")),
        "{ports}"
    );
    assert!(
        ports.contains("90/tcp -> 0.0.0.0:"),
        "-P publishes exposed ports: {ports}"
    );
    let ps = d.cli_ok(&["ps", "--format", "{{.Ports}}"]);
    assert!(ps.contains(&format!("0.0.0.0:{port}->80/tcp")), "{ps}");
    // From another container: by the container's address and by the host port.
    let ip = inspect(&d, "web")["NetworkSettings"]["IPAddress"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let gw = inspect(&d, "web")["NetworkSettings"]["Gateway"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let out = d.cli_ok(&[
        "run",
        "--rm",
        &b,
        "wget",
        "-qO-",
        &format!("http://{ip}/index.html"),
    ]);
    assert_eq!(out.trim(), "hello-port");
    let out = d.cli_ok(&[
        "run",
        "--rm",
        &b,
        "wget",
        "-qO-",
        &format!("http://{gw}:{port}/index.html"),
    ]);
    assert_eq!(out.trim(), "hello-port");
    // The same host port again: Docker's error, and that container never runs.
    let o = d.cli(&[
        "run",
        "-d",
        "--name",
        "clash",
        "-p",
        &format!("{port}:80"),
        &b,
        "sleep",
        "100",
    ]);
    assert_ne!(o.status.code(), Some(0));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("port is already allocated"), "{err}");
    assert_eq!(inspect(&d, "clash")["State"]["Running"], false);
    // A port another process holds: the bind error.
    let holder = std::net::TcpListener::bind("0.0.0.0:0").expect("bind");
    let held = holder.local_addr().expect("addr").port();
    let o = d.cli(&["run", "--rm", "-p", &format!("{held}:80"), &b, "true"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stderr).contains("address already in use"));
    drop(holder);
    // `-p 80`: a random host port, shown by docker port and answering.
    let mut args = vec![
        "run".to_string(),
        "-d".into(),
        "--name".into(),
        "rnd".into(),
        "-p".into(),
        "127.0.0.1::80".into(),
    ];
    args.extend(web_args(&b, "random-port"));
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    d.cli_ok(&a);
    let p = d.cli_ok(&["port", "rnd", "80"]);
    let addr = p.trim().to_string();
    assert!(addr.starts_with("127.0.0.1:"), "{p}");
    let mut body = String::new();
    for _ in 0..50 {
        body = http_get(&addr);
        if body.contains("random-port") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(body.contains("random-port"), "{body}");
    let table = format!("berth-{}", d.bridge);
    let rules = std::process::Command::new("nft")
        .args(["list", "table", "ip", &table])
        .output()
        .expect("nft");
    assert!(
        String::from_utf8_lossy(&rules.stdout).contains("dnat"),
        "no DNAT rules while ports are published"
    );
    d.cli_ok(&["rm", "-f", "web", "clash", "rnd"]);
    let rules = std::process::Command::new("nft")
        .args(["list", "table", "ip", &table])
        .output()
        .expect("nft");
    assert!(
        !String::from_utf8_lossy(&rules.stdout).contains("dnat"),
        "DNAT rules left behind"
    );
    // The port is free again once the container is gone.
    assert!(http_get(&format!("127.0.0.1:{port}")).starts_with("error"));
    std::net::TcpListener::bind(("0.0.0.0", port)).expect("port released");
}

#[test]
fn user_networks_resolve_names_and_stay_apart() {
    let d = daemon();
    let b = busybox(&d);
    let net_id = d.cli_ok(&[
        "network",
        "create",
        "--subnet",
        "10.251.7.0/24",
        "--label",
        "team=a",
        "front",
    ]);
    assert_eq!(net_id.trim().len(), 64);
    d.cli_ok(&["network", "create", "back"]);
    d.cli_ok(&[
        "run",
        "-d",
        "--name",
        "api",
        "--network",
        "front",
        "--network-alias",
        "svc",
        &b,
        "sleep",
        "1000",
    ]);
    d.cli_ok(&[
        "run",
        "-d",
        "--name",
        "fixed",
        "--network",
        "front",
        "--ip",
        "10.251.7.50",
        &b,
        "sleep",
        "1000",
    ]);
    assert_eq!(
        inspect(&d, "fixed")["NetworkSettings"]["Networks"]["front"]["IPAddress"],
        "10.251.7.50"
    );
    // Names and aliases through the embedded DNS.
    let out = d.cli_ok(&[
        "run",
        "--rm",
        "--network",
        "front",
        &b,
        "sh",
        "-c",
        "cat /etc/resolv.conf; ping -c1 -W2 api; ping -c1 -W2 svc; nslookup fixed 127.0.0.11",
    ]);
    assert!(out.contains("nameserver 127.0.0.11"), "{out}");
    assert!(out.contains("10.251.7.2"), "{out}");
    assert!(out.contains("10.251.7.50"), "{out}");
    // Another network cannot reach them.
    let o = d.cli(&[
        "run",
        "--rm",
        "--network",
        "back",
        &b,
        "ping",
        "-c1",
        "-W1",
        "10.251.7.2",
    ]);
    assert_ne!(o.status.code(), Some(0), "networks must be isolated");
    // inspect and ls.
    let v: serde_json::Value =
        serde_json::from_str(&d.cli_ok(&["network", "inspect", "front"])).expect("json");
    assert_eq!(v[0]["IPAM"]["Config"][0]["Subnet"], "10.251.7.0/24");
    assert_eq!(v[0]["IPAM"]["Config"][0]["Gateway"], "10.251.7.1");
    assert_eq!(v[0]["Containers"].as_object().map(|m| m.len()), Some(2));
    assert_eq!(v[0]["Labels"]["team"], "a");
    let ls = d.cli_ok(&[
        "network",
        "ls",
        "--filter",
        "label=team=a",
        "--format",
        "{{.Name}}",
    ]);
    assert_eq!(ls.trim(), "front");
    let ls = d.cli_ok(&[
        "network",
        "ls",
        "--filter",
        "type=builtin",
        "--format",
        "{{.Name}}",
    ]);
    assert_eq!(ls.lines().count(), 3, "{ls}");
    let ps = d.cli_ok(&["ps", "--filter", "network=front", "--format", "{{.Names}}"]);
    assert_eq!(ps.lines().count(), 2, "{ps}");
    // In use: not removable.
    let o = d.cli(&["network", "rm", "front"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("has active endpoints"),
        "{o:?}"
    );
    // connect and disconnect a running container.
    d.cli_ok(&["network", "connect", "--alias", "late", "back", "api"]);
    let out = d.cli_ok(&["exec", "api", "ip", "-o", "-4", "addr"]);
    assert!(out.contains("eth1"), "{out}");
    let out = d.cli_ok(&[
        "run",
        "--rm",
        "--network",
        "back",
        &b,
        "nslookup",
        "late",
        "127.0.0.11",
    ]);
    assert!(out.contains("Address"), "{out}");
    d.cli_ok(&["network", "disconnect", "back", "api"]);
    assert!(!d
        .cli_ok(&["exec", "api", "ip", "-o", "-4", "addr"])
        .contains("eth1"));
    d.cli_ok(&["rm", "-f", "api", "fixed"]);
    d.cli_ok(&["network", "rm", "front"]);
    let pruned = d.cli_ok(&["network", "prune", "-f"]);
    assert!(pruned.contains("back"), "{pruned}");
    assert_eq!(d.cli_ok(&["network", "ls", "-q"]).lines().count(), 3);
}

#[test]
fn network_modes_none_host_and_container() {
    let d = daemon();
    let b = busybox(&d);
    let out = d.cli_ok(&["run", "--rm", "--network", "none", &b, "ip", "-o", "link"]);
    assert_eq!(out.lines().count(), 1, "only lo: {out}");
    assert!(out.contains("lo:") && out.contains("UP"), "{out}");
    let out = d.cli_ok(&["run", "--rm", "--network", "host", &b, "ip", "-o", "link"]);
    assert!(out.contains(&d.bridge), "the host's interfaces: {out}");
    d.cli_ok(&["run", "-d", "--name", "owner", &b, "sleep", "1000"]);
    let ip = inspect(&d, "owner")["NetworkSettings"]["IPAddress"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let out = d.cli_ok(&[
        "run",
        "--rm",
        "--network",
        "container:owner",
        &b,
        "ip",
        "-o",
        "-4",
        "addr",
        "show",
        "eth0",
    ]);
    assert!(out.contains(&ip), "{out}");
    d.cli_ok(&["rm", "-f", "owner"]);
}

#[test]
fn network_bad_input() {
    let d = daemon();
    let b = busybox(&d);
    d.cli_ok(&["network", "create", "dup"]);
    let post = |path: &str, body: &str| {
        d.raw(format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes())
    };
    let r = post("/networks/create", r#"{"Name":"dup"}"#);
    assert_eq!(status(&r), 409, "{r}");
    assert_eq!(
        body_json(&r)["message"],
        "network with name dup already exists"
    );
    let r = post(
        "/networks/create",
        r#"{"Name":"x1","Driver":"overlay-nope"}"#,
    );
    assert_eq!(status(&r), 404, "{r}");
    let r = post(
        "/networks/create",
        r#"{"Name":"x2","IPAM":{"Config":[{"Subnet":"not-a-subnet"}]}}"#,
    );
    assert_eq!(status(&r), 400, "{r}");
    d.cli_ok(&["network", "create", "--subnet", "10.252.0.0/16", "one"]);
    let r = post(
        "/networks/create",
        r#"{"Name":"two","IPAM":{"Config":[{"Subnet":"10.252.3.0/24"}]}}"#,
    );
    assert_eq!(status(&r), 403, "{r}");
    let r = d.raw(b"DELETE /networks/bridge HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(status(&r), 403, "{r}");
    let r = d.get("/networks/nope");
    assert_eq!(status(&r), 404, "{r}");
    let o = d.cli(&["run", "--rm", "--network", "nope", &b, "true"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("network nope not found"),
        "{o:?}"
    );
    let o = d.cli(&["run", "--rm", "--ip", "10.1.1.1", &b, "true"]);
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("user specified IP address is supported on user defined networks only"),
        "{o:?}"
    );
    let o = d.cli(&[
        "run",
        "--rm",
        "--network",
        "one",
        "--ip",
        "10.9.9.9",
        &b,
        "true",
    ]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("does not belong"),
        "{o:?}"
    );
    // Nothing was left attached by the failures.
    assert!(veths_on(&d.bridge).is_empty());
    d.cli_ok(&["network", "rm", "dup", "one"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn networks_through_bollard() {
    use bollard::models::NetworkCreateRequest;
    let d = daemon();
    let b = busybox(&d);
    let c = d.bollard().await;
    let created = c
        .create_network(NetworkCreateRequest {
            name: "bnet".into(),
            labels: Some([("k".to_string(), "v".to_string())].into()),
            ..Default::default()
        })
        .await
        .expect("create network");
    d.cli_ok(&["run", "-d", "--name", "bc", &b, "sleep", "1000"]);
    c.connect_network(
        "bnet",
        bollard::models::NetworkConnectRequest {
            container: "bc".into(),
            ..Default::default()
        },
    )
    .await
    .expect("connect");
    let n = c
        .inspect_network(
            "bnet",
            None::<bollard::query_parameters::InspectNetworkOptions>,
        )
        .await
        .expect("inspect");
    assert_eq!(n.id.as_deref(), Some(created.id.as_str()));
    assert_eq!(n.containers.map(|m| m.len()), Some(1));
    let list = c
        .list_networks(None::<bollard::query_parameters::ListNetworksOptions>)
        .await
        .expect("list");
    assert_eq!(list.len(), 4);
    let err = c.remove_network("bnet").await.expect_err("in use");
    assert!(err.to_string().contains("active endpoints"), "{err}");
    d.cli_ok(&["rm", "-f", "bc"]);
    c.remove_network("bnet").await.expect("remove");
}

#[test]
fn ports_and_addresses_survive_a_daemon_restart() {
    let mut d = daemon();
    let b = busybox(&d);
    let port = free_port();
    let mut args = vec![
        "run".to_string(),
        "-d".into(),
        "--name".into(),
        "keep".into(),
        "-p".into(),
        format!("{port}:80"),
    ];
    args.extend(web_args(&b, "still-serving"));
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    d.cli_ok(&a);
    let ip = inspect(&d, "keep")["NetworkSettings"]["IPAddress"]
        .as_str()
        .unwrap_or("")
        .to_string();
    d.kill9();
    d.restart();
    assert_eq!(
        inspect(&d, "keep")["NetworkSettings"]["IPAddress"],
        ip.as_str()
    );
    let mut body = String::new();
    for _ in 0..50 {
        body = http_get(&format!("127.0.0.1:{port}"));
        if body.contains("still-serving") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(body.contains("still-serving"), "{body}");
    // A new container does not get the address the running one holds.
    d.cli_ok(&["run", "-d", "--name", "next", &b, "sleep", "100"]);
    assert_ne!(
        inspect(&d, "next")["NetworkSettings"]["IPAddress"],
        ip.as_str()
    );
    d.cli_ok(&["rm", "-f", "keep", "next"]);
    assert!(veths_on(&d.bridge).is_empty());
}

/// A DNS server on a loopback address of the host that answers every A question
/// with `answer` (and every other question with no records), until dropped.
struct FakeUpstream {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl FakeUpstream {
    fn start(addr: &str, answer: [u8; 4]) -> FakeUpstream {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        let sock = std::net::UdpSocket::bind(addr).expect("bind the fake upstream");
        sock.set_read_timeout(Some(std::time::Duration::from_millis(100)))
            .expect("timeout");
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (s2, seen2) = (stop.clone(), seen.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !s2.load(Ordering::SeqCst) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let q = &buf[..n];
                if n < 12 {
                    continue;
                }
                // The question: labels up to the root, then type and class.
                let mut i = 12;
                let mut name = Vec::new();
                while i < n && q[i] != 0 {
                    let l = q[i] as usize;
                    name.push(String::from_utf8_lossy(&q[i + 1..(i + 1 + l).min(n)]).into_owned());
                    i += 1 + l;
                }
                let end = (i + 5).min(n);
                let qtype = if i + 2 < n {
                    u16::from_be_bytes([q[i + 1], q[i + 2]])
                } else {
                    0
                };
                seen2
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(name.join("."));
                let mut r = q[..end].to_vec();
                r[2] = 0x81; // a response, recursion desired
                r[3] = 0x80; // recursion available, no error
                r[6] = 0;
                r[7] = u8::from(qtype == 1);
                r[8..12].fill(0);
                if qtype == 1 {
                    r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
                    r.extend_from_slice(&answer);
                }
                let _ = sock.send_to(&r, from);
            }
        });
        FakeUpstream { stop, seen }
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn add_host_and_dns_settings_reach_the_container() {
    let d = daemon();
    let b = busybox(&d);
    // The default bridge: /etc/hosts and /etc/resolv.conf as dockerd writes them.
    let out = d.cli_ok(&[
        "run",
        "--rm",
        "--add-host",
        "db.internal:10.9.8.7",
        "--add-host",
        "gw.internal:host-gateway",
        "--dns",
        "10.9.9.9",
        "--dns-search",
        "a.test",
        "--dns-option",
        "ndots:3",
        &b,
        "sh",
        "-c",
        "cat /etc/hosts /etc/resolv.conf",
    ]);
    let bridge_gw = d.cli_ok(&[
        "network",
        "inspect",
        "-f",
        "{{(index .IPAM.Config 0).Gateway}}",
        "bridge",
    ]);
    assert!(out.contains("10.9.8.7\tdb.internal\n"), "{out}");
    assert!(
        out.contains(&format!("{}\tgw.internal\n", bridge_gw.trim())),
        "{out}"
    );
    assert!(
        out.contains("nameserver 10.9.9.9\nsearch a.test\noptions ndots:3\n"),
        "{out}"
    );
    assert_eq!(out.matches("nameserver").count(), 1, "{out}");
    // A user-defined network: the embedded server stays the nameserver and forwards
    // what it does not know to the --dns server.
    let upstream = FakeUpstream::start("127.0.0.77:53", [10, 1, 2, 3]);
    d.cli_ok(&["network", "create", "dnsnet"]);
    let out = d.cli_ok(&[
        "run",
        "--rm",
        "--network",
        "dnsnet",
        "--dns",
        "127.0.0.77",
        "--dns-search",
        "b.test",
        &b,
        "sh",
        "-c",
        "cat /etc/resolv.conf; nslookup -type=a outside.example 127.0.0.11",
    ]);
    assert!(
        out.contains("nameserver 127.0.0.11\nsearch b.test\n"),
        "{out}"
    );
    assert!(out.contains("10.1.2.3"), "{out}");
    assert!(
        upstream
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|n| n == "outside.example"),
        "the query reached the --dns server"
    );
    drop(upstream);
    d.cli_ok(&["network", "rm", "dnsnet"]);
    // dockerd's checks.
    let o = d.cli(&["create", "--add-host", "x:999.0.0.1", &b]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("invalid IP address in add-host"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    d.cli_ok(&["run", "-d", "--name", "dnsbase", &b, "sleep", "100"]);
    let o = d.cli(&[
        "create",
        "--network",
        "container:dnsbase",
        "--dns",
        "1.1.1.1",
        &b,
    ]);
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("conflicting options: dns and the network mode"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Inspect keeps the settings as given.
    let id = d.cli_ok(&["create", "--add-host", "h:1.2.3.4", "--dns", "9.9.9.9", &b]);
    let hc = inspect(&d, id.trim())["HostConfig"].clone();
    assert_eq!(hc["ExtraHosts"], serde_json::json!(["h:1.2.3.4"]));
    assert_eq!(hc["Dns"], serde_json::json!(["9.9.9.9"]));
    d.cli_ok(&["rm", "-f", "dnsbase", id.trim()]);
}
