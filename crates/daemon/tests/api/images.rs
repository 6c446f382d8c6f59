//! Images through the docker CLI and bollard, against the test registry that
//! `cargo xtask test` runs (and private registries for the failure cases).

use std::io::Write;
use std::process::Stdio;

use berth_testkit::registry::{digest, push_blob, put_manifest, Registry};
use berth_testkit::TestDaemon;
use futures_util::StreamExt;

use crate::daemon;

/// The fixture registry; tests that use it run through `cargo xtask test`.
pub fn reg() -> String {
    berth_testkit::registry()
        .expect("BERTH_TEST_REGISTRY is not set: run the tests with `cargo xtask test`")
}

pub fn busybox(d: &TestDaemon) -> String {
    let r = format!("{}/busybox:latest", reg());
    d.cli_ok(&["pull", "-q", &r]);
    r
}

fn unique(prefix: &str) -> String {
    let mut b = [0u8; 4];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .expect("random");
    format!("{prefix}-{}", hex::encode(b))
}

fn inspect(d: &TestDaemon, name: &str) -> serde_json::Value {
    let v: serde_json::Value =
        serde_json::from_str(&d.cli_ok(&["image", "inspect", name])).expect("inspect json");
    v[0].clone()
}

fn stderr_of(d: &TestDaemon, args: &[&str]) -> String {
    let o = d.cli(args);
    assert!(
        !o.status.success(),
        "docker {args:?} should fail: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn pull_list_inspect_history() {
    let d = daemon();
    let r = format!("{}/busybox:latest", reg());
    let out = d.cli_ok(&["pull", &r]);
    assert!(out.contains("Pull complete"), "{out}");
    assert!(out.contains("Digest: sha256:"), "{out}");
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {r}")),
        "{out}"
    );
    let again = d.cli_ok(&["pull", &r]);
    assert!(
        again.contains(&format!("Status: Image is up to date for {r}")),
        "{again}"
    );
    let img = inspect(&d, &r);
    assert_eq!(img["RepoTags"], serde_json::json!([r]));
    let rd = img["RepoDigests"][0]
        .as_str()
        .expect("RepoDigests")
        .to_string();
    assert!(
        rd.starts_with(&format!("{}/busybox@sha256:", reg())),
        "{rd}"
    );
    assert_eq!(img["Config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(img["Os"], "linux");
    assert_eq!(img["RootFS"]["Layers"].as_array().map(Vec::len), Some(1));
    assert!(img["Size"].as_u64().unwrap_or(0) > 1_000_000);
    // By digest: the same image, and `docker images --digests` shows the digest.
    let by_digest = d.cli_ok(&["pull", &rd]);
    assert!(by_digest.contains("Digest:"), "{by_digest}");
    let list = d.cli_ok(&[
        "images",
        "--digests",
        "--format",
        "{{.Repository}} {{.Tag}} {{.Digest}}",
    ]);
    assert!(
        list.contains(&format!(
            "{}/busybox latest {}",
            reg(),
            rd.split('@').nth(1).unwrap_or("")
        )),
        "{list}"
    );
    let filtered = d.cli_ok(&[
        "images",
        "--filter",
        &format!("reference={}/busy*", reg()),
        "-q",
    ]);
    assert_eq!(filtered.lines().count(), 1, "{filtered}");
    assert_eq!(
        d.cli_ok(&["images", "--filter", "reference=nothing*", "-q"])
            .trim(),
        ""
    );
    assert_eq!(
        d.cli_ok(&["images", "--filter", "dangling=true", "-q"])
            .trim(),
        ""
    );
    let h = d.cli_ok(&["history", "--format", "{{.CreatedBy}}|{{.Size}}", &r]);
    assert!(h.contains("busybox-static"), "{h}");
    // /info and /system/df count it.
    assert_eq!(d.cli_ok(&["info", "--format", "{{.Images}}"]).trim(), "1");
    let df = d.cli_ok(&["system", "df", "--format", "{{.Type}} {{.TotalCount}}"]);
    assert!(df.contains("Images 1"), "{df}");
}

#[test]
fn tag_and_rmi_follow_dockers_rules() {
    let d = daemon();
    let r = busybox(&d);
    let id = inspect(&d, &r)["Id"].as_str().expect("id").to_string();
    d.cli_ok(&["tag", &r, "mine/box:1"]);
    d.cli_ok(&["tag", &r, "other:2"]);
    assert_eq!(inspect(&d, "mine/box:1")["Id"], id.as_str());
    let e = stderr_of(&d, &["rmi", &id[7..19]]);
    assert!(
        e.contains("unable to delete")
            && e.contains("must be forced")
            && e.contains("referenced in multiple repositories"),
        "{e}"
    );
    let out = d.cli_ok(&["rmi", "other:2"]);
    assert_eq!(out.trim(), "Untagged: other:2");
    // The repository's last tag takes its digest references with it (dockerd 20.10
    // does the same), while another repository keeps the image.
    let out = d.cli_ok(&["rmi", &r]);
    assert!(out.contains(&format!("Untagged: {r}")), "{out}");
    assert!(
        out.contains(&format!("Untagged: {}/busybox@sha256:", reg())),
        "{out}"
    );
    assert!(!out.contains("Deleted"), "{out}");
    assert_eq!(
        inspect(&d, "mine/box:1")["RepoDigests"],
        serde_json::json!([])
    );
    let e = stderr_of(&d, &["rmi", "nope"]);
    assert!(e.contains("No such image: nope"), "{e}");
    let e = stderr_of(&d, &["tag", &r, "Bad:Name"]);
    assert!(e.to_lowercase().contains("invalid reference format"), "{e}");
    d.cli_ok(&["tag", "mine/box:1", "again:3"]);
    let out = d.cli_ok(&["rmi", "-f", &id]);
    assert!(
        out.contains("Untagged: mine/box:1") && out.contains("Untagged: again:3"),
        "{out}"
    );
    assert!(out.contains(&format!("Deleted: {id}")), "{out}");
    assert_eq!(d.cli_ok(&["images", "-q"]).trim(), "");
    // Layers went with it.
    let layers = d.data_root.join("graph/layers");
    assert_eq!(std::fs::read_dir(layers).expect("ls").count(), 0);
}

#[test]
fn push_then_pull_back_gives_the_same_digest() {
    let d = daemon();
    let r = busybox(&d);
    let target = format!("{}/{}:v1", reg(), unique("pushed"));
    d.cli_ok(&["tag", &r, &target]);
    let out = d.cli_ok(&["push", &target]);
    let pushed = out
        .lines()
        .find_map(|l| l.split("digest: ").nth(1))
        .and_then(|s| s.split_whitespace().next())
        .expect("push digest line")
        .to_string();
    assert!(
        out.contains("Pushed")
            || out.contains("Layer already exists")
            || out.contains("Mounted from"),
        "{out}"
    );
    let id = inspect(&d, &target)["Id"].as_str().expect("id").to_string();
    d.cli_ok(&["rmi", "-f", &id]);
    let back = d.cli_ok(&["pull", &target]);
    assert!(back.contains(&format!("Digest: {pushed}")), "{back}");
    assert_eq!(
        inspect(&d, &target)["Id"],
        id.as_str(),
        "the image ID survives the round trip"
    );
    // A second push uploads nothing.
    let again = d.cli_ok(&["push", &target]);
    assert!(again.contains("Layer already exists"), "{again}");
    let e = stderr_of(&d, &["push", &format!("{}/never-tagged:x", reg())]);
    assert!(
        e.contains("An image does not exist locally with the tag"),
        "{e}"
    );
}

#[test]
fn save_and_load_round_trip() {
    let d = daemon();
    let r = busybox(&d);
    let id = inspect(&d, &r)["Id"].as_str().expect("id").to_string();
    let tar = d.data_root.parent().expect("dir").join("saved.tar");
    d.cli_ok(&["save", "-o", tar.to_str().expect("utf8"), &r]);
    d.cli_ok(&["rmi", &r]);
    assert_eq!(d.cli_ok(&["images", "-q"]).trim(), "");
    // Through a pipe, as `docker save | docker load` is used.
    let mut load = d
        .docker()
        .args(["load"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("docker load");
    load.stdin
        .take()
        .expect("stdin")
        .write_all(&std::fs::read(&tar).expect("tar"))
        .expect("feed");
    let out = load.wait_with_output().expect("load");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("Loaded image: {r}")));
    assert_eq!(inspect(&d, &r)["Id"], id.as_str());
    // A second save is byte-identical: layers are reproduced exactly.
    let tar2 = d.data_root.parent().expect("dir").join("saved2.tar");
    d.cli_ok(&["save", "-o", tar2.to_str().expect("utf8"), &r]);
    assert_eq!(
        digest(&std::fs::read(&tar).expect("a")),
        digest(&std::fs::read(&tar2).expect("b"))
    );
    // The archive has dockerd's layout.
    let names: Vec<String> = tar::Archive::new(std::fs::File::open(&tar).expect("open"))
        .entries()
        .expect("entries")
        .map(|e| {
            e.expect("entry")
                .path()
                .expect("path")
                .display()
                .to_string()
        })
        .collect();
    for n in ["manifest.json", "index.json", "oci-layout", "repositories"] {
        assert!(names.contains(&n.to_string()), "{n} missing: {names:?}");
    }
    // The fixture's docker-save tar and OCI layout load too.
    if let Ok(fx) = std::env::var("BERTH_FIXTURES") {
        let out = d.cli_ok(&["load", "-i", &format!("{fx}/busybox.tar")]);
        assert!(out.contains("Loaded image: busybox:latest"), "{out}");
    }
}

fn rootfs_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in [
        ("etc/motd", &b"imported\n"[..]),
        ("bin/x", &b"#!/bin/sh\n"[..]),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o755);
        b.append_data(&mut h, name, data).expect("append");
    }
    b.into_inner().expect("tar")
}

