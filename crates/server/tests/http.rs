//! The server against raw HTTP on a real unix socket: routing, errors, limits,
//! streams, client disconnects and hijacked connections.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use berth_api::ApiError;
use berth_engine::{Engine, Job, Reply, StreamKind};
use berth_server::{routes, BodyMode, Listener, Route, Router, Server};
use http::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

struct Harness {
    _dir: tempfile::TempDir,
    sock: std::path::PathBuf,
    stop: CancellationToken,
    /// Resolves when the server's own thread has stopped.
    task: tokio::sync::oneshot::Receiver<()>,
    stream_cancelled: Arc<AtomicBool>,
}

async fn start() -> Harness {
    let engine = Engine::new();
    engine.register("system.ping", |_job: Job| async move {
        Ok(Reply::bytes(200, "text/plain", "OK"))
    });
    engine.register("t.json", |job: Job| async move {
        let v: serde_json::Value = job.args.json()?;
        Ok(Reply::json_status(
            201,
            &serde_json::json!({"echo": v, "version": job.args.version.to_string()}),
        ))
    });
    let flag = Arc::new(AtomicBool::new(false));
    let f2 = flag.clone();
    engine.register("t.stream", move |mut job: Job| {
        let flag = f2.clone();
        async move {
            let w = job.stream("application/json", StreamKind::Raw)?;
            w.send_json(&serde_json::json!({"n": 1})).await?;
            job.cancelled().await;
            flag.store(true, Ordering::SeqCst);
            Err(ApiError::cancelled())
        }
    });
    engine.register("t.echo", |mut job: Job| async move {
        let mut io = job.hijack("application/vnd.docker.raw-stream").await?;
        let mut buf = vec![0u8; 4096];
        loop {
            let n = io.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            io.write_all(&buf[..n]).await?;
        }
        // Keep writing after the client half-closed its side, as attach must.
        io.write_all(b"bye").await?;
        io.shutdown().await?;
        Ok(Reply::empty(200))
    });
    let mut router = Router::new(routes::all());
    router.add(Route::new(
        Method::POST,
        "/t/json",
        "t.json",
        BodyMode::Json,
    ));
    router.add(Route::new(
        Method::GET,
        "/t/stream",
        "t.stream",
        BodyMode::None,
    ));
    router.add(Route::new(
        Method::POST,
        "/t/echo",
        "t.echo",
        BodyMode::None,
    ));
    router.add(Route::new(
        Method::GET,
        "/t/missing-job",
        "t.nothing",
        BodyMode::None,
    ));
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("s.sock");
    let l = UnixListener::bind(&sock).expect("bind");
    let stop = CancellationToken::new();
    let server = Server::new(engine, router).with_drain(Duration::from_millis(500));
    let s2 = stop.clone();
    // As berthd serves: from a thread of its own, jobs on this (the engine's) runtime,
    // hijacked connections used across the two.
    let task = server
        .spawn_dedicated(vec![Listener::Unix(l)], s2)
        .expect("serve");
    Harness {
        _dir: dir,
        sock,
        stop,
        task,
        stream_cancelled: flag,
    }
}

