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
    /// Feeds bytes; returns the complete lines.
    pub fn push(&mut self, data: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for &b in data {
            self.partial.push(b);
            if b == b'\n' || self.partial.len() >= MAX_LINE {
                out.push(std::mem::take(&mut self.partial));
            }
        }
        out
    }

    /// What is left at the end of the stream.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        (!self.partial.is_empty()).then(|| std::mem::take(&mut self.partial))
    }
}

/// Writes one record.
pub fn write_line<W: Write>(
    w: &mut W,
    stream: &str,
    line: &[u8],
    time: &str,
) -> std::io::Result<()> {
    let rec = LogLine {
        log: String::from_utf8_lossy(line).into_owned(),
        stream: stream.to_string(),
        time: time.to_string(),
    };
    let mut b = serde_json::to_vec(&rec).map_err(std::io::Error::other)?;
    b.push(b'\n');
    w.write_all(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_and_keeps_partials() {
        let mut s = LineSplitter::default();
        assert_eq!(s.push(b"a\nbc"), vec![b"a\n".to_vec()]);
        assert_eq!(s.push(b"d\n"), vec![b"bcd\n".to_vec()]);
        assert_eq!(s.push(b"tail"), Vec::<Vec<u8>>::new());
        assert_eq!(s.finish(), Some(b"tail".to_vec()));
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn writes_docker_json_lines() {
        let mut out = Vec::new();
        write_line(
            &mut out,
            "stderr",
            b"oops\n",
            "2024-01-01T00:00:00.000000001Z",
        )
        .expect("write");
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
        })
    }

    pub fn write(&mut self, stream: &str, line: &[u8], time: &str) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(line.len() + 64);
        write_line(&mut buf, stream, line, time)?;
        self.file.write_all(&buf)?;
        self.size += buf.len() as u64;
        if self.limits.max_size.is_some_and(|m| self.size >= m) {
            self.rotate()?;
        }
        Ok(())
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

    pub fn sync(&self) {
        let _ = self.file.sync_data();
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