#[test]
fn import_and_prune() {
    let d = daemon();
    let file = d.data_root.parent().expect("dir").join("rootfs.tar");
    std::fs::write(&file, rootfs_tar()).expect("write");
    let out = d.cli_ok(&[
        "import",
        "--change",
        "CMD [\"/bin/x\"]",
        "--change",
        "ENV A=1",
        "-m",
        "hello",
        file.to_str().expect("utf8"),
        "imported:1",
    ]);
    assert!(out.trim().starts_with("sha256:"), "{out}");
    let img = inspect(&d, "imported:1");
    assert_eq!(img["Config"]["Cmd"], serde_json::json!(["/bin/x"]));
    assert_eq!(img["Config"]["Env"], serde_json::json!(["A=1"]));
    assert_eq!(img["Comment"], "hello");
    // From a URL: a static file server on loopback, stopped by its PID.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let dir = file.parent().expect("dir").to_path_buf();
    let mut server = std::process::Command::new("python3")
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
        ])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("http server");
    let url = format!("http://127.0.0.1:{port}/rootfs.tar");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let from_url = d.cli(&["import", &url, "fromurl:1"]);
    let missing = d.cli(&[
        "import",
        &format!("http://127.0.0.1:{port}/missing.tar"),
        "nothing:1",
    ]);
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        from_url.status.success(),
        "{}",
        String::from_utf8_lossy(&from_url.stderr)
    );
    assert_eq!(inspect(&d, "fromurl:1")["RootFS"], img["RootFS"]);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("404"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
    d.cli_ok(&["rmi", "fromurl:1"]);
    // An untagged import is dangling, and prune removes it but not the tagged one.
    let gz = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&rootfs_tar()).expect("gz");
        e.write_all(b"").expect("gz");
        e.finish().expect("gz")
    };
    let gzfile = d.data_root.parent().expect("dir").join("rootfs.tgz");
    std::fs::write(&gzfile, gz).expect("write");
    let dangling = d
        .cli_ok(&["import", gzfile.to_str().expect("utf8")])
        .trim()
        .to_string();
    assert_eq!(
        d.cli_ok(&["images", "-q", "--filter", "dangling=true", "--no-trunc"])
            .trim(),
        dangling
    );
    let out = d.cli_ok(&["image", "prune", "-f"]);
    assert!(out.contains(&format!("deleted: {dangling}")), "{out}");
    assert_eq!(d.cli_ok(&["images", "-q"]).lines().count(), 1);
}

