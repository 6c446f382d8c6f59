//! The daemon's metrics, with dockerd's names where dockerd has one, so that
//! dashboards and alerts made for dockerd keep working: timings of container,
//! image and network actions (`engine_daemon_container_actions_seconds{action}`
//! and its siblings), container states, the engine's info, events and health
//! checks; plus `berth_job_seconds{job,outcome}` for every job the engine runs.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// prometheus' default buckets, which dockerd's timers use.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Action {
    action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    job: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct State {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EngineInfo {
    architecture: String,
    commit: String,
    daemon_id: String,
    graphdriver: String,
    kernel: String,
    os: String,
    os_type: String,
    os_version: String,
    version: String,
}

/// What the gauges show, read at scrape time.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub version: String,
    pub daemon_id: String,
    pub kernel: String,
    pub os: String,
    pub os_type: String,
    pub os_version: String,
    pub architecture: String,
    pub graphdriver: String,
    pub ncpu: i64,
    pub mem_total: i64,
    pub running: i64,
    pub paused: i64,
    pub stopped: i64,
    pub events_total: u64,
    pub event_subscribers: i64,
    pub health_checks: u64,
    pub health_checks_failed: u64,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    jobs: Histograms<JobLabels>,
    container_actions: Histograms<Action>,
    image_actions: Histograms<Action>,
    network_actions: Histograms<Action>,
    states: Family<State, Gauge>,
    info: Family<EngineInfo, Gauge>,
    cpus: Gauge,
    memory: Gauge,
    events: Counter<u64, AtomicU64>,
    subscribers: Gauge,
    health: Counter<u64, AtomicU64>,
    health_failed: Counter<u64, AtomicU64>,
}

/// dockerd's action for a job, in the family dockerd times it in.
fn action(job: &str) -> Option<(Family3, &'static str)> {
    Some(match job {
        "container.create" => (Family3::Container, "create"),
        "container.start" => (Family3::Container, "start"),
        "container.delete" => (Family3::Container, "delete"),
        "container.commit" => (Family3::Container, "commit"),
        "container.changes" => (Family3::Container, "changes"),
        "container.inspect" => (Family3::Container, "inspect"),
        "container.stop" => (Family3::Container, "stop"),
        "container.restart" => (Family3::Container, "restart"),
        "container.kill" => (Family3::Container, "kill"),
        "container.pause" => (Family3::Container, "pause"),
        "container.unpause" => (Family3::Container, "unpause"),
        "image.create" => (Family3::Image, "pull"),
        "image.push" => (Family3::Image, "push"),
        "image.delete" => (Family3::Image, "delete"),
        "image.tag" => (Family3::Image, "tag"),
        "image.history" => (Family3::Image, "history"),
        "build.build" => (Family3::Image, "build"),
        "network.create" => (Family3::Network, "create"),
        "network.delete" => (Family3::Network, "delete"),
        "network.connect" => (Family3::Network, "connect"),
        "network.disconnect" => (Family3::Network, "disconnect"),
        _ => return None,
    })
}

