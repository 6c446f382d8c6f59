//! A tar stream that may end without its closing blocks. The docker CLI and
//! compose send such tars when the Dockerfile comes from outside the context
//! or from stdin (their archive wrapper closes the pipe before the tar writer);
//! Go's reader takes the early end as the archive's end, the `tar` crate
//! fails. [`TarTail`] follows the headers as the bytes pass and, when the
//! stream ends at an entry's end (padding missing or not), supplies the
//! padding and the two zero blocks; an end inside a header or an entry's data
//! stays an error.

use std::io::{self, Read};

pub struct TarTail<R> {
    inner: R,
    /// Bytes passed on so far.
    pos: u64,
    /// Where the next header starts.
    next_header: u64,
    header: [u8; 512],
    /// The end of the current entry's data (without padding).
    data_end: u64,
    /// Zero bytes still to supply after the real end.
    tail: Option<u64>,
    /// A zero block was seen where a header was due: the archive ended properly.
    ended: bool,
}

impl<R: Read> TarTail<R> {
    pub fn new(inner: R) -> TarTail<R> {
        TarTail {
            inner,
            pos: 0,
            next_header: 0,
            header: [0; 512],
            data_end: 0,
            tail: None,
            ended: false,
        }
    }

    /// Notes the bytes `buf` (just read at `self.pos`) for header tracking.
    fn track(&mut self, buf: &[u8]) {
        let mut off = self.pos;
        let end = self.pos + buf.len() as u64;
        while !self.ended && off < end {
            if off < self.next_header {
                off = self.next_header.min(end);
                continue;
            }
            let in_header = (off - self.next_header) as usize;
            let take = (512 - in_header).min((end - off) as usize);
            let from = (off - self.pos) as usize;
            self.header[in_header..in_header + take].copy_from_slice(&buf[from..from + take]);
            off += take as u64;
            if in_header + take == 512 {
                if self.header.iter().all(|&b| b == 0) {
                    self.ended = true;
                    return;
                }
                let size = header_size(&self.header);
                self.data_end = self.next_header + 512 + size;
                self.next_header = self.data_end.div_ceil(512) * 512;
            }
        }
    }
}

/// An entry's size: octal, or GNU base-256 when the top bit is set.
fn header_size(h: &[u8; 512]) -> u64 {
    let f = &h[124..136];
    if f[0] & 0x80 != 0 {
        return f[1..]
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    }
    let s: String = f
        .iter()
        .map(|&b| b as char)
        .filter(|c| c.is_ascii_digit())
        .collect();
    u64::from_str_radix(&s, 8).unwrap_or(0)
}

impl<R: Read> Read for TarTail<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(left) = self.tail.as_mut() {
            let n = (*left).min(buf.len() as u64) as usize;
            buf[..n].fill(0);
            *left -= n as u64;
            return Ok(n);
        }
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.track(&buf[..n]);
            self.pos += n as u64;
            return Ok(n);
        }
        if self.ended || self.pos == 0 {
            return Ok(0);
        }
        // The real end: only at an entry's end may it be completed.
        let at_header = self.pos == self.next_header;
        let in_padding = self.pos >= self.data_end && self.pos < self.next_header;
        if !(at_header || in_padding) {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "unexpected EOF in the build context's tar",
            ));
        }
        self.tail = Some(self.next_header - self.pos + 1024);
        self.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, *data).expect("append");
        }
        b.into_inner().expect("tar")
    }

    fn names(raw: &[u8]) -> io::Result<Vec<String>> {
        let mut a = tar::Archive::new(TarTail::new(raw));
        let mut out = Vec::new();
        for e in a.entries()? {
            let mut e = e?;
            let mut s = String::new();
            e.read_to_string(&mut s)?;
            out.push(format!("{}={s}", e.path()?.display()));
        }
        Ok(out)
    }

    #[test]
    fn whole_tars_pass_unchanged() {
        let t = tar_of(&[("a", b"hello"), ("b", b"")]);
        assert_eq!(names(&t).expect("read"), ["a=hello", "b="]);
    }

    #[test]
    fn missing_end_blocks_and_padding_are_supplied() {
        let t = tar_of(&[("a", b"hello"), ("Dockerfile", b"FROM x\n")]);
        let without_end = &t[..t.len() - 1024];
        assert_eq!(
            names(without_end).expect("no end blocks"),
            ["a=hello", "Dockerfile=FROM x\n"]
        );
        // Cut right after the last file's data: no padding either.
        let cut = 512 + 512 + 512 + 7;
        assert_eq!(
            names(&t[..cut]).expect("no padding"),
            ["a=hello", "Dockerfile=FROM x\n"]
        );
    }

    #[test]
    fn ends_inside_an_entry_stay_errors() {
        let t = tar_of(&[("a", b"hello world")]);
        assert!(names(&t[..512 + 5]).is_err(), "inside data");
        assert!(names(&t[..300]).is_err(), "inside a header");
    }
}
