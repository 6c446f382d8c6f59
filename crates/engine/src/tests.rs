use std::collections::BTreeMap;
use std::time::Duration;

use berth_api::{ApiError, ApiVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

fn args() -> Args {
    Args::new(ApiVersion::MAX)
}

#[tokio::test]
async fn runs_registered_job_by_name() {
    let e = Engine::new();
    e.register("echo", |job: Job| async move {
        Ok(Reply::json(
            &serde_json::json!({ "got": job.args.str("x") }),
        ))
    });
    let r = e.call("echo", args().param("x", "1")).await.expect("reply");
    assert_eq!(r.status, 200);
    match r.body {
        ReplyBody::Bytes { data, content_type } => {
            assert_eq!(content_type, "application/json");
            let v: serde_json::Value = serde_json::from_slice(&data).expect("json");
            assert_eq!(v["got"], "1");
        }
        _ => panic!("expected bytes"),
    }
}

#[tokio::test]
async fn unknown_job_is_not_implemented() {
    let e = Engine::new();
    let err = e.dispatch("nope", args()).err().expect("error");
    assert_eq!(err.status_code(), 501);
}

#[tokio::test]
async fn handler_error_becomes_error_reply() {
    let e = Engine::new();
    e.register("fail", |_job: Job| async move {
        Err(ApiError::not_found("No such thing: x"))
    });
    let r = e.call("fail", args()).await.expect("reply");
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn stream_is_seen_while_job_runs_and_late_error_is_reported() {
    let e = Engine::new();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let go_rx = std::sync::Mutex::new(Some(go_rx));
    e.register("pull", move |mut job: Job| {
        let go = go_rx.lock().expect("lock").take();
        async move {
            let w = job.stream("application/json", StreamKind::JsonMessages)?;
            w.send_json(&serde_json::json!({"status": "first"})).await?;
            if let Some(go) = go {
                let _ = go.await;
            }
            Err(ApiError::system("boom"))
        }
    });
    let r = e.call("pull", args()).await.expect("reply");
    let ReplyBody::Stream { mut rx, .. } = r.body else {
        panic!("expected a stream")
    };
    // The first message arrives before the job is allowed to finish.
    let first = rx.recv().await.expect("first");
    assert!(String::from_utf8_lossy(&first).contains("first"));
    go_tx.send(()).expect("go");
    let last = rx.recv().await.expect("error line");
    let v: serde_json::Value = serde_json::from_slice(&last).expect("json");
    assert_eq!(v["errorDetail"]["message"], "boom");
    assert_eq!(v["error"], "boom");
    assert!(rx.recv().await.is_none());
}

#[tokio::test]
async fn dropping_the_guard_cancels_the_job() {
    let e = Engine::new();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<bool>();
    let done_tx = std::sync::Mutex::new(Some(done_tx));
    e.register("wait", move |job: Job| {
        let tx = done_tx.lock().expect("lock").take();
        async move {
            job.cancelled().await;
            if let Some(tx) = tx {
                let _ = tx.send(true);
            }
            Err(ApiError::cancelled())
        }
    });
    let d = e.dispatch("wait", args()).expect("dispatch");
    assert_eq!(e.jobs().len(), 1);
    drop(d.guard);
    assert!(tokio::time::timeout(Duration::from_secs(5), done_rx)
        .await
        .expect("in time")
        .expect("sent"));
}

#[tokio::test]
async fn hijack_hands_over_raw_io() {
    let e = Engine::new();
    e.register("echo", |mut job: Job| async move {
        let mut io = job.hijack("application/vnd.docker.raw-stream").await?;
        let mut buf = [0u8; 5];
        io.read_exact(&mut buf).await?;
        io.write_all(&buf).await?;
        Ok(Reply::empty(200))
    });
    let r = e.call("echo", args()).await.expect("reply");
    assert_eq!(r.status, 101);
    let ReplyBody::Hijack { io, .. } = r.body else {
        panic!("expected hijack")
    };
    let (mut ours, theirs) = tokio::io::duplex(64);
    assert!(io.send(Box::new(theirs)).is_ok());
    ours.write_all(b"hello").await.expect("write");
    let mut back = [0u8; 5];
    ours.read_exact(&mut back).await.expect("read");
    assert_eq!(&back, b"hello");
}

#[tokio::test]
async fn shutdown_cancels_jobs_runs_hooks_in_reverse_and_refuses_new_jobs() {
    let e = Engine::new();
    e.register("forever", |job: Job| async move {
        job.cancelled().await;
        Err(ApiError::cancelled())
    });
    let _d = e.dispatch("forever", args()).expect("dispatch");
    let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    for n in ["first", "second"] {
        let o = order.clone();
        e.on_shutdown(n, move || async move { o.lock().expect("lock").push(n) });
    }
    tokio::time::timeout(Duration::from_secs(5), e.shutdown(Duration::from_secs(5)))
        .await
        .expect("shutdown in time");
    assert_eq!(*order.lock().expect("lock"), vec!["second", "first"]);
    assert!(e.jobs().is_empty());
    assert_eq!(
        e.dispatch("forever", args())
            .err()
            .expect("refused")
            .status_code(),
        503
    );
}

#[tokio::test]
async fn events_replay_history_then_stream_live() {
    let bus = EventBus::new();
    bus.publish("daemon", "reload", "d1", BTreeMap::new());
    let mut sub = bus.subscribe();
    assert_eq!(bus.listeners(), 1);
    bus.publish("container", "start", "c1", BTreeMap::new());
    assert_eq!(sub.history.len(), 1);
    assert_eq!(sub.history[0].action, "reload");
    let live = sub.rx.recv().await.expect("live event");
    assert_eq!(live.action, "start");
    assert!(live.time_nano > 0);
    drop(sub);
    assert_eq!(bus.listeners(), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn quick_jobs_run_in_the_callers_task() {
    let e = Engine::new();
    let seen = Arc::new(std::sync::Mutex::new(None));
    let s2 = seen.clone();
    e.register_quick("q", move |job: Job| {
        let s = s2.clone();
        async move {
            // Not listed among running jobs: it ends with its request.
            *s.lock().unwrap_or_else(|p| p.into_inner()) = Some(job.engine().jobs().len());
            Ok(Reply::empty(204))
        }
    });
    let d = e.dispatch("q", args()).expect("dispatch");
    // Nothing ran yet: the job is the reply future itself, not a spawned task.
    tokio::task::yield_now().await;
    assert!(seen.lock().unwrap_or_else(|p| p.into_inner()).is_none());
    let r = d.reply.await.expect("reply");
    assert_eq!(r.status, 204);
    assert_eq!(*seen.lock().unwrap_or_else(|p| p.into_inner()), Some(0));
    assert!(e.jobs().is_empty());
    // A failing quick job answers with its error like any other.
    e.register_quick(
        "bad",
        |_job: Job| async move { Err(ApiError::invalid("no")) },
    );
    let r = e.call("bad", args()).await.expect("reply");
    assert_eq!(r.status, 400);
}

#[test]
fn jobs_run_on_the_engines_runtime_whoever_dispatches_them() {
    let engine_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("engine-worker")
        .enable_all()
        .build()
        .expect("runtime");
    let e = engine_rt.block_on(async { Engine::new() });
    let thread = || std::thread::current().name().unwrap_or("").to_string();
    e.register("where", move |_job: Job| async move {
        Ok(Reply::json(&serde_json::json!({ "thread": thread() })))
    });
    e.register_quick("where.quick", move |_job: Job| async move {
        Ok(Reply::json(&serde_json::json!({ "thread": thread() })))
    });
    // Dispatched from a thread with a runtime of its own, as the API server does.
    let e2 = e.clone();
    let seen = std::thread::Builder::new()
        .name("server".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let mut seen = Vec::new();
                for name in ["where", "where.quick"] {
                    let r = e2.call(name, args()).await.expect("reply");
                    let ReplyBody::Bytes { data, .. } = r.body else {
                        panic!("expected bytes")
                    };
                    let v: serde_json::Value = serde_json::from_slice(&data).expect("json");
                    seen.push(v["thread"].as_str().unwrap_or("").to_string());
                }
                seen
            })
        })
        .expect("thread")
        .join()
        .expect("join");
    // A job runs where the engine lives; a quick one answers on the caller's thread.
    assert_eq!(seen, ["engine-worker", "server"]);
}

#[tokio::test]
async fn the_job_table_shows_args_progress_and_cancels_by_id() {
    let e = Engine::new();
    e.register("pull", |job: Job| async move {
        job.progress().set(crate::JobProgress {
            message: "Downloading".into(),
            current: Some(5),
            total: Some(10),
        });
        job.cancelled().await;
        // Some clean-up before it ends, as a pull removing its staging.
        tokio::time::sleep(Duration::from_millis(50)).await;
        Err(ApiError::cancelled())
    });
    let a = args()
        .param("fromImage", "busybox")
        .param("buildargs", "{\"TOKEN\":\"s3cret\"}")
        .param("X-Registry-Auth", "abc");
    let d = e.dispatch("pull", a).expect("dispatch");
    let id = d.id;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let info = loop {
        let info = e.job(id).expect("listed");
        if info.progress.is_some() || std::time::Instant::now() > deadline {
            break info;
        }
        tokio::task::yield_now().await;
    };
    assert_eq!(info.name, "pull");
    assert_eq!(info.status, JobStatus::Running);
    assert_eq!(info.args["fromImage"], vec!["busybox".to_string()]);
    assert_eq!(info.args["buildargs"], vec!["<redacted>".to_string()]);
    assert_eq!(info.args["X-Registry-Auth"], vec!["<redacted>".to_string()]);
    assert_eq!(info.progress.as_ref().and_then(|p| p.current), Some(5));

    let (was, ended) = e
        .cancel_job(id, Duration::from_secs(5))
        .await
        .expect("found");
    assert_eq!(was.status, JobStatus::Cancelling);
    assert!(ended, "cancel waits for the job's end");
    assert!(e.job(id).is_none());
    let r = d.reply.await.expect("reply");
    assert_eq!(r.status, ApiError::cancelled().status_code());
    assert!(e.cancel_job(id, Duration::from_secs(1)).await.is_none());

    // One that ignores its cancellation: cancel answers when the wait is over.
    e.register("stubborn", |_job: Job| async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(Reply::empty(204))
    });
    let d = e.dispatch("stubborn", args()).expect("dispatch");
    let (_, ended) = e
        .cancel_job(d.id, Duration::from_millis(20))
        .await
        .expect("found");
    assert!(!ended);
    assert_eq!(e.job(d.id).map(|j| j.status), Some(JobStatus::Cancelling));
}
