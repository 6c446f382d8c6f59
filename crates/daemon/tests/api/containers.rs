//! Containers through the docker CLI and bollard: run, logs, stop, rm, errors.

use futures_util::StreamExt;

use crate::daemon;
use crate::images::busybox;

pub(crate) fn stderr_of(d: &berth_testkit::TestDaemon, args: &[&str]) -> (i32, String) {
    let o = d.cli(args);
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn run_prints_output_and_propagates_exit_codes() {
    let d = daemon();
    let b = busybox(&d);
    assert_eq!(d.cli_ok(&["run", "--rm", &b, "echo", "hi"]), "hi\n");
    let o = d.cli(&[
        "run",
        "--rm",
        &b,
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "out\n");
    assert!(String::from_utf8_lossy(&o.stderr).contains("err\n"));
    // PID 1 is the command; env, workdir, hostname and user reach it.
    let out = d.cli_ok(&[
        "run",
        "--rm",
        "-e",
        "A=1",
        "-w",
        "/tmp",
        "--hostname",
        "hh",
        "-u",
        "nobody",
        &b,
        "sh",
        "-c",
        "echo $$ $A $(pwd) $(hostname) $(id -u)",
    ]);
    assert_eq!(out.trim(), "1 1 /tmp hh 65534");
    let out = d.cli_ok(&[
        "run",
        "--rm",
        "--entrypoint",
        "echo",
        &b,
        "from",
        "entrypoint",
    ]);
    assert_eq!(out.trim(), "from entrypoint");
    // --rm removed them all.
    assert_eq!(d.cli_ok(&["ps", "-aq"]).trim(), "");
}

#[test]
fn docker_exit_codes_for_start_failures() {
    let d = daemon();
    let b = busybox(&d);
    let (code, e) = stderr_of(&d, &["run", "--rm", &b, "/no/such/binary"]);
    assert_eq!(code, 127, "{e}");
    assert!(e.contains("executable file not found"), "{e}");
    let (code, e) = stderr_of(&d, &["run", "--rm", &b, "/etc/passwd"]);
    assert_eq!(code, 126, "{e}");
    let (code, e) = stderr_of(&d, &["run", "--rm", "-u", "ghost", &b, "true"]);
    assert_ne!(code, 0);
    assert!(e.contains("unable to find user ghost"), "{e}");
    let (code, e) = stderr_of(&d, &["run", "--rm", "--oom-score-adj", "1001", &b, "true"]);
    assert_eq!(code, 125, "{e}");
    assert!(
        e.contains("Invalid value 1001, range for oom score adj is [-1000, 1000]"),
        "{e}"
    );
    d.cli(&["container", "prune", "-f"]);
}

#[test]
fn detached_logs_stop_and_rm() {
    let d = daemon();
    let b = busybox(&d);
    let id = d.cli_ok(&[
        "run",
        "-d",
        "--name",
        "web",
        &b,
        "sh",
        "-c",
        "echo one; echo two >&2; trap 'exit 0' TERM; while true; do sleep 0.1; done",
    ]);
    let id = id.trim().to_string();
    assert_eq!(id.len(), 64);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !d.cli_ok(&["logs", "web"]).contains("one") {
        assert!(std::time::Instant::now() < deadline, "no logs");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let o = d.cli(&["logs", "web"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "one\n");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "two\n");
    assert!(
        d.cli_ok(&["logs", "-t", "--tail", "1", "web"]).is_empty(),
        "stdout has only one line and tail 1 of both is stderr"
    );
    let ps = d.cli_ok(&["ps", "--format", "{{.Names}} {{.Status}}"]);
    assert!(ps.starts_with("web Up"), "{ps}");
    let inspect: serde_json::Value =
        serde_json::from_str(&d.cli_ok(&["inspect", "web"])).expect("json");
    assert_eq!(inspect[0]["State"]["Running"], true);
    assert!(inspect[0]["State"]["Pid"].as_i64().unwrap_or(0) > 0);
    assert_eq!(inspect[0]["Name"], "/web");
    // Name clash, and rm of a running container, get Docker's errors.
    let (_, e) = stderr_of(&d, &["run", "--name", "web", &b, "true"]);
    assert!(
        e.contains("Conflict. The container name \"/web\" is already in use by container"),
        "{e}"
    );
    let (_, e) = stderr_of(&d, &["rm", "web"]);
    assert!(e.contains("You cannot remove a running container"), "{e}");
    // The image is in use: deleting it by ID is refused.
    let img = d.cli_ok(&["image", "inspect", "--format", "{{.Id}}", &b]);
    let (_, e) = stderr_of(&d, &["rmi", img.trim()]);
    assert!(
        e.contains("image is being used by running container"),
        "{e}"
    );
    d.cli_ok(&["stop", "-t", "5", "web"]);
    let state: serde_json::Value =
        serde_json::from_str(&d.cli_ok(&["inspect", "web"])).expect("json");
    assert_eq!(state[0]["State"]["Status"], "exited");
    assert_eq!(state[0]["State"]["ExitCode"], 0);
    assert_eq!(d.cli_ok(&["wait", "web"]).trim(), "0");
    d.cli_ok(&["rm", "web"]);
    assert_eq!(d.cli_ok(&["ps", "-aq"]).trim(), "");
    let (_, e) = stderr_of(&d, &["rm", "web"]);
    assert!(e.contains("No such container: web"), "{e}");
}

#[test]
fn kill_and_force_remove() {
    let d = daemon();
    let b = busybox(&d);
    d.cli_ok(&["run", "-d", "--name", "kk", &b, "sleep", "60"]);
    d.cli_ok(&["kill", "kk"]);
    assert_eq!(d.cli_ok(&["wait", "kk"]).trim(), "137");
    d.cli_ok(&["start", "kk"]);
    d.cli_ok(&["rm", "-f", "kk"]);
    assert_eq!(d.cli_ok(&["ps", "-aq"]).trim(), "");
}

#[test]
fn capabilities_and_proc_are_dockers() {
    let d = daemon();
    let b = busybox(&d);
    let (code, _) = stderr_of(
        &d,
        &["run", "--rm", &b, "ip", "link", "set", "lo", "mtu", "1280"],
    );
    assert_ne!(code, 0);
    d.cli_ok(&[
        "run",
        "--rm",
        "--cap-add",
        "NET_ADMIN",
        &b,
        "ip",
        "link",
        "set",
        "lo",
        "mtu",
        "1280",
    ]);
    d.cli_ok(&[
        "run",
        "--rm",
        "--privileged",
        &b,
        "ip",
        "link",
        "set",
        "lo",
        "mtu",
        "1280",
    ]);
    let (code, _) = stderr_of(
        &d,
        &[
            "run",
            "--rm",
            &b,
            "sh",
            "-c",
            "echo 0 > /proc/sys/kernel/panic",
        ],
    );
    assert_ne!(code, 0);
    let (code, _) = stderr_of(&d, &["run", "--rm", "--read-only", &b, "touch", "/x"]);
    assert_ne!(code, 0);
    d.cli_ok(&[
        "run",
        "--rm",
        "--read-only",
        "--tmpfs",
        "/scratch",
        &b,
        "touch",
        "/scratch/x",
    ]);
    let host = d.data_root.parent().expect("dir").join("shared");
    std::fs::create_dir_all(&host).expect("dir");
    std::fs::write(host.join("in.txt"), "from host").expect("write");
    let v = format!("{}:/data", host.display());
    assert_eq!(
        d.cli_ok(&["run", "--rm", "-v", &v, &b, "cat", "/data/in.txt"]),
        "from host"
    );
    d.cli_ok(&[
        "run",
        "--rm",
        "-v",
        &v,
        &b,
        "sh",
        "-c",
        "echo back > /data/out.txt",
    ]);
    assert_eq!(
        std::fs::read_to_string(host.join("out.txt")).expect("out"),
        "back\n"
    );
    let ro = format!("{}:/data:ro", host.display());
    let (code, _) = stderr_of(&d, &["run", "--rm", "-v", &ro, &b, "touch", "/data/nope"]);
    assert_ne!(code, 0);
}

#[test]
fn signals_start_at_their_defaults() {
    let d = daemon();
    let b = busybox(&d);
    // Nothing ignored in the container (a writer to a closed pipe must die).
    let out = d.cli_ok(&[
        "run",
        "--rm",
        &b,
        "sh",
        "-c",
        "grep SigIgn /proc/self/status; yes | head -c 5",
    ]);
    assert!(out.contains("SigIgn:\t0000000000000000"), "{out}");
    assert!(out.ends_with("y\ny\ny"), "{out}");
    d.cli_ok(&["run", "-d", "--name", "sig", &b, "sleep", "1000"]);
    let out = d.cli_ok(&[
        "exec",
        "sig",
        "sh",
        "-c",
        "grep SigIgn /proc/self/status; yes | head -c 3",
    ]);
    assert!(out.contains("SigIgn:\t0000000000000000"), "{out}");
    d.cli_ok(&["rm", "-f", "sig"]);
}

#[test]
fn default_seccomp_profile() {
    let d = daemon();
    let b = busybox(&d);
    // A user namespace needs no capability, only seccomp refuses it.
    let (code, err) = stderr_of(&d, &["run", "--rm", &b, "unshare", "-U", "true"]);
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("Operation not permitted"), "{err}");
    d.cli_ok(&[
        "run",
        "--rm",
        "--security-opt",
        "seccomp=unconfined",
        &b,
        "unshare",
        "-U",
        "true",
    ]);
    d.cli_ok(&["run", "--rm", "--privileged", &b, "unshare", "-U", "true"]);
    // Added capabilities open what they govern, as in Docker's profile.
    d.cli_ok(&[
        "run",
        "--rm",
        "--cap-add",
        "SYS_ADMIN",
        &b,
        "unshare",
        "-U",
        "true",
    ]);
    let v: serde_json::Value =
        serde_json::from_str(&d.cli_ok(&["info", "--format", "{{json .SecurityOptions}}"]))
            .expect("json");
    assert!(v.to_string().contains("seccomp"), "{v}");
}

#[test]
fn custom_seccomp_profiles() {
    let d = daemon();
    let b = busybox(&d);
    let dir = tempfile::tempdir().expect("tmp");
    // Docker's format: allow by default, refuse mkdir with EACCES.
    let profile = dir.path().join("profile.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":13},
            {"name":"sethostname","action":"SCMP_ACT_ERRNO","excludes":{"caps":["CAP_SYS_ADMIN"]}}]}"#,
    )
    .expect("profile");
    let opt = format!("seccomp={}", profile.display());
    for rt in ["runc", "runc-binary"] {
        let out = d.cli_ok(&[
            "run", "--rm", "--runtime", rt, "--security-opt", &opt, &b, "sh", "-c",
            "mkdir /x 2>&1; grep ^Seccomp: /proc/self/status; unshare -U true && echo userns-allowed",
        ]);
        assert_eq!(
            out,
            "mkdir: can't create directory '/x': Permission denied\nSeccomp:\t2\nuserns-allowed\n",
            "{rt}"
        );
    }
    // Execs get the container's profile too.
    d.cli_ok(&[
        "run",
        "-d",
        "--name",
        "sc",
        "--security-opt",
        &opt,
        &b,
        "sleep",
        "300",
    ]);
    let o = d.cli(&["exec", "sc", "mkdir", "/y"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("Permission denied"));
    d.cli_ok(&["rm", "-f", "sc"]);
    // A profile that does not parse fails the start with dockerd's words, and
    // leaves nothing mounted.
    let body = serde_json::json!({
        "Image": b, "Cmd": ["true"],
        "HostConfig": { "SecurityOpt": ["seccomp={not json"] },
    })
    .to_string();
    let resp = d.raw(
        format!(
            "POST /containers/create?name=badsc HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    assert_eq!(crate::status(&resp), 201, "{resp}");
    let (code, err) = stderr_of(&d, &["start", "badsc"]);
    assert_ne!(code, 0);
    assert!(err.contains("Decoding seccomp profile failed"), "{err}");
    assert!(d.leaked_mounts().is_empty(), "{:?}", d.leaked_mounts());
}

#[tokio::test(flavor = "multi_thread")]
async fn bollard_lifecycle() {
    let d = daemon();
    let b = busybox(&d);
    let c = d.bollard().await;
    let created = c
        .create_container(
            Some(bollard::query_parameters::CreateContainerOptions {
                name: Some("bol".into()),
                ..Default::default()
            }),
            bollard::models::ContainerCreateBody {
                image: Some(b.clone()),
                cmd: Some(vec![
                    "sh".into(),
                    "-c".into(),
                    "echo bollard; exit 7".into(),
                ]),
                ..Default::default()
            },
        )
        .await
        .expect("create");
    c.start_container(
        &created.id,
        None::<bollard::query_parameters::StartContainerOptions>,
    )
    .await
    .expect("start");
    let mut w = c.wait_container(
        &created.id,
        None::<bollard::query_parameters::WaitContainerOptions>,
    );
    let res = w.next().await.expect("wait result");
    match res {
        Ok(r) => assert_eq!(r.status_code, 7),
        Err(bollard::errors::Error::DockerContainerWaitError { code, .. }) => assert_eq!(code, 7),
        Err(e) => panic!("wait: {e}"),
    }
    let mut logs = c.logs(
        &created.id,
        Some(bollard::query_parameters::LogsOptions {
            stdout: true,
            ..Default::default()
        }),
    );
    let first = logs.next().await.expect("a log line").expect("log ok");
    assert_eq!(first.to_string(), "bollard\n");
    let info = c
        .inspect_container(
            &created.id,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await
        .expect("inspect");
    assert_eq!(info.state.and_then(|s| s.exit_code), Some(7));
    let list = c
        .list_containers(Some(bollard::query_parameters::ListContainersOptions {
            all: true,
            ..Default::default()
        }))
        .await
        .expect("list");
    assert_eq!(list.len(), 1);
    c.remove_container(
        &created.id,
        None::<bollard::query_parameters::RemoveContainerOptions>,
    )
    .await
    .expect("remove");
    let err = c
        .inspect_container(
            "bol",
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await
        .expect_err("gone");
    assert!(err.to_string().contains("No such container: bol"), "{err}");
}

#[test]
fn events_of_a_run() {
    let d = daemon();
    let b = busybox(&d);
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
        - 1.0;
    d.cli_ok(&["run", "--rm", &b, "true"]);
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
        + 1.0;
    let ev = d.cli_ok(&[
        "events",
        "--since",
        &format!("{since:.3}"),
        "--until",
        &format!("{until:.3}"),
        "--filter",
        "type=container",
        "--format",
        "{{.Action}}",
    ]);
    let actions: Vec<&str> = ev.lines().collect();
    for a in ["create", "start", "die", "destroy"] {
        assert!(actions.contains(&a), "{a} missing: {actions:?}");
    }
}

/// Runs a container that counts on its stdout, takes the daemon away with `outage`,
/// starts it again, and checks the container is the same process, its log has no
/// gap and at least `min_lines` lines, and it stops (exiting `code`) and goes away.
fn survives_outage(
    d: &mut berth_testkit::TestDaemon,
    b: &str,
    name: &str,
    min_lines: usize,
    code: i32,
    outage: impl FnOnce(&mut berth_testkit::TestDaemon),
) {
    let script = format!(
        "trap 'exit {code}' TERM; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done"
    );
    d.cli_ok(&["run", "-d", "--name", name, b, "sh", "-c", &script]);
    let pid = |d: &berth_testkit::TestDaemon| -> i64 {
        let v: serde_json::Value =
            serde_json::from_str(&d.cli_ok(&["inspect", name])).expect("json");
        v[0]["State"]["Pid"].as_i64().unwrap_or(0)
    };
    let before = pid(d);
    assert!(before > 0);
    outage(d);
    // Output written while the daemon is away lands in the log.
    std::thread::sleep(std::time::Duration::from_millis(400));
    d.restart();
    assert_eq!(pid(d), before, "same process after the restart");
    let logs = d.cli_ok(&["logs", name]);
    let ticks: Vec<u64> = logs
        .lines()
        .filter_map(|l| l.strip_prefix("tick ")?.parse().ok())
        .collect();
    assert!(ticks.len() >= min_lines, "{logs}");
    assert!(
        ticks.windows(2).all(|w| w[1] == w[0] + 1),
        "a gap in the log: {ticks:?}"
    );
    // Fully manageable again: exec, stop, wait, rm.
    assert_eq!(
        d.cli_ok(&["exec", name, "echo", "still-here"]),
        "still-here\n"
    );
    d.cli_ok(&["stop", name]);
    assert_eq!(d.cli_ok(&["wait", name]).trim(), code.to_string());
    d.cli_ok(&["rm", name]);
}

#[test]
fn running_containers_survive_a_daemon_restart() {
    let mut d = daemon();
    let b = busybox(&d);
    d.cli_ok(&["run", "--name", "done", &b, "echo", "finished"]);
    survives_outage(&mut d, &b, "live", 5, 5, |d| assert!(d.stop().success()));
    // The stopped one kept its state and log.
    assert_eq!(d.cli_ok(&["logs", "done"]), "finished\n");
    d.cli_ok(&["rm", "done"]);
}

#[test]
fn stdin_is_piped_with_dash_i() {
    use std::io::Write;
    let d = daemon();
    let b = busybox(&d);
    for (input, args, want) in [
        (
            "hello stdin\n",
            vec!["run", "-i", "--rm", b.as_str(), "cat"],
            "hello stdin\n",
        ),
        (
            "a\nb\nc\n",
            vec!["run", "-i", "--rm", b.as_str(), "wc", "-l"],
            "3\n",
        ),
    ] {
        let mut child = d
            .docker()
            .args(&args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("docker run -i");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("feed");
        let out = child.wait_with_output().expect("run");
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim_start(), want);
    }
    // Without -i the container's stdin is empty.
    assert_eq!(d.cli_ok(&["run", "--rm", &b, "cat"]), "");
}

#[test]
fn rename_follows_dockers_rules() {
    let d = daemon();
    let b = busybox(&d);
    d.cli_ok(&["create", "--name", "first", &b, "true"]);
    d.cli_ok(&["create", "--name", "second", &b, "true"]);
    d.cli_ok(&["rename", "first", "renamed"]);
    assert_eq!(
        d.cli_ok(&["inspect", "--format", "{{.Name}}", "renamed"])
            .trim(),
        "/renamed"
    );
    let (_, e) = stderr_of(&d, &["inspect", "first"]);
    assert!(e.contains("No such"), "{e}");
    let (_, e) = stderr_of(&d, &["rename", "renamed", "second"]);
    assert!(e.contains("is already in use by container"), "{e}");
    let (_, e) = stderr_of(&d, &["rename", "renamed", "bad name"]);
    assert!(e.contains("Invalid container name"), "{e}");
    // The new name survives a restart; the old one is free again.
    let mut d = d;
    d.restart();
    assert_eq!(
        d.cli_ok(&["inspect", "--format", "{{.Name}}", "renamed"])
            .trim(),
        "/renamed"
    );
    d.cli_ok(&["create", "--name", "first", &b, "true"]);
    d.cli_ok(&["rm", "renamed", "second", "first"]);
}

#[test]
fn tty_under_a_pty_with_resize() {
    let d = daemon();
    let b = busybox(&d);
    // `script` gives the docker CLI a real terminal, as a user's shell would.
    let cmd = format!(
        "stty cols 100 rows 40; {} run -it --rm {b} sh -c 'tty; sleep 0.3; stty size; exit 4'",
        berth_testkit::docker_cli().display()
    );
    // script ends the session when its input ends: keep it open until we are done.
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
    assert!(out.contains("/dev/pts/0"), "{out}");
    assert!(out.contains("40 100"), "{out}");
    assert_eq!(o.status.code(), Some(4), "{out}");
}

#[test]
fn containers_survive_kill_9_of_the_daemon() {
    let mut d = daemon();
    let b = busybox(&d);
    survives_outage(&mut d, &b, "tough", 4, 6, |d| d.kill9());
}

#[test]
fn json_file_logs_rotate() {
    let d = daemon();
    let b = busybox(&d);
    d.cli_ok(&[
        "run",
        "--name",
        "chatty",
        "--log-opt",
        "max-size=2k",
        "--log-opt",
        "max-file=3",
        &b,
        "sh",
        "-c",
        "i=0; while [ $i -lt 300 ]; do echo line-$i; i=$((i+1)); done",
    ]);
    let path = d.cli_ok(&["inspect", "--format", "{{.LogPath}}", "chatty"]);
    let path = std::path::PathBuf::from(path.trim());
    let files = berth_runtime_files(&path);
    assert_eq!(files, 3, "rotated into max-file files");
    assert!(std::fs::metadata(&path).expect("live log").len() < 3000);
    let logs = d.cli_ok(&["logs", "chatty"]);
    let n: Vec<u64> = logs
        .lines()
        .filter_map(|l| l.strip_prefix("line-")?.parse().ok())
        .collect();
    assert_eq!(n.last(), Some(&299));
    assert!(
        n.windows(2).all(|w| w[1] == w[0] + 1),
        "logs across rotated files are in order"
    );
    assert!(n[0] > 0, "the oldest lines were rotated away");
    let (_, e) = stderr_of(
        &d,
        &["run", "--rm", "--log-opt", "max-size=lots", &b, "true"],
    );
    assert!(e.contains("invalid value for log option max-size"), "{e}");
    let (_, e) = stderr_of(&d, &["run", "--rm", "--log-driver", "syslog", &b, "true"]);
    assert!(e.contains("no log driver named 'syslog'"), "{e}");
    d.cli_ok(&["rm", "chatty"]);
}

fn berth_runtime_files(live: &std::path::Path) -> usize {
    (1..10)
        .filter(|i| std::path::PathBuf::from(format!("{}.{i}", live.display())).exists())
        .count()
        + 1
}

#[test]
fn ps_filters() {
    let d = daemon();
    let b = busybox(&d);
    for (name, code) in [("one", "0"), ("two", "3"), ("three", "0")] {
        let _ = d.cli(&[
            "run",
            "--name",
            name,
            "--label",
            &format!("n={name}"),
            &b,
            "sh",
            "-c",
            &format!("exit {code}"),
        ]);
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let names = |f: &[&str]| -> Vec<String> {
        let mut args = vec!["ps", "-a", "--format", "{{.Names}}"];
        args.extend_from_slice(f);
        let mut v: Vec<String> = d.cli_ok(&args).lines().map(str::to_string).collect();
        v.sort();
        v
    };
    assert_eq!(names(&["--filter", "exited=3"]), vec!["two"]);
    assert_eq!(names(&["--filter", "label=n=one"]), vec!["one"]);
    assert_eq!(names(&["--filter", "name=thr"]), vec!["three"]);
    assert_eq!(names(&["--filter", "before=three"]), vec!["one", "two"]);
    assert_eq!(names(&["--filter", "since=one"]), vec!["three", "two"]);
    assert_eq!(
        names(&["--filter", "status=exited", "--filter", "exited=0"]),
        vec!["one", "three"]
    );
    assert!(d.cli_ok(&["ps", "-q"]).trim().is_empty());
    let (_, e) = stderr_of(&d, &["ps", "--filter", "bogus=1"]);
    assert!(e.contains("invalid filter 'bogus'"), "{e}");
    d.cli_ok(&["rm", "one", "two", "three"]);
}

#[test]
fn daemon_wide_seccomp_profile() {
    let dir = tempfile::tempdir().expect("tmp");
    let profile = dir.path().join("daemon-profile.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}"#,
    )
    .expect("profile");
    let d = crate::builder()
        .arg("--seccomp-profile")
        .arg(profile.display().to_string())
        .start();
    let b = busybox(&d);
    // Containers without a profile of their own get the daemon's...
    let (code, err) = stderr_of(&d, &["run", "--rm", &b, "mkdir", "/x"]);
    assert_ne!(code, 0);
    assert!(err.contains("Permission denied"), "{err}");
    // ...and their own when they ask, the built-in one included.
    d.cli_ok(&[
        "run",
        "--rm",
        "--security-opt",
        "seccomp=builtin",
        &b,
        "mkdir",
        "/x",
    ]);
    d.cli_ok(&[
        "run",
        "--rm",
        "--security-opt",
        "seccomp=unconfined",
        &b,
        "mkdir",
        "/x",
    ]);
    let info = d.cli_ok(&["info", "--format", "{{json .SecurityOptions}}"]);
    assert!(
        info.contains(&format!("profile={}", profile.display())),
        "{info}"
    );

    // A profile that does not parse keeps the daemon from starting.
    std::fs::write(&profile, "{not json").expect("profile");
    let err = crate::berthd_refuses(&["--seccomp-profile", &profile.display().to_string()]);
    assert!(err.contains("Decoding seccomp profile failed"), "{err}");
}

/// The namespace a process of the container is in, as `readlink /proc/…/ns/KIND`.
fn host_ns(kind: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{kind}"))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

#[test]
fn pid_ipc_uts_modes_and_group_add() {
    let d = daemon();
    let b = busybox(&d);
    // The host's namespaces.
    d.cli_ok(&[
        "run", "-d", "--name", "hostns", "--pid", "host", "--ipc", "host", "--uts", "host", &b,
        "sleep", "300",
    ]);
    for kind in ["pid", "ipc", "uts"] {
        assert_eq!(crate::ns_in(&d, "hostns", kind), host_ns(kind), "{kind}");
    }
    let host_name = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    assert_eq!(d.cli_ok(&["exec", "hostns", "hostname"]).trim(), host_name);
    assert_eq!(
        d.cli_ok(&["inspect", "-f", "{{.Config.Hostname}}", "hostns"])
            .trim(),
        host_name
    );
    // Sharing the host's PID namespace, an exec'd process does not outlive the container.
    d.cli_ok(&["exec", "-d", "hostns", "sleep", "4321"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let sleeping = || {
        std::fs::read_dir("/proc")
            .map(|rd| {
                rd.flatten().any(|e| {
                    std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == b"sleep\x004321\x00")
                })
            })
            .unwrap_or(false)
    };
    assert!(sleeping(), "the exec'd process runs");
    d.cli_ok(&["rm", "-f", "hostns"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(!sleeping(), "the exec'd process went with the container");
    // Another container's PID namespace.
    d.cli_ok(&["run", "-d", "--name", "nsbase", &b, "sleep", "300"]);
    d.cli_ok(&[
        "run",
        "-d",
        "--name",
        "nsjoin",
        "--pid",
        "container:nsbase",
        &b,
        "sleep",
        "300",
    ]);
    assert_eq!(
        crate::ns_in(&d, "nsjoin", "pid"),
        crate::ns_in(&d, "nsbase", "pid")
    );
    assert_ne!(
        crate::ns_in(&d, "nsjoin", "ipc"),
        crate::ns_in(&d, "nsbase", "ipc")
    );
    // A private IPC namespace is not joined (see pods.rs for shareable ones).
    let (code, e) = stderr_of(
        &d,
        &["run", "--rm", "--ipc", "container:nsbase", &b, "true"],
    );
    assert_ne!(code, 0);
    assert!(
        e.contains("non-shareable IPC (hint: use IpcMode:shareable for the donor container)"),
        "{e}"
    );
    let ps = d.cli_ok(&["exec", "nsjoin", "ps", "-o", "comm"]);
    assert_eq!(
        ps.matches("sleep").count(),
        2,
        "both containers' processes: {ps}"
    );
    // Joining a container that is not running is refused.
    d.cli_ok(&["stop", "-t", "0", "nsbase"]);
    let (code, e) = stderr_of(
        &d,
        &["run", "--rm", "--pid", "container:nsbase", &b, "true"],
    );
    assert_ne!(code, 0);
    assert!(
        e.contains("cannot join PID of a non running container"),
        "{e}"
    );
    d.cli_ok(&["rm", "-f", "nsbase", "nsjoin"]);
    // No /dev/shm at all.
    let mounts = d.cli_ok(&["run", "--rm", "--ipc", "none", &b, "cat", "/proc/mounts"]);
    assert!(!mounts.contains(" /dev/shm "), "{mounts}");
    // --group-add by name and by number, for the container and its execs.
    d.cli_ok(&[
        "run",
        "-d",
        "--name",
        "groups",
        "-u",
        "nobody",
        "--group-add",
        "daemon",
        "--group-add",
        "4321",
        &b,
        "sleep",
        "300",
    ]);
    let ids = d.cli_ok(&["exec", "groups", "id", "-G"]);
    let ids: Vec<&str> = ids.split_whitespace().collect();
    assert!(ids.contains(&"1") && ids.contains(&"4321"), "{ids:?}");
    let init = d.cli_ok(&["exec", "groups", "cat", "/proc/1/status"]);
    let groups: Vec<&str> = init
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert!(groups.contains(&"1") && groups.contains(&"4321"), "{init}");
    d.cli_ok(&["rm", "-f", "groups"]);
    // The primary group is among the supplementary ones, as under dockerd.
    let root = d.cli_ok(&["run", "--rm", &b, "id"]);
    assert!(root.trim_end().ends_with("groups=0(root)"), "{root}");
    let (code, e) = stderr_of(
        &d,
        &["run", "--rm", "--group-add", "nosuchgroup", &b, "true"],
    );
    assert_ne!(code, 0);
    assert!(e.contains("Unable to find group nosuchgroup"), "{e}");
    // The daemon's own checks, as dockerd words them.
    for (field, value, text) in [
        ("PidMode", "bogus", "invalid PID mode: bogus"),
        ("IpcMode", "bogus", "invalid IPC mode: bogus"),
        ("UTSMode", "bogus", "invalid UTS mode: bogus"),
    ] {
        let body = format!("{{\"Image\":\"{b}\",\"HostConfig\":{{\"{field}\":\"{value}\"}}}}");
        let r = d.raw(
            format!(
                "POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
        assert!(r.starts_with("HTTP/1.1 400"), "{r}");
        assert!(r.contains(text), "{r}");
    }
    d.cli(&["container", "prune", "-f"]);
}

#[test]
fn init_runs_as_pid_1_and_passes_the_exit_code_on() {
    let d = daemon();
    let b = busybox(&d);
    let ps = d.cli_ok(&["run", "--rm", "--init", &b, "ps", "-o", "pid,comm"]);
    let first = ps
        .lines()
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .collect::<Vec<_>>();
    assert_eq!(first, ["1", "docker-init"], "{ps}");
    let (code, _) = stderr_of(&d, &["run", "--rm", "--init", &b, "sh", "-c", "exit 7"]);
    assert_eq!(code, 7);
    // The init forwards signals: a stop ends the process behind it at once.
    d.cli_ok(&[
        "run", "-d", "--init", "--name", "inited", &b, "sleep", "300",
    ]);
    d.cli_ok(&["stop", "-t", "20", "inited"]);
    // Ended by the SIGTERM the init passed on (143), not by the SIGKILL after the
    // timeout (137).
    assert_eq!(
        d.cli_ok(&["inspect", "-f", "{{.State.ExitCode}}", "inited"])
            .trim(),
        "143"
    );
    assert_eq!(
        d.cli_ok(&[
            "inspect",
            "-f",
            "{{.Path}} {{.Args}} {{.HostConfig.Init}}",
            "inited"
        ])
        .trim(),
        "sleep [300] true"
    );
    d.cli_ok(&["rm", "inited"]);
}

#[test]
fn cgroup_parent_places_the_container_and_its_limits() {
    let d = daemon();
    let b = busybox(&d);
    // Unique per test run, and removed at the end: the parent outlives its containers,
    // as with dockerd.
    let systemd = crate::cgroup_driver(&d) == "systemd";
    let parent = if systemd {
        format!("berthtest{}.slice", std::process::id())
    } else {
        format!("berthtest-{}", std::process::id())
    };
    d.cli_ok(&[
        "run",
        "-d",
        "--name",
        "parented",
        "--cgroup-parent",
        &parent,
        "-m",
        "64m",
        &b,
        "sleep",
        "300",
    ]);
    let id = d
        .cli_ok(&["inspect", "-f", "{{.Id}}", "parented"])
        .trim()
        .to_string();
    let v2 = berth_runtime::cgroups::is_v2();
    if !v2 {
        // (On v2 the container's own cgroup namespace hides the path.)
        let cg = d.cli_ok(&["exec", "parented", "cat", "/proc/self/cgroup"]);
        let want = format!(":/{parent}/{id}");
        assert!(
            cg.lines()
                .any(|l| l.contains(":memory:") && l.ends_with(&want)),
            "{cg}"
        );
    }
    // Limits, updates and stats reach the same cgroup.
    let limit = if systemd {
        let want = format!("/{parent}/berth-{id}.scope");
        assert_eq!(crate::cgroup_of(&d, "parented"), want);
        format!("/sys/fs/cgroup{want}/memory.max")
    } else if v2 {
        format!("/sys/fs/cgroup/{parent}/{id}/memory.max")
    } else {
        format!("/sys/fs/cgroup/memory/{parent}/{id}/memory.limit_in_bytes")
    };
    assert_eq!(
        std::fs::read_to_string(&limit).unwrap_or_default().trim(),
        "67108864"
    );
    d.cli_ok(&["update", "-m", "80m", "--memory-swap", "160m", "parented"]);
    assert_eq!(
        std::fs::read_to_string(&limit).unwrap_or_default().trim(),
        "83886080"
    );
    let mem = d.cli_ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.MemUsage}}",
        "parented",
    ]);
    assert!(mem.contains("80MiB"), "{mem}");
    d.cli_ok(&["rm", "-f", "parented"]);
    assert!(
        !std::path::Path::new(&limit).exists(),
        "the container's cgroup is removed"
    );
    // A parent above the hierarchy's root is refused.
    let (code, e) = stderr_of(&d, &["create", "--cgroup-parent", "../escape", &b]);
    assert_ne!(code, 0);
    assert!(e.contains("invalid cgroup parent"), "{e}");
    if systemd {
        let (code, e) = stderr_of(&d, &["create", "--cgroup-parent", "notaslice", &b]);
        assert_ne!(code, 0);
        assert!(
            e.contains("should be a valid slice named as \"xxx.slice\""),
            "{e}"
        );
    }
    let _ = std::fs::remove_dir(format!("/sys/fs/cgroup/{parent}"));
    if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
        for h in rd.flatten() {
            let _ = std::fs::remove_dir(h.path().join(&parent));
        }
    }
}
