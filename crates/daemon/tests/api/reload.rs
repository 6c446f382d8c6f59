//! SIGHUP reloads the settings dockerd reloads, announces them in a `daemon
//! reload` event, and a file that does not check out changes nothing.
//! `--registry-mirror` serves Hub names from a local mirror.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use berth_testkit::registry::Registry;
use berth_testkit::TestDaemon;
use nix::sys::signal::Signal;

use crate::builder;
use crate::durability::big_image;
use crate::images::busybox;

/// Sends SIGHUP and waits until the daemon logged `what` once more.
fn hup(d: &TestDaemon, what: &str) {
    let before = d.logs().matches(what).count();
    d.signal(Signal::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    while d.logs().matches(what).count() == before {
        assert!(Instant::now() < deadline, "no {what:?}: {}", d.logs());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn reload_events(d: &TestDaemon) -> Vec<BTreeMap<String, String>> {
    let out = d.cli_ok(&[
        "events",
        "--since",
        "0",
        "--until",
        &format!("{}", time::OffsetDateTime::now_utc().unix_timestamp() + 1),
        "--filter",
        "type=daemon",
        "--format",
        "{{json .Actor.Attributes}}",
    ]);
    out.lines()
        .map(|l| serde_json::from_str(l).expect("attributes JSON"))
        .collect()
}

/// A registry holding the test busybox as Hub's `library/busybox`.
fn hub_mirror(d: &TestDaemon) -> Registry {
    let parent = d.data_root.parent().expect("dir").join("mirror");
    let mirror = Registry::start(&parent).expect("mirror registry");
    let bb = busybox(d);
    let as_hub = format!("{}/library/busybox:latest", mirror.addr);
    d.cli_ok(&["tag", &bb, &as_hub]);
    d.cli_ok(&["push", &as_hub]);
    d.cli_ok(&["rmi", &as_hub, &bb]);
    mirror
}

fn pull_output(d: &TestDaemon, image: &str) -> String {
    let out = d.cli_ok(&["pull", image]);
    d.cli_ok(&["rmi", image]);
    out
}

#[test]
fn sighup_reloads_limits_mirrors_labels_and_shm_size() {
    // Anything meant for Hub itself goes to a dead proxy: never off this machine.
    let d = builder()
        .env("HTTPS_PROXY", "http://127.0.0.1:9")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .start();
    let parent = d.data_root.parent().expect("dir").join("reg");
    let (_reg, big) = big_image(&parent);
    let mirror = hub_mirror(&d);

    std::fs::write(&d.config_file, r#"{"max-concurrent-downloads": 5}"#).expect("config");
    hup(&d, "configuration reloaded");
    // Five layers, five downloads at once: none waits.
    let out = pull_output(&d, &big);
    assert!(!out.contains("Waiting"), "{out}");

    let dead = format!("http://127.0.0.1:{}", crate::free_port());
    let config = serde_json::json!({
        "max-concurrent-downloads": 1,
        "labels": ["reloaded=yes"],
        "registry-mirrors": [dead, format!("http://{}", mirror.addr)],
        "default-shm-size": "96M",
        "shutdown-timeout": 20,
    });
    std::fs::write(&d.config_file, config.to_string()).expect("config");
    hup(&d, "configuration reloaded");

    let events = reload_events(&d);
    let last = events.last().expect("reload events");
    assert_eq!(last["max-concurrent-downloads"], "1", "{last:?}");
    assert_eq!(last["labels"], r#"["reloaded=yes"]"#);
    assert_eq!(
        last["registry-mirrors"],
        format!(r#"["{dead}","http://{}"]"#, mirror.addr)
    );
    assert_eq!(last["default-shm-size"], (96u64 << 20).to_string());
    assert_eq!(last["shutdown-timeout"], "20");
    assert!(!last["name"].is_empty());

    let info: serde_json::Value =
        serde_json::from_str(&d.cli_ok(&["info", "--format", "{{json .}}"])).expect("info");
    assert_eq!(info["Labels"], serde_json::json!(["reloaded=yes"]));
    assert_eq!(
        info["RegistryConfig"]["Mirrors"],
        serde_json::json!([format!("{dead}/"), format!("http://{}/", mirror.addr)])
    );
    let text = d.cli_ok(&["info"]);
    assert!(text.contains("Registry Mirrors:"), "{text}");

    // One download at a time now: the other layers wait their turn.
    let out = pull_output(&d, &big);
    assert!(out.contains("Waiting"), "{out}");

    // A Hub name comes from the mirror, past the dead one.
    d.cli_ok(&["pull", "busybox"]);
    assert!(d.logs().contains("mirror failed; trying the next endpoint"));
    assert!(d.logs().contains("pulling through mirror"));
    let listed = d.cli_ok(&["images", "busybox", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert_eq!(listed.trim(), "busybox:latest");
    // New containers get the new /dev/shm size; it is recorded, as dockerd does.
    let df = d.cli_ok(&["run", "--rm", "busybox", "df", "-k", "/dev/shm"]);
    assert!(df.contains("98304"), "{df}");
    d.cli_ok(&["create", "--name", "shm", "busybox"]);
    let size = d.cli_ok(&["inspect", "-f", "{{.HostConfig.ShmSize}}", "shm"]);
    assert_eq!(size.trim(), (96u64 << 20).to_string());

    // A bad file: said why, nothing changed, no event.
    std::fs::write(&d.config_file, r#"{"max-concurrent-downloads": "x"}"#).expect("config");
    hup(&d, "configuration reload failed");
    assert!(
        d.logs()
            .contains("unable to configure the Berth daemon with file"),
        "{}",
        d.logs()
    );
    let info: serde_json::Value =
        serde_json::from_str(&d.cli_ok(&["info", "--format", "{{json .}}"])).expect("info");
    assert_eq!(info["Labels"], serde_json::json!(["reloaded=yes"]));
    assert_eq!(reload_events(&d).len(), events.len());
    let out = pull_output(&d, &big);
    assert!(
        out.contains("Waiting"),
        "limits changed by a bad file: {out}"
    );
    d.cli_ok(&["rm", "shm"]);
}

#[test]
fn a_registry_mirror_flag_serves_hub_names_and_bad_mirrors_are_refused() {
    let seed = crate::daemon();
    let mirror = hub_mirror(&seed);
    let d = builder()
        .env("HTTPS_PROXY", "http://127.0.0.1:9")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .arg("--registry-mirror")
        .arg(format!("http://{}", mirror.addr))
        .start();
    d.cli_ok(&["pull", "-q", "busybox:latest"]);
    assert!(d.logs().contains("pulling through mirror"));
    d.cli_ok(&["run", "--rm", "busybox", "true"]);
    // Names of other registries never go to the mirror.
    let o = d.cli(&["pull", &format!("127.0.0.1:{}/busybox", crate::free_port())]);
    assert!(!o.status.success());
    let e = crate::berthd_refuses(&["--registry-mirror", "http://m.example/v2/"]);
    assert!(
        e.contains("invalid mirror: path, query, or fragment at end of the URI"),
        "{e}"
    );
}
