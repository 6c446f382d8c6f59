//! Integration tests: a real `berthd` on temp dirs, driven by bollard, the docker CLI,
//! curl and raw HTTP. One binary with modules, to link once.

mod attach;
mod attach_running;
mod bad_input;
mod behaviours;
mod build;
mod cgroup2;
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
mod ipv6;
mod isolation;
mod jobs;
mod lan;
mod lifecycle;
mod links;
mod loopnat;
mod metrics;
mod network;
mod ops;
mod pods;
mod reload;
mod rro;
mod runtimes;
mod system;
mod systemd;
mod tls;
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

/// One API request at `version` (`1.46`) with a JSON body, as an SDK sends it:
/// (status, body after the head).
pub fn api(
    d: &TestDaemon,
    version: &str,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> (u16, String) {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} /v{version}{path} HTTP/1.1\r\nHost: api.moby.localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let resp = d.raw(req.as_bytes());
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let text = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status(&resp), text)
}

/// A chunked body's content (a streamed answer comes in as many chunks as the
/// daemon made writes).
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        let (Some(chunk), Some(after)) = (rest.get(..n), rest.get(n..)) else {
            break;
        };
        if n == 0 {
            break;
        }
        out.push_str(chunk);
        body = after.strip_prefix("\r\n").unwrap_or(after);
    }
    out
}

/// As [`api`], the answer's JSON (object or array, chunked or not).
pub fn api_json(
    d: &TestDaemon,
    version: &str,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> (u16, serde_json::Value) {
    let (code, text) = api(d, version, method, path, body);
    let start = text.find(['{', '[']).unwrap_or(0);
    let end = text.rfind(['}', ']']).map(|e| e + 1).unwrap_or(text.len());
    let v = serde_json::from_str(&text[start..end]).unwrap_or(serde_json::Value::Null);
    (code, v)
}

/// The namespace of `kind` (`ipc`, `net`, `pid`…) a container's processes are in.
pub fn ns_in(d: &TestDaemon, container: &str, kind: &str) -> String {
    d.cli_ok(&[
        "exec",
        container,
        "readlink",
        &format!("/proc/self/ns/{kind}"),
    ])
    .trim()
    .to_string()
}

/// The cgroup of a running container's init, as `/proc` shows it from the host
/// (the unified line on v2, the memory controller's on v1): whichever driver
/// placed it, a path `berth_runtime::cgroups::Cgroup::new` takes.
pub fn cgroup_of(d: &TestDaemon, container: &str) -> String {
    let pid = d
        .cli_ok(&["inspect", "-f", "{{.State.Pid}}", container])
        .trim()
        .to_string();
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("/proc/PID/cgroup");
    let v2 = berth_runtime::cgroups::is_v2();
    text.lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
            let wanted = if v2 {
                ctrls.is_empty()
            } else {
                ctrls.split(',').any(|c| c == "memory")
            };
            wanted.then(|| path.to_string())
        })
        .unwrap_or_else(|| panic!("no cgroup in {text}"))
}

/// The daemon's `CgroupDriver`, as `docker info` shows it.
pub fn cgroup_driver(d: &TestDaemon) -> String {
    d.cli_ok(&["info", "-f", "{{.CgroupDriver}}"])
        .trim()
        .to_string()
}

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
