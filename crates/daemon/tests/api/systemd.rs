//! Started by systemd: the API on sockets passed by socket activation (`-H
//! fd://`, here through `systemd-socket-activate`), and `sd_notify` states.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use crate::images::busybox;

fn states(sock: &UnixDatagram) -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    while let Ok(n) = sock.recv(&mut buf) {
        out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    out
}

#[test]
fn socket_activation_and_notify() {
    let dir = tempfile::Builder::new()
        .prefix("berth-test-")
        .tempdir()
        .expect("tmp");
    let notify = UnixDatagram::bind(dir.path().join("notify.sock")).expect("notify socket");
    notify
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let mut d = crate::builder().dir(dir).socket_activated().start();
    // The CLI reaches the daemon through the socket systemd-socket-activate made.
    let b = busybox(&d);
    assert_eq!(
        d.cli_ok(&["run", "--rm", &b, "echo", "activated"]),
        "activated\n"
    );
    let pid = d.pid().expect("pid");
    let up = states(&notify);
    assert!(
        up.iter()
            .any(|s| s.contains("READY=1") && s.contains(&format!("MAINPID={pid}"))),
        "{up:?}"
    );
    d.signal(nix::sys::signal::Signal::SIGHUP);
    std::thread::sleep(Duration::from_millis(300));
    let reload = states(&notify);
    assert_eq!(reload, ["RELOADING=1", "READY=1"], "a reload");
    assert!(d.stop().success());
    assert!(states(&notify).iter().any(|s| s == "STOPPING=1"));
}

#[test]
fn fd_hosts_without_activation_are_refused() {
    let err = crate::berthd_refuses(&["-H", "fd://"]);
    assert!(
        err.contains(
            "no sockets found via socket activation: make sure the service was started by systemd"
        ),
        "{err}"
    );
}

#[test]
fn json_logs_carry_each_jobs_name_and_id() {
    let mut d = crate::builder().arg("--log-format").arg("json").start();
    d.cli_ok(&["volume", "create", "logged"]);
    d.cli_ok(&["volume", "rm", "logged"]);
    d.stop();
    let logs = d.logs();
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines
        .iter()
        .any(|l| l["fields"]["message"] == "starting berthd"));
    let job = lines
        .iter()
        .find(|l| l["span"]["job"] == "volume.create")
        .unwrap_or_else(|| panic!("no line of the volume.create job in:\n{logs}"));
    assert!(job["span"]["id"].as_u64().is_some_and(|id| id > 0), "{job}");
    assert!(crate::berthd_refuses(&["--log-format", "xml"]).contains("unsupported log format: xml"));
}
