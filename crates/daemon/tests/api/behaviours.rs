//! Behaviours dockerd users and SDKs rely on that docker-py's suite found missing:
//! `docker restart`, a kill that answers once the container is dead, and the
//! range checks of `HostConfig` values with dockerd's texts.

use crate::images::busybox;
use crate::network::inspect;
use crate::{body_json, daemon, status};

/// `POST path` with the JSON `body` as it is; the raw response.
fn post_json(d: &berth_testkit::TestDaemon, path: &str, body: &str) -> String {
    d.raw(format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes())
}

#[test]
fn restart_stops_and_starts_the_container() {
    let d = daemon();
    let b = busybox(&d);
    d.cli_ok(&[
        "run",
        "-d",
        "--name",
        "r1",
        &b,
        "sh",
        "-c",
        "echo started; exec sleep 600",
    ]);
    let before = inspect(&d, "r1");
    // sh as PID 1 ignores SIGTERM: the restart's stop ends with SIGKILL after -t.
    d.cli_ok(&["restart", "-t", "1", "r1"]);
    let after = inspect(&d, "r1");
    assert_eq!(after["State"]["Running"], true, "{after}");
    assert_ne!(after["State"]["Pid"], before["State"]["Pid"]);
    assert_ne!(after["State"]["StartedAt"], before["State"]["StartedAt"]);
    // The new run's echo reaches the log after the start has answered.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut logs = d.cli_ok(&["logs", "r1"]);
    while logs.matches("started").count() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
        logs = d.cli_ok(&["logs", "r1"]);
    }
    assert_eq!(logs.matches("started").count(), 2, "{logs}");
    // The CLI sends whole seconds: a second from now includes everything so far.
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 1;
    let events = d.cli_ok(&[
        "events",
        "--since",
        "1m",
        "--until",
        &until.to_string(),
        "--filter",
        "container=r1",
        "--format",
        "{{.Action}}",
    ]);
    let actions: Vec<&str> = events.lines().collect();
    // As dockerd: a kill event per signal (TERM, then KILL), no `stop`.
    let tail: Vec<&str> = actions.iter().rev().take(5).rev().copied().collect();
    assert_eq!(
        tail,
        ["kill", "kill", "die", "start", "restart"],
        "{events}"
    );
    // A stopped container is just started.
    d.cli_ok(&["stop", "-t", "0", "r1"]);
    d.cli_ok(&["restart", "r1"]);
    assert_eq!(inspect(&d, "r1")["State"]["Running"], true);
    let o = d.cli(&["restart", "nope"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("No such container: nope"));
    d.cli_ok(&["rm", "-f", "r1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_through_bollard() {
    let d = daemon();
    let b = busybox(&d);
    d.cli_ok(&["run", "-d", "--name", "r2", &b, "sleep", "600"]);
    let pid = inspect(&d, "r2")["State"]["Pid"].clone();
    let api = d.bollard().await;
    api.restart_container(
        "r2",
        Some(bollard::query_parameters::RestartContainerOptions {
            t: Some(0),
            ..Default::default()
        }),
    )
    .await
    .expect("restart");
    let v = inspect(&d, "r2");
    assert_eq!(v["State"]["Running"], true);
    assert_ne!(v["State"]["Pid"], pid);
    d.cli_ok(&["rm", "-f", "r2"]);
}

#[test]
fn kill_answers_once_the_container_is_dead() {
    let d = daemon();
    let b = busybox(&d);
    for round in 0..3 {
        d.cli_ok(&["run", "-d", "--name", "k1", &b, "sleep", "600"]);
        d.cli_ok(&["kill", "k1"]);
        // Read at once: no waiting for the state to catch up.
        let v = inspect(&d, "k1");
        assert_eq!(v["State"]["Running"], false, "round {round}: {v}");
        assert_eq!(v["State"]["Status"], "exited");
        assert_eq!(v["State"]["ExitCode"], 137);
        d.cli_ok(&["rm", "k1"]);
    }
    // Another signal is only delivered: the container may run on.
    d.cli_ok(&[
        "run",
        "-d",
        "--name",
        "k2",
        &b,
        "sh",
        "-c",
        "trap 'echo got-usr1' USR1; while :; do sleep 0.1; done",
    ]);
    d.cli_ok(&["kill", "-s", "USR1", "k2"]);
    assert_eq!(inspect(&d, "k2")["State"]["Running"], true);
    d.cli_ok(&["rm", "-f", "k2"]);
}

#[test]
fn host_config_values_out_of_range_are_refused_with_dockerds_texts() {
    let d = daemon();
    let b = busybox(&d);
    let create = |hc: &str| {
        let body = format!(r#"{{"Image":"{b}","Cmd":["true"],"HostConfig":{hc}}}"#);
        post_json(&d, "/containers/create", &body)
    };
    for (hc, text) in [
        // Wrapped to 10 in a u16 and accepted, before.
        (
            r#"{"BlkioWeight":65546}"#,
            "json: cannot unmarshal number 65546 into Go struct field HostConfig.HostConfig.BlkioWeight of type uint16",
        ),
        (r#"{"BlkioWeight":5000}"#, "Range of blkio weight is from 10 to 1000"),
        (
            r#"{"MemorySwappiness":200}"#,
            "Invalid value: 200, valid memory swappiness range is 0-100",
        ),
        (r#"{"CpuQuota":500}"#, "CPU cfs quota can not be less than 1ms (i.e. 1000)"),
        (r#"{"KernelMemory":100}"#, "Minimum kernel memory limit allowed is 6MB"),
        (
            r#"{"CpusetCpus":"0-"}"#,
            "Invalid value 0- for cpuset cpus: invalid format: 0-",
        ),
        (
            r#"{"CpusetCpus":"4096"}"#,
            "Requested CPUs are not available - requested 4096, available: ",
        ),
    ] {
        let r = create(hc);
        assert_eq!(status(&r), 400, "{hc}: {r}");
        let msg = body_json(&r)["message"].as_str().unwrap_or("").to_string();
        assert!(msg.starts_with(text), "{hc}: {msg}");
    }
    // Nothing was made of them.
    assert_eq!(d.cli_ok(&["ps", "-aq"]).trim(), "");
    // The same checks hold for docker update.
    d.cli_ok(&["run", "-d", "--name", "u1", &b, "sleep", "600"]);
    let o = d.cli(&["update", "--cpuset-cpus", "0-", "u1"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Invalid value 0- for cpuset cpus"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    d.cli_ok(&["rm", "-f", "u1"]);
}

#[test]
fn open_stdin_without_an_attached_client_stays_open() {
    let d = daemon();
    let b = busybox(&d);
    // `docker run -d -i IMAGE cat`: nobody attached, and cat keeps reading.
    d.cli_ok(&["run", "-d", "-i", "--name", "cat1", &b, "cat"]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(inspect(&d, "cat1")["State"]["Running"], true);
    assert_eq!(
        d.cli_ok(&["exec", "cat1", "echo", "exec-ok"]).trim(),
        "exec-ok"
    );
    // Attached with `-i` (StdinOnce), the client's end of input is the container's.
    let mut c = d.docker();
    c.args(["run", "-i", "--rm", &b, "cat"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = c.spawn().expect("docker run -i");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"piped\n").expect("write");
    }
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "piped\n");
    d.cli_ok(&["rm", "-f", "cat1"]);
}

#[test]
fn rmi_of_the_only_tag_of_an_image_a_container_uses_needs_force() {
    let d = daemon();
    let b = busybox(&d);
    d.cli_ok(&["tag", &b, "solo:1"]);
    d.cli_ok(&["rmi", &b]);
    let id = inspect(&d, "solo:1")["Id"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let c = d.cli_ok(&["create", "solo:1", "true"]);
    let o = d.cli(&["rmi", "solo:1"]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains(&format!(
            "conflict: unable to remove repository reference \"solo:1\" (must force) - container {} is using its referenced image {}",
            &c.trim()[..12],
            &id[7..19]
        )),
        "{e}"
    );
    // Nothing was untagged.
    assert_eq!(inspect(&d, "solo:1")["Id"], id.as_str());
    // A second tag may go: the image stays named.
    d.cli_ok(&["tag", "solo:1", "solo:2"]);
    d.cli_ok(&["rmi", "solo:2"]);
    d.cli_ok(&["rm", c.trim()]);
    d.cli_ok(&["rmi", "solo:1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_right_after_a_short_command_starts() {
    let d = daemon();
    let b = busybox(&d);
    let api = d.bollard().await;
    // docker-py's test_commit: the command may end while the commit pauses it.
    for i in 0..10 {
        let id = d.cli_ok(&["run", "-d", &b, "touch", "/test"]);
        let r = api
            .commit_container(
                bollard::query_parameters::CommitContainerOptions {
                    container: Some(id.trim().to_string()),
                    repo: Some(format!("committed{i}")),
                    pause: true,
                    ..Default::default()
                },
                bollard::models::ContainerConfig::default(),
            )
            .await;
        assert!(r.is_ok(), "round {i}: {r:?}");
        d.cli_ok(&["rm", "-f", id.trim()]);
        d.cli_ok(&["rmi", &format!("committed{i}")]);
    }
}

#[test]
fn log_drivers_json_file_local_and_none_as_dockerd_has_them() {
    let d = daemon();
    let b = busybox(&d);
    // Every container records its log config, defaults filled in.
    d.cli_ok(&["create", "--name", "plain", &b, "true"]);
    assert_eq!(
        inspect(&d, "plain")["HostConfig"]["LogConfig"],
        serde_json::json!({"Type": "json-file", "Config": {}})
    );
    // json-file's other options are taken.
    d.cli_ok(&[
        "create",
        "--name",
        "opts",
        "--log-opt",
        "labels=a",
        "--log-opt",
        "env=X",
        "--log-opt",
        "tag={{.Name}}",
        "--log-opt",
        "compress=true",
        "--log-opt",
        "env-regex=^X",
        &b,
        "true",
    ]);
    assert_eq!(
        inspect(&d, "opts")["HostConfig"]["LogConfig"]["Config"]["tag"],
        "{{.Name}}"
    );
    // none: attach still shows the output; docker logs has nothing to read.
    let out = d.cli_ok(&[
        "run",
        "--name",
        "quiet",
        "--log-driver",
        "none",
        &b,
        "echo",
        "hi",
    ]);
    assert_eq!(out.trim(), "hi");
    let o = d.cli(&["logs", "quiet"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("configured logging driver does not support reading"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // (The CLI refuses options for none itself; the API is checked here.)
    let body = format!(
        r#"{{"Image":"{b}","HostConfig":{{"LogConfig":{{"Type":"none","Config":{{"max-size":"1m"}}}}}}}}"#
    );
    let r = post_json(&d, "/containers/create", &body);
    assert_eq!(status(&r), 400, "{r}");
    assert_eq!(
        body_json(&r)["message"],
        "unknown log opt 'max-size' for none log driver"
    );
    // local: read by docker logs.
    d.cli_ok(&[
        "run",
        "--name",
        "loc",
        "--log-driver",
        "local",
        &b,
        "echo",
        "kept",
    ]);
    assert_eq!(d.cli_ok(&["logs", "loc"]).trim(), "kept");
    assert_eq!(
        inspect(&d, "loc")["HostConfig"]["LogConfig"]["Type"],
        "local"
    );
    d.cli_ok(&["rm", "plain", "opts", "quiet", "loc"]);
}

#[test]
fn the_daemons_default_log_driver_and_options() {
    let d = crate::builder()
        .arg("--log-driver")
        .arg("local")
        .arg("--log-opt")
        .arg("max-size=5m")
        .start();
    let b = busybox(&d);
    d.cli_ok(&["run", "--name", "dl", &b, "echo", "hello"]);
    assert_eq!(
        inspect(&d, "dl")["HostConfig"]["LogConfig"],
        serde_json::json!({"Type": "local", "Config": {"max-size": "5m"}})
    );
    assert_eq!(d.cli_ok(&["logs", "dl"]).trim(), "hello");
    assert_eq!(
        d.cli_ok(&["info", "-f", "{{.LoggingDriver}}"]).trim(),
        "local"
    );
    // Another driver named by the container takes none of the defaults' options.
    d.cli_ok(&[
        "create",
        "--name",
        "js",
        "--log-driver",
        "json-file",
        &b,
        "true",
    ]);
    assert_eq!(
        inspect(&d, "js")["HostConfig"]["LogConfig"],
        serde_json::json!({"Type": "json-file", "Config": {}})
    );
    d.cli_ok(&["rm", "dl", "js"]);
    let e = crate::berthd_refuses(&["--log-driver", "syslog"]);
    assert!(
        e.contains("failed to initialize logging driver: logger: no log driver named 'syslog' is registered"),
        "{e}"
    );
    let e = crate::berthd_refuses(&["--log-opt", "bogus=1"]);
    assert!(
        e.contains("unknown log opt 'bogus' for json-file log driver"),
        "{e}"
    );
}

#[test]
fn a_broken_archive_to_load_is_an_error_in_the_stream_as_dockerd_sends_it() {
    let d = daemon();
    let mut garbage = vec![0u8; 3000];
    for (i, b) in garbage.iter_mut().enumerate() {
        *b = (i * 7 + 13) as u8;
    }
    for (body, text) in [
        (
            garbage,
            "Error processing tar file(exit status 1): archive/tar: invalid tar header",
        ),
        (
            b"not a tar at all".to_vec(),
            "Error processing tar file(exit status 1): unexpected EOF",
        ),
    ] {
        let mut req = format!(
            "POST /images/load?quiet=1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-tar\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        req.extend(&body);
        let r = d.raw(&req);
        // dockerd answers 200 and says what went wrong in the JSON stream.
        assert_eq!(status(&r), 200, "{r}");
        let v = body_json(&r);
        assert_eq!(v["errorDetail"]["message"], text, "{r}");
        assert_eq!(v["error"], text);
    }
    // The CLI shows it and fails.
    let mut load = d
        .docker()
        .args(["load"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("load");
    {
        use std::io::Write;
        load.stdin
            .take()
            .expect("stdin")
            .write_all(b"short")
            .expect("feed");
    }
    let out = load.wait_with_output().expect("load");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unexpected EOF"));
}

#[test]
fn detach_keys_detach_the_client_and_leave_the_container_running() {
    use std::io::{Read, Write};
    let d = daemon();
    let b = busybox(&d);
    // As docker-py's attach tests: an attach socket, the keys typed into it.
    d.cli_ok(&["run", "-d", "-i", "--name", "att", &b, "cat"]);
    d.cli_ok(&["run", "-d", "-i", "-t", "--name", "attt", &b, "cat"]);
    for (name, query, keys) in [
        ("att", "&stdout=1", &b"\x10\x11"[..]),
        ("attt", "&stdout=1", &b"\x10\x11"[..]),
        ("att", "&stdout=1&detachKeys=ctrl-a,x", &b"\x01x"[..]),
        // Input only, as docker-py's attach_socket(stdin) asks: it lasts until
        // the keys too.
        ("attt", "", &b"\x10\x11"[..]),
    ] {
        let mut s = std::os::unix::net::UnixStream::connect(&d.sock).expect("connect");
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .expect("timeout");
        write!(
            s,
            "POST /containers/{name}/attach?stream=1&stdin=1{query} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n"
        )
        .expect("request");
        let mut head = [0u8; 1024];
        let n = s.read(&mut head).expect("101");
        assert!(String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 101"));
        s.write_all(b"before\n").expect("input");
        std::thread::sleep(std::time::Duration::from_millis(300));
        // Still attached: the input went through, nothing ended.
        s.write_all(keys).expect("keys");
        // The daemon ends the attach: the rest of the stream, then end of file.
        let mut rest = Vec::new();
        let r = s.read_to_end(&mut rest);
        assert!(r.is_ok(), "{name}{query}: not detached: {r:?}");
        assert_eq!(inspect(&d, name)["State"]["Running"], true, "{name}{query}");
    }
    // What came before the keys reached the container; the keys did not.
    assert_eq!(d.cli_ok(&["logs", "att"]), "before\nbefore\n");
    // Keys dockerd cannot read.
    let r = d.raw(b"POST /containers/att/attach?stream=1&stdin=1&detachKeys=ctrl-ab HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(status(&r), 400, "{r}");
    assert_eq!(
        body_json(&r)["message"],
        "Invalid detach keys (ctrl-ab) provided"
    );
    d.cli_ok(&["rm", "-f", "att", "attt"]);
}

#[test]
fn rmi_force_of_a_name_untags_it_and_keeps_an_image_a_running_container_uses() {
    let d = daemon();
    let b = busybox(&d);
    d.cli_ok(&["tag", &b, "extra:1"]);
    d.cli_ok(&["run", "-d", "--name", "user", &b, "sleep", "600"]);
    // Another name remains: only this one goes.
    let out = d.cli_ok(&["rmi", "-f", "extra:1"]);
    assert_eq!(out.trim(), "Untagged: extra:1");
    assert!(!d.cli(&["image", "inspect", "extra:1"]).status.success());
    // The last name of an image a running container uses: untagged, image kept.
    let id = inspect(&d, &b)["Id"].as_str().unwrap_or("").to_string();
    let out = d.cli_ok(&["rmi", "-f", &b]);
    assert!(
        out.contains("Untagged:") && !out.contains("Deleted:"),
        "{out}"
    );
    assert!(d.cli(&["image", "inspect", &id]).status.success());
    d.cli_ok(&["rm", "-f", "user"]);
    d.cli_ok(&["rmi", &id]);
}

#[test]
fn save_names_what_it_saves_as_dockerd() {
    let d = daemon();
    let b = busybox(&d);
    d.cli_ok(&["tag", &b, "keep:one"]);
    d.cli_ok(&["tag", &b, "keep:two"]);
    let id = inspect(&d, &b)["Id"].as_str().unwrap_or("").to_string();
    let tar = d.data_root.parent().expect("dir").join("s.tar");
    let tar = tar.to_string_lossy().to_string();
    let load = |d: &berth_testkit::TestDaemon| {
        d.cli_ok(&["rmi", "-f", &id]);
        let out = d.cli_ok(&["load", "-i", &tar]);
        let mut lines: Vec<String> = out.lines().map(str::to_string).collect();
        lines.sort();
        lines
    };
    // An ID: the image with no names, as docker-py's Image.save() sends it.
    d.cli_ok(&["save", "-o", &tar, &id]);
    assert_eq!(load(&d), [format!("Loaded image ID: {id}")]);
    // A bare name: every tag of that repository.
    d.cli_ok(&["tag", &id, "keep:one"]);
    d.cli_ok(&["tag", &id, "keep:two"]);
    d.cli_ok(&["tag", &id, "other:x"]);
    d.cli_ok(&["save", "-o", &tar, "keep"]);
    assert_eq!(
        load(&d),
        ["Loaded image: keep:one", "Loaded image: keep:two"]
    );
    // name:tag: that tag.
    d.cli_ok(&["save", "-o", &tar, "keep:two"]);
    assert_eq!(load(&d), ["Loaded image: keep:two"]);
    d.cli_ok(&["rmi", "-f", &id]);
}

#[test]
fn exec_output_is_framed_as_the_start_request_asks() {
    use std::io::{Read, Write};
    let d = daemon();
    let b = busybox(&d);
    d.cli_ok(&["run", "-d", "--name", "ex", &b, "sleep", "600"]);
    let exec = |tty_create: bool, tty_start: bool| -> Vec<u8> {
        let body = format!(
            r#"{{"Cmd":["printf","framed"],"Tty":{tty_create},"AttachStdout":true,"AttachStderr":true}}"#
        );
        let r = post_json(&d, "/containers/ex/exec", &body);
        let id = body_json(&r)["Id"].as_str().expect("exec id").to_string();
        let body = format!(r#"{{"Detach":false,"Tty":{tty_start}}}"#);
        let mut s = std::os::unix::net::UnixStream::connect(&d.sock).expect("connect");
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .expect("timeout");
        write!(s, "POST /exec/{id}/start HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).expect("start");
        let mut all = Vec::new();
        let _ = s.read_to_end(&mut all);
        let at = all.windows(4).position(|w| w == b"\r\n\r\n").expect("head") + 4;
        all[at..].to_vec()
    };
    // A terminal, started without one (docker-py's default): stdout frames, as dockerd.
    assert_eq!(exec(true, false), b"\x01\x00\x00\x00\x00\x00\x00\x06framed");
    // Started with one (the CLI's `exec -t`): raw.
    assert_eq!(exec(true, true), b"framed");
    assert_eq!(
        exec(false, false),
        b"\x01\x00\x00\x00\x00\x00\x00\x06framed"
    );
    d.cli_ok(&["rm", "-f", "ex"]);
}

#[test]
fn exec_detach_keys_end_the_session_and_leave_the_process() {
    use std::io::{Read, Write};
    let d = daemon();
    let b = busybox(&d);
    d.cli_ok(&["run", "-d", "--name", "exd", &b, "sleep", "600"]);
    for (keys_field, keys) in [
        ("", &b"\x10\x11"[..]),
        (r#","detachKeys":"ctrl-a""#, &b"\x01"[..]),
    ] {
        let body = format!(
            r#"{{"Cmd":["sh","-c","cat; echo ended > /tmp/gone"],"Tty":true,"AttachStdin":true,"AttachStdout":true{keys_field}}}"#
        );
        let r = post_json(&d, "/containers/exd/exec", &body);
        let id = body_json(&r)["Id"].as_str().expect("exec id").to_string();
        let body = r#"{"Detach":false,"Tty":true}"#;
        let mut s = std::os::unix::net::UnixStream::connect(&d.sock).expect("connect");
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .expect("timeout");
        write!(s, "POST /exec/{id}/start HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).expect("start");
        std::thread::sleep(std::time::Duration::from_millis(300));
        s.write_all(keys).expect("keys");
        let mut rest = Vec::new();
        assert!(
            s.read_to_end(&mut rest).is_ok(),
            "{keys_field}: not detached"
        );
        // The process runs on, its input still open.
        let v: serde_json::Value = serde_json::from_str(
            &d.get(&format!("/exec/{id}/json"))
                .split_once("\r\n\r\n")
                .map(|x| x.1.to_string())
                .unwrap_or_default(),
        )
        .unwrap_or_default();
        assert_eq!(v["Running"], true, "{keys_field}: {v}");
    }
    let o = d.cli(&["exec", "--detach-keys", "ctrl-", "exd", "true"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("Invalid detach keys (ctrl-) provided"));
    d.cli_ok(&["rm", "-f", "exd"]);
}
