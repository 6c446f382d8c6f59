//! The lifecycle without root: start, exit, stop, restart policies, failed starts
//! and restore, with a fake [`Launcher`] that runs an ordinary process where the
//! shim would run the container (its PID is the container's; its end writes the
//! exit record as the shim does).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_api::container::{HostConfig, RestartPolicy};
use berth_api::network::NetSetup;
use berth_api::Result;
use berth_engine::Engine;
use berth_runtime::exit::{now, ExitRecord};
use berth_runtime::shim::{Report, StartArgs};

use crate::launcher::{Launcher, Spawned};
use crate::model::{Record, State};
use crate::{BoxFuture, Containers, Entry, LogConfig, Runtimes};

/// What the fake does at each start, in order; `Run` when the list is empty.
enum Step {
    /// Runs `sh -c SCRIPT` as the container (`exec` in it when a signal must
    /// reach the process whose status is recorded).
    Run(&'static str),
    /// The shim reports a failed start with this code and text.
    Fail(i32, &'static str),
}

struct Fake {
    steps: Mutex<VecDeque<Step>>,
    spawns: AtomicUsize,
}

impl Launcher for Fake {
    fn prepare(&self, c: &Containers, rec: &Record, _: Option<&NetSetup>) -> Result<PathBuf> {
        let b = c.run_dir(&rec.id);
        std::fs::create_dir_all(&b).map_err(crate::sys)?;
        Ok(b)
    }

    fn spawn(&self, _shim: &Path, args: StartArgs) -> BoxFuture<'static, Result<Spawned>> {
        self.spawns.fetch_add(1, Ordering::SeqCst);
        let step = self
            .steps
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
            .unwrap_or(Step::Run("exit 0"));
        Box::pin(async move {
            let script = match step {
                Step::Fail(exit_code, error) => {
                    return Ok(Spawned {
                        report: Report::Failed {
                            error: error.into(),
                            exit_code,
                        },
                        shim_pid: 0,
                        ended: Box::pin(async {}),
                        live: None,
                    })
                }
                Step::Run(s) => s,
            };
            // Killed with the test's runtime if a test ends early.
            let mut child = tokio::process::Command::new("sh")
                .args(["-c", script])
                .kill_on_drop(true)
                .spawn()
                .map_err(crate::sys)?;
            let pid = child.id().map(|p| p as i32).unwrap_or(0);
            Ok(Spawned {
                report: Report::Started { pid },
                shim_pid: 0,
                ended: Box::pin(async move {
                    use std::os::unix::process::ExitStatusExt;
                    let code = match child.wait().await {
                        Ok(s) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)),
                        Err(_) => 255,
                    };
                    let rec = ExitRecord {
                        exit_code: code,
                        finished_at: now(),
                        error: None,
                        pid,
                        oom_killed: false,
                    };
                    let _ = rec.write(&args.exit);
                }),
                live: None,
            })
        })
    }

    fn cleanup(&self, c: &Containers, id: &str) {
        let _ = std::fs::remove_dir_all(c.run_dir(id));
    }
}

struct World {
    _dir: tempfile::TempDir,
    c: Arc<Containers>,
    fake: Arc<Fake>,
    engine: Engine,
}

fn world(steps: Vec<Step>) -> World {
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = Arc::new(Fake {
        steps: Mutex::new(steps.into()),
        spawns: AtomicUsize::new(0),
    });
    let c = open(dir.path(), fake.clone());
    World {
        _dir: dir,
        c,
        fake,
        engine: Engine::new(),
    }
}

fn open(dir: &Path, fake: Arc<Fake>) -> Arc<Containers> {
    let graph = Arc::new(berth_graph::Graph::open(&dir.join("graph")).expect("graph"));
    Containers::open_with(
        graph,
        (
            &dir.join("data"),
            &dir.join("exec"),
            PathBuf::from("/nonexistent/berth-shim"),
        ),
        Runtimes::default(),
        Default::default(),
        LogConfig::default(),
        fake,
    )
    .expect("containers")
}

/// A container as create records it, with `policy` as its restart policy.
fn create(c: &Containers, name: &str, policy: (&str, i64)) -> Arc<Entry> {
    let id = format!("{name:0<64}");
    let rec = Record {
        id: id.clone(),
        name: format!("/{name}"),
        created: now(),
        image_name: "busybox".into(),
        image: format!("sha256:{:0<64}", 0),
        path: "sh".into(),
        args: Vec::new(),
        config: Default::default(),
        host_config: HostConfig {
            network_mode: "none".into(),
            restart_policy: RestartPolicy {
                name: policy.0.into(),
                maximum_retry_count: policy.1,
            },
            ..Default::default()
        },
        state: State::default(),
        log_path: c.dir(&id).join("log.json").display().to_string(),
        restart_count: 0,
        manually_stopped: false,
        shim_pid: 0,
        endpoints_config: Default::default(),
        network_settings: None,
        mounts: Vec::new(),
        cgroups_path: String::new(),
    };
    std::fs::create_dir_all(c.dir(&id)).expect("dir");
    c.save(&rec).expect("save");
    c.insert(rec)
}

