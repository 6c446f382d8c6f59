//! Keeping a layer's tar reproducible byte for byte without storing it twice.
//!
//! While a layer is unpacked, [`Recorder`] keeps every byte of the tar stream except
//! the content of regular files, which the layer directory holds anyway; file content
//! is noted as a reference (path, size). [`Reassembler`] later interleaves the kept
//! bytes with the files' content and yields the original tar, so `docker save` and
//! `docker push` reproduce the layer's diff ID exactly. This is the idea of dockerd's
//! tar-split; the small record format is ours (the Go library has no Rust port).
//!
//! Format (gzip-compressed): a sequence of records, `0x01 len:u32 bytes` for kept
//! bytes and `0x02 len:u16 path size:u64` for a file's content.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::rc::Rc;

use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};

const RAW: u8 = 1;
const FILE: u8 = 2;

#[derive(Default)]
struct State {
    /// Bytes read but not yet written out, starting at stream offset `start`.
    pending: Vec<u8>,
    start: u64,
    /// Offset of the next byte the reader will return.
    pos: u64,
    /// Bytes before this offset are file content and are not kept.
    skip_until: u64,
    out: Vec<u8>,
}

impl State {
    fn raw(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(u32::MAX as usize) {
            if chunk.is_empty() {
                continue;
            }
            self.out.push(RAW);
            self.out
                .extend_from_slice(&(chunk.len() as u32).to_be_bytes());
            self.out.extend_from_slice(chunk);
        }
    }
}

/// A reader that records the tar stream passing through it.
pub struct Recorder<R> {
    inner: R,
    state: Rc<RefCell<State>>,
}

/// The handle the extractor uses to tell the recorder where file content lies.
#[derive(Clone)]
pub struct Marks {
    state: Rc<RefCell<State>>,
}

impl<R: Read> Recorder<R> {
    pub fn new(inner: R) -> (Recorder<R>, Marks) {
        let state = Rc::new(RefCell::new(State::default()));
        (
            Recorder {
                inner,
                state: state.clone(),
            },
            Marks { state },
        )
    }
}

impl<R: Read> Read for Recorder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut s = self.state.borrow_mut();
        let begin = s.pos;
        s.pos += n as u64;
        // Keep only what lies past the file content being skipped.
        let keep_from = s.skip_until.saturating_sub(begin).min(n as u64) as usize;
        if s.pending.is_empty() {
            s.start = begin + keep_from as u64;
        }
        s.pending.extend_from_slice(&buf[keep_from..n]);
        Ok(n)
    }
}

impl Marks {
    /// Notes that bytes `[pos, pos + size)` are the content of `path`.
    pub fn file(&self, pos: u64, size: u64, path: &Path) -> io::Result<()> {
        let mut s = self.state.borrow_mut();
        if pos < s.start {
            return Err(io::Error::other(
                "tar-split: file content before recorded position",
            ));
        }
        let head = ((pos - s.start) as usize).min(s.pending.len());
        let pending = std::mem::take(&mut s.pending);
        s.raw(&pending[..head]);
        let name = path.as_os_str().as_encoded_bytes();
        if name.len() > u16::MAX as usize {
            return Err(io::Error::other("tar-split: path too long"));
        }
        s.out.push(FILE);
        s.out.extend_from_slice(&(name.len() as u16).to_be_bytes());
        s.out.extend_from_slice(name);
        s.out.extend_from_slice(&size.to_be_bytes());
        // Content the reader already fetched past the header is dropped; what lies
        // beyond the content stays pending.
        let end = pos + size;
        let after = (end.saturating_sub(s.start) as usize).min(pending.len());
        let rest = pending[after..].to_vec();
        s.pending = rest;
        s.start = end.max(s.start + after as u64);
        s.skip_until = end;
        Ok(())
    }

    /// Finishes the record (after the reader reached its end) and writes it, gzipped.
    pub fn finish(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state.borrow_mut();
        let pending = std::mem::take(&mut s.pending);
        s.raw(&pending);
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&s.out)?;
        berth_atomicfile::write(path, &enc.finish()?)
    }
}

/// Rebuilds the original tar from a record and the unpacked layer directory.
pub struct Reassembler {
    records: flate2::read::GzDecoder<std::fs::File>,
    root: OwnedFd,
    current: Current,
}

enum Current {
    None,
    Raw(io::Cursor<Vec<u8>>),
    File(io::Take<std::fs::File>, u64),
}

impl Reassembler {
    pub fn open(split: &Path, diff: &Path) -> io::Result<Reassembler> {
        let f = std::fs::File::open(split)?;
        let root = nix::fcntl::open(
            diff,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )?;
        // Safety: a fresh fd from open.
        let root = unsafe { OwnedFd::from_raw_fd(root) };
        Ok(Reassembler {
            records: flate2::read::GzDecoder::new(f),
            root,
            current: Current::None,
        })
    }

    fn next_record(&mut self) -> io::Result<bool> {
        let mut tag = [0u8; 1];
        match self.records.read_exact(&mut tag) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
            Err(e) => return Err(e),
        }
        match tag[0] {
            RAW => {
                let mut len = [0u8; 4];
                self.records.read_exact(&mut len)?;
                let mut buf = vec![0u8; u32::from_be_bytes(len) as usize];
                self.records.read_exact(&mut buf)?;
                self.current = Current::Raw(io::Cursor::new(buf));
            }
            FILE => {
                let mut len = [0u8; 2];
                self.records.read_exact(&mut len)?;
                let mut name = vec![0u8; u16::from_be_bytes(len) as usize];
                self.records.read_exact(&mut name)?;
                let mut size = [0u8; 8];
                self.records.read_exact(&mut size)?;
                let size = u64::from_be_bytes(size);
                let name = std::ffi::OsStr::from_bytes(&name);
                let how = OpenHow::new()
                    .flags(OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
                    .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
                let fd = openat2(self.root.as_raw_fd(), name, how).map_err(|e| {
                    io::Error::other(format!("layer file {}: {e}", Path::new(name).display()))
                })?;
                // Safety: a fresh fd from openat2.
                let f = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
                self.current = Current::File(f.take(size), size);
            }
            t => return Err(io::Error::other(format!("tar-split: bad record type {t}"))),
        }
        Ok(true)
    }
}

impl Read for Reassembler {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let n = match &mut self.current {
                Current::None => 0,
                Current::Raw(c) => c.read(buf)?,
                Current::File(f, left) => {
                    let n = f.read(buf)?;
                    if n == 0 && *left > 0 {
                        return Err(io::Error::other(
                            "layer file is shorter than recorded: the layer was changed",
                        ));
                    }
                    *left -= n as u64;
                    n
                }
            };
            if n > 0 {
                return Ok(n);
            }
            if !self.next_record()? {
                return Ok(0);
            }
        }
    }
}
