//! Accepting connections and handling requests.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use berth_api::{ApiError, ErrorKind};
use berth_engine::{Args, Body, Engine};
use futures_util::StreamExt;
use http::{header, Method, Request, Response};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::response::{common_headers, error_response, to_response, Hijack, RequestBody, ResBody};
use crate::router::{BodyMode, Router};
use crate::tls::TlsAcceptor;

/// Largest JSON request body read whole (a container config is a few KiB).
const JSON_LIMIT: usize = 16 * 1024 * 1024;
/// hyper's read buffer bounds the request head: larger headers get `431`.
const HEAD_LIMIT: usize = 64 * 1024;
/// How long open connections may take to finish once shutdown starts, by default.
const DRAIN: Duration = Duration::from_secs(10);

/// A socket the server accepts connections on.
pub enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener),
    /// TCP with TLS (`--tls`, `--tlsverify`).
    Tls(TcpListener, TlsAcceptor),
}

enum PlainListener {
    Unix(std::os::unix::net::UnixListener),
    Tcp(std::net::TcpListener),
    Tls(std::net::TcpListener, TlsAcceptor),
}

/// How long a client may take over its TLS handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// The API server. Cheap to clone.
#[derive(Clone)]
pub struct Server {
    inner: Arc<Inner>,
    drain: Duration,
}

struct Inner {
    engine: Engine,
    router: Router,
}

impl Server {
    pub fn new(engine: Engine, router: Router) -> Server {
        Server {
            inner: Arc::new(Inner { engine, router }),
            drain: DRAIN,
        }
    }

    /// Sets how long open connections may take to finish once shutdown starts.
    pub fn with_drain(mut self, drain: Duration) -> Server {
        self.drain = drain;
        self
    }

    /// Serves until `shutdown` is cancelled, then stops accepting and gives open
    /// connections a grace period to finish.
    pub async fn serve(&self, listeners: Vec<Listener>, shutdown: CancellationToken) {
        let conns = TaskTracker::new();
        let mut accepts = Vec::new();
        for l in listeners {
            let (server, shutdown, conns) = (self.clone(), shutdown.clone(), conns.clone());
            accepts.push(tokio::spawn(async move {
                server.accept_loop(l, shutdown, conns).await
            }));
        }
        shutdown.cancelled().await;
        for a in accepts {
            let _ = a.await;
        }
        conns.close();
        if tokio::time::timeout(self.drain, conns.wait())
            .await
            .is_err()
        {
            tracing::warn!("connections still open after the shutdown grace period");
        }
    }

