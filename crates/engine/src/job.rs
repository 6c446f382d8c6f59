//! A running job: its identity, arguments, cancellation and output.

use std::sync::{Arc, Mutex};

use berth_api::{ApiError, Result};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use crate::reply::{BoxedIo, Reply, ReplyBody, StreamKind, StreamWriter};
use crate::{Args, Engine, EventBus, ProgressReporter};

/// How a job is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobStatus {
    Running,
    /// Asked to stop (`DELETE /berth/jobs/{id}`), not ended yet.
    Cancelling,
    Done,
    Failed(String),
    Cancelled,
}

/// Where a job's reply goes. Shared between the job and the engine task that runs it,
/// so that the engine can answer with the job's error when the handler fails.
#[derive(Clone)]
pub(crate) struct OutputHandle {
    inner: Arc<Mutex<Output>>,
}

struct Output {
    /// Still set while no reply has been sent.
    reply: Option<oneshot::Sender<Reply>>,
    /// Set once a stream has been started, to report a late error in it.
    stream: Option<(StreamKind, mpsc::Sender<bytes::Bytes>)>,
}

impl OutputHandle {
    fn take_reply(&self) -> Option<oneshot::Sender<Reply>> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .reply
            .take()
    }

    /// Sends the handler's result as the reply, or reports it in the stream already
    /// under way. Returns the final status of the job.
    pub(crate) async fn finish(&self, result: Result<Reply>) -> JobStatus {
        let (reply, stream) = {
            let mut o = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            (o.reply.take(), o.stream.take())
        };
        match (result, reply) {
            (Ok(r), Some(tx)) => {
                // A dropped receiver means the client left; nothing to tell it.
                let _ = tx.send(r);
                JobStatus::Done
            }
            (Ok(_), None) => JobStatus::Done,
            (Err(e), Some(tx)) => {
                let status = status_of(&e);
                let _ = tx.send(Reply::error(e));
                status
            }
            (Err(e), None) => {
                if let Some((StreamKind::JsonMessages, tx)) = stream {
                    let line = serde_json::json!({
                        "errorDetail": { "message": e.message },
                        "error": e.message,
                    });
                    let mut buf = serde_json::to_vec(&line).unwrap_or_default();
                    buf.extend_from_slice(b"\r\n");
                    let _ = tx.send(buf.into()).await;
                }
                status_of(&e)
            }
        }
    }
}

fn status_of(e: &ApiError) -> JobStatus {
    if e.kind == berth_api::ErrorKind::Cancelled {
        JobStatus::Cancelled
    } else {
        JobStatus::Failed(e.message.clone())
    }
}

/// One job: a named request with its arguments, run by the handler registered for
/// its name. Dropping the client cancels it ([`Job::cancelled`]).
pub struct Job {
    pub id: u64,
    pub name: String,
    pub args: Args,
    cancel: CancellationToken,
    out: OutputHandle,
    engine: Engine,
    progress: ProgressReporter,
}

impl Job {
    pub(crate) fn new(
        id: u64,
        name: &str,
        args: Args,
        cancel: CancellationToken,
        reply: oneshot::Sender<Reply>,
        engine: Engine,
        progress: ProgressReporter,
    ) -> Job {
        let out = OutputHandle {
            inner: Arc::new(Mutex::new(Output {
                reply: Some(reply),
                stream: None,
            })),
        };
        Job {
            id,
            name: name.to_string(),
            args,
            cancel,
            out,
            engine,
            progress,
        }
    }

    pub(crate) fn output_handle(&self) -> OutputHandle {
        self.out.clone()
    }

    /// The engine running this job, to publish events or call other jobs.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Where the job says how far it has come (`GET /berth/jobs` shows it).
    pub fn progress(&self) -> ProgressReporter {
        self.progress.clone()
    }

    pub fn events(&self) -> &EventBus {
        self.engine.events()
    }

    /// Resolves when the client went away or the daemon is shutting down.
    pub fn cancelled(&self) -> WaitForCancellationFuture<'_> {
        self.cancel.cancelled()
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// A token that is cancelled with this job, for work the job hands to other tasks.
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Starts a streamed `200` reply now and returns the writer for its body. The job
    /// keeps running and writes as it goes; the client sees each write at once.
    pub fn stream(&mut self, content_type: &str, kind: StreamKind) -> Result<StreamWriter> {
        self.stream_with_headers(content_type, kind, Vec::new())
    }

    /// As [`Job::stream`], with extra response headers.
    pub fn stream_with_headers(
        &mut self,
        content_type: &str,
        kind: StreamKind,
        headers: Vec<(&'static str, std::borrow::Cow<'static, str>)>,
    ) -> Result<StreamWriter> {
        let tx = self
            .out
            .take_reply()
            .ok_or_else(|| ApiError::system("reply already sent"))?;
        // A small buffer: a slow client slows the producer down instead of growing memory.
        let (btx, brx) = mpsc::channel(16);
        self.out
            .inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stream = Some((kind, btx.clone()));
        let reply = Reply {
            status: 200,
            headers,
            body: ReplyBody::Stream {
                content_type: content_type.to_string(),
                rx: brx,
            },
        };
        tx.send(reply).map_err(|_| ApiError::cancelled())?;
        Ok(StreamWriter::new(btx))
    }

    /// Takes over the client's connection: the server answers `101 UPGRADED` with
    /// `content_type` and hands the raw bidirectional stream to the job.
    pub async fn hijack(&mut self, content_type: &str) -> Result<BoxedIo> {
        let tx = self
            .out
            .take_reply()
            .ok_or_else(|| ApiError::system("reply already sent"))?;
        let (io_tx, io_rx) = oneshot::channel();
        let reply = Reply {
            status: 101,
            headers: Vec::new(),
            body: ReplyBody::Hijack {
                content_type: content_type.to_string(),
                io: io_tx,
            },
        };
        tx.send(reply).map_err(|_| ApiError::cancelled())?;
        tokio::select! {
            io = io_rx => io.map_err(|_| ApiError::cancelled()),
            _ = self.cancel.cancelled() => Err(ApiError::cancelled()),
        }
    }
}
