//! Docker's `json-file` log format: one JSON object per line,
//! `{"log":"…\n","stream":"stdout","time":"…"}`.

use std::io::Write;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub log: String,
    pub stream: String,
    pub time: String,
}

/// Splits output into lines as dockerd's log copier does: each line keeps its `\n`;
/// a partial line is kept until its end arrives (or the stream ends).
#[derive(Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
}

/// Longest line kept in one record; longer ones are split, as dockerd does at 16 KiB.
const MAX_LINE: usize = 16 * 1024;

impl LineSplitter {
    /// Feeds bytes; calls `f` with each complete line, without copying the lines
    /// that arrive whole.
    pub fn each(&mut self, mut data: &[u8], mut f: impl FnMut(&[u8])) {
        while !data.is_empty() {
            let room = MAX_LINE - self.partial.len();
            let window = &data[..data.len().min(room)];
            match memchr::memchr(b'\n', window) {
                Some(i) => {
                    if self.partial.is_empty() {
                        f(&window[..=i]);
                    } else {
                        self.partial.extend_from_slice(&window[..=i]);
                        f(&self.partial);
                        self.partial.clear();
                    }
                    data = &data[i + 1..];
                }
                None if window.len() == room => {
                    // A line as long as a record may be: it goes out in pieces.
                    if self.partial.is_empty() {
                        f(window);
                    } else {
                        self.partial.extend_from_slice(window);
                        f(&self.partial);
                        self.partial.clear();
                    }
                    data = &data[room..];
                }
                None => {
                    self.partial.extend_from_slice(window);
                    data = &[];
                }
            }
        }
    }

    /// What is left at the end of the stream.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        (!self.partial.is_empty()).then(|| std::mem::take(&mut self.partial))
    }
}

/// Appends one record and its newline. The text is escaped as serde_json escapes
/// strings (quote, backslash, control characters); invalid UTF-8 becomes U+FFFD.
pub fn encode_line(out: &mut Vec<u8>, stream: &str, line: &[u8], time: &str) {
    out.extend_from_slice(b"{\"log\":\"");
    // The newline that ends nearly every line would send each one down the
    // escaping path byte by byte: the rest is escaped, the newline written.
    let (text, newline) = match line.split_last() {
        Some((b'\n', text)) => (text, true),
        _ => (line, false),
    };
    if needs_work(text, true) {
        escape_into(out, &String::from_utf8_lossy(text));
    } else {
        out.extend_from_slice(text);
    }
    if newline {
        out.extend_from_slice(b"\\n");
    }
    out.extend_from_slice(b"\",\"stream\":\"");
    escape_into(out, stream);
    out.extend_from_slice(b"\",\"time\":\"");
    escape_into(out, time);
    out.extend_from_slice(b"\"}\n");
}

/// Whether writing `b` into a JSON string takes more than copying it: a quote,
/// backslash or control byte to escape or, with `ascii_only`, a byte of 0x80 or
/// above (UTF-8 to validate). Eight bytes at a time in plain integer
/// arithmetic, which stays fast at the release's `opt-level = "s"` (the shim's
/// log writing spent most of its time in byte-wise checks).
fn needs_work(b: &[u8], ascii_only: bool) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Non-zero when some byte of `x` is below `n` (n <= 0x80; exact as a yes/no:
    // the lowest such byte always shows, whatever the borrows do above it).
    let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGH;
    let high = if ascii_only { HIGH } else { 0 };
    let mut words = b.chunks_exact(8);
    let mut bad = 0u64;
    for w in &mut words {
        let x = u64::from_le_bytes(<[u8; 8]>::try_from(w).unwrap_or([0; 8]));
        bad |= x & high;
        bad |= below(x, 0x20);
        bad |= below(x ^ (ONES * u64::from(b'"')), 1);
        bad |= below(x ^ (ONES * u64::from(b'\\')), 1);
    }
    bad != 0
        || words
            .remainder()
            .iter()
            .any(|&c| c < 0x20 || c == b'"' || c == b'\\' || (ascii_only && c >= 0x80))
}

