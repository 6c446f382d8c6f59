//! The crate's example, run as a user would run it.

use std::io::Write;

#[test]
fn the_unpack_example_stores_a_layer_that_reads_back_as_its_tar() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut tar = tar::Builder::new(Vec::new());
    for (path, data) in [
        ("etc/hostname", &b"example\n"[..]),
        ("bin/tool", b"#!/bin/sh\n"),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o755);
        h.set_cksum();
        tar.append_data(&mut h, path, data).expect("append");
    }
    let raw = tar.into_inner().expect("tar");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw).expect("gzip");
    let layer = dir.path().join("layer.tar.gz");
    std::fs::write(&layer, gz.finish().expect("gzip")).expect("write");
    let store = dir.path().join("store");
    let out = berth_testkit::run_example(
        "unpack",
        &[layer.to_str().unwrap_or(""), store.to_str().unwrap_or("")],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with("sha256:") && lines[0] == lines[2],
        "{out}"
    );
    let diff = std::path::Path::new(lines[1]);
    assert_eq!(
        std::fs::read_to_string(diff.join("etc/hostname"))
            .ok()
            .as_deref(),
        Some("example\n")
    );
}
