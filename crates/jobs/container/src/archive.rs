//! `docker cp` and `docker export`: `GET`/`HEAD`/`PUT /containers/{id}/archive`
//! and `GET /containers/{id}/export`.
//!
//! A container path is resolved the way the container would see it: component by
//! component, symlinks followed inside the container's own root (an absolute
//! link restarts at the container's `/`, `..` stops there), and paths under a
//! volume or bind mount land in that mount's source. The final open goes through
//! `openat2(RESOLVE_IN_ROOT)` against the root it landed in, so even a link the
//! container swaps in meanwhile cannot lead outside it.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use berth_api::{ApiError, Result};
use berth_engine::blocking::{body_channel, ChanReader, ChanWriter};
use berth_engine::{Job, Reply, StreamKind};
use bytes::Bytes;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use serde_json::json;
use tokio::sync::mpsc;

use crate::model::Record;
use crate::sys;
use crate::{Containers, Entry};

/// The container's filesystem as the host reaches it: its root, and the mounts
/// that cover parts of it, longest destination first.
struct Roots {
    rootfs: PathBuf,
    mounts: Vec<(String, PathBuf)>,
}

impl Roots {
    fn of(c: &Containers, rec: &Record, rootfs: PathBuf) -> Roots {
        let dir = c.dir(&rec.id);
        let mut mounts: Vec<(String, PathBuf)> = vec![
            ("/etc/hostname".into(), dir.join("hostname")),
            ("/etc/hosts".into(), dir.join("hosts")),
            ("/etc/resolv.conf".into(), dir.join("resolv.conf")),
        ];
        for m in &rec.mounts {
            match m.kind.as_str() {
                "bind" => mounts.push((m.destination.clone(), PathBuf::from(&m.source))),
                "volume" => {
                    if let Some(v) = c.vols() {
                        mounts.push((m.destination.clone(), v.path(&m.name)));
                    }
                }
                _ => {}
            }
        }
        mounts.sort_by_key(|(d, _)| std::cmp::Reverse(d.len()));
        Roots { rootfs, mounts }
    }

    /// The root a clean container path lives under and the path inside it.
    fn split(&self, cpath: &str) -> (PathBuf, PathBuf) {
        for (dest, src) in &self.mounts {
            if cpath == dest {
                return (src.clone(), PathBuf::new());
            }
            if let Some(rest) = cpath
                .strip_prefix(dest.as_str())
                .and_then(|r| r.strip_prefix('/'))
            {
                return (src.clone(), PathBuf::from(rest));
            }
        }
        (
            self.rootfs.clone(),
            PathBuf::from(cpath.trim_start_matches('/')),
        )
    }

    fn host(&self, cpath: &str) -> PathBuf {
        let (root, rel) = self.split(cpath);
        root.join(rel)
    }

    fn is_mount(&self, cpath: &str) -> bool {
        self.mounts.iter().any(|(d, _)| d == cpath)
    }

    /// Resolves a container path to a clean, symlink-free container path (the last
    /// component is followed only if `follow_last`).
    fn resolve(&self, path: &str, follow_last: bool) -> Result<String> {
        let mut queue: VecDeque<String> = path.split('/').map(str::to_string).collect();
        let mut done: Vec<String> = Vec::new();
        let mut links = 0;
        while let Some(comp) = queue.pop_front() {
            match comp.as_str() {
                "" | "." => continue,
                ".." => {
                    done.pop();
                    continue;
                }
                _ => {}
            }
            let last = queue.iter().all(|c| c.is_empty() || c == ".");
            let candidate = format!("/{}", [done.clone(), vec![comp.clone()]].concat().join("/"));
            if (last && !follow_last) || self.is_mount(&candidate) {
                done.push(comp);
                continue;
            }
            let host = self.host(&candidate);
            match std::fs::symlink_metadata(&host) {
                Ok(md) if md.file_type().is_symlink() => {
                    links += 1;
                    if links > 40 {
                        return Err(ApiError::invalid(format!("too many links in {path}")));
                    }
                    let target = std::fs::read_link(&host).map_err(sys)?;
                    let t = target.to_string_lossy().to_string();
                    if t.starts_with('/') {
                        done.clear();
                    }
                    for (i, c) in t.split('/').enumerate() {
                        queue.insert(i, c.to_string());
                    }
                }
                _ => done.push(comp),
            }
        }
        Ok(format!("/{}", done.join("/")))
    }

