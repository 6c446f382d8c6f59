//! A group network made as Nomad (and Kubernetes' CNI plugins) make it: a pause
//! container in `none` mode, Debian's CNI `bridge` plugin run by the test on its
//! `SandboxKey`, task containers joining it; they reach each other on
//! localhost and the host reaches them on the address CNI gave.

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::daemon;
use crate::images::busybox;

const PLUGINS: &str = "/usr/lib/cni";

fn cni(command: &str, netns: &str, id: &str, conf: &Value) -> (bool, String) {
    let mut child = Command::new(format!("{PLUGINS}/bridge"))
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", PLUGINS)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the CNI bridge plugin (Debian's containernetworking-plugins)");
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(conf.to_string().as_bytes());
    }
    let out = child.wait_with_output().expect("cni");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn a_group_network_through_the_cni_bridge_plugin() {
    if !std::path::Path::new(PLUGINS).join("bridge").exists() {
        eprintln!("no CNI plugins in {PLUGINS}: run through cargo xtask test");
        return;
    }
    let d = daemon();
    let b = busybox(&d);
    let n = std::process::id() % 250;
    let bridge = format!("bcni{:x}", std::process::id() & 0xffff);
    let state = tempfile::tempdir().expect("tempdir");
    let conf = json!({
        "cniVersion": "0.4.0",
        "name": format!("berth-test-{n}"),
        "type": "bridge",
        "bridge": bridge,
        "isGateway": true,
        "ipMasq": false,
        "ipam": {
            "type": "host-local",
            "subnet": format!("10.246.{n}.0/24"),
            "dataDir": state.path().join("ipam"),
        },
    });
    let pause = d.cli_ok(&[
        "run",
        "-d",
        "--name",
        "pause",
        "--network",
        "none",
        "--hostname",
        "group",
        &b,
        "sh",
        "-c",
        "trap 'exit 0' TERM; sleep 300 & wait",
    ]);
    let pause = pause.trim().to_string();
    let key = d.cli_ok(&["inspect", "-f", "{{.NetworkSettings.SandboxKey}}", &pause]);
    let key = key.trim().to_string();
    let (ok, result) = cni("ADD", &key, &pause, &conf);
    let cleanup = |d: &berth_testkit::TestDaemon| {
        let _ = cni("DEL", &key, &pause, &conf);
        d.cli(&["rm", "-f", "server", "pause"]);
        let _ = Command::new("ip").args(["link", "del", &bridge]).status();
    };
    if !ok {
        cleanup(&d);
        panic!("CNI ADD failed: {result}");
    }
    let ip = serde_json::from_str::<Value>(&result).ok().and_then(|r| {
        let a = r["ips"][0]["address"].as_str()?.to_string();
        a.split('/').next().map(str::to_string)
    });
    let Some(ip) = ip else {
        cleanup(&d);
        panic!("no address in {result}");
    };
    // A server task and a client task in the group.
    d.cli_ok(&[
        "run",
        "-d",
        "--name",
        "server",
        "--network",
        "container:pause",
        &b,
        "httpd",
        "-f",
        "-p",
        "8080",
        "-h",
        "/etc",
    ]);
    let mut got = String::new();
    for _ in 0..50 {
        let o = d.cli(&[
            "run",
            "--rm",
            "--network",
            "container:pause",
            &b,
            "wget",
            "-qO-",
            "http://127.0.0.1:8080/hostname",
        ]);
        got = String::from_utf8_lossy(&o.stdout).into_owned();
        if o.status.success() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // The host, on the CNI bridge, reaches the group's address.
    let from_host = std::net::TcpStream::connect((ip.as_str(), 8080)).and_then(|mut s| {
        s.write_all(b"GET /hostname HTTP/1.0\r\n\r\n")?;
        let mut r = String::new();
        s.read_to_string(&mut r)?;
        Ok(r)
    });
    cleanup(&d);
    assert_eq!(got, "group\n", "a task reaches another on localhost");
    let from_host = from_host.unwrap_or_else(|e| panic!("{ip}:8080 from the host: {e}"));
    assert!(from_host.ends_with("group\n"), "{from_host}");
}
