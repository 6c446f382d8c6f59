//! Unpacking a (compressed) layer stream into a staging directory, computing its
//! diff ID on the way, and reading a stored layer back as its original tar.

use std::io::{self, Read};

use sha2::{Digest as _, Sha256};

use crate::digest::Digest;
use crate::extract::{extract_recorded, Extracted};
use crate::store::Staging;
use crate::tarsplit::Reassembler;
use crate::Error;

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
