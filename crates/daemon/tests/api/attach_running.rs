//! Clients attaching to a container that already runs (`docker attach`, SDKs'
//! attach) get its output from then on straight from its shim's attach socket:
//! all of it whatever the log keeps, the streams they asked for, raw with a
//! terminal; and a shim without the socket (one of an older daemon) still has
//! its output followed in the log.

use std::io::Write;
use std::process::Stdio;

use futures_util::StreamExt;

use crate::attach::seq;
use crate::daemon;
use crate::images::busybox;

/// Starts `name` detached with stdin open, waiting for a line before `script`.
fn waiting(d: &berth_testkit::TestDaemon, name: &str, extra: &[&str], script: &str) {
    let b = busybox(d);
    let mut args = vec!["run", "-d", "-i", "--name", name];
    args.extend_from_slice(extra);
    let script = format!("read go; {script}");
    args.extend_from_slice(&[&b, "sh", "-c", &script]);
    d.cli_ok(&args);
}

/// `docker attach NAME` with "go" on its stdin: the CLI's output.
fn attach_cli(d: &berth_testkit::TestDaemon, name: &str) -> std::process::Output {
    let mut child = d
        .docker()
        .args(["attach", name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("docker attach");
    // The CLI sends its input once attached; what comes before it is the
    // container's to read when it reads.
    if let Some(mut i) = child.stdin.take() {
        i.write_all(b"go\n").expect("stdin");
        // Kept open: an ended input would not end the attach, but keeping it
        // is what an interactive user does.
        std::mem::forget(i);
    }
    child.wait_with_output().expect("attach output")
}

#[test]
fn docker_attach_to_a_running_container_gets_all_output_while_a_tiny_log_rotates() {
    let d = daemon();
    // A 10 KB log of one file is truncated hundreds of times under this output:
    // a client following the file would miss most of it.
    waiting(
        &d,
        "live",
        &["--log-opt", "max-size=10k", "--log-opt", "max-file=1"],
        "seq 1 200000; seq 1 3000 >&2; exit 3",
    );
    let out = attach_cli(&d, "live");
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(out.stdout == seq(1, 200000).as_bytes(), "stdout incomplete");
    assert_eq!(String::from_utf8_lossy(&out.stderr), seq(1, 3000));
    d.cli_ok(&["rm", "live"]);
}

#[test]
fn without_the_shims_socket_attach_follows_the_log() {
    let d = daemon();
    waiting(&d, "old", &[], "seq 1 2000");
    let id = d.cli_ok(&["inspect", "-f", "{{.Id}}", "old"]);
    let sock = d
        .exec_root
        .join("containers")
        .join(id.trim())
        .join("attach.sock");
    assert!(sock.exists(), "the shim listens at {}", sock.display());
    std::fs::remove_file(&sock).expect("rm socket");
    let out = attach_cli(&d, "old");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), seq(1, 2000));
    d.cli_ok(&["rm", "old"]);
}

/// Attaches to `name` with `opts`, sends "go" and returns all it gets, until the
/// container's output ends.
async fn attach_go(
    c: &bollard::Docker,
    name: &str,
    opts: bollard::query_parameters::AttachContainerOptions,
) -> Vec<bollard::container::LogOutput> {
    use tokio::io::AsyncWriteExt;
    let mut att = c.attach_container(name, Some(opts)).await.expect("attach");
    att.input.write_all(b"go\n").await.expect("input");
    let mut got = Vec::new();
    while let Some(m) = att.output.next().await {
        got.push(m.expect("output"));
    }
    got
}

#[tokio::test(flavor = "multi_thread")]
async fn an_sdk_attached_to_a_running_container_gets_its_streams_and_terminal() {
    use bollard::container::LogOutput;
    use bollard::query_parameters::AttachContainerOptions;
    let d = daemon();
    let c = d.bollard().await;
    // Without a terminal: only the stream asked for.
    waiting(
        &d,
        "errs",
        &["--log-opt", "max-size=10k", "--log-opt", "max-file=1"],
        "seq 1 50000; seq 1 20000 >&2",
    );
    let opts = AttachContainerOptions {
        stream: true,
        stdin: true,
        stderr: true,
        ..Default::default()
    };
    let mut err = String::new();
    for m in attach_go(&c, "errs", opts).await {
        match m {
            LogOutput::StdErr { message } => err.push_str(&String::from_utf8_lossy(&message)),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(err == seq(1, 20000), "stderr incomplete");
    // With one: the terminal's bytes, every line of them.
    waiting(
        &d,
        "term",
        &["-t", "--log-opt", "max-size=10k", "--log-opt", "max-file=1"],
        "seq 1 50000",
    );
    let opts = AttachContainerOptions {
        stream: true,
        stdin: true,
        stdout: true,
        stderr: true,
        ..Default::default()
    };
    let mut out = Vec::new();
    for m in attach_go(&c, "term", opts).await {
        match m {
            LogOutput::Console { message } => out.extend_from_slice(&message),
            other => panic!("unexpected {other:?}"),
        }
    }
    let text = String::from_utf8_lossy(&out);
    let numbers: Vec<&str> = text
        .split("\r\n")
        .filter(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    let want: Vec<String> = (1..=50000).map(|i| i.to_string()).collect();
    assert!(numbers == want, "terminal output incomplete");
    d.cli_ok(&["rm", "-f", "errs", "term"]);
}
