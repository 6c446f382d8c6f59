//! The crate's example, run as a user would run it, against the test registry
//! `cargo xtask test` starts on loopback with the busybox fixture.

#[test]
fn the_pull_example_unpacks_an_image_into_a_directory() {
    let Some(registry) = berth_testkit::registry() else {
        eprintln!("no test registry (BERTH_TEST_REGISTRY): run through cargo xtask test");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let image = format!("{registry}/busybox:latest");
    let out = berth_testkit::run_example("pull", &[&image, dir.path().to_str().unwrap_or("")]);
    let mut lines = out.lines();
    let id = lines.next().unwrap_or("");
    assert!(id.starts_with("sha256:"), "{out}");
    let layers: Vec<&str> = lines.collect();
    assert!(!layers.is_empty(), "{out}");
    let has_busybox = layers
        .iter()
        .any(|l| std::path::Path::new(l).join("bin/busybox").exists());
    assert!(has_busybox, "no layer holds bin/busybox: {out}");
    // Pulled again into the same store, nothing is fetched twice and the ID holds.
    let again = berth_testkit::run_example("pull", &[&image, dir.path().to_str().unwrap_or("")]);
    assert_eq!(again.lines().next(), Some(id));
}
