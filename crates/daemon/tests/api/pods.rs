//! Pods as cri-dockerd makes them: a sandbox container whose namespaces the pod's
//! other containers join (`--ipc shareable` and `container:ID` for IPC, network
//! and PID), with dockerd's answers where joining cannot work.

use crate::daemon;
use crate::images::busybox;

fn fails(d: &berth_testkit::TestDaemon, args: &[&str]) -> String {
    let o = d.cli(args);
    assert!(!o.status.success(), "{args:?} succeeded");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_shareable_ipc_namespace_and_its_shm_are_joined() {
    let d = daemon();
    let b = busybox(&d);
    let sandbox = d.cli_ok(&[
        "run",
        "-d",
        "--name",
        "sandbox",
        "--ipc",
        "shareable",
        "--network",
        "none",
        "--shm-size",
        "8m",
        "--hostname",
        "podhost",
        &b,
        "sleep",
        "300",
    ]);
    let sandbox = sandbox.trim();
    // Its /dev/shm is a tmpfs on the host, of the size asked for.
    let shm = d
        .data_root
        .join("containers")
        .join(sandbox)
        .join("mounts/shm");
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let line = mounts
        .lines()
        .find(|l| l.split_whitespace().nth(1) == shm.to_str())
        .unwrap_or_else(|| panic!("no tmpfs at {}:\n{mounts}", shm.display()));
    assert!(
        line.contains("tmpfs") && line.contains("size=8192k"),
        "{line}"
    );
    d.cli_ok(&[
        "exec",
        "sandbox",
        "sh",
        "-c",
        "echo from-the-sandbox > /dev/shm/note",
    ]);
    // An app container of the pod, as cri-dockerd creates it.
    d.cli_ok(&[
        "run",
        "-d",
        "--name",
        "app",
        "--ipc",
        "container:sandbox",
        "--network",
        "container:sandbox",
        "--pid",
        "container:sandbox",
        &b,
        "sleep",
        "300",
    ]);
    for kind in ["ipc", "net", "pid"] {
        assert_eq!(
            crate::ns_in(&d, "app", kind),
            crate::ns_in(&d, "sandbox", kind),
            "{kind}"
        );
    }
    assert_eq!(
        d.cli_ok(&["exec", "app", "cat", "/dev/shm/note"]),
        "from-the-sandbox\n",
        "the sandbox's /dev/shm"
    );
    // The pod's names: the sandbox's hostname and /etc files, as dockerd shares them.
    assert_eq!(d.cli_ok(&["exec", "app", "hostname"]), "podhost\n");
    let files = |c: &str| {
        d.cli_ok(&[
            "inspect",
            "-f",
            "{{.HostnamePath}} {{.HostsPath}} {{.ResolvConfPath}}",
            c,
        ])
    };
    assert_eq!(files("app"), files("sandbox"));
    assert_eq!(
        d.cli_ok(&["exec", "app", "cat", "/etc/hosts"]),
        d.cli_ok(&["exec", "sandbox", "cat", "/etc/hosts"])
    );
    let e = fails(
        &d,
        &[
            "create",
            "--network",
            "container:sandbox",
            "--hostname",
            "x",
            &b,
        ],
    );
    assert!(
        e.contains("conflicting options: hostname and the network mode"),
        "{e}"
    );
    // IpcMode is recorded with the donor's full ID, as dockerd records it.
    assert_eq!(
        d.cli_ok(&["inspect", "-f", "{{.HostConfig.IpcMode}}", "app"])
            .trim(),
        format!("container:{sandbox}")
    );
    // The app sees the sandbox's processes (PID 1 is the sandbox's).
    let ps = d.cli_ok(&["exec", "app", "ps", "-o", "pid,comm"]);
    assert_eq!(ps.matches("sleep").count(), 2, "{ps}");
    // A stopped donor cannot be joined; the running app keeps its namespaces.
    d.cli_ok(&["stop", "-t", "0", "sandbox"]);
    let e = fails(
        &d,
        &["run", "--rm", "--ipc", "container:sandbox", &b, "true"],
    );
    assert!(
        e.contains(&format!(
            "can't join IPC of container {sandbox}: container {sandbox} is not running"
        )),
        "{e}"
    );
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    assert!(
        !mounts.contains(shm.to_str().unwrap_or("-")),
        "the sandbox's shm outlived it"
    );
    d.cli_ok(&["rm", "-f", "app", "sandbox"]);
    assert!(d.leaked_mounts().is_empty(), "{:?}", d.leaked_mounts());
}

#[test]
fn joining_a_missing_container_is_refused_at_create() {
    let d = daemon();
    let b = busybox(&d);
    let e = fails(&d, &["create", "--ipc", "container:nosuch", &b, "true"]);
    assert!(e.contains("No such container: nosuch"), "{e}");
    let body = format!(r#"{{"Image":"{b}","HostConfig":{{"IpcMode":"container:nosuch"}}}}"#);
    let req = format!(
        "POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let resp = d.raw(req.as_bytes());
    assert_eq!(crate::status(&resp), 400, "{resp}");
}

fn post(d: &berth_testkit::TestDaemon, path: &str, body: &str) -> (u16, serde_json::Value) {
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let resp = d.raw(req.as_bytes());
    (crate::status(&resp), crate::body_json(&resp))
}

#[test]
fn the_host_config_fields_cri_dockerd_sets_take_effect() {
    let d = daemon();
    let b = busybox(&d);
    // Docker's masked and read-only paths are recorded, as dockerd records them;
    // a container's own lists replace them.
    d.cli_ok(&["create", "--name", "plain", &b, "true"]);
    let masked = d.cli_ok(&["inspect", "-f", "{{json .HostConfig.MaskedPaths}}", "plain"]);
    assert!(masked.contains("\"/proc/kcore\""), "{masked}");
    let body = format!(
        r#"{{"Image":"{b}","Cmd":["sleep","300"],"HostConfig":{{"MaskedPaths":["/proc/uptime"],"ReadonlyPaths":["/etc"]}}}}"#
    );
    let (code, _) = post(&d, "/containers/create?name=paths", &body);
    assert_eq!(code, 201);
    d.cli_ok(&["start", "paths"]);
    assert_eq!(
        d.cli_ok(&["exec", "paths", "cat", "/proc/uptime"]),
        "",
        "masked"
    );
    let o = d.cli(&["exec", "paths", "touch", "/etc/x"]);
    assert!(!o.status.success(), "/etc is read-only");
    assert!(
        !d.cli_ok(&["exec", "paths", "cat", "/proc/cpuinfo"])
            .is_empty(),
        "the defaults gave way to the container's lists"
    );
    // BindOptions.CreateMountpoint: a missing source is made.
    let src = tempfile::tempdir().expect("tempdir");
    let made = src.path().join("made/here");
    let body = format!(
        r#"{{"Image":"{b}","Cmd":["true"],"HostConfig":{{"Mounts":[{{"Type":"bind","Source":"{}","Target":"/data","BindOptions":{{"CreateMountpoint":true}}}}]}}}}"#,
        made.display()
    );
    let (code, resp) = post(&d, "/containers/create?name=mkpoint", &body);
    assert_eq!(code, 201, "{resp}");
    assert!(made.is_dir(), "the bind's source was not made");
    let body = body
        .replace(r#","BindOptions":{"CreateMountpoint":true}"#, "")
        .replace("made/here", "made/not");
    let (code, resp) = post(&d, "/containers/create?name=nomk", &body);
    assert_eq!(code, 400, "{resp}");
    // DeviceRequests (`--gpus`): no driver, dockerd's words at the start.
    let o = d.cli(&["run", "--rm", "--gpus", "all", &b, "true"]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("could not select device driver \"\" with capabilities: [[gpu]]"),
        "{e}"
    );
    // size=1: the container's own layer and with its image's.
    d.cli_ok(&[
        "exec",
        "paths",
        "dd",
        "if=/dev/zero",
        "of=/f",
        "bs=1024",
        "count=100",
    ]);
    let (rw, root): (i64, i64) = {
        let s = d.cli_ok(&[
            "inspect",
            "-s",
            "-f",
            "{{.SizeRw}} {{.SizeRootFs}}",
            "paths",
        ]);
        let v: Vec<i64> = s
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        (
            v.first().copied().unwrap_or(0),
            v.get(1).copied().unwrap_or(0),
        )
    };
    assert!((102_400..200_000).contains(&rw), "SizeRw {rw}");
    assert!(
        root > rw + 1_000_000,
        "SizeRootFs {root} holds the image's layers"
    );
    let no_size = d.get("/containers/paths/json");
    assert!(!no_size.contains("SizeRw"), "only with size=1");
    let list = d.get("/containers/json?size=1&filters=%7B%22name%22%3A%5B%22paths%22%5D%7D");
    assert!(list.contains(&format!("\"SizeRw\":{rw}")), "{list}");
    d.cli_ok(&["rm", "-f", "paths", "plain", "mkpoint"]);
}

/// Whether berthd (root here) may lower OOM scores on this host.
fn host_gives_sys_resource() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        .is_some_and(|c| c & (1 << 24) != 0)
}

#[test]
fn a_sandboxs_negative_oom_score_is_explained_or_restricted() {
    let d = daemon();
    let b = busybox(&d);
    let run = |d: &berth_testkit::TestDaemon, adj: &str| {
        d.cli(&[
            "run",
            "--rm",
            "--oom-score-adj",
            adj,
            &b,
            "cat",
            "/proc/self/oom_score_adj",
        ])
    };
    // Positive scores never need a capability.
    assert_eq!(String::from_utf8_lossy(&run(&d, "5").stdout), "5\n");
    let o = run(&d, "-998");
    if host_gives_sys_resource() {
        assert_eq!(String::from_utf8_lossy(&o.stdout), "-998\n");
    } else {
        // Where no runtime can set it (runc under dockerd fails with "can't get
        // final child's PID from pipe"), the start says why and what to do.
        assert!(!o.status.success());
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(
            e.contains(
                "oom_score_adj -998 is below the daemon's own (0), which needs CAP_SYS_RESOURCE"
            ) && e.contains("--restrict-oom-score-adj"),
            "{e}"
        );
    }
    // With the option, such a container gets the daemon's own score; the
    // request stays recorded.
    let r = crate::builder().arg("--restrict-oom-score-adj").start();
    let b = busybox(&r);
    let own = std::fs::read_to_string(format!("/proc/{}/oom_score_adj", r.pid().unwrap_or(0)))
        .unwrap_or_default();
    r.cli_ok(&[
        "create",
        "--name",
        "sandbox",
        "--oom-score-adj",
        "-998",
        &b,
        "cat",
        "/proc/self/oom_score_adj",
    ]);
    let out = r.cli_ok(&["start", "-a", "sandbox"]);
    let want = if host_gives_sys_resource() {
        "-998\n".to_string()
    } else {
        own
    };
    assert_eq!(out, want);
    assert_eq!(
        r.cli_ok(&["inspect", "-f", "{{.HostConfig.OomScoreAdj}}", "sandbox"]),
        "-998\n"
    );
}
