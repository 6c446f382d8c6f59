//! `POST /containers/{id}/attach`: the client's input into the container's stdin
//! FIFO (watching for the detach keys), and its output: straight from the shim,
//! for a client attached before the start ([`crate::live`]) and for one
//! attaching while it runs (the shim's attach socket,
//! [`berth_runtime::attachsock`]); followed in the log when the log is asked for
//! too (`logs=1`), or the shim has no socket (one of an older daemon).

use std::path::Path;
use std::sync::Arc;

use berth_api::{ApiError, ApiVersion, Result};
use berth_engine::{Job, Reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::logs::{follow, Shape, Tail};
use crate::Containers;

pub(crate) async fn attach(mut job: Job, c: Arc<Containers>) -> Result<Reply> {
    let entry = c.find(job.args.required("name")?)?;
    let rec = entry.snapshot();
    let shape = Shape {
        stdout: job.args.bool("stdout"),
        stderr: job.args.bool("stderr"),
        timestamps: false,
        tty: rec.tty(),
        merge: true,
    };
    let with_logs = job.args.bool("logs");
    let stream_on = job.args.bool("stream");
    let ct = if shape.tty || job.args.version < ApiVersion::new(1, 42) {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    let keys = crate::detach::parse(
        job.args
            .str("detachKeys")
            .filter(|k| !k.is_empty())
            .unwrap_or(crate::detach::DEFAULT),
    )?;
    // Ends the attach when the client types the detach keys.
    let detached = job.cancel_token().child_token();
    let wants_output = stream_on && (shape.stdout || shape.stderr);
    // Connected before the client may send input: the output its input causes
    // is the shim's to send on.
    let mut running = if rec.state.running && wants_output && !with_logs {
        running_output(&c, &rec.id).await
    } else {
        None
    };
    let io = job.hijack(ct).await?;
    let (mut rd, mut wr) = tokio::io::split(io);
    // The client's input goes into the container's stdin FIFO when it has one
    // (`-i`); otherwise it is read and dropped so the client's writes never block.
    let fifo = c.dir(&rec.id).join("stdin.fifo");
    let to_stdin = job.args.bool("stdin") && rec.config.open_stdin && fifo.exists();
    let mut started = entry.watch.subscribe();
    let detach = detached.clone();
    let mut drain = tokio::spawn(async move {
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
        let mut watcher = crate::detach::Watcher::new(keys);
        let mut input = Vec::with_capacity(buf.len());
        while let Ok(n) = rd.read(&mut buf).await {
            if n == 0 {
                break;
            }
            input.clear();
            let done = watcher.feed(&buf[..n], &mut input);
            if let Some(f) = sink.as_mut() {
                if f.write_all(&input).await.is_err() {
                    sink = None;
                }
            }
            if done {
                detach.cancel();
                // A detach is not the end of the container's input (dockerd
                // leaves its stdin open): our end stays until it stops.
                if let Some(f) = sink.take() {
                    let exits = started.borrow().exits;
                    tokio::spawn(async move {
                        let _ = started.wait_for(|st| st.exits > exits || st.removed).await;
                        drop(f);
                    });
                }
                return;
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
    // Only output from now on, unless the log is asked for: an exited
    // container's next run (`docker start -a`) shows its own output, not the last
    // run's.
    tail.open(!with_logs).await;
    if with_logs && !rec.state.running {
        loop {
            let chunk = tail.read().await;
            if chunk.is_empty() {
                break;
            }
            if let Some(b) = shape.render_chunk(&chunk, |_| true) {
                if wr.write_all(&b).await.is_err() {
                    return Ok(Reply::empty(200));
                }
            }
        }
    }
    if wants_output {
        // Not running: the next start's output comes straight from its shim,
        // unless that start happened already or went to another client.
        let live = if rec.state.running {
            running.take()
        } else {
            let rx = entry.live.register();
            tokio::select! {
                l = crate::live::next_start(rx, &entry) => l,
                _ = detached.cancelled() => None,
            }
        };
        let res = match live {
            Some(live) => {
                let want = crate::live::Want {
                    stdout: shape.stdout,
                    stderr: shape.stderr,
                    tty: shape.tty,
                };
                let r = crate::live::relay(live, want, detached, &mut wr).await;
                let _ = wr.shutdown().await;
                r
            }
            None => {
                let wr = Arc::new(tokio::sync::Mutex::new(wr));
                let w2 = wr.clone();
                let r = follow(&entry, &mut tail, shape, detached, move |b| {
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
                r
            }
        };
        drain.abort();
        if let Err(e) = res {
            if e.kind != berth_api::ErrorKind::Cancelled {
                return Err(e);
            }
        }
    } else if stream_on && to_stdin {
        // Input only (docker-py's stdin attach socket): the attach lasts until
        // the client leaves or detaches, or the container ends.
        let mut rx = entry.watch.subscribe();
        let exits = rx.borrow().exits;
        tokio::select! {
            _ = &mut drain => {}
            _ = rx.wait_for(|st| st.exits > exits || st.removed) => {}
            _ = detached.cancelled() => {}
        }
        let _ = wr.shutdown().await;
        drain.abort();
    } else {
        let _ = wr.shutdown().await;
        drain.abort();
    }
    Ok(Reply::empty(200))
}

/// The output of a running container from now on, from its shim's attach
/// socket; `None` when no shim listens there.
async fn running_output(c: &Containers, id: &str) -> Option<crate::live::LiveOutput> {
    let path = c.run_dir(id).join(berth_runtime::attachsock::NAME);
    let s = tokio::task::spawn_blocking(move || {
        let s = berth_runtime::attachsock::connect(&path)?;
        s.set_nonblocking(true)?;
        Ok::<_, std::io::Error>(s)
    })
    .await
    .ok()?
    .map_err(|e| tracing::debug!(error = %e, "no attach socket, following the log"))
    .ok()?;
    let s = tokio::net::UnixStream::from_std(s).ok()?;
    Some(Box::pin(s))
}
