//! Fixture images, built from Debian's static busybox, the same bytes every build.
//!
//! `busybox:latest`: one layer with `/bin/busybox`, every applet as a hard link to
//! it (as the official image), `/etc/passwd`, `/etc/group`, `/tmp` (1777) and
//! `/root`; config `Cmd ["sh"]`. Written as an OCI image layout (gzip layer, as
//! pushed to the registry) and as a `docker save` tar (uncompressed layer, with
//! `manifest.json`, `repositories` and an OCI index), and pushed to the test registry.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use flate2::write::GzEncoder;
use tar::{EntryType, Header};

use crate::Result;

const BUSYBOX: &str = "/bin/busybox";
const CREATED: &str = "2024-01-01T00:00:00Z";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// A built image, ready to push.
pub struct Built {
    pub repo: String,
    pub tag: String,
    pub reference: String,
    pub manifest_digest: String,
    manifest: Vec<u8>,
    /// (digest, bytes) of the config and layers, as the registry gets them.
    blobs: Vec<(String, Vec<u8>)>,
}

use berth_testkit::registry::digest;

fn hex_of(d: &str) -> &str {
    d.trim_start_matches("sha256:")
}

pub fn build_all(out: &Path) -> Result<Vec<Built>> {
    std::fs::create_dir_all(out).map_err(|e| format!("creating {}: {e}", out.display()))?;
    Ok(vec![busybox(out)?])
}

fn header(path: &str, kind: EntryType, mode: u32, size: u64) -> Header {
    let mut h = Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(size);
    // ustar keeps names up to 100 bytes plus a 155-byte prefix; ours are short.
    let _ = h.set_path(path);
    h
}

/// The uncompressed layer tar.
fn busybox_layer() -> Result<Vec<u8>> {
    let bin = std::fs::read(BUSYBOX)
        .map_err(|e| format!("reading {BUSYBOX} (apt-get install busybox-static): {e}"))?;
    let list = Command::new(BUSYBOX)
        .arg("--list-full")
        .output()
        .map_err(|e| format!("busybox --list-full: {e}"))?;
    let applets: BTreeSet<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(|l| l.trim().trim_start_matches('/').to_string())
        .filter(|l| !l.is_empty() && l != "bin/busybox")
        .collect();
    let mut dirs: BTreeSet<String> = [
        "bin",
        "dev",
        "etc",
        "home",
        "proc",
        "sys",
        "usr",
        "usr/bin",
        "usr/sbin",
        "sbin",
        "var",
        "var/spool",
        "var/www",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for a in &applets {
        let mut p = Path::new(a).parent();
        while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
            dirs.insert(d.to_string_lossy().into_owned());
            p = d.parent();
        }
    }
    let passwd = b"root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\nnobody:x:65534:65534:nobody:/home:/bin/false\nwww-data:x:33:33:www-data:/var/www:/bin/false\n";
    let group = b"root:x:0:\ndaemon:x:1:\nwww-data:x:33:\nnogroup:x:65534:\n";
    let mut b = tar::Builder::new(Vec::new());
    let err = |e: std::io::Error| format!("building layer: {e}");
    for d in &dirs {
        let mut h = header(&format!("{d}/"), EntryType::Directory, 0o755, 0);
        h.set_cksum();
        b.append(&h, std::io::empty()).map_err(err)?;
    }
    for (d, mode) in [("root/", 0o700), ("tmp/", 0o1777)] {
        let mut h = header(d, EntryType::Directory, mode, 0);
        h.set_cksum();
        b.append(&h, std::io::empty()).map_err(err)?;
    }
    let mut h = header("bin/busybox", EntryType::Regular, 0o755, bin.len() as u64);
    h.set_cksum();
    b.append(&h, &bin[..]).map_err(err)?;
    for (path, data) in [("etc/passwd", &passwd[..]), ("etc/group", &group[..])] {
        let mut h = header(path, EntryType::Regular, 0o644, data.len() as u64);
        h.set_cksum();
        b.append(&h, data).map_err(err)?;
    }
    for a in &applets {
        let mut h = header(a, EntryType::Link, 0o755, 0);
        b.append_link(&mut h, a, "bin/busybox").map_err(err)?;
    }
    b.into_inner().map_err(err)
}

fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    // GzEncoder writes mtime 0 and no file name: the output depends on the input only.
    let mut e = GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).map_err(|e| e.to_string())?;
    e.finish().map_err(|e| e.to_string())
}

fn manifest(config: &[u8], layer_type: &str, layer: &[u8]) -> Vec<u8> {
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": OCI_CONFIG, "digest": digest(config), "size": config.len() },
        "layers": [ { "mediaType": layer_type, "digest": digest(layer), "size": layer.len() } ],
    });
    serde_json::to_vec(&m).unwrap_or_default()
}

fn busybox(out: &Path) -> Result<Built> {
    let (repo, tag) = ("busybox", "latest");
    let layer = busybox_layer()?;
    let diff_id = digest(&layer);
    let gz = gzip(&layer)?;
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "created": CREATED,
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["sh"],
        },
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
        "history": [ { "created": CREATED, "created_by": "berth xtask: Debian busybox-static" } ],
    }))
    .map_err(|e| e.to_string())?;
    let pushed = manifest(&config, OCI_LAYER_GZIP, &gz);
    write_oci_layout(
        &out.join("busybox.oci"),
        &pushed,
        &[(&config, digest(&config)), (&gz, digest(&gz))],
        repo,
        tag,
    )?;
    write_docker_save(&out.join("busybox.tar"), &config, &layer, repo, tag)?;
    Ok(Built {
        repo: repo.into(),
        tag: tag.into(),
        reference: format!("{repo}:{tag}"),
        manifest_digest: digest(&pushed),
        manifest: pushed,
        blobs: vec![(digest(&config), config), (digest(&gz), gz)],
    })
}