#[test]
fn manifest_lists_zstd_layers_and_platforms() {
    let d = daemon();
    let repo = unique("multi");
    let layer = rootfs_tar();
    let diff_id = digest(&layer);
    let zst = zstd::encode_all(&layer[..], 3).expect("zstd");
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "created": "2024-02-02T00:00:00Z",
        "config": {"Cmd": ["/bin/x"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }))
    .expect("config");
    let a = reg();
    let cd = push_blob(&a, &repo, &config).expect("config blob");
    let ld = push_blob(&a, &repo, &zst).expect("layer blob");
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd", "digest": ld, "size": zst.len()}],
    }))
    .expect("manifest");
    let md = put_manifest(
        &a,
        &repo,
        "single",
        "application/vnd.oci.image.manifest.v1+json",
        &manifest,
    )
    .expect("manifest");
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": manifest.len(), "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": manifest.len(), "platform": {"architecture": "amd64", "os": "linux"}},
        ],
    }))
    .expect("index");
    let id = put_manifest(
        &a,
        &repo,
        "multi",
        "application/vnd.oci.image.index.v1+json",
        &index,
    )
    .expect("index");
    let out = d.cli_ok(&["pull", &format!("{a}/{repo}:multi")]);
    // The digest of a list pull is the list's, as dockerd reports it.
    assert!(out.contains(&format!("Digest: {id}")), "{out}");
    let img = inspect(&d, &format!("{a}/{repo}:multi"));
    assert_eq!(img["RootFS"]["Layers"], serde_json::json!([diff_id]));
    let out = d.cli_ok(&["pull", &format!("{a}/{repo}:single")]);
    assert!(out.contains(&format!("Digest: {md}")), "{out}");
    let e = stderr_of(
        &d,
        &[
            "pull",
            "--platform",
            "linux/s390x",
            &format!("{a}/{repo}:multi"),
        ],
    );
    assert!(e.contains("no matching manifest for linux/s390x"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bollard_pull_list_inspect_remove() {
    let d = daemon();
    let c = d.bollard().await;
    let from = format!("{}/busybox", reg());
    let mut s = c.create_image(
        Some(bollard::query_parameters::CreateImageOptions {
            from_image: Some(from.clone()),
            tag: Some("latest".into()),
            ..Default::default()
        }),
        None,
        None,
    );
    let mut statuses = Vec::new();
    while let Some(m) = s.next().await {
        statuses.push(m.expect("progress").status.unwrap_or_default());
    }
    assert!(
        statuses
            .iter()
            .any(|s| s.starts_with("Status: Downloaded newer image")),
        "{statuses:?}"
    );
    let list = c
        .list_images(None::<bollard::query_parameters::ListImagesOptions>)
        .await
        .expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].repo_tags, vec![format!("{from}:latest")]);
    let img = c
        .inspect_image(&format!("{from}:latest"))
        .await
        .expect("inspect");
    assert_eq!(img.id.as_deref(), Some(list[0].id.as_str()));
    let err = c.inspect_image("missing:tag").await.expect_err("missing");
    assert!(
        err.to_string().contains("No such image: missing:tag"),
        "{err}"
    );
    let gone = c
        .remove_image(
            &format!("{from}:latest"),
            None::<bollard::query_parameters::RemoveImageOptions>,
            None,
        )
        .await
        .expect("remove");
    assert!(gone.iter().any(|g| g.deleted.is_some()));
}

