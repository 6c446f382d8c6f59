//! Unpacking a (compressed) layer stream into a staging directory, computing its
//! diff ID on the way, and reading a stored layer back as its original tar.

use std::io::{self, Read};
use std::path::PathBuf;

use sha2::{Digest as _, Sha256};

use crate::digest::Digest;
use crate::extract::{extract_recorded, Extracted};
use crate::tarsplit::Reassembler;
use crate::Error;

/// A staging directory for a layer being unpacked; removed on drop unless committed.
pub struct Staging {
    pub(crate) dir: PathBuf,
    pub(crate) committed: bool,
}

impl Staging {
    pub(crate) fn new(dir: PathBuf) -> Staging {
        Staging {
            dir,
            committed: false,
        }
    }

    /// Where to unpack the layer's content.
    pub fn diff(&self) -> PathBuf {
        self.dir.join("diff")
    }

    /// Where the layer's tar record goes (see [`crate::tarsplit`]).
    pub fn split(&self) -> PathBuf {
        self.dir.join("tar-split")
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// From a layer media type (OCI or Docker).
    pub fn from_media_type(mt: &str) -> Result<Compression, Error> {
        if mt.ends_with("gzip") {
            Ok(Compression::Gzip)
        } else if mt.ends_with("zstd") {
            Ok(Compression::Zstd)
        } else if mt.ends_with(".tar") || mt.ends_with("tar") {
            Ok(Compression::None)
        } else {
            Err(Error::Layer(format!("unsupported layer media type {mt}")))
        }
    }

    /// From the first bytes of a blob (for `docker load` and `import`).
    pub fn sniff(head: &[u8]) -> Compression {
        match head {
            [0x1f, 0x8b, ..] => Compression::Gzip,
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
            _ => Compression::None,
        }
    }
}

/// A reader that hashes what passes through it.
pub struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> Hashing<R> {
    pub fn new(inner: R) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }
    pub fn finish(self) -> (Digest, u64) {
        (Digest::from_hasher(self.hasher), self.count)
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Decompresses, hashes (the diff ID) and unpacks `r` into `staging`, recording the
/// tar so that it can be reproduced.
/// Returns the diff ID, what was extracted and the size of the uncompressed tar.
pub fn unpack<R: Read>(
    r: R,
    compression: Compression,
    staging: &Staging,
) -> Result<(Digest, Extracted, u64), Error> {
    let decoded: Box<dyn Read + '_> = match compression {
        Compression::None => Box::new(r),
        // MultiGzDecoder: a layer may be several concatenated gzip members.
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(r)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::new(r).map_err(|e| Error::Layer(format!("zstd: {e}")))?,
        ),
    };
    let mut hashing = Hashing::new(decoded);
    let x = extract_recorded(&mut hashing, &staging.diff(), &staging.split())?;
    let (diff_id, tar_size) = hashing.finish();
    Ok((diff_id, x, tar_size))
}

/// The original tar of a stored layer.
pub fn reader(diff: &std::path::Path, split: &std::path::Path) -> Result<Reassembler, Error> {
    Reassembler::open(split, diff)
        .map_err(|e| Error::Layer(format!("layer {}: {e}", diff.display())))
}

fn opaque(p: &std::path::Path) -> bool {
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    let mut buf = [0u8; 4];
    // Safety: a valid path, attribute name and buffer of the given size.
    let n = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    n == 1 && buf[0] == b'y'
}

fn whiteout_header() -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(0);
    h.set_mode(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h
}

/// Writes an overlay upper directory as a layer tar: overlay whiteouts become
/// `.wh.` entries again, and `skip` (paths relative to the upper, such as the
/// mount points a container runtime creates) are left out, with directories
/// that held nothing else. A missing upper is an empty layer.
pub fn diff_tar<W: std::io::Write>(upper: &std::path::Path, skip: &[&str], w: W) -> io::Result<()> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    use std::path::Path;
    let mut b = tar::Builder::new(w);
    b.follow_symlinks(false);
    /// Appends `dir`'s entries; true if anything was written.
    fn walk<W: std::io::Write>(
        b: &mut tar::Builder<W>,
        root: &Path,
        dir: &Path,
        skip: &[&str],
    ) -> io::Result<bool> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        let mut wrote = false;
        for e in entries {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap_or(&p).to_path_buf();
            if skip.iter().any(|s| Path::new(s) == rel) {
                continue;
            }
            let md = std::fs::symlink_metadata(&p)?;
            if md.file_type().is_char_device() && md.rdev() == 0 {
                let name = rel.with_file_name(format!(".wh.{}", e.file_name().to_string_lossy()));
                b.append_data(&mut whiteout_header(), name, std::io::empty())?;
                wrote = true;
                continue;
            }
            if !md.is_dir() {
                b.append_path_with_name(&p, &rel)?;
                wrote = true;
                continue;
            }
            // A directory that only holds skipped paths is there for them alone.
            let holds_skipped = skip.iter().any(|s| Path::new(s).starts_with(&rel));
            let opq = opaque(&p);
            if holds_skipped && !opq && !has_content(root, &p, skip)? {
                continue;
            }
            b.append_path_with_name(&p, &rel)?;
            if opq {
                b.append_data(
                    &mut whiteout_header(),
                    rel.join(".wh..wh..opq"),
                    std::io::empty(),
                )?;
            }
            walk(b, root, &p, skip)?;
            wrote = true;
        }
        Ok(wrote)
    }
    fn has_content(root: &Path, dir: &Path, skip: &[&str]) -> io::Result<bool> {
        for e in std::fs::read_dir(dir)?.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap_or(&p);
            if skip.iter().any(|s| Path::new(s) == rel) {
                continue;
            }
            let on_skip_path = skip.iter().any(|s| Path::new(s).starts_with(rel));
            if !e.file_type()?.is_dir() || !on_skip_path || has_content(root, &p, skip)? {
                return Ok(true);
            }
        }
        Ok(false)
    }
    if upper.is_dir() {
        walk(&mut b, upper, upper, skip)?;
    }
    b.into_inner()?.flush()
}
