//! `GET /containers/{id}/logs`: the json-file log the shim writes, read and
//! followed with inotify while the container runs. Attach follows it the same
//! way for clients that come once the container runs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_api::stdcopy::StdStream;
use berth_api::{ApiError, ApiVersion, Result};
use berth_engine::{Job, Reply, StreamKind};
use berth_runtime::logfile::{parse_line, LogRef};
use bytes::{BufMut, Bytes};
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::{Containers, Entry};

/// Which lines a reader wants and how to show them.
#[derive(Clone, Copy)]
pub(crate) struct Shape {
    pub(crate) stdout: bool,
    pub(crate) stderr: bool,
    pub(crate) timestamps: bool,
    pub(crate) tty: bool,
    /// Attach streams are raw output, not log records: consecutive output of one
    /// stream goes in one frame (dockerd frames each chunk it read from the
    /// container, not each line), which spares the client a write per line.
    pub(crate) merge: bool,
}

impl Shape {
    /// The record's stream, when it is one the reader wants.
    fn stream_of(&self, l: &LogRef) -> Option<StdStream> {
        match l.stream.as_ref() {
            "stdout" if self.stdout => Some(StdStream::Stdout),
            "stderr" if self.stderr => Some(StdStream::Stderr),
            _ => None,
        }
    }

    /// Appends `l` as the client sees it; false if the line's stream is not wanted.
    fn render_into(&self, l: &LogRef, out: &mut Vec<u8>) -> bool {
        let Some(stream) = self.stream_of(l) else {
            return false;
        };
        let ts = if self.timestamps { l.time.len() + 1 } else { 0 };
        if !self.tty {
            let len = (ts + l.log.len()) as u32;
            out.push(stream as u8);
            out.extend_from_slice(&[0, 0, 0]);
            out.extend_from_slice(&len.to_be_bytes());
        }
        self.body_into(l, out);
        true
    }

