use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::process::Stdio;
use std::time::Duration;

use crate::{builder, daemon};

/// Runs a second berthd beside `d` on `host` and `data_root`, to its exit.
fn second(
    d: &berth_testkit::TestDaemon,
    host: &str,
    data_root: &std::path::Path,
) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_berthd"))
        .arg("-H")
        .arg(host)
        .arg("--data-root")
        .arg(data_root)
        .arg("--exec-root")
        .arg(d.exec_root.with_file_name("exec2"))
        .arg("--pidfile")
        .arg(d.pidfile.with_file_name("other.pid"))
        .arg("--config-file")
        .arg(&d.config_file)
        // These daemons never get to serve: no default bridge for them.
        .arg("--bridge")
        .arg("none")
        .stdin(Stdio::null())
        .output()
        .expect("run second berthd")
}

#[test]
fn second_daemon_on_same_data_root_is_refused() {
    let d = daemon();
    let other_sock = d.sock.with_file_name("other.sock");
    let out = second(
        &d,
        &format!("unix://{}", other_sock.display()),
        &d.data_root,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to start a second daemon"), "{err}");
    assert!(
        err.contains(&d.pid().expect("pid").to_string()),
        "names the owner: {err}"
    );
    assert!(!other_sock.exists());
    // The first one is untouched.
    assert_eq!(
        d.cli_ok(&["version", "--format", "{{.Server.APIVersion}}"])
            .trim(),
        "1.50"
    );
}

#[test]
fn a_live_socket_of_another_daemon_is_not_stolen() {
    let d = daemon();
    let out = second(&d, &d.host(), &d.data_root.with_file_name("data2"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use by another daemon"));
    assert_eq!(
        d.cli_ok(&["version", "--format", "{{.Server.APIVersion}}"])
            .trim(),
        "1.50"
    );
}

#[test]
fn sigterm_exits_cleanly_and_removes_socket_and_pidfile() {
    let mut d = daemon();
    let mode = std::fs::metadata(&d.sock)
        .expect("socket")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o660);
    let pid: u32 = std::fs::read_to_string(&d.pidfile)
        .expect("pidfile")
        .trim()
        .parse()
        .expect("pid");
    assert_eq!(Some(pid), d.pid());
    // An open event stream must not hold the shutdown up.
    let mut s = UnixStream::connect(&d.sock).expect("connect");
    s.write_all(b"GET /events HTTP/1.1\r\nHost: d\r\n\r\n")
        .expect("write");
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).expect("headers");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let start = std::time::Instant::now();
    let status = d.stop();
    assert!(status.success(), "exit status {status}:\n{}", d.logs());
    assert!(start.elapsed() < Duration::from_secs(15));
    assert!(!d.sock.exists(), "socket left behind");
    assert!(!d.pidfile.exists(), "pidfile left behind");
    assert!(d.logs().contains("berthd stopped"));
}

#[test]
fn sigint_also_stops_it() {
    let mut d = daemon();
    d.signal(nix::sys::signal::Signal::SIGINT);
    let status = d.stop();
    assert!(status.success());
    assert!(!d.sock.exists());
}

#[test]
fn stale_socket_after_a_crash_is_replaced() {
    let mut d = daemon();
    d.kill9();
    assert!(d.sock.exists(), "a killed daemon leaves its socket");
    d.restart();
    assert_eq!(
        d.cli_ok(&["version", "--format", "{{.Server.APIVersion}}"])
            .trim(),
        "1.50"
    );
}

#[test]
fn conflicting_flag_and_config_file_is_an_error() {
    let d = daemon();
    let dir = d.data_root.parent().expect("dir").to_path_buf();
    let cfg = dir.join("conflict.json");
    std::fs::write(
        &cfg,
        format!(r#"{{"data-root": "{}"}}"#, dir.join("x").display()),
    )
    .expect("cfg");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_berthd"))
        .arg("-H")
        .arg(format!("unix://{}", dir.join("c.sock").display()))
        .arg("--data-root")
        .arg(dir.join("y"))
        .arg("--config-file")
        .arg(&cfg)
        // These daemons never get to serve: no default bridge for them.
        .arg("--bridge")
        .arg("none")
        .stdin(Stdio::null())
        .output()
        .expect("run berthd");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("specified both as a flag and in the configuration file"),
        "{err}"
    );
}

#[test]
fn remote_tcp_needs_explicit_consent() {
    let d = daemon();
    let dir = d.data_root.parent().expect("dir").to_path_buf();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_berthd"))
        .arg("-H")
        .arg("tcp://0.0.0.0:0")
        .arg("--data-root")
        .arg(dir.join("r"))
        .arg("--exec-root")
        .arg(dir.join("re"))
        .arg("--pidfile")
        .arg(dir.join("r.pid"))
        .arg("--config-file")
        .arg(&d.config_file)
        // These daemons never get to serve: no default bridge for them.
        .arg("--bridge")
        .arg("none")
        .stdin(Stdio::null())
        .output()
        .expect("run berthd");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--allow-remote-tcp"));
    let _ = builder;
}
