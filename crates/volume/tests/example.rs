//! The crate's example, run as a user would run it (as root: it mounts a tmpfs).

#[test]
fn the_tmpfs_volume_example_mounts_writes_and_cleans_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().to_str().unwrap_or("");
    let out = berth_testkit::run_example("tmpfs_volume", &[root]);
    let mut lines = out.lines();
    let first = lines.next().unwrap_or("");
    assert!(first.ends_with(" tmpfs"), "the volume was no tmpfs: {out}");
    assert_eq!(lines.next(), Some("from a tmpfs volume"), "{out}");
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    assert!(
        !mounts.contains(root),
        "a mount outlived the example:\n{mounts}"
    );
}