impl Harness {
    async fn raw(&self, req: &[u8]) -> String {
        let mut s = UnixStream::connect(&self.sock).await.expect("connect");
        // The server may answer and close before reading all of an oversized request.
        let _ = s.write_all(req).await;
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
                .await
                .expect("in time")
            {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    async fn get(&self, path: &str) -> String {
        self.raw(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
            .await
    }

    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(15), self.task)
            .await
            .expect("stops")
            .expect("the server thread ends");
    }
}

fn status(resp: &str) -> u16 {
    resp.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn routes_versions_and_docker_errors() {
    let h = start().await;
    let r = h.get("/_ping").await;
    assert_eq!(status(&r), 200, "{r}");
    assert!(r.to_ascii_lowercase().contains("api-version: 1.50"), "{r}");
    assert!(r.ends_with("OK"));
    assert_eq!(status(&h.get("/v1.44/_ping").await), 200);
    let r = h.get("/nope").await;
    assert_eq!(status(&r), 404);
    assert!(r.contains(r#"{"message":"page not found"}"#), "{r}");
    let r = h
        .raw(b"DELETE /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(status(&r), 405, "{r}");
    let r = h.get("/v1.99/_ping").await;
    assert_eq!(status(&r), 400);
    assert!(
        r.contains("client version 1.99 is too new. Maximum supported API version is 1.50"),
        "{r}"
    );
    let r = h.get("/v1.12/_ping").await;
    assert_eq!(status(&r), 400);
    assert!(r.contains("is too old"), "{r}");
    let r = h.get("/t/missing-job").await;
    assert_eq!(status(&r), 501, "{r}");
    h.stop().await;
}

#[tokio::test]
async fn json_bodies_and_malformed_input() {
    let h = start().await;
    let body = r#"{"a":1}"#;
    let r = h
        .raw(format!("POST /v1.41/t/json HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).as_bytes())
        .await;
    assert_eq!(status(&r), 201, "{r}");
    assert!(
        r.contains(r#""echo":{"a":1}"#) && r.contains(r#""version":"1.41""#),
        "{r}"
    );
    let bad = "{not json";
    let r = h
        .raw(format!("POST /t/json HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{bad}", bad.len()).as_bytes())
        .await;
    assert_eq!(status(&r), 400, "{r}");
    assert!(r.contains("invalid JSON"), "{r}");
    // A header larger than the limit is refused, and the daemon keeps serving.
    let big = "x".repeat(200 * 1024);
    let r = h
        .raw(format!("GET /_ping HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n").as_bytes())
        .await;
    assert_eq!(status(&r), 431, "{}", &r[..r.len().min(200)]);
    // Garbage that is not HTTP at all.
    let r = h.raw(b"\x00\x01garbage\r\n\r\n").await;
    assert!(r.is_empty() || status(&r) == 400, "{r}");
    assert_eq!(status(&h.get("/_ping").await), 200);
    h.stop().await;
}

#[tokio::test]
async fn client_disconnect_mid_stream_cancels_the_job() {
    let h = start().await;
    let mut s = UnixStream::connect(&h.sock).await.expect("connect");
    s.write_all(b"GET /t/stream HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = vec![0u8; 4096];
    let mut got = String::new();
    while !got.contains("\"n\":1") {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("in time")
            .expect("read");
        assert!(n > 0, "stream closed early: {got}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(
        got.contains("Transfer-Encoding: chunked") || got.contains("transfer-encoding: chunked"),
        "{got}"
    );
    drop(s);
    for _ in 0..100 {
        if h.stream_cancelled.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        h.stream_cancelled.load(Ordering::SeqCst),
        "the job saw its client go"
    );
    assert_eq!(status(&h.get("/_ping").await), 200);
    h.stop().await;
}

#[tokio::test]
async fn hijack_gives_a_raw_bidirectional_stream() {
    let h = start().await;
    let mut s = UnixStream::connect(&h.sock).await.expect("connect");
    s.write_all(
        b"POST /v1.44/t/echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n",
    )
    .await
    .expect("write");
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut b).await.expect("read head");
        assert!(n == 1, "eof in head");
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: tcp"), "{head}");
    assert!(
        head.contains("content-type: application/vnd.docker.raw-stream"),
        "{head}"
    );
    s.write_all(b"ping-1").await.expect("write");
    let mut back = [0u8; 6];
    s.read_exact(&mut back).await.expect("echo");
    assert_eq!(&back, b"ping-1");
    // Half-close: the job still gets to write its last words.
    s.shutdown().await.expect("half close");
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut rest))
        .await
        .expect("in time")
        .expect("read");
    assert_eq!(rest, b"bye");
    h.stop().await;
}

#[tokio::test]
async fn shutdown_ends_open_streams() {
    let h = start().await;
    let mut s = UnixStream::connect(&h.sock).await.expect("connect");
    s.write_all(b"GET /t/stream HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).await.expect("read");
    assert!(n > 0);
    h.stop.cancel();
    // The stream job does not end by itself here (no engine shutdown), so the server
    // must still return within its drain period.
    tokio::time::timeout(Duration::from_secs(15), h.task)
        .await
        .expect("server stops")
        .expect("join");
}
