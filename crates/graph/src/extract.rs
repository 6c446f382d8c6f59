//! Unpacking a layer tar into a fresh directory, safely.
//!
//! Every path is resolved with `openat2(RESOLVE_IN_ROOT)` against the layer directory,
//! so `..`, absolute paths and symlinks (planted earlier in the same tar) are all
//! resolved as if the layer directory were `/`: nothing can be created or linked
//! outside it, as dockerd gets by unpacking in a chroot. Entries are created with
//! `*at` calls relative to the resolved parent, never following a final symlink.
//! Whiteouts become overlay whiteouts: `.wh.NAME` a 0/0 character device,
//! `.wh..wh..opq` the `trusted.overlay.opaque` xattr on the directory.

use std::ffi::CString;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fchmod, futimens, mkdirat, mknodat, utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchownat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};
use tar::EntryType;

use crate::Error;

/// What an extraction produced.
#[derive(Debug, Clone, Copy, Default)]
pub struct Extracted {
    /// Bytes of file content in the layer (Docker's layer size).
    pub size: u64,
    pub entries: u64,
}

fn bad(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::Layer(format!("{}: {what}", path.display()))
}

/// Normalizes an entry path to components below the root. `..` is refused outright:
/// well-formed layers never contain it and dockerd refuses it too.
fn clean(path: &Path) -> Result<PathBuf, Error> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => return Err(bad(path, "path contains \"..\"")),
            Component::Prefix(_) => return Err(bad(path, "invalid path")),
        }
    }
    Ok(out)
}

fn errno(path: &Path, op: &str, e: Errno) -> Error {
    bad(path, format!("{op}: {e}"))
}

/// How [`extract_files`] treats an archive that is not a layer (`docker cp`).
#[derive(Debug, Clone, Copy, Default)]
pub struct FileOptions {
    /// Every entry gets this owner instead of the archive's (`docker cp` without
    /// `copyUIDGID` gives files to the container's root).
    pub owner: Option<(u32, u32)>,
    /// Refuse to replace a directory with a non-directory or the reverse.
    pub no_overwrite_dir_non_dir: bool,
}

struct Extractor {
    root: OwnedFd,
    marks: Option<crate::tarsplit::Marks>,
    /// None: a layer (whiteouts apply). Some: plain files.
    files: Option<FileOptions>,
    is_root: bool,
    /// Directories whose metadata is applied last (adding entries changes mtimes).
    dirs: Vec<(PathBuf, u32, u64, u64, i64)>,
    stats: Extracted,
}

fn how(flags: OFlag) -> OpenHow {
    OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS)
}

impl Extractor {
    /// Opens (creating as needed, mode 0755) the directory `rel` inside the root.
    fn dir(&self, rel: &Path) -> Result<OwnedFd, Error> {
        let mut fd = dup(&self.root, rel)?;
        for c in rel.components() {
            let name = c.as_os_str();
            let next = match openat2(
                fd.as_raw_fd(),
                name,
                how(OFlag::O_PATH | OFlag::O_DIRECTORY),
            ) {
                Ok(f) => f,
                Err(Errno::ENOENT) => {
                    mkdirat(Some(fd.as_raw_fd()), name, Mode::from_bits_truncate(0o755))
                        .map_err(|e| errno(rel, "mkdir", e))?;
                    openat2(
                        fd.as_raw_fd(),
                        name,
                        how(OFlag::O_PATH | OFlag::O_DIRECTORY),
                    )
                    .map_err(|e| errno(rel, "open", e))?
                }
                Err(e) => return Err(errno(rel, "open parent", e)),
            };
            // Safety: openat2 returned a new fd that nothing else owns.
            fd = unsafe { OwnedFd::from_raw_fd(next) };
        }
        Ok(fd)
    }

