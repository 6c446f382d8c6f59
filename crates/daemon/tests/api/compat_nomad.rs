//! Nomad's docker driver, replayed: fingerprint, group networking through a
//! pause container in `none` mode, a task's create (and its 409 retry),
//! `containerByName`, start, stats, logs, kill, wait and destroy, each answer
//! checked for what the driver reads (research/ORCHESTRATORS-AND-OPERATIONS.md §2).

use serde_json::{json, Value};

use crate::daemon;
use crate::images::busybox;

#[test]
fn an_allocation_through_nomads_calls() {
    let d = daemon();
    // Requests as the orchestrator's docker client sends them, at API 1.44.
    let call = |m: &str, p: &str, b: Option<&Value>| crate::api(&d, "1.44", m, p, b);
    let json_of = |m: &str, p: &str, b: Option<&Value>| crate::api_json(&d, "1.44", m, p, b);
    let image = busybox(&d);
    let alloc = "5f1c2a9e-0b7d-4c1e-9d2a-7f3b8e6a1c44";

    // Fingerprint.
    let (_, v) = json_of("GET", "/version", None);
    assert!(v["Version"].as_str().is_some_and(|s| !s.is_empty()));
    let (_, info) = json_of("GET", "/info", None);
    assert_eq!(info["OSType"], "linux");
    assert!(info["Runtimes"].as_object().is_some_and(|r| !r.is_empty()));
    let (_, nets) = json_of("GET", "/networks", None);
    let bridge = nets
        .as_array()
        .and_then(|n| n.iter().find(|n| n["Name"] == "bridge"))
        .cloned()
        .unwrap_or(Value::Null);
    assert!(
        bridge["IPAM"]["Config"][0]["Gateway"].as_str().is_some(),
        "{nets}"
    );

    // Group networking: the pause container; Nomad runs CNI on its SandboxKey.
    let pause = json!({
        "Image": image,
        "Cmd": ["sh", "-c", "trap 'exit 0' TERM; sleep 300 & wait"],
        "Labels": {"com.hashicorp.nomad.alloc_id": alloc},
        "HostConfig": {"NetworkMode": "none", "RestartPolicy": {"Name": "unless-stopped"}}
    });
    let (code, p) = json_of(
        "POST",
        &format!("/containers/create?name=nomad_init_{alloc}"),
        Some(&pause),
    );
    assert_eq!(code, 201, "{p}");
    let pid = p["Id"].as_str().unwrap_or("").to_string();
    assert_eq!(
        call("POST", &format!("/containers/{pid}/start"), None).0,
        204
    );
    let (_, pi) = json_of("GET", &format!("/containers/{pid}/json"), None);
    let key = pi["NetworkSettings"]["SandboxKey"].as_str().unwrap_or("");
    assert!(
        !key.is_empty() && std::path::Path::new(key).exists(),
        "{pi}"
    );

    // The task: created, created again (409: Nomad purges and retries), found
    // by name in the full list.
    let name = format!("web-{alloc}");
    let alloc_dir = tempfile::tempdir().expect("tempdir");
    let task = json!({
        "Image": image,
        // PID 1 of its own namespace: it ends on SIGTERM because it handles it.
        "Cmd": ["sh", "-c", "echo task started; echo oops >&2; trap 'exit 143' TERM; sleep 300 & wait"],
        "Labels": {"com.hashicorp.nomad.alloc_id": alloc, "com.hashicorp.nomad.task_name": "web"},
        "Healthcheck": {"Test": ["NONE"]},
        "HostConfig": {
            "NetworkMode": format!("container:{pid}"),
            "Binds": [format!("{}:/alloc", alloc_dir.path().display())],
            "Mounts": [{"Type": "tmpfs", "Target": "/secrets", "TmpfsOptions": {"SizeBytes": 1048576, "Mode": 448}}],
            "LogConfig": {"Type": "json-file", "Config": {"max-file": "2", "max-size": "2m"}},
            "Memory": 268435456,
            "MemoryReservation": 134217728,
            "CpuShares": 100,
            "PidsLimit": 100,
            "Init": false
        }
    });
    let (code, t) = json_of(
        "POST",
        &format!("/containers/create?name={name}"),
        Some(&task),
    );
    assert_eq!(code, 201, "{t}");
    let tid = t["Id"].as_str().unwrap_or("").to_string();
    let (code, again) = call(
        "POST",
        &format!("/containers/create?name={name}"),
        Some(&task),
    );
    assert_eq!(code, 409);
    assert!(
        again.contains(&format!(
            "The container name \\\"/{name}\\\" is already in use"
        )),
        "{again}"
    );
    let (_, all) = json_of("GET", "/containers/json?all=1", None);
    let found = all
        .as_array()
        .and_then(|a| {
            a.iter().find(|c| {
                c["Names"]
                    .as_array()
                    .is_some_and(|n| n.iter().any(|x| *x == format!("/{name}")))
            })
        })
        .map(|c| c["Id"].clone());
    assert_eq!(found, Some(json!(tid)));

    // Start (again: not an error for Nomad), inspect.
    assert_eq!(
        call("POST", &format!("/containers/{tid}/start"), None).0,
        204
    );
    assert!(matches!(
        call("POST", &format!("/containers/{tid}/start"), None).0,
        304 | 409
    ));
    let (_, ti) = json_of("GET", &format!("/containers/{tid}/json"), None);
    assert_eq!(ti["State"]["Status"], "running");
    assert_eq!(
        (
            ti["State"]["OOMKilled"].as_bool(),
            ti["State"]["Dead"].as_bool()
        ),
        (Some(false), Some(false))
    );
    assert_eq!(ti["HostConfig"]["LogConfig"]["Config"]["max-size"], "2m");
    let mounts = d.cli_ok(&["exec", &tid, "sh", "-c", "grep ' /secrets ' /proc/mounts"]);
    assert!(
        mounts.contains("tmpfs") && mounts.contains("size=1024k") && mounts.contains("mode=700"),
        "{mounts}"
    );

    // Stats, once, with the previous sample filled.
    let (_, st) = json_of("GET", &format!("/containers/{tid}/stats?stream=0"), None);
    for path in [
        "/cpu_stats/cpu_usage/total_usage",
        "/cpu_stats/cpu_usage/usage_in_kernelmode",
        "/cpu_stats/cpu_usage/usage_in_usermode",
        "/cpu_stats/system_cpu_usage",
        "/cpu_stats/throttling_data/throttled_periods",
        "/cpu_stats/throttling_data/throttled_time",
        "/precpu_stats/cpu_usage/total_usage",
        "/memory_stats/usage",
        "/memory_stats/max_usage",
    ] {
        assert!(
            st.pointer(path).and_then(Value::as_u64).is_some(),
            "{path}: {st}"
        );
    }
    assert_eq!(
        st["memory_stats"]["limit"].as_u64(),
        Some(268_435_456),
        "{st}"
    );

    // Logs, both streams, multiplexed (written when the task gets to them).
    let mut logs = String::new();
    for _ in 0..200 {
        let (code, l) = call(
            "GET",
            &format!("/containers/{tid}/logs?stdout=1&stderr=1&since=0"),
            None,
        );
        assert_eq!(code, 200);
        logs = l;
        if logs.contains("task started") && logs.contains("oops") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        logs.contains("task started") && logs.contains("oops"),
        "{logs:?}"
    );

    // Kill, wait, destroy; a second destroy is Nomad's recoverable 404.
    assert_eq!(
        call(
            "POST",
            &format!("/containers/{tid}/kill?signal=SIGTERM"),
            None
        )
        .0,
        204
    );
    let (code, w) = json_of(
        "POST",
        &format!("/containers/{tid}/wait?condition=not-running"),
        None,
    );
    assert_eq!(code, 200);
    assert_eq!(w["StatusCode"], 143, "{w}");
    for id in [&tid, &pid] {
        assert_eq!(
            call("DELETE", &format!("/containers/{id}?force=1"), None).0,
            204
        );
    }
    let (code, gone) = call("DELETE", &format!("/containers/{tid}?force=1"), None);
    assert_eq!(code, 404);
    assert!(gone.contains("No such container"), "{gone}");
    assert!(d.leaked_mounts().is_empty(), "{:?}", d.leaked_mounts());
}