    fn body_into(&self, l: &LogRef, out: &mut Vec<u8>) {
        if self.timestamps {
            out.extend_from_slice(l.time.as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(&l.log);
    }

    /// Like [`Shape::render_into`], extending the frame that ends `out` at
    /// `last` when it is of the same stream.
    fn merge_into(&self, l: &LogRef, out: &mut Vec<u8>, last: &mut Option<(usize, u8)>) {
        let Some(stream) = self.stream_of(l).map(|s| s as u8) else {
            return;
        };
        if self.tty {
            self.body_into(l, out);
            return;
        }
        match *last {
            Some((at, s)) if s == stream && out.len() - at < (1 << 20) => {
                self.body_into(l, out);
                let len = (out.len() - at - 8) as u32;
                out[at + 4..at + 8].copy_from_slice(&len.to_be_bytes());
            }
            _ => {
                *last = Some((out.len(), stream));
                self.render_into(l, out);
            }
        }
    }

    /// Every record of `chunk` (whole lines) that passes `keep`, rendered into
    /// one buffer.
    pub(crate) fn render_chunk(
        &self,
        chunk: &[u8],
        keep: impl Fn(&LogRef) -> bool,
    ) -> Option<Bytes> {
        let mut out = Vec::with_capacity(chunk.len());
        let mut last = None;
        for line in chunk.split(|b| *b == b'\n') {
            if let Some(l) = parse_line(line) {
                if !keep(&l) {
                    continue;
                }
                if self.merge {
                    self.merge_into(&l, &mut out, &mut last);
                } else {
                    self.render_into(&l, &mut out);
                }
            }
        }
        (!out.is_empty()).then(|| Bytes::from(out))
    }
}

/// Reads complete lines appended to a log file.
pub(crate) struct Tail {
    path: PathBuf,
    file: Option<tokio::fs::File>,
    /// Inode of the open file, to notice rotation.
    ino: u64,
    partial: Vec<u8>,
}

impl Tail {
    pub(crate) fn new(path: &Path) -> Tail {
        Tail {
            path: path.to_path_buf(),
            file: None,
            ino: 0,
            partial: Vec::new(),
        }
    }

    pub(crate) async fn open(&mut self, at_end: bool) {
        if self.file.is_none() {
            if let Ok(mut f) = tokio::fs::File::open(&self.path).await {
                self.ino = f
                    .metadata()
                    .await
                    .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
                    .unwrap_or(0);
                if at_end {
                    let _ = f.seek(std::io::SeekFrom::End(0)).await;
                }
                self.file = Some(f);
            }
        }
    }

    /// The complete lines available now (at most about a megabyte of them, so
    /// memory stays bounded whatever the size of the log; callers call again
    /// until nothing comes).
    pub(crate) async fn read(&mut self) -> Vec<u8> {
        const CHUNK: usize = 1 << 20;
        let Some(f) = self.file.as_mut() else {
            return Vec::new();
        };
        let mut got = 0;
        self.partial.reserve(CHUNK);
        while got < CHUNK {
            // Into the spare capacity, which is never zeroed first.
            let mut room = (&mut self.partial).limit(CHUNK - got);
            match f.read_buf(&mut room).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        if got >= CHUNK {
            let lines = self.lines();
            if lines.is_empty() {
                // One record longer than a chunk (not one the shim writes):
                // keep reading until it ends.
                return Box::pin(self.read()).await;
            }
            return lines;
        }
        // Rotated (renamed away, or truncated with max-file=1): go on with the new file.
        let now = tokio::fs::metadata(&self.path).await.ok();
        let rotated = now
            .as_ref()
            .is_some_and(|m| std::os::unix::fs::MetadataExt::ino(m) != self.ino);
        let truncated = match (&now, self.file.as_mut()) {
            (Some(m), Some(f)) => f.stream_position().await.is_ok_and(|pos| m.len() < pos),
            _ => false,
        };
        if rotated {
            self.file = None;
            self.open(false).await;
        } else if truncated {
            if let Some(f) = self.file.as_mut() {
                let _ = f.seek(std::io::SeekFrom::Start(0)).await;
            }
        }
        self.lines()
    }

    /// The complete lines buffered so far; the partial last one stays.
    fn lines(&mut self) -> Vec<u8> {
        match self.partial.iter().rposition(|b| *b == b'\n') {
            Some(i) => {
                let rest = self.partial.split_off(i + 1);
                std::mem::replace(&mut self.partial, rest)
            }
            None => Vec::new(),
        }
    }
}

fn time_ok(l: &LogRef, since: Option<i128>, until: Option<i128>) -> bool {
    if since.is_none() && until.is_none() {
        return true;
    }
    let t = time::OffsetDateTime::parse(&l.time, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp_nanos())
        .unwrap_or(0);
    since.is_none_or(|s| t >= s) && until.is_none_or(|u| t <= u)
}

fn parse_time(s: Option<&str>) -> Result<Option<i128>> {
    match s.filter(|s| !s.is_empty() && *s != "0") {
        None => Ok(None),
        Some(s) => {
            let (secs, frac) = s.split_once('.').unwrap_or((s, "0"));
            let secs: i128 = secs
                .parse()
                .map_err(|_| ApiError::invalid(format!("invalid time value: {s}")))?;
            let frac: i128 = format!("{frac:0<9}")[..9].parse().unwrap_or(0);
            Ok(Some(secs * 1_000_000_000 + frac))
        }
    }
}

/// Closes an inotify descriptor on a blocking thread: the close waits for an SRCU
/// grace period (10–18 ms here), which would otherwise hold up the end of every
/// followed stream (`docker run`'s output ends only after it) and a worker thread.
struct ClosedAside<T: Send + 'static>(Option<T>);

impl<T: Send + 'static> Drop for ClosedAside<T> {
    fn drop(&mut self) {
        if let (Some(v), Ok(rt)) = (self.0.take(), tokio::runtime::Handle::try_current()) {
            rt.spawn_blocking(move || drop(v));
        }
    }
}

/// Follows the log while the container runs; returns when it has exited and the
/// log is drained, or when `send` fails (the client went away).
pub(crate) async fn follow<F, Fut>(
    entry: &Entry,
    tail: &mut Tail,
    shape: Shape,
    cancel: tokio_util::sync::CancellationToken,
    mut send: F,
) -> Result<()>
where
    F: FnMut(Bytes) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut rx = entry.watch.subscribe();
    let inotify =
        inotify::Inotify::init().map_err(|e| ApiError::system(format!("inotify: {e}")))?;
    let dir = tail
        .path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    inotify
        .watches()
        .add(
            &dir,
            inotify::WatchMask::MODIFY | inotify::WatchMask::CREATE,
        )
        .map_err(|e| ApiError::system(format!("inotify: {e}")))?;
    let events = inotify
        .into_event_stream(vec![0u8; 4096])
        .map_err(|e| ApiError::system(format!("inotify: {e}")))?;
    let mut events = ClosedAside(Some(events));
    let events = events
        .0
        .as_mut()
        .ok_or_else(|| ApiError::system("inotify"))?;
    loop {
        // Seen before the read: once the container has ended (the shim flushed its
        // log before it went), this read drains the rest and we stop.
        let state = rx.borrow().clone();
        let ended = state.status != "running" && state.status != "created" || state.removed;
        tail.open(false).await;
        loop {
            let chunk = tail.read().await;
            if chunk.is_empty() {
                break;
            }
            if let Some(b) = shape.render_chunk(&chunk, |_| true) {
                send(b).await?;
            }
        }
        if ended {
            return Ok(());
        }
        tokio::select! {
            _ = events.next() => {}
            r = rx.changed() => { if r.is_err() { return Ok(()); } }
            _ = cancel.cancelled() => return Err(ApiError::cancelled()),
        }
    }
}

pub(crate) async fn logs(mut job: Job, c: Arc<Containers>) -> Result<Reply> {
    let entry = c.find(job.args.required("name")?)?;
    let rec = entry.snapshot();
    if !crate::LogConfig::of_host_config(&rec.host_config)
        .driver
        .readable()
    {
        return Err(ApiError::not_implemented(
            "configured logging driver does not support reading",
        ));
    }
    let shape = Shape {
        stdout: job.args.bool("stdout"),
        stderr: job.args.bool("stderr"),
        timestamps: job.args.bool("timestamps"),
        tty: rec.tty(),
        merge: false,
    };
    if !shape.stdout && !shape.stderr {
        return Err(ApiError::invalid(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let since = parse_time(job.args.str("since"))?;
    let until = parse_time(job.args.str("until"))?;
    let tail_n: Option<usize> = match job
        .args
        .str("tail")
        .filter(|t| !t.is_empty() && *t != "all")
    {
        Some(t) => Some(
            t.parse()
                .map_err(|_| ApiError::invalid(format!("invalid tail value: {t}")))?,
        ),
        None => None,
    };
    let follow_on = job.args.bool("follow");
    let ct = if shape.tty || job.args.version < ApiVersion::new(1, 42) {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    let out = job.stream(ct, StreamKind::Raw)?;
    // Rotated files first, oldest first, then the live one (kept open to follow).
    // Streamed a megabyte at a time; with `tail`, only the last lines are kept.
    let live = Path::new(&rec.log_path);
    // With `tail`: the last lines, each already rendered.
    let mut last: std::collections::VecDeque<Vec<u8>> = std::collections::VecDeque::new();
    let mut tails: Vec<Tail> = berth_runtime::logfile::files(live)
        .iter()
        .filter(|f| f.as_path() != live)
        .map(|f| Tail::new(f))
        .collect();
    tails.push(Tail::new(live));
    let mut tail = None;
    let keep = |l: &LogRef| time_ok(l, since, until);
    for mut t in tails {
        t.open(false).await;
        loop {
            let chunk = t.read().await;
            if chunk.is_empty() {
                break;
            }
            match tail_n {
                Some(0) => {}
                Some(n) => {
                    for line in chunk.split(|b| *b == b'\n') {
                        let Some(l) = parse_line(line).filter(|l| keep(l)) else {
                            continue;
                        };
                        let mut r = Vec::new();
                        if shape.render_into(&l, &mut r) {
                            if last.len() == n {
                                last.pop_front();
                            }
                            last.push_back(r);
                        }
                    }
                }
                None => {
                    if let Some(b) = shape.render_chunk(&chunk, keep) {
                        out.send(b).await?;
                    }
                }
            }
        }
        tail = Some(t);
    }
    if !last.is_empty() {
        out.send(Bytes::from(last.into_iter().flatten().collect::<Vec<u8>>()))
            .await?;
    }
    let mut tail = tail.unwrap_or_else(|| Tail::new(live));
    if follow_on && until.is_none() {
        let o2 = out.clone();
        follow(&entry, &mut tail, shape, job.cancel_token(), move |b| {
            let o = o2.clone();
            async move { o.send(b).await }
        })
        .await?;
    }
    Ok(Reply::empty(200))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(lines: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (stream, text) in lines {
            berth_runtime::logfile::encode_line(
                &mut out,
                stream,
                text.as_bytes(),
                "2024-01-01T00:00:00Z",
            );
        }
        out
    }

    /// (stream, payload) of each stdcopy frame.
    fn frames(mut b: &[u8]) -> Vec<(u8, String)> {
        let mut out = Vec::new();
        while b.len() >= 8 {
            let len = u32::from_be_bytes([b[4], b[5], b[6], b[7]]) as usize;
            out.push((b[0], String::from_utf8_lossy(&b[8..8 + len]).into_owned()));
            b = &b[8 + len..];
        }
        out
    }

    #[test]
    fn logs_frame_each_record_and_attach_merges_runs_of_one_stream() {
        let chunk = log(&[
            ("stdout", "a\n"),
            ("stdout", "b\n"),
            ("stderr", "c\n"),
            ("stdout", "d"),
        ]);
        let mut shape = Shape {
            stdout: true,
            stderr: true,
            timestamps: false,
            tty: false,
            merge: false,
        };
        let f = frames(&shape.render_chunk(&chunk, |_| true).expect("out"));
        assert_eq!(
            f,
            vec![
                (1, "a\n".into()),
                (1, "b\n".into()),
                (2, "c\n".into()),
                (1, "d".into())
            ]
        );
        shape.merge = true;
        let f = frames(&shape.render_chunk(&chunk, |_| true).expect("out"));
        assert_eq!(
            f,
            vec![(1, "a\nb\n".into()), (2, "c\n".into()), (1, "d".into())]
        );
        // Only stderr wanted: stdout records vanish without breaking frames.
        shape.stdout = false;
        let f = frames(&shape.render_chunk(&chunk, |_| true).expect("out"));
        assert_eq!(f, vec![(2, "c\n".into())]);
        // A terminal has no frames at all.
        shape.stdout = true;
        shape.tty = true;
        let raw = shape.render_chunk(&chunk, |_| true).expect("out");
        assert_eq!(raw.as_ref(), b"a\nb\nc\nd");
        shape.merge = false;
        shape.timestamps = true;
        let raw = shape.render_chunk(&chunk, |_| true).expect("out");
        assert!(raw.starts_with(b"2024-01-01T00:00:00Z a\n2024"), "{raw:?}");
    }
}
