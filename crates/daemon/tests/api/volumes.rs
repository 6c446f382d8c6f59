//! Volumes, `docker cp` and `docker export` through the CLI and bollard.

use crate::images::busybox;
use crate::{body_json, daemon, status};

fn inspect(d: &berth_testkit::TestDaemon, name: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&d.cli_ok(&["inspect", name])).expect("json");
    v[0].clone()
}

fn volumes(d: &berth_testkit::TestDaemon) -> Vec<String> {
    d.cli_ok(&["volume", "ls", "-q"])
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn named_volumes_keep_data_between_containers() {
    let d = daemon();
    let b = busybox(&d);
    d.cli_ok(&[
        "run",
        "--rm",
        "-v",
        "data:/data",
        &b,
        "sh",
        "-c",
        "echo kept > /data/f",
    ]);
    assert_eq!(
        d.cli_ok(&["run", "--rm", "-v", "data:/data:ro", &b, "cat", "/data/f"]),
        "kept\n"
    );
    // Read-only really is.
    let o = d.cli(&["run", "--rm", "-v", "data:/data:ro", &b, "touch", "/data/g"]);
    assert_ne!(o.status.code(), Some(0));
    let v: serde_json::Value =
        serde_json::from_str(&d.cli_ok(&["volume", "inspect", "data"])).expect("json");
    assert_eq!(v[0]["Driver"], "local");
    let mp = v[0]["Mountpoint"].as_str().unwrap_or("");
    assert!(mp.ends_with("/volumes/data/_data"), "{mp}");
    assert_eq!(
        std::fs::read_to_string(format!("{mp}/f")).expect("on disk"),
        "kept\n"
    );
    // In use: refused, with the user's ID; force-free once the container is gone.
    d.cli_ok(&[
        "run",
        "-d",
        "--name",
        "user",
        "-v",
        "data:/data",
        &b,
        "sleep",
        "1000",
    ]);
    let id = inspect(&d, "user")["Id"].as_str().unwrap_or("").to_string();
    let o = d.cli(&["volume", "rm", "data"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("volume is in use") && err.contains(&id),
        "{err}"
    );
    let mounts = &inspect(&d, "user")["Mounts"][0];
    assert_eq!(mounts["Type"], "volume");
    assert_eq!(mounts["Name"], "data");
    assert_eq!(mounts["Destination"], "/data");
    assert_eq!(mounts["RW"], true);
    // --volumes-from sees the same data.
    assert_eq!(
        d.cli_ok(&[
            "run",
            "--rm",
            "--volumes-from",
            "user:ro",
            &b,
            "cat",
            "/data/f"
        ]),
        "kept\n"
    );
    d.cli_ok(&["rm", "-f", "user"]);
    let dangling = d.cli_ok(&["volume", "ls", "-q", "--filter", "dangling=true"]);
    assert_eq!(dangling.trim(), "data");
    // system df counts it.
    let df = body_json(&d.get("/system/df"));
    let vols = df["Volumes"].as_array().cloned().unwrap_or_default();
    assert_eq!(vols.len(), 1, "{df}");
    assert_eq!(vols[0]["UsageData"]["Size"], 5);
    assert_eq!(vols[0]["UsageData"]["RefCount"], 0);
    d.cli_ok(&["volume", "rm", "data"]);
    assert!(volumes(&d).is_empty());
    assert!(!std::path::Path::new(mp).exists());
}

#[test]
fn anonymous_volumes_copy_up_and_go_with_the_container() {
    let d = daemon();
    let b = busybox(&d);
    // -v /path: a new anonymous volume, removed by --rm.
    d.cli_ok(&[
        "run",
        "--rm",
        "-v",
        "/scratch",
        &b,
        "sh",
        "-c",
        "echo x > /scratch/f",
    ]);
    assert!(volumes(&d).is_empty(), "--rm removes anonymous volumes");
    // Kept by plain rm, removed by rm -v.
    d.cli_ok(&["run", "--name", "anon", "-v", "/scratch", &b, "true"]);
    assert_eq!(volumes(&d).len(), 1);
    d.cli_ok(&["rm", "anon"]);
    assert_eq!(volumes(&d).len(), 1, "plain rm keeps it");
    d.cli_ok(&["volume", "prune", "-f"]);
    assert!(volumes(&d).is_empty(), "prune takes anonymous volumes");
    d.cli_ok(&["run", "--name", "anon2", "-v", "/scratch", &b, "true"]);
    d.cli_ok(&["rm", "-v", "anon2"]);
    assert!(volumes(&d).is_empty(), "rm -v removes it");
    // An image's VOLUME: an anonymous volume, filled from the image, gone with --rm.
    d.cli_ok(&[
        "run",
        "--name",
        "base",
        &b,
        "sh",
        "-c",
        "mkdir /data; echo seeded > /data/seed",
    ]);
    d.cli_ok(&["commit", "-c", "VOLUME /data", "base", "withvol:1"]);
    d.cli_ok(&["rm", "base"]);
    d.cli_ok(&["run", "-d", "--name", "iv", "withvol:1", "sleep", "1000"]);
    let m = &inspect(&d, "iv")["Mounts"][0];
    assert_eq!(m["Type"], "volume");
    assert_eq!(m["Destination"], "/data");
    assert_eq!(d.cli_ok(&["exec", "iv", "cat", "/data/seed"]), "seeded\n");
    let ps = d.cli_ok(&["ps", "--filter", "volume=/data", "--format", "{{.Names}}"]);
    assert_eq!(ps.trim(), "iv");
    d.cli_ok(&["rm", "-f", "-v", "iv"]);
    assert!(volumes(&d).is_empty(), "{:?}", volumes(&d));
    d.cli_ok(&["run", "--rm", "withvol:1", "true"]);
    assert!(
        volumes(&d).is_empty(),
        "--rm takes the image's anonymous volume"
    );
    d.cli_ok(&["rmi", "withvol:1"]);
    // A new volume over a non-empty image directory starts with its content;
    // nocopy starts empty.
    let out = d.cli_ok(&["run", "--rm", "-v", "etcvol:/etc", &b, "cat", "/etc/passwd"]);
    assert!(out.contains("root:"), "{out}");
    let out = d.cli_ok(&[
        "run",
        "--rm",
        "-v",
        "empty:/etc:nocopy",
        &b,
        "ls",
        "-A",
        "/etc",
    ]);
    assert!(
        !out.contains("passwd"),
        "nocopy: only the daemon's files: {out}"
    );
    d.cli_ok(&["volume", "rm", "etcvol", "empty"]);
}

#[test]
fn mount_forms_and_tmpfs_volumes() {
    let d = daemon();
    let b = busybox(&d);
    let host = tempfile::tempdir().expect("tmp");
    std::fs::write(host.path().join("h"), b"from-host").expect("write");
    let bind = format!(
        "type=bind,source={},target=/h,readonly",
        host.path().display()
    );
    assert_eq!(
        d.cli_ok(&["run", "--rm", "--mount", &bind, &b, "cat", "/h/h"]),
        "from-host"
    );
    let o = d.cli(&["run", "--rm", "--mount", &bind, &b, "touch", "/h/x"]);
    assert_ne!(o.status.code(), Some(0), "readonly bind");
    let out = d.cli_ok(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,source=mv,target=/m",
        &b,
        "sh",
        "-c",
        "echo v > /m/v; cat /m/v",
    ]);
    assert_eq!(out, "v\n");
    let out = d.cli_ok(&[
        "run",
        "--rm",
        "--mount",
        "type=tmpfs,target=/t,tmpfs-size=1048576",
        &b,
        "sh",
        "-c",
        "mount | grep ' /t '",
    ]);
    assert!(out.contains("tmpfs") && out.contains("size=1024k"), "{out}");
    // A volume with driver options: a tmpfs mounted while used.
    d.cli_ok(&[
        "volume",
        "create",
        "--driver",
        "local",
        "--opt",
        "type=tmpfs",
        "--opt",
        "device=tmpfs",
        "--opt",
        "o=size=2m",
        "--label",
        "kind=scratch",
        "tv",
    ]);
    let out = d.cli_ok(&[
        "run",
        "--rm",
        "-v",
        "tv:/tv",
        &b,
        "sh",
        "-c",
        "mount | grep ' /tv '",
    ]);
    assert!(out.contains("tmpfs") && out.contains("size=2048k"), "{out}");
    let ls = d.cli_ok(&[
        "volume",
        "ls",
        "--filter",
        "label=kind=scratch",
        "--format",
        "{{.Name}}",
    ]);
    assert_eq!(ls.trim(), "tv");
    // Bad forms.
    let o = d.cli(&[
        "run",
        "--rm",
        "--mount",
        "type=bind,source=/no/such/dir,target=/x",
        &b,
        "true",
    ]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("bind source path does not exist"),
        "{o:?}"
    );
    let o = d.cli(&["run", "--rm", "-v", "bad/name:/x", &b, "true"]);
    assert_ne!(o.status.code(), Some(0));
    let o = d.cli(&["run", "--rm", "-v", "a1:/x", "-v", "a2:/x", &b, "true"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Duplicate mount point"),
        "{o:?}"
    );
    d.cli_ok(&["volume", "rm", "mv", "tv"]);
    assert!(d.leaked_mounts().is_empty(), "{:?}", d.leaked_mounts());
}

#[test]
fn volume_api_errors() {
    let d = daemon();
    let r = d.get("/volumes/nope");
    assert_eq!(status(&r), 404, "{r}");
    assert_eq!(body_json(&r)["message"], "get nope: no such volume");
    let body = r#"{"Name":"x y"}"#;
    let r = d.raw(format!("POST /volumes/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes());
    assert_eq!(status(&r), 400, "{r}");
    let body = r#"{"Name":"p1","Driver":"nfs-plugin"}"#;
    let r = d.raw(format!("POST /volumes/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes());
    assert_eq!(status(&r), 404, "{r}");
    let r = d.raw(b"DELETE /volumes/nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(status(&r), 404, "{r}");
    let r = d.raw(b"DELETE /volumes/nope?force=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(status(&r), 204, "{r}");
}

#[tokio::test(flavor = "multi_thread")]
async fn volumes_through_bollard() {
    let d = daemon();
    let c = d.bollard().await;
    let v = c
        .create_volume(bollard::models::VolumeCreateRequest {
            name: Some("bv".into()),
            labels: Some([("a".to_string(), "b".to_string())].into()),
            ..Default::default()
        })
        .await
        .expect("create");
    assert_eq!(v.name, "bv");
    assert_eq!(v.labels.get("a").map(String::as_str), Some("b"));
    let list = c
        .list_volumes(None::<bollard::query_parameters::ListVolumesOptions>)
        .await
        .expect("list");
    assert_eq!(list.volumes.map(|v| v.len()), Some(1));
    let got = c.inspect_volume("bv").await.expect("inspect");
    assert_eq!(got.mountpoint, v.mountpoint);
    c.remove_volume("bv", None::<bollard::query_parameters::RemoveVolumeOptions>)
        .await
        .expect("remove");
    assert!(c.inspect_volume("bv").await.is_err());
}

#[test]
fn cp_both_ways_running_and_stopped() {
    let d = daemon();
    let b = busybox(&d);
    let work = tempfile::tempdir().expect("tmp");
    d.cli_ok(&[
        "run",
        "-d",
        "--name",
        "cpc",
        "-v",
        "cpvol:/vol",
        &b,
        "sh",
        "-c",
        "mkdir -p /srv/tree/sub; echo deep > /srv/tree/sub/f; echo v > /vol/in-volume; sleep 1000",
    ]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    // Container → host: a directory, a file, a file inside a volume.
    let dst = work.path().join("tree");
    d.cli_ok(&["cp", "cpc:/srv/tree", dst.to_str().unwrap_or("")]);
    assert_eq!(
        std::fs::read_to_string(dst.join("sub/f")).expect("copied"),
        "deep\n"
    );
    let one = work.path().join("one");
    d.cli_ok(&["cp", "cpc:/srv/tree/sub/f", one.to_str().unwrap_or("")]);
    assert_eq!(std::fs::read_to_string(&one).expect("file"), "deep\n");
    let vf = work.path().join("vf");
    d.cli_ok(&["cp", "cpc:/vol/in-volume", vf.to_str().unwrap_or("")]);
    assert_eq!(std::fs::read_to_string(&vf).expect("volume file"), "v\n");
    // Host → container: a file to a new name, a directory into a directory.
    std::fs::write(work.path().join("up"), b"uploaded").expect("write");
    d.cli_ok(&[
        "cp",
        work.path().join("up").to_str().unwrap_or(""),
        "cpc:/srv/renamed",
    ]);
    assert_eq!(
        d.cli_ok(&["exec", "cpc", "cat", "/srv/renamed"]),
        "uploaded"
    );
    d.cli_ok(&["cp", dst.to_str().unwrap_or(""), "cpc:/tmp"]);
    assert_eq!(
        d.cli_ok(&["exec", "cpc", "cat", "/tmp/tree/sub/f"]),
        "deep\n"
    );
    // A destination that does not exist takes the directory's place.
    d.cli_ok(&["cp", dst.to_str().unwrap_or(""), "cpc:/newdir"]);
    assert_eq!(d.cli_ok(&["exec", "cpc", "cat", "/newdir/sub/f"]), "deep\n");
    // Into a volume.
    d.cli_ok(&[
        "cp",
        work.path().join("up").to_str().unwrap_or(""),
        "cpc:/vol/",
    ]);
    let mp = serde_json::from_str::<serde_json::Value>(&d.cli_ok(&["volume", "inspect", "cpvol"]))
        .expect("json")[0]["Mountpoint"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert_eq!(
        std::fs::read_to_string(format!("{mp}/up")).expect("in volume"),
        "uploaded"
    );
    // A stopped container, both ways.
    d.cli_ok(&["stop", "-t", "0", "cpc"]);
    d.cli_ok(&[
        "cp",
        work.path().join("up").to_str().unwrap_or(""),
        "cpc:/stopped",
    ]);
    let back = work.path().join("back");
    d.cli_ok(&["cp", "cpc:/stopped", back.to_str().unwrap_or("")]);
    assert_eq!(std::fs::read_to_string(&back).expect("back"), "uploaded");
    assert!(
        d.leaked_mounts().iter().all(|m| !m.contains("merged")),
        "temporary rootfs mount left"
    );
    // Missing paths.
    let o = d.cli(&["cp", "cpc:/no/such", work.path().to_str().unwrap_or("")]);
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("Could not find the file /no/such in container cpc"),
        "{o:?}"
    );
    d.cli_ok(&["rm", "-v", "cpc"]);
    d.cli_ok(&["volume", "rm", "cpvol"]);
}

#[test]
fn cp_never_leaves_the_container_through_symlinks() {
    let d = daemon();
    let b = busybox(&d);
    let work = tempfile::tempdir().expect("tmp");
    d.cli_ok(&["run", "-d", "--name", "esc", &b, "sh", "-c", "ln -s / /link; ln -s ../../../../../etc /up; echo ctr-host > /etc/hostname.txt; sleep 1000"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let hostname = d.cli_ok(&["exec", "esc", "cat", "/etc/hostname"]);
    // Reading through `/link -> /` gets the container's file, not the host's.
    let o = d
        .docker()
        .args(["cp", "esc:/link/etc/hostname", "-"])
        .output()
        .expect("cp");
    let mut ar = tar::Archive::new(&o.stdout[..]);
    let mut got = String::new();
    for e in ar.entries().expect("tar") {
        let mut e = e.expect("entry");
        std::io::Read::read_to_string(&mut e, &mut got).expect("read");
    }
    assert_eq!(got, hostname);
    // `..` beyond the root stops at the container's root.
    let theirs = d.cli_ok(&["exec", "esc", "cat", "/etc/passwd"]);
    let o = d
        .docker()
        .args(["cp", "esc:/up/passwd", "-"])
        .output()
        .expect("cp");
    let mut got = String::new();
    for e in tar::Archive::new(&o.stdout[..]).entries().expect("tar") {
        std::io::Read::read_to_string(&mut e.expect("entry"), &mut got).expect("read");
    }
    assert_eq!(got, theirs);
    // Writing through it lands in the container.
    let marker = format!("berth-escape-{}", std::process::id());
    std::fs::write(work.path().join(&marker), b"x").expect("write");
    d.cli_ok(&[
        "cp",
        work.path().join(&marker).to_str().unwrap_or(""),
        "esc:/link/tmp/",
    ]);
    assert!(
        !std::path::Path::new("/tmp").join(&marker).exists(),
        "wrote to the host's /tmp"
    );
    d.cli_ok(&["exec", "esc", "test", "-f", &format!("/tmp/{marker}")]);
    d.cli_ok(&["rm", "-f", "esc"]);
}

#[test]
fn export_and_import_round_trip() {
    let d = daemon();
    let b = busybox(&d);
    d.cli_ok(&[
        "run",
        "--name",
        "ex",
        &b,
        "sh",
        "-c",
        "echo exported > /marker",
    ]);
    let out = d.docker().args(["export", "ex"]).output().expect("export");
    assert!(out.status.success());
    let names: Vec<String> = tar::Archive::new(&out.stdout[..])
        .entries()
        .expect("tar")
        .filter_map(|e| e.ok()?.path().ok().map(|p| p.display().to_string()))
        .collect();
    assert!(names.iter().any(|n| n == "marker"), "{names:?}");
    assert!(names.iter().any(|n| n.starts_with("bin/")), "{names:?}");
    let mut imp = d
        .docker()
        .args(["import", "-", "roundtrip:1"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("import");
    {
        use std::io::Write;
        let mut stdin = imp.stdin.take().expect("stdin");
        stdin.write_all(&out.stdout).expect("write");
    }
    assert!(imp.wait_with_output().expect("import").status.success());
    assert_eq!(
        d.cli_ok(&["run", "--rm", "roundtrip:1", "cat", "/marker"]),
        "exported\n"
    );
    d.cli_ok(&["rm", "ex"]);
    d.cli_ok(&["rmi", "roundtrip:1"]);
}
