//! `docker exec` through the CLI, bollard and raw HTTP.

use futures_util::StreamExt;

use crate::images::busybox;
use crate::{body_json, daemon, status};

fn code_and_stderr(d: &berth_testkit::TestDaemon, args: &[&str]) -> (i32, String, String) {
    let o = d.cli(args);
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn exec_runs_in_the_container_with_its_options() {
    let d = daemon();
    let b = busybox(&d);
    d.cli_ok(&[
        "run",
        "-d",
        "--name",
        "ex",
        "-e",
        "FROM_RUN=r",
        &b,
        "sleep",
        "1000",
    ]);
    assert_eq!(d.cli_ok(&["exec", "ex", "echo", "hi"]), "hi\n");
    // Same PID namespace and hostname as the container; the container's env.
    let out = d.cli_ok(&[
        "exec",
        "ex",
        "sh",
        "-c",
        "cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $FROM_RUN",
    ]);
    assert_eq!(out, "sleep 1000 \nr\n");
    // User, workdir, env; stdout and stderr apart; exit codes.
    let (code, out, err) = code_and_stderr(
        &d,
        &[
            "exec",
            "-u",
            "nobody",
            "-w",
            "/tmp",
            "-e",
            "A=1",
            "ex",
            "sh",
            "-c",
            "id -u; pwd; echo $A; echo oops >&2; exit 3",
        ],
    );
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (3, "65534\n/tmp\n1\n", "oops\n")
    );
    // Docker's 126 and message for a command that cannot start.
    // dockerd writes it into the attached stream, as stdout.
    let (code, out, _) = code_and_stderr(&d, &["exec", "ex", "no-such-cmd"]);
    assert_eq!(code, 126, "{out}");
    assert!(
        out.contains("OCI runtime exec failed")
            && out.contains("executable file not found in $PATH"),
        "{out}"
    );
    let (code, out, _) = code_and_stderr(&d, &["exec", "ex", "/etc/passwd"]);
    assert_eq!(code, 126, "{out}");
    assert!(out.contains("permission denied"), "{out}");
    let (code, out, _) = code_and_stderr(&d, &["exec", "-w", "/nowhere", "ex", "true"]);
    assert_eq!(code, 126, "{out}");
    assert!(
        out.contains(
            "chdir to cwd (\"/nowhere\") set in config.json failed: no such file or directory"
        ),
        "{out}"
    );
    // Failed execs leave nothing behind in the container.
    let ps = d.cli_ok(&["exec", "ex", "ps", "-o", "pid,comm"]);
    assert_eq!(ps.lines().count(), 3, "only the header, sleep and ps: {ps}");
    // stdin with -i, closed at end of input.
    let mut child = d
        .docker()
        .args(["exec", "-i", "ex", "sh", "-c", "cat; echo done"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("docker exec -i");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"piped in\n").expect("write");
    }
    let o = child.wait_with_output().expect("exec -i");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "piped in\ndone\n");
    // Capabilities: the container's, or all with --privileged.
    let (code, _, _) = code_and_stderr(
        &d,
        &["exec", "ex", "ip", "link", "set", "lo", "mtu", "1280"],
    );
    assert_ne!(code, 0);
    d.cli_ok(&[
        "exec",
        "--privileged",
        "ex",
        "ip",
        "link",
        "set",
        "lo",
        "mtu",
        "1280",
    ]);
    // Detached: runs on, shows in ExecIDs while it does. It waits for a file
    // rather than a time, so a slow machine cannot end it before the inspect.
    d.cli_ok(&[
        "exec",
        "-d",
        "ex",
        "sh",
        "-c",
        "until [ -f /tmp/go ]; do sleep 0.05; done; touch /tmp/detached",
    ]);
    let ids = d.cli_ok(&["inspect", "-f", "{{len .ExecIDs}}", "ex"]);
    assert_eq!(ids.trim(), "1");
    d.cli_ok(&["exec", "ex", "touch", "/tmp/go"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while d.cli_ok(&["inspect", "-f", "{{.ExecIDs}}", "ex"]).trim() != "[]" {
        assert!(
            std::time::Instant::now() < deadline,
            "the detached exec never ended"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    d.cli_ok(&["exec", "ex", "test", "-f", "/tmp/detached"]);
    // A stopped container takes no exec.
    d.cli_ok(&["stop", "-t", "0", "ex"]);
    let (code, _, err) = code_and_stderr(&d, &["exec", "ex", "true"]);
    assert_ne!(code, 0);
    assert!(err.contains("is not running"), "{err}");
    d.cli_ok(&["rm", "ex"]);
}

#[test]
fn exec_tty_under_a_pty() {
    let d = daemon();
    let b = busybox(&d);
    d.cli_ok(&["run", "-d", "--name", "tt", &b, "sleep", "1000"]);
    let cmd = format!(
        "stty cols 90 rows 30; {} exec -it tt sh -c 'tty; sleep 0.3; stty size; exit 5'",
        berth_testkit::docker_cli().display()
    );
    let mut child = d
        .docker_env(std::process::Command::new("script"))
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("script");
    let keep = child.stdin.take();
    let o = child.wait_with_output().expect("script output");
    drop(keep);
    let out = String::from_utf8_lossy(&o.stdout).replace('\r', "");
    assert!(out.contains("/dev/pts/"), "{out}");
    assert!(out.contains("30 90"), "{out}");
    assert_eq!(o.status.code(), Some(5), "{out}");
    d.cli_ok(&["rm", "-f", "tt"]);
}

#[test]
fn exec_events_carry_the_command_and_exit_code() {
    let d = daemon();
    let b = busybox(&d);
    d.cli_ok(&["run", "-d", "--name", "ev", &b, "sleep", "1000"]);
    d.cli(&["exec", "ev", "sh", "-c", "exit 2"]);
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() + 1.0)
        .unwrap_or(0.0);
    let events = d.cli_ok(&[
        "events",
        "--since",
        "0",
        "--until",
        &format!("{until:.3}"),
        "--filter",
        "container=ev",
        "--format",
        "{{.Action}}|{{.Actor.Attributes.exitCode}}|{{.Actor.Attributes.execID}}",
    ]);
    let lines: Vec<&str> = events.lines().filter(|l| l.starts_with("exec_")).collect();
    assert_eq!(lines.len(), 3, "{events}");
    assert!(
        lines[0].starts_with("exec_create: sh -c exit 2|<no value>|"),
        "{events}"
    );
    assert!(
        lines[1].starts_with("exec_start: sh -c exit 2|<no value>|"),
        "{events}"
    );
    assert!(lines[2].starts_with("exec_die|2|"), "{events}");
    let id = lines[0].rsplit('|').next().unwrap_or("");
    assert_eq!(id.len(), 64, "{events}");
    assert!(lines.iter().all(|l| l.ends_with(id)));
    d.cli_ok(&["rm", "-f", "ev"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_through_bollard() {
    use bollard::exec::{CreateExecOptions, StartExecResults};
    let d = daemon();
    let b = busybox(&d);
    d.cli_ok(&["run", "-d", "--name", "bx", &b, "sleep", "1000"]);
    let c = d.bollard().await;
    let ex = c
        .create_exec(
            "bx",
            CreateExecOptions {
                cmd: Some(vec!["sh", "-c", "echo out; echo err >&2; exit 9"]),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
        .expect("create exec");
    let started = c.start_exec(&ex.id, None).await.expect("start exec");
    let StartExecResults::Attached { mut output, .. } = started else {
        panic!("not attached");
    };
    let (mut out, mut err) = (String::new(), String::new());
    while let Some(m) = output.next().await {
        match m.expect("frame") {
            bollard::container::LogOutput::StdOut { message } => {
                out.push_str(&String::from_utf8_lossy(&message))
            }
            bollard::container::LogOutput::StdErr { message } => {
                err.push_str(&String::from_utf8_lossy(&message))
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((out.as_str(), err.as_str()), ("out\n", "err\n"));
    let info = c.inspect_exec(&ex.id).await.expect("inspect exec");
    assert_eq!(info.exit_code, Some(9));
    assert_eq!(info.running, Some(false));
    assert_eq!(info.container_id.as_deref().map(str::len), Some(64));
    // Started once only.
    let again = c.start_exec(&ex.id, None).await;
    let e = again.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("has already run"), "{e}");
    d.cli_ok(&["rm", "-f", "bx"]);
}

#[test]
fn exec_bad_input() {
    let d = daemon();
    let b = busybox(&d);
    d.cli_ok(&["run", "-d", "--name", "bi", &b, "sleep", "1000"]);
    let post = |path: &str, body: &str| {
        d.raw(
            format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
    };
    let r = post("/containers/bi/exec", "{}");
    assert_eq!(status(&r), 400, "{r}");
    assert_eq!(body_json(&r)["message"], "No command specified");
    let r = post("/containers/bi/exec", "{\"Cmd\": 5");
    assert_eq!(status(&r), 400, "{r}");
    let r = post("/containers/nope/exec", "{\"Cmd\":[\"true\"]}");
    assert_eq!(status(&r), 404, "{r}");
    let r = post(
        "/containers/bi/exec",
        "{\"Cmd\":[\"true\"],\"WorkingDir\":\"rel\"}",
    );
    assert_eq!(status(&r), 400, "{r}");
    let r = post("/exec/nope/start", "{}");
    assert_eq!(status(&r), 404, "{r}");
    assert_eq!(body_json(&r)["message"], "No such exec instance: nope");
    let r = d.get("/exec/nope/json");
    assert_eq!(status(&r), 404, "{r}");
    // Created, then the container stops: starting it is a conflict.
    let r = post("/containers/bi/exec", "{\"Cmd\":[\"true\"]}");
    assert_eq!(status(&r), 201, "{r}");
    let id = body_json(&r)["Id"].as_str().unwrap_or("").to_string();
    d.cli_ok(&["stop", "-t", "0", "bi"]);
    let r = post(&format!("/exec/{id}/start"), "{\"Detach\":true}");
    assert_eq!(status(&r), 409, "{r}");
    assert!(r.contains("is not running"), "{r}");
    d.cli_ok(&["rm", "bi"]);
}
