//! Integration tests: a real `berthd` on temp dirs, driven by bollard, the docker CLI,
//! curl and raw HTTP. One binary with modules, to link once.

mod bad_input;
mod behaviours;
mod build;
mod compat_cni;
mod compat_cri;
mod compat_nomad;
mod containers;
mod durability;
mod endpoints;
mod events;
mod exec;
mod host;
mod images;
mod lifecycle;
mod links;
mod network;
mod ops;
mod pods;
mod runtimes;
mod system;
mod systemd;
mod volumes;

use berth_testkit::TestDaemon;

pub fn daemon() -> TestDaemon {
    TestDaemon::start(env!("CARGO_BIN_EXE_berthd"))
}

pub fn builder() -> berth_testkit::Builder {
    TestDaemon::builder(env!("CARGO_BIN_EXE_berthd"))
}

/// Runs berthd with `args` on temp dirs, expecting it to refuse to start; returns
/// what it printed on stderr.
pub fn berthd_refuses(args: &[&str]) -> String {
    let dir = tempfile::Builder::new()
        .prefix("berth-test-")
        .tempdir()
        .expect("tmp");
    std::fs::write(dir.path().join("none.json"), "{}").expect("config");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_berthd"))
        .arg("--data-root")
        .arg(dir.path().join("data"))
        .arg("--exec-root")
        .arg(dir.path().join("exec"))
        .arg("--pidfile")
        .arg(dir.path().join("pid"))
        .arg("-H")
        .arg(format!("unix://{}", dir.path().join("sock").display()))
        .arg("--config-file")
        .arg(dir.path().join("none.json"))
        .args(args)
        .output()
        .expect("berthd");
    assert!(!o.status.success(), "berthd {args:?} started");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Status code of a raw HTTP response.
pub fn status(resp: &str) -> u16 {
    resp.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The JSON body of a raw HTTP response (the part after the head; chunked bodies of
/// one chunk are handled too).
pub fn body_json(resp: &str) -> serde_json::Value {
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    let start = body.find('{').unwrap_or(0);
    let end = body.rfind('}').map(|e| e + 1).unwrap_or(body.len());
    serde_json::from_str(&body[start..end]).unwrap_or(serde_json::Value::Null)
}