    /// Removes whatever is at `name` in `parent` (a file, link or whole directory).
    fn remove(&self, parent: &OwnedFd, name: &std::ffi::OsStr, path: &Path) -> Result<(), Error> {
        match unlinkat(Some(parent.as_raw_fd()), name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(Errno::EISDIR) => {
                // The magic link names the already-resolved parent; remove_dir_all does
                // not follow symlinks inside the tree.
                let p = PathBuf::from(format!("/proc/self/fd/{}", parent.as_raw_fd())).join(name);
                std::fs::remove_dir_all(&p)
                    .map_err(|e| bad(path, format!("replacing directory: {e}")))
            }
            Err(e) => Err(errno(path, "unlink", e)),
        }
    }

    fn entry<R: Read>(&mut self, mut e: tar::Entry<'_, R>) -> Result<(), Error> {
        let raw = e
            .path()
            .map_err(|err| Error::Layer(format!("bad entry name: {err}")))?
            .into_owned();
        let path = clean(&raw)?;
        let kind = e.header().entry_type();
        if matches!(
            kind,
            EntryType::XGlobalHeader
                | EntryType::XHeader
                | EntryType::GNULongName
                | EntryType::GNULongLink
        ) {
            return Ok(());
        }
        let Some(name) = path.file_name().map(|n| n.to_os_string()) else {
            // The root itself ("./"): its metadata is the layer directory's.
            return Ok(());
        };
        let parent_rel = path.parent().unwrap_or(Path::new("")).to_path_buf();
        let parent = self.dir(&parent_rel)?;
        let name_str = name.to_string_lossy();
        self.stats.entries += 1;

        if let Some(o) = self.files {
            if o.no_overwrite_dir_non_dir {
                let existing = openat2(
                    parent.as_raw_fd(),
                    name.as_os_str(),
                    how(OFlag::O_PATH | OFlag::O_NOFOLLOW),
                )
                .ok()
                .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
                .and_then(|fd| nix::sys::stat::fstat(fd.as_raw_fd()).ok());
                if let Some(st) = existing {
                    let is_dir = (st.st_mode & libc::S_IFMT) == libc::S_IFDIR;
                    if is_dir != (kind == EntryType::Directory) {
                        return Err(bad(
                            &path,
                            if is_dir {
                                "cannot overwrite directory with non-directory"
                            } else {
                                "cannot overwrite non-directory with directory"
                            },
                        ));
                    }
                }
            }
        }
        let (uid, gid) = match self.files.and_then(|o| o.owner) {
            Some((u, g)) => (u64::from(u), u64::from(g)),
            None => (e.header().uid().unwrap_or(0), e.header().gid().unwrap_or(0)),
        };
        if let Some(hidden) = name_str
            .strip_prefix(".wh.")
            .filter(|_| self.files.is_none())
        {
            if hidden == ".wh..opq" {
                set_xattr_at(&parent, None, "trusted.overlay.opaque", b"y")
                    .map_err(|err| bad(&path, err))?;
            } else {
                let hidden = std::ffi::OsString::from(hidden);
                self.remove(&parent, &hidden, &path)?;
                mknodat(
                    Some(parent.as_raw_fd()),
                    hidden.as_os_str(),
                    SFlag::S_IFCHR,
                    Mode::empty(),
                    0,
                )
                .map_err(|err| errno(&path, "whiteout", err))?;
            }
            return Ok(());
        }

        let h = e.header();
        // Empty numeric fields read as 0, as Go's archive/tar (and so dockerd) reads them.
        let mode = h.mode().unwrap_or(0o644) & 0o7777;
        let mtime = h.mtime().unwrap_or(0) as i64;
        let pfd = Some(parent.as_raw_fd());
        match kind {
            EntryType::Directory => {
                match openat2(
                    parent.as_raw_fd(),
                    name.as_os_str(),
                    how(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW),
                ) {
                    Ok(fd) => drop(unsafe { OwnedFd::from_raw_fd(fd) }),
                    Err(_) => {
                        self.remove(&parent, &name, &path)?;
                        mkdirat(pfd, name.as_os_str(), Mode::from_bits_truncate(0o700))
                            .map_err(|err| errno(&path, "mkdir", err))?;
                    }
                }
                self.dirs.push((path.clone(), mode, uid, gid, mtime));
                let xattrs = pax_xattrs(&mut e);
                if !xattrs.is_empty() {
                    let fd = openat2(
                        parent.as_raw_fd(),
                        name.as_os_str(),
                        how(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW),
                    )
                    .map_err(|err| errno(&path, "open dir", err))?;
                    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                    for (k, v) in xattrs {
                        set_xattr_at(&fd, None, &k, &v).map_err(|err| bad(&path, err))?;
                    }
                }
            }
            EntryType::Regular | EntryType::Continuous => {
                if let Some(m) = &self.marks {
                    m.file(e.raw_file_position(), e.size(), &path)
                        .map_err(|err| bad(&path, err))?;
                }
                self.remove(&parent, &name, &path)?;
                let fd = openat(
                    pfd,
                    name.as_os_str(),
                    OFlag::O_CREAT
                        | OFlag::O_EXCL
                        | OFlag::O_WRONLY
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(0o600),
                )
                .map_err(|err| errno(&path, "create", err))?;
                let xattrs = pax_xattrs(&mut e);
                let mut f = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
                let n = io::copy(&mut e, &mut f)
                    .map_err(|err| bad(&path, format!("writing: {err}")))?;
                self.stats.size += n;
                let fd = OwnedFd::from(f);
                if self.is_root {
                    nix::unistd::fchown(
                        fd.as_raw_fd(),
                        Some(Uid::from_raw(uid as u32)),
                        Some(Gid::from_raw(gid as u32)),
                    )
                    .map_err(|err| errno(&path, "chown", err))?;
                }
                for (k, v) in xattrs {
                    set_xattr_at(&fd, None, &k, &v).map_err(|err| bad(&path, err))?;
                }
                // After chown, which clears set-id bits.
                fchmod(fd.as_raw_fd(), Mode::from_bits_truncate(mode))
                    .map_err(|err| errno(&path, "chmod", err))?;
                let t = TimeSpec::new(mtime, 0);
                futimens(fd.as_raw_fd(), &t, &t).map_err(|err| errno(&path, "utimes", err))?;
            }
            EntryType::Symlink => {
                let target = e
                    .link_name()
                    .map_err(|err| bad(&path, err))?
                    .ok_or_else(|| bad(&path, "symlink without target"))?
                    .into_owned();
                self.remove(&parent, &name, &path)?;
                symlinkat(target.as_os_str(), pfd, name.as_os_str())
                    .map_err(|err| errno(&path, "symlink", err))?;
                self.owner_and_time(&parent, &name, &path, uid, gid, mtime)?;
            }
            EntryType::Link => {
                let target = e
                    .link_name()
                    .map_err(|err| bad(&path, err))?
                    .ok_or_else(|| bad(&path, "hard link without target"))?;
                let target = clean(&target)?;
                let tfd = openat2(
                    self.root.as_raw_fd(),
                    target.as_os_str(),
                    how(OFlag::O_PATH | OFlag::O_NOFOLLOW),
                )
                .map_err(|err| {
                    errno(
                        &path,
                        &format!("hard link target {}", target.display()),
                        err,
                    )
                })?;
                let tfd = unsafe { OwnedFd::from_raw_fd(tfd) };
                self.remove(&parent, &name, &path)?;
                // AT_EMPTY_PATH links the very inode resolved inside the root (needs
                // CAP_DAC_READ_SEARCH, which the daemon has as root).
                let empty = CString::default();
                let cname =
                    CString::new(name.as_encoded_bytes()).map_err(|_| bad(&path, "NUL in name"))?;
                // Safety: valid fds and NUL-terminated strings that outlive the call.
                let r = unsafe {
                    libc::linkat(
                        tfd.as_raw_fd(),
                        empty.as_ptr(),
                        parent.as_raw_fd(),
                        cname.as_ptr(),
                        libc::AT_EMPTY_PATH,
                    )
                };
                Errno::result(r).map_err(|err| errno(&path, "link", err))?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let (sflag, dev) = match kind {
                    EntryType::Fifo => (SFlag::S_IFIFO, 0),
                    k => {
                        if !self.is_root {
                            tracing::debug!(path = %path.display(), "skipping device node: not root");
                            return Ok(());
                        }
                        let major = e.header().device_major().ok().flatten().unwrap_or(0) as u64;
                        let minor = e.header().device_minor().ok().flatten().unwrap_or(0) as u64;
                        let f = if k == EntryType::Char {
                            SFlag::S_IFCHR
                        } else {
                            SFlag::S_IFBLK
                        };
                        (f, nix::sys::stat::makedev(major, minor))
                    }
                };
                self.remove(&parent, &name, &path)?;
                mknodat(
                    pfd,
                    name.as_os_str(),
                    sflag,
                    Mode::from_bits_truncate(mode),
                    dev,
                )
                .map_err(|err| errno(&path, "mknod", err))?;
                self.owner_and_time(&parent, &name, &path, uid, gid, mtime)?;
            }
            other => {
                tracing::warn!(path = %path.display(), kind = ?other, "skipping unsupported tar entry")
            }
        }
        Ok(())
    }