#[test]
fn images_survive_a_restart() {
    let mut d = daemon();
    let r = busybox(&d);
    d.cli_ok(&["tag", &r, "kept:1"]);
    let id = inspect(&d, "kept:1")["Id"]
        .as_str()
        .expect("id")
        .to_string();
    d.restart();
    assert_eq!(inspect(&d, "kept:1")["Id"], id.as_str());
    assert_eq!(
        inspect(&d, &r)["RepoDigests"].as_array().map(Vec::len),
        Some(1)
    );
}

#[test]
fn missing_images_and_bad_references() {
    let d = daemon();
    let e = stderr_of(&d, &["pull", &format!("{}/does-not-exist:1", reg())]);
    assert!(
        e.contains(&format!(
            "manifest for {}/does-not-exist:1 not found",
            reg()
        )),
        "{e}"
    );
    let e = stderr_of(&d, &["image", "inspect", "ghost"]);
    assert!(e.contains("No such image: ghost"), "{e}");
    let r = d.get("/images/ghost/json");
    assert_eq!(crate::status(&r), 404);
    let r = d.raw(b"POST /images/create?fromImage=bad%20name HTTP/1.1\r\nHost: d\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(crate::status(&r), 400, "{r}");
    assert!(r.contains("invalid reference format"), "{r}");
}

/// A private registry holding a copy of busybox pushed by the daemon under test.
fn private_copy(d: &TestDaemon) -> (Registry, String, serde_json::Value) {
    let parent = d.data_root.parent().expect("dir").join("reg");
    let private = Registry::start(&parent).expect("private registry");
    let r = busybox(d);
    let target = format!("{}/copy:1", private.addr);
    d.cli_ok(&["tag", &r, &target]);
    d.cli_ok(&["push", &target]);
    let img = inspect(d, &target);
    d.cli_ok(&["rmi", "-f", img["Id"].as_str().expect("id")]);
    let manifest: serde_json::Value = serde_json::from_slice(
        &ureq::get(&format!("http://{}/v2/copy/manifests/1", private.addr))
            .header(
                "Accept",
                "application/vnd.docker.distribution.manifest.v2+json",
            )
            .call()
            .expect("manifest")
            .body_mut()
            .read_to_vec()
            .expect("body"),
    )
    .expect("manifest json");
    (private, target, manifest)
}

fn assert_nothing_half_done(d: &TestDaemon) {
    assert_eq!(
        d.cli_ok(&["images", "-q"]).trim(),
        "",
        "a partial image is listed"
    );
    let g = d.data_root.join("graph");
    assert_eq!(
        std::fs::read_dir(g.join("tmp")).expect("tmp").count(),
        0,
        "staging left behind"
    );
    assert_eq!(
        std::fs::read_dir(g.join("layers")).expect("layers").count(),
        0,
        "a layer was stored"
    );
}

#[test]
fn corrupt_and_truncated_blobs_are_refused() {
    let d = daemon();
    let (private, target, manifest) = private_copy(&d);
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .expect("layer digest")
        .to_string();
    let path = private.blob_path(&layer);
    let good = std::fs::read(&path).expect("blob");
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    std::fs::write(&path, &bad).expect("corrupt");
    let e = stderr_of(&d, &["pull", &target]);
    assert!(
        e.contains(&format!(
            "filesystem layer verification failed for digest {layer}"
        )),
        "{e}"
    );
    assert_nothing_half_done(&d);
    std::fs::write(&path, &good[..good.len() / 2]).expect("truncate");
    let e = stderr_of(&d, &["pull", &target]);
    assert!(e.contains("truncated"), "{e}");
    assert_nothing_half_done(&d);
    std::fs::write(&path, &good).expect("restore");
    d.cli_ok(&["pull", &target]);
}

fn hostile_archive(name: &str, link: Option<&str>, kind: tar::EntryType) -> Vec<u8> {
    let mut lb = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    if let Some(l) = link {
        h.as_old_mut().linkname[..l.len()].copy_from_slice(l.as_bytes());
    }
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_size(1);
    h.set_cksum();
    lb.append(&h, &b"x"[..]).expect("entry");
    let layer = lb.into_inner().expect("layer");
    let diff = digest(&layer);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff]},
    }))
    .expect("config");
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |n: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, n, data).expect("add");
    };
    add("config.json", &config);
    add("layer.tar", &layer);
    add(
        "manifest.json",
        br#"[{"Config":"config.json","RepoTags":["hostile:1"],"Layers":["layer.tar"]}]"#,
    );
    b.into_inner().expect("archive")
}