#[derive(Clone, Copy)]
enum Family3 {
    Container,
    Image,
    Network,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        fn hist<L: Clone + std::hash::Hash + Eq>() -> Histograms<L> {
            Histograms::new_with_constructor(histogram as fn() -> Histogram)
        }
        let m = Metrics {
            jobs: hist(),
            container_actions: hist(),
            image_actions: hist(),
            network_actions: hist(),
            states: Family::default(),
            info: Family::default(),
            cpus: Gauge::default(),
            memory: Gauge::default(),
            events: Counter::default(),
            subscribers: Gauge::default(),
            health: Counter::default(),
            health_failed: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "engine_daemon_container_actions_seconds",
            "The number of seconds it takes to process each container action",
            m.container_actions.clone(),
        );
        registry.register(
            "engine_daemon_image_actions_seconds",
            "The number of seconds it takes to process each image action",
            m.image_actions.clone(),
        );
        registry.register(
            "engine_daemon_network_actions_seconds",
            "The number of seconds it takes to process each network action",
            m.network_actions.clone(),
        );
        registry.register(
            "engine_daemon_container_states_containers",
            "The count of containers in various states",
            m.states.clone(),
        );
        registry.register(
            "engine_daemon_engine_info",
            "The information related to the engine and the OS it is running on",
            m.info.clone(),
        );
        registry.register(
            "engine_daemon_engine_cpus_cpus",
            "The number of cpus that the host system of the engine has",
            m.cpus.clone(),
        );
        registry.register(
            "engine_daemon_engine_memory_bytes",
            "The number of bytes of memory that the host system of the engine has",
            m.memory.clone(),
        );
        registry.register(
            "engine_daemon_events",
            "The number of events logged",
            m.events.clone(),
        );
        registry.register(
            "engine_daemon_events_subscribers_total",
            "The number of current subscribers to events",
            m.subscribers.clone(),
        );
        registry.register(
            "engine_daemon_health_checks",
            "The total number of health checks",
            m.health.clone(),
        );
        registry.register(
            "engine_daemon_health_checks_failed",
            "The total number of failed health checks",
            m.health_failed.clone(),
        );
        registry.register(
            "berth_job_seconds",
            "The number of seconds each job of the engine ran, by job name and outcome",
            m.jobs.clone(),
        );
        Metrics { registry, ..m }
    }

    /// A job ended after `secs`.
    pub fn observe_job(&self, job: &str, secs: f64, failed: bool) {
        let outcome = if failed { "failed" } else { "done" };
        self.jobs
            .get_or_create(&JobLabels {
                job: job.to_string(),
                outcome: outcome.to_string(),
            })
            .observe(secs);
        if let Some((family, action)) = action(job) {
            let f = match family {
                Family3::Container => &self.container_actions,
                Family3::Image => &self.image_actions,
                Family3::Network => &self.network_actions,
            };
            f.get_or_create(&Action {
                action: action.to_string(),
            })
            .observe(secs);
        }
    }

    /// The exposition text, with the gauges set from `s`.
    pub fn render(&self, s: &Snapshot) -> String {
        for (state, n) in [
            ("running", s.running),
            ("paused", s.paused),
            ("stopped", s.stopped),
        ] {
            self.states
                .get_or_create(&State {
                    state: state.to_string(),
                })
                .set(n);
        }
        self.info.clear();
        self.info
            .get_or_create(&EngineInfo {
                architecture: s.architecture.clone(),
                commit: String::new(),
                daemon_id: s.daemon_id.clone(),
                graphdriver: s.graphdriver.clone(),
                kernel: s.kernel.clone(),
                os: s.os.clone(),
                os_type: s.os_type.clone(),
                os_version: s.os_version.clone(),
                version: s.version.clone(),
            })
            .set(1);
        self.cpus.set(s.ncpu);
        self.memory.set(s.mem_total);
        self.subscribers.set(s.event_subscribers);
        // Counters only go up: each takes what it is short of.
        for (c, v) in [
            (&self.events, s.events_total),
            (&self.health, s.health_checks),
            (&self.health_failed, s.health_checks_failed),
        ] {
            let now = c.get();
            if v > now {
                c.inc_by(v - now);
            }
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_land_in_dockerds_families_and_berths() {
        let m = Metrics::new();
        m.observe_job("container.create", 0.02, false);
        m.observe_job("container.create", 0.03, false);
        m.observe_job("image.create", 1.5, true);
        m.observe_job("system.ping", 0.0001, false);
        let text = m.render(&Snapshot {
            version: "0.1.0".into(),
            running: 2,
            events_total: 7,
            ..Default::default()
        });
        for line in [
            "engine_daemon_container_actions_seconds_count{action=\"create\"} 2",
            "engine_daemon_image_actions_seconds_count{action=\"pull\"} 1",
            "berth_job_seconds_count{job=\"system.ping\",outcome=\"done\"} 1",
            "berth_job_seconds_count{job=\"image.create\",outcome=\"failed\"} 1",
            "engine_daemon_container_states_containers{state=\"running\"} 2",
            "engine_daemon_events_total 7",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in:\n{text}");
        }
        assert!(text.contains("engine_daemon_engine_info{"), "{text}");
        // Counters never go down, whatever a snapshot says.
        let text = m.render(&Snapshot::default());
        assert!(
            text.lines().any(|l| l == "engine_daemon_events_total 7"),
            "{text}"
        );
    }
}
