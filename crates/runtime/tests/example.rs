//! The crate's example, run as a user would run it (as root): a busybox
//! container run through `berth-shim` without the daemon.

#[test]
fn the_run_bundle_example_runs_a_command_and_records_its_exit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rootfs = dir.path().join("rootfs");
    for d in ["bin", "proc", "dev", "sys", "tmp", "etc"] {
        std::fs::create_dir_all(rootfs.join(d)).expect("mkdir");
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("busybox-static");
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).expect("symlink");
    let run = dir.path().join("run");
    let out = berth_testkit::run_example(
        "run_bundle",
        &[
            env!("CARGO_BIN_EXE_berth-shim"),
            rootfs.to_str().unwrap_or(""),
            run.to_str().unwrap_or(""),
            "sh",
            "-c",
            "echo hello from the example; exit 3",
        ],
    );
    assert!(out.starts_with("Started { pid: "), "{out}");
    assert!(out.contains("exit code 3"), "{out}");
    assert!(
        out.contains("hello from the example"),
        "the log lacks the output: {out}"
    );
    assert!(
        !std::path::Path::new("/sys/fs/cgroup/pids/berth-example").exists(),
        "the example's cgroup outlived it"
    );
}