fn escape_into(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    // Most output needs no escaping: one quick pass finds out.
    if !needs_work(bytes, false) {
        out.extend_from_slice(bytes);
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => {
                out.extend_from_slice(&bytes[start..i]);
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 0xf) as usize]);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// One record read back, borrowing from the line where it can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRef<'a> {
    pub log: std::borrow::Cow<'a, [u8]>,
    pub stream: std::borrow::Cow<'a, str>,
    pub time: std::borrow::Cow<'a, str>,
}

/// Parses one record (without its newline). Records as [`encode_line`] writes
/// them are read without a JSON parser or allocations (unless the text has
/// escapes); anything else goes through serde_json.
pub fn parse_line(line: &[u8]) -> Option<LogRef<'_>> {
    use std::borrow::Cow;
    let fast = || -> Option<LogRef<'_>> {
        let rest = line.strip_prefix(b"{\"log\":\"")?;
        let (log, rest) = json_string(rest)?;
        let rest = rest.strip_prefix(b",\"stream\":\"")?;
        let end = rest.iter().position(|b| *b == b'"' || *b == b'\\')?;
        let stream = std::str::from_utf8(&rest[..end]).ok()?;
        let rest = rest[end..].strip_prefix(b"\",\"time\":\"")?;
        let end = rest.iter().position(|b| *b == b'"' || *b == b'\\')?;
        let time = std::str::from_utf8(&rest[..end]).ok()?;
        if &rest[end..] != b"\"}" {
            return None;
        }
        Some(LogRef {
            log,
            stream: Cow::Borrowed(stream),
            time: Cow::Borrowed(time),
        })
    };
    fast().or_else(|| {
        let l: LogLine = serde_json::from_slice(line).ok()?;
        Some(LogRef {
            log: Cow::Owned(l.log.into_bytes()),
            stream: Cow::Owned(l.stream),
            time: Cow::Owned(l.time),
        })
    })
}

