//! Docker's multiplexed stream framing for stdin/stdout/stderr.
//!
//! Without a TTY, attach, exec and logs send each chunk with an 8-byte header:
//! `[stream, 0, 0, 0, len as big-endian u32]` followed by `len` bytes of payload.

use bytes::{BufMut, Bytes, BytesMut};

/// Which standard stream a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdStream {
    Stdin = 0,
    Stdout = 1,
    Stderr = 2,
    /// Used by dockerd for system errors inside a stream.
    System = 3,
}

impl StdStream {
    pub fn from_byte(b: u8) -> Option<StdStream> {
        match b {
            0 => Some(StdStream::Stdin),
            1 => Some(StdStream::Stdout),
            2 => Some(StdStream::Stderr),
            3 => Some(StdStream::System),
            _ => None,
        }
    }
}

/// Frames `payload` for `stream`. Payloads over 4 GiB are split into several frames.
pub fn frame(stream: StdStream, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(payload.len() + 8);
    let chunks: Vec<&[u8]> = if payload.is_empty() {
        vec![payload]
    } else {
        payload.chunks(u32::MAX as usize).collect()
    };
    for chunk in chunks {
        out.put_u8(stream as u8);
        out.put_slice(&[0, 0, 0]);
        out.put_u32(chunk.len() as u32);
        out.put_slice(chunk);
    }
    out.freeze()
}

/// Incremental decoder: feed bytes as they arrive, take whole frames out.
#[derive(Debug, Default)]
pub struct Demuxer {
    buf: BytesMut,
}

/// A malformed frame header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid stream frame header: stream byte {0}")]
pub struct FrameError(pub u8);

impl Demuxer {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }
    /// Returns the next complete frame, or `None` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<(StdStream, Bytes)>, FrameError> {
        if self.buf.len() < 8 {
            return Ok(None);
        }
        let stream = StdStream::from_byte(self.buf[0]).ok_or(FrameError(self.buf[0]))?;
        let len = u32::from_be_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]]) as usize;
        if self.buf.len() < 8 + len {
            return Ok(None);
        }
        let mut frame = self.buf.split_to(8 + len);
        let payload = frame.split_off(8).freeze();
        Ok(Some((stream, payload)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_header_is_docker_layout() {
        let f = frame(StdStream::Stderr, b"hi");
        assert_eq!(&f[..], &[2, 0, 0, 0, 0, 0, 0, 2, b'h', b'i']);
    }

    #[test]
    fn demux_handles_split_input() {
        let mut all = frame(StdStream::Stdout, b"hello").to_vec();
        all.extend_from_slice(&frame(StdStream::Stderr, b""));
        all.extend_from_slice(&frame(StdStream::Stderr, b"err"));
        let mut d = Demuxer::new();
        let mut got = vec![];
        for b in all {
            d.push(&[b]);
            while let Some((s, p)) = d.next_frame().expect("valid") {
                got.push((s, p.to_vec()));
            }
        }
        assert_eq!(
            got,
            vec![
                (StdStream::Stdout, b"hello".to_vec()),
                (StdStream::Stderr, vec![]),
                (StdStream::Stderr, b"err".to_vec())
            ]
        );
    }

    #[test]
    fn demux_rejects_bad_stream_byte() {
        let mut d = Demuxer::new();
        d.push(&[9, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(d.next_frame(), Err(FrameError(9)));
    }
}
