//! `cargo xtask install [--root DIR]`: release `berthd` and `berth-shim` into
//! `DIR/usr/local/bin`, the systemd units (`contrib/systemd`) into
//! `DIR/etc/systemd/system`. On the real root it also makes the `docker` group
//! the socket unit gives the API socket to, as dockerd's package does.

use std::path::{Path, PathBuf};

use crate::Result;

const BINARIES: &[&str] = &["berthd", "berth-shim"];
const UNITS: &[&str] = &["berth.service", "berth.socket"];

fn copy(from: &Path, to: &Path, mode: u32) -> Result {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    // Through a temp file and a rename: a running berthd's binary is replaced,
    // never written into.
    let tmp = to.with_extension("berth-install");
    std::fs::copy(from, &tmp)
        .map_err(|e| format!("{} -> {}: {e}", from.display(), tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, to).map_err(|e| format!("{}: {e}", to.display()))
}

/// Installs from `bins` (a cargo release directory) and `units` under `root`.
pub fn install_into(bins: &Path, units: &Path, root: &Path) -> Result<Vec<PathBuf>> {
    let mut done = Vec::new();
    for b in BINARIES {
        let to = root.join("usr/local/bin").join(b);
        copy(&bins.join(b), &to, 0o755)?;
        done.push(to);
    }
    for u in UNITS {
        let to = root.join("etc/systemd/system").join(u);
        copy(&units.join(u), &to, 0o644)?;
        done.push(to);
    }
    Ok(done)
}

pub fn install(args: &[String]) -> Result {
    let root = match args {
        [] => PathBuf::from("/"),
        [flag, dir] if flag == "--root" => PathBuf::from(dir),
        _ => return Err("usage: cargo xtask install [--root DIR]".into()),
    };
    crate::build_release()?;
    let done = install_into(
        &crate::root().join("target/release"),
        &crate::root().join("contrib/systemd"),
        &root,
    )?;
    for p in &done {
        println!("installed {}", p.display());
    }
    if root == Path::new("/") {
        let _ = std::process::Command::new("groupadd")
            .args(["--system", "-f", "docker"])
            .status();
        println!(
            "then: systemctl daemon-reload && systemctl enable --now berth.socket berth.service"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn installs_binaries_and_units_under_a_root() {
        let t = tempfile::tempdir().expect("tmp");
        let (bins, root) = (t.path().join("bins"), t.path().join("root"));
        std::fs::create_dir_all(&bins).expect("mkdir");
        for b in super::BINARIES {
            std::fs::write(bins.join(b), b"#!/bin/sh\n").expect("write");
        }
        let units = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/systemd");
        let done = super::install_into(&bins, &units, &root).expect("install");
        assert_eq!(done.len(), 4);
        let service =
            std::fs::read_to_string(root.join("etc/systemd/system/berth.service")).expect("unit");
        for want in [
            "Type=notify",
            "-H fd://",
            "Delegate=yes",
            "KillMode=process",
            "OOMScoreAdjust=-500",
        ] {
            assert!(service.contains(want), "{want}");
        }
        let socket =
            std::fs::read_to_string(root.join("etc/systemd/system/berth.socket")).expect("unit");
        assert!(socket.contains("SocketMode=0660") && socket.contains("SocketGroup=docker"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(root.join("usr/local/bin/berthd"))
            .expect("bin")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
    }
}