    /// Serves from a thread of its own with a single-threaded runtime, until
    /// `shutdown` is cancelled; the receiver resolves when it has stopped.
    ///
    /// Why a thread of its own: every request then lives and ends on one thread.
    /// On a multi-threaded runtime a request's readiness, its handling and the
    /// next read hop between worker threads, and waking a sleeping worker costs
    /// an inter-processor interrupt per hop (on two cores that was a third of the
    /// throughput of `GET /_ping`). Jobs that take longer than an answer run on
    /// the engine's runtime, so a job that keeps a worker busy never holds up the
    /// API.
    pub fn spawn_dedicated(
        &self,
        listeners: Vec<Listener>,
        shutdown: CancellationToken,
    ) -> std::io::Result<tokio::sync::oneshot::Receiver<()>> {
        // Listeners belong to the runtime that registered them: hand them over as
        // plain sockets and register them again on the server's own.
        let mut plain = Vec::new();
        for l in listeners {
            plain.push(match l {
                Listener::Unix(u) => PlainListener::Unix(u.into_std()?),
                Listener::Tcp(t) => PlainListener::Tcp(t.into_std()?),
                Listener::Tls(t, a) => PlainListener::Tls(t.into_std()?, a),
            });
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (done, stopped) = tokio::sync::oneshot::channel();
        let server = self.clone();
        std::thread::Builder::new()
            .name("berthd-api".into())
            .spawn(move || {
                rt.block_on(async move {
                    let mut listeners = Vec::new();
                    for l in plain {
                        let registered = match l {
                            PlainListener::Unix(u) => UnixListener::from_std(u).map(Listener::Unix),
                            PlainListener::Tcp(t) => TcpListener::from_std(t).map(Listener::Tcp),
                            PlainListener::Tls(t, a) => {
                                TcpListener::from_std(t).map(|t| Listener::Tls(t, a))
                            }
                        };
                        match registered {
                            Ok(l) => listeners.push(l),
                            Err(e) => tracing::error!(error = %e, "cannot serve a listener"),
                        }
                    }
                    server.serve(listeners, shutdown).await;
                });
                let _ = done.send(());
            })?;
        Ok(stopped)
    }

    async fn accept_loop(&self, l: Listener, shutdown: CancellationToken, conns: TaskTracker) {
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => return,
                a = accept(&l) => a,
            };
            match accepted {
                Ok((io, fd, Some(tls))) => {
                    // The handshake on the connection's own task: a slow client
                    // holds up no other.
                    let (server, shutdown, tracker) =
                        (self.clone(), shutdown.clone(), conns.clone());
                    conns.spawn(async move {
                        match tokio::time::timeout(HANDSHAKE, tls.0.accept(io)).await {
                            Ok(Ok(s)) => {
                                server.serve_connection((Box::new(s), fd), &shutdown, &tracker)
                            }
                            Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                            Err(_) => tracing::debug!("TLS handshake timed out"),
                        }
                    });
                }
                Ok((io, fd, None)) => self.serve_connection((io, fd), &shutdown, &conns),
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    // Out of fds and the like: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn serve_connection(
        &self,
        (io, fd): (Box<dyn Conn>, Option<std::os::fd::OwnedFd>),
        shutdown: &CancellationToken,
        conns: &TaskTracker,
    ) {
        let server = self.clone();
        let gone = crate::peer::watch(fd);
        let gone2 = gone.clone();
        let svc = service_fn(move |req| {
            let server = server.clone();
            let gone = gone2.clone();
            async move { Ok::<_, Infallible>(server.handle_on(req, Some(gone)).await) }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .max_buf_size(HEAD_LIMIT)
            .serve_connection(TokioIo::new(io), svc)
            .with_upgrades();
        let shutdown = shutdown.clone();
        conns.spawn(async move {
            let mut conn = std::pin::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = shutdown.cancelled() => {
                    // Finish the request in flight, then close; idle connections close now.
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            gone.cancel();
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }

    /// Handles one request; never fails: errors become Docker's JSON error responses.
    pub async fn handle(&self, req: Request<Incoming>) -> Response<ResBody> {
        self.handle_on(req, None).await
    }

    /// As [`Server::handle`]; `gone` is cancelled when the client's connection
    /// closes, which cancels a job still answering (a build whose client left).
    async fn handle_on(
        &self,
        req: Request<Incoming>,
        gone: Option<CancellationToken>,
    ) -> Response<ResBody> {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let mut res = match self.dispatch(req, gone).await {
            Ok(res) => res,
            Err(e) => {
                if e.status_code() >= 500 {
                    tracing::warn!(%method, %path, error = %e.message, "request failed");
                }
                error_response(&e)
            }
        };
        tracing::debug!(%method, %path, status = res.status().as_u16(), "request");
        common_headers(&mut res);
        res
    }

    async fn dispatch(
        &self,
        mut req: Request<Incoming>,
        gone: Option<CancellationToken>,
    ) -> Result<Response<ResBody>, ApiError> {
        let path = percent_decode(req.uri().path())?;
        let matched = self.inner.router.resolve(req.method(), &path)?;
        let mut args = Args::new(matched.version);
        for (k, v) in &matched.params {
            args.push_param(k, v);
        }
        if let Some(q) = req.uri().query() {
            for (k, v) in form_urlencoded::parse(q.as_bytes()) {
                args.push_param(&k, &v);
            }
        }
        for (name, value) in req.headers() {
            if let Ok(v) = value.to_str() {
                args.push_header(name.as_str(), v);
            }
        }
        let wants_upgrade = req
            .headers()
            .get(header::UPGRADE)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"tcp"));
        let mut hijack = if wants_upgrade {
            Hijack::Upgrade(hyper::upgrade::on(&mut req))
        } else {
            Hijack::Plain(None)
        };
        let body = req.into_body();
        match matched.route.body {
            BodyMode::None if !wants_upgrade && *matched.route.method() == Method::POST => {
                // Plain attach-like requests feed their body to the job's input.
                hijack = Hijack::Plain(Some(body_stream(body)));
            }
            BodyMode::None => {}
            BodyMode::Json => {
                let data = Limited::new(body, JSON_LIMIT)
                    .collect()
                    .await
                    .map_err(|e| {
                        if e.downcast_ref::<http_body_util::LengthLimitError>()
                            .is_some()
                        {
                            ApiError::new(ErrorKind::TooLarge, "request body is too large")
                        } else {
                            ApiError::invalid(format!("reading request body: {e}"))
                        }
                    })?;
                args.body = Body::Bytes(data.to_bytes());
            }
            BodyMode::Stream => args.body = Body::Stream(body_stream(body)),
        }
        let d = self.inner.engine.dispatch(matched.route.job, args)?;
        let reply = d.reply.await.map_err(|_| {
            ApiError::system(format!(
                "{}: the job ended without a reply",
                matched.route.job
            ))
        })?;
        // A streamed answer is still being made when its client may leave: that
        // ends the job, as Go's server ends a request's context. Other answers
        // are whole already, and a hijacked connection's client may half-close
        // and still read, so it is left to the job.
        let streamed = matches!(reply.body, berth_engine::ReplyBody::Stream { .. });
        if let (Some(gone), true) = (gone, streamed && !wants_upgrade) {
            let job = d.cancel.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = gone.cancelled() => job.cancel(),
                    _ = job.cancelled() => {}
                }
            });
        }
        Ok(to_response(reply, d.guard, hijack))
    }
}

fn body_stream(body: Incoming) -> RequestBody {
    Box::pin(
        http_body_util::BodyStream::new(body).filter_map(|frame| async move {
            match frame {
                Ok(f) => f.into_data().ok().map(Ok),
                Err(e) => Some(Err(std::io::Error::other(e))),
            }
        }),
    )
}

/// Decodes `%XX` escapes in a path; malformed escapes are a 400.
fn percent_decode(path: &str) -> Result<String, ApiError> {
    if !path.contains('%') {
        return Ok(path.to_string());
    }
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| ApiError::invalid("malformed percent-encoding in path"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ApiError::invalid("path is not valid UTF-8"))
}

trait Conn: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Conn for T {}

type Accepted = (
    Box<dyn Conn>,
    Option<std::os::fd::OwnedFd>,
    Option<TlsAcceptor>,
);

/// An accepted connection, a duplicate of its socket (to notice its end), and
/// the TLS it must speak.
async fn accept(l: &Listener) -> std::io::Result<Accepted> {
    use std::os::fd::AsFd;
    let tcp = |s: tokio::net::TcpStream| {
        let _ = s.set_nodelay(true);
        let fd = s.as_fd().try_clone_to_owned().ok();
        (Box::new(s) as Box<dyn Conn>, fd)
    };
    Ok(match l {
        Listener::Unix(u) => {
            let s = u.accept().await?.0;
            let fd = s.as_fd().try_clone_to_owned().ok();
            (Box::new(s), fd, None)
        }
        Listener::Tcp(t) => {
            let (io, fd) = tcp(t.accept().await?.0);
            (io, fd, None)
        }
        Listener::Tls(t, a) => {
            let (io, fd) = tcp(t.accept().await?.0);
            (io, fd, Some(a.clone()))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn decodes_paths() {
        assert_eq!(
            percent_decode("/images/a%2Fb%3A1/json").expect("ok"),
            "/images/a/b:1/json"
        );
        assert_eq!(percent_decode("/plain").expect("ok"), "/plain");
        assert!(percent_decode("/bad%zz").is_err());
        assert!(percent_decode("/bad%f").is_err());
    }
}