    /// Opens a resolved container path confined to its root: an `O_PATH` fd.
    fn open(&self, cpath: &str, follow_last: bool) -> std::io::Result<OwnedFd> {
        let (root, rel) = self.split(cpath);
        let rfd = nix::fcntl::open(
            &root,
            OFlag::O_PATH | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )?;
        // Safety: a fresh fd from open.
        let rfd = unsafe { OwnedFd::from_raw_fd(rfd) };
        if rel.as_os_str().is_empty() {
            return Ok(rfd);
        }
        let mut flags = OFlag::O_PATH | OFlag::O_CLOEXEC;
        if !follow_last {
            flags |= OFlag::O_NOFOLLOW;
        }
        let how = OpenHow::new()
            .flags(flags)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        let fd = openat2(rfd.as_raw_fd(), &rel, how)?;
        // Safety: a fresh fd from openat2.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

/// The container's root directory while a job works on it: the running
/// container's overlay, or one mounted for the occasion (and unmounted after).
struct Rootfs {
    path: PathBuf,
    temporary: bool,
}

impl Rootfs {
    fn get(c: &Containers, rec: &Record) -> Result<Rootfs> {
        let merged = c.dir(&rec.id).join("merged");
        if rec.state.running {
            return Ok(Rootfs {
                path: merged,
                temporary: false,
            });
        }
        let image = berth_graph::Digest::parse(&rec.image).map_err(sys)?;
        let lowers = c.graph.lowerdirs(&image).map_err(berth_apierr::graph)?;
        let dir = c.dir(&rec.id);
        std::fs::create_dir_all(&merged).map_err(sys)?;
        berth_graph::mount::mount_overlay(&lowers, &dir.join("upper"), &dir.join("work"), &merged)
            .map_err(sys)?;
        Ok(Rootfs {
            path: merged,
            temporary: true,
        })
    }
}

impl Drop for Rootfs {
    fn drop(&mut self) {
        if self.temporary {
            let _ = berth_graph::mount::unmount(&self.path);
        }
    }
}

/// Go's `os.FileMode` bits, which the CLI reads from the stat header.
fn go_mode(md: &std::fs::Metadata) -> u32 {
    let ft = md.file_type();
    let mut m = md.mode() & 0o777;
    use std::os::unix::fs::FileTypeExt;
    if ft.is_dir() {
        m |= 1 << 31;
    }
    if ft.is_symlink() {
        m |= 1 << 27;
    }
    if ft.is_block_device() {
        m |= 1 << 26;
    }
    if ft.is_char_device() {
        m |= (1 << 26) | (1 << 21);
    }
    if ft.is_fifo() {
        m |= 1 << 25;
    }
    if ft.is_socket() {
        m |= 1 << 24;
    }
    if md.mode() & 0o4000 != 0 {
        m |= 1 << 23;
    }
    if md.mode() & 0o2000 != 0 {
        m |= 1 << 22;
    }
    if md.mode() & 0o1000 != 0 {
        m |= 1 << 20;
    }
    m
}

fn not_found(path: &str, rec: &Record) -> ApiError {
    ApiError::not_found(format!(
        "Could not find the file {path} in container {}",
        rec.name.trim_start_matches('/')
    ))
}

/// Metadata of what an `O_PATH` fd names (a symlink itself when it is one; the
/// `/proc/self/fd` link would stat as a link whatever it names).
fn fd_metadata(fd: &OwnedFd) -> std::io::Result<std::fs::Metadata> {
    std::fs::File::from(fd.try_clone()?).metadata()
}

/// The `X-Docker-Container-Path-Stat` value for `path`.
fn stat_header(name: &str, md: &std::fs::Metadata, link: &str) -> String {
    let mtime = time::OffsetDateTime::from_unix_timestamp(md.mtime())
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    let v = json!({
        "name": name,
        "size": md.len(),
        "mode": go_mode(md),
        "mtime": mtime,
        "linkTarget": link,
    });
    base64::engine::general_purpose::STANDARD.encode(v.to_string())
}

/// Stat of a container path: (header value, host path via the fd, is_dir, fd).
fn stat(
    c: &Containers,
    rec: &Record,
    roots: &Roots,
    path: &str,
) -> Result<(String, OwnedFd, bool)> {
    if path.is_empty() {
        return Err(ApiError::invalid("Path cannot be empty"));
    }
    let cpath = roots.resolve(path, false)?;
    let fd = roots
        .open(&cpath, false)
        .map_err(|_| not_found(path, rec))?;
    let md = fd_metadata(&fd).map_err(|_| not_found(path, rec))?;
    // An O_PATH fd of a symlink stats as the link itself.
    let link = if md.file_type().is_symlink() {
        nix::fcntl::readlinkat(Some(fd.as_raw_fd()), "")
            .map(|p| p.to_string_lossy().to_string())
            .unwrap_or_default()
    } else {
        String::new()
    };
    let name = Path::new(path.trim_end_matches('/'))
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "/".into());
    let _ = c;
    Ok((stat_header(&name, &md, &link), fd, md.is_dir()))
}

fn entry_of(c: &Containers, job: &Job) -> Result<Arc<Entry>> {
    c.find(job.args.required("name")?)
}

/// `HEAD /containers/{id}/archive?path=`.
pub(crate) async fn head(job: Job, c: Arc<Containers>) -> Result<Reply> {
    let rec = entry_of(&c, &job)?.snapshot();
    let path = job.args.str("path").unwrap_or("").to_string();
    let c2 = c.clone();
    let header = tokio::task::spawn_blocking(move || -> Result<String> {
        let root = Rootfs::get(&c2, &rec)?;
        let roots = Roots::of(&c2, &rec, root.path.clone());
        Ok(stat(&c2, &rec, &roots, &path)?.0)
    })
    .await
    .map_err(sys)??;
    Ok(Reply::empty(200).with_header("X-Docker-Container-Path-Stat", header))
}

/// `GET /containers/{id}/archive?path=`: a tar of the path, named by its base name.
pub(crate) async fn get(mut job: Job, c: Arc<Containers>) -> Result<Reply> {
    let rec = entry_of(&c, &job)?.snapshot();
    let path = job.args.str("path").unwrap_or("").to_string();
    // Stat first, so a missing path is a plain 404 before the stream starts.
    let (c2, r2, p2) = (c.clone(), rec.clone(), path.clone());
    let header = tokio::task::spawn_blocking(move || -> Result<String> {
        let root = Rootfs::get(&c2, &r2)?;
        let roots = Roots::of(&c2, &r2, root.path.clone());
        Ok(stat(&c2, &r2, &roots, &p2)?.0)
    })
    .await
    .map_err(sys)??;
    let out = job.stream_with_headers(
        "application/x-tar",
        StreamKind::Raw,
        vec![("X-Docker-Container-Path-Stat", header.into())],
    )?;
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let root = Rootfs::get(&c, &rec).map_err(|e| std::io::Error::other(e.message))?;
        let roots = Roots::of(&c, &rec, root.path.clone());
        let (_, fd, is_dir) =
            stat(&c, &rec, &roots, &path).map_err(|e| std::io::Error::other(e.message))?;
        let name = Path::new(path.trim_end_matches('/'))
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| ".".into());
        let mut b = tar::Builder::new(ChanWriter::new(tx));
        b.follow_symlinks(false);
        let proc = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
        if is_dir {
            // Through the magic link of the confined fd: nothing below it is a
            // link that gets followed.
            b.append_dir_all(&name, &proc)?;
        } else {
            let md = fd_metadata(&fd)?;
            if md.file_type().is_symlink() {
                let target = nix::fcntl::readlinkat(Some(fd.as_raw_fd()), "")
                    .map_err(std::io::Error::from)?;
                let mut h = tar::Header::new_gnu();
                h.set_metadata(&md);
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                b.append_link(&mut h, &name, target)?;
            } else {
                // Reopen readable through the confined fd.
                let mut f = std::fs::File::open(&proc)?;
                b.append_file(&name, &mut f)?;
            }
        }
        b.into_inner()?.flush_all()
    });
    berth_engine::blocking::forward(&job.cancel_token(), rx, &out).await?;
    writer
        .await
        .map_err(sys)?
        .map_err(|e| ApiError::system(format!("archive: {e}")))?;
    Ok(Reply::empty(200))
}

