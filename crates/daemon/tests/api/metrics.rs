//! `--metrics-addr`: Prometheus metrics at `/metrics` with dockerd's names,
//! read by a Prometheus text parser, moving as containers are made and run.

use std::net::TcpListener;

use prometheus_parse::{Scrape, Value};

use crate::images::busybox;
use crate::{builder, free_port};

fn scrape(port: u16) -> Scrape {
    let mut res = ureq::get(&format!("http://127.0.0.1:{port}/metrics"))
        .call()
        .expect("GET /metrics");
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        ct.contains("openmetrics-text") || ct.contains("text/plain"),
        "{ct}"
    );
    let text = res.body_mut().read_to_string().expect("body");
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("a Prometheus text scrape")
}

/// The value of `name` whose labels include `labels`: a counter's or gauge's
/// value, a histogram's count.
fn value(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == name)
        .filter(|x| labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match &x.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(b) => b
                .iter()
                .find(|c| c.less_than.is_infinite())
                .map(|c| c.count)
                .unwrap_or(0.0),
            Value::Summary(_) => 0.0,
        })
        .sum()
}

#[test]
fn metrics_have_dockerds_names_and_move_with_the_work() {
    let port = free_port();
    let d = builder()
        .arg("--metrics-addr")
        .arg(format!("127.0.0.1:{port}"))
        .start();
    let b = busybox(&d);
    let before = scrape(port);
    let version = d.cli_ok(&["version", "-f", "{{.Server.Version}}"]);
    assert_eq!(
        value(
            &before,
            "engine_daemon_engine_info",
            &[("version", version.trim()), ("os_type", "linux")]
        ),
        1.0
    );
    assert!(value(&before, "engine_daemon_engine_cpus_cpus", &[]) >= 1.0);
    d.cli_ok(&["run", "--rm", &b, "true"]);
    d.cli_ok(&["run", "-d", "--name", "metered", &b, "sleep", "300"]);
    let after = scrape(port);
    for action in ["create", "start"] {
        let labels = [("action", action)];
        let (was, now) = (
            value(&before, "engine_daemon_container_actions_seconds", &labels),
            value(&after, "engine_daemon_container_actions_seconds", &labels),
        );
        assert_eq!(now - was, 2.0, "{action}: {was} then {now}");
    }
    assert_eq!(
        value(
            &after,
            "engine_daemon_container_states_containers",
            &[("state", "running")]
        ),
        1.0
    );
    assert!(
        value(&after, "engine_daemon_events_total", &[])
            > value(&before, "engine_daemon_events_total", &[])
    );
    assert!(
        value(
            &after,
            "berth_job_seconds",
            &[("job", "container.create"), ("outcome", "done")]
        ) >= 2.0
    );
    // A failed job is counted as one.
    let _ = d.cli(&["rm", "no-such-container"]);
    let last = scrape(port);
    assert!(
        value(
            &last,
            "berth_job_seconds",
            &[("job", "container.delete"), ("outcome", "failed")]
        ) >= 1.0
    );
    d.cli_ok(&["rm", "-f", "metered"]);
}

#[test]
fn a_metrics_address_that_cannot_be_used_stops_the_daemon() {
    let e = crate::berthd_refuses(&["--metrics-addr", "not-an-address"]);
    assert!(e.contains("metrics-addr"), "{e}");
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let e = crate::berthd_refuses(&["--metrics-addr", &format!("127.0.0.1:{port}")]);
    assert!(e.contains("listening for metrics"), "{e}");
}
