//! Clients attached before a start (`docker run`, `docker start -a`, SDKs'
//! attach-then-start) get the container's output straight from its shim: all of
//! it whatever the log keeps, the streams they asked for, this run's output and
//! not the last one's; and a client that leaves never holds the container up.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use crate::daemon;
use crate::images::busybox;

pub(crate) fn seq(from: u32, to: u32) -> String {
    (from..=to).map(|i| format!("{i}\n")).collect()
}

#[test]
fn attached_output_is_whole_while_a_tiny_log_rotates() {
    let d = daemon();
    let b = busybox(&d);
    // A 10 KB log of one file is truncated hundreds of times under this output:
    // a client following the file would miss most of it.
    let out = d.cli(&[
        "run",
        "--rm",
        "--log-opt",
        "max-size=10k",
        "--log-opt",
        "max-file=1",
        &b,
        "sh",
        "-c",
        "seq 1 200000; seq 1 3000 >&2",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout == seq(1, 200000).as_bytes(), "stdout incomplete");
    assert_eq!(String::from_utf8_lossy(&out.stderr), seq(1, 3000));
}

#[test]
fn start_attach_shows_this_runs_output() {
    let d = daemon();
    let b = busybox(&d);
    let script = "head -c 8 /dev/urandom | od -An -tx1";
    let first = d.cli_ok(&["run", "--name", "again", &b, "sh", "-c", script]);
    let second = d.cli_ok(&["start", "-a", "again"]);
    assert_ne!(first, second, "the first run's output again");
    assert_eq!(d.cli_ok(&["logs", "again"]), format!("{first}{second}"));
    d.cli_ok(&["rm", "again"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_sdk_attached_before_the_start_gets_the_streams_it_asked_for() {
    use bollard::container::LogOutput;
    use bollard::query_parameters::{
        AttachContainerOptions, CreateContainerOptions, StartContainerOptions, WaitContainerOptions,
    };
    let d = daemon();
    let b = busybox(&d);
    let c = d.bollard().await;
    let body = bollard::models::ContainerCreateBody {
        image: Some(b.clone()),
        cmd: Some(vec![
            "sh".into(),
            "-c".into(),
            "echo out; echo err >&2; echo out2".into(),
        ]),
        ..Default::default()
    };
    let opts = CreateContainerOptions {
        name: Some("sdk".into()),
        ..Default::default()
    };
    c.create_container(Some(opts), body).await.expect("create");
    for (stdout, stderr, want_out, want_err) in [
        (true, false, "out\nout2\n", ""),
        (false, true, "", "err\n"),
        (true, true, "out\nout2\n", "err\n"),
    ] {
        let attach = AttachContainerOptions {
            stream: true,
            stdout,
            stderr,
            ..Default::default()
        };
        let mut att = c
            .attach_container("sdk", Some(attach))
            .await
            .expect("attach");
        c.start_container("sdk", None::<StartContainerOptions>)
            .await
            .expect("start");
        let (mut out, mut err) = (String::new(), String::new());
        while let Some(m) = att.output.next().await {
            match m.expect("frame") {
                LogOutput::StdOut { message } => out.push_str(&String::from_utf8_lossy(&message)),
                LogOutput::StdErr { message } => err.push_str(&String::from_utf8_lossy(&message)),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(
            (out.as_str(), err.as_str()),
            (want_out, want_err),
            "stdout={stdout} stderr={stderr}"
        );
        c.wait_container("sdk", None::<WaitContainerOptions>)
            .next()
            .await;
    }
    d.cli_ok(&["rm", "sdk"]);
}

#[test]
fn a_client_that_leaves_never_holds_the_container_up() {
    let d = daemon();
    let b = busybox(&d);
    d.cli_ok(&[
        "create",
        "--name",
        "chatty",
        &b,
        "sh",
        "-c",
        "yes | head -c 20000000",
    ]);
    let mut s = std::os::unix::net::UnixStream::connect(&d.sock).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(b"POST /containers/chatty/attach?stream=1&stdout=1&stderr=1 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n")
        .expect("request");
    let mut head = [0u8; 1024];
    let n = s.read(&mut head).expect("101");
    assert!(String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 101"));
    d.cli_ok(&["start", "chatty"]);
    // A little of the output, then the client is gone with the rest unread.
    let mut some = [0u8; 4096];
    s.read_exact(&mut some).expect("output");
    drop(s);
    let deadline = Instant::now() + Duration::from_secs(60);
    while d
        .cli_ok(&["inspect", "-f", "{{.State.Running}}", "chatty"])
        .trim()
        == "true"
    {
        assert!(
            Instant::now() < deadline,
            "the container waits for the client"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Its log has all of it.
    let logs = d.cli(&["logs", "chatty"]);
    assert_eq!(logs.stdout.len(), 20_000_000);
    d.cli_ok(&["rm", "chatty"]);
}