fn index(manifest: &[u8], repo: &str, tag: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": OCI_MANIFEST,
            "digest": digest(manifest),
            "size": manifest.len(),
            "annotations": {
                "io.containerd.image.name": format!("docker.io/library/{repo}:{tag}"),
                "org.opencontainers.image.ref.name": tag,
            },
        }],
    }))
    .unwrap_or_default()
}

fn write_oci_layout(
    dir: &Path,
    manifest: &[u8],
    blobs: &[(&Vec<u8>, String)],
    repo: &str,
    tag: &str,
) -> Result {
    let blob_dir = dir.join("blobs/sha256");
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(&blob_dir)
        .map_err(|e| format!("creating {}: {e}", blob_dir.display()))?;
    let w = |p: PathBuf, d: &[u8]| {
        std::fs::write(&p, d).map_err(|e| format!("writing {}: {e}", p.display()))
    };
    w(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    w(dir.join("index.json"), &index(manifest, repo, tag))?;
    w(blob_dir.join(hex_of(&digest(manifest))), manifest)?;
    for (data, d) in blobs {
        w(blob_dir.join(hex_of(d)), data)?;
    }
    Ok(())
}

fn write_docker_save(path: &Path, config: &[u8], layer: &[u8], repo: &str, tag: &str) -> Result {
    let layer_digest = digest(layer);
    let save_manifest = manifest(config, OCI_LAYER, layer);
    let manifest_json = serde_json::to_vec(&serde_json::json!([{
        "Config": format!("blobs/sha256/{}", hex_of(&digest(config))),
        "RepoTags": [format!("{repo}:{tag}")],
        "Layers": [format!("blobs/sha256/{}", hex_of(&layer_digest))],
    }]))
    .map_err(|e| e.to_string())?;
    let repositories =
        serde_json::to_vec(&serde_json::json!({ repo: { tag: hex_of(&layer_digest) } }))
            .map_err(|e| e.to_string())?;
    let mut b = tar::Builder::new(Vec::new());
    let err = |e: std::io::Error| format!("writing {}: {e}", path.display());
    for d in ["blobs/", "blobs/sha256/"] {
        let mut h = header(d, EntryType::Directory, 0o755, 0);
        h.set_cksum();
        b.append(&h, std::io::empty()).map_err(err)?;
    }
    let mut entries: Vec<(String, Vec<u8>)> = vec![
        (
            format!("blobs/sha256/{}", hex_of(&digest(config))),
            config.to_vec(),
        ),
        (
            format!("blobs/sha256/{}", hex_of(&layer_digest)),
            layer.to_vec(),
        ),
        (
            format!("blobs/sha256/{}", hex_of(&digest(&save_manifest))),
            save_manifest.clone(),
        ),
        ("index.json".into(), index(&save_manifest, repo, tag)),
        ("manifest.json".into(), manifest_json),
        (
            "oci-layout".into(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ),
        ("repositories".into(), repositories),
    ];
    entries.sort();
    for (name, data) in entries {
        let mut h = header(&name, EntryType::Regular, 0o644, data.len() as u64);
        h.set_cksum();
        b.append(&h, &data[..]).map_err(err)?;
    }
    let data = b.into_inner().map_err(err)?;
    std::fs::write(path, data).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// Pushes every built image to the registry at `addr` (plain HTTP, loopback).
pub fn push_all(built: &[Built], addr: &str) -> Result {
    for b in built {
        push(b, addr)?;
    }
    Ok(())
}

fn push(b: &Built, addr: &str) -> Result {
    use berth_testkit::registry::{push_blob, put_manifest};
    for (_, data) in &b.blobs {
        push_blob(addr, &b.repo, data)?;
    }
    let got = put_manifest(addr, &b.repo, &b.tag, OCI_MANIFEST, &b.manifest)?;
    if got != b.manifest_digest {
        return Err(format!(
            "registry stored {got}, expected {}",
            b.manifest_digest
        ));
    }
    eprintln!("pushed {addr}/{} ({})", b.reference, b.manifest_digest);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busybox_layer_is_deterministic_and_complete() {
        if !Path::new(BUSYBOX).exists() {
            // `cargo xtask test` installs busybox-static before any test runs.
            panic!("{BUSYBOX} missing: run the tests through `cargo xtask test`");
        }
        let a = busybox_layer().expect("layer");
        let b = busybox_layer().expect("layer again");
        assert_eq!(digest(&a), digest(&b));
        assert_eq!(
            digest(&gzip(&a).expect("gz")),
            digest(&gzip(&b).expect("gz"))
        );
        let mut ar = tar::Archive::new(&a[..]);
        let names: Vec<String> = ar
            .entries()
            .expect("entries")
            .map(|e| {
                e.expect("entry")
                    .path()
                    .expect("path")
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        for want in ["bin/busybox", "bin/sh", "etc/passwd", "etc/group", "tmp/"] {
            assert!(names.iter().any(|n| n == want), "{want} missing");
        }
    }
}
