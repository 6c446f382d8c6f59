//! The crate's example, run as a user would run it (as root: it makes a bridge,
//! a namespace and a veth, all removed again).

#[test]
fn the_bridge_netns_example_connects_a_namespace_to_a_bridge() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bridge = format!("bex{:x}", std::process::id() & 0xffff);
    let n = std::process::id() % 250;
    let cidr = format!("10.253.{n}.1/24");
    let out = berth_testkit::run_example(
        "bridge_netns",
        &[&bridge, &cidr, dir.path().to_str().unwrap_or("")],
    );
    assert!(
        out.starts_with(&format!("10.253.{n}.2:")) && out.contains("hello from the host"),
        "{out}"
    );
    let links = std::process::Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    assert!(
        !links.contains(&bridge),
        "the bridge outlived the example:\n{links}"
    );
}
