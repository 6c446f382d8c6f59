//! Bridges between a job's async world and the blocking code (tar, hashing,
//! extraction) that runs on `spawn_blocking` threads: a request body read as a
//! `std::io::Read`, and a `std::io::Write` whose bytes become a streamed reply.

use std::io::{Read, Write};

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::Body;

/// Chunks of a request body (or an error text), in order.
pub type Chunks = mpsc::Receiver<std::result::Result<Bytes, String>>;

/// Feeds a request body into a channel a blocking reader drains; the task ends
/// with the body (or when the reader goes away).
pub fn body_channel(body: Body) -> (Chunks, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(8);
    let task = tokio::spawn(async move {
        match body {
            Body::Bytes(b) => {
                let _ = tx.send(Ok(b)).await;
            }
            Body::Stream(mut s) => {
                while let Some(chunk) = s.next().await {
                    let item = chunk.map_err(|e| e.to_string());
                    let stop = item.is_err();
                    if tx.send(item).await.is_err() || stop {
                        break;
                    }
                }
            }
            Body::Empty => {}
        }
    });
    (rx, task)
}

/// A blocking `Read` over a channel of chunks. Only for blocking threads.
pub struct ChanReader {
    rx: Chunks,
    cur: Bytes,
}

impl ChanReader {
    pub fn new(rx: Chunks) -> ChanReader {
        ChanReader {
            rx,
            cur: Bytes::new(),
        }
    }
}

impl Read for ChanReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(std::io::Error::other(e)),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur.split_to(n));
        Ok(n)
    }
}

/// A blocking `Write` that sends 256 KiB chunks down a channel; it fails once the
/// receiving side (the client) is gone. Only for blocking threads.
pub struct ChanWriter {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
}

impl ChanWriter {
    pub fn new(tx: mpsc::Sender<Bytes>) -> ChanWriter {
        ChanWriter {
            tx,
            buf: Vec::new(),
        }
    }
}

impl Write for ChanWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 256 * 1024 {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            let b = Bytes::from(std::mem::take(&mut self.buf));
            self.tx
                .blocking_send(b)
                .map_err(|_| std::io::Error::other("client went away"))?;
        }
        Ok(())
    }
}

/// Passes the chunks a blocking writer makes ([`ChanWriter`]) to a streamed
/// reply until they end. A cancelled job (its client gone, or
/// `DELETE /berth/jobs/{id}`) stops it: dropping the channel makes the
/// writer's next write fail, so the blocking side ends too.
pub async fn forward(
    cancel: &tokio_util::sync::CancellationToken,
    mut rx: mpsc::Receiver<Bytes>,
    out: &crate::StreamWriter,
) -> berth_api::Result<()> {
    loop {
        tokio::select! {
            chunk = rx.recv() => match chunk {
                Some(c) => out.send(c).await?,
                None => return Ok(()),
            },
            _ = cancel.cancelled() => return Err(berth_api::ApiError::cancelled()),
        }
    }
}
