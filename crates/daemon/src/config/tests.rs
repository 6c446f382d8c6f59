use super::*;

fn load(args: &[&str]) -> Result<Config, ConfigError> {
    let mut argv = vec!["berthd"];
    argv.extend_from_slice(args);
    let m = Flags::command()
        .try_get_matches_from(argv)
        .expect("flags parse");
    let f = Flags::from_arg_matches(&m).expect("flags");
    Config::merge(f, &m)
}

#[test]
fn defaults_are_berths() {
    let d = tempfile::tempdir().expect("tmp");
    let missing = d.path().join("none.json");
    let m = Flags::command()
        .try_get_matches_from(["berthd", "--config-file", missing.to_str().expect("utf8")])
        .expect("parse");
    // An explicitly named file that does not exist is an error, as in dockerd.
    assert!(Config::merge(Flags::from_arg_matches(&m).expect("flags"), &m).is_err());
    let c = load(&[]).expect("defaults");
    assert_eq!(c.hosts, vec![DEFAULT_HOST]);
    assert_eq!(c.data_root, PathBuf::from("/var/lib/berth"));
    assert_eq!(c.exec_root, PathBuf::from("/run/berth"));
    assert!(c.live_restore);
}

#[test]
fn file_settings_apply_and_conflicts_are_refused() {
    let d = tempfile::tempdir().expect("tmp");
    let f = d.path().join("daemon.json");
    std::fs::write(
        &f,
        r#"{"data-root":"/tmp/x","labels":["a=b"],"hosts":["unix:///tmp/s.sock"]}"#,
    )
    .expect("write");
    let fs = f.to_str().expect("utf8");
    let c = load(&["--config-file", fs]).expect("file applies");
    assert_eq!(c.data_root, PathBuf::from("/tmp/x"));
    assert_eq!(c.labels, vec!["a=b"]);
    assert_eq!(c.hosts, vec!["unix:///tmp/s.sock"]);
    let e = load(&["--config-file", fs, "--data-root", "/tmp/y"]).expect_err("conflict");
    assert!(
        e.to_string()
            .contains("specified both as a flag and in the configuration file: data-root"),
        "{e}"
    );
    let e = load(&["--config-file", fs, "-H", "unix:///a"]).expect_err("conflict");
    assert!(e.to_string().contains("hosts"), "{e}");
}

#[test]
fn unknown_keys_and_bad_values_are_refused() {
    let d = tempfile::tempdir().expect("tmp");
    let f = d.path().join("daemon.json");
    std::fs::write(&f, r#"{"bogus-key":1}"#).expect("write");
    let e = load(&["--config-file", f.to_str().expect("utf8")]).expect_err("unknown");
    assert!(
        e.to_string()
            .contains("don't match any configuration option: bogus-key"),
        "{e}"
    );
    std::fs::write(&f, "{not json").expect("write");
    assert!(load(&["--config-file", f.to_str().expect("utf8")]).is_err());
    assert!(load(&["--log-level", "loud"]).is_err());
    assert!(load(&["--data-root", "relative/dir"]).is_err());
    assert!(load(&["--label", "novalue"]).is_err());
}

#[test]
fn every_key_of_the_file_is_known_and_reload_keys_parse() {
    let d = tempfile::tempdir().expect("tmp");
    let f = d.path().join("daemon.json");
    // Keys that once were missing from a hand-kept list: each must be accepted.
    std::fs::write(
        &f,
        r#"{"tls": false, "tlsverify": false, "exec-opts": ["native.cgroupdriver=cgroupfs"],
            "cgroup-parent": "/berth-test", "default-cgroupns-mode": "host",
            "metrics-addr": "127.0.0.1:9323", "registry-mirrors": ["http://127.0.0.1:5000"],
            "max-download-attempts": 2, "default-shm-size": "128M", "shutdown-timeout": 30,
            "bogus": 1, "max-concurrent-downloads": "x"}"#,
    )
    .expect("write");
    let fs = f.to_str().expect("utf8");
    let e = load(&["--config-file", fs]).expect_err("unknown");
    // The unknown key is named even beside a value of the wrong type.
    assert!(
        e.to_string()
            .ends_with("don't match any configuration option: bogus"),
        "{e}"
    );
    let text = std::fs::read_to_string(&f).expect("read");
    let text = text.replace(
        r#""bogus": 1, "max-concurrent-downloads": "x""#,
        r#""max-concurrent-downloads": 1"#,
    );
    std::fs::write(&f, text).expect("write");
    let c = load(&["--config-file", fs]).expect("every key known");
    assert_eq!(c.registry_mirrors, vec!["http://127.0.0.1:5000"]);
    assert_eq!(c.max_download_attempts, 2);
    assert_eq!(c.default_shm_size, 128 << 20);
    assert_eq!(c.shutdown_timeout, 30);
    assert_eq!(c.max_concurrent_downloads, 1);
    let e = load(&["--config-file", fs, "--shutdown-timeout", "5"]).expect_err("conflict");
    assert!(e.to_string().contains("shutdown-timeout"), "{e}");

    let d = load(&[]).expect("defaults");
    assert_eq!(d.default_shm_size, 64 << 20);
    assert_eq!(d.shutdown_timeout, 15);
    assert_eq!(d.max_download_attempts, 5);
    assert!(load(&["--registry-mirror", "ftp://m"])
        .expect_err("scheme")
        .to_string()
        .contains("unsupported scheme"));
    assert!(load(&["--max-download-attempts", "0"]).is_err());
    assert!(load(&["--default-shm-size", "lots"]).is_err());
    assert_eq!(
        load(&["--default-shm-size", "1.5g"])
            .expect("size")
            .default_shm_size,
        3 << 29
    );
}

#[test]
fn ram_sizes_read_as_dockerd_reads_them() {
    use super::file::ram_in_bytes;
    assert_eq!(ram_in_bytes("64m"), Some(64 << 20));
    assert_eq!(ram_in_bytes("64MB"), Some(64 << 20));
    assert_eq!(ram_in_bytes("512k"), Some(512 << 10));
    assert_eq!(ram_in_bytes("100"), Some(100));
    assert_eq!(ram_in_bytes("-1m"), None);
    assert_eq!(ram_in_bytes("m"), None);
}
