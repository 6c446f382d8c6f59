//! cri-dockerd's requests, replayed: the calls it makes (through the docker
//! client at API 1.46) for RunPodSandbox, CreateContainer, StartContainer,
//! ListContainers, ContainerStatus, ExecSync, ContainerStats, StopPodSandbox and
//! RemovePodSandbox, with the bodies `core/sandbox_helpers.go` and
//! `core/container_create.go` build, each answer checked for the fields it
//! reads (research/ORCHESTRATORS-AND-OPERATIONS.md §1).

use serde_json::{json, Value};

use crate::images::busybox;

fn rfc3339(t: &Value) -> bool {
    t.as_str().is_some_and(|s| {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok()
    })
}

fn filters(labels: &[&str]) -> String {
    let f = json!({ "label": labels }).to_string();
    form_urlencoded::byte_serialize(f.as_bytes()).collect()
}

#[test]
fn a_pod_through_cri_dockerds_calls() {
    // Kubernetes sandboxes ask for OOM score -998; on hosts without
    // CAP_SYS_RESOURCE that needs the restriction (see pods.rs).
    let d = crate::builder().arg("--restrict-oom-score-adj").start();
    // Requests as the orchestrator's docker client sends them, at API 1.46.
    let call = |m: &str, p: &str, b: Option<&Value>| crate::api(&d, "1.46", m, p, b);
    let json_of = |m: &str, p: &str, b: Option<&Value>| crate::api_json(&d, "1.46", m, p, b);
    let image = busybox(&d);

    // Start-up: the version as semver (≥ 1.42), the info it checks.
    let (code, v) = json_of("GET", "/version", None);
    assert_eq!(code, 200);
    let api = v["ApiVersion"].as_str().unwrap_or("");
    let minor: u32 = api
        .split('.')
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    assert!(api.starts_with("1.") && minor >= 42, "{v}");
    let (_, info) = json_of("GET", "/info", None);
    assert!(
        matches!(info["CgroupDriver"].as_str(), Some("cgroupfs" | "systemd")),
        "{info}"
    );
    assert_eq!(info["LoggingDriver"], "json-file");
    assert_eq!(info["DockerRootDir"].as_str(), d.data_root.to_str());
    let default = info["DefaultRuntime"].as_str().unwrap_or("");
    assert!(info["Runtimes"].get(default).is_some(), "{info}");

    // RunPodSandbox: the image inspected, the sandbox created and started.
    let (code, _) = json_of("GET", &format!("/images/{image}/json"), None);
    assert_eq!(code, 200);
    let sandbox = json!({
        "Hostname": "web-0",
        "Image": image,
        // As pause: PID 1 of the pod, ending on SIGTERM.
        "Cmd": ["sh", "-c", "trap 'exit 0' TERM; sleep 300 & wait"],
        "Labels": {
            "io.kubernetes.docker.type": "podsandbox",
            "io.kubernetes.pod.name": "web-0",
            "io.kubernetes.pod.namespace": "default",
            "io.kubernetes.pod.uid": "uid-1",
            "annotation.kubernetes.io/config.source": "api"
        },
        "HostConfig": {
            "NetworkMode": "none",
            "IpcMode": "shareable",
            "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "18080"}]},
            "OomScoreAdj": -998,
            "CpuShares": 2,
            "MemorySwap": 0,
            "ShmSize": 67108864,
            "SecurityOpt": ["no-new-privileges"],
            "Sysctls": {"net.ipv4.ip_unprivileged_port_start": "0"}
        }
    });
    let (code, created) = json_of(
        "POST",
        "/containers/create?name=k8s_POD_web-0_default_uid-1_0",
        Some(&sandbox),
    );
    assert_eq!(code, 201, "{created}");
    let sid = created["Id"].as_str().unwrap_or("").to_string();
    assert_eq!(
        call("POST", &format!("/containers/{sid}/start"), None).0,
        204
    );
    let (_, s) = json_of("GET", &format!("/containers/{sid}/json"), None);
    let pid = s["State"]["Pid"].as_i64().unwrap_or(0);
    assert!(pid > 0 && s["State"]["Running"] == true, "{s}");
    // CNI runs in /proc/<Pid>/ns/net; Nomad uses SandboxKey.
    assert!(std::path::Path::new(&format!("/proc/{pid}/ns/net")).exists());
    let key = s["NetworkSettings"]["SandboxKey"].as_str().unwrap_or("");
    assert!(!key.is_empty() && std::path::Path::new(key).exists(), "{s}");
    assert!(
        rfc3339(&s["State"]["StartedAt"]) && rfc3339(&s["State"]["FinishedAt"]),
        "{s}"
    );
    assert!(rfc3339(&s["Created"]));
    let runtime = s["HostConfig"]["Runtime"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(!runtime.is_empty());

    // CreateContainer and StartContainer: the app joins the sandbox.
    let host = tempfile::tempdir().expect("tempdir");
    let hostpath = host.path().join("volume");
    let app = json!({
        "Image": image,
        "Cmd": ["sh", "-c", "echo hello from the pod; exec sleep 300"],
        "Labels": {
            "io.kubernetes.docker.type": "container",
            "io.kubernetes.sandbox.id": sid,
            "io.kubernetes.container.name": "app"
        },
        "Healthcheck": {"Test": ["NONE"]},
        "HostConfig": {
            "NetworkMode": format!("container:{sid}"),
            "IpcMode": format!("container:{sid}"),
            "PidMode": format!("container:{sid}"),
            "Runtime": runtime,
            "RestartPolicy": {},
            "SecurityOpt": ["seccomp=unconfined"],
            "Memory": 67108864,
            "MemorySwap": 67108864,
            "Mounts": [{
                "Type": "bind",
                "Source": hostpath,
                "Target": "/data",
                "BindOptions": {"CreateMountpoint": true}
            }]
        }
    });
    let (code, created) = json_of(
        "POST",
        "/containers/create?name=k8s_app_web-0_default_uid-1_0",
        Some(&app),
    );
    assert_eq!(code, 201, "{created}");
    let cid = created["Id"].as_str().unwrap_or("").to_string();
    assert_eq!(
        call("POST", &format!("/containers/{cid}/start"), None).0,
        204
    );

    // ListContainers: by labels, ANDed; Status by its prefix.
    let q = filters(&[
        "io.kubernetes.docker.type=container",
        &format!("io.kubernetes.sandbox.id={sid}"),
    ]);
    let (_, list) = call("GET", &format!("/containers/json?all=1&filters={q}"), None);
    let list: Value = serde_json::from_str(list.trim()).unwrap_or(Value::Null);
    let rows = list.as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), 1, "{list}");
    assert_eq!(rows[0]["Names"][0], "/k8s_app_web-0_default_uid-1_0");
    assert!(
        rows[0]["Status"].as_str().unwrap_or("").starts_with("Up"),
        "{list}"
    );
    let q = filters(&["io.kubernetes.docker.type=podsandbox"]);
    let (_, sandboxes) = call("GET", &format!("/containers/json?filters={q}"), None);
    assert!(sandboxes.contains(&sid), "{sandboxes}");

    // ContainerStatus: what it reads.
    let (_, c) = json_of("GET", &format!("/containers/{cid}/json"), None);
    assert_eq!(c["Config"]["Labels"]["io.kubernetes.container.name"], "app");
    assert_eq!(c["HostConfig"]["PidMode"], format!("container:{sid}"));
    assert_eq!(
        c["ResolvConfPath"], s["ResolvConfPath"],
        "the pod's resolv.conf"
    );
    let mount = &c["Mounts"][0];
    assert_eq!(
        (mount["Destination"].as_str(), mount["RW"].as_bool()),
        (Some("/data"), Some(true))
    );
    assert!(hostpath.is_dir(), "CreateMountpoint made the source");
    // The kubelet parses the json-file log itself.
    let log_path = c["LogPath"].as_str().unwrap_or("").to_string();
    let mut log = String::new();
    // The container writes its line when it gets to it; under load, later.
    for _ in 0..200 {
        log = std::fs::read_to_string(&log_path).unwrap_or_default();
        if log.contains('\n') {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let line: Value = serde_json::from_str(log.lines().next().unwrap_or("")).unwrap_or(Value::Null);
    assert_eq!(line["log"], "hello from the pod\n", "{log}");
    assert_eq!(line["stream"], "stdout");
    assert!(rfc3339(&line["time"]), "{log}");

    // ExecSync: create, start attached, then the exit code once not running.
    let (code, ex) = json_of(
        "POST",
        &format!("/containers/{cid}/exec"),
        Some(
            &json!({"Cmd": ["sh", "-c", "echo probed; exit 3"], "AttachStdout": true, "AttachStderr": true}),
        ),
    );
    assert_eq!(code, 201, "{ex}");
    let eid = ex["Id"].as_str().unwrap_or("").to_string();
    let (code, out) = call(
        "POST",
        &format!("/exec/{eid}/start"),
        Some(&json!({"Detach": false, "Tty": false})),
    );
    assert_eq!(code, 200);
    assert!(out.contains("probed"), "{out}");
    let (_, ei) = json_of("GET", &format!("/exec/{eid}/json"), None);
    assert_eq!(
        (ei["Running"].as_bool(), ei["ExitCode"].as_i64()),
        (Some(false), Some(3)),
        "{ei}"
    );

    // ContainerStats, one shot.
    let (_, st) = json_of(
        "GET",
        &format!("/containers/{cid}/stats?stream=0&one-shot=1"),
        None,
    );
    assert!(
        st["cpu_stats"]["cpu_usage"]["total_usage"]
            .as_u64()
            .is_some(),
        "{st}"
    );
    assert!(
        st["memory_stats"]["usage"].as_u64().is_some_and(|u| u > 0),
        "{st}"
    );

    // StopPodSandbox and RemovePodSandbox.
    for id in [&cid, &sid] {
        assert_eq!(
            call("POST", &format!("/containers/{id}/stop?t=10"), None).0,
            204
        );
    }
    let (_, s) = json_of("GET", &format!("/containers/{sid}/json"), None);
    assert_eq!(s["State"]["Running"], false);
    assert!(rfc3339(&s["State"]["FinishedAt"]));
    for id in [&cid, &sid] {
        assert_eq!(
            call("DELETE", &format!("/containers/{id}?v=1&force=1"), None).0,
            204
        );
    }
    // The words it matches with regexes.
    let (code, gone) = call("GET", &format!("/containers/{sid}/json"), None);
    assert_eq!(code, 404);
    assert!(
        gone.contains(&format!("No such container: {sid}")),
        "{gone}"
    );
    assert!(d.leaked_mounts().is_empty(), "{:?}", d.leaked_mounts());
}

/// cri-dockerd cancels a pull that reports no progress for a minute
/// (`--image-pull-progress-deadline`); at a trickle each layer must still
/// report well within that.
#[test]
fn a_trickling_pull_reports_progress_within_the_kubelets_deadline() {
    use std::io::{BufRead, BufReader, Write};
    use std::time::{Duration, Instant};
    let d = crate::daemon();
    let parent = d.data_root.parent().expect("dir").join("reg");
    let (reg, _) = crate::durability::big_image(&parent);
    // 4 kB/s a connection: 512 KiB (the old cadence) would take two minutes.
    let proxy = berth_testkit::slowproxy::SlowProxy::start(&reg.addr, 4000).expect("proxy");
    let mut s = std::os::unix::net::UnixStream::connect(&d.sock).expect("connect");
    write!(
        s,
        "POST /v1.46/images/create?fromImage={}/big&tag=1 HTTP/1.1\r\nHost: d\r\nContent-Length: 0\r\n\r\n",
        proxy.addr
    )
    .expect("request");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let start = Instant::now();
    // Layer ID -> when each of its progress messages came, for the 10 MB layers.
    let mut seen: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    for line in BufReader::new(s).lines() {
        let Ok(line) = line else { break };
        if start.elapsed() > Duration::from_secs(23) {
            break;
        }
        let Ok(v) = serde_json::from_str::<Value>(line.trim()) else {
            continue;
        };
        if v["status"] == "Downloading" && v["progressDetail"]["total"].as_u64() > Some(5 << 20) {
            let id = v["id"].as_str().unwrap_or("").to_string();
            seen.entry(id)
                .or_default()
                .push(start.elapsed().as_secs_f64());
        }
    }
    // The connection is dropped here: the pull is cancelled with it.
    assert!(!seen.is_empty(), "no progress from the big layers in 23 s");
    for (id, times) in &seen {
        assert!(times.len() >= 2, "{id}: {times:?}");
        let mut prev = 0.0;
        for t in times {
            assert!(t - prev < 12.0, "{id}: a gap over 12 s in {times:?}");
            prev = *t;
        }
    }
}

/// A kubelet's pull secret for an OAuth registry (ACR, Hub through credential
/// helpers) carries an identity token: dockerd trades it for an access token
/// at the registry's token service, and so must Berth.
#[test]
fn identity_tokens_are_traded_for_access_tokens_as_dockerd_does() {
    use berth_testkit::registry::digest;
    use berth_testkit::tokenregistry::{Content, TokenRegistry};
    use std::sync::atomic::Ordering;
    let d = crate::daemon();
    let tar = crate::durability::layer("hello", b"from behind a token service\n", 0o644);
    let gz = crate::durability::gzip(&tar);
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux", "config": {"Cmd": ["/hello"]},
        "rootfs": {"type": "layers", "diff_ids": [digest(&tar)]},
    }))
    .expect("config");
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": digest(&gz), "size": gz.len()}],
    }))
    .expect("manifest");
    let mt = "application/vnd.oci.image.manifest.v1+json".to_string();
    let content = Content {
        repo: "private/app".into(),
        manifests: [
            ("1".to_string(), (mt.clone(), manifest.clone())),
            (digest(&manifest), (mt, manifest.clone())),
        ]
        .into(),
        blobs: [(digest(&config), config), (digest(&gz), gz)].into(),
    };
    let reg = TokenRegistry::start("refresh-from-login", content).expect("token registry");
    let image = format!("{}/private/app:1", reg.addr);
    // The CLI sends what `docker login` stored: an identity token, no password.
    let pull_with = |token: Option<&str>| {
        let dir = tempfile::tempdir().expect("tmp");
        let auths = match token {
            Some(t) => json!({ reg.addr.clone(): {"identitytoken": t} }),
            None => json!({}),
        };
        std::fs::write(
            dir.path().join("config.json"),
            json!({ "auths": auths }).to_string(),
        )
        .expect("config.json");
        d.docker()
            .env("DOCKER_CONFIG", dir.path())
            .args(["pull", &image])
            .output()
            .expect("docker pull")
    };
    let o = pull_with(Some("refresh-from-login"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(reg.grants.load(Ordering::Relaxed) >= 1);
    d.cli_ok(&["image", "inspect", &image]);
    d.cli_ok(&["rmi", &image]);
    for token in [Some("expired-or-wrong"), None] {
        let o = pull_with(token);
        assert!(!o.status.success(), "pulled with {token:?}");
        let err = String::from_utf8_lossy(&o.stderr).to_lowercase();
        assert!(
            err.contains("unauthorized") || err.contains("authentication required"),
            "{err}"
        );
    }
}
