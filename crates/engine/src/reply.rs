//! What a job answers, independent of HTTP.

use berth_api::ApiError;
use std::borrow::Cow;

use bytes::Bytes;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};

/// A raw bidirectional connection taken over from the client.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
pub type BoxedIo = Box<dyn Io>;

/// How the bytes of a stream are to be read; decides how a late error is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// Newline-separated JSON messages (pull, push, build, load): a late error is sent
    /// as a final `{"errorDetail":…,"error":…}` line.
    JsonMessages,
    /// Raw bytes (logs, export, events): a late error ends the stream.
    Raw,
}

pub enum ReplyBody {
    Empty,
    Bytes {
        content_type: &'static str,
        data: Bytes,
    },
    Stream {
        content_type: String,
        rx: mpsc::Receiver<Bytes>,
    },
    Hijack {
        content_type: String,
        io: oneshot::Sender<BoxedIo>,
    },
}

/// A job's answer: a status, extra headers and a body.
pub struct Reply {
    pub status: u16,
    /// Names as written here; values mostly constants (answers like `/_ping`
    /// carry several on every request).
    pub headers: Vec<(&'static str, Cow<'static, str>)>,
    pub body: ReplyBody,
}

impl Reply {
    /// `200` with `value` as JSON.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Reply {
        Reply::json_status(200, value)
    }

    pub fn json_status<T: Serialize + ?Sized>(status: u16, value: &T) -> Reply {
        match serde_json::to_vec(value) {
            Ok(mut data) => {
                data.push(b'\n');
                Reply::bytes(status, "application/json", data)
            }
            Err(e) => Reply::error(ApiError::system(format!("encoding reply: {e}"))),
        }
    }

    pub fn bytes(status: u16, content_type: &'static str, data: impl Into<Bytes>) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: ReplyBody::Bytes {
                content_type,
                data: data.into(),
            },
        }
    }

    /// A reply with no body, e.g. `204 No Content`.
    pub fn empty(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: ReplyBody::Empty,
        }
    }

    /// The error's status code and `{"message": …}` body.
    pub fn error(e: ApiError) -> Reply {
        Reply::bytes(e.status_code(), "application/json", e.to_json())
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<Cow<'static, str>>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }
}

/// The writing end of a streamed reply.
#[derive(Clone)]
pub struct StreamWriter {
    tx: mpsc::Sender<Bytes>,
}

impl StreamWriter {
    pub(crate) fn new(tx: mpsc::Sender<Bytes>) -> Self {
        StreamWriter { tx }
    }

    /// Sends bytes; fails with `Cancelled` once the client has gone.
    pub async fn send(&self, data: impl Into<Bytes>) -> Result<(), ApiError> {
        self.tx
            .send(data.into())
            .await
            .map_err(|_| ApiError::cancelled())
    }

    /// Sends `value` as one JSON line (`\n`-terminated).
    pub async fn send_json<T: Serialize + ?Sized>(&self, value: &T) -> Result<(), ApiError> {
        let mut buf =
            serde_json::to_vec(value).map_err(|e| ApiError::system(format!("encoding: {e}")))?;
        buf.push(b'\n');
        self.send(buf).await
    }

    /// Resolves when the client has gone away.
    pub async fn closed(&self) {
        self.tx.closed().await
    }
}