/// A JSON string's content up to its closing quote, unescaped, and what follows.
fn json_string(s: &[u8]) -> Option<(std::borrow::Cow<'_, [u8]>, &[u8])> {
    use std::borrow::Cow;
    let end = memchr::memchr2(b'"', b'\\', s)?;
    if s[end] == b'"' {
        return Some((Cow::Borrowed(&s[..end]), &s[end + 1..]));
    }
    let mut out = s[..end].to_vec();
    let mut i = end;
    loop {
        match *s.get(i)? {
            b'"' => return Some((Cow::Owned(out), &s[i + 1..])),
            b'\\' => {
                let c = *s.get(i + 1)?;
                i += 2;
                match c {
                    b'"' => out.push(b'"'),
                    b'\\' => out.push(b'\\'),
                    b'/' => out.push(b'/'),
                    b'b' => out.push(0x08),
                    b'f' => out.push(0x0c),
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'u' => {
                        let hex = |at: usize| -> Option<u32> {
                            let h = std::str::from_utf8(s.get(at..at + 4)?).ok()?;
                            u32::from_str_radix(h, 16).ok()
                        };
                        let mut cp = hex(i)?;
                        i += 4;
                        if (0xD800..0xDC00).contains(&cp)
                            && s.get(i..i + 2) == Some(b"\\u".as_slice())
                        {
                            if let Some(lo) = hex(i + 2).filter(|l| (0xDC00..0xE000).contains(l)) {
                                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                                i += 6;
                            }
                        }
                        let ch = char::from_u32(cp).unwrap_or('\u{fffd}');
                        let mut b = [0u8; 4];
                        out.extend_from_slice(ch.encode_utf8(&mut b).as_bytes());
                    }
                    _ => return None,
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_and_keeps_partials() {
        let mut s = LineSplitter::default();
        let push = |s: &mut LineSplitter, data: &[u8]| {
            let mut got: Vec<Vec<u8>> = Vec::new();
            s.each(data, |l| got.push(l.to_vec()));
            got
        };
        assert_eq!(push(&mut s, b"a\nbc"), vec![b"a\n".to_vec()]);
        assert_eq!(push(&mut s, b"d\n"), vec![b"bcd\n".to_vec()]);
        assert_eq!(push(&mut s, b"tail"), Vec::<Vec<u8>>::new());
        assert_eq!(s.finish(), Some(b"tail".to_vec()));
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn split_lines_keep_partials_and_long_lines_across_pushes() {
        let mut s = LineSplitter::default();
        let mut got: Vec<Vec<u8>> = Vec::new();
        s.each(b"ab", |l| got.push(l.to_vec()));
        s.each(b"c\nde\nf", |l| got.push(l.to_vec()));
        assert_eq!(got, vec![b"abc\n".to_vec(), b"de\n".to_vec()]);
        got.clear();
        let long = vec![b'x'; MAX_LINE * 2 + 10];
        s.each(&long, |l| got.push(l.to_vec()));
        s.each(b"\n", |l| got.push(l.to_vec()));
        let lens: Vec<usize> = got.iter().map(Vec::len).collect();
        assert_eq!(lens, vec![MAX_LINE, MAX_LINE, 12]);
        assert_eq!(got[0][0], b'f');
    }

    #[test]
    fn needs_work_is_exact_for_every_byte_in_every_position() {
        let naive = |b: &[u8], ascii_only: bool| {
            b.iter()
                .any(|&c| c < 0x20 || c == b'"' || c == b'\\' || (ascii_only && c >= 0x80))
        };
        for ascii_only in [true, false] {
            for len in 0..20 {
                for pos in 0..len {
                    for c in 0..=255u8 {
                        // Both around it: a byte just above a borrow's reach.
                        for around in [b'a', b' ', 0xff] {
                            let mut v = vec![around; len];
                            v[pos] = c;
                            assert_eq!(
                                needs_work(&v, ascii_only),
                                naive(&v, ascii_only),
                                "byte {c:#x} at {pos} of {len} among {around:#x}, ascii_only {ascii_only}"
                            );
                        }
                    }
                }
            }
        }
        assert!(!needs_work(
            b"~ 0123456789 abcdefghijklmnopqrstuvwxyz !#$%&'()*+,-./:;<=>?@[]^_`{|}",
            true
        ));
        // DEL is printable to JSON (serde_json writes it as it is); 0x80 is not ASCII.
        assert!(!needs_work(b"0123456789abcde\x7f", true));
        assert!(needs_work(b"0123456789abcde\x80", true));
        assert!(!needs_work(
            "caf\u{e9} au lait, d\u{e9}j\u{e0}".as_bytes(),
            false
        ));
    }

    #[test]
    fn records_match_serde_and_read_back() {
        for text in [
            &b"plain line\n"[..],
            b"quote \" back \\ tab \t bell \x07 del \x7f\r\n",
            "unicode \u{e9}\u{1F600} \u{2028}\n".as_bytes(),
            b"bad utf8 \xff\xfe\n",
            b"",
        ] {
            let mut ours = Vec::new();
            encode_line(&mut ours, "stdout", text, "2024-01-01T00:00:00.000000001Z");
            let theirs = serde_json::to_vec(&LogLine {
                log: String::from_utf8_lossy(text).into_owned(),
                stream: "stdout".into(),
                time: "2024-01-01T00:00:00.000000001Z".into(),
            })
            .expect("serde");
            assert_eq!(&ours[..ours.len() - 1], &theirs[..], "{text:?}");
            let back = parse_line(&ours[..ours.len() - 1]).expect("parse");
            assert_eq!(back.log.as_ref(), String::from_utf8_lossy(text).as_bytes());
            assert_eq!(back.stream, "stdout");
        }
        // Other JSON spellings (dockerd's \u003c, other key order) go through serde.
        let l =
            parse_line(br#"{"stream":"stderr","log":"a \u003cb\u003e \ud83d\ude00\n","time":"t"}"#)
                .expect("parse");
        assert_eq!(l.log.as_ref(), "a <b> \u{1F600}\n".as_bytes());
        assert_eq!(l.stream, "stderr");
        let l = parse_line(br#"{"log":"x \u003c \ud83d\ude00","stream":"stdout","time":"t"}"#)
            .expect("parse");
        assert_eq!(l.log.as_ref(), "x < \u{1F600}".as_bytes());
        assert!(parse_line(b"not json").is_none());
        assert!(parse_line(br#"{"log":"unterminated"#).is_none());
    }

    #[test]
    fn writes_docker_json_lines() {
        let mut out = Vec::new();
        encode_line(
            &mut out,
            "stderr",
            b"oops\n",
            "2024-01-01T00:00:00.000000001Z",
        );
        let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(v["log"], "oops\n");
        assert_eq!(v["stream"], "stderr");
        assert!(out.ends_with(b"\n"));
    }
}

/// `--log-opt max-size/max-file` of the json-file driver.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Rotate once the file reaches this many bytes; `None`: never.
    pub max_size: Option<u64>,
    /// Files kept, the live one included (at least 1).
    pub max_file: u32,
}

/// Parses Docker's sizes (`10m`, `1k`, `512`; decimal units as dockerd's json-file).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let s = s.trim_end_matches('b');
    let (num, mult) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1_000u64),
        'm' => (&s[..s.len() - 1], 1_000_000),
        'g' => (&s[..s.len() - 1], 1_000_000_000),
        _ => (s, 1),
    };
    let n: f64 = num.trim().parse().ok()?;
    (n > 0.0).then_some((n * mult as f64) as u64)
}

/// The files of a log, oldest first: `log.N-1` … `log.1`, `log`.
pub fn files(path: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out: Vec<std::path::PathBuf> = (1..100)
        .map(|i| std::path::PathBuf::from(format!("{}.{i}", path.display())))
        .take_while(|p| p.exists())
        .collect();
    out.reverse();
    out.push(path.to_path_buf());
    out
}

/// Appends records to a json-file log, rotating as dockerd's json-file does.
pub struct LogWriter {
    path: std::path::PathBuf,
    file: std::fs::File,
    size: u64,
    limits: Limits,
    /// Records not yet written.
    buf: Vec<u8>,
}

impl LogWriter {
    pub fn open(path: &std::path::Path, limits: Limits) -> std::io::Result<LogWriter> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let size = file.metadata()?.len();
        Ok(LogWriter {
            path: path.to_path_buf(),
            file,
            size,
            limits,
            buf: Vec::new(),
        })
    }

    /// Adds one record; it reaches the file at the next [`LogWriter::flush`] (or
    /// before a rotation).
    pub fn write(&mut self, stream: &str, line: &[u8], time: &str) -> std::io::Result<()> {
        let before = self.buf.len();
        encode_line(&mut self.buf, stream, line, time);
        self.size += (self.buf.len() - before) as u64;
        if self.limits.max_size.is_some_and(|m| self.size >= m) {
            self.flush()?;
            self.rotate()?;
        }
        Ok(())
    }

    /// Writes what was added since the last flush, in one write: readers
    /// following the file see whole records, and the writer makes one system
    /// call per chunk of output rather than one per line.
    pub fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let r = self.file.write_all(&self.buf);
        self.buf.clear();
        if self.buf.capacity() > 4 << 20 {
            self.buf.shrink_to(64 << 10);
        }
        r
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        let keep = self.limits.max_file.max(1);
        if keep == 1 {
            self.file.set_len(0)?;
        } else {
            let name = |i: u32| std::path::PathBuf::from(format!("{}.{i}", self.path.display()));
            let _ = std::fs::remove_file(name(keep - 1));
            for i in (1..keep - 1).rev() {
                let _ = std::fs::rename(name(i), name(i + 1));
            }
            std::fs::rename(&self.path, name(1))?;
            self.file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
        }
        self.size = 0;
        Ok(())
    }

    pub fn sync(&mut self) {
        let _ = self.flush();
        let _ = self.file.sync_data();
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

#[cfg(test)]
mod rotation_tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10m"), Some(10_000_000));
        assert_eq!(parse_size("1k"), Some(1000));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("1.5kb"), Some(1500));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_size("0"), None);
    }

    #[test]
    fn rotates_and_keeps_max_file() {
        let d = std::env::temp_dir().join(format!("berth-log-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("dir");
        let p = d.join("c.log");
        let mut w = LogWriter::open(
            &p,
            Limits {
                max_size: Some(200),
                max_file: 3,
            },
        )
        .expect("open");
        for i in 0..40 {
            w.write(
                "stdout",
                format!("line {i}\n").as_bytes(),
                "2024-01-01T00:00:00Z",
            )
            .expect("write");
        }
        w.flush().expect("flush");
        let f = files(&p);
        assert_eq!(f.len(), 3, "{f:?}");
        let all: String = f
            .iter()
            .map(|x| std::fs::read_to_string(x).unwrap_or_default())
            .collect();
        assert!(all.contains("line 39"));
        assert!(!all.contains("\"line 0\\n\""), "the oldest lines are gone");
        let _ = std::fs::remove_dir_all(&d);
    }
}