trait FlushAll {
    fn flush_all(self) -> std::io::Result<()>;
}

impl FlushAll for ChanWriter {
    fn flush_all(mut self) -> std::io::Result<()> {
        std::io::Write::flush(&mut self)
    }
}

/// `PUT /containers/{id}/archive?path=`: unpacks a tar into a directory.
pub(crate) async fn put(mut job: Job, c: Arc<Containers>) -> Result<Reply> {
    let rec = entry_of(&c, &job)?.snapshot();
    let path = job.args.str("path").unwrap_or("").to_string();
    if path.is_empty() {
        return Err(ApiError::invalid("Path cannot be empty"));
    }
    let copy_ids = job.args.bool("copyUIDGID");
    let no_overwrite = job.args.bool("noOverwriteDirNonDir");
    if rec.host_config.readonly_rootfs {
        return Err(ApiError::forbidden("container rootfs is marked read-only"));
    }
    let (rx, feeder) = body_channel(job.args.take_body());
    let res = tokio::task::spawn_blocking(move || -> Result<()> {
        let root = Rootfs::get(&c, &rec)?;
        let roots = Roots::of(&c, &rec, root.path.clone());
        let cpath = roots.resolve(&path, true)?;
        let fd = roots
            .open(&cpath, true)
            .map_err(|_| not_found(&path, &rec))?;
        let proc = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
        let md = fd_metadata(&fd).map_err(|_| not_found(&path, &rec))?;
        if !md.is_dir() {
            return Err(ApiError::invalid("extraction point is not a directory"));
        }
        // Without copyUIDGID the files belong to the container's root, as dockerd.
        let owner = if copy_ids { None } else { Some((0, 0)) };
        berth_graph::extract::extract_files(
            ChanReader::new(rx),
            &proc,
            berth_graph::extract::FileOptions {
                owner,
                no_overwrite_dir_non_dir: no_overwrite,
            },
        )
        .map_err(|e| ApiError::invalid(format!("extracting the archive: {e}")))?;
        Ok(())
    })
    .await
    .map_err(sys)?;
    feeder.abort();
    res?;
    Ok(Reply::empty(200))
}

