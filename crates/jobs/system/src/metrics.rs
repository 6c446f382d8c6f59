//! `GET /metrics` on `--metrics-addr`: the engine's job timings (recorded as
//! each job ends, see `berth_metrics`) with the gauges read now from what
//! `/info` reports and the events bus.

use std::sync::Arc;

use berth_api::Result;
use berth_engine::{Job, Reply};
use berth_metrics::Snapshot;

use crate::System;

/// The exposition format's content type (prometheus-client writes OpenMetrics
/// text, which Prometheus reads).
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub(crate) async fn metrics(job: Job, s: Arc<System>) -> Result<Reply> {
    let Some(m) = s.metrics() else {
        return Ok(Reply::bytes(404, "text/plain; charset=utf-8", "no metrics"));
    };
    let mut info = crate::info::info(&s.host, &s.config());
    let mut snap = Snapshot::default();
    for r in s.reporters() {
        r.info(&mut info);
        r.metrics(&mut snap);
    }
    let events = job.events();
    snap = Snapshot {
        version: info.server_version,
        daemon_id: info.id,
        kernel: info.kernel_version,
        os: info.operating_system,
        os_type: info.os_type,
        os_version: info.os_version,
        architecture: info.architecture,
        graphdriver: info.driver,
        ncpu: i64::try_from(info.ncpu).unwrap_or(0),
        mem_total: i64::try_from(info.mem_total).unwrap_or(0),
        running: i64::try_from(info.containers_running).unwrap_or(0),
        paused: i64::try_from(info.containers_paused).unwrap_or(0),
        stopped: i64::try_from(info.containers_stopped).unwrap_or(0),
        events_total: events.published(),
        event_subscribers: i64::try_from(events.listeners()).unwrap_or(0),
        ..snap
    };
    Ok(Reply::bytes(200, CONTENT_TYPE, m.render(&snap)))
}
