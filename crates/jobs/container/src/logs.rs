//! `GET /containers/{id}/logs` and `POST /containers/{id}/attach`: both read the
//! json-file log the shim writes, following it with inotify while the container runs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_api::stdcopy::{frame, StdStream};
use berth_api::{ApiError, ApiVersion, Result};
use berth_engine::{Job, Reply, StreamKind};
use berth_runtime::logfile::LogLine;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::{Containers, Entry};

/// Which lines a reader wants and how to show them.
#[derive(Clone, Copy)]
struct Shape {
    stdout: bool,
    stderr: bool,
    timestamps: bool,
    tty: bool,
}

impl Shape {
    /// Appends `l` as the client sees it; false if the line's stream is not wanted.
    fn render_into(&self, l: &LogLine, out: &mut Vec<u8>) -> bool {
        let stream = match l.stream.as_str() {
            "stdout" if self.stdout => StdStream::Stdout,
            "stderr" if self.stderr => StdStream::Stderr,
            _ => return false,
        };
        let ts = if self.timestamps { l.time.len() + 1 } else { 0 };
        if !self.tty {
            let len = (ts + l.log.len()) as u32;
            out.push(stream as u8);
            out.extend_from_slice(&[0, 0, 0]);
            out.extend_from_slice(&len.to_be_bytes());
        }
        if self.timestamps {
            out.extend_from_slice(l.time.as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(l.log.as_bytes());
        true
    }

    /// All of `lines` rendered into one buffer.
    fn render_all<'a>(&self, lines: impl IntoIterator<Item = &'a LogLine>) -> Option<Bytes> {
        let mut out = Vec::new();
        for l in lines {
            self.render_into(l, &mut out);
        }
        (!out.is_empty()).then(|| Bytes::from(out))
    }

    fn render(&self, l: &LogLine) -> Option<Bytes> {
        let stream = match l.stream.as_str() {
            "stdout" if self.stdout => StdStream::Stdout,
            "stderr" if self.stderr => StdStream::Stderr,
            _ => return None,
        };
        let text = if self.timestamps {
            format!("{} {}", l.time, l.log)
        } else {
            l.log.clone()
        };
        Some(if self.tty {
            Bytes::from(text)
        } else {
            frame(stream, text.as_bytes())
        })
    }
}

/// Reads complete lines appended to a log file.
struct Tail {
    path: PathBuf,
    file: Option<tokio::fs::File>,
    /// Inode of the open file, to notice rotation.
    ino: u64,
    partial: Vec<u8>,
}

impl Tail {
    fn new(path: &Path) -> Tail {
        Tail {
            path: path.to_path_buf(),
            file: None,
            ino: 0,
            partial: Vec::new(),
        }
    }

