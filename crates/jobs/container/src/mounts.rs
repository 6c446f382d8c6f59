//! A container's mounts: `-v` binds and volumes, `--mount`, `--volumes-from`,
//! anonymous volumes for `-v /path` and the image's `VOLUME`s. Resolved once at
//! create (volumes are created then, as dockerd does) into [`MountPoint`]s that
//! the start turns into OCI mounts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use berth_api::container::{ContainerConfig, Empty, HostConfig, Mount, MountView};
use berth_api::{ApiError, Result};
use serde::{Deserialize, Serialize};

use crate::Containers;

/// One mount of a container, in inspect's `Mounts` vocabulary.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MountPoint {
    /// `bind`, `volume` or `tmpfs`.
    pub kind: String,
    /// The volume's name.
    #[serde(default)]
    pub name: String,
    /// Host path of a bind (a volume's is looked up when it is mounted).
    #[serde(default)]
    pub source: String,
    pub destination: String,
    #[serde(default)]
    pub mode: String,
    pub rw: bool,
    #[serde(default)]
    pub propagation: String,
    /// Created for this container (`-v /path`, an image `VOLUME`): goes with `rm -v`.
    #[serde(default)]
    pub anonymous: bool,
    /// Do not fill a new, empty volume from the image.
    #[serde(default)]
    pub nocopy: bool,
    /// tmpfs mount options (`size=…,mode=…`).
    #[serde(default)]
    pub tmpfs: String,
    /// A read-only bind's recursion (see the `rro` module): empty for
    /// non-recursive, `auto` or `force`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub recursive_ro: String,
}

/// The volume subsystem as containers see it (the daemon plugs it in).
pub trait VolumeService: Send + Sync {
    /// Creates the volume if it is missing; `None` makes an anonymous one. Returns
    /// its name.
    fn ensure(
        &self,
        name: Option<&str>,
        driver: &str,
        options: BTreeMap<String, String>,
        labels: BTreeMap<String, String>,
        anonymous: bool,
    ) -> Result<String>;
    /// Readies a volume for a starting container; the directory to bind.
    fn mount(&self, name: &str) -> Result<PathBuf>;
    fn unmount(&self, name: &str);
    fn remove(&self, name: &str) -> Result<()>;
    /// A volume's data directory (inspect's `Source`).
    fn path(&self, name: &str) -> PathBuf;
}

pub(crate) fn clean(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

fn absolute(dst: &str, kind: &str) -> Result<String> {
    if !dst.starts_with('/') {
        return Err(ApiError::invalid(format!(
            "invalid mount config for type \"{kind}\": invalid mount path: '{dst}' mount path must be absolute"
        )));
    }
    if clean(dst) == "/" {
        return Err(ApiError::invalid(format!(
            "invalid mount config for type \"{kind}\": invalid specification: destination can't be '/'"
        )));
    }
    Ok(clean(dst))
}

/// `-v` entries: `/host:/ctr[:opts]`, `name:/ctr[:opts]`, `/ctr`.
fn parse_bind(spec: &str, vols: Option<&dyn VolumeService>) -> Result<MountPoint> {
    let bad = || ApiError::invalid(format!("invalid volume specification: '{spec}'"));
    let parts: Vec<&str> = spec.split(':').collect();
    let (src, dst, opts) = match parts.as_slice() {
        [d] => ("", *d, ""),
        [s, d] => (*s, *d, ""),
        [s, d, o] => (*s, *d, *o),
        _ => return Err(bad()),
    };
    if dst.is_empty() {
        return Err(bad());
    }
    let mut rw = true;
    let mut nocopy = false;
    let mut propagation = String::new();
    let mut mode = Vec::new();
    for o in opts.split(',').filter(|s| !s.is_empty()) {
        match o {
            "ro" => rw = false,
            "rw" => rw = true,
            "nocopy" => nocopy = true,
            "z" | "Z" => {}
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" => {
                propagation = o.to_string()
            }
            _ => return Err(bad()),
        }
        mode.push(o.to_string());
    }
    let mode = mode.join(",");
    if src.starts_with('/') {
        return Ok(MountPoint {
            kind: "bind".into(),
            name: String::new(),
            source: clean(src),
            destination: absolute(dst, "bind")?,
            mode,
            rw,
            propagation: if propagation.is_empty() {
                "rprivate".into()
            } else {
                propagation
            },
            anonymous: false,
            nocopy: false,
            tmpfs: String::new(),
            recursive_ro: String::new(),
        });
    }
    let dst = absolute(dst, "volume")?;
    let vols = vols.ok_or_else(|| ApiError::not_implemented("volumes are not enabled"))?;
    let anonymous = src.is_empty();
    let name = vols.ensure(
        (!anonymous).then_some(src),
        "local",
        BTreeMap::new(),
        BTreeMap::new(),
        anonymous,
    )?;
    Ok(MountPoint {
        kind: "volume".into(),
        name,
        source: String::new(),
        destination: dst,
        mode: if mode.is_empty() { "z".into() } else { mode },
        rw,
        propagation: String::new(),
        anonymous,
        nocopy,
        tmpfs: String::new(),
        recursive_ro: String::new(),
    })
}

