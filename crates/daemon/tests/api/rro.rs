//! Recursively read-only binds (API 1.44) and the runtimes' features in
//! `/info`, as cri-dockerd reads them to tell the kubelet about
//! `RecursiveReadOnlyMounts`.

use std::path::Path;

use serde_json::{json, Value};

use crate::images::busybox;

/// A directory with a tmpfs mounted inside it, unmounted on drop.
struct Nested {
    dir: tempfile::TempDir,
}

impl Nested {
    fn new() -> Nested {
        let dir = tempfile::Builder::new()
            .prefix("berth-rro-")
            .tempdir()
            .expect("tmp");
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).expect("sub");
        nix::mount::mount(
            Some("tmpfs"),
            &sub,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some("size=1m"),
        )
        .expect("tmpfs");
        Nested { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Nested {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(
            &self.dir.path().join("sub"),
            nix::mount::MntFlags::MNT_DETACH,
        );
    }
}

/// Whether writing into the submount works from a container with `args`.
fn sub_writable(d: &berth_testkit::TestDaemon, env: &[(&str, &str)], args: &[&str]) -> bool {
    let bb = busybox(d);
    let mut c = d.docker();
    c.envs(env.iter().copied()).args(["run", "--rm"]).args(args);
    c.args([bb.as_str(), "touch", "/d/sub/x"]);
    let o = c.output().expect("docker run");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() || err.contains("Read-only file system"),
        "{err}"
    );
    o.status.success()
}

#[test]
fn read_only_binds_are_recursive_from_api_1_44_unless_asked_otherwise() {
    let d = crate::daemon();
    let n = Nested::new();
    let src = n.path().display().to_string();
    let mount = |extra: &str| format!("type=bind,src={src},dst=/d,readonly{extra}");
    // The CLI's own API version (1.50): recursive by default, for -v too.
    assert!(!sub_writable(&d, &[], &["--mount", &mount("")]));
    assert!(!sub_writable(&d, &[], &["-v", &format!("{src}:/d:ro")]));
    assert!(!sub_writable(
        &d,
        &[],
        &[
            "--mount",
            &mount(",bind-recursive=readonly,bind-propagation=rprivate")
        ]
    ));
    // ReadOnlyNonRecursive: the top is read-only, the submount is not.
    assert!(sub_writable(
        &d,
        &[],
        &["--mount", &mount(",bind-recursive=writable")]
    ));
    // Clients before 1.44 keep the old, non-recursive read-only binds.
    assert!(sub_writable(
        &d,
        &[("DOCKER_API_VERSION", "1.43")],
        &["-v", &format!("{src}:/d:ro")]
    ));
    let top = d.cli(&[
        "run",
        "--rm",
        "-v",
        &format!("{src}:/d:ro"),
        &busybox(&d),
        "touch",
        "/d/y",
    ]);
    assert!(
        !top.status.success(),
        "the top of a read-only bind is writable"
    );
    std::fs::remove_file(n.path().join("sub/x")).expect("written by the writable runs");
}

#[test]
fn recursive_read_only_options_are_checked_as_dockerd_checks_them() {
    let d = crate::daemon();
    let bb = busybox(&d);
    let n = Nested::new();
    let create = |bind: Value, read_only: bool| {
        crate::api(
            &d,
            "1.44",
            "POST",
            "/containers/create",
            Some(&json!({
                "Image": bb,
                "HostConfig": {"Mounts": [{
                    "Type": "bind", "Source": n.path(), "Target": "/d",
                    "ReadOnly": read_only, "BindOptions": bind
                }]}
            })),
        )
    };
    let (s, b) = create(json!({"ReadOnlyForceRecursive": true}), false);
    assert_eq!(s, 400, "{b}");
    assert!(
        b.contains("option ReadOnlyForceRecursive requires ReadOnly"),
        "{b}"
    );
    let (s, b) = create(json!({"ReadOnlyNonRecursive": true}), false);
    assert_eq!(s, 400, "{b}");
    assert!(
        b.contains("option ReadOnlyNonRecursive requires ReadOnly"),
        "{b}"
    );
    let (s, b) = create(
        json!({"ReadOnlyNonRecursive": true, "ReadOnlyForceRecursive": true}),
        true,
    );
    assert_eq!(s, 400, "{b}");
    assert!(b.contains("mutually exclusive"), "{b}");
    let (s, b) = create(json!({"ReadOnlyForceRecursive": true}), true);
    assert_eq!(s, 201, "{b}");
    let id: Value = serde_json::from_str(&b).expect("id");
    d.cli_ok(&["rm", id["Id"].as_str().expect("id")]);
}

#[test]
fn info_lists_each_runtimes_oci_features() {
    let d = crate::daemon();
    let info: Value =
        serde_json::from_str(&d.cli_ok(&["info", "--format", "{{json .}}"])).expect("info");
    let features = |name: &str| -> Value {
        let s = info["Runtimes"][name]["status"]["org.opencontainers.runtime-spec.features"]
            .as_str()
            .unwrap_or_else(|| panic!("no features for {name}: {}", info["Runtimes"]));
        serde_json::from_str(s).expect("features JSON")
    };
    let builtin = features("runc");
    assert_eq!(builtin["ociVersionMin"], "1.0.0");
    assert!(builtin["mountOptions"]
        .as_array()
        .is_some_and(|o| o.iter().any(|o| o == "rro")));
    assert_eq!(builtin["linux"]["cgroup"]["v2"], true);
    if info["Runtimes"].get("runc-binary").is_some() {
        // What Debian's runc says of itself.
        assert!(features("runc-binary")["hooks"].is_array());
    }
}