    async fn open(&mut self, at_end: bool) {
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

    /// Every complete line available now.
    async fn read(&mut self) -> Vec<LogLine> {
        let Some(f) = self.file.as_mut() else {
            return Vec::new();
        };
        // At most about a megabyte per call, so memory stays bounded whatever the
        // size of the log; callers call again until no line comes.
        let mut buf = vec![0u8; 64 * 1024];
        let mut got = 0;
        while got < (1 << 20) {
            match f.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    got += n;
                    self.partial.extend_from_slice(&buf[..n]);
                }
            }
        }
        if got >= (1 << 20) {
            return self.lines();
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

    /// The complete lines buffered so far.
    fn lines(&mut self) -> Vec<LogLine> {
        let mut out = Vec::new();
        // One pass over the buffer, one drain at the end: draining line by line
        // from the front is quadratic in the size of the log.
        let mut start = 0;
        for (i, b) in self.partial.iter().enumerate() {
            if *b == b'\n' {
                if let Ok(l) = serde_json::from_slice::<LogLine>(&self.partial[start..i]) {
                    out.push(l);
                }
                start = i + 1;
            }
        }
        self.partial.drain(..start);
        out
    }
}

fn time_ok(l: &LogLine, since: Option<i128>, until: Option<i128>) -> bool {
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

/// Follows the log while the container runs; returns when it has exited and the
/// log is drained, or when `send` fails (the client went away).
async fn follow<F, Fut>(
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
    let mut events = inotify
        .into_event_stream(vec![0u8; 4096])
        .map_err(|e| ApiError::system(format!("inotify: {e}")))?;
    loop {
        // Seen before the read: once the container has ended (the shim flushed its
        // log before it went), this read drains the rest and we stop.
        let state = rx.borrow().clone();
        let ended = state.status != "running" && state.status != "created" || state.removed;
        tail.open(false).await;
        loop {
            let lines = tail.read().await;
            if lines.is_empty() {
                break;
            }
            if let Some(b) = shape.render_all(&lines) {
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
    let shape = Shape {
        stdout: job.args.bool("stdout"),
        stderr: job.args.bool("stderr"),
        timestamps: job.args.bool("timestamps"),
        tty: rec.tty(),
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
    let mut last: std::collections::VecDeque<LogLine> = std::collections::VecDeque::new();
    let mut tails: Vec<Tail> = berth_runtime::logfile::files(live)
        .iter()
        .filter(|f| f.as_path() != live)
        .map(|f| Tail::new(f))
        .collect();
    tails.push(Tail::new(live));
    let mut tail = None;
    let keep = |l: &LogLine| time_ok(l, since, until) && shape.render(l).is_some();
    for mut t in tails {
        t.open(false).await;
        loop {
            let mut lines = t.read().await;
            if lines.is_empty() {
                break;
            }
            lines.retain(|l| keep(l));
            match tail_n {
                Some(n) => {
                    last.extend(lines);
                    while last.len() > n {
                        last.pop_front();
                    }
                }
                None => {
                    if let Some(b) = shape.render_all(&lines) {
                        out.send(b).await?;
                    }
                }
            }
        }
        tail = Some(t);
    }
    if let Some(b) = shape.render_all(&last) {
        out.send(b).await?;
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

pub(crate) async fn attach(mut job: Job, c: Arc<Containers>) -> Result<Reply> {
    let entry = c.find(job.args.required("name")?)?;
    let rec = entry.snapshot();
    let shape = Shape {
        stdout: job.args.bool("stdout"),
        stderr: job.args.bool("stderr"),
        timestamps: false,
        tty: rec.tty(),
    };
    let with_logs = job.args.bool("logs");
    let stream_on = job.args.bool("stream");
    let ct = if shape.tty || job.args.version < ApiVersion::new(1, 42) {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    let io = job.hijack(ct).await?;
    let (mut rd, mut wr) = tokio::io::split(io);
    // The client's input goes into the container's stdin FIFO when it has one
    // (`-i`); otherwise it is read and dropped so the client's writes never block.
    let fifo = c.dir(&rec.id).join("stdin.fifo");
    let to_stdin = job.args.bool("stdin")
        && rec.config["OpenStdin"].as_bool().unwrap_or(false)
        && fifo.exists();
    let mut started = entry.watch.subscribe();
    let drain = tokio::spawn(async move {
        // Read and write: opening never waits, and our close is the EOF the
        // container sees when the client's input ends.
        let mut sink = if to_stdin {
            tokio::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&fifo)
                .await
                .ok()
        } else {
            None
        };
        let mut buf = vec![0u8; 32 * 1024];
        while let Ok(n) = rd.read(&mut buf).await {
            if n == 0 {
                break;
            }
            if let Some(f) = sink.as_mut() {
                if f.write_all(&buf[..n]).await.is_err() {
                    sink = None;
                }
            }
        }
        // A FIFO loses its buffered data when its last descriptor closes: hold our
        // end until the container (through its shim) holds the other.
        if sink.is_some() {
            let _ = started
                .wait_for(|st| st.status != "created" || st.removed)
                .await;
        }
        drop(sink);
    });
    let mut tail = Tail::new(Path::new(&rec.log_path));
    // A container that has not started yet: everything it writes is new output.
    let at_end = rec.state.running && !with_logs;
    tail.open(at_end).await;
    if with_logs && !rec.state.running {
        loop {
            let lines = tail.read().await;
            if lines.is_empty() {
                break;
            }
            if let Some(b) = shape.render_all(&lines) {
                if wr.write_all(&b).await.is_err() {
                    return Ok(Reply::empty(200));
                }
            }
        }
    }
    if stream_on && (shape.stdout || shape.stderr) {
        let wr = Arc::new(tokio::sync::Mutex::new(wr));
        let w2 = wr.clone();
        let res = follow(&entry, &mut tail, shape, job.cancel_token(), move |b| {
            let w = w2.clone();
            async move {
                w.lock()
                    .await
                    .write_all(&b)
                    .await
                    .map_err(|_| ApiError::cancelled())
            }
        })
        .await;
        let _ = wr.lock().await.shutdown().await;
        drain.abort();
        if let Err(e) = res {
            if e.kind != berth_api::ErrorKind::Cancelled {
                return Err(e);
            }
        }
    } else {
        let _ = wr.shutdown().await;
        drain.abort();
    }
    Ok(Reply::empty(200))
}