/// One `HostConfig.Mounts` entry (`--mount`).
fn parse_mount(m: &Mount, vols: Option<&dyn VolumeService>) -> Result<MountPoint> {
    let (kind, target, source) = (m.r#type.as_str(), m.target.as_str(), m.source.as_str());
    let ro = m.read_only.unwrap_or(false);
    if target.is_empty() {
        return Err(ApiError::invalid(format!(
            "invalid mount config for type \"{kind}\": field Target must not be empty"
        )));
    }
    let dst = absolute(target, kind)?;
    match kind {
        "bind" => {
            if source.is_empty() {
                return Err(ApiError::invalid(
                    "invalid mount config for type \"bind\": field Source must not be empty",
                ));
            }
            let create = m
                .bind_options
                .as_ref()
                .and_then(|b| b.create_mountpoint)
                .unwrap_or(false);
            if !Path::new(source).exists() {
                // `CreateMountpoint` (API 1.42, what cri-dockerd sets): made as a
                // directory, as dockerd makes it.
                if !create {
                    return Err(ApiError::invalid(format!(
                        "invalid mount config for type \"bind\": bind source path does not exist: {source}"
                    )));
                }
                std::fs::create_dir_all(source).map_err(|e| {
                    ApiError::invalid(format!(
                        "invalid mount config for type \"bind\": creating {source}: {e}"
                    ))
                })?;
            }
            Ok(MountPoint {
                kind: "bind".into(),
                name: String::new(),
                source: clean(source),
                destination: dst,
                mode: String::new(),
                rw: !ro,
                propagation: m
                    .bind_options
                    .as_ref()
                    .and_then(|b| b.propagation.as_deref())
                    .filter(|s| !s.is_empty())
                    .unwrap_or("rprivate")
                    .to_string(),
                anonymous: false,
                nocopy: false,
                tmpfs: String::new(),
                recursive_ro: String::new(),
            })
        }
        "volume" => {
            let vols = vols.ok_or_else(|| ApiError::not_implemented("volumes are not enabled"))?;
            let vo = m.volume_options.clone().unwrap_or_default();
            let anonymous = source.is_empty();
            let dc = vo.driver_config.clone().unwrap_or_default();
            let driver = Some(dc.name.as_str())
                .filter(|d| !d.is_empty())
                .unwrap_or("local");
            let name = vols.ensure(
                (!anonymous).then_some(source),
                driver,
                dc.options.clone().unwrap_or_default(),
                vo.labels.clone().unwrap_or_default(),
                anonymous,
            )?;
            Ok(MountPoint {
                kind: "volume".into(),
                name,
                source: String::new(),
                destination: dst,
                mode: "z".into(),
                rw: !ro,
                propagation: String::new(),
                anonymous,
                nocopy: vo.no_copy.unwrap_or(false),
                tmpfs: String::new(),
                recursive_ro: String::new(),
            })
        }
        "tmpfs" => {
            if !source.is_empty() {
                return Err(ApiError::invalid(
                    "invalid mount config for type \"tmpfs\": field Source must not be specified",
                ));
            }
            let mut opts = Vec::new();
            let to = m.tmpfs_options.clone().unwrap_or_default();
            if let Some(sz) = to.size_bytes.filter(|s| *s > 0) {
                opts.push(format!("size={sz}"));
            }
            if let Some(mode) = to.mode.filter(|s| *s > 0) {
                opts.push(format!("mode={mode:o}"));
            }
            Ok(MountPoint {
                kind: "tmpfs".into(),
                name: String::new(),
                source: String::new(),
                destination: dst,
                mode: String::new(),
                rw: !ro,
                propagation: String::new(),
                anonymous: false,
                nocopy: false,
                tmpfs: opts.join(","),
                recursive_ro: String::new(),
            })
        }
        other => Err(ApiError::invalid(format!(
            "invalid mount config for type \"{other}\": mount type unknown"
        ))),
    }
}

/// Every mount a new container gets, volumes created as needed.
pub(crate) fn resolve(
    c: &Containers,
    config: &ContainerConfig,
    hc: &HostConfig,
    image_volumes: Option<&BTreeMap<String, Empty>>,
) -> Result<Vec<MountPoint>> {
    let vols = c.vols().map(|v| v.as_ref());
    let mut out: Vec<MountPoint> = Vec::new();
    let push = |m: MountPoint, out: &mut Vec<MountPoint>| -> Result<()> {
        if out.iter().any(|x| x.destination == m.destination) {
            return Err(ApiError::invalid(format!(
                "Duplicate mount point: {}",
                m.destination
            )));
        }
        out.push(m);
        Ok(())
    };
    for b in HostConfig::list(&hc.binds) {
        push(parse_bind(b, vols)?, &mut out)?;
    }
    for m in hc.mounts.iter().flatten() {
        push(parse_mount(m, vols)?, &mut out)?;
    }
    // --volumes-from: the other container's volumes and binds, at the same places.
    for spec in HostConfig::list(&hc.volumes_from) {
        let (name, mode) = spec.split_once(':').unwrap_or((spec.as_str(), ""));
        if !matches!(mode, "" | "ro" | "rw") {
            return Err(ApiError::invalid(format!(
                "invalid mode for volumes-from: {mode}"
            )));
        }
        let other = c.find(name)?.snapshot();
        for m in other.mounts.iter().filter(|m| m.kind != "tmpfs") {
            if out.iter().any(|x| x.destination == m.destination) {
                continue;
            }
            let mut m = m.clone();
            m.anonymous = false;
            if !mode.is_empty() {
                m.rw = mode == "rw";
            }
            out.push(m);
        }
    }
    // `-v /path` (the CLI sends it as Config.Volumes) and the image's VOLUMEs.
    let tmpfs: Vec<String> = hc.tmpfs.iter().flatten().map(|(k, _)| clean(k)).collect();
    let mut anon: Vec<String> = Vec::new();
    for v in [config.volumes.as_ref(), image_volumes]
        .into_iter()
        .flatten()
    {
        anon.extend(v.keys().cloned());
    }
    for dst in anon {
        let dst = absolute(&dst, "volume")?;
        if out.iter().any(|x| x.destination == dst) || tmpfs.contains(&dst) {
            continue;
        }
        let vs = vols.ok_or_else(|| ApiError::not_implemented("volumes are not enabled"))?;
        let name = vs.ensure(None, "local", BTreeMap::new(), BTreeMap::new(), true)?;
        out.push(MountPoint {
            kind: "volume".into(),
            name,
            source: String::new(),
            destination: dst,
            mode: String::new(),
            rw: true,
            propagation: String::new(),
            anonymous: true,
            nocopy: false,
            tmpfs: String::new(),
            recursive_ro: String::new(),
        });
    }
    Ok(out)
}

/// Inspect's `Mounts`.
pub(crate) fn view(c: &Containers, mounts: &[MountPoint]) -> Vec<MountView> {
    mounts
        .iter()
        .map(|m| match m.kind.as_str() {
            "volume" => MountView {
                kind: "volume".into(),
                name: Some(m.name.clone()),
                source: c
                    .vols()
                    .map(|v| v.path(&m.name).display().to_string())
                    .unwrap_or_default(),
                destination: m.destination.clone(),
                driver: Some("local".into()),
                mode: m.mode.clone(),
                rw: m.rw,
                propagation: String::new(),
            },
            "tmpfs" => MountView {
                kind: "tmpfs".into(),
                destination: m.destination.clone(),
                rw: m.rw,
                ..Default::default()
            },
            _ => MountView {
                kind: "bind".into(),
                source: m.source.clone(),
                destination: m.destination.clone(),
                mode: m.mode.clone(),
                rw: m.rw,
                propagation: m.propagation.clone(),
                ..Default::default()
            },
        })
        .collect()
}

/// Copies `from` (the image's content at a volume's mount point) into an empty
/// new volume, keeping owners, modes and links: dockerd's copy-up. Blocking.
pub(crate) fn copy_up(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let Ok(md) = std::fs::symlink_metadata(from) else {
        return Ok(());
    };
    if !md.is_dir() {
        return Ok(());
    }
    if std::fs::read_dir(to)?.next().is_some() {
        return Ok(());
    }
    fn walk(from: &Path, to: &Path) -> std::io::Result<()> {
        for e in std::fs::read_dir(from)? {
            let e = e?;
            let src = e.path();
            let dst = to.join(e.file_name());
            let md = std::fs::symlink_metadata(&src)?;
            let ft = md.file_type();
            if ft.is_dir() {
                std::fs::create_dir(&dst)?;
                walk(&src, &dst)?;
            } else if ft.is_symlink() {
                std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
            } else if ft.is_file() {
                std::fs::copy(&src, &dst)?;
            } else {
                // Devices, FIFOs, sockets: not volume content.
                continue;
            }
            let _ = std::os::unix::fs::lchown(&dst, Some(md.uid()), Some(md.gid()));
            if !ft.is_symlink() {
                std::fs::set_permissions(
                    &dst,
                    std::fs::Permissions::from_mode(md.mode() & 0o7777),
                )?;
            }
        }
        Ok(())
    }
    walk(from, to)?;
    let _ = std::os::unix::fs::lchown(to, Some(md.uid()), Some(md.gid()));
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(md.mode() & 0o7777))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_specs_parse_like_docker() {
        let m = parse_bind("/host/a/../b:/data:ro", None).expect("bind");
        assert_eq!(
            (
                m.kind.as_str(),
                m.source.as_str(),
                m.destination.as_str(),
                m.rw
            ),
            ("bind", "/host/b", "/data", false)
        );
        assert_eq!(m.propagation, "rprivate");
        assert!(parse_bind("/a:rel", None).is_err());
        assert!(parse_bind("/a:/b:bogus", None).is_err());
        assert!(parse_bind("/a:/", None).is_err());
        assert!(parse_bind("a:b:c:d", None).is_err());
        // Volumes need the volume service.
        assert!(parse_bind("named:/data", None).is_err());
    }

    #[test]
    fn copy_up_fills_only_an_empty_volume() {
        let d = std::env::temp_dir().join(format!("berth-copyup-{}", std::process::id()));
        let (src, dst) = (d.join("src"), d.join("dst"));
        std::fs::create_dir_all(src.join("sub")).expect("src");
        std::fs::create_dir_all(&dst).expect("dst");
        std::fs::write(src.join("sub/f"), b"x").expect("f");
        std::os::unix::fs::symlink("sub/f", src.join("l")).expect("link");
        copy_up(&src, &dst).expect("copy");
        assert_eq!(std::fs::read(dst.join("sub/f")).expect("read"), b"x");
        assert_eq!(
            std::fs::read_link(dst.join("l")).expect("link"),
            Path::new("sub/f")
        );
        std::fs::write(src.join("new"), b"y").expect("new");
        copy_up(&src, &dst).expect("again");
        assert!(
            !dst.join("new").exists(),
            "a volume with content is left alone"
        );
        let _ = std::fs::remove_dir_all(&d);
    }
}
