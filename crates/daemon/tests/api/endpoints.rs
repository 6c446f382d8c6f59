//! Endpoint and IPAM options SDKs set: MAC addresses (container-wide and per
//! endpoint), `DriverOpts`, `IPAMConfig` with `LinkLocalIPs`, and IPAM
//! `AuxiliaryAddresses`, as dockerd keeps and shows them.

use crate::images::busybox;
use crate::network::inspect;
use crate::{body_json, daemon, status};

fn post_json(d: &berth_testkit::TestDaemon, path: &str, body: &str) -> String {
    d.raw(format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes())
}

#[test]
fn mac_addresses_driver_opts_and_link_local_ips_are_kept() {
    let d = daemon();
    let b = busybox(&d);
    // The container-wide MacAddress of API 1.41 (docker-py's mac_address=).
    let resp = post_json(
        &d,
        "/v1.41/containers/create?name=mac1",
        &format!(r#"{{"Image":"{b}","Cmd":["sleep","60"],"MacAddress":"02:42:ac:11:00:0a"}}"#),
    );
    assert_eq!(status(&resp), 201, "{resp}");
    d.cli_ok(&["start", "mac1"]);
    let v = inspect(&d, "mac1");
    assert_eq!(
        v["NetworkSettings"]["MacAddress"], "02:42:ac:11:00:0a",
        "{v}"
    );
    assert_eq!(
        d.cli_ok(&["exec", "mac1", "cat", "/sys/class/net/eth0/address"]),
        "02:42:ac:11:00:0a\n"
    );
    d.cli_ok(&["rm", "-f", "mac1"]);
    // A bad one is refused with the address named.
    let resp = post_json(
        &d,
        "/containers/create?name=mac2",
        &format!(r#"{{"Image":"{b}","Cmd":["true"],"MacAddress":"nope"}}"#),
    );
    assert_eq!(status(&resp), 400, "{resp}");
    assert_eq!(body_json(&resp)["message"], "invalid MAC address: nope");
    // Per endpoint, on a created container, then running.
    d.cli_ok(&["network", "create", "--subnet", "10.249.9.0/24", "epnet"]);
    d.cli_ok(&["create", "--name", "ep1", &b, "sleep", "60"]);
    let resp = post_json(
        &d,
        "/networks/epnet/connect",
        r#"{"Container":"ep1","EndpointConfig":{"MacAddress":"02:42:ac:11:00:02","DriverOpts":{"k":"v"},"IPAMConfig":{"IPv4Address":"10.249.9.9","LinkLocalIPs":["169.254.8.8"]}}}"#,
    );
    assert_eq!(status(&resp), 200, "{resp}");
    let shown = |v: &serde_json::Value| {
        let n = &v["NetworkSettings"]["Networks"]["epnet"];
        (
            n["MacAddress"].clone(),
            n["DriverOpts"].clone(),
            n["IPAMConfig"]["LinkLocalIPs"].clone(),
        )
    };
    let want = (
        serde_json::json!("02:42:ac:11:00:02"),
        serde_json::json!({"k": "v"}),
        serde_json::json!(["169.254.8.8"]),
    );
    assert_eq!(shown(&inspect(&d, "ep1")), want, "created");
    d.cli_ok(&["start", "ep1"]);
    let v = inspect(&d, "ep1");
    assert_eq!(shown(&v), want, "running: {v}");
    assert_eq!(
        v["NetworkSettings"]["Networks"]["epnet"]["IPAddress"],
        "10.249.9.9"
    );
    d.cli_ok(&["rm", "-f", "ep1"]);
    // The same through the docker CLI: --mac-address and --link-local-ip on run
    // (an endpoint setting since API 1.44), --driver-opt on connect.
    d.cli_ok(&[
        "run",
        "-d",
        "--name",
        "ep2",
        "--network",
        "epnet",
        "--mac-address",
        "02:42:ac:11:00:03",
        "--link-local-ip",
        "169.254.9.9",
        &b,
        "sleep",
        "60",
    ]);
    d.cli_ok(&["network", "create", "--subnet", "10.249.13.0/24", "epnet2"]);
    d.cli_ok(&[
        "network",
        "connect",
        "--driver-opt",
        "a=b",
        "--ip",
        "10.249.13.7",
        "epnet2",
        "ep2",
    ]);
    let v = inspect(&d, "ep2");
    let nets = &v["NetworkSettings"]["Networks"];
    assert_eq!(nets["epnet"]["MacAddress"], "02:42:ac:11:00:03", "{v}");
    assert_eq!(
        nets["epnet"]["IPAMConfig"]["LinkLocalIPs"],
        serde_json::json!(["169.254.9.9"])
    );
    assert_eq!(nets["epnet2"]["DriverOpts"], serde_json::json!({"a": "b"}));
    assert_eq!(nets["epnet2"]["IPAddress"], "10.249.13.7");
    assert_eq!(
        d.cli_ok(&["exec", "ep2", "cat", "/sys/class/net/eth0/address"]),
        "02:42:ac:11:00:03\n"
    );
    d.cli_ok(&["rm", "-f", "ep2"]);
    d.cli_ok(&["network", "rm", "epnet", "epnet2"]);
}

#[test]
fn auxiliary_addresses_are_reserved_and_shown() {
    let d = daemon();
    let b = busybox(&d);
    d.cli_ok(&[
        "network",
        "create",
        "--subnet",
        "10.249.10.0/24",
        "--aux-address",
        "router=10.249.10.2",
        "auxn",
    ]);
    let v = inspect(&d, "auxn");
    assert_eq!(
        v["IPAM"]["Config"][0]["AuxiliaryAddresses"],
        serde_json::json!({"router": "10.249.10.2"})
    );
    // Never handed out: the first container gets .3, and asking for it conflicts.
    d.cli_ok(&[
        "run",
        "-d",
        "--name",
        "aux1",
        "--network",
        "auxn",
        &b,
        "sleep",
        "60",
    ]);
    assert_eq!(
        inspect(&d, "aux1")["NetworkSettings"]["Networks"]["auxn"]["IPAddress"],
        "10.249.10.3"
    );
    let o = d.cli(&[
        "run",
        "--rm",
        "--network",
        "auxn",
        "--ip",
        "10.249.10.2",
        &b,
        "true",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("Address already in use"));
    // Outside the subnet: refused.
    let resp = post_json(
        &d,
        "/networks/create",
        r#"{"Name":"auxbad","IPAM":{"Config":[{"Subnet":"10.249.11.0/24","AuxiliaryAddresses":{"x":"10.1.1.1"}}]}}"#,
    );
    assert_eq!(status(&resp), 400, "{resp}");
    assert!(body_json(&resp)["message"]
        .as_str()
        .unwrap_or("")
        .contains("must belong to the master pool"));
    d.cli_ok(&["rm", "-f", "aux1"]);
    d.cli_ok(&["network", "rm", "auxn"]);
}
