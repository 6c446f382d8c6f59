//! Turning a job's [`Reply`] into an HTTP response.

use std::convert::Infallible;

use berth_api::ApiError;
use berth_engine::{BoxedIo, Reply, ReplyBody};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http::{header, HeaderName, HeaderValue, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::Frame;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;
use tokio::sync::oneshot;
use tokio_util::sync::DropGuard;

pub type RequestBody = std::pin::Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

pub type ResBody = UnsyncBoxBody<Bytes, Infallible>;

fn full(data: impl Into<Bytes>) -> ResBody {
    Full::new(data.into()).boxed_unsync()
}

fn empty() -> ResBody {
    Empty::new().boxed_unsync()
}

const API_VERSION: HeaderName = HeaderName::from_static("api-version");
const DOCKER_EXPERIMENTAL: HeaderName = HeaderName::from_static("docker-experimental");
const OSTYPE: HeaderName = HeaderName::from_static("ostype");

/// The headers dockerd puts on every response.
pub fn common_headers(res: &mut Response<ResBody>) {
    let h = res.headers_mut();
    h.insert(API_VERSION, HeaderValue::from_static(api_version_str()));
    h.insert(DOCKER_EXPERIMENTAL, HeaderValue::from_static("false"));
    h.insert(OSTYPE, HeaderValue::from_static("linux"));
    h.insert(
        header::SERVER,
        HeaderValue::from_static(concat!("Berth/", env!("CARGO_PKG_VERSION"), " (linux)")),
    );
}

fn api_version_str() -> &'static str {
    // Kept as a literal so it can be a static header value; checked by a test.
    "1.50"
}

pub fn error_response(e: &ApiError) -> Response<ResBody> {
    let status = StatusCode::from_u16(e.status_code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut res = Response::new(full(e.to_json()));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if status == StatusCode::METHOD_NOT_ALLOWED {
        res.headers_mut().insert(
            header::ALLOW,
            HeaderValue::from_static("GET, HEAD, POST, PUT, DELETE"),
        );
    }
    res
}

fn set_content_type(res: &mut Response<ResBody>, ct: &str) {
    if let Ok(v) = HeaderValue::from_str(ct) {
        res.headers_mut().insert(header::CONTENT_TYPE, v);
    }
}

/// How the client's side of a hijacked connection is reached.
pub enum Hijack {
    /// The client sent `Upgrade: tcp`: answer 101 and take the connection.
    Upgrade(OnUpgrade),
    /// No upgrade asked: the request body feeds the job's input and the job's output
    /// is the response body, as dockerd does for plain attach requests.
    Plain(Option<RequestBody>),
}

pub fn to_response(reply: Reply, guard: DropGuard, hijack: Hijack) -> Response<ResBody> {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut res = match reply.body {
        ReplyBody::Empty => {
            drop(guard);
            Response::new(empty())
        }
        ReplyBody::Bytes { content_type, data } => {
            drop(guard);
            let mut res = Response::new(full(data));
            res.headers_mut()
                .insert(header::CONTENT_TYPE, static_value(content_type));
            res
        }
        ReplyBody::Stream { content_type, rx } => {
            // The guard lives in the body: when hyper drops the body (client gone), the
            // job is cancelled.
            let stream = futures_util::stream::unfold((rx, guard), |(mut rx, guard)| async move {
                rx.recv()
                    .await
                    .map(|b| (Ok::<_, Infallible>(Frame::data(b)), (rx, guard)))
            });
            let mut res = Response::new(StreamBody::new(stream).boxed_unsync());
            set_content_type(&mut res, &content_type);
            res
        }
        ReplyBody::Hijack { content_type, io } => {
            return hijack_response(&content_type, io, guard, hijack)
        }
    };
    *res.status_mut() = status;
    for (name, value) in reply.headers {
        let value = match value {
            std::borrow::Cow::Borrowed(v) => Ok(static_value(v)),
            std::borrow::Cow::Owned(v) => HeaderValue::try_from(v),
        };
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_bytes()), value) {
            res.headers_mut().insert(n, v);
        }
    }
    res
}

/// A constant header value, without a copy when it is a valid one.
fn static_value(v: &'static str) -> HeaderValue {
    if v.bytes().all(|b| b == b'\t' || (b' '..0x7f).contains(&b)) {
        HeaderValue::from_static(v)
    } else {
        HeaderValue::from_bytes(v.as_bytes()).unwrap_or(HeaderValue::from_static(""))
    }
}

fn hijack_response(
    content_type: &str,
    io: oneshot::Sender<BoxedIo>,
    guard: DropGuard,
    hijack: Hijack,
) -> Response<ResBody> {
    match hijack {
        Hijack::Upgrade(on_upgrade) => {
            tokio::spawn(async move {
                match on_upgrade.await {
                    Ok(upgraded) => {
                        // After the upgrade the job owns the connection; it ends with it.
                        guard.disarm();
                        let _ = io.send(Box::new(TokioIo::new(upgraded)));
                    }
                    Err(e) => tracing::debug!(error = %e, "upgrade failed"),
                }
            });
            let mut res = Response::new(empty());
            *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            let h = res.headers_mut();
            h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
            h.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
            set_content_type(&mut res, content_type);
            res
        }
        Hijack::Plain(body) => {
            let (ours, theirs) = tokio::io::duplex(64 * 1024);
            let _ = io.send(Box::new(theirs));
            let (rd, mut wr) = tokio::io::split(ours);
            if let Some(mut body) = body {
                tokio::spawn(async move {
                    use tokio::io::AsyncWriteExt;
                    while let Some(Ok(chunk)) = body.next().await {
                        if wr.write_all(&chunk).await.is_err() {
                            return;
                        }
                    }
                    let _ = wr.shutdown().await;
                });
            }
            let stream = futures_util::stream::unfold((rd, guard), |(mut rd, guard)| async move {
                let mut buf = vec![0u8; 32 * 1024];
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => None,
                    Ok(n) => {
                        buf.truncate(n);
                        Some((
                            Ok::<_, Infallible>(Frame::data(Bytes::from(buf))),
                            (rd, guard),
                        ))
                    }
                }
            });
            let mut res = Response::new(StreamBody::new(stream).boxed_unsync());
            set_content_type(&mut res, content_type);
            res
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn header_version_is_the_api_max() {
        assert_eq!(
            super::api_version_str(),
            berth_api::ApiVersion::MAX.to_string()
        );
    }
}
