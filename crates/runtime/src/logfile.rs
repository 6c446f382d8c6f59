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
