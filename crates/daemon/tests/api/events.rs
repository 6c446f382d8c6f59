use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use nix::sys::signal::Signal;

use crate::{body_json, daemon, status};

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_published_event_reaches_a_connected_client() {
    let d = daemon();
    let c = d.bollard().await;
    // bollard's stream is lazy: poll it on its own task so the request goes out now.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let c2 = c.clone();
    tokio::spawn(async move {
        let mut stream = c2.events(None::<bollard::query_parameters::EventsOptions>);
        while let Some(e) = stream.next().await {
            if tx.send(e).is_err() {
                break;
            }
        }
    });
    // Make sure the subscription is in place before publishing.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let info = c.info().await.expect("info");
        if info.n_events_listener == Some(1) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "events listener never registered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    std::fs::write(&d.config_file, r#"{"labels":["stage=test"]}"#).expect("config");
    d.signal(Signal::SIGHUP);
    let ev = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("event in time")
        .expect("stream open")
        .expect("event ok");
    assert_eq!(ev.typ, Some(bollard::models::EventMessageTypeEnum::DAEMON));
    assert_eq!(ev.action.as_deref(), Some("reload"));
    let actor = ev.actor.expect("actor");
    let info = c.info().await.expect("info");
    assert_eq!(actor.id, info.id);
    assert_eq!(info.labels, Some(vec!["stage=test".to_string()]));
    assert!(ev.time_nano.unwrap_or(0) > 0);
}

#[test]
fn cli_events_since_until_replays_and_ends() {
    let d = daemon();
    let t0 = now() - 1.0;
    d.signal(Signal::SIGHUP);
    // The reload is logged once applied; wait for it so the event is in the history.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !d.logs().contains("configuration reloaded") {
        assert!(
            std::time::Instant::now() < deadline,
            "no reload: {}",
            d.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let until = now() + 1.5;
    let start = std::time::Instant::now();
    let out = d.cli_ok(&[
        "events",
        "--since",
        &format!("{t0:.3}"),
        "--until",
        &format!("{until:.3}"),
        "--format",
        "{{.Type}} {{.Action}}",
    ]);
    assert_eq!(out.trim(), "daemon reload");
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "events did not end at --until"
    );
    // A filter that matches nothing replays nothing.
    let out = d.cli_ok(&[
        "events",
        "--since",
        &format!("{t0:.3}"),
        "--until",
        &format!("{:.3}", now()),
        "--filter",
        "type=container",
    ]);
    assert_eq!(out.trim(), "");
    // Past window only: returns at once with the replay.
    let out = d.cli_ok(&[
        "events",
        "--since",
        &format!("{t0:.3}"),
        "--until",
        &format!("{:.3}", now()),
        "--filter",
        "event=reload",
    ]);
    assert!(out.contains("daemon reload"), "{out}");
}

#[test]
fn events_reject_bad_filters_and_times() {
    let d = daemon();
    let r = d.get("/events?filters=%7Bnot-json");
    assert_eq!(status(&r), 400, "{r}");
    assert!(
        body_json(&r)["message"]
            .as_str()
            .unwrap_or("")
            .contains("invalid filter"),
        "{r}"
    );
    let r = d.get("/events?filters=%7B%22bogus%22%3A%5B%22x%22%5D%7D");
    assert_eq!(status(&r), 400, "{r}");
    assert_eq!(body_json(&r)["message"], "invalid filter 'bogus'");
    let r = d.get("/events?since=yesterday");
    assert_eq!(status(&r), 400, "{r}");
    let r = d.get("/events?since=20&until=10");
    assert_eq!(status(&r), 400, "{r}");
}
