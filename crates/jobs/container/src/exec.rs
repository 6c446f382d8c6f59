//! `docker exec`: the execs of running containers, and their create, resize and
//! inspect (`exec_start` starts them).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_api::container::{decode_optional, ExecCreate};
use berth_api::{ApiError, Result};
use berth_engine::{Engine, Job, Reply};
use serde_json::json;
use tokio::sync::watch;

use crate::Containers;
/// Finished execs stay inspectable this long, as dockerd's exec GC.
const KEEP_FINISHED: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Default)]
pub(crate) struct ExecState {
    pub running: bool,
    pub started: bool,
    pub pid: i32,
    pub exit_code: Option<i32>,
    pub finished: Option<Instant>,
}

pub(crate) struct Exec {
    pub id: String,
    pub container: String,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub user: String,
    pub workdir: String,
    pub privileged: bool,
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub detach_keys: String,
    pub console_size: Option<(u64, u64)>,
    pub state: watch::Sender<ExecState>,
}

/// The daemon's exec sessions, by ID.
#[derive(Default)]
pub(crate) struct Execs {
    map: Mutex<HashMap<String, Arc<Exec>>>,
}

impl Execs {
    pub(crate) fn get(&self, id: &str) -> Result<Arc<Exec>> {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("No such exec instance: {id}")))
    }

    pub(crate) fn insert(&self, e: Arc<Exec>) {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        m.retain(|_, x| {
            x.state
                .borrow()
                .finished
                .is_none_or(|t| t.elapsed() < KEEP_FINISHED)
        });
        m.insert(e.id.clone(), e);
    }

    /// IDs of a container's running execs (inspect's `ExecIDs`).
    pub(crate) fn running_of(&self, container: &str) -> Vec<String> {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|e| e.container == container && e.state.borrow().running)
            .map(|e| e.id.clone())
            .collect()
    }

    pub(crate) fn forget_container(&self, container: &str) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, e| e.container != container);
    }
}

pub(crate) fn not_running(id: &str) -> ApiError {
    ApiError::conflict(format!("Container {id} is not running"))
}

pub(crate) fn exec_event(
    engine: &Engine,
    c: &Containers,
    e: &Exec,
    action: &str,
    extra: &[(&str, String)],
) {
    if let Ok(entry) = c.find(&e.container) {
        let mut attrs = vec![("execID", e.id.clone())];
        attrs.extend(extra.iter().map(|(k, v)| (*k, v.clone())));
        crate::publish(engine.events(), &entry.snapshot(), action, &attrs);
    }
}

/// `POST /containers/{name}/exec`.
pub(crate) async fn create(job: Job, c: Arc<Containers>) -> Result<Reply> {
    let entry = c.find(job.args.required("name")?)?;
    let rec = entry.snapshot();
    let req: ExecCreate = decode_optional(job.args.body_bytes(), "ExecConfig")?;
    let cmd = req.cmd;
    if cmd.is_empty() {
        return Err(ApiError::invalid("No command specified"));
    }
    if !rec.state.running {
        return Err(not_running(&rec.id));
    }
    if rec.state.status == "paused" {
        return Err(ApiError::conflict(format!(
            "Container {} is paused, unpause the container before exec",
            rec.id
        )));
    }
    let console_size = req.console_size.map(|[h, w]| (h, w));
    let e = Arc::new(Exec {
        id: crate::create::random_id(),
        container: rec.id.clone(),
        cmd,
        env: req.env,
        user: req.user,
        workdir: req.working_dir,
        privileged: req.privileged,
        tty: req.tty,
        stdin: req.attach_stdin,
        stdout: req.attach_stdout,
        stderr: req.attach_stderr,
        detach_keys: req.detach_keys,
        console_size,
        state: watch::channel(ExecState::default()).0,
    });
    if !e.detach_keys.is_empty() {
        crate::detach::parse(&e.detach_keys)?;
    }
    if !e.workdir.is_empty() && !e.workdir.starts_with('/') {
        return Err(ApiError::invalid(format!(
            "the working directory '{}' is invalid, it needs to be an absolute path",
            e.workdir
        )));
    }
    c.execs.insert(e.clone());
    exec_event(
        job.engine(),
        &c,
        &e,
        &format!("exec_create: {}", e.cmd.join(" ")),
        &[],
    );
    Ok(Reply::json_status(201, &json!({ "Id": e.id })))
}

/// `GET /exec/{id}/json`.
pub(crate) async fn inspect(job: Job, c: Arc<Containers>) -> Result<Reply> {
    let e = c.execs.get(job.args.required("id")?)?;
    let st = e.state.borrow().clone();
    let mut pc = json!({
        "tty": e.tty,
        "entrypoint": e.cmd.first().cloned().unwrap_or_default(),
        "arguments": e.cmd.iter().skip(1).collect::<Vec<_>>(),
        "privileged": e.privileged,
    });
    if !e.user.is_empty() {
        pc["user"] = json!(e.user);
    }
    Ok(Reply::json(&json!({
        "ID": e.id,
        "Running": st.running,
        "ExitCode": st.exit_code,
        "ProcessConfig": pc,
        "OpenStdin": e.stdin,
        "OpenStderr": e.stderr,
        "OpenStdout": e.stdout,
        "CanRemove": false,
        "ContainerID": e.container,
        "DetachKeys": e.detach_keys,
        "Pid": st.pid,
    })))
}

/// `POST /exec/{id}/resize?h=&w=`: waits (a little) for the exec to start, as
/// dockerd, since the CLI resizes right after starting it.
pub(crate) async fn resize(job: Job, c: Arc<Containers>) -> Result<Reply> {
    let e = c.execs.get(job.args.required("id")?)?;
    let h = job.args.int("h")?.unwrap_or(0);
    let w = job.args.int("w")?.unwrap_or(0);
    if !(0..=u16::MAX as i64).contains(&h) || !(0..=u16::MAX as i64).contains(&w) {
        return Err(ApiError::invalid("invalid terminal size"));
    }
    let mut rx = e.state.subscribe();
    let started = tokio::time::timeout(Duration::from_secs(10), async move {
        rx.wait_for(|s| s.started).await.is_ok()
    })
    .await;
    if !matches!(started, Ok(true)) {
        return Err(ApiError::system("timeout waiting for exec session ready"));
    }
    if !e.tty || !e.state.borrow().running {
        return Ok(Reply::empty(200));
    }
    let fifo = exec_dir(&c, &e).join("resize.fifo");
    crate::resize_tty(fifo, h, w).await?;
    Ok(Reply::empty(200))
}

pub(crate) fn exec_dir(c: &Containers, e: &Exec) -> std::path::PathBuf {
    c.run_dir(&e.container).join("exec").join(&e.id[..12])
}

pub(crate) fn finish(e: &Exec, code: i32) {
    e.state.send_modify(|s| {
        s.started = true;
        s.running = false;
        s.exit_code = Some(code);
        s.finished = Some(Instant::now());
    });
}