/// `GET /containers/{id}/export`: the container's whole filesystem as a tar.
pub(crate) async fn export(mut job: Job, c: Arc<Containers>) -> Result<Reply> {
    let rec = entry_of(&c, &job)?.snapshot();
    let out = job.stream("application/octet-stream", StreamKind::Raw)?;
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let root = Rootfs::get(&c, &rec).map_err(|e| std::io::Error::other(e.message))?;
        let mut b = tar::Builder::new(ChanWriter::new(tx));
        b.follow_symlinks(false);
        for e in std::fs::read_dir(&root.path)? {
            let e = e?;
            let name = e.file_name();
            let p = e.path();
            if e.file_type()?.is_dir() {
                b.append_dir_all(&name, &p)?;
            } else {
                b.append_path_with_name(&p, &name)?;
            }
        }
        b.into_inner()?.flush_all()
    });
    berth_engine::blocking::forward(&job.cancel_token(), rx, &out).await?;
    writer
        .await
        .map_err(sys)?
        .map_err(|e| ApiError::system(format!("export: {e}")))?;
    Ok(Reply::empty(200))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_resolve_inside_the_container() {
        let d = std::env::temp_dir().join(format!("berth-roots-{}", std::process::id()));
        let root = d.join("rootfs");
        let vol = d.join("vol");
        std::fs::create_dir_all(root.join("etc")).expect("etc");
        std::fs::create_dir_all(&vol).expect("vol");
        std::fs::write(root.join("etc/hostname"), b"ctr").expect("hostname");
        std::os::unix::fs::symlink("/", root.join("link")).expect("link");
        std::os::unix::fs::symlink("../../../../etc", root.join("up")).expect("up");
        std::os::unix::fs::symlink("/data/x", root.join("tovol")).expect("tovol");
        let roots = Roots {
            rootfs: root.clone(),
            mounts: vec![("/data".into(), vol.clone())],
        };
        assert_eq!(
            roots.resolve("/link/etc/hostname", false).expect("r"),
            "/etc/hostname"
        );
        assert_eq!(
            roots.resolve("/up/hostname", false).expect("r"),
            "/etc/hostname"
        );
        assert_eq!(roots.resolve("/tovol", true).expect("r"), "/data/x");
        assert_eq!(roots.resolve("/tovol", false).expect("r"), "/tovol");
        assert_eq!(roots.split("/data/x"), (vol.clone(), PathBuf::from("x")));
        assert_eq!(
            roots.split("/etc/hostname"),
            (root.clone(), PathBuf::from("etc/hostname"))
        );
        let fd = roots.open("/etc/hostname", false).expect("open");
        let got = std::fs::read(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("read");
        assert_eq!(got, b"ctr");
        let _ = std::fs::remove_dir_all(&d);
    }
}