#[test]
fn hostile_layers_are_refused_and_write_nothing_outside() {
    let d = daemon();
    let outside = d.data_root.parent().expect("dir").join("outside");
    std::fs::create_dir_all(&outside).expect("outside");
    let escape = format!("../../../../../../..{}/pwned", outside.display());
    for (name, link, kind) in [
        (escape.as_str(), None, tar::EntryType::Regular),
        ("hl", Some("../../../../etc/passwd"), tar::EntryType::Link),
    ] {
        let archive = hostile_archive(name, link, kind);
        let mut load = d
            .docker()
            .args(["load"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("load");
        load.stdin
            .take()
            .expect("stdin")
            .write_all(&archive)
            .expect("feed");
        let out = load.wait_with_output().expect("load");
        assert!(!out.status.success(), "hostile layer {name} was loaded");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(".."),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_nothing_half_done(&d);
    }
    assert_eq!(
        std::fs::read_dir(&outside).expect("ls").count(),
        0,
        "wrote outside the data root"
    );
    // Malformed archives are a clear error too.
    let mut load = d
        .docker()
        .args(["load"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("load");
    load.stdin
        .take()
        .expect("stdin")
        .write_all(b"this is not a tar archive at all")
        .expect("feed");
    let out = load.wait_with_output().expect("load");
    assert!(!out.status.success());
}

#[test]
fn login_and_authenticated_push_and_pull() {
    let d = daemon();
    let parent = d.data_root.parent().expect("dir").join("authreg");
    let private =
        Registry::start_with_auth(&parent, "alice", "s3cret").expect("registry with auth");
    let r = busybox(&d);
    let target = format!("{}/secure/box:1", private.addr);
    d.cli_ok(&["tag", &r, &target]);
    let e = stderr_of(&d, &["push", &target]);
    assert!(
        e.to_lowercase().contains("unauthorized") || e.contains("401"),
        "{e}"
    );
    let e = stderr_of(&d, &["login", "-u", "alice", "-p", "wrong", &private.addr]);
    assert!(e.contains("401"), "{e}");
    let out = d.cli_ok(&["login", "-u", "alice", "-p", "s3cret", &private.addr]);
    assert!(out.contains("Login Succeeded"), "{out}");
    d.cli_ok(&["push", &target]);
    let id = inspect(&d, &target)["Id"].as_str().expect("id").to_string();
    d.cli_ok(&["rmi", "-f", &id]);
    d.cli_ok(&["pull", &target]);
    assert_eq!(inspect(&d, &target)["Id"], id.as_str());
    d.cli_ok(&["logout", &private.addr]);
    d.cli_ok(&["rmi", "-f", &id]);
    let e = stderr_of(&d, &["pull", &target]);
    assert!(
        e.to_lowercase().contains("unauthorized") || e.contains("401"),
        "{e}"
    );
}