/// Waits (up to 20 s) until the container's record satisfies `f`.
async fn until(entry: &Entry, what: &str, f: impl Fn(&Record) -> bool) -> Record {
    for _ in 0..400 {
        let r = entry.snapshot();
        if f(&r) {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: {:?}", entry.snapshot().state);
}

#[tokio::test]
async fn a_started_container_runs_until_its_process_ends_and_keeps_its_code() {
    let w = world(vec![Step::Run("sleep 0.3; exit 3")]);
    let e = create(&w.c, "ends", ("no", 0));
    let reply = crate::run::start_entry(&w.engine, &w.c, &e)
        .await
        .expect("start");
    assert_eq!(reply.status, 204);
    let r = e.snapshot();
    assert!(r.state.running && r.state.pid > 0, "{:?}", r.state);
    assert_eq!(r.state.status, "running");
    let r = until(&e, "exited", |r| r.state.status == "exited").await;
    assert_eq!(
        (r.state.exit_code, r.state.pid, r.state.running),
        (3, 0, false)
    );
    assert_eq!(e.watch.borrow().exits, 1);
    // A second start of a running container changes nothing (304).
    assert_eq!(w.fake.spawns.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_stop_signals_the_process_and_the_user_stop_sticks() {
    let w = world(vec![Step::Run("exec sleep 100")]);
    let e = create(&w.c, "stops", ("always", 0));
    crate::run::start_entry(&w.engine, &w.c, &e)
        .await
        .expect("start");
    let args = crate::stop::StopArgs {
        signal: None,
        timeout: Some(5),
    };
    crate::stop::stop_entry(&w.engine, &w.c, &e, &args)
        .await
        .expect("stop");
    let r = until(&e, "stopped", |r| r.state.status == "exited").await;
    assert_eq!(r.state.exit_code, 143, "SIGTERM: 128 + 15");
    assert!(r.manually_stopped);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        w.fake.spawns.load(Ordering::SeqCst),
        1,
        "`always` does not restart a container the user stopped"
    );
}

#[tokio::test]
async fn on_failure_restarts_up_to_its_maximum_then_stays_exited() {
    let w = world(vec![
        Step::Run("exit 1"),
        Step::Run("exit 1"),
        Step::Run("exit 1"),
    ]);
    let e = create(&w.c, "flaps", ("on-failure", 2));
    crate::run::start_entry(&w.engine, &w.c, &e)
        .await
        .expect("start");
    let r = until(&e, "two restarts then exited", |r| {
        r.restart_count == 2 && r.state.status == "exited" && !r.state.restarting
    })
    .await;
    assert_eq!(r.state.exit_code, 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        w.fake.spawns.load(Ordering::SeqCst),
        3,
        "one start and two restarts"
    );
}

#[tokio::test]
async fn a_start_that_fails_is_answered_in_dockers_words_and_leaves_it_created() {
    let w = world(vec![Step::Fail(
        127,
        "exec: \"sh\": executable file not found in $PATH",
    )]);
    let e = create(&w.c, "fails", ("no", 0));
    let Err(err) = crate::run::start_entry(&w.engine, &w.c, &e).await else {
        panic!("the start did not fail");
    };
    assert_eq!(
        err.message,
        "failed to create task for container: exec: \"sh\": executable file not found in $PATH: unknown"
    );
    assert_eq!(err.status_code(), 400);
    let r = e.snapshot();
    assert_eq!(
        (r.state.status.as_str(), r.state.exit_code),
        ("created", 127)
    );
    assert!(!w.c.run_dir(&r.id).exists(), "the bundle was cleaned up");
}

#[tokio::test]
async fn a_container_whose_shim_ended_while_the_daemon_was_away_is_found_exited() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = Arc::new(Fake {
        steps: Mutex::new(VecDeque::new()),
        spawns: AtomicUsize::new(0),
    });
    let id = {
        let c = open(dir.path(), fake.clone());
        let e = create(&c, "away", ("no", 0));
        let mut rec = e.snapshot();
        rec.state.status = "running".into();
        rec.state.running = true;
        rec.state.pid = 999_999;
        c.save(&rec).expect("save");
        std::fs::create_dir_all(c.run_dir(&rec.id)).expect("run dir");
        ExitRecord {
            exit_code: 9,
            finished_at: now(),
            error: None,
            pid: 999_999,
            oom_killed: false,
        }
        .write(&c.run_dir(&rec.id).join("exit.json"))
        .expect("exit record");
        rec.id
    };
    // The next daemon: the shim (PID 0 here) is gone, its exit record stands.
    let c = open(dir.path(), fake);
    let r = c.find(&id).expect("kept").snapshot();
    assert_eq!(
        (r.state.status.as_str(), r.state.running, r.state.exit_code),
        ("exited", false, 9)
    );
}
