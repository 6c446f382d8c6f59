use std::process::Command;

use crate::daemon;

#[test]
fn cli_version_info_and_df() {
    let d = daemon();
    let v = d.cli_ok(&[
        "version",
        "--format",
        "{{.Server.APIVersion}} {{.Server.MinAPIVersion}} {{.Server.Os}}",
    ]);
    assert_eq!(v.trim(), "1.50 1.24 linux");
    let info: serde_json::Value =
        serde_json::from_str(&d.cli_ok(&["info", "--format", "{{json .}}"])).expect("info json");
    assert_eq!(info["Driver"], "overlay2");
    assert_eq!(info["DockerRootDir"], d.data_root.to_str().expect("utf8"));
    assert_eq!(info["Containers"], 0);
    assert_eq!(info["Images"], 0);
    assert_eq!(info["OSType"], "linux");
    assert_eq!(
        info["NCPU"],
        std::thread::available_parallelism().expect("cpus").get() as u64
    );
    assert!(info["MemTotal"].as_u64().expect("MemTotal") > 0);
    let uname = Command::new("uname").arg("-r").output().expect("uname");
    assert_eq!(
        info["KernelVersion"],
        String::from_utf8_lossy(&uname.stdout).trim()
    );
    assert!(matches!(info["CgroupVersion"].as_str(), Some("1" | "2")));
    assert_eq!(info["Swarm"]["LocalNodeState"], "inactive");
    let id = info["ID"].as_str().expect("ID").to_string();
    assert_eq!(id.len(), 36, "{id}");
    let df = d.cli_ok(&["system", "df"]);
    for row in ["Images", "Containers", "Local Volumes", "Build Cache"] {
        assert!(df.contains(row), "{df}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bollard_ping_version_info_df() {
    let d = daemon();
    let c = d.bollard().await;
    assert_eq!(c.ping().await.expect("ping"), "OK");
    let v = c.version().await.expect("version");
    assert_eq!(v.api_version.as_deref(), Some("1.50"));
    assert_eq!(v.min_api_version.as_deref(), Some("1.24"));
    let info = c.info().await.expect("info");
    assert_eq!(info.driver.as_deref(), Some("overlay2"));
    assert_eq!(info.containers, Some(0));
    // bollard 0.21 models the 1.52 df shape; at 1.50 the call must still decode.
    c.df(None::<bollard::query_parameters::DataUsageOptions>)
        .await
        .expect("df");
    let raw = d.get("/v1.50/system/df");
    let v = crate::body_json(&raw);
    assert_eq!(v["LayersSize"], 0, "{raw}");
    assert_eq!(v["Images"], serde_json::json!([]));
    assert_eq!(v["Volumes"], serde_json::json!([]));
}

#[test]
fn curl_ping_with_docker_headers() {
    let d = daemon();
    let sock = d.sock.to_str().expect("utf8");
    let out = Command::new("curl")
        .args(["-sS", "-i", "--unix-socket", sock, "http://d/_ping"])
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 200"), "{text}");
    for h in [
        "api-version: 1.50",
        "ostype: linux",
        "docker-experimental: false",
        "builder-version:",
        "cache-control: no-cache, no-store, must-revalidate",
    ] {
        assert!(text.contains(h), "missing {h}: {text}");
    }
    assert!(text.ends_with("ok"), "{text}");
    let out = Command::new("curl")
        .args(["-sS", "-I", "--unix-socket", sock, "http://d/v1.44/_ping"])
        .output()
        .expect("curl -I");
    let text = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(
        text.starts_with("http/1.1 200") && text.contains("api-version: 1.50"),
        "{text}"
    );
}

#[test]
fn daemon_id_survives_restart() {
    let mut d = daemon();
    let id1 = d.cli_ok(&["info", "--format", "{{.ID}}"]);
    d.restart();
    let id2 = d.cli_ok(&["info", "--format", "{{.ID}}"]);
    assert_eq!(id1, id2);
}

#[test]
fn tcp_listener_on_loopback() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        l.local_addr().expect("addr").port()
    };
    let d = crate::builder()
        .arg("-H")
        .arg(format!("tcp://127.0.0.1:{port}"))
        .start();
    let out = Command::new(berth_testkit::docker_cli())
        .env("DOCKER_HOST", format!("tcp://127.0.0.1:{port}"))
        .env("DOCKER_CONFIG", d.data_root.join("..").join("cli-tcp"))
        .args(["version", "--format", "{{.Server.APIVersion}}"])
        .output()
        .expect("docker over tcp");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "1.50",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
