use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crate::{body_json, daemon, status};

#[test]
fn unknown_paths_methods_and_versions() {
    let d = daemon();
    let r = d.get("/no/such/path");
    assert_eq!(status(&r), 404);
    assert_eq!(body_json(&r)["message"], "page not found");
    let r = d.raw(b"DELETE /version HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n");
    assert_eq!(status(&r), 405, "{r}");
    let r = d.get("/v1.99/version");
    assert_eq!(status(&r), 400);
    assert_eq!(
        body_json(&r)["message"],
        "client version 1.99 is too new. Maximum supported API version is 1.50"
    );
    let r = d.get("/v1.10/version");
    assert_eq!(status(&r), 400);
    // The CLI shows dockerd's text when told to use a version that is too new.
    let o = d
        .docker()
        .env("DOCKER_API_VERSION", "1.51")
        .args(["version"])
        .output()
        .expect("docker");
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("client version 1.51 is too new"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn oversized_header_and_garbage_are_refused_and_the_daemon_keeps_serving() {
    let d = daemon();
    let big = "a".repeat(256 * 1024);
    let r = d.raw(format!("GET /_ping HTTP/1.1\r\nHost: d\r\nX-Big: {big}\r\n\r\n").as_bytes());
    assert_eq!(status(&r), 431, "{}", &r[..r.len().min(300)]);
    let r = d.raw(b"THIS IS NOT HTTP\r\n\r\n");
    assert!(r.is_empty() || status(&r) == 400, "{r}");
    let r = d.raw(
        b"POST /events HTTP/1.1\r\nHost: d\r\nContent-Length: 5\r\nConnection: close\r\n\r\n{bad",
    );
    assert!(matches!(status(&r), 405), "{r}");
    assert!(d.get("/_ping").ends_with("OK"));
}

#[test]
fn client_disconnect_mid_stream_frees_the_listener() {
    let d = daemon();
    let listeners = || {
        body_json(&d.get("/info"))["NEventsListener"]
            .as_u64()
            .expect("NEventsListener")
    };
    let mut s = UnixStream::connect(&d.sock).expect("connect");
    s.write_all(b"GET /events HTTP/1.1\r\nHost: d\r\n\r\n")
        .expect("write");
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).expect("head");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert_eq!(listeners(), 1);
    drop(s);
    // The daemon notices on its next write or read; a reload event forces a write.
    d.signal(nix::sys::signal::Signal::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    while listeners() != 0 {
        assert!(
            Instant::now() < deadline,
            "the stream's job was not cancelled"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(d.get("/_ping").ends_with("OK"));
}

/// Job names are written twice, in the route table and where the families
/// register: every route must reach a handler (an unregistered name answers
/// "NAME: not implemented").
#[test]
fn every_route_reaches_a_handler() {
    let d = crate::daemon();
    for r in berth_server::routes::all() {
        let path = r
            .path()
            .split('/')
            .map(|seg| {
                if seg.starts_with('{') {
                    "nosuch-berth-route"
                } else {
                    seg
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        // `until` in the past ends /events at once; other routes ignore it.
        let req = format!(
            "{} {path}?until=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            r.method()
        );
        let resp = d.raw(req.as_bytes());
        assert!(!resp.is_empty(), "{} {path}: no answer", r.method());
        assert!(
            !resp.contains(&format!("{}: not implemented", r.job)),
            "{} {path} names job {} that nothing registered",
            r.method(),
            r.job
        );
    }
}