    fn owner_and_time(
        &self,
        parent: &OwnedFd,
        name: &std::ffi::OsStr,
        path: &Path,
        uid: u64,
        gid: u64,
        mtime: i64,
    ) -> Result<(), Error> {
        if self.is_root {
            fchownat(
                Some(parent.as_raw_fd()),
                name,
                Some(Uid::from_raw(uid as u32)),
                Some(Gid::from_raw(gid as u32)),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(|e| errno(path, "chown", e))?;
        }
        let t = TimeSpec::new(mtime, 0);
        utimensat(
            Some(parent.as_raw_fd()),
            name,
            &t,
            &t,
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(|e| errno(path, "utimes", e))
    }

    fn finish(mut self) -> Result<Extracted, Error> {
        // Deepest first, so a parent's mtime is set after its children.
        self.dirs
            .sort_by_key(|d| std::cmp::Reverse(d.0.components().count()));
        for (path, mode, uid, gid, mtime) in std::mem::take(&mut self.dirs) {
            let fd = openat2(
                self.root.as_raw_fd(),
                path.as_os_str(),
                how(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW),
            )
            .map_err(|e| errno(&path, "open dir", e))?;
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            if self.is_root {
                nix::unistd::fchown(
                    fd.as_raw_fd(),
                    Some(Uid::from_raw(uid as u32)),
                    Some(Gid::from_raw(gid as u32)),
                )
                .map_err(|e| errno(&path, "chown", e))?;
            }
            fchmod(fd.as_raw_fd(), Mode::from_bits_truncate(mode))
                .map_err(|e| errno(&path, "chmod", e))?;
            let t = TimeSpec::new(mtime, 0);
            futimens(fd.as_raw_fd(), &t, &t).map_err(|e| errno(&path, "utimes", e))?;
        }
        Ok(self.stats)
    }
}

fn dup(fd: &OwnedFd, rel: &Path) -> Result<OwnedFd, Error> {
    fd.try_clone().map_err(|e| bad(rel, format!("dup: {e}")))
}

fn pax_xattrs<R: Read>(e: &mut tar::Entry<'_, R>) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    if let Ok(Some(exts)) = e.pax_extensions() {
        for ext in exts.flatten() {
            if let Ok(k) = ext.key() {
                if let Some(name) = k.strip_prefix("SCHILY.xattr.") {
                    out.push((name.to_string(), ext.value_bytes().to_vec()));
                }
            }
        }
    }
    out
}

fn set_xattr_at(fd: &OwnedFd, _name: Option<&str>, key: &str, value: &[u8]) -> io::Result<()> {
    let k =
        CString::new(key).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "xattr name"))?;
    // An O_PATH fd cannot take xattrs; go through its /proc magic link instead.
    let p = CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map_err(|_| io::Error::other("path"))?;
    let r = unsafe {
        libc::setxattr(
            p.as_ptr(),
            k.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Unpacks the tar stream `r` into `dest`, an existing empty directory.
pub fn extract<R: Read>(r: R, dest: &Path) -> Result<Extracted, Error> {
    extract_with(r, dest, None, None)
}

/// Unpacks a plain archive (no whiteouts) into an existing directory that may
/// have content, with the same confinement as layers: nothing lands outside
/// `dest`, whatever the archive or the directory's symlinks say.
pub fn extract_files<R: Read>(r: R, dest: &Path, opts: FileOptions) -> Result<Extracted, Error> {
    extract_with(r, dest, None, Some(opts))
}

/// Unpacks and records the tar (see [`crate::tarsplit`]) into `split`, reading `r`
/// to its end so that a hash taken around `r` covers the whole stream.
pub fn extract_recorded<R: Read>(r: R, dest: &Path, split: &Path) -> Result<Extracted, Error> {
    let (rec, marks) = crate::tarsplit::Recorder::new(r);
    let x = extract_with(rec, dest, Some(marks.clone()), None)?;
    marks.finish(split).map_err(|e| bad(split, e))?;
    Ok(x)
}

fn extract_with<R: Read>(
    r: R,
    dest: &Path,
    marks: Option<crate::tarsplit::Marks>,
    files: Option<FileOptions>,
) -> Result<Extracted, Error> {
    let root = nix::fcntl::open(
        dest,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| errno(dest, "open layer dir", e))?;
    let mut x = Extractor {
        marks,
        files,
        // Safety: a fresh fd from open.
        root: unsafe { OwnedFd::from_raw_fd(root) },
        is_root: nix::unistd::geteuid().is_root(),
        dirs: Vec::new(),
        stats: Extracted::default(),
    };
    let mut ar = tar::Archive::new(r);
    for entry in ar.entries().map_err(tar_error)? {
        x.entry(entry.map_err(tar_error)?)?;
    }
    // The end-of-archive blocks and any trailing bytes belong to the layer's digest.
    let mut r = ar.into_inner();
    io::copy(&mut r, &mut io::sink()).map_err(tar_error)?;
    x.finish()
}

/// An error reading the archive. The tar crate's own complaints about a broken
/// archive (with the header's raw bytes in them) become Go's archive/tar words,
/// which dockerd users know; the reader's errors (decompression, digests) stay.
fn tar_error(e: io::Error) -> Error {
    let m = e.to_string();
    let what =
        if e.kind() == io::ErrorKind::UnexpectedEof || m.contains("failed to read entire block") {
            "unexpected EOF".to_string()
        } else if m.contains("when getting cksum")
            || m.contains("checksum mismatch")
            || m.contains("numeric field")
        {
            "archive/tar: invalid tar header".to_string()
        } else {
            m
        };
    Error::Layer(format!("reading tar: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

    /// A tar entry with a raw name (the tar crate refuses `..` in `set_path`).
    fn raw(
        b: &mut tar::Builder<Vec<u8>>,
        name: &str,
        kind: EntryType,
        mode: u32,
        link: Option<&str>,
        data: &[u8],
    ) {
        let mut h = tar::Header::new_old();
        {
            let old = h.as_old_mut();
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            if let Some(l) = link {
                old.linkname[..l.len()].copy_from_slice(l.as_bytes());
            }
        }
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_mtime(1_000_000);
        h.set_cksum();
        b.append(&h, data).expect("append");
    }

    fn tar_of(f: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        f(&mut b);
        b.into_inner().expect("tar")
    }

    struct Dirs {
        _t: tempfile::TempDir,
        dest: PathBuf,
        outside: PathBuf,
    }

    fn dirs() -> Dirs {
        let t = tempfile::tempdir().expect("tmp");
        let dest = t.path().join("layer");
        let outside = t.path().join("outside");
        std::fs::create_dir_all(&dest).expect("dest");
        std::fs::create_dir_all(&outside).expect("outside");
        Dirs {
            _t: t,
            dest,
            outside,
        }
    }

    fn outside_is_empty(d: &Dirs) -> bool {
        std::fs::read_dir(&d.outside).expect("ls").next().is_none()
    }

    #[test]
    fn unpacks_files_dirs_links_and_modes() {
        let d = dirs();
        let t = tar_of(|b| {
            raw(b, "etc/", EntryType::Directory, 0o755, None, b"");
            raw(b, "etc/hello", EntryType::Regular, 0o640, None, b"hi there");
            raw(b, "bin/tool", EntryType::Regular, 0o4755, None, b"#!");
            raw(
                b,
                "bin/alias",
                EntryType::Link,
                0o755,
                Some("bin/tool"),
                b"",
            );
            raw(
                b,
                "etc/sym",
                EntryType::Symlink,
                0o777,
                Some("/etc/hello"),
                b"",
            );
            raw(b, "tmp/", EntryType::Directory, 0o1777, None, b"");
        });
        let x = extract(&t[..], &d.dest).expect("extract");
        assert_eq!(x.size, 10);
        assert_eq!(
            std::fs::read(d.dest.join("etc/hello")).expect("read"),
            b"hi there"
        );
        let m = std::fs::metadata(d.dest.join("etc/hello")).expect("meta");
        assert_eq!(m.permissions().mode() & 0o7777, 0o640);
        assert_eq!(m.mtime(), 1_000_000);
        assert_eq!(
            std::fs::metadata(d.dest.join("bin/tool"))
                .expect("meta")
                .permissions()
                .mode()
                & 0o7777,
            0o4755
        );
        assert_eq!(
            std::fs::metadata(d.dest.join("bin/alias"))
                .expect("meta")
                .ino(),
            std::fs::metadata(d.dest.join("bin/tool"))
                .expect("meta")
                .ino()
        );
        assert_eq!(
            std::fs::read_link(d.dest.join("etc/sym")).expect("link"),
            PathBuf::from("/etc/hello")
        );
        assert_eq!(
            std::fs::metadata(d.dest.join("tmp"))
                .expect("meta")
                .permissions()
                .mode()
                & 0o7777,
            0o1777
        );
    }

    #[test]
    fn refuses_parent_dir_escapes() {
        let d = dirs();
        let t = tar_of(|b| raw(b, "../outside/pwned", EntryType::Regular, 0o644, None, b"x"));
        let e = extract(&t[..], &d.dest).expect_err("must refuse ..");
        assert!(e.to_string().contains(".."), "{e}");
        assert!(outside_is_empty(&d));
    }

    #[test]
    fn absolute_paths_stay_inside() {
        let d = dirs();
        let abs = format!("{}/pwned", d.outside.display());
        let t = tar_of(|b| raw(b, &abs, EntryType::Regular, 0o644, None, b"x"));
        extract(&t[..], &d.dest).expect("absolute path is taken as relative");
        assert!(outside_is_empty(&d));
        assert!(d.dest.join(abs.trim_start_matches('/')).exists());
    }

    #[test]
    fn symlinks_are_never_followed_out() {
        let d = dirs();
        let target = d.outside.display().to_string();
        let t = tar_of(|b| {
            raw(b, "escape", EntryType::Symlink, 0o777, Some(&target), b"");
            raw(b, "escape/pwned", EntryType::Regular, 0o644, None, b"x");
        });
        let _ = extract(&t[..], &d.dest);
        assert!(outside_is_empty(&d), "wrote through a symlink");
        let t = tar_of(|b| {
            raw(b, "root", EntryType::Symlink, 0o777, Some("/"), b"");
            raw(b, "root/etc/pwned", EntryType::Regular, 0o644, None, b"x");
            raw(
                b,
                "up",
                EntryType::Symlink,
                0o777,
                Some("../../../../../.."),
                b"",
            );
            raw(b, "up/tmp/pwned2", EntryType::Regular, 0o644, None, b"x");
        });
        let d2 = dirs();
        extract(&t[..], &d2.dest).expect("resolved inside the layer");
        // Both landed inside the layer, as if it were the root.
        assert!(d2.dest.join("etc/pwned").exists());
        assert!(d2.dest.join("tmp/pwned2").exists());
        assert!(!Path::new("/etc/pwned").exists());
        assert!(outside_is_empty(&d2));
    }

    #[test]
    fn hard_links_cannot_reach_outside() {
        let d = dirs();
        std::fs::write(d.outside.join("secret"), b"s").expect("secret");
        let t = tar_of(|b| {
            raw(
                b,
                "steal",
                EntryType::Link,
                0o644,
                Some("../outside/secret"),
                b"",
            )
        });
        assert!(extract(&t[..], &d.dest).is_err());
        let abs = format!("{}/secret", d.outside.display());
        let t = tar_of(|b| raw(b, "steal", EntryType::Link, 0o644, Some(&abs), b""));
        assert!(
            extract(&t[..], &d.dest).is_err(),
            "absolute target resolves inside and does not exist"
        );
        let t = tar_of(|b| {
            raw(
                b,
                "esc",
                EntryType::Symlink,
                0o777,
                Some(&d.outside.display().to_string()),
                b"",
            );
            raw(b, "steal", EntryType::Link, 0o644, Some("esc/secret"), b"");
        });
        assert!(extract(&t[..], &d.dest).is_err());
        assert_eq!(
            std::fs::metadata(d.outside.join("secret"))
                .expect("meta")
                .nlink(),
            1
        );
    }

    #[test]
    fn whiteouts_become_overlay_whiteouts() {
        let d = dirs();
        let t = tar_of(|b| {
            raw(b, "etc/.wh.gone", EntryType::Regular, 0o644, None, b"");
            raw(
                b,
                "opaque/.wh..wh..opq",
                EntryType::Regular,
                0o644,
                None,
                b"",
            );
        });
        extract(&t[..], &d.dest).expect("extract");
        let m = std::fs::symlink_metadata(d.dest.join("etc/gone")).expect("whiteout");
        assert!(m.file_type().is_char_device());
        assert_eq!(m.rdev(), 0);
        let p = std::ffi::CString::new(d.dest.join("opaque").display().to_string()).expect("c");
        let k = std::ffi::CString::new("trusted.overlay.opaque").expect("c");
        let mut buf = [0u8; 4];
        let n =
            unsafe { libc::getxattr(p.as_ptr(), k.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        assert_eq!(n, 1);
        assert_eq!(buf[0], b'y');
    }

    #[test]
    fn recorded_layer_reassembles_byte_for_byte() {
        let d = dirs();
        let long = format!("{}/file", "deep/".repeat(40));
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in [
            ("a.txt", &b"alpha"[..]),
            ("dir/b.bin", &[9u8; 1500][..]),
            (long.as_str(), &b"long name"[..]),
            ("empty", &b""[..]),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(EntryType::Regular);
            b.append_data(&mut h, name, data).expect("append");
        }
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "ln", "a.txt").expect("link");
        let t = b.into_inner().expect("tar");
        let split = d.outside.join("split");
        extract_recorded(&t[..], &d.dest, &split).expect("extract");
        let mut back = Vec::new();
        crate::tarsplit::Reassembler::open(&split, &d.dest)
            .expect("open")
            .read_to_end(&mut back)
            .expect("reassemble");
        assert_eq!(back.len(), t.len());
        assert!(back == t, "reassembled tar differs");
        // A changed file is noticed, not silently re-emitted.
        std::fs::write(d.dest.join("a.txt"), b"al").expect("shrink");
        let mut again = Vec::new();
        assert!(crate::tarsplit::Reassembler::open(&split, &d.dest)
            .expect("open")
            .read_to_end(&mut again)
            .is_err());
    }

    #[test]
    fn truncated_tar_is_an_error() {
        let d = dirs();
        let t = tar_of(|b| raw(b, "big", EntryType::Regular, 0o644, None, &[7u8; 5000]));
        assert!(extract(&t[..2000], &d.dest).is_err());
    }
}
