//! Overlay mounts of an image's layers with a writable upper directory: the root
//! filesystem of a container.

use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::{io_err, Error};

/// Mounts `lowers` (top first) with `upper` and `work` at `target`. An image with
/// no layers gets an empty lower directory, as overlay needs at least one.
pub fn mount_overlay(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
) -> Result<(), Error> {
    for d in [upper, work, target] {
        std::fs::create_dir_all(d).map_err(io_err(d))?;
    }
    let empty;
    let lowers: Vec<&Path> = if lowers.is_empty() {
        empty = work.with_file_name("empty-lower");
        std::fs::create_dir_all(&empty).map_err(io_err(&empty))?;
        vec![empty.as_path()]
    } else {
        lowers.iter().map(PathBuf::as_path).collect()
    };
    let lower = lowers
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let data = format!(
        "lowerdir={lower},upperdir={},workdir={},index=off",
        upper.display(),
        work.display()
    );
    // Page-size limit on mount data; long layer paths need shorter names or fd tricks.
    if data.len() >= 4096 {
        return Err(Error::Layer(format!(
            "too many layers to mount ({} lower directories)",
            lowers.len()
        )));
    }
    mount(
        Some("overlay"),
        target,
        Some("overlay"),
        MsFlags::empty(),
        Some(data.as_str()),
    )
    .map_err(|e| Error::Io {
        path: target.display().to_string(),
        source: e.into(),
    })
}

/// Unmounts `target` (lazily if busy).
pub fn unmount(target: &Path) -> Result<(), Error> {
    match umount2(target, MntFlags::empty()) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(nix::errno::Errno::EBUSY) => {
            umount2(target, MntFlags::MNT_DETACH).map_err(|e| Error::Io {
                path: target.display().to_string(),
                source: e.into(),
            })
        }
        Err(e) => Err(Error::Io {
            path: target.display().to_string(),
            source: e.into(),
        }),
    }
}
