//! The bench's distro image: a Debian bookworm root filesystem made with
//! `debootstrap` from Debian's packages, cut into three layers as a real image's
//! are (the base system's programs and libraries, `/usr/share` with its
//! thousands of small files, the rest), and pushed as `bench/debian:bookworm`.
//!
//! The root filesystem and the compressed layers are cached under
//! `target/bench-cache/`: debootstrap takes about a minute, gzip another ten
//! seconds, and neither changes between runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use berth_testkit::registry::digest;

use crate::benchsetup::push_image;
use crate::{root, Result};

const SUITE: &str = "bookworm";
const REPO: &str = "bench/debian";

fn cache() -> PathBuf {
    root().join("target/bench-cache")
}

/// The mirror debootstrap fetches from: the one apt uses here, unless
/// `BERTH_DEBIAN_MIRROR` says otherwise.
fn mirror() -> String {
    std::env::var("BERTH_DEBIAN_MIRROR").unwrap_or_else(|_| "http://deb.debian.org/debian".into())
}

/// The cached root filesystem, made on first use.
fn rootfs() -> Result<PathBuf> {
    let dir = cache().join(format!("{SUITE}-rootfs"));
    if dir.join(".complete").exists() {
        return Ok(dir);
    }
    crate::packages::ensure(&["debootstrap"])?;
    let tmp = cache().join(format!("{SUITE}-rootfs.tmp"));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(cache()).map_err(|e| format!("{}: {e}", cache().display()))?;
    eprintln!("debootstrap {SUITE} (once; cached in {})", dir.display());
    let st = Command::new("debootstrap")
        .arg(SUITE)
        .arg(&tmp)
        .arg(mirror())
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("debootstrap: {e}"))?;
    if !st.success() {
        return Err(format!("debootstrap {SUITE}: {st}"));
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&tmp, &dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    std::fs::write(dir.join(".complete"), b"").map_err(|e| e.to_string())?;
    Ok(dir)
}

/// Which of the three layers a path (relative to the root) goes to, or None
/// for what official images leave out (downloaded packages, apt's lists).
fn layer_of(rel: &Path) -> Option<usize> {
    let s = rel.to_string_lossy();
    if s == ".complete"
        || s.starts_with("var/cache/apt/archives/") && s.ends_with(".deb")
        || s.starts_with("var/lib/apt/lists/") && !s.ends_with("/partial")
    {
        return None;
    }
    if s == "usr/share" || s.starts_with("usr/share/") {
        Some(1)
    } else if s.starts_with("usr/") || s == "usr" {
        Some(0)
    } else {
        Some(2)
    }
}

/// Every path under `dir`, sorted, parents before children.
fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .collect();
    names.sort_by_key(|e| e.file_name());
    for e in names {
        let p = e.path();
        out.push(p.strip_prefix(root).unwrap_or(&p).to_path_buf());
        let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if is_dir {
            walk(root, &p, out)?;
        }
    }
    Ok(())
}

/// The three layers' tars, uncompressed, and how many entries they hold.
fn layer_tars(rootfs: &Path) -> Result<(Vec<Vec<u8>>, usize)> {
    let mut paths = Vec::new();
    walk(rootfs, rootfs, &mut paths)?;
    let mut builders: Vec<tar::Builder<Vec<u8>>> =
        (0..3).map(|_| tar::Builder::new(Vec::new())).collect();
    for b in &mut builders {
        b.follow_symlinks(false);
    }
    let mut entries = 0usize;
    for rel in paths {
        let Some(i) = layer_of(&rel) else { continue };
        let full = rootfs.join(&rel);
        let md =
            std::fs::symlink_metadata(&full).map_err(|e| format!("{}: {e}", full.display()))?;
        // Device nodes (debootstrap's /dev): images leave them to the runtime.
        {
            use std::os::unix::fs::FileTypeExt;
            let t = md.file_type();
            if t.is_char_device() || t.is_block_device() || t.is_socket() {
                continue;
            }
        }
        // `/usr` itself goes to both layers that hold what is under it.
        let into = if rel == Path::new("usr") {
            0..2
        } else {
            i..i + 1
        };
        for b in &mut builders[into] {
            b.append_path_with_name(&full, &rel)
                .map_err(|e| format!("{}: {e}", rel.display()))?;
            entries += 1;
        }
    }
    let tars = builders
        .into_iter()
        .map(|b| b.into_inner().map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>>>()?;
    Ok((tars, entries))
}

/// Makes (or takes from the cache) the image and pushes it to the registry at
/// `addr`. Returns the reference, the compressed size and the number of files.
pub(crate) fn push_distro_image(addr: &str) -> Result<(String, u64, usize)> {
    let layers_dir = cache().join(format!("{SUITE}-layers"));
    let done = layers_dir.join("diff_ids");
    if !done.exists() {
        let rootfs = rootfs()?;
        let (tars, entries) = layer_tars(&rootfs)?;
        let _ = std::fs::remove_dir_all(&layers_dir);
        std::fs::create_dir_all(&layers_dir).map_err(|e| e.to_string())?;
        let mut ids = String::new();
        for (i, t) in tars.iter().enumerate() {
            let gz = crate::benchsetup::gzip(t)?;
            std::fs::write(layers_dir.join(format!("{i}.tar.gz")), gz)
                .map_err(|e| e.to_string())?;
            ids.push_str(&digest(t));
            ids.push('\n');
        }
        std::fs::write(layers_dir.join("entries"), entries.to_string())
            .map_err(|e| e.to_string())?;
        std::fs::write(&done, ids).map_err(|e| e.to_string())?;
    }
    let ids = std::fs::read_to_string(&done).map_err(|e| e.to_string())?;
    let diff_ids: Vec<String> = ids.lines().map(String::from).collect();
    let entries = std::fs::read_to_string(layers_dir.join("entries"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let total = push_image(
        addr,
        REPO,
        SUITE,
        diff_ids.len(),
        |i| std::fs::read(layers_dir.join(format!("{i}.tar.gz"))).map_err(|e| e.to_string()),
        &diff_ids,
        serde_json::json!({
            "Cmd": ["bash"],
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        }),
    )?;
    Ok((format!("{addr}/{REPO}:{SUITE}"), total, entries))
}
